"""compat: load prediction as pure rules on entry data (incl. PTX ISA 8.7/8.8, which no toolkit here emits),
on committed real binaries (incl. what a real driver did with them), and — marked nvcc — the prediction
table of the issue on binaries compiled during the run."""

from __future__ import annotations

import json
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fawheels import cli
from fawheels._util.errors import ConfigError, InspectError
from fawheels.check import compat, wheelzip
from fawheels.check.binary import CodeEntry, CodeObject
from fawheels.check.compat import predict
from fawheels.matrix import loading
from fawheels.matrix.cudafacts import Arch, Version, parse_gpu
from support import cudabins, elfs
from support.cudabins import DATA, DRIVER_RESULTS, GPU_CASES


def entry(kind: str, arch: str, isa: str | None = None, container: int = 0, section: str = ".nv_fatbin") -> CodeEntry:
    return CodeEntry(
        file="ext.so",
        kind=kind,
        arch=arch,
        ptx_isa=isa,
        code_version=isa or "1.8",
        compression="none",
        size=1,
        uncompressed_size=1,
        container=container,
        section=section,
    )


def one(entries: list[CodeEntry], gpu: str, driver: str, needed: tuple[str, ...] = ()) -> compat.Prediction:
    report = predict(
        [CodeObject("ext.so", "shared-object", needed, tuple(entries))], parse_gpu(gpu), Version.parse(driver)
    )
    (p,) = report.predictions
    return p


# --- pure rules ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("isa", "driver", "ok", "needed"),
    [
        ("8.7", "570.26", True, None),  # CUDA 12.8 PTX on its own GA driver
        ("8.7", "560.28.03", False, "570.26"),
        ("8.8", "570.195.03", False, "575.51.03"),  # the seed failure: a 12.9 build on a 570 driver
        ("8.8", "575.51.03", True, None),
        ("9.0", "575.51.03", False, "580.65.06"),
        ("9.0", "580.65.06", True, None),
        ("9.2", "580.159.04", False, "595.45.04"),
        ("9.2", "595.45.04", True, None),
    ],
)
def test_ptx_isa_rule(isa: str, driver: str, ok: bool, needed: str | None) -> None:
    p = one([entry("ptx", "sm_80", isa)], "sm_120", driver)
    assert (p.ok, p.needed_driver) == (ok, needed)
    assert p.image == f"compute_80 PTX (ISA {isa})"
    if not ok:
        assert p.error == "cudaErrorUnsupportedPtxVersion"
        assert "unsupported toolchain" in p.reason and f">= {needed}" in p.reason


def test_ptx_newer_than_every_known_toolkit() -> None:
    p = one([entry("ptx", "sm_80", "9.9")], "12.0", "595.45.04")
    assert not p.ok and p.needed_driver is None and "newer than any" in p.reason


@pytest.mark.parametrize(
    ("sass", "gpu", "ok"),
    [
        ("sm_120", "12.0", True),
        ("sm_120", "12.1", True),
        ("sm_120a", "12.0", True),
        ("sm_120a", "12.1", False),
        ("sm_120f", "12.1", True),
        ("sm_121", "12.0", False),
        ("sm_100", "12.0", False),
        ("sm_100f", "10.3", True),
        ("sm_90a", "9.0", True),
        ("sm_90", "10.0", False),
        ("sm_80", "8.6", True),
        ("sm_86", "8.0", False),
    ],
)
def test_sass_binary_compatibility(sass: str, gpu: str, ok: bool) -> None:
    p = one([entry("sass", sass)], gpu, "580.65.06")
    assert p.ok == ok
    if not ok:
        assert p.error == "cudaErrorNoKernelImageForDevice" and p.image is None
        assert "no kernel image is available for execution on the device" in p.reason


def test_sass_is_preferred_to_ptx_and_exact_to_compatible() -> None:
    # PTX too new for the driver does not matter when SASS runs
    p = one([entry("ptx", "sm_80", "9.2"), entry("sass", "sm_120")], "12.0", "580.65.06")
    assert (p.ok, p.image) == (True, "sm_120 SASS")
    p = one([entry("sass", "sm_80"), entry("sass", "sm_86"), entry("sass", "sm_89")], "8.9", "580.65.06")
    assert (p.image, p.how) == ("sm_89 SASS", "exact-sass") and "matches" in p.reason
    p = one([entry("sass", "sm_80"), entry("sass", "sm_86")], "8.9", "580.65.06")
    assert (p.image, p.how) == ("sm_86 SASS", "compatible-sass") and "runs on" in p.reason


