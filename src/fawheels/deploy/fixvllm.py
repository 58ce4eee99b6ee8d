"""`fawheels fix-vllm`: from "my vLLM crashes or JIT-compiles FA2 on this GPU" to a `_vllm_fa2_C` with SASS for it.

Reads the vLLM installed for `--python` (its version, torch, the CUDA runtime its extensions link, the Python),
the GPU and driver (`--gpu`/`--driver`, else nvidia-smi); says what the installed `_vllm_fa2_C` will do there
(`compat`'s verdict); then plans: a matching `vllm-fa2` wheel from `--index` (compat --index's choice), else the
derived target (`build --vllm`, a CUDA 12.x toolchain image where the driver needs it, with a time estimate from
the job history); verify, overlay (`--undo` restores the original byte for byte) and, on a GPU, smoke. The plan
is pure (`plan`); reading the install and carrying the plan out come last. Every refusal says what to do.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fawheels._util import jsondoc
from fawheels._util.errors import ConfigError, OverlayError
from fawheels._util.show import say
from fawheels.check import compat
from fawheels.check.machine import Machine
from fawheels.matrix.cudafacts import Arch
from fawheels.matrix.loading import cudart_major, runtime_min_driver
from fawheels.matrix.recipes import VLLM_FA2, Release
from fawheels.options import DEFAULT_SETTINGS, BuildSettings

PLAN_SCHEMA = 1  # `fix-vllm --json`: the plan
EXTENSION = f"{VLLM_FA2.extension_dir}/{VLLM_FA2.extension}.abi3.so"  # vllm/vllm_flash_attn/_vllm_fa2_C.abi3.so


@dataclass(frozen=True)
class InstalledVllm:
    python: str  # the interpreter
    python_version: str  # "3.12"
    version: str  # "0.26.0" or "0.26.0+cu128"
    torch: str | None  # "2.11.0+cu130"
    extension: Path  # its _vllm_fa2_C
    runtime_major: int | None  # libcudart.so.N its extensions link
    objects: tuple[Any, ...] = field(default=(), repr=False)  # the extension's code objects (check.binary)

    @property
    def release(self) -> str:
        return self.version.split("+", 1)[0]

    @property
    def cuda_label(self) -> str | None:
        """cu128 from a local version label (vLLM's or torch's), None for PyPI's default build."""
        for v in (self.version, self.torch or ""):
            if "+cu" in v:
                return v.split("+", 1)[1]
        return None

    @property
    def cuda(self) -> str | None:
        """The CUDA X.Y the install was built for, where its labels say (cu128 -> 12.8)."""
        label = self.cuda_label
        if label and label[2:].isdigit() and len(label) >= 5:
            return f"{label[2:-1]}.{label[-1]}"
        return None


@dataclass(frozen=True)
class Plan:
    installed: InstalledVllm
    machine: Machine
    release: Release
    verdict: compat.Verdict
    findings: tuple[compat.Finding, ...]
    action: str  # nothing | index | build
    steps: tuple[str, ...]
    wheel: str | None = None  # from the index
    target: Any = None  # the derived Target when building
    estimate_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "vllm": self.installed.version,
            "torch": self.installed.torch,
            "python": self.installed.python_version,
            "interpreter": self.installed.python,
            "extension": str(self.installed.extension),
            "cuda_runtime_major": self.installed.runtime_major,
            "gpu": f"{self.machine.cc[0]}.{self.machine.cc[1]}",
            "gpu_name": self.machine.name,
            "driver": str(self.machine.driver),
            "verdict": self.verdict.kind,
            "verdict_line": self.verdict.line,
            "counts": self.verdict.counts,
            "action": self.action,
            "wheel": self.wheel,
            "target": self.target.id if self.target is not None else None,
            "estimate_s": self.estimate_s,
            "steps": list(self.steps),
        }


def _refuse_runtime(inst: InstalledVllm, machine: Machine) -> None:
    """A vLLM whose CUDA runtime the driver cannot start: no _vllm_fa2_C can help; say what can."""
    need = runtime_min_driver(inst.runtime_major)
    if need is None or machine.driver >= need:
        return
    origin = f"vLLM {inst.version}" + ("" if "+" in inst.version else " from PyPI")
    raise OverlayError(
        f"{origin} links the CUDA {inst.runtime_major} runtime: driver {machine.driver} cannot run it at all",
        hint=f"upgrade the driver to >= {need}, or install vLLM's cu128 build (CUDA 12.8 wheels of the same "
        "release), then run fawheels fix-vllm again",
    )


def estimate_seconds(target: Any, cores: int) -> float:
    """Compile wall of a target from the job history (~/.cache/fawheels/jobstats), else the static estimates:
    the slowest unit, or all units' seconds over the cores, whichever is longer."""
    from fawheels.compile import jobstats

    history = jobstats.load_history()
    archs = [a.sm for a in (*target.sass, *target.ptx)]
    seconds = []
    for unit in target.profile.translation_units():
        measured = [
            jobstats.measured_seconds(history, key)
            for key in history
            if key.endswith(f"| {unit}.o") or key.endswith(f"| {unit}")
            if f"| {'+'.join(archs)} |" in key
        ]
        found = [m for m in measured if m is not None]
        seconds.append(max(found) if found else jobstats.static_estimate_s(unit, len(archs)))
    return max(max(seconds), sum(seconds) / max(1, cores))


