"""The smoke checks' calls on a vllm-fa2 wheel's `_vllm_fa2_C` ops: each argument lands where the op schema of
every release the recipe serves puts it (fake ops and tensors; the GPU run is scripts/gpu-fix-vllm.sh)."""

from __future__ import annotations

from typing import Any

import pytest

from fawheels.check.wheelfacts import _schema_parts
from fawheels.deploy.smoke import vllm_ops_api
from fawheels.matrix.recipes import VLLM_FA2


class Tensor:
    def __init__(self, *shape: int) -> None:
        self.shape = shape

    def reshape(self, *shape: int) -> Tensor:
        return Tensor(*shape)

    def view(self, shape: tuple[int, ...]) -> Tensor:
        return Tensor(*shape)


class Ops:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, name: str) -> Any:
        return lambda *args: self.calls.append((name, args))


def named(release_ops: tuple[str, ...], op: str, args: tuple[Any, ...]) -> dict[str, Any]:
    schema = next(s for s in release_ops if s.startswith(op + "("))
    names = [a.split()[-1] for a in _schema_parts(schema)[1]]
    assert len(args) == len(names), f"{op}: {len(args)} arguments passed, the schema has {len(names)}"
    return dict(zip(names, args, strict=True))


@pytest.mark.parametrize("release", [r.version for r in VLLM_FA2.releases])
def test_varlen_kvcache_and_dense_calls_fit_the_release_schemas(release: str) -> None:
    r = VLLM_FA2.release(release)
    assert r is not None
    ops: Ops = Ops()
    cus: list[tuple[int, int]] = []

    def cu_seqlens(b: int, s: int) -> str:
        cus.append((b, s))
        return "cu"

    api = vllm_ops_api(ops, lambda t: Tensor(*t.shape), cu_seqlens)
    q, k, v = Tensor(9, 16, 128), Tensor(9, 4, 128), Tensor(9, 4, 128)
    out = api.varlen(q, k, v, "cu_q", "cu_k", 5, 7, causal=True, window_size=(64, 0), softcap=30.0)
    a = named(r.ops, "varlen_fwd", ops.calls[-1][1])
    assert (a["q"], a["k"], a["v"], a["cu_seqlens_q"], a["cu_seqlens_k"]) == (q, k, v, "cu_q", "cu_k")
    assert (a["max_seqlen_q"], a["max_seqlen_k"], a["is_causal"], a["softcap"], a["num_splits"]) == (
        5,
        7,
        True,
        30.0,
        0,
    )
    assert (a["window_size_left"], a["window_size_right"], a["p_dropout"]) == (64, 0, 0.0)
    assert a["softmax_scale"] == 128**-0.5 and a["out"] is not q and a["block_table"] is None
    assert out.shape == q.shape

    cache, seqlens, table = Tensor(32, 256, 8, 64), "seqlens", "table"
    api.kvcache(Tensor(4, 1, 32, 64), cache, cache, cache_seqlens=seqlens, block_table=table, causal=False)
    a = named(r.ops, "fwd_kvcache", ops.calls[-1][1])
    assert (a["seqlens_k"], a["block_table"], a["is_causal"], a["num_splits"]) == (seqlens, table, False, 0)
    assert a["k"] is None and a["v"] is None and a["softmax_scale"] == 64**-0.5

    dense = api.dense(Tensor(1, 16, 4, 96), Tensor(1, 16, 4, 96), Tensor(1, 16, 4, 96), causal=True)
    a = named(r.ops, "varlen_fwd", ops.calls[-1][1])
    assert cus[-1] == (1, 16) and (a["max_seqlen_q"], a["max_seqlen_k"]) == (16, 16) and a["q"].shape == (16, 4, 96)
    assert dense.shape == (1, 16, 4, 96)
