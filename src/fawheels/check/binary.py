"""Read the CUDA code inside a wheel, shared object, cubin or raw fatbin (fatbin layout: docs/cuda-facts.md).

Two independent readers: our own parser of the `.nv_fatbin` container (needs no CUDA toolkit) and
`cuobjdump` when one is installed. Parsing works on bytes in memory; the only I/O is reading the input
(wheel members are read from the zip, never extracted) and, for cuobjdump, a temp file it can open.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import re
import shutil
import stat
import struct
import sys
import tempfile
import threading
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import lz4.block  # type: ignore[import-untyped]
import zstandard
from elftools.common.exceptions import ELFError
from elftools.construct.core import ConstructError
from elftools.elf.dynamic import DynamicSection, DynamicSegment
from elftools.elf.elffile import ELFFile

from fawheels._util import jsondoc
from fawheels._util.errors import InspectError
from fawheels._util.files import regular_file
from fawheels._util.runner import PIPE, SubprocessError, call, log, pip_install_into, spawn
from fawheels._util.show import say
from fawheels._util.wheels import is_shared_object

FATBIN_MAGIC = 0xBA55ED50
RELFATBIN_MAGIC = 0x466243B1  # relocatable (-rdc) containers in __nv_relfatbin
FATBIN_SECTIONS = (".nv_fatbin", "__nv_relfatbin")
EM_CUDA = 190

_CONTAINER = struct.Struct("<IHHQ")
# kind, version, header size, payload size, compressed size, options offset, minor, major, arch,
# name offset, name size, flags, reserved, decompressed size (64 bytes; longer headers carry options).
_ENTRY = struct.Struct("<HHIQIIHHIIIQQQ")
_KINDS = {1: "ptx", 2: "sass", 8: "lto"}
_FLAG_LZ4 = 0x2000
_FLAG_ZSTD = 0x8000
_FLAG_COMPRESSED_OLD = 0x1000
_FLAG_ARCH_SPECIFIC = 0x100000  # sm_XYa / compute_XYa
_FLAG_FAMILY = 0x200000  # sm_XYf / compute_XYf
_MAX_DECOMPRESSED = 1 << 31  # a header claiming more is corrupt, not a kernel
_PTX_PREFIX = 1 << 16  # `.version`/`.target` sit in the first lines of a PTX text
_ELF_MAGIC = b"\x7fELF"


@dataclass(frozen=True)
class CodeEntry:
    """One code image in a fatbin (or a standalone cubin)."""

    file: str  # path given, or the member path inside a wheel
    kind: str  # "sass", "ptx" or "lto" (NVVM IR for link-time optimisation; never loaded by the driver)
    arch: str  # sm_120, sm_90a, sm_120f (PTX is named by the SM it targets, as cuobjdump does)
    ptx_isa: str | None  # PTX ISA version of PTX entries
    code_version: str  # the fatbin's "code version": PTX ISA for PTX, cubin format for SASS
    compression: str  # none | lz4 | zstd
    size: int  # bytes stored
    uncompressed_size: int
    container: int = 0  # index of the fatbin container (one per translation unit = one driver module)
    section: str = ".nv_fatbin"  # ELF section, "" for a raw fatbin or cubin file

    @property
    def relocatable(self) -> bool:
        return self.section == "__nv_relfatbin"

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "kind": self.kind,
            "arch": self.arch,
            "ptx_isa": self.ptx_isa,
            "code_version": self.code_version,
            "compression": self.compression,
            "size": self.size,
            "uncompressed_size": self.uncompressed_size,
            "container": self.container,
            "section": self.section,
        }


@dataclass(frozen=True)
class CodeObject:
    """One ELF object (or raw fatbin) and the code it carries."""

    file: str
    format: str  # "shared-object" (any host ELF), "cubin" or "fatbin"
    needed: tuple[str, ...] = ()  # DT_NEEDED of a host ELF
    entries: tuple[CodeEntry, ...] = field(default=())
    machine: str = ""  # e_machine of a host ELF (EM_X86_64, EM_AARCH64), checked against the wheel's platform tag


# --- our parser (pure: bytes in, entries out) ----------------------------------------------------


def _arch_name(arch: int, flags: int) -> str:
    suffix = "a" if flags & _FLAG_ARCH_SPECIFIC else "f" if flags & _FLAG_FAMILY else ""
    return f"sm_{arch}{suffix}"


def _compression(flags: int) -> str:
    if flags & _FLAG_ZSTD:
        return "zstd"
    if flags & (_FLAG_LZ4 | _FLAG_COMPRESSED_OLD):
        return "lz4"
    return "none"


def _payload_prefix(payload: bytes | memoryview, compression: str, full_size: int, n: int, where: str) -> bytes:
    """The first `n` decompressed bytes (zstd streams only that far; lz4 blocks decompress whole)."""
    try:
        if compression == "zstd":
            reader = zstandard.ZstdDecompressor().stream_reader(bytes(payload))
            with reader:
                return reader.read(n)
        if compression == "lz4":
            # an LZ4 block expands at most 255-fold: a header claiming more is corrupt (and would make
            # us allocate what it claims)
            if full_size > min(_MAX_DECOMPRESSED, 255 * len(payload) + 64):
                raise InspectError(
                    f"{where}: corrupt entry header (claims {full_size} bytes decompressed from {len(payload)})"
                )
            return bytes(lz4.block.decompress(bytes(payload), uncompressed_size=full_size)[:n])
    except (zstandard.ZstdError, lz4.block.LZ4BlockError, ValueError, OverflowError, MemoryError) as exc:
        raise InspectError(f"{where}: compressed payload does not decompress ({compression}): {exc}") from None
    return bytes(payload[:n])


_PTX_VERSION = re.compile(rb"^\s*\.version\s+(\d+)\.(\d+)", re.M)
_PTX_TARGET = re.compile(rb"^\s*\.target\s+(\w+)", re.M)
_PTX_COMMENT = re.compile(rb"/\*.*?(?:\*/|\Z)|//[^\n]*", re.S)  # unterminated: to the end, as ptxas refuses


def strip_ptx_comments(text: bytes) -> bytes:
    """PTX text as ptxas reads its directives: `/* .version 7.8 */` or `// .target sm_50` is no directive.
    A block comment becomes the newlines it held, so a directive after it still starts its line."""
    return _PTX_COMMENT.sub(lambda m: b" " + b"\n" * m.group(0).count(b"\n"), text)


def parse_fatbin(
    data: bytes | memoryview, file: str, *, section: str = "", first_container: int = 0
) -> list[CodeEntry]:
    """Every entry of every container in `data` (a `.nv_fatbin` section or a raw `.fatbin` file)."""
    view = memoryview(data)
    entries: list[CodeEntry] = []
    off, container = 0, first_container
    while off < len(view):
        if len(view) - off < _CONTAINER.size or not any(view[off : off + _CONTAINER.size]):
            # the linker pads containers of different objects to 8 bytes with zeros
            if any(view[off : off + 8]):
                raise InspectError(f"{file}: {section or 'fatbin'}: trailing garbage at offset {off:#x}")
            off += 8
            continue
        magic, _version, header_size, fat_size = _CONTAINER.unpack_from(view, off)
        if magic not in (FATBIN_MAGIC, RELFATBIN_MAGIC):
            raise InspectError(f"{file}: {section or 'fatbin'}: no fatbin magic at offset {off:#x}")
        end = off + header_size + fat_size
        if header_size < _CONTAINER.size or end > len(view):
            raise InspectError(
                f"{file}: truncated fatbin container at offset {off:#x}: "
                f"it claims {header_size + fat_size} bytes, {len(view) - off} are there"
            )
        entries.extend(_parse_container(view, off + header_size, end, file, section, container))
        off, container = end, container + 1
    return entries


def _parse_container(
    view: memoryview, start: int, end: int, file: str, section: str, container: int
) -> Iterator[CodeEntry]:
    pos = start
    while pos < end:
        where = f"{file}: fatbin entry at offset {pos:#x}"
        if end - pos < _ENTRY.size:
            raise InspectError(f"{where}: truncated entry header")
        (kind, _ver, hsize, psize, csize, _opt, minor, major, arch, _no, _ns, flags, _r, dsize) = _ENTRY.unpack_from(
            view, pos
        )
        if hsize < _ENTRY.size or pos + hsize + psize > end or not 10 <= arch < 1000:
            raise InspectError(f"{where}: corrupt entry header (header {hsize}, payload {psize}, arch {arch})")
        compression = _compression(flags)
        if compression != "none" and not 0 < csize <= psize:
            raise InspectError(f"{where}: corrupt entry header (compressed size {csize} of {psize})")
        stored = csize if compression != "none" else psize
        full = dsize if compression != "none" else psize
        payload = view[pos + hsize : pos + hsize + stored]
        name = _arch_name(arch, flags)
        kind_name = _KINDS.get(kind)
        ptx_isa = None
        if kind_name == "ptx":
            ptx_isa = _check_ptx(
                _payload_prefix(payload, compression, full, _PTX_PREFIX, where), major, minor, name, where
            )
        elif kind_name == "sass" and _payload_prefix(payload, compression, full, 4, where) != _ELF_MAGIC:
            raise InspectError(f"{where}: SASS entry for {name} does not hold an ELF image")
        if kind_name is not None:
            yield CodeEntry(
                file=file,
                kind=kind_name,
                arch=name,
                ptx_isa=ptx_isa,
                code_version=f"{major}.{minor}",
                compression=compression,
                size=stored,
                uncompressed_size=full,
                container=container,
                section=section,
            )
        pos += hsize + psize


def _check_ptx(text: bytes, major: int, minor: int, arch: str, where: str) -> str:
    """The PTX ISA; the text's `.version`/`.target` (outside comments) must agree with the container header."""
    text = strip_ptx_comments(text)
    version, target = _PTX_VERSION.search(text), _PTX_TARGET.search(text)
    if version is None or target is None:
        raise InspectError(f"{where}: PTX entry has no .version/.target line")
    isa = f"{int(version.group(1))}.{int(version.group(2))}"
    if isa != f"{major}.{minor}" or target.group(1).decode() != arch:
        raise InspectError(
            f"{where}: PTX header says ISA {major}.{minor} for {arch}, its text says "
            f".version {isa} .target {target.group(1).decode()}"
        )
    return isa


