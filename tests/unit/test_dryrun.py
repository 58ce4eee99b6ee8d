"""`fawheels build --dry-run` plans every target of the repository's matrix without running anything, and a
container target whose registry base is missing is refused before any work, naming the command that provides it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fawheels import cli
from fawheels.build.dryrun import plan_text
from fawheels.matrix.config import load_matrix_file

ROOT = Path(__file__).parents[2]
MATRIX = load_matrix_file(ROOT / "build_matrix.yaml")


@pytest.mark.parametrize("target", MATRIX.targets, ids=lambda t: t.id)
def test_dry_run_plans_every_target(target: object) -> None:
    from fawheels.matrix.config import Target

    assert isinstance(target, Target)
    text = plan_text(target, MATRIX)
    assert f"wheel: {target.wheel_name}" in text
    assert f"torch: {target.torch.version}" in text
    units = [line for line in text.splitlines() if line.startswith("  nvcc -")]
    assert len(units) == len(target.profile.translation_units())
    for arch in target.sass:
        assert all(f"-gencode=arch={arch.compute},code={arch.sm}" in u for u in units)
    assert "cannot be planned" not in text
    if target.toolchain.provision == "container":
        assert "@sha256:" in text and "docker pull nvidia/cuda:" in text


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
