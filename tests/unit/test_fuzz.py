"""Fuzz tier (Hypothesis) over what a hostile user types or writes: the matrix loader, compat's GPU and driver
arguments, publish's wheel filenames and index locations, and the redactor.

Properties: only fawheels' own error classes escape; memory stays under a cap; a refusal writes nothing.
The budget is fixed (a set number of examples per test, derandomized so CI sees the same inputs every run);
the whole file takes about 20 s here. The binary readers' fuzzing lives with them (inspect/verify).
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
import string
import tracemalloc
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar
from urllib.parse import quote, quote_plus

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fawheels import cli
from fawheels._util import names
from fawheels._util.errors import ConfigError, FawheelsError, PublishError
from fawheels._util.redact import redact
from fawheels._util.show import visible
from fawheels.matrix import cudafacts
from fawheels.matrix.config import load_matrix
from fawheels.matrix.cudafacts import known_ccs, parse_gpu
from fawheels.matrix.model import Matrix
from fawheels.publish import index as publish
from fawheels.publish import records, server, variants
from support.matrices import BASE
from support.wheelfactory import toy_wheel

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
P = ParamSpec("P")
T = TypeVar("T")
MEMORY_CAP = 64 << 20  # bytes one call may allocate at its peak (the shipped matrix needs well under 1 MB)

DATA = Path(__file__).parents[1] / "data"


def within_memory(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    tracemalloc.start()
    try:
        return fn(*args, **kwargs)
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < MEMORY_CAP, f"{fn.__name__} peaked at {peak / 1e6:.0f} MB"


def loads_or_refuses(text: str) -> None:
    try:
        m = within_memory(load_matrix, text)
    except FawheelsError as exc:
        assert len(str(exc)) < 5000, "an error message grew with the input"
    else:
        assert isinstance(m, Matrix) and m.targets


# ------------------------------------------------------------------------------------------- matrix

yaml_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20))
yaml_values = st.recursive(
    yaml_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=10), inner, max_size=5)),
    max_leaves=30,
)


@FUZZ
@given(st.text(max_size=400))
def test_matrix_loader_on_any_text(text: str) -> None:
    loads_or_refuses(text)


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(["default_target", "sources", "toolchains", "torch", "profiles", "targets", "extra"]),
        yaml_values,
        max_size=6,
    )
)
def test_matrix_loader_on_any_yaml_document(doc: dict[str, object]) -> None:
    loads_or_refuses(yaml.safe_dump(doc))


@FUZZ
@given(st.data())
def test_matrix_loader_on_mutations_of_a_real_matrix(data: st.DataObject) -> None:
    lines = BASE.splitlines()
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(lines) - 1))
        op = data.draw(st.sampled_from(["drop", "dup", "replace-token", "indent", "alias"]))
        if op == "drop":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "indent":
            lines[i] = " " + lines[i]
        elif op == "alias":
            lines[i] = lines[i].replace(": ", ": &x ", 1) + "\nx-bomb: [*x, *x, *x]"
        else:
            tokens = lines[i].split()
            if tokens:
                j = data.draw(st.integers(0, len(tokens) - 1))
                tokens[j] = data.draw(
                    st.sampled_from(
                        [
                            "3.10",
                            "2.10",
                            "[]",
                            "{}",
                            "*a",
                            "&a",
                            "null",
                            "1e999",
                            "sm_999",
                            "'",
                            '"',
                            "9" * 50,
                            "- x",
                            "true",
                        ]
                    )
                )
                lines[i] = lines[i][: len(lines[i]) - len(lines[i].lstrip())] + " ".join(tokens)
        if not lines:
            break
    loads_or_refuses("\n".join(lines) + "\n")


anchors = st.sampled_from(["a", "b", "c"])
flow = st.recursive(
    st.one_of(st.sampled_from(["1", "x", "3.10", "null", '"q"']), anchors.map(lambda a: f"*{a}")),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.tuples(anchors, inner).map(lambda t: f"&{t[0]} {t[1]}"),
        st.lists(st.tuples(st.sampled_from(["k", "cuda", "python"]), inner), max_size=3).map(
            lambda kv: "{" + ", ".join(f"{k}: {v}" for k, v in kv) + "}"
        ),
    ),
    max_leaves=12,
)


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(["sources", "toolchains", "torch", "x"]), flow), min_size=1, max_size=4))
def test_matrix_loader_on_anchors_and_aliases(entries: list[tuple[str, str]]) -> None:
    # anchors used before, inside and after their definition: cycles, bombs, undefined aliases
    loads_or_refuses("".join(f"{k}: {v}\n" for k, v in entries))


# ------------------------------------------------------------------------------------------- compat

gpu_like = st.one_of(
    st.text(max_size=30),
    st.from_regex(r"(sm_|compute_)?\d{1,4}[af]?", fullmatch=True),
    st.from_regex(r"\d{1,3}\.\d{1,3}", fullmatch=True),
)
driver_like = st.one_of(st.text(max_size=30), st.from_regex(r"\d{1,4}(\.\d{1,4}){0,4}", fullmatch=True))


@FUZZ
@given(gpu_like)
def test_gpu_argument_is_a_known_gpu_or_refused(text: str) -> None:
    try:
        cc = parse_gpu(text)
    except FawheelsError:
        return
    assert cc in known_ccs(), f"{text!r} was read as compute capability {cc}, which no GPU has"


@FUZZ
@given(driver_like)
def test_driver_argument_is_a_driver_version_or_refused(text: str) -> None:
    try:
        v = cudafacts.parse_driver(text)
    except FawheelsError:
        return
    assert 100 <= v.major <= 999 and 2 <= len(v.parts) <= 3


@FUZZ
@given(gpu_like, driver_like)
def test_compat_command_exits_with_a_documented_code(gpu: str, driver: str) -> None:
    code: int | str | None
    try:
        code = cli.main(["compat", str(DATA / "multi.fatbin"), "--gpu", gpu, "--driver", driver, "--json"])
    except SystemExit as exc:  # argparse: an option-like value ("-x") is a usage error
        code = exc.code
    assert code in (0, 1, 2, 3)


# ------------------------------------------------------------------------------------------ publish

filenames = st.one_of(
    st.text(alphabet=string.ascii_letters + string.digits + "._-+!~", min_size=1, max_size=60),
    st.builds(
        lambda n, v, loc, tag: f"{n}-{v}{loc}-{tag}.whl",
        st.from_regex(r"[A-Za-z][A-Za-z0-9_.]{0,10}", fullmatch=True),
        st.from_regex(r"\d{1,3}(\.\d{1,3}){0,2}", fullmatch=True),
        st.sampled_from(["", "+cu130torch2.14", "+cu", "+torch2.14", "+cu130.x", "+CU130"]),
        st.sampled_from(["py3-none-any", "cp311-cp311-linux_x86_64", "x", "py3-none"]),
    ),
)


@FUZZ
@given(filenames)
def test_wheel_filenames_parse_or_are_refused(filename: str) -> None:
    try:
        name = records.parse_wheel_name(filename)
    except PublishError:
        return
    assert name.variant.startswith("cu") and name.filename == filename


@FUZZ
@given(
    st.one_of(
        st.text(max_size=60),
        st.builds(
            lambda scheme, rest: f"{scheme}://{rest}",
            st.sampled_from(["http", "https", "file", "ftp", "HTTP", "s3", ""]),
            st.text(max_size=40),
        ),
    )
)
def test_index_locations_parse_or_are_refused(spec: str) -> None:
    try:
        loc = publish.parse_index(spec)
    except PublishError as exc:
        assert "user" not in str(exc) or "credentials" in str(exc)
        return
    assert (loc.root is None) != (loc.url is None)
    if loc.url is not None:
        assert "@" not in loc.url.split("/")[2], "credentials in a URL were accepted"


class Passing:
    ok = True

    def to_json(self) -> dict[str, object]:
        return {"ok": True}


@FUZZ
@given(filenames)
def test_a_refused_wheel_writes_nothing_to_the_index(tmp_path_factory: pytest.TempPathFactory, filename: str) -> None:
    base = tmp_path_factory.mktemp("pub")
    w = toy_wheel(base / "w")
    target = base / filename
    if target.name != filename or filename in (".", ".."):
        return
    w.rename(target)
    target.with_name(target.name + ".verify.json").write_text(json.dumps({"ok": True}))
    index = base / "index"
    try:
        publish.publish_command([target], index=str(index), verifier=lambda p: Passing())
    except PublishError:
        assert not index.exists(), "a refusal wrote into the index"


# ------------------------------------------------------------------------------------------- redact

secrets_st = st.text(
    alphabet=string.ascii_letters + string.digits + "!#$%&()+,-./:;<=>?@[]^_{|}~", min_size=4, max_size=24
)


def lower_hex(encoded: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), encoded)


@FUZZ
@given(
    st.text(max_size=40),
    secrets_st,
    st.text(max_size=40),
    st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=12),
)
def test_a_known_secret_never_survives_redaction(prefix: str, secret: str, suffix: str, user: str) -> None:
    basic = base64.b64encode(f"{user}:{secret}".encode()).decode()
    for text in (
        f"{prefix}{secret}{suffix}",
        f"{prefix}Authorization: Basic {basic}{suffix}",
        f"{prefix}'HTTP_AUTHORIZATION': 'Basic {basic}'{suffix}",
        f"{prefix}authorization: bAsIc {basic}{suffix}",
        # issue 21: what a server's 400 page echoes: the field HTML-escaped, URL- or form-encoded, any hex case
        f"{prefix}<p>password was {html.escape(secret)}</p>{suffix}",
        f"{prefix}{''.join(f'&#{ord(c)};' for c in secret)}{suffix}",
        f"{prefix}body=a&pw={quote_plus(secret)}{suffix}",
        f"{prefix}{lower_hex(quote(secret, safe=''))}{suffix}",
    ):
        out = redact(text, [secret], [user])
        assert secret not in out and basic not in out
        encodings = {html.escape(secret), quote_plus(secret), lower_hex(quote(secret, safe=""))}
        assert not any(e in out for e in encodings if e != html.escape(prefix + suffix) and len(e) >= 4)


# ------------------------------------------------------------------------------ issue 21: names, manifests, answers

# member names from every corner: separators, dots, case, combining marks, controls, CI commands
member_names = st.one_of(
    st.text(max_size=40),
    st.lists(
        st.sampled_from(["pkg", ".", "..", "", "PKG", "C\u030c", "\u010c", "x\n::error::y", "\x1b]0;t\x07", "a.so"]),
        min_size=1,
        max_size=5,
    ).map("/".join),
)


def _printed_safely(text: str) -> None:
    assert not any(c in text for c in "\x1b\x07\x9b\u202e\r"), "a raw control character was printed"
    assert not any(line.lstrip().startswith(("::", "##")) for line in text.splitlines()), "a CI command was printed"


@FUZZ
@given(member_names)
def test_any_member_name_is_refused_or_verified_and_printed_safely(
    tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    wheel = toy_wheel(tmp_path_factory.mktemp("m"))
    try:
        with zipfile.ZipFile(wheel, "a") as zf:
            zf.writestr(name, b"\x7fELF not really")
    except (ValueError, IndexError, UnicodeEncodeError):  # zipfile itself will not write it
        return
    assert cli.main(["verify", "--reader", "fawheels", str(wheel)]) in (1, 7)
    out = capsys.readouterr()
    _printed_safely(out.out + out.err)
    key = names.member_key(name)
    assert names.member_key(key) == key and not key.startswith("/")


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=30)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=12,
)
GOOD_RECORD = {
    "filename": "fatoy-1.0+cu130torch2.14-py3-none-any.whl",
    "project": "fatoy",
    "version": "1.0+cu130torch2.14",
    "variant": "cu130",
    "sha256": "ab" * 32,
    "size": 1,
    "metadata_sha256": "cd" * 32,
    "requires_python": None,
    "target": None,
    "torch": None,
    "python": None,
    "sass": ["sm_120"],
    "ptx": [],
    "build_date": None,
    "published": "2026-01-01T00:00:00Z",
    "verify_checks": 1,
    "facts": None,
}


@FUZZ
@given(st.dictionaries(st.sampled_from(sorted(GOOD_RECORD)), json_values, max_size=4), st.booleans())
def test_a_manifest_record_is_valid_or_refused_by_field(changes: dict[str, object], as_list: bool) -> None:
    doc = {"schema": 1, "wheels": [{**GOOD_RECORD, **changes}] if as_list else {**GOOD_RECORD, **changes}}
    try:
        parsed = within_memory(records.parse_manifest, json.dumps(doc), "wheels.json", ConfigError)
    except ConfigError as exc:
        assert str(exc).startswith("wheels.json") and len(str(exc)) < 2000
        return
    for r in parsed:  # what is accepted is what publish would write: it stays inside any root
        path = names.under(Path("/srv/idx"), r.variant, "simple", r.project, r.filename, field="x", error=ConfigError)
        assert Path("/srv/idx") in path.parents


@FUZZ
@given(st.one_of(st.binary(max_size=300), json_values.map(lambda v: json.dumps({"wheels": v}).encode())))
def test_any_server_answer_is_a_manifest_or_a_config_error(monkeypatch: pytest.MonkeyPatch, body: bytes) -> None:
    class Answer(io.BytesIO):
        def __enter__(self) -> Answer:
            return self

    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: Answer(body))
    try:
        records, base = variants.read_manifest("https://index.example/fa/")
    except ConfigError as exc:
        _printed_safely(str(exc))
        return
    assert base == "https://index.example/fa/" and isinstance(records, list)


@FUZZ
@given(st.text(max_size=200), secrets_st)
def test_a_server_error_page_is_shown_redacted_and_safely(page: str, secret: str) -> None:
    shown = visible(server.redact(f"{page}{html.escape(secret)}{page}", server.Credentials("ci", secret)))
    assert html.escape(secret) not in shown or html.escape(secret) in visible(page)
    _printed_safely(shown)
