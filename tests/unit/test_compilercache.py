"""Compiler cache: config, environment and stats, pure (no sccache is run here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fawheels._util.errors import ConfigError, ToolchainError
from fawheels.toolchain.compilercache import (
    CacheConfig,
    cache_env,
    clean_environ,
    find_sccache,
    parse_cache_spec,
    parse_stats,
)

# `sccache --show-stats --stats-format json` of sccache 0.16.0 after one nvcc compile missed and the same
# compile hit (trimmed of durations): nvcc's steps count under CUDA, CUDA (Device code), PTX, CUBIN.
STATS_0_16 = {
    "stats": {
        "compile_requests": 2,
        "requests_unsupported_compiler": 0,
        "requests_not_compile": 0,
        "requests_not_cacheable": 0,
        "requests_executed": 10,
        "cache_errors": {"counts": {}, "adv_counts": {}},
        "cache_hits": {
            "counts": {"CUBIN": 1, "CUDA (Device code)": 1, "CUDA": 1, "PTX": 1},
            "adv_counts": {"cubin [ptxas]": 1, "cuda [cudafe++]": 1, "ptx [cicc]": 1, "cuda [nvcc]": 1},
        },
        "cache_misses": {
            "counts": {"CUDA (Device code)": 1, "PTX": 1, "CUDA": 1, "CUBIN": 1},
            "adv_counts": {"ptx [cicc]": 1, "cuda [cudafe++]": 1, "cuda [nvcc]": 1, "cubin [ptxas]": 1},
        },
        "cache_timeouts": 0,
        "cache_read_errors": 0,
        "non_cacheable_compilations": 2,
        "forced_recaches": 0,
        "cache_write_errors": 0,
        "cache_writes": 4,
        "compilations": 6,
        "compile_fails": 0,
        "not_cached": {},
        "dist_compiles": {},
        "dist_errors": 0,
        "multi_level": None,
    },
    "cache_location": 'Local disk: "/tmp/scx/cache"',
    "cache_size": 169334,
    "max_cache_size": 10737418240,
    "use_preprocessor_cache_mode": True,
    "version": "0.16.0",
    "basedirs": [],
}


def test_default_is_a_local_directory_under_the_cache_root(tmp_path: Path) -> None:
    assert parse_cache_spec(None, {}, tmp_path) == CacheConfig("local", str(tmp_path / "sccache"))
    assert parse_cache_spec("local", {}, tmp_path) == CacheConfig("local", str(tmp_path / "sccache"))


def test_redis_endpoint_from_the_environment_selects_redis(tmp_path: Path) -> None:
    env = {"SCCACHE_REDIS_ENDPOINT": "redis://127.0.0.1:6379"}
    assert parse_cache_spec(None, env, tmp_path) == CacheConfig("redis", "redis://127.0.0.1:6379", "fawheels")
    env["SCCACHE_REDIS_KEY_PREFIX"] = "ci"
    assert parse_cache_spec(None, env, tmp_path) == CacheConfig("redis", "redis://127.0.0.1:6379", "ci")
    # an explicit choice wins over the environment
    assert parse_cache_spec("off", env, tmp_path) is None
    assert parse_cache_spec(None, {**env, "FAWHEELS_COMPILER_CACHE": "local"}, tmp_path) == CacheConfig(
        "local", str(tmp_path / "sccache")
    )


def test_a_directory_spec_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_cache_spec("cc", {}, tmp_path) == CacheConfig("local", str(tmp_path / "cc"))


@pytest.mark.parametrize(("spec", "message"), [("s3://bucket", "unknown scheme"), ("redis://", "no host")])
def test_bad_specs_are_refused_with_the_fix(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse_cache_spec(spec, {})
    assert info.value.hint and "redis://HOST:PORT" in info.value.hint


def test_env_for_local_and_redis(tmp_path: Path) -> None:
    sccache = Path("/opt/bin/sccache")
    local = cache_env(CacheConfig("local", "/c/sccache"), sccache, tmp_path)
    assert local["FAWHEELS_COMPILER_LAUNCHER"] == "/opt/bin/sccache"
    assert local["SCCACHE_DIR"] == "/c/sccache"
    assert "SCCACHE_REDIS_ENDPOINT" not in local
    redis = cache_env(CacheConfig("redis", "redis://10.0.0.1:6379", "night"), sccache, tmp_path)
    assert redis["SCCACHE_REDIS_ENDPOINT"] == "redis://10.0.0.1:6379"
    assert redis["SCCACHE_REDIS_KEY_PREFIX"] == "night"
    assert "SCCACHE_DIR" not in redis
    # one server per config: a server started for another backend is never borrowed
    assert local["SCCACHE_SERVER_UDS"] != redis["SCCACHE_SERVER_UDS"]
    assert Path(local["SCCACHE_SERVER_UDS"]).parent == tmp_path
    assert cache_env(CacheConfig("local", "/c/sccache"), sccache, tmp_path) == local


def test_password_never_shows_in_the_display_form() -> None:
    config = CacheConfig("redis", "redis://user:s3cret@cache.example:6380/0")
    assert "s3cret" not in config.display
    assert config.display == "redis://user:***@cache.example:6380/0"
    assert CacheConfig("redis", "redis://127.0.0.1:6379").display == "redis://127.0.0.1:6379"


def test_other_backends_settings_are_dropped() -> None:
    env = {"SCCACHE_BUCKET": "b", "SCCACHE_GHA_ENABLED": "on", "PATH": "/bin", "SCCACHE_REDIS_ENDPOINT": "redis://h"}
    assert clean_environ(env) == {"PATH": "/bin", "SCCACHE_REDIS_ENDPOINT": "redis://h"}


def test_stats_of_sccache_0_16() -> None:
    stats = parse_stats(json.dumps(STATS_0_16))
    assert stats.total_hits == 4 and stats.total_misses == 4
    assert stats.hit_rate == 0.5
    assert stats.nvcc_counts() == (4, 4)
    assert stats.compile_requests == 2 and stats.not_cacheable == 2 and stats.errors == 0
    assert stats.to_json()["hit_rate"] == 0.5


def test_stats_with_host_compiles_and_errors() -> None:
    doc = json.loads(json.dumps(STATS_0_16))
    doc["stats"]["cache_hits"]["counts"] = {"C/C++": 1, "PTX": 8, "CUBIN": 8}
    doc["stats"]["cache_misses"]["counts"] = {}
    doc["stats"]["cache_errors"]["counts"] = {"PTX": 1}
    doc["stats"]["cache_read_errors"] = 2
    stats = parse_stats(json.dumps(doc))
    assert stats.hit_rate == 1.0
    assert stats.nvcc_counts() == (16, 0)
    assert stats.errors == 3


def test_no_lookups_is_no_rate_and_garbage_is_an_error() -> None:
    doc = json.loads(json.dumps(STATS_0_16))
    doc["stats"]["cache_hits"]["counts"] = {}
    doc["stats"]["cache_misses"]["counts"] = {}
    assert parse_stats(json.dumps(doc)).hit_rate is None
    with pytest.raises(ToolchainError, match="cannot read sccache stats"):
        parse_stats("sccache: error: Connection refused")


def test_explicit_sccache_binary_wins(tmp_path: Path) -> None:
    assert find_sccache({"FAWHEELS_SCCACHE": str(tmp_path / "sccache")}) == tmp_path / "sccache"
