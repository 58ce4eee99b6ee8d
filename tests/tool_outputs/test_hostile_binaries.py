"""Hostile wheels and binaries: zip bombs, corrupt ELF and fatbin headers, hidden or duplicated CUDA code,
absurdly nested metadata. Each is refused with the project's own error (exit 7 naming the file, or a failed
check naming the member) — never a traceback, never a pass, never gigabytes of memory."""

from __future__ import annotations

import io
import json
import struct
import tracemalloc
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fawheels import cli
from fawheels._util.errors import InspectError
from fawheels._util.wheels import read_build_info
from fawheels.check import binary as inspect
from fawheels.check import cuobjdump, verify, wheelfacts, wheelzip
from support.cudabins import DATA, EXT, PKG, VERSION, build_info, write_wheel

LIBTWO = (DATA / "libtwo.so").read_bytes()
FILES = {"fa2toy/__init__.py": b"", EXT: LIBTWO}
DIST_INFO = f"{PKG}-{VERSION}.dist-info"


def failing(report: verify.VerifyReport) -> dict[str, str]:
    return {c.name: c.detail for c in report.checks if not c.ok}


def ours(path: Path) -> verify.VerifyReport:
    return verify.verify_wheel(path, reader="fawheels")  # unit tests run no subprocess


@pytest.fixture
def peak_memory() -> Iterator[list[int]]:
    """Peak Python memory (bytes) during the test body: tracemalloc sees every bytes object made."""
    tracemalloc.start()
    peak: list[int] = []
    yield peak
    peak.append(tracemalloc.get_traced_memory()[1])
    tracemalloc.stop()


def cli_error(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert cli.main(args) == InspectError.exit_code
    err = capsys.readouterr().err
    assert "inspect error" in err and "Traceback" not in err
    return err


# --- zips ----------------------------------------------------------------------------------------------------


def _zip_with_lying_size(path: Path, claimed: int) -> Path:
    """A wheel whose member claims `claimed` inflated bytes in the central directory (a bomb's header)."""
    write_wheel(path.parent, FILES, info=build_info())
    built = next(path.parent.glob("*.whl"))
    data = bytearray(built.read_bytes())
    name = EXT.encode()
    cd = data.rfind(b"PK\x01\x02", 0, data.rfind(name))  # the member's central directory header
    struct.pack_into("<I", data, cd + 24, claimed & 0xFFFFFFFF)
    built.unlink()
    path.write_bytes(bytes(data))
    return path


def test_a_member_claiming_gigabytes_is_refused_before_inflating(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], peak_memory: list[int]
) -> None:
    bomb = _zip_with_lying_size(tmp_path / f"{PKG}-{VERSION}-cp311-cp311-linux_x86_64.whl", 0xFFFF0000)
    err = cli_error(["verify", str(bomb)], capsys)
    assert f"member {EXT} inflates" in err and bomb.name in err
    cli_error(["inspect", str(bomb)], capsys)


def test_a_deflate_bomb_is_refused_with_bounded_memory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], peak_memory: list[int]
) -> None:
    bomb = tmp_path / "bomb-1.0-py3-none-any.whl"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("bomb-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\n")
        with zf.open("bomb/_C.so", "w") as fh:
            zeros = b"\0" * (1 << 20)
            for _ in range(64):
                fh.write(zeros)
    assert bomb.stat().st_size < 1 << 20
    tracemalloc.reset_peak()
    err = cli_error(["verify", str(bomb)], capsys)
    assert "zip bomb" in err and "bomb/_C.so" in err
    assert tracemalloc.get_traced_memory()[1] < 16 << 20


