"""Stand-ins for what the build probes on a real machine (toolkit, torch env) and the arguments of a container
run, for unit tests of the pure planners: one definition, so a new field of the real type is added once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fawheels.options import BuildSettings
from fawheels.toolchain.container import RunSpec, plan_run
from fawheels.toolchain.toolkit import CudaToolkit, TorchEnv


def fake_toolkit() -> CudaToolkit:
    return CudaToolkit(Path("/opt/cuda"), Path("/opt/cuda/bin/nvcc"), "13.0.88", "host")


def fake_torch(root: Path, torch: str = "2.14.1+cu130", python: str = "3.11") -> TorchEnv:
    """A torch env under `root` (nothing is created there): `torch` and `python` as the env would report them."""
    tag = python.replace(".", "")
    return TorchEnv(
        python=root / "bin/python",
        torch_version=torch,
        torch_cuda="13.0",
        cxx11_abi=True,
        torch_dir=root / "site/torch",
        python_include=f"/py/include/python{python}",
        ext_suffix=f".cpython-{tag}-x86_64-linux-gnu.so",
        python_version=python,
        cmake=root / "bin/cmake",
        ninja=root / "bin/ninja",
    )


def sample_run(**overrides: Any) -> RunSpec:
    """container.plan_run with placeholder paths and ids; `overrides` replaces any of its arguments."""
    args: dict[str, Any] = {
        "image": "i",
        "target_id": "t",
        "matrix_file": Path("/m/build_matrix.yaml"),
        "dist": Path("/d"),
        "settings": BuildSettings(),
        "cache": Path("/c"),
        "private": Path("/p"),
        "build_root": Path("/b"),
        "environ": {},
        "uid": 0,
        "gid": 0,
    }
    return plan_run(**{**args, **overrides})
