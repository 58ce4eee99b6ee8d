"""Hostile input to publish and the CLI around it (issue 12): leaked credentials, a silent server, an
interrupted copy, an index path that cannot be written, exit codes and the failed-publish hint.

Servers here are real sockets on loopback inside the test process; interrupted copies are real processes
killed by real signals (marker `tools`).
"""

from __future__ import annotations

import base64
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from fawheels import cli, commands
from fawheels._util.errors import EXIT_CODES, FawheelsError, InternalError, PublishError, UsageError
from fawheels._util.redact import redact, secrets_from_env
from fawheels.publish import index as publish
from fawheels.publish import server
from support.wheelfactory import toy_wheel


def use_handler(monkeypatch: pytest.MonkeyPatch, command: str, handler: Callable[[Any], int]) -> None:
    """The registry's handler of `command` replaced for one test (cli.main looks it up when it runs)."""
    monkeypatch.setitem(commands.BY_NAME, command, replace(commands.BY_NAME[command], handler=handler))


REPO = Path(__file__).resolve().parents[2]
USER, PASSWORD = "ci-bot", "Upl0ad-s3cret!"


class Passing:
    ok = True

    def to_json(self) -> dict[str, object]:
        return {"ok": True, "checks": ["stand-in"]}


def verified(wheel: Path) -> Path:
    wheel.with_name(wheel.name + ".verify.json").write_text(json.dumps({"ok": True}))
    return wheel


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------- redaction


BASIC = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


@pytest.mark.parametrize(
    "text",
    [
        f"Authorization: Basic {BASIC}",
        f"{{'HTTP_AUTHORIZATION': 'Basic {BASIC}'}}",
        f"echo: Basic {BASIC.rstrip('=')}",  # the padding stripped by whoever echoed it
        "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln",
        f"clone https://{USER}:{PASSWORD}@git.example/repo.git failed",
        "clone https://ghp_abcDEF123456@github.com/o/r failed",
        f"TWINE_PASSWORD={PASSWORD}",
        f"form field password: {PASSWORD}",
        f"quoted {PASSWORD.replace('!', '%21')}",
    ],
)
def test_every_form_of_a_credential_is_masked(text: str) -> None:
    out = redact(text, [PASSWORD], [USER])
    for leaked in (
        PASSWORD,
        BASIC,
        BASIC.rstrip("="),
        "ghp_abcDEF123456",
        "eyJhbGciOiJIUzI1NiJ9",
        PASSWORD.replace("!", "%21"),
    ):
        assert leaked not in out, out
    assert "***" in out


def test_redaction_leaves_ordinary_text_alone() -> None:
    for text in (
        "basic checks passed",
        "sha256=ab12 token expired",
        "see https://example.org/a@b",
        "Bearer of bad news",
    ):
        assert redact(text) == text


def test_secrets_come_from_password_and_token_variables_only() -> None:
    secrets, users = secrets_from_env(
        {
            "TWINE_PASSWORD": "hunter2hunter2",
            "GITHUB_TOKEN": "ghs_123456789",
            "HF_HUB_DISABLE_TOKEN": "1",
            "SOME_TOKEN": "false",
            "PATH": "/usr/bin",
        }
    )
    assert set(secrets) == {"hunter2hunter2", "ghs_123456789"}
    assert "__token__" in users


