"""GPU smoke test and benchmark of a built FA2 wheel: every kernel of its profile against a float32 reference,
and kernel throughput against torch's own flash backend.

Runs in an interpreter where the wheel is importable (`fawheels smoke WHEEL` installs it into a fresh
directory on top of the machine's torch). Needs a CUDA GPU; refuses a wheel that `compat` says cannot load on it.
"""

from __future__ import annotations

import functools
import json
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from fawheels._util import jsondoc
from fawheels._util.show import say

# Max |ours - fp32 reference| accepted, per dtype: FA2's own tests allow a few ulps of the output dtype.
REPORT_SCHEMA = 1  # `smoke --report FILE` and its stdout: {schema, device, …, cases, bench, ok}
TOLERANCE = {"fp16": 1e-2, "bf16": 3e-2}


@dataclass(frozen=True)
class Case:
    name: str
    dtype: str
    head_dim: int
    causal: bool
    split: bool
    max_abs_err: float
    ok: bool
    detail: str = ""


def _torch() -> Any:
    import torch

    return torch


def reference_attention(q: Any, k: Any, v: Any, causal: bool, window: tuple[int, int], softcap: float) -> Any:
    """fp32 attention for one sequence: q [sq, h, d], k/v [sk, hk, d] (GQA by repeating KV heads)."""
    torch = _torch()
    sq, h, d = q.shape
    sk, hk, _ = k.shape
    qf, kf, vf = (t.float() for t in (q, k, v))
    kf = kf.repeat_interleave(h // hk, dim=1)
    vf = vf.repeat_interleave(h // hk, dim=1)
    scores = torch.einsum("qhd,khd->hqk", qf, kf) / math.sqrt(d)
    if softcap > 0:
        scores = softcap * torch.tanh(scores / softcap)
    # Bottom-right aligned, as FA2: query i sees keys j with i + sk - sq - left <= j <= i + sk - sq + right.
    qi = torch.arange(sq, device=q.device)[:, None] + (sk - sq)
    kj = torch.arange(sk, device=q.device)[None, :]
    left, right = window
    if causal:
        right = 0
    mask = torch.zeros(sq, sk, dtype=torch.bool, device=q.device)
    if right >= 0:
        mask |= kj > qi + right
    if left >= 0:
        mask |= kj < qi - left
    scores = scores.masked_fill(mask[None], float("-inf"))
    probs = torch.softmax(scores, dim=-1).nan_to_num(0.0)
    return torch.einsum("hqk,khd->qhd", probs, vf)


@dataclass(frozen=True)
class AttentionApi:
    """The three calls the smoke checks make, in flash_attn's Python spelling: flash_attn's own functions for an
    `fa2` wheel; for a `vllm-fa2` wheel (no Python package, only `_vllm_fa2_C`) the same calls on its ops, with
    the positional arguments vLLM's flash_attn_interface passes."""

    varlen: Callable[
        ..., Any
    ]  # flash_attn_varlen_func(q, k, v, cu_q, cu_k, max_q, max_k, causal=, window_size=, softcap=)
    kvcache: Callable[..., Any]  # flash_attn_with_kvcache(q, k_cache, v_cache, cache_seqlens=, block_table=, causal=)
    dense: Callable[..., Any]  # flash_attn_func(q, k, v, causal=)


def flash_attn_api() -> AttentionApi:
    from flash_attn import flash_attn_func, flash_attn_varlen_func, flash_attn_with_kvcache

    return AttentionApi(flash_attn_varlen_func, flash_attn_with_kvcache, flash_attn_func)


def vllm_ops_api(ops: Any, empty_like: Callable[[Any], Any], cu_seqlens: Callable[[int, int], Any]) -> AttentionApi:
    """`ops` = torch.ops._vllm_fa2_C; `cu_seqlens(batch, seqlen)` = the int32 offsets of a uniform batch."""

    def varlen(
        q: Any,
        k: Any,
        v: Any,
        cu_q: Any,
        cu_k: Any,
        max_q: int,
        max_k: int,
        causal: bool = False,
        window_size: tuple[int, int] = (-1, -1),
        softcap: float = 0.0,
    ) -> Any:
        out = empty_like(q)
        ops.varlen_fwd(
            q, k, v, out, cu_q, cu_k, None, None, None, None, max_q, max_k, 0.0, q.shape[-1] ** -0.5,
            False, causal, window_size[0], window_size[1], softcap, False, 0, None,
        )  # fmt: skip
        return out

    def kvcache(q: Any, k_cache: Any, v_cache: Any, *, cache_seqlens: Any, block_table: Any, causal: bool) -> Any:
        out = empty_like(q)
        ops.fwd_kvcache(
            q, k_cache, v_cache, None, None, cache_seqlens, None, None, None, None, block_table, None, out,
            q.shape[-1] ** -0.5, causal, -1, -1, 0.0, False, 0,
        )  # fmt: skip
        return out

    def dense(q: Any, k: Any, v: Any, causal: bool = False) -> Any:
        b, s = q.shape[0], q.shape[1]
        cu = cu_seqlens(b, s)
        flat = [t.reshape(b * s, *t.shape[2:]) for t in (q, k, v)]
        return varlen(flat[0], flat[1], flat[2], cu, cu, s, s, causal=causal).view(q.shape)

    return AttentionApi(varlen, kvcache, dense)


def vllm_extension_api() -> AttentionApi:
    """The installed wheel's `_vllm_fa2_C` (found on sys.path, as the smoke env installs it), loaded as torch ops."""
    import sys
    from pathlib import Path

    torch = _torch()
    so = next(p for d in sys.path if (p := Path(d) / "vllm" / "vllm_flash_attn" / "_vllm_fa2_C.abi3.so").is_file())
    torch.ops.load_library(str(so))
    return vllm_ops_api(
        torch.ops._vllm_fa2_C,
        torch.empty_like,
        lambda b, s: torch.arange(0, (b + 1) * s, s, dtype=torch.int32, device="cuda"),
    )


@functools.cache
def _api(recipe: str) -> AttentionApi:
    return vllm_extension_api() if recipe == "vllm-fa2" else flash_attn_api()


_RECIPE = ["fa2"]  # the recipe of the wheel under test (main_in_env sets it from build-info.json)


def api() -> AttentionApi:
    return _api(_RECIPE[0])


def _dtype(name: str) -> Any:
    torch = _torch()
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[name]


def check_varlen(
    dtype: str,
    head_dim: int,
    causal: bool,
    *,
    window: tuple[int, int] = (-1, -1),
    softcap: float = 0.0,
    heads: int = 16,
    kv_heads: int = 4,
) -> float:
    """Variable-length prefill of three sequences with GQA; returns the max abs error."""
    torch = _torch()
    flash_attn_varlen_func = api().varlen

    lens = [113, 256, 77]
    cu = torch.tensor([0, *torch.tensor(lens).cumsum(0).tolist()], dtype=torch.int32, device="cuda")
    total = sum(lens)
    g = torch.Generator(device="cuda").manual_seed(0)
    q = torch.randn(total, heads, head_dim, device="cuda", dtype=_dtype(dtype), generator=g)
    k = torch.randn(total, kv_heads, head_dim, device="cuda", dtype=_dtype(dtype), generator=g)
    v = torch.randn(total, kv_heads, head_dim, device="cuda", dtype=_dtype(dtype), generator=g)
    out = flash_attn_varlen_func(
        q, k, v, cu, cu, max(lens), max(lens), causal=causal, window_size=window, softcap=softcap
    )
    err = 0.0
    for i in range(len(lens)):
        s, e = int(cu[i]), int(cu[i + 1])
        ref = reference_attention(q[s:e], k[s:e], v[s:e], causal, window, softcap)
        err = max(err, (out[s:e].float() - ref).abs().max().item())
    return err


def check_paged_decode(
    dtype: str, head_dim: int, causal: bool, *, heads: int = 32, kv_heads: int = 8, block: int = 256
) -> float:
    """Decode (1 query token) over a paged KV cache with GQA: the split-KV kernels."""
    torch = _torch()
    flash_attn_with_kvcache = api().kvcache

    batch, max_blocks = 4, 8
    seqlens = torch.tensor([1000, 37, 2048, 513], dtype=torch.int32, device="cuda")
    g = torch.Generator(device="cuda").manual_seed(1)
    num_blocks = batch * max_blocks
    k_cache = torch.randn(num_blocks, block, kv_heads, head_dim, device="cuda", dtype=_dtype(dtype), generator=g)
    v_cache = torch.randn(num_blocks, block, kv_heads, head_dim, device="cuda", dtype=_dtype(dtype), generator=g)
    block_table = torch.randperm(num_blocks, device="cuda", generator=g).to(torch.int32).view(batch, max_blocks)
    q = torch.randn(batch, 1, heads, head_dim, device="cuda", dtype=_dtype(dtype), generator=g)
    out = flash_attn_with_kvcache(q, k_cache, v_cache, cache_seqlens=seqlens, block_table=block_table, causal=causal)
    err = 0.0
    for b in range(batch):
        n = int(seqlens[b])
        blocks = block_table[b, : (n + block - 1) // block].long()
        k = k_cache[blocks].reshape(-1, kv_heads, head_dim)[:n]
        v = v_cache[blocks].reshape(-1, kv_heads, head_dim)[:n]
        ref = reference_attention(q[b], k, v, causal, (-1, -1), 0.0)
        err = max(err, (out[b].float() - ref).abs().max().item())
    return err


# The checks of an optional FA2 feature: (name, varlen arguments, the feature as a profile's leave_out names it).
FEATURE_CHECKS: tuple[tuple[str, dict[str, Any], str], ...] = (
    ("varlen sliding window", {"window": (64, 0)}, "local"),
    ("varlen softcap", {"softcap": 30.0}, "softcap"),
)


def left_out(defines: list[str]) -> set[str]:
    """The features a build compiled away, from build-info.json's `flags.defines` (FLASHATTENTION_DISABLE_*)."""
    prefix = "FLASHATTENTION_DISABLE_"
    return {d.removeprefix(prefix).lower() for d in defines if d.startswith(prefix)}


def run_smoke(profile: dict[str, Any], defines: list[str]) -> list[Case]:
    """Every kernel of the profile (build-info.json's `profile`), plus one that was not compiled; a feature
    the build left out (`defines`) must be refused with FA2's own error instead."""
    cases: list[Case] = []
    absent = left_out(defines)
    for dtype in profile["dtypes"]:
        for head_dim in profile["head_dims"]:
            for causal in profile["causal"]:
                tol = TOLERANCE[dtype]
                checks: list[tuple[str, bool, Any]] = [("varlen prefill GQA", False, {})]
                for name, kwargs, feature in FEATURE_CHECKS:
                    # FA2 runs a sliding window through the non-causal kernel (Is_local): it needs that one too.
                    if feature == "local" and not (causal and False in profile["causal"]):
                        continue
                    if feature in absent:
                        cases.append(_check_refused(dtype, head_dim, causal, name, kwargs))
                    else:
                        checks.append((name, False, kwargs))
                if profile["split_kv"]:
                    checks.append(("paged decode GQA (split-KV)", True, None))
                for name, split, kwargs in checks:
                    try:
                        err = (
                            check_paged_decode(dtype, head_dim, causal)
                            if split
                            else check_varlen(dtype, head_dim, causal, **kwargs)
                        )
                    except RuntimeError as exc:  # a failing case is a result, not the end of the run
                        cases.append(
                            Case(name, dtype, head_dim, causal, split, math.inf, False, str(exc).splitlines()[0][:200])
                        )
                        continue
                    cases.append(Case(name, dtype, head_dim, causal, split, err, err <= tol))
    cases.append(_check_missing_kernel(profile))
    return cases


def _check_refused(dtype: str, head_dim: int, causal: bool, name: str, kwargs: dict[str, Any]) -> Case:
    """A call that needs a left-out feature raises FA2's `does not support` error, not a wrong answer."""
    try:
        check_varlen(dtype, head_dim, causal, **kwargs)
    except RuntimeError as exc:
        message = str(exc).splitlines()[0][:200]
        return Case(f"{name} refused", dtype, head_dim, causal, False, 0.0, "does not support" in message, message)
    return Case(f"{name} refused", dtype, head_dim, causal, False, 0.0, False, "no error raised")


def _check_missing_kernel(profile: dict[str, Any]) -> Case:
    """A head dim the profile did not compile must raise a clear Python error, not crash."""
    torch = _torch()
    flash_attn_func = api().dense

    missing = next(d for d in (64, 96, 256, 32, 192, 128) if d not in profile["head_dims"])
    q = torch.randn(1, 16, 4, missing, device="cuda", dtype=_dtype(profile["dtypes"][0]))
    try:
        flash_attn_func(q, q, q, causal=True)
    except RuntimeError as exc:
        ok = "this build has no" in str(exc)
        return Case(
            "uncompiled kernel raises",
            profile["dtypes"][0],
            missing,
            True,
            False,
            0.0,
            ok,
            str(exc).splitlines()[0][:200],
        )
    return Case("uncompiled kernel raises", profile["dtypes"][0], missing, True, False, 0.0, False, "no error raised")


# ----------------------------------------------------------------------------- benchmark (--bench)
# Kernel-only timing: LAUNCHES back-to-back calls between two CUDA events (no host synchronization inside),
# REPEATS such measurements per side, the two sides interleaved; min / median / max of the per-call times.
# The machine's own ceilings are measured in the same run: a large bf16 matmul (TFLOP/s) and a large
# device-to-device copy (TB/s), so every figure can be read as a share of what this GPU reaches.
LAUNCHES = 20
REPEATS = 9
WARMUP = 5
BENCH_SHAPES = [  # name, batch, q len, kv len, q heads, kv heads, causal (head dim 128)
    ("prefill b8 s4096 h32 kv8 d128 causal", 8, 4096, 4096, 32, 8, True),
    ("prefill b8 s4096 h32 kv32 d128 causal", 8, 4096, 4096, 32, 32, True),
    ("decode b64 q1 k4096 h32 kv8 d128", 64, 1, 4096, 32, 8, False),
    ("decode b16 q1 k32768 h32 kv8 d128", 16, 1, 32768, 32, 8, False),
]


def kernel_ms(fn: Callable[[], Any], launches: int = LAUNCHES) -> float:
    """Milliseconds per call of `launches` back-to-back calls, timed on the GPU between two events."""
    torch = _torch()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(launches):
        fn()
    end.record()
    end.synchronize()
    return float(start.elapsed_time(end)) / launches


def spread(values: list[float], digits: int = 4) -> dict[str, float]:
    return {
        "min": round(min(values), digits),
        "median": round(statistics.median(values), digits),
        "max": round(max(values), digits),
    }


def interleaved(fns: dict[str, Callable[[], Any]], repeats: int = REPEATS) -> dict[str, list[float]]:
    """Per-call ms of each function, REPEATS times, the functions taking turns (clocks and heat hit all alike)."""
    torch = _torch()
    for fn in fns.values():
        for _ in range(WARMUP):
            fn()
    torch.cuda.synchronize()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(kernel_ms(fn))
    return times


def gpu_state() -> dict[str, str]:
    """Name, driver, clocks, power and temperature of GPU 0 now (nvidia-smi), for the record."""
    from fawheels._util import gpu

    fields = [
        "name",
        "driver_version",
        "clocks.sm",
        "clocks.max.sm",
        "clocks.mem",
        "clocks.max.mem",
        "power.draw",
        "power.limit",
        "temperature.gpu",
        "persistence_mode",
        "compute_mode",
    ]
    try:
        first = gpu.rows(gpu.query(fields), fields)[0]
    except gpu.NvidiaSmiError as exc:
        return {"error": str(exc)}
    except (ValueError, IndexError) as exc:
        return {"error": f"nvidia-smi: {exc}"}
    return dict(zip(fields, first, strict=True))


def ceilings() -> dict[str, Any]:
    """What this GPU reaches in this run: dense bf16 matmul 8192^3 and a 2 GiB device-to-device copy."""
    torch = _torch()
    n = 8192
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    c = torch.empty(n, n, device="cuda", dtype=torch.bfloat16)
    src = torch.empty(1 << 30, device="cuda", dtype=torch.int16)  # 2 GiB
    dst = torch.empty_like(src)
    t = interleaved({"matmul": lambda: torch.matmul(a, b, out=c), "copy": lambda: dst.copy_(src)})
    flops, moved = 2 * n**3, 2 * src.numel() * src.element_size()  # a copy reads and writes every byte
    best_mm, best_cp = min(t["matmul"]), min(t["copy"])
    return {
        "matmul_bf16": {
            "shape": f"{n}x{n}x{n}",
            "ms": spread(t["matmul"]),
            "tflops_best": round(flops / best_mm / 1e9, 1),
            "tflops_median": round(flops / statistics.median(t["matmul"]) / 1e9, 1),
        },
        "copy_d2d": {
            "bytes": src_bytes_label(moved),
            "ms": spread(t["copy"]),
            "tbps_best": round(moved / best_cp / 1e9, 3),
            "tbps_median": round(moved / statistics.median(t["copy"]) / 1e9, 3),
        },
    }


def src_bytes_label(moved: int) -> str:
    return f"{moved / 2**30:.0f} GiB moved (read + write)"


def attention_work(b: int, sq: int, sk: int, h: int, hk: int, d: int, causal: bool, elem: int = 2) -> tuple[float, int]:
    """FLOPs (QK^T and PV, 2 multiply-adds each; causal: only the unmasked part) and the bytes that must
    cross HBM at least once (Q, K, V read, O written)."""
    # Causal, bottom-right aligned: query i sees keys j <= i + sk - sq.
    visible = sum(max(0, min(sk, i + sk - sq + 1)) for i in range(sq)) if causal else sq * sk
    flops = 4.0 * b * h * d * visible
    moved = elem * d * (2 * b * sq * h + 2 * b * sk * hk)
    return flops, moved


def bench(dtype: str = "bf16") -> dict[str, Any]:
    """Ours vs torch's SDPA flash backend on the same shapes, GQA given to both natively (torch:
    enable_gqa=True), kernel-only timing; plus this GPU's ceilings and state, measured in the same run."""
    torch = _torch()
    from flash_attn import flash_attn_func, flash_attn_with_kvcache
    from torch.nn.attention import SDPBackend, sdpa_kernel

    state_before = gpu_state()
    ceiling = ceilings()
    torch.cuda.empty_cache()
    peak_tflops, peak_tbps = ceiling["matmul_bf16"]["tflops_best"], ceiling["copy_d2d"]["tbps_best"]
    rows = []
    for name, b, sq, sk, h, hk, causal in BENCH_SHAPES:
        dt = _dtype(dtype)
        q = torch.randn(b, sq, h, 128, device="cuda", dtype=dt)
        k = torch.randn(b, sk, hk, 128, device="cuda", dtype=dt)
        v = torch.randn(b, sk, hk, 128, device="cuda", dtype=dt)
        qt, kt, vt = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)

        def torch_flash(qt: Any = qt, kt: Any = kt, vt: Any = vt, causal: bool = causal, gqa: bool = hk != h) -> Any:
            with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                return torch.nn.functional.scaled_dot_product_attention(qt, kt, vt, is_causal=causal, enable_gqa=gqa)

        ours: Callable[[], Any]
        if sq == 1:
            seqlens = torch.full((b,), sk, dtype=torch.int32, device="cuda")
            ours = functools.partial(flash_attn_with_kvcache, q, k, v, cache_seqlens=seqlens)
        else:
            ours = functools.partial(flash_attn_func, q, k, v, causal=causal)
        flops, moved = attention_work(b, sq, sk, h, hk, 128, causal)
        row: dict[str, Any] = {"shape": name, "flops": flops, "min_bytes": moved}
        try:
            t = interleaved({"ours": ours, "torch_flash": torch_flash})
        except RuntimeError as exc:  # e.g. a torch whose flash backend refuses GQA: say so, keep going
            row["error"] = str(exc).splitlines()[0][:300]
            rows.append(row)
            continue
        for side in ("ours", "torch_flash"):
            best, med = min(t[side]), statistics.median(t[side])
            row[side] = {
                "ms": spread(t[side]),
                "tflops_median": round(flops / med / 1e9, 1),
                "tbps_median": round(moved / med / 1e9, 3),
                "share_of_matmul_ceiling": round(flops / best / 1e9 / peak_tflops, 3),
                "share_of_copy_ceiling": round(moved / best / 1e9 / peak_tbps, 3),
            }
        row["torch_over_ours_median"] = round(statistics.median(t["torch_flash"]) / statistics.median(t["ours"]), 3)
        row["torch_over_ours_best"] = round(min(t["torch_flash"]) / min(t["ours"]), 3)
        rows.append(row)
        del q, k, v, qt, kt, vt
        torch.cuda.empty_cache()
    return {
        "method": f"kernel-only: {LAUNCHES} back-to-back calls between two CUDA events per sample, "
        f"{REPEATS} samples per side after {WARMUP} warm-up calls, sides interleaved; "
        "GQA passed natively to both (torch: enable_gqa=True under SDPBackend.FLASH_ATTENTION)",
        "dtype": dtype,
        "torch": torch.__version__,
        "gpu_before": state_before,
        "ceilings": ceiling,
        "rows": rows,
        "gpu_after": gpu_state(),
    }


def main_in_env(build_info_json: str) -> int:
    """Entry point in the smoke interpreter: prints one JSON document (cases, bench, device)."""
    torch = _torch()
    info = json.loads(build_info_json)
    _RECIPE[0] = info.get("recipe") or "fa2"
    started = time.monotonic()
    cases = run_smoke(info["profile"], list((info.get("flags") or {}).get("defines") or []))
    figures = bench(info["profile"]["dtypes"][0]) if "bench" in info.get("_smoke_mode", "") else {}
    say(
        jsondoc.dumps(
            {
                "schema": REPORT_SCHEMA,
                "device": torch.cuda.get_device_name(),
                "capability": list(torch.cuda.get_device_capability()),
                "torch": torch.__version__,
                "target": info["target"],
                "seconds": round(time.monotonic() - started, 1),
                "cases": [asdict(c) for c in cases],
                "bench": figures,
                "ok": all(c.ok for c in cases),
            }
        )
    )
    return 0 if all(c.ok for c in cases) else 1


# ----------------------------------------------------------------------------- host side (the gateway)


def present_gpu() -> tuple[tuple[int, int], str]:
    """Compute capability and driver version of GPU 0, from nvidia-smi."""
    from fawheels.check.machine import present

    found = present("smoke")
    return found.cc, found.driver


def smoke_command(wheel_arg: str, *, bench_too: bool, out: str | None) -> int:
    """Install WHEEL into a fresh directory on top of this machine's torch, then check every kernel."""
    import os
    import sys
    import tempfile
    from pathlib import Path

    from fawheels._util.errors import ToolchainError, VerifyError
    from fawheels._util.files import write_atomic
    from fawheels._util.runner import call, log, pip_install_into
    from fawheels._util.wheels import read_build_info
    from fawheels.check import compat
    from fawheels.matrix.cudafacts import Version

    wheel = Path(wheel_arg)
    try:
        info = read_build_info(wheel)
    except ValueError as exc:
        raise VerifyError(f"{exc}: not a fawheels wheel", hint="smoke a wheel from `fawheels build`") from exc
    cc, driver = present_gpu()
    report = compat.predict(compat.load_objects(str(wheel)), cc, Version.parse(driver))
    if not report.ok:
        raise VerifyError(
            f"{wheel.name} will not load on this GPU (sm_{cc[0]}{cc[1]}, driver {driver}):\n"
            + json.dumps(report.to_json(), indent=2)[:2000],
            hint="build a target whose archs include this GPU",
        )
    import torch

    pin = info["torch"]["requirement"].removeprefix("torch==").rstrip(".*")
    if not torch.__version__.startswith(pin + "."):
        raise ToolchainError(
            f"{wheel.name} needs torch {info['torch']['requirement']}, this machine has {torch.__version__}",
            hint="smoke a wheel built for this machine's torch",
        )
    with tempfile.TemporaryDirectory(prefix="fawheels-smoke-") as tmp:
        # A fresh install location on top of this interpreter, so the machine's torch is the one used
        # (a venv made from a venv would not see it).
        site = Path(tmp) / "site"
        pip_install_into(site, [wheel], what="pip install", index=False, quiet=True)
        info["_smoke_mode"] = "bench" if bench_too else ""
        package_parent = str(Path(__file__).resolve().parents[2])  # the folder that holds fawheels/
        env = {"PYTHONPATH": os.pathsep.join([str(site), package_parent])}
        code = "import sys; from fawheels.deploy.smoke import main_in_env; sys.exit(main_in_env(sys.argv[1]))"
        proc = call([sys.executable, "-c", code, json.dumps(info)], env=env, cwd=tmp, quiet=True)
    say(proc.stderr[-3000:], file=sys.stderr, end="")
    doc = (
        proc.stdout
        if proc.stdout.strip()
        else jsondoc.dumps(  # the checker died: say so, as JSON too
            {
                "schema": REPORT_SCHEMA,
                "ok": False,
                "exit": proc.returncode,
                "error": proc.stderr.strip().splitlines()[-1:] or [""],
            }
        )
    )
    say(doc)
    if out:
        write_atomic(Path(out), doc, mode=None)
    log(f"smoke {'passed' if proc.returncode == 0 else 'FAILED'} for {wheel.name}")
    return proc.returncode
