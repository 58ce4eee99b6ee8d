"""inspect: our fatbin parser on committed real binaries (checked against committed cuobjdump output),
bad input, and — marked nvcc — binaries compiled during the run, cross-checked with cuobjdump."""

from __future__ import annotations

import contextlib
import functools
import json
import shutil
import zipfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fawheels import cli
from fawheels._util.errors import InspectError
from fawheels.check import binary as inspect
from fawheels.check import cuobjdump, wheelzip
from fawheels.check.binary import CodeEntry
from support import cudabins
from support.cudabins import DATA


def kinds(entries: list[CodeEntry]) -> list[tuple[str, str, str | None, str]]:
    return [(e.kind, e.arch, e.ptx_isa, e.compression) for e in entries]


def read(name: str) -> inspect.CodeObject:
    return wheelzip.read_file(DATA / name)


def committed_cuobjdump(name: str) -> list[CodeEntry]:
    text = (DATA / f"{name}.cuobjdump.txt").read_text()
    return cuobjdump.parse_cuobjdump(text.splitlines(), str(DATA / name))


# --- committed real outputs -----------------------------------------------------------------------


def test_multi_arch_fatbin_with_a_and_f_targets() -> None:
    obj = read("multi.fatbin")
    assert obj.format == "fatbin"
    assert sorted(kinds(list(obj.entries)), key=str) == sorted(
        [
            ("sass", "sm_90a", None, "none"),
            ("ptx", "sm_90a", "9.0", "zstd"),
            ("sass", "sm_100f", None, "none"),
            ("ptx", "sm_100f", "9.0", "zstd"),
            ("ptx", "sm_120a", "9.0", "zstd"),
            ("ptx", "sm_120f", "9.0", "zstd"),
            ("sass", "sm_110", None, "none"),
            ("sass", "sm_90", None, "none"),
        ],
        key=str,
    )
    assert all(e.code_version == "1.8" for e in obj.entries if e.kind == "sass")


@pytest.mark.parametrize("name", ["multi.fatbin", "sm80+ptx80-size.fatbin", "libtwo.so", "sm_120f.cubin"])
def test_parser_agrees_with_committed_cuobjdump_output(name: str) -> None:
    ours = list(read(name).entries)
    theirs = committed_cuobjdump(name)
    assert ours and len(ours) == len(theirs)
    assert cuobjdump.disagreements(ours, theirs) == []


@pytest.mark.parametrize(
    ("mode", "ptx", "sass"), [("none", "none", "none"), ("speed", "lz4", "none"), ("size", "zstd", "zstd")]
)
def test_compress_modes(mode: str, ptx: str, sass: str) -> None:
    entries = read(f"sm80+ptx80-{mode}.fatbin").entries
    assert sorted(kinds(list(entries)), key=str) == [("ptx", "sm_80", "9.0", ptx), ("sass", "sm_80", None, sass)]
    assert all(e.uncompressed_size >= e.size > 0 for e in entries)


def test_shared_object_has_one_container_per_translation_unit_and_its_needed_libraries() -> None:
    obj = read("libtwo.so")
    assert obj.format == "shared-object"
    assert "libcudart.so.13" in obj.needed
    # container 0 is what nvcc's device-link step adds; then one per .cu file
    assert sorted({e.container for e in obj.entries}) == [0, 1, 2]
    assert {(e.kind, e.arch, e.ptx_isa) for e in obj.entries if e.container == 2} == {
        ("sass", "sm_120", None),
        ("ptx", "sm_80", "9.0"),
    }


def test_cubin_suffix_comes_from_the_recorded_ptxas_arguments() -> None:
    (entry,) = read("sm_120f.cubin").entries
    assert (entry.kind, entry.arch, entry.code_version, entry.section) == ("sass", "sm_120f", "8", "")


def test_ptx_from_nvcc_13_2_is_isa_9_2() -> None:
    (entry,) = wheelzip.read_file(DATA / "gpu" / "ptx80-nvcc13.2.fatbin").entries
    assert (entry.kind, entry.arch, entry.ptx_isa) == ("ptx", "sm_80", "9.2")


def test_lto_ir_is_listed_but_is_neither_sass_nor_ptx() -> None:
    (entry,) = read("lto80.fatbin").entries
    assert entry.kind == "lto"