class _EchoingServer(BaseHTTPRequestHandler):
    """A broken index: lists nothing, accepts the auth probe, then fails the upload with a 500 page that
    echoes the request headers (as some frameworks' debug pages do)."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(404)
        self.end_headers()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if b'name="content"' not in body:
            self.send_response(200)
            self.end_headers()
            return
        page = ("Internal Server Error\n" + "\n".join(f"{k}: {v}" for k, v in self.headers.items())).encode()
        self.send_response(500)
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)


@pytest.fixture
def echoing_index() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoingServer)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_upload_error_echoing_the_authorization_header_leaks_nothing(echoing_index: str, tmp_path: Path) -> None:
    w = verified(toy_wheel(tmp_path / "w"))
    env = {"FAWHEELS_INDEX_USER": USER, "FAWHEELS_INDEX_PASSWORD": PASSWORD}
    with pytest.raises(PublishError, match=r"refused .*\(500\)") as info:
        publish.publish_command([w], index=echoing_index, verifier=lambda p: Passing(), env=env)
    message = str(info.value)
    assert "Authorization" in message  # the echo is shown ...
    assert BASIC not in message and PASSWORD not in message and BASIC.rstrip("=") not in message  # ... masked


def test_cli_output_is_redacted_whatever_prints_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FAWHEELS_INDEX_PASSWORD", PASSWORD)

    def leaky(args: object) -> int:
        print(f"debug: password is {PASSWORD}")
        raise PublishError(f"server said: Authorization: Basic {BASIC}")

    use_handler(monkeypatch, "matrix", leaky)
    assert cli.main(["matrix"]) == PublishError.exit_code
    out, err = capsys.readouterr()
    assert PASSWORD not in out + err and BASIC not in out + err
    assert "***" in out and "***" in err


# ------------------------------------------------------------------------------------------ timeouts


def test_a_server_that_never_answers_ends_in_a_clear_error(tmp_path: Path) -> None:
    w = verified(toy_wheel(tmp_path / "w"))
    with socket.socket() as silent:  # accepts connections (the kernel's backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        start = time.monotonic()
        with pytest.raises(PublishError, match=r"did not answer within 0\.5 s") as info:
            publish.publish_command([w], index=url, verifier=lambda p: Passing(), env={"FAWHEELS_INDEX_TIMEOUT": "0.5"})
        assert time.monotonic() - start < 30
    assert "FAWHEELS_INDEX_TIMEOUT" in str(info.value)


@pytest.mark.parametrize("value", ["0", "-1", "soon", "1e9"])
def test_a_bad_timeout_setting_is_refused(value: str) -> None:
    with pytest.raises(PublishError, match="FAWHEELS_INDEX_TIMEOUT"):
        server.index_timeout({"FAWHEELS_INDEX_TIMEOUT": value})


# ------------------------------------------------------------------------------- interrupted copies

# Copies a FIFO (fed slowly by the test) into the index directory, with the CLI's signal handlers.
_COPIER = """
import signal, sys
from pathlib import Path
from fawheels import cli
from fawheels.publish import index as publish
signal.signal(signal.SIGINT, signal.default_int_handler)  # as a foreground process has it, even if launched
signal.signal(signal.SIGTERM, cli._interrupt_on_sigterm)  # from a background job, which inherits SIGINT ignored
signal.signal(signal.SIGHUP, cli._interrupt_on_sigterm)
publish._copy_atomic(Path(sys.argv[1]), Path(sys.argv[2]), "00" * 32)
"""


def _feed(fifo: Path, child: subprocess.Popen[bytes]) -> int:
    """The write end of the FIFO, once the child has opened it for reading (never blocks on a dead child)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO:
                raise
            assert child.poll() is None, "the copier died before it opened its input"
            assert time.monotonic() < deadline, "the copier never opened its input"
            time.sleep(0.02)
            continue
        os.set_blocking(fd, True)
        return fd


@pytest.mark.tools
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGKILL])
def test_a_copy_killed_by_any_signal_leaves_no_partial_file(sig: signal.Signals, tmp_path: Path) -> None:
    fifo = tmp_path / "wheel-being-read"
    os.mkfifo(fifo)
    index = tmp_path / "index"
    index.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    child = subprocess.Popen(
        [sys.executable, "-c", _COPIER, str(fifo), str(index / "big.whl")], env=env, stderr=subprocess.PIPE
    )
    try:
        with open(_feed(fifo, child), "wb") as feed:
            feed.write(b"x" * (1 << 20))
            feed.flush()
            deadline = time.monotonic() + 60
            while not list(index.iterdir()):  # the partial file is there ...
                assert child.poll() is None and time.monotonic() < deadline
                time.sleep(0.02)
            child.send_signal(sig)
            child.wait(timeout=60)
    except BrokenPipeError:
        child.wait(timeout=60)
    finally:
        child.kill()
        child.wait()
    deadline = time.monotonic() + 10
    while list(index.iterdir()) and time.monotonic() < deadline:  # the guardian may take a moment
        time.sleep(0.02)
    assert list(index.iterdir()) == [], "a partial file remains in the index"


