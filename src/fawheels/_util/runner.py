"""The one gateway for subprocesses: no other module of the package imports `subprocess`.

Every command is echoed the same way before it runs (`$ cmd`, except quiet probes), and child output that is
shown goes through our own `sys.stderr`, so the redaction the CLI installs there applies to it too. Echoes and
streamed output are details (console.py): in a build's log file, on the terminal with `-v`. Three
shapes: `run` (stream or capture, raise on failure), `call` (capture stdout and stderr apart, return the exit
code: probes and checks that judge the result themselves), `spawn` (a long-running child read as it goes).
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from fawheels._util import console
from fawheels._util.errors import BuildError, FawheelsError

ErrorClass = type[FawheelsError]
# Raised by `call` when its timeout passes (the child has been killed by then).
TimeoutExpired = subprocess.TimeoutExpired
# What a failure to start or to finish looks like to `call` and `spawn` callers.
SubprocessError = subprocess.SubprocessError
PIPE = subprocess.PIPE


def log(message: str) -> None:
    """A detail (console.py): the build's log file, the terminal with -v (or when no log file is open)."""
    console.detail(message)


def format_command(cmd: Sequence[str | Path]) -> str:
    return " ".join(shlex.quote(str(c)) for c in cmd)


def _environ(env: Mapping[str, str] | None, inherit_env: bool) -> dict[str, str] | None:
    """The child's environment: ours with `env` on top, or exactly `env` when not `inherit_env`."""
    if not inherit_env:
        return dict(env or {})
    return {**os.environ, **env} if env is not None else None


def _echo(cmd: Sequence[str | Path], cwd: Path | str | None, shown: Sequence[str | Path] | None) -> None:
    log(f"$ {format_command(shown or cmd)}" + (f"   (in {cwd})" if cwd else ""))


@dataclass(frozen=True)
class Completed:
    """A finished command: its exit code and what it wrote, stdout and stderr apart."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def call(
    cmd: Sequence[str | Path],
    *,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    inherit_env: bool = True,
    input: str | None = None,
    timeout: float | None = None,
    quiet: bool = False,
    shown: Sequence[str | Path] | None = None,
) -> Completed:
    """Run a command to the end and capture its output; the caller judges the exit code. Standard input is
    `input`, or nothing (a probe must never wait on the terminal). Raises OSError when it cannot start and
    `TimeoutExpired` (child killed) past `timeout`. `shown` is what is echoed instead of `cmd`."""
    if not quiet:
        _echo(cmd, cwd, shown)
    proc = subprocess.run(
        [str(c) for c in cmd],
        cwd=cwd,
        env=_environ(env, inherit_env),
        input=input,
        stdin=subprocess.DEVNULL if input is None else None,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
    )
    return Completed(tuple(proc.args), proc.returncode, proc.stdout, proc.stderr)


def spawn(
    cmd: Sequence[str | Path],
    *,
    stdout: int | IO[bytes] | None = None,
    stderr: int | IO[bytes] | None = None,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    quiet: bool = False,
) -> subprocess.Popen[str]:
    """Start a child the caller reads as it runs (`stdout=PIPE` gives text lines) and waits for or kills
    itself. Raises OSError when it cannot start."""
    if not quiet:
        _echo(cmd, cwd, None)
    return subprocess.Popen(
        [str(c) for c in cmd],
        cwd=cwd,
        env=_environ(env, True),
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        text=True,
        errors="replace",
    )


def run(
    cmd: Sequence[str | Path],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    capture: bool = False,
    on_line: Callable[[str], None] | None = None,
    error: ErrorClass = BuildError,
    what: str | None = None,
    quiet: bool = False,
    shown: Sequence[str | Path] | None = None,
) -> str:
    """Run a command, echoing it first. Output (stderr merged into stdout) goes to our stderr line by line
    (through `on_line` when given) unless `capture`; the captured or last lines go into the error on failure."""
    return _run(
        cmd,
        cwd=cwd,
        env=env,
        capture=capture,
        on_line=on_line,
        error=error,
        what=what,
        quiet=quiet,
        check=True,
        shown=shown,
    )[1]


def pip_install_into(
    target: Path,
    requirements: Sequence[str | Path],
    *,
    what: str,
    error: ErrorClass = BuildError,
    index: bool = True,
    capture: bool = False,
    quiet: bool = False,
) -> str:
    """`pip install --no-deps --target TARGET` with this interpreter: a private install location (a toolkit,
    cuobjdump, a wheel under test) that never touches the running environment. `index=False`: local files only;
    `quiet`: no pip progress (a large download keeps it)."""
    cmd: list[str | Path] = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-compile"]
    cmd += ["--disable-pip-version-check"] + ([] if index else ["--no-index"]) + (["-q"] if quiet else [])
    return run([*cmd, "--target", str(target), *requirements], what=what, error=error, capture=capture)


def run_code(
    cmd: Sequence[str | Path],
    *,
    what: str | None = None,
    error: ErrorClass = BuildError,
    shown: Sequence[str | Path] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Like `run`, but the exit code is returned, not raised (the caller judges it), and the output is shown
    as steps (a build run elsewhere, whose own output already chose what a person sees)."""
    return _run(
        cmd,
        cwd=cwd,
        env=env,
        capture=False,
        on_line=console.step,
        error=error,
        what=what,
        quiet=False,
        check=False,
        shown=shown,
    )[0]


def _run(
    cmd: Sequence[str | Path],
    *,
    cwd: Path | None,
    env: Mapping[str, str] | None,
    capture: bool,
    on_line: Callable[[str], None] | None,
    error: ErrorClass,
    what: str | None,
    quiet: bool,
    check: bool,
    shown: Sequence[str | Path] | None,
) -> tuple[int, str]:
    if not quiet:
        _echo(cmd, cwd, shown)
    full_env = _environ(env, True)
    try:
        proc = subprocess.Popen(
            [str(c) for c in cmd],
            cwd=cwd,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
    except FileNotFoundError as exc:
        raise error(f"{what or 'command'} failed: {cmd[0]} not found") from exc
    lines: list[str] = []
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            lines.append(line)
            if capture:
                continue
            (on_line or log)(line.rstrip("\n"))
        code = proc.wait()
    except KeyboardInterrupt:
        # Let the child (ninja) stop its own children first; kill it if it does not.
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        raise
    output = "".join(lines)
    if code != 0 and check:
        tail = "".join(lines[-40:]).rstrip()
        raise error(f"{what or format_command(shown or cmd)} failed (exit {code}):\n{tail}")
    return code, output
