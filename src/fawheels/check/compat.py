"""Predict whether each kernel image of an artifact loads on a GPU with a given driver.

The driver loads one module per fatbin container (one per translation unit) and picks, inside it, SASS
that runs on the GPU or else PTX it JIT-compiles; the rules are the CUDA facts table's (docs/cuda-facts.md).
Prediction is pure (`predict`); only finding the objects (file, wheel, installed distribution) reads disk.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from fawheels._util import jsondoc
from fawheels._util.errors import ConfigError, InspectError
from fawheels._util.show import say
from fawheels.check.binary import CodeEntry, CodeObject
from fawheels.check.wheelzip import is_code_member, read_file, read_path
from fawheels.matrix import cudafacts as cf
from fawheels.matrix.cudafacts import Arch, Version
from fawheels.matrix.loading import cudart_major, loads_on, runtime_min_driver


@dataclass(frozen=True)
class Prediction:
    """What the driver would do with one module (fatbin container)."""

    file: str
    container: int
    image: str | None  # "sm_120 SASS", "compute_80 PTX (ISA 9.0)"; None when nothing fits
    ok: bool
    reason: str
    error: str | None = None  # the cudaError* the user would see
    needed_driver: str | None = None
    how: str | None = None  # exact-sass | compatible-sass | ptx-jit

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "container": self.container,
            "image": self.image,
            "how": self.how,
            "ok": self.ok,
            "reason": self.reason,
            "error": self.error,
            "needed_driver": self.needed_driver,
        }


@dataclass(frozen=True)
class CompatReport:
    cc: tuple[int, int]
    driver: Version
    predictions: tuple[Prediction, ...]

    @property
    def ok(self) -> bool:
        return all(p.ok for p in self.predictions)

    def to_json(self) -> dict[str, Any]:
        driver_cuda = cf.cuda_of_driver(self.driver)
        return {
            "ok": self.ok,
            "gpu": f"{self.cc[0]}.{self.cc[1]}",
            "driver": str(self.driver),
            "driver_cuda": str(driver_cuda) if driver_cuda else None,
            "entries": [p.to_json() for p in self.predictions],
        }


def _cc(cc: tuple[int, int]) -> str:
    return f"{cc[0]}.{cc[1]}"


def _error(name: str) -> str:
    code, message = cf.CUDA_ERRORS[name]
    return f'{name} = {code}, "{message}"'


def _driver_says(driver: Version) -> str:
    cuda = cf.cuda_of_driver(driver)
    isa = cf.max_ptx_isa_of_driver(driver)
    if cuda is None or isa is None:
        return f"driver {driver} (older than every CUDA release fawheels knows)"
    return f"driver {driver} (CUDA {cuda}, PTX ISA <= {isa})"


def predict_module(entries: Sequence[CodeEntry], cc: tuple[int, int], driver: Version) -> Prediction:
    """One module: which image, and whether the driver can load it."""
    first = entries[0]
    sass = [Arch.parse(e.arch) for e in entries if e.kind == "sass"]
    ptx = [(Arch.parse(e.arch), Version.parse(e.ptx_isa or "0")) for e in entries if e.kind == "ptx"]
    load = loads_on(sass, ptx, cc, driver)
    if load.arch is None:
        have = ", ".join(sorted({f"{e.arch} {e.kind.upper()}" for e in entries})) or "nothing"
        return Prediction(
            first.file,
            first.container,
            None,
            False,
            f"no SASS runs on {_cc(cc)} and no PTX JIT-compiles for it (has {have}): "
            + _error("cudaErrorNoKernelImageForDevice"),
            error="cudaErrorNoKernelImageForDevice",
        )
    arch = load.arch
    if load.how != "ptx-jit":
        exact = load.how == "exact-sass"
        return Prediction(
            first.file,
            first.container,
            f"{arch.sm} SASS",
            True,
            f"{arch.sm} SASS {'matches' if exact else 'runs on'} compute capability {_cc(cc)}",
            how=load.how,
        )
    name = f"{arch.compute} PTX (ISA {load.isa})"
    if load.ok:
        return Prediction(
            first.file,
            first.container,
            name,
            True,
            f"no SASS for {_cc(cc)}; {_driver_says(driver)} JIT-compiles {name}",
            how="ptx-jit",
        )
    needed = load.needed_driver
    need = f"needs driver >= {needed}" if needed else "needs a driver newer than any fawheels knows"
    return Prediction(
        first.file,
        first.container,
        name,
        False,
        f"no SASS for {_cc(cc)}; {name} is too new for {_driver_says(driver)}: "
        f"{_error('cudaErrorUnsupportedPtxVersion')}; {need}",
        error="cudaErrorUnsupportedPtxVersion",
        needed_driver=str(needed) if needed else None,
        how="ptx-jit",
    )


def _runtime_block(obj: CodeObject, driver: Version, static_runtime: int | None) -> Prediction | None:
    """A runtime of a newer CUDA major than the driver does not start: nothing in the object loads. An object
    that links no libcudart.so.N carries its runtime statically: its major is `static_runtime` (build-info's
    cuda_runtime_major), as `compat --index` reads it."""
    linked = cudart_major(obj.needed)
    major = linked if linked is not None else static_runtime
    needed = runtime_min_driver(major)
    if needed is None or driver >= needed:
        return None
    what = f"links the CUDA {major} runtime (libcudart.so.{major})"
    if linked is None:
        what = f"carries the CUDA {major} runtime statically (build-info.json: cuda_runtime_major {major})"
    return Prediction(
        obj.file,
        -1,
        f"libcudart.so.{major}",
        False,
        f"{what}, which needs driver >= {needed}; {_driver_says(driver)}: {_error('cudaErrorInsufficientDriver')}",
        error="cudaErrorInsufficientDriver",
        needed_driver=str(needed),
    )


def predict(
    objects: Sequence[CodeObject], cc: tuple[int, int], driver: Version, static_runtime: int | None = None
) -> CompatReport:
    """Every loadable module of every object (relocatable containers and LTO IR are never loaded).
    `static_runtime`: the CUDA runtime major of objects that link none (a wheel's build-info says it)."""
    predictions: list[Prediction] = []
    for obj in objects:
        modules: dict[int, list[CodeEntry]] = defaultdict(list)
        for e in obj.entries:
            if e.kind in ("sass", "ptx") and not e.relocatable:
                modules[e.container].append(e)
        if not modules:
            continue
        blocked = _runtime_block(obj, driver, static_runtime)
        if blocked is not None:
            predictions.append(blocked)
        predictions += [predict_module(entries, cc, driver) for _, entries in sorted(modules.items())]
    return CompatReport(cc, driver, tuple(predictions))


# --- the verdict (pure) ------------------------------------------------------------------------------

# What PTX JIT costs at first use, measured with the driver's JIT cache off (CUDA_CACHE_DISABLE=1) on an H200:
# one FA2 forward unit as compute_80 PTX 20.4 s vs 3.8 s as SASS (bench/gpu-perf.md); stock vLLM 0.26.0's
# first paged decode call 48-60 s against 3 ms for ours (measured there 2026-12-02, issue 22).
JIT_SECONDS_PER_MODULE = 16.6
JIT_COST_MEASURED = "H200, JIT cache off: 16.6 s per FA2 unit; stock vLLM 0.26.0's first decode call 48-60 s"


@dataclass(frozen=True)
class Finding:
    """Identical predictions grouped: one line of `compat` however many modules share it."""

    ok: bool
    how: str | None
    error: str | None
    reason: str
    needed_driver: str | None
    modules: int  # how many modules (files, for a runtime that does not start) say this
    files: tuple[str, ...]
    per_file: bool  # a whole-object finding (the CUDA runtime), not a module's

    @property
    def label(self) -> str:
        noun = "file" if self.per_file else "module"
        return f"{self.modules} {noun}{'s' if self.modules != 1 else ''}"

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "how": self.how,
            "error": self.error,
            "reason": self.reason,
            "needed_driver": self.needed_driver,
            "count": self.modules,
            "unit": "file" if self.per_file else "module",
            "files": list(self.files),
        }


