"""On a GPU: our `_vllm_fa2_C` driven by vLLM's own `vllm/vllm_flash_attn/flash_attn_interface.py` (0.26.0, read
from its PyPI wheel), over vLLM's paged KV cache, against a float32 reference with vLLM's tolerance
(atol 1.5e-2, rtol 1e-2).

Grid (issue 11): pages of 16, 32 and 256 tokens (64 and 128 too), caches of 2,048 and 32,768 pages, softcap 0 and
50, no window and a 256-token window, GQA 8:2 and 4:4, `out=` given or not, mixed prefill + decode batches, bf16
and fp16, every head dim of the profile (a mixed batch and a pure decode in each FA2 bucket). Unused cache slots
are NaN, so a row read from a wrong page shows.
Also: `num_splits=1` makes a sequence's result independent of its batch and of the page size (bit for bit),
and a page size that is not a multiple of 16 is refused.

Needs FAWHEELS_VLLM_FA2_WHEEL (our wheel) and FAWHEELS_VLLM_INTERFACE (vLLM's file: `python
scripts/vllm_interface.py DEST` extracts it from the cached, sha256-pinned vLLM wheel); skipped otherwise.
FAWHEELS_GPU_FIGURES names a JSON file for the per-call errors and pass/fail counts.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

torch = pytest.importorskip("torch")
from support.attention_ref import paged_cache, reference  # noqa: E402  (needs torch)
from support.built import skip_unless_built  # noqa: E402
from support.vllm_site import make_site  # noqa: E402

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU"),
    pytest.mark.skipif(
        not (os.environ.get("FAWHEELS_VLLM_FA2_WHEEL") and os.environ.get("FAWHEELS_VLLM_INTERFACE")),
        reason="FAWHEELS_VLLM_FA2_WHEEL and FAWHEELS_VLLM_INTERFACE name no wheel / vLLM file",
    ),
]

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
ATOL, RTOL = 1.5e-2, 1e-2  # vLLM's tests/kernels/attention tolerances for its flash-attn backend
RESULTS: list[dict[str, Any]] = []
WHEEL = Path(os.environ.get("FAWHEELS_VLLM_FA2_WHEEL", "-"))


@pytest.fixture(scope="module")
def fai(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """vLLM's interface module, importing our extension as `vllm.vllm_flash_attn._vllm_fa2_C`."""
    root = make_site(
        tmp_path_factory.mktemp("site"),
        WHEEL,
        Path(os.environ["FAWHEELS_VLLM_INTERFACE"]),
    )
    sys.path.insert(0, str(root))
    import vllm.vllm_flash_attn.flash_attn_interface as module

    assert module.FA2_AVAILABLE, module.FA2_UNAVAILABLE_REASON
    assert module.is_fa_version_supported(2)
    yield module
    sys.path.remove(str(root))
    if out := os.environ.get("FAWHEELS_GPU_FIGURES"):
        passed = sum(r["ok"] for r in RESULTS)
        Path(out).write_text(
            json.dumps(
                {"calls": len(RESULTS), "passed": passed, "failed": len(RESULTS) - passed, "results": RESULTS}, indent=1
            )
            + "\n"
        )


def check(name: str, out: Any, ref: Any) -> str | None:
    """Record one call against vLLM's tolerance; the failure text, or None."""
    err = (out.float() - ref).abs()
    bad = err > ATOL + RTOL * ref.abs()
    ok = not bool(bad.any()) and not bool(out.isnan().any())
    RESULTS.append({"case": name, "max_abs_err": err.max().item(), "ok": ok})
    return None if ok else f"{name}: max |out - ref| {err.max().item():.3e}, {int(bad.sum())} elements out of tolerance"


