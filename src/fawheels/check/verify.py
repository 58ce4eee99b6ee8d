"""Check a built wheel against the promises of its target, read from its `build-info.json`.

Reading (`wheelfacts.read_wheel`) gathers everything from the zip once, in memory; every check here is a pure
function of what was read, so each failure mode is testable on data. The build writes the report beside the wheel
(`write_report`); publishing re-runs `verify_wheel` and refuses a wheel that fails.
"""

from __future__ import annotations

import csv
import functools
import json
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.tags import Tag
from packaging.utils import InvalidWheelFilename, canonicalize_name, canonicalize_version, parse_wheel_filename
from packaging.version import InvalidVersion
from packaging.version import Version as PyVersion

from fawheels import __version__
from fawheels._util import jsondoc
from fawheels._util.errors import FawheelsError
from fawheels._util.files import sha256_file, write_atomic
from fawheels._util.show import one_line, say
from fawheels._util.wheels import metadata_problem, platform_mismatches
from fawheels.check.binary import CodeEntry, CodeObject
from fawheels.check.wheelfacts import (
    ReadersRun,
    WheelFacts,
    read_wheel,
    schema_differences,
)
from fawheels.compile.buildinfo import SCHEMA as BUILD_INFO_SCHEMA
from fawheels.compile.buildinfo import BuildInfo, BuildInfoError, needed_fields
from fawheels.matrix import cudafacts as cf
from fawheels.matrix.cudafacts import Arch, Version
from fawheels.matrix.recipes import RECIPES

REPORT_SCHEMA = 1
_ALLOWED_NEEDED = re.compile(
    r"libc10(_\w+)?\.so|libtorch(_\w+)?\.so|libc\.so\.6|libm\.so\.6|libgcc_s\.so\.1|libstdc\+\+\.so\.6"
    r"|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1|ld-linux[\w.-]*\.so\.\d+"
)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True)
class VerifyReport:
    wheel: str
    sha256: str  # of the wheel file: a report speaks for these exact bytes
    target: str | None
    checks: tuple[Check, ...]
    readers: ReadersRun | None = None

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def single_reader(self) -> bool:
        """True when the binary was read by one reader only (asked for, or cuobjdump could not run)."""
        return self.readers is None or (self.readers.code_members > 0 and len(self.readers.ran) < 2)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": REPORT_SCHEMA,
            "wheel": self.wheel,
            "sha256": self.sha256,
            "target": self.target,
            "ok": self.ok,
            "checks": [c.to_json() for c in self.checks],
            "readers": self.readers.to_json() if self.readers else None,
            "single_reader": self.single_reader,
            "fawheels": __version__,
        }


# --- reading ---------------------------------------------------------------------------------------


# --- checks (pure) ---------------------------------------------------------------------------------


def _ok(name: str, problems: Sequence[str], fine: str) -> Check:
    return Check(name, not problems, "; ".join(problems) if problems else fine)


def check_format(f: WheelFacts) -> Check:
    """File name, WHEEL tags and METADATA name/version agree."""
    problems: list[str] = []
    try:
        name, version, _build, tags = parse_wheel_filename(f.filename)
    except (InvalidWheelFilename, InvalidVersion) as exc:
        return Check("format", False, f"bad wheel file name: {exc}")
    if f.dist_info is None:
        return Check("format", False, "expected exactly one *.dist-info directory")
    if canonicalize_name(f.dist_info.removesuffix(".dist-info").rsplit("-", 1)[0]) != name:
        problems.append(f"{f.dist_info} does not belong to {name}")
    wheel = HeaderParser().parsestr(f.texts.get("WHEEL", ""))
    if not wheel.get("Wheel-Version", "").startswith("1."):
        problems.append("WHEEL has no Wheel-Version 1.x")
    if wheel.get("Root-Is-Purelib", "").lower() != "false":
        problems.append("WHEEL says Root-Is-Purelib is not false (the wheel carries compiled extensions)")
    declared = set()
    for tag in wheel.get_all("Tag") or []:
        parts = tag.strip().split("-")
        if len(parts) != 3 or not all(parts):
            problems.append(f"WHEEL Tag {tag[:80]!r} is not interpreter-abi-platform (e.g. cp311-cp311-linux_x86_64)")
            continue
        declared.add(Tag(*parts))
    if declared != set(tags):
        problems.append(f"WHEEL tags {sorted(map(str, declared))} differ from the file name's {sorted(map(str, tags))}")
    if said := metadata_problem(f.metadata, name, version):
        problems.append(said)
    problems += platform_mismatches(f.objects, tags)
    return _ok("format", problems, f"{name} {version}, tags {', '.join(sorted(map(str, tags)))}")


