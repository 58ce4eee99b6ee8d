"""A build a person can watch (issue 23): one line per finished job with ninja's count, a status line naming the
running jobs and the time left, the slowest job by name. Fed with ninja's lines and fake job-meter files."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from fawheels.compile import progress
from fawheels.compile.progress import Progress, Watch, ninja_step

UNITS = ["split_nc.cu", "fwd_nc.cu", "fwd_c.cu", "flash_api.cpp"]
EST = {"split_nc.cu": 300.0, "fwd_nc.cu": 150.0, "fwd_c.cu": 100.0, "flash_api.cpp": 20.0}
CUDA = "[{n}/6] Building CUDA object CMakeFiles/fa_unit_{n}.dir/tmp/fawheels-build/t/units/{u}.o"


def test_ninjas_lines_name_the_unit_and_its_count() -> None:
    assert ninja_step(CUDA.format(n=3, u="fwd_c.cu")) == (3, 6, "fwd_c.cu")
    assert ninja_step("[5/6] Building CXX object CMakeFiles/fa.dir/src/flash_api.cpp.o") == (5, 6, "flash_api.cpp")
    assert ninja_step("[6/6] Linking CXX shared module _C.cpython-311-x86_64-linux-gnu.so") == (
        6,
        6,
        "link _C.cpython-311-x86_64-linux-gnu.so",
    )
    assert ninja_step("nvcc warning : something") is None


def test_time_left_plays_the_estimates_corrected_by_what_finished_on_the_slots() -> None:
    p = Progress(UNITS, EST, slots=2, total=6)
    assert p.time_left({}) == 300  # split_nc on one slot; 150 + 100 + 20 on the other
    p.finish(1, 6, "fwd_nc.cu", 300.0)  # took twice its estimate: everything will
    assert p.correction() == 2.0
    # split_nc running for 200 s of its 600; fwd_c (200) then flash_api (40) on the free slot
    assert p.time_left({"split_nc.cu": 200.0}) == 400
    line = p.status({"split_nc.cu": 200.0}, 330.0)
    assert line == "  … 5:30: 1/6 done; running split_nc.cu 3:20; about 7 min left"


def test_an_overrunning_job_still_has_time_left() -> None:
    p = Progress(UNITS, EST, slots=1, total=6)
    assert p.time_left({"split_nc.cu": 1000.0}) == pytest.approx(30 + 150 + 100 + 20)


def test_status_names_three_running_jobs_and_counts_the_rest() -> None:
    p = Progress(UNITS, EST, slots=4, total=6)
    line = p.status(dict.fromkeys(UNITS, 10.0), 20.0)
    assert line.count(" 0:10") == 3 and "(+1 more)" in line


def record(record_dir: Path, unit: str, wall: float) -> None:
    doc = {"output": f"{unit}.o", "exit": 0, "wall_s": wall, "cpu_s": wall, "peak_rss_bytes": 1}
    (record_dir / f"{unit}.o.json").write_text(json.dumps({**doc, "max_process_rss_bytes": 1}))


def test_a_watched_compile_prints_one_line_per_job_and_keeps_the_rest_for_the_log(tmp_path: Path) -> None:
    shown: list[str] = []
    logged: list[str] = []
    for unit, wall in [("split_nc.cu", 305.4), ("fwd_nc.cu", 148.0), ("fwd_c.cu", 99.6), ("flash_api.cpp", 21.0)]:
        record(tmp_path, unit, wall)
    (tmp_path / "split_nc.cu.o.running").write_text(repr(time.time() - 125))
    p = Progress(UNITS, EST, slots=2, total=6)
    watch = Watch(p, tmp_path, show=shown.append, other=logged.append)
    watch.on_line(CUDA.format(n=1, u="fwd_c.cu"))
    watch.on_line("/tmp/x/flash_fwd.h(12): warning #177-D: variable declared but never referenced")
    watch.on_line(CUDA.format(n=2, u="fwd_nc.cu"))
    status = watch.status_now()
    for n, u in [(3, "flash_api.cpp"), (4, "split_nc.cu")]:
        watch.on_line(CUDA.format(n=n, u=u))
    watch.on_line("[6/6] Linking CXX shared module _C.so")
    assert shown == [
        "[1/6] fwd_c.cu 100 s",
        "[2/6] fwd_nc.cu 148 s",
        "[3/6] flash_api.cpp 21 s",
        "[4/6] split_nc.cu 305 s",
        "[6/6] link _C.so",
    ]
    assert logged == ["/tmp/x/flash_fwd.h(12): warning #177-D: variable declared but never referenced"]
    assert "running split_nc.cu 2:05" in status and "2/6 done" in status and "min left" in status
    assert p.slowest() == ("split_nc.cu", 305.4)


def test_the_status_thread_speaks_only_when_nothing_finished_and_less_often_each_time(tmp_path: Path) -> None:
    shown: list[str] = []
    p = Progress(UNITS, EST, slots=2, total=6)
    with Watch(p, tmp_path, show=shown.append, other=shown.append, period=0.05, max_period=0.2, tick=0.01):
        time.sleep(0.5)
    assert 2 <= len(shown) <= 6, shown  # 0.05, 0.075, 0.11, 0.17, 0.2 ... not one per tick
    assert all("waiting for ninja" in s for s in shown)


def test_clock_and_minutes() -> None:
    assert progress.clock(148) == "2:28" and progress.clock(3725) == "1:02:05"
    assert progress.minutes(60) == "60 s" and progress.minutes(840) == "14 min"