def findings(report: CompatReport) -> list[Finding]:
    """The report's predictions grouped by what they say, in first-seen order."""
    groups: dict[tuple[bool, str], list[Prediction]] = {}
    for p in report.predictions:
        groups.setdefault((p.ok, p.reason), []).append(p)
    return [
        Finding(
            ok,
            ps[0].how,
            ps[0].error,
            reason,
            ps[0].needed_driver,
            len(ps),
            tuple(dict.fromkeys(p.file for p in ps)),
            ps[0].container < 0,
        )
        for (ok, reason), ps in groups.items()
    ]


@dataclass(frozen=True)
class Verdict:
    kind: str  # native | jit | fails | no-code
    line: str
    counts: dict[str, int]
    fix: str | None = None

    def exit_code(self, strict: bool = False) -> int:
        """fails: 1; JIT: 0 (a warning), 1 with --strict; native or no code: 0."""
        return 1 if self.kind == "fails" or (strict and self.kind == "jit") else 0


def counts(report: CompatReport) -> dict[str, int]:
    modules = [p for p in report.predictions if p.container >= 0]
    return {
        "files": len({p.file for p in report.predictions}),
        "modules": len(modules),
        "native": sum(p.ok and p.how != "ptx-jit" for p in modules),
        "jit": sum(p.ok and p.how == "ptx-jit" for p in modules),
        "failing": sum(not p.ok for p in modules),
        "runtime_blocked_files": sum(not p.ok for p in report.predictions if p.container < 0),
    }


