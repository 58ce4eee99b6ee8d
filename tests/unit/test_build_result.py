"""One rule for a target built inside its toolchain image, for `fawheels build` and the nightly alike."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from fawheels.compile.result import container_result, wheels_in


def _wheel(dist: Path, name: str, data: bytes = b"wheel") -> Path:
    dist.mkdir(parents=True, exist_ok=True)
    tmp = dist / f".{name}.part"
    tmp.write_bytes(data)
    os.replace(tmp, dist / name)  # placed by rename, as the build does
    return dist / name


def test_exit_0_and_one_wheel_of_its_own_passes(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    _wheel(dist, "other-1.0-py3-none-any.whl")  # an earlier target's wheel in the same dist/
    before = wheels_in(dist)
    wheel = _wheel(dist, "fa-2.8-cp312-cp312-linux_x86_64.whl", b"new")
    result = container_result("t", 0, dist, before, 12.5)
    assert (result.status, result.stage, result.exit_code, result.error) == ("ok", "done", 0, "")
    assert result.wheel == wheel and result.size == 3 and result.sha256 == hashlib.sha256(b"new").hexdigest()
    assert result.wall_s == 12.5
    assert set(result.to_json()) >= {"target", "status", "stage", "error", "wheel", "sha256", "size", "wall_s"}


def test_a_byte_identical_rebuild_counts_as_its_own(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    _wheel(dist, "fa.whl")
    before = wheels_in(dist)
    _wheel(dist, "fa.whl")
    assert container_result("t", 0, dist, before, 1).status == "ok"


def test_a_nonzero_exit_fails_with_its_code(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    before = wheels_in(dist)
    _wheel(dist, "fa.whl")  # even with a wheel: the build said it failed
    result = container_result("t", 3, dist, before, 1)
    assert (result.status, result.stage, result.exit_code, result.wheel) == ("failed", "container", 3, None)
    assert result.error.startswith("container build exited 3")


def test_exit_0_without_exactly_one_new_wheel_fails(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    _wheel(dist, "old.whl")
    before = wheels_in(dist)
    none = container_result("t", 0, dist, before, 1)
    assert (none.status, none.exit_code) == ("failed", 1) and "left 0 wheels" in none.error
    _wheel(dist, "a.whl")
    _wheel(dist, "b.whl")
    two = container_result("t", 0, dist, before, 1)
    assert two.status == "failed" and "left 2 wheels" in two.error
