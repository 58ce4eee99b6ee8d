"""CI log groups: on GitHub Actions a target's lines fold under its id; a title from data cannot end the group
early or start another workflow command; elsewhere nothing is added."""

from __future__ import annotations

import pytest

from fawheels._util import console


def _grouped(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], actions: str | None, title: str
) -> str:
    if actions is None:
        monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    else:
        monkeypatch.setenv("GITHUB_ACTIONS", actions)
    with console.group(title):
        console.step("[1/2] unit 148 s")
    captured = capsys.readouterr()
    return captured.out + captured.err


def test_on_github_actions_the_lines_fold_under_the_target(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _grouped(monkeypatch, capsys, "true", "fa2-cu130-torch2.14-sm120-cp311")
    assert out.splitlines() == ["::group::fa2-cu130-torch2.14-sm120-cp311", "::endgroup::", "[1/2] unit 148 s"]


def test_elsewhere_nothing_is_added(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert _grouped(monkeypatch, capsys, None, "t").splitlines() == ["[1/2] unit 148 s"]
    assert _grouped(monkeypatch, capsys, "false", "t").splitlines() == ["[1/2] unit 148 s"]


def test_a_title_from_data_stays_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    out = _grouped(monkeypatch, capsys, "true", "t\n::endgroup::\n::add-mask::x")
    lines = out.splitlines()
    assert lines[0].startswith("::group::t") and lines[1] == "::endgroup::"
    assert sum(line.startswith("::") for line in lines) == 2
