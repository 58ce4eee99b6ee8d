"""Read the CUDA code inside a wheel, shared object, cubin or raw fatbin (DESIGN §4 fatbin layout).

Two independent readers: our own parser of the `.nv_fatbin` container (needs no CUDA toolkit) and
`cuobjdump` when one is installed. Parsing works on bytes in memory; the only I/O is reading the input
(wheel members are read from the zip, never extracted) and, for cuobjdump, a temp file it can open.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import re
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import lz4.block  # type: ignore[import-untyped]
import zstandard
from elftools.common.exceptions import ELFError
from elftools.construct.core import ConstructError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

from .errors import InspectError

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
_SO_NAME = re.compile(r"\.so(\.\d+)*$")


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
            if full_size > _MAX_DECOMPRESSED:
                raise InspectError(f"{where}: corrupt entry header (claims {full_size} bytes decompressed)")
            return bytes(lz4.block.decompress(bytes(payload), uncompressed_size=full_size)[:n])
    except (zstandard.ZstdError, lz4.block.LZ4BlockError) as exc:
        raise InspectError(f"{where}: compressed payload does not decompress ({compression}): {exc}") from None
    return bytes(payload[:n])


_PTX_VERSION = re.compile(rb"^\s*\.version\s+(\d+)\.(\d+)", re.M)
_PTX_TARGET = re.compile(rb"^\s*\.target\s+(\w+)", re.M)


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
        (kind, _ver, hsize, psize, csize, _opt, minor, major, arch, _no, _ns, flags, _r, dsize) = (
            _ENTRY.unpack_from(view, pos)
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
            ptx_isa = _check_ptx(_payload_prefix(payload, compression, full, _PTX_PREFIX, where), major, minor,
                                 name, where)
        elif kind_name == "sass" and _payload_prefix(payload, compression, full, 4, where) != _ELF_MAGIC:
            raise InspectError(f"{where}: SASS entry for {name} does not hold an ELF image")
        if kind_name is not None:
            yield CodeEntry(
                file=file, kind=kind_name, arch=name, ptx_isa=ptx_isa, code_version=f"{major}.{minor}",
                compression=compression, size=stored, uncompressed_size=full, container=container,
                section=section,
            )
        pos += hsize + psize


def _check_ptx(text: bytes, major: int, minor: int, arch: str, where: str) -> str:
    """The PTX ISA; the text's `.version`/`.target` must agree with the container header."""
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
    arch = f"sm_{sm}"
    note = elf.get_section_by_name(".note.nv.tkinfo")
    if note is not None:
        m = re.search(rb"-arch (sm_\d+[af]?)\b", _section_bytes(note, data, file))
        if m and m.group(1).decode().rstrip("af") == arch:
            arch = m.group(1).decode()
    return CodeEntry(file=file, kind="sass", arch=arch, ptx_isa=None, code_version=f"{abi}",
                     compression="none", size=size, uncompressed_size=size, section="")


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
        needed: list[str] = []
        for section in elf.iter_sections():
            if section.name in FATBIN_SECTIONS and section["sh_type"] != "SHT_NOBITS":
                first = entries[-1].container + 1 if entries else 0
                entries += parse_fatbin(_section_bytes(section, data, file), file, section=section.name,
                                        first_container=first)
            elif isinstance(section, DynamicSection):
                _section_bytes(section, data, file)
                # pyelftools resolves the string table into an attribute it does not declare
                needed += [tag.needed for tag in section.iter_tags("DT_NEEDED")]  # type: ignore[attr-defined]
    except (ELFError, ConstructError, struct.error, ValueError, IndexError, UnicodeDecodeError) as exc:
        raise InspectError(f"{file}: not a readable ELF object ({exc})") from None
    return CodeObject(file=file, format="shared-object", needed=tuple(needed), entries=tuple(entries))


def parse_bytes(data: bytes, file: str) -> CodeObject:
    """An ELF object or raw fatbin held in memory."""
    if data[:4] == _ELF_MAGIC:
        return parse_elf(data, file)
    if len(data) >= 4 and struct.unpack_from("<I", data)[0] in (FATBIN_MAGIC, RELFATBIN_MAGIC):
        return CodeObject(file=file, format="fatbin", entries=tuple(parse_fatbin(data, file)))
    raise InspectError(f"{file}: neither an ELF object nor a fatbin")


