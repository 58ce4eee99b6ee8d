"""GPU facts from the machine: nvidia-smi's names are read by family (never across generations), and --gpu /
--driver default to what nvidia-smi reports (a stub on PATH, through the one subprocess gateway)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from fawheels import cli
from fawheels._util.errors import ConfigError, UsageError
from fawheels.check import machine
from fawheels.matrix.cudafacts import Version
from support import elfs

SMI = {
    "5090-575": "NVIDIA GeForce RTX 5090, 12.0, 575.64.03\n",
    "5090-580": "NVIDIA GeForce RTX 5090, 12.0, 580.65.06\n",
    "pro6000-570": "NVIDIA RTX PRO 6000 Blackwell Workstation Edition, 12.0, 570.195.03\n",
    "h200x2": "NVIDIA H200, 9.0, 580.159.04\nNVIDIA H200, 9.0, 580.159.04\n",
    "old-driver": "NVIDIA A100-SXM4-80GB, [N/A], 470.256.02\n",
}


def test_parse_nvidia_smi() -> None:
    (gpu,) = machine.parse_nvidia_smi(SMI["pro6000-570"])
    assert (gpu.name, gpu.cc, gpu.driver) == (
        "NVIDIA RTX PRO 6000 Blackwell Workstation Edition",
        (12, 0),
        "570.195.03",
    )
    assert len(machine.parse_nvidia_smi(SMI["h200x2"])) == 2
    assert machine.parse_nvidia_smi(SMI["old-driver"])[0].cc == (8, 0)  # from the name
    with pytest.raises(ConfigError):
        machine.parse_nvidia_smi("garbage\n")


def test_resolve_prefers_flags_and_fills_the_rest_from_nvidia_smi() -> None:
    smi = SMI["5090-575"]
    m = machine.resolve(None, None, lambda cmd: (0, smi))
    assert (m.cc, str(m.driver), m.source) == ((12, 0), "575.64.03", "nvidia-smi")
    m = machine.resolve(None, "580.65.06", lambda cmd: (0, smi))
    assert (m.cc, m.driver, m.source) == ((12, 0), Version.parse("580.65.06"), "flags+nvidia-smi")
    m = machine.resolve("H100", "570.195.03", lambda cmd: pytest.fail("nvidia-smi asked though both were given"))
    assert m.cc == (9, 0)
    with pytest.raises(UsageError, match="--gpu and --driver: not given, and nvidia-smi is not here"):
        machine.resolve(None, None, lambda cmd: (127, ""))


def fake_nvidia_smi(bin_dir: Path, output: str, code: int = 0) -> None:
    """An `nvidia-smi` on PATH that prints `output` (what the real one prints for the query fawheels makes)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    exe = bin_dir / "nvidia-smi"
    exe.write_text(f"#!/bin/sh\ncat <<'EOF'\n{output}EOF\nexit {code}\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)


@pytest.mark.tools
def test_compat_asks_nvidia_smi_when_no_gpu_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_nvidia_smi(tmp_path / "bin", SMI["pro6000-570"])
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    so = elfs.write_extension(tmp_path / "_vllm_fa2_C.abi3.so", modules=2)
    assert cli.main(["compat", str(so)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("GPU 12.0 (NVIDIA RTX PRO 6000 Blackwell Workstation Edition, from nvidia-smi), driver 570")