def _is_vllm_fa2(files: Sequence[str]) -> bool:
    return any(Path(f).name.startswith("_vllm_fa2_C") for f in files)


def cure(files: Sequence[str], cc: tuple[int, int]) -> str:
    """What gives SASS for this GPU: fix-vllm for vLLM's _vllm_fa2_C, else a build for its arch."""
    sm = Arch(cc[0], cc[1]).sm
    if _is_vllm_fa2(files):
        return f"`fawheels fix-vllm` (puts a _vllm_fa2_C with {sm} SASS into this vLLM)"
    return (
        f"a build with {sm} SASS (`fawheels matrix` lists targets; `fawheels compat --index URL` finds a published one)"
    )


def _errors_said(fails: Sequence[Finding]) -> str:
    by_error: dict[str, int] = {}
    for f in fails:
        by_error[f.error or "?"] = by_error.get(f.error or "?", 0) + f.modules
    return "; ".join(
        f"{name} = {cf.CUDA_ERRORS[name][0] if name in cf.CUDA_ERRORS else '?'} ({n} "
        f"{'file' if name == 'cudaErrorInsufficientDriver' else 'module'}{'s' if n != 1 else ''})"
        for name, n in by_error.items()
    )


def verdict(report: CompatReport) -> Verdict:
    """The last line of `compat`: loads natively, loads after JIT-compiling N modules (a warning, with its cost
    and the cure), or fails (why, and the fix)."""
    n = counts(report)
    gpu = f"{_cc(report.cc)} with driver {report.driver}"
    the_cure = cure([p.file for p in report.predictions], report.cc)
    if not report.predictions:
        return Verdict("no-code", "verdict: no CUDA code to load", n)
    fails = [f for f in findings(report) if not f.ok]
    if fails:
        drivers = [Version.parse(f.needed_driver) for f in fails if f.needed_driver]
        upgrade = f"upgrade the driver to >= {max(drivers)}" if drivers else ""
        no_image = any(f.error == "cudaErrorNoKernelImageForDevice" for f in fails)
        fix = the_cure if no_image or not upgrade else f"{upgrade}, or {the_cure}"
        cuda = cf.cuda_of_driver(report.driver)
        if any(f.error == "cudaErrorInsufficientDriver" for f in fails) and not no_image and cuda:
            sm = Arch(report.cc[0], report.cc[1]).sm
            files = [p.file for p in report.predictions]
            label = f"cu{cuda.major}{cuda.minor}"
            then = f" (vLLM's {label} build, then `fawheels fix-vllm`)" if _is_vllm_fa2(files) else ""
            fix = f"{upgrade}, or use a CUDA {cuda.major} build with {sm} SASS{then}"
        return Verdict("fails", f"verdict: FAILS on {gpu}: {_errors_said(fails)}; fix: {fix}", n, fix)
    if n["jit"]:
        total_min = n["jit"] * JIT_SECONDS_PER_MODULE / 60
        line = (
            f"verdict: loads only after JIT-compiling {n['jit']} module{'s' if n['jit'] != 1 else ''} of PTX "
            f"(warning): about {JIT_SECONDS_PER_MODULE:.0f} s per module the first time one of its kernels runs, "
            f"up to {total_min:.0f} min for all, again whenever the JIT cache is cold ({JIT_COST_MEASURED}); "
            f"cure: {the_cure}"
        )
        return Verdict("jit", line, n, the_cure)
    return Verdict("native", f"verdict: loads natively: {n['native']} modules with SASS for {_cc(report.cc)}", n)


