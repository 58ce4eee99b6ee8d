"""`fawheels build`: the targets in turn (each on the host or in its toolchain image, execute.py), the summary
and the `--report` document; `--dry-run` hands over to dryrun.py before anything runs."""

from __future__ import annotations

import os
from pathlib import Path

from fawheels._util import console, jsondoc
from fawheels._util.files import write_atomic
from fawheels._util.redact import redact, secrets_from_env
from fawheels.compile import dryrun
from fawheels.compile.execute import build_target, build_target_in_container
from fawheels.compile.plan import builds_in_image
from fawheels.compile.result import Result, Status
from fawheels.matrix.config import load_matrix_file
from fawheels.options import BuildSettings

REPORT_SCHEMA = 1  # `build --report FILE`: {schema, ok, results: [one per target, in build order]}


def report_json(results: list[Result]) -> str:
    """The `--report` document: an object with its schema, the targets' results under `results`."""
    doc = {
        "schema": REPORT_SCHEMA,
        "ok": all(r.status is Status.OK for r in results),
        "results": [r.to_json() for r in results],
    }
    return jsondoc.dumps(doc)


def print_summary(results: list[Result]) -> None:
    say = console.step
    say("")
    say("== summary")
    for r in results:
        slowest = f"; slowest job {r.slowest[0]} {r.slowest[1]:.0f} s" if r.slowest else ""
        if r.status is Status.OK and r.wheel:
            say(f"  ok      {r.target}  {r.wall_s:.0f} s (compile {r.compile_wall_s:.0f} s{slowest})")
            say(f"          {r.wheel}  {r.size / 1e6:.1f} MB  sha256 {r.sha256}")
        elif r.status is Status.OK:
            say(f"  ok      {r.target}  (built in its toolchain image; the wheel is in the summary above)")
        else:
            first = r.error.splitlines()[0] if r.error else ""
            console.error(f"  FAILED  {r.target}  at {r.stage}: {first}" + (f" (log: {r.log})" if r.log else ""))


def build_command(
    *,
    matrix_path: Path | None,
    target_ids: list[str],
    dist: Path,
    settings: BuildSettings,
    keep_going: bool = False,
    report: Path | None = None,
    dry_run: bool = False,
    as_json: bool = False,
) -> int:
    """`fawheels build`: the plans (`dry_run`), or each target built in turn, a summary and the report;
    `settings` (options.BuildSettings, resolved once by the command line) say how every target builds."""
    matrix = load_matrix_file(matrix_path)
    targets = [matrix.target(t) for t in (target_ids or [matrix.default_target])]
    if dry_run:
        return dryrun.print_plans(matrix, targets, settings, as_json=as_json)
    dryrun.refuse_unprovided_images(matrix, targets, settings)  # before any work
    results: list[Result] = []
    for target in targets:
        build = build_target_in_container if builds_in_image(target, settings) else build_target
        with console.group(target.id):
            results.append(build(target, matrix, dist, settings))
        if results[-1].status is not Status.OK and not keep_going:
            break
    print_summary(results)
    if report is not None:  # an error may quote a URL with credentials: redacted
        write_atomic(
            report,
            redact(report_json(results) + "\n", *secrets_from_env(os.environ)),
            mode=None,
        )
    failures = [r for r in results if r.status is not Status.OK]
    return failures[0].exit_code if failures else 0
