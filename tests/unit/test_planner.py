"""The planner picks the split granularity from the machine (issue 23): split-KV units in parts only where they
shorten the predicted compile wall. Pure: the plan from the matrix, a job history and the cores; no subprocess."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from fawheels.compile import jobstats, planner
from fawheels.compile.plan import host_units, ninja_jobs, plan_compile
from fawheels.compile.units import compile_units
from fawheels.matrix.config import load_matrix_file

REPO = Path(__file__).resolve().parents[2]
MATRIX = load_matrix_file(REPO / "build_matrix.yaml")
DEFAULT = MATRIX.target(MATRIX.default_target)
GB = jobstats.GB


def choose(cpus: int, history: Mapping[str, list[dict[str, Any]]] | None = None, **kw: object) -> planner.Choice:
    args: dict[str, object] = {
        "nvcc_version": "13.0.88",
        "history": history or {},
        "cpus": cpus,
        "mem": 128 * GB,
        "override": None,
        "parts_available": True,
    }
    args.update(kw)
    return plan_compile(DEFAULT, **args)  # type: ignore[arg-type]


def test_two_cores_build_the_default_target_unsplit_and_sixteen_in_parts() -> None:
    two, sixteen = choose(2), choose(16)
    assert not two.way.parts and two.other is not None and two.other.parts
    assert two.way.wall_s < two.other.wall_s  # the parts add ~30 s of headers per job where the wall is CPU
    assert sixteen.way.parts and sixteen.other is not None
    assert sixteen.way.wall_s < 0.95 * sixteen.other.wall_s  # one split-KV unit no longer floors the wall
    assert len(two.way.units) == 8 and len(sixteen.way.units) == 24
    assert "split-KV units whole" in two.sentence and "in parts" in two.sentence
    assert two.sentence.startswith("2 jobs at once (limited by the 2 cores)")


def test_without_patch_0005_there_is_nothing_to_weigh() -> None:
    choice = choose(16, parts_available=False)
    assert not choice.way.parts and choice.other is None
    assert "split-KV" not in choice.sentence


def test_measured_job_times_decide_over_the_static_estimates() -> None:
    # A history where the parts were measured as costly as the whole units: never worth it, even on 16 cores.
    archs, flags = ["sm_120"], ["--threads=1"]
    units = {*compile_units(DEFAULT.profile, False), *compile_units(DEFAULT.profile, True), *host_units(DEFAULT)}
    seconds = {u: (300.0 if "_part_" in u else 310.0 if "_split_" in u else 150.0) for u in units}
    history = {
        jobstats.stats_key("13.0.88", archs, u, flags): [{"wall_s": s, "peak_rss_bytes": 4 * GB}]
        for u, s in seconds.items()
    }
    choice = choose(16, history)
    assert not choice.way.parts
    assert choice.way.measured == len(choice.way.seconds)
    assert "of 9 job times measured" in choice.sentence


def test_one_count_everywhere_is_ninjas() -> None:
    # kernel units + flash_api.cpp + the link: what ninja prints as [n/N]
    assert ninja_jobs(DEFAULT, compile_units(DEFAULT.profile, True)) == 26
    assert ninja_jobs(DEFAULT, compile_units(DEFAULT.profile, False)) == 10
    vllm = next(t for t in MATRIX.targets if t.recipe == "vllm-fa2")
    assert host_units(vllm) == ["flash_api.cpp", "binding.cpp"]  # vLLM's log said [0/50], ninja [1/51]


def test_predicted_wall_is_longest_first_on_the_free_slot() -> None:
    seconds = {"a": 10.0, "b": 6.0, "c": 4.0, "d": 4.0}
    assert planner.predicted_wall(seconds, 1) == 24
    assert planner.predicted_wall(seconds, 2) == 14  # a | b, then c -> b's slot (10), d -> a's (14): as ninja
    assert planner.predicted_wall(seconds, 4) == 10


def test_static_estimates_are_scaled_to_what_was_measured() -> None:
    units = ["x_split_hdim128_bf16_sm80.cu", "y_hdim128_bf16_sm80.cu"]
    seconds, measured = planner.estimates(units, lambda u: 296.0 if u.startswith("y") else None, 1)
    assert measured == 1
    assert seconds[units[1]] == 296.0
    assert seconds[units[0]] == pytest.approx(2 * 305.0)  # measured twice the static figure: so is the other
