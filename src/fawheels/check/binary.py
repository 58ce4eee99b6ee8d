"""Our reader of CUDA code: the `.nv_fatbin` container of a shared object, cubin or raw fatbin parsed from bytes
in memory (fatbin layout: docs/cuda-facts.md; needs no CUDA toolkit). Pure: bytes in, entries out.

Its inputs (a wheel read member by member, a file) are wheelzip.py's; the second, independent reader is
cuobjdump.py; `fawheels inspect` is inspect.py.
"""

from __future__ import annotations

import io
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import lz4.block  # type: ignore[import-untyped]
import zstandard
from elftools.common.exceptions import ELFError
from elftools.construct.core import ConstructError
from elftools.elf.dynamic import DynamicSection, DynamicSegment
from elftools.elf.elffile import ELFFile

from fawheels._util.errors import InspectError

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


# --- cuobjdump reader ----------------------------------------------------------------------------


# --- command ---------------------------------------------------------------------------------------
