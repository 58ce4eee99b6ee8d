"""On a GPU: a built vllm-fa2 wheel's `varlen_fwd` and `fwd_kvcache` against a float32 reference, called the way
vLLM's flash_attn_interface calls them (positional, dummy cu_seqlens_k with paged KV, `out=`).

Runs where a wheel is named by FAWHEELS_VLLM_FA2_WHEEL (the GPU machine builds one offline first; see
bench/vllm-fa2-gpu.md); skipped without a GPU or a wheel. FA2's own tests accept an output whose error
against the float32 reference is at most twice that of the same attention computed in the input precision
(plus a small absolute slack); that is the bar here too. FAWHEELS_GPU_FIGURES names a JSON file for the figures.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from itertools import accumulate
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
from support.attention_ref import paged_cache, reference  # noqa: E402  (needs torch)
from support.built import skip_unless_built  # noqa: E402

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU"),
    pytest.mark.skipif(not os.environ.get("FAWHEELS_VLLM_FA2_WHEEL"), reason="FAWHEELS_VLLM_FA2_WHEEL names no wheel"),
]

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
FIGURES: list[dict[str, Any]] = []
WHEEL = Path(os.environ.get("FAWHEELS_VLLM_FA2_WHEEL", "-"))


@pytest.fixture(scope="module")
def ops(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with zipfile.ZipFile(WHEEL) as zf:
        member = next(n for n in zf.namelist() if n.endswith("_vllm_fa2_C.abi3.so"))
        so = tmp_path_factory.mktemp("so") / "_vllm_fa2_C.abi3.so"
        so.write_bytes(zf.read(member))
    torch.ops.load_library(str(so))
    yield torch.ops._vllm_fa2_C
    if out := os.environ.get("FAWHEELS_GPU_FIGURES"):
        Path(out).write_text(json.dumps(FIGURES, indent=2) + "\n")


def judge(name: str, dtype: str, out: Any, ref32: Any, reflow: Any, **extra: Any) -> None:
    err = (out.float() - ref32).abs().max().item()
    base = (reflow - ref32).abs().max().item()
    ok = err <= 2 * base + 1e-5
    FIGURES.append(
        {"case": name, "dtype": dtype, "max_abs_err": err, "torch_same_precision_err": base, "ok": ok, **extra}
    )
    print(f"{name:44s} {dtype}  max|out-ref32| {err:.2e}  (torch in {dtype}: {base:.2e})  {'ok' if ok else 'FAIL'}")
    assert ok, f"{name} {dtype}: max abs error {err} > 2 x {base} + 1e-5"


def paged(ks: list[Any], vs: list[Any], gen: Any, page: int = 256) -> tuple[Any, Any, Any]:
    """Each sequence's K and V rows in shuffled pages of `page` tokens (unused slots NaN), two spare pages."""
    return paged_cache(ks, vs, page, sum(math.ceil(k.shape[0] / page) for k in ks) + 2, gen)


def vllm_varlen(
    ops: Any,
    q: Any,
    k: Any,
    v: Any,
    out: Any,
    cu_q: Any,
    cu_k: Any,
    seqused_k: Any,
    block_table: Any,
    alibi: Any,
    max_q: int,
    max_k: int,
    scale: float,
    causal: bool,
    window: tuple[int, int],
    softcap: float,
) -> Any:
    """Exactly vLLM's call (flash_attn_interface.flash_attn_varlen_func, fa_version=2)."""
    return ops.varlen_fwd(
        q,
        k,
        v,
        out,
        cu_q,
        cu_k,
        seqused_k,
        None,
        block_table,
        alibi,
        max_q,
        max_k,
        0.0,
        scale,
        False,
        causal,
        window[0],
        window[1],
        softcap,
        False,
        0,
        None,
    )


def with_pages(cases: list[tuple[Any, ...]], paged: int, pages: list[int]) -> list[tuple[tuple[Any, ...], int]]:
    """Each paged case once per page size; a contiguous case once (the page size does not apply to it)."""
    return [(c, p) for c in cases for p in (pages if c[paged] else [256])]


def case_id(value: object) -> str:
    return str(value[0]) if isinstance(value, tuple) else f"page{value}"