def check_record(f: WheelFacts) -> Check:
    """RECORD lists every member with its sha256 and size, and nothing else."""
    record_name = f"{f.dist_info}/RECORD"
    if "RECORD" not in f.texts:
        return Check("record", False, "no RECORD")
    problems: list[str] = []
    listed: set[str] = set()
    for row in csv.reader(f.texts["RECORD"].splitlines()):
        if not row:
            continue
        if len(row) != 3:
            problems.append(f"malformed RECORD row {row!r}")
            continue
        member, digest, size = row
        listed.add(member)
        if member == record_name:
            continue
        if member not in f.members:
            problems.append(f"RECORD lists {member}, which is not in the wheel")
        elif (digest, size) != (f.members[member][0], str(f.members[member][1])):
            problems.append(f"{member}: hash or size differs from RECORD")
    problems += [f"{m} is not in RECORD" for m in sorted(set(f.members) - listed)]
    problems += [
        f"{one_line(m)} appears more than once in the zip, as written or once installed ('./', '//', letter case "
        "and Unicode form aside): an installer keeps one, a reader may see the other"
        for m in f.duplicates
    ]
    return _ok("record", problems, f"{len(f.members)} members match RECORD")


def _build_info(f: WheelFacts) -> tuple[BuildInfo | None, str]:
    text = f.texts.get("build-info.json")
    if text is None:
        return None, f"no {f.dist_info}/build-info.json: not a fawheels build"
    try:
        info = json.loads(text)
    except ValueError as exc:
        return None, f"build-info.json is not JSON: {exc}"
    except RecursionError:
        return None, "build-info.json nests deeper than Python's JSON reader goes: not a fawheels build-info"
    if not isinstance(info, dict):
        return None, "build-info.json is not an object"
    missing = [k for k in needed_fields() if k not in info]
    if missing:
        return None, f"build-info.json lacks {', '.join(missing)}"
    if info["schema"] != BUILD_INFO_SCHEMA:
        return None, f"build-info.json schema {info['schema']!r}, fawheels reads {BUILD_INFO_SCHEMA}"
    try:
        return BuildInfo.from_json(info), ""
    except BuildInfoError as exc:
        return None, f"build-info.json {exc}"


def _archs(info: BuildInfo, kind: str) -> list[Arch]:
    return [Arch.parse(a) for a in (info.archs.sass if kind == "sass" else info.archs.ptx)]


def check_build_info(f: WheelFacts, info: BuildInfo) -> Check:
    """build-info.json agrees with the wheel and with itself (toolkit, driver, runtime, archs)."""
    problems: list[str] = []
    name, version, _b, tags = parse_wheel_filename(f.filename)
    if canonicalize_name(info.distribution) != name or (
        canonicalize_version(info.version) != canonicalize_version(version)
    ):
        problems.append(f"says {info.distribution} {info.version}, the wheel is {name} {version}")
    py = "cp" + info.python.replace(".", "")
    if not any(t.interpreter == py for t in tags):
        tagged = ", ".join(sorted({t.interpreter for t in tags}))
        problems.append(f"python {info.python} but the wheel is tagged {tagged}")
    cuda = Version.parse(info.toolchain.cuda)
    tk = cf.toolkit(cuda)
    if Version.parse(info.min_driver) != tk.min_driver:
        problems.append(f"min_driver {info.min_driver} is not CUDA {tk.cuda}'s minimum {tk.min_driver}")
    if info.cuda_runtime_major != cuda.major:
        problems.append(f"cuda_runtime_major {info.cuda_runtime_major} but the toolkit is CUDA {cuda}")
    torch_cuda = info.torch.cuda
    if torch_cuda is not None and Version.parse(str(torch_cuda)).major != cuda.major:
        problems.append(f"torch is built for CUDA {torch_cuda}, the extension with CUDA {cuda}")
    for arch in _archs(info, "sass") + _archs(info, "ptx"):
        why = cf.toolkit_compile_error(cuda, arch)
        if why:
            problems.append(why)
    problems += [f"extension {e} is not in the wheel" for e in info.extensions if e not in f.members]
    return _ok("build-info", problems, f"target {info.target}")


