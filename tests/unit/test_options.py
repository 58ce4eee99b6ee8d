"""Options declared once (options.py): the parsers of build and nightly, and the argv of the build inside a
toolchain image, all come from the same table; README's command table names only options that exist."""

from __future__ import annotations

import argparse
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from fawheels import options
from fawheels._util import project
from fawheels._util.errors import ConfigError, InternalError
from fawheels.cli import build_parser
from fawheels.matrix.config import find_matrix_file
from fawheels.toolchain.container import MATRIX_DIR, RunSpec
from support.fakes import sample_run

README = Path(__file__).resolve().parents[2] / "README.md"

# Build options the build inside an image does not get, and why: it is already in its image, builds the one
# target it was given, and its result is reported by the run that started it; a dry run starts nothing.
# A new option lands here only by a decision (this set), never by being forgotten.
HOST_ONLY = {"container", "keep_going", "report", "dry_run", "json", "quiet", "verbose"}
# `build --vllm …` derives a target on the host and hands the nested build the derived matrix file and its id
DERIVING = {"vllm", "archs", "python", "profile", "from_config", "cuda"}


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def option_strings(command: str) -> set[str]:
    """The options of a command and of its own subcommands (`cache prune --older-than`)."""

    def of(p: argparse.ArgumentParser) -> set[str]:
        nested = [q for a in p._actions if isinstance(a, argparse._SubParsersAction) for q in a.choices.values()]
        return {s for a in p._actions for s in a.option_strings}.union(*(of(q) for q in nested))

    return of(subcommands()[command])


def container_run(*, jobs: int | None = 3, clean: bool = True) -> RunSpec:
    return sample_run(
        target_id="fa2-x",
        matrix_file=Path("/repo/build_matrix.yaml"),
        settings=options.BuildSettings(jobs=jobs, clean=clean),
    )


def test_every_build_option_that_changes_the_build_reaches_the_container() -> None:
    spec = container_run()
    assert spec.argv[:4] == ("python", "-m", "fawheels.cli", "build")
    inside = build_parser().parse_args(spec.argv[3:])
    assert {o.name for o in options.BUILD if not o.forward} == HOST_ONLY | DERIVING
    forwarded = [o for o in options.BUILD if o.forward]
    # Each forwarded option is said (it parses to something other than its default) ...
    for option in forwarded:
        assert getattr(inside, option.name) != option.default, option.flags
    # ... with the value the build inside must see: its own paths, the one target, always offline.
    assert {o.name: getattr(inside, o.name) for o in forwarded} == {
        "targets": ["fa2-x"],
        "matrix": Path(MATRIX_DIR, "build_matrix.yaml"),
        "dist": Path("/dist"),
        "offline": True,
        "jobs": 3,
        "clean": True,
    }
    # and nothing of the host-only ones
    assert all(getattr(inside, name) == build_parser().parse_args(["build"]).__dict__[name] for name in HOST_ONLY)


def test_a_new_forwarded_option_cannot_be_left_out_of_the_container_run(monkeypatch: pytest.MonkeyPatch) -> None:
    extra = options.switch("--new-build-option", "changes what gets built", forward=True)
    monkeypatch.setattr(options, "BUILD", (*options.BUILD, extra))
    with pytest.raises(InternalError, match="missing \\['new_build_option'\\]"):
        container_run()


@pytest.mark.parametrize(
    "values",
    [
        {
            "targets": ["a", "b-c"],
            "matrix": Path("/m/x.yaml"),
            "dist": Path("out dir"),
            "offline": True,
            "jobs": 7,
            "clean": True,
        },
        {"targets": [], "matrix": None, "dist": Path("dist"), "offline": False, "jobs": None, "clean": False},
    ],
)
def test_the_nested_argv_parses_back_to_the_same_options(values: dict[str, Any]) -> None:
    parsed = build_parser().parse_args(["build", *options.nested_build_argv(values)])
    assert {name: getattr(parsed, name) for name in values} == values


def test_the_nested_argv_takes_exactly_the_forwarded_options() -> None:
    good: dict[str, Any] = {
        "targets": ["t"],
        "matrix": None,
        "dist": Path("d"),
        "offline": True,
        "jobs": None,
        "clean": False,
    }
    with pytest.raises(InternalError, match="missing \\['jobs'\\]"):
        options.nested_build_argv({k: v for k, v in good.items() if k != "jobs"})
    with pytest.raises(InternalError, match="not options \\['keep_going'\\]"):
        options.nested_build_argv({**good, "keep_going": True})


@pytest.mark.parametrize(("command", "table"), [("build", options.BUILD), ("nightly", options.NIGHTLY)])
def test_the_parsers_hold_exactly_the_declared_options(command: str, table: tuple[options.Option, ...]) -> None:
    defaults = vars(build_parser().parse_args([command]))
    assert {k: v for k, v in defaults.items() if k not in ("command", "func")} == {o.name: o.default for o in table}
    declared = {f for o in table for f in (*o.flags, *o.aliases) if f.startswith("-")}
    assert option_strings(command) - {"-h", "--help"} == declared


def test_matrix_is_one_option_whose_help_says_where_it_looks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for command in ("matrix", "build", "nightly"):
        (action,) = [a for a in subcommands()[command]._actions if "--matrix" in a.option_strings]
        assert (action.help, action.type, action.default) == (options.MATRIX.help, Path, None)
    # The loader looks in the current directory, then at the copy shipped with fawheels: so says the help.
    monkeypatch.chdir(tmp_path)
    assert find_matrix_file(None) == project.project_root() / "build_matrix.yaml"  # type: ignore[operator]
    monkeypatch.setattr(project, "project_root", lambda: None)
    with pytest.raises(ConfigError, match=r"no build_matrix\.yaml in the current directory, and none shipped"):
        find_matrix_file(None)
    assert "current directory" in options.MATRIX.help and "shipped" in options.MATRIX.help
    (tmp_path / "build_matrix.yaml").write_text("")
    assert find_matrix_file(None) == tmp_path / "build_matrix.yaml"


def test_an_option_parses_as_declared() -> None:
    jobs = replace(options.JOBS, flags=("--jobs",))
    parser = argparse.ArgumentParser(exit_on_error=False)
    jobs.add_to(parser)
    assert parser.parse_args(["--jobs", "4"]).jobs == 4
    with pytest.raises(argparse.ArgumentError, match="is not a count"):
        parser.parse_args(["--jobs", "0"])


def test_readme_command_table_names_every_command_and_only_real_options() -> None:
    rows = [line for line in README.read_text(encoding="utf-8").splitlines() if line.startswith("| `")]
    named: set[str] = set()
    for row in rows:
        # the first column only (the description may name another command's option); `\|` is a pipe inside code
        usage = re.split(r"(?<!\\)\|", row)[1]
        for span in re.findall(r"`fawheels ([^`]*)`", usage):
            command = span.split()[0]
            assert command in subcommands(), row
            named.add(command)
            unknown = set(re.findall(r"--[a-z][a-z-]*", span)) - option_strings(command)
            assert not unknown, f"README names {sorted(unknown)} for `fawheels {command}`, which has no such option"
    assert named == set(subcommands()), f"README's command table lacks {sorted(set(subcommands()) - named)}"


@pytest.mark.parametrize("text", ["99999999999999999999", "4097"])
def test_a_job_count_no_machine_runs_is_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="more than 4096"):  # issue 21: was 2 jobs, silently
        options.positive_int(text)
    assert options.positive_int("4096") == 4096