CASES = [  # name, q lens, k lens, hq, hk, causal, window, paged, alibi, softcap
    ("prefill causal GQA 16/4", [17, 128, 300], [17, 128, 300], 16, 4, True, (-1, -1), False, False, 0.0),
    ("prefill non-causal MHA", [64, 200], [64, 200], 8, 8, False, (-1, -1), False, False, 0.0),
    ("prefill sliding window 64 GQA", [300, 97], [300, 97], 16, 2, True, (64, 0), False, False, 0.0),
    ("prefill ALiBi + softcap 30", [128, 50], [128, 50], 8, 2, True, (-1, -1), False, True, 30.0),
    ("chunked prefill over paged KV", [33, 70], [600, 300], 16, 4, True, (-1, -1), True, False, 0.0),
    ("decode paged GQA 32/8", [1, 1, 1, 1], [1000, 37, 513, 256], 32, 8, True, (-1, -1), True, False, 0.0),
    ("decode paged sliding window 128", [1, 1, 1], [900, 77, 300], 16, 4, True, (128, 0), True, False, 0.0),
    # a prefill of >= 128 queries sends a paged batch through the forward kernel, its decodes through a second
    # launch that packs each token's query heads (patch 0006); with a window too
    ("mixed decodes + prefill GQA 32/8", [1, 1, 130, 1], [700, 33, 400, 999], 32, 8, True, (-1, -1), True, False, 0),
    ("mixed with sliding window 100", [1, 200, 1], [500, 300, 90], 16, 4, True, (100, 0), True, False, 0.0),
    ("prefill 300 paged, softcap 20", [300, 129], [300, 700], 16, 2, True, (-1, -1), True, False, 20.0),
    # the paged forward kernels are built without ALiBi: a paged ALiBi prefill keeps the split-KV route
    ("prefill 200 paged, ALiBi", [200, 40], [200, 300], 8, 2, True, (-1, -1), True, True, 0.0),
]


@pytest.mark.parametrize("dtype", sorted(DTYPES))
@pytest.mark.parametrize(("case", "page"), with_pages(CASES, 7, [16, 256]), ids=case_id)
def test_varlen_fwd_matches_float32(ops: Any, case: tuple[Any, ...], dtype: str, page: int) -> None:
    name, qlens, klens, hq, hk, causal, window, is_paged, use_alibi, softcap = case
    skip_unless_built(WHEEL, 128, dtype)
    gen = torch.Generator().manual_seed(0)
    dt = DTYPES[dtype]
    d = 128
    qs = [torch.randn(n, hq, d, generator=gen).to(dt).cuda() for n in qlens]
    ks = [torch.randn(n, hk, d, generator=gen).to(dt).cuda() for n in klens]
    vs = [torch.randn(n, hk, d, generator=gen).to(dt).cuda() for n in klens]
    alibi = (torch.rand(hq, generator=gen) * 0.3).cuda() if use_alibi else None
    q = torch.cat(qs)
    cu_q = torch.tensor([0, *accumulate(qlens)], dtype=torch.int32, device="cuda")
    if is_paged:  # vLLM: seqused_k + block_table, and an uninitialised cu_seqlens_k it never reads
        k, v, table = paged(ks, vs, gen, page)
        cu_k = torch.empty_like(cu_q)
        seqused = torch.tensor(klens, dtype=torch.int32, device="cuda")
    else:
        k, v, table, seqused = torch.cat(ks), torch.cat(vs), None, None
        cu_k = torch.tensor([0, *accumulate(klens)], dtype=torch.int32, device="cuda")
    out = torch.full_like(q, float("nan"))
    result, lse = vllm_varlen(
        ops, q, k, v, out, cu_q, cu_k, seqused, table, alibi, max(qlens), max(klens), d**-0.5, causal, window, softcap
    )
    assert result.data_ptr() == out.data_ptr()  # out= is written in place, as vLLM relies on
    refs = [
        reference(qi, ki, vi, causal=causal, window=window, alibi=alibi, softcap=softcap)
        for qi, ki, vi in zip(qs, ks, vs, strict=True)
    ]
    lows = [
        reference(qi, ki, vi, causal=causal, window=window, alibi=alibi, softcap=softcap, dtype=dt)[0]
        for qi, ki, vi in zip(qs, ks, vs, strict=True)
    ]
    ref32 = torch.cat([r[0] for r in refs])
    lse_err = None
    # Every route's LSE, the swapped decode's included (patch 0006); with causal ALiBi FA2 adds slope * column,
    # not slope * distance: same softmax, an lse shifted by a per-row constant.
    if alibi is None:
        lse_err = (lse - torch.cat([r[1] for r in refs], dim=1)).abs().max().item()
        assert lse_err < 1e-3, f"{name}: softmax_lse {lse_err} off"
    judge(
        f"varlen_fwd {name}" + (f" page {page}" if is_paged else ""),
        dtype,
        out,
        ref32,
        torch.cat(lows),
        lse_max_abs_err=lse_err,
    )


