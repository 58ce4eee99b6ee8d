"""What fawheels ships inside its package (src/fawheels/_util/project.py SHIPPED) is everything the default
matrix and a container build read from the repository; tests/integration/test_install.py builds the wheel and
proves the packaged copies equal these files."""

from __future__ import annotations

from pathlib import Path

from fawheels._util import project
from fawheels.matrix.config import load_matrix_file
from fawheels.toolchain import images
from support.checkout import REPO


def test_in_a_checkout_the_repository_is_the_project_tree() -> None:
    assert project.project_root() == REPO


def test_everything_the_default_matrix_reads_ships() -> None:
    shipped = set(project.shipped_files(REPO))
    matrix = load_matrix_file(REPO / "build_matrix.yaml")
    needed = {p for s in matrix.sources.values() for p in s.patches}
    needed |= {t.image.dockerfile for t in matrix.toolchains.values() if t.image is not None}
    needed |= {images.PIP_DOCKERFILE, images.SYSTEM_DOCKERFILE, images.LOCK_FILE, images.BASE_SCRIPT}
    assert needed <= shipped, needed - shipped
    assert all((REPO / name).is_file() for name in shipped)


def test_the_sdist_manifest_names_every_shipped_path() -> None:
    manifest = (REPO / "MANIFEST.in").read_text()
    for name in project.SHIPPED:
        assert name in manifest, name


def test_version_and_module_entry_point(capsys: object) -> None:
    import fawheels

    assert (Path(fawheels.__file__).parent / "__main__.py").is_file()
    assert fawheels.__version__.count(".") == 2
