"""The command registry (commands.COMMANDS): every subcommand declared once, the parser and the failure paths
made from it (issue 23, the house)."""

from __future__ import annotations

import argparse
import errno
from dataclasses import replace
from pathlib import Path

import pytest

from fawheels import cli
from fawheels._util.errors import BuildError, PublishError, UsageError
from fawheels.commands import BY_NAME, COMMANDS


def subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_the_parser_has_exactly_the_registered_commands_in_their_order() -> None:
    assert list(subparsers()) == [c.name for c in COMMANDS]
    assert len(BY_NAME) == len(COMMANDS)  # no name twice


def test_each_command_runs_its_own_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[str] = []

    def record(args: argparse.Namespace) -> int:
        ran.append(args.command)
        return 0

    for command in COMMANDS:
        assert command.help
        monkeypatch.setitem(BY_NAME, command.name, replace(command, handler=record))
        assert cli.main([command.name, *REQUIRED.get(command.name, [])]) == 0
    assert ran == [c.name for c in COMMANDS]


REQUIRED = {
    "inspect": ["w.whl"],
    "verify": ["w.whl"],
    "publish": ["w.whl", "--index", "/idx"],
    "profile": ["--from-config", "c.json"],
    "smoke": ["w.whl"],
    "first-call": ["w.whl"],
    "overlay": ["w.whl", "--into-site-packages"],
}


def test_an_os_error_takes_the_class_its_command_declares() -> None:
    exc = OSError(errno.ENOSPC, "No space left on device", "/dist/w.whl")
    assert isinstance(cli.os_error("build", exc), BuildError)
    assert isinstance(cli.os_error("publish", exc), PublishError)
    assert type(cli.os_error("smoke", exc)) is UsageError
    assert "disk is full" in (cli.os_error("nightly", exc).hint or "")


def test_the_interrupt_message_is_the_commands() -> None:
    parser = cli.build_parser()
    assert cli.interrupted_message(parser.parse_args(["build", "--dist", "out/"])) == (
        "interrupted; out/ was left as it was"
    )
    assert (
        cli.interrupted_message(parser.parse_args(["nightly", "--dist", "n"]))
        == "interrupted; n holds only whole files"
    )
    assert cli.interrupted_message(parser.parse_args(["matrix"])) == "interrupted"


def test_first_call_and_lock_images_are_subcommands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = cli.build_parser()
    args = parser.parse_args(["first-call", "w.whl", "--runs", "2", "--out", "r.json"])  # the script's spelling
    assert (args.wheel, args.runs, args.report) == (Path("w.whl"), 2, "r.json")
    assert parser.parse_args(["lock-images", "--matrix", "m.yaml"]).matrix == Path("m.yaml")
    assert type(cli.os_error("lock-images", OSError(errno.EACCES, "denied"))).__name__ == "ContainerError"
    # bad input is a usage error (2), like every command's, not first-call's own 11
    assert cli.main(["first-call", str(tmp_path / "missing.whl")]) == UsageError.exit_code
    assert "no such wheel" in capsys.readouterr().err
    (tmp_path / "x.whl").write_bytes(b"not a zip")
    assert cli.main(["first-call", str(tmp_path / "x.whl")]) == UsageError.exit_code
    assert "not a fawheels wheel" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        cli.main(["first-call", "w.whl", "--runs", "0"])
    assert exited.value.code == UsageError.exit_code
