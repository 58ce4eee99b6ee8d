"""`fawheels build --dry-run` plans every target of the repository's matrix without running anything, and a
container target whose registry base is missing is refused before any work, naming the command that provides it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fawheels import cli
from fawheels.compile.dryrun import plan_text
from fawheels.matrix.config import load_matrix_file

ROOT = Path(__file__).parents[2]
MATRIX = load_matrix_file(ROOT / "build_matrix.yaml")


@pytest.mark.parametrize("target", MATRIX.targets, ids=lambda t: t.id)
def test_dry_run_plans_every_target(target: object) -> None:
    from fawheels.matrix.model import Target

    assert isinstance(target, Target)
    text = plan_text(target, MATRIX)
    assert f"wheel: {target.wheel_name}" in text
    assert f"torch: {target.torch.version}" in text
    units = [line for line in text.splitlines() if line.startswith("  nvcc -")]
    from fawheels.compile.dryrun import plan_choice

    assert len(units) == len(plan_choice(target, MATRIX).way.units)  # one per kernel job the build runs here
    for arch in target.sass:
        assert all(f"-gencode=arch={arch.compute},code={arch.sm}" in u for u in units)
    assert "cannot be planned" not in text
    if target.toolchain.provision == "container":
        assert "@sha256:" in text and "docker pull nvidia/cuda:" in text


@pytest.fixture
def ample_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A host nvcc where CUDA_HOME says, disk and memory enough: every dry-run check passes."""
    from fawheels.compile import dryrun

    nvcc = tmp_path / "cuda" / "bin" / "nvcc"
    nvcc.parent.mkdir(parents=True)
    nvcc.write_text("")
    monkeypatch.setenv("CUDA_HOME", str(tmp_path / "cuda"))
    monkeypatch.setattr(dryrun, "DISK_NEEDED", 0)
    monkeypatch.setattr(dryrun, "mem_available", lambda: 256 * 1024**3)
    monkeypatch.setenv("FAWHEELS_CACHE", str(tmp_path / "cache"))  # no job history: static estimates
    return tmp_path / "cuda"


@pytest.mark.usefixtures("ample_machine")
def test_dry_run_cli_touches_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ids = [t.id for t in MATRIX.targets]
    dist = tmp_path / "dist"
    code = cli.main(["build", "--matrix", str(ROOT / "build_matrix.yaml"), "--dry-run", "--dist", str(dist), *ids])
    out = capsys.readouterr().out
    assert code == 0
    assert out.count("(dry run: nothing is fetched, compiled or written)") == len(ids)
    assert not dist.exists()


def test_container_target_without_its_base_is_refused_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no docker, no podman: the refusal must come first
    monkeypatch.setenv("FAWHEELS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("FAWHEELS_IN_CONTAINER", raising=False)
    dist = tmp_path / "dist"
    code = cli.main(
        ["build", "--matrix", str(ROOT / "build_matrix.yaml"), "--dist", str(dist), "fa2-cu128-torch2.9-sm120-cp312"]
    )
    err = capsys.readouterr().err
    assert code == 9
    assert "docker pull nvidia/cuda:12.8.1-devel-ubuntu24.04@sha256:4b9ed5fa" in err
    assert "marked unverified" in err
    assert not dist.exists() and not (tmp_path / "cache").exists()
    assert "Traceback" not in err
    assert os.environ["PATH"] == str(tmp_path)


@pytest.mark.tools
def test_an_engine_without_the_base_gets_the_pull_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A stand-in `docker` that answers `info` and has no images: the refusal names that engine's commands,
    # and nothing else is asked of it (no pull, no build).
    calls = tmp_path / "calls"
    fake = tmp_path / "bin" / "docker"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n[ "$1" = info ] && exit 0\necho "[]"; exit 1\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(fake.parent))
    monkeypatch.setenv("FAWHEELS_CONTAINER_ENGINE", "docker")
    monkeypatch.delenv("FAWHEELS_IN_CONTAINER", raising=False)
    code = cli.main(
        [
            "build",
            "--matrix",
            str(ROOT / "build_matrix.yaml"),
            "--dist",
            str(tmp_path / "dist"),
            "fa2-cu129-torch2.8-sm120-cp312",
        ]
    )
    err = capsys.readouterr().err
    assert code == 9
    assert "base image nvidia/cuda:12.9.1-devel-ubuntu24.04@sha256:020bc241" in err and "nothing was built" in err
    assert "docker pull nvidia/cuda:12.9.1-devel-ubuntu24.04@sha256:020bc241" in err
    assert "docker save fawheels/toolchain:cu129-torch2.8.0-py3.12-" in err
    asked = calls.read_text().splitlines()
    assert asked[0] == "info" and all(a.startswith("image inspect ") for a in asked[1:]) and len(asked) == 3
    assert not (tmp_path / "dist").exists()


@pytest.mark.usefixtures("ample_machine")
def test_dry_run_json_is_one_document_with_a_schema_and_an_estimate(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    code = cli.main(["build", "--matrix", str(ROOT / "build_matrix.yaml"), "--dry-run", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["schema"] == 1 and doc["dry_run"] is True
    (plan,) = doc["targets"]
    assert plan["target"] == MATRIX.default_target
    assert plan["estimate"]["compile_s"] > 0 and plan["estimate"]["other_way_s"] > 0
    # the count the build will show: ninja's jobs (kernel units of the chosen way, flash_api.cpp, link)
    assert plan["compile_jobs"] == (26 if plan["splitkv_parts"] else 10)
    assert all(c["ok"] for c in plan["checks"])


def test_dry_run_fails_where_the_build_would_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CUDA_HOME", "/nonexistent")  # issue 23: this exited 0 printing "host nvcc at /nonexistent"
    code = cli.main(["build", "--matrix", str(ROOT / "build_matrix.yaml"), "--dry-run"])
    out = capsys.readouterr().out
    assert code == 4
    assert "check: nvcc FAILED: /nonexistent/bin/nvcc not found: set CUDA_HOME, or use a pip toolchain" in out


def test_json_without_dry_run_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["build", "--json"]) == 2
    assert "--json: only with --dry-run" in capsys.readouterr().err


def test_the_dry_run_plans_with_the_builds_settings() -> None:
    """MAX_JOBS and the compiler launcher reach the printed plan as they reach the build (the dry run used to
    read --jobs only, and print a configure line without the launcher)."""
    from fawheels.options import BuildSettings

    target = MATRIX.target(MATRIX.default_target)
    settings = BuildSettings.resolve(None, {"MAX_JOBS": "3", "FAWHEELS_COMPILER_LAUNCHER": "/opt/sccache"})
    text = plan_text(target, MATRIX, settings)
    (compile_line,) = [line for line in text.splitlines() if line.startswith("compile: ")]
    assert compile_line.endswith(" -j 3")
    assert "plan: 3 jobs at once (set by --jobs/MAX_JOBS)" in text
    assert "-DCMAKE_CUDA_COMPILER_LAUNCHER=/opt/sccache" in text
