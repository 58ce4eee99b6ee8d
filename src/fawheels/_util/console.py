"""How much a long command shows: `-q` errors only, the default a few lines a person reads, `-v` everything.

Three levels of message, all printed through `say` (show.py) on stderr:

- `error`: always shown;
- `step`: what a person watching needs (a finished job, the time left, the wheel); hidden by `-q`;
- `detail`: everything else (commands run, their output, the schedule, the target). While a log file is open
  (`log_to`, a build opens one per target and prints its path) details go there, and to the terminal only with
  `-v`; with no log file open they are shown unless `-q` (commands that open none print as they always did).

Steps and errors are written to the open log file too, so it reads as the whole story. On GitHub Actions
(`GITHUB_ACTIONS=true`) `group` folds each target's lines under its title in the job log.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from fawheels._util.show import say, workflow_command

QUIET, NORMAL, VERBOSE = "quiet", "normal", "verbose"
LEVELS = (QUIET, NORMAL, VERBOSE)


class _State:
    level: str = NORMAL
    log: TextIO | None = None
    lock = threading.Lock()  # the compile's status thread prints too


_state = _State()


def set_level(level: str) -> None:
    if level not in LEVELS:
        raise ValueError(f"level {level!r}: one of {LEVELS}")
    _state.level = level


def level() -> str:
    return _state.level


def level_from(quiet: bool, verbose: bool) -> str:
    return QUIET if quiet else VERBOSE if verbose else NORMAL


def _write(message: str, to_terminal: bool) -> None:
    with _state.lock:
        if _state.log is not None:
            say(message, file=_state.log, flush=True)
        if to_terminal:
            say(message, file=sys.stderr, flush=True)


def error(message: str) -> None:
    _write(message, True)


def step(message: str) -> None:
    _write(message, _state.level != QUIET)


def detail(message: str) -> None:
    _write(message, _state.level == VERBOSE or (_state.log is None and _state.level != QUIET))


def logging_to() -> Path | None:
    return Path(_state.log.name) if _state.log is not None else None


@contextmanager
def log_to(path: Path) -> Iterator[Path]:
    """Details go to `path` (rewritten) while inside; an enclosing log file is restored afterwards."""
    path.parent.mkdir(parents=True, exist_ok=True)
    saved = _state.log
    with path.open("w", encoding="utf-8", errors="backslashreplace") as handle:
        _state.log = handle
        try:
            yield path
        finally:
            _state.log = saved


@contextmanager
def group(title: str) -> Iterator[None]:
    """On GitHub Actions, what is printed inside shows as one foldable group named `title`; elsewhere nothing
    changes."""
    if os.environ.get("GITHUB_ACTIONS") != "true":
        yield
        return
    with _state.lock:
        workflow_command("group", title)
    try:
        yield
    finally:
        with _state.lock:
            sys.stderr.flush()
            workflow_command("endgroup")