def _cubin_entry(elf: ELFFile, data: bytes | memoryview, size: int, file: str) -> CodeEntry:
    """A standalone cubin: the SM from e_flags, the a/f suffix from the ptxas command line it records."""
    flags = elf.header["e_flags"]
    abi = elf.header["e_ident"]["EI_ABIVERSION"]
    sm = (flags >> 8) & 0xFF if abi >= 8 else flags & 0xFF  # CUDA 12.8+ cubins (ABI 8) moved the field
    if sm < 10:  # no GPU has an SM below sm_10: e_flags that name none are no cubin's
        raise InspectError(f"{file}: cubin names no SM arch (e_flags {flags:#x}, ABI {abi})")
    arch = f"sm_{sm}"
    note = elf.get_section_by_name(".note.nv.tkinfo")
    if note is not None:
        m = re.search(rb"-arch (sm_\d+[af]?)\b", _section_bytes(note, data, file))
        if m and m.group(1).decode().rstrip("af") == arch:
            arch = m.group(1).decode()
    return CodeEntry(
        file=file,
        kind="sass",
        arch=arch,
        ptx_isa=None,
        code_version=f"{abi}",
        compression="none",
        size=size,
        uncompressed_size=size,
        section="",
    )


def _section_bytes(section: Any, data: bytes | memoryview, file: str) -> memoryview:
    start, size = section["sh_offset"], section["sh_size"]
    if start + size > len(data):
        raise InspectError(f"{file}: truncated ELF: section {section.name} ends past the end of the file")
    return memoryview(data)[start : start + size]


