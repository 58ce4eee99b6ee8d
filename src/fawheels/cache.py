"""`fawheels cache`: what the caches hold (size, last use) and `fawheels cache prune`, which removes some of it.

Two roots: the cache (FAWHEELS_CACHE, `_util/paths.cache_root`) with one folder per kind of thing kept, and the
build root (FAWHEELS_BUILD_ROOT) with one tree per target (`<id>/`, its `<id>.lock` and `<id>.log`). An entry is
one thing of a kind (a torch env, one sdist, a target's build tree); its last use is the newest change inside
it, or the time a build last used it (builds touch the envs, toolkits and sources they use).

Prune removes whole entries and nothing else: every path is checked to lie inside its root after resolving
links (an entry or a kind folder that is a link leaving the root is refused and left alone; a link is never
followed, only removed), and a build tree whose lock a running build holds is skipped.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import stat
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fawheels._util import jsondoc
from fawheels._util.errors import UsageError
from fawheels._util.paths import build_root, cache_root
from fawheels._util.show import human_size, say

SCHEMA = 1  # `cache --json` and `cache prune --json`
DAY = 86400.0
REMOVING = ".fawheels-removing"  # an entry renamed aside while it is removed


@dataclass(frozen=True)
class Kind:
    """One kind of thing kept: its folder under its root, and how deep its entries lie in it."""

    name: str
    folder: str  # under the cache root; "" for the build root itself
    depth: int  # 1: each child is an entry; 2: each grandchild (sources/sha256/<sha>); 0: the folder is one
    what: str


KINDS: tuple[Kind, ...] = (
    Kind("envs", "envs", 1, "torch environments, one per torch and Python (about 5.5 GB each)"),
    Kind("toolchains", "toolchains", 1, "CUDA toolkits installed from PyPI"),
    Kind("sources", "sources", 2, "sdists by sha256 and git mirrors"),
    Kind("tools", "tools", 1, "cuobjdump from PyPI"),
    Kind("containers", "containers", 1, "per toolchain image: the build root and cache of builds in it"),
    Kind("jobstats", "jobstats", 1, "measured compile job times (the planner's history)"),
    Kind("fix-vllm", "fix-vllm", 1, "wheels fix-vllm built or fetched"),
    Kind("derived", "derived", 1, "matrices derived by build --vllm"),
    Kind("sccache", "sccache", 0, "the local compiler cache (sccache keeps it under its own size limit)"),
    Kind("builds", "", 1, "target build trees (FAWHEELS_BUILD_ROOT), with their lock and log files"),
)
KIND_NAMES = tuple(k.name for k in KINDS)


@dataclass
class Entry:
    kind: str
    path: Path
    bytes: int
    last_used: float  # seconds since the epoch
    refused: str = ""  # why prune must leave it (a link leaving the root, a held lock)

    def to_json(self) -> dict[str, Any]:
        return {
            "what": self.kind,
            "path": str(self.path),
            "bytes": self.bytes,
            "last_used": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.last_used)),
            **({"refused": self.refused} if self.refused else {}),
        }


def _root_of(kind: Kind) -> Path:
    return build_root() if kind.name == "builds" else cache_root()


def _inside(path: Path, root: Path) -> bool:
    """True when `path`, every link resolved, lies strictly inside `root` (resolved too)."""
    resolved, top = path.resolve(), root.resolve()
    return resolved != top and resolved.is_relative_to(top)


def _usage(path: Path) -> tuple[int, float]:
    """Bytes on disk (each inode once) and the newest change time of `path` and all below it; links are not
    followed."""
    seen: set[tuple[int, int]] = set()
    total, newest = 0, 0.0
    stack = [str(path)]
    while stack:
        p = stack.pop()
        try:
            st = os.lstat(p)
        except OSError:
            continue  # removed while we looked
        newest = max(newest, st.st_mtime)
        if (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
        if stat.S_ISDIR(st.st_mode):
            try:
                with os.scandir(p) as it:
                    stack.extend(e.path for e in it)
            except OSError:
                continue
    return total, newest


def _lock_files(kind: Kind, path: Path) -> list[Path]:
    """The locks a running build holds over this entry."""
    if kind.name == "builds":
        return [path.with_name(path.name + ".lock")]
    if kind.name == "containers":  # the build root of builds inside that image
        return sorted((path / "build").glob("*.lock")) if (path / "build").is_dir() else []
    return []


def _held(lock: Path) -> bool:
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_NOFOLLOW)  # flock needs no write access
    except OSError:
        return False  # no lock file: no build holds it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases a lock we took
    return False


def _candidates(kind: Kind, folder: Path) -> Iterator[Path]:
    if kind.depth == 0:
        yield folder
        return
    level = [folder]
    for _ in range(kind.depth):
        level = [c for d in level if d.is_dir() and not d.is_symlink() for c in sorted(d.iterdir())]
    for path in level:
        # In the build root only what a build made: a tree beside its lock file (builds always take one), so a
        # build root pointed at a folder of other things lists none of them; and what an interrupted prune left.
        if kind.name == "builds" and not path.with_name(path.name + ".lock").is_file() and REMOVING not in path.name:
            continue
        yield path


def entries(kinds: Sequence[str] = KIND_NAMES) -> tuple[list[Entry], list[str]]:
    """What the caches hold, and notes on kind folders that are not looked into (a link leaving the root)."""
    found: list[Entry] = []
    notes: list[str] = []
    for kind in KINDS:
        if kind.name not in kinds:
            continue
        root = _root_of(kind)
        folder = root / kind.folder if kind.folder else root
        if not folder.exists() and not folder.is_symlink():
            continue
        if kind.folder and not _inside(folder, root):
            notes.append(f"{kind.name}: {folder} leads to {folder.resolve()}, outside {root}: not looked into")
            continue
        for path in _candidates(kind, folder):
            if path.is_symlink():
                refused = "" if _inside(path, root) else f"a link to {path.resolve()}, outside {root}"
                found.append(Entry(kind.name, path, 0, path.lstat().st_mtime, refused))
                continue
            size, newest = _usage(path)
            locks = _lock_files(kind, path)
            for extra in (path.with_name(path.name + ".log"), *locks[:1]) if kind.name == "builds" else ():
                if extra.is_file() and not extra.is_symlink():
                    more, when = _usage(extra)
                    size, newest = size + more, max(newest, when)
            held = next((lk for lk in locks if _held(lk)), None)
            found.append(Entry(kind.name, path, size, newest, f"in use: a build holds {held}" if held else ""))
    return found, notes


@dataclass
class Pruned:
    removed: list[Entry]
    skipped: list[Entry]
    failed: list[tuple[Entry, str]]

    @property
    def freed(self) -> int:
        return sum(e.bytes for e in self.removed)


@contextmanager
def _holding(locks: Sequence[Path]) -> Iterator[bool]:
    """Take every lock without waiting (True), so no build starts in a tree while it is removed; False when one
    is held."""
    fds: list[int] = []
    try:
        for lock in locks:
            try:
                fd = os.open(lock, os.O_RDONLY | os.O_NOFOLLOW)
            except FileNotFoundError:
                continue
            except OSError:  # a lock we cannot open (a link, another user's): do not remove what it guards
                yield False
                return
            fds.append(fd)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
        yield True
    finally:
        for fd in fds:
            os.close(fd)


def _remove(path: Path) -> None:
    """A file or link is unlinked; a folder is first renamed aside, so an interrupted prune never leaves a torch
    env or toolkit half-removed under its own name (with its completion marker) for the next build to use."""
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
        return
    aside = path.with_name(f".{path.name}{REMOVING}-{os.getpid()}")
    path.rename(aside)
    shutil.rmtree(aside)  # does not follow links inside (and refuses a tree that turned into a link)


def prune(
    *, older_than_days: float | None, kinds: Sequence[str], dry_run: bool, now: float | None = None
) -> tuple[Pruned, list[str]]:
    """Remove the entries of `kinds` not used for `older_than_days` (all of them when None)."""
    now = time.time() if now is None else now
    found, notes = entries(kinds)
    result = Pruned([], [], [])
    by_name = {k.name: k for k in KINDS}
    for entry in found:
        if older_than_days is not None and now - entry.last_used < older_than_days * DAY:
            continue
        kind = by_name[entry.kind]
        root = _root_of(kind)
        # Checked again just before removing: the tree may have changed since it was listed.
        if not entry.refused and not entry.path.is_symlink() and not _inside(entry.path, root):
            entry.refused = f"resolves to {entry.path.resolve()}, outside {root}"
        if entry.refused:
            result.skipped.append(entry)
            continue
        extras = [entry.path.with_name(entry.path.name + s) for s in (".log", ".lock")] if kind.name == "builds" else []
        with _holding(_lock_files(kind, entry.path)) as free:
            if not free:
                entry.refused = "in use: a build holds its lock"
                result.skipped.append(entry)
                continue
            if not dry_run:
                try:
                    for path in (entry.path, *extras):
                        if path.exists() or path.is_symlink():
                            _remove(path)
                except OSError as exc:
                    result.failed.append((entry, f"{entry.path}: {exc.strerror or exc}"))
                    continue
        result.removed.append(entry)
    return result, notes


# ----------------------------------------------------------------------------- the command


def _age(now: float, then: float) -> str:
    days = (now - then) / DAY
    return "today" if days < 1 else f"{days:.0f} day{'s' if days >= 1.5 else ''} ago"


def show_command(*, kinds: Sequence[str], as_json: bool) -> int:
    found, notes = entries(kinds)
    now = time.time()
    if as_json:
        doc = {
            "schema": SCHEMA,
            "cache": str(cache_root()),
            "build_root": str(build_root()),
            "total_bytes": sum(e.bytes for e in found),
            "entries": [e.to_json() for e in found],
            "notes": notes,
        }
        say(jsondoc.dumps(doc))
        return 0
    say(f"cache {cache_root()} (FAWHEELS_CACHE); builds {build_root()} (FAWHEELS_BUILD_ROOT)")
    for kind in KINDS:
        mine = [e for e in found if e.kind == kind.name]
        if not mine:
            continue
        newest, count = max(e.last_used for e in mine), f"{len(mine)} entr{'y' if len(mine) == 1 else 'ies'}"
        size = human_size(sum(e.bytes for e in mine))
        say(f"{kind.name:<11} {size:>9}  {count}, last used {_age(now, newest)}: {kind.what}")
        for e in sorted(mine, key=lambda e: -e.last_used):
            flag = f"  ({e.refused})" if e.refused else ""
            say(f"  {human_size(e.bytes):>9}  {_age(now, e.last_used):<12} {e.path.name}{flag}")
    for note in notes:
        say(f"note: {note}")
    say(f"total {human_size(sum(e.bytes for e in found))}")
    return 0


def prune_command(*, older_than_days: float | None, kinds: Sequence[str] | None, dry_run: bool, as_json: bool) -> int:
    """`fawheels cache prune`: exit 0, or 2 (usage) when an entry could not be removed (after the others were)."""
    if older_than_days is None and not kinds:
        raise UsageError(
            "cache prune: say what to remove: --older-than DAYS, --what KIND, or both",
            hint="fawheels cache prune --older-than 30 (add --dry-run to see the list first)",
        )
    if older_than_days is not None and older_than_days < 0:
        raise UsageError(f"--older-than {older_than_days}: a number of days, 0 or more")
    result, notes = prune(older_than_days=older_than_days, kinds=kinds or KIND_NAMES, dry_run=dry_run)
    if as_json:
        doc = {
            "schema": SCHEMA,
            "dry_run": dry_run,
            "older_than_days": older_than_days,
            "removed": [e.to_json() for e in result.removed],
            "skipped": [e.to_json() for e in result.skipped],
            "failed": [{**e.to_json(), "error": why} for e, why in result.failed],
            "freed_bytes": 0 if dry_run else result.freed,
            "notes": notes,
        }
        say(jsondoc.dumps(doc))
    else:
        verb = "would remove" if dry_run else "removed"
        for e in result.removed:
            say(f"{verb} {e.kind} {e.path} ({human_size(e.bytes)})")
        for e in result.skipped:
            say(f"left {e.kind} {e.path}: {e.refused}")
        for note in notes:
            say(f"note: {note}")
        total = human_size(result.freed)
        say(f"{'would free' if dry_run else 'freed'} {total} ({len(result.removed)} entries)")
    if result.failed:
        raise UsageError(
            "could not remove: " + "; ".join(why for _, why in result.failed),
            hint="check the permissions of those paths (the other entries were removed)",
        )
    return 0
