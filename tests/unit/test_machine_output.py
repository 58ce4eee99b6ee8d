"""Machine output (docs/cli.md): every JSON document a command prints with `--json` or writes with `--report` is
an object with a top-level whole-number `schema`. Each command that can run here without a GPU or a compiler is
run, and its document checked; the package itself is read so no command prints JSON past `jsondoc.dumps`."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from fawheels import cli, nightly
from fawheels._util import jsondoc
from fawheels._util.errors import InternalError
from fawheels.compile.command import report_json
from fawheels.compile.result import Result, Status
from support.wheelfactory import toy_wheel

TESTS = Path(__file__).resolve().parents[1]
DATA = TESTS / "data"
PACKAGE = Path(jsondoc.__file__).resolve().parents[1]
ROOT = PACKAGE.parents[1]


@pytest.mark.parametrize(
    ("doc", "why"),
    [
        ([{"target": "a"}], "a list, not an object with a schema field"),
        ({"results": []}, "its schema field is null"),
        ({"schema": "1"}, 'its schema field is "1"'),
        ({"schema": True}, "its schema field is true"),
        ({"schema": 0}, "its schema field is 0"),
    ],
)
def test_a_document_without_a_schema_is_refused(doc: object, why: str) -> None:
    assert (jsondoc.schema_problem(doc) or "").startswith(why)
    with pytest.raises(InternalError, match="machine output without a schema"):
        jsondoc.dumps(doc)  # type: ignore[arg-type]


def _matrix(fmt: str) -> list[str]:
    return ["matrix", "--matrix", str(ROOT / "build_matrix.yaml"), *fmt.split()]


COMMANDS: dict[str, list[str]] = {
    "matrix --json": _matrix("--json"),
    "matrix --format json": _matrix("--format json"),
    "inspect --json": ["inspect", "--json", str(DATA / "multi.fatbin")],
    "compat --json": ["compat", str(DATA / "libtwo.so"), "--gpu", "H100", "--driver", "580.65.06", "--json"],
}


@pytest.mark.parametrize("name", list(COMMANDS))
def test_json_on_stdout_carries_a_schema(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    cli.main(COMMANDS[name])
    doc = json.loads(capsys.readouterr().out)
    assert jsondoc.schema_problem(doc) is None, name


def test_compat_index_json_carries_a_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "wheels.json").write_text(json.dumps({"schema": 1, "wheels": []}))
    cli.main(["compat", "--index", str(tmp_path), "--gpu", "H100", "--driver", "580.65.06", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert jsondoc.schema_problem(doc) is None and doc["projects"] == []


def test_verify_json_carries_a_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli.main(["verify", "--json", "--reader", "fawheels", str(toy_wheel(tmp_path))])
    assert jsondoc.schema_problem(json.loads(capsys.readouterr().out)) is None


def test_the_build_report_is_an_object_with_the_results() -> None:
    results = [Result("a", status=Status.OK), Result("b", status=Status.FAILED, stage="compile", exit_code=6)]
    doc = json.loads(report_json(results))
    assert jsondoc.schema_problem(doc) is None
    assert doc["ok"] is False and [r["target"] for r in doc["results"]] == ["a", "b"]


def test_the_nightly_report_carries_a_schema(tmp_path: Path) -> None:
    doc = nightly.report_doc([], cache=None, index=None, started=0.0, wall_s=1.0)
    nightly.write_report(tmp_path / "r.json", doc)
    assert jsondoc.schema_problem(json.loads((tmp_path / "r.json").read_text())) is None


def _prints_json_past_jsondoc(tree: ast.AST) -> list[int]:
    """Lines where `say(json.dumps(…))` prints a document that no schema check saw."""

    def is_json_dumps(node: ast.AST) -> bool:
        return (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "dumps"
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "json"
        )

    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "say"
        and any(is_json_dumps(a) for a in node.args)
    ]


def test_no_command_prints_json_past_the_schema_check() -> None:
    found = {
        str(path.relative_to(PACKAGE)): lines
        for path in sorted(PACKAGE.rglob("*.py"))
        if (lines := _prints_json_past_jsondoc(ast.parse(path.read_text())))
    }
    assert found == {}


def test_the_check_sees_json_printed_past_it() -> None:
    assert _prints_json_past_jsondoc(ast.parse("say(json.dumps([1]))\nsay(jsondoc.dumps(d))")) == [1]
