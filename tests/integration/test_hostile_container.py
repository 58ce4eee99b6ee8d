"""Container builds pass every option through and take every source kind (issue 12): --clean and --offline
reached neither the build inside nor the host's fetch, and a git source crashed with a bare AssertionError
(the sdist cache path was asked for a source that has no sha256). No docker here: the plan and the host-side
steps are checked; the run itself is test_container_docker.py's."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from fawheels._util.errors import SourceError
from fawheels.compile import command
from fawheels.matrix.model import Source
from fawheels.options import IN_IMAGE, BuildSettings
from fawheels.source.fetch import cached_path, prefetch, prepare_tree
from fawheels.toolchain import container
from support.fakes import sample_run
from support.matrices import BASE


def plan(**kw: Any) -> container.RunSpec:
    return sample_run(**kw)


def test_clean_reaches_the_build_inside() -> None:
    assert "--clean" in plan(settings=BuildSettings(clean=True)).argv
    assert "--clean" not in plan().argv
    assert "--offline" in plan().argv  # inside, always: the host fetched everything


@pytest.mark.parametrize(("clean", "offline"), [(True, False), (False, True), (True, True)])
def test_build_command_passes_clean_and_offline_to_the_container(
    clean: bool, offline: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    matrix = tmp_path / "build_matrix.yaml"
    matrix.write_text(BASE)
    calls: list[dict[str, Any]] = []

    def fake(**kw: Any) -> int:  # a build that passes leaves its one wheel in dist/, as the real one does
        calls.append(kw)
        kw["dist"].mkdir(parents=True, exist_ok=True)
        (kw["dist"] / f"fa-{len(calls)}.whl").write_bytes(b"wheel")
        return 0

    monkeypatch.setattr(container, "build_in_container", fake)
    monkeypatch.delenv(IN_IMAGE, raising=False)
    assert (
        command.build_command(
            matrix_path=matrix,
            target_ids=[],
            dist=tmp_path / "dist",
            settings=BuildSettings(jobs=3, container=True, offline=offline, clean=clean),
        )
        == 0
    )
    (call,) = calls
    assert call["settings"] == BuildSettings(jobs=3, container=True, offline=offline, clean=clean)


def test_a_git_source_has_no_sdist_path_and_says_so() -> None:
    with pytest.raises(SourceError, match="a git source has no sdist in the cache"):
        cached_path(Source("s", "git", "https://example.invalid/r.git", commit="a" * 40))


@pytest.mark.tools
def test_prefetch_of_a_git_source_caches_it_and_its_submodules_for_an_offline_build(
    repos: tuple[Path, str, str], tmp_path: Path
) -> None:
    sup, pinned, _ = repos
    src = Source("super", "git", str(sup), commit=pinned)
    prefetch(src)  # what the host does before the container starts
    shutil.move(sup.parent, tmp_path / "gone")  # inside the container nothing but the cache is reachable
    tree, _ = prepare_tree(src, [], tmp_path / "inside", offline=True)
    assert (tree / "third_party" / "lib.h").read_text() == "#define VERSION 1\n"
    prefetch(src, offline=True)  # everything cached: offline prefetch is a no-op, not an error


@pytest.mark.tools
def test_offline_prefetch_of_an_uncached_git_source_is_refused(repos: tuple[Path, str, str]) -> None:
    sup, pinned, _ = repos
    with pytest.raises(SourceError, match="--offline forbids fetching"):
        prefetch(Source("super", "git", str(sup), commit=pinned), offline=True)


class FakeEngine:
    """Stands in for docker: every image exists, a run is recorded and succeeds."""

    name = "docker"

    def __init__(self) -> None:
        self.runs: list[container.RunSpec] = []

    def inspect(self, ref: str) -> dict[str, Any]:
        return {}

    def run(self, spec: container.RunSpec) -> int:
        self.runs.append(spec)
        return 0


@pytest.mark.tools
def test_a_container_build_of_a_git_source_fetches_it_on_the_host_and_passes_clean(
    repos: tuple[Path, str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sup, pinned, _ = repos
    matrix = tmp_path / "build_matrix.yaml"
    matrix.write_text(
        BASE.replace(
            "    kind: sdist\n    url: https://example.invalid/flash_attn-2.8.3.tar.gz\n"
            "    sha256: 1e71dd64a9e0280e0447b8a0c2541bad4bf6ac65bdeaa2f90e51a9e57de0370d\n",
            f"    kind: git\n    url: {sup}\n    commit: {pinned}\n",
        )
    )
    engine = FakeEngine()
    monkeypatch.setattr(container.Engine, "find", classmethod(lambda cls, environ=None: engine))
    facts = SimpleNamespace(nvcc="13.0.88", gcc="12", torch="2.14.1", python="3.11")
    monkeypatch.setattr(container, "ensure_image", lambda *a, **k: ("fawheels/toolchain:t-0123", facts))
    monkeypatch.setenv("FAWHEELS_BUILD_ROOT", str(tmp_path / "build-root"))
    target = "fa2-cu130-torch2.14-sm120-cp311"
    from fawheels.matrix.config import load_matrix_file

    tc = load_matrix_file(matrix).target(target).toolchain
    code = container.build_in_container(
        target_id=target, matrix_path=matrix, dist=tmp_path / "dist", toolchain=tc, settings=BuildSettings(clean=True)
    )
    assert code == 0
    (spec,) = engine.runs
    assert "--clean" in spec.argv and "--offline" in spec.argv
    shutil.move(sup.parent, tmp_path / "gone")  # what the build inside can reach: the shared cache only
    tree, _ = prepare_tree(Source("fa", "git", str(sup), commit=pinned), [], tmp_path / "inside", offline=True)
    assert (tree / "third_party" / "lib.h").is_file()
