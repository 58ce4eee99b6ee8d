"""Ships the default matrix, patches/ and docker/ inside the fawheels package (fawheels/_project/), copied at
build time from the repository's own files (the list: src/fawheels/_util/project.py SHIPPED). Everything else
is in pyproject.toml."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "src" / "fawheels" / "_util"))
import project  # noqa: E402  (the standard-library-only list of shipped files)


class BuildPyWithProject(build_py):
    def run(self) -> None:
        super().run()
        dest = Path(self.build_lib) / "fawheels" / project.PACKAGED_DIR
        for name in project.shipped_files(ROOT):
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)


setup(cmdclass={"build_py": BuildPyWithProject})
