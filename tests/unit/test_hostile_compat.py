"""Hostile `compat` arguments (issue 12): ambiguous or unknown GPUs and drivers are refused, listing the
accepted forms, instead of being read as something else."""

from __future__ import annotations

from pathlib import Path

import pytest

from fawheels import cli
from fawheels._util.errors import ConfigError
from fawheels.matrix import cudafacts
from fawheels.matrix.cudafacts import known_ccs, parse_gpu

DATA = Path(__file__).parents[1] / "data"


@pytest.mark.parametrize(
    ("gpu", "why"),
    [
        ("12", "bare number is ambiguous: write 12.0"),  # was read as compute capability 1.2
        ("120", "bare number is ambiguous"),
        ("99.9", "no GPU has compute capability 99.9"),
        ("1.2", "no GPU has compute capability 1.2"),
        ("sm_999", "not an arch of any GPU"),
        ("compute_12", "not an arch of any GPU"),
        ("sm_", "unknown GPU"),
        ("", "not a GPU"),
        ("x" * 10_000, "not a GPU"),
    ],
)
def test_ambiguous_or_unknown_gpus_are_refused_listing_the_forms(gpu: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why) as info:
        parse_gpu(gpu)
    text = str(info.value)
    assert "compute capability (12.0)" in text and len(text) < 1000


@pytest.mark.parametrize(
    ("gpu", "cc"),
    [
        ("12.0", (12, 0)),
        ("sm_120", (12, 0)),
        ("sm_90a", (9, 0)),
        ("compute_121", (12, 1)),
        ("SM_100F", (10, 0)),
        ("RTX PRO 6000", (12, 0)),
        ("nvidia h100", (9, 0)),
        (" 8.9 ", (8, 9)),
    ],
)
def test_accepted_gpu_forms(gpu: str, cc: tuple[int, int]) -> None:
    assert parse_gpu(gpu) == cc


def test_every_known_compute_capability_is_accepted() -> None:
    for major, minor in known_ccs():
        assert parse_gpu(f"{major}.{minor}") == (major, minor)
        assert parse_gpu(f"sm_{major}{minor}") == (major, minor)


@pytest.mark.parametrize(
    "driver",
    [
        "latest",
        "580",
        "5.80",
        "58.0.1",
        "580.65.06.1",
        "-580.65",
        "0580.65",
        "580.65.",
        "1" * 5000,
        "580,65",
        "580.65.06\n581",
    ],
)
def test_bad_drivers_are_refused(driver: str) -> None:
    with pytest.raises(ConfigError, match="not a driver version") as info:
        cudafacts.parse_driver(driver)
    assert "580.65.06" in str(info.value) and len(str(info.value)) < 500


@pytest.mark.parametrize("driver", ["580.65.06", "570.195.03", "575.51", " 580.65.06 "])
def test_accepted_drivers(driver: str) -> None:
    assert str(cudafacts.parse_driver(driver)) == driver.strip()


def test_cli_refuses_gpu_12_with_exit_3(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["compat", str(DATA / "multi.fatbin"), "--gpu", "12", "--driver", "580.65.06"]) == 3
    err = capsys.readouterr().err
    assert "ambiguous" in err and "Traceback" not in err
