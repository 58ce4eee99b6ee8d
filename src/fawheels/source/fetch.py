"""Sources: download once into a content-addressed cache, check the pin, unpack, apply patches strictly.

An sdist is pinned by its sha256; a git source by a commit, and each submodule by the commit its gitlink
in that commit records. Git repositories are cached as bare clones; a tree is exported with `git archive`
(the superproject, then every submodule at its pinned commit), so a cached pin builds offline.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
import tarfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from fawheels._util.errors import SourceError
from fawheels._util.files import PRIVATE, replacing, sha256_file
from fawheels._util.paths import cache_root, mark_used
from fawheels._util.runner import log, run
from fawheels.matrix.model import Source


def cached_path(source: Source, cache: Path | None = None) -> Path:
    if source.kind != "sdist" or source.sha256 is None:
        raise SourceError(
            f"sources.{source.name}: a {source.kind} source has no sdist in the cache",
            hint="fetch it with source.prefetch, which handles every source kind",
        )
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
        raise SourceError(
            f"download of {url} failed: {exc}",
            hint="check the network, or pre-seed the cache (see README: offline builds)",
        ) from exc


def fetch_sdist(source: Source, *, offline: bool = False, cache: Path | None = None) -> Path:
    """Path of the verified sdist in the cache, downloading it on first use."""
    path = cached_path(source, cache)
    if path.is_file():
        actual = sha256_file(path)
        if actual == source.sha256:
            mark_used(path.parent)
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
    with replacing(path, mode=PRIVATE) as partial:  # a mismatch or an interrupt leaves nothing in the cache
        _download(source.url, partial)
        actual = sha256_file(partial)
        if actual != source.sha256:
            raise SourceError(
                f"sources.{source.name}.sha256 mismatch: {source.url} has sha256 {actual}, "
                f"the matrix pins {source.sha256}",
                hint="the file changed upstream or the pin is wrong; nothing was unpacked",
            )
    return path


def safe_extract(tar: tarfile.TarFile, dest: Path) -> None:
    """Extract refusing absolute paths, `..`, links that leave dest, and devices.

    Python's "data" filter does this where it exists; older interpreters (Debian 12's 3.11.2, in the
    toolchain image) get the same checks by hand."""
    if hasattr(tarfile, "data_filter"):
        tar.extractall(dest, filter="data")
        return
    root = dest.resolve()
    for member in tar.getmembers():
        path = (root / member.name).resolve()
        link_ok = not (member.issym() or member.islnk()) or (
            (path.parent / member.linkname).resolve().is_relative_to(root)
        )
        if not path.is_relative_to(root) or member.isdev() or not link_ok:
            raise tarfile.TarError(f"unsafe member {member.name!r} (leaves the tree or is a device)")
    tar.extractall(dest)


def unpack_sdist(archive: Path, dest: Path) -> Path:
    """Unpack into `dest` (which must not exist); returns the single top-level directory."""
    dest.mkdir(parents=True)
    try:
        with tarfile.open(archive) as tar:
            safe_extract(tar, dest)
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
            run(
                ["git", "apply", "--check", "--verbose", str(patch)],
                cwd=tree,
                env=env,
                capture=True,
                error=SourceError,
                what=f"patch {patch.name}",
                quiet=True,
            )
        except SourceError as exc:
            raise SourceError(
                f"patch {patch.name} no longer applies to {tree.name}:\n{exc.message}",
                hint="refresh the patch against the pinned source (git apply does not fuzz)",
            ) from None
        run(
            ["git", "apply", "--whitespace=nowarn", str(patch)],
            cwd=tree,
            env=env,
            error=SourceError,
            what=f"patch {patch.name}",
        )
        applied.append(AppliedPatch(patch.name, sha256_file(patch)))
    return applied


def git_cache_dir(url: str, cache: Path | None = None) -> Path:
    return (cache or cache_root()) / "sources" / "git" / (hashlib.sha256(url.encode()).hexdigest()[:24] + ".git")


def _git(args: list[str | Path], what: str) -> str:
    return run(["git", *args], capture=True, error=SourceError, what=what, quiet=True)


def _has_commit(repo: Path, commit: str) -> bool:
    try:
        _git(["-C", repo, "cat-file", "-e", f"{commit}^{{commit}}"], "git cat-file")
    except SourceError:
        return False
    return True


def fetch_git(url: str, commit: str, *, offline: bool = False, cache: Path | None = None) -> Path:
    """A bare clone of `url` in the cache that holds `commit`, cloned or fetched only when it does not."""
    repo = git_cache_dir(url, cache)
    if repo.is_dir() and _has_commit(repo, commit):
        return repo
    if offline:
        raise SourceError(
            f"commit {commit} of {url} is not in the cache and --offline forbids fetching",
            hint=f"fetch it once online (cache: {repo})",
        )
    if not repo.is_dir():
        repo.parent.mkdir(parents=True, exist_ok=True)
        partial = repo.with_name(f".partial-{os.getpid()}-{repo.name}")
        shutil.rmtree(partial, ignore_errors=True)
        log(f"cloning {url}")
        _git(["clone", "--bare", "--quiet", url, partial], f"git clone {url}")
        if not repo.exists():
            os.replace(partial, repo)
        shutil.rmtree(partial, ignore_errors=True)  # another build cloned it first
    if not _has_commit(repo, commit):
        _git(["-C", repo, "fetch", "--quiet", url, "+refs/*:refs/*"], f"git fetch {url}")
    if not _has_commit(repo, commit):
        raise SourceError(f"{url} has no commit {commit}", hint="check the pinned commit (a full 40-digit hash)")
    return repo


def _submodule_url(base: str, url: str) -> str:
    """Git resolves `./x` and `../x` against the superproject's URL as if it were a directory."""
    if not url.startswith(("./", "../")):
        return url
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path=posixpath.normpath(posixpath.join(parts.path, url))))


