"""Where fawheels keeps what it downloads and builds (overridable, so CI and containers can share it)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

from fawheels._util.errors import UsageError
from fawheels._util.runner import log

# Written last into a cache entry that fawheels installs (a pip toolkit, cuobjdump, a torch env): without it
# the folder is the remains of an interrupted install.
COMPLETE_MARKER = ".fawheels-complete"


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


def is_installed(root: Path) -> bool:
    return (root / COMPLETE_MARKER).exists()


def install_once(root: Path, stamp: str, install: Callable[[], None], *, note: str) -> bool:
    """Fill the cache entry `root` once: when it is not complete, clear what an interrupted install left, say
    `note`, run `install` (which fills root) and write the marker (holding `stamp`, the version installed)
    last. True when it installed now, False when root was complete already."""
    if is_installed(root):
        return False
    if root.exists():
        shutil.rmtree(root)
    log(note)
    install()
    (root / COMPLETE_MARKER).write_text(stamp + "\n")
    return True


def build_root() -> Path:
    """Where targets are compiled: FAWHEELS_BUILD_ROOT, else /tmp/fawheels-build.

    The same absolute path on every machine and in every clone, because nvcc hashes the source
    file's path into the names of internal-linkage device symbols (`_INTERNAL_<hash>_…`): a build
    under another directory gives another cubin."""
    return Path(os.environ.get("FAWHEELS_BUILD_ROOT", "/tmp/fawheels-build"))