@pytest.mark.tools
def test_a_copy_whose_whole_process_group_is_killed_leaves_no_partial_file(tmp_path: Path) -> None:
    # A CI runner that cancels a job may SIGKILL the publisher's whole process group at once.
    fifo = tmp_path / "wheel-being-read"
    os.mkfifo(fifo)
    index = tmp_path / "index"
    index.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    child = subprocess.Popen(
        [sys.executable, "-c", _COPIER, str(fifo), str(index / "big.whl")], env=env, start_new_session=True
    )
    try:
        with open(_feed(fifo, child), "wb") as feed:
            feed.write(b"x" * (1 << 20))
            feed.flush()
            deadline = time.monotonic() + 60
            while not list(index.iterdir()):
                assert child.poll() is None and time.monotonic() < deadline
                time.sleep(0.02)
            os.killpg(child.pid, signal.SIGKILL)
            child.wait(timeout=60)
    except BrokenPipeError:
        child.wait(timeout=60)
    deadline = time.monotonic() + 10
    while list(index.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert list(index.iterdir()) == [], "a partial file remains in the index"


def test_an_interrupted_publish_names_the_index_not_dist() -> None:
    args = cli.build_parser().parse_args(["publish", "a.whl", "--index", "/srv/wheels/cu130"])
    message = cli.interrupted_message(args)
    assert "/srv/wheels/cu130" in message and "dist" not in message


# ------------------------------------------------------------------------------------ OS errors


def test_an_index_path_that_is_a_file_is_refused_before_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    w = verified(toy_wheel(tmp_path / "w"))
    not_a_dir = tmp_path / "index.txt"
    not_a_dir.write_text("hello")
    for spec in (not_a_dir, not_a_dir / "cu130"):
        assert cli.main(["publish", str(w), "--index", str(spec)]) == PublishError.exit_code
        err = capsys.readouterr().err
        assert "is a file, not a directory" in err and str(not_a_dir) in err and "Traceback" not in err
    assert not_a_dir.read_text() == "hello"


def test_a_read_only_index_is_a_publish_error_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    index = tmp_path / "index"
    index.mkdir()
    w = verified(toy_wheel(tmp_path / "w"))

    def read_only(path: Path) -> None:  # what a read-only mount answers (root ignores mode bits)
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    monkeypatch.setattr(publish, "_mkdir_public", read_only)
    with pytest.raises(PublishError, match=f"cannot write the index {index}: Read-only file system"):
        publish.publish_command([w], index=str(index), verifier=lambda p: Passing())
    assert tree(index) == {}


def test_an_unreadable_report_is_a_publish_error(tmp_path: Path) -> None:
    w = toy_wheel(tmp_path / "w")
    w.with_name(w.name + ".verify.json").mkdir()  # a directory where the report should be
    with pytest.raises(PublishError, match="cannot read"):
        publish.publish_command([w], index=str(tmp_path / "idx"), verifier=lambda p: Passing())


def test_a_deep_or_huge_build_info_in_a_wheel_is_refused(tmp_path: Path) -> None:
    import zipfile

    w = toy_wheel(tmp_path / "w")
    rewritten = tmp_path / "deep" / w.name
    rewritten.parent.mkdir()
    with zipfile.ZipFile(w) as zin, zipfile.ZipFile(rewritten, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith("/build-info.json"):
                data = b"[" * 200_000 + b"]" * 200_000
            zout.writestr(info, data)
    verified(rewritten)
    with pytest.raises(PublishError, match=r"unreadable wheel|not a JSON object"):
        publish.publish_command([rewritten], index=str(tmp_path / "idx"), verifier=lambda p: Passing())


# ----------------------------------------------------------------------------------- exit codes


def test_internal_error_has_its_own_exit_code() -> None:
    codes = set(EXIT_CODES.values())
    assert len(codes) == len(EXIT_CODES), "two error kinds share an exit code"
    assert InternalError.exit_code not in (0, 1, 2, 130)
    assert UsageError.exit_code == 2
    assert FawheelsError("bare").exit_code == InternalError.exit_code


def test_a_bug_exits_with_the_internal_code_and_no_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def buggy(args: object) -> int:
        empty: dict[str, int] = {}
        return empty["missing"]

    use_handler(monkeypatch, "matrix", buggy)
    monkeypatch.delenv("FAWHEELS_DEBUG", raising=False)
    assert cli.main(["matrix"]) == InternalError.exit_code
    err = capsys.readouterr().err
    assert "internal error: KeyError" in err and "Traceback" not in err and "FAWHEELS_DEBUG=1" in err


def test_an_unmapped_os_error_gets_the_commands_class(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def denied(args: object) -> int:
        raise PermissionError(errno.EACCES, "Permission denied", "/srv/index/wheels.json")

    use_handler(monkeypatch, "publish", denied)
    assert cli.main(["publish", "a.whl", "--index", "/srv/index"]) == PublishError.exit_code
    err = capsys.readouterr().err
    assert "/srv/index/wheels.json: Permission denied" in err and "hint: check the permissions" in err


def test_an_error_message_is_bounded(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def huge(args: object) -> int:
        raise PublishError("x" * 5_000_000)

    use_handler(monkeypatch, "matrix", huge)
    assert cli.main(["matrix"]) == PublishError.exit_code
    assert len(capsys.readouterr().err) < 2 * cli.MAX_MESSAGE


@pytest.mark.parametrize("spec", ["http://[", "https://host:port/", "A://[", "", "/srv/\x00idx"])
def test_a_malformed_index_location_is_a_publish_error(spec: str) -> None:  # found by tests/unit/test_fuzz.py
    with pytest.raises(PublishError, match="not a valid location"):
        publish.parse_index(spec)


@pytest.mark.nvcc
def test_the_failed_publish_hint_is_a_command_that_writes_the_report_publish_wants(tmp_path: Path) -> None:
    import re
    import shlex

    from support.wheelfactory import compile_extension, nvcc

    if nvcc() is None:
        pytest.skip("nvcc not found")
    w = toy_wheel(tmp_path / "w", extension=compile_extension(tmp_path / "ext"))  # real verify passes it
    index = tmp_path / "index"
    with pytest.raises(PublishError, match="no verify report beside it") as info:
        publish.publish_command([w], index=str(index))
    m = re.search(r"run `fawheels ([^`]+)`", info.value.hint or "")
    assert m, info.value.hint
    assert cli.main(shlex.split(m.group(1))) == 0  # the hint, run as written
    assert publish.publish_command([w], index=str(index)) == 0  # now publish takes it, with the real verifier
    assert (index / "cu130" / "simple" / "fatoy" / w.name).is_file()


@pytest.mark.parametrize(
    "text",
    [
        "a-" * 100_000,
        "a." * 100_000 + "password",
        "x:" * 100_000,
        ("a" * 30 + "://") * 5_000,
        "Basic " * 20_000,
        "A" * 200_000 + "@",
    ],
)
def test_redaction_stays_linear_on_pathological_text(text: str) -> None:
    # Before the patterns were bounded the first of these backtracked quadratically (minutes, a hung CLI:
    # every line fawheels prints passes through redact). Completing at all is the assertion.
    assert len(redact(text, [PASSWORD], [USER])) <= len(text) + 3


def test_a_file_url_on_another_host_is_refused_not_published_locally() -> None:
    # Before: file://fileserver/srv/idx published into this machine's /srv/idx.
    with pytest.raises(PublishError, match="a file URL on another host"):
        publish.parse_index("file://fileserver/srv/idx")
    assert publish.parse_index("file:///srv/idx").root == Path("/srv/idx")
    assert publish.parse_index("file://localhost/srv/idx").root == Path("/srv/idx")


def test_the_provenance_command_line_carries_no_credential(monkeypatch: pytest.MonkeyPatch) -> None:
    from fawheels.publish.provenance import command_line

    monkeypatch.setenv("FAWHEELS_INDEX_PASSWORD", PASSWORD)
    line = command_line(
        ["/venv/bin/fawheels", "build", "--matrix", f"https://{USER}:{PASSWORD}@h/m.yaml", f"--note={PASSWORD}"]
    )
    assert line[:2] == ["fawheels", "build"] and PASSWORD not in " ".join(line)


@pytest.mark.parametrize(
    "text",
    [
        "https://idx.example/simple/?token=abc123XYZ",
        "X-Amz-Signature=deadbeef99",
        "GITHUB_TOKEN: ghs_abc123",
        "'access_token': 'tok-123'",
    ],
)
def test_tokens_in_query_strings_and_settings_are_masked(text: str) -> None:
    out = redact(text)
    assert "***" in out
    for leaked in ("abc123XYZ", "deadbeef99", "ghs_abc123", "tok-123"):
        assert leaked not in out
