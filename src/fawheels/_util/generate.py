"""Write the files generated from the models; `--check` fails (exit 1) naming each one that is stale.

    python -m fawheels._util.generate           # rewrite them
    python -m fawheels._util.generate --check   # nox -s tests runs this: a stale copy fails CI

docs/build-info.md comes from the build-info model (compile/buildinfo.py); docs/matrix.md and
build_matrix.schema.json from the matrix model (matrix/model.py, matrix/schema.py); docs/environment.md from
options.ENVIRONMENT. Paths are relative to
the repository root (`--root`, default the current directory).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from fawheels._util.files import write_atomic
from fawheels._util.show import say


def _header(source: str) -> str:
    return f"<!-- generated from {source} by `python -m fawheels._util.generate`; do not edit -->\n"


def _build_info_md() -> str:
    from fawheels.compile import buildinfo

    return _header("src/fawheels/compile/buildinfo.py") + buildinfo.markdown()


def _matrix_md() -> str:
    from fawheels.matrix import schema

    return _header("src/fawheels/matrix/model.py") + schema.markdown()


def _matrix_schema() -> str:
    from fawheels.matrix import schema

    return schema.schema_text()


def _environment_md() -> str:
    from fawheels import options

    return _header("src/fawheels/options.py") + options.environment_markdown()


GENERATED: dict[str, Callable[[], str]] = {
    "docs/environment.md": _environment_md,
    "docs/build-info.md": _build_info_md,
    "docs/matrix.md": _matrix_md,
    "build_matrix.schema.json": _matrix_schema,
}


def stale(root: Path) -> list[str]:
    """The generated files whose committed text differs from what the models make now."""
    out = []
    for rel, make in GENERATED.items():
        path = root / rel
        if not path.is_file() or path.read_text(encoding="utf-8") != make():
            out.append(rel)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fawheels._util.generate", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a generated file is stale")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the repository root (default: .)")
    args = parser.parse_args(argv)
    root: Path = args.root
    if args.check:
        outdated = stale(root)
        for rel in outdated:
            say(f"{rel} is stale: run `python -m fawheels._util.generate` and commit the result", file=sys.stderr)
        return 1 if outdated else 0
    for rel, make in GENERATED.items():
        write_atomic(root / rel, make()).chmod(0o644)  # a doc, not a secret (mkstemp makes 0600)
        say(f"wrote {rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
