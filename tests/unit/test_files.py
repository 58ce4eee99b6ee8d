"""The one atomic write/copy helper: whole or nothing, the modes each caller asks for, no temporary file left."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from fawheels._util.files import TMP_MARK, ContentChanged, copy_atomic, replacing, write_atomic


def _leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if TMP_MARK in p.name)


def test_write_atomic_replaces_whole_and_keeps_its_private_mode(tmp_path: Path) -> None:
    dest = tmp_path / "sub" / "report.json"
    assert write_atomic(dest, "one\n") == dest
    write_atomic(dest, b"two\n")
    assert dest.read_bytes() == b"two\n"
    assert dest.stat().st_mode & 0o777 == 0o600
    write_atomic(dest, "public\n", mode=0o644, fsync=True)
    assert dest.stat().st_mode & 0o777 == 0o644
    assert _leftovers(dest.parent) == []


def test_if_changed_leaves_an_identical_file_alone(tmp_path: Path) -> None:
    dest = tmp_path / "index.html"
    write_atomic(dest, "same", mode=0o644)
    os.utime(dest, (1, 1))
    write_atomic(dest, "same", mode=0o644, if_changed=True)
    assert dest.stat().st_mtime == 1
    write_atomic(dest, "other", mode=0o644, if_changed=True)
    assert dest.read_text() == "other"


def test_copy_atomic_takes_mode_and_times_from_stat_from(tmp_path: Path) -> None:
    src = tmp_path / "lib.so"
    src.write_bytes(b"\x7fELF" * 1000)
    src.chmod(0o751)
    os.utime(src, (1000, 1000))
    backup = copy_atomic(src, tmp_path / "lib.so.orig", stat_from=src)
    assert backup.read_bytes() == src.read_bytes()
    assert backup.stat().st_mode & 0o777 == 0o751 and backup.stat().st_mtime == 1000
    write_atomic(tmp_path / "new.so", b"new", stat_from=src)
    assert (tmp_path / "new.so").stat().st_mode & 0o777 == 0o751


def test_a_changed_source_leaves_the_destination_as_it_was(tmp_path: Path) -> None:
    src = tmp_path / "w.whl"
    src.write_bytes(b"wheel")
    dest = tmp_path / "index" / "w.whl"
    dest.parent.mkdir()
    dest.write_bytes(b"old")
    with pytest.raises(ContentChanged):
        copy_atomic(src, dest, expect_sha256=hashlib.sha256(b"other").hexdigest(), guard=True)
    assert dest.read_bytes() == b"old" and _leftovers(dest.parent) == []
    copy_atomic(src, dest, expect_sha256=hashlib.sha256(b"wheel").hexdigest(), guard=True, mode=0o644)
    assert dest.read_bytes() == b"wheel" and dest.stat().st_mode & 0o777 == 0o644


def test_an_interrupted_block_leaves_no_part(tmp_path: Path) -> None:
    dest = tmp_path / "x.whl"
    with pytest.raises(KeyboardInterrupt), replacing(dest) as tmp:
        tmp.write_bytes(b"half")
        raise KeyboardInterrupt
    assert not dest.exists() and _leftovers(tmp_path) == []
