"""Measured compile jobs: what each nvcc/c++ job cost (wall, CPU, peak memory), and what that implies for
the next build of the same unit, arch set and toolkit (how many jobs fit in memory, which to start first).

How a job is measured: the build puts a tiny stdlib-only launcher (`LAUNCHER_SOURCE`, written into the build
directory) in front of every compiler call (CMake's compiler launcher). It runs the compiler as its child,
samples the summed RSS of the child's whole process tree (nvcc runs cudafe++, cicc, ptxas, fatbinary and the
host compiler as children, several at once with --threads), takes the CPU time and the
largest single process's peak from getrusage(RUSAGE_CHILDREN), and writes one JSON record per output file.

Pure: `JobRecord`, `stats_key`, `static_estimate_s`, `schedule`, `choose_jobs_measured`. I/O: `read_records`
(the launcher's files), `load_history` / `remember` (the cache file, `<cache>/jobstats/history.json`).
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fawheels._util.files import write_atomic
from fawheels._util.paths import cache_root

GB = 1024**3
# Nothing measured yet for a unit: FA2 forward units peaked at 4.0-4.9 GB in nvcc 13.0 (single process); round up.
FALLBACK_JOB_BYTES = 5 * GB
# Measured peaks vary run to run (a few %); plan with this much on top of the largest one seen.
PEAK_MARGIN = 1.15
# Leave this share of the memory available at the start for everything else on the machine.
MEMORY_RESERVE = 0.10
# What each extra job of a unit in parts costs besides its share of the kernels, on the static estimates' scale:
# ~25-30 s on the 16-core GPU machine (docs/build-performance.md); 42-60 CPU s on 2 cores (bench/splitkv-parts.md).
PART_OVERHEAD_S = 30.0
HISTORY_RUNS = 5  # per key: the last few runs (time: the latest; memory: the largest of them)

# The launcher, as a standalone script (only the standard library: it starts once per compile job).
# argv: RECORD_DIR COMPILER ARGS...; the record is named after the compiler's `-o` output.
LAUNCHER_SOURCE = r'''"""Written by fawheels (jobstats.py): runs one compile job, records its wall, CPU and peak RSS."""
import json, os, resource, subprocess, sys, threading, time


def tree_rss(root):
    """Summed RSS (bytes) of `root` and all its descendants, from /proc."""
    parents, rss = {}, {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry)
        parents[pid] = int(fields[1])
        rss[pid] = int(fields[21]) * page
    total, todo, seen = 0, [root], set()
    children = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += rss.get(pid, 0)
        todo.extend(children.get(pid, ()))
    return total


def main():
    record_dir, cmd = sys.argv[1], sys.argv[2:]
    output = cmd[cmd.index("-o") + 1] if "-o" in cmd[:-1] else (cmd[-1] if cmd else "job")
    start = time.monotonic()
    os.makedirs(record_dir, exist_ok=True)
    running = os.path.join(record_dir, os.path.basename(output) + ".running")  # read by the build's status line
    with open(running, "w") as fh:
        fh.write(repr(time.time()))
    proc = subprocess.Popen(cmd)
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.wait(0.2):
            peak[0] = max(peak[0], tree_rss(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        code = proc.wait()
    except KeyboardInterrupt:
        proc.wait()
        os.remove(running)
        raise
    done.set()
    sampler.join()
    wall = time.monotonic() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    record = {"output": os.path.basename(output), "exit": code, "wall_s": round(wall, 2),
              "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
              "peak_rss_bytes": max(peak[0], usage.ru_maxrss * 1024),
              "max_process_rss_bytes": usage.ru_maxrss * 1024,
              "chained": os.path.basename(cmd[0]) if cmd and os.path.basename(cmd[0]) in ("sccache", "ccache") else ""}
    os.makedirs(record_dir, exist_ok=True)
    tmp = os.path.join(record_dir, f".{record['output']}.{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        json.dump(record, fh)
    os.replace(tmp, os.path.join(record_dir, record["output"] + ".json"))
    os.remove(running)
    sys.exit(code)


main()
'''


@dataclass(frozen=True)
class JobRecord:
    """One compile job as the launcher measured it."""

    output: str  # object file name, e.g. flash_fwd_hdim128_bf16_sm80.cu.o
    exit: int
    wall_s: float
    cpu_s: float
    peak_rss_bytes: int  # summed RSS of the job's process tree, sampled every 0.2 s (or the largest process)
    max_process_rss_bytes: int  # the largest single process (getrusage)
    chained: str = ""  # "sccache"/"ccache": compiled by a cache server, out of the launcher's sight

    @property
    def unit(self) -> str:
        """The source file name: `flash_fwd_…_sm80.cu` for `flash_fwd_…_sm80.cu.o`."""
        return self.output.removesuffix(".o")

    @property
    def memory_measured(self) -> bool:
        """Through a cache server the compiler is not our child: its memory was not seen."""
        return not self.chained

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> JobRecord:
        return cls(
            output=str(doc["output"]),
            exit=int(doc["exit"]),
            wall_s=float(doc["wall_s"]),
            cpu_s=float(doc["cpu_s"]),
            peak_rss_bytes=int(doc["peak_rss_bytes"]),
            max_process_rss_bytes=int(doc["max_process_rss_bytes"]),
            chained=str(doc.get("chained", "")),
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def stats_key(nvcc_version: str, archs: Sequence[str], unit: str, flags: Sequence[str]) -> str:
    """What a measurement is valid for: the same unit, compiled for the same archs by the same nvcc with the
    same parallelism flags (--threads, --split-compile change time and memory) and the same features left
    out (-DFLASHATTENTION_DISABLE_*: fewer kernels per unit)."""
    parallel = [f for f in flags if f.startswith(("--split-compile", "--threads"))]
    left_out = sorted(f for f in flags if f.startswith("-DFLASHATTENTION_DISABLE_"))
    return f"nvcc {nvcc_version} | {'+'.join(archs)} | {' '.join([*parallel, *left_out])} | {unit}"


def static_estimate_s(unit: str, n_archs: int) -> float:
    """Compile seconds on one core of the GPU machine, before anything was measured: FA2 forward units measured
    with nvcc 13.0 for sm_90 (bench/gpu-smoke.md): split-KV non-causal ~305 s, split-KV causal ~187 s,
    non-causal ~148 s, causal ~100 s; flash_api.cpp ~20 s; a split-KV part a quarter of its unit plus
    PART_OVERHEAD_S of header parsing and host code of its own. The planner scales them to what was measured
    (planner.estimates) and weighs whole units against parts with them."""
    if not unit.endswith(".cu"):
        return 20.0
    split, causal = "_split_" in unit, "_causal" in unit
    base = {(True, False): 305.0, (True, True): 187.0, (False, False): 148.0, (False, True): 100.0}[(split, causal)]
    if split and "_part_split" in unit:  # one of a split-KV unit's four equal parts (build.SPLITKV_PARTS)
        return base / 4 * max(1, n_archs) + PART_OVERHEAD_S
    elif split and unit.endswith("_dispatch.cu"):  # its dispatch and combine kernels only
        base = 20.0
    return base * max(1, n_archs)


def schedule(units: Sequence[str], seconds: Mapping[str, float]) -> list[str]:
    """Longest first (ninja starts ready jobs in build-file order), ties by name so the order is stable."""
    return sorted(units, key=lambda u: (-seconds[u], u))


def choose_jobs_measured(
    cpus: int,
    mem_available: int,
    peaks: Mapping[str, int | None],
    override: int | None,
    fallback: int = FALLBACK_JOB_BYTES,
) -> tuple[int, str]:
    """Concurrent compile jobs and why: the most jobs such that the largest peaks of that many units, as
    measured by earlier builds (+15 %), fit in the available memory (less a 10 % reserve); a unit never
    measured counts as `fallback` (FALLBACK_JOB_BYTES per arch compiled at once). Never more than the cores
    or the units."""
    if override is not None:
        if override < 1:
            from fawheels._util.errors import BuildError

            raise BuildError(f"jobs must be >= 1, got {override}")
        return override, f"{override} job(s): set by --jobs/MAX_JOBS"
    budget = int(mem_available * (1 - MEMORY_RESERVE))
    need = sorted((int(p * PEAK_MARGIN) if p else fallback for p in peaks.values()), reverse=True)
    measured = sum(1 for p in peaks.values() if p)
    jobs, used = 0, 0
    for n in need[: max(1, cpus)]:
        if used + n > budget:
            break
        jobs, used = jobs + 1, used + n
    jobs = max(1, jobs)
    limit = "memory" if jobs < min(cpus, len(need)) else ("cores" if cpus < len(need) else "units")
    basis = (
        f"peaks measured for {measured} of {len(need)} unit(s) (+{PEAK_MARGIN - 1:.0%})"
        if measured
        else f"nothing measured yet: {fallback / GB:.0f} GB per job assumed"
    )
    worst = need[0] / GB if need else 0.0
    return jobs, (
        f"{jobs} job(s), limited by {limit}: {cpus} core(s), {len(need)} unit(s), "
        f"{budget / GB:.1f} GB usable of {mem_available / GB:.1f} GB available; largest job "
        f"{worst:.1f} GB ({basis})"
    )


# ----------------------------------------------------------------------------- I/O


def write_launcher(path: Path) -> Path:
    """The launcher script, rewritten only when its text changed (its path is part of every compile command)."""
    if not path.exists() or path.read_text() != LAUNCHER_SOURCE:
        write_atomic(path, LAUNCHER_SOURCE)
    return path


def read_records(record_dir: Path) -> dict[str, JobRecord]:
    """The launcher's records, by unit (source file name)."""
    records: dict[str, JobRecord] = {}
    if not record_dir.is_dir():
        return records
    for path in sorted(record_dir.glob("*.json")):
        try:
            record = JobRecord.from_json(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError):
            continue  # a half-written or foreign file is not a measurement
        records[record.unit] = record
    return records


