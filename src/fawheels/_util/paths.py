"""Where fawheels keeps what it downloads and builds (overridable, so CI and containers can share it)."""

from __future__ import annotations

import os
from contextlib import suppress
from pathlib import Path

from fawheels._util.errors import UsageError


def cache_root() -> Path:
    """FAWHEELS_CACHE, else $XDG_CACHE_HOME/fawheels, else ~/.cache/fawheels."""
    if env := os.environ.get("FAWHEELS_CACHE"):
        if Path(env).exists() and not Path(env).is_dir():  # else the first download fails, blamed on the index
            raise UsageError(f"FAWHEELS_CACHE={env}: a file, not a directory", hint="point it at a directory")
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fawheels"


def mark_used(path: Path) -> None:
    """Note that a build used this cache entry now (`fawheels cache` shows it as its last use; prune
    --older-than keeps it): its folder's modification time, which nothing else reads."""
    with suppress(OSError):  # a read-only cache is still usable
        os.utime(path)


def build_root() -> Path:
    """Where targets are compiled: FAWHEELS_BUILD_ROOT, else /tmp/fawheels-build.

    The same absolute path on every machine and in every clone, because nvcc hashes the source
    file's path into the names of internal-linkage device symbols (`_INTERNAL_<hash>_…`): a build
    under another directory gives another cubin."""
    return Path(os.environ.get("FAWHEELS_BUILD_ROOT", "/tmp/fawheels-build"))
