"""What a person watching a compile sees, from ninja's lines and the job meter's files. Pure.

- one line per finished job: `[n/N] unit 148 s` (N is ninja's own count of the jobs it runs: kernel units,
  host units, the link);
- while nothing finishes, a status line now and then naming the running jobs and the time left: the planner's
  per-job seconds, scaled by how the jobs finished so far compared with their estimates, played out on the
  build's job slots (longest first, as ninja starts them);
- at the end, the slowest job by name.

`Progress` is pure; `Watch` feeds it from ninja's output and the job meter's files and prints its lines.
"""

from __future__ import annotations

import heapq
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from fawheels.compile import jobstats

NINJA_LINE = re.compile(r"^\[(\d+)/(\d+)\]\s+(.*)$")
SHOWN_RUNNING = 3  # running jobs named in a status line; the rest are counted


def ninja_step(line: str) -> tuple[int, int, str] | None:
    """`[3/26] Building CUDA object …/units/flash_fwd_hdim128_bf16_sm80.cu.o` -> (3, 26, the unit's file name).
    In a pipe ninja prints a job's line when it finishes, so `n` counts finished jobs. None: not ninja's."""
    m = NINJA_LINE.match(line)
    if m is None:
        return None
    what = m.group(3).strip()
    if what.startswith("Linking"):
        name = "link " + PurePosixPath(what.split()[-1]).name
    elif what.startswith("Building") and what.endswith(".o"):
        name = PurePosixPath(what.split()[-1]).name.removesuffix(".o")
    else:
        name = what
    return int(m.group(1)), int(m.group(2)), name


def clock(seconds: float) -> str:
    """148 -> '2:28'; 3725 -> '1:02:05'."""
    s = max(0, round(seconds))
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{max(0, seconds):.0f} s"


@dataclass
class Progress:
    """The compile as ninja reports it. `order`: the jobs in the order ninja starts them; `estimates`: the
    planner's seconds per job; `slots`: jobs at once; `total`: the jobs ninja runs (its N, once it says)."""

    order: Sequence[str]
    estimates: Mapping[str, float]
    slots: int
    total: int
    finished: dict[str, float | None] = field(default_factory=dict)
    done: int = 0

    def finish(self, n: int, total: int, name: str, seconds: float | None) -> str:
        """The line for a finished job."""
        self.done, self.total = n, total
        self.finished[name] = seconds
        return f"[{n}/{total}] {name}" + (f" {seconds:.0f} s" if seconds is not None else "")

    def correction(self) -> float:
        """Measured over estimated seconds of the jobs finished so far (1 before any), within 0.25-4."""
        pairs = [(s, self.estimates[u]) for u, s in self.finished.items() if s and self.estimates.get(u)]
        if not pairs:
            return 1.0
        return min(4.0, max(0.25, sum(s for s, _ in pairs) / sum(e for _, e in pairs)))

    def time_left(self, running: Mapping[str, float]) -> float:
        """Seconds until the last job ends: each running job's estimate less its elapsed time (at least a tenth
        of it: it has overrun), then the jobs not started, longest first, on the first free slot."""
        c = self.correction()
        est = {u: c * self.estimates.get(u, 0.0) for u in running}
        left = [max(est[u] - t, 0.1 * est[u]) for u, t in running.items()]
        free = sorted(left + [0.0] * max(0, self.slots - len(left)))
        heapq.heapify(free)
        for unit in self.order:
            if unit in self.finished or unit in running:
                continue
            heapq.heappush(free, heapq.heappop(free) + c * self.estimates.get(unit, 0.0))
        return max(free) if free else 0.0

    def status(self, running: Mapping[str, float], elapsed: float) -> str:
        """`  … 12:30: 5/26 done; running a 4:10, b 1:02 (+3 more); about 14 min left`"""
        longest = sorted(running.items(), key=lambda kv: (-kv[1], kv[0]))
        names = ", ".join(f"{u} {clock(t)}" for u, t in longest[:SHOWN_RUNNING])
        more = f" (+{len(longest) - SHOWN_RUNNING} more)" if len(longest) > SHOWN_RUNNING else ""
        now = f"running {names}{more}" if running else "waiting for ninja"
        left = minutes(self.time_left(running))
        return f"  … {clock(elapsed)}: {self.done}/{self.total} done; {now}; about {left} left"

    def slowest(self) -> tuple[str, float] | None:
        timed = [(u, s) for u, s in self.finished.items() if s is not None]
        return max(timed, key=lambda us: (us[1], us[0])) if timed else None


class Watch:
    """Feeds a Progress from ninja's lines (`on_line`) and, from a thread, prints a status line when nothing
    finished for `period` s (the period grows by half each time, up to `max_period`, so a long job costs a CI
    log a few lines, not one every 30 s). `record_dir`: the job meter's files (jobstats.py), which give each
    finished job's seconds and the running jobs."""

    def __init__(
        self,
        progress: Progress,
        record_dir: Path,
        *,
        show: Callable[[str], None],
        other: Callable[[str], None],
        period: float = 60.0,
        max_period: float = 300.0,
        tick: float = 5.0,
    ) -> None:
        self.progress, self.record_dir, self.show, self.other = progress, record_dir, show, other
        self.base_period, self.period, self.max_period, self.tick = period, period, max_period, tick
        self.start = self.last = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def on_line(self, line: str) -> None:
        step = ninja_step(line)
        if step is None:
            self.other(line)  # a compiler's warnings, ninja's own notes: the log file
            return
        n, total, name = step
        seconds = jobstats.record_seconds(self.record_dir, f"{name}.o") if not name.startswith("link ") else None
        self.show(self.progress.finish(n, total, name, seconds))
        self.last, self.period = time.monotonic(), self.base_period

    def status_now(self) -> str:
        running = jobstats.running_jobs(self.record_dir, time.time())
        return self.progress.status(running, time.monotonic() - self.start)

    def _loop(self) -> None:
        while not self._stop.wait(self.tick):
            if time.monotonic() - self.last >= self.period:
                self.show(self.status_now())
                self.last, self.period = time.monotonic(), min(self.period * 1.5, self.max_period)

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
