"""What a wheel must pass before any index takes it: a name that says its variant, a passing `.verify.json` for
these bytes, a fresh re-verification, readable METADATA and build-info; the record publish lists comes from it."""

from __future__ import annotations

import json
import zipfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from fawheels._util.errors import FawheelsError, PublishError
from fawheels._util.files import (
    sha256_file,
)
from fawheels._util.wheels import metadata_problem
from fawheels.publish.records import (
    WheelName,
    WheelRecord,
    check_variant,
    make_record,
    parse_wheel_name,
)


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
    from fawheels.check.wheelzip import read_path
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
