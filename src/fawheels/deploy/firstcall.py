"""The first attention call after process start: what a user of a wheel pays before the first token.

A wheel whose only code for the GPU is PTX (vLLM's "8.0+PTX" on an sm_120 card, or the same wheel on any GPU
its SASS does not cover) makes the driver compile that PTX when the kernel is first needed. The driver keeps
what it compiled in a JIT cache (~/.nv/ComputeCache), so only a cold cache shows the cost; each run here is a
fresh interpreter with `CUDA_CACHE_DISABLE=1`, i.e. the cost on a new machine, in a new container, or after
the cache was evicted. A last pair of runs uses a fresh cache directory with the cache on (first run fills
it, second reads it), to show what the cache saves.

Host side (`first_call_command`: `fawheels first-call`, also `scripts/first_call.py` and `nox -s first-call`):
installs the wheel into a fresh directory on top of this interpreter's torch, runs the child `RUNS` times,
prints one JSON document. Child side (`CHILD_SOURCE`): times `import torch` + CUDA init, `import flash_attn` (loads the
extension), the first `flash_attn_func` call (to the end of the kernel), and a second call.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fawheels._util import jsondoc
from fawheels._util.errors import FawheelsError, ToolchainError, UsageError
from fawheels._util.files import write_atomic
from fawheels._util.runner import log, pip_install_into, run
from fawheels._util.show import say
from fawheels._util.wheels import read_build_info

# The child: fresh interpreter, nothing imported before the clock starts. Shapes: one small causal bf16
# prefill with head dim 128, the kernel every fawheels profile has (one-tu: bf16, d128, causal).
CHILD_SOURCE = r"""
import json, os, time
t0 = time.perf_counter()
import torch
torch.cuda.init()
torch.empty(1, device="cuda")
torch.cuda.synchronize()
t1 = time.perf_counter()
import flash_attn
from flash_attn import flash_attn_func
t2 = time.perf_counter()
g = torch.Generator(device="cuda").manual_seed(0)
q, k, v = (torch.randn(1, 512, 16, 128, device="cuda", dtype=torch.bfloat16, generator=g) for _ in range(3))
torch.cuda.synchronize()
t3 = time.perf_counter()
out = flash_attn_func(q, k, v, causal=True)
torch.cuda.synchronize()
t4 = time.perf_counter()
out = flash_attn_func(q, k, v, causal=True)
torch.cuda.synchronize()
t5 = time.perf_counter()
print(json.dumps({"torch_and_cuda_init_s": t1 - t0, "import_flash_attn_s": t2 - t1, "first_call_s": t4 - t3,
                  "second_call_s": t5 - t4, "first_token_overhead_s": (t2 - t1) + (t4 - t3),
                  "finite": bool(torch.isfinite(out).all()),
                  "cuda_module_loading": os.environ.get("CUDA_MODULE_LOADING", "(driver default: LAZY)"),
                  "cache_disabled": os.environ.get("CUDA_CACHE_DISABLE", "") == "1"}))
"""

REPORT_SCHEMA = 1  # the document printed and written to --report
FIELDS = ("torch_and_cuda_init_s", "import_flash_attn_s", "first_call_s", "second_call_s", "first_token_overhead_s")


def summarize(runs: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """min / median / max of each timed field over the runs (seconds, 3 decimals)."""
    out: dict[str, dict[str, float]] = {}
    for name in FIELDS:
        values = [float(r[name]) for r in runs if name in r]
        if values:
            out[name] = {
                "min": round(min(values), 3),
                "median": round(statistics.median(values), 3),
                "max": round(max(values), 3),
            }
    return out


def parse_child_output(text: str) -> dict[str, Any]:
    """The child's JSON line (the last line that parses), or an error naming what it printed."""
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if isinstance(doc, dict):
                return doc
    raise FawheelsError("the first-call child printed no result:\n" + text[-2000:])


def _gpu() -> dict[str, str]:
    from fawheels.check.machine import present

    found = present("first-call")
    return {"name": found.name, "compute_capability": f"{found.cc[0]}.{found.cc[1]}", "driver": found.driver}


def first_call_command(wheel_arg: str, *, runs: int = 3, out: str | None = None) -> int:
    wheel = Path(wheel_arg)
    if runs < 1:
        raise UsageError(f"--runs must be >= 1, got {runs}")
    if not wheel.is_file():
        raise UsageError(f"{wheel}: no such wheel", hint="build it first (fawheels build TARGET_ID)")
    try:
        info = read_build_info(wheel)
    except ValueError as exc:
        raise UsageError(f"{wheel}: not a fawheels wheel (no readable build-info.json)") from exc
    gpu = _gpu()
    doc: dict[str, Any] = {
        "schema": REPORT_SCHEMA,
        "wheel": wheel.name,
        "target": info["target"],
        "archs": info["archs"],
        "nvcc": info["toolchain"]["nvcc"],
        "gpu": gpu,
        "python": sys.version.split()[0],
        "method": (
            "fresh interpreter per run; CUDA_CACHE_DISABLE=1; wall clock (time.perf_counter) around "
            "`import flash_attn` and around the first flash_attn_func(q, k, v, causal=True) on "
            "q/k/v [1, 512, 16, 128] bf16, each followed by torch.cuda.synchronize()"
        ),
        "runs_cache_disabled": [],
        "summary_cache_disabled": {},
        "cache_enabled_fresh_dir": {},
        "complete": False,
    }

    def save() -> None:  # after every run: a run cut short by a timeout still leaves what it measured
        if out:
            write_atomic(Path(out), jsondoc.dumps(doc) + "\n")

    with tempfile.TemporaryDirectory(prefix="fawheels-firstcall-") as tmp:
        site = Path(tmp) / "site"
        pip_install_into(site, [wheel], what="pip install", error=ToolchainError, index=False, quiet=True)
        base = {k: v for k, v in os.environ.items() if not k.startswith("CUDA_CACHE")}
        base["PYTHONPATH"] = str(site)

        def child(extra: dict[str, str]) -> dict[str, Any]:
            """One fresh process; a crash (a kernel image the driver cannot load) is a result, not the end."""
            try:
                text = run(
                    [sys.executable, "-c", CHILD_SOURCE],
                    env={**base, **extra},
                    capture=True,
                    quiet=True,
                    what="first-call child",
                    cwd=Path(tmp),
                )
                return parse_child_output(text)
            except FawheelsError as exc:
                return {"error": str(exc)[-1500:], "finite": False}

        cold: list[dict[str, Any]] = doc["runs_cache_disabled"]
        for i in range(runs):
            cold.append(child({"CUDA_CACHE_DISABLE": "1"}))
            doc["summary_cache_disabled"] = summarize(cold)
            save()
            last = cold[-1]
            log(
                f"  run {i + 1}/{runs} (JIT cache disabled): "
                + (
                    f"first call {last['first_call_s']:.3f} s, import {last['import_flash_attn_s']:.3f} s"
                    if "error" not in last
                    else f"FAILED: {last['error'].splitlines()[-1] if last['error'] else ''}"
                )
            )
        cache_dir = Path(tmp) / "jit-cache"
        cached: dict[str, Any] = doc["cache_enabled_fresh_dir"]
        for name in ("first_process", "second_process"):
            cached[name] = child({"CUDA_CACHE_DISABLE": "0", "CUDA_CACHE_PATH": str(cache_dir)})
            save()
    doc["complete"] = True
    save()
    say(jsondoc.dumps(doc))
    return 0 if all(r.get("finite") for r in [*cold, *cached.values()]) else 1
