"""What happened to one target (failures are data: the CLI and the nightly turn a Result into an exit code), and
the result of a build that ran in a toolchain image, read from the wheels it left."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from fawheels._util.files import sha256_file


class Status(StrEnum):
    """A target's state in a build or a nightly (written as its value in every report)."""

    PENDING = "pending"
    OK = "ok"
    FAILED = "failed"


@dataclass
class Result:
    """What happened to one target: failures are data, the CLI turns them into an exit code."""

    target: str
    status: Status = Status.PENDING
    stage: str = ""
    error: str = ""
    exit_code: int = 0
    wheel: Path | None = None
    sha256: str = ""
    size: int = 0
    wall_s: float = 0.0
    compile_wall_s: float = 0.0
    jobs: int = 0
    job_times: dict[str, float] = field(default_factory=dict)
    jobs_reason: str = ""  # why that many concurrent jobs (cores, memory: measured or assumed)
    schedule: list[str] = field(default_factory=list)  # kernel units in the order ninja was given them
    job_stats: dict[str, dict[str, Any]] = field(default_factory=dict)  # output -> wall, CPU, peak RSS
    stages_s: dict[str, float] = field(default_factory=dict)  # wall seconds per stage, in pipeline order
    reused: list[str] = field(default_factory=list)  # work skipped because an earlier build's result held
    slowest: tuple[str, float] | None = None  # the compile job that took longest, and its seconds
    predicted_compile_s: float = 0.0  # the planner's compile wall for this machine, before it ran
    log: Path | None = None  # the build's log file (every command, its output, the schedule)

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "status": self.status.value,
            "stage": self.stage,
            "error": self.error,
            "wheel": str(self.wheel) if self.wheel else None,
            "sha256": self.sha256,
            "size": self.size,
            "wall_s": round(self.wall_s, 1),
            "compile_wall_s": round(self.compile_wall_s, 1),
            "jobs": self.jobs,
            "jobs_reason": self.jobs_reason,
            "schedule": self.schedule,
            "job_times_s": self.job_times,
            "job_stats": self.job_stats,
            "stages_s": {k: round(v, 2) for k, v in self.stages_s.items()},
            "reused": self.reused,
            "slowest_job": {"unit": self.slowest[0], "wall_s": self.slowest[1]} if self.slowest else None,
            "predicted_compile_s": round(self.predicted_compile_s, 1),
            "log": str(self.log) if self.log else None,
        }

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        """Time one stage of the pipeline into stages_s (accumulating, so a stage may be entered twice)."""
        start = time.monotonic()
        try:
            yield
        finally:
            self.stages_s[stage] = self.stages_s.get(stage, 0.0) + time.monotonic() - start


def wheels_in(dist: Path) -> dict[str, tuple[int, int]]:
    """Each wheel in dist/ with what tells a rewritten one apart (inode, mtime): a build places its wheel by
    rename, so even a byte-identical rebuild shows as new."""
    found = {}
    for wheel in sorted(dist.glob("*.whl")) if dist.is_dir() else ():
        st = wheel.stat()
        found[wheel.name] = (st.st_ino, st.st_mtime_ns)
    return found


def container_result(
    target_id: str, code: int, dist: Path, before: Mapping[str, tuple[int, int]], wall_s: float
) -> Result:
    """The one rule for a target built out of sight (inside its toolchain image), for `build` and the nightly
    alike: it passed when the build exited 0 and left exactly one wheel of its own in dist/ (new or rewritten
    since `before`); its log was streamed above."""
    mine = [dist / name for name, mark in wheels_in(dist).items() if before.get(name) != mark]
    if code != 0 or len(mine) != 1:
        why = f"container build exited {code}" if code else f"container build left {len(mine)} wheels in {dist}"
        return Result(target_id, Status.FAILED, "container", f"{why}; its log is above", code or 1, wall_s=wall_s)
    return Result(
        target_id,
        Status.OK,
        "done",
        wheel=mine[0],
        sha256=sha256_file(mine[0]),
        size=mine[0].stat().st_size,
        wall_s=wall_s,
    )
