"""End to end: small real wheels (nvcc-compiled kernels, real verify) published into a static index carry their
variant facts; `fawheels compat --index` over that index picks the wheel for each machine of issue 14, and
`fawheels compat WHEEL` on the seed configuration names the runtime's driver floor and the CUDA 12 targets
that would serve. (The CUDA 12.8 toy is compiled by the nvcc at hand with a static runtime: only its labels
say 12.8, which is all an index test needs; the CUDA 13 toys link libcudart.so.13 as real builds do.)"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from fawheels.publish import index as publish
from support import wheelfactory

pytestmark = [pytest.mark.nvcc]
ROOT = Path(__file__).parents[2]


def fawheels(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fawheels.cli", *args], capture_output=True, text=True, cwd=ROOT)


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    from fawheels.check import verify

    base = tmp_path_factory.mktemp("variants")
    if wheelfactory.nvcc() is None:
        pytest.skip("no nvcc")
    sm120_13 = wheelfactory.compile_extension(base / "e1", ("120",), "shared")
    sm90_120_13 = wheelfactory.compile_extension(base / "e2", ("90", "120"), "shared")
    sm120_12 = wheelfactory.compile_extension(base / "e3", ("120",), "static")
    wheels = {
        "cu130": wheelfactory.toy_wheel(base / "a", name="flash_attn", version="2.8.3", extension=sm120_13),
        "cu130-h": wheelfactory.toy_wheel(
            base / "b", name="flash_attn", version="2.8.3", torch="2.11", extension=sm90_120_13
        ),
        "cu128": wheelfactory.toy_wheel(
            base / "c", name="flash_attn", version="2.8.3", cuda="12.8", torch="2.9", extension=sm120_12
        ),
    }
    for w in wheels.values():
        info = json.loads(zipfile.ZipFile(w).read(f"flash_attn-{w.name.split('-')[1]}.dist-info/build-info.json"))
        assert info["archs"]["sass"] == ["sm_120"]  # the toy factory's promise: sm_120 at least
        report = verify.verify_wheel(w)
        assert report.ok, report.to_json()
        verify.write_report(w, report)
    root = base / "index"
    assert publish.publish_command(list(wheels.values()), index=str(root)) == 0
    return root, wheels


def test_published_index_carries_variant_facts(index: tuple[Path, dict[str, Path]]) -> None:
    root, wheels = index
    per_root = json.loads((root / "cu130" / "simple" / "fawheels-variants.json").read_text())
    by_name = {w["filename"]: w for w in per_root["wheels"]}
    h = by_name[wheels["cu130-h"].name]
    assert h["sass"] == ["sm_90", "sm_120"] and h["ptx"] == [] and h["cuda_runtime_major"] == 13
    assert h["min_driver"] == "580.65.06"
    assert "nvidia :: sm_arch :: 90_real" in h["variant_properties"]
    cu128 = json.loads((root / "cu128" / "simple" / "fawheels-variants.json").read_text())["wheels"][0]
    assert cu128["min_driver"] == "525.60.13"
    draft = root / "cu128" / "simple" / "flash-attn" / "flash_attn-2.8.3+cu128torch2.9-variants.json"
    assert json.loads(draft.read_text())["$schema"].endswith("/v0.0.3.json")
    page = (root / "index.html").read_text()
    assert "min driver" in page and "≥ 525.60.13 (CUDA 12.8, runtime 12.x)" in page
    assert "≥ 580.65.06 (CUDA 13.0, runtime 13.x)" in page
    manifest = json.loads((root / "wheels.json").read_text())
    assert all(w["facts"]["variant_label"].startswith("fw") for w in manifest["wheels"])


@pytest.mark.parametrize(
    ("gpu", "driver", "key"),
    [
        ("RTX PRO 6000", "570.195.03", "cu128"),
        ("RTX 5090", "580.65.06", "cu130"),  # exact SASS, CUDA the driver supports: the newest torch sorts last
        ("H100", "580.159.04", "cu130-h"),
    ],
)
def test_compat_index_picks_the_wheel(index: tuple[Path, dict[str, Path]], gpu: str, driver: str, key: str) -> None:
    root, wheels = index
    proc = fawheels("compat", "--index", str(root), "--gpu", gpu, "--driver", driver, "--json")
    assert proc.returncode == 0, proc.stderr
    (project,) = json.loads(proc.stdout)["projects"]
    if key == "cu130":
        assert project["wheel"] in (wheels["cu130"].name, wheels["cu130-h"].name)
    else:
        assert project["wheel"] == wheels[key].name


def test_compat_index_says_why_none_fits_on_driver_525(index: tuple[Path, dict[str, Path]]) -> None:
    root, _ = index
    proc = fawheels("compat", "--index", str(root), "--gpu", "RTX PRO 6000", "--driver", "525.147.05")
    assert proc.returncode == 1
    assert "none fits: a 12.0 GPU needs a driver of CUDA >= 12.8 (>= 570.26)" in proc.stdout
    proc = fawheels("compat", "--index", str(root), "--gpu", "H100", "--driver", "525.147.05")
    assert proc.returncode == 1
    assert "driver 525.147.05 (CUDA 12.0): only CUDA 12.x wheels can load; this index has none for 9.0" in proc.stdout


def test_compat_on_the_seed_configuration_names_the_runtime_floor_and_the_serving_targets(
    index: tuple[Path, dict[str, Path]],
) -> None:
    _, wheels = index
    proc = fawheels("compat", str(wheels["cu130"]), "--gpu", "RTX PRO 6000", "--driver", "570.195.03")
    assert proc.returncode == 1
    assert "links the CUDA 13 runtime (libcudart.so.13), which needs driver >= 580.65.06" in proc.stdout
    assert "fa2-cu128-torch2.9-sm120-cp312" in proc.stdout and "fa2-cu129-torch2.8-sm120-cp312" in proc.stdout
    assert "fa2-cu130" not in proc.stdout.split("would load here:")[1]
