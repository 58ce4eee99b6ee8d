"""Sources: download once into a content-addressed cache, check the pin, unpack, apply patches strictly."""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .errors import SourceError
from .matrix import Source
from .paths import cache_root
from .runner import log, run


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cached_path(source: Source, cache: Path | None = None) -> Path:
    assert source.sha256 is not None
    return (cache or cache_root()) / "sources" / "sha256" / source.sha256 / source.filename


def _download(url: str, dest: Path) -> None:
    """Stream `url` into `dest` with progress on stderr."""
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, dest.open("wb") as out:
            total = int(resp.headers.get("Content-Length") or 0)
            done = 0
            last = 0.0
            while chunk := resp.read(1 << 20):
                out.write(chunk)
                done += len(chunk)
                if time.monotonic() - last > 2 or done == total:
                    last = time.monotonic()
                    pct = f" ({100 * done // total}%)" if total else ""
                    log(f"  downloaded {done / 1e6:.1f} MB{pct}")
    except (urllib.error.URLError, OSError) as exc:
        raise SourceError(f"download of {url} failed: {exc}",
                          hint="check the network, or pre-seed the cache (see README: offline builds)") from exc


def fetch_sdist(source: Source, *, offline: bool = False, cache: Path | None = None) -> Path:
    """Path of the verified sdist in the cache, downloading it on first use."""
    path = cached_path(source, cache)
    if path.is_file():
        actual = sha256_file(path)
        if actual == source.sha256:
            return path
        # A corrupted cache entry is never used; it is replaced from the network.
        log(f"cached {path} has sha256 {actual}, expected {source.sha256}; discarding it")
        path.unlink()
    if offline:
        raise SourceError(
            f"source {source.name!r} ({source.filename}) is not in the cache and --offline forbids downloading",
            hint=f"copy the file to {path}",
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    log(f"fetching {source.url}")
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".partial-", delete=False) as tmp:
        partial = Path(tmp.name)
    try:
        _download(source.url, partial)
        actual = sha256_file(partial)
        if actual != source.sha256:
            raise SourceError(
                f"sources.{source.name}.sha256 mismatch: {source.url} has sha256 {actual}, "
                f"the matrix pins {source.sha256}",
                hint="the file changed upstream or the pin is wrong; nothing was unpacked",
            )
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def unpack_sdist(archive: Path, dest: Path) -> Path:
    """Unpack into `dest` (which must not exist); returns the single top-level directory."""
    dest.mkdir(parents=True)
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(dest, filter="data")  # refuses absolute paths, links out of dest, devices
    except (tarfile.TarError, OSError) as exc:
        raise SourceError(f"cannot unpack {archive.name}: {exc}") from exc
    tops = [p for p in dest.iterdir()]
    if len(tops) != 1 or not tops[0].is_dir():
        raise SourceError(f"{archive.name}: expected one top-level directory, found {[p.name for p in tops]}")
    return tops[0]


@dataclass(frozen=True)
class AppliedPatch:
    file: str
    sha256: str


def apply_patches(tree: Path, patches: list[Path]) -> list[AppliedPatch]:
    """Apply each patch with `git apply` (exact context, no fuzz); check all before changing anything."""
    # The unpacked tree may sit inside another git checkout; keep git from applying relative to it.
    env = {"GIT_CEILING_DIRECTORIES": str(tree.parent)}
    applied = []
    for patch in patches:
        if not patch.is_file():
            raise SourceError(f"patch {patch} does not exist")
    for patch in patches:
        try:
            run(["git", "apply", "--check", "--verbose", str(patch)], cwd=tree, env=env, capture=True,
                error=SourceError, what=f"patch {patch.name}", quiet=True)
        except SourceError as exc:
            raise SourceError(
                f"patch {patch.name} no longer applies to {tree.name}:\n{exc.message}",
                hint="refresh the patch against the pinned source (git apply does not fuzz)",
            ) from None
        run(["git", "apply", "--whitespace=nowarn", str(patch)], cwd=tree, env=env, error=SourceError,
            what=f"patch {patch.name}")
        applied.append(AppliedPatch(patch.name, sha256_file(patch)))
    return applied


def prepare_tree(source: Source, patches: list[Path], workdir: Path, *,
                 offline: bool = False) -> tuple[Path, list[AppliedPatch]]:
    """Fetch, unpack into workdir/src (fresh), patch. Returns the tree and the patches applied."""
    if source.kind != "sdist":
        raise SourceError(f"sources.{source.name}.kind: git sources are not built by this version yet",
                          hint="use an sdist source")
    archive = fetch_sdist(source, offline=offline)
    src = workdir / "src"
    if src.exists():
        shutil.rmtree(src)
    tree = unpack_sdist(archive, src)
    return tree, apply_patches(tree, patches)