def _check_extent(elf: ELFFile, size: int, file: str) -> None:
    """A truncated ELF: its header tables or a section reach past the end of the data."""
    h = elf.header
    tables = [(h["e_shoff"], h["e_shnum"] * h["e_shentsize"]), (h["e_phoff"], h["e_phnum"] * h["e_phentsize"])]
    sections = [(s["sh_offset"], s["sh_size"]) for s in elf.iter_sections() if s["sh_type"] != "SHT_NOBITS"]
    for start, length in tables + sections:
        if start + length > size:
            raise InspectError(f"{file}: truncated ELF: {size} bytes, its headers reach byte {start + length}")


def parse_elf(data: bytes, file: str) -> CodeObject:
    """A host ELF (its fatbin sections and DT_NEEDED) or a standalone cubin."""
    try:
        elf = ELFFile(io.BytesIO(data))
        _check_extent(elf, len(data), file)
        if elf.header["e_machine"] in ("EM_CUDA", EM_CUDA):
            return CodeObject(file=file, format="cubin", entries=(_cubin_entry(elf, data, len(data), file),))
        entries: list[CodeEntry] = []
        needed: list[str] = _needed(elf, data, file)
        for section in elf.iter_sections():
            if section.name in FATBIN_SECTIONS and section["sh_type"] != "SHT_NOBITS":
                first = entries[-1].container + 1 if entries else 0
                entries += parse_fatbin(
                    _section_bytes(section, data, file), file, section=section.name, first_container=first
                )
    except (
        ELFError,
        ConstructError,
        struct.error,
        ValueError,
        IndexError,
        KeyError,
        TypeError,
        AttributeError,
        AssertionError,
        OverflowError,
        RecursionError,
        MemoryError,
        UnicodeDecodeError,
    ) as exc:
        # pyelftools reads hostile headers with any of these; each means "not a readable ELF"
        raise InspectError(f"{file}: not a readable ELF object ({type(exc).__name__}: {exc})"[:600]) from None
    machine = str(elf.header["e_machine"])
    return CodeObject(file=file, format="shared-object", needed=tuple(needed), entries=tuple(entries), machine=machine)


def _needed(elf: ELFFile, data: bytes, file: str) -> list[str]:
    """DT_NEEDED as the loader reads it: from the PT_DYNAMIC segment, whatever the section headers say (a
    `.dynamic` retyped to PROGBITS hides nothing); from the SHT_DYNAMIC section only when there is no segment
    (an object the loader never maps)."""
    tables: list[Any] = [seg for seg in elf.iter_segments() if isinstance(seg, DynamicSegment)]
    if not tables:
        tables = [sec for sec in elf.iter_sections() if isinstance(sec, DynamicSection)]
        for sec in tables:
            _section_bytes(sec, data, file)
    # pyelftools resolves the string table into an attribute it does not declare
    return [tag.needed for table in tables for tag in table.iter_tags("DT_NEEDED")]


def parse_bytes(data: bytes, file: str) -> CodeObject:
    """An ELF object or raw fatbin held in memory."""
    if data[:4] == _ELF_MAGIC:
        return parse_elf(data, file)
    if len(data) >= 4 and struct.unpack_from("<I", data)[0] in (FATBIN_MAGIC, RELFATBIN_MAGIC):
        return CodeObject(file=file, format="fatbin", entries=tuple(parse_fatbin(data, file)))
    raise InspectError(f"{file}: neither an ELF object nor a fatbin")


# --- inputs: wheel, file -------------------------------------------------------------------------


def is_code_member(name: str) -> bool:
    """Members whose name says they hold CUDA code (shared objects, cubins, fatbins). What is read is
    decided by content (`holds_cuda_code`), whatever the name: this is only a hint for other readers."""
    return is_shared_object(name) or name.endswith((".cubin", ".fatbin"))


def holds_cuda_code(head: bytes) -> bool:
    """An ELF object (host ELF with `.nv_fatbin`, or a cubin) or a raw fatbin, from its first bytes."""
    if head[:4] == _ELF_MAGIC:
        return True
    return len(head) >= 4 and struct.unpack_from("<I", head)[0] in (FATBIN_MAGIC, RELFATBIN_MAGIC)


def check_member_name(name: str, wheel: str) -> None:
    """Refuse members that would land outside the install root (or are links) if unpacked."""
    parts = PurePosixPath(name).parts
    if name.startswith(("/", "\\")) or ".." in parts or "\\" in name or re.match(r"^[A-Za-z]:", name):
        raise InspectError(f"{wheel}: unsafe member name {name!r} (path traversal)")


# What a wheel may inflate to. The largest real member we know (libtorch_cuda.so) is 0.5 GB and
# deflates about 2:1; a zip bomb claims GiBs from a few MB.
MAX_MEMBER_BYTES = 1 << 31  # one member, inflated
MAX_WHEEL_BYTES = 1 << 33  # all members, inflated
MAX_RATIO = 100  # inflated / stored, for members above RATIO_FLOOR
RATIO_FLOOR = 1 << 24
_CHUNK = 1 << 20