def running_jobs(record_dir: Path, now: float) -> dict[str, float]:
    """The jobs the launcher is running now, by unit, with their seconds so far (`now`: time.time())."""
    found: dict[str, float] = {}
    for path in record_dir.glob("*.running") if record_dir.is_dir() else ():
        try:
            found[path.name.removesuffix(".running").removesuffix(".o")] = max(0.0, now - float(path.read_text()))
        except (OSError, ValueError):
            continue  # just finished, or being written
    return found


def record_seconds(record_dir: Path, output: str) -> float | None:
    """The wall seconds the launcher recorded for one output (`x.cu.o`), or None."""
    try:
        return JobRecord.from_json(json.loads((record_dir / f"{output}.json").read_text())).wall_s
    except (OSError, ValueError, KeyError, TypeError):
        return None


def history_path() -> Path:
    return cache_root() / "jobstats" / "history.json"


def load_history(path: Path | None = None) -> dict[str, list[dict[str, Any]]]:
    path = path or history_path()
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in doc.items() if isinstance(v, list)} if isinstance(doc, dict) else {}


def remember(entries: Mapping[str, JobRecord], path: Path | None = None) -> None:
    """Add successful, fully measured jobs to the history (key -> last HISTORY_RUNS records), under a lock."""
    path = path or history_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with (path.parent / "history.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        doc = load_history(path)
        for key, record in entries.items():
            if record.exit != 0:
                continue
            doc[key] = ([*doc.get(key, []), record.to_json()])[-HISTORY_RUNS:]
        write_atomic(path, json.dumps(doc, indent=1, sort_keys=True) + "\n")


def measured_seconds(history: Mapping[str, list[dict[str, Any]]], key: str) -> float | None:
    """The latest wall time of a job that really compiled (a cache hit says nothing about a miss)."""
    runs = [r for r in history.get(key, []) if not r.get("chained")]
    return float(runs[-1]["wall_s"]) if runs else None


def measured_peak(history: Mapping[str, list[dict[str, Any]]], key: str) -> int | None:
    """The largest peak RSS among the remembered runs that the launcher could see."""
    peaks = [int(r["peak_rss_bytes"]) for r in history.get(key, []) if not r.get("chained")]
    return max(peaks) if peaks else None
