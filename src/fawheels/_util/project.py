"""The project files fawheels ships inside its package, so an installed `fawheels` works from any directory.

The repository's files stay the source of truth: `SHIPPED` names them, the build (setup.py's build_py) copies
exactly these into `fawheels/_project/` of the wheel, and tests/unit/test_packaging.py proves the copies equal
the repository's. In a checkout (an editable install, `PYTHONPATH=src`) the repository itself is that tree.

No imports beyond the standard library: setup.py imports this module before fawheels is installed.
"""

from __future__ import annotations

from pathlib import Path

# Relative to the repository root; a directory ships whole. build_matrix.yaml's patches resolve against the
# folder the matrix lies in, container builds find docker/ and the base-image script beside it.
SHIPPED = (
    "build_matrix.yaml",
    "build_matrix.schema.json",
    "patches",
    "docker",
    "scripts/make-base-image.sh",
)
PACKAGED_DIR = "_project"  # inside the fawheels package
PACKAGE_DIR = Path(__file__).resolve().parents[1]


def shipped_files(root: Path) -> list[str]:
    """Every file SHIPPED names under `root`, as sorted relative POSIX paths (caches and bytecode left out)."""
    out: list[str] = []
    for name in SHIPPED:
        path = root / name
        if path.is_file():
            out.append(name)
        elif path.is_dir():
            out += [
                p.relative_to(root).as_posix()
                for p in path.rglob("*")
                if p.is_file() and "__pycache__" not in p.parts and not p.name.endswith(".pyc")
            ]
    return sorted(out)


def project_root() -> Path | None:
    """The tree holding the default build_matrix.yaml, patches/ and docker/: the copy inside the installed
    package, else the checkout this module runs from; None when neither is there."""
    for root in (PACKAGE_DIR / PACKAGED_DIR, PACKAGE_DIR.parents[1]):
        if (root / SHIPPED[0]).is_file():
            return root
    return None
