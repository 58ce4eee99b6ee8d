#!/usr/bin/env python3
"""Turn the files a performance run wrote (scripts/gpu-perf.sh's $OUT, or one build report) into Markdown.

    python scripts/perf_report.py OUT_DIR [--command "bash scripts/gpu-perf.sh"] [--out bench/gpu-perf.md]
    python scripts/perf_report.py --build-report report.json     (one build's section only)

Reads what is there and skips what is not: machine.txt, build-*.json / rebuild-*.json (fawheels build
--report), bench-*.json (fawheels smoke --bench --out), first-call-*.json (fawheels first-call --report).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

GB = 1024**3


def _mmm(d: dict[str, float], digits: int = 3) -> str:
    return f"{d['median']:.{digits}f} ({d['min']:.{digits}f}–{d['max']:.{digits}f})"


def build_results(doc: Any) -> list[dict[str, Any]]:
    """The per-target results of a `fawheels build --report` document ({"schema": 1, "results": [...]}); a report
    written before the document had a schema (a bare list, as the older raw files under bench/) is read too."""
    if isinstance(doc, list):
        return doc
    if doc.get("schema") != 1:
        raise SystemExit(f"a build report of schema {doc.get('schema')!r}: this script reads schema 1")
    results: list[dict[str, Any]] = doc["results"]
    return results


def build_section(report: Any, title: str, cores: int | None = None) -> list[str]:
    lines: list[str] = []
    for r in build_results(report):
        lines += [f"### {title}: `{r['target']}` — {r['status']}", ""]
        if r["status"] != "ok":
            lines += [f"Failed at {r['stage']}: {r['error'].splitlines()[0] if r['error'] else ''}", ""]
        stats = r.get("job_stats", {})
        cpu = sum(s["cpu_s"] for s in stats.values())
        lines += [
            "| figure | value |",
            "|---|---|",
            f"| whole build (toolchain check → verified wheel in dist/) | {r['wall_s']:.0f} s |",
            f"| compile wall (ninja) | {r['compile_wall_s']:.0f} s |",
            f"| concurrent jobs | {r['jobs']}: {r.get('jobs_reason', '')} |",
        ]
        if stats:
            slowest = max(stats.values(), key=lambda s: s["wall_s"])
            peak = max(s["peak_rss_bytes"] for s in stats.values()) / GB
            lines += [
                f"| sum of job CPU seconds | {cpu:.0f} s |",
                f"| slowest job | {slowest['wall_s']:.0f} s (`{slowest['output']}`) |",
                f"| largest peak RSS of one job | {peak:.2f} GB |",
            ]
            if cores:
                bound = cpu / cores
                lines.append(f"| compile wall / (CPU seconds / {cores} cores) | {r['compile_wall_s'] / bound:.2f} |")
        if r.get("reused"):
            lines.append(f"| reused from the previous build | {', '.join(r['reused'])} |")
        lines.append("")
        if r.get("stages_s"):
            lines += ["| stage | seconds |", "|---|---|", *(f"| {k} | {v:.1f} |" for k, v in r["stages_s"].items()), ""]
        if r.get("schedule"):
            lines += ["Schedule given to ninja (longest first): " + ", ".join(f"`{u}`" for u in r["schedule"]), ""]
        if stats:
            lines += [
                "| job | wall s | CPU s | peak RSS (process tree) | largest process |",
                "|---|---|---|---|---|",
                *(
                    f"| `{s['output']}` | {s['wall_s']:.0f} | {s['cpu_s']:.0f} | "
                    f"{s['peak_rss_bytes'] / GB:.2f} GB | {s['max_process_rss_bytes'] / GB:.2f} GB |"
                    for s in sorted(stats.values(), key=lambda s: -s["wall_s"])
                ),
                "",
            ]
        if r.get("sha256"):
            lines += [f"Wheel `{Path(r['wheel']).name}`, {r['size'] / 1e6:.1f} MB, sha256 `{r['sha256']}`.", ""]
    return lines


def bench_section(doc: dict[str, Any]) -> list[str]:
    b = doc.get("bench") or {}
    lines = [f"### Kernel-only benchmark: `{doc.get('target')}` on {doc.get('device')}, torch {doc.get('torch')}", ""]
    if not b:
        return [*lines, "No benchmark in this file.", ""]
    g0, g1 = b.get("gpu_before", {}), b.get("gpu_after", {})
    c = b["ceilings"]
    lines += [
        f"Method: {b['method']}.",
        "",
        f"GPU: {g0.get('name')}, driver {g0.get('driver_version')}; SM clock {g0.get('clocks.sm')} "
        f"(max {g0.get('clocks.max.sm')}) before, {g1.get('clocks.sm')} after; memory clock "
        f"{g0.get('clocks.mem')}; power {g0.get('power.draw')} of {g0.get('power.limit')}; "
        f"{g0.get('temperature.gpu')} °C before, {g1.get('temperature.gpu')} °C after.",
        "",
        "Ceilings measured in the same run:",
        "",
        "| ceiling | ms per call, median (min–max) | best | median |",
        "|---|---|---|---|",
        f"| bf16 matmul {c['matmul_bf16']['shape']} | {_mmm(c['matmul_bf16']['ms'])} | "
        f"{c['matmul_bf16']['tflops_best']} TFLOP/s | {c['matmul_bf16']['tflops_median']} TFLOP/s |",
        f"| device-to-device copy, {c['copy_d2d']['bytes']} | {_mmm(c['copy_d2d']['ms'])} | "
        f"{c['copy_d2d']['tbps_best']} TB/s | {c['copy_d2d']['tbps_median']} TB/s |",
        "",
        "| shape | ours ms, median (min–max) | torch flash ms, median (min–max) | torch / ours (median) | "
        "ours TFLOP/s | torch TFLOP/s | ours TB/s | ours best: share of matmul / copy ceiling |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in b["rows"]:
        if "error" in row:
            lines.append(f"| {row['shape']} | error: {row['error']} | | | | | | |")
            continue
        o, t = row["ours"], row["torch_flash"]
        lines.append(
            f"| {row['shape']} | {_mmm(o['ms'])} | {_mmm(t['ms'])} | {row['torch_over_ours_median']:.2f} | "
            f"{o['tflops_median']} | {t['tflops_median']} | {o['tbps_median']} | "
            f"{o['share_of_matmul_ceiling']:.0%} / {o['share_of_copy_ceiling']:.0%} |"
        )
    return [*lines, ""]


def first_call_section(docs: list[dict[str, Any]]) -> list[str]:
    if not docs:
        return []
    lines = [
        "### First attention call after process start",
        "",
        docs[0]["method"] + ".",
        "",
        "| wheel | code for the GPU | nvcc | runs | import flash_attn s | first call s | second call s | "
        "cache on: first process / second process, first call s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for d in docs:
        s = d["summary_cache_disabled"]
        archs = " + ".join([*d["archs"]["sass"], *d["archs"]["ptx"]])
        cache = d["cache_enabled_fresh_dir"]
        errors = [r for r in d["runs_cache_disabled"] if "error" in r]
        first = _mmm(s["first_call_s"]) if "first_call_s" in s else "–"
        lines.append(
            f"| `{d['wheel']}` | {archs} on {d['gpu']['name']} (CC {d['gpu']['compute_capability']}) | "
            f"{d['nvcc']} | {len(d['runs_cache_disabled'])}{f' ({len(errors)} failed)' if errors else ''} | "
            f"{_mmm(s['import_flash_attn_s']) if 'import_flash_attn_s' in s else '–'} | {first} | "
            f"{_mmm(s['second_call_s']) if 'second_call_s' in s else '–'} | "
            f"{cache.get('first_process', {}).get('first_call_s', float('nan')):.3f} / "
            f"{cache.get('second_process', {}).get('first_call_s', float('nan')):.3f}"
            + ("" if d.get("complete", True) else " (run cut short)")
            + " |"
        )
    return [*lines, ""]


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("out_dir", nargs="?", type=Path)
    p.add_argument("--build-report", type=Path)
    p.add_argument("--command", default="bash scripts/gpu-perf.sh")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    lines: list[str] = []
    if args.build_report:
        lines += build_section(json.loads(args.build_report.read_text()), "Build")
    if args.out_dir:
        d = args.out_dir
        machine = (d / "machine.txt").read_text() if (d / "machine.txt").exists() else ""
        cores = next((int(x.split()[1]) for x in machine.splitlines() if x.startswith("cores ")), None)
        lines += [f"Command: `{args.command}` (raw files beside this one).", ""]
        if machine:
            lines += ["```", machine.rstrip(), "```", ""]
        for prefix, title in (("build-", "Build, from nothing"), ("rebuild-", "Rebuild, nothing changed")):
            for f in sorted(d.glob(f"{prefix}*.json")):
                lines += build_section(json.loads(f.read_text()), title, cores)
        for f in sorted(d.glob("bench-*.json")):
            lines += bench_section(json.loads(f.read_text()))
        lines += first_call_section([json.loads(f.read_text()) for f in sorted(d.glob("first-call-*.json"))])
    text = "\n".join(lines)
    if args.out:
        args.out.write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