def plan(
    inst: InstalledVllm,
    machine: Machine,
    *,
    index_records: list[dict[str, Any]] | None = None,
    index_base: str = "",
    base_matrix: tuple[str, Path | None] | None = None,
    cores: int = 1,
) -> Plan:
    """What fix-vllm will do for this install on this machine; refusals raise with the fix."""
    release = VLLM_FA2.release(inst.release)
    if release is None:
        known = ", ".join(r.version for r in VLLM_FA2.releases)
        raise OverlayError(
            f"vLLM {inst.version}: fawheels has no facts of this release (op schemas, torch pin); it knows {known}",
            hint="install one of those, or add the release (one Release entry in src/fawheels/matrix/recipes)",
        )
    _refuse_runtime(inst, machine)
    report = compat.predict(list(inst.objects), machine.cc, machine.driver)
    verdict = compat.verdict(report)
    found = tuple(compat.findings(report))
    sm = Arch(machine.cc[0], machine.cc[1]).sm
    if verdict.kind == "native":
        return Plan(inst, machine, release, verdict, found, "nothing", ("nothing to do: it loads natively",))
    steps: list[str] = []
    if index_records is not None:
        from fawheels.publish import variants

        mine = [
            r
            for r in index_records
            if str(r.get("version", "")).split("+", 1)[0] == release.version and r.get("project") == "vllm-fa2"
        ]
        choices = variants.choose(mine, machine.cc, machine.driver, "vllm-fa2")
        choice = choices[0] if choices else None
        if choice is not None and choice.best is not None and choice.best.rank[:1] != (0,):  # SASS, not PTX
            r = choice.best.record
            steps = [
                f"download {r['filename']} from {index_base}{r['variant']}/simple/vllm-fa2/ ({choice.best.reason})",
                *_finish(inst, sm),
            ]
            return Plan(inst, machine, release, verdict, found, "index", tuple(steps), wheel=str(r["filename"]))
        steps.append("the index has no vllm-fa2 wheel of this release with SASS for this GPU: building one")
    if base_matrix is None:
        raise ConfigError("no build matrix to derive the target from", hint="reinstall fawheels (pip install .)")
    from fawheels.matrix.derive import derive_vllm_target

    cuda = inst.cuda if inst.runtime_major == 12 else None
    if inst.runtime_major == 12 and cuda is None:
        cuda = "12.8"
    derived = derive_vllm_target(
        base_matrix[0], base_matrix[1], vllm=release.version, archs=[sm], python=inst.python_version, cuda=cuda
    )
    target = derived.target
    estimate = estimate_seconds(target, cores)
    where = (
        f"in the {target.toolchain.name} toolchain image (docker: this driver needs a CUDA "
        f"{target.toolchain.cuda_version.major}.x build; `docker` must run here)"
        if target.toolchain.provision == "container"
        else f"with the {target.toolchain.name} toolchain ({target.toolchain.provision})"
    )
    steps += [
        f"build {target.id} ({target.wheel_name}) {where}: about {estimate / 60:.0f} min on {cores} core(s) "
        "(from the job history, else measured unit times)",
        *_finish(inst, sm),
    ]
    return Plan(inst, machine, release, verdict, found, "build", tuple(steps), target=target, estimate_s=estimate)


def _finish(inst: InstalledVllm, sm: str) -> list[str]:
    return [
        f"verify it (fawheels verify: {sm} SASS read by our parser and cuobjdump)",
        f"overlay it: {inst.extension} -> the built one (original kept as <name>.fawheels-original)",
        "smoke it on this GPU (every kernel of its profile against a float32 reference), when one is here",
        "undo any time: fawheels fix-vllm --undo (restores the original byte for byte)",
    ]


def render(p: Plan, dry_run: bool) -> str:
    inst, m = p.installed, p.machine
    lines = [
        f"vLLM {inst.version} (torch {inst.torch or '?'}, CUDA {inst.runtime_major or '?'} runtime, "
        f"Python {inst.python_version}) in {inst.python}",
        f"GPU {m.cc[0]}.{m.cc[1]}{f' ({m.label})' if m.label else ''}, driver {m.driver}",
        f"installed {inst.extension.name}:",
    ]
    lines += [f"  {'ok  ' if f.ok else 'FAIL'} {f.label}: {f.reason}" for f in p.findings]
    lines.append(p.verdict.line)
    lines.append("plan (dry run: nothing is changed):" if dry_run else "plan:")
    lines += [f"  {i}. {s}" for i, s in enumerate(p.steps, 1)]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- reading the install (I/O)


