"""The index's records (pure): what a wheel's filename says, one `wheels.json` record per published wheel, each
field checked against its grammar when read (a manifest is data from a server), and the manifest itself."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import HeaderParser
from typing import Any

from packaging.utils import (
    InvalidWheelFilename,
    parse_wheel_filename,
)
from packaging.version import Version

from fawheels._util import names
from fawheels._util.errors import PublishError
from fawheels._util.names import ErrorClass
from fawheels.matrix import cudafacts as cf
from fawheels.matrix.cudafacts import Arch

MANIFEST = "wheels.json"


_VARIANT = re.compile(r"cu\d+")


MAX_ANSWER = 16 << 20  # of a server's answer read: pages and error bodies, never a wheel


MAX_EPOCH = 253402300799  # 9999-12-31T23:59:59Z


MAX_MANIFEST = MAX_ANSWER  # a record is about 1 KB: room for thousands of wheels


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


def _sorted(records: Iterable[WheelRecord]) -> list[WheelRecord]:
    return sorted(records, key=lambda r: (r.variant, r.project, Version(r.version), r.filename))


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


def check_facts(facts: object, where: str, error: ErrorClass) -> None:
    """A manifest's `facts`, as `CodeFacts.to_json` writes them, each value parsed as what `judge` reads it as;
    a string where a list belongs, a 5,000-digit driver or an unknown arch is refused naming the field."""
    if not isinstance(facts, dict):
        raise error(f"{where}: expected an object, got {type(facts).__name__}")
    if missing := [k for k in _FACT_FIELDS if k not in facts]:
        raise error(f"{where}: missing field(s) {', '.join(missing)}")

    def parsed(value: object, field: str, parse: Callable[[str], object]) -> None:
        text = names.plain_text(value, f"{where}.{field}", error) or ""
        try:
            parse(text)
        except ValueError as exc:
            raise error(f"{where}.{field}: {exc}") from None

    def listed(field: str) -> list[object]:
        values = facts[field]
        if not isinstance(values, list) or len(values) > 64:
            raise error(f"{where}.{field}: expected a list (of at most 64 values), got {type(values).__name__}")
        return values

    parsed(facts["cuda"], "cuda", cf.Version.parse)
    parsed(facts["min_driver"], "min_driver", cf.Version.parse)
    names.integer(facts["cuda_runtime_major"], f"{where}.cuda_runtime_major", error, low=1, high=99)
    for i, arch in enumerate(listed("sass")):
        parsed(arch, f"sass[{i}]", Arch.parse)
    for i, p in enumerate(listed("ptx")):
        if not isinstance(p, dict):
            raise error(f'{where}.ptx[{i}]: expected {{"arch": …, "isa": …}}, got {type(p).__name__}')
        parsed(p.get("arch"), f"ptx[{i}].arch", Arch.parse)
        parsed(p.get("isa"), f"ptx[{i}].isa", cf.Version.parse)
    names.label(facts["variant_label"], f"{where}.variant_label", error)
    for i, line in enumerate(listed("variant_properties")):
        text = names.plain_text(line, f"{where}.variant_properties[{i}]", error) or ""
        if len(text.split(" :: ")) != 3:
            raise error(f"{where}.variant_properties[{i}]: {text!r} is not 'namespace :: feature :: value'")


_FACT_FIELDS = ("cuda", "cuda_runtime_major", "sass", "ptx", "min_driver", "variant_label", "variant_properties")