@pytest.mark.parametrize(
    ("ptx", "gpu", "ok"),
    [
        ("sm_80", "12.0", True),
        ("sm_90a", "9.0", True),
        ("sm_90a", "10.0", False),
        ("sm_100", "9.0", False),
        ("sm_120f", "12.1", True),
        ("sm_120f", "10.0", False),
    ],
)
def test_ptx_jit_targets(ptx: str, gpu: str, ok: bool) -> None:
    assert one([entry("ptx", ptx, "9.0")], gpu, "580.65.06").ok == ok


def test_the_newest_jit_able_ptx_is_chosen() -> None:
    p = one([entry("ptx", "sm_80", "9.0"), entry("ptx", "sm_90", "9.0")], "9.0", "580.65.06")
    assert p.image == "compute_90 PTX (ISA 9.0)"


def test_each_container_is_its_own_module() -> None:
    objects = [
        CodeObject(
            "ext.so",
            "shared-object",
            (),
            (
                entry("sass", "sm_120", container=0),
                entry("sass", "sm_80", container=1),
                entry("ptx", "sm_80", "9.0", 1),
                entry("ptx", "sm_80", "9.0", 2, section="__nv_relfatbin"),
                entry("lto", "sm_80", container=3),
            ),
        )
    ]
    report = predict(objects, (12, 0), Version.parse("575.51.03"))
    assert [(p.container, p.ok) for p in report.predictions] == [(0, True), (1, False)]
    assert not report.ok


def test_cuda_runtime_newer_than_the_driver() -> None:
    entries = [entry("sass", "sm_120")]
    blocked = predict(
        [CodeObject("ext.so", "shared-object", ("libcudart.so.13",), tuple(entries))],
        (12, 0),
        Version.parse("575.51.03"),
    )
    assert [p.error for p in blocked.predictions] == ["cudaErrorInsufficientDriver", None]
    assert blocked.predictions[0].needed_driver == "580.65.06"
    fine = predict(
        [CodeObject("ext.so", "shared-object", ("libcudart.so.12",), tuple(entries))],
        (12, 0),
        Version.parse("575.51.03"),
    )
    assert fine.ok


def test_objects_without_cuda_code_are_not_entries() -> None:
    report = predict([CodeObject("plain.so", "shared-object", ("libc.so.6",))], (12, 0), Version.parse("580.65.06"))
    assert report.ok and report.predictions == ()


def test_json_contract() -> None:
    report = predict(
        [CodeObject("ext.so", "shared-object", (), (entry("ptx", "sm_80", "9.0"),))],
        (12, 0),
        Version.parse("575.51.03"),
    )
    doc = report.to_json()
    assert doc["ok"] is False and doc["driver"] == "575.51.03" and doc["driver_cuda"] == "12.9"
    (e,) = doc["entries"]
    assert {"image", "how", "reason", "error", "needed_driver"} <= set(e)
    assert e["how"] == "ptx-jit"
    assert "cudaErrorUnsupportedPtxVersion" in e["reason"] and e["needed_driver"] == "580.65.06"


def test_bad_gpu_and_driver_are_config_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match="unknown GPU"):
        compat.compat_command(str(DATA / "multi.fatbin"), gpu="RTX 9999 Ultra", driver="580.65.06")
    with pytest.raises(ConfigError, match="not a driver version"):
        compat.compat_command(str(DATA / "multi.fatbin"), gpu="sm_120", driver="latest")
    assert cli.main(["compat", str(DATA / "multi.fatbin"), "--gpu", "H1000", "--driver", "580.65.06"]) == 3
    assert "Traceback" not in capsys.readouterr().err


def test_missing_path_and_unknown_distribution() -> None:
    with pytest.raises(InspectError, match="no such file or installed distribution"):
        compat.compat_command("surely-not-installed-dist", gpu="sm_120", driver="580.65.06")


# --- committed real binaries --------------------------------------------------------------------------


def test_what_a_real_driver_did_is_what_compat_predicts() -> None:
    """tests/data/gpu/observed.json: cuModuleLoadData on an H100 (see bench/compat-gpu.md)."""
    observed = json.loads((DATA / "gpu" / "observed.json").read_text())
    assert set(observed["results"]) == {c.name for c in GPU_CASES}
    for case in GPU_CASES:
        p = cudabins.predicted(case, observed["gpu"], observed["driver"])
        assert DRIVER_RESULTS[observed["results"][case.name]] == p.error, case.name