def _probe(python: str | None) -> dict[str, Any]:
    """The install's facts: in this process for the running interpreter, else through the probe in `python`."""
    from fawheels.deploy.overlay import _PROBE

    if python is None:
        import contextlib
        import io

        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            exec(compile(_PROBE, "<fix-vllm probe>", "exec"), {"args": ("vllm", EXTENSION)})
        here: dict[str, Any] = json.loads(buf.getvalue())
        return here
    from fawheels._util.runner import TimeoutExpired, call
    from fawheels.deploy.overlay import check_python

    exe = check_python(python)
    try:
        done = call([exe, "-c", _PROBE, "vllm", EXTENSION], quiet=True, timeout=120)
        doc: dict[str, Any] = json.loads(done.stdout)
    except (OSError, TimeoutExpired, ValueError):
        raise OverlayError(
            f"--python {python}: did not answer as a Python interpreter", hint="pass /path/to/venv/bin/python"
        ) from None
    return doc


def read_installed(python: str | None) -> InstalledVllm:
    from fawheels.check.wheelzip import read_file

    facts = _probe(python)
    where = facts["python"]
    if not facts.get("version"):
        raise OverlayError(
            f"{where} has no vLLM installed", hint="pass --python for the environment that has it (its bin/python)"
        )
    ext = Path(facts["path"])
    if not ext.is_file():
        raise OverlayError(f"vLLM {facts['version']} in {where} has no {EXTENSION}: nothing to fix")
    obj = read_file(ext)
    major = cudart_major(obj.needed)
    if major is None:  # look at vLLM's main extension beside it
        main = ext.parents[1] / "_C.abi3.so"
        if main.is_file():
            major = cudart_major(read_file(main).needed)
    return InstalledVllm(where, facts["python_version"], facts["version"], facts.get("torch"), ext, major, (obj,))


def fix_vllm_command(
    *,
    python: str | None,
    gpu: str | None,
    driver: str | None,
    index: str | None,
    dry_run: bool,
    as_json: bool,
    undo_it: bool,
    matrix: Path | None = None,
    settings: BuildSettings = DEFAULT_SETTINGS,
) -> int:
    """`fawheels fix-vllm`; `settings` (the environment's MAX_JOBS, compiler launcher …) for a build it runs."""
    from fawheels.check.machine import resolve
    from fawheels.matrix.config import find_matrix_file

    inst = read_installed(python)
    if undo_it:
        return _undo(inst, dry_run)
    machine = resolve(gpu, driver)
    records, base = (None, "")
    if index is not None:
        from fawheels.publish.variants import read_manifest

        records, base = read_manifest(index)
    path = find_matrix_file(matrix)
    p = plan(
        inst,
        machine,
        index_records=records,
        index_base=base,
        base_matrix=(path.read_text(encoding="utf-8"), path.resolve()),
        cores=os.cpu_count() or 1,
    )
    if as_json:
        say(jsondoc.dumps({"schema": PLAN_SCHEMA, **p.to_json(), "dry_run": dry_run}))
    else:
        say(render(p, dry_run), flush=True)
    if dry_run or p.action == "nothing":
        return 0
    return _carry_out(p, python, index, records, settings)


def _undo(inst: InstalledVllm, dry_run: bool) -> int:
    from fawheels.deploy.overlay import restore

    if dry_run:
        restore(inst.extension, dry_run=True)
        say(f"would restore the original {inst.extension} (dry run: nothing is changed)")
        return 0
    say(f"restored the original {restore(inst.extension)}")
    return 0


def _carry_out(
    p: Plan, python: str | None, index: str | None, records: list[dict[str, Any]] | None, settings: BuildSettings
) -> int:
    """Fetch or build the wheel, overlay it (verify runs inside overlay), smoke it where a GPU is."""
    from fawheels._util.paths import cache_root
    from fawheels.deploy import overlay

    dist = cache_root() / "fix-vllm"
    if p.action == "index":
        assert records is not None and index is not None and p.wheel is not None
        from fawheels.publish.variants import fetch_wheel

        wheel = fetch_wheel(index, next(r for r in records if r["filename"] == p.wheel), dist, OverlayError)
    else:
        from fawheels.compile.command import build_command
        from fawheels.matrix.config import find_matrix_file
        from fawheels.matrix.derive import derive_vllm_target, write_tree

        path = find_matrix_file(None)
        derived = derive_vllm_target(
            path.read_text(encoding="utf-8"),
            path.resolve(),
            vllm=p.release.version,
            archs=[s.sm for s in p.target.sass],
            python=p.installed.python_version,
            cuda=p.target.toolchain.cuda if p.installed.runtime_major == 12 else None,
        )
        code = build_command(
            matrix_path=write_tree(derived),
            target_ids=[derived.target.id],
            dist=dist,
            settings=settings,
        )
        if code:
            return code
        wheel = dist / derived.target.wheel_name
    py = python or sys.executable
    replaced = overlay.overlay(wheel, py)
    say(f"{replaced} now holds {wheel.name}; `fawheels fix-vllm --undo` puts the original back")
    from fawheels.check.machine import query

    if query():
        from fawheels.deploy.smoke import smoke_command

        return smoke_command(str(wheel), bench_too=False, out=None)
    say("no GPU here: smoke it on the GPU machine with `fawheels smoke WHEEL`")
    return 0
