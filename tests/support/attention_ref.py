"""Attention in float32 with plain torch ops, and vLLM's paged KV layout: the references the GPU tests compare
our kernels against. Imported only by GPU tests (torch is there)."""

from __future__ import annotations

import math
from typing import Any

import torch


def reference(
    q: Any,
    k: Any,
    v: Any,
    *,
    causal: bool,
    window: tuple[int, int],
    alibi: Any = None,
    softcap: float = 0.0,
    dtype: Any = torch.float32,
) -> tuple[Any, Any]:
    """One sequence: q (sq, hq, d), k/v (sk, hk, d) -> out (sq, hq, d), lse (hq, sq); masks bottom-right aligned."""
    sq, hq, d = q.shape
    sk, hk = k.shape[0], k.shape[1]
    q, k, v = (t.to(dtype) for t in (q, k, v))
    k = k.repeat_interleave(hq // hk, dim=1)
    v = v.repeat_interleave(hq // hk, dim=1)
    scores = torch.einsum("qhd,khd->hqk", q, k).float() / math.sqrt(d)
    if softcap > 0:
        scores = softcap * torch.tanh(scores / softcap)
    row = torch.arange(sq, device=q.device)[:, None] + sk - sq
    col = torch.arange(sk, device=q.device)[None, :]
    if alibi is not None:
        scores = scores - alibi[:, None, None] * (row - col).abs()[None]
    allowed = torch.ones(sq, sk, dtype=torch.bool, device=q.device)
    left, right = window
    if causal:
        right = 0
    if left >= 0:
        allowed &= col >= row - left
    if right >= 0:
        allowed &= col <= row + right
    scores = scores.masked_fill(~allowed[None], float("-inf"))
    lse = torch.logsumexp(scores, dim=-1)
    probs = torch.softmax(scores, dim=-1).nan_to_num(0.0).to(dtype)
    return torch.einsum("hqk,khd->qhd", probs, v).float(), lse


def paged_cache(
    ks: list[Any], vs: list[Any], page: int, num_blocks: int, gen: Any, fill: float = float("nan")
) -> tuple[Any, Any, Any]:
    """vLLM's KV cache: (num_blocks, page, heads, d) for K and V, every slot `fill` (NaN: a row read from the
    wrong page poisons the output), each sequence's rows scattered over randomly chosen pages, the last page
    of the cache always used (so offsets reach the end of a large cache). Returns (k cache, v cache, table)."""
    per_seq = [math.ceil(k.shape[0] / page) for k in ks]
    needed = sum(per_seq)
    assert needed <= num_blocks, f"{needed} pages needed, cache has {num_blocks}"
    chosen = [*torch.randperm(num_blocks - 1, generator=gen)[: needed - 1].tolist(), num_blocks - 1]
    kc = torch.full((num_blocks, page, *ks[0].shape[1:]), fill, dtype=ks[0].dtype, device="cuda")
    vc = torch.full_like(kc, fill)
    table = torch.zeros(len(ks), max(per_seq), dtype=torch.int32, device="cuda")
    for b, (k, v) in enumerate(zip(ks, vs, strict=True)):
        for j in range(per_seq[b]):
            block = chosen.pop()
            table[b, j] = block
            rows = slice(j * page, (j + 1) * page)
            kc[block, : k[rows].shape[0]], vc[block, : v[rows].shape[0]] = k[rows], v[rows]
    return kc, vc, table
