"""The seed failure on a real GPU, and its cure (needs a GPU and the two wheels; see scripts/gpu-seed.sh).

FAWHEELS_SEED_WHEEL: target fa2-cu132-torch2.11-sm80-ptx80-cp312-seed-ptx (sm_80 SASS + compute_80 PTX from
nvcc 13.2, vLLM's "8.0+PTX" shape); FAWHEELS_CURE_WHEEL: fa2-cu130-torch2.11-sm90-cp312-one-tu (sm_90 SASS).
FAWHEELS_GPU_FIGURES: where to write what was predicted and what happened.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fawheels.check import compat
from fawheels.matrix.cudafacts import Version

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not (os.environ.get("FAWHEELS_SEED_WHEEL") and os.environ.get("FAWHEELS_CURE_WHEEL")),
        reason="set FAWHEELS_SEED_WHEEL and FAWHEELS_CURE_WHEEL (on a GPU machine)",
    ),
]

FIRST_CALL = """
import torch
from flash_attn import flash_attn_func
q = torch.randn(1, 128, 8, 128, device="cuda", dtype=torch.bfloat16)
try:
    out = flash_attn_func(q, q, q, causal=True)
    torch.cuda.synchronize()
    print("OK", out.float().abs().mean().item())
except Exception as exc:
    print("ERROR", str(exc).splitlines()[0])
"""


def gpu() -> tuple[tuple[int, int], str]:
    from fawheels.deploy.smoke import present_gpu

    return present_gpu()


def first_call(wheel: str, tmp: Path) -> str:
    site = tmp / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(site), wheel],
        check=True,
    )
    proc = subprocess.run(
        [sys.executable, "-c", FIRST_CALL],
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        cwd=tmp,
    )
    return (proc.stdout.strip().splitlines() or [f"CRASH {proc.returncode}: {proc.stderr[-300:]}"])[-1]


def record(name: str, doc: dict[str, object]) -> None:
    if out := os.environ.get("FAWHEELS_GPU_FIGURES"):
        path = Path(out)
        data = json.loads(path.read_text()) if path.exists() else {}
        data[name] = doc
        path.write_text(json.dumps(data, indent=2))


def test_the_seed_wheel_fails_at_the_first_call_as_compat_predicted(tmp_path: Path) -> None:
    cc, driver = gpu()
    wheel = os.environ["FAWHEELS_SEED_WHEEL"]
    report = compat.predict(compat.load_objects(wheel), cc, Version.parse(driver))
    observed = first_call(wheel, tmp_path)
    record(
        "seed",
        {"wheel": Path(wheel).name, "gpu": cc, "driver": driver, "predicted": report.to_json(), "observed": observed},
    )
    assert not report.ok
    assert {p.error for p in report.predictions if not p.ok} == {"cudaErrorUnsupportedPtxVersion"}
    assert observed.startswith("ERROR") and "the provided PTX was compiled with an unsupported toolchain" in observed


def test_the_cure_loads_as_predicted_and_passes_smoke(tmp_path: Path) -> None:
    from fawheels.deploy.smoke import smoke_command

    cc, driver = gpu()
    wheel = os.environ["FAWHEELS_CURE_WHEEL"]
    report = compat.predict(compat.load_objects(wheel), cc, Version.parse(driver))
    observed = first_call(wheel, tmp_path)
    code = smoke_command(wheel, bench_too=False, out=str(tmp_path / "smoke.json"))
    record(
        "cure",
        {
            "wheel": Path(wheel).name,
            "gpu": cc,
            "driver": driver,
            "predicted": report.to_json(),
            "observed": observed,
            "smoke": json.loads((tmp_path / "smoke.json").read_text()),
        },
    )
    assert report.ok
    assert observed.startswith("OK")
    assert code == 0
