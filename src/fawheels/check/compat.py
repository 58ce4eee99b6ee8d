"""Predict whether each kernel image of an artifact loads on a GPU with a given driver.

The driver loads one module per fatbin container (one per translation unit) and picks, inside it, SASS
that runs on the GPU or else PTX it JIT-compiles; the rules are the CUDA facts table's (docs/cuda-facts.md).
Prediction is pure (`predict`); only finding the objects (file, wheel, installed distribution) reads disk.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from fawheels._util.errors import ConfigError, InspectError
from fawheels._util.show import say
from fawheels.check.binary import CodeEntry, CodeObject, is_code_member, read_file, read_path
from fawheels.matrix import cudafacts as cf
from fawheels.matrix.cudafacts import Arch, Version

_CUDART = re.compile(r"^libcudart\.so\.(\d+)$")


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


def choose_image(entries: Sequence[CodeEntry], cc: tuple[int, int]) -> CodeEntry | None:
    """The image the driver loads: SASS for the GPU (exact, else the newest compatible), else PTX."""
    sass = [e for e in entries if e.kind == "sass" and cf.sass_runs_on(Arch.parse(e.arch), cc)]
    if sass:
        return max(sass, key=lambda e: (Arch.parse(e.arch).cc == cc, Arch.parse(e.arch).minor))
    ptx = [e for e in entries if e.kind == "ptx" and cf.ptx_jits_on(Arch.parse(e.arch), cc)]
    return max(ptx, key=lambda e: Arch.parse(e.arch).cc) if ptx else None


def predict_module(entries: Sequence[CodeEntry], cc: tuple[int, int], driver: Version) -> Prediction:
    """One module: which image, and whether the driver can load it."""
    first = entries[0]
    image = choose_image(entries, cc)
    if image is None:
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
    arch = Arch.parse(image.arch)
    if image.kind == "sass":
        exact = arch.cc == cc
        return Prediction(
            first.file,
            first.container,
            f"{arch.sm} SASS",
            True,
            f"{arch.sm} SASS {'matches' if exact else 'runs on'} compute capability {_cc(cc)}",
            how="exact-sass" if exact else "compatible-sass",
        )
    isa = Version.parse(image.ptx_isa or "0")
    name = f"{arch.compute} PTX (ISA {isa})"
    max_isa = cf.max_ptx_isa_of_driver(driver)
    if max_isa is not None and isa <= max_isa:
        return Prediction(
            first.file,
            first.container,
            name,
            True,
            f"no SASS for {_cc(cc)}; {_driver_says(driver)} JIT-compiles {name}",
            how="ptx-jit",
        )
    needed = cf.min_driver_for_ptx_isa(isa)
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


def runtime_major(obj: CodeObject) -> int | None:
    """CUDA major of the runtime an object links (libcudart.so.N)."""
    for lib in obj.needed:
        m = _CUDART.match(lib)
        if m:
            return int(m.group(1))
    return None


def _runtime_block(obj: CodeObject, driver: Version) -> Prediction | None:
    """A runtime of a newer CUDA major than the driver does not start: nothing in the object loads."""
    major = runtime_major(obj)
    needed = cf.MINOR_COMPAT_MIN_DRIVER.get(major) if major is not None else None
    if needed is None or driver >= needed:
        return None
    return Prediction(
        obj.file,
        -1,
        f"libcudart.so.{major}",
        False,
        f"links the CUDA {major} runtime (libcudart.so.{major}), which needs driver >= {needed}; "
        f"{_driver_says(driver)}: {_error('cudaErrorInsufficientDriver')}",
        error="cudaErrorInsufficientDriver",
        needed_driver=str(needed),
    )


def predict(objects: Sequence[CodeObject], cc: tuple[int, int], driver: Version) -> CompatReport:
    """Every loadable module of every object (relocatable containers and LTO IR are never loaded)."""
    predictions: list[Prediction] = []
    for obj in objects:
        modules: dict[int, list[CodeEntry]] = defaultdict(list)
        for e in obj.entries:
            if e.kind in ("sass", "ptx") and not e.relocatable:
                modules[e.container].append(e)
        if not modules:
            continue
        blocked = _runtime_block(obj, driver)
        if blocked is not None:
            predictions.append(blocked)
        predictions += [predict_module(entries, cc, driver) for _, entries in sorted(modules.items())]
    return CompatReport(cc, driver, tuple(predictions))


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


_DRIVER = re.compile(r"([1-9]\d{2})\.(\d{1,3})(?:\.(\d{1,3}))?")


def parse_driver(text: str) -> Version:
    """An NVIDIA driver version as nvidia-smi prints it: MAJOR.MINOR[.PATCH] with a three-digit major."""
    raw = text.strip()
    if not _DRIVER.fullmatch(raw):
        raise ConfigError(
            f"--driver {text[:40]!r}: not a driver version (NVIDIA drivers read MAJOR.MINOR[.PATCH])",
            hint="write it as nvidia-smi shows it: 580.65.06 or 570.195.03 (MAJOR.MINOR[.PATCH], three-digit major)",
        )
    return Version.parse(raw)


def compat_command(path: str, *, gpu: str, driver: str, as_json: bool = False) -> int:
    """`fawheels compat`: exit 1 when anything will not load on that GPU with that driver."""
    cc, version = cf.parse_gpu(gpu), parse_driver(driver)
    report = predict(load_objects(path), cc, version)
    serving = _serving_targets(path, report)
    if as_json:
        say(json.dumps({**report.to_json(), **({"serving_targets": serving} if serving else {})}, indent=2))
    else:
        say(f"GPU {_cc(cc)}, {_driver_says(version)}")
        for p in report.predictions:
            where = p.file if p.container < 0 else f"{p.file} [module {p.container}]"
            say(f"  {'ok  ' if p.ok else 'FAIL'} {where}: {p.reason}")
        if not report.predictions:
            say(f"  {path}: no CUDA code")
        if serving:
            say(
                f"  targets of this matrix that would load here: {', '.join(serving)} "
                "(`fawheels build --dry-run ID` shows how each is built)"
            )
    return 0 if report.ok else 1


def _serving_targets(path: str, report: CompatReport) -> list[str]:
    """When a wheel's CUDA runtime is too new for the driver: the targets of ./build_matrix.yaml (same
    distribution) whose wheels would load on that GPU and driver."""
    if report.ok or not any(p.error == "cudaErrorInsufficientDriver" for p in report.predictions):
        return []
    if not path.endswith(".whl") or not (Path.cwd() / "build_matrix.yaml").is_file():
        return []
    from fawheels.matrix.config import load_matrix_file
    from fawheels.publish.variants import serving_targets

    try:
        matrix = load_matrix_file(None)
    except ConfigError:
        return []
    distribution = Path(path).name.split("-", 1)[0]
    return serving_targets(matrix.targets, distribution, report.cc, report.driver)
