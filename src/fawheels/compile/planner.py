"""What a build compiles and how many jobs at once, decided once for the build and its dry run. Pure.

Split-KV units may be compiled whole or as a dispatch unit and parts (patch 0005, execute.SPLITKV_PARTS). The
parts shorten a build whose wall is one split-KV unit (16 cores: the other cores idle while it compiles), but
each part parses the torch, cutlass and FA2 headers again (~45 CPU s per extra job on 2 cores,
bench/splitkv-parts.md), so where the wall follows the CPU sum (few cores) they only add work. `choose` predicts
the compile wall of both ways from the per-unit times (measured by earlier builds where there are any, else the
static estimates scaled to what was measured) and the job count each way allows, and takes the parts only when
they predict a shorter wall.
"""

from __future__ import annotations

import heapq
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from fawheels.compile import jobstats

# The parts must predict at least this much less wall than the whole units: a prediction within a few per
# cent is noise, and whole units are the cheaper build (less CPU, fewer jobs to log).
MIN_GAIN = 0.05


def predicted_wall(seconds: Mapping[str, float], slots: int, order: Sequence[str] | None = None) -> float:
    """The compile wall of `seconds`' jobs started in `order` (default: longest first, as the build schedules
    them) on `slots` job slots, each job started on the first free slot (what ninja -j does)."""
    units = list(order) if order is not None else jobstats.schedule(list(seconds), seconds)
    free = [0.0] * max(1, slots)
    for unit in units:
        start = heapq.heappop(free)
        heapq.heappush(free, start + seconds[unit])
    return max(free)


def estimates(
    units: Sequence[str], measured: Callable[[str], float | None], n_archs: int
) -> tuple[dict[str, float], int]:
    """Seconds per unit and how many of them were measured: a measurement where there is one; else the static
    estimate, scaled by how the measured units compare with their own static estimates (the static figures are
    one core of a 16-core server; a laptop core may be half as fast)."""
    found = {u: m for u in units if (m := measured(u)) is not None}
    static = {u: jobstats.static_estimate_s(u, n_archs) for u in units}
    scale = statistics.median(found[u] / static[u] for u in found) if found else 1.0
    return {u: found.get(u, static[u] * scale) for u in units}, len(found)


@dataclass(frozen=True)
class Way:
    """One way to compile the target: its units, their seconds, the jobs at once and the predicted wall."""

    parts: bool
    units: tuple[str, ...]  # kernel units, link order
    seconds: Mapping[str, float]  # every compile job: kernel units and the host units (flash_api.cpp, …)
    jobs: int
    jobs_reason: str
    measured: int  # jobs whose seconds were measured
    cpus: int
    jobs_detail: str = ""  # choose_jobs_measured's whole reason (cores, memory, measured or assumed peaks)

    @property
    def wall_s(self) -> float:
        return predicted_wall(self.seconds, min(self.jobs, self.cpus))


@dataclass(frozen=True)
class Choice:
    """The way the build takes, the other one it weighed (None: the source cannot be split), and why."""

    way: Way
    other: Way | None

    @property
    def sentence(self) -> str:
        """The choice in one sentence, for the build's output."""
        way, other = self.way, self.other
        jobs = f"{way.jobs} job{'s' if way.jobs != 1 else ''} at once ({way.jobs_reason})"
        basis = f"{way.measured} of {len(way.seconds)} job times measured" if way.measured else "no job timed yet"
        if other is None:
            return f"{jobs}; predicted compile {_minutes(way.wall_s)} ({basis})"
        how, alt = ("in parts", "whole") if way.parts else ("whole", "in parts")
        return (
            f"{jobs}; split-KV units {how}: predicted compile {_minutes(way.wall_s)} "
            f"({alt}: {_minutes(other.wall_s)}; {basis})"
        )


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


def choose(whole: Way, parts: Way | None) -> Choice:
    """The parts only when they predict a shorter wall by at least MIN_GAIN."""
    if parts is None:
        return Choice(whole, None)
    if parts.wall_s < whole.wall_s * (1 - MIN_GAIN):
        return Choice(parts, whole)
    return Choice(whole, parts)


def _short_reason(why: str, cpus: int) -> str:
    """choose_jobs_measured's reason, cut to what a person needs to see at the start of a build."""
    if "set by" in why:
        return "set by --jobs/MAX_JOBS"
    if "limited by memory" in why:
        usable = why.split(" usable")[0].rsplit(", ", 1)[-1]
        return f"limited by memory: {usable} usable"
    if "limited by cores" in why:
        return f"limited by the {cpus} core{'s' if cpus != 1 else ''}"
    return "one per job"


def way(
    parts: bool,
    units: Sequence[str],
    host_units: Sequence[str],
    *,
    measured_s: Callable[[str], float | None],
    measured_peak: Callable[[str], int | None],
    n_archs: int,
    cpus: int,
    mem_available: int,
    override: int | None,
    fallback: int,
) -> Way:
    """One way to compile: its job count (memory and cores, jobstats.choose_jobs_measured) and seconds."""
    jobs_all = [*units, *host_units]
    seconds, measured = estimates(jobs_all, measured_s, n_archs)
    jobs, why = jobstats.choose_jobs_measured(
        cpus, mem_available, {u: measured_peak(u) for u in jobs_all}, override, fallback=fallback
    )
    return Way(parts, tuple(units), seconds, jobs, _short_reason(why, cpus), measured, cpus, why)