# --- inputs: wheel, file -------------------------------------------------------------------------


def is_code_member(name: str) -> bool:
    """Wheel members that can hold CUDA code: shared objects, cubins, fatbins."""
    return bool(_SO_NAME.search(name)) or name.endswith((".cubin", ".fatbin"))


def check_member_name(name: str, wheel: str) -> None:
    """Refuse members that would land outside the install root (or are links) if unpacked."""
    parts = PurePosixPath(name).parts
    if name.startswith(("/", "\\")) or ".." in parts or "\\" in name or re.match(r"^[A-Za-z]:", name):
        raise InspectError(f"{wheel}: unsafe member name {name!r} (path traversal)")


def open_wheel(path: Path) -> zipfile.ZipFile:
    """The wheel as a zip whose member names are all safe; InspectError for anything else."""
    if not path.is_file():
        raise InspectError(f"{path}: no such file")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InspectError(f"{path}: not a wheel (not a zip archive: {exc})") from None
    for info in zf.infolist():
        check_member_name(info.filename, path.name)
        if stat.S_ISLNK(info.external_attr >> 16):
            zf.close()
            raise InspectError(f"{path.name}: member {info.filename!r} is a symbolic link")
    if not any(re.fullmatch(r"[^/]+\.dist-info/WHEEL", n) for n in zf.namelist()):
        zf.close()
        raise InspectError(f"{path}: not a wheel (no *.dist-info/WHEEL)")
    return zf


def read_member(zf: zipfile.ZipFile, name: str, wheel: str) -> bytes:
    try:
        return zf.read(name)
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
        raise InspectError(f"{wheel}: member {name} cannot be read: {exc}") from None


def wheel_objects(zf: zipfile.ZipFile, wheel: str) -> list[CodeObject]:
    objects = []
    for name in zf.namelist():
        if is_code_member(name):
            data = read_member(zf, name, wheel)
            if data[:4] == _ELF_MAGIC or name.endswith(".fatbin"):
                objects.append(parse_bytes(data, name))
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
    """Every code object in a wheel, or the one in an ELF / fatbin file."""
    if is_wheel(path):
        with open_wheel(path) as zf:
            return wheel_objects(zf, path.name)
    return [read_file(path)]


