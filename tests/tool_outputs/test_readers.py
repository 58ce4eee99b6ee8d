"""Two readers on every wheel: our fatbin parser and NVIDIA's cuobjdump must read each CUDA-bearing member
alike (kind, arch with its a/f suffix, PTX ISA). Pure tests on committed real cuobjdump output; `tools`
tests run the real cuobjdump (nvidia-cuda-cuobjdump) on committed real binaries and wheels around them."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterable
from pathlib import Path

import pytest

from fawheels import cli
from fawheels._util.errors import InspectError, PublishError
from fawheels.check import binary as inspect
from fawheels.check import cuobjdump, verify, wheelfacts, wheelzip
from fawheels.check.binary import CodeEntry
from fawheels.check.cuobjdump import Cuobjdump
from fawheels.publish import index as publish
from fawheels.publish import provenance
from support.cudabins import DATA, EXT, build_info, write_wheel

LIBTWO = (DATA / "libtwo.so").read_bytes()  # sm_120 SASS x3 + compute_80 PTX (ISA 9.0) x2
FILES = {"fa2toy/__init__.py": b"", EXT: LIBTWO}


def committed_dump(name: str, label: str, edit: tuple[str, str] | None = None) -> list[CodeEntry]:
    text = (DATA / f"{name}.cuobjdump.txt").read_text()
    if edit:
        assert edit[0] in text
        text = text.replace(edit[0], edit[1], 1)
    return cuobjdump.parse_cuobjdump(text.splitlines(), label)


def failing(report: verify.VerifyReport) -> dict[str, str]:
    return {c.name: c.detail for c in report.checks if not c.ok}


# --- pure: committed real cuobjdump output ---------------------------------------------------------------


def test_listing_drops_the_f_suffix_of_sass_and_keeps_ptx_suffixes() -> None:
    listed = cuobjdump.parse_cuobjdump_listing((DATA / "multi.fatbin.cuobjdump-list.txt").read_text().splitlines())
    assert sorted(listed) == sorted(
        [
            ("ptx", "sm_90a"),
            ("sass", "sm_90a"),
            ("ptx", "sm_100f"),
            ("sass", "sm_100"),
            ("ptx", "sm_120a"),
            ("ptx", "sm_120f"),
            ("sass", "sm_110"),
            ("sass", "sm_90"),
        ]
    )
    # which is why verify dumps the entry headers when family-capable SASS (sm_100 and later) is listed
    ours = wheelzip.read_file(DATA / "multi.fatbin").entries
    assert ("sass", "sm_100f") in {(e.kind, e.arch) for e in ours}


def test_ptx_isa_comes_from_the_dumped_text() -> None:
    (ptx,) = [e for e in committed_dump("sm80+ptx80-size.fatbin", "x") if e.kind == "ptx"]
    assert ptx.ptx_isa == "9.0"
    (edited,) = [
        e for e in committed_dump("sm80+ptx80-size.fatbin", "x", (".version 9.0", ".version 9.2")) if e.kind == "ptx"
    ]
    assert edited.ptx_isa == "9.2"


@pytest.mark.parametrize(
    ("name", "edit", "ours_says", "theirs_says"),
    [
        (
            "multi.fatbin",
            ("arch = sm_100f\ncode version = [1,8]", "arch = sm_100\ncode version = [1,8]"),
            "sass sm_100f",
            "sass sm_100,",
        ),
        (
            "libtwo.so",
            (".version 9.0", ".version 9.2"),
            "ptx sm_80 (ISA 9.0) x2",
            "ptx sm_80 (ISA 9.0), ptx sm_80 (ISA 9.2)",
        ),
        ("sm_120f.cubin", ("-arch sm_120f", "-arch sm_120a"), "sass sm_120f", "sass sm_120a"),
    ],
)
def test_one_altered_reading_is_a_disagreement_naming_the_member_and_both_readings(
    name: str, edit: tuple[str, str], ours_says: str, theirs_says: str
) -> None:
    ours = list(wheelzip.read_file(DATA / name).entries)
    label = str(DATA / name)
    assert cuobjdump.disagreements(ours, committed_dump(name, label)) == []
    (problem,) = cuobjdump.disagreements(ours, committed_dump(name, label, edit))
    assert problem.startswith(f"{label}: fawheels reads ")
    mine, theirs = problem.split("; cuobjdump reads ")
    assert ours_says in mine and theirs_says in theirs + ",", problem


def test_an_entry_only_one_reader_sees_is_a_disagreement() -> None:
    ours = list(wheelzip.read_file(DATA / "multi.fatbin").entries)
    theirs = committed_dump("multi.fatbin", "m")
    ours = [
        CodeEntry("m", e.kind, e.arch, e.ptx_isa, e.code_version, e.compression, e.size, e.uncompressed_size)
        for e in ours
    ]
    assert cuobjdump.disagreements(ours, theirs) == []
    (problem,) = cuobjdump.disagreements(ours, theirs[1:])
    assert problem.startswith("m: fawheels reads ") and theirs[0].arch in problem.split(";")[0]


def _facts_with(theirs: list[CodeEntry]) -> wheelfacts.WheelFacts:
    ours = inspect.parse_bytes(LIBTWO, EXT)
    tool = Cuobjdump(Path("/nonexistent/cuobjdump"), "13.2.86", "test")
    return wheelfacts._facts("w.whl", {}, None, {}, [ours], {EXT: theirs}, {}, {}, (), "both", tool, "")


def test_readers_check_fails_on_real_output_with_one_view_altered() -> None:
    real = committed_dump("libtwo.so", EXT)
    agree = verify.check_readers(_facts_with(real))
    assert agree.ok and "fawheels 0.1.0 + cuobjdump 13.2.86 (test): 5 code entries" in agree.detail
    altered = committed_dump("libtwo.so", EXT, ("arch = sm_120", "arch = sm_120a"))
    facts = _facts_with(altered)
    check = verify.check_readers(facts)
    assert not check.ok
    assert f"{EXT}: fawheels reads " in check.detail and "sass sm_120 x3" in check.detail
    assert "cuobjdump reads " in check.detail and "sass sm_120a" in check.detail
    assert facts.readers is not None and facts.readers.agree is False


# --- cuobjdump cannot run: said so, and publish refuses unless told -----------------------------------------


@pytest.fixture
def no_cuobjdump(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        wheelfacts, "_cuobjdump", lambda toolkit, install=True: (None, "no wheel of nvidia-cuda-cuobjdump here")
    )


def test_without_cuobjdump_verify_says_read_by_our_parser_only(
    no_cuobjdump: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_wheel(tmp_path, FILES, info=build_info())
    assert cli.main(["verify", str(path)]) == 0
    out = capsys.readouterr().out
    assert "read by our parser only: cuobjdump cannot run here (no wheel of nvidia-cuda-cuobjdump here)" in out
    assert "(read by one reader only)" in out
    doc = verify.verify_wheel(path).to_json()
    assert doc["single_reader"] is True and doc["readers"]["ran"] == [{"reader": "fawheels", "version": "0.1.0"}]
    assert "read by our parser only" in doc["readers"]["note"]


def test_publish_refuses_a_single_reader_report_unless_accepted(no_cuobjdump: None, tmp_path: Path) -> None:
    path = write_wheel(tmp_path, FILES, info=build_info())
    verify.write_report(path)
    index = tmp_path / "index"
    with pytest.raises(PublishError, match="read by our parser only") as refused:
        publish.publish_command([path], index=str(index))
    assert "--accept-single-reader" in str(refused.value)
    assert not index.exists()
    assert publish.publish_command([path], index=str(index), accept_single_reader=True) == 0
    assert list(index.rglob(path.name))


def test_reader_cuobjdump_alone_needs_cuobjdump(
    no_cuobjdump: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_wheel(tmp_path, FILES, info=build_info())
    assert cli.main(["verify", "--reader", "cuobjdump", str(path)]) == InspectError.exit_code
    assert "cuobjdump cannot run here" in capsys.readouterr().err


def test_a_wheel_without_cuda_code_is_not_single_reader(no_cuobjdump: None, tmp_path: Path) -> None:
    report = verify.verify_wheel(write_wheel(tmp_path, {"fa2toy/__init__.py": b""}, info=build_info()))
    assert not report.single_reader


def test_locate_reports_why_no_cuobjdump(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CUDA_HOME", str(tmp_path))
    monkeypatch.setenv("FAWHEELS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    tool, why = cuobjdump.locate_cuobjdump(install=False)
    assert tool is None and "installing it was not allowed" in why


# --- tools: the real cuobjdump ---------------------------------------------------------------------------


needs_cuobjdump = pytest.mark.skipif(
    cuobjdump.find_cuobjdump() is None, reason="needs cuobjdump (pip install nvidia-cuda-cuobjdump==13.2.86)"
)
BINARIES = sorted(p.relative_to(DATA).as_posix() for p in DATA.rglob("*") if p.suffix in (".fatbin", ".so", ".cubin"))


@pytest.mark.tools
@needs_cuobjdump
@pytest.mark.parametrize("name", BINARIES)
def test_real_cuobjdump_reads_every_committed_binary_like_our_parser(name: str) -> None:
    ours = list(wheelzip.read_file(DATA / name).entries)
    listed_first = cuobjdump.cuobjdump_read(DATA / name)
    headers_first = cuobjdump.cuobjdump_read(DATA / name, expect=ours)  # -res-usage when sm_100+ SASS is expected
    for theirs in (listed_first, headers_first):
        assert cuobjdump.disagreements(ours, theirs) == []
        assert len(theirs) == len([e for e in ours if e.kind != "lto"])


@pytest.mark.tools
@needs_cuobjdump
def test_real_cuobjdump_with_one_view_altered_fails_verification(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The real tool reads the real binary; then its PTX reading is altered the way a reader bug would."""
    real = cuobjdump.parse_cuobjdump

    def ptx_isa_misread(lines: Iterable[str], file: str) -> list[CodeEntry]:
        return [
            CodeEntry(
                e.file,
                e.kind,
                e.arch,
                "9.1" if e.kind == "ptx" else e.ptx_isa,
                e.code_version,
                e.compression,
                e.size,
                e.uncompressed_size,
            )
            for e in real(lines, file)
        ]

    path = write_wheel(tmp_path, FILES, info=build_info())
    assert verify.verify_wheel(path).ok
    monkeypatch.setattr(cuobjdump, "parse_cuobjdump", ptx_isa_misread)
    assert cli.main(["verify", "--json", str(path)]) == 1
    doc = json.loads(capsys.readouterr().out)
    (readers,) = [c for c in doc["checks"] if c["name"] == "readers"]
    assert not readers["ok"] and doc["readers"]["agree"] is False
    assert f"{EXT}: fawheels reads ptx sm_80 (ISA 9.0) x2" in readers["detail"]
    assert "cuobjdump reads ptx sm_80 (ISA 9.1) x2" in readers["detail"]


