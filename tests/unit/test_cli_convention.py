"""One flag, one meaning, in every subcommand (docs/cli.md): checked on the argparse parser, so a new flag that
breaks the convention fails here; every environment variable the package uses is declared in options.py."""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

import pytest

from fawheels import options
from fawheels.cli import build_parser

PACKAGE = Path(options.__file__).resolve().parent
DOC = PACKAGE.parents[1] / "docs" / "cli.md"

# Spellings that mean something another flag already says, and which flag to use instead.
RETIRED = {
    "--out": "--dist DIR (a directory) or --report FILE (a JSON report)",
    "--output": "--dist DIR or --report FILE",
    "--targets": "positional TARGET_ID…",
    "--write-json": "--json",
}
SWITCHES = ("--json", "--dry-run", "--keep-going", "--quiet", "--verbose", "--clean", "--offline")
WITH_VALUE = {"--dist": "DIR", "--report": "FILE", "--matrix": "PATH", "--jobs": "N"}
# --reader: one set of choices; the defaults differ on purpose (docs/cli.md says why)
READER_DEFAULTS = {"inspect": "fawheels", "verify": "both"}


def subcommands(parser: argparse.ArgumentParser | None = None, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    """Every subcommand, nested ones too (`cache prune`)."""
    found: dict[str, argparse.ArgumentParser] = {}
    for action in (parser or build_parser())._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, p in action.choices.items():
                found[prefix + name] = p
                found.update(subcommands(p, f"{prefix}{name} "))
    return found


def test_nested_subcommands_are_checked_too() -> None:
    assert {"build", "cache", "cache prune"} <= set(subcommands())


def visible(p: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {s: a for a in p._actions if a.help != argparse.SUPPRESS for s in a.option_strings}


def violations(parsers: dict[str, argparse.ArgumentParser]) -> list[str]:
    found = []
    for name, p in parsers.items():
        flags = visible(p)
        for flag, action in flags.items():
            if flag in RETIRED:
                found.append(f"{name} {flag}: use {RETIRED[flag]}")
            if flag in SWITCHES and not isinstance(action, argparse._StoreTrueAction):
                found.append(f"{name} {flag}: must be a switch")
            if flag in WITH_VALUE and action.metavar != WITH_VALUE[flag]:
                found.append(f"{name} {flag}: its value is {WITH_VALUE[flag]}, not {action.metavar}")
            if flag == "--reader" and tuple(sorted(action.choices or ())) != ("both", "cuobjdump", "fawheels"):
                found.append(f"{name} --reader: choices fawheels|cuobjdump|both")
            if flag == "--reader" and action.default != READER_DEFAULTS.get(name):
                found.append(f"{name} --reader: default {action.default}, docs/cli.md says {READER_DEFAULTS.get(name)}")
        if "--format" in flags and "--json" not in flags:
            found.append(f"{name} --format: give --json too (machine output is --json everywhere)")
        if ("-q" in flags) != ("-v" in flags):
            found.append(f"{name}: -q and -v come together")
    return found


def test_every_subcommand_keeps_the_convention() -> None:
    assert violations(subcommands()) == []


def test_the_check_sees_a_flag_that_breaks_it() -> None:
    bad = argparse.ArgumentParser()
    bad.add_argument("--out", metavar="DIR")
    bad.add_argument("--json", choices=["yes", "no"])
    bad.add_argument("--dist", metavar="PATH")
    bad.add_argument("-q", action="store_true")
    assert violations({"bad": bad}) == [
        "bad --out: use --dist DIR (a directory) or --report FILE (a JSON report)",
        "bad --json: must be a switch",
        "bad --dist: its value is DIR, not PATH",
        "bad: -q and -v come together",
    ]


def test_old_spellings_still_parse() -> None:
    parser = build_parser()
    night = parser.parse_args(["nightly", "--out", "/o", "--targets", "a", "b"])
    assert night.out == Path("/o") and night.targets_alias == ["a", "b"]
    assert parser.parse_args(["smoke", "w.whl", "--out", "r.json"]).report == "r.json"


@pytest.mark.parametrize("command", ["build", "nightly"])
def test_build_and_nightly_share_selection_output_and_levels(command: str) -> None:
    flags = visible(subcommands()[command])
    assert {"--dist", "--report", "--keep-going", "-q", "-v", "--jobs", "--matrix", "--offline"} <= set(flags)


def test_the_doc_names_every_shared_flag() -> None:
    text = DOC.read_text()
    for flag in ("--dist", "--report", "--json", "--dry-run", "--keep-going", "--reader", "TARGET_ID", "-q/--quiet"):
        assert f"`{flag}" in text, flag


ENV_NAME = re.compile(r"^(FAWHEELS_[A-Z_]+|MAX_JOBS|SOURCE_DATE_EPOCH|CUDA_HOME|GITHUB_ACTIONS)$")
NOT_ENV = {"FAWHEELS_NO_PYBIND"}  # a C++ define of the recipe, not an environment variable


def test_every_environment_variable_is_declared_once_in_options() -> None:
    used = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and ENV_NAME.match(node.value):
                used.add(node.value)
    declared = [name for name, _ in options.ENVIRONMENT]
    assert len(declared) == len(set(declared))
    assert sorted(used - NOT_ENV - set(declared)) == []
    assert {"FAWHEELS_CONTAINER_ENGINE", "FAWHEELS_SCCACHE", "FAWHEELS_COMPILER_LAUNCHER"} <= set(declared)
