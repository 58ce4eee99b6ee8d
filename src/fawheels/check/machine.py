"""The GPU and driver a prediction is for: `--gpu`/`--driver` when given, else what `nvidia-smi` reports.

`nvidia-smi` runs through the subprocess gateway (`_util/runner.call`); parsing its answer is pure, so tests give
it the text a machine prints. The first GPU is the one judged (a machine of mixed GPUs names one with --gpu).
"""

from __future__ import annotations

from dataclasses import dataclass

from fawheels._util import gpu as nvidia_smi
from fawheels._util.errors import ConfigError, ToolchainError, UsageError
from fawheels.matrix import cudafacts as cf
from fawheels.matrix.cudafacts import Version, parse_driver

FIELDS = ("name", "compute_cap", "driver_version")


@dataclass(frozen=True)
class Smi:
    """One GPU as nvidia-smi reports it."""

    name: str
    cc: tuple[int, int]
    driver: str


@dataclass(frozen=True)
class Machine:
    cc: tuple[int, int]
    driver: Version
    name: str | None  # the GPU's name when nvidia-smi gave it
    source: str  # "flags" | "nvidia-smi" | "flags+nvidia-smi"

    @property
    def label(self) -> str:
        said = self.name or ""
        return f"{said}, from nvidia-smi" if self.source != "flags" and said else said


def parse_nvidia_smi(text: str) -> list[Smi]:
    """`nvidia-smi --query-gpu=name,compute_cap,driver_version --format=csv,noheader`: one line per GPU. A
    compute capability nvidia-smi cannot say ([N/A] on old drivers) comes from the name."""
    gpus = []
    try:
        found = nvidia_smi.rows(text, FIELDS)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    for name, cc_text, driver in found:
        try:
            major, minor = (int(x) for x in cc_text.split("."))
            cc = (major, minor)
        except ValueError:
            cc = cf.parse_gpu(name)
        gpus.append(Smi(name, cc, str(parse_driver(driver))))
    return gpus


def query(runner: nvidia_smi.Runner | None = None) -> list[Smi]:
    """The machine's GPUs, or [] where nvidia-smi is missing or fails (no GPU, no driver loaded)."""
    try:
        return parse_nvidia_smi(nvidia_smi.query(FIELDS, runner))
    except nvidia_smi.NvidiaSmiError:
        return []


def present(command: str) -> Smi:
    """GPU 0, for a command that runs on it (smoke, first-call); a ToolchainError where there is none."""
    found = query()
    if not found:
        raise ToolchainError("no NVIDIA GPU here (nvidia-smi failed)", hint=f"run {command} on a GPU machine")
    return found[0]


def resolve(gpu: str | None, driver: str | None, runner: nvidia_smi.Runner | None = None) -> Machine:
    """--gpu/--driver as given; what is missing comes from nvidia-smi, or a refusal that says what to pass."""
    if gpu is not None and driver is not None:
        return Machine(cf.parse_gpu(gpu), parse_driver(driver), gpu.strip(), "flags")
    found = query(runner)
    if not found:
        missing = " and ".join(f for f, v in (("--gpu", gpu), ("--driver", driver)) if v is None)
        raise UsageError(
            f"{missing}: not given, and nvidia-smi is not here (or found no GPU) to say",
            hint="pass the GPU and driver of the machine that will run it, e.g. "
            "--gpu 'RTX PRO 6000' --driver 570.195.03 (nvidia-smi there prints both)",
        )
    first = found[0]
    return Machine(
        cf.parse_gpu(gpu) if gpu is not None else first.cc,
        parse_driver(driver) if driver is not None else Version.parse(first.driver),
        gpu.strip() if gpu is not None else first.name,
        "nvidia-smi" if gpu is None and driver is None else "flags+nvidia-smi",
    )
