"""A reproducible wheel writer: sorted entries, fixed timestamps and permissions, RECORD last.

Two builds that give the same files give the same bytes (same sha256), whatever directory, user,
umask or clock they ran under.
"""

from __future__ import annotations

import base64
import hashlib
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fawheels._util.files import PRIVATE, replacing
from fawheels._util.wheels import is_shared_object

ZIP_EPOCH_MIN = 315532800  # 1980-01-01: zip timestamps cannot be older


@dataclass(frozen=True)
class WheelSpec:
    distribution: str  # normalized for file names: flash_attn
    version: str  # 2.8.3+cu130torch2.14
    tag: str  # cp311-cp311-linux_x86_64
    metadata: str  # METADATA text
    generator: str

    @property
    def filename(self) -> str:
        return f"{self.distribution}-{self.version}-{self.tag}.whl"

    @property
    def dist_info(self) -> str:
        return f"{self.distribution}-{self.version}.dist-info"


def render_metadata(fields: list[tuple[str, str]], description: str = "") -> str:
    lines = [f"{k}: {v}" for k, v in fields]
    text = "\n".join(lines) + "\n"
    if description:
        text += "\n" + description.rstrip("\n") + "\n"
    return text


def record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def _zip_time(epoch: int) -> tuple[int, int, int, int, int, int]:
    t = time.gmtime(max(epoch, ZIP_EPOCH_MIN))
    return (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec)


def wheel_entries(
    spec: WheelSpec, files: Mapping[str, bytes], extra_dist_info: Mapping[str, bytes]
) -> list[tuple[str, bytes]]:
    """All members in their final order: package files sorted, then dist-info, RECORD last."""
    wheel_file = (
        f"Wheel-Version: 1.0\nGenerator: {spec.generator}\nRoot-Is-Purelib: false\nTag: {spec.tag}\n"
    ).encode()
    dist_info = {
        f"{spec.dist_info}/METADATA": spec.metadata.encode(),
        f"{spec.dist_info}/WHEEL": wheel_file,
        **{f"{spec.dist_info}/{name}": data for name, data in extra_dist_info.items()},
    }
    entries = sorted(files.items()) + sorted(dist_info.items())
    record_name = f"{spec.dist_info}/RECORD"
    record = "".join(f"{name},{record_hash(data)},{len(data)}\n" for name, data in entries)
    record += f"{record_name},,\n"
    return [*entries, (record_name, record.encode())]


def write_wheel(
    spec: WheelSpec,
    files: Mapping[str, bytes],
    extra_dist_info: Mapping[str, bytes],
    dest_dir: Path,
    source_date_epoch: int,
) -> Path:
    """Write the wheel into dest_dir atomically (temp file + rename); returns its path."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    date_time = _zip_time(source_date_epoch)
    final = dest_dir / spec.filename
    # Private, as its temporary file always was; dist/ gets a copy.
    with replacing(final, mode=PRIVATE) as tmp, zipfile.ZipFile(tmp, "w") as zf:
        for name, data in wheel_entries(spec, files, extra_dist_info):
            info = zipfile.ZipInfo(name, date_time=date_time)
            info.create_system = 3  # unix, so the permission bits below are honoured
            mode = 0o755 if is_shared_object(name) else 0o644
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=6)
    return final
