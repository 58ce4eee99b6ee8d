"""build_matrix.yaml described from the model: a JSON Schema for editors and docs/matrix.md.

Both are made from the `yaml_key` metadata of the model's fields (matrix/model.py), the same fields the
loader takes its allowed keys from; `python -m fawheels._util.generate` writes them and its `--check` (run by
`nox -s tests`) fails when a committed copy is stale. The schema checks shapes only: the loader's rules that
span keys (references between sections, CUDA compatibility, unique ids) are in the "rules" column.
"""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any

from fawheels.matrix.model import Axes, ImageSpec, MatrixFile, Profile, Source, TargetGroup, Toolchain, TorchSpec

SCHEMA_FILE = "build_matrix.schema.json"

# Each section: its name in the schema's $defs, the model class, where it sits in the file.
SECTIONS: tuple[tuple[str, type, str], ...] = (
    ("source", Source, "sources.<name>"),
    ("toolchain", Toolchain, "toolchains.<name>"),
    ("image", ImageSpec, "toolchains.<name>.image"),
    ("torch", TorchSpec, 'torch."<major.minor>"'),
    ("profile", Profile, "profiles.<name>"),
    ("target_group", TargetGroup, "targets[]"),
    ("axes", Axes, "targets[].matrix"),
)

# What needs one key's value to decide another's; the loader enforces the same.
_CONDITIONS: dict[type, list[dict[str, Any]]] = {
    Source: [
        {"if": {"properties": {"kind": {"const": "sdist"}}}, "then": {"required": ["sha256"]}},
        {"if": {"properties": {"kind": {"const": "git"}}}, "then": {"required": ["commit"]}},
    ],
    Toolchain: [
        {"if": {"properties": {"provision": {"const": "pip"}}}, "then": {"required": ["pip_version"]}},
        {"if": {"properties": {"provision": {"const": "container"}}}, "then": {"required": ["image"]}},
    ],
}


def _keys(cls: type) -> list[tuple[str, dict[str, Any]]]:
    return [(f.name, f.metadata["yaml"]) for f in fields(cls) if "yaml" in f.metadata]


def _object(cls: type) -> dict[str, Any]:
    keys = _keys(cls)
    schema: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {name: {**meta["schema"], "description": meta["doc"]} for name, meta in keys},
    }
    if required := [name for name, meta in keys if meta["required"]]:
        schema["required"] = required
    if cls.__doc__ and not cls.__doc__.startswith(cls.__name__ + "("):
        schema["description"] = cls.__doc__.strip()
    if conditions := _CONDITIONS.get(cls):
        schema["allOf"] = conditions
    return schema


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of build_matrix.yaml."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$comment": "generated from src/fawheels/matrix/model.py by `python -m fawheels._util.generate`; do not edit",
        "title": "fawheels build matrix (build_matrix.yaml)",
        **_object(MatrixFile),
        "$defs": {name: _object(cls) for name, cls, _where in SECTIONS},
    }


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2) + "\n"


# --- docs/matrix.md ----------------------------------------------------------------------------------------


def _type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"mapping ([{name}](#{name.replace('_', '-')}))"
    if "enum" in schema:
        return "one of " + ", ".join(f"`{json.dumps(v)}`" for v in schema["enum"])
    kind = schema.get("type")
    if kind == "array":
        return f"list of {_type(schema.get('items', {}))}"
    if kind == "object":
        inner = schema.get("additionalProperties")
        return f"mapping of name to {_type(inner)}" if isinstance(inner, dict) else "mapping"
    return {"string": "string", "boolean": "boolean", "integer": "integer"}.get(str(kind), "any")


def _constraints(schema: dict[str, Any], rules: str) -> str:
    parts: list[str] = []
    items = schema.get("items", {})
    for s in (schema, items if isinstance(items, dict) else {}):
        if "pattern" in s:
            parts.append(f"matches `{s['pattern']}`")
    if schema.get("minItems") or schema.get("minProperties"):
        parts.append("not empty")
    if schema.get("uniqueItems"):
        parts.append("no duplicates")
    if rules:
        parts.append(rules)
    return "; ".join(parts)


def _table(cls: type) -> str:
    rows = [
        "| "
        + " | ".join(
            cell.replace("|", "\\|")
            for cell in (
                f"`{name}`",
                _type(meta["schema"]),
                "yes" if meta["required"] else "",
                meta["doc"],
                _constraints(meta["schema"], meta["rules"]),
            )
        )
        + " |"
        for name, meta in _keys(cls)
    ]
    return "| key | type | required | meaning | constraints |\n|---|---|---|---|---|\n" + "\n".join(rows)


def markdown() -> str:
    """docs/matrix.md, generated from the model."""
    sections = "\n\n".join(
        f"### {name}\n\n`{where}`"
        + (f": {(cls.__doc__ or '').strip()}" if name in ("target_group", "axes") else "")
        + f"\n\n{_table(cls)}"
        for name, cls, where in SECTIONS
    )
    return f"""# `build_matrix.yaml`: what fawheels builds

The build matrix names pinned sources, CUDA toolchains, torch releases and kernel profiles, and target
groups that combine them; every combination of one value per axis of a group is a target (`fawheels matrix`
lists them). fawheels validates the whole file before anything runs: an unknown key is refused with the
closest known one, every error names its field path (`targets[0].matrix.archs[1]`).

Editors that speak the yaml-language-server protocol check the file as it is typed against
`{SCHEMA_FILE}` (named in the file's first line). The schema checks each value's shape; the
rules in the last column that relate keys to each other are checked by the loader only.

## The file

{_table(MatrixFile)}

## Sections

{sections}
"""
