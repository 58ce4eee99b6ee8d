"""`fawheels build --dry-run TARGET…`: the whole plan of a build, and nothing run.

For every target: the wheel it writes, the toolchain and how it is provisioned (a container target's
image recipe with its base pinned by digest, and the commands that would provide it), the torch it links,
the pinned source and patches, the CMake configure line and one nvcc command per kernel unit. The plan
comes from the same planner a build uses (`build.plan_build`), fed with where the tools will be instead of
probing them; nothing is downloaded, compiled or written.

Also here: the check a real build makes before any work (`refuse_unprovided_images`).
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from pathlib import Path

from fawheels._util.errors import ContainerError
from fawheels._util.paths import build_root
from fawheels._util.show import say
from fawheels.build import jobstats
from fawheels.build.execute import IN_CONTAINER, NVCC_JOB_BYTES, mem_available, plan_build
from fawheels.matrix.config import Matrix, Target
from fawheels.matrix.recipes import RECIPES
from fawheels.toolchain.container import (
    LOCAL_BASE,
    find_checkout,
    preflight_registry_base,
    provide_commands,
    resolve_recipe,
)
from fawheels.toolchain.toolkit import CudaToolkit, TorchEnv, pip_toolkit_requirements

TORCH_ENV = Path("<torch-env>")  # where the build's isolated torch env will be
CONTAINER_CUDA_HOME = "/opt/fawheels/cuda"  # the toolchain images' CUDA_HOME (docker/Dockerfile.*)


def _uses_container(target: Target, container: bool) -> bool:
    return container or target.toolchain.provision == "container"


def _toolkit(target: Target, container: bool) -> tuple[CudaToolkit, list[str]]:
    """Where nvcc will be, and how it gets there (lines for the plan)."""
    tc = target.toolchain
    if _uses_container(target, container):
        home = Path(CONTAINER_CUDA_HOME)
        how = [f"the toolchain image's nvcc {tc.cuda}, at {home}"]
        version = tc.pip_version or tc.cuda
    elif tc.provision == "pip":
        assert tc.pip_version is not None
        home = Path(f"<cache>/toolkits/cuda-{tc.pip_version}/nvidia/cu{tc.cuda_version.major}")
        how = ["pip install " + " ".join(pip_toolkit_requirements(tc.pip_version)) + " (into the fawheels cache)"]
        version = tc.pip_version
    else:
        home = Path(tc.cuda_home or os.environ.get("CUDA_HOME") or f"/usr/local/cuda-{tc.cuda}")
        how = [f"host nvcc at {home} (refused unless `nvcc --version` says {tc.cuda})"]
        version = tc.cuda
    return CudaToolkit(home, home / "bin" / "nvcc", version, tc.provision), how


def _torch_env(target: Target) -> TorchEnv:
    py = target.python.replace(".", "")
    site = TORCH_ENV / "lib" / f"python{target.python}" / "site-packages"
    return TorchEnv(
        python=TORCH_ENV / "bin" / "python",
        torch_version=target.torch.version,
        torch_cuda=target.torch.cuda,
        cxx11_abi=True,
        torch_dir=site / "torch",
        python_include=f"<python{target.python}-include>",
        ext_suffix=f".cpython-{py}-x86_64-linux-gnu.so",
        python_version=target.python,
        cmake=TORCH_ENV / "bin" / "cmake",
        ninja=TORCH_ENV / "bin" / "ninja",
    )


def _image_lines(target: Target, root: Path) -> list[str]:
    tc = target.toolchain
    try:
        recipe = resolve_recipe(tc, target.torch.version, target.torch.cuda, target.python, root)
    except ContainerError as exc:
        return [f"image: cannot be planned: {exc.message}"]
    tag = recipe.tag(recipe.inputs_sha256(root))
    lines = [f"image: {tag}", f"  from {recipe.dockerfile}, base {recipe.base}"]
    lines += [f"  --build-arg {k}={v}" for k, v in sorted(recipe.build_args.items()) if v]
    if recipe.base != LOCAL_BASE:
        lines.append("  the base comes from a registry; fawheels never pulls it implicitly. To provide it:")
        lines += [f"    {c}" for c in provide_commands("docker", recipe.base, tag, target.id)]
    return lines


def plan_text(target: Target, matrix: Matrix, *, container: bool = False) -> str:
    """The dry-run plan of one target, as printed."""
    recipe = RECIPES[target.recipe]
    tk, tk_lines = _toolkit(target, container)
    torch = _torch_env(target)
    workdir = build_root() / target.id
    tree = workdir / "src" / "<unpacked source>"
    cpus = os.cpu_count() or 1
    n_archs = len(target.sass) + len(target.ptx)
    # The job count as a first build would choose it (the peaks earlier builds measured are not read here).
    jobs, _why = jobstats.choose_jobs_measured(
        cpus,
        mem_available(),
        dict.fromkeys([*target.profile.translation_units(), "flash_api.cpp"]),
        None,
        fallback=NVCC_JOB_BYTES * n_archs,
    )
    plan = plan_build(target, tree, workdir, tk, torch, jobs, cpus, workdir / "recipe", 0)
    lines = [
        f"== {target.id} (dry run: nothing is fetched, compiled or written)",
        f"wheel: {target.wheel_name}",
        f"recipe: {target.recipe} ({recipe.distribution}, extension {recipe.extension})"
        + (f", serves {target.serves}" if target.serves else ""),
        f"toolchain: {target.toolchain.name}, CUDA {target.toolchain.cuda}, provision "
        f"{'container' if _uses_container(target, container) else target.toolchain.provision}",
    ]
    lines += [f"  {line}" for line in tk_lines]
    if _uses_container(target, container):
        lines += [f"  {line}" for line in _image_lines(target, find_checkout(matrix.root))]
    torch_index = (
        f" from https://download.pytorch.org/whl/cu{target.torch.cuda.replace('.', '')}"
        if target.torch.cuda.startswith("12.")
        else ""
    )
    lines += [
        f"torch: {target.torch.version} (CUDA {target.torch.cuda}, C++{target.torch.cxx_std}){torch_index}; "
        f"wheel requires {target.torch.requirement}",
        f"python: {target.python}",
        f"source: {target.source.name} ({target.source.kind}) {target.source.url} "
        + (f"sha256 {target.source.sha256}" if target.source.sha256 else f"commit {target.source.commit}"),
    ]
    lines += [f"  patch: {p}" for p in target.source.patches]
    lines += [
        f"min driver: {target.min_driver} (CUDA {target.toolchain.cuda} GA)",
        f"archs: SASS {' '.join(a.sm for a in target.sass)}; PTX {' '.join(a.compute for a in target.ptx) or 'none'}",
        f"profile: {target.profile.name}, {len(target.profile.translation_units())} kernel unit(s); "
        f"{jobs} concurrent nvcc job(s) here",
        "configure: " + shlex.join(plan.configure),
        "compile: " + shlex.join(plan.compile),
    ]
    common = " ".join(shlex.quote(f) for f in plan.recorded_flags["nvcc"])
    defines = " ".join(f"-D{d}" for d in plan.recorded_flags["defines"])
    for unit in target.profile.translation_units():
        lines.append(f"  nvcc {common} -std=c++{target.torch.cxx_std} {defines} -c units/{unit}")
    lines.append("then: strip --strip-all, reproducible wheel, fawheels verify, and only then dist/")
    return "\n".join(lines)


def print_plans(matrix: Matrix, targets: Sequence[Target], *, container: bool = False) -> int:
    for i, target in enumerate(targets):
        say(("\n" if i else "") + plan_text(target, matrix, container=container), flush=True)
    return 0


def refuse_unprovided_images(matrix: Matrix, targets: Sequence[Target], *, container: bool) -> None:
    """Before any work: every container target's registry base is here (or its image was built already).
    Inside a toolchain image there is nothing to check."""
    if os.environ.get(IN_CONTAINER):
        return
    for target in targets:
        if not _uses_container(target, container):
            continue
        root = find_checkout(matrix.root)
        recipe = resolve_recipe(target.toolchain, target.torch.version, target.torch.cuda, target.python, root)
        preflight_registry_base(recipe, root, target.id)
