"""The recipe's CMake project with a real cmake + ninja (tiny stand-in units, nothing of FA2 compiled):
compile jobs reach ninja in the schedule's order, the link keeps the profile's order, and ninja starts
ready jobs in build-file order, the fact the schedule relies on (docs/build-performance.md)."""

from __future__ import annotations

import re
import shutil
import subprocess
from importlib import resources
from pathlib import Path

import pytest

NVCC = shutil.which("nvcc") or "/usr/local/cuda-13.0/bin/nvcc"
CMAKE, NINJA = shutil.which("cmake") or "", shutil.which("ninja") or ""  # "" when absent: skipped below

pytestmark = [
    pytest.mark.nvcc,
    pytest.mark.skipif(not (Path(NVCC).exists() and CMAKE and NINJA), reason="needs nvcc, cmake, ninja"),
]

UNITS = ["a_unit", "b_unit", "c_unit", "d_unit"]
SCHEDULE = ["c_unit", "a_unit", "d_unit", "b_unit"]


def configure(tmp: Path) -> str:
    src = tmp / "src"
    (src / "csrc/flash_attn").mkdir(parents=True)
    (src / "csrc/flash_attn/flash_api.cpp").write_text("int fawheels_host() { return 1; }\n")
    (tmp / "units").mkdir()
    for u in UNITS:
        (tmp / "units" / f"{u}.cu").write_text(f"__global__ void k_{u}() {{}}\n")
    with resources.as_file(resources.files("fawheels.matrix.recipes").joinpath("fa2")) as recipe:
        subprocess.run(
            [
                CMAKE,
                "-S",
                str(recipe),
                "-B",
                str(tmp / "b"),
                "-G",
                "Ninja",
                f"-DCMAKE_MAKE_PROGRAM={NINJA}",
                f"-DCMAKE_CUDA_COMPILER={NVCC}",
                "-DFA_EXT_NAME=ext",
                "-DFA_EXT_SUFFIX=.so",
                "-DFA_CXX_STD=17",
                f"-DFA_SOURCE_DIR={src}",
                "-DFA_KERNEL_SOURCES=" + ";".join(str(tmp / "units" / f"{u}.cu") for u in UNITS),
                "-DFA_KERNEL_SCHEDULE=" + ";".join(str(tmp / "units" / f"{u}.cu") for u in SCHEDULE),
                "-DFA_CUDA_FLAGS=-O0",
            ],
            check=True,
            capture_output=True,
        )
    return (tmp / "b" / "build.ninja").read_text()


def test_compile_order_follows_the_schedule_and_the_link_order_does_not(tmp_path: Path) -> None:
    ninja_file = configure(tmp_path)
    compiles = re.findall(r"^build \S*/units/(\w+)\.cu\.o:", ninja_file, flags=re.M)
    assert compiles == SCHEDULE
    link = next(line for line in ninja_file.splitlines() if line.startswith("build ext.so:"))
    objects = re.findall(r"(\w+)\.(?:cu|cpp)\.o", link.split("||")[0])
    assert objects == ["flash_api", *UNITS]  # as before issue 13: the host API first, then the profile's order
    proc = subprocess.run([NINJA, "-C", str(tmp_path / "b"), "-j", "1"], capture_output=True, text=True, check=True)
    started = re.findall(r"Building CUDA object \S*/units/(\w+)\.cu\.o", proc.stdout)
    assert started == SCHEDULE  # ninja -j1 runs them in build-file order
