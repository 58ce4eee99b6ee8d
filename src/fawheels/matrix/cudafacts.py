"""CUDA facts as data (docs/cuda-facts.md): toolkits, PTX ISA versions, drivers, SM targets and GPUs.

Pure: no I/O. Every rule about "can toolkit X compile arch Y", "can driver D JIT PTX ISA I" and
"does SASS for arch A run on compute capability C" lives here, so matrix validation, verify and
compat all agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import total_ordering

from fawheels._util.errors import ConfigError


@total_ordering
@dataclass(frozen=True)
class Version:
    """A dotted version (CUDA 13.0, PTX ISA 9.0, driver 580.65.06) compared numerically."""

    parts: tuple[int, ...]
    text: str = field(default="", compare=False, repr=False)  # as written: drivers keep "580.65.06"

    @classmethod
    def parse(cls, text: str | float | int) -> Version:
        text = str(text).strip()
        # ASCII digits, bounded: a 5,000-digit part from a hostile manifest is "not a version", not an int
        if not re.fullmatch(r"[0-9]{1,9}(\.[0-9]{1,9}){0,7}", text):
            raise ValueError(f"not a version: {text!r}")
        return cls(tuple(int(p) for p in text.split(".")), text)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        width = max(len(self.parts), len(other.parts))
        return self.parts + (0,) * (width - len(self.parts)) < other.parts + (0,) * (width - len(other.parts))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return not self < other and not other < self

    def __hash__(self) -> int:
        parts = list(self.parts)
        while len(parts) > 1 and parts[-1] == 0:
            parts.pop()
        return hash(tuple(parts))

    @property
    def major(self) -> int:
        return self.parts[0]

    @property
    def minor(self) -> int:
        return self.parts[1] if len(self.parts) > 1 else 0

    def __str__(self) -> str:
        return self.text or ".".join(str(p) for p in self.parts)


@dataclass(frozen=True)
class Toolkit:
    cuda: Version
    ptx_isa: Version
    min_driver: Version  # minimum Linux driver of the GA release


def _v(text: str) -> Version:
    return Version.parse(text)


# NVIDIA "CUDA Toolkit and Corresponding Driver Versions" + PTX ISA release notes.
TOOLKITS: tuple[Toolkit, ...] = (
    Toolkit(_v("12.0"), _v("8.0"), _v("525.60.13")),
    Toolkit(_v("12.1"), _v("8.1"), _v("530.30.02")),
    Toolkit(_v("12.2"), _v("8.2"), _v("535.54.03")),
    Toolkit(_v("12.3"), _v("8.3"), _v("545.23.06")),
    Toolkit(_v("12.4"), _v("8.4"), _v("550.54.14")),
    Toolkit(_v("12.5"), _v("8.5"), _v("555.42.02")),
    Toolkit(_v("12.6"), _v("8.5"), _v("560.28.03")),
    Toolkit(_v("12.8"), _v("8.7"), _v("570.26")),
    Toolkit(_v("12.9"), _v("8.8"), _v("575.51.03")),
    Toolkit(_v("13.0"), _v("9.0"), _v("580.65.06")),
    Toolkit(_v("13.1"), _v("9.1"), _v("590.44.01")),
    Toolkit(_v("13.2"), _v("9.2"), _v("595.45.04")),
)

# Minor version compatibility (SASS only): a CUDA major's runtime runs on drivers at least this new.
MINOR_COMPAT_MIN_DRIVER: dict[int, Version] = {12: _v("525.60.13"), 13: _v("580.65.06")}


def toolkit(cuda: str | Version) -> Toolkit:
    version = cuda if isinstance(cuda, Version) else Version.parse(cuda)
    key = Version(version.parts[:2])
    for tk in TOOLKITS:
        if tk.cuda == key:
            return tk
    known = ", ".join(str(t.cuda) for t in TOOLKITS)
    raise ConfigError(f"unknown CUDA toolkit {version} (known: {known})")


def min_driver_for_ptx_isa(isa: Version) -> Version | None:
    """Oldest driver that can JIT PTX of this ISA: that of the first toolkit emitting it (or newer)."""
    for tk in TOOLKITS:
        if tk.ptx_isa >= isa:
            return tk.min_driver
    return None  # newer than every toolkit we know


def cuda_of_driver(driver: Version) -> Version | None:
    """The newest CUDA version a driver supports natively (None if older than every known toolkit)."""
    supported = [tk.cuda for tk in TOOLKITS if driver >= tk.min_driver]
    return max(supported) if supported else None


@dataclass(frozen=True)
class Arch:
    """A compilation target: `sm_120`, `sm_90a`, `sm_120f` (SASS) or `compute_120` (PTX)."""

    major: int
    minor: int
    suffix: str = ""  # "", "a" (arch-specific) or "f" (family)

    @classmethod
    def parse(cls, text: str) -> Arch:
        m = re.fullmatch(r"(?:sm_|compute_)?([0-9]{1,3})([0-9])([af]?)", text.strip())
        if not m:
            raise ValueError(f"not an arch: {text!r} (expected e.g. sm_120, sm_90a, sm_120f)")
        return cls(int(m.group(1)), int(m.group(2)), m.group(3))

    @property
    def sm(self) -> str:
        return f"sm_{self.major}{self.minor}{self.suffix}"

    @property
    def compute(self) -> str:
        return f"compute_{self.major}{self.minor}{self.suffix}"

    @property
    def short(self) -> str:
        """Id fragment: sm_120 -> sm120."""
        return f"sm{self.major}{self.minor}{self.suffix}"

    @property
    def cc(self) -> tuple[int, int]:
        return (self.major, self.minor)

    def __str__(self) -> str:
        return self.sm


@dataclass(frozen=True)
class ArchSupport:
    """Which toolkits can compile an SM target offline, and the PTX ISA it needs."""

    first_cuda: Version
    last_cuda: Version | None  # None: still supported by the newest toolkit
    min_ptx_isa: Version


_ALL = _v("12.0")
_ARCH_SUPPORT: dict[tuple[int, int], ArchSupport] = {
    (5, 0): ArchSupport(_ALL, _v("12.9"), _v("4.0")),
    (5, 2): ArchSupport(_ALL, _v("12.9"), _v("4.1")),
    (5, 3): ArchSupport(_ALL, _v("12.9"), _v("4.2")),
    (6, 0): ArchSupport(_ALL, _v("12.9"), _v("5.0")),
    (6, 1): ArchSupport(_ALL, _v("12.9"), _v("5.0")),
    (6, 2): ArchSupport(_ALL, _v("12.9"), _v("5.0")),
    (7, 0): ArchSupport(_ALL, _v("12.9"), _v("6.0")),
    (7, 2): ArchSupport(_ALL, _v("12.9"), _v("6.1")),
    (7, 5): ArchSupport(_ALL, None, _v("6.3")),
    (8, 0): ArchSupport(_ALL, None, _v("7.0")),
    (8, 6): ArchSupport(_ALL, None, _v("7.1")),
    (8, 7): ArchSupport(_ALL, None, _v("7.4")),
    (8, 9): ArchSupport(_ALL, None, _v("7.8")),
    (9, 0): ArchSupport(_ALL, None, _v("7.8")),
    (10, 0): ArchSupport(_v("12.8"), None, _v("8.6")),
    (10, 1): ArchSupport(_v("12.8"), _v("12.9"), _v("8.6")),  # renamed sm_110 in CUDA 13.0
    (10, 3): ArchSupport(_v("12.9"), None, _v("8.8")),
    (11, 0): ArchSupport(_v("13.0"), None, _v("9.0")),
    (12, 0): ArchSupport(_v("12.8"), None, _v("8.7")),
    (12, 1): ArchSupport(_v("12.9"), None, _v("8.8")),
}
_A_SUFFIX_MIN_ISA = {(9, 0): _v("8.0")}  # sm_90a needs more than sm_90; later `a` targets match the base
_FAMILY_FIRST_CUDA = _v("12.9")
_FAMILY_MIN_ISA = _v("8.8")


def known_arches() -> list[str]:
    return [f"sm_{ma}{mi}" for ma, mi in _ARCH_SUPPORT]


def arch_support(arch: Arch) -> ArchSupport:
    try:
        base = _ARCH_SUPPORT[arch.cc]
    except KeyError:
        raise ConfigError(f"unknown arch {arch.sm} (known: {', '.join(known_arches())})") from None
    if arch.suffix == "a" and arch.major < 9:
        raise ConfigError(f"{arch.sm}: arch-specific `a` targets exist from sm_90a on")
    if arch.suffix == "f":
        if arch.major < 10:
            raise ConfigError(f"{arch.sm}: family `f` targets exist from sm_100f on")
        return ArchSupport(
            max(base.first_cuda, _FAMILY_FIRST_CUDA), base.last_cuda, max(base.min_ptx_isa, _FAMILY_MIN_ISA)
        )
    if arch.suffix == "a":
        return ArchSupport(base.first_cuda, base.last_cuda, _A_SUFFIX_MIN_ISA.get(arch.cc, base.min_ptx_isa))
    return base


def toolkit_compile_error(cuda: Version, arch: Arch) -> str | None:
    """Why toolkit `cuda` cannot compile `arch` (None when it can)."""
    support = arch_support(arch)
    if cuda < support.first_cuda:
        return f"{arch.sm} needs CUDA >= {support.first_cuda} (toolkit is {cuda})"
    if support.last_cuda is not None and cuda > support.last_cuda:
        renamed = " (renamed sm_110 in CUDA 13.0)" if arch.cc == (10, 1) else ""
        return (
            f"CUDA {cuda} cannot compile {arch.sm} offline{renamed}; the last toolkit that can is {support.last_cuda}"
        )
    return None


def sass_runs_on(sass: Arch, cc: tuple[int, int]) -> bool:
    """SASS binary compatibility: sm_XY runs on X.Z (Z >= Y); sm_XYa only on X.Y; sm_XYf on the family."""
    major, minor = cc
    if sass.suffix == "a":
        return sass.cc == cc
    return sass.major == major and minor >= sass.minor


def ptx_jits_on(ptx: Arch, cc: tuple[int, int]) -> bool:
    """PTX compute_XY JITs for any CC >= X.Y; compute_XYa only on X.Y; compute_XYf on the family."""
    if ptx.suffix == "a":
        return ptx.cc == cc
    if ptx.suffix == "f":
        return ptx.major == cc[0] and cc[1] >= ptx.minor
    return cc >= ptx.cc


# GPU names -> compute capability, as families: each pattern is matched against the whole name (lower-case, the
# vendor words "nvidia"/"geforce" dropped, spaces/dashes/underscores collapsed), so every spelling nvidia-smi prints
# for a family is one entry and no name can reach another generation's row ("RTX 6000 Ada" is 8.9, never the
# Blackwell "RTX PRO 6000"). nvidia-smi's datacenter names carry memory and form-factor words (A100-SXM4-80GB,
# H100 80GB HBM3, H200 NVL): _DC_TAIL takes those.
_DC_TAIL = r"(?: (?:\d+gb|hbm\d?e?|pcie|sxm\d?|nvl|sxm\d? \d+gb|\d+c))*"
_LAPTOP = r"(?: laptop gpu| generation laptop gpu)?"
GPU_FAMILIES: tuple[tuple[str, tuple[int, int], str], ...] = (
    # Blackwell workstation / GeForce 50: compute capability 12.0
    (
        r"rtx pro (?:6000|5000|4500|4000|2000|1000|500)(?: blackwell)?(?: max q)?(?: workstation| server| sff)?"
        r"(?: edition)?" + _LAPTOP,
        (12, 0),
        "RTX PRO 6000/5000/4500/4000 Blackwell (Workstation, Max-Q, Server)",
    ),
    (r"rtx 50[5-9]0(?: ti| d| d v2)?" + _LAPTOP, (12, 0), "GeForce RTX 5050-5090"),
    (r"(?:dgx spark|gb10)", (12, 1), "DGX Spark (GB10)"),
    (r"g?b(?:100|200)" + _DC_TAIL, (10, 0), "B200, GB200"),
    (r"g?b300" + _DC_TAIL, (10, 3), "B300, GB300"),
    (r"g?h(?:100|200|800|20)" + _DC_TAIL, (9, 0), "H100, H200, GH200"),
    (r"l(?:40s?|4|20)" + _DC_TAIL, (8, 9), "L40S, L40, L4"),
    (r"rtx 40[5-9]0(?: ti)?(?: super)?(?: d)?" + _LAPTOP, (8, 9), "GeForce RTX 4050-4090"),
    (r"rtx (?:6000|5000|4500|4000|3500|2000)(?: sff)? ada(?: generation)?" + _LAPTOP, (8, 9), "RTX 6000/5000/4000 Ada"),
    (r"a(?:10g?|40|16|2)" + _DC_TAIL, (8, 6), "A10, A10G, A40"),
    (r"rtx 30[5-9]0(?: ti)?" + _LAPTOP, (8, 6), "GeForce RTX 3050-3090"),
    (r"rtx a(?:6000|5500|5000|4500|4000|2000)" + _LAPTOP, (8, 6), "RTX A6000/A5000/A4000"),
    (r"a(?:100|800|30)" + _DC_TAIL, (8, 0), "A100, A800, A30"),
    (r"(?:tesla )?t4" + _DC_TAIL, (7, 5), "T4"),
    (r"rtx 20[6-8]0(?: ti)?(?: super)?" + _LAPTOP, (7, 5), "GeForce RTX 2060-2080"),
    (r"quadro rtx (?:8000|6000|5000|4000)", (7, 5), "Quadro RTX 8000/6000"),
)
# Names that more than one generation has carried: refused with the choices, never guessed.
_AMBIGUOUS_GPUS = {
    "rtx 6000": "RTX PRO 6000 Blackwell (12.0), RTX 6000 Ada Generation (8.9) or Quadro RTX 6000 (7.5)",
    "rtx 5000": "RTX PRO 5000 Blackwell (12.0), RTX 5000 Ada Generation (8.9) or Quadro RTX 5000 (7.5)",
    "rtx 4000": "RTX PRO 4000 Blackwell (12.0), RTX 4000 Ada Generation (8.9) or Quadro RTX 4000 (7.5)",
}
# What the families' names look like, for "did you mean" (nvidia-smi's spellings).
GPU_EXAMPLES = (
    "RTX PRO 6000 Blackwell Workstation Edition",
    "RTX PRO 6000 Blackwell Max-Q Workstation Edition",
    "RTX PRO 6000 Blackwell Server Edition",
    "RTX PRO 5000 Blackwell",
    "RTX PRO 4500 Blackwell",
    "RTX PRO 4000 Blackwell",
    "RTX 5090",
    "RTX 5080",
    "RTX 5070 Ti",
    "RTX 5070",
    "RTX 5060 Ti",
    "RTX 5060",
    "RTX 5050",
    "GB10",
    "B200",
    "GB200",
    "B300",
    "H100 80GB HBM3",
    "H200",
    "GH200",
    "L40S",
    "L4",
    "RTX 4090",
    "RTX 6000 Ada Generation",
    "A10G",
    "RTX 3090",
    "RTX A6000",
    "A100-SXM4-80GB",
    "T4",
)


def gpu_by_name(text: str) -> tuple[int, int] | None:
    """The compute capability of a GPU named as nvidia-smi prints it (or shorter: "RTX PRO 6000", "H100")."""
    key = _norm_gpu(text)
    for pattern, cc, _family in GPU_FAMILIES:
        if re.fullmatch(pattern, key):
            return cc
    return None


def _norm_gpu(text: str) -> str:
    text = re.sub(r"[\s_-]+", " ", text.strip().lower())
    text = re.sub(r"(\d)(ti|super)\b", r"\1 \2", text)  # "RTX 5060Ti"
    return re.sub(r"^(?:nvidia )?(?:geforce )?", "", text).strip()


GPU_FORMS = "a name (RTX PRO 6000, H100, ...), an arch (sm_120, sm_90a) or a compute capability (12.0)"


def _known_cc_list() -> str:
    return ", ".join(f"{ma}.{mi}" for ma, mi in sorted(_ARCH_SUPPORT))


def _gpu_error(text: str, why: str) -> ConfigError:
    return ConfigError(
        f"--gpu {text[:40]!r}: {why}", hint=f"give {GPU_FORMS}; compute capabilities fawheels knows: {_known_cc_list()}"
    )


_DRIVER = re.compile(r"([1-9][0-9]{2})\.([0-9]{1,3})(?:\.([0-9]{1,3}))?")  # ASCII: `\d` also takes "٠"


def parse_driver(text: str) -> Version:
    """An NVIDIA driver version as nvidia-smi prints it: MAJOR.MINOR[.PATCH] with a three-digit major."""
    raw = text.strip()
    if not _DRIVER.fullmatch(raw):
        raise ConfigError(
            f"--driver {text[:40]!r}: not a driver version (NVIDIA drivers read MAJOR.MINOR[.PATCH])",
            hint="write it as nvidia-smi shows it: 580.65.06 or 570.195.03 (MAJOR.MINOR[.PATCH], three-digit major)",
        )
    return Version.parse(raw)


def parse_gpu(text: str) -> tuple[int, int]:
    """GPU as a name ("RTX PRO 6000", "H100"), an arch ("sm_120") or a compute capability ("12.0").

    Refused: a bare number ("12" could be 1.2, 12.0 or sm_12: the old reading was 1.2), and an arch or
    compute capability that no GPU fawheels knows has ("99.9", "sm_999")."""
    raw = text.strip()
    if len(raw) > 60 or not raw:
        raise _gpu_error(text, "not a GPU")
    if re.fullmatch(r"\d+", raw):
        raise _gpu_error(text, f"a bare number is ambiguous: write {raw}.0 for compute capability {raw}.0, or sm_{raw}")
    if re.fullmatch(r"\d+\.\d+", raw):
        major, minor = (int(p) for p in raw.split("."))
        if (major, minor) not in _ARCH_SUPPORT:
            raise _gpu_error(text, f"no GPU has compute capability {raw}")
        return major, minor
    if re.fullmatch(r"(sm_|compute_)\d+[af]?", raw.lower()):
        try:
            cc = Arch.parse(raw.lower()).cc
        except ValueError:
            cc = (-1, -1)
        if cc not in _ARCH_SUPPORT:
            raise _gpu_error(text, f"{raw} is not an arch of any GPU fawheels knows")
        return cc
    found = gpu_by_name(raw)
    if found is not None:
        return found
    key = _norm_gpu(raw)
    if key in _AMBIGUOUS_GPUS:
        raise _gpu_error(text, f"several generations carry that name: {_AMBIGUOUS_GPUS[key]}; write it out")
    import difflib

    examples = {_norm_gpu(e): e for e in GPU_EXAMPLES}
    close = [examples[c] for c in difflib.get_close_matches(key, list(examples), n=3)]
    hint = f" (did you mean: {', '.join(close)}?)" if close else ""
    raise ConfigError(f"unknown GPU {text!r}{hint}", hint=f"give {GPU_FORMS}")


def max_ptx_isa_of_driver(driver: Version) -> Version | None:
    """The newest PTX ISA a driver can JIT: that of the newest toolkit it supports natively."""
    supported = [tk.ptx_isa for tk in TOOLKITS if driver >= tk.min_driver]
    return max(supported) if supported else None


def known_ccs() -> list[tuple[int, int]]:
    """Compute capabilities of every arch in the table (the GPUs a SASS promise can cover)."""
    return list(_ARCH_SUPPORT)


# CUDA runtime errors a load can end in (driver_types.h); compat names them as the user will see them.
CUDA_ERRORS: dict[str, tuple[int, str]] = {
    "cudaErrorInsufficientDriver": (35, "CUDA driver version is insufficient for CUDA runtime version"),
    "cudaErrorNoKernelImageForDevice": (209, "no kernel image is available for execution on the device"),
    "cudaErrorUnsupportedPtxVersion": (222, "the provided PTX was compiled with an unsupported toolchain."),
}
