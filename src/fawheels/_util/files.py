"""Files: content hashes, and the one way fawheels writes a file that others read: readers see the old file
or the new one, never a part.

Every such write goes through `replacing`: the bytes go to a temporary name beside the destination (marked
with TMP_MARK, so a later run can recognise and remove what a killed one left) that is renamed over it once
whole. An exception or a handled signal removes the temporary file on the way out; with `guard`, a forked
guardian process removes it even when we are killed outright (SIGKILL, the OOM killer).
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import signal
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, suppress
from pathlib import Path

from fawheels._util.errors import FawheelsError, UsageError

TMP_MARK = ".tmp-"  # in the name of every temporary file `replacing` makes: `.{name}.tmp-{pid}-{random}`
# exactly what `temp_beside` names (pid, 8 hex digits): what a cleanup may remove, nothing that merely looks alike
TMP_NAME = re.compile(rf"\..+{re.escape(TMP_MARK)}[0-9]+-[0-9a-f]{{8}}")
PRIVATE = 0o600  # what `write_atomic` gives by default (the mode its files have always had)
_CHUNK = 1 << 20


class ContentChanged(ValueError):
    """The file copied by `copy_atomic` did not have the digest expected (it changed while being read)."""


def temp_beside(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}{TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}")


def fsync_dir(path: Path) -> None:
    """Make the renames in `path` durable (a rename is in the directory, not in the file)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def replacing(
    dest: Path, *, mode: int | None = None, stat_from: Path | None = None, fsync: bool = False, guard: bool = False
) -> Iterator[Path]:
    """Yield an empty temporary file beside `dest` for the block to write; when the block ends normally it
    becomes `dest` by rename, else it is removed. The file is created as `open` would (mode 0666 less the
    umask); `mode` sets the permission bits instead, `stat_from` copies bits and times from another file
    (shutil.copystat). `fsync` makes the bytes durable before the rename; `guard` keeps a guardian process
    that removes the temporary file if we are killed in the block."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_beside(dest)
    with removed_if_killed(tmp) if guard else nullcontext():
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            yield tmp
            if stat_from is not None:
                shutil.copystat(stat_from, tmp)
            elif mode is not None:
                os.chmod(tmp, mode)
            if fsync:
                fd = os.open(tmp, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            os.replace(tmp, dest)
        except BaseException:  # an interrupt mid-write leaves no temporary file behind
            tmp.unlink(missing_ok=True)
            raise


def write_atomic(
    dest: Path,
    data: bytes | str,
    *,
    mode: int | None = PRIVATE,
    stat_from: Path | None = None,
    fsync: bool = False,
    if_changed: bool = False,
) -> Path:
    """Write `dest` whole or not at all (see `replacing` for the options); returns `dest`. With `if_changed`
    a file that already holds exactly `data` is left alone."""
    raw = data.encode() if isinstance(data, str) else data
    if if_changed and dest.is_file() and dest.read_bytes() == raw:
        return dest
    with replacing(dest, mode=mode, stat_from=stat_from, fsync=fsync) as tmp, tmp.open("wb") as fh:
        fh.write(raw)
    return dest


def copy_atomic(
    src: Path,
    dest: Path,
    *,
    mode: int | None = None,
    stat_from: Path | None = None,
    fsync: bool = False,
    guard: bool = False,
    expect_sha256: str | None = None,
) -> Path:
    """Copy `src` to `dest` whole or not at all, streaming (see `replacing` for the options; by default the
    copy gets the mode a new file gets, as shutil.copyfile). With `expect_sha256`, bytes that do not hash to
    it raise ContentChanged and `dest` is left as it was."""
    digest = hashlib.sha256()
    with replacing(dest, mode=mode, stat_from=stat_from, fsync=fsync, guard=guard) as tmp:
        with src.open("rb") as fin, tmp.open("wb") as fout:
            while chunk := fin.read(_CHUNK):
                digest.update(chunk)
                fout.write(chunk)
        if expect_sha256 is not None and digest.hexdigest() != expect_sha256:
            raise ContentChanged(f"{src} changed while it was being copied")
    return dest


@contextmanager
def removed_if_killed(path: Path) -> Iterator[None]:
    """While the block runs, a forked guardian waits on a pipe; if this process dies in the block, by any
    signal (SIGKILL included), the pipe closes without a word and the guardian removes `path`."""
    r, w = os.pipe()
    try:
        pid = os.fork()
    except OSError:  # no process to spare: the handled-signal cleanup in `replacing` still applies
        os.close(r)
        os.close(w)
        yield
        return
    if pid == 0:  # the guardian: ignores the signals meant for its parent, does one thing, exits
        try:
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, signal.SIG_IGN)
            os.setsid()  # out of the process group, so `kill -9 -PGID` of the writer does not reach it
            os.close(w)
            if not os.read(r, 1):
                with suppress(OSError):
                    os.unlink(path)
        finally:
            os._exit(0)
    os.close(r)
    try:
        yield
    finally:
        with suppress(OSError):  # a guardian that is already gone cannot be told; it can do no harm either
            os.write(w, b"k")  # the block ended (well or by an exception, which cleans up itself): keep
        os.close(w)
        with suppress(ChildProcessError):
            os.waitpid(pid, 0)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def writable_dir(path: Path) -> str | None:
    """Why files cannot be created in `path` (or, when it does not exist yet, in the directory that would
    hold it), or None when they can. Checked by creating and removing a probe file in the nearest existing
    directory, the one test that root and read-only mounts cannot fool; nothing is left behind."""
    existing = path.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a directory"
    try:
        fd, probe = tempfile.mkstemp(prefix=".fawheels-probe-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return f"{exc.strerror or exc} ({existing})"
    return None


def check_outputs(dist: Path | None, report: Path | None) -> None:
    """The places a command writes at its end, checked before it starts (an hour of building must not end in
    'cannot write'): --dist and the report's directory writable (`writable_dir`), the report not a directory.
    Creates nothing. A UsageError naming the flag."""
    for what, d in (("--dist", dist), ("--report's directory", report.parent if report else None)):
        if d is not None and (why := writable_dir(d)) is not None:
            raise UsageError(
                f"{what} {d}: cannot write there: {why}",
                hint="pass a directory this user can write (--dist DIR, --report FILE)",
            )
    if report is not None and report.is_dir():
        raise UsageError(f"--report {report} is a directory", hint="pass a file path, e.g. --report report.json")


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (reading it would wait for a writer)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device (reading it may never end)"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "not a regular file"


def regular_file(path: Path, error: type[FawheelsError]) -> int:
    """The size of `path`, refused unless it is a regular file (following links): a FIFO would block the
    read, /dev/zero would never end it. Opens nothing."""
    try:
        st = path.stat()
    except OSError as exc:
        raise error(f"{path}: cannot read it: {exc.strerror or exc}", hint="check the path") from None
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{path}: {_kind(st.st_mode)}, not a file fawheels reads", hint="give a regular file")
    return st.st_size


def read_regular(path: Path, limit: int, error: type[FawheelsError]) -> bytes:
    """A regular file's bytes, refused when it is anything else (checked on the opened file, so a swap after
    the check does not help) or holds more than `limit` bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO opens without waiting
    except OSError as exc:
        raise error(f"{path}: cannot read it: {exc.strerror or exc}", hint="check the path") from None
    with os.fdopen(fd, "rb") as fh:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise error(f"{path}: {_kind(mode)}, not a file fawheels reads", hint="give a regular file")
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise error(f"{path}: more than the {limit} bytes fawheels reads of it")
    return data
