"""The one way to print (issue 21): control characters made visible, no line that a CI runner executes, JSON
exact, and no other function in the package writing to stdout or stderr."""

from __future__ import annotations

import ast
import io
import json
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fawheels import cli
from fawheels._util.redact import RedactingStream
from fawheels._util.show import one_line, say, visible

SRC = Path(__file__).parents[2] / "src" / "fawheels"
CONTROL = [chr(c) for c in range(0x20) if chr(c) not in "\n\t"] + ["\x7f", "\x9b", "\u202e", "\u2028", "\ufeff"]


def writers(tree: ast.AST) -> list[int]:
    """Lines of print(...), sys.stdout/stderr.write(...) and sys.__stdout__ use: what bypasses `say`."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
            lines.append(node.lineno)
        if (
            isinstance(node, ast.Attribute)
            and node.attr == "write"
            and isinstance(node.value, ast.Attribute)
            and node.value.attr in ("stdout", "stderr")
        ):
            lines.append(node.lineno)
    return lines


def test_every_print_path_goes_through_say() -> None:
    found = {
        f"{p.relative_to(SRC)}:{line}"
        for p in SRC.rglob("*.py")
        if p.name != "show.py"
        for line in writers(ast.parse(p.read_text()))
    }
    assert not found, f"print or a direct stream write outside _util/show.py (use say): {sorted(found)}"


@pytest.mark.parametrize("c", CONTROL)
def test_control_characters_become_escapes(c: str) -> None:
    shown = visible(f"a{c}b")
    assert c not in shown and shown.startswith("a\\") and shown.endswith("b")


@pytest.mark.parametrize(
    "text", ["::error title=X::y", "  ::warning::x", "##vso[task.setvariable]x", "\t##[error]x", "ok\n::error::x"]
)
def test_no_line_starts_with_a_workflow_command(text: str) -> None:
    for line in visible(text).splitlines():
        assert not line.lstrip().startswith(("::", "##")), line


def test_a_member_name_with_a_newline_stays_on_its_line() -> None:
    assert one_line("pkg/x\n::error title=X::y\n.py") == "pkg/x\\x0a::error title=X::y\\x0a.py"


@given(st.recursive(st.text(), lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner), max_leaves=8))
def test_json_passes_unchanged_in_meaning(doc: object) -> None:
    for ascii_only in (True, False):
        text = json.dumps(doc, indent=2, ensure_ascii=ascii_only)
        assert json.loads(visible(text)) == doc
        if ascii_only:
            assert visible(text) == text


@given(st.text())
def test_visible_is_idempotent_and_leaves_nothing_raw(text: str) -> None:
    once = visible(text)
    assert visible(once) == once
    assert not any(c in once for c in CONTROL)


def test_say_and_the_cli_streams_escape(capsys: pytest.CaptureFixture[str]) -> None:
    say("name \x1b]0;owned\x07 here")
    inner = io.StringIO()
    RedactingStream(inner, (), ()).write("raw \x1b[2J from a child\n")
    assert capsys.readouterr().out == "name \\x1b]0;owned\\x07 here\n"
    assert inner.getvalue() == "raw \\x1b[2J from a child\n"


def test_an_ascii_terminal_gets_escapes_not_an_internal_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "ñame-\u00e9.whl"
    buffer = io.BytesIO()
    monkeypatch.setattr("sys.stderr", io.TextIOWrapper(buffer, encoding="ascii"))
    code = cli.main(["verify", str(missing)])
    sys.stderr.flush()
    assert code == 7
    assert b"\\xf1ame" in buffer.getvalue()
