"""Sources: content-addressed cache, pin checks, safe unpacking, strict patches."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from fawheels._util.errors import SourceError
from fawheels.matrix.model import Source
from fawheels.source.fetch import apply_patches, cached_path, fetch_sdist, unpack_sdist


def make_sdist(path: Path, files: dict[str, bytes]) -> str:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FAWHEELS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_download_once_into_content_addressed_cache(tmp_path: Path, cache: Path) -> None:
    upstream = tmp_path / "pkg-1.0.tar.gz"
    digest = make_sdist(upstream, {"pkg-1.0/a.txt": b"a"})
    src = Source("pkg", "sdist", upstream.as_uri(), sha256=digest)
    got = fetch_sdist(src)
    assert got == cache / "sources" / "sha256" / digest / "pkg-1.0.tar.gz" == cached_path(src)
    upstream.unlink()  # a second fetch must not need the network
    assert fetch_sdist(src) == got


def test_hash_mismatch_is_refused_and_nothing_is_cached(tmp_path: Path, cache: Path) -> None:
    upstream = tmp_path / "pkg-1.0.tar.gz"
    make_sdist(upstream, {"pkg-1.0/a.txt": b"a"})
    src = Source("pkg", "sdist", upstream.as_uri(), sha256="0" * 64)
    pattern = r"sources.pkg.sha256 mismatch: .* has sha256 [0-9a-f]{64}, the matrix pins 0{64}"
    with pytest.raises(SourceError, match=pattern):
        fetch_sdist(src)
    assert not any(p.is_file() for p in cache.rglob("*"))


def test_corrupted_cache_entry_is_replaced(tmp_path: Path, cache: Path) -> None:
    upstream = tmp_path / "pkg-1.0.tar.gz"
    digest = make_sdist(upstream, {"pkg-1.0/a.txt": b"a"})
    src = Source("pkg", "sdist", upstream.as_uri(), sha256=digest)
    path = cached_path(src)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"truncated")
    assert hashlib.sha256(fetch_sdist(src).read_bytes()).hexdigest() == digest


def test_offline_without_cache_says_where_to_put_the_file(cache: Path) -> None:
    src = Source("pkg", "sdist", "https://example.invalid/pkg-1.0.tar.gz", sha256="1" * 64)
    with pytest.raises(SourceError, match="--offline forbids downloading") as info:
        fetch_sdist(src, offline=True)
    assert str(cached_path(src)) in str(info.value)


def test_unpack_refuses_paths_outside_the_tree(tmp_path: Path) -> None:
    evil = tmp_path / "evil.tar.gz"
    make_sdist(evil, {"pkg/ok.txt": b"", "../escape.txt": b"x"})
    with pytest.raises(SourceError, match="cannot unpack"):
        unpack_sdist(evil, tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()


PATCH = """\
--- a/hello.txt
+++ b/hello.txt
@@ -1,3 +1,3 @@
 one
-two
+TWO
 three
"""


@pytest.mark.tools
def test_patch_applies_exactly_and_is_recorded(tmp_path: Path) -> None:
    tree = tmp_path / "src" / "pkg"
    tree.mkdir(parents=True)
    (tree / "hello.txt").write_text("one\ntwo\nthree\n")
    patch = tmp_path / "0001-up.patch"
    patch.write_text(PATCH)
    applied = apply_patches(tree, [patch])
    assert (tree / "hello.txt").read_text() == "one\nTWO\nthree\n"
    assert applied[0].file == "0001-up.patch"
    assert applied[0].sha256 == hashlib.sha256(PATCH.encode()).hexdigest()


@pytest.mark.tools
def test_patch_with_changed_context_is_refused_without_fuzz(tmp_path: Path) -> None:
    tree = tmp_path / "src" / "pkg"
    tree.mkdir(parents=True)
    (tree / "hello.txt").write_text("one\ntwo\nthree changed\n")  # fuzz would apply this; we must not
    patch = tmp_path / "0001-up.patch"
    patch.write_text(PATCH)
    with pytest.raises(SourceError, match=r"patch 0001-up\.patch no longer applies to pkg") as info:
        apply_patches(tree, [patch])
    assert "refresh the patch" in str(info.value)
    assert (tree / "hello.txt").read_text() == "one\ntwo\nthree changed\n"


def test_unpack_checks_by_hand_where_python_has_no_extraction_filter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(tarfile, "data_filter")  # as on Debian 12's Python 3.11.2 in the toolchain image
    evil = tmp_path / "evil.tar.gz"
    make_sdist(evil, {"pkg/ok.txt": b"", "../escape.txt": b"x"})
    with pytest.raises(SourceError, match=r"unsafe member '\.\./escape\.txt'"):
        unpack_sdist(evil, tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()
    good = tmp_path / "good.tar.gz"
    make_sdist(good, {"pkg/ok.txt": b"fine"})
    assert (unpack_sdist(good, tmp_path / "out2") / "ok.txt").read_text() == "fine"
