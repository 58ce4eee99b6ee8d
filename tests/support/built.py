"""Which kernels a built wheel carries (its build-info.json profile), so a GPU test of a kernel the wheel was
not built with is skipped, saying so, instead of failing on FA2's "not built" refusal."""

from __future__ import annotations

import json
import zipfile
from functools import cache
from pathlib import Path

import pytest

FA2_BUCKETS = (32, 64, 96, 128, 192, 256)  # FA2 2.8.3 runs a head dim in the smallest bucket that holds it


@cache
def profile(wheel: Path) -> tuple[frozenset[int], frozenset[str]]:
    """(head-dim buckets, dtypes) the wheel's kernels were compiled for."""
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/build-info.json"))
        info = json.loads(zf.read(name))["profile"]
    return frozenset(info["head_dims"]), frozenset(info["dtypes"])


def skip_unless_built(wheel: Path, head_dim: int, dtype: str) -> None:
    bucket = next(b for b in FA2_BUCKETS if head_dim <= b)
    dims, dtypes = profile(wheel)
    if bucket not in dims or dtype not in dtypes:
        have = f"{sorted(dims)}, {sorted(dtypes)}"
        pytest.skip(f"{wheel.name} has no head dim {bucket} {dtype} kernels (its profile: {have})")
