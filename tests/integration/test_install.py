"""`pip install <checkout>` gives a fawheels that works from any directory: its wheel carries the default matrix,
patches/ and docker/ (byte-equal to the repository's), and from an empty directory `fawheels --version`,
`python -m fawheels --help`, `fawheels matrix` and a derived `build --dry-run` work."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from fawheels import __version__
from fawheels._util import project
from support.checkout import REPO, copy_repo


@pytest.mark.tools
def test_pip_install_of_the_checkout_works_from_an_empty_directory(tmp_path: Path) -> None:
    checkout = copy_repo(tmp_path / "checkout")  # a clean tree: no build/ or egg-info of this one
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(checkout)], check=True
    )
    (wheel,) = wheels.glob("fawheels-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        packaged = {
            n.split(f"fawheels/{project.PACKAGED_DIR}/", 1)[1]: zf.read(n)
            for n in zf.namelist()
            if n.startswith(f"fawheels/{project.PACKAGED_DIR}/")
        }
    assert sorted(packaged) == project.shipped_files(REPO)
    for name, data in packaged.items():
        assert data == (REPO / name).read_bytes(), name

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py, exe = env_dir / "bin" / "python", env_dir / "bin" / "fawheels"
    subprocess.run([py, "-m", "pip", "install", "-q", str(wheel)], check=True)
    empty = tmp_path / "empty"
    empty.mkdir()

    def run(*cmd: str | Path) -> str:
        done = subprocess.run(cmd, cwd=empty, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert run(exe, "--version").strip() == f"fawheels {__version__}"
    assert "fix-vllm" in run(py, "-m", "fawheels", "--help")
    assert "fa2-cu130-torch2.14-sm120-cp311" in run(exe, "matrix")
    plan = run(exe, "build", "--dry-run", "--vllm", "0.26.0", "--arch", "sm_120", "--python", "3.12")
    assert "vllm-fa2-cu130-torch2.11-sm120-cp312" in plan and "code=sm_120" in plan
    assert list(empty.iterdir()) == []
