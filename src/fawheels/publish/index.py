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
The pure part (names, rules, rendering) comes first; everything that touches disk or network follows.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import html
import http.client
import ipaddress
import json
import os
import re
import secrets
import unicodedata
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import HeaderParser
from html.parser import HTMLParser
from importlib import import_module
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, unquote, urljoin, urlsplit

from packaging.utils import (
    InvalidWheelFilename,
    parse_wheel_filename,
)
from packaging.version import Version

from fawheels._util import names
from fawheels._util.errors import FawheelsError, PublishError
from fawheels._util.files import (
    TMP_MARK,
    TMP_NAME,
    ContentChanged,
    copy_atomic,
    fsync_dir,
    read_regular,
    sha256_file,
    write_atomic,
)
from fawheels._util.names import ErrorClass
from fawheels._util.show import say
from fawheels._util.wheels import metadata_problem
from fawheels.matrix.cudafacts import Arch

MANIFEST = "wheels.json"
LOCK = ".fawheels-publish.lock"
PEP691_VERSION = "1.1"
_VARIANT = re.compile(r"cu\d+")
_CHUNK = 1 << 20
_PUBLIC = 0o644  # index files are served to everyone, whatever the publisher's umask
MAX_ANSWER = 16 << 20  # of a server's answer read: pages and error bodies, never a wheel
MAX_EPOCH = 253402300799  # 9999-12-31T23:59:59Z
MAX_MANIFEST = MAX_ANSWER  # a record is about 1 KB: room for thousands of wheels
TIMEOUT_VAR = "FAWHEELS_INDEX_TIMEOUT"

# -------------------------------------------------------------------------------------------- pure part


@dataclass(frozen=True)
class WheelName:
    """What a wheel's filename says: project (PEP 503-normalized), version, variant, python tag."""

    filename: str
    project: str
    version: Version
    variant: str
    python_tag: str


def variant_of(version: Version) -> str:
    """`2.8.3+cu130torch2.14` → `cu130`: the CUDA part of the local label picks the index root."""
    local = version.local or ""
    m = _VARIANT.match(local)
    if m is None:
        raise PublishError(
            f"version {version} names no CUDA variant",
            hint="fawheels wheels carry a local label like +cu130torch2.14; the variant picks the index root",
        )
    return m.group(0)


def parse_wheel_name(filename: str) -> WheelName:
    if not filename.endswith(".whl"):
        raise PublishError(f"{filename}: not a wheel (only .whl files are published)")
    try:
        name, version, _build, tags = parse_wheel_filename(filename)
    except InvalidWheelFilename as exc:
        raise PublishError(f"{filename}: not a valid wheel filename ({exc})") from exc
    python_tag = sorted({t.interpreter for t in tags})[0]
    return WheelName(filename, str(name), version, variant_of(version), python_tag)


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


def check_variant(name: WheelName, pinned: str | None, where: str) -> None:
    if pinned is not None and name.variant != pinned:
        raise PublishError(
            f"{name.filename}: variant {name.variant} does not belong in the {pinned} index {where}",
            hint=f"publish it to the {name.variant} root instead",
        )


