"""The one rule for names and paths that come from data (a manifest, a wheel member, METADATA, a config, the
matrix, a server's answer): each is checked against its grammar before it is used, and anything joined into a
path is shown to stay under its root.

Grammars: a project name is PEP 508's (and, where it names a folder, PEP 503-normalized); a version is PEP 440's
in its normalized spelling (so no whitespace or newline survives); a label (index variant, profile name) is
`[a-z0-9._-]+` and neither `.` nor `..`. Member names are compared by `member_key`: what an installer would
write to a case-insensitive, Unicode-normalizing file system, so `pkg/./x.so`, `pkg//x.so`, `PKG/x.so` and the
NFD spelling of a name are one member.
"""

from __future__ import annotations

import os
import posixpath
import re
import unicodedata
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from fawheels._util.errors import FawheelsError

ErrorClass = type[FawheelsError]

MAX_NAME = 200  # characters of any one name; PyPI's longest project names are under 100
_PEP508_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
_PEP503_NAME = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_LABEL = re.compile(r"[a-z0-9._-]+")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _text(value: object, field: str, error: ErrorClass, grammar: str) -> str:
    if not isinstance(value, str):
        raise error(f"{field}: expected a string ({grammar}), got {type(value).__name__}")
    if not value or len(value) > MAX_NAME:
        raise error(f"{field}: {len(value)} characters; expected 1 to {MAX_NAME} ({grammar})")
    return value


def project_name(value: object, field: str, error: ErrorClass, *, normalized: bool = False) -> str:
    """A PEP 508 project name (`normalized`: in PEP 503's normalized form, as index folders are named)."""
    grammar = "a PEP 503 normalized project name, e.g. flash-attn" if normalized else "a PEP 508 project name"
    name = _text(value, field, error, grammar)
    if not (_PEP503_NAME if normalized else _PEP508_NAME).fullmatch(name):
        raise error(f"{field}: {name!r} is not {grammar}", hint=f"e.g. {canonicalize_name(name) or 'flash-attn'}")
    return name


def version(value: object, field: str, error: ErrorClass) -> str:
    """A PEP 440 version spelled as packaging normalizes it (`1.0+cu130torch2.14`)."""
    text = _text(value, field, error, "a PEP 440 version")
    try:
        normal = str(Version(text))
    except InvalidVersion:
        raise error(f"{field}: {text!r} is not a PEP 440 version", hint="e.g. 2.8.3+cu130torch2.14") from None
    if normal != text:
        raise error(f"{field}: {text!r} is not in normalized form", hint=f"write {normal!r}")
    return text


def label(value: object, field: str, error: ErrorClass) -> str:
    """A label that becomes one path part or one YAML key: `[a-z0-9._-]+`, not `.` or `..`."""
    text = _text(value, field, error, "[a-z0-9._-]+")
    if not _LABEL.fullmatch(text) or text in (".", ".."):
        raise error(
            f"{field}: {text!r} is not a label (lower-case letters, digits, '.', '_', '-'; not '.' or '..')",
            hint=f"e.g. {re.sub(r'[^a-z0-9._-]+', '-', text.lower()).strip('.-') or 'cu130'}",
        )
    return text


def sha256_hex(value: object, field: str, error: ErrorClass) -> str:
    text = _text(value, field, error, "64 lower-case hex digits")
    if not _SHA256.fullmatch(text):
        raise error(f"{field}: {text[:80]!r} is not a sha256 (64 lower-case hex digits)")
    return text


def path_part(value: object, field: str, error: ErrorClass) -> str:
    """One path component: no separator, no NUL or control character, not `.` or `..`."""
    text = _text(value, field, error, "one file name")
    if text in (".", "..") or any(c in "/\\" or unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in text):
        raise error(f"{field}: {text!r} is not a plain file name (a separator, '..' or a control character)")
    return text


def under(root: Path, *parts: str, field: str, error: ErrorClass) -> Path:
    """`root/part/…`, refused unless every part is one plain component and the normalized result (and, where
    it exists, the resolved one) lies inside `root`."""
    for part in parts:
        path_part(part, field, error)
    base = Path(os.path.normpath(root.absolute()))
    path = Path(os.path.normpath(base.joinpath(*parts)))
    inside = path == base or base in path.parents
    if inside and path.exists():
        real = base.resolve()
        inside = path.resolve() == real or real in path.resolve().parents
    if not inside:
        raise error(f"{field}: {'/'.join(parts)!r} leads outside {root}", hint="the value must name a file inside it")
    return path


def member_key(name: str) -> str:
    """The file a member name would become on disk, for duplicate checks: `./` and `//` dropped, Unicode NFC,
    case folded (macOS and Windows installs are case-insensitive)."""
    normal = posixpath.normpath("/" + unicodedata.normalize("NFC", name)).lstrip("/")
    return normal.casefold()


def plain_text(value: object, field: str, error: ErrorClass, *, optional: bool = False) -> str | None:
    """A short free-text value from data (a target id, a torch requirement): one line, nothing a terminal acts on."""
    if value is None and optional:
        return None
    text = _text(value, field, error, "one line of text")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp") for c in text):
        raise error(f"{field}: {text[:80]!r} holds a control character")
    return text


def integer(value: object, field: str, error: ErrorClass, *, low: int = 0, high: int = 2**53) -> int:
    """A whole number in [low, high] (a JSON `true` is not 1; a 5,000-digit number is out of range)."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        shown = type(value).__name__ if not isinstance(value, int) else "out of range"
        raise error(f"{field}: expected a whole number from {low} to {high} ({shown})")
    return value
