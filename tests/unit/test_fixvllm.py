"""`fawheels fix-vllm --dry-run` over fake installed vLLMs (site-packages trees with a dist-info and a small ELF
`_vllm_fa2_C` made by support/elfs.py) and nvidia-smi's answers for an RTX 5090 on 575 and 580 and an RTX PRO 6000
on 570 (check/machine.py's runner, so no process starts)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from fawheels import cli
from fawheels._util.errors import OverlayError
from fawheels.check import machine
from fawheels.deploy import fixvllm
from support import elfs

SMI = {
    "5090-575": "NVIDIA GeForce RTX 5090, 12.0, 575.64.03\n",
    "5090-580": "NVIDIA GeForce RTX 5090, 12.0, 580.65.06\n",
    "pro6000-570": "NVIDIA RTX PRO 6000 Blackwell Workstation Edition, 12.0, 570.195.03\n",
}


def fake_vllm(site: Path, version: str, torch: str, runtime: int, isa: str = "9.0") -> Path:
    """An installed vLLM: dist-info (METADATA, RECORD) and its _vllm_fa2_C with sm_80 SASS + compute_80 PTX."""
    module = elfs.STOCK_MODULE if isa == "9.0" else elfs.with_ptx_isa(elfs.STOCK_MODULE, isa)
    ext = elfs.write_extension(site / fixvllm.EXTENSION, runtime=runtime, modules=4, module=module)
    for name, ver in (("vllm", version), ("torch", torch)):
        info = site / f"{name}-{ver.split('+')[0]}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {ver}\n")
        (info / "RECORD").write_text(f"{fixvllm.EXTENSION},,\n" if name == "vllm" else "")
    return ext


@pytest.fixture
def installs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Two site-packages: PyPI's vLLM 0.26.0 (CUDA 13, torch 2.11.0+cu130) and a cu128 build of it."""
    sites = {"cu130": tmp_path / "cu130", "cu128": tmp_path / "cu128"}
    fake_vllm(sites["cu130"], "0.26.0", "2.11.0+cu130", 13)
    fake_vllm(sites["cu128"], "0.26.0+cu128", "2.11.0+cu128", 12, isa="8.7")
    return sites


def use(site: Path, smi: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", [str(site), *sys.path])
    real_query = machine.query
    monkeypatch.setattr(machine, "query", lambda runner=None: real_query(lambda cmd: (0, SMI[smi])))


def dry(capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    code = cli.main(["fix-vllm", "--dry-run", *extra])
    out, err = capsys.readouterr()
    return code, out, err


def test_pypi_vllm_on_a_575_driver_is_refused_with_the_fix(
    installs: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use(installs["cu130"], "5090-575", monkeypatch)
    code, out, err = dry(capsys)
    assert code == OverlayError.exit_code and out == ""
    assert "vLLM 0.26.0 from PyPI links the CUDA 13 runtime: driver 575.64.03 cannot run it at all" in err
    assert "upgrade the driver to >= 580.65.06, or install vLLM's cu128 build" in err
    assert "Traceback" not in err


def test_pypi_vllm_on_580_jits_and_the_plan_builds_sm120(
    installs: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use(installs["cu130"], "5090-580", monkeypatch)
    before = (installs["cu130"] / fixvllm.EXTENSION).read_bytes()
    code, out, _ = dry(capsys)
    assert code == 0
    assert "GPU 12.0 (NVIDIA GeForce RTX 5090, from nvidia-smi), driver 580.65.06" in out
    assert "ok   4 modules: no SASS for 12.0" in out and "JIT-compiling 4 modules" in out
    assert "build vllm-fa2-cu130-torch2.11-sm120-cp" in out and "min on" in out
    assert "overlay it" in out and "fix-vllm --undo" in out
    assert (installs["cu130"] / fixvllm.EXTENSION).read_bytes() == before  # a dry run changes nothing


def test_json_plan(
    installs: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use(installs["cu130"], "5090-580", monkeypatch)
    code, out, _ = dry(capsys, "--json")
    doc = json.loads(out)
    assert code == 0 and doc["schema"] == fixvllm.PLAN_SCHEMA and doc["dry_run"] is True
    assert (doc["vllm"], doc["cuda_runtime_major"], doc["verdict"], doc["action"]) == ("0.26.0", 13, "jit", "build")
    assert doc["counts"]["jit"] == 4 and doc["target"].startswith("vllm-fa2-cu130-torch2.11-sm120-")
    assert doc["estimate_s"] > 0


def test_cu128_vllm_on_the_seed_machine_builds_in_the_cuda_12_8_image(
    installs: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use(installs["cu128"], "pro6000-570", monkeypatch)
    code, out, _ = dry(capsys)
    assert code == 0
    assert "vLLM 0.26.0+cu128 (torch 2.11.0+cu128, CUDA 12 runtime" in out
    assert "JIT-compiling 4 modules" in out  # its PTX (ISA 8.7) is one a 570 driver can JIT
    assert "build vllm-fa2-cu128-torch2.11-sm120-cp" in out and "toolchain image (docker" in out


def test_pypi_vllm_on_the_seed_machine_is_refused(
    installs: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use(installs["cu130"], "pro6000-570", monkeypatch)
    code, _, err = dry(capsys)
    assert code == OverlayError.exit_code
    assert "driver 570.195.03 cannot run it at all" in err and "install vLLM's cu128 build" in err


def test_flags_override_nvidia_smi_and_no_vllm_is_refused(
    installs: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use(installs["cu130"], "5090-575", monkeypatch)
    code, out, _ = dry(capsys, "--gpu", "H200", "--driver", "580.159.04")
    assert code == 0 and "sm90" in out
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(installs["cu130"])])
    code, _, err = dry(capsys, "--gpu", "H200", "--driver", "580.159.04")
    assert code == OverlayError.exit_code and "has no vLLM installed" in err


def test_undo_without_an_overlay_says_so(
    installs: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use(installs["cu130"], "5090-580", monkeypatch)
    code, _, err = dry(capsys, "--undo")
    assert code == OverlayError.exit_code and "carries no fawheels overlay: nothing to undo" in err
