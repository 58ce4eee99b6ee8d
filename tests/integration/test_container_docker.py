"""Integration: the CUDA 13.0 toolchain image, built from the debootstrap base, compiles the one-TU
sm_120 target; its wheel verifies, carries the same fatbin entries as the host-built wheel, and is
byte-identical to it where nvcc, gcc and torch are the same on both sides.

Needs a reachable docker (or podman) daemon, else skips; building the base image needs root and
debootstrap. Costs: image ~4 min (once; the tag is a hash of docker/), two one-TU compiles ~3 min each.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from fawheels._util.errors import ContainerError
from fawheels.options import BuildSettings
from fawheels.toolchain import container, images
from fawheels.toolchain.container import Engine
from fawheels.toolchain.images import ImageRecipe

pytestmark = pytest.mark.docker

TARGET = "fa2-cu130-torch2.14-sm120-cp311-one-tu"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def engine() -> Engine:
    try:
        return Engine.find()
    except ContainerError as exc:
        pytest.skip(f"no container engine: {exc.message}")


@pytest.fixture(scope="module")
def base(engine: Engine) -> str:
    if engine.inspect(images.LOCAL_BASE) is None and (os.getuid() != 0 or not shutil.which("debootstrap")):
        pytest.skip(f"{images.LOCAL_BASE} is missing and building it needs root and debootstrap")
    container.ensure_base(engine, images.LOCAL_BASE, REPO)
    return images.LOCAL_BASE


def _recipe() -> ImageRecipe:
    from fawheels.matrix.config import load_matrix_file

    target = load_matrix_file(REPO / "build_matrix.yaml").target(TARGET)
    return images.recipe_for(target.toolchain, target.torch.version, target.torch.cuda, target.python, REPO)


def test_an_image_that_promises_another_nvcc_is_refused(engine: Engine, base: str, tmp_path: Path) -> None:
    recipe = _recipe()
    labels = {**recipe.labels, "org.fawheels.nvcc": "13.2.78"}
    (tmp_path / "Dockerfile").write_text(
        f"FROM {base}\nLABEL " + " ".join(f'{k}="{v}"' for k, v in labels.items()) + "\n"
    )
    tag = "fawheels/test-wrong-nvcc:latest"
    engine.build(context=tmp_path, dockerfile=tmp_path / "Dockerfile", tag=tag, build_args={})
    with pytest.raises(ContainerError, match=r"label org.fawheels.nvcc='13.2.78', wanted '13.0.88'"):
        container.check_image(engine, tag, recipe)


def _inspect(wheel: Path) -> list[dict[str, object]]:
    out = subprocess.run(
        [sys.executable, "-m", "fawheels.cli", "inspect", "--json", str(wheel)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    entries: list[dict[str, object]] = json.loads(out)["entries"]
    return entries


def _build_info(wheel: Path) -> dict[str, object]:
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/build-info.json"))
        info: dict[str, object] = json.loads(zf.read(name))
    return info


def _one_wheel(dist: Path) -> Path:
    wheels = sorted(dist.glob("*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_container_build_equals_host_build(
    engine: Engine, base: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fawheels.check.verify import verify_wheel
    from fawheels.compile.execute import build_target
    from fawheels.matrix.config import load_matrix_file

    # Both builds compile at this path (the container mounts its own tree there), and no other
    # build of the same target on this machine shares it.
    monkeypatch.setenv("FAWHEELS_BUILD_ROOT", str(tmp_path / "build-root"))
    # A private copy of the matrix (and its patches), so neither build shares a build tree with others.
    shutil.copy(REPO / "build_matrix.yaml", tmp_path / "build_matrix.yaml")
    shutil.copytree(REPO / "patches", tmp_path / "patches")
    matrix = load_matrix_file(tmp_path / "build_matrix.yaml")
    target = matrix.target(TARGET)

    start = time.monotonic()
    code = container.build_in_container(
        target_id=TARGET,
        matrix_path=tmp_path / "build_matrix.yaml",
        dist=tmp_path / "dist-container",
        toolchain=target.toolchain,
        settings=BuildSettings(jobs=1),
    )
    assert code == 0
    container_s = time.monotonic() - start
    in_container = _one_wheel(tmp_path / "dist-container")
    assert verify_wheel(in_container).ok

    host = build_target(target, matrix, tmp_path / "dist-host", BuildSettings(jobs=1))
    assert host.status == "ok", host.error
    print(f"one-TU build: container {container_s:.0f} s (image ready), host {host.wall_s:.0f} s")
    on_host = _one_wheel(tmp_path / "dist-host")

    assert in_container.name == on_host.name
    entries, host_entries = _inspect(in_container), _inspect(on_host)
    assert entries and {e["arch"] for e in entries if e["kind"] == "sass"} == {"sm_120"}
    assert [_comparable(e) for e in entries] == [_comparable(e) for e in host_entries]

    c_info, h_info = _build_info(in_container), _build_info(on_host)
    same_tools = (c_info["toolchain"], c_info["torch"]) == (h_info["toolchain"], h_info["torch"])
    if not same_tools:
        pytest.skip(
            f"toolchains differ, byte-identity not expected: {c_info['toolchain']} {c_info['torch']} vs "
            f"{h_info['toolchain']} {h_info['torch']}"
        )
    if in_container.read_bytes() != on_host.read_bytes() and _only_pid_module_ids_differ(in_container, on_host):
        pytest.xfail(
            "the wheels differ only in nvcc module ids that carry the compiling process id "
            "(_INTERNAL_<hash>_<len>_<file>_<hash>_<pid>, in a TU with no non-template external "
            "definition); bench/container.md"
        )
    assert in_container.read_bytes() == on_host.read_bytes()


def _comparable(entry: dict[str, object]) -> tuple[object, ...]:
    """An entry without its sizes: symbol names inside a cubin may differ in length (see below)."""
    return tuple(v for k, v in sorted(entry.items()) if k not in ("size", "uncompressed_size"))


# nvcc's names for internal-linkage entities: _INTERNAL_<hash>_<len>_<file>_<hash>_<pid> (and the
# same id after _GLOBAL__N_ for anonymous namespaces), each after its Itanium length prefix.
_MODULE_ID = re.compile(rb"\d*(?:_INTERNAL|_GLOBAL__N_)_[0-9a-f]{8}_\d+_\w+?_[0-9a-f]{8}_\d+")


def _only_pid_module_ids_differ(a: Path, b: Path) -> bool:
    """True when the extension modules become equal once nvcc's pid-bearing module ids are blanked
    (their length prefixes and the section sizes they shift aside, every printable string agrees)."""

    def strings(wheel: Path) -> list[bytes]:
        with zipfile.ZipFile(wheel) as zf:
            data = b"".join(zf.read(n) for n in sorted(zf.namelist()) if n.endswith(".so"))
        names = re.findall(rb"[\x20-\x7e]{6,}", data)
        return [_MODULE_ID.sub(b"<id>", n) for n in names]

    return strings(a) == strings(b)
