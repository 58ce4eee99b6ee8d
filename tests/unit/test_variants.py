"""Variant facts read from real binaries, the index files made from them, and the choice `compat --index` makes
for the machines of issue 14 (pure rules on published records: the choosing is logic over facts)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fawheels import cli
from fawheels._util.errors import OverlayError
from fawheels.check.wheelzip import read_path
from fawheels.matrix import loading
from fawheels.matrix.config import load_matrix_file
from fawheels.matrix.cudafacts import Version, parse_gpu
from fawheels.publish import variants
from fawheels.publish.variants import CodeFacts, choose, code_facts, pep825_files, render_per_root
from support.cudabins import DATA, GPU_DATA

ROOT = Path(__file__).parents[2]


def test_facts_of_a_real_shared_object() -> None:
    # libtwo.so: three modules, sm_120 SASS and compute_80 PTX (ISA 9.0) from nvcc 13.0, links libcudart.so.13
    facts = code_facts(read_path(DATA / "libtwo.so"), {"toolchain": {"cuda": "13.0"}})
    assert facts.sass == ("sm_120",) and facts.ptx == (("compute_80", "9.0"),)
    assert facts.cuda_runtime_major == 13 and facts.min_driver == "580.65.06"
    assert facts.property_lines() == [
        "nvidia :: cuda_version_lower_bound :: 13.0",
        "nvidia :: sm_arch :: 120_real",
        "nvidia :: sm_arch :: 80_virtual",
    ]


def test_ptx_newer_than_the_runtime_raises_the_minimum_driver() -> None:
    # the seed failure's shape: nvcc 13.2 PTX (ISA 9.2) needs driver 595, whatever the runtime allows
    facts = code_facts(read_path(GPU_DATA / "sm80-sass+ptx80-nvcc13.2.fatbin"), {"cuda_runtime_major": 13})
    assert facts.min_driver == "595.45.04"
    assert facts.properties()["cuda_version_lower_bound"] == ["13.2"]


def test_a_cuda_12_sass_wheel_needs_only_the_minor_compatibility_driver() -> None:
    facts = code_facts(
        read_path(GPU_DATA / "sm120-sass.fatbin"), {"cuda_runtime_major": 12, "toolchain": {"cuda": "12.8"}}
    )
    assert facts.min_driver == "525.60.13" and facts.properties()["cuda_version_lower_bound"] == ["12.0"]


def test_label_is_a_valid_pep825_label_unique_per_property_set() -> None:
    a = CodeFacts("12.8", 12, ("sm_120",), (), "525.60.13")
    b = CodeFacts("12.9", 12, ("sm_120",), (), "525.60.13")  # same properties: same label
    c = CodeFacts("12.8", 12, ("sm_90", "sm_120"), (), "525.60.13")
    import re

    assert re.fullmatch(r"[0-9a-z_.]{1,16}", a.label)
    assert a.label == b.label != c.label


def rec(filename: str, facts: CodeFacts | None) -> dict[str, Any]:
    project, rest = filename.split("-", 1)
    version = rest.split("-", 1)[0]
    local = version.split("+", 1)[1]
    return {
        "filename": filename,
        "project": project.replace("_", "-"),
        "version": version,
        "variant": local[:5],
        "sha256": "0" * 64,
        "size": 1,
        "metadata_sha256": "1" * 64,
        "requires_python": None,
        "target": None,
        "torch": None,
        "python": "3.12",
        "sass": list(facts.sass) if facts else [],
        "ptx": [a for a, _ in facts.ptx] if facts else [],
        "build_date": None,
        "published": "2026-01-01T00:00:00Z",
        "verify_checks": 1,
        "facts": facts.to_json() if facts else None,
    }


CU13 = 13
INDEX = [
    rec(
        "flash_attn-2.8.3+cu130torch2.14sm120qwen3-cp312-cp312-linux_x86_64.whl",
        CodeFacts("13.0", CU13, ("sm_120",), (), "580.65.06"),
    ),
    rec(
        "flash_attn-2.8.3+cu130torch2.14sm90sm120qwen3-cp312-cp312-linux_x86_64.whl",
        CodeFacts("13.0", CU13, ("sm_90", "sm_120"), (), "580.65.06"),
    ),
    rec(
        "flash_attn-2.8.3+cu128torch2.9sm120qwen3-cp312-cp312-linux_x86_64.whl",
        CodeFacts("12.8", 12, ("sm_120",), (), "525.60.13"),
    ),
    rec(
        "flash_attn-2.8.3+cu129torch2.8sm120qwen3-cp312-cp312-linux_x86_64.whl",
        CodeFacts("12.9", 12, ("sm_120",), (), "525.60.13"),
    ),
    rec(
        "flash_attn-2.8.3+cu132torch2.11sm80ptx80onetuseedptx-cp312-cp312-linux_x86_64.whl",
        CodeFacts("13.2", CU13, ("sm_80",), (("compute_80", "9.2"),), "595.45.04"),
    ),
]


@pytest.mark.parametrize(
    ("gpu", "driver", "wheel"),
    [
        # the seed user: driver 570 is CUDA 12.8; the cu128 build matches it natively (cu129 would load too)
        ("RTX PRO 6000", "570.195.03", "flash_attn-2.8.3+cu128torch2.9sm120qwen3-cp312-cp312-linux_x86_64.whl"),
        ("RTX 5090", "580.65.06", "flash_attn-2.8.3+cu130torch2.14sm120qwen3-cp312-cp312-linux_x86_64.whl"),
        ("H100", "580.159.04", "flash_attn-2.8.3+cu130torch2.14sm90sm120qwen3-cp312-cp312-linux_x86_64.whl"),
        ("RTX PRO 6000", "575.57.08", "flash_attn-2.8.3+cu129torch2.8sm120qwen3-cp312-cp312-linux_x86_64.whl"),
    ],
)
def test_the_right_wheel_for_each_machine(gpu: str, driver: str, wheel: str) -> None:
    (choice,) = choose(INDEX, parse_gpu(gpu), Version.parse(driver))
    assert choice.best is not None and choice.best.record["filename"] == wheel


def test_the_seed_ptx_wheel_is_judged_by_its_isa() -> None:
    fits = {f.record["filename"]: f for f in choose(INDEX, parse_gpu("H100"), Version.parse("580.159.04"))[0].fits}
    seed = fits["flash_attn-2.8.3+cu132torch2.11sm80ptx80onetuseedptx-cp312-cp312-linux_x86_64.whl"]
    assert not seed.ok and "ISA 9.2" in seed.reason and "595.45.04" in seed.reason


def test_a_driver_525_machine_gets_the_reason_none_fits() -> None:
    (blackwell,) = choose(INDEX, parse_gpu("RTX 5090"), Version.parse("525.147.05"))
    assert blackwell.best is None
    assert "12.0 GPU needs a driver of CUDA >= 12.8 (>= 570.26)" in blackwell.why_none
    only_cu13 = [r for r in INDEX if r["variant"] == "cu130"]
    (hopper,) = choose(only_cu13, parse_gpu("H100"), Version.parse("525.147.05"))
    assert hopper.best is None
    assert hopper.why_none == (
        "driver 525.147.05 (CUDA 12.0): only CUDA 12.x wheels can load; this index has none for 9.0"
    )
    (seed,) = choose(only_cu13, parse_gpu("RTX PRO 6000"), Version.parse("570.195.03"))
    assert seed.why_none == (
        "driver 570.195.03 (CUDA 12.8): only CUDA 12.x wheels can load; this index has none for 12.0"
    )


def test_index_files_carry_the_facts_in_draft_form() -> None:
    per_root = json.loads(render_per_root("cu128", INDEX))
    (wheel,) = per_root["wheels"]
    assert wheel["min_driver"] == "525.60.13" and wheel["sass"] == ["sm_120"]
    assert "draft" in per_root["note"]
    files = pep825_files(INDEX)
    doc = json.loads(files[("cu128", "flash-attn", "flash_attn-2.8.3+cu128torch2.9sm120qwen3-variants.json")])
    assert doc["$schema"] == variants.PEP825_SCHEMA and "/v0.0." in doc["$schema"]  # 0.x: a draft version
    assert doc["default-priorities"]["namespace"] == ["nvidia"]
    (props,) = doc["variants"].values()
    assert props == {"nvidia": {"cuda_version_lower_bound": ["12.0"], "sm_arch": ["120_real"]}}


def test_serving_targets_of_the_repository_matrix_for_the_seed_user() -> None:
    m = load_matrix_file(ROOT / "build_matrix.yaml")
    ids = loading.serving_targets(m.targets, "flash_attn", parse_gpu("RTX PRO 6000"), Version.parse("570.195.03"))
    assert "fa2-cu128-torch2.9-sm120-cp312" in ids and "fa2-cu129-torch2.8-sm120-cp312" in ids
    assert all("-cu12" in i for i in ids)


def test_compat_index_on_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "wheels.json").write_text(json.dumps({"schema": 1, "wheels": INDEX}))
    code = cli.main(["compat", "--index", str(tmp_path), "--gpu", "RTX PRO 6000", "--driver", "570.195.03"])
    out = capsys.readouterr().out
    assert code == 0
    assert "flash-attn: flash_attn-2.8.3+cu128torch2.9sm120qwen3-cp312-cp312-linux_x86_64.whl (cu128)" in out
    assert "links the CUDA 13 runtime, which needs driver >= 580.65.06" in out
    code = cli.main(["compat", "--index", str(tmp_path), "--gpu", "RTX 5090", "--driver", "525.147.05", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1 and doc["ok"] is False and "update the driver" in doc["projects"][0]["reason"]


def test_compat_index_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["compat", "--index", str(tmp_path), "--gpu", "H100", "--driver", "580.65.06"]) == 3
    assert "wheels.json" in capsys.readouterr().err
    assert cli.main(["compat", "--gpu", "H100", "--driver", "580.65.06"]) == 3
    assert "exactly one" in capsys.readouterr().err


# ------------------------------------------------------------------------ fetch_wheel (fix-vllm's download)


def _index_with(tmp_path: Path, data: bytes) -> tuple[Path, dict[str, Any]]:
    import hashlib

    root = tmp_path / "my index"
    wheel = root / "cu130" / "simple" / "vllm-fa2" / "vllm_fa2-0.26.0-cp312-abi3-linux_x86_64.whl"
    wheel.parent.mkdir(parents=True)
    wheel.write_bytes(data)
    record = {
        "variant": "cu130",
        "project": "vllm-fa2",
        "filename": wheel.name,
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    return root, record


@pytest.mark.parametrize("as_url", [False, True])
def test_fetch_wheel_copies_what_the_manifest_lists(tmp_path: Path, as_url: bool) -> None:
    root, record = _index_with(tmp_path, b"wheel bytes")
    index = root.as_uri() if as_url else str(root)  # file:// URL with %20, or the directory
    out = variants.fetch_wheel(index, record, tmp_path / "dest", OverlayError)
    assert out.read_bytes() == b"wheel bytes" and out.parent == tmp_path / "dest"


def test_fetch_wheel_refuses_other_bytes_and_leaves_nothing(tmp_path: Path) -> None:
    root, record = _index_with(tmp_path, b"wheel bytes")
    with pytest.raises(OverlayError, match="does not match the index's sha256"):
        variants.fetch_wheel(str(root), {**record, "sha256": "0" * 64}, tmp_path / "dest", OverlayError)
    assert list((tmp_path / "dest").iterdir()) == []


def test_fetch_wheel_stays_inside_the_index_and_dest(tmp_path: Path) -> None:
    root, record = _index_with(tmp_path, b"wheel bytes")
    for bad in ({"filename": "../../evil.whl"}, {"variant": ".."}):
        with pytest.raises(OverlayError):
            variants.fetch_wheel(str(root), {**record, **bad}, tmp_path / "dest", OverlayError)
    with pytest.raises(OverlayError, match="cannot fetch"):
        variants.fetch_wheel(str(tmp_path / "nowhere"), record, tmp_path / "dest", OverlayError)
