"""The build plan (pure): every command and flag of a target's build (CMake configure, the nvcc flags, the prefix
maps that keep machine paths out of the binary), how many compile jobs run at once and in which order."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fawheels._util.errors import BuildError
from fawheels.compile import jobstats, planner
from fawheels.compile.units import (
    compile_units,
    kernels_header,
    ops_header,
    unit_files,
)
from fawheels.matrix.cudafacts import Arch
from fawheels.matrix.model import Target
from fawheels.matrix.recipes import RECIPES
from fawheels.options import BuildSettings
from fawheels.toolchain.toolkit import CudaToolkit, TorchEnv

GB = 1024**3


def builds_in_image(target: Target, settings: BuildSettings) -> bool:
    """Whether `target` compiles inside its toolchain image: a container toolchain, or any target with
    `--container`; never from inside an image (there the image is the toolchain). The one place this is
    decided: build, its dry run and the nightly ask here."""
    return (settings.container or target.toolchain.provision == "container") and not settings.in_image


# Peak RSS assumed for one nvcc job on an FA2 forward TU when nothing was measured (4.0-4.9 GB seen); rounded
# up. Measured peaks (jobstats.py) replace it once a unit was compiled with the same nvcc, archs and flags.
NVCC_JOB_BYTES = jobstats.FALLBACK_JOB_BYTES


# No `--split-compile`: with nvcc 13.0.88 cicc's split output differs from run to run on an FA2 kernel unit
# (two `-ptx --split-compile=4` runs gave 6.19 MB and 5.06 MB of PTX; the wheel's cubin changed with it),
# which would end byte-identical wheels (docs/build-performance.md).
# Stable names that build paths are mapped to, so no machine path reaches the binary.
PREFIX_NAMES = {
    "workdir": "/fawheels/build",
    "torch": "/fawheels/torch",
    "cuda": "/fawheels/cuda",
    "python": "/fawheels/python",
}


NVCC_FLAGS = [
    "-O3",
    "-U__CUDA_NO_HALF_OPERATORS__",
    "-U__CUDA_NO_HALF_CONVERSIONS__",
    "-U__CUDA_NO_HALF2_OPERATORS__",
    "-U__CUDA_NO_BFLOAT16_CONVERSIONS__",
    "--expt-relaxed-constexpr",
    "--expt-extended-lambda",
    "--use_fast_math",
    "-Xcompiler=-Wno-deprecated-declarations",
]


# torch's headers use CUDA 13's deprecated double4; the warning floods logs and changes nothing.
CXX_FLAGS = ["-O3", "-Wno-deprecated-declarations"]


TORCH_LIBS = ["c10", "torch", "torch_cpu", "torch_python", "c10_cuda", "torch_cuda"]


def nvcc_parallel_flags(n_arches: int) -> list[str]:
    """nvcc's parallelism inside one unit: one thread per arch (--threads). A function of the target alone:
    the flag is in every compile command (a different value recompiles, and misses the compiler cache) and in
    build-info.json, so it must not follow the machine's cores or the job count."""
    return [f"--threads={max(1, n_arches)}"]


def gencode_flags(sass: tuple[Arch, ...], ptx: tuple[Arch, ...]) -> list[str]:
    flags = [f"-gencode=arch={a.compute},code={a.sm}" for a in sass]
    flags += [f"-gencode=arch={a.compute},code={a.compute}" for a in ptx]
    return flags


@dataclass(frozen=True)
class BuildPlan:
    target: Target
    workdir: Path
    tree: Path
    configure: list[str]
    compile: list[str]
    env: dict[str, str]
    generated: dict[str, str]  # files the executor writes under workdir (headers, unit wrappers)
    recorded_flags: dict[str, list[str]]  # path-free flags, for build-info.json
    jobs: int
    so_name: str  # as CMake writes it
    wheel_so_path: str  # where it goes in the wheel

    @property
    def cmake_dir(self) -> Path:
        return self.workdir / "cmake"


def _cmake_list(items: list[str]) -> str:
    return ";".join(items)