def test_a_member_larger_than_it_declares_is_unreadable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_wheel(tmp_path, FILES, info=build_info())
    data = bytearray(path.read_bytes())
    cd = data.rfind(b"PK\x01\x02", 0, data.rfind(EXT.encode()))
    real = struct.unpack_from("<I", data, cd + 24)[0]
    struct.pack_into("<I", data, cd + 24, real // 2)  # says half: the CRC of what is read cannot match
    path.write_bytes(bytes(data))
    err = cli_error(["verify", str(path)], capsys)
    assert f"member {EXT} cannot be read" in err


def test_truncated_and_garbage_zips_are_exit_7(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_wheel(tmp_path, FILES, info=build_info())
    whole = path.read_bytes()
    for cut in (len(whole) // 3, len(whole) - 30, 22):
        path.write_bytes(whole[:cut])
        assert path.name in cli_error(["verify", str(path)], capsys)


def test_duplicate_member_names_fail_verification(tmp_path: Path) -> None:
    path = write_wheel(tmp_path, FILES, info=build_info())
    clean = (DATA / "gpu" / "sm120-sass.fatbin").read_bytes()
    with pytest.warns(UserWarning, match="Duplicate name"), zipfile.ZipFile(path, "a") as zf:
        zf.writestr(EXT, LIBTWO[:100] + b"x" + LIBTWO[101:])  # a second copy of the extension
        zf.writestr("fa2toy/__init__.py", clean)
    report = ours(path)
    assert f"{EXT} appears more than once" in failing(report)["record"]
    assert "fa2toy/__init__.py appears more than once" in failing(report)["record"]


# --- CUDA code under any name, or hidden ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["fa2toy/kernels.fatbin", "fa2toy/data/blob.bin", "fa2toy/weights", "README"])
def test_a_raw_fatbin_member_is_read_whatever_its_name(tmp_path: Path, name: str) -> None:
    old = (DATA / "sm80+ptx80-size.fatbin").read_bytes()  # sm_80 SASS + compute_80 PTX: runs on no sm_120
    report = ours(write_wheel(tmp_path, {**FILES, name: old}, info=build_info()))
    assert f"{name} carries CUDA code but is not listed" in failing(report)["extensions"]
    assert f"{name} module 0: nothing runs on 12.0, 12.1 (has sm_80)" in failing(report)["sass"]


def test_a_cubin_named_like_text_is_read(tmp_path: Path) -> None:
    report = ours(
        write_wheel(tmp_path, {**FILES, "fa2toy/notes.txt": (DATA / "sm_120f.cubin").read_bytes()}, info=build_info())
    )
    assert "fa2toy/notes.txt carries CUDA code" in failing(report)["extensions"]


def test_a_fatbin_hidden_inside_data_is_found(tmp_path: Path) -> None:
    hidden = b"#!/usr/bin/env python\n" * 1000 + (DATA / "sm80+ptx80-none.fatbin").read_bytes() + b"\n" * 7
    report = ours(write_wheel(tmp_path, {**FILES, "fa2toy/loader.py": hidden}, info=build_info()))
    assert "fa2toy/loader.py carries CUDA code" in failing(report)["extensions"]
    assert "fa2toy/loader.py module 0: nothing runs on 12.0, 12.1" in failing(report)["sass"]


def test_bytes_that_merely_look_like_a_fatbin_magic_are_not_code(tmp_path: Path) -> None:
    noise = b"data" + struct.pack("<I", inspect.FATBIN_MAGIC) + b"\xff" * 64
    report = ours(write_wheel(tmp_path, {**FILES, "fa2toy/table.bin": noise}, info=build_info()))
    assert report.ok, failing(report)


def test_a_listed_extension_that_is_a_raw_fatbin_fails(tmp_path: Path) -> None:
    fatbin = (DATA / "gpu" / "sm120-sass.fatbin").read_bytes()
    report = ours(write_wheel(tmp_path, {"fa2toy/__init__.py": b"", EXT: fatbin}, info=build_info()))
    assert f"{EXT} is not an ELF shared object" in failing(report)["extensions"]


# --- corrupt ELF and fatbin headers --------------------------------------------------------------------------


def _elf_header_positions(data: bytes) -> list[int]:
    """Every byte of the ELF header and of the section header table (where corruption bites)."""
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    return list(range(64)) + list(range(shoff, min(len(data), shoff + 64 * 40), 11))


@pytest.mark.parametrize("name", ["libtwo.so", "sm_120f.cubin"])
def test_one_and_two_byte_corruptions_of_an_elf_are_clean_errors(name: str) -> None:
    data = (DATA / name).read_bytes()
    positions = _elf_header_positions(data)
    for i, pos in enumerate(positions):
        for value in (0xFF, data[pos] ^ 0x01):
            corrupt = bytearray(data)
            corrupt[pos] = value
            if i % 5 == 0:  # and a second byte further on
                corrupt[positions[(i * 7) % len(positions)]] ^= 0xA5
            try:
                inspect.parse_bytes(bytes(corrupt), name)
            except InspectError as exc:
                assert name in str(exc)


def _entry(data: bytes) -> tuple[bytearray, int]:
    """A fatbin's bytes and the offset of its first entry header."""
    _magic, _v, header_size, _size = struct.unpack_from("<IHHQ", data, 0)
    return bytearray(data), header_size


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("container size", 1 << 62, "truncated fatbin container"),
        ("container header", 0xFFFF, "truncated fatbin container"),
        ("entry header", 0xFFFFFFFF, "corrupt entry header"),
        ("entry payload", 1 << 62, "corrupt entry header"),
        ("entry decompressed", 1 << 28, "claims"),  # below any fixed cap: the bound is 255x what is stored
        ("entry compressed", 0xFFFFFFFF, "compressed size"),
    ],
)
def test_absurd_fatbin_sizes_are_refused_without_allocating_them(
    field: str, value: int, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], peak_memory: list[int]
) -> None:
    data, at = _entry((DATA / "sm80+ptx80-speed.fatbin").read_bytes())  # lz4-compressed PTX first
    offsets = {
        "container size": (8, "<Q"),
        "container header": (6, "<H"),
        "entry header": (at + 4, "<I"),
        "entry payload": (at + 8, "<Q"),
        "entry decompressed": (at + 56, "<Q"),
        "entry compressed": (at + 16, "<I"),
    }
    off, fmt = offsets[field]
    kinds = [struct.unpack_from("<H", data, at)[0], struct.unpack_from("<Q", data, at + 40)[0]]
    assert kinds[0] in (1, 2) and kinds[1] & 0x2000  # the first entry is lz4-compressed
    struct.pack_into(fmt, data, off, value)
    bad = tmp_path / "absurd.fatbin"
    bad.write_bytes(bytes(data))
    err = cli_error(["inspect", str(bad)], capsys)
    assert says in err and str(bad) in err
    assert tracemalloc.get_traced_memory()[1] < 64 << 20