def check_extensions(f: WheelFacts, info: BuildInfo) -> Check:
    """Every listed extension is a readable ELF; no unlisted object carries CUDA code."""
    problems = list(f.unreadable.values())
    readable = {o.file for o in f.objects if o.format in ("shared-object", "unknown")}
    problems += [
        f"{e} is not an ELF shared object"
        for e in info.extensions
        if e in f.members and e not in readable and e not in f.unreadable
    ]
    problems += [
        f"{o.file} carries CUDA code but is not listed in build-info.json extensions"
        for o in f.objects
        if o.entries and o.file not in info.extensions
    ]
    return _ok("extensions", problems, ", ".join(info.extensions))


def _modules(obj: CodeObject) -> dict[int, list[CodeEntry]]:
    modules: dict[int, list[CodeEntry]] = {}
    for e in obj.entries:
        if e.kind in ("sass", "ptx") and not e.relocatable:
            modules.setdefault(e.container, []).append(e)
    return modules


def _extensions(f: WheelFacts, info: BuildInfo) -> list[CodeObject]:
    return [o for o in f.objects if o.file in info.extensions]


def _code_objects(f: WheelFacts, info: BuildInfo) -> list[CodeObject]:
    """The listed extensions and every other member that carries CUDA code: all are held to the promises."""
    return [o for o in f.objects if o.file in info.extensions or o.entries]


def promised_ccs(sass: Sequence[Arch]) -> list[tuple[int, int]]:
    """Every GPU the promised SASS runs on by the binary-compatibility rules."""
    return [cc for cc in cf.known_ccs() if any(cf.sass_runs_on(a, cc) for a in sass)]


def check_sass(f: WheelFacts, info: BuildInfo) -> Check:
    """Every module of every extension has SASS for every promised GPU."""
    promised = _archs(info, "sass")
    ccs = promised_ccs(promised)
    problems: list[str] = []
    for obj in _code_objects(f, info):
        modules = _modules(obj)
        if promised and not modules:
            problems.append(f"{obj.file}: no CUDA code at all")
        for container, entries in sorted(modules.items()):
            sass = [Arch.parse(e.arch) for e in entries if e.kind == "sass"]
            missing = [f"{a}.{b}" for a, b in ccs if not any(cf.sass_runs_on(s, (a, b)) for s in sass)]
            if missing:
                have = ", ".join(sorted({s.sm for s in sass})) or "no SASS"
                problems.append(f"{obj.file} module {container}: nothing runs on {', '.join(missing)} (has {have})")
    gpus = ", ".join(f"{a}.{b}" for a, b in ccs)
    return _ok("sass", problems, f"SASS for {', '.join(a.sm for a in promised)} covers compute capability {gpus}")


