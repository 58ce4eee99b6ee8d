"""What build, check and publish agree on about a wheel's contents: which members are shared objects, whether
METADATA names the distribution and version that the file name does, and whether its ELF objects are of the
machine its platform tag names."""

from __future__ import annotations

import codecs
import json
import re
import zipfile
from collections.abc import Iterable
from email.parser import HeaderParser
from pathlib import Path
from typing import Any, Protocol

from packaging.tags import Tag
from packaging.utils import canonicalize_name, canonicalize_version
from packaging.version import InvalidVersion, Version

from fawheels._util.show import one_line


class HostObject(Protocol):
    """What platform_mismatches reads of an object (check/binary.CodeObject has it; this layer imports no reader)."""

    @property
    def file(self) -> str: ...

    @property
    def format(self) -> str: ...

    @property
    def machine(self) -> str | None: ...


# A shared object: libx.so, libx.so.12, libx.so.12.1 (written 0755 in our wheels, read for device code).
SHARED_OBJECT = re.compile(r"\.so(\.\d+)*$")


def is_shared_object(name: str) -> bool:
    return SHARED_OBJECT.search(name) is not None


def metadata_problem(metadata: bytes, name: str, version: Version) -> str | None:
    """What is wrong with a wheel's METADATA for the file name's normalized `name` and `version`, or None.

    One rule for verify and publish: UTF-8 without a byte-order mark (a UTF-16 or Latin-1 file reads differently
    in each tool), exactly one Name and one Version (an installer keeps one of two, which is not said), and
    both equal to the file name's (compared canonically)."""
    if metadata.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or metadata[:2].count(0):
        return "METADATA is UTF-16; core metadata is UTF-8 (rebuild the wheel)"
    if metadata.startswith(codecs.BOM_UTF8):
        return (
            "METADATA starts with a byte-order mark, so its first field has no name; core metadata is UTF-8 without one"
        )
    try:
        text = metadata.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"METADATA is not UTF-8 (byte {exc.start}); core metadata is UTF-8 (rebuild the wheel)"
    meta = HeaderParser().parsestr(text)
    fields = {key: meta.get_all(key) or [] for key in ("Name", "Version")}
    for key, values in fields.items():
        if len(values) != 1:
            return f"METADATA has {len(values)} {key} fields; exactly one is allowed"
    said_name, said_version = fields["Name"][0], fields["Version"][0]
    try:
        same_version = canonicalize_version(Version(said_version)) == canonicalize_version(version)
    except InvalidVersion:
        same_version = False
    if canonicalize_name(said_name) == name and same_version:
        return None
    return f"METADATA says {one_line(said_name)[:100]} {one_line(said_version)[:100]}, the file name {name} {version}"


# e_machine of the ELF objects a Linux platform tag promises, by its ending (linux_x86_64, manylinux_2_28_aarch64)
_MACHINES = {"x86_64": "EM_X86_64", "aarch64": "EM_AARCH64", "ppc64le": "EM_PPC64", "s390x": "EM_S390"}


def platform_mismatches(objects: Iterable[HostObject], tags: Iterable[Tag]) -> list[str]:
    """Host ELF objects the wheel's platform tags do not describe: an x86-64 `.so` in a `linux_aarch64` or
    `win_amd64` wheel is refused by the loader on every machine the tag lets pip install it on."""
    platforms = {t.platform for t in tags}
    wanted = {
        machine
        for p in platforms
        for arch, machine in _MACHINES.items()
        if p.startswith(("linux_", "manylinux", "musllinux")) and p.endswith("_" + arch)
    }
    problems = []
    for obj in objects:
        if obj.format == "shared-object" and obj.machine and obj.machine not in wanted:
            problems.append(
                f"{obj.file} is an ELF object for {obj.machine}, which platform tag "
                f"{' or '.join(sorted(platforms))} does not load"
            )
    return problems


MAX_BUILD_INFO_BYTES = 16 << 20  # build-info.json is kilobytes; more is not a wheel of ours


def read_build_info(wheel: Path) -> dict[str, Any]:
    """build-info.json from the wheel's one top-level .dist-info directory: the one reader every command uses.

    Raises ValueError (with the wheel's name) for anything that is not a fawheels wheel: not a zip, no or two
    build-info.json, one over 16 MiB, not JSON, nested past Python's reader, or not an object."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            names = [n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".dist-info/build-info.json")]
            if len(names) != 1:
                raise ValueError(f"{wheel.name}: expected one .dist-info/build-info.json, found {len(names)}")
            if zf.getinfo(names[0]).file_size > MAX_BUILD_INFO_BYTES:
                raise ValueError(f"{wheel.name}: build-info.json is larger than 16 MiB")
            try:
                info = json.loads(zf.read(names[0]))
            except RecursionError:
                raise ValueError(f"{wheel.name}: build-info.json nests too deeply") from None
            except ValueError as exc:
                raise ValueError(f"{wheel.name}: build-info.json is not JSON: {exc}") from exc
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{wheel.name}: not a zip archive, so not a wheel") from exc
    if not isinstance(info, dict):
        raise ValueError(f"{wheel.name}: build-info.json is not an object")
    return info
