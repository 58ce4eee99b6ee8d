"""Command-line interface: thin argument parsing over the package API (README: Commands)."""

from __future__ import annotations

import argparse
import errno
import io
import os
import signal
import sys
import traceback
from collections.abc import Sequence
from contextlib import suppress

from fawheels._util import console
from fawheels._util.errors import (
    FawheelsError,
    InternalError,
    UsageError,
)
from fawheels._util.redact import RedactingStream, secrets_from_env
from fawheels._util.show import say
from fawheels.commands import BY_NAME, COMMANDS, Handler


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand, made from the registry (commands.COMMANDS)."""
    parser = argparse.ArgumentParser(
        prog="fawheels",
        description="Build, read, verify and publish FlashAttention wheels with real SASS for every GPU.",
    )
    from fawheels import __version__

    parser.add_argument("--version", action="version", version=f"fawheels {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        p = sub.add_parser(command.name, help=command.help, epilog=command.epilog)
        command.add_arguments(p)
    return parser


def _interrupt_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


BROKEN_PIPE_EXIT = 141  # 128 + SIGPIPE, what a shell reports for a writer whose reader went away
MAX_MESSAGE = 8000  # characters of one error message: enough for every field path, never megabytes

_OS_HINTS = {
    errno.EACCES: "check the permissions of that path, or choose one this user can use",
    errno.EPERM: "check the permissions of that path, or choose one this user can use",
    errno.EROFS: "that filesystem is read-only: choose a writable location",
    errno.ENOENT: "check the path",
    errno.ENOTDIR: "a part of that path is a file where a directory is needed",
    errno.EISDIR: "that path is a directory where a file is needed",
    errno.EEXIST: "something is already at that path",
    errno.ENOSPC: "the disk is full: free space and run again",
}


def os_error(command: str, exc: OSError) -> FawheelsError:
    """An OS error nobody closer to it mapped: the command's error class, the path and a fix."""
    cls = BY_NAME[command].error if command in BY_NAME else UsageError
    where = f"{exc.filename}: " if exc.filename else ""
    return cls(f"{where}{exc.strerror or exc}", hint=_OS_HINTS.get(exc.errno or 0, "check the path and run again"))


def interrupted_message(args: argparse.Namespace) -> str:
    """What an interrupt left as it was, named for the command that was interrupted."""
    return BY_NAME[args.command].interrupted(args) if args.command in BY_NAME else "interrupted"


def _say_error(kind: str, message: str) -> None:
    if len(message) > MAX_MESSAGE:
        message = message[:MAX_MESSAGE] + f"… ({len(message) - MAX_MESSAGE} more characters not shown)"
    say(f"fawheels: {kind} error: {message}", file=sys.stderr)


def _run(args: argparse.Namespace) -> int:
    func: Handler = BY_NAME[args.command].handler  # looked up when it runs: the registry is the one source
    try:
        return func(args)
    except FawheelsError as exc:
        _say_error(exc.kind, str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        say(f"fawheels: {interrupted_message(args)}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `fawheels matrix | head -1`: the reader stopped early, nothing to report
        inner = getattr(sys.stdout, "inner", sys.stdout)
        # The process's own stdout: point it at /dev/null so the interpreter's flush at exit is quiet too.
        if inner is sys.__stdout__ and inner is not None:
            with suppress(OSError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), inner.fileno())
        return BROKEN_PIPE_EXIT
    except OSError as exc:
        err = os_error(args.command, exc)
        _say_error(err.kind, str(err))
        return err.exit_code
    except Exception as exc:  # a bug: say so in one line, with its own exit code; the traceback on request
        if os.environ.get("FAWHEELS_DEBUG"):
            traceback.print_exc()
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()[:500]
        _say_error(
            "internal",
            f"{detail}\n  this is a bug in fawheels, not in your input; rerun with "
            "FAWHEELS_DEBUG=1 for the traceback and report it (docs/errors.md)",
        )
        return InternalError.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "quiet", False) and getattr(args, "verbose", False):
        parser.error("-q/--quiet and -v/--verbose: give one")  # usage, exit 2
    console.set_level(console.level_from(getattr(args, "quiet", False), getattr(args, "verbose", False)))
    # A CI runner cancels with SIGTERM, a closed terminal sends SIGHUP: treat both like Ctrl-C so children
    # stop and files being written are removed.
    signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    signal.signal(signal.SIGHUP, _interrupt_on_sigterm)
    # Everything printed passes through the redactor: no credential reaches a terminal or a CI log.
    secrets, users = secrets_from_env(os.environ)
    saved = sys.stdout, sys.stderr
    for stream in saved:  # PYTHONIOENCODING=ascii and a non-ASCII name: an escape, not a UnicodeEncodeError
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    sys.stdout = RedactingStream(saved[0], secrets, users)
    sys.stderr = RedactingStream(saved[1], secrets, users)
    try:
        return _run(args)
    finally:
        for stream in (sys.stdout, sys.stderr):
            with suppress(OSError):  # a closed pipe must not turn into a traceback on the way out
                stream.flush()
        sys.stdout, sys.stderr = saved


if __name__ == "__main__":
    sys.exit(main())