def test_wheel_members_are_read_in_memory(tmp_path: Path) -> None:
    wheel = cudabins.write_wheel(
        tmp_path, {cudabins.EXT: (DATA / "libtwo.so").read_bytes()}, info=cudabins.build_info()
    )
    before = set(tmp_path.iterdir())
    (obj,) = wheelzip.read_path(wheel)
    assert obj.file == cudabins.EXT and len(obj.entries) == 5
    assert set(tmp_path.iterdir()) == before


def test_cli_json_contract(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["inspect", "--json", str(DATA / "multi.fatbin")]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == 1 and doc["reader"] == "fawheels" and doc["disagreements"] == []
    entries = doc["entries"]
    assert isinstance(entries, list) and len(entries) == 8
    for e in entries:
        assert {"file", "kind", "arch", "ptx_isa", "compression", "size"} <= set(e)
        assert e["kind"] in ("sass", "ptx")
        assert (e["ptx_isa"] is None) == (e["kind"] == "sass")
    assert {e["arch"] for e in entries} >= {"sm_90a", "sm_100f", "sm_120a", "sm_120f"}


def test_cli_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["inspect", str(DATA / "libtwo.so")]) == 0
    out = capsys.readouterr().out
    assert "sm_120" in out and "zstd" in out


# --- bad input ----------------------------------------------------------------------------------------


