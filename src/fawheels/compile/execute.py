"""Build a target: the thin executor (`build_target`) of the plan that plan.py makes.

Pipeline per target: toolkit -> torch env -> source (fetch, pin check, patches) -> CMake/ninja compile
(SASS per arch, progress [n/N]) -> strip -> reproducible wheel -> verify -> dist/ (only if verified).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import TextIO

from fawheels import __version__
from fawheels._util import console
from fawheels._util.errors import FawheelsError, VerifyError
from fawheels._util.files import copy_atomic, sha256_file
from fawheels._util.paths import build_root
from fawheels._util.runner import log, run
from fawheels.compile import jobstats, progress
from fawheels.compile.buildinfo import SCHEMA as BUILD_INFO_SCHEMA
from fawheels.compile.buildinfo import (
    ArchsInfo,
    BuildInfo,
    FlagsInfo,
    PatchInfo,
    ProfileInfo,
    SourceInfo,
    ToolchainInfo,
    TorchInfo,
)
from fawheels.compile.plan import (
    GB,
    BuildPlan,
    configure_identity,
    host_units,
    mem_available,
    ninja_jobs,
    nvcc_parallel_flags,
    plan_build,
    plan_compile,
)
from fawheels.compile.result import Result, Status, container_result, wheels_in
from fawheels.compile.units import (
    splitkv_parts_available,
)
from fawheels.compile.wheel import WheelSpec, render_metadata, write_wheel
from fawheels.matrix.model import Matrix, Source, Target
from fawheels.matrix.recipes import RECIPES
from fawheels.options import BuildSettings
from fawheels.source.fetch import AppliedPatch, prepare_tree, source_epoch
from fawheels.toolchain import toolkit as toolchain
from fawheels.toolchain.toolkit import CudaToolkit, TorchEnv

# ----------------------------------------------------------------------------- pure planning


# ----------------------------------------------------------------------------- execution


def build_target_in_container(target: Target, matrix: Matrix, dist: Path, settings: BuildSettings) -> Result:
    """`build_target`, run by the same pipeline inside the target's toolchain image."""
    from fawheels.toolchain.container import build_in_container

    before, start = wheels_in(dist), time.monotonic()
    code = build_in_container(
        target_id=target.id,
        matrix_path=matrix.path,
        dist=dist,
        toolchain=target.toolchain,
        settings=settings,
    )
    return container_result(target.id, code, dist, before, time.monotonic() - start)


def ninja_log_lines(cmake_dir: Path) -> int:
    log_path = cmake_dir / ".ninja_log"
    return len(log_path.read_text().splitlines()) if log_path.exists() else 0


def ninja_job_times(cmake_dir: Path, skip_lines: int = 0) -> dict[str, float]:
    """Per-output compile seconds from ninja's log, for the jobs logged after its first `skip_lines` lines
    (an incremental build reports only what it compiled, not what it reused)."""
    times: dict[str, float] = {}
    log_path = cmake_dir / ".ninja_log"
    if not log_path.exists():
        return times
    for line in log_path.read_text().splitlines()[skip_lines:]:
        parts = line.split("\t")
        if len(parts) == 5 and parts[0].isdigit():
            name = Path(parts[3]).name
            times[name] = (int(parts[1]) - int(parts[0])) / 1000
    return times


def source_date_epoch(source: Source, settings: BuildSettings) -> int:
    """SOURCE_DATE_EPOCH if set (settings), else a time fixed by the source's pin (source_epoch)."""
    if settings.source_date_epoch is not None:
        return settings.source_date_epoch
    return source_epoch(source, offline=settings.offline)


def _read_pkg_info(tree: Path) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in (tree / "PKG-INFO").read_text(encoding="utf-8").splitlines():
        if not line.strip():
            break
        if ": " in line and not line.startswith(" "):
            key, value = line.split(": ", 1)
            fields.setdefault(key, value)
    return fields


