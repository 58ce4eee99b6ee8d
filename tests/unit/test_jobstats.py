"""Measured compile jobs: the launcher (run for real on a small child process), the history, and the pure
choices made from it (how many jobs fit in memory, which to start first)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fawheels._util.errors import BuildError
from fawheels.compile import jobstats
from fawheels.compile.jobstats import GB, JobRecord, choose_jobs_measured, schedule, static_estimate_s, stats_key

UNITS = [
    "flash_fwd_hdim128_bf16_causal_sm80.cu",
    "flash_fwd_hdim128_bf16_sm80.cu",
    "flash_fwd_split_hdim128_bf16_causal_sm80.cu",
    "flash_fwd_split_hdim128_bf16_sm80.cu",
]


def record(output: str, wall: float = 10.0, peak: int = GB, chained: str = "", code: int = 0) -> JobRecord:
    return JobRecord(
        output=output,
        exit=code,
        wall_s=wall,
        cpu_s=wall,
        peak_rss_bytes=peak,
        max_process_rss_bytes=peak,
        chained=chained,
    )


@pytest.mark.tools
def test_launcher_records_wall_cpu_and_the_peak_of_the_whole_process_tree(tmp_path: Path) -> None:
    launcher = jobstats.write_launcher(tmp_path / "tools" / "fawheels-job.py")
    # The compiler stand-in: a child that itself starts a grandchild holding 300 MB for a second.
    grandchild = "b = bytearray(300 * 1024 * 1024); import time; time.sleep(1.0)"
    child = f"import subprocess, sys; sys.exit(subprocess.call([sys.executable, '-c', {grandchild!r}]))"
    out = tmp_path / "CMakeFiles" / "x.dir" / "flash_fwd_hdim128_bf16_sm80.cu.o"
    proc = subprocess.run(
        [sys.executable, str(launcher), str(tmp_path / "records"), sys.executable, "-c", child, "-o", str(out)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    records = jobstats.read_records(tmp_path / "records")
    rec = records["flash_fwd_hdim128_bf16_sm80.cu"]
    assert rec.output == "flash_fwd_hdim128_bf16_sm80.cu.o" and rec.exit == 0
    assert rec.peak_rss_bytes >= 300 * 1024 * 1024  # the grandchild's memory counts
    assert rec.max_process_rss_bytes >= 300 * 1024 * 1024
    assert rec.wall_s >= 1.0 and rec.cpu_s > 0
    assert rec.memory_measured


@pytest.mark.tools
def test_launcher_passes_the_compiler_exit_code_through(tmp_path: Path) -> None:
    launcher = jobstats.write_launcher(tmp_path / "fawheels-job.py")
    proc = subprocess.run(
        [
            sys.executable,
            str(launcher),
            str(tmp_path / "r"),
            sys.executable,
            "-c",
            "import sys; sys.exit(3)",
            "-o",
            "a.cpp.o",
        ]
    )
    assert proc.returncode == 3
    assert jobstats.read_records(tmp_path / "r")["a.cpp"].exit == 3


def test_unreadable_records_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "half.cu.o.json").write_text('{"output": "half.cu.o"')
    (tmp_path / "ok.cu.o.json").write_text(json.dumps(record("ok.cu.o").to_json()))
    assert list(jobstats.read_records(tmp_path)) == ["ok.cu"]


def test_history_keeps_the_last_runs_and_ignores_what_it_could_not_see(tmp_path: Path) -> None:
    path = tmp_path / "history.json"
    key = stats_key("13.0.88", ["sm_120"], UNITS[0], ["-O3", "--threads=1", "--split-compile=4"])
    assert key == "nvcc 13.0.88 | sm_120 | --threads=1 --split-compile=4 | " + UNITS[0]
    for i in range(7):
        jobstats.remember({key: record(UNITS[0] + ".o", wall=100.0 + i, peak=(4 + i % 2) * GB)}, path)
    jobstats.remember({key: record(UNITS[0] + ".o", wall=1.0, peak=1, chained="sccache")}, path)  # a cache hit
    jobstats.remember({key: record(UNITS[0] + ".o", wall=2.0, code=1)}, path)  # a failed job: not kept
    history = jobstats.load_history(path)
    assert len(history[key]) == jobstats.HISTORY_RUNS
    assert jobstats.measured_seconds(history, key) == 106.0  # the latest run that really compiled
    assert jobstats.measured_peak(history, key) == 5 * GB  # the largest seen
    assert jobstats.measured_peak(history, "other") is None
    (tmp_path / "broken.json").write_text("{")
    assert jobstats.load_history(tmp_path / "broken.json") == {}


def test_schedule_is_longest_first_with_a_static_estimate_before_any_measurement() -> None:
    static = {u: static_estimate_s(u, 1) for u in UNITS}
    assert schedule(UNITS, static) == [UNITS[3], UNITS[2], UNITS[1], UNITS[0]]
    measured = {**static, UNITS[0]: 999.0}  # a measurement overrides the estimate
    assert schedule(UNITS, measured)[0] == UNITS[0]
    assert schedule(UNITS, dict.fromkeys(UNITS, 5.0)) == sorted(UNITS)  # ties: stable by name
    assert static_estimate_s(UNITS[3], 2) == 2 * static_estimate_s(UNITS[3], 1)


@pytest.mark.parametrize(
    ("cpus", "mem_gb", "peaks_gb", "expected", "limit"),
    [
        (16, 128, [None] * 9, 9, "units"),  # nothing measured: 5 GB each, all 9 fit
        (16, 24, [None] * 9, 4, "memory"),  # 21.6 GB usable / 5 GB
        (2, 24, [None] * 9, 2, "cores"),
        (2, 3, [None] * 9, 1, "memory"),  # never fewer than one
        (16, 24, [2.0] * 9, 9, "units"),  # measured 2 GB (+15 %): all fit where the guess allowed 4
        (16, 24, [8.0, 8.0, 1.0, 1.0, 1.0], 4, "memory"),  # the four largest fit (20.7 of 21.6 GB)
    ],
)
def test_job_count_follows_measured_peaks(
    cpus: int, mem_gb: int, peaks_gb: list[float | None], expected: int, limit: str
) -> None:
    peaks = {f"u{i}": (int(p * GB) if p else None) for i, p in enumerate(peaks_gb)}
    jobs, why = choose_jobs_measured(cpus, mem_gb * GB, peaks, None)
    assert jobs == expected
    assert f"limited by {limit}" in why
    assert ("nothing measured" in why) == all(p is None for p in peaks_gb)


def test_jobs_override_wins_and_must_be_positive() -> None:
    assert choose_jobs_measured(2, 3 * GB, {"u": None}, 5) == (5, "5 job(s): set by --jobs/MAX_JOBS")
    with pytest.raises(BuildError):
        choose_jobs_measured(2, 24 * GB, {}, 0)


def test_unmeasured_multi_arch_jobs_assume_more_memory() -> None:
    jobs, why = choose_jobs_measured(16, 24 * GB, dict.fromkeys(UNITS), None, fallback=4 * 5 * GB)
    assert jobs == 1 and "20 GB per job assumed" in why
