"""What Nsight Compute measured of our paged and contiguous prefill (`scripts/gpu-vs-stock.sh ncu`), as a table:
per forward kernel, its time, instructions, L2 requests, smem bank conflicts, the warp-stall samples by reason,
and by instruction kind the short-scoreboard samples (an HMMA waiting for its ldmatrix), read from the raw
metrics (ncu-raw.csv) and the per-SASS-line samples (ncu-source.csv) that `ncu` mode writes.

Usage: python scripts/ncu_summary.py DIR   (DIR: the ncu-raw.csv and ncu-source.csv of one run)
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from collections import Counter
from pathlib import Path

METRICS = {
    "time (ms)": "gpu__time_duration.sum",
    "instructions": "smsp__inst_executed.sum",
    "L2 requests from L1": "lts__t_requests_srcunit_tex.sum",
    "smem load bank conflicts": "l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_ld.sum",
    "tensor pipe active (%)": "sm__pipe_tensor_cycles_active.avg.pct_of_peak_sustained_elapsed",
}
STALLS = ("short_scoreboard", "long_scoreboard", "wait", "math_pipe_throttle", "barrier", "mio_throttle")
FORWARD = "flash_fwd_kernel"  # the split-KV kernel the mixed-batch route launches after it is left out


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def raw_rows(path: Path) -> list[dict[str, str]]:
    rows = list(csv.reader(path.open()))
    header = rows[0]
    return [dict(zip(header, r, strict=False)) for r in rows[2:] if FORWARD in r[header.index("Kernel Name")]]


def source_blocks(path: Path) -> list[list[dict[str, str]]]:
    """One list of SASS lines per profiled kernel, in profiling order (ncu prints each kernel's block twice)."""
    blocks: list[tuple[str, list[dict[str, str]]]] = []
    header: list[str] = []
    for row in csv.reader(path.open()):
        if row and row[0] == "Kernel Name":
            blocks.append((row[1], []))
        elif row and row[0] == "Address":
            header = row
        elif row and blocks:
            blocks[-1][1].append(dict(zip(header, row, strict=False)))
    forward = [lines for name, lines in blocks if FORWARD in name]
    return forward[::2]


def short_scoreboard_by_op(lines: list[dict[str, str]]) -> Counter[str]:
    by_op: Counter[str] = Counter()
    for line in lines:
        words = line["Source"].split()
        op = words[1] if words and words[0].startswith("@") else (words[0] if words else "")
        by_op[op.split(".")[0]] += int(line.get("stall_short_sb") or 0)
    return by_op


def table(rows: list[dict[str, str]], blocks: list[list[dict[str, str]]], names: list[str]) -> str:
    out = ["| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for label, metric in METRICS.items():
        cells = (f"{_number(r[metric]):,.3f}".rstrip("0").rstrip(".") for r in rows)
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    for stall in STALLS:
        metric = f"smsp__pcsamp_warps_issue_stalled_{stall}"
        out.append(f"| stall samples: {stall} | " + " | ".join(f"{_number(r[metric]):,.0f}" for r in rows) + " |")
    by_op = [short_scoreboard_by_op(b) for b in blocks]
    for op in ("HMMA", "ISETP", "FMNMX"):
        out.append(f"| short-scoreboard samples at {op} | " + " | ".join(f"{c[op]:,}" for c in by_op) + " |")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="a folder with ncu-raw.csv and ncu-source.csv")
    args = parser.parse_args()
    rows = raw_rows(args.dir / "ncu-raw.csv")
    blocks = source_blocks(args.dir / "ncu-source.csv")
    if len(rows) != 2 or len(blocks) != 2:
        print(f"{args.dir}: expected the paged and the contiguous forward kernel, found {len(rows)}", file=sys.stderr)
        return 1
    # the forward kernel's last template argument is Is_paged
    names = ["paged" if re.search(r", 1>\(Flash_fwd_params\)$", r["Kernel Name"]) else "contiguous" for r in rows]
    print(table(rows, blocks, names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
