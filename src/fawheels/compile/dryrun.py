"""`fawheels build --dry-run TARGET…`: the whole plan of a build, and nothing run.

For every target: the wheel it writes, the toolchain and how it is provisioned (a container target's
image recipe with its base pinned by digest, and the commands that would provide it), the torch it links,
the pinned source and patches, the CMake configure line and one nvcc command per kernel unit. The plan
comes from the same planner a build uses (`plan.plan_build`), fed with where the tools will be instead of
probing them; nothing is downloaded, compiled or written.

Also here: the check a real build makes before any work (`refuse_unprovided_images`).
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fawheels._util import jsondoc
from fawheels._util.errors import ContainerError, ToolchainError
from fawheels._util.paths import build_root
from fawheels._util.show import say
from fawheels.compile import jobstats, planner
from fawheels.compile.plan import NVCC_JOB_BYTES, builds_in_image, mem_available, ninja_jobs, plan_build, plan_compile
from fawheels.compile.units import SPLITKV_PARTS_MARKER
from fawheels.matrix.model import Matrix, Target
from fawheels.matrix.recipes import RECIPES
from fawheels.options import DEFAULT_SETTINGS, BuildSettings
from fawheels.toolchain.container import preflight_registry_base
from fawheels.toolchain.images import LOCAL_BASE, find_checkout, provide_commands, resolve_recipe
from fawheels.toolchain.toolkit import CudaToolkit, TorchEnv, host_cuda_home_wanted, pip_toolkit_requirements

TORCH_ENV = Path("<torch-env>")  # where the build's isolated torch env will be
CONTAINER_CUDA_HOME = "/opt/fawheels/cuda"  # the toolchain images' CUDA_HOME (docker/Dockerfile.*)
GB = jobstats.GB
DISK_NEEDED = 10 * GB  # the torch env (5.5 GB), the unpacked source and the objects (README: time and disk)


def _toolkit(target: Target, settings: BuildSettings) -> tuple[CudaToolkit, list[str]]:
    """Where nvcc will be, and how it gets there (lines for the plan)."""
    tc = target.toolchain
    if builds_in_image(target, settings):
        home = Path(CONTAINER_CUDA_HOME)
        how = [f"the toolchain image's nvcc {tc.cuda}, at {home}"]
        version = tc.pip_version or tc.cuda
    elif tc.provision == "pip":
        assert tc.pip_version is not None
        home = Path(f"<cache>/toolkits/cuda-{tc.pip_version}/nvidia/cu{tc.cuda_version.major}")
        how = ["pip install " + " ".join(pip_toolkit_requirements(tc.pip_version)) + " (into the fawheels cache)"]
        version = tc.pip_version
    else:
        home, _ = host_cuda_home_wanted(tc)  # the build's own choice; the nvcc check below says if it is there
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


def _parts_in_patches(target: Target, matrix: Matrix) -> bool:
    """Whether the target's patches give split-KV units in parts (patch 0005: the marker the build looks for in
    the patched header); the dry run unpacks nothing, so it reads the patch files."""
    for patch in target.source.patches:
        try:
            if SPLITKV_PARTS_MARKER in (matrix.root / patch).read_text(encoding="utf-8", errors="replace"):
                return True
        except OSError:
            continue
    return False


def _nvcc_version_in_history(history: Mapping[str, list[dict[str, Any]]], cuda: str) -> str:
    """The nvcc of this CUDA release that earlier builds measured jobs with (their keys start `nvcc 13.0.88 |`)."""
    seen = sorted({k.split(" | ")[0].removeprefix("nvcc ") for k in history if k.startswith(f"nvcc {cuda}.")})
    return seen[-1] if seen else cuda


def plan_choice(target: Target, matrix: Matrix, settings: BuildSettings = DEFAULT_SETTINGS) -> planner.Choice:
    """The granularity and job count the build would choose on this machine (plan.plan_compile)."""
    history = jobstats.load_history()
    return plan_compile(
        target,
        nvcc_version=_nvcc_version_in_history(history, target.toolchain.cuda),
        history=history,
        cpus=os.cpu_count() or 1,
        mem=mem_available(),
        override=settings.jobs,
        parts_available=_parts_in_patches(target, matrix),
    )


def checks(target: Target, tk: CudaToolkit, settings: BuildSettings) -> list[tuple[str, bool, str]]:
    """What the dry run can check without compiling: (name, ok, detail). A host nvcc that is not there, too
    little disk under the build root or too little memory for one job fails here instead of in the build."""
    found: list[tuple[str, bool, str]] = []
    if not builds_in_image(target, settings) and target.toolchain.provision == "host":
        there = tk.nvcc.is_file()
        found.append(
            ("nvcc", there, f"{tk.nvcc}" + ("" if there else " not found: set CUDA_HOME, or use a pip toolchain"))
        )
    root = build_root()
    probe = next((p for p in (root, *root.parents) if p.exists()), Path("/"))
    free = shutil.disk_usage(probe).free
    found.append(
        ("disk", free >= DISK_NEEDED, f"{free / GB:.0f} GB free at {probe} (about {DISK_NEEDED // GB} GB used)")
    )
    mem = mem_available()
    n_archs = len(target.sass) + len(target.ptx)
    need = NVCC_JOB_BYTES * n_archs
    found.append(("memory", mem >= need, f"{mem / GB:.1f} GB available, {need / GB:.0f} GB per job assumed"))
    return found


def plan_doc(target: Target, matrix: Matrix, settings: BuildSettings = DEFAULT_SETTINGS) -> dict[str, Any]:
    """The dry-run plan of one target as data (`--dry-run --json`)."""
    tk, _ = _toolkit(target, settings)
    choice = plan_choice(target, matrix, settings)
    image = None
    if builds_in_image(target, settings):
        try:
            root = find_checkout(matrix.root)
            recipe = resolve_recipe(target.toolchain, target.torch.version, target.torch.cuda, target.python, root)
            image = {
                "tag": recipe.tag(recipe.inputs_sha256(root)),
                "base": recipe.base,
                "pull": None if recipe.base == LOCAL_BASE else recipe.base,
            }
        except ContainerError as exc:
            image = {"error": exc.message}
    way = choice.way
    return {
        "target": target.id,
        "wheel": target.wheel_name,
        "toolchain": {"name": target.toolchain.name, "cuda": target.toolchain.cuda, "nvcc": str(tk.nvcc)},
        "provision": "container" if builds_in_image(target, settings) else target.toolchain.provision,
        "image": image,
        "torch": target.torch.version,
        "python": target.python,
        "min_driver": str(target.min_driver),
        "sass": [a.sm for a in target.sass],
        "ptx": [a.compute for a in target.ptx],
        "splitkv_parts": way.parts,
        "jobs": way.jobs,
        "compile_jobs": ninja_jobs(target, list(way.units)),
        "estimate": {
            "compile_s": round(way.wall_s),
            "measured_jobs": way.measured,
            "of_jobs": len(way.seconds),
            "other_way_s": round(choice.other.wall_s) if choice.other else None,
            "sentence": choice.sentence,
        },
        "checks": [{"name": n, "ok": ok, "detail": d} for n, ok, d in checks(target, tk, settings)],
    }


def plan_text(target: Target, matrix: Matrix, settings: BuildSettings = DEFAULT_SETTINGS) -> str:
    """The dry-run plan of one target, as printed."""
    recipe = RECIPES[target.recipe]
    tk, tk_lines = _toolkit(target, settings)
    torch = _torch_env(target)
    workdir = build_root() / target.id
    tree = workdir / "src" / "<unpacked source>"
    cpus = os.cpu_count() or 1
    choice = plan_choice(target, matrix, settings)
    plan = plan_build(
        target,
        tree,
        workdir,
        tk,
        torch,
        choice.way.jobs,
        cpus,
        workdir / "recipe",
        settings.source_date_epoch or 0,
        launcher=settings.launcher,
        splitkv_parts=choice.way.parts,
    )
    lines = [
        f"== {target.id} (dry run: nothing is fetched, compiled or written)",
        f"wheel: {target.wheel_name}",
        f"recipe: {target.recipe} ({recipe.distribution}, extension {recipe.extension})"
        + (f", serves {target.serves}" if target.serves else ""),
        f"toolchain: {target.toolchain.name}, CUDA {target.toolchain.cuda}, provision "
        f"{'container' if builds_in_image(target, settings) else target.toolchain.provision}",
    ]
    lines += [f"  {line}" for line in tk_lines]
    if builds_in_image(target, settings):
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
        f"profile: {target.profile.name}, {len(target.profile.translation_units())} kernel unit(s) of FA2; "
        f"{ninja_jobs(target, list(choice.way.units))} compile jobs here (kernel units, host units, link)",
        f"plan: {choice.sentence}",
        "configure: " + shlex.join(plan.configure),
        "compile: " + shlex.join(plan.compile),
    ]
    common = " ".join(shlex.quote(f) for f in plan.recorded_flags["nvcc"])
    defines = " ".join(f"-D{d}" for d in plan.recorded_flags["defines"])
    for unit in choice.way.units:
        lines.append(f"  nvcc {common} -std=c++{target.torch.cxx_std} {defines} -c units/{unit}")
    lines.append("then: strip --strip-all, reproducible wheel, fawheels verify, and only then dist/")
    lines += [
        f"check: {name} {'ok' if ok else 'FAILED'}: {detail}" for name, ok, detail in checks(target, tk, settings)
    ]
    return "\n".join(lines)


DRY_RUN_SCHEMA = 1


def print_plans(
    matrix: Matrix,
    targets: Sequence[Target],
    settings: BuildSettings,
    *,
    as_json: bool = False,
) -> int:
    """The plans, as text or one JSON document; exit 4 (toolchain) when a check failed: the build would too."""
    docs = [plan_doc(t, matrix, settings) for t in targets]
    if as_json:
        say(jsondoc.dumps({"schema": DRY_RUN_SCHEMA, "dry_run": True, "targets": docs}), flush=True)
    else:
        for i, target in enumerate(targets):
            say(("\n" if i else "") + plan_text(target, matrix, settings), flush=True)
    failed = [c for d in docs for c in d["checks"] if not c["ok"]]
    return ToolchainError.exit_code if failed else 0


def refuse_unprovided_images(matrix: Matrix, targets: Sequence[Target], settings: BuildSettings) -> None:
    """Before any work: every container target's registry base is here (or its image was built already).
    Inside a toolchain image there is nothing to check."""
    if settings.in_image:
        return
    for target in targets:
        if not builds_in_image(target, settings):
            continue
        root = find_checkout(matrix.root)
        recipe = resolve_recipe(target.toolchain, target.torch.version, target.torch.cuda, target.python, root)
        preflight_registry_base(recipe, root, target.id)
