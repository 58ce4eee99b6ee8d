"""The side-by-side bench's bookkeeping (scripts/bench_vllm_vs_stock.py; the timing itself runs on the GPU
machine, bench/vllm-vs-stock.md): a report rebuilt from the workers' run files when only they came back."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_vllm_vs_stock.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_vllm_vs_stock", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def run(cases: dict[str, list[float]], lse: float | None = None) -> dict[str, Any]:
    rows: dict[str, Any] = {name: {"first_call_s": 0.5, "us": us} for name, us in cases.items()}
    if lse is not None:
        for row in rows.values():
            row["lse_max_err"] = lse
    return {"ext": "x", "gpu": "NVIDIA H200", "cases": rows}


def test_a_report_from_run_files_pools_every_repetition_and_keeps_a_case_one_run_missed(
    bench: ModuleType, tmp_path: Path
) -> None:
    a, b = bench.CASES[0].name, bench.CASES[1].name
    files = {
        "stock-0.json": run({a: [10.0, 12.0]}, lse=2e-6),  # its JIT ran out of time before case b
        "stock-1.json": run({a: [11.0, 30.0], b: [20.0]}),
        "ours-0.json": run({a: [5.0, 6.0], b: [19.0]}, lse=1e-6),
        "ours-1.json": run({a: [5.0, 7.0], b: [21.0]}),
    }
    for name, content in files.items():
        (tmp_path / name).write_text(json.dumps(content))
    table = tmp_path / "table.md"
    table.write_text(
        "| case | stock | ours | speedup | lse | max abs diff vs stock | within vLLM tol |\n"
        "|---|---|---|---|---|---|---|\n"
        f"| {a} | 11.5 (10.0-30.0) | 5.5 (5.0-7.0) | 2.091 | - | 3.9e-03 | yes |\n"
    )
    report = bench.from_runs(tmp_path, table, None)
    row_a, row_b = report["cases"][a], report["cases"][b]
    assert row_a["stock_us"] == 11.5 and row_a["stock_us_spread"] == {"min": 10.0, "median": 11.5, "max": 30.0}
    assert row_a["ours_us"] == 5.5 and row_a["speedup"] == round(11.5 / 5.5, 3)
    assert (row_a["stock_runs"], row_b["stock_runs"], row_b["ours_runs"]) == (2, 1, 2)
    assert row_a["stock_lse_max_err"] == 2e-6 and "stock_lse_max_err" not in row_b  # from the run that measured it
    assert (row_a["out_max_abs_diff_vs_stock"], row_a["out_within_vllm_tolerance"]) == (3.9e-3, True)
    assert "out_max_abs_diff_vs_stock" not in row_b  # not in the table: not claimed
    assert bench.CASES[2].name in report["missing"] and a not in report["missing"]


def test_add_routes_keeps_the_report_and_adds_each_checked_routes_lse(
    bench: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    report = {"schema": "s", "cases": {"c": {"speedup": 1.1}}}
    figures = [{"case": "decode", "lse_max_abs_err": 2e-6}, {"case": "no lse", "lse_max_abs_err": None}]
    (tmp_path / "r.json").write_text(json.dumps(report))
    (tmp_path / "f.json").write_text(json.dumps(figures))
    argv = ["x", "add-routes", str(tmp_path / "r.json"), "--routes", str(tmp_path / "f.json")]
    monkeypatch.setattr(sys, "argv", argv)
    bench.main()
    assert json.loads(capsys.readouterr().out) == {**report, "lse_max_err": {"decode": 2e-6}}