SCHEDULE_VAR = "FA_KERNEL_SCHEDULE"  # the only configure input that may change without recompiling anything


def configure_identity(configure: list[str]) -> list[str]:
    """The configure command less the schedule: what decides whether the objects of a previous build are
    still the right ones (a new schedule only reorders build.ninja; the compile commands stay the same)."""
    return [a for a in configure if not a.startswith(f"-D{SCHEDULE_VAR}=")]


def plan_build(
    target: Target,
    tree: Path,
    workdir: Path,
    tk: CudaToolkit,
    torch: TorchEnv,
    jobs: int,
    cpus: int,
    recipe_dir: Path,
    source_date_epoch: int,
    launcher: str | None = None,
    schedule: list[str] | None = None,
    job_launcher: list[str] | None = None,
    splitkv_parts: bool = False,
) -> BuildPlan:
    """Every command and flag of the build, from the target and the probed tools. No I/O.

    `schedule`: the kernel units in the order ninja should start them (longest first); the link order stays
    the profile's. `job_launcher`: the command that measures each compile job (jobstats.py), in front of
    `launcher` (a compiler cache). `splitkv_parts`: compile each split-KV unit as a dispatch unit and four
    parts (the source has patch 0005: splitkv_parts_available)."""
    units = compile_units(target.profile, splitkv_parts)
    order = schedule or units
    if sorted(order) != sorted(units):
        raise BuildError(f"schedule {order} is not a permutation of the units {units}")
    maps = {
        workdir: PREFIX_NAMES["workdir"],
        torch.torch_dir: PREFIX_NAMES["torch"],
        tk.cuda_home: PREFIX_NAMES["cuda"],
        Path(torch.python_include): PREFIX_NAMES["python"],
    }
    prefix_flags = [f"-ffile-prefix-map={old}={new}" for old, new in maps.items()]
    arch_flags = gencode_flags(target.sass, target.ptx)
    nvcc_flags = [*NVCC_FLAGS, *arch_flags, *nvcc_parallel_flags(len(target.sass) + len(target.ptx))]
    cxx_flags = list(CXX_FLAGS)
    recipe = RECIPES[target.recipe]
    defines = [
        f"TORCH_EXTENSION_NAME={recipe.extension}",
        "TORCH_API_INCLUDE_EXTENSION_H",
        f"_GLIBCXX_USE_CXX11_ABI={int(torch.cxx11_abi)}",
        *recipe.defines,
        *target.profile.defines,
    ]
    kernel_dir = tree / recipe.kernel_dir
    cmake_dir = workdir / "cmake"
    configure = [
        str(torch.cmake),
        "-S",
        str(recipe_dir),
        "-B",
        str(cmake_dir),
        "-G",
        "Ninja",
        f"-DCMAKE_MAKE_PROGRAM={torch.ninja}",
        "-DCMAKE_BUILD_TYPE=Release",
        f"-DCMAKE_CUDA_COMPILER={tk.nvcc}",
        f"-DCUDAToolkit_ROOT={tk.cuda_home}",
        "-DCMAKE_CUDA_ARCHITECTURES=OFF",
        f"-DFA_EXT_NAME={recipe.extension}",
        f"-DFA_EXT_SUFFIX={recipe.so_name(torch.ext_suffix).removeprefix(recipe.extension)}",
        f"-DFA_CXX_STD={target.torch.cxx_std}",
        f"-DFA_SOURCE_DIR={tree}",
        f"-DFA_KERNEL_SOURCES={_cmake_list([str(workdir / 'units' / u) for u in units])}",
        f"-D{SCHEDULE_VAR}={_cmake_list([str(workdir / 'units' / u) for u in order])}",
        f"-DFA_GENERATED_INCLUDE={workdir / 'include'}",
        f"-DFA_TORCH_INCLUDE_DIRS={_cmake_list([str(p) for p in torch.include_dirs])}",
        f"-DFA_PYTHON_INCLUDE={torch.python_include}",
        f"-DFA_TORCH_LIB_DIR={torch.lib_dir}",
        f"-DFA_TORCH_LIBS={_cmake_list(TORCH_LIBS)}",
        f"-DFA_DEFINES={_cmake_list(defines)}",
        f"-DFA_CXX_FLAGS={_cmake_list(cxx_flags + prefix_flags)}",
        f"-DFA_CUDA_FLAGS={_cmake_list(nvcc_flags + [f'-Xcompiler={f}' for f in prefix_flags])}",
        f"-DFA_LINK_FLAGS={_cmake_list(prefix_flags)}",
    ]
    if recipe.extra_sources:  # copied beside the CMake project by the executor
        extra = [str(recipe_dir / Path(s).name) for s in recipe.extra_sources]
        configure.append(f"-DFA_EXTRA_SOURCES={_cmake_list(extra)}")
    launchers = [*(job_launcher or []), *([launcher] if launcher else [])]
    if launchers:  # the job meter, then a compiler cache (sccache/ccache), in front of nvcc and c++
        configure += [
            f"-DCMAKE_CUDA_COMPILER_LAUNCHER={_cmake_list(launchers)}",
            f"-DCMAKE_CXX_COMPILER_LAUNCHER={_cmake_list(launchers)}",
        ]
    compile_cmd = [str(torch.ninja), "-C", str(cmake_dir), "-j", str(jobs)]
    env = {
        "CUDA_HOME": str(tk.cuda_home),
        "PATH": f"{tk.cuda_home / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "SOURCE_DATE_EPOCH": str(source_date_epoch),
        "NINJA_STATUS": "[%f/%t] ",
        "LC_ALL": "C",
    }
    recorded = {"nvcc": nvcc_flags, "cxx": cxx_flags, "defines": defines, "prefix_maps": sorted(set(maps.values()))}
    generated = {"include/fawheels_kernels.h": kernels_header(target.profile)}
    if ops := ops_header(target):
        generated["include/fawheels_ops.h"] = ops
    generated.update(unit_files(target.profile, kernel_dir, splitkv_parts))
    return BuildPlan(
        target,
        workdir,
        tree,
        configure,
        compile_cmd,
        env,
        generated,
        recorded,
        jobs,
        recipe.so_name(torch.ext_suffix),
        recipe.wheel_path(torch.ext_suffix),
    )