def check_zip_sizes(zf: zipfile.ZipFile, wheel: str) -> None:
    """Refuse, before inflating anything, a zip whose members claim more than fawheels will hold."""
    total = 0
    for info in zf.infolist():
        size, stored = info.file_size, info.compress_size
        if size > MAX_MEMBER_BYTES:
            raise InspectError(
                f"{wheel}: member {info.filename} inflates to {size} bytes, more than the "
                f"{MAX_MEMBER_BYTES} fawheels reads"
            )
        if size > RATIO_FLOOR and size > MAX_RATIO * max(stored, 1):
            raise InspectError(
                f"{wheel}: member {info.filename} inflates {size // max(stored, 1)}-fold "
                f"({stored} -> {size} bytes): a zip bomb, not a wheel"
            )
        total += size
    if total > MAX_WHEEL_BYTES:
        raise InspectError(
            f"{wheel}: members inflate to {total} bytes in all, more than the {MAX_WHEEL_BYTES} fawheels reads"
        )


_LOCAL = struct.Struct("<4sHHHHHIIIHH")  # a local file header, before its name and extra field
_LOCAL_MAGIC = b"PK\x03\x04"
_DESCRIPTOR_MAGIC = b"PK\x07\x08"


def check_streaming_view(zf: zipfile.ZipFile, wheel: str) -> None:
    """The zip as a streaming reader sees it (local headers one after another from byte 0) must be the zip the
    central directory describes: the same members in the same places, nothing between them. Else a member
    hidden before the central directory, or one the directory lists at another offset, is what a streaming
    installer unpacks while every check here read something else."""
    fp = zf.fp
    assert fp is not None
    pos = 0
    for info in sorted(zf.infolist(), key=lambda i: i.header_offset):
        if info.header_offset != pos:
            raise InspectError(
                f"{wheel}: {pos} bytes from a streaming reader's view, the central directory puts "
                f"{info.filename!r} at {info.header_offset}: bytes between members (a hidden entry?)",
                hint="a wheel is one member after another; rebuild it",
            )
        fp.seek(pos)
        head = fp.read(_LOCAL.size)
        if len(head) < _LOCAL.size or head[:4] != _LOCAL_MAGIC:
            raise InspectError(f"{wheel}: no local header where the central directory puts {info.filename!r}")
        _magic, _version, flags, *_rest, name_len, extra_len = _LOCAL.unpack(head)
        local_name = fp.read(name_len)
        if local_name.decode("utf-8" if flags & 0x800 else "cp437", "replace") != info.filename:
            raise InspectError(f"{wheel}: the local header names {local_name[:200]!r}, the directory {info.filename!r}")
        pos += _LOCAL.size + name_len + extra_len + info.compress_size
        if flags & 0x08:  # sizes follow the data, in a descriptor with or without its signature
            fp.seek(pos)
            zip64 = info.compress_size >= 0xFFFFFFFF or info.file_size >= 0xFFFFFFFF
            pos += (4 if fp.read(4) == _DESCRIPTOR_MAGIC else 0) + (20 if zip64 else 12)
    if pos != zf.start_dir:
        raise InspectError(
            f"{wheel}: {zf.start_dir - pos} bytes after the last member and before the central "
            "directory (a hidden entry a streaming reader would unpack?)",
            hint="a wheel is one member after another; rebuild it",
        )


def open_wheel(path: Path) -> zipfile.ZipFile:
    """The wheel as a zip whose member names are all safe and whose sizes are sane; InspectError else."""
    if not path.is_file():
        raise InspectError(f"{path}: no such file")
    try:
        zf = zipfile.ZipFile(path)
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        OSError,
        EOFError,
        ValueError,
        OverflowError,
        NotImplementedError,
    ) as exc:
        raise InspectError(f"{path}: not a wheel (not a zip archive: {exc})") from None
    try:
        for info in zf.infolist():
            check_member_name(info.filename, path.name)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise InspectError(f"{path.name}: member {info.filename!r} is a symbolic link")
        check_zip_sizes(zf, path.name)
        check_streaming_view(zf, path.name)
        if not any(re.fullmatch(r"[^/]+\.dist-info/WHEEL", n) for n in zf.namelist()):
            raise InspectError(f"{path}: not a wheel (no *.dist-info/WHEEL)")
    except InspectError:
        zf.close()
        raise
    return zf


def member_chunks(zf: zipfile.ZipFile, info: zipfile.ZipInfo, wheel: str) -> Iterator[bytes]:
    """A member's bytes in chunks of at most 1 MiB, never more than it declares (and at most
    MAX_MEMBER_BYTES); a damaged member is an InspectError naming it."""
    left = min(info.file_size, MAX_MEMBER_BYTES)
    try:
        with zf.open(info) as fh:
            while chunk := fh.read(min(_CHUNK, left + 1)):
                left -= len(chunk)
                if left < 0:
                    raise InspectError(
                        f"{wheel}: member {info.filename} holds more than the {info.file_size} bytes it declares"
                    )
                yield chunk
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        OSError,
        EOFError,
        zlib.error,
        ValueError,
        NotImplementedError,
        RuntimeError,
        OverflowError,
    ) as exc:
        # RuntimeError: an encrypted member; NotImplementedError: an unknown compression method
        raise InspectError(f"{wheel}: member {info.filename} cannot be read: {exc}") from None