KV_CASES = [  # name, batch, seqlen_q, cache lens, hq, hk, causal, window, paged
    ("decode paged GQA 32/8", 3, 1, [1000, 37, 513], 32, 8, True, (-1, -1), True),
    ("speculative 4 tokens paged", 2, 4, [700, 260], 16, 4, True, (-1, -1), True),
    ("decode contiguous cache, window 100", 3, 1, [400, 90, 333], 16, 2, True, (100, 0), False),
]


@pytest.mark.parametrize("dtype", sorted(DTYPES))
@pytest.mark.parametrize(("case", "page"), with_pages(KV_CASES, 8, [16, 64, 256]), ids=case_id)
def test_fwd_kvcache_matches_float32(ops: Any, case: tuple[Any, ...], dtype: str, page: int) -> None:
    name, batch, sq, lens, hq, hk, causal, window, is_paged = case
    skip_unless_built(WHEEL, 128, dtype)
    gen = torch.Generator().manual_seed(1)
    dt = DTYPES[dtype]
    d = 128
    q = torch.randn(batch, sq, hq, d, generator=gen).to(dt).cuda()
    ks = [torch.randn(n, hk, d, generator=gen).to(dt).cuda() for n in lens]
    vs = [torch.randn(n, hk, d, generator=gen).to(dt).cuda() for n in lens]
    if is_paged:
        kcache, vcache, table = paged(ks, vs, gen, page)
    else:
        table = None
        kcache = torch.zeros(batch, max(lens), hk, d, dtype=dt, device="cuda")
        vcache = torch.zeros_like(kcache)
        for b in range(batch):
            kcache[b, : lens[b]], vcache[b, : lens[b]] = ks[b], vs[b]
    seqlens = torch.tensor(lens, dtype=torch.int32, device="cuda")
    out = torch.full_like(q, float("nan"))
    result, lse = ops.fwd_kvcache(
        q,
        kcache,
        vcache,
        None,
        None,
        seqlens,
        None,
        None,
        None,
        None,
        table,
        None,
        out,
        d**-0.5,
        causal,
        window[0],
        window[1],
        0.0,
        False,
        0,
    )
    assert result.data_ptr() == out.data_ptr()
    refs = [reference(q[b], ks[b], vs[b], causal=causal, window=window) for b in range(batch)]
    ref32 = torch.stack([r[0] for r in refs])
    low = torch.stack([reference(q[b], ks[b], vs[b], causal=causal, window=window, dtype=dt)[0] for b in range(batch)])
    lse_err = (lse.reshape(batch, hq, sq) - torch.stack([r[1] for r in refs])).abs().max().item()
    assert lse_err < 1e-3, f"fwd_kvcache {name}: softmax_lse {lse_err} off"
    label = f"fwd_kvcache {name}" + (f" page {page}" if is_paged else "")
    judge(label, dtype, out, ref32, low, lse_max_abs_err=lse_err)


def test_sparse_ops_are_registered_but_say_they_are_not_built(ops: Any) -> None:
    q = torch.zeros(1, 1, 8, 128, dtype=torch.bfloat16, device="cuda")
    with pytest.raises(RuntimeError, match="sparse kernels are not in it"):
        ops.fwd_sparse(q, q, q, q, q, q, q, None, None, 0.0, 1.0, False, 0.0, False, None)
