"""What a rebuild of the same target reuses instead of redoing (stage times: bench/build-performance.md)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fawheels._util.errors import ToolchainError
from fawheels._util.paths import COMPLETE_MARKER
from fawheels.compile import execute as build
from fawheels.compile.execute import _prepare_tree_reusing, _sync_dir
from fawheels.compile.result import Result, Status
from fawheels.matrix.config import load_matrix_file
from fawheels.options import BuildSettings
from fawheels.source.fetch import AppliedPatch
from fawheels.toolchain import toolkit
from support.fakes import fake_torch

MATRIX = load_matrix_file(Path(__file__).parents[2] / "build_matrix.yaml")


def test_sync_dir_rewrites_only_what_changed(tmp_path: Path) -> None:
    d = tmp_path / "recipe"
    _sync_dir(d, {"CMakeLists.txt": b"a", "binding.cpp": b"b"})
    os.utime(d / "CMakeLists.txt", (1, 1))
    os.utime(d / "binding.cpp", (1, 1))
    (d / "stale.txt").write_text("x")
    _sync_dir(d, {"CMakeLists.txt": b"a", "binding.cpp": b"changed"})
    assert (d / "CMakeLists.txt").stat().st_mtime == 1  # unchanged: ninja will not rerun cmake for it
    assert (d / "binding.cpp").read_bytes() == b"changed" and (d / "binding.cpp").stat().st_mtime > 1
    assert sorted(p.name for p in d.iterdir()) == ["CMakeLists.txt", "binding.cpp"]


def test_patched_tree_is_reused_only_for_the_same_pin_and_patches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = MATRIX.target(MATRIX.default_target).source
    patch = tmp_path / "0001-x.patch"
    patch.write_text("one\n")
    calls: list[int] = []

    def fake_prepare(
        src: object, patches: list[Path], workdir: Path, offline: bool = False
    ) -> tuple[Path, list[AppliedPatch]]:
        calls.append(1)
        tree = workdir / "src" / "flash_attn-2.8.3"
        tree.mkdir(parents=True, exist_ok=True)
        return tree, [AppliedPatch(p.name, "digest") for p in patches]

    monkeypatch.setattr(build, "prepare_tree", fake_prepare)
    workdir = tmp_path / "w"
    workdir.mkdir()
    first = _prepare_tree_reusing(source, [patch], workdir, False)
    second = _prepare_tree_reusing(source, [patch], workdir, False)
    assert len(calls) == 1 and (first[2], second[2]) == (False, True)
    assert second[0] == first[0]
    assert [a.file for a in second[1]] == ["0001-x.patch"] and len(second[1][0].sha256) == 64
    patch.write_text("two\n")  # a changed patch: unpack and patch afresh
    _prepare_tree_reusing(source, [patch], workdir, False)
    assert len(calls) == 2
    (workdir / "src.stamp.json").write_text("{")  # an unreadable stamp is no reason to trust the tree
    _prepare_tree_reusing(source, [patch], workdir, False)
    assert len(calls) == 3


def test_stage_times_accumulate_and_reach_the_report() -> None:
    result = Result("t")
    with result.timed("compile"):
        pass
    with result.timed("compile"):
        pass
    doc = result.to_json()
    assert list(doc["stages_s"]) == ["compile"] and doc["stages_s"]["compile"] >= 0
    assert {"jobs_reason", "schedule", "job_stats", "reused"} <= set(doc)


def test_torch_probe_is_reused_while_the_env_marker_is_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fawheels.toolchain import toolkit as toolchain

    root = tmp_path / "env"
    root.mkdir()
    (root / COMPLETE_MARKER).write_text("2.14.1\n")
    probes: list[Path] = []

    def fake_probe(python: Path) -> toolchain.TorchEnv:
        probes.append(python)
        return fake_torch(root)

    monkeypatch.setattr(toolchain, "probe_torch", fake_probe)
    first = toolchain._probe_cached_env(root, root / "bin/python")
    second = toolchain._probe_cached_env(root, root / "bin/python")
    assert second == first and len(probes) == 1
    (root / COMPLETE_MARKER).write_text("2.14.2\n")  # the env was made again: probe again
    toolchain._probe_cached_env(root, root / "bin/python")
    assert len(probes) == 2


def test_the_build_is_one_object_with_a_method_per_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAWHEELS_BUILD_ROOT", str(tmp_path))
    matrix = load_matrix_file(None)
    target = matrix.targets[0]
    one = build.TargetBuild(target, matrix, tmp_path / "dist", BuildSettings())
    ran: list[str] = []
    stages = ("toolchain", "unpack", "configure", "compile", "strip", "wheel", "verify", "to_dist")
    for name in stages:
        monkeypatch.setattr(one, name, lambda name=name: ran.append(name))
    result = one.run()
    assert ran == list(stages) and result is one.result and result.log == tmp_path / f"{target.id}.log"


def test_a_failing_stage_is_named_and_timed_in_the_builds_own_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAWHEELS_BUILD_ROOT", str(tmp_path))
    matrix = load_matrix_file(None)

    def no_toolkit(*args: object, **kwargs: object) -> None:
        raise ToolchainError("no nvcc here")

    monkeypatch.setattr(toolkit, "provision_cuda", no_toolkit)
    result = build.build_target(matrix.targets[0], matrix, tmp_path / "dist", BuildSettings())
    assert (result.status, result.stage, result.exit_code) == (Status.FAILED, "toolchain", ToolchainError.exit_code)
    assert "no nvcc here" in result.error and list(result.stages_s) == ["toolchain"]
    assert not (tmp_path / "dist").exists()
