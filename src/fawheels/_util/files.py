"""Files: content hashes, and writes that readers see whole or not at all."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


def write_atomic(dest: Path, data: bytes | str) -> Path:
    """Write `dest` through a temporary file beside it and a rename; returns `dest`."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


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
