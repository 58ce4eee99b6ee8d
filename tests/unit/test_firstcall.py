"""The first-call measurement's pure parts (the GPU run itself: scripts/gpu-perf.sh, bench/gpu-perf.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fawheels._util.errors import FawheelsError
from fawheels.deploy.firstcall import first_call_command, parse_child_output, summarize


def test_summary_is_min_median_max_per_field() -> None:
    runs: list[dict[str, object]] = [
        {"first_call_s": 3.0, "import_flash_attn_s": 0.2},
        {"first_call_s": 1.0, "import_flash_attn_s": 0.1},
        {"first_call_s": 2.0, "import_flash_attn_s": 0.3},
        {"error": "crashed", "finite": False},
    ]
    summary = summarize(runs)
    assert summary["first_call_s"] == {"min": 1.0, "median": 2.0, "max": 3.0}
    assert summary["import_flash_attn_s"] == {"min": 0.1, "median": 0.2, "max": 0.3}
    assert "second_call_s" not in summary  # nothing measured, nothing claimed


def test_child_output_is_its_last_json_line() -> None:
    text = 'Warning: something on stderr\n{"first_call_s": 0.5}\n'
    assert parse_child_output(text) == {"first_call_s": 0.5}
    with pytest.raises(FawheelsError, match="printed no result"):
        parse_child_output("Segmentation fault\n{not json\n")


def test_bad_arguments_are_refused_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(FawheelsError, match="no such wheel"):
        first_call_command(str(tmp_path / "missing.whl"))
    bogus = tmp_path / "bogus.whl"
    bogus.write_text("not a zip")
    with pytest.raises(FawheelsError, match="not a fawheels wheel"):
        first_call_command(str(bogus))
    with pytest.raises(FawheelsError, match="--runs"):
        first_call_command(str(bogus), runs=0)
