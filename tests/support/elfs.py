"""Small host ELF shared objects made in Python, no compiler: the DT_NEEDED a real extension has (libcudart.so.13
or .12) and a `.nv_fatbin` section of real fatbin containers (tests/data), one module each. Enough for compat and
fix-vllm to read an installed extension as they read vLLM's; nothing can load it.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path

from support.cudabins import DATA

# sm_80 SASS + compute_80 PTX (ISA 9.0) from nvcc 13.0: the shape of stock vLLM's _vllm_fa2_C modules
STOCK_MODULE = (DATA / "sm80+ptx80-none.fatbin").read_bytes()

_SHT_PROGBITS, _SHT_STRTAB, _SHT_DYNAMIC = 1, 3, 6
_FATBIN_HEADER = 16  # u32 magic, u16 version, u16 header size, u64 size
_ENTRY_VERSION_AT = 24  # u16 minor, u16 major of an entry (check/binary.py _ENTRY)


def with_ptx_isa(module: bytes, isa: str) -> bytes:
    """An uncompressed module whose PTX says another ISA (header and `.version` text, same length): what an
    older nvcc made, e.g. 8.7 for a CUDA 12.8 build."""
    major, minor = (int(x) for x in isa.split("."))
    data = bytearray(module.replace(b".version 9.0", f".version {major}.{minor}".encode()))
    pos = _FATBIN_HEADER
    while pos < len(data):
        kind, _, hsize, psize = struct.unpack_from("<HHIQ", data, pos)
        if kind == 1:
            struct.pack_into("<HH", data, pos + _ENTRY_VERSION_AT, minor, major)
        pos += hsize + psize
    return bytes(data)


_DT_NEEDED = 1


def _align(data: bytes, to: int = 8) -> bytes:
    return data + b"\0" * (-len(data) % to)


def shared_object(needed: Sequence[str], fatbins: Sequence[bytes]) -> bytes:
    """An x86-64 ET_DYN with sections .dynstr, .dynamic (DT_NEEDED of each of `needed`), .nv_fatbin, .shstrtab."""
    dynstr = b"\0"
    offsets = []
    for lib in needed:
        offsets.append(len(dynstr))
        dynstr += lib.encode() + b"\0"
    dynamic = b"".join(struct.pack("<qQ", _DT_NEEDED, off) for off in offsets) + struct.pack("<qQ", 0, 0)
    fatbin = b"".join(_align(f) for f in fatbins)
    names = [b"", b".dynstr", b".dynamic", b".nv_fatbin", b".shstrtab"]
    shstrtab = b"\0".join(names) + b"\0"
    name_at = [shstrtab.index(n + b"\0") if n else 0 for n in names]
    bodies = [dynstr, dynamic, fatbin, shstrtab]
    out = bytearray(64)
    placed = []
    for body in bodies:
        out += b"\0" * (-len(out) % 8)
        placed.append(len(out))
        out += body
    out += b"\0" * (-len(out) % 8)
    shoff = len(out)
    out += b"\0" * 64  # the null section
    kinds = [(_SHT_STRTAB, 0, 0, 1), (_SHT_DYNAMIC, 1, 16, 8), (_SHT_PROGBITS, 0, 0, 8), (_SHT_STRTAB, 0, 0, 1)]
    for i, (body, at, (kind, link, entsize, align)) in enumerate(zip(bodies, placed, kinds, strict=True)):
        flags = 2 if kind != _SHT_STRTAB or i == 0 else 0  # SHF_ALLOC
        out += struct.pack("<IIQQQQIIQQ", name_at[i + 1], kind, flags, 0, at, len(body), link, 0, align, entsize)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + b"\0" * 8
    out[:64] = ident + struct.pack("<HHIQQQIHHHHHH", 3, 62, 1, 0, 0, shoff, 0, 64, 0, 0, 64, 5, 4)
    return bytes(out)


def write_extension(path: Path, *, runtime: int = 13, modules: int = 3, module: bytes = STOCK_MODULE) -> Path:
    """`path` as an extension linking libcudart.so.<runtime> with `modules` copies of `module`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(shared_object([f"libcudart.so.{runtime}", "libc.so.6"], [module] * modules))
    return path
