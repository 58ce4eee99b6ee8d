"""OS errors as their class's exit code with the path and the fix (issue 12): an unwritable `nightly --out`
refused before anything builds, an `overlay --python` that does not exist or is not Python."""

from __future__ import annotations

import errno
import functools
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from fawheels import cli, nightly
from fawheels._util.errors import OverlayError, UsageError
from fawheels._util.files import writable_dir
from fawheels.deploy import overlay
from fawheels.options import BuildSettings
from support.matrices import BASE

T = TypeVar("T")


def recording(calls: list[str], result: T) -> Callable[..., T]:
    """A stand-in for a build step: notes that it was called ("built") and returns `result`."""

    def fake(*args: object, **kwargs: object) -> T:
        calls.append("built")
        return result

    return fake


@pytest.fixture
def matrix_file(tmp_path: Path) -> Path:
    f = tmp_path / "build_matrix.yaml"
    f.write_text(BASE)
    return f


def test_nightly_with_an_out_that_is_a_file_stops_before_building(
    matrix_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    built: list[str] = []
    monkeypatch.setattr(nightly, "run_targets", recording(built, []))
    blocker = tmp_path / "out-is-a-file"
    blocker.write_text("keep")
    # `--out` is the old spelling of nightly's `--dist` (docs/cli.md): it still works, and errors name `--dist`
    for flag in ("--dist", "--out"):
        for out in (blocker, blocker / "sub"):
            code = cli.main(["nightly", "--matrix", str(matrix_file), flag, str(out), "--compiler-cache", "off"])
            assert code == UsageError.exit_code
            err = capsys.readouterr().err
            assert f"--dist {out}: cannot write there: {blocker} is a file" in err and "hint: pass a directory" in err
    assert built == [] and blocker.read_text() == "keep"


def test_nightly_with_an_unwritable_out_stops_before_building(
    matrix_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[str] = []
    monkeypatch.setattr(nightly, "run_targets", recording(built, []))
    real_mkstemp = tempfile.mkstemp

    def read_only(
        suffix: str | None = None,
        prefix: str | None = None,
        dir: str | os.PathLike[str] | None = None,
        text: bool = False,
    ) -> tuple[int, str]:  # a read-only mount (root ignores modes)
        if str(dir or "").startswith(str(tmp_path / "ro")):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return real_mkstemp(suffix, prefix, dir, text)

    (tmp_path / "ro").mkdir()
    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    night = functools.partial(
        nightly.nightly_command,
        matrix_path=matrix_file,
        ids=[],
        keywords=[],
        index=None,
        cache_spec="off",
        settings=BuildSettings(),
    )
    with pytest.raises(UsageError, match="Read-only file system"):
        night(out=tmp_path / "ro", report=None)
    with pytest.raises(UsageError, match="--report's directory"):
        night(out=tmp_path / "fine", report=tmp_path / "ro" / "r.json")
    assert built == []


def test_writable_dir_leaves_nothing_behind(tmp_path: Path) -> None:
    assert writable_dir(tmp_path / "a" / "b") is None
    assert list(tmp_path.iterdir()) == []  # not even the directories it was asked about
    (tmp_path / "f").write_text("")
    assert writable_dir(tmp_path / "f") == f"{tmp_path / 'f'} is a file, not a directory"
    assert writable_dir(tmp_path / "f" / "sub") is not None


@pytest.mark.parametrize("kind", ["missing", "directory", "not-executable", "not-on-path"])
def test_overlay_python_that_cannot_run_is_refused_first(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    python = {
        "missing": str(tmp_path / "venv" / "bin" / "python"),
        "directory": str(tmp_path),
        "not-executable": str(tmp_path / "python"),
        "not-on-path": "python-that-is-nowhere",
    }[kind]
    (tmp_path / "python").write_text("#!/bin/sh\n")
    (tmp_path / "python").chmod(stat.S_IRUSR | stat.S_IWUSR)
    wheel = tmp_path / "never-read.whl"  # the interpreter is checked before the wheel is opened
    code = cli.main(["overlay", str(wheel), "--into-site-packages", "--python", python])
    assert code == OverlayError.exit_code
    err = capsys.readouterr().err
    assert f"--python {python}" in err and "hint: pass" in err and "Traceback" not in err


@pytest.mark.tools
@pytest.mark.parametrize(
    "program", ["#!/bin/sh\nexit 0\n", "#!/bin/sh\necho hello\n", "#!/bin/sh\ncat\n", "#!/bin/sh\necho '[1, 2]'\n"]
)
def test_overlay_python_that_is_not_python_is_refused(program: str, tmp_path: Path) -> None:
    fake = tmp_path / "python3"
    fake.write_text(program)
    fake.chmod(0o755)
    served = overlay.Served(tmp_path / "w.whl", "vllm", None, "vllm/_C.so", "ns", None, b"")  # type: ignore[arg-type]
    with pytest.raises(OverlayError, match="is not a Python interpreter"):
        overlay.probe(str(fake), served)


@pytest.mark.parametrize("argv", [["--jobs", "0"], ["--jobs", "-3"], ["-j", "many"]])
def test_build_refuses_a_job_count_that_is_not_a_count(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["build", *argv])
    assert info.value.code == UsageError.exit_code
    assert "--jobs" in capsys.readouterr().err


@pytest.mark.parametrize("where", ["dist", "report"])
def test_build_refuses_unwritable_outputs_before_building(
    where: str, tmp_path: Path, matrix_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from fawheels.compile import command

    started: list[str] = []
    monkeypatch.setattr(command, "build_command", recording(started, 0))
    blocker = tmp_path / "a-file"
    blocker.write_text("keep")
    argv = ["build", "--matrix", str(matrix_file)]
    argv += ["--dist", str(blocker / "dist")] if where == "dist" else ["--report", str(blocker / "r.json")]
    assert cli.main(argv) == UsageError.exit_code
    err = capsys.readouterr().err
    assert f"{blocker} is a file, not a directory" in err and "Traceback" not in err
    assert started == [] and blocker.read_text() == "keep"
    assert not (tmp_path / "dist").exists()


def test_a_matrix_path_that_is_not_a_file_says_so(tmp_path: Path) -> None:
    from fawheels._util.errors import ConfigError
    from fawheels.matrix.config import load_matrix_file

    with pytest.raises(ConfigError, match="is not a regular file"):
        load_matrix_file(tmp_path)


def test_a_bad_redis_port_is_a_config_error() -> None:
    from fawheels._util.errors import ConfigError
    from fawheels.toolchain.compilercache import parse_cache_spec

    with pytest.raises(ConfigError, match="Port out of range"):
        parse_cache_spec("redis://h:99999", {})


@pytest.mark.parametrize("index", ["FILE", "FILE/cu130", "http://user:pw@host/", "http://["])
def test_nightly_refuses_an_unusable_index_before_building(
    index: str, matrix_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    built: list[str] = []
    monkeypatch.setattr(nightly, "run_targets", recording(built, []))
    blocker = tmp_path / "index-file"
    blocker.write_text("keep")
    code = cli.main(
        [
            "nightly",
            "--matrix",
            str(matrix_file),
            "--out",
            str(tmp_path / "out"),
            "--compiler-cache",
            "off",
            "--index",
            index.replace("FILE", str(blocker)),
        ]
    )
    assert code == 8 and built == []
    assert "pw" not in capsys.readouterr().err


class _ClosedPipe:
    def write(self, s: str) -> int:
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")


def test_a_reader_that_goes_away_is_not_a_traceback(
    matrix_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdout", _ClosedPipe())
    assert cli.main(["matrix", "--matrix", str(matrix_file)]) == cli.BROKEN_PIPE_EXIT
    assert capsys.readouterr().err == ""