@dataclass(frozen=True)
class WheelRecord:
    """One published wheel: what the index pages and `wheels.json` say about it."""

    filename: str
    project: str
    version: str
    variant: str
    sha256: str
    size: int
    metadata_sha256: str
    requires_python: str | None
    target: str | None
    torch: str | None
    python: str | None
    sass: tuple[str, ...]
    ptx: tuple[str, ...]
    build_date: str | None
    published: str
    verify_checks: int  # checks the re-verification at publish time passed (0: the report lists none)
    facts: Mapping[str, Any] | None = field(default=None, hash=False)  # variants.CodeFacts.to_json()

    def to_json(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["sass"], d["ptx"] = list(self.sass), list(self.ptx)
        return d

    @classmethod
    def from_json(cls, d: object, where: str, error: ErrorClass = PublishError) -> WheelRecord:
        """One manifest record, each field checked against its grammar before anything uses it: its project,
        variant and filename become path parts of the index and words of a printed `pip install`."""
        if not isinstance(d, dict):
            raise error(f"{where}: expected an object, got {type(d).__name__}")
        fields = cls.__dataclass_fields__
        if unknown := sorted(map(str, set(d) - set(fields)))[:5]:
            raise error(f"{where}: unknown field(s) {', '.join(map(repr, unknown))}")
        if missing := [k for k in fields if k not in d and k != "facts"]:
            raise error(f"{where}: missing field(s) {', '.join(missing)}")
        project = names.project_name(d["project"], f"{where}.project", error, normalized=True)
        version = names.version(d["version"], f"{where}.version", error)
        variant = names.label(d["variant"], f"{where}.variant", error)
        filename = names.path_part(d["filename"], f"{where}.filename", error)
        try:
            wn = parse_wheel_name(filename)
        except PublishError as exc:
            raise error(f"{where}.filename: {exc.message}") from None
        if (wn.project, str(wn.version), wn.variant) != (project, version, variant):
            raise error(
                f"{where}: filename {filename!r} is not {project} {version} of the {variant} root",
                hint="wheels.json is written by fawheels publish; restore it from a backup",
            )
        text = {k: names.plain_text(d[k], f"{where}.{k}", error, optional=True) for k in _TEXT_FIELDS}
        archs = {}
        for kind in ("sass", "ptx"):
            values = d[kind]
            if not isinstance(values, list) or len(values) > 64:
                raise error(f"{where}.{kind}: expected a list of arches (sm_120, compute_90)")
            archs[kind] = tuple(_arch_text(a, f"{where}.{kind}[{i}]", error) for i, a in enumerate(values))
        facts = d.get("facts")
        if facts is not None:
            from fawheels.publish.variants import check_facts

            check_facts(facts, f"{where}.facts", error)
        return cls(
            filename=filename,
            project=project,
            version=version,
            variant=variant,
            sha256=names.sha256_hex(d["sha256"], f"{where}.sha256", error),
            size=names.integer(d["size"], f"{where}.size", error),
            metadata_sha256=names.sha256_hex(d["metadata_sha256"], f"{where}.metadata_sha256", error),
            verify_checks=names.integer(d["verify_checks"], f"{where}.verify_checks", error, high=10_000),
            sass=archs["sass"],
            ptx=archs["ptx"],
            facts=facts,
            published=names.plain_text(d["published"], f"{where}.published", error) or "",
            **text,
        )


_TEXT_FIELDS = ("requires_python", "target", "torch", "python", "build_date")


def _arch_text(value: object, field: str, error: ErrorClass) -> str:
    """An arch as the index lists it (`sm_120`, `compute_90a`), refused unless it parses as one."""
    text = names.plain_text(value, field, error) or ""
    try:
        Arch.parse(text)
    except ValueError as exc:
        raise error(f"{field}: {exc}") from None
    return text


def make_record(
    name: WheelName,
    *,
    sha256: str,
    size: int,
    metadata: bytes,
    build_info: Mapping[str, Any],
    published: datetime,
    verify_checks: int,
    facts: Mapping[str, Any] | None = None,
) -> WheelRecord:
    meta = HeaderParser().parsestr(metadata.decode("utf-8"))
    torch = build_info.get("torch") or {}
    archs = build_info.get("archs") or {}
    epoch = build_info.get("source_date_epoch")
    if epoch is not None:  # 1e12, 1e30, -1e15: not a time `datetime` can show (years 1970..9999 are)
        epoch = names.integer(epoch, "build-info.json source_date_epoch", PublishError, high=MAX_EPOCH)
    return WheelRecord(
        filename=name.filename,
        project=name.project,
        version=str(name.version),
        variant=name.variant,
        sha256=sha256,
        size=size,
        metadata_sha256=hashlib.sha256(metadata).hexdigest(),
        requires_python=meta.get("Requires-Python"),
        target=build_info.get("target"),
        torch=torch.get("requirement") or torch.get("version"),
        python=build_info.get("python"),
        sass=tuple(archs.get("sass") or ()),
        ptx=tuple(archs.get("ptx") or ()),
        build_date=(datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC") if epoch is not None else None),
        published=published.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        verify_checks=verify_checks,
        facts=facts,
    )


def is_new(record: WheelRecord, listed_sha256: str | None, where: str) -> bool:
    """Same filename and hash: nothing to do. Same filename, other bytes: refused (a file never changes)."""
    if listed_sha256 is None:
        return True
    if listed_sha256 == record.sha256:
        return False
    raise PublishError(
        f"{record.filename}: {where} already holds a file of that name with another sha256 "
        f"({listed_sha256[:16]}… ≠ {record.sha256[:16]}…)",
        hint="published files are immutable; bump the version (or build number) to publish new bytes",
    )


def _href(filename: str) -> str:
    return quote(filename)  # `+` of the local version must not reach a URL bare


def _sorted(records: Iterable[WheelRecord]) -> list[WheelRecord]:
    return sorted(records, key=lambda r: (r.variant, r.project, Version(r.version), r.filename))


def render_project_html(project: str, records: Sequence[WheelRecord]) -> str:
    links = []
    for r in _sorted(records):
        rp = f' data-requires-python="{html.escape(r.requires_python)}"' if r.requires_python else ""
        meta = f"sha256={r.metadata_sha256}"
        links.append(
            f'<a href="{_href(r.filename)}#sha256={r.sha256}"{rp} data-dist-info-metadata="{meta}" '
            f'data-core-metadata="{meta}">{html.escape(r.filename)}</a><br>'
        )
    return (
        "<!DOCTYPE html>\n<html>\n<head>\n"
        f'<meta name="pypi:repository-version" content="{PEP691_VERSION}">\n'
        f"<title>Links for {html.escape(project)}</title>\n</head>\n<body>\n"
        f"<h1>Links for {html.escape(project)}</h1>\n" + "\n".join(links) + "\n</body>\n</html>\n"
    )


def render_project_json(project: str, records: Sequence[WheelRecord]) -> str:
    rs = _sorted(records)
    files = [
        {
            "filename": r.filename,
            "url": _href(r.filename),
            "hashes": {"sha256": r.sha256},
            "requires-python": r.requires_python,
            "core-metadata": {"sha256": r.metadata_sha256},
            "dist-info-metadata": {"sha256": r.metadata_sha256},
            "size": r.size,
            "upload-time": r.published,
        }
        for r in rs
    ]
    versions = sorted({r.version for r in rs}, key=Version)
    doc = {"meta": {"api-version": PEP691_VERSION}, "name": project, "files": files, "versions": versions}
    return json.dumps(doc, indent=1) + "\n"


def render_simple_html(projects: Iterable[str]) -> str:
    links = "\n".join(f'<a href="{quote(p)}/">{html.escape(p)}</a><br>' for p in sorted(set(projects)))
    return (
        "<!DOCTYPE html>\n<html>\n<head>\n"
        f'<meta name="pypi:repository-version" content="{PEP691_VERSION}">\n'
        "<title>Simple index</title>\n</head>\n<body>\n" + links + "\n</body>\n</html>\n"
    )


def render_simple_json(projects: Iterable[str]) -> str:
    doc = {"meta": {"api-version": PEP691_VERSION}, "projects": [{"name": p} for p in sorted(set(projects))]}
    return json.dumps(doc, indent=1) + "\n"


def render_manifest(records: Iterable[WheelRecord]) -> str:
    return json.dumps({"schema": 1, "wheels": [r.to_json() for r in _sorted(records)]}, indent=1) + "\n"


def parse_manifest(data: bytes | str, where: str = MANIFEST, error: ErrorClass = PublishError) -> list[WheelRecord]:
    """The records of a `wheels.json`, every one checked (WheelRecord.from_json); `error` names the refusal's
    class: publish's for an index it will write, config's for one `compat --index` reads."""
    hint = "wheels.json is written by fawheels publish; restore it from a backup or publish into a new index"
    try:
        doc = json.loads(data.decode("utf-8") if isinstance(data, bytes) else data)
    except UnicodeDecodeError:
        raise error(f"{where}: not UTF-8, so not a manifest fawheels wrote", hint=hint) from None
    except (ValueError, RecursionError) as exc:
        raise error(f"{where}: not JSON ({str(exc)[:200]})", hint=hint) from None
    wheels = doc.get("wheels") if isinstance(doc, dict) else None
    if not isinstance(wheels, list) or doc.get("schema", 1) != 1:
        raise error(f'{where}: not a fawheels index manifest (no schema 1 "wheels" list)', hint=hint)
    records = [WheelRecord.from_json(d, f"{where}: wheels[{i}]", error) for i, d in enumerate(wheels)]
    seen: set[tuple[str, str]] = set()
    for r in records:
        if (r.variant, r.filename) in seen:
            raise error(f"{where}: {r.filename} is listed twice in {r.variant}", hint=hint)
        seen.add((r.variant, r.filename))
    return records


def human_size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    size, units = n / 1024, ["KiB", "MiB", "GiB"]
    while size >= 1024 and len(units) > 1:
        size, units = size / 1024, units[1:]
    return f"{size:.1f} {units[0]}"


_PAGE_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#1b1f24}
h1{font-size:1.5rem}h2{margin-top:2rem;font-size:1.2rem}
table{border-collapse:collapse;font-size:.85rem}
th,td{border-bottom:1px solid #d0d7de;padding:.35rem .6rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}code{font-size:.8rem}.ok{color:#1a7f37;font-weight:600}
.muted{color:#57606a}.nowrap{white-space:nowrap}
"""


def _ptx_cell(r: WheelRecord) -> str:
    if r.facts and r.facts.get("ptx"):
        return " ".join(f"{p['arch']} (ISA {p['isa']})" for p in r.facts["ptx"])
    return " ".join(r.ptx) or "—"


def _driver_cell(r: WheelRecord) -> str:
    if not r.facts:
        return "—"
    return f"≥ {r.facts['min_driver']} (CUDA {r.facts['cuda']}, runtime {r.facts['cuda_runtime_major']}.x)"


def render_root_html(records: Sequence[WheelRecord]) -> str:
    """The page for people: per variant, every wheel with what it was built for and how it was checked."""
    by_variant: dict[str, list[WheelRecord]] = {}
    for r in _sorted(records):
        by_variant.setdefault(r.variant, []).append(r)
    e = html.escape
    out = [
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
        "<title>fawheels index</title>\n<style>",
        _PAGE_STYLE,
        "</style>\n</head>\n<body>\n",
        "<h1>fawheels wheel index</h1>\n",
        '<p class="muted">Every wheel below passed <code>fawheels verify</code> when it was published. '
        f'Machine-readable list: <a href="{MANIFEST}">{MANIFEST}</a>.</p>\n',
    ]
    if not by_variant:
        out.append("<p>No wheels published yet.</p>\n")
    for variant, rs in by_variant.items():
        v = e(variant)
        projects = sorted({r.project for r in rs})
        out.append(
            f'<h2 id="{v}">{v}</h2>\n<p>Install: <code>pip install --index-url &lt;this index&gt;/{v}/simple '
            f'{e(projects[0])}</code> · <a href="{v}/simple/">{v}/simple/</a> (PEP 503) · '
            f'<a href="{v}/simple/index.json">index.json</a> (PEP 691) · '
            f'<a href="{v}/simple/fawheels-variants.json">fawheels-variants.json</a> (variant facts; '
            "PEP 825 draft-format files beside each project)</p>\n"
            "<table>\n<tr><th>wheel</th><th>target</th><th>torch</th><th>python</th><th>SASS</th>"
            '<th>PTX</th><th title="oldest NVIDIA driver that loads every kernel (from the wheel\'s code)">'
            'min driver</th><th title="SOURCE_DATE_EPOCH of the build">build date</th><th>published</th>'
            "<th>size</th><th>sha256</th><th>verify</th></tr>\n"
        )
        for r in rs:
            base = f"{v}/simple/{quote(r.project)}/{_href(r.filename)}"
            checks = f" {r.verify_checks} checks" if r.verify_checks else ""
            out.append(
                f'<tr><td><a href="{base}#sha256={r.sha256}">{e(r.filename)}</a></td>'
                f"<td>{e(r.target or '—')}</td><td>{e(r.torch or '—')}</td><td>{e(r.python or '—')}</td>"
                f"<td>{e(' '.join(r.sass) or '—')}</td><td>{e(_ptx_cell(r))}</td>"
                f'<td class="nowrap">{e(_driver_cell(r))}</td>'
                f"<td>{e(r.build_date or '—')}</td><td>{e(r.published.replace('T', ' '))}</td>"
                f'<td class="nowrap">{human_size(r.size)}</td>'
                f'<td><code title="{r.sha256}">{r.sha256[:16]}…</code></td>'
                f'<td><span class="ok">passed</span>{checks} · <a href="{base}.verify.json">report</a></td></tr>\n'
            )
        out.append("</table>\n")
    out.append("</body>\n</html>\n")
    return "".join(out)


class _LinkParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href")
        if tag == "a" and href:
            self.hrefs.append(href)


def parse_simple_links(page: str) -> dict[str, str | None]:
    """filename → sha256 (or None) from a PEP 503 project page."""
    parser = _LinkParser()
    parser.feed(page)
    out: dict[str, str | None] = {}
    for href in parser.hrefs:
        path, _, frag = href.partition("#")
        algo, _, digest = frag.partition("=")
        out[unquote(path.rsplit("/", 1)[-1])] = digest if algo == "sha256" else None
    return out


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)  # repr=False keeps it out of tracebacks and debug prints


def credentials_from_env(env: Mapping[str, str]) -> Credentials | None:
    for user_var, pass_var in (
        ("FAWHEELS_INDEX_USER", "FAWHEELS_INDEX_PASSWORD"),
        ("TWINE_USERNAME", "TWINE_PASSWORD"),
    ):
        if env.get(pass_var):
            return Credentials(env.get(user_var) or "__token__", env[pass_var])
    return None


def redact(text: str, creds: Credentials | None) -> str:
    """`text` without the password in any form (plain, in a Basic header's base64, URL-quoted) and without
    any other credential-shaped value (redact.py)."""
    from fawheels._util.redact import redact as _redact

    if creds is None:
        return _redact(text)
    return _redact(text, [creds.password], [creds.username])


# ------------------------------------------------------------------------------------------- I/O gateway


class VerifyReportLike(Protocol):
    @property
    def ok(self) -> bool: ...

    def to_json(self) -> object: ...


Verifier = Callable[[Path], VerifyReportLike]


def _reverify(path: Path) -> VerifyReportLike:
    from fawheels.check import verify

    return verify.verify_wheel(path)


@dataclass(frozen=True)
class CheckedWheel:
    """A wheel that passed every refusal rule, with what the index needs from it."""

    path: Path
    name: WheelName
    record: WheelRecord
    metadata: bytes
    report: str


def _say(msg: str) -> None:
    say(msg, flush=True)


def _read_wheel(path: Path, name: WheelName) -> tuple[bytes, dict[str, Any]]:
    """METADATA bytes and build-info.json of a wheel; refuses one that is not a consistent wheel."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            dist_infos = {
                n.split("/", 1)[0]
                for n in names
                if n.count("/") == 1 and n.split("/", 1)[0].endswith(".dist-info") and n.endswith("/METADATA")
            }
            if len(dist_infos) != 1:
                raise PublishError(f"{path.name}: expected one .dist-info with METADATA, found {len(dist_infos)}")
            dist_info = dist_infos.pop()
            metadata = _read_small(zf, f"{dist_info}/METADATA", path)
            try:
                build_info = json.loads(_read_small(zf, f"{dist_info}/build-info.json", path))
            except KeyError as exc:
                raise PublishError(f"{path.name}: no {dist_info}/build-info.json; not a fawheels build") from exc
            if not isinstance(build_info, dict):
                raise PublishError(f"{path.name}: {dist_info}/build-info.json is not a JSON object")
    except zipfile.BadZipFile as exc:
        raise PublishError(f"{path.name}: not a zip archive, so not a wheel") from exc
    except (ValueError, RecursionError, NotImplementedError, EOFError, zipfile.LargeZipFile, zlib.error) as exc:
        raise PublishError(
            f"{path.name}: unreadable wheel ({type(exc).__name__}: {str(exc)[:200]})",
            hint="rebuild it; a wheel from `fawheels build` reads cleanly",
        ) from None
    if problem := metadata_problem(metadata, name.project, name.version):
        raise PublishError(f"{path.name}: {problem}", hint="rebuild it; fawheels build writes UTF-8 METADATA")
    return metadata, build_info


_MAX_META = 4 << 20  # METADATA and build-info.json are kilobytes; more is not a wheel of ours


def _read_small(zf: zipfile.ZipFile, member: str, path: Path) -> bytes:
    """A small member, refused before inflating when the archive says (or it turns out) it is large."""
    info = zf.getinfo(member)
    if info.file_size > _MAX_META:
        raise PublishError(f"{path.name}: {member} claims {info.file_size} bytes (at most {_MAX_META} expected)")
    with zf.open(info) as fh:
        data = fh.read(_MAX_META + 1)
    if len(data) > _MAX_META:
        raise PublishError(f"{path.name}: {member} inflates past {_MAX_META} bytes")
    return data


def _refuse_single_reader(path: Path, doc: Mapping[str, Any], accept: bool) -> None:
    """A wheel whose CUDA code only one reader could read (cuobjdump could not run) needs `accept`."""
    if doc.get("single_reader") is True and not accept:
        note = (doc.get("readers") or {}).get("note") or "read by one reader only"
        raise PublishError(
            f"{path.name}: its CUDA code was {note}; a published wheel is read by our parser and cuobjdump",
            hint="install nvidia-cuda-cuobjdump, or pass --accept-single-reader",
        )


def _report_doc(report: VerifyReportLike) -> dict[str, Any]:
    doc = report.to_json()
    parsed = json.loads(doc) if isinstance(doc, str) else doc
    return parsed if isinstance(parsed, dict) else {"ok": report.ok}


def _variant_facts(path: Path, build_info: Mapping[str, Any]) -> dict[str, Any]:
    """What an installer would select this wheel on, read from its code (variants.py)."""
    from fawheels.check.binary import read_path
    from fawheels.publish.variants import code_facts

    try:
        return code_facts(read_path(path), build_info).to_json()
    except FawheelsError as exc:
        raise PublishError(f"{path.name}: cannot read its variant facts: {exc}") from exc


def check_wheel(path: Path, pinned: str | None, where: str, verifier: Verifier = _reverify) -> CheckedWheel:
    """Every refusal rule, cheapest first; raises PublishError and touches no index."""
    try:
        return _check_wheel(path, pinned, where, verifier)
    except OSError as exc:
        raise PublishError(
            f"{path}: cannot read {exc.filename or path}: {exc.strerror or exc}",
            hint="check that the wheel and its .verify.json are readable files",
        ) from None


def _check_wheel(path: Path, pinned: str | None, where: str, verifier: Verifier) -> CheckedWheel:
    name = parse_wheel_name(path.name)
    if not path.is_file():
        raise PublishError(f"{path}: no such file")
    check_variant(name, pinned, where)
    metadata, build_info = _read_wheel(path, name)
    report_path = path.with_name(path.name + ".verify.json")
    try:
        stored = json.loads(report_path.read_text())
    except FileNotFoundError as exc:
        raise PublishError(
            f"{path.name}: no verify report beside it ({report_path.name})",
            hint=f"run `fawheels verify {path} --write-report` (builds write it)",
        ) from exc
    except (ValueError, RecursionError):
        raise PublishError(
            f"{path.name}: {report_path.name} is not JSON",
            hint=f"run `fawheels verify {path} --write-report` to write it afresh",
        ) from None
    if not isinstance(stored, dict) or stored.get("ok") is not True:
        raise PublishError(
            f"{path.name}: its verify report does not say ok",
            hint="a wheel that failed verification is never published",
        )
    sha256 = sha256_file(path)
    if stored.get("sha256", sha256) != sha256:  # a report speaks for exact bytes, when it names them
        raise PublishError(
            f"{path.name}: its verify report is for other bytes (sha256 {str(stored['sha256'])[:16]}…)",
            hint=f"run `fawheels verify {path} --write-report` again",
        )
    try:
        fresh = verifier(path)
    except FawheelsError as exc:
        raise PublishError(f"{path.name}: re-verification could not run: {exc}") from exc
    if not fresh.ok:
        raise PublishError(
            f"{path.name}: re-verification failed (the report beside it is stale)", hint=f"see `fawheels verify {path}`"
        )
    doc = _report_doc(fresh)
    record = make_record(
        name,
        sha256=sha256,
        size=path.stat().st_size,
        metadata=metadata,
        build_info=build_info,
        published=datetime.now(UTC),
        verify_checks=len(doc.get("checks") or ()),
        facts=_variant_facts(path, build_info),
    )
    return CheckedWheel(path, name, record, metadata, json.dumps(doc, indent=2, sort_keys=True) + "\n")


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


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A pypiserver redirects unknown projects to PyPI; that is "not here", not something to follow.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServerIndex:
    """A running index server (pypiserver, devpi, …) reached through the legacy upload API at `url`."""

    url: str
    credentials: Credentials | None
    timeout: float = 60.0  # seconds for the connection and for each read: a silent server ends in an error

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if self.credentials and parts.scheme != "https" and not _is_loopback(parts.hostname or ""):
            raise PublishError(
                f"refusing to send credentials over plain http to {parts.hostname}",
                hint="use https, or a loopback address",
            )

    def publish(self, wheels: Sequence[CheckedWheel]) -> list[tuple[CheckedWheel, bool]]:
        plan = [(w, is_new(w.record, self._listed(w), self.url)) for w in wheels]
        if any(new for _, new in plan):
            self._check_auth()
        for w, new in plan:
            if new:
                self._upload(w)
                stored = self._listed(w)
                if stored is not None and stored != w.record.sha256:
                    raise PublishError(
                        f"{w.name.filename}: the server lists sha256 {stored}, not the {w.record.sha256} that was sent"
                    )
        return plan

    def _headers(self) -> dict[str, str]:
        if self.credentials is None:
            return {}
        token = f"{self.credentials.username}:{self.credentials.password}".encode()
        return {"Authorization": "Basic " + base64.b64encode(token).decode()}

    def _request(self, req: urllib.request.Request) -> tuple[int, str]:
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            with opener.open(req, timeout=self.timeout) as resp:
                return int(resp.status), resp.read(MAX_ANSWER).decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(MAX_ANSWER).decode("utf-8", "replace")
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                raise self._timed_out() from None
            reason = redact(str(exc.reason), self.credentials)
            raise PublishError(
                f"cannot reach the index at {self.url}: {reason}", hint="check the URL and that the server is up"
            ) from None
        except TimeoutError:
            raise self._timed_out() from None
        except (OSError, http.client.HTTPException) as exc:  # reset or closed mid-answer
            raise PublishError(
                f"the index at {self.url} broke off the connection: "
                f"{redact(str(exc) or type(exc).__name__, self.credentials)}",
                hint="retry; if it persists, look at the server's log",
            ) from None

    def _timed_out(self) -> PublishError:
        return PublishError(
            f"the index at {self.url} did not answer within {self.timeout:g} s",
            hint=f"check that the server is up and not overloaded; {TIMEOUT_VAR}=SECONDS waits longer",
        )

    def _listed(self, w: CheckedWheel) -> str | None:
        """sha256 of the file of that name the server already lists, or None."""
        url = urljoin(self.url, f"simple/{quote(w.name.project)}/")
        status, body = self._request(urllib.request.Request(url, headers=self._headers()))
        if status in (401, 403):
            raise PublishError(
                f"the index at {self.url} refused to list {w.name.project} ({status})",
                hint="check FAWHEELS_INDEX_USER / FAWHEELS_INDEX_PASSWORD",
            )
        links = parse_simple_links(body) if status == 200 else {}
        if w.name.filename not in links:
            return None
        digest = links[w.name.filename]
        if digest is None:
            raise PublishError(f"{w.name.filename}: {self.url} already lists it without a sha256 to compare")
        return digest

    def _refuse_auth(self, status: int) -> PublishError:
        who = "anonymous upload" if self.credentials is None else "the credentials"
        return PublishError(
            f"the index at {self.url} refused {who} ({status})",
            hint="set FAWHEELS_INDEX_USER / FAWHEELS_INDEX_PASSWORD (or keyring)",
        )

    def _check_auth(self) -> None:
        """An upload without its file: servers answer 401/403 before reading a body, and a refused
        upload of hundreds of MB would only show up as a broken pipe."""
        boundary = "fawheels-" + secrets.token_hex(16)
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name=":action"\r\n\r\nfile_upload\r\n--{boundary}--\r\n'
        ).encode()
        req = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={**self._headers(), "Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        status, _ = self._request(req)
        if status in (401, 403):
            raise self._refuse_auth(status)

    def _upload(self, w: CheckedWheel) -> None:
        meta = HeaderParser().parsestr(w.metadata.decode("utf-8"))
        fields = {
            ":action": "file_upload",
            "protocol_version": "1",
            "metadata_version": meta.get("Metadata-Version", "2.1"),
            "name": meta.get("Name", w.name.project),
            "version": meta.get("Version", str(w.name.version)),
            "filetype": "bdist_wheel",
            "pyversion": w.name.python_tag,
            "sha256_digest": w.record.sha256,
            "requires_python": w.record.requires_python or "",
        }
        boundary = "fawheels-" + secrets.token_hex(16)
        head = (
            b"".join(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
                for k, v in fields.items()
            )
            + (
                f'--{boundary}\r\nContent-Disposition: form-data; name="content"; '
                f'filename="{w.name.filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
            ).encode()
        )
        tail = f"\r\n--{boundary}--\r\n".encode()

        def body() -> Iterator[bytes]:  # streamed: FA2 wheels are hundreds of MB
            yield head
            with open(w.path, "rb") as fh:
                while chunk := fh.read(_CHUNK):
                    yield chunk
            yield tail

        req = urllib.request.Request(
            self.url,
            data=body(),
            method="POST",
            headers={
                **self._headers(),
                "Content-Type": f"multipart/form-data; boundary={boundary}",
                "Content-Length": str(len(head) + w.record.size + len(tail)),
            },
        )
        status, text = self._request(req)
        if status in (401, 403):
            raise self._refuse_auth(status)
        if not 200 <= status < 300:
            raise PublishError(
                f"the index at {self.url} refused {w.name.filename} ({status}): "
                f"{redact(text.strip()[:300], self.credentials)}"
            )


def _keyring_credentials(url: str) -> Credentials | None:
    """keyring is optional: used when installed and it holds a credential for the index URL."""
    try:
        keyring: Any = import_module("keyring")
    except ImportError:
        return None
    try:
        cred = keyring.get_credential(url, None)
    except keyring.errors.KeyringError:  # no usable backend (headless CI) is "no credential"
        return None
    return Credentials(str(cred.username), str(cred.password)) if cred and cred.password else None


def index_timeout(env: Mapping[str, str]) -> float:
    raw = env.get(TIMEOUT_VAR)
    if not raw:
        return 60.0
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= 3600:
        raise PublishError(f"{TIMEOUT_VAR}={raw!r}: expected seconds between 0 and 3600", hint="e.g. 120")
    return value


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
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PublishError(
            f"index {root}: {existing} is not writable by this user",
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
