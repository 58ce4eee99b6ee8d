#!/usr/bin/env python3
"""Cold build of a target, timed: writes bench/build-<target>.md with wall time and per-job compile times.

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
        cmd = [sys.executable, "-m", "fawheels.cli", "build", *([args.target] if args.target else []),
               "--dist", str(Path(tmp) / "dist"), "--report", str(report), "--clean"]
        if args.jobs:
            cmd += ["--jobs", str(args.jobs)]
        env = {**os.environ, "FAWHEELS_COMPILER_LAUNCHER": ""}  # cold: no compiler cache
        code = subprocess.call(cmd, cwd=REPO, env=env)
        results = json.loads(report.read_text())
    if code != 0:
        print(json.dumps(results, indent=2))
        return code
    r = results[0]
    jobs = r["job_times_s"]
    kernel_jobs = {k: v for k, v in jobs.items() if k.endswith(".cu.o")}
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    lines = [
        f"# Cold build of `{r['target']}`",
        "",
        f"Measured {datetime.date.today()} on {platform.node() or 'this machine'}: {os.cpu_count()} cores, "
        f"{mem_gb:.0f} GB RAM, {r['jobs']} concurrent job(s). Command: "
        f"`python scripts/bench_build.py {args.target or ''}{f' --jobs {args.jobs}' if args.jobs else ''}` "
        "(a fresh configure and compile; the torch env and sdist were already cached).",
        "",
        "| figure | seconds |",
        "|---|---|",
        f"| whole build (toolchain check → wheel verified in dist/) | {r['wall_s']:.0f} |",
        f"| compile wall (ninja) | {r['compile_wall_s']:.0f} |",
        f"| sum of per-job times | {sum(jobs.values()):.0f} |",
        f"| slowest single job (the floor) | {max(jobs.values()):.0f} |",
        f"| sum / wall (achieved parallelism) | {sum(jobs.values()) / max(r['compile_wall_s'], 1):.2f} |",
        "",
        "| job | seconds |",
        "|---|---|",
        *(f"| `{name}` | {sec:.0f} |" for name, sec in sorted(jobs.items(), key=lambda kv: -kv[1])),
        "",
        f"{len(kernel_jobs)} kernel translation unit(s). Wheel: `{Path(r['wheel']).name}`, "
        f"{r['size'] / 1e6:.1f} MB, sha256 `{r['sha256']}`.",
        "",
    ]
    out = args.out or REPO / "bench" / f"build-{r['target']}.md"
    out.write_text("\n".join(lines))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
