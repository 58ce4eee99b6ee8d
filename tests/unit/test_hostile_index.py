"""A hostile or corrupt index manifest (issue 21): every field is checked against its grammar before it becomes a
path or a printed command. publish refuses (exit 8) and leaves the index as it was, writing nothing outside it;
`compat --index` refuses (exit 3); neither ends in an internal error (11) or a hang."""

from __future__ import annotations

import http.client
import json
import os
import shlex
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from fawheels import cli
from fawheels._util.errors import ConfigError, PublishError, UsageError
from fawheels._util.paths import cache_root
from fawheels.publish import index as publish
from fawheels.publish import records, variants
from fawheels.publish.variants import CodeFacts
from support.wheelfactory import toy_wheel

GOOD = "fatoy-1.0+cu130torch2.14-py3-none-any.whl"


def good_record() -> dict[str, Any]:
    rec = records.make_record(
        records.parse_wheel_name(GOOD),
        sha256="ab" * 32,
        size=10,
        metadata=b"Name: fatoy\nVersion: 1.0+cu130torch2.14\n",
        build_info={"archs": {"sass": ["sm_120"], "ptx": []}, "source_date_epoch": 1755000000},
        published=datetime(2026, 1, 1, tzinfo=UTC),
        verify_checks=3,
        facts=CodeFacts("13.0", 13, ("sm_120",), (), "580.65.06").to_json(),
    )
    return rec.to_json()


def with_field(path: str, value: object) -> Callable[[dict[str, Any]], None]:
    def change(rec: dict[str, Any]) -> None:
        *outer, last = path.split(".")
        d = rec
        for key in outer:
            d = d[key]
        d[last] = value

    return change


HOSTILE_RECORDS = {
    "variant-dotdot": (with_field("variant", "../../x"), "variant"),
    "variant-absolute": (with_field("variant", "/tmp/x"), "variant"),
    "variant-dots": (with_field("variant", ".."), "variant"),
    "variant-option": (with_field("variant", "--extra-index-url https://evil.example/"), "variant"),
    "project-slash": (with_field("project", "fatoy/../../x"), "project"),
    "project-quote": (with_field("project", "fatoy'; touch /tmp/PWNED; echo '"), "project"),
    "version-newline": (with_field("version", "1.0+cu130torch2.14\n::error::x"), "version"),
    "filename-slash": (with_field("filename", "../" + GOOD), "filename"),
    "filename-other": (with_field("filename", "other-1.0+cu130torch2.14-py3-none-any.whl"), "filename"),
    "sha-not-hex": (with_field("sha256", "zz"), "sha256"),
    "size-bool": (with_field("size", True), "size"),
    "sass-string": (with_field("facts.sass", "sm_120"), "facts.sass"),
    "driver-huge": (with_field("facts.min_driver", "5" * 5000), "min_driver"),
    "facts-list": (with_field("facts", [1, 2]), "facts"),
    "facts-ptx-junk": (with_field("facts.ptx", [{"arch": "compute_80", "isa": "x"}]), "isa"),
    "target-escape": (with_field("target", "t\x1b]0;owned\x07"), "target"),
}
HOSTILE_DOCS = {
    "not-utf8": b'{"wheels": ["\xff"]}',
    "wheels-int": b'{"wheels": [1]}',
    "empty-record": b'{"wheels": [{}]}',
    "list": b"[{}]",
    "deep": b"[" * 100_000,
}


class Passing:
    ok = True

    def to_json(self) -> dict[str, object]:
        return {"ok": True, "checks": ["stand-in"]}


def manifest_bytes(case: str) -> bytes:
    if case in HOSTILE_DOCS:
        return HOSTILE_DOCS[case]
    rec = good_record()
    HOSTILE_RECORDS[case][0](rec)
    return json.dumps({"schema": 1, "wheels": [rec]}).encode()


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", [*HOSTILE_RECORDS, *HOSTILE_DOCS])
def test_publish_refuses_a_hostile_manifest_and_writes_nothing(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "a" / "b" / "idx"
    root.mkdir(parents=True)
    (root / "wheels.json").write_bytes(manifest_bytes(case))
    wheel = toy_wheel(tmp_path / "w", version="2.0")
    (wheel.parent / (wheel.name + ".verify.json")).write_text('{"ok": true}')
    before = tree(tmp_path)
    with pytest.raises(PublishError, match=r"wheels\.json") as info:
        publish.publish_command([wheel], index=str(root), verifier=lambda p: Passing())
    after = tree(tmp_path)
    assert {k: v for k, v in after.items() if not k.endswith(publish.LOCK)} == before
    assert "\x1b" not in str(info.value)
    if case in HOSTILE_RECORDS:
        assert HOSTILE_RECORDS[case][1] in str(info.value)


@pytest.mark.parametrize("case", [*HOSTILE_RECORDS, *HOSTILE_DOCS])
def test_compat_index_refuses_a_hostile_manifest_with_the_config_code(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "wheels.json").write_bytes(manifest_bytes(case))
    assert cli.main(["compat", "--index", str(tmp_path), "--gpu", "sm_120", "--driver", "580.65.06"]) == 3
    captured = capsys.readouterr()
    assert "wheels.json" in captured.err and "pip install" not in captured.out
    assert "\x1b" not in captured.err and "\n::" not in captured.err


def test_the_printed_install_command_is_quoted_from_validated_parts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    index = tmp_path / "my index; rm -rf ~"
    index.mkdir()
    (index / "wheels.json").write_text(json.dumps({"schema": 1, "wheels": [good_record()]}))
    assert cli.main(["compat", "--index", str(index), "--gpu", "sm_120", "--driver", "580.65.06"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "pip install" in x).strip()
    words = shlex.split(line)
    assert words[:3] == ["pip", "install", "--index-url"] and words[4] == "fatoy==1.0+cu130torch2.14"
    assert words[3] == index.resolve().as_uri() + "/cu130/simple" and len(words) == 5


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ("file://otherhost/srv/idx", "another host"),
        ("idx:1", "unsupported scheme"),
        ("https://host/idx\r\nX-Injected: 1", "control character"),
        ("http:///nohost", "no host"),
    ],
)
def test_compat_index_locations_refused(spec: str, why: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["compat", "--index", spec, "--gpu", "sm_120", "--driver", "580.65.06"]) == 3
    assert why in capsys.readouterr().err