def check_ptx(f: WheelFacts, info: BuildInfo) -> Check:
    """Promised PTX is there, and every PTX is JIT-able by the target's oldest driver."""
    min_driver = Version.parse(info.min_driver)
    promised = _archs(info, "ptx")
    problems: list[str] = []
    for obj in _code_objects(f, info):
        for container, entries in sorted(_modules(obj).items()):
            ptx = [e for e in entries if e.kind == "ptx"]
            for want in promised:
                if not any(Arch.parse(e.arch) == want for e in ptx):
                    problems.append(f"{obj.file} module {container}: no {want.compute} PTX")
            for e in ptx:
                needed = cf.min_driver_for_ptx_isa(Version.parse(e.ptx_isa or "0"))
                if needed is None or needed > min_driver:
                    problems.append(
                        f"{obj.file} module {container}: {e.arch} PTX ISA {e.ptx_isa} needs driver "
                        f">= {needed or 'newer than any known'}, the target supports {min_driver}"
                    )
    return _ok("ptx", problems, f"every PTX JIT-able by driver {min_driver}" if promised else "no PTX promised")


def check_needed(f: WheelFacts, info: BuildInfo) -> Check:
    """DT_NEEDED: only torch's libraries, the CUDA runtime of the right major, and the C/C++ runtime."""
    cudart = f"libcudart.so.{info.cuda_runtime_major}"
    problems = [
        f"{o.file} needs {lib}"
        for o in _extensions(f, info)
        for lib in o.needed
        if lib != cudart and not _ALLOWED_NEEDED.fullmatch(lib)
    ]
    return _ok("dt-needed", problems, f"torch, {cudart} and the C/C++ runtime only")


def check_requires_torch(f: WheelFacts, info: BuildInfo) -> Check:
    """Requires-Dist pins torch as build-info says, and the torch it was built with satisfies the pin."""
    try:
        if info.torch.requirement is None:
            raise KeyError("requirement")
        want = Requirement(info.torch.requirement)
    except (KeyError, InvalidRequirement) as exc:
        return Check("requires-torch", False, f"build-info.json torch.requirement unusable: {exc}")
    meta = HeaderParser().parsestr(f.texts.get("METADATA", ""))
    torch = []
    for line in meta.get_all("Requires-Dist") or []:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            return Check("requires-torch", False, f"unparsable Requires-Dist {line!r}")
        if canonicalize_name(req.name) == "torch":
            torch.append(req)
    if len(torch) != 1 or torch[0].specifier != want.specifier or torch[0].marker is not None:
        found = ", ".join(map(str, torch)) or "no torch"
        return Check("requires-torch", False, f"Requires-Dist has {found}, build-info says {want}")
    built = PyVersion(str(info.torch.version))
    if not want.specifier.contains(built, prereleases=True):
        return Check("requires-torch", False, f"built against torch {built}, which {want} excludes")
    return Check("requires-torch", True, f"{want} (built against {built})")


def check_op_schemas(f: WheelFacts, info: BuildInfo) -> Check:
    """A wheel that serves a release registers exactly the op schemas that release calls."""
    serves = info.serves
    if not serves:
        return Check("op-schemas", True, "serves no release: no op schemas promised")
    recipe = RECIPES.get(str(info.recipe))
    release = recipe.release(serves.split("==", 1)[-1]) if recipe else None
    if recipe is None or release is None:
        return Check("op-schemas", False, f"fawheels knows no op schemas for {serves} (recipe {info.recipe})")
    problems = [
        f"{e}: {p}" for e in info.extensions for p in schema_differences(f.op_schemas.get(e, {}), release.ops, serves)
    ]
    return _ok("op-schemas", problems, f"{', '.join(release.op_names)} as {serves} calls them")


def check_readers(f: WheelFacts) -> Check:
    """Our parser and cuobjdump read every CUDA-bearing member alike (kind, arch with a/f suffix, PTX ISA)."""
    readers = f.readers
    if readers is None:
        return Check("readers", True, "no reader record")
    if f.disagreements:
        return Check("readers", False, "the readers disagree: " + "; ".join(f.disagreements))
    entries = sum(len(o.entries) for o in f.objects)
    members = sum(1 for o in f.objects if o.entries)
    names = " + ".join(f"{n} {v}" for n, v in readers.ran)
    origin = f" ({readers.cuobjdump_origin})" if readers.cuobjdump_origin else ""
    return Check(
        "readers",
        True,
        f"{names}{origin}: {entries} code entries in {members} member(s)"
        + (", read alike" if readers.agree else "")
        + (f"; {readers.note}" if readers.note else ""),
    )