# --- metadata ------------------------------------------------------------------------------------------------


def test_a_200000_deep_build_info_fails_its_check_not_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deep = "[" * 200_000 + "]" * 200_000
    path = write_wheel(tmp_path, FILES, info=None, tamper={f"{DIST_INFO}/build-info.json": deep.encode()})
    report = ours(path)
    assert "build-info.json nests deeper" in failing(report)["build-info"]
    assert cli.main(["verify", "--reader", "fawheels", str(path)]) == 1
    assert "Traceback" not in capsys.readouterr().err
    with pytest.raises(ValueError, match="nests too deeply"):
        read_build_info(path)


def test_deep_json_elsewhere_in_the_wheel_is_just_data(tmp_path: Path) -> None:
    deep = ("[" * 200_000 + "]" * 200_000).encode()
    report = ours(write_wheel(tmp_path, {**FILES, "fa2toy/deep.json": deep}, info=build_info()))
    assert report.ok, failing(report)


def test_metadata_texts_are_size_capped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wheelfacts, "MAX_TEXT_BYTES", 1000)
    path = write_wheel(tmp_path, FILES, info=build_info(padding="x" * 2000))
    err = cli_error(["verify", "--reader", "fawheels", str(path)], capsys)
    assert "build-info.json is" in err and "metadata file" in err


def test_member_streaming_never_holds_more_than_declared() -> None:
    chunks = list(wheelzip.member_chunks(*_one_member_zip(b"x" * 3_000_000)))
    assert sum(map(len, chunks)) == 3_000_000 and max(map(len, chunks)) <= 1 << 20


def _one_member_zip(data: bytes) -> tuple[zipfile.ZipFile, zipfile.ZipInfo, str]:
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("m", data)
    zf = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    return zf, zf.getinfo("m"), "w.whl"