# --- I/O -------------------------------------------------------------------------------------------


def distribution_objects(name: str) -> list[CodeObject]:
    """Shared objects of an installed distribution, found through its installed file list."""
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        raise InspectError(f"{name}: no such file or installed distribution") from None
    objects = []
    for f in dist.files or ():
        if is_code_member(str(f)):
            path = Path(str(dist.locate_file(f)))
            if path.is_file():
                objects.append(read_file(path))
    return objects


def load_objects(path: str) -> list[CodeObject]:
    return read_path(Path(path)) if Path(path).exists() else distribution_objects(path)


def static_runtime_of(path: str) -> int | None:
    """A wheel's build-info cuda_runtime_major: the runtime of its objects that link no libcudart.so.N."""
    if not path.endswith(".whl") or not Path(path).is_file():
        return None
    from fawheels._util.wheels import read_build_info

    try:
        major = read_build_info(Path(path)).get("cuda_runtime_major")
    except (ValueError, OSError, KeyError):
        return None  # not a fawheels wheel: only what its binaries link counts
    return major if isinstance(major, int) and not isinstance(major, bool) else None


def check(path: str, cc: tuple[int, int], driver: Version) -> CompatReport:
    """Every module of a wheel, .so, fatbin or installed distribution on that GPU and driver."""
    return predict(load_objects(path), cc, driver, static_runtime_of(path))


def render(report: CompatReport, what: str, gpu_label: str = "") -> list[str]:
    """The table for people: a header, one line per distinct finding, the verdict last."""
    files = {p.file for p in report.predictions}
    where = f": {next(iter(files))}" if len(files) == 1 else f": {what}"
    gpu = f"GPU {_cc(report.cc)}{f' ({gpu_label})' if gpu_label else ''}"
    lines = [f"{gpu}, {_driver_says(report.driver)}{where}"]
    for f in findings(report):
        inside = f" in {len(f.files)} files" if len(files) > 1 and not f.per_file else ""
        lines.append(f"  {'ok  ' if f.ok else 'FAIL'} {f.label}{inside}: {f.reason}")
    if not report.predictions:
        lines.append(f"  {what}: no CUDA code")
    lines.append(verdict(report).line)
    return lines


COMPAT_JSON_SCHEMA = 1  # `compat PATH --json`


def compat_command(
    path: str, *, gpu: str | None, driver: str | None, as_json: bool = False, strict: bool = False
) -> int:
    """`fawheels compat`: exit 1 when anything will not load on that GPU with that driver (and, with `strict`,
    when something loads only through PTX JIT); --gpu/--driver default to what nvidia-smi says."""
    from fawheels.check.machine import resolve

    machine = resolve(gpu, driver)
    report = check(path, machine.cc, machine.driver)
    serving = _serving_targets(path, report)
    v = verdict(report)
    if as_json:
        doc = {
            "schema": COMPAT_JSON_SCHEMA,
            **report.to_json(),
            "gpu_name": machine.name,
            "verdict": v.kind,
            "verdict_line": v.line,
            "fix": v.fix,
            "counts": v.counts,
            "findings": [f.to_json() for f in findings(report)],
        }
        say(jsondoc.dumps({**doc, **({"serving_targets": serving} if serving else {})}))
    else:
        lines = render(report, path, machine.label)
        if serving:
            lines.insert(
                -1,
                f"  targets of this matrix that would load here: {', '.join(serving)} "
                "(`fawheels build --dry-run ID` shows how each is built)",
            )
        say("\n".join(lines))
    return v.exit_code(strict)


def _serving_targets(path: str, report: CompatReport) -> list[str]:
    """When a wheel's CUDA runtime is too new for the driver: the targets of ./build_matrix.yaml (same
    distribution) whose wheels would load on that GPU and driver."""
    if report.ok or not any(p.error == "cudaErrorInsufficientDriver" for p in report.predictions):
        return []
    if not path.endswith(".whl") or not (Path.cwd() / "build_matrix.yaml").is_file():
        return []
    from fawheels.matrix.config import load_matrix_file
    from fawheels.matrix.loading import serving_targets

    try:
        matrix = load_matrix_file(None)
    except ConfigError:
        return []
    distribution = Path(path).name.split("-", 1)[0]
    return serving_targets(matrix.targets, distribution, report.cc, report.driver)