def read_member(zf: zipfile.ZipFile, name: str | zipfile.ZipInfo, wheel: str) -> bytes:
    """One member whole (streamed, within the size caps)."""
    try:
        info = name if isinstance(name, zipfile.ZipInfo) else zf.getinfo(name)
    except KeyError:
        raise InspectError(f"{wheel}: no member {name}") from None
    return b"".join(member_chunks(zf, info, wheel))


@dataclass(frozen=True)
class Member:
    """One zip member, read once: its sha256, size, and its bytes when they may hold CUDA code (or
    were asked for). `fatbin_at`: where a fatbin starts inside a member that is neither ELF nor fatbin."""

    name: str
    sha256: bytes
    size: int
    data: bytes | None
    fatbin_at: int | None = None


_FATBIN_MAGICS = (struct.pack("<I", FATBIN_MAGIC), struct.pack("<I", RELFATBIN_MAGIC))


def iter_members(zf: zipfile.ZipFile, wheel: str, keep: Callable[[str], bool] = lambda name: False) -> Iterator[Member]:
    """Every file member in zip order, streamed once. A member is kept whole when `keep(name)`, when
    it starts like CUDA code, or when a fatbin magic appears anywhere in it (then parsed from there)."""
    for info in zf.infolist():
        if info.is_dir():
            continue
        digest, size, head, tail = hashlib.sha256(), 0, b"", b""
        parts: list[bytes] | None = [] if keep(info.filename) else None
        found: int | None = None
        for chunk in member_chunks(zf, info, wheel):
            if size == 0:
                head = chunk[:4]
                if parts is None and holds_cuda_code(chunk[:8]):
                    parts = []
            digest.update(chunk)
            if found is None and parts is None:
                window = tail + chunk
                hits = [window.find(m) for m in _FATBIN_MAGICS]
                hits = [h for h in hits if h >= 0]
                if hits:
                    found = size - len(tail) + min(hits)
            if parts is not None:
                parts.append(chunk)
            tail = chunk[-3:]
            size += len(chunk)
        data = b"".join(parts) if parts is not None else None
        if found is not None and data is None:  # seen late: read it whole now (within the caps)
            data = read_member(zf, info, wheel)
        yield Member(
            info.filename,
            digest.digest(),
            size,
            data,
            found if found is not None and not holds_cuda_code(head) else None,
        )


def embedded_fatbin(member: Member, wheel: str) -> CodeObject | None:
    """A fatbin inside a member of another kind (appended to a file, hidden in data): the first
    magic from which a whole container parses. Random bytes that look like a magic are ignored."""
    if member.fatbin_at is None or member.data is None:
        return None
    view = memoryview(member.data)
    at = member.fatbin_at
    while at >= 0:
        try:
            _magic, _version, header_size, fat_size = _CONTAINER.unpack_from(view, at)
            end = at + header_size + fat_size
            if header_size >= _CONTAINER.size and end <= len(view):
                entries = list(
                    _parse_container(view, at + header_size, end, f"{member.name} (fatbin at offset {at:#x})", "", 0)
                )
                if entries:
                    return CodeObject(file=member.name, format="embedded-fatbin", entries=tuple(entries))
        except (InspectError, struct.error):
            pass
        at = min((i for i in (member.data.find(m, at + 1) for m in _FATBIN_MAGICS) if i >= 0), default=-1)
    return None


def wheel_objects(zf: zipfile.ZipFile, wheel: str) -> list[CodeObject]:
    """Every member that holds CUDA code, by content, whatever its name (duplicates read each)."""
    objects = []
    for member in iter_members(zf, wheel):
        if member.data is None:
            continue
        if member.fatbin_at is not None:
            found = embedded_fatbin(member, wheel)
            if found is not None:
                objects.append(found)
        elif holds_cuda_code(member.data[:8]):
            objects.append(parse_bytes(member.data, member.name))
    return objects


def is_wheel(path: Path) -> bool:
    """A .whl, or any zip that is not an ELF object (an ELF may end with bytes that look like a zip)."""
    if path.suffix == ".whl":
        return True
    try:
        with path.open("rb") as fh:
            head = fh.read(4)
    except OSError:
        return False
    return head != _ELF_MAGIC and zipfile.is_zipfile(path)


def read_path(path: Path) -> list[CodeObject]:
    """Every code object in a wheel, or the one in an ELF / fatbin file (regular files only: a FIFO would
    block the read, /dev/zero would never end it)."""
    regular_file(path, InspectError)
    if is_wheel(path):
        with open_wheel(path) as zf:
            return wheel_objects(zf, path.name)
    return [read_file(path)]


def read_file(path: Path) -> CodeObject:
    """One ELF object or raw fatbin on disk (read whole: slicing sections of it then copies nothing)."""
    try:
        size = path.stat().st_size
        if size > MAX_MEMBER_BYTES:
            raise InspectError(f"{path}: {size} bytes, more than the {MAX_MEMBER_BYTES} fawheels reads of one binary")
        data = path.read_bytes()
    except OSError as exc:
        raise InspectError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_bytes(data, str(path))


# --- cuobjdump reader ----------------------------------------------------------------------------

CUOBJDUMP_PACKAGE = "nvidia-cuda-cuobjdump"
CUOBJDUMP_PIN = "13.2.86"  # reads the binaries of CUDA 12.x and 13.x; the first release on PyPI
_CUOBJDUMP_MARKER = ".fawheels-complete"
CUOBJDUMP_TIMEOUT_S = 1800  # per pass; libtorch_cuda.so (0.5 GB) takes about 35 s on 2 shared cores


