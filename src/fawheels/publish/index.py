"""Publish verified wheels to a package index (`fawheels publish WHEEL… --index DIR_OR_URL`, docs/publishing.md).

Two backends behind one entry point, `publish_command`:

- a directory: a static index, one root per variant (`DIR/cu130/simple/<project>/`) with PEP 503 pages
  (`#sha256=` fragments), PEP 658 `.metadata` files, PEP 691 `index.json` beside each page, a
  machine-readable `wheels.json` and a human root page `DIR/index.html`. Updates take a lock and write
  every file aside then rename it, so concurrent or killed publishers leave a valid index.
- an http(s) URL: the legacy upload API that pypiserver, devpi and PyPI speak, with credentials from the
  environment or keyring only.

Either way a wheel is refused unless the `.verify.json` beside it says ok AND a fresh `verify_wheel` passes,
and unless its variant (the CUDA part of its local version, `+cu130torch2.14` → `cu130`) matches the root.
Here: the location, the static index and the command. The records and `wheels.json` are records.py's, the
pages pages.py's, what a wheel must pass checked.py's, the upload server.py's.
"""

from __future__ import annotations

import fcntl
import json
import os
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from fawheels._util import names
from fawheels._util.errors import PublishError
from fawheels._util.files import (
    TMP_MARK,
    TMP_NAME,
    ContentChanged,
    copy_atomic,
    fsync_dir,
    read_regular,
    writable_dir,
    write_atomic,
)
from fawheels._util.show import say
from fawheels.publish.checked import (
    CheckedWheel,
    Verifier,
    _refuse_single_reader,
    _reverify,
    check_wheel,
)
from fawheels.publish.pages import (
    render_project_html,
    render_project_json,
    render_root_html,
    render_simple_html,
    render_simple_json,
)
from fawheels.publish.records import (
    _VARIANT,
    MANIFEST,
    MAX_MANIFEST,
    WheelRecord,
    is_new,
    parse_manifest,
    render_manifest,
)
from fawheels.publish.server import (
    ServerIndex,
    _keyring_credentials,
    credentials_from_env,
    index_timeout,
)

LOCK = ".fawheels-publish.lock"
_PUBLIC = 0o644  # index files are served to everyone, whatever the publisher's umask

# -------------------------------------------------------------------------------------------- pure part


@dataclass(frozen=True)
class IndexLocation:
    """Where `--index` points: a directory (`root`) or an upload URL (`url`), maybe pinned to a variant."""

    root: Path | None
    url: str | None
    variant: str | None


def parse_index(spec: str) -> IndexLocation:
    """`DIR`, `DIR/cu128`, `DIR/cu128/simple`, `file://…` or `http(s)://host[/…/cu130]/`.

    A variant named by the location pins it: publishing `+cu130` there is refused.
    """
    if any(unicodedata.category(c) == "Cc" for c in spec) or not spec.strip():  # NUL, CR/LF: never a location
        raise PublishError(f"index {spec[:200]!r}: not a valid location", hint="use a directory or an http(s) URL")
    try:
        parts = urlsplit(spec)
        parts.port  # noqa: B018  (a port that is not a number raises here, not later in the upload)
    except ValueError as exc:
        raise PublishError(
            f"index {spec[:200]!r}: not a valid location ({exc})", hint="use a directory or an http(s) URL"
        ) from None
    if parts.scheme in ("http", "https"):
        if parts.username is not None or parts.password is not None:
            raise PublishError(
                "credentials in the index URL are refused (command lines show up in `ps` and logs)",
                hint="set FAWHEELS_INDEX_USER / FAWHEELS_INDEX_PASSWORD, or store them in keyring",
            )
        segments = [s for s in parts.path.split("/") if _VARIANT.fullmatch(s)]
        url = spec if spec.endswith("/") else spec + "/"
        return IndexLocation(None, url, segments[-1] if segments else None)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):  # file://server/share is not this machine's /share
            raise PublishError(
                f"index {spec!r}: a file URL on another host ({parts.netloc})",
                hint="mount it and pass the local directory, or use the server's http(s) URL",
            )
        return parse_index(unquote(parts.path))
    if parts.scheme:
        raise PublishError(
            f"index {spec!r}: unsupported scheme {parts.scheme!r}", hint="use a directory or an http(s) URL"
        )
    path = Path(spec)
    if path.name == "simple" and _VARIANT.fullmatch(path.parent.name):
        return IndexLocation(path.parent.parent, None, path.parent.name)
    if _VARIANT.fullmatch(path.name):
        return IndexLocation(path.parent, None, path.name)
    return IndexLocation(path, None, None)


