"""Will this code load on that GPU with that driver: the one rule (docs/cuda-facts.md), over code images, the
CUDA runtime they link and the facts of matrix/cudafacts.py. Pure: no I/O.

`compat PATH` (check/compat.py) applies `loads_on` to every module of a binary, `compat --index`
(publish/variants.py) to the facts a published wheel recorded, and `serving_targets` to the targets of a
matrix, so none of them can disagree with another; neither of those modules imports the other.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from fawheels._util.errors import InspectError
from fawheels.matrix import cudafacts as cf
from fawheels.matrix.cudafacts import Arch, Version
from fawheels.matrix.model import Target
from fawheels.matrix.recipes import RECIPES

_CUDART = re.compile(r"^libcudart\.so\.([0-9]+)$")


@dataclass(frozen=True)
class Load:
    """What the driver does with one set of code images on one GPU."""

    ok: bool
    how: str | None  # exact-sass | compatible-sass | ptx-jit; None when nothing fits
    arch: Arch | None  # the image loaded (or refused)
    isa: Version | None = None  # its PTX ISA
    error: str | None = None  # the cudaError* the user would see
    needed_driver: Version | None = None


def cudart_major(needed: Iterable[str]) -> int | None:
    """CUDA major of the runtime an object links, from its DT_NEEDED names (libcudart.so.N); None: none."""
    for lib in needed:
        if m := _CUDART.match(lib):
            return int(m.group(1))
    return None


def runtime_min_driver(major: int | None) -> Version | None:
    """The oldest driver that starts a CUDA `major` runtime (minor version compatibility), None if unknown."""
    return cf.MINOR_COMPAT_MIN_DRIVER.get(major) if major is not None else None


def loads_on(
    sass: Sequence[Arch],
    ptx: Sequence[tuple[Arch, Version]],
    cc: tuple[int, int],
    driver: Version,
    runtime: int | None = None,
) -> Load:
    """SASS for the GPU (exact, else the newest compatible), else PTX the driver can JIT (the newest arch); a
    CUDA `runtime` major newer than the driver loads nothing."""
    runs = [a for a in sass if cf.sass_runs_on(a, cc)]
    jits = [(a, isa) for a, isa in ptx if cf.ptx_jits_on(a, cc)]
    if not runs and not jits:
        return Load(False, None, None, error="cudaErrorNoKernelImageForDevice")
    runtime_need = runtime_min_driver(runtime)
    if runtime_need is not None and driver < runtime_need:
        return Load(False, None, None, error="cudaErrorInsufficientDriver", needed_driver=runtime_need)
    if runs:
        best = max(runs, key=lambda a: (a.cc == cc, a.minor))
        return Load(True, "exact-sass" if best.cc == cc else "compatible-sass", best)
    max_isa = cf.max_ptx_isa_of_driver(driver)
    fine = [(a, isa) for a, isa in jits if max_isa is not None and isa <= max_isa]
    if fine:
        arch, isa = max(fine, key=lambda j: j[0].cc)
        return Load(True, "ptx-jit", arch, isa)
    arch, isa = max(jits, key=lambda j: (j[0].cc, j[1]))
    return Load(False, "ptx-jit", arch, isa, "cudaErrorUnsupportedPtxVersion", cf.min_driver_for_ptx_isa(isa))


def code_min_driver(runtime_major: int, ptx_isas: Iterable[str]) -> Version:
    """The oldest driver that starts the runtime and JIT-compiles every PTX (what a wheel needs anywhere)."""
    needed = [cf.MINOR_COMPAT_MIN_DRIVER.get(runtime_major) or cf.toolkit(f"{runtime_major}.0").min_driver]
    for isa in ptx_isas:
        by_isa = cf.min_driver_for_ptx_isa(Version.parse(isa))
        if by_isa is None:
            raise InspectError(f"PTX ISA {isa} is newer than every CUDA release fawheels knows")
        needed.append(by_isa)
    return max(needed)


def serving_targets(targets: Iterable[Target], distribution: str, cc: tuple[int, int], driver: Version) -> list[str]:
    """Ids of matrix targets of `distribution` whose wheel loads there from SASS (no JIT at first use): the
    rule of `loads_on`, over the target's archs, its toolkit's PTX ISA and the runtime it links."""
    ids = []
    for t in targets:
        if RECIPES[t.recipe].distribution != distribution:
            continue
        isa = cf.toolkit(t.toolchain.cuda).ptx_isa
        load = loads_on(t.sass, [(a, isa) for a in t.ptx], cc, driver, t.toolchain.cuda_version.major)
        if load.ok and load.how != "ptx-jit":
            ids.append(t.id)
    return ids
