"""The benchmark's bookkeeping (the GPU timing itself runs in scripts/gpu-perf.sh; bench/gpu-perf.md)."""

from __future__ import annotations

import pytest

from fawheels.deploy import smoke
from fawheels.deploy.smoke import BENCH_SHAPES, attention_work, spread


def test_causal_work_counts_only_the_unmasked_scores() -> None:
    flops, moved = attention_work(b=1, sq=4, sk=4, h=1, hk=1, d=1, causal=True)
    assert flops == 4 * (1 + 2 + 3 + 4)  # query i sees i + 1 keys
    assert moved == 2 * (2 * 4 + 2 * 4)  # Q and O, K and V, 2 bytes each
    # Decode (one query token) over a longer cache: bottom-right aligned, it sees every key.
    assert attention_work(1, 1, 4096, 32, 8, 128, causal=True)[0] == attention_work(1, 1, 4096, 32, 8, 128, False)[0]


def test_gqa_bytes_are_the_kv_heads_not_the_query_heads() -> None:
    # The withdrawn decode figure gave torch K/V repeated to 32 heads: 4 x the bytes of an 8-head cache.
    _, gqa = attention_work(64, 1, 4096, 32, 8, 128, False)
    _, expanded = attention_work(64, 1, 4096, 32, 32, 128, False)

    def kv(hk: int) -> int:
        return 2 * 128 * 2 * 64 * 4096 * hk

    assert expanded - gqa == kv(32) - kv(8)


def test_spread_and_the_shapes_of_issue_13() -> None:
    assert spread([3.0, 1.0, 2.0]) == {"min": 1.0, "median": 2.0, "max": 3.0}
    names = [s[0] for s in BENCH_SHAPES]
    assert "decode b16 q1 k32768 h32 kv8 d128" in names and len(names) == 4


def test_smoke_reads_the_left_out_features_from_the_recorded_defines() -> None:
    defines = ["TORCH_EXTENSION_NAME=flash_attn_2_cuda", "FLASHATTENTION_DISABLE_DROPOUT"]
    assert smoke.left_out(defines) == {"dropout"}
    assert smoke.left_out([*defines, "FLASHATTENTION_DISABLE_SOFTCAP", "FLASHATTENTION_DISABLE_LOCAL"]) == {
        "dropout",
        "softcap",
        "local",
    }


def test_a_left_out_feature_is_checked_as_refused_and_the_rest_as_computed(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, bool, dict[str, object]]] = []

    def varlen(dtype: str, head_dim: int, causal: bool, **kwargs: object) -> float:
        calls.append((dtype, causal, kwargs))
        if kwargs.get("softcap"):
            raise RuntimeError("This flash attention build does not support softcap.")
        return 0.0

    monkeypatch.setattr(smoke, "check_varlen", varlen)
    monkeypatch.setattr(smoke, "check_paged_decode", lambda *a: 0.0)
    monkeypatch.setattr(
        smoke, "_check_missing_kernel", lambda p: smoke.Case("missing", "bf16", 64, True, False, 0, True)
    )
    profile = {"dtypes": ["bf16"], "head_dims": [128], "causal": [False, True], "split_kv": True}
    cases = smoke.run_smoke(profile, ["FLASHATTENTION_DISABLE_SOFTCAP"])
    names = [(c.name, c.causal, c.ok) for c in cases]
    assert names == [
        ("varlen softcap refused", False, True),
        ("varlen prefill GQA", False, True),
        ("paged decode GQA (split-KV)", False, True),
        ("varlen softcap refused", True, True),
        ("varlen prefill GQA", True, True),
        ("varlen sliding window", True, True),  # only beside the non-causal kernel
        ("paged decode GQA (split-KV)", True, True),
        ("missing", True, True),
    ]
    full = smoke.run_smoke(profile, [])  # nothing left out: softcap is computed, and here it fails
    assert ("varlen softcap", False, False) in [(c.name, c.causal, c.ok) for c in full]