@dataclass(frozen=True)
class Cuobjdump:
    """A cuobjdump that runs, and where it came from (recorded in verify reports)."""

    path: Path
    version: str  # 13.2.86
    origin: str  # FAWHEELS_CUOBJDUMP | PATH | toolkit | python-env | cache


def cuobjdump_cache_dir() -> Path:
    from fawheels._util.paths import cache_root

    return cache_root() / "tools" / f"cuobjdump-{CUOBJDUMP_PIN}"


def _pip_cuobjdump(root: Path) -> Path:
    return root / "nvidia" / "cu13" / "bin" / "cuobjdump"


def _candidates(toolkit: Path | None) -> list[tuple[Path, str]]:
    found: list[tuple[Path, str]] = []
    if env := os.environ.get("FAWHEELS_CUOBJDUMP"):
        found.append((Path(env), "FAWHEELS_CUOBJDUMP"))
    if toolkit is not None:
        found.append((toolkit / "bin" / "cuobjdump", "toolkit"))
    if on_path := shutil.which("cuobjdump"):
        found.append((Path(on_path), "PATH"))
    found.append((Path(os.environ.get("CUDA_HOME", "/usr/local/cuda")) / "bin" / "cuobjdump", "toolkit"))
    spec = importlib.util.find_spec("nvidia")  # namespace package of NVIDIA's PyPI wheels
    if spec is not None and spec.submodule_search_locations:
        found += [(Path(p) / "cu13" / "bin" / "cuobjdump", "python-env") for p in spec.submodule_search_locations]
    found.append((_pip_cuobjdump(cuobjdump_cache_dir()), "cache"))
    return found


def find_cuobjdump(toolkit: Path | None = None) -> Path | None:
    """cuobjdump from FAWHEELS_CUOBJDUMP, the toolkit, PATH, CUDA_HOME, this Python's
    nvidia-cuda-cuobjdump, or the fawheels cache (never installs anything)."""
    return next((c for c, _ in _candidates(toolkit) if c.is_file() and os.access(c, os.X_OK)), None)


def cuobjdump_version(exe: Path) -> str:
    """`cuobjdump --version` -> 13.2.86; InspectError when it does not run."""
    try:
        out = call([exe, "--version"], timeout=60, quiet=True).stdout
    except (OSError, SubprocessError) as exc:
        raise InspectError(f"{exe} does not run: {exc}") from None
    m = re.search(r"V(\d+\.\d+\.\d+)", out)
    if m is None:
        raise InspectError(f"{exe} --version says no version: {out.strip()[:200]!r}")
    return m.group(1)


def provision_cuobjdump() -> Path:
    """Install the pinned nvidia-cuda-cuobjdump once into the fawheels cache (like a pip toolkit)."""
    root = cuobjdump_cache_dir()
    if not (root / _CUOBJDUMP_MARKER).exists():
        if root.exists():
            shutil.rmtree(root)
        log(f"installing {CUOBJDUMP_PACKAGE}=={CUOBJDUMP_PIN} from PyPI into {root} (once)")
        pip_install_into(
            root,
            [f"{CUOBJDUMP_PACKAGE}=={CUOBJDUMP_PIN}"],
            what=f"pip install {CUOBJDUMP_PACKAGE}=={CUOBJDUMP_PIN}",
            error=InspectError,
            capture=True,
        )
        (root / _CUOBJDUMP_MARKER).write_text(CUOBJDUMP_PIN + "\n")
    return _pip_cuobjdump(root)


def locate_cuobjdump(toolkit: Path | None = None, *, install: bool = True) -> tuple[Cuobjdump | None, str]:
    """A cuobjdump that runs (installing the pinned one into the cache when none is found and
    `install`), or None and why not."""
    problems: list[str] = []
    for path, origin in _candidates(toolkit):
        if path.is_file() and os.access(path, os.X_OK):
            try:
                return Cuobjdump(path, cuobjdump_version(path), origin), ""
            except InspectError as exc:
                problems.append(str(exc))
    if not install:
        return None, "; ".join(problems) or "no cuobjdump found and installing it was not allowed"
    try:
        path = provision_cuobjdump()
        return Cuobjdump(path, cuobjdump_version(path), "cache"), ""
    except InspectError as exc:
        problems.append(
            str(exc).splitlines()[0]
            + (" (no PyPI or no wheel for this platform?)" if "pip install" in str(exc) else "")
        )
    return None, "; ".join(problems)


_CUOBJ_HEADER = re.compile(r"^Fatbin (elf|ptx|nvvm) code:")
_CUOBJ_CUBIN = re.compile(r"^\d+-bit ELF: .*\bsm=(\d+[af]?)")
_CUOBJ_LISTED = re.compile(r"^(PTX|ELF) file\s+\d+: .*\.(sm_\d+[af]?)\.(?:ptx|cubin)$")
_PTX_TEXT_VERSION = re.compile(r"^\.version\s+(\d+)\.(\d+)")


