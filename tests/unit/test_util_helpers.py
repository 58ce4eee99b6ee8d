"""The `_util` helpers that make one decision for every command (issue 23, the house): reading build-info.json
from a wheel, asking nvidia-smi, installing into a target once, and whether an output place is writable."""

from __future__ import annotations

import json
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from fawheels._util import files, gpu, paths, runner
from fawheels._util.errors import PublishError, UsageError
from fawheels._util.wheels import read_build_info


def _wheel(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


INFO = "x-1.0.dist-info/build-info.json"


def test_build_info_is_read_from_the_one_dist_info(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path / "x-1.0-py3-none-any.whl", {INFO: json.dumps({"target": "t"}).encode()})
    assert read_build_info(wheel) == {"target": "t"}


@pytest.mark.parametrize(
    ("members", "said"),
    [
        ({"x-1.0.dist-info/METADATA": b""}, "expected one .dist-info/build-info.json, found 0"),
        ({INFO: b"{}", "y-1.0.dist-info/build-info.json": b"{}"}, "found 2"),
        ({"x/x-1.0.dist-info/build-info.json": b"{}"}, "found 0"),  # nested: not the wheel's own
        ({INFO: b"[1]"}, "is not an object"),
        ({INFO: b"[" * 200_000 + b"]" * 200_000}, "nests too deeply"),
        ({INFO: b"{"}, "x-1.0-py3-none-any.whl: build-info.json is not JSON"),
    ],
)
def test_build_info_refusals_name_the_wheel(tmp_path: Path, members: dict[str, bytes], said: str) -> None:
    wheel = _wheel(tmp_path / "x-1.0-py3-none-any.whl", members)
    with pytest.raises(ValueError, match=said):
        read_build_info(wheel)


def test_a_file_that_is_no_zip_is_a_value_error(tmp_path: Path) -> None:
    wheel = tmp_path / "x-1.0-py3-none-any.whl"
    wheel.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"x-1.0-py3-none-any.whl: not a zip archive"):
        read_build_info(wheel)


# --- nvidia-smi ----------------------------------------------------------------------------------------------


def test_nvidia_smi_is_asked_for_the_fields_in_csv() -> None:
    asked: list[tuple[str, ...]] = []

    def fake(cmd: Sequence[str]) -> tuple[int, str]:
        asked.append(tuple(cmd))
        return 0, "NVIDIA H200, 9.0, 570.195.03\n\nNVIDIA H200, 9.0, 570.195.03\n"

    text = gpu.query(("name", "compute_cap", "driver_version"), fake)
    assert asked == [("nvidia-smi", "--query-gpu=name,compute_cap,driver_version", "--format=csv,noheader")]
    assert gpu.rows(text, ("name", "compute_cap", "driver_version")) == [["NVIDIA H200", "9.0", "570.195.03"]] * 2


def test_a_name_with_a_comma_stays_whole() -> None:
    assert gpu.rows("A, B GPU, 12.0, 580.65.06\n", ("name", "cc", "driver")) == [["A, B GPU", "12.0", "580.65.06"]]


def test_a_short_row_is_refused_with_the_fields_named() -> None:
    with pytest.raises(ValueError, match=r"nvidia-smi printed 'garbage', not name, cc, driver"):
        gpu.rows("garbage\n", ("name", "cc", "driver"))


def test_a_failing_nvidia_smi_says_its_exit_and_stderr() -> None:
    with pytest.raises(gpu.NvidiaSmiError, match=r"nvidia-smi: exit 9: NVIDIA-SMI has failed"):
        gpu.query(("name",), lambda cmd: (9, "NVIDIA-SMI has failed because it couldn't communicate\n"))


def _no_nvidia_smi(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(cmd: Sequence[str], **kwargs: object) -> None:
        raise FileNotFoundError(2, "No such file or directory", cmd[0])

    monkeypatch.setattr(runner, "call", missing)


def test_a_missing_nvidia_smi_is_an_error_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_nvidia_smi(monkeypatch)
    with pytest.raises(gpu.NvidiaSmiError, match=r"nvidia-smi: exit 127"):
        gpu.query(("name",))


def test_the_commands_share_one_answer_to_no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    from fawheels._util.errors import ToolchainError
    from fawheels.check import machine
    from fawheels.deploy import smoke

    _no_nvidia_smi(monkeypatch)
    assert machine.query() == []
    with pytest.raises(ToolchainError, match="no NVIDIA GPU here") as caught:
        smoke.present_gpu()
    assert caught.value.hint == "run smoke on a GPU machine"
    assert smoke.gpu_state()["error"].startswith("nvidia-smi: exit 127")


# --- installing into the cache once --------------------------------------------------------------------------


def test_install_once_installs_then_reuses(tmp_path: Path) -> None:
    root = tmp_path / "entry"
    calls: list[int] = []

    def install() -> None:
        root.mkdir()
        (root / "tool").write_text("x")
        calls.append(1)

    assert paths.install_once(root, "1.2.3", install, note="installing")
    assert (root / paths.COMPLETE_MARKER).read_text() == "1.2.3\n" and paths.is_installed(root)
    assert not paths.install_once(root, "1.2.3", install, note="installing")
    assert calls == [1]


def test_an_interrupted_install_is_cleared_and_redone(tmp_path: Path) -> None:
    root = tmp_path / "entry"
    root.mkdir()
    (root / "half").write_text("left by a killed pip")

    def install() -> None:
        assert not root.exists()  # what the interrupted one left is gone
        root.mkdir()

    assert paths.install_once(root, "2", install, note="again")
    assert sorted(p.name for p in root.iterdir()) == [paths.COMPLETE_MARKER]


def test_a_failed_install_writes_no_marker(tmp_path: Path) -> None:
    root = tmp_path / "entry"

    def install() -> None:
        root.mkdir()
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        paths.install_once(root, "3", install, note="failing")
    assert root.exists() and not paths.is_installed(root)


# --- can outputs be written ----------------------------------------------------------------------------------


def _read_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """A directory that refuses new files (a read-only mount, or another user's), which os.access may not see."""

    def refuse(*args: object, **kwargs: object) -> tuple[int, str]:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)


def test_writable_dir_probes_the_nearest_existing_directory(tmp_path: Path) -> None:
    assert files.writable_dir(tmp_path / "new" / "deeper") is None
    assert list(tmp_path.iterdir()) == []  # the probe is gone and nothing was created
    (tmp_path / "f").write_text("x")
    assert files.writable_dir(tmp_path / "f" / "sub") == f"{tmp_path / 'f'} is a file, not a directory"


def test_check_outputs_names_the_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files.check_outputs(tmp_path / "dist", tmp_path / "r" / "report.json")
    (tmp_path / "report.json").mkdir()
    with pytest.raises(UsageError, match=r"--report .*report.json is a directory"):
        files.check_outputs(None, tmp_path / "report.json")
    _read_only(monkeypatch)
    with pytest.raises(UsageError, match=r"--dist .*: cannot write there: Permission denied") as caught:
        files.check_outputs(tmp_path / "dist", None)
    assert caught.value.hint == "pass a directory this user can write (--dist DIR, --report FILE)"
    with pytest.raises(UsageError, match=r"--report's directory .*: cannot write there"):
        files.check_outputs(None, tmp_path / "report.json")


def test_publish_probes_its_index_like_the_builds_probe_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fawheels.publish import index

    index.check_index_dir(tmp_path / "idx")
    _read_only(monkeypatch)
    with pytest.raises(PublishError, match=r"index .*idx: cannot write there: Permission denied"):
        index.check_index_dir(tmp_path / "idx")
