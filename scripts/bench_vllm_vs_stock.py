"""Our `_vllm_fa2_C` against the one vLLM ships ("stock"), side by side on vLLM's own calls (issue 20).

Both extensions are called through vLLM's own `flash_attn_interface.flash_attn_varlen_func` (the file from the
pinned vLLM wheel, scripts/vllm_interface.py), each loaded in a process of its own (one process cannot load two
libraries that register `_vllm_fa2_C`). Per case: kernel-only time (CUDA events around CALLS back-to-back calls,
REPS repetitions, min/median/max per call), the output (saved, so the parent compares ours with stock's) and,
on the routes that return it, the softmax LSE against a float32 reference.

  python scripts/bench_vllm_vs_stock.py compare --stock STOCK.so --ours OURS.whl --interface IFACE.py --out DIR
      runs stock then ours (ROUNDS times, alternating), then writes DIR/vllm-vs-stock.json and .md
  python scripts/bench_vllm_vs_stock.py from-runs RUNS_DIR --table DIR/vllm-vs-stock-table.md [--routes FIG.json]
      compare's report again from its run files, when only they came back (the outputs' check from its table)
  python scripts/bench_vllm_vs_stock.py add-routes REPORT.json --routes FIG.json
      compare's report with the LSE error of every route the GPU tests checked (their figures JSON)
  python scripts/bench_vllm_vs_stock.py worker --ext SO --interface IFACE.py --out RESULT.json
      one extension, every case (what `compare` starts)
  python scripts/bench_vllm_vs_stock.py first-call --ext SO --interface IFACE.py
      the first paged decode call of a fresh process (run it with CUDA_CACHE_DISABLE=1)
  python scripts/bench_vllm_vs_stock.py routes --ext OURS.whl --interface IFACE.py
      our paged prefill on each route, the same prefill over contiguous K/V and the vision cases (with
      LD_PRELOAD=shim.so FAWHEELS_SHIM_EXT=_vllm_fa2_C: the forward kernel's sm_86 tiles, scripts/sm8x_tiles_shim.c)
  python scripts/bench_vllm_vs_stock.py profile --ext OURS.whl --interface IFACE.py [--case NAME ...]
      each route case once, after its warm-up, inside the CUDA profiler's window: run it under
      `ncu --profile-from-start off` so Nsight Compute sees exactly those calls' kernels
  python scripts/bench_vllm_vs_stock.py placements --ext EXT --interface IFACE.py --case NAME [--count 6]
      each case with its K/V cache copied to COUNT fresh places in GPU memory, timed at each
  python scripts/bench_vllm_vs_stock.py splits --ext EXT --interface IFACE.py --splits 0,1,2,4,8
      the decode cases at each num_splits (0: the extension's own choice); counts above 1 need a build whose
      varlen_fwd binding lets them through (ours refuses them: bench/vllm-vs-stock.md says how the sweep was run)
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from itertools import accumulate
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.vllm_site import make_site

REPS, CALLS, WARMUP = 9, 20, 5
ATOL, RTOL = 1.5e-2, 1e-2  # vLLM's tolerances for its flash-attn backend tests


@dataclass(frozen=True)
class Case:
    name: str
    seqs: tuple[tuple[int, int], ...]  # (query rows, key rows) per sequence
    hq: int = 32
    hk: int = 8
    d: int = 128
    page: int | None = 16  # None: contiguous K/V, no block table
    causal: bool = True
    softcap: float = 0.0
    window: tuple[int, int] = (-1, -1)
    num_splits: int = 0
    lse: bool = False  # check the LSE against float32 (cost: a reference per sequence)


def _cases() -> list[Case]:
    """The 16-token page cases first (vLLM's default), then the vision tower's, then other page sizes: stock's
    first run JIT-compiles each module it touches, so a run cut short still has the cases that matter most."""
    paged: dict[int, list[Case]] = {}
    for page in (16, 64, 256):
        tag = "" if page == 16 else f", page {page}"
        check = page == 16
        paged[page] = [
            Case(f"decode 64 x 4096{tag}", ((1, 4096),) * 64, page=page, lse=check),
            Case(f"decode 16 x 32768{tag}", ((1, 32768),) * 16, page=page, lse=check),
            Case(
                f"decode 64 x 4096 softcap 50 window 1024{tag}",
                ((1, 4096),) * 64,
                page=page,
                softcap=50.0,
                window=(1024, 0),
                lse=check,
            ),
            Case(f"prefill 8 x 2048{tag}", ((2048, 2048),) * 8, page=page, lse=check),
            Case(
                f"mixed 32 x decode 2048 + 2 x prefill 1024{tag}",
                ((1, 2048),) * 32 + ((1024, 1024),) * 2,
                page=page,
                lse=check,
            ),
        ]
    return [
        *paged[16],
        Case("decode 64 x 4096, num_splits 1", ((1, 4096),) * 64, num_splits=1, lse=True),
        Case("vision 4 x 1024 d72 (96 bucket), no cache", ((1024, 1024),) * 4, 16, 16, 72, None, False, lse=True),
        Case("vision 4 x 1024 d128, no cache", ((1024, 1024),) * 4, 16, 16, 128, None, False),
        *paged[64],
        *paged[256],
    ]


CASES = _cases()


def _interface(ext: Path, iface: Path) -> Any:
    """vLLM's interface module over `ext`, imported as `vllm.vllm_flash_attn._vllm_fa2_C`."""
    root = make_site(Path(tempfile.mkdtemp(prefix="vllm-site-")), ext, iface)
    sys.path.insert(0, str(root))
    import vllm.vllm_flash_attn.flash_attn_interface as module

    assert module.FA2_AVAILABLE, module.FA2_UNAVAILABLE_REASON
    return module


class Inputs:
    """One case's tensors, the same on both sides (seeded), with K/V scattered over random pages."""

    def __init__(self, torch: Any, case: Case, seed: int = 0) -> None:
        gen = torch.Generator(device="cpu").manual_seed(seed)
        dt = torch.bfloat16

        def rand(*shape: int) -> Any:
            return torch.randn(*shape, generator=gen).to(dt).cuda()

        self.case = case
        qlens = [s for s, _ in case.seqs]
        klens = [k for _, k in case.seqs]
        self.q = rand(sum(qlens), case.hq, case.d)
        self.ks = [rand(k, case.hk, case.d) for k in klens]
        self.vs = [rand(k, case.hk, case.d) for k in klens]
        self.cu_q = torch.tensor([0, *accumulate(qlens)], dtype=torch.int32, device="cuda")
        self.max_q, self.max_k = max(qlens), max(klens)
        self.out = torch.empty_like(self.q)
        if case.page is None:
            self.k, self.v = torch.cat(self.ks), torch.cat(self.vs)
            self.cu_k = torch.tensor([0, *accumulate(klens)], dtype=torch.int32, device="cuda")
            self.seqused = self.table = None
            return
        page = case.page
        per_seq = [math.ceil(k / page) for k in klens]
        num_blocks = sum(per_seq) + 7
        perm = torch.randperm(num_blocks, generator=gen)
        self.table = torch.zeros(len(klens), max(per_seq), dtype=torch.int32)
        self.k = torch.zeros(num_blocks, page, case.hk, case.d, dtype=dt, device="cuda")
        self.v = torch.zeros_like(self.k)
        start = 0
        for b, (k, v) in enumerate(zip(self.ks, self.vs, strict=True)):
            blocks = perm[start : start + per_seq[b]]
            start += per_seq[b]
            self.table[b, : per_seq[b]] = blocks
            pad = per_seq[b] * page - k.shape[0]
            kp = torch.nn.functional.pad(k, (0, 0, 0, 0, 0, pad)).view(per_seq[b], page, case.hk, case.d)
            vp = torch.nn.functional.pad(v, (0, 0, 0, 0, 0, pad)).view(per_seq[b], page, case.hk, case.d)
            self.k[blocks.cuda()] = kp
            self.v[blocks.cuda()] = vp
        self.table = self.table.cuda()
        self.seqused = torch.tensor(klens, dtype=torch.int32, device="cuda")
        self.cu_k = None

    def call(self, fai: Any, lse: bool = False) -> Any:
        c = self.case
        return fai.flash_attn_varlen_func(
            self.q,
            self.k,
            self.v,
            self.max_q,
            self.cu_q,
            self.max_k,
            cu_seqlens_k=self.cu_k,
            seqused_k=self.seqused,
            softmax_scale=c.d**-0.5,
            causal=c.causal,
            window_size=list(c.window),
            softcap=c.softcap,
            block_table=self.table,
            return_softmax_lse=lse,
            out=self.out,
            fa_version=2,
            num_splits=c.num_splits,
        )


def lse_reference(inp: Inputs) -> Any:
    """float32 LSE (hq, total_q) over each sequence's own rows (tests/support/attention_ref.py, as the GPU tests)."""
    import torch

    from support.attention_ref import reference

    c, parts, q0 = inp.case, [], 0
    for (sq, _), k, v in zip(c.seqs, inp.ks, inp.vs, strict=True):
        parts.append(reference(inp.q[q0 : q0 + sq], k, v, causal=c.causal, window=c.window, softcap=c.softcap)[1])
        q0 += sq
    return torch.cat(parts, dim=1)


def time_case(torch: Any, fai: Any, inp: Inputs) -> list[float]:
    for _ in range(WARMUP):
        inp.call(fai)
    torch.cuda.synchronize()
    per_call = []
    for _ in range(REPS):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(CALLS):
            inp.call(fai)
        end.record()
        end.synchronize()
        per_call.append(start.elapsed_time(end) * 1000 / CALLS)
    return per_call


def worker(ext: Path, iface: Path, out: Path, names: list[str] | None) -> None:
    import torch

    fai = _interface(ext, iface)
    results: dict[str, Any] = {"ext": str(ext), "gpu": torch.cuda.get_device_name(), "cases": {}}
    for case in _chosen(CASES, names):
        inp = Inputs(torch, case)
        t0 = time.perf_counter()
        res = inp.call(fai, lse=case.lse)
        torch.cuda.synchronize()
        first_s = time.perf_counter() - t0
        row: dict[str, Any] = {"first_call_s": round(first_s, 4)}
        if case.lse:
            lse = res[1]
            ref = lse_reference(inp)
            row["lse_max_err"] = float((lse.float() - ref).abs().max())
        torch.save(inp.out.cpu(), out.with_suffix(f".{CASES.index(case)}.pt"))
        us = time_case(torch, fai, inp)
        row["us"] = [round(x, 2) for x in us]
        results["cases"][case.name] = row
        out.write_text(json.dumps(results, indent=1) + "\n")  # after each case: a run cut short keeps what it did
        print(f"{case.name}: median {statistics.median(us):.1f} us, first call {first_s:.3f} s", file=sys.stderr)
        del inp
        torch.cuda.empty_cache()


def first_call(ext: Path, iface: Path) -> None:
    import torch

    fai = _interface(ext, iface)
    inp = Inputs(torch, CASES[0])
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    inp.call(fai)
    torch.cuda.synchronize()
    print(json.dumps({"ext": str(ext), "case": CASES[0].name, "first_call_s": round(time.perf_counter() - t0, 4)}))


# Our extension alone: the paged prefill on its two routes (the forward kernel, num_splits 0; the split-KV
# kernel, num_splits 1) against the same prefill with contiguous K/V, to see what paging itself costs.
ROUTES = [
    Case("prefill 8 x 2048, paged (forward kernel)", ((2048, 2048),) * 8),
    Case("prefill 8 x 2048, paged, num_splits 1 (split-KV kernel)", ((2048, 2048),) * 8, num_splits=1),
    Case("prefill 8 x 2048, contiguous K/V", ((2048, 2048),) * 8, page=None),
    *(c for c in CASES if c.name.startswith("vision")),
]

# The decode cases whose split count is measured (2-16 splits, issue 20): long contexts and the batch of 64.
SPLIT_CASES = [c for c in CASES if c.name.startswith("decode") and "num_splits" not in c.name and "," not in c.name]


def routes(ext: Path, iface: Path) -> None:
    import torch

    fai = _interface(ext, iface)
    for case in ROUTES:
        us = time_case(torch, fai, Inputs(torch, case))
        print(json.dumps({"case": case.name, **_rounded_summary(us)}), flush=True)


def placements(ext: Path, iface: Path, names: list[str], count: int) -> None:
    """Each case's K/V cache copied to `count` new places in GPU memory (every copy kept, so each is a fresh
    allocation, behind a spacer of a few MiB), timed at each: whether a memory-bound call's time follows where
    its cache lies."""
    import torch

    fai = _interface(ext, iface)
    for case in _chosen(CASES, names):
        inp = Inputs(torch, case)
        kept = []
        for i in range(count):
            kept.append((torch.empty(((i * 7) % 13 + 1) << 20, dtype=torch.uint8, device="cuda"), inp.k, inp.v))
            inp.k, inp.v = inp.k.clone(), inp.v.clone()
            us = time_case(torch, fai, inp)
            row = {"case": case.name, "placement": i, "k_addr_mib": inp.k.data_ptr() >> 20, "t": round(time.time(), 2)}
            print(json.dumps({**row, **_rounded_summary(us)}), flush=True)
        del inp, kept
        torch.cuda.empty_cache()


def profile(ext: Path, iface: Path, names: list[str] | None) -> None:
    import torch

    fai = _interface(ext, iface)
    for case in _chosen(ROUTES, names):
        inp = Inputs(torch, case)
        for _ in range(WARMUP):
            inp.call(fai)
        torch.cuda.synchronize()
        torch.cuda.profiler.start()
        inp.call(fai)
        torch.cuda.synchronize()
        torch.cuda.profiler.stop()
        print(f"profiled: {case.name}", file=sys.stderr)


class _AnySplits:
    """vLLM's interface refuses num_splits > 1 for FA2; this calls the op it calls, with the same arguments."""

    def __init__(self, torch: Any) -> None:
        self.op = torch.ops._vllm_fa2_C.varlen_fwd

    def flash_attn_varlen_func(self, q: Any, k: Any, v: Any, max_q: int, cu_q: Any, max_k: int, **kw: Any) -> Any:
        cu_k = kw["cu_seqlens_k"] if kw["cu_seqlens_k"] is not None else cu_q.new_zeros(cu_q.shape)
        window = kw["window_size"]
        return self.op(q, k, v, kw["out"], cu_q, cu_k, kw["seqused_k"], None, kw["block_table"], None, max_q, max_k,
                       0.0, kw["softmax_scale"], False, kw["causal"], window[0], window[1], kw["softcap"], False,
                       kw["num_splits"], None)  # fmt: skip


def splits(ext: Path, iface: Path, counts: list[int]) -> None:
    import torch

    _interface(ext, iface)  # loads the extension
    fai = _AnySplits(torch)
    for case in SPLIT_CASES:
        for n in counts:
            one = replace(case, num_splits=n)
            us = time_case(torch, fai, Inputs(torch, one))
            row = {"case": case.name, "num_splits": n, **_rounded_summary(us)}
            print(json.dumps(row), flush=True)
            torch.cuda.empty_cache()


def _summary(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def _rounded_summary(values: list[float]) -> dict[str, float]:
    return {k: round(v, 1) for k, v in _summary(values).items()}


def _chosen(cases: list[Case], names: list[str] | None) -> list[Case]:
    """The cases named (all of them when none are), in their own order."""
    return [c for c in cases if not names or c.name in names]


def compare(
    stock: Path, ours: Path, iface: Path, out_dir: Path, rounds: int, names: list[str] | None, limit_s: float
) -> None:
    import torch

    work = Path(tempfile.mkdtemp(prefix="vs-stock-"))
    runs: dict[str, list[dict[str, Any]]] = {"stock": [], "ours": []}
    for r in range(rounds):
        for side, ext in (("stock", stock), ("ours", ours)):
            res = work / f"{side}-{r}.json"
            cmd = [sys.executable, __file__, "worker", "--ext", str(ext), "--interface", str(iface), "--out", str(res)]
            for n in names or []:
                cmd += ["--case", n]
            print("+", " ".join(cmd), file=sys.stderr)
            try:  # stock JIT-compiles its PTX on first use: a run past the limit keeps the cases it finished
                subprocess.run(cmd, check=True, timeout=limit_s)
            except subprocess.TimeoutExpired:
                print(f"{side}: stopped after {limit_s:.0f} s", file=sys.stderr)
            if res.exists():
                runs[side].append(json.loads(res.read_text()))
    report = report_from_runs(runs, names)
    for name, row in report["cases"].items():
        i = next(i for i, case in enumerate(CASES) if case.name == name)
        first = {side: first_run(runs, side, name) or 0 for side in runs}
        a = torch.load(work / f"stock-{first['stock']}.{i}.pt").float()
        b = torch.load(work / f"ours-{first['ours']}.{i}.pt").float()
        row["out_max_abs_diff_vs_stock"] = float((a - b).abs().max())
        row["out_within_vllm_tolerance"] = bool(torch.allclose(b, a, atol=ATOL, rtol=RTOL))
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "vllm-vs-stock.json").write_text(json.dumps(report, indent=1) + "\n")
    (out_dir / "vllm-vs-stock-table.md").write_text(render_table(report))
    print(json.dumps({k: v["speedup"] for k, v in report["cases"].items()}, indent=1))


SIDES = ("stock", "ours")


def first_run(runs: dict[str, list[dict[str, Any]]], side: str, name: str) -> int | None:
    """The first run of a side that measured the case (a run cut short keeps the cases it finished)."""
    return next((r for r, run in enumerate(runs[side]) if name in run["cases"]), None)


def report_from_runs(runs: dict[str, list[dict[str, Any]]], names: list[str] | None) -> dict[str, Any]:
    """compare's report of the workers' runs, without the outputs' comparison: per case and side the median and
    min/max over every repetition of every run that measured it, how many runs did, the first call and the LSE."""
    report: dict[str, Any] = {
        "schema": "fawheels.bench.vllm-vs-stock/1",
        "command": " ".join(["python", "scripts/bench_vllm_vs_stock.py", *sys.argv[1:]]),
        "gpu": runs["ours"][0]["gpu"],
        "timing": f"kernel-only: CUDA events around {CALLS} back-to-back calls, {REPS} repetitions per run, "
        f"{len(runs['stock'])} and {len(runs['ours'])} run(s) of stock and ours alternating, each in its own "
        "process; us per call",
        "cases": {},
    }
    done = [c for c in CASES if all(first_run(runs, side, c.name) is not None for side in runs)]
    report["missing"] = [c.name for c in CASES if (not names or c.name in names) and c not in done]
    for case in done:
        row: dict[str, Any] = {"case": asdict(case)}
        for side in SIDES:
            measured = [run["cases"][case.name] for run in runs[side] if case.name in run["cases"]]
            us = [x for m in measured for x in m["us"]]
            row[f"{side}_us"] = round(statistics.median(us), 2)
            row[f"{side}_us_spread"] = {k: round(v, 2) for k, v in _summary(us).items()}
            row[f"{side}_runs"] = len(measured)
            row[f"{side}_first_call_s"] = measured[0]["first_call_s"]
            if "lse_max_err" in measured[0]:
                row[f"{side}_lse_max_err"] = measured[0]["lse_max_err"]
        row["speedup"] = round(row["stock_us"] / row["ours_us"], 3)
        report["cases"][case.name] = row
    return report


def from_runs(runs_dir: Path, table: Path | None, routes_json: Path | None) -> dict[str, Any]:
    """compare's report rebuilt from its workers' run files (stock-N.json, ours-N.json) when the report itself
    did not come back; the outputs' comparison, which needs the saved outputs, is read from compare's table."""
    runs = {side: [json.loads(f.read_text()) for f in sorted(runs_dir.glob(f"{side}-*.json"))] for side in SIDES}
    report = report_from_runs(runs, None)
    rows: dict[str, tuple[float, bool]] = {}
    for line in table.read_text().splitlines() if table else []:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 7 and cells[-1] in ("yes", "NO"):
            rows[cells[0]] = (float(cells[5]), cells[6] == "yes")
    for name, row in report["cases"].items():
        if name in rows:
            row["out_max_abs_diff_vs_stock"], row["out_within_vllm_tolerance"] = rows[name]
    if routes_json:
        report["lse_max_err"] = route_lse(routes_json)
    return report


def from_log(log: Path, routes_json: Path | None) -> dict[str, Any]:
    """A report from what `compare` printed (bench.log) when its per-run results are not at hand: per case and
    side the median of each run's median, and `speedup` from the medians of those; `routes_json`, the GPU
    tests' figures (tests/gpu/test_vllm_fa2_gpu.py, FAWHEELS_GPU_FIGURES), adds the LSE error of every route."""
    runs: list[tuple[str, dict[str, float]]] = []
    for line in log.read_text().splitlines():
        worker_run = re.search(r" worker --ext .* --out \S*/(stock|ours)-\d+\.json", line)
        if worker_run:
            runs.append((worker_run.group(1), {}))
        elif runs and (m := re.match(r"(.*): median ([\d.]+) us, first call", line)):
            runs[-1][1][m.group(1)] = float(m.group(2))
    report: dict[str, Any] = {
        "schema": "fawheels.bench.vllm-vs-stock/1",
        "command": " ".join(["python", "scripts/bench_vllm_vs_stock.py", *sys.argv[1:]]),
        "timing": f"kernel-only: CUDA events around {CALLS} back-to-back calls, {REPS} repetitions per run; "
        "per side the median of its runs' medians (from the log)",
        "cases": {},
    }
    for case in CASES:
        medians = {side: [r[case.name] for s, r in runs if s == side and case.name in r] for side in ("stock", "ours")}
        if medians["stock"] and medians["ours"]:
            row: dict[str, Any] = {f"{side}_run_medians_us": v for side, v in medians.items()}
            row["stock_us"] = statistics.median(medians["stock"])
            row["ours_us"] = statistics.median(medians["ours"])
            row["speedup"] = round(row["stock_us"] / row["ours_us"], 3)
            report["cases"][case.name] = row
    if routes_json:
        report["lse_max_err"] = route_lse(routes_json)
    return report


def route_lse(figures_json: Path) -> dict[str, float]:
    """The LSE error of every route the GPU tests checked (tests/gpu/test_vllm_fa2_gpu.py, FAWHEELS_GPU_FIGURES)."""
    figures = json.loads(figures_json.read_text())
    return {f["case"]: f["lse_max_abs_err"] for f in figures if f.get("lse_max_abs_err") is not None}


def render_table(report: dict[str, Any]) -> str:
    """The report as a markdown table: per case stock and ours (median, min-max), speedup, LSE and output checks."""

    def spread(row: dict[str, Any], side: str) -> str:
        s = row[f"{side}_us_spread"]
        return f"{s['median']:,.1f} ({s['min']:,.1f}-{s['max']:,.1f})"

    lines = [
        "| case | stock µs median (min-max) | ours µs median (min-max) | speedup | LSE max err stock / ours | "
        "max abs diff vs stock | within vLLM tol |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in report["cases"].items():
        lse = f"{row['stock_lse_max_err']:.1e} / {row['ours_lse_max_err']:.1e}" if "ours_lse_max_err" in row else "-"
        lines.append(
            f"| {name} | {spread(row, 'stock')} | {spread(row, 'ours')} | {row['speedup']:.3f} | {lse} | "
            f"{row['out_max_abs_diff_vs_stock']:.1e} | {'yes' if row['out_within_vllm_tolerance'] else 'NO'} |"
        )
    if report.get("missing"):
        lines.append(f"\nNot measured (a side's run stopped first): {', '.join(report['missing'])}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)

    def one_extension(name: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name)
        p.add_argument("--ext", type=Path, required=True)
        p.add_argument("--interface", type=Path, required=True)
        return p

    w = one_extension("worker")
    w.add_argument("--out", type=Path, required=True)
    w.add_argument("--case", action="append")
    one_extension("routes")
    one_extension("profile").add_argument("--case", action="append", help="a route case's name (default: all)")
    one_extension("splits").add_argument(
        "--splits", default="0,1,2,3,4,6,8,12,16", help="comma-separated num_splits values"
    )
    one_extension("first-call")
    pl = one_extension("placements")
    pl.add_argument("--case", action="append", required=True)
    pl.add_argument("--count", type=int, default=6)
    c = sub.add_parser("compare")
    c.add_argument("--stock", type=Path, required=True)
    c.add_argument("--ours", type=Path, required=True)
    c.add_argument("--interface", type=Path, required=True)
    c.add_argument("--out", type=Path, required=True)
    c.add_argument("--rounds", type=int, default=1)
    c.add_argument("--case", action="append")
    c.add_argument("--limit-s", type=float, default=600.0, help="stop a side's run after this long")
    f = sub.add_parser("from-log")
    f.add_argument("log", type=Path, help="what compare printed")
    f.add_argument("--routes", type=Path, help="the GPU tests' figures JSON, for the LSE error of every route")
    a = sub.add_parser("add-routes")
    a.add_argument("report", type=Path, help="compare's vllm-vs-stock.json")
    a.add_argument("--routes", type=Path, required=True, help="the GPU tests' figures JSON")
    r = sub.add_parser("from-runs")
    r.add_argument("runs", type=Path, help="a folder of compare's run files (stock-N.json, ours-N.json)")
    r.add_argument("--table", type=Path, help="compare's vllm-vs-stock-table.md, for the outputs' comparison")
    r.add_argument("--routes", type=Path, help="the GPU tests' figures JSON, for the LSE error of every route")
    args = parser.parse_args()
    if args.cmd == "from-log":
        print(json.dumps(from_log(args.log, args.routes), indent=1))
    elif args.cmd == "add-routes":
        print(json.dumps({**json.loads(args.report.read_text()), "lse_max_err": route_lse(args.routes)}, indent=1))
    elif args.cmd == "from-runs":
        print(json.dumps(from_runs(args.runs, args.table, args.routes), indent=1))
    elif args.cmd == "worker":
        worker(args.ext, args.interface, args.out, args.case)
    elif args.cmd == "routes":
        routes(args.ext, args.interface)
    elif args.cmd == "profile":
        profile(args.ext, args.interface, args.case)
    elif args.cmd == "splits":
        splits(args.ext, args.interface, [int(n) for n in args.splits.split(",")])
    elif args.cmd == "placements":
        placements(args.ext, args.interface, args.case, args.count)
    elif args.cmd == "first-call":
        first_call(args.ext, args.interface)
    else:
        compare(args.stock, args.ours, args.interface, args.out, args.rounds, args.case, args.limit_s)


if __name__ == "__main__":
    main()
