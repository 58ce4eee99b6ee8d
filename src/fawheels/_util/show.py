"""The one way fawheels prints: text that may hold names from data (wheel members, manifests, servers, file
names) reaches a terminal or a CI log only with its control characters made visible.

- Every control, format, separator or surrogate character except newline and tab is written as an escape
  (`\\x1b`, `\\u202e`): no ESC/OSC sequence moves a cursor, retitles a window or hides text.
- A line never starts (after blanks) with `::` or `##`, which GitHub Actions and Azure Pipelines read as
  workflow commands: its first character is written as an escape instead.
- JSON stays exact: `json.dumps` never emits a raw control character, and the escapes used for others are
  JSON's own (`\\uXXXX`), so a JSON document passes through unchanged.

`say` is the only function in the package that writes to stdout or stderr (a unit test greps for others);
`one_line` is for a value put inside a message, where a newline would start a new line.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from typing import TextIO

_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
_COMMAND_START = re.compile(r"^([ \t]*)([:#])(?=\2)", re.M)
_MAYBE_UNSAFE = re.compile(r"[^\t\n\x20-\x7e]|^[ \t]*(?:::|##)", re.M)  # fast path: plain ASCII lines pass


def _escape(c: str) -> str:
    n = ord(c)
    if n < 0x20 or c in ":#":  # never raw inside a JSON string, so a shell-style escape reads best
        return f"\\x{n:02x}"
    if n > 0xFFFF:  # a JSON-compatible surrogate pair
        n -= 0x10000
        return f"\\u{0xD800 + (n >> 10):04x}\\u{0xDC00 + (n & 0x3FF):04x}"
    return f"\\u{n:04x}"


def _unsafe(c: str, keep: str) -> bool:
    return c not in keep and (c < " " or c == "\x7f" or (c > "~" and unicodedata.category(c) in _UNSAFE_CATEGORIES))


def visible(text: str, *, keep: str = "\n\t") -> str:
    """`text` with every character that a terminal or CI runner would act on written as an escape."""
    if keep == "\n\t" and not _MAYBE_UNSAFE.search(text):
        return text  # the common case, checked in one pass
    out = "".join(_escape(c) if _unsafe(c, keep) else c for c in text)
    return _COMMAND_START.sub(lambda m: m.group(1) + _escape(m.group(2)), out)


def one_line(value: object) -> str:
    """A value from data, shown inside a message: no newline or tab of its own, nothing a terminal acts on."""
    return visible(str(value), keep="")


def human_size(n: float) -> str:
    """A byte count for people: 1023 B, 1.5 KiB, 300.0 MiB, 3.0 GiB (the index pages and `fawheels cache`)."""
    if n < 1024:
        return f"{n:.0f} B"
    size, units = n / 1024, ["KiB", "MiB", "GiB"]
    while size >= 1024 and len(units) > 1:
        size, units = size / 1024, units[1:]
    return f"{size:.1f} {units[0]}"


def say(*parts: object, file: TextIO | None = None, sep: str = " ", end: str = "\n", flush: bool = False) -> None:
    """print(), for everything fawheels writes to stdout (default) or stderr."""
    stream = sys.stdout if file is None else file
    stream.write(visible(sep.join(str(p) for p in parts)) + end)
    if flush:
        stream.flush()


def workflow_command(name: str, value: str = "") -> None:
    """`::name::value` on stdout, a GitHub Actions workflow command: the one place fawheels writes one (`say`
    escapes any that comes from data; `value` is shown as one line)."""
    sys.stdout.flush()
    sys.stdout.write(f"::{name}::{one_line(value)}\n")
    sys.stdout.flush()
