#!/usr/bin/env python3
"""Cold build of a target, timed: writes bench/build-<target>.md with wall time, stage times and per-job
wall, CPU seconds and peak RSS.

Usage: python scripts/bench_build.py [TARGET_ID] [--jobs N]   (default: the matrix's default target)
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("target", nargs="?")
    parser.add_argument("--jobs", type=int)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        cmd = [
            sys.executable,
            "-m",
            "fawheels.cli",
            "build",
            *([args.target] if args.target else []),
            "--dist",
            str(Path(tmp) / "dist"),
            "--report",
            str(report),
            "--clean",
        ]
        if args.jobs:
            cmd += ["--jobs", str(args.jobs)]
        env = {**os.environ, "FAWHEELS_COMPILER_LAUNCHER": ""}  # cold: no compiler cache
        code = subprocess.call(cmd, cwd=REPO, env=env)
        doc = json.loads(report.read_text())
    if code != 0:
        print(json.dumps(doc, indent=2))
        return code
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from perf_report import build_results, build_section  # the same tables as the GPU machine's (perf_report.py)

    results = build_results(doc)
    r = results[0]

    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    lines = [
        f"# Cold build of `{r['target']}`",
        "",
        f"Measured {datetime.date.today()} on {platform.node() or 'this machine'}: {os.cpu_count()} cores, "
        f"{mem_gb:.0f} GB RAM. Command: "
        f"`python scripts/bench_build.py {args.target or ''}{f' --jobs {args.jobs}' if args.jobs else ''}` "
        "(`--clean`: every object compiled afresh, no compiler cache; the torch env and sdist were cached).",
        "",
        *build_section(results, "Build", os.cpu_count()),
    ]
    out = args.out or REPO / "bench" / f"build-{r['target']}.md"
    out.write_text("\n".join(lines))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