def assert_clean_error(path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    assert cli.main(["inspect", str(path)]) == InspectError.exit_code
    err = capsys.readouterr().err
    assert "inspect error" in err and "Traceback" not in err
    return err


@pytest.mark.parametrize("name", ["multi.fatbin", "libtwo.so", "sm_120f.cubin"])
def test_every_truncation_is_a_clean_error(name: str, tmp_path: Path) -> None:
    data = (DATA / name).read_bytes()
    cut = tmp_path / name
    for end in range(1, len(data), 97):
        cut.write_bytes(data[:end])
        with pytest.raises(InspectError):
            wheelzip.read_file(cut)


def test_corrupt_header_bytes_never_escape_as_other_exceptions(tmp_path: Path) -> None:
    data = (DATA / "multi.fatbin").read_bytes()
    for pos in range(0, 0x100):
        for value in (0x00, 0xFF, 0x7F):
            corrupt = bytearray(data)
            corrupt[pos] = value
            with contextlib.suppress(InspectError):
                inspect.parse_bytes(bytes(corrupt), "corrupt.fatbin")


def test_corrupt_payload_is_reported(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    data = bytearray((DATA / "sm80+ptx80-size.fatbin").read_bytes())
    data[0x60:0x70] = b"\xff" * 16  # inside the zstd frame of the PTX
    bad = tmp_path / "bad.fatbin"
    bad.write_bytes(bytes(data))
    assert "decompress" in assert_clean_error(bad, capsys)


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


@pytest.mark.parametrize("evil", ["../../evil.so", "/etc/evil.so", "a/../../evil.so", "C:/evil.so", "a\\..\\b.so"])
def test_zip_path_traversal_is_refused_and_nothing_is_written(
    evil: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    wheel = _zip(
        tmp_path / "evil-1.0-py3-none-any.whl",
        {"evil-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\n", evil: (DATA / "libtwo.so").read_bytes()},
    )
    before = sorted(tmp_path.rglob("*"))
    assert "path traversal" in assert_clean_error(wheel, capsys)
    assert sorted(tmp_path.rglob("*")) == before


def test_non_wheel_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    not_zip = tmp_path / "x-1.0-py3-none-any.whl"
    not_zip.write_bytes(b"not a zip at all")
    assert "not a wheel" in assert_clean_error(not_zip, capsys)
    no_wheel_file = _zip(tmp_path / "y-1.0-py3-none-any.whl", {"y/__init__.py": b""})
    assert "not a wheel" in assert_clean_error(no_wheel_file, capsys)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    assert "neither an ELF" in assert_clean_error(text, capsys)
    empty = tmp_path / "empty.so"
    empty.write_bytes(b"")
    assert_clean_error(empty, capsys)
    assert "no such file" in assert_clean_error(tmp_path / "missing.so", capsys)


def test_symlink_member_is_refused(tmp_path: Path) -> None:
    wheel = tmp_path / "s-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("s-1.0.dist-info/WHEEL", b"Wheel-Version: 1.0\n")
        link = zipfile.ZipInfo("s/link.so")
        link.external_attr = 0o120777 << 16
        zf.writestr(link, "/etc/passwd")
    with pytest.raises(InspectError, match="symbolic link"):
        wheelzip.read_path(wheel)


def test_cuobjdump_output_parser_handles_no_device_code() -> None:
    assert cuobjdump.parse_cuobjdump(["cuobjdump info    : File 'x' does not contain device code"], "x") == []


# --- nvcc: compiled now, cross-checked with cuobjdump --------------------------------------------------

NVCC_TARGETS = ("sm_80", "sm_90a", "sm_100", "sm_120a", "sm_120f", "compute_80", "compute_120f")
COMPRESS_MODES = ("default", "size", "speed", "balance", "none")
needs_tools = pytest.mark.skipif(
    cudabins.find_nvcc() is None or cuobjdump.find_cuobjdump() is None,
    reason="needs nvcc and cuobjdump (pip install nvidia-cuda-cuobjdump)",
)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every binary of the nvcc tests, compiled two at a time (the machine has 2 cores)."""
    out = tmp_path_factory.mktemp("nvcc")
    jobs: dict[str, Callable[[], Path]] = {
        f"mode-{m}": functools.partial(cudabins.compile_fatbin, out / f"{m}.fatbin", NVCC_TARGETS, compress=m)
        for m in COMPRESS_MODES
    }
    jobs["ptx-only"] = lambda: cudabins.compile_fatbin(out / "ptx.fatbin", ("compute_90a", "compute_100"))
    jobs["so"] = lambda: cudabins.compile_so(
        out / "libtwo.so", [cudabins.HOST, cudabins.HOST], ("sm_120", "sm_90a", "compute_80")
    )
    with ThreadPoolExecutor(2) as pool:
        futures = {name: pool.submit(job) for name, job in jobs.items()}
        return {name: f.result() for name, f in futures.items()}


@pytest.mark.nvcc
@needs_tools
@pytest.mark.parametrize("mode", COMPRESS_MODES)
def test_each_compress_mode_parses_like_cuobjdump(mode: str, compiled: dict[str, Path]) -> None:
    path = compiled[f"mode-{mode}"]
    ours = list(wheelzip.read_file(path).entries)
    assert {(e.kind, e.arch) for e in ours} == {
        ("sass", "sm_80"),
        ("sass", "sm_90a"),
        ("sass", "sm_100"),
        ("sass", "sm_120a"),
        ("sass", "sm_120f"),
        ("ptx", "sm_80"),
        ("ptx", "sm_120f"),
    }
    assert {e.ptx_isa for e in ours if e.kind == "ptx"} == {"9.0"}
    expected = {"none": {"none"}, "speed": {"lz4", "none"}}.get(mode, {"zstd", "none"})
    assert {e.compression for e in ours} <= expected
    assert cuobjdump.disagreements(ours, cuobjdump.cuobjdump_file(path)) == []


@pytest.mark.nvcc
@needs_tools
def test_ptx_only_and_shared_object_agree_with_cuobjdump(compiled: dict[str, Path]) -> None:
    for name in ("ptx-only", "so"):
        ours = list(wheelzip.read_file(compiled[name]).entries)
        assert cuobjdump.disagreements(ours, cuobjdump.cuobjdump_file(compiled[name])) == []
    assert {e.kind for e in wheelzip.read_file(compiled["ptx-only"]).entries} == {"ptx"}


@pytest.mark.nvcc
@needs_tools
def test_wheel_readers_agree_through_the_cli(
    compiled: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wheel = cudabins.write_wheel(tmp_path, {cudabins.EXT: compiled["so"].read_bytes()}, info=cudabins.build_info())
    assert cli.main(["inspect", "--reader", "both", str(wheel)]) == 0
    assert cli.main(["inspect", "--reader", "cuobjdump", "--json", str(wheel)]) == 0
    out = capsys.readouterr().out
    assert cudabins.EXT in out
    assert not [p for p in tmp_path.iterdir() if p != wheel]


@pytest.mark.nvcc
@needs_tools
def test_readers_disagreeing_is_exit_1(
    compiled: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = cuobjdump.parse_cuobjdump

    def drop_first(lines: Iterable[str], file: str) -> list[CodeEntry]:
        return real(lines, file)[1:]

    monkeypatch.setattr(cuobjdump, "parse_cuobjdump", drop_first)
    copy = tmp_path / "x.fatbin"
    shutil.copy(compiled["mode-default"], copy)
    assert cli.main(["inspect", "--reader", "both", str(copy)]) == 1