@pytest.mark.tools
@needs_cuobjdump
def test_verify_reader_cuobjdump_works_on_its_own(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_wheel(tmp_path, FILES, info=build_info())
    assert cli.main(["verify", "--reader", "cuobjdump", "--json", str(path)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["reader"] for r in doc["readers"]["ran"]] == ["cuobjdump"]
    assert doc["single_reader"] is True and doc["ok"] is True
    bad = tmp_path / "bad"
    bad.mkdir()
    worse = write_wheel(bad, FILES, info=build_info(archs={"sass": ["sm_120", "sm_90"], "ptx": []}))
    assert cli.main(["verify", "--reader", "cuobjdump", str(worse)]) == 1
    assert "nothing runs on 9.0" in capsys.readouterr().out


@pytest.mark.tools
@needs_cuobjdump
def test_report_and_provenance_record_both_readers(tmp_path: Path) -> None:
    toolchain = {"cuda": "13.0", "nvcc": "13.0.88", "provision": "host", "host_compiler": "gcc 13.3.0"}
    path = write_wheel(tmp_path, FILES, info=build_info(toolchain=toolchain))
    report = verify.verify_wheel(path)
    assert report.ok and not report.single_reader
    doc = json.loads(verify.write_report(path, report).read_text())
    assert [r["reader"] for r in doc["readers"]["ran"]] == ["fawheels", "cuobjdump"]
    assert doc["readers"]["ran"][1]["version"].count(".") == 2 and doc["readers"]["agree"] is True
    statement = json.loads(provenance.write_provenance(path, argv=["fawheels", "build"], environ={}).read_text())
    (byproduct,) = statement["predicate"]["runDetails"]["byproducts"]
    assert byproduct["name"] == path.name + ".verify.json"
    assert byproduct["annotations"]["readers"] == doc["readers"]["ran"]
    assert byproduct["annotations"]["ok"] is True and byproduct["annotations"]["readers_agree"] is True
    assert provenance.check_provenance(path)[0]


@pytest.mark.tools
@needs_cuobjdump
def test_each_cuda_member_is_read_by_both_whatever_its_name(tmp_path: Path) -> None:
    fatbin = (DATA / "gpu" / "sm120-sass.fatbin").read_bytes()
    path = write_wheel(tmp_path, {**FILES, "fa2toy/data/weights.bin": fatbin}, info=build_info())
    report = verify.verify_wheel(path)
    (readers,) = [c for c in report.checks if c.name == "readers"]
    assert readers.ok and "6 code entries in 2 member(s), read alike" in readers.detail
    assert "fa2toy/data/weights.bin carries CUDA code" in failing(report)["extensions"]


@pytest.mark.network
def test_cuobjdump_is_provisioned_once_into_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAWHEELS_CACHE", str(tmp_path / "cache"))
    exe = cuobjdump.provision_cuobjdump()
    assert exe.is_relative_to(tmp_path / "cache" / "tools")
    assert cuobjdump.cuobjdump_version(exe) == cuobjdump.CUOBJDUMP_PIN
    stamp = (exe.parents[3] / ".fawheels-complete").stat().st_mtime_ns
    assert cuobjdump.provision_cuobjdump() == exe  # cached: not installed again
    assert (exe.parents[3] / ".fawheels-complete").stat().st_mtime_ns == stamp


@pytest.mark.tools
def test_the_toolkits_cuobjdump_comes_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toolkit = tmp_path / "cuda"
    (toolkit / "bin").mkdir(parents=True)
    fake = toolkit / "bin" / "cuobjdump"
    fake.write_text("#!/bin/sh\necho 'Cuda compilation tools, release 13.0, V13.0.88'\n")
    fake.chmod(0o755)
    monkeypatch.delenv("FAWHEELS_CUOBJDUMP", raising=False)
    tool, why = cuobjdump.locate_cuobjdump(toolkit, install=False)
    assert tool == Cuobjdump(fake, "13.0.88", "toolkit") and why == ""
    broken = tmp_path / "broken"
    broken.write_text("#!/bin/sh\nexit 3\n")
    broken.chmod(0o755)
    monkeypatch.setenv("FAWHEELS_CUOBJDUMP", str(broken))
    tool, _ = cuobjdump.locate_cuobjdump(toolkit, install=False)
    assert tool is not None and tool.path == fake  # one that does not run is passed over


def test_offline_verify_installs_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A build with --offline must not reach an index for cuobjdump: only one already here is used."""
    asked: list[bool] = []

    def locate(toolkit: Path | None = None, *, install: bool = True) -> tuple[None, str]:
        asked.append(install)
        return None, "no cuobjdump found and installing it was not allowed"

    monkeypatch.setattr(wheelfacts, "locate_cuobjdump", locate)
    monkeypatch.setattr(wheelfacts, "_cuobjdump_found", {})
    report = verify.verify_wheel(write_wheel(tmp_path, FILES, info=build_info()), install=False)
    assert asked == [False] and report.ok and report.single_reader
    assert report.readers is not None and "installing it was not allowed" in report.readers.note
