"""Machine output (docs/cli.md): every JSON document a command prints (`--json`) or writes (`--report`) is an
object whose top-level `schema` is the whole number of its layout, so a reader can refuse one it does not know
instead of misreading it. A document goes out through `dumps`, which refuses one without that field: a command
that forgot it fails its own tests (tests/unit/test_machine_output.py), not a reader a release later."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fawheels._util.errors import InternalError


def schema_problem(doc: object) -> str | None:
    """Why `doc` is not a machine-output document (None: it is one)."""
    if not isinstance(doc, Mapping):
        return f"a {type(doc).__name__}, not an object with a schema field"
    schema = doc.get("schema")
    if isinstance(schema, bool) or not isinstance(schema, int) or schema < 1:
        return f"its schema field is {json.dumps(schema)}, not a whole number from 1"
    return None


def dumps(doc: Mapping[str, Any], *, indent: int | None = 2) -> str:
    """The JSON text of one document (no trailing newline), refused when it carries no `schema`."""
    if (why := schema_problem(doc)) is not None:
        raise InternalError(f"machine output without a schema: {why}")
    return json.dumps(doc, indent=indent)
