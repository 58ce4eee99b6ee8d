"""What verify reads of a wheel, once, before any check runs: RECORD, METADATA, WHEEL, build-info.json, every
member that holds CUDA code as both readers see it, and the op schemas an extension registers."""

from __future__ import annotations

import base64
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fawheels import __version__
from fawheels._util.errors import InspectError
from fawheels._util.names import member_key
from fawheels.check.binary import CodeEntry, CodeObject, parse_bytes
from fawheels.check.cuobjdump import Cuobjdump, cuobjdump_bytes, disagreements, locate_cuobjdump
from fawheels.check.wheelzip import embedded_fatbin, holds_cuda_code, iter_members, open_wheel
from fawheels.matrix.recipes import RECIPES

READERS = ("both", "fawheels", "cuobjdump")


MAX_TEXT_BYTES = 16 << 20  # a dist-info text (RECORD, METADATA, build-info.json) larger than this is refused


@dataclass(frozen=True)
class ReadersRun:
    """Which readers read the wheel's CUDA code, their versions, and what came of it."""

    requested: str  # both | fawheels | cuobjdump
    ran: tuple[tuple[str, str], ...]  # (reader, version)
    cuobjdump_origin: str | None = None  # where the cuobjdump came from (toolkit, cache, ...)
    note: str = ""  # why a requested reader did not run ("read by our parser only: ...")
    agree: bool | None = None  # both ran: did they agree on every entry
    code_members: int = 0  # members that hold CUDA code (0: nothing for a second reader to read)

    def to_json(self) -> dict[str, Any]:
        return {
            "requested": self.requested,
            "ran": [{"reader": n, "version": v} for n, v in self.ran],
            "cuobjdump_origin": self.cuobjdump_origin,
            "note": self.note,
            "agree": self.agree,
            "code_members": self.code_members,
        }


@dataclass(frozen=True)
class WheelFacts:
    """What the checks need from a wheel, read once."""

    filename: str
    members: dict[str, tuple[str, int]]  # name -> (RECORD-style hash, size)
    dist_info: str | None  # the one *.dist-info directory (None when there are several)
    texts: dict[str, str]  # WHEEL, METADATA, RECORD, build-info.json of dist_info, when present
    objects: tuple[CodeObject, ...]  # every member holding CUDA code, as the checks see it
    unreadable: dict[str, str] = field(default_factory=dict)  # code members a reader refused -> why
    op_schemas: dict[str, dict[str, str]] = field(default_factory=dict)  # code member -> op name -> schema
    duplicates: tuple[str, ...] = ()  # member names that are one file once installed (names.member_key)
    readers: ReadersRun | None = None
    disagreements: tuple[str, ...] = ()  # where our parser and cuobjdump read the code differently
    metadata: bytes = b""  # METADATA as stored: its encoding is checked, not repaired


