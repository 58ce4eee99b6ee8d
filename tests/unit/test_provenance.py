"""Provenance: the in-toto/SLSA statement beside a wheel, made from and checked against its build-info.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fawheels._util.files import sha256_file
from fawheels.compile.wheel import WheelSpec, render_metadata, write_wheel
from fawheels.publish.provenance import (
    PREDICATE_TYPE,
    STATEMENT_TYPE,
    check_provenance,
    make_statement,
    provenance_path,
    write_provenance,
)

SRC_SHA = "1e71dd64a9e0280e0447b8a0c2541bad4bf6ac65bdeaa2f90e51a9e57de0370d"
PATCH_SHA = "c0ffee" + "0" * 58
ARGV = ["fawheels", "build", "fa2-cu130-torch2.14-sm120-cp311", "--jobs", "2"]


def build_info(**changes: Any) -> dict[str, Any]:
    info: dict[str, Any] = {
        "schema": 1,
        "target": "fa2-cu130-torch2.14-sm120-cp311",
        "distribution": "flash_attn",
        "version": "2.8.3+cu130torch2.14",
        "source": {
            "name": "flash-attn-2.8.3",
            "kind": "sdist",
            "sha256": SRC_SHA,
            "url": "https://files.pythonhosted.org/packages/3b/b2/x/flash_attn-2.8.3.tar.gz",
        },
        "patches": [{"file": "0001-forward-only-profile-dispatch.patch", "sha256": PATCH_SHA}],
        "toolchain": {"cuda": "13.0", "nvcc": "13.0.88", "provision": "host", "host_compiler": "gcc 12.2.0"},
        "torch": {"version": "2.14.1+cu130", "cuda": "13.0", "requirement": "torch==2.14.*", "cxx_std": 20},
        "python": "3.11",
        "archs": {"sass": ["sm_120"], "ptx": []},
        "flags": {"nvcc": ["-O3", "-gencode=arch=compute_120,code=sm_120"]},
        "source_date_epoch": 1755000000,
    }
    info.update(changes)
    return info


def wheel(tmp_path: Path, info: dict[str, Any] | None = None, salt: str = "") -> Path:
    version = "2.8.3+cu130torch2.14"
    spec = WheelSpec(
        "flash_attn",
        version,
        "cp311-cp311-linux_x86_64",
        render_metadata([("Metadata-Version", "2.1"), ("Name", "flash_attn"), ("Version", version)]),
        "fawheels tests",
    )
    extra = {"build-info.json": json.dumps(info or build_info()).encode()}
    return write_wheel(spec, {"flash_attn/__init__.py": f"# {salt}\n".encode()}, extra, tmp_path, 1755000000)


def deps(statement: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["name"]: d for d in statement["predicate"]["buildDefinition"]["resolvedDependencies"]}


def test_statement_names_the_wheel_its_inputs_and_the_command() -> None:
    s = make_statement("w.whl", "ab" * 32, build_info(), ARGV, {})
    assert s["_type"] == STATEMENT_TYPE and s["predicateType"] == PREDICATE_TYPE
    assert s["subject"] == [{"name": "w.whl", "digest": {"sha256": "ab" * 32}}]
    d = deps(s)
    assert d["source:flash-attn-2.8.3"]["digest"] == {"sha256": SRC_SHA}
    assert d["source:flash-attn-2.8.3"]["uri"].endswith("flash_attn-2.8.3.tar.gz")
    assert d["patch:0001-forward-only-profile-dispatch.patch"]["digest"] == {"sha256": PATCH_SHA}
    assert d["nvcc"]["uri"] == "pkg:generic/nvcc@13.0.88"
    assert d["host-compiler"]["annotations"] == {"version": "gcc 12.2.0"}
    assert d["torch"]["uri"] == "pkg:pypi/torch@2.14.1+cu130"
    assert "toolchain-image" not in d
    params = s["predicate"]["buildDefinition"]["externalParameters"]
    assert params == {"target": "fa2-cu130-torch2.14-sm120-cp311", "command": ARGV}
    assert s["predicate"]["runDetails"]["builder"]["id"] == "urn:fawheels:builder:local"


def test_the_command_does_not_depend_on_where_fawheels_was_run_from() -> None:
    for argv0 in ("/work/a/src/fawheels/cli.py", "/venv/bin/fawheels"):
        s = make_statement("w.whl", "ab" * 32, build_info(), [argv0, *ARGV[1:]], {})
        assert s["predicate"]["buildDefinition"]["externalParameters"]["command"] == ARGV
    s = make_statement("w.whl", "ab" * 32, build_info(), ["/x/nightly.py", "--out", "o"], {})
    assert s["predicate"]["buildDefinition"]["externalParameters"]["command"] == ["/x/nightly.py", "--out", "o"]


def test_container_builds_carry_the_image_digest() -> None:
    env = {"FAWHEELS_IMAGE": "fawheels/toolchain:cu130-abc", "FAWHEELS_IMAGE_DIGEST": "sha256:" + "9" * 64}
    image = deps(make_statement("w.whl", "ab" * 32, build_info(), ARGV, env))["toolchain-image"]
    assert image == {
        "name": "toolchain-image",
        "uri": "docker:fawheels/toolchain:cu130-abc",
        "digest": {"sha256": "9" * 64},
    }


def test_a_github_run_names_its_workflow_and_run() -> None:
    env = {
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_REPOSITORY": "o/fawheels",
        "GITHUB_RUN_ID": "7",
        "GITHUB_RUN_ATTEMPT": "2",
        "GITHUB_WORKFLOW_REF": "o/fawheels/.github/workflows/nightly.yml@refs/heads/main",
    }
    run = make_statement("w.whl", "ab" * 32, build_info(), ARGV, env)["predicate"]["runDetails"]
    assert run["builder"]["id"] == "https://github.com/o/fawheels/.github/workflows/nightly.yml@refs/heads/main"
    assert run["metadata"]["invocationId"] == "https://github.com/o/fawheels/actions/runs/7/attempts/2"


def test_written_statement_checks_out(tmp_path: Path) -> None:
    w = wheel(tmp_path / "out")
    dest = write_provenance(w, dest_dir=tmp_path / "dist", argv=ARGV, environ={})
    assert dest == tmp_path / "dist" / (w.name + ".provenance.json")
    statement = json.loads(dest.read_text())
    assert statement["subject"][0]["digest"]["sha256"] == sha256_file(w)
    moved = tmp_path / "dist" / w.name
    w.rename(moved)  # as compile/execute.py moves the wheel in after its provenance
    assert check_provenance(moved) == (
        True,
        f"in-toto statement for sha256 {sha256_file(moved)[:16]}…, 5 resolved dependencies",
    )


def test_other_bytes_fail_the_check(tmp_path: Path) -> None:
    w = wheel(tmp_path)
    write_provenance(w, argv=ARGV, environ={})
    wheel(tmp_path, salt="rebuilt")  # same file name, other bytes
    ok, detail = check_provenance(w)
    assert not ok and "subject is not exactly" in detail


@pytest.mark.parametrize(
    ("edit", "complaint"),
    [
        (lambda s: s.update(_type="https://in-toto.io/Statement/v0.1"), "_type"),
        (
            lambda s: s["predicate"]["buildDefinition"]["resolvedDependencies"][0]["digest"].update(sha256="0" * 64),
            "source:flash-attn-2.8.3 differs",
        ),
        (
            lambda s: s["predicate"]["buildDefinition"]["resolvedDependencies"].pop(1),
            "no patch:0001-forward-only-profile-dispatch.patch",
        ),
        (lambda s: s["predicate"]["buildDefinition"]["externalParameters"].update(target="other"), "target 'other'"),
        (lambda s: s["predicate"]["buildDefinition"]["externalParameters"].update(command=[]), "no command line"),
        (lambda s: s.pop("predicate"), "predicate lacks"),
    ],
)
def test_a_statement_that_disagrees_with_the_wheel_fails(tmp_path: Path, edit: Any, complaint: str) -> None:
    w = wheel(tmp_path)
    path = write_provenance(w, argv=ARGV, environ={})
    statement = json.loads(path.read_text())
    edit(statement)
    path.write_text(json.dumps(statement))
    ok, detail = check_provenance(w)
    assert not ok and complaint in detail


def test_missing_unreadable_or_without_build_info(tmp_path: Path) -> None:
    w = wheel(tmp_path)
    assert check_provenance(w) == (False, f"no {w.name}.provenance.json beside the wheel")
    provenance_path(w).write_text("{not json")
    ok, detail = check_provenance(w)
    assert not ok and "is not JSON" in detail
    bare = wheel(tmp_path / "bare", {k: v for k, v in build_info().items() if k != "source"})
    provenance_path(bare).write_text(json.dumps(make_statement(bare.name, sha256_file(bare), build_info(), ARGV, {})))
    ok, detail = check_provenance(bare)
    assert not ok and "build-info.json lacks 'source'" in detail


def test_verify_checks_the_statement_beside_the_wheel(tmp_path: Path) -> None:
    from fawheels.check.verify import verify_wheel

    w = wheel(tmp_path)
    assert "provenance" not in [c.name for c in verify_wheel(w).checks]  # none written yet: nothing to check
    write_provenance(w, argv=ARGV, environ={})
    assert [c.ok for c in verify_wheel(w).checks if c.name == "provenance"] == [True]
    wheel(tmp_path, salt="rebuilt")  # the statement now speaks for other bytes
    failed = [c for c in verify_wheel(w).checks if c.name == "provenance"]
    assert len(failed) == 1 and not failed[0].ok and "subject is not exactly" in failed[0].detail
