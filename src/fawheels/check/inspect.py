"""`fawheels inspect`: every CUDA code entry of a wheel, shared object, cubin or fatbin, read by our parser,
cuobjdump, or both cross-checked."""

from __future__ import annotations

import sys
from pathlib import Path

from fawheels._util import jsondoc
from fawheels._util.errors import InspectError
from fawheels._util.show import say
from fawheels.check.binary import CodeEntry
from fawheels.check.cuobjdump import (
    cuobjdump_path,
    disagreements,
)
from fawheels.check.wheelzip import (
    read_path,
)


def _table(entries: list[CodeEntry]) -> str:
    rows = [("file", "kind", "arch", "ptx isa", "code ver", "compression", "size", "container")]
    rows += [
        (e.file, e.kind, e.arch, e.ptx_isa or "-", e.code_version, e.compression, str(e.size), str(e.container))
        for e in entries
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


INSPECT_JSON_SCHEMA = 1  # `inspect --json`: {schema, file, reader, entries, disagreements}


def inspect_command(path: Path, *, as_json: bool = False, reader: str = "fawheels") -> int:
    """`fawheels inspect`: list every code entry; `reader=both` also exits 1 when the readers disagree."""
    if not path.exists():
        raise InspectError(f"{path}: no such file")
    entries = cuobjdump_path(path) if reader == "cuobjdump" else [e for obj in read_path(path) for e in obj.entries]
    problems = disagreements(entries, cuobjdump_path(path)) if reader == "both" else []
    if as_json:
        doc = {
            "schema": INSPECT_JSON_SCHEMA,
            "file": str(path),
            "reader": reader,
            "entries": [e.to_json() for e in entries],
        }
        say(jsondoc.dumps({**doc, "disagreements": problems}))
    else:
        say(_table(entries) if entries else f"{path}: no CUDA code")
    for problem in problems:
        say(f"readers disagree: {problem}", file=sys.stderr)
    return 1 if problems else 0
