"""Time the two readers of CUDA code on the same files: `python bench/readers.py [--runs N] FILE...`

A wheel is timed as whole `fawheels verify --reader fawheels|cuobjdump|both` commands (interpreter start,
imports, hashing every member, every check). A shared object, cubin or fatbin is timed in-process: our
parser (`check/binary.py` read_file), and cuobjdump as verify runs it (one `-res-usage` pass when our reading
expects sm_100+ SASS, `-ptx` only for PTX), and as it runs with no expectation (`-lelf -lptx` first).
Prints a markdown table: min / median / max seconds over the runs.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from fawheels.check import cuobjdump, wheelzip


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def cell(times: list[float]) -> str:
    return f"{min(times):.2f} / {statistics.median(times):.2f} / {max(times):.2f}"


def verify_cmd(wheel: Path, reader: str) -> Callable[[], object]:
    cmd = [sys.executable, "-m", "fawheels.cli", "verify", "--reader", reader, str(wheel)]

    def run() -> None:
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")

    return run


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    tool = cuobjdump.find_cuobjdump()
    assert tool, "cuobjdump not found"
    print(
        f"cuobjdump {cuobjdump.cuobjdump_version(tool)}; {os.cpu_count()} cores; load average "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} at start; {args.runs} runs; min / median / max s\n"
    )
    print("| file | size | entries | ours | cuobjdump as verify runs it | cuobjdump listing first | both (verify) |")
    print("|---|---|---|---|---|---|---|")
    for path in args.files:
        size = f"{path.stat().st_size / 1e6:.1f} MB"
        if wheelzip.is_wheel(path):
            entries = sum(len(o.entries) for o in wheelzip.read_path(path))
            ours = timed(verify_cmd(path, "fawheels"), args.runs)
            theirs = timed(verify_cmd(path, "cuobjdump"), args.runs)
            both = timed(verify_cmd(path, "both"), args.runs)
            print(
                f"| `{path.name}` (`fawheels verify`) | {size} | {entries} | {cell(ours)} | {cell(theirs)} | "
                f"| {cell(both)} |"
            )
            continue
        reading = list(wheelzip.read_file(path).entries)
        assert cuobjdump.disagreements(reading, cuobjdump.cuobjdump_read(path, tool=tool, expect=reading)) == []
        ours = timed(lambda p=path: wheelzip.read_file(p), args.runs)  # type: ignore[misc]
        expect = timed(
            lambda p=path, r=reading: cuobjdump.cuobjdump_read(p, tool=tool, expect=r),  # type: ignore[misc]
            args.runs,
        )
        listed = timed(lambda p=path: cuobjdump.cuobjdump_read(p, tool=tool), args.runs)  # type: ignore[misc]
        print(f"| `{path.name}` | {size} | {len(reading)} | {cell(ours)} | {cell(expect)} | {cell(listed)} | |")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e6
    print(
        f"\nlargest cuobjdump (or verify) process: {peak:.1f} GB resident; "
        f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} at the end"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
