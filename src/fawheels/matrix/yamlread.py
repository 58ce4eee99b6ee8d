"""YAML as the matrix reads it: strict (a duplicate key, a merge key or a float where a version belongs is an
error, not a quiet surprise) and bounded (depth, values after aliases, bytes), so a hostile file is refused in
milliseconds with the line at fault."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from fawheels._util.errors import ConfigError
from fawheels.matrix.model import (
    _did_you_mean,
)

MAX_DEPTH = 32  # a matrix nests 5 levels; deeper is not a matrix (and recursion must stay bounded)


MAX_NODES = 20_000  # values after aliases are expanded; the shipped matrix has a few hundred


MAX_MATRIX_BYTES = 1 << 20


class _StrictLoader(yaml.SafeLoader):
    """safe_load that refuses what it would otherwise misread: a duplicate key (PyYAML keeps the last one
    without a word) and nesting deeper than MAX_DEPTH."""

    def __init__(self, stream: str, where: str) -> None:
        super().__init__(stream)
        self.where = where
        self.depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise ConfigError(
                    f"{self.where}:{mark.line + 1}: nested more than {MAX_DEPTH} levels deep",
                    hint="a build matrix nests a handful of levels; check the brackets and indents",
                )
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, OverflowError) as exc:  # a scalar PyYAML cannot convert (an int of 5,000 digits)
            raise ConfigError(
                f"{self.where}:{node.start_mark.line + 1}: cannot read the value "
                f"{_show(node.value) if isinstance(node.value, str) else ''}: {str(exc)[:120]}",
                hint="quote it if it is meant as text",
            ) from None

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        seen: dict[object, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise ConfigError(
                    f"{self.where}:{key_node.start_mark.line + 1}: a YAML merge key (`<<: *anchor`) is not read here",
                    hint="write the keys out; an alias of a whole value (`key: *anchor`) works",
                )
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.get(key)
                seen.setdefault(key, key_node.start_mark.line + 1)
            except TypeError:  # an unhashable key: the base constructor says so as a YAML error
                continue
            if first is not None:
                raise ConfigError(
                    f"{self.where}:{key_node.start_mark.line + 1}: duplicate key {_show(key)} (first at line "
                    f"{first}); YAML would silently keep only the last one",
                    hint="remove or rename one of them",
                )
        result: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return result


def _show(value: object, limit: int = 60) -> str:
    """repr of a value from the matrix, cut short: an error message never grows with the input."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _expanded_size(data: object) -> int:
    """Number of values once every alias is expanded, computed without expanding (shared nodes counted once
    per use through a memo). Stops counting past MAX_NODES."""
    memo: dict[int, int] = {}
    open_: set[int] = set()  # containers being counted: meeting one again is a cycle (`a: &a [*a]`)

    def size(o: object) -> int:
        if id(o) in memo:
            return memo[id(o)]
        if id(o) in open_:
            raise ConfigError(
                "matrix: a value contains itself through an alias (like `a: &a [*a]`)",
                hint="an alias may only refer to a value defined before and outside it",
            )
        children: Iterable[object] = ()
        if isinstance(o, dict):
            children = itertools.chain(o.keys(), o.values())
        elif isinstance(o, list):
            children = o
        total = 1
        open_.add(id(o))
        for c in children:
            total += size(c)
            if total > MAX_NODES:
                break
        open_.discard(id(o))
        memo[id(o)] = total
        return total

    return size(data)


def parse_yaml(text: str, where: str = "matrix") -> object:
    """The YAML of a matrix, refused (ConfigError) when empty, malformed, duplicated, too deep or too large."""
    if not text.strip():
        raise ConfigError(f"{where}: the file is empty", hint="start from the build_matrix.yaml shipped with fawheels")
    loader: _StrictLoader | None = None
    try:
        loader = _StrictLoader(text, where)  # the reader already refuses control characters here
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML: {str(exc)[:1000]}") from None
    except (ValueError, OverflowError) as exc:  # a scalar PyYAML cannot convert (an int of 5,000 digits)
        raise ConfigError(
            f"{where}: a value cannot be read: {str(exc)[:200]}", hint="quote it if it is meant as text"
        ) from None
    except RecursionError:  # a flow collection too deep for the parser itself
        raise ConfigError(f"{where}: nested too deeply to read", hint="check the brackets") from None
    finally:
        if loader is not None:
            loader.dispose()
    if data is None:
        raise ConfigError(
            f"{where}: the file holds no values (only comments?)",
            hint="start from the build_matrix.yaml shipped with fawheels",
        )
    if _expanded_size(data) > MAX_NODES:
        raise ConfigError(
            f"{where}: expands to more than {MAX_NODES} values (aliases used as a bomb?)",
            hint="a build matrix is a few hundred values; write it out or use fewer aliases",
        )
    return data