def read_file(path: Path) -> CodeObject:
    """One ELF object or raw fatbin on disk (read whole: slicing sections of it then copies nothing)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InspectError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_bytes(data, str(path))


# --- cuobjdump reader ----------------------------------------------------------------------------


def find_cuobjdump() -> Path | None:
    """cuobjdump on PATH, in CUDA_HOME, or from the PyPI package nvidia-cuda-cuobjdump."""
    found = shutil.which("cuobjdump")
    if found:
        return Path(found)
    candidates = [Path(os.environ.get("CUDA_HOME", "/usr/local/cuda")) / "bin" / "cuobjdump"]
    spec = importlib.util.find_spec("nvidia")  # namespace package of NVIDIA's PyPI wheels
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(p) / "cu13" / "bin" / "cuobjdump" for p in spec.submodule_search_locations]
    return next((c for c in candidates if c.is_file() and os.access(c, os.X_OK)), None)


_CUOBJ_HEADER = re.compile(r"^Fatbin (elf|ptx|nvvm) code:")
_CUOBJ_CUBIN = re.compile(r"^\d+-bit ELF: .*\bsm=(\d+[af]?)")


def parse_cuobjdump(lines: Iterable[str], file: str) -> list[CodeEntry]:
    """Entries from `cuobjdump -elf -ptx` output (pure). Sizes are not printed; they read as 0."""
    entries: list[CodeEntry] = []
    cur: dict[str, str] | None = None

    def flush() -> None:
        if cur is not None and "arch" in cur:
            kind = {"elf": "sass", "ptx": "ptx"}.get(cur["kind"], "lto")
            entries.append(CodeEntry(
                file=file, kind=kind, arch=cur["arch"], ptx_isa=cur.get("version") if kind == "ptx" else None,
                code_version=cur.get("version", ""), compression=cur.get("compression", "none"),
                size=0, uncompressed_size=0, section=cur.get("section", ".nv_fatbin"),
            ))

    standalone = True
    for line in lines:
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
        elif line.startswith("compressed"):
            cur["compression"] = "compressed"
        elif standalone and (m := re.search(r"Tool Command Line Arguments: .*-arch (sm_\d+[af]?)", line)):
            cur["arch"] = m.group(1)
    flush()
    return entries


def cuobjdump_file(path: Path, label: str | None = None, tool: Path | None = None) -> list[CodeEntry]:
    """Entries of one file as cuobjdump reads them (its output is streamed, never held whole)."""
    exe = tool or find_cuobjdump()
    if exe is None:
        raise InspectError("cuobjdump not found", hint="pip install nvidia-cuda-cuobjdump")
    proc = subprocess.Popen([str(exe), "-elf", "-ptx", str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, errors="replace")
    assert proc.stdout is not None and proc.stderr is not None
    # the dump repeats every section in hex: keep only the header lines we parse
    keep = (line for line in proc.stdout if not line.startswith((" ", "\t", "\n", ".section")) or
            "Tool Command Line" in line)
    entries = parse_cuobjdump(keep, label or str(path))
    err = proc.stderr.read()
    if proc.wait() != 0 and "does not contain device code" not in err:
        raise InspectError(f"{label or path}: cuobjdump failed: {err.strip()}")
    return entries


def cuobjdump_path(path: Path) -> list[CodeEntry]:
    """The cuobjdump reader over the same inputs as read_path (wheel members go through a temp file)."""
    if not is_wheel(path):
        return cuobjdump_file(path)
    entries: list[CodeEntry] = []
    with open_wheel(path) as zf, tempfile.TemporaryDirectory(prefix="fawheels-") as tmp:
        for name in zf.namelist():
            if is_code_member(name):
                data = read_member(zf, name, path.name)
                if data[:4] != _ELF_MAGIC and not name.endswith(".fatbin"):
                    continue
                member = Path(tmp) / "member"
                member.write_bytes(data)
                entries += cuobjdump_file(member, name)
    return entries


def comparable(entry: CodeEntry) -> tuple[str, str, str, str, bool]:
    """What both readers report: cuobjdump prints no sizes and not which codec compressed an entry."""
    return (entry.file, entry.kind, entry.arch, entry.code_version, entry.compression != "none")


def disagreements(ours: Iterable[CodeEntry], theirs: Iterable[CodeEntry]) -> list[str]:
    """Entries one reader saw and the other did not (LTO IR excluded: cuobjdump -elf/-ptx skip it)."""
    a = Counter(comparable(e) for e in ours if e.kind != "lto")
    b = Counter(comparable(e) for e in theirs if e.kind != "lto")
    only_ours = [f"only fawheels: {k}" for k in (a - b).elements()]
    only_theirs = [f"only cuobjdump: {k}" for k in (b - a).elements()]
    return only_ours + only_theirs


# --- command ---------------------------------------------------------------------------------------


def _table(entries: list[CodeEntry]) -> str:
    rows = [("file", "kind", "arch", "ptx isa", "code ver", "compression", "size", "container")]
    rows += [(e.file, e.kind, e.arch, e.ptx_isa or "-", e.code_version, e.compression, str(e.size),
              str(e.container)) for e in entries]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def inspect_command(path: Path, *, as_json: bool = False, reader: str = "fawheels") -> int:
    """`fawheels inspect`: list every code entry; `reader=both` also exits 1 when the readers disagree."""
    if not path.exists():
        raise InspectError(f"{path}: no such file")
    entries = cuobjdump_path(path) if reader == "cuobjdump" else [
        e for obj in read_path(path) for e in obj.entries
    ]
    problems = disagreements(entries, cuobjdump_path(path)) if reader == "both" else []
    if as_json:
        print(json.dumps([e.to_json() for e in entries], indent=2))
    else:
        print(_table(entries) if entries else f"{path}: no CUDA code")
    for problem in problems:
        print(f"readers disagree: {problem}", file=sys.stderr)
    return 1 if problems else 0