def _gitlinks(repo: Path, commit: str) -> dict[str, str]:
    """Submodule path -> the commit the superproject pins it at."""
    links = {}
    for line in _git(["-C", repo, "ls-tree", "-r", commit], "git ls-tree").splitlines():
        meta, path = line.split("\t", 1)
        _mode, kind, sha = meta.split()
        if kind == "commit":
            links[path] = sha
    return links


def _submodule_urls(repo: Path, commit: str) -> dict[str, str]:
    """Submodule path -> URL, from the .gitmodules of that commit."""
    out = _git(
        ["-C", repo, "config", "--blob", f"{commit}:.gitmodules", "--get-regexp", r"^submodule\..*\.(path|url)$"],
        "read .gitmodules",
    )
    paths: dict[str, str] = {}
    urls: dict[str, str] = {}
    for line in out.splitlines():
        key, value = line.split(" ", 1)
        name, field = key.removeprefix("submodule.").rsplit(".", 1)
        (paths if field == "path" else urls)[name] = value
    return {path: urls[name] for name, path in paths.items() if name in urls}


def export_git(url: str, commit: str, dest: Path, *, offline: bool = False) -> None:
    """The files of `commit` into `dest`, and each submodule's files at its pinned commit (recursively)."""
    repo = fetch_git(url, commit, offline=offline)
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest.parent / f".{dest.name}.{commit[:12]}.tar"
    try:
        _git(["-C", repo, "archive", "--format=tar", f"--output={archive}", commit], f"git archive {commit}")
        with tarfile.open(archive) as tar:
            safe_extract(tar, dest)
    except (tarfile.TarError, OSError) as exc:
        raise SourceError(f"cannot export {commit} of {url}: {exc}") from exc
    finally:
        archive.unlink(missing_ok=True)
    links = _gitlinks(repo, commit)
    urls = _submodule_urls(repo, commit) if links else {}
    for path, sub_commit in sorted(links.items()):
        if path not in urls:
            raise SourceError(f"{url} at {commit}: submodule {path} has no URL in .gitmodules")
        export_git(_submodule_url(url, urls[path]), sub_commit, dest / path, offline=offline)


def prefetch(source: Source, *, offline: bool = False, cache: Path | None = None) -> None:
    """Put everything a build of `source` reads into the cache, of any source kind: the sdist, or the bare
    clone holding the pinned commit and, recursively, each submodule's at the commit its gitlink pins.
    A build that then runs --offline against the same cache (a toolchain container) finds it all."""
    if source.kind == "sdist":
        fetch_sdist(source, offline=offline, cache=cache)
        return
    if source.commit is None:
        raise SourceError(f"sources.{source.name}: a git source needs a pinned commit")
    _prefetch_git(source.url, source.commit, offline=offline, cache=cache)


def _prefetch_git(url: str, commit: str, *, offline: bool, cache: Path | None) -> None:
    repo = fetch_git(url, commit, offline=offline, cache=cache)
    links = _gitlinks(repo, commit)
    urls = _submodule_urls(repo, commit) if links else {}
    for path, sub_commit in sorted(links.items()):
        if path not in urls:
            raise SourceError(f"{url} at {commit}: submodule {path} has no URL in .gitmodules")
        _prefetch_git(_submodule_url(url, urls[path]), sub_commit, offline=offline, cache=cache)


def git_tree_name(url: str) -> str:
    """Like `git clone`: the repository's base name without .git."""
    return posixpath.basename(urlsplit(url).path.rstrip("/")).removesuffix(".git") or "repo"


def source_epoch(source: Source, *, offline: bool = False) -> int:
    """A time fixed by the pin: the sdist's newest member, or the pinned commit's committer time."""
    if source.kind == "git":
        assert source.commit is not None
        repo = fetch_git(source.url, source.commit, offline=offline)
        return int(_git(["-C", repo, "show", "-s", "--format=%ct", source.commit], "git show").strip())
    with tarfile.open(fetch_sdist(source, offline=offline)) as tar:
        return int(max(m.mtime for m in tar.getmembers()))


def prepare_tree(
    source: Source, patches: list[Path], workdir: Path, *, offline: bool = False
) -> tuple[Path, list[AppliedPatch]]:
    """Fetch, unpack or export into workdir/src (fresh), patch. Returns the tree and the patches applied."""
    src = workdir / "src"
    if src.exists():
        shutil.rmtree(src)
    if source.kind == "git":
        assert source.commit is not None
        tree = src / git_tree_name(source.url)
        export_git(source.url, source.commit, tree, offline=offline)
    else:
        tree = unpack_sdist(fetch_sdist(source, offline=offline), src)
    return tree, apply_patches(tree, patches)