def assemble_wheel(
    plan: BuildPlan,
    so_path: Path,
    patches: list[AppliedPatch],
    tk: CudaToolkit,
    torch: TorchEnv,
    sde: int,
    out_dir: Path,
    host_compiler: str | None = None,
) -> Path:
    target = plan.target
    recipe = RECIPES[target.recipe]
    pkg = _read_pkg_info(plan.tree)
    # An extension for an installed release carries that release's version: vllm_fa2 0.33.0+cu130torch2.14.
    version = f"{target.served_release or pkg['Version']}+{target.local_version}"
    files: dict[str, bytes] = {}
    for package in recipe.source_packages:
        for path in sorted((plan.tree / package).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                files[path.relative_to(plan.tree).as_posix()] = path.read_bytes()
    files[plan.wheel_so_path] = so_path.read_bytes()
    flags = plan.recorded_flags
    build_info = BuildInfo(
        schema=BUILD_INFO_SCHEMA,
        target=target.id,
        recipe=target.recipe,
        distribution=recipe.distribution,
        version=version,
        source=SourceInfo(
            name=target.source.name,
            kind=target.source.kind,
            url=target.source.url,
            sha256=target.source.sha256,
            commit=target.source.commit,
        ),
        patches=tuple(PatchInfo(file=p.file, sha256=p.sha256) for p in patches),
        toolchain=ToolchainInfo(
            cuda=target.toolchain.cuda,
            nvcc=tk.version,
            provision=tk.provision,
            host_compiler=host_compiler or toolchain.host_compiler_version(),
        ),
        torch=TorchInfo(
            version=torch.torch_version,
            cuda=target.torch.cuda,
            requirement=target.torch.requirement,
            cxx_std=target.torch.cxx_std,
        ),
        python=target.python,
        archs=ArchsInfo(sass=tuple(a.sm for a in target.sass), ptx=tuple(a.compute for a in target.ptx)),
        min_driver=str(target.min_driver),
        cuda_runtime_major=int(target.toolchain.cuda.split(".")[0]),
        profile=ProfileInfo(
            name=target.profile.name,
            head_dims=target.profile.head_dims,
            dtypes=target.profile.dtypes,
            causal=target.profile.causal,
            split_kv=target.profile.split_kv,
            translation_units=tuple(target.profile.translation_units()),
        ),
        flags=FlagsInfo(
            nvcc=tuple(flags["nvcc"]),
            cxx=tuple(flags["cxx"]),
            defines=tuple(flags["defines"]),
            prefix_maps=tuple(flags["prefix_maps"]),
        ),
        extensions=(plan.wheel_so_path,),
        serves=target.serves,
        source_date_epoch=sde,
        fawheels=__version__,
    )
    metadata = render_metadata(
        [
            ("Metadata-Version", "2.1"),
            ("Name", recipe.distribution),
            ("Version", version),
            ("Summary", pkg.get("Summary", "")),
            ("Home-page", pkg.get("Home-page", "")),
            ("Author", pkg.get("Author", "")),
            ("License-File", "LICENSE"),
            ("Requires-Python", pkg.get("Requires-Python", ">=3.9")),
            ("Requires-Dist", target.torch.requirement),
            *(("Requires-Dist", r) for r in recipe.requires),
            *([("Requires-Dist", target.serves)] if target.serves else []),
        ],
        f"Built by fawheels for target {target.id}: forward-only FlashAttention-2 "
        f"{f'for {target.serves} (install with `fawheels overlay`) ' if target.serves else ''}"
        f"(kernel profile {target.profile.name}), SASS for {', '.join(a.sm for a in target.sass)}.",
    )
    abi = "abi3" if recipe.abi3 else target.python_tag
    spec = WheelSpec(
        recipe.distribution, version, f"{target.python_tag}-{abi}-linux_x86_64", metadata, f"fawheels {__version__}"
    )
    extra = {
        "build-info.json": build_info.dumps(),
        "top_level.txt": "".join(
            f"{name}\n" for name in sorted({*recipe.source_packages, plan.wheel_so_path.split("/")[0].split(".")[0]})
        ).encode(),
        "licenses/LICENSE": (plan.tree / "LICENSE").read_bytes(),
        "licenses/AUTHORS": (plan.tree / "AUTHORS").read_bytes(),
    }
    return write_wheel(spec, files, extra, out_dir, sde)


def _move_into(src: Path, dest: Path) -> None:
    """Copy beside `dest`, rename into place, drop `src`: works across filesystems (dist/ may be a mount)."""
    copy_atomic(src, dest)
    src.unlink()


def _publish_to_dist(wheel: Path, dist: Path) -> Path:
    """Move wheel, .sha256 and .verify.json into dist/: each by rename, the wheel last."""
    dist.mkdir(parents=True, exist_ok=True)
    digest = sha256_file(wheel)
    sha_file = wheel.with_name(wheel.name + ".sha256")
    sha_file.write_text(f"{digest}  {wheel.name}\n")
    from fawheels.publish.provenance import write_provenance

    write_provenance(wheel, dest_dir=dist)  # <wheel>.provenance.json lands before the wheel it speaks for
    for companion in (wheel.with_name(wheel.name + ".verify.json"), sha_file):
        if companion.exists():
            _move_into(companion, dist / companion.name)
    final = dist / wheel.name
    _move_into(wheel, final)
    return final


def _verify_into_report(wheel: Path, toolkit: Path | None = None, offline: bool = False) -> None:
    from fawheels.check import verify

    # both readers: our parser and cuobjdump (offline, only a cuobjdump already here)
    report = verify.verify_wheel(wheel, toolkit=toolkit, install=not offline)
    verify.write_report(wheel, report)
    readers = next((c.detail for c in report.checks if c.name == "readers"), "")
    console.step(f"verify: {'passed' if report.ok else 'FAILED'}; readers: {readers}")
    if not report.ok:
        failed = [c for c in report.to_json().get("checks", []) if not c.get("ok", True)]
        lines = "\n".join(f"  - {c.get('name')}: {c.get('detail', '')}" for c in failed)
        raise VerifyError(
            f"{wheel.name} fails verification; it was not copied to dist/:\n{lines}",
            hint=f"full report: {wheel}.verify.json",
        )


def build_target(target: Target, matrix: Matrix, dist: Path, settings: BuildSettings) -> Result:
    """Build one target into dist/, as `settings` (options.BuildSettings) say; a failure comes back as a failed
    Result naming its stage. dist/ is only touched after verify passes."""
    result = Result(target.id)
    start = time.monotonic()
    with console.log_to(build_root() / f"{target.id}.log") as result.log:
        try:
            _build_stages(target, matrix, dist, settings, result)
        except FawheelsError as exc:
            result.status, result.error, result.exit_code = Status.FAILED, str(exc), exc.exit_code
            console.error(f"fawheels: {exc.kind} error during {result.stage}: {exc}")
    result.wall_s = time.monotonic() - start
    return result


def _build_stages(target: Target, matrix: Matrix, dist: Path, settings: BuildSettings, result: Result) -> None:
    offline = settings.offline
    workdir = build_root() / target.id
    console.step(f"== {target.id}")
    here = "shown here too" if console.level() == console.VERBOSE else "-v shows it here too"
    console.step(f"log: {console.logging_to()} (every command and its output; {here})")
    log(json.dumps(target.summary(), indent=2))

    result.stage = "toolchain"
    with result.timed("toolchain"):
        tk = toolchain.provision_cuda(target.toolchain, offline=offline, in_image=settings.in_image)
        torch_env = toolchain.torch_env(target, offline=offline)
        host_cc = toolchain.host_compiler_version()
    console.step(f"toolchain: nvcc {tk.version} ({tk.provision}), torch {torch_env.torch_version}, {host_cc}")
    log(f"nvcc at {tk.cuda_home}; torch env {torch_env.python}")

    result.stage = "source"
    with result.timed("unpack"):
        patches = [(matrix.root / p).resolve() for p in target.source.patches]
        workdir.mkdir(parents=True, exist_ok=True)
        _lock_workdir(workdir)
        if settings.clean:  # no object of an earlier build is reused (the configured CMake tree is, see below)
            for child in workdir.iterdir():
                if child.name not in ("cmake", "recipe", "tools"):  # the configure and what it depends on
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
        tree, applied = _prepare_tree_reusing(target.source, patches, workdir, offline, result)
        sde = source_date_epoch(target.source, settings)

    result.stage = "compile"
    cpus = os.cpu_count() or 1
    archs = [a.sm for a in target.sass] + [a.compute for a in target.ptx]
    parallel = nvcc_parallel_flags(len(archs))
    key_flags = [*parallel, *(f"-D{d}" for d in target.profile.defines)]
    choice = plan_compile(
        target,
        nvcc_version=tk.version,
        history=jobstats.load_history(),
        cpus=cpus,
        mem=mem_available(),
        override=settings.jobs,
        parts_available=splitkv_parts_available(tree / RECIPES[target.recipe].kernel_dir),
    )
    way = choice.way
    units, seconds, splitkv_parts = list(way.units), way.seconds, way.parts
    order = jobstats.schedule(units, seconds)
    n_jobs, why = way.jobs, way.jobs_detail
    with result.timed("configure"):
        recipe_dir = workdir / "recipe"
        recipe = RECIPES[target.recipe]
        recipe_files = {p.name: p.read_bytes() for p in _recipe_files(recipe.cmake_dir)}
        for extra in recipe.extra_sources:
            recipe_files[Path(extra).name] = resources.files("fawheels.matrix.recipes").joinpath(extra).read_bytes()
        _sync_dir(recipe_dir, recipe_files)  # unchanged files keep their mtime: ninja does not rerun cmake
        meter = jobstats.write_launcher(workdir / "tools" / "fawheels-job.py")
        record_dir = workdir / "jobstats"
        plan = plan_build(
            target,
            tree,
            workdir,
            tk,
            torch_env,
            n_jobs,
            cpus,
            recipe_dir,
            sde,
            launcher=settings.launcher,
            schedule=order,
            # The torch env's interpreter, not the one running fawheels: the launcher is part of every compile
            # command, and a build from another checkout or venv must not see a new command and recompile all.
            job_launcher=[str(torch_env.python), str(meter), str(record_dir)],
            splitkv_parts=splitkv_parts,
        )
        for relative, text in plan.generated.items():
            path = workdir / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists() or path.read_text() != text:  # an unchanged mtime keeps objects fresh
                path.write_text(text)
        # Reuse the previous configure of this target only if it was made by the very same command (the
        # schedule aside: it only reorders build.ninja); ninja then recompiles just what changed (the
        # unpacked sources keep the sdist's mtimes). --clean drops every object but keeps the configure.
        stamp = plan.cmake_dir / "fawheels-configure.json"
        env_id = {k: v for k, v in plan.env.items() if k != "PATH"}
        configure_id = json.dumps([configure_identity(plan.configure), env_id], sort_keys=True)
        full_id = json.dumps([plan.configure, env_id], sort_keys=True)
        done_stamp = plan.cmake_dir / "fawheels-configured.json"
        if plan.cmake_dir.exists() and (not stamp.exists() or stamp.read_text() != configure_id):
            shutil.rmtree(plan.cmake_dir)
        if settings.clean and (plan.cmake_dir / "build.ninja").exists():
            run(
                [str(torch_env.ninja), "-C", str(plan.cmake_dir), "-t", "clean"],
                env=plan.env,
                what="ninja clean",
                capture=True,
            )
            (plan.cmake_dir / ".ninja_log").unlink(missing_ok=True)
        total = ninja_jobs(target, units)
        console.step(
            f"compile: {total} jobs ({len(units)} kernel units, {len(host_units(target))} host, 1 link) for "
            f"{', '.join(archs)}; {choice.sentence}"
        )
        log(f"jobs: {why}; override with --jobs or MAX_JOBS; nvcc {' '.join(parallel)}")
        log(f"schedule (longest first): {', '.join(f'{u} ~{seconds[u]:.0f} s' for u in order)}")
        if done_stamp.exists() and done_stamp.read_text() == full_id and (plan.cmake_dir / "build.ninja").exists():
            result.reused.append("configure")
            log("configure: unchanged since the last build of this target, reused")
        else:
            done_stamp.unlink(missing_ok=True)
            run(plan.configure, env=plan.env, what="cmake configure", capture=True)
            stamp.write_text(configure_id)
            done_stamp.write_text(full_id)
    if record_dir.exists():
        shutil.rmtree(record_dir)  # this run's records only
    logged_before = ninja_log_lines(plan.cmake_dir)
    compile_start = time.monotonic()
    host = host_units(target)
    watched = progress.Progress([*order, *host], seconds, min(n_jobs, cpus), total)
    with (
        result.timed("compile"),
        progress.Watch(watched, record_dir, show=console.step, other=log) as watch,
    ):
        run(plan.compile, env=plan.env, what="compile", on_line=watch.on_line)
    result.compile_wall_s = time.monotonic() - compile_start
    result.jobs, result.jobs_reason, result.schedule = n_jobs, why, order
    result.job_times = ninja_job_times(plan.cmake_dir, logged_before)
    records = jobstats.read_records(record_dir)
    result.job_stats = {r.output: r.to_json() for r in records.values()}
    jobstats.remember({jobstats.stats_key(tk.version, archs, r.unit, key_flags): r for r in records.values()})
    console.step(compile_summary(result, records, watched.slowest(), way.wall_s, watched.done))
    result.stage = "package"
    with result.timed("strip"):
        stage = workdir / "stage"
        if stage.exists():
            shutil.rmtree(stage)
        stage.mkdir()
        so = stage / plan.so_name
        shutil.copyfile(plan.cmake_dir / plan.so_name, so)
        # nvcc's tmpxft_<pid> names live in the symbol table; stripping makes builds byte-identical.
        run(["strip", "--strip-all", str(so)], what="strip")
    with result.timed("wheel"):
        out = workdir / "out"
        if out.exists():
            shutil.rmtree(out)
        wheel = assemble_wheel(plan, so, applied, tk, torch_env, sde, out, host_cc)

    result.stage = "verify"
    with result.timed("verify"):
        _verify_into_report(wheel, tk.cuda_home, offline)

    result.stage = "dist"
    with result.timed("dist"):
        final = _publish_to_dist(wheel, dist)
    result.wheel = final
    result.sha256 = sha256_file(final)
    result.size = final.stat().st_size
    result.status = Status.OK
    result.stage = "done"
    console.step(f"wheel: {final}")
    log("stages: " + ", ".join(f"{k} {v:.1f} s" for k, v in result.stages_s.items()))


def _prepare_tree_reusing(
    source: Source, patches: list[Path], workdir: Path, offline: bool, result: Result
) -> tuple[Path, list[AppliedPatch]]:
    """The unpacked, patched source of the last build of this target when it came from the same pin and the
    same patches (a stamp written after patching says so); else a fresh one (prepare_tree). Reusing it keeps
    the patched files' mtimes, so ninja does not recompile what includes them (flash_api.cpp) every time."""
    stamp = workdir / "src.stamp.json"
    digests = [(p.name, sha256_file(p)) for p in patches if p.is_file()]
    pin = {
        "source": [source.kind, source.url, source.sha256, source.commit],
        "patches": [list(d) for d in digests] if len(digests) == len(patches) else None,
    }
    try:
        held = json.loads(stamp.read_text())
    except (OSError, ValueError):
        held = None
    if (
        pin["patches"] is not None
        and isinstance(held, dict)
        and held.get("pin") == pin
        and (workdir / "src" / str(held.get("tree"))).is_dir()
    ):
        result.reused.append("source")
        log(f"source: {held['tree']} unpacked and patched by an earlier build from the same pin, reused")
        return workdir / "src" / str(held["tree"]), [AppliedPatch(n, d) for n, d in digests]
    stamp.unlink(missing_ok=True)
    tree, applied = prepare_tree(source, patches, workdir, offline=offline)
    stamp.write_text(json.dumps({"pin": pin, "tree": tree.relative_to(workdir / "src").as_posix()}))
    return tree, applied


def _recipe_files(cmake_dir: str) -> list[Path]:
    found = resources.files("fawheels.matrix.recipes").joinpath(cmake_dir)
    with resources.as_file(found) as path:
        return sorted(p for p in Path(path).iterdir() if p.is_file())


def _sync_dir(directory: Path, files: dict[str, bytes]) -> None:
    """Make `directory` hold exactly `files`, rewriting only what differs (mtimes of the rest are kept)."""
    directory.mkdir(parents=True, exist_ok=True)
    for child in directory.iterdir():
        if child.name not in files:
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    for name, data in files.items():
        path = directory / name
        if not path.exists() or path.read_bytes() != data:
            path.write_bytes(data)


def _lock_workdir(workdir: Path) -> None:
    """One build per target directory at a time (the lock is released when the process exits)."""
    handle = (workdir.parent / f"{workdir.name}.lock").open("w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log(f"waiting for another build of {workdir.name} to finish ({workdir})")
        fcntl.flock(handle, fcntl.LOCK_EX)
    _HELD_LOCKS.append(handle)


_HELD_LOCKS: list[TextIO] = []


def compile_summary(
    result: Result,
    records: Mapping[str, jobstats.JobRecord],
    slowest: tuple[str, float] | None,
    predicted_s: float,
    jobs_run: int,
) -> str:
    """One line after the compile: jobs run, wall against the prediction, the slowest job by name, CPU, memory."""
    timed = {Path(k).name.removesuffix(".o"): v for k, v in result.job_times.items()}
    if slowest is None and timed:
        slowest = max(timed.items(), key=lambda kv: (kv[1], kv[0]))
    result.slowest, result.predicted_compile_s = slowest, predicted_s
    measured = [r for r in records.values() if r.memory_measured]
    return (
        f"compiled {jobs_run} job(s) in {result.compile_wall_s:.0f} s (predicted {predicted_s:.0f} s)"
        + (f"; slowest {slowest[0]} {slowest[1]:.0f} s" if slowest else "")
        + (
            f"; CPU {sum(r.cpu_s for r in measured):.0f} s; largest peak RSS "
            f"{max(r.peak_rss_bytes for r in measured) / GB:.1f} GB"
            if measured
            else ""
        )
    )
