"""Unit tests of publish: the pure rules and rendering, and the static index with a stand-in verifier.

The stand-in verifier (`Passing`/`Failing` below) keeps these fast and independent of check/verify.py; the real
verifier runs in test_publish_integration.py.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from packaging.version import Version

from fawheels._util.errors import PublishError
from fawheels._util.files import TMP_MARK
from fawheels._util.show import human_size
from fawheels.publish import checked, pages, records, server
from fawheels.publish import index as publish
from fawheels.publish.records import WheelRecord
from fawheels.publish.server import Credentials
from support.wheelfactory import toy_wheel


class Passing:
    ok = True

    def to_json(self) -> dict[str, object]:
        return {"ok": True, "checks": ["stand-in"]}


class Failing(Passing):
    ok = False


def record(filename: str = "fatoy-1.0+cu130torch2.14-py3-none-any.whl", **kw: object) -> WheelRecord:
    name = records.parse_wheel_name(filename)
    base = records.make_record(
        name,
        sha256="ab" * 32,
        size=1536,
        metadata=b"Name: fatoy\nVersion: 1.0\nRequires-Python: >=3.10\n",
        build_info={
            "target": "fatoy-cu130-torch2.14-sm120-cp311",
            "torch": {"requirement": "torch==2.14.*"},
            "python": "3.11",
            "archs": {"sass": ["sm_120", "sm_90"], "ptx": ["compute_120"]},
            "source_date_epoch": 1755000000,
        },
        published=datetime(2026, 11, 23, 8, 0, tzinfo=UTC),
        verify_checks=8,
    )
    return WheelRecord(**{**base.to_json(), "sass": base.sass, "ptx": base.ptx, **kw})


# ------------------------------------------------------------------------------------------- pure rules


@pytest.mark.parametrize(
    ("version", "variant"), [("2.8.3+cu130torch2.14", "cu130"), ("1.0+cu128torch2.9", "cu128"), ("1.0+cu130", "cu130")]
)
def test_variant_is_the_cuda_part_of_the_local_label(version: str, variant: str) -> None:
    assert records.variant_of(Version(version)) == variant


@pytest.mark.parametrize("version", ["2.8.3", "2.8.3+cpu", "2.8.3+torch2.14cu130"])
def test_version_without_cuda_variant_is_refused(version: str) -> None:
    with pytest.raises(PublishError, match="names no CUDA variant"):
        records.variant_of(Version(version))


def test_wheel_name_parsing() -> None:
    n = records.parse_wheel_name("flash_attn-2.8.3+cu130torch2.14-cp311-cp311-linux_x86_64.whl")
    assert (n.project, str(n.version), n.variant, n.python_tag) == (
        "flash-attn",
        "2.8.3+cu130torch2.14",
        "cu130",
        "cp311",
    )


@pytest.mark.parametrize("filename", ["fatoy-1.0+cu130torch2.14.tar.gz", "fatoy-1.0+cu130.zip", "notes.txt"])
def test_non_wheel_is_refused(filename: str) -> None:
    with pytest.raises(PublishError, match="not a wheel"):
        records.parse_wheel_name(filename)


def test_bad_wheel_filename_is_refused() -> None:
    with pytest.raises(PublishError, match="not a valid wheel filename"):
        records.parse_wheel_name("fatoy.whl")


@pytest.mark.parametrize(
    ("spec", "root", "url", "variant"),
    [
        ("/srv/idx", "/srv/idx", None, None),
        ("/srv/idx/cu128", "/srv/idx", None, "cu128"),
        ("/srv/idx/cu128/simple", "/srv/idx", None, "cu128"),
        ("file:///srv/idx/cu130/simple", "/srv/idx", None, "cu130"),
        ("http://127.0.0.1:8080", None, "http://127.0.0.1:8080/", None),
        ("https://wheels.example/cu128/", None, "https://wheels.example/cu128/", "cu128"),
    ],
)
def test_index_location(spec: str, root: str | None, url: str | None, variant: str | None) -> None:
    loc = publish.parse_index(spec)
    assert (str(loc.root) if loc.root else None, loc.url, loc.variant) == (root, url, variant)


def test_credentials_in_the_url_are_refused() -> None:
    with pytest.raises(PublishError, match="credentials in the index URL"):
        publish.parse_index("https://ci:hunter2@wheels.example/")


def test_unknown_scheme_is_refused() -> None:
    with pytest.raises(PublishError, match="unsupported scheme"):
        publish.parse_index("s3://bucket/idx")


def test_variant_mismatch_is_refused() -> None:
    name = records.parse_wheel_name("fatoy-1.0+cu130torch2.14-py3-none-any.whl")
    records.check_variant(name, None, "idx")
    records.check_variant(name, "cu130", "idx")
    with pytest.raises(PublishError, match="variant cu130 does not belong in the cu128 index"):
        records.check_variant(name, "cu128", "idx")


def test_same_name_same_hash_is_a_noop_other_hash_refused() -> None:
    r = record()
    assert records.is_new(r, None, "idx") is True
    assert records.is_new(r, r.sha256, "idx") is False
    with pytest.raises(PublishError, match="another sha256"):
        records.is_new(r, "cd" * 32, "idx")


def test_credentials_go_only_over_https_or_to_loopback() -> None:
    creds = Credentials("ci", "pw")
    with pytest.raises(PublishError, match=r"plain http to wheels\.example"):
        server.ServerIndex("http://wheels.example/cu130/", creds)
    for url in ("https://wheels.example/cu130/", "http://127.0.0.1:8080/", "http://localhost:8080/"):
        server.ServerIndex(url, creds)
    server.ServerIndex("http://wheels.example/cu130/", None)


def test_credentials_from_env_and_never_in_repr() -> None:
    assert server.credentials_from_env({}) is None
    c = server.credentials_from_env({"FAWHEELS_INDEX_USER": "ci", "FAWHEELS_INDEX_PASSWORD": "pw-1"})
    assert c == Credentials("ci", "pw-1")
    assert server.credentials_from_env({"TWINE_USERNAME": "t", "TWINE_PASSWORD": "pw-2"}) == Credentials("t", "pw-2")
    assert "pw-1" not in repr(c)
    assert server.redact("bad login pw-1 here", c) == "bad login *** here"


@pytest.mark.parametrize(
    "echo",
    [
        "400: password &amp;&lt;s3cret&gt;+x is wrong",  # HTML-escaped
        "400: password &#38;&#60;s3cret&#62;&#43;x is wrong",  # numeric entities
        "400: password=%26%3Cs3cret%3E%2Bx is wrong",  # URL-encoded
        "400: password %26%3cs3cret%3e%2bx is wrong",  # lower-case hex
        "400: pw=%26%3Cs3cret%3E%2Bx&user=ci",  # form-encoded
        "400: Authorization: bAsIc Y2k6JjxzM2NyZXQ+K3g=",  # base64 behind a prefix in any case
    ],
)
def test_an_encoded_echo_of_the_password_is_masked(echo: str) -> None:
    out = server.redact(echo, Credentials("ci", "&<s3cret>+x"))  # issue 21: a server's 400 page
    assert "s3cret" not in out and "Y2k6" not in out and "***" in out


# -------------------------------------------------------------------------------------------- rendering


def test_project_page_has_hash_fragments_and_pep658_attributes() -> None:
    r = record()
    page = pages.render_project_html("fatoy", [r])
    assert f'href="fatoy-1.0%2Bcu130torch2.14-py3-none-any.whl#sha256={r.sha256}"' in page
    assert f'data-dist-info-metadata="sha256={r.metadata_sha256}"' in page
    assert f'data-core-metadata="sha256={r.metadata_sha256}"' in page
    assert 'data-requires-python="&gt;=3.10"' in page
    assert pages.parse_simple_links(page) == {r.filename: r.sha256}


def test_project_json_is_pep691() -> None:
    rs = [record(), record("fatoy-1.1+cu130torch2.14-py3-none-any.whl", version="1.1+cu130torch2.14")]
    doc = json.loads(pages.render_project_json("fatoy", rs))
    assert doc["meta"] == {"api-version": "1.1"} and doc["name"] == "fatoy"
    assert doc["versions"] == ["1.0+cu130torch2.14", "1.1+cu130torch2.14"]
    f = doc["files"][0]
    assert f["url"] == "fatoy-1.0%2Bcu130torch2.14-py3-none-any.whl"
    assert f["hashes"] == {"sha256": rs[0].sha256} and f["core-metadata"] == {"sha256": rs[0].metadata_sha256}
    assert f["size"] == 1536 and f["requires-python"] == ">=3.10"


def test_simple_root_lists_projects_once() -> None:
    page = pages.render_simple_html(["fatoy", "flash-attn", "fatoy"])
    assert page.count('href="fatoy/"') == 1 and 'href="flash-attn/"' in page
    assert json.loads(pages.render_simple_json(["fatoy"]))["projects"] == [{"name": "fatoy"}]


def test_root_page_shows_what_each_wheel_promises() -> None:
    a = record()
    b = record("fatoy-1.0+cu128torch2.14-py3-none-any.whl", variant="cu128", target="fatoy-cu128-x")
    page = pages.render_root_html([b, a])
    assert page.index('id="cu128"') < page.index('id="cu130"')
    for text in (
        a.filename,
        b.filename,
        "fatoy-cu130-torch2.14-sm120-cp311",
        "torch==2.14.*",
        "sm_120 sm_90",
        "compute_120",
        "2025-08-12 12:00 UTC",
        "1.5 KiB",
        a.sha256[:16],
        "passed</span> 8 checks",
        "2026-11-23 08:00:00Z",
        'href="cu130/simple/fatoy/fatoy-1.0%2Bcu130torch2.14-py3-none-any.whl#sha256=',
    ):
        assert text in page
    assert "No wheels published yet" in pages.render_root_html([])


def test_manifest_round_trip() -> None:
    rs = [record(), record("fatoy-1.0+cu128torch2.14-py3-none-any.whl", variant="cu128")]
    assert sorted(records.parse_manifest(records.render_manifest(rs)), key=lambda r: r.variant) == sorted(
        rs, key=lambda r: r.variant
    )


@pytest.mark.parametrize(
    ("n", "text"), [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (300 << 20, "300.0 MiB"), (3 << 30, "3.0 GiB")]
)
def test_human_size(n: int, text: str) -> None:
    assert human_size(n) == text


# -------------------------------------------------------- static index, stand-in verifier (fast, no nvcc)


def verified(wheel: Path, ok: bool = True) -> Path:
    wheel.with_name(wheel.name + ".verify.json").write_text(json.dumps({"ok": ok}))
    return wheel


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def index(tmp_path: Path) -> Path:
    """An index that already holds one cu130 wheel."""
    root = tmp_path / "idx"
    w = verified(toy_wheel(tmp_path / "seed", version="0.9"))
    assert publish.publish_command([w], index=str(root), verifier=lambda p: Passing()) == 0
    return root


def test_publish_writes_every_layer(index: Path) -> None:
    d = index / "cu130" / "simple" / "fatoy"
    fn = "fatoy-0.9+cu130torch2.14-py3-none-any.whl"
    assert (d / fn).is_file() and (d / f"{fn}.metadata").read_bytes().startswith(b"Metadata-Version")
    assert json.loads((d / f"{fn}.verify.json").read_text())["checks"] == ["stand-in"]
    assert fn in (d / "index.html").read_text()
    assert json.loads((d / "index.json").read_text())["files"][0]["filename"] == fn
    assert 'href="fatoy/"' in (index / "cu130" / "simple" / "index.html").read_text()
    assert fn in (index / "index.html").read_text()
    assert [r.filename for r in records.parse_manifest((index / "wheels.json").read_text())] == [fn]


def test_republishing_the_same_file_is_a_noop(index: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(index)
    mtimes = {p: p.stat().st_mtime_ns for p in index.rglob("*")}
    w = verified(toy_wheel(tmp_path / "again", version="0.9"))
    assert publish.publish_command([w], index=str(index), verifier=lambda p: Passing()) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert snapshot(index) == before
    assert {p: p.stat().st_mtime_ns for p in index.rglob("*") if p.name != publish.LOCK} == {
        p: m for p, m in mtimes.items() if p.name != publish.LOCK
    }


def refused(
    index: Path,
    wheels: list[Path],
    match: str,
    spec: str | None = None,
    verifier: checked.Verifier = lambda p: Passing(),
) -> None:
    before = snapshot(index)
    with pytest.raises(PublishError, match=match):
        publish.publish_command(wheels, index=spec or str(index), verifier=verifier)
    assert snapshot(index) == before, "a refusal must leave the index untouched"


def test_same_filename_other_bytes_is_refused(index: Path, tmp_path: Path) -> None:
    w = verified(toy_wheel(tmp_path / "other", version="0.9", salt=" rebuilt"))
    refused(index, [w], "another sha256")


def test_refusals_leave_the_index_untouched(index: Path, tmp_path: Path) -> None:
    good = verified(toy_wheel(tmp_path / "good", version="1.0"))
    no_report = toy_wheel(tmp_path / "noreport", version="1.1")
    bad_report = verified(toy_wheel(tmp_path / "badreport", version="1.2"), ok=False)
    cu128 = verified(toy_wheel(tmp_path / "cu128", version="1.0", cuda="12.8"))
    sdist = tmp_path / "fatoy-1.0+cu130torch2.14.tar.gz"
    sdist.write_bytes(b"not a wheel")
    fake = tmp_path / "fatoy-1.3+cu130torch2.14-py3-none-any.whl"
    fake.write_bytes(b"not a zip")
    refused(index, [sdist], "not a wheel")
    refused(index, [fake], "not a zip archive")
    # Any refused wheel refuses the whole call: nothing of `good` lands either.
    refused(index, [good, no_report], "no verify report beside it")
    refused(index, [good, bad_report], "verify report does not say ok")
    refused(index, [good], "re-verification failed", verifier=lambda p: Failing())
    good.with_name(good.name + ".verify.json").write_text(json.dumps({"ok": True, "sha256": "00" * 32}))
    refused(index, [good], "verify report is for other bytes")
    refused(index, [cu128], "variant cu128 does not belong in the cu130 index", spec=str(index / "cu130"))
    refused(index, [good], "variant cu130 does not belong in the cu128 index", spec=str(index / "cu128" / "simple"))


def test_metadata_must_match_the_filename(index: Path, tmp_path: Path) -> None:
    w = toy_wheel(tmp_path / "w", version="1.0")
    renamed = verified(w.rename(w.with_name("fatoy-2.0+cu130torch2.14-py3-none-any.whl")))
    refused(index, [renamed], "METADATA says fatoy 1.0")


def test_variants_land_in_their_own_roots(index: Path, tmp_path: Path) -> None:
    w = verified(toy_wheel(tmp_path / "w", version="0.9", cuda="12.8"))
    publish.publish_command([w], index=str(index), verifier=lambda p: Passing())
    assert (index / "cu128" / "simple" / "fatoy" / w.name).is_file()
    assert w.name not in (index / "cu130" / "simple" / "fatoy" / "index.html").read_text()
    root_page = (index / "index.html").read_text()
    assert 'id="cu128"' in root_page and 'id="cu130"' in root_page


def test_stale_temp_files_of_a_dead_publisher_are_cleared(index: Path, tmp_path: Path) -> None:
    d = index / "cu130" / "simple" / "fatoy"
    stale = d / f".fatoy-1.0+cu130torch2.14-py3-none-any.whl{TMP_MARK}99999-deadbeef"
    stale.write_bytes(b"half a wheel")
    not_ours = [index / f".notes{TMP_MARK}mine", d / f".draft{TMP_MARK}1-x", index / f".keep{TMP_MARK}12-abc"]
    for f in not_ours:
        f.write_text("a file publish did not write")
    w = verified(toy_wheel(tmp_path / "w", version="1.0"))
    publish.publish_command([w], index=str(index), verifier=lambda p: Passing())
    assert not stale.exists() and (d / w.name).is_file()
    assert all(f.read_text() == "a file publish did not write" for f in not_ours)  # issue 21: only ours go


def test_republishing_puts_back_a_listed_file_lost_from_disk(index: Path, tmp_path: Path) -> None:
    listed = index / "cu130" / "simple" / "fatoy" / "fatoy-0.9+cu130torch2.14-py3-none-any.whl"
    before = listed.read_bytes()
    listed.unlink()
    w = verified(toy_wheel(tmp_path / "again", version="0.9"))
    publish.publish_command([w], index=str(index), verifier=lambda p: Passing())
    assert listed.read_bytes() == before
    assert len(records.parse_manifest((index / "wheels.json").read_text())) == 1


def test_unreadable_manifest_is_refused_not_overwritten(index: Path, tmp_path: Path) -> None:
    (index / "wheels.json").write_text("{not json")
    w = verified(toy_wheel(tmp_path / "w", version="1.0"))
    refused(index, [w], "wheels.json: not JSON")


def test_index_files_are_world_readable_whatever_the_umask(tmp_path: Path) -> None:
    w = verified(toy_wheel(tmp_path / "w", version="1.0"))
    old = os.umask(0o077)
    try:
        publish.publish_command([w], index=str(tmp_path / "idx"), verifier=lambda p: Passing())
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / "idx").rglob("*") if p.is_file() and p.name != publish.LOCK]
    assert files and all(p.stat().st_mode & 0o777 == 0o644 for p in files)
    dirs = [tmp_path / "idx", *(p for p in (tmp_path / "idx").rglob("*") if p.is_dir())]
    assert len(dirs) == 4 and all(p.stat().st_mode & 0o777 == 0o755 for p in dirs)


def test_lock_file_is_not_a_listed_artifact(index: Path) -> None:
    assert (index / publish.LOCK).exists()
    assert publish.LOCK not in (index / "index.html").read_text()
    assert os.stat(index / publish.LOCK).st_size == 0