_INFO_CHECKS: tuple[Callable[[WheelFacts, BuildInfo], Check], ...] = (
    check_build_info,
    check_extensions,
    check_sass,
    check_ptx,
    check_needed,
    check_requires_torch,
    check_op_schemas,
)
_INFO_CHECK_NAMES = ("build-info", "extensions", "sass", "ptx", "dt-needed", "requires-torch", "op-schemas")


def _guarded(name: str, check: Callable[[], Check], what: str) -> Check:
    """Malformed input (a wrong type, an unknown arch, a broken csv row) fails its check, not the run."""
    try:
        return check()
    except (
        FawheelsError,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        csv.Error,
        RecursionError,
        OverflowError,
    ) as exc:
        return Check(name, False, f"{what} unusable: {exc}")


def run_checks(f: WheelFacts) -> tuple[tuple[Check, ...], str | None]:
    """Every check, and the target the wheel says it was built for."""
    checks = [
        _guarded("format", lambda: check_format(f), "wheel metadata"),
        _guarded("record", lambda: check_record(f), "RECORD"),
        check_readers(f),
    ]
    if not checks[0].ok:  # the rest reads names and tags the file name must give
        return tuple(
            checks + [Check(n, False, "skipped: the wheel's format is broken") for n in _INFO_CHECK_NAMES]
        ), None
    info, why = _build_info(f)
    if info is None:
        return tuple(checks + [Check(n, False, why) for n in _INFO_CHECK_NAMES]), None
    for check, name in zip(_INFO_CHECKS, _INFO_CHECK_NAMES, strict=True):
        checks.append(_guarded(name, functools.partial(check, f, info), "build-info.json"))
    return tuple(checks), info.target


# --- API and command -------------------------------------------------------------------------------


def verify_wheel(
    path: Path, *, reader: str = "both", toolkit: Path | None = None, install: bool = True
) -> VerifyReport:
    """Check one wheel, reading its CUDA code with `reader` (both: our parser and cuobjdump, which must
    agree; cuobjdump from `toolkit` when it has one, else found or, when `install`, installed once into
    the cache); raises InspectError only when the file is not a readable wheel at all."""
    facts = read_wheel(path, reader, toolkit, install)
    checks, target = run_checks(facts)
    from fawheels.publish.provenance import check_provenance, provenance_path

    # The build verifies before it writes the statement; once it sits beside the wheel, it must agree.
    if provenance_path(path).exists():
        checks = (*checks, Check("provenance", *check_provenance(path)))
    return VerifyReport(path.name, sha256_file(path), target, checks, facts.readers)


def write_report(wheel: Path, report: VerifyReport | None = None) -> Path:
    """Write `<wheel filename>.verify.json` beside the wheel (atomically) and return its path."""
    report = report or verify_wheel(wheel)
    return write_atomic(wheel.with_name(wheel.name + ".verify.json"), json.dumps(report.to_json(), indent=2) + "\n")


def verify_command(wheel: Path, *, as_json: bool = False, reader: str = "both", write: bool = False) -> int:
    """`fawheels verify`: exit 0 when every check passes, 1 otherwise; `write`: also the report publish reads."""
    report = verify_wheel(wheel, reader=reader)
    if write:  # <wheel>.verify.json, pass or fail, as a build writes it
        say(f"report: {write_report(wheel, report)}", file=sys.stderr)
    if as_json:
        say(jsondoc.dumps(report.to_json()))
    else:
        for c in report.checks:
            say(f"{'PASS' if c.ok else 'FAIL'} {c.name}: {c.detail}")
        if report.readers and report.readers.note:
            say(f"NOTE {report.readers.note}")
        say(
            f"{wheel.name}: {'verified' if report.ok else 'FAILS verification'}"
            + (f" for target {report.target}" if report.target else "")
            + (" (read by one reader only)" if report.single_reader else "")
        )
    return 0 if report.ok else 1