class _Node:
    """A mapping from the YAML with its field path, for typed reads with precise errors."""

    def __init__(self, path: str, value: object, allowed: Iterable[str]) -> None:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {type(value).__name__}")
        allowed = tuple(allowed)
        for key in value:
            if key not in allowed:
                raise ConfigError(
                    f"{path}.{_show(key).strip(chr(39))}: unknown key{_did_you_mean(key, allowed)}",
                    hint=f"allowed keys: {', '.join(allowed)}",
                )
        self.path = path
        self.data: dict[str, object] = value

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def raw(self, key: str, default: object = ...) -> object:
        if key in self.data:
            return self.data[key]
        if default is ...:
            raise ConfigError(f"{self.at(key)}: required key is missing")
        return default

    def text(self, key: str, default: object = ...) -> Any:
        value = self.raw(key, default)
        if value is None and default is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ConfigError(f"{self.at(key)}: expected a string, got {type(value).__name__}")
        if isinstance(value, float | int):
            raise ConfigError(
                f"{self.at(key)}: expected a string, got the number {_show(value)}",
                hint=f'quote it: {key}: "{value}"',
            )
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self.raw(key, default)
        if not isinstance(value, bool):
            raise ConfigError(f"{self.at(key)}: expected true or false, got {_show(value)}")
        return value

    def integer(self, key: str, default: object = ...) -> int:
        value = self.raw(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{self.at(key)}: expected an integer, got {_show(value)}")
        return value

    def items(self, key: str, default: object = ...) -> list[object]:
        value = self.raw(key, default)
        if not isinstance(value, list):
            raise ConfigError(f"{self.at(key)}: expected a list, got {type(value).__name__}")
        return value

    def mapping(self, key: str) -> dict[str, object]:
        value = self.raw(key)
        if not isinstance(value, dict):
            raise ConfigError(f"{self.at(key)}: expected a mapping, got {type(value).__name__}")
        return value


def _ref(path: str, name: object, known: Mapping[str, object], what: str) -> Any:
    if not isinstance(name, str) or name not in known:
        raise ConfigError(
            f"{path}: unknown {what} {_show(name)}{_did_you_mean(str(name), known)}",
            hint=f"known {what}s: {', '.join(known)}",
        )
    return known[name]


def _quote_hint(value: float) -> str:
    """How to write a version YAML read as a number: `3.10` arrives as 3.1, so name both readings."""
    text = str(value)
    if isinstance(value, float) and re.fullmatch(r"\d+\.\d", text):
        return f'quote it as you meant it: "{text}0" (YAML read 3.10 as 3.1) or "{text}"'
    return f'quote it: "{text}"'


def _version_string(path: str, value: object) -> str:
    """A version in a list must be a string: YAML reads `3.10` as the float 3.1."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ConfigError(
            f"{path}: {_show(value)} is a number to YAML (3.10 reads as 3.1), not a version",
            hint=_quote_hint(value),
        )
    raise ConfigError(f"{path}: expected a version string, got {type(value).__name__} {_show(value)}")


def _parse_version_text(path: str, text: str, pattern: str = r"\d+\.\d+") -> str:
    # Numbers without leading zeros: "13.00" or "3.011" would name the same release yet make other ids
    # (cu1300, cp3011) and compare unequal to the canonical spelling elsewhere.
    if not re.fullmatch(pattern.replace(r"\d+", r"(?:0|[1-9]\d*)"), text):
        raise ConfigError(
            f"{path}: {_show(text)} is not a version like 13.0",
            hint="digits and dots, no leading zeros (13.0, 3.11, 2.14.1)",
        )
    return text
