"""options.BuildSettings: a build's flags and environment variables, read in one place (issue 23, the house)."""

from __future__ import annotations

import dataclasses

import pytest

from fawheels._util.errors import UsageError
from fawheels.cli import build_parser, main
from fawheels.options import DEFAULT_SETTINGS, IN_IMAGE, BuildSettings


def resolve(argv: list[str], environ: dict[str, str] | None = None) -> BuildSettings:
    return BuildSettings.resolve(build_parser().parse_args(argv), environ or {})


def test_no_flag_and_no_variable_is_the_default() -> None:
    assert resolve(["build"]) == DEFAULT_SETTINGS == BuildSettings()
    assert resolve(["nightly"]) == DEFAULT_SETTINGS
    assert BuildSettings.resolve(None, {}) == DEFAULT_SETTINGS  # a command without build options


def test_flags_are_read() -> None:
    got = resolve(["build", "--jobs", "3", "--offline", "--clean", "--container"])
    assert got == BuildSettings(jobs=3, offline=True, clean=True, container=True)
    assert resolve(["nightly", "-j", "2", "--clean"]) == BuildSettings(jobs=2, clean=True)


def test_variables_are_read() -> None:
    environ = {
        "MAX_JOBS": "5",
        "FAWHEELS_COMPILER_LAUNCHER": "/usr/bin/sccache",
        "SOURCE_DATE_EPOCH": "1755000000",
        IN_IMAGE: "1",
    }
    assert resolve(["build"], environ) == BuildSettings(
        jobs=5, launcher="/usr/bin/sccache", source_date_epoch=1755000000, in_image=True
    )


def test_the_flag_beats_the_variable() -> None:
    assert resolve(["build", "--jobs", "2"], {"MAX_JOBS": "8"}).jobs == 2
    # the variable is not read at all when the flag says it: a stale bad value does not stop the build
    assert resolve(["build", "--jobs", "2"], {"MAX_JOBS": "lots"}).jobs == 2


@pytest.mark.parametrize("value", ["lots", "0", "-1", "2.5", "99999"])
def test_a_bad_max_jobs_is_a_usage_error_naming_the_variable(value: str) -> None:
    with pytest.raises(UsageError, match="MAX_JOBS") as info:
        resolve(["build"], {"MAX_JOBS": value})
    assert info.value.exit_code == 2


@pytest.mark.parametrize("value", ["yesterday", "-5", "1.5"])
def test_a_bad_source_date_epoch_is_a_usage_error_naming_the_variable(value: str) -> None:
    with pytest.raises(UsageError, match="SOURCE_DATE_EPOCH"):
        resolve(["build"], {"SOURCE_DATE_EPOCH": value})


def test_empty_variables_are_unset() -> None:
    assert resolve(["build"], {"MAX_JOBS": "", "SOURCE_DATE_EPOCH": " ", "FAWHEELS_COMPILER_LAUNCHER": ""}) == (
        DEFAULT_SETTINGS
    )


def test_the_settings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT_SETTINGS.jobs = 4  # type: ignore[misc]


def test_the_command_line_reports_a_bad_max_jobs_as_usage(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MAX_JOBS", "lots")
    assert main(["build", "--dry-run"]) == 2  # before the matrix is even read
    assert "MAX_JOBS='lots'" in capsys.readouterr().err