def test_json_report_of_a_hostile_wheel_is_valid_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hidden = (DATA / "sm80+ptx80-none.fatbin").read_bytes()
    path = write_wheel(tmp_path, {**FILES, "x/y.dat": hidden}, info=build_info())
    assert cli.main(["verify", "--reader", "fawheels", "--json", str(path)]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False and doc["single_reader"] is True


# --- issue 21: read the wheel as the loader, ptxas and an installer do ------------------------------------------


@pytest.mark.parametrize(
    "alias",
    [
        EXT.replace("/", "/./"),
        EXT.replace("/", "//"),
        EXT.upper(),
    ],
)
def test_a_member_that_installs_over_another_fails_verification(tmp_path: Path, alias: str) -> None:
    files = {**FILES, alias: b"\x7fELF stub"}
    report = ours(write_wheel(tmp_path, files, info=build_info()))
    assert "appears more than once" in failing(report)["record"]


def _with_hidden_entry(path: Path) -> bytes:
    """The wheel with a stored member slipped in before the central directory, the EOCD's offset moved past it:
    the directory does not list it, a streaming reader unpacks it."""
    data = bytearray(path.read_bytes())
    eocd = data.rfind(b"PK\x05\x06")
    (cd_offset,) = struct.unpack_from("<I", data, eocd + 16)
    extra = io.BytesIO()
    with zipfile.ZipFile(extra, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(EXT, b"\x7fELF a second extension")
    raw = extra.getvalue()
    blob = raw[: struct.unpack_from("<I", raw, raw.rfind(b"PK\x05\x06") + 16)[0]]
    struct.pack_into("<I", data, eocd + 16, cd_offset + len(blob))
    return bytes(data[:cd_offset] + blob + data[cd_offset:])


def test_a_local_entry_hidden_before_the_central_directory_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_wheel(tmp_path, FILES, info=build_info())
    assert ours(path).ok
    path.write_bytes(_with_hidden_entry(path))
    with zipfile.ZipFile(path) as zf:  # the central directory alone still reads cleanly
        assert zf.testzip() is None
    err = cli_error(["verify", "--reader", "fawheels", str(path)], capsys)
    assert "streaming reader" in err or "hidden entry" in err


def _needs_evil_behind_a_retyped_section() -> bytes:
    """libtwo.so needing libevil.so.1 (in place of libgcc_s.so.1), its `.dynamic` section retyped from
    SHT_DYNAMIC (6) to PROGBITS (1): the loader reads the PT_DYNAMIC segment and loads libevil all the same."""
    data = bytearray(LIBTWO)
    at = data.index(b"libgcc_s.so.1\x00")
    data[at : at + 14] = b"libevil.so.1\x00\x00"
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    (shentsize, shnum) = struct.unpack_from("<HH", data, 0x3A)
    for i in range(shnum):
        if struct.unpack_from("<I", data, shoff + i * shentsize + 4)[0] == 6:
            struct.pack_into("<I", data, shoff + i * shentsize + 4, 1)
    return bytes(data)


def test_dt_needed_is_read_from_the_dynamic_segment_not_the_section(tmp_path: Path) -> None:
    hidden = _needs_evil_behind_a_retyped_section()
    assert "libevil.so.1" in inspect.parse_bytes(hidden, "x.so").needed
    report = ours(write_wheel(tmp_path, {**FILES, EXT: hidden}, info=build_info()))
    assert "libevil.so.1" in failing(report)["dt-needed"]


@pytest.mark.parametrize(
    "text",
    [
        b"/* .version 7.8 */\n.version 9.0\n.target sm_80\n",
        b"/*\n.version 7.8\n.target sm_80\n*/\n.version 9.0\n.target sm_80\n",
        b"// .version 7.8\n.version 9.0\n.target sm_80\n",
    ],
)
def test_the_ptx_isa_is_the_directive_not_a_comment(text: bytes) -> None:
    assert inspect._check_ptx(text, 9, 0, "sm_80", "w") == "9.0"
    with pytest.raises(InspectError, match=r"text says \.version 9\.0"):
        inspect._check_ptx(text, 7, 8, "sm_80", "w")  # a header that agrees with the comment is caught


def test_cuobjdump_reading_skips_a_block_comment() -> None:
    lines = ["Fatbin ptx code:", "arch = sm_80", "code version = [9,0]", "/*", ".version 7.8", "*/", ".version 9.0"]
    (entry,) = cuobjdump.parse_cuobjdump(lines, "x")
    assert entry.ptx_isa == "9.0"


@pytest.mark.parametrize("tag", ["cp311-cp311-linux_aarch64", "cp311-cp311-win_amd64", "cp311-cp311-macosx_14_0_arm64"])
def test_an_x86_64_extension_under_another_platform_tag_fails(tmp_path: Path, tag: str) -> None:
    report = ours(write_wheel(tmp_path, FILES, info=build_info(), wheel_tag=tag, filename_tag=tag))
    assert "EM_X86_64" in failing(report)["format"]


def test_a_manylinux_x86_64_tag_is_fine(tmp_path: Path) -> None:
    tag = "cp311-cp311-manylinux_2_28_x86_64"
    report = ours(write_wheel(tmp_path, FILES, info=build_info(), wheel_tag=tag, filename_tag=tag))
    assert "format" not in failing(report)


def _metadata(path: Path) -> bytes:
    with zipfile.ZipFile(path) as zf:
        return zf.read(f"{DIST_INFO}/METADATA")


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda m: m + b"Name: other\n", "2 Name fields"),
        (lambda m: m + b"Version: 9.9\n", "2 Version fields"),
        (lambda m: m + b"Summary: caf\xe9\n", "not UTF-8"),
        (lambda m: b"\xef\xbb\xbf" + m, "byte-order mark"),
        (lambda m: m.decode().encode("utf-16"), "UTF-16"),
        (lambda m: m.decode().encode("utf-16-le"), "UTF-16"),
    ],
)
def test_metadata_that_tools_read_differently_fails(
    tmp_path: Path, change: Callable[[bytes], bytes], says: str
) -> None:
    (tmp_path / "clean").mkdir()
    meta = _metadata(write_wheel(tmp_path / "clean", FILES, info=build_info()))
    report = ours(write_wheel(tmp_path, FILES, info=build_info(), tamper={f"{DIST_INFO}/METADATA": change(meta)}))
    assert says in failing(report)["format"] and "None None" not in failing(report)["format"]


def test_a_cubin_that_names_no_sm_is_refused() -> None:
    data = bytearray((DATA / "sm_120f.cubin").read_bytes())
    struct.pack_into("<I", data, 0x30, 0)  # e_flags
    with pytest.raises(InspectError, match="names no SM arch"):
        inspect.parse_bytes(bytes(data), "x.cubin")
