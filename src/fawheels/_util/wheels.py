"""What build, check and publish agree on about a wheel's contents: which members are shared objects, and
whether METADATA names the distribution and version that the file name does."""

from __future__ import annotations

import re
from email.parser import HeaderParser

from packaging.utils import canonicalize_name, canonicalize_version
from packaging.version import Version

# A shared object: libx.so, libx.so.12, libx.so.12.1 (written 0755 in our wheels, read for device code).
SHARED_OBJECT = re.compile(r"\.so(\.\d+)*$")


def is_shared_object(name: str) -> bool:
    return SHARED_OBJECT.search(name) is not None


def metadata_disagreement(metadata: str, name: str, version: Version) -> tuple[str | None, str | None] | None:
    """(Name, Version) as METADATA gives them (None where missing) when they are not the file name's
    normalized `name` and `version` (compared canonically), else None."""
    meta = HeaderParser().parsestr(metadata)
    said_name, said_version = meta.get("Name"), meta.get("Version")
    if canonicalize_name(said_name or "") == name and canonicalize_version(said_version or "") == canonicalize_version(
        version
    ):
        return None
    return said_name, said_version
