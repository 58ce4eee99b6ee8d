"""Real builds with nvcc: a one-TU sm_120 wheel, its binary read back, and reproducibility across
directories; plus the refusals that must leave dist/ as it was."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from fawheels.check.cuobjdump import find_cuobjdump
from support.checkout import copy_repo, fawheels

TARGET = "fa2-cu130-torch2.14-sm120-cp311-one-tu"
SO_NAME = "flash_attn_2_cuda.cpython-311-x86_64-linux-gnu.so"

pytestmark = [
    pytest.mark.nvcc,
    pytest.mark.skipif(
        shutil.which("nvcc") is None and not Path("/usr/local/cuda-13.0/bin/nvcc").exists(), reason="needs nvcc 13.0"
    ),
]


def built_wheel(checkout: Path) -> Path:
    proc = fawheels(checkout, "build", TARGET, "--clean")  # compile every object in this run
    assert proc.returncode == 0, proc.stderr[-4000:]
    wheels = list((checkout / "dist").glob("*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def first_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built_wheel(copy_repo(tmp_path_factory.mktemp("clone-a")))


def test_build_puts_a_verified_wheel_in_dist(first_build: Path) -> None:
    dist = first_build.parent
    assert first_build.name == "flash_attn-2.8.3+cu130torch2.14sm120onetu-cp311-cp311-linux_x86_64.whl"
    assert sorted(p.name for p in dist.iterdir()) == sorted(
        [first_build.name, *(first_build.name + s for s in (".sha256", ".verify.json", ".provenance.json"))]
    )
    digest = hashlib.sha256(first_build.read_bytes()).hexdigest()
    assert (dist / (first_build.name + ".sha256")).read_text() == f"{digest}  {first_build.name}\n"
    report = json.loads((dist / (first_build.name + ".verify.json")).read_text())
    assert report["ok"] is True
    # read by both readers: our parser and cuobjdump (from the toolkit, this Python or the fawheels cache)
    assert [r["reader"] for r in report["readers"]["ran"]] == ["fawheels", "cuobjdump"], report["readers"]
    assert report["readers"]["agree"] is True and report["single_reader"] is False
    with zipfile.ZipFile(first_build) as zf:
        info = json.loads(zf.read("flash_attn-2.8.3+cu130torch2.14sm120onetu.dist-info/build-info.json"))
        metadata = zf.read("flash_attn-2.8.3+cu130torch2.14sm120onetu.dist-info/METADATA").decode()
    assert info["target"] == TARGET
    assert info["source"]["sha256"] == "1e71dd64a9e0280e0447b8a0c2541bad4bf6ac65bdeaa2f90e51a9e57de0370d"
    assert info["toolchain"]["nvcc"].startswith("13.0.")
    assert info["torch"]["version"] == "2.14.1+cu130"
    assert info["archs"] == {"sass": ["sm_120"], "ptx": []}
    assert info["profile"]["translation_units"] == ["flash_fwd_hdim128_bf16_causal_sm80.cu"]
    assert [p["file"] for p in info["patches"]] == [
        "0001-forward-only-profile-dispatch.patch",
        "0003-paged-kv-pages-of-16-tokens.patch",
        "0004-varlen-fwd-num-splits.patch",
        "0005-split-kv-parts.patch",
        "0006-paged-kv-per-tile-and-decode-routes.patch",
    ]
    assert "Requires-Dist: torch==2.14.*" in metadata


def test_cuobjdump_sees_sm120_sass_and_no_fallback(first_build: Path, tmp_path: Path) -> None:
    tool = find_cuobjdump()
    if tool is None:
        pytest.skip("cuobjdump not installed (pip install nvidia-cuda-cuobjdump)")
    with zipfile.ZipFile(first_build) as zf:
        so = tmp_path / SO_NAME
        so.write_bytes(zf.read(SO_NAME))
    elf = subprocess.run([str(tool), "-lelf", str(so)], capture_output=True, text=True, check=True).stdout
    ptx = subprocess.run([str(tool), "-lptx", str(so)], capture_output=True, text=True).stdout
    archs = {line.rsplit(".", 2)[-2] for line in elf.splitlines() if line.startswith("ELF file")}
    assert archs == {"sm_120"}, elf
    assert "sm_80" not in elf and "compute_80" not in ptx  # nothing older pretending to serve sm_120
    assert "PTX file" not in ptx


def test_second_directory_gives_a_byte_identical_wheel(
    first_build: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    second = built_wheel(copy_repo(tmp_path_factory.mktemp("another-dir") / "nested" / "clone-b"))
    assert second.name == first_build.name
    assert hashlib.sha256(second.read_bytes()).hexdigest() == hashlib.sha256(first_build.read_bytes()).hexdigest()


def test_patch_that_no_longer_applies_stops_the_build(tmp_path: Path) -> None:
    checkout = copy_repo(tmp_path / "clone")
    patch = checkout / "patches/flash-attn-2.8.3/0001-forward-only-profile-dispatch.patch"
    patch.write_text(patch.read_text().replace(' #include "static_switch.h"', ' #include "static_switch.hpp"'))
    (checkout / "dist").mkdir()
    (checkout / "dist" / "keep.txt").write_text("untouched")
    proc = fawheels(checkout, "build", TARGET)
    assert proc.returncode == 5, proc.stderr[-3000:]
    assert "patch 0001-forward-only-profile-dispatch.patch no longer applies" in proc.stderr
    assert [p.name for p in (checkout / "dist").iterdir()] == ["keep.txt"]


def test_toolkit_that_does_not_match_is_refused_before_compiling(tmp_path: Path) -> None:
    checkout = copy_repo(tmp_path / "clone")
    env_nvcc = tmp_path / "fakecuda/bin/nvcc"
    env_nvcc.parent.mkdir(parents=True)
    env_nvcc.write_text("#!/bin/sh\necho 'Cuda compilation tools, release 12.8, V12.8.93'\n")
    env_nvcc.chmod(0o755)
    env = {**os.environ, "PYTHONPATH": str(checkout / "src"), "CUDA_HOME": str(tmp_path / "fakecuda")}
    proc = subprocess.run(
        [sys.executable, "-m", "fawheels.cli", "build", TARGET], cwd=checkout, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 4, proc.stderr[-3000:]
    assert "wants CUDA 13.0 but" in proc.stderr and "is 12.8.93" in proc.stderr
    assert not (checkout / "dist").exists()


def test_interrupted_build_leaves_dist_as_it_was(tmp_path: Path) -> None:
    checkout = copy_repo(tmp_path / "clone")
    build_root = tmp_path / "build-root"  # private, so the compilers of this build alone can be found
    env = {**os.environ, "PYTHONPATH": str(checkout / "src"), "FAWHEELS_BUILD_ROOT": str(build_root)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fawheels.cli", "build", TARGET, "-v"],  # -v: the commands too (`ninja -C`)
        cwd=checkout,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    seen = []
    deadline = time.monotonic() + 300
    for line in proc.stderr:  # wait until nvcc is really running
        seen.append(line)
        if "ninja -C" in line or time.monotonic() > deadline:
            break
    time.sleep(5)
    proc.send_signal(signal.SIGTERM)
    rest = proc.communicate(timeout=120)[1]
    assert proc.returncode == 130, "".join(seen)[-2000:] + rest[-2000:]
    assert "interrupted; dist/ was left as it was" in rest
    assert not (checkout / "dist").exists()
    assert (build_root / TARGET / "cmake").is_dir(), "the build was interrupted before it compiled anything"
    leftovers = subprocess.run(["pgrep", "-f", str(build_root)], capture_output=True, text=True).stdout
    assert leftovers == "", "compiler processes outlived the interrupted build"