def host_units(target: Target) -> list[str]:
    """The compile jobs besides the kernel units: the binding (flash_api.cpp) and a recipe's extra sources."""
    return ["flash_api.cpp", *(Path(s).name for s in RECIPES[target.recipe].extra_sources)]


def ninja_jobs(target: Target, units: list[str]) -> int:
    """The jobs ninja runs for a fresh build: every kernel unit, the host units, the link (its [n/N])."""
    return len(units) + len(host_units(target)) + 1


def plan_compile(
    target: Target,
    *,
    nvcc_version: str,
    history: Mapping[str, list[dict[str, Any]]],
    cpus: int,
    mem: int,
    override: int | None,
    parts_available: bool,
) -> planner.Choice:
    """Whole split-KV units or parts, and the job count, for this machine (planner.py): the build and its dry
    run decide here, from the job history (`history`, jobstats.load_history) and the cores and memory."""
    archs = [a.sm for a in target.sass] + [a.compute for a in target.ptx]
    key_flags = [*nvcc_parallel_flags(len(archs)), *(f"-D{d}" for d in target.profile.defines)]

    def key(unit: str) -> str:
        return jobstats.stats_key(nvcc_version, archs, unit, key_flags)

    def way(parts: bool) -> planner.Way:
        return planner.way(
            parts,
            compile_units(target.profile, parts),
            host_units(target),
            measured_s=lambda u: jobstats.measured_seconds(history, key(u)),
            measured_peak=lambda u: jobstats.measured_peak(history, key(u)),
            n_archs=len(archs),
            cpus=cpus,
            mem_available=mem,
            override=override,
            fallback=NVCC_JOB_BYTES * len(archs),
        )

    splittable = parts_available and compile_units(target.profile, True) != compile_units(target.profile, False)
    return planner.choose(way(False), way(True) if splittable else None)


def mem_available() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 * GB