class Batch:
    """One batch in vLLM's layout: q (total_q, hq, d) and its sequences' K/V in a paged cache."""

    def __init__(self, qs: list[Any], ks: list[Any], vs: list[Any], page: int, num_blocks: int, seed: int) -> None:
        self.qs, self.ks, self.vs = qs, ks, vs
        self.kc, self.vc, self.table = paged_cache(ks, vs, page, num_blocks, torch.Generator().manual_seed(seed))
        self.q = torch.cat(qs)
        self.cu_q = torch.tensor([0, *itertools.accumulate(q.shape[0] for q in qs)], dtype=torch.int32, device="cuda")
        self.seqused = torch.tensor([k.shape[0] for k in ks], dtype=torch.int32, device="cuda")
        self.max_q, self.max_k = max(q.shape[0] for q in qs), max(k.shape[0] for k in ks)

    @classmethod
    def random(
        cls,
        qlens: list[int],
        klens: list[int],
        hq: int,
        hk: int,
        d: int,
        dtype: Any,
        page: int,
        num_blocks: int,
        seed: int = 0,
    ) -> Batch:
        gen = torch.Generator().manual_seed(seed)
        qs = [torch.randn(n, hq, d, generator=gen).to(dtype).cuda() for n in qlens]
        ks = [torch.randn(n, hk, d, generator=gen).to(dtype).cuda() for n in klens]
        vs = [torch.randn(n, hk, d, generator=gen).to(dtype).cuda() for n in klens]
        return cls(qs, ks, vs, page, num_blocks, seed)

    def call(
        self,
        fai: ModuleType,
        *,
        softcap: float = 0.0,
        window: tuple[int, int] = (-1, -1),
        out: Any = None,
        num_splits: int = 0,
    ) -> Any:
        """What vLLM's FlashAttentionImpl does for a batch: causal, seqused_k + block_table, fa_version 2."""
        result = fai.flash_attn_varlen_func(
            q=self.q,
            k=self.kc,
            v=self.vc,
            out=out,
            cu_seqlens_q=self.cu_q,
            max_seqlen_q=self.max_q,
            seqused_k=self.seqused,
            max_seqlen_k=self.max_k,
            softmax_scale=self.q.shape[-1] ** -0.5,
            causal=True,
            window_size=list(window),
            block_table=self.table,
            softcap=softcap,
            num_splits=num_splits,
            fa_version=2,
        )
        return result

    def reference(self, *, softcap: float, window: tuple[int, int]) -> Any:
        return torch.cat(
            [
                reference(q, k, v, causal=True, window=window, softcap=softcap)[0]
                for q, k, v in zip(self.qs, self.ks, self.vs, strict=True)
            ]
        )


# Mixed prefill + decode: decode steps (1 query token) next to chunked prefill, over contexts that end inside
# a page, on a page boundary, and cross many pages.
QLENS = [1, 1, 7, 64, 1, 130]
KLENS = [1333, 17, 300, 64, 4100, 642]
GQA = {"8:2": (8, 2), "4:4": (4, 4)}
# Every FA2 bucket: 40 runs in 64's, 72 (Qwen3-VL's vision tower) in 96's.
HEAD_DIMS = [32, 40, 72, 96, 128, 192, 256]


@pytest.mark.parametrize("dtype", sorted(DTYPES))
@pytest.mark.parametrize("gqa", sorted(GQA))
@pytest.mark.parametrize("num_blocks", [2048, 32768])
@pytest.mark.parametrize("page", [16, 32, 256])
def test_vllm_varlen_over_paged_kv(fai: ModuleType, page: int, num_blocks: int, gqa: str, dtype: str) -> None:
    skip_unless_built(WHEEL, 128, dtype)
    hq, hk = GQA[gqa]
    batch = Batch.random(QLENS, KLENS, hq, hk, 128, DTYPES[dtype], page, num_blocks)
    failures = []
    for softcap, window, give_out in itertools.product([0.0, 50.0], [(-1, -1), (255, 0)], [True, False]):
        out = torch.full_like(batch.q, float("nan")) if give_out else None
        result = batch.call(fai, softcap=softcap, window=window, out=out)
        if out is not None:  # give_out
            assert result.data_ptr() == out.data_ptr(), "out= must be written in place (vLLM reads it, not the return)"
        name = (
            f"varlen page {page} blocks {num_blocks} gqa {gqa} {dtype} softcap {softcap:g} "
            f"window {window[0]} out {give_out}"
        )
        failures.append(check(name, result, batch.reference(softcap=softcap, window=window)))
    del batch
    torch.cuda.empty_cache()
    assert not [f for f in failures if f], [f for f in failures if f]


