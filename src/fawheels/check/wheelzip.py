"""The inputs of the readers: a wheel read member by member from its zip (never extracted), every name, size,
ratio and the streaming view checked before a byte is inflated (docs/errors.md, exit 7); a file given as a path;
and which members hold CUDA code (by content, not by name)."""

from __future__ import annotations

import hashlib
import re
import stat
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from fawheels._util.errors import InspectError
from fawheels._util.files import regular_file
from fawheels._util.wheels import is_shared_object
from fawheels.check.binary import (
    _CONTAINER,
    _ELF_MAGIC,
    FATBIN_MAGIC,
    RELFATBIN_MAGIC,
    CodeObject,
    _parse_container,
    parse_bytes,
)


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