def parse_cuobjdump(lines: Iterable[str], file: str) -> list[CodeEntry]:
    """Entries from `cuobjdump -elf -ptx` (or `-res-usage`) output (pure). Sizes are not printed; they
    read as 0. A PTX entry's ISA is its text's `.version` when the text was dumped, else its header's."""
    entries: list[CodeEntry] = []
    cur: dict[str, str] | None = None

    def flush() -> None:
        if cur is not None and "arch" in cur:
            kind = {"elf": "sass", "ptx": "ptx"}.get(cur["kind"], "lto")
            isa = cur.get("isa", cur.get("version")) if kind == "ptx" else None
            entries.append(
                CodeEntry(
                    file=file,
                    kind=kind,
                    arch=cur["arch"],
                    ptx_isa=isa,
                    code_version=cur.get("version", ""),
                    compression=cur.get("compression", "none"),
                    size=0,
                    uncompressed_size=0,
                    section=cur.get("section", ".nv_fatbin"),
                )
            )

    standalone, in_comment = True, False
    for line in lines:
        if in_comment:  # inside a PTX block comment: nothing is a directive until it closes
            in_comment = "*/" not in line
            continue
        in_comment = "/*" in line and "*/" not in line.rsplit("/*", 1)[1]
        header = _CUOBJ_HEADER.match(line)
        if header:
            flush()
            cur, standalone = {"kind": header.group(1)}, False
        elif standalone and (m := _CUOBJ_CUBIN.match(line)):
            # a cubin given directly: no fatbin header, the suffix is in the recorded ptxas arguments
            cur = {"kind": "elf", "arch": f"sm_{m.group(1)}", "section": ""}
            abi = re.search(r"ABI=(\d+)", line)
            cur["version"] = abi.group(1) if abi else ""
        elif cur is None:
            continue
        elif m := re.match(r"^arch = (\w+)", line):
            cur["arch"] = m.group(1)
        elif m := re.match(r"^code version = \[(\d+),(\d+)\]", line):
            cur["version"] = f"{m.group(1)}.{m.group(2)}"
        elif (m := _PTX_TEXT_VERSION.match(line)) and "isa" not in cur:
            cur["isa"] = f"{m.group(1)}.{m.group(2)}"
        elif line.startswith("compressed"):
            cur["compression"] = "compressed"
        elif standalone and (m := re.search(r"Tool Command Line Arguments: .*-arch (sm_\d+[af]?)", line)):
            cur["arch"] = m.group(1)
    flush()
    return entries


def parse_cuobjdump_listing(lines: Iterable[str]) -> list[tuple[str, str]]:
    """(kind, arch) of every entry `cuobjdump -lelf -lptx` lists (pure). The listing drops the `f` of
    SASS archs (sm_120f SASS lists as sm_120) and shows no PTX ISA."""
    listed = []
    for line in lines:
        if m := _CUOBJ_LISTED.match(line.strip()):
            listed.append(("ptx" if m.group(1) == "PTX" else "sass", m.group(2)))
    return listed


def _keep(line: str) -> bool:
    """The lines of a dump we parse: entry headers, not the sections and code that follow them (and the
    lines that open or close a PTX block comment, which may hold a `.version` that is none)."""
    return line.startswith(("Fatbin ", "arch =", "code version", "compressed", ".version", ".target")) or (
        _CUOBJ_CUBIN.match(line) is not None or "Tool Command Line" in line or "/*" in line or "*/" in line
    )


def _run_cuobjdump(exe: Path, args: Sequence[str], path: Path, label: str) -> list[str]:
    """cuobjdump's output, streamed and filtered to the header lines (a full dump of a large
    extension is gigabytes of text); no device code at all reads as no lines. Its messages go to a
    file, so a flood of warnings cannot block it while we read its output."""
    with tempfile.TemporaryFile() as errors:
        try:
            proc = spawn([exe, *args, path], stdout=PIPE, stderr=errors, quiet=True)
        except OSError as exc:
            raise InspectError(f"{label}: cuobjdump does not run: {exc}") from None
        assert proc.stdout is not None
        timer = threading.Timer(CUOBJDUMP_TIMEOUT_S, proc.kill)  # a binary that makes it spin must not hang us
        timer.start()
        try:
            kept = [
                line.rstrip("\n") for line in proc.stdout if _keep(line) or line.startswith(("ELF file", "PTX file"))
            ]
            code = proc.wait()
        finally:
            timer.cancel()
        errors.seek(0)
        err = errors.read(64 << 10).decode("utf-8", errors="replace")
    if code < 0:
        raise InspectError(f"{label}: cuobjdump {' '.join(args)} did not finish in {CUOBJDUMP_TIMEOUT_S} s (killed)")
    if code != 0:
        if "does not contain device code" in err:
            return []
        raise InspectError(f"{label}: cuobjdump {' '.join(args)} failed: {err.strip()[:1000]}")
    return kept


def _is_cubin(path: Path) -> bool:
    """A standalone cubin (ELF for EM_CUDA), which cuobjdump reads without fatbin headers."""
    with path.open("rb") as fh:
        head = fh.read(20)
    return head[:4] == _ELF_MAGIC and len(head) == 20 and struct.unpack_from("<H", head, 18)[0] == EM_CUDA


def _family_capable(arch: str) -> bool:
    """SASS of sm_100 and later may carry the `f` suffix, which `-lelf` does not print."""
    m = re.fullmatch(r"sm_(\d+)[af]?", arch)
    return m is not None and int(m.group(1)) >= 100