@pytest.mark.parametrize("dtype", sorted(DTYPES))
@pytest.mark.parametrize("page", [64, 128])
@pytest.mark.parametrize("d", HEAD_DIMS)
def test_every_head_dim_and_the_other_page_sizes(fai: ModuleType, d: int, page: int, dtype: str) -> None:
    skip_unless_built(WHEEL, d, dtype)
    batch = Batch.random(QLENS, KLENS, 8, 2, d, DTYPES[dtype], page, 2048, seed=d)
    failure = check(f"varlen page {page} d {d} {dtype}", batch.call(fai), batch.reference(softcap=0.0, window=(-1, -1)))
    assert failure is None, failure


@pytest.mark.parametrize("dtype", sorted(DTYPES))
@pytest.mark.parametrize("d", HEAD_DIMS)
def test_every_head_dim_decodes(fai: ModuleType, d: int, dtype: str) -> None:
    """A pure decode batch (max_seqlen_q 1: FA2's non-causal split-KV kernel, on the GQA-swapped route), split
    as the heuristic chooses and unsplit, in every bucket: the mixed batch above runs the forward kernel."""
    skip_unless_built(WHEEL, d, dtype)
    klens = [4100, 17, 1333, 640, 9000, 64, 2049, 300]
    batch = Batch.random([1] * len(klens), klens, 8, 2, d, DTYPES[dtype], 16, 4096, seed=d)
    ref = batch.reference(softcap=0.0, window=(-1, -1))
    failures = [check(f"decode d {d} {dtype} num_splits {n}", batch.call(fai, num_splits=n), ref) for n in (0, 1)]
    assert not [f for f in failures if f], [f for f in failures if f]


@pytest.mark.parametrize("dtype", sorted(DTYPES))
@pytest.mark.parametrize("d", [72, 128])
def test_vision_tower_prefill_without_a_cache(fai: ModuleType, d: int, dtype: str) -> None:
    """The ViT's call: non-causal, contiguous K/V with cu_seqlens_k, images of different sizes in one batch."""
    skip_unless_built(WHEEL, d, dtype)
    gen = torch.Generator().manual_seed(7)
    lens = [256, 1024, 64]
    qkv = [torch.randn(3, n, 16, d, generator=gen).to(DTYPES[dtype]).cuda() for n in lens]
    q, k, v = (torch.cat([t[i] for t in qkv]) for i in range(3))
    cu = torch.tensor([0, *itertools.accumulate(lens)], dtype=torch.int32, device="cuda")
    out = fai.flash_attn_varlen_func(
        q=q,
        k=k,
        v=v,
        cu_seqlens_q=cu,
        max_seqlen_q=max(lens),
        cu_seqlens_k=cu,
        max_seqlen_k=max(lens),
        softmax_scale=d**-0.5,
        causal=False,
        fa_version=2,
    )
    ref = torch.cat([reference(t[0], t[1], t[2], causal=False, window=(-1, -1))[0] for t in qkv])
    failure = check(f"vision prefill d {d} {dtype}", out, ref)
    assert failure is None, failure


def test_num_splits_1_is_batch_and_page_size_invariant(fai: ModuleType) -> None:
    """vLLM's batch-invariant mode passes num_splits=1: a sequence's output must not change, bit for bit, with
    the other sequences of its batch, nor with the page size of the cache."""
    qlens, klens = [1] * 64, [4096 - 31 * i for i in range(64)]
    big = Batch.random(qlens, klens, 32, 8, 128, torch.bfloat16, 16, 20000, seed=3)
    together = big.call(fai, num_splits=1)
    for b in (0, 17, 63):
        for page in (16, 32, 256):
            alone = Batch([big.qs[b]], [big.ks[b]], [big.vs[b]], page, 300, seed=b)
            assert torch.equal(alone.call(fai, num_splits=1), together[b : b + 1]), f"sequence {b}, page {page}"
    failure = check("num_splits=1 decode b64", together, big.reference(softcap=0.0, window=(-1, -1)))
    assert failure is None, failure


@pytest.mark.parametrize("page", [8, 24, 40])
def test_a_page_size_that_is_not_a_multiple_of_16_is_refused(fai: ModuleType, page: int) -> None:
    batch = Batch.random([1], [100], 8, 2, 128, torch.bfloat16, page, 64)
    with pytest.raises(RuntimeError, match=f"multiple of 16 tokens, got {page}"):
        batch.call(fai)
