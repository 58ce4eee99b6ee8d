"""Decode over a paged KV cache with 16-token pages vs 256-token pages, same wheel, same work (issue 11).

Shapes: batch 64, context 4096, 32 query heads, 8 KV heads, head dim 128, bf16, vLLM's varlen_fwd call
(seqused_k + block_table, causal, num_splits 0). Pages are placed at random in the cache.
Timing is kernel-only, two ways: CUDA events around N back-to-back calls (the GPU never waits for the host: a
call takes far longer on the GPU than to launch), and the profiler's device time of the attention kernels
alone. R repetitions, the two page sizes interleaved in each, min/median/max per call.

Usage (on a GPU): python scripts/bench_paged_decode.py WHEEL OUT.json
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

BATCH, CONTEXT, HQ, HK, D = 64, 4096, 32, 8, 128
PAGES = (16, 256)
REPS, CALLS, WARMUP = 9, 50, 20


def load_ops(wheel: str) -> Any:
    with zipfile.ZipFile(wheel) as zf:
        member = next(n for n in zf.namelist() if n.endswith("_vllm_fa2_C.abi3.so"))
        so = Path(tempfile.mkdtemp()) / "_vllm_fa2_C.abi3.so"
        so.write_bytes(zf.read(member))
    torch.ops.load_library(str(so))
    return torch.ops._vllm_fa2_C


def decode_call(ops: Any, page: int, q: Any, k_seq: Any, v_seq: Any, gen: torch.Generator) -> Any:
    """vLLM's decode call over the same K/V rows (k_seq, v_seq: batch x context x heads x d) laid out in pages."""
    pages_per_seq = CONTEXT // page
    num_blocks = BATCH * pages_per_seq + 64
    table = torch.randperm(num_blocks, generator=gen)[: BATCH * pages_per_seq].view(BATCH, pages_per_seq).cuda()
    k = torch.zeros(num_blocks, page, HK, D, dtype=torch.bfloat16, device="cuda")
    v = torch.zeros_like(k)
    k[table.flatten()] = k_seq.reshape(BATCH * pages_per_seq, page, HK, D)
    v[table.flatten()] = v_seq.reshape(BATCH * pages_per_seq, page, HK, D)
    table = table.to(torch.int32)
    out = torch.empty_like(q)
    cu_q = torch.arange(BATCH + 1, dtype=torch.int32, device="cuda")
    cu_k = torch.empty_like(cu_q)
    seqused = torch.full((BATCH,), CONTEXT, dtype=torch.int32, device="cuda")

    def call() -> Any:
        return ops.varlen_fwd(
            q,
            k,
            v,
            out,
            cu_q,
            cu_k,
            seqused,
            None,
            table,
            None,
            1,
            CONTEXT,
            0.0,
            D**-0.5,
            False,
            True,
            -1,
            -1,
            0.0,
            False,
            0,
            None,
        )

    return call


def time_events(call: Any) -> float:
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(CALLS):
        call()
    end.record()
    end.synchronize()
    return float(start.elapsed_time(end)) * 1e3 / CALLS  # microseconds per call


def time_kernels(call: Any) -> float:
    """Device time of the attention kernels per call, from the profiler (no host time at all)."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for _ in range(CALLS):
            call()
        torch.cuda.synchronize()
    total = sum(e.device_time_total for e in prof.key_averages() if "flash" in e.key.lower())
    return float(total) / CALLS


def summary(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def main() -> int:
    wheel, out = sys.argv[1], Path(sys.argv[2])
    ops = load_ops(wheel)
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(BATCH, HQ, D, generator=gen).to(torch.bfloat16).cuda()
    k_seq, v_seq = (torch.randn(BATCH, CONTEXT, HK, D, generator=gen).to(torch.bfloat16).cuda() for _ in "kv")
    calls = {page: decode_call(ops, page, q, k_seq, v_seq, gen) for page in PAGES}
    ref = calls[256]()[0].clone()
    same = torch.equal(calls[16]()[0], ref)  # the same rows in other pages: the same numbers must come out
    for call in calls.values():
        for _ in range(WARMUP):
            call()
    torch.cuda.synchronize()
    events: dict[int, list[float]] = {p: [] for p in PAGES}
    kernels: dict[int, list[float]] = {p: [] for p in PAGES}
    for _ in range(REPS):
        for page in PAGES:  # interleaved: both page sizes see the same clocks and temperature
            events[page].append(time_events(calls[page]))
            kernels[page].append(time_kernels(calls[page]))
    kv_bytes = 2 * BATCH * CONTEXT * HK * D * 2
    result: dict[str, Any] = {
        "gpu": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "shape": {"batch": BATCH, "context": CONTEXT, "q_heads": HQ, "kv_heads": HK, "head_dim": D, "dtype": "bf16"},
        "reps": REPS,
        "calls_per_rep": CALLS,
        "kv_bytes_per_call": kv_bytes,
        "note": "outputs with 16- and 256-token pages are bitwise equal" if same else "OUTPUTS DIFFER",
    }
    for page in PAGES:
        ev, kn = summary(events[page]), summary(kernels[page])
        result[f"page{page}"] = {
            "events_us": ev,
            "kernel_us": kn,
            "tb_per_s_median": kv_bytes / (kn["median"] * 1e-6) / 1e12,
        }
    result["throughput_16_over_256_kernel"] = statistics.median(kernels[256]) / statistics.median(kernels[16])
    result["throughput_16_over_256_events"] = statistics.median(events[256]) / statistics.median(events[16])
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