def test_cli_on_a_shared_object(capsys: pytest.CaptureFixture[str]) -> None:
    so = str(DATA / "libtwo.so")
    assert cli.main(["compat", so, "--gpu", "RTX PRO 6000", "--driver", "580.65.06"]) == 0
    assert "sm_120 SASS matches compute capability 12.0" in capsys.readouterr().out
    assert cli.main(["compat", so, "--gpu", "sm_120", "--driver", "575.51.03"]) == 1
    assert "cudaErrorInsufficientDriver" in capsys.readouterr().out


def test_cli_json_on_a_shared_object(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["compat", str(DATA / "libtwo.so"), "--gpu", "H100", "--driver", "580.65.06", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    # container 0 (nvcc's device link) has only sm_120 SASS: nothing for 9.0; the others JIT compute_80
    assert doc["ok"] is False
    assert [(e["container"], e["ok"]) for e in doc["entries"]] == [(0, False), (1, True), (2, True)]
    assert doc["entries"][1]["image"] == "compute_80 PTX (ISA 9.0)"


def test_installed_distribution_is_found_through_its_file_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    site = tmp_path / "site"
    (site / "vllm_toy").mkdir(parents=True)
    shutil.copy(DATA / "libtwo.so", site / "vllm_toy" / "_C.abi3.so")
    info = site / "vllm_toy-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: vllm-toy\nVersion: 0.1\n")
    (info / "RECORD").write_text("vllm_toy/_C.abi3.so,,\nvllm_toy-0.1.dist-info/METADATA,,\n")
    monkeypatch.setattr(sys, "path", [str(site), *sys.path])
    assert cli.main(["compat", "vllm-toy", "--gpu", "sm_120", "--driver", "570.195.03", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["entries"][0]["error"] == "cudaErrorInsufficientDriver"
    assert all(e["file"].endswith("_C.abi3.so") for e in doc["entries"])


# --- nvcc: the prediction table on binaries compiled now -----------------------------------------

TABLE_BINARIES = {"ptx120": ("compute_120",), "sm120": ("sm_120",), "sm120a": ("sm_120a",), "sm100": ("sm_100",)}


@pytest.fixture(scope="module")
def table_binaries(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("table")
    with ThreadPoolExecutor(2) as pool:
        futures = {n: pool.submit(cudabins.compile_fatbin, out / f"{n}.fatbin", t) for n, t in TABLE_BINARIES.items()}
        return {n: f.result() for n, f in futures.items()}


@pytest.mark.nvcc
@pytest.mark.skipif(cudabins.find_nvcc() is None, reason="needs nvcc")
@pytest.mark.parametrize(
    ("binary", "gpu", "driver", "error", "needed"),
    [
        ("ptx120", "sm_120", "575.51.03", "cudaErrorUnsupportedPtxVersion", "580.65.06"),
        ("ptx120", "sm_120", "580.65.06", None, None),
        ("sm120", "sm_121", "580.65.06", None, None),
        ("sm120a", "sm_121", "580.65.06", "cudaErrorNoKernelImageForDevice", None),
        ("sm100", "sm_120", "580.65.06", "cudaErrorNoKernelImageForDevice", None),
    ],
)
def test_prediction_table(
    binary: str,
    gpu: str,
    driver: str,
    error: str | None,
    needed: str | None,
    table_binaries: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert wheelzip.read_file(table_binaries[binary]).entries[0].ptx_isa in (None, "9.0")
    code = cli.main(["compat", str(table_binaries[binary]), "--gpu", gpu, "--driver", driver, "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == (0 if error is None else 1)
    (e,) = doc["entries"]
    assert (e["error"], e["needed_driver"]) == (error, needed)


# --- the verdict: identical findings grouped, one last line, exit codes --------------------------------------


def stock_like(tmp_path: Path, runtime: int = 13, modules: int = 76) -> str:
    """vLLM 0.26.0's _vllm_fa2_C in shape: `modules` modules of sm_80 SASS + compute_80 PTX (ISA 9.0)."""
    return str(elfs.write_extension(tmp_path / "_vllm_fa2_C.abi3.so", runtime=runtime, modules=modules))


def test_stock_vllm_on_the_seed_machine_fails_in_a_few_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    so = stock_like(tmp_path)
    assert cli.main(["compat", so, "--gpu", "RTX PRO 6000", "--driver", "570.195.03"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4, lines
    assert lines[1].startswith("  FAIL 1 file: links the CUDA 13 runtime")
    assert lines[2].startswith("  FAIL 76 modules: no SASS for 12.0; compute_80 PTX (ISA 9.0) is too new")
    assert "= 222" in lines[2]
    assert lines[3].startswith("verdict: FAILS on 12.0 with driver 570.195.03")
    assert "upgrade the driver to >= 580.65.06" in lines[3] and "vLLM's cu128 build" in lines[3]


def test_jit_is_a_warning_with_its_cost_and_the_cure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    so = stock_like(tmp_path)
    assert cli.main(["compat", so, "--gpu", "NVIDIA GeForce RTX 5090", "--driver", "580.65.06"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and lines[1].startswith("  ok   76 modules: no SASS for 12.0")
    assert "JIT-compiling 76 modules" in lines[2] and "17 s per module" in lines[2] and "fix-vllm" in lines[2]
    assert cli.main(["compat", so, "--gpu", "H200", "--driver", "580.159.04", "--strict"]) == 1
    assert "sm_90 SASS" in capsys.readouterr().out


def test_json_counts_and_findings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    so = stock_like(tmp_path, modules=5)
    assert cli.main(["compat", so, "--gpu", "12.0", "--driver", "570.195.03", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["verdict"] == "fails" and doc["ok"] is False
    assert doc["counts"] == {
        "files": 1,
        "modules": 5,
        "native": 0,
        "jit": 0,
        "failing": 5,
        "runtime_blocked_files": 1,
    }
    assert [(f["count"], f["unit"], f["error"]) for f in doc["findings"]] == [
        (1, "file", "cudaErrorInsufficientDriver"),
        (5, "module", "cudaErrorUnsupportedPtxVersion"),
    ]
    assert len(doc["entries"]) == 6
    assert cli.main(["compat", so, "--gpu", "9.0", "--driver", "580.159.04", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["verdict"], doc["counts"]["jit"]) == ("jit", 5)


def test_native_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    so = str(DATA / "libtwo.so")
    assert cli.main(["compat", so, "--gpu", "sm_120", "--driver", "580.65.06"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "verdict: loads natively: 3 modules with SASS for 12.0"


def test_a_static_runtime_has_the_same_driver_floor_per_file_and_in_an_index(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A wheel whose objects link no libcudart (cudart static): build-info's cuda_runtime_major decides, for
    `compat WHEEL` as for `compat --index` (variants.judge over the facts publish records)."""
    from fawheels.publish import variants

    so = elfs.shared_object(["libc.so.6"], [(DATA / "multi.fatbin").read_bytes()])
    wheel = cudabins.write_wheel(tmp_path, {cudabins.EXT: so}, info=cudabins.build_info())
    assert cli.main(["compat", str(wheel), "--gpu", "sm_120", "--driver", "575.51.03", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["findings"][0]["error"] == "cudaErrorInsufficientDriver"
    assert "statically" in doc["findings"][0]["reason"]
    facts = variants.code_facts(wheelzip.read_path(wheel), cudabins.build_info()).to_json()
    for driver, ok in (("575.51.03", False), ("580.65.06", True)):
        fit = variants.judge({"facts": facts}, (12, 0), Version.parse(driver))
        per_file = compat.check(str(wheel), (12, 0), Version.parse(driver))
        assert fit.ok == per_file.ok == ok, driver


def test_loads_on_is_the_one_rule() -> None:
    sm80, sm120 = Arch.parse("sm_80"), Arch.parse("sm_120")
    assert loading.loads_on([sm120], [], (12, 0), Version.parse("580.65.06"), 13).how == "exact-sass"
    assert loading.loads_on([sm120], [], (12, 0), Version.parse("575.51.03"), 13).error == (
        "cudaErrorInsufficientDriver"
    )
    assert loading.loads_on([sm120], [], (9, 0), Version.parse("580.65.06"), 13).error == (
        "cudaErrorNoKernelImageForDevice"
    )
    old_and_new = [(sm80, Version.parse("8.7")), (Arch.parse("sm_90"), Version.parse("9.2"))]
    load = loading.loads_on([], old_and_new, (12, 0), Version.parse("575.51.03"))
    assert (load.ok, load.how, str(load.arch), str(load.isa)) == (True, "ptx-jit", "sm_80", "8.7")