def _record_hash(sha256: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(sha256).rstrip(b"=").decode()


_cuobjdump_found: dict[tuple[str, bool], tuple[Cuobjdump | None, str]] = {}


def _cuobjdump(toolkit: Path | None, install: bool = True) -> tuple[Cuobjdump | None, str]:
    """The cuobjdump verify uses (found, or installed into the cache when `install`; once per process)."""
    key = (str(toolkit), install)
    if key not in _cuobjdump_found:
        _cuobjdump_found[key] = locate_cuobjdump(toolkit, install=install)
    return _cuobjdump_found[key]


def read_wheel(path: Path, reader: str = "both", toolkit: Path | None = None, install: bool = True) -> WheelFacts:
    """Hash every member; read every member that holds CUDA code (by content, whatever its name)
    with the readers asked for; raises InspectError when it is no readable wheel at all."""
    if reader not in READERS:
        raise InspectError(f"unknown reader {reader!r}", hint=f"use one of {', '.join(READERS)}")
    tool: Cuobjdump | None = None
    why_not = ""
    located = reader == "fawheels"  # cuobjdump is looked for at the first member holding code

    members: dict[str, tuple[str, int]] = {}
    ours: list[CodeObject] = []
    theirs: dict[str, list[CodeEntry]] = {}
    unreadable: dict[str, str] = {}
    texts: dict[str, str] = {}
    op_schemas: dict[str, dict[str, str]] = {}
    metadata = b""
    with open_wheel(path) as zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        # `pkg/./x.so`, `pkg//x.so`, `PKG/x.so` and an NFD spelling install over `pkg/x.so`: one file
        counts = Counter(member_key(i.filename) for i in infos)
        aliased = {i.filename for i in infos if counts[member_key(i.filename)] > 1}
        dist_infos = {i.filename.split("/", 1)[0] for i in infos if re.match(r"[^/]+\.dist-info/", i.filename)}
        dist_info = dist_infos.pop() if len(dist_infos) == 1 else None

        def is_text(name: str) -> bool:
            return dist_info is not None and name.rsplit("/", 1)[0] == dist_info

        for m in iter_members(zf, path.name, keep=is_text):
            members[m.name] = (_record_hash(m.sha256), m.size)
            if is_text(m.name) and m.data is not None:
                if m.size > MAX_TEXT_BYTES:
                    raise InspectError(
                        f"{path.name}: {m.name} is {m.size} bytes, more than the "
                        f"{MAX_TEXT_BYTES} fawheels reads of a metadata file"
                    )
                texts[m.name.rsplit("/", 1)[1]] = m.data.decode("utf-8", errors="replace")
                if m.name.endswith("/METADATA"):
                    metadata = m.data
            if m.data is None:
                continue
            if m.fatbin_at is not None:  # a fatbin inside a member of another kind
                found = embedded_fatbin(m, path.name)
                if found is not None:
                    ours.append(found)
                    theirs[m.name] = list(found.entries)  # cuobjdump reads no fatbin hidden in data
                continue
            if not holds_cuda_code(m.data[:8]):
                continue
            if m.data[:4] == b"\x7fELF":
                op_schemas[m.name] = op_schemas_in(m.data)
            expect: tuple[CodeEntry, ...] = ()
            try:
                ours.append(parse_bytes(m.data, m.name))
                expect = ours[-1].entries
            except InspectError as exc:
                unreadable[m.name] = str(exc)
            if not located:
                tool, why_not = _cuobjdump(toolkit, install)
                located = True
                if reader == "cuobjdump" and tool is None:
                    raise InspectError(
                        f"--reader cuobjdump: cuobjdump cannot run here: {why_not}",
                        hint="pip install nvidia-cuda-cuobjdump, or use --reader fawheels",
                    )
            if tool is not None:
                try:
                    theirs[m.name] = cuobjdump_bytes(m.data, m.name, tool.path, expect)
                except InspectError as exc:
                    unreadable.setdefault(m.name, f"cuobjdump cannot read it: {exc}")
    duplicates = tuple(sorted(aliased))
    return _facts(
        path.name,
        members,
        dist_info,
        texts,
        ours,
        theirs,
        unreadable,
        op_schemas,
        duplicates,
        reader,
        tool,
        why_not if located else "",
        metadata,
    )


def _facts(
    filename: str,
    members: dict[str, tuple[str, int]],
    dist_info: str | None,
    texts: dict[str, str],
    ours: list[CodeObject],
    theirs: dict[str, list[CodeEntry]],
    unreadable: dict[str, str],
    op_schemas: dict[str, dict[str, str]],
    duplicates: tuple[str, ...],
    reader: str,
    tool: Cuobjdump | None,
    why_not: str,
    metadata: bytes = b"",
) -> WheelFacts:
    """Put the readings together: which entries the checks see, and where the readers differ."""
    ran: list[tuple[str, str]] = []
    if reader != "cuobjdump":
        ran.append(("fawheels", __version__))
    if tool is not None:
        ran.append(("cuobjdump", tool.version))
    note = ""
    code = sum(1 for o in ours if o.entries) + len(unreadable)
    if reader == "both" and tool is None and why_not:
        note = f"read by our parser only: cuobjdump cannot run here ({why_not})"
    elif reader == "fawheels":
        note = "read by our parser only (--reader fawheels)"
    elif reader == "cuobjdump":
        note = "read by cuobjdump only (--reader cuobjdump): SASS is checked per member, not per module"
    problems: list[str] = []
    objects: list[CodeObject] = ours
    if reader == "both" and tool is not None:
        mine = [e for o in ours if o.file not in unreadable for e in o.entries]
        other = [e for f, es in theirs.items() if f not in unreadable for e in es]
        problems = disagreements(mine, other)
    elif reader == "cuobjdump":
        by_file = {o.file: o for o in ours}
        objects = [
            CodeObject(
                f,
                by_file[f].format if f in by_file else "unknown",
                by_file[f].needed if f in by_file else (),
                tuple(es),
            )
            for f, es in theirs.items()
        ]
        unreadable = {f: why for f, why in unreadable.items() if f not in theirs or "cuobjdump" in why}
    readers = ReadersRun(
        reader, tuple(ran), tool.origin if tool else None, note, (not problems) if len(ran) == 2 else None, code
    )
    return WheelFacts(
        filename,
        members,
        dist_info,
        texts,
        tuple(objects),
        unreadable,
        op_schemas,
        duplicates,
        readers,
        tuple(problems),
        metadata,
    )


# Every op name a served release calls: what read_wheel looks for in extensions.
_KNOWN_OPS = tuple(sorted({name for r in RECIPES.values() for rel in r.releases for name in rel.op_names}))


def op_schemas_in(data: bytes, names: Sequence[str] = _KNOWN_OPS) -> dict[str, str]:
    """The schema strings `name(...) -> ...` a binary carries for these op names (a TORCH_LIBRARY
    registration keeps them as NUL-terminated literals, so they are read without loading the library)."""
    found: dict[str, str] = {}
    for name in names:
        needle, start = b"\0" + name.encode() + b"(", 0
        while (at := data.find(needle, start)) >= 0:
            text = data[at + 1 : data.find(b"\0", at + 1)].decode("ascii", "replace")
            if "->" in text:
                found[name] = text
                break
            start = at + 1
    return found


def _schema_parts(schema: str) -> tuple[str, list[str], str]:
    """`name(args) -> returns` -> name, normalized arguments, returns (top-level commas split arguments)."""
    name, rest = schema.split("(", 1)
    args, returns = rest.rsplit("->", 1)
    args = args.rstrip().removesuffix(")")
    parts, depth, current = [], 0, ""
    for ch in args:
        depth += ch in "(["
        depth -= ch in ")]"
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return name.strip(), [" ".join(p.split()) for p in parts if p.strip()], " ".join(returns.split())


def schema_differences(ours: dict[str, str], wanted: Sequence[str], who: str) -> list[str]:
    """How the ops in `ours` differ from the schemas `who` calls, naming the differing argument."""
    problems = []
    for schema in wanted:
        name, want_args, want_ret = _schema_parts(schema)
        if name not in ours:
            problems.append(f"{name}: not registered (needed by {who})")
            continue
        _, args, ret = _schema_parts(ours[name])
        for i in range(max(len(args), len(want_args))):
            have = args[i] if i < len(args) else "nothing"
            want = want_args[i] if i < len(want_args) else "nothing"
            if have != want:
                problems.append(f"{name}: argument {i} is `{have}`, {who} calls it with `{want}`")
                break
        else:
            if ret != want_ret:
                problems.append(f"{name}: returns `{ret}`, {who} expects `{want_ret}`")
    return problems