def test_a_fifo_manifest_is_refused_not_waited_on(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    os.mkfifo(tmp_path / "wheels.json")
    assert cli.main(["compat", "--index", str(tmp_path), "--gpu", "sm_120", "--driver", "580.65.06"]) == 3
    assert "FIFO" in capsys.readouterr().err


def test_a_server_answer_is_read_only_up_to_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[int] = []

    class Endless:
        def read(self, n: int = -1) -> bytes:
            asked.append(n)
            assert n > 0, "an unbounded read of a server's answer"
            return b" " * n

        def __enter__(self) -> Endless:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: Endless())
    with pytest.raises(ConfigError, match="larger than"):
        variants.read_manifest("http://index.example/")
    assert asked == [records.MAX_MANIFEST + 1]


def test_a_server_that_breaks_off_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise http.client.IncompleteRead(b"")

    monkeypatch.setattr(urllib.request, "urlopen", broken)
    with pytest.raises(ConfigError, match="cannot read"):
        variants.read_manifest("http://index.example/")


@pytest.mark.parametrize("epoch", [1e12, 10**30, -(10**15), "1755000000", True])
def test_a_build_date_no_calendar_has_is_a_publish_refusal(epoch: object) -> None:
    with pytest.raises(PublishError, match="source_date_epoch"):  # issue 21: was exit 11
        records.make_record(
            records.parse_wheel_name(GOOD),
            sha256="ab" * 32,
            size=1,
            metadata=b"",
            build_info={"source_date_epoch": epoch},
            published=datetime(2026, 1, 1, tzinfo=UTC),
            verify_checks=0,
        )


def test_two_different_files_of_one_name_in_one_call_are_named_as_such(tmp_path: Path) -> None:
    wheels = []
    for salt in ("a", "b"):
        w = toy_wheel(tmp_path / salt, version="1.0", salt=salt)
        (w.parent / (w.name + ".verify.json")).write_text('{"ok": true}')
        wheels.append(w)
    with pytest.raises(PublishError, match="given twice with different bytes"):
        publish.publish_command(wheels, index=str(tmp_path / "idx"), verifier=lambda p: Passing())
    assert not (tmp_path / "idx").exists()


def test_a_symlink_loop_as_index_root_is_named(tmp_path: Path) -> None:
    (tmp_path / "idx").symlink_to(tmp_path / "idx")
    with pytest.raises(PublishError, match="symbolic link that leads nowhere"):
        publish.check_index_dir(tmp_path / "idx")


@pytest.mark.parametrize("spec", ["https://host/idx\r\nX: 1", "idx\x1b[2J"])
def test_publish_refuses_a_location_with_a_control_character(spec: str) -> None:
    with pytest.raises(PublishError, match="not a valid location"):
        publish.parse_index(spec)


def test_fawheels_cache_pointing_at_a_file_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cache").write_text("")
    monkeypatch.setenv("FAWHEELS_CACHE", str(tmp_path / "cache"))
    with pytest.raises(UsageError, match=r"FAWHEELS_CACHE=.*a file, not a directory"):
        cache_root()


@pytest.mark.parametrize("command", ["inspect", "compat"])
def test_a_fifo_or_device_is_refused_not_read(command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    os.mkfifo(tmp_path / "x.so")
    extra = ["--gpu", "sm_120", "--driver", "580.65.06"] if command == "compat" else []
    for path, says in ((tmp_path / "x.so", "a FIFO"), (Path("/dev/zero"), "a device")):
        assert cli.main([command, str(path), *extra]) == 7
        assert says in capsys.readouterr().err
