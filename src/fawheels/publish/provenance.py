"""Provenance beside every wheel: `<wheel>.provenance.json`, an in-toto Statement v1 whose predicate is
SLSA provenance v1.

subject: the wheel's file name and sha256. resolvedDependencies: the pinned source (URL + sha256), every
patch (sha256), the toolchain (nvcc, host compiler, torch, and the image digest when built in a
container). externalParameters: the target and the command line. All of it is read from the wheel's own
build-info.json, so the statement can be checked against the wheel (`check_provenance`) without the
build machine.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fawheels import __version__
from fawheels._util.files import sha256_file, write_atomic
from fawheels._util.wheels import read_build_info

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "urn:fawheels:buildtype:wheel:v1"
LOCAL_BUILDER = "urn:fawheels:builder:local"
SUFFIX = ".provenance.json"
# Set by whoever starts a container build (the toolchain image it runs in): the image's tag and digest.
IMAGE_ENV = ("FAWHEELS_IMAGE", "FAWHEELS_IMAGE_DIGEST")


def provenance_path(wheel: Path) -> Path:
    return wheel.with_name(wheel.name + SUFFIX)


def _digest(value: str) -> dict[str, str]:
    """`sha256:abc…` or bare hex -> {"sha256": "abc…"}."""
    algo, _, hexdigest = value.rpartition(":")
    return {algo or "sha256": hexdigest}


def resolved_dependencies(info: Mapping[str, Any], environ: Mapping[str, str]) -> list[dict[str, Any]]:
    """What went into the wheel: source, patches, toolchain (pure)."""
    source = info["source"]
    deps: list[dict[str, Any]] = [
        {"name": f"source:{source['name']}", "uri": source["url"], "digest": {"sha256": source["sha256"]}}
    ]
    deps += [{"name": f"patch:{p['file']}", "digest": {"sha256": p["sha256"]}} for p in info.get("patches", [])]
    tc = info["toolchain"]
    deps.append(
        {
            "name": "nvcc",
            "uri": f"pkg:generic/nvcc@{tc['nvcc']}",
            "annotations": {"cuda": tc["cuda"], "provision": tc["provision"]},
        }
    )
    deps.append({"name": "host-compiler", "annotations": {"version": tc["host_compiler"]}})
    deps.append(
        {
            "name": "torch",
            "uri": f"pkg:pypi/torch@{info['torch']['version']}",
            "annotations": {"cuda": info["torch"]["cuda"]},
        }
    )
    image, image_digest = (environ.get(k) for k in IMAGE_ENV)
    if image or image_digest:
        dep: dict[str, Any] = {"name": "toolchain-image", "uri": f"docker:{image or 'unnamed'}"}
        if image_digest:
            dep["digest"] = _digest(image_digest)
        deps.append(dep)
    return deps


def _builder(environ: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(builder, metadata): a GitHub Actions run names its workflow and run; elsewhere a local build."""
    server, repo, run_id = (environ.get(k) for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID"))
    builder: dict[str, Any] = {"id": LOCAL_BUILDER, "version": {"fawheels": __version__}}
    metadata: dict[str, Any] = {}
    if server and repo and run_id:
        workflow = environ.get("GITHUB_WORKFLOW_REF", f"{repo}/.github/workflows")
        builder["id"] = f"{server}/{workflow}"
        attempt = environ.get("GITHUB_RUN_ATTEMPT", "1")
        metadata["invocationId"] = f"{server}/{repo}/actions/runs/{run_id}/attempts/{attempt}"
    return builder, metadata


def command_line(argv: Sequence[str]) -> list[str]:
    """The command as the user typed it: `python -m fawheels.cli build …` reads `fawheels build …`, so
    two clones building the same target state the same command."""
    from fawheels._util.redact import redact, secrets_from_env  # a statement is published: no credential may be in it

    secrets, users = secrets_from_env(os.environ)
    args = [redact(str(a), secrets, users) for a in argv]
    if args and Path(args[0]).name in ("fawheels", "cli.py", "__main__.py"):
        return ["fawheels", *args[1:]]
    return args


def verification_byproduct(name: str, data: bytes) -> dict[str, Any]:
    """The verify report as a byproduct: its digest, the result, and which readers read the binary."""
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        doc = {}
    doc = doc if isinstance(doc, dict) else {}
    found = doc.get("readers")
    readers: dict[str, Any] = found if isinstance(found, dict) else {}
    return {
        "name": name,
        "digest": {"sha256": hashlib.sha256(data).hexdigest()},
        "annotations": {
            "ok": doc.get("ok"),
            "single_reader": doc.get("single_reader"),
            "readers": readers.get("ran"),
            "readers_agree": readers.get("agree"),
            "note": readers.get("note"),
        },
    }


def make_statement(
    wheel_name: str,
    sha256: str,
    info: Mapping[str, Any],
    argv: Sequence[str],
    environ: Mapping[str, str],
    byproducts: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The in-toto statement for one wheel (pure)."""
    builder, metadata = _builder(environ)
    run_details: dict[str, Any] = {"builder": builder}
    if metadata:
        run_details["metadata"] = metadata
    if byproducts:
        run_details["byproducts"] = [dict(b) for b in byproducts]
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": wheel_name, "digest": {"sha256": sha256}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {"target": info["target"], "command": command_line(argv)},
                "internalParameters": {
                    "archs": info.get("archs"),
                    "flags": info.get("flags"),
                    "source_date_epoch": info.get("source_date_epoch"),
                    "python": info.get("python"),
                },
                "resolvedDependencies": resolved_dependencies(info, environ),
            },
            "runDetails": run_details,
        },
    }


def write_provenance(
    wheel: Path,
    dest_dir: Path | None = None,
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Path:
    """Write `<wheel>.provenance.json` into dest_dir (default: beside the wheel), atomically."""
    report = wheel.with_name(wheel.name + ".verify.json")  # the build writes it before this statement
    byproducts = [verification_byproduct(report.name, report.read_bytes())] if report.is_file() else []
    statement = make_statement(
        wheel.name,
        sha256_file(wheel),
        read_build_info(wheel),
        sys.argv if argv is None else argv,
        os.environ if environ is None else environ,
        byproducts,
    )
    dest_dir = dest_dir or wheel.parent
    return write_atomic(
        dest_dir / (wheel.name + SUFFIX), json.dumps(statement, indent=2, sort_keys=True) + "\n", mode=None
    )


# ----------------------------------------------------------------------------- checking


def statement_problems(statement: object, wheel_name: str, sha256: str, info: Mapping[str, Any]) -> list[str]:
    """What in a statement disagrees with the wheel it sits beside (pure)."""
    if not isinstance(statement, dict):
        return ["not a JSON object"]
    problems = []
    if statement.get("_type") != STATEMENT_TYPE:
        problems.append(f"_type is {statement.get('_type')!r}, not {STATEMENT_TYPE}")
    if statement.get("predicateType") != PREDICATE_TYPE:
        problems.append(f"predicateType is {statement.get('predicateType')!r}, not {PREDICATE_TYPE}")
    subjects = statement.get("subject")
    if subjects != [{"name": wheel_name, "digest": {"sha256": sha256}}]:
        problems.append(f"subject is not exactly {wheel_name} with sha256 {sha256[:16]}… (got {subjects!r:.200})")
    try:
        definition = statement["predicate"]["buildDefinition"]
        deps = definition["resolvedDependencies"]
        target = definition["externalParameters"]["target"]
        command = definition["externalParameters"]["command"]
    except (KeyError, TypeError):
        return [*problems, "predicate lacks buildDefinition.resolvedDependencies/externalParameters"]
    if target != info.get("target"):
        problems.append(f"target {target!r}, the wheel was built for {info.get('target')!r}")
    if not isinstance(command, list) or not command:
        problems.append("no command line")
    by_name = {d.get("name"): d for d in deps if isinstance(d, dict)} if isinstance(deps, list) else {}
    try:
        expected = resolved_dependencies(info, {})
    except (KeyError, TypeError) as exc:
        return [*problems, f"build-info.json lacks {exc}"]
    for want in expected:  # the image, which build-info does not record, is checked for shape only
        have = by_name.get(want["name"])
        if have is None:
            problems.append(f"no {want['name']} in resolvedDependencies")
        elif any(have.get(k) != want[k] for k in ("uri", "digest") if k in want):
            problems.append(f"{want['name']} differs from build-info.json")
    image = by_name.get("toolchain-image")
    if image is not None and not isinstance(image.get("uri"), str):
        problems.append("toolchain-image has no uri")
    return problems


def check_provenance(wheel: Path) -> tuple[bool, str]:
    """Is `<wheel>.provenance.json` there, for these exact bytes, and in line with build-info.json?"""
    path = provenance_path(wheel)
    try:
        statement = json.loads(path.read_text())
    except FileNotFoundError:
        return False, f"no {path.name} beside the wheel"
    except (ValueError, RecursionError) as exc:
        return False, f"{path.name} is not JSON: {exc or 'nested too deeply'}"
    try:
        info = read_build_info(wheel)
    except (OSError, ValueError) as exc:
        return False, f"cannot read build-info.json: {exc}"
    sha256 = sha256_file(wheel)
    problems = statement_problems(statement, wheel.name, sha256, info)
    if problems:
        return False, "; ".join(problems)
    deps = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
    return True, f"in-toto statement for sha256 {sha256[:16]}…, {len(deps)} resolved dependencies"