def cuobjdump_read(
    path: Path, label: str | None = None, tool: Path | None = None, expect: Iterable[CodeEntry] = ()
) -> list[CodeEntry]:
    """Entries of one file as cuobjdump reads them, at low cost. One pass lists every entry:
    `-lelf -lptx`, or `-res-usage` (the entry headers, without the code) when SASS of a family-capable
    arch (sm_100 and later) is expected or listed, since only that shows its true `f` suffix. PTX texts
    are dumped (`-ptx`) only when PTX is listed, for their `.version`; a standalone cubin needs `-elf`.
    `expect` (our parser's reading) only chooses the cheaper pass; what cuobjdump reads is its own."""
    exe = tool or find_cuobjdump()
    if exe is None:
        raise InspectError("cuobjdump not found", hint=f"pip install {CUOBJDUMP_PACKAGE}=={CUOBJDUMP_PIN}")
    file = label or str(path)
    if _is_cubin(path):
        return parse_cuobjdump(_run_cuobjdump(exe, ["-elf"], path, file), file)
    headers: list[CodeEntry] | None = None
    if any(e.kind == "sass" and _family_capable(e.arch) for e in expect):
        headers = parse_cuobjdump(_run_cuobjdump(exe, ["-all", "-res-usage"], path, file), file)
        listed = [(e.kind, e.arch) for e in headers if e.kind != "lto"]
    else:
        listed = parse_cuobjdump_listing(_run_cuobjdump(exe, ["-all", "-lelf", "-lptx"], path, file))
        if any(kind == "sass" and _family_capable(arch) for kind, arch in listed):
            # the header dump names every SASS entry again, now with its suffix; should it ever list
            # other entries than the listing, the comparison with our parser shows it
            headers = parse_cuobjdump(_run_cuobjdump(exe, ["-all", "-res-usage"], path, file), file)
    sass = (
        [e for e in headers if e.kind == "sass"]
        if headers is not None
        else [CodeEntry(file, "sass", a, None, "", "none", 0, 0) for kind, a in listed if kind == "sass"]
    )
    ptx: list[CodeEntry] = []
    if any(kind == "ptx" for kind, _arch in listed):
        ptx = [e for e in parse_cuobjdump(_run_cuobjdump(exe, ["-all", "-ptx"], path, file), file) if e.kind == "ptx"]
    return sass + ptx


def cuobjdump_file(path: Path, label: str | None = None, tool: Path | None = None) -> list[CodeEntry]:
    """Kept for callers of the earlier name: the same as cuobjdump_read."""
    return cuobjdump_read(path, label, tool)


def cuobjdump_bytes(
    data: bytes, label: str, tool: Path | None = None, expect: Iterable[CodeEntry] = ()
) -> list[CodeEntry]:
    """cuobjdump's reading of bytes held in memory (a wheel member), through a private temp file."""
    with tempfile.TemporaryDirectory(prefix="fawheels-") as tmp:
        member = Path(tmp) / "member"
        member.write_bytes(data)
        return cuobjdump_read(member, label, tool, expect)


def cuobjdump_path(path: Path, tool: Path | None = None) -> list[CodeEntry]:
    """The cuobjdump reader over the same inputs as read_path (every member holding CUDA code)."""
    if not is_wheel(path):
        return cuobjdump_read(path, tool=tool)
    entries: list[CodeEntry] = []
    with open_wheel(path) as zf:
        for obj_member in iter_members(zf, path.name):
            if obj_member.data is not None and obj_member.fatbin_at is None:
                entries += cuobjdump_bytes(obj_member.data, obj_member.name, tool)
    return entries


def comparable(entry: CodeEntry) -> tuple[str, str, str, str | None]:
    """What both readers must agree on: member, kind, arch with its a/f suffix, PTX ISA."""
    return (entry.file, entry.kind, entry.arch, entry.ptx_isa)


def _reading(entries: Counter[tuple[str, str, str, str | None]]) -> str:
    parts = [
        f"{kind} {arch}" + (f" (ISA {isa})" if isa else "") + (f" x{n}" if n > 1 else "")
        for (_f, kind, arch, isa), n in sorted(entries.items(), key=lambda kv: str(kv[0]))
    ]
    return ", ".join(parts) or "no CUDA code"


def disagreements(ours: Iterable[CodeEntry], theirs: Iterable[CodeEntry]) -> list[str]:
    """Per file, where the two readings differ, naming both readings (LTO IR excluded: cuobjdump
    lists no NVVM entries)."""
    a = Counter(comparable(e) for e in ours if e.kind != "lto")
    b = Counter(comparable(e) for e in theirs if e.kind != "lto")
    problems = []
    for file in sorted({k[0] for k in a} | {k[0] for k in b}):
        mine = Counter({k: n for k, n in a.items() if k[0] == file})
        other = Counter({k: n for k, n in b.items() if k[0] == file})
        if mine != other:
            problems.append(f"{file}: fawheels reads {_reading(mine)}; cuobjdump reads {_reading(other)}")
    return problems


# --- command ---------------------------------------------------------------------------------------


def _table(entries: list[CodeEntry]) -> str:
    rows = [("file", "kind", "arch", "ptx isa", "code ver", "compression", "size", "container")]
    rows += [
        (e.file, e.kind, e.arch, e.ptx_isa or "-", e.code_version, e.compression, str(e.size), str(e.container))
        for e in entries
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


INSPECT_JSON_SCHEMA = 1  # `inspect --json`: {schema, file, reader, entries, disagreements}


def inspect_command(path: Path, *, as_json: bool = False, reader: str = "fawheels") -> int:
    """`fawheels inspect`: list every code entry; `reader=both` also exits 1 when the readers disagree."""
    if not path.exists():
        raise InspectError(f"{path}: no such file")
    entries = cuobjdump_path(path) if reader == "cuobjdump" else [e for obj in read_path(path) for e in obj.entries]
    problems = disagreements(entries, cuobjdump_path(path)) if reader == "both" else []
    if as_json:
        doc = {
            "schema": INSPECT_JSON_SCHEMA,
            "file": str(path),
            "reader": reader,
            "entries": [e.to_json() for e in entries],
        }
        say(jsondoc.dumps({**doc, "disagreements": problems}))
    else:
        say(_table(entries) if entries else f"{path}: no CUDA code")
    for problem in problems:
        say(f"readers disagree: {problem}", file=sys.stderr)
    return 1 if problems else 0
