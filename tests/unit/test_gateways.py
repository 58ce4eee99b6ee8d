"""One gateway per side effect: subprocesses only through fawheels._util.runner, checked on the source (ast)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from fawheels._util import runner

PACKAGE = Path(runner.__file__).resolve().parents[1]
GATEWAY = PACKAGE / "_util" / "runner.py"
# Ways to start a process without the subprocess module; the guardian fork lives beside the atomic writes.
OS_SPAWNERS = ("system", "popen", "fork", "forkpty", "posix_spawn", "posix_spawnp")
FORK_ALLOWED = {PACKAGE / "_util" / "files.py"}


def _modules() -> list[Path]:
    found = sorted(PACKAGE.rglob("*.py"))
    assert GATEWAY in found and len(found) > 20  # the walk sees the package, not an empty folder
    return found


def _escapes(path: Path, root: Path = PACKAGE.parent) -> list[str]:
    """Each place in `path` that starts a process other than through the gateway (text in string literals,
    such as a script run in another interpreter, is not code of the package and is not looked at)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + ([f"os.{a.name}" for a in node.names] if node.module == "os" else [])
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "os":
            names = [f"os.{node.attr}"]
        for name in names:
            spawner = name.startswith("os.") and (name[3:] in OS_SPAWNERS or name[3:].startswith(("exec", "spawn")))
            if name.split(".")[0] in ("subprocess", "pty", "multiprocessing") or (
                spawner and not (name == "os.fork" and path in FORK_ALLOWED)
            ):
                found.append(f"{path.relative_to(root)}:{getattr(node, 'lineno', 0)}: {name}")
    return found


def test_no_module_but_the_gateway_starts_processes() -> None:
    escapes = [e for p in _modules() if p != GATEWAY for e in _escapes(p)]
    assert escapes == [], "start processes through fawheels._util.runner (call, run, run_code, spawn):\n" + "\n".join(
        escapes
    )


def test_the_check_sees_an_escape(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        'import json\nfrom subprocess import run\nimport os\nos.execv("/bin/true", [])\nSCRIPT = "import subprocess"\n'
    )
    assert _escapes(bad, tmp_path) == ["bad.py:2: subprocess", "bad.py:4: os.execv"]


@pytest.mark.parametrize(
    "start",
    [
        lambda: runner.call(["true"]),
        lambda: runner.run(["true"]),
        lambda: runner.run_code(["true"]),
        lambda: runner.spawn(["true"]),
    ],
)
def test_unit_tests_cannot_start_processes_through_the_gateway(start: object) -> None:
    assert callable(start)
    with pytest.raises(AssertionError, match="unit test touched subprocess"):
        start()


# The project stands alone: no file cites a document that lives outside this repository.
REPO = PACKAGE.parents[1]
OUTSIDE_DOCS = ("DESIGN §", "DESIGN.md", "../shared/")
CHECKED = ("src", "tests", "scripts", "bench", "docs", "docker", "patches", ".ci")


def _outside_references(files: list[Path]) -> list[str]:
    found = []
    for path in files:
        text = path.read_text(errors="replace")
        found += [f"{path.name}: {needle}" for needle in OUTSIDE_DOCS if needle in text]
    return found


def test_no_file_cites_a_document_outside_the_repository() -> None:
    files = [REPO / "README.md", REPO / "noxfile.py", REPO / "build_matrix.yaml"]
    for folder in CHECKED:
        files += [p for p in (REPO / folder).rglob("*") if p.is_file() and p.suffix not in (".whl", ".so", ".png")]
    files = [p for p in files if p != Path(__file__).resolve()]  # this file names what it looks for
    assert len(files) > 100
    assert _outside_references(files) == []


def test_the_outside_reference_check_sees_one(tmp_path: Path) -> None:
    cited = tmp_path / "install.sh"
    cited.write_text("# the fixups of DESIGN §5\n")
    assert _outside_references([cited]) == ["install.sh: DESIGN §"]
