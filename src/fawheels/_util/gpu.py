"""Asking `nvidia-smi` about the machine's GPUs: the one place that runs it, for compat, fix-vllm, smoke and
first-call. What a field means (a compute capability, a driver version) is the caller's; this is the query, its
time limit and its failure, and the split of its CSV rows."""

from __future__ import annotations

from collections.abc import Callable, Sequence

NVIDIA_SMI_TIMEOUT_S = 30

# Runs a command and says (exit code, its stdout when it succeeded else its stderr); tests give a fake.
Runner = Callable[[Sequence[str]], tuple[int, str]]


class NvidiaSmiError(Exception):
    """nvidia-smi is missing, hung, or failed (no GPU, no driver loaded); the message says which."""


def query_command(fields: Sequence[str]) -> tuple[str, ...]:
    return ("nvidia-smi", f"--query-gpu={','.join(fields)}", "--format=csv,noheader")


def _run(cmd: Sequence[str]) -> tuple[int, str]:
    from fawheels._util.runner import TimeoutExpired, call

    try:
        done = call(cmd, quiet=True, timeout=NVIDIA_SMI_TIMEOUT_S)
    except OSError as exc:
        return 127, str(exc)
    except TimeoutExpired:
        return 124, f"no answer in {NVIDIA_SMI_TIMEOUT_S} s"
    return done.returncode, done.stdout if done.returncode == 0 else done.stderr


def query(fields: Sequence[str], runner: Runner | None = None) -> str:
    """nvidia-smi's CSV for `fields`, one line per GPU; NvidiaSmiError when it cannot say."""
    code, text = (runner or _run)(query_command(fields))
    if code != 0:
        raise NvidiaSmiError(f"nvidia-smi: exit {code}: {text.strip()[-300:]}")
    return text


def rows(text: str, fields: Sequence[str]) -> list[list[str]]:
    """The CSV's non-blank lines, each split into one stripped value per field. The first may hold commas (a
    GPU's name is asked first); a line of fewer values is a ValueError."""
    width = len(fields)
    found = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = [p.strip() for p in line.rsplit(",", width - 1)]
        if len(parts) != width:
            raise ValueError(f"nvidia-smi printed {line[:120]!r}, not {', '.join(fields)}")
        found.append(parts)
    return found
