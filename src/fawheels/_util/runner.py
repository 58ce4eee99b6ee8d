"""The one gateway for subprocesses: prints what it runs, streams or captures output, raises on failure."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from fawheels._util.errors import BuildError, FawheelsError

ErrorClass = type[FawheelsError]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def format_command(cmd: Sequence[str | Path]) -> str:
    return " ".join(shlex.quote(str(c)) for c in cmd)


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
) -> str:
    """Run a command, echoing it first. Output goes to our stderr line by line (through `on_line`
    when given) unless `capture`; the captured or last lines go into the error on failure."""
    if not quiet:
        log(f"$ {format_command(cmd)}" + (f"   (in {cwd})" if cwd else ""))
    full_env = {**os.environ, **env} if env is not None else None
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
            if on_line is not None:
                on_line(line.rstrip("\n"))
            else:
                sys.stderr.write(line)
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
    if code != 0:
        tail = "".join(lines[-40:]).rstrip()
        raise error(f"{what or format_command(cmd)} failed (exit {code}):\n{tail}")
    return output