# ------------------------------------------------------------------------------------------- I/O gateway


def _say(msg: str) -> None:
    say(msg, flush=True)


def _mkdir_public(path: Path) -> None:
    """mkdir -p; the directories it creates get 0755 whatever the umask, so a server can walk them."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(parents=True, exist_ok=True)
    for p in missing:
        os.chmod(p, 0o755)


def _write_atomic(path: Path, data: bytes) -> None:
    """Readers see the old file or the new one, never a part; served to everyone, synced before the rename."""
    write_atomic(path, data, mode=_PUBLIC, fsync=True, if_changed=True)


def _copy_atomic(src: Path, dst: Path, sha256: str) -> None:
    """Copy `src` to `dst` so that no partial file is left in the index, whatever stops us: an exception or a
    handled signal removes the temporary file on the way out, a guardian process removes it if we are killed
    outright (SIGKILL, OOM killer)."""
    try:
        copy_atomic(src, dst, mode=_PUBLIC, fsync=True, guard=True, expect_sha256=sha256)
    except ContentChanged:
        raise PublishError(f"{src.name} changed while it was being published; nothing was listed") from None


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    """One publisher at a time per index; the kernel drops the lock of a killed one."""
    _mkdir_public(root)
    with open(root / LOCK, "a+b") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _say(f"waiting for the lock on {root} (another publisher is running)")
            fcntl.flock(fh, fcntl.LOCK_EX)
        yield


@dataclass(frozen=True)
class StaticIndex:
    """A directory served as-is (file://, nginx, `python -m http.server`)."""

    root: Path

    def publish(self, wheels: Sequence[CheckedWheel]) -> list[tuple[CheckedWheel, bool]]:
        with _locked(self.root):
            # Under the lock every temp file of ours belongs to a publisher that died: clear them (by the exact
            # name `temp_beside` gives; another file that merely looks alike is not ours to delete).
            for tmp in self.root.rglob(f".*{TMP_MARK}*"):
                if TMP_NAME.fullmatch(tmp.name) and tmp.is_file():
                    tmp.unlink(missing_ok=True)
            manifest = self.root / MANIFEST
            records = (
                parse_manifest(read_regular(manifest, MAX_MANIFEST, PublishError), str(manifest))
                if manifest.exists()
                else []
            )
            listed = {(r.variant, r.filename): r.sha256 for r in records}
            plan = []
            for w in wheels:  # decide for all before writing anything: a refusal leaves the index as it was
                key = (w.name.variant, w.name.filename)
                plan.append((w, is_new(w.record, listed.get(key), f"{self.root}/{w.name.variant}")))
                listed.setdefault(key, w.record.sha256)  # the same file twice in one call is added once
            for w, new in plan:
                if new or not self._dest(w).is_file():  # a listed file lost from disk is put back
                    self._place(w)
            added = [w.record for w, new in plan if new]
            if added:
                _write_atomic(manifest, render_manifest(records + added).encode())  # the commit point
            # Rendering from the manifest also repairs pages that a killed publisher left stale.
            self._write_pages(records + added)
            fsync_dir(self.root)
        return plan

    def _path(self, variant: str, *parts: str) -> Path:
        """`root/<variant>/simple/…`, proven to stay inside the root whatever a record says (names.under)."""
        return names.under(self.root, variant, "simple", *parts, field="index path", error=PublishError)

    def _dest(self, w: CheckedWheel) -> Path:
        return self._path(w.name.variant, w.name.project, w.name.filename)

    def _place(self, w: CheckedWheel) -> None:
        d = self._dest(w).parent
        _mkdir_public(d)
        _copy_atomic(w.path, self._dest(w), w.record.sha256)
        _write_atomic(d / f"{w.name.filename}.metadata", w.metadata)
        _write_atomic(d / f"{w.name.filename}.verify.json", w.report.encode())
        fsync_dir(d)

    def _write_pages(self, records: Sequence[WheelRecord]) -> None:
        groups: dict[tuple[str, str], list[WheelRecord]] = {}
        for r in records:
            groups.setdefault((r.variant, r.project), []).append(r)
        for (variant, project), rs in groups.items():
            d = self._path(variant, project)
            _write_atomic(d / "index.html", render_project_html(project, rs).encode())
            _write_atomic(d / "index.json", render_project_json(project, rs).encode())
        for variant in {r.variant for r in records}:
            projects = [p for v, p in groups if v == variant]
            d = self._path(variant)
            _write_atomic(d / "index.html", render_simple_html(projects).encode())
            _write_atomic(d / "index.json", render_simple_json(projects).encode())
        _write_atomic(self.root / "index.html", render_root_html(records).encode())
        self._write_variant_files(records)

    def _write_variant_files(self, records: Sequence[WheelRecord]) -> None:
        """Per root: fawheels-variants.json beside PEP 691's index.json; per project version: the PEP 825
        draft `<name>-<version>-variants.json` (not linked from the pages installers read: a draft)."""
        from fawheels.publish.variants import PER_ROOT_FILE, pep825_files, render_per_root

        docs = [r.to_json() for r in records]
        for variant in {r.variant for r in records}:
            _write_atomic(self._path(variant, PER_ROOT_FILE), render_per_root(variant, docs).encode())
        for (variant, project, filename), text in pep825_files(docs).items():
            _write_atomic(self._path(variant, project, filename), text.encode())


def _nearest_existing(path: Path) -> Path:
    for p in (path, *path.parents):
        if p.exists():
            return p
    return Path("/")


def check_index_dir(root: Path) -> None:
    """Refuse, before any wheel is read into the index, a root that is a file or cannot be written."""
    for p in (root.absolute(), *root.absolute().parents):
        if p.is_symlink() and not p.exists():  # a loop reads as "missing" to exists(), then fails as ELOOP
            raise PublishError(
                f"index {root}: {p} is a symbolic link that leads nowhere (a loop, or its target is gone)",
                hint="point --index at a real directory, or fix the link",
            )
    existing = _nearest_existing(root.absolute())
    if not existing.is_dir():
        raise PublishError(
            f"index {root}: {existing} is a file, not a directory",
            hint="pass the index directory (or a new path) to --index",
        )
    if (why := writable_dir(existing)) is not None:
        raise PublishError(
            f"index {root}: cannot write there: {why}",
            hint="fix its permissions, or publish to a directory you can write",
        )


def index_os_error(exc: OSError, root: Path) -> PublishError:
    """An OS error while writing the index, as a PublishError naming the index and the file."""
    where = f" ({exc.filename})" if exc.filename else ""
    return PublishError(
        f"cannot write the index {root}: {exc.strerror or exc}{where}; every file already in it is whole "
        "(each is written aside and renamed)",
        hint="check free space and permissions of the index directory, then publish again",
    )


def publish_command(
    wheels: Sequence[Path],
    *,
    index: str,
    verifier: Verifier = _reverify,
    env: Mapping[str, str] | None = None,
    accept_single_reader: bool = False,
) -> int:
    """`fawheels publish`: check every wheel, then add them all; exit 0, or PublishError (exit 8)."""
    location = parse_index(index)
    if location.root is not None:
        check_index_dir(location.root)  # before any wheel is read: a bad index path is refused at once
    checked = [check_wheel(Path(w), location.variant, index, verifier) for w in dict.fromkeys(wheels)]
    given: dict[str, CheckedWheel] = {}
    for w in checked:  # one file name stands for one set of bytes, in one call as in the index
        first = given.setdefault(w.name.filename, w)
        if first.record.sha256 != w.record.sha256:
            raise PublishError(
                f"{w.name.filename}: given twice with different bytes ({first.path}, {w.path}); nothing was published",
                hint="publish one of them; a wheel's file name stands for one set of bytes",
            )
    for w in checked:  # w.report is the fresh verification publish ran itself
        _refuse_single_reader(w.path, json.loads(w.report), accept_single_reader)
    gateway: StaticIndex | ServerIndex
    environ = os.environ if env is None else env
    if location.url is not None:
        creds = credentials_from_env(environ) or _keyring_credentials(location.url)
        gateway = ServerIndex(location.url, creds, timeout=index_timeout(environ))
    else:
        assert location.root is not None
        gateway = StaticIndex(location.root)
    try:
        published = gateway.publish(checked)
    except OSError as exc:
        raise index_os_error(exc, location.root or Path(index)) from None
    for w, new in published:
        dest = (
            f"{location.root}/{w.name.variant}/simple/{w.name.project}/" if location.root is not None else location.url
        )
        state = "published to" if new else "already in (same sha256, nothing to do)"
        _say(f"{w.name.filename}: {state} {dest} sha256={w.record.sha256}")
    return 0
