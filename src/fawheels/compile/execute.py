"""Build a target: the executor (`build_target`: a `TargetBuild`, one method per stage) of the plan plan.py makes.

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
    return TargetBuild(target, matrix, dist, settings).run()


class TargetBuild:
    """One target's build: a method per stage (toolchain, unpack, configure, compile, strip, wheel, verify,
    dist), each timed into `stages_s` and filling this build's own Result; `run` calls them in order and turns a
    failure into a failed Result naming the stage it happened in. What one stage hands the next is kept here."""

    # What the stages find, each set by the stage that finds it.
    tk: CudaToolkit
    torch_env: TorchEnv
    host_cc: str
    tree: Path
    applied: list[AppliedPatch]
    sde: int
    plan: BuildPlan
    so: Path
    wheel_path: Path

    def __init__(self, target: Target, matrix: Matrix, dist: Path, settings: BuildSettings) -> None:
        self.target, self.matrix, self.dist, self.settings = target, matrix, dist, settings
        self.result = Result(target.id)
        self.workdir = build_root() / target.id

    def run(self) -> Result:
        result = self.result
        start = time.monotonic()
        with console.log_to(build_root() / f"{self.target.id}.log") as result.log:
            try:
                self._stages()
            except FawheelsError as exc:
                result.status, result.error, result.exit_code = Status.FAILED, str(exc), exc.exit_code
                console.error(f"fawheels: {exc.kind} error during {result.stage}: {exc}")
        result.wall_s = time.monotonic() - start
        return result

    def _stages(self) -> None:
        console.step(f"== {self.target.id}")
        here = "shown here too" if console.level() == console.VERBOSE else "-v shows it here too"
        console.step(f"log: {console.logging_to()} (every command and its output; {here})")
        log(json.dumps(self.target.summary(), indent=2))
        self.toolchain()
        self.unpack()
        self.configure()
        self.compile()
        self.strip()
        self.wheel()
        self.verify()
        self.to_dist()
        console.step(f"wheel: {self.result.wheel}")
        log("stages: " + ", ".join(f"{k} {v:.1f} s" for k, v in self.result.stages_s.items()))

    def toolchain(self) -> None:
        self.result.stage = "toolchain"
        offline = self.settings.offline
        with self.result.timed("toolchain"):
            tc = self.target.toolchain
            self.tk = toolchain.provision_cuda(tc, offline=offline, in_image=self.settings.in_image)
            self.torch_env = toolchain.torch_env(self.target, offline=offline)
            self.host_cc = toolchain.host_compiler_version()
        tk, torch_env = self.tk, self.torch_env
        console.step(f"toolchain: nvcc {tk.version} ({tk.provision}), torch {torch_env.torch_version}, {self.host_cc}")
        log(f"nvcc at {tk.cuda_home}; torch env {torch_env.python}")

    def unpack(self) -> None:
        self.result.stage = "source"
        target, workdir = self.target, self.workdir
        with self.result.timed("unpack"):
            patches = [(self.matrix.root / p).resolve() for p in target.source.patches]
            workdir.mkdir(parents=True, exist_ok=True)
            _lock_workdir(workdir)
            if self.settings.clean:  # no object of an earlier build is reused (the configured CMake tree is)
                for child in workdir.iterdir():
                    if child.name not in ("cmake", "recipe", "tools"):  # the configure and what it depends on
                        shutil.rmtree(child) if child.is_dir() else child.unlink()
            self.tree, self.applied, reused = _prepare_tree_reusing(
                target.source, patches, workdir, self.settings.offline
            )
            if reused:
                self.result.reused.append("source")
            self.sde = source_date_epoch(target.source, self.settings)

    def configure(self) -> None:
        """Plan the compile for this machine (planner), write the CMake project, and configure it, or reuse the
        configure of the last build of this target when it was made by the very same command."""
        self.result.stage = "compile"
        target, workdir, settings, tk = self.target, self.workdir, self.settings, self.tk
        self.cpus = os.cpu_count() or 1
        self.archs = [a.sm for a in target.sass] + [a.compute for a in target.ptx]
        self.parallel = nvcc_parallel_flags(len(self.archs))
        choice = plan_compile(
            target,
            nvcc_version=tk.version,
            history=jobstats.load_history(),
            cpus=self.cpus,
            mem=mem_available(),
            override=settings.jobs,
            parts_available=splitkv_parts_available(self.tree / RECIPES[target.recipe].kernel_dir),
        )
        self.choice = way = choice.way
        units, seconds = list(way.units), way.seconds
        self.order = order = jobstats.schedule(units, seconds)
        with self.result.timed("configure"):
            recipe_dir = workdir / "recipe"
            recipe = RECIPES[target.recipe]
            recipe_files = {p.name: p.read_bytes() for p in _recipe_files(recipe.cmake_dir)}
            for extra in recipe.extra_sources:
                data = resources.files("fawheels.matrix.recipes").joinpath(extra).read_bytes()
                recipe_files[Path(extra).name] = data
            _sync_dir(recipe_dir, recipe_files)  # unchanged files keep their mtime: ninja does not rerun cmake
            meter = jobstats.write_launcher(workdir / "tools" / "fawheels-job.py")
            self.record_dir = workdir / "jobstats"
            self.plan = plan = plan_build(
                target,
                self.tree,
                workdir,
                tk,
                self.torch_env,
                way.jobs,
                self.cpus,
                recipe_dir,
                self.sde,
                launcher=settings.launcher,
                schedule=order,
                # The torch env's interpreter, not the one running fawheels: the launcher is part of every compile
                # command, and a build from another checkout or venv must not see a new command and recompile all.
                job_launcher=[str(self.torch_env.python), str(meter), str(self.record_dir)],
                splitkv_parts=way.parts,
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
                    [str(self.torch_env.ninja), "-C", str(plan.cmake_dir), "-t", "clean"],
                    env=plan.env,
                    what="ninja clean",
                    capture=True,
                )
                (plan.cmake_dir / ".ninja_log").unlink(missing_ok=True)
            self.total = total = ninja_jobs(target, units)
            console.step(
                f"compile: {total} jobs ({len(units)} kernel units, {len(host_units(target))} host, 1 link) for "
                f"{', '.join(self.archs)}; {choice.sentence}"
            )
            log(f"jobs: {way.jobs_detail}; override with --jobs or MAX_JOBS; nvcc {' '.join(self.parallel)}")
            log(f"schedule (longest first): {', '.join(f'{u} ~{seconds[u]:.0f} s' for u in order)}")
            done = done_stamp.exists() and done_stamp.read_text() == full_id
            if done and (plan.cmake_dir / "build.ninja").exists():
                self.result.reused.append("configure")
                log("configure: unchanged since the last build of this target, reused")
            else:
                done_stamp.unlink(missing_ok=True)
                run(plan.configure, env=plan.env, what="cmake configure", capture=True)
                stamp.write_text(configure_id)
                done_stamp.write_text(full_id)

    def compile(self) -> None:
        """ninja, watched (one line per finished job, the time left); then what the jobs measured."""
        result, plan, way, record_dir = self.result, self.plan, self.choice, self.record_dir
        if record_dir.exists():
            shutil.rmtree(record_dir)  # this run's records only
        logged_before = ninja_log_lines(plan.cmake_dir)
        compile_start = time.monotonic()
        host = host_units(self.target)
        watched = progress.Progress([*self.order, *host], way.seconds, min(way.jobs, self.cpus), self.total)
        with (
            result.timed("compile"),
            progress.Watch(watched, record_dir, show=console.step, other=log) as watch,
        ):
            run(plan.compile, env=plan.env, what="compile", on_line=watch.on_line)
        result.compile_wall_s = time.monotonic() - compile_start
        result.jobs, result.jobs_reason, result.schedule = way.jobs, way.jobs_detail, self.order
        result.job_times = ninja_job_times(plan.cmake_dir, logged_before)
        records = jobstats.read_records(record_dir)
        result.job_stats = {r.output: r.to_json() for r in records.values()}
        key_flags = [*self.parallel, *(f"-D{d}" for d in self.target.profile.defines)]
        stats_key = jobstats.stats_key
        jobstats.remember({stats_key(self.tk.version, self.archs, r.unit, key_flags): r for r in records.values()})
        line, result.slowest = compile_summary(
            result.compile_wall_s, result.job_times, records, watched.slowest(), way.wall_s, watched.done
        )
        result.predicted_compile_s = way.wall_s
        console.step(line)

    def strip(self) -> None:
        """The extension copied out of the CMake tree and stripped: nvcc's tmpxft_<pid> names live in the symbol
        table, so stripping makes builds byte-identical."""
        self.result.stage = "package"
        with self.result.timed("strip"):
            stage = self.workdir / "stage"
            if stage.exists():
                shutil.rmtree(stage)
            stage.mkdir()
            self.so = stage / self.plan.so_name
            shutil.copyfile(self.plan.cmake_dir / self.plan.so_name, self.so)
            run(["strip", "--strip-all", str(self.so)], what="strip")

    def wheel(self) -> None:
        with self.result.timed("wheel"):
            out = self.workdir / "out"
            if out.exists():
                shutil.rmtree(out)
            self.wheel_path = assemble_wheel(
                self.plan, self.so, self.applied, self.tk, self.torch_env, self.sde, out, self.host_cc
            )

    def verify(self) -> None:
        self.result.stage = "verify"
        with self.result.timed("verify"):
            _verify_into_report(self.wheel_path, self.tk.cuda_home, self.settings.offline)

    def to_dist(self) -> None:
        """The verified wheel into dist/ (stage "dist"); the build is done."""
        result = self.result
        result.stage = "dist"
        with result.timed("dist"):
            final = _publish_to_dist(self.wheel_path, self.dist)
        result.wheel = final
        result.sha256 = sha256_file(final)
        result.size = final.stat().st_size
        result.status = Status.OK
        result.stage = "done"


def _prepare_tree_reusing(
    source: Source, patches: list[Path], workdir: Path, offline: bool
) -> tuple[Path, list[AppliedPatch], bool]:
    """The unpacked, patched source of the last build of this target when it came from the same pin and the
    same patches (a stamp written after patching says so); else a fresh one (prepare_tree). Reusing it keeps
    the patched files' mtimes, so ninja does not recompile what includes them (flash_api.cpp) every time.
    The last value says whether it was reused."""
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
        log(f"source: {held['tree']} unpacked and patched by an earlier build from the same pin, reused")
        return workdir / "src" / str(held["tree"]), [AppliedPatch(n, d) for n, d in digests], True
    stamp.unlink(missing_ok=True)
    tree, applied = prepare_tree(source, patches, workdir, offline=offline)
    stamp.write_text(json.dumps({"pin": pin, "tree": tree.relative_to(workdir / "src").as_posix()}))
    return tree, applied, False


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
    compile_wall_s: float,
    job_times: Mapping[str, float],
    records: Mapping[str, jobstats.JobRecord],
    slowest: tuple[str, float] | None,
    predicted_s: float,
    jobs_run: int,
) -> tuple[str, tuple[str, float] | None]:
    """One line after the compile: jobs run, wall against the prediction, the slowest job by name, CPU, memory;
    and the slowest job (the watcher's, else the longest in ninja's log)."""
    timed = {Path(k).name.removesuffix(".o"): v for k, v in job_times.items()}
    if slowest is None and timed:
        slowest = max(timed.items(), key=lambda kv: (kv[1], kv[0]))
    measured = [r for r in records.values() if r.memory_measured]
    line = (
        f"compiled {jobs_run} job(s) in {compile_wall_s:.0f} s (predicted {predicted_s:.0f} s)"
        + (f"; slowest {slowest[0]} {slowest[1]:.0f} s" if slowest else "")
        + (
            f"; CPU {sum(r.cpu_s for r in measured):.0f} s; largest peak RSS "
            f"{max(r.peak_rss_bytes for r in measured) / GB:.1f} GB"
            if measured
            else ""
        )
    )
    return line, slowest
