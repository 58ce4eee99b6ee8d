"""The `_util` helpers that make one decision for every command (issue 23, the house): reading build-info.json
from a wheel, asking nvidia-smi, installing into a target once, and whether an output place is writable."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from fawheels._util.wheels import read_build_info


def _wheel(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


INFO = "x-1.0.dist-info/build-info.json"


def test_build_info_is_read_from_the_one_dist_info(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path / "x-1.0-py3-none-any.whl", {INFO: json.dumps({"target": "t"}).encode()})
    assert read_build_info(wheel) == {"target": "t"}


@pytest.mark.parametrize(
    ("members", "said"),
    [
        ({"x-1.0.dist-info/METADATA": b""}, "expected one .dist-info/build-info.json, found 0"),
        ({INFO: b"{}", "y-1.0.dist-info/build-info.json": b"{}"}, "found 2"),
        ({"x/x-1.0.dist-info/build-info.json": b"{}"}, "found 0"),  # nested: not the wheel's own
        ({INFO: b"[1]"}, "is not an object"),
        ({INFO: b"[" * 200_000 + b"]" * 200_000}, "nests too deeply"),
        ({INFO: b"{"}, "x-1.0-py3-none-any.whl: build-info.json is not JSON"),
    ],
)
def test_build_info_refusals_name_the_wheel(tmp_path: Path, members: dict[str, bytes], said: str) -> None:
    wheel = _wheel(tmp_path / "x-1.0-py3-none-any.whl", members)
    with pytest.raises(ValueError, match=said):
        read_build_info(wheel)


def test_a_file_that_is_no_zip_is_a_value_error(tmp_path: Path) -> None:
    wheel = tmp_path / "x-1.0-py3-none-any.whl"
    wheel.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"x-1.0-py3-none-any.whl: not a zip archive"):
        read_build_info(wheel)
