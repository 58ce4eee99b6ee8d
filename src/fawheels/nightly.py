"""The nightly: build every target of the matrix, verify, publish those that pass, report.

`nox -s nightly -- OPTIONS` or `fawheels nightly OPTIONS`, the options declared in options.NIGHTLY.

Each target builds into its own directory (`<out>/<target-id>/`: several targets may make a wheel of the
same file name) through the compiler cache (compilercache.py). A failing target never stops the others;
the run ends with a summary table and a JSON report (target, status, failed stage with the error's first
lines, wall time, cache hit rate, wheel size, sha256, publish result) and exits non-zero if any target
failed. On CI the same steps are fanned out over runners by .github/workflows/nightly.yml.

`run_targets` is the loop with its side effects passed in (build one target, read the cache, publish one
wheel), so the rules (isolation of failures, what gets published, the report) are unit-tested on fakes.
"""

from __future__ import annotations

import argparse
import os
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from fawheels._util import console, jsondoc
from fawheels._util.errors import ConfigError, FawheelsError, InternalError
from fawheels._util.files import check_outputs, write_atomic
from fawheels.compile.result import Result, Status
from fawheels.matrix.config import load_matrix_file
from fawheels.matrix.model import Matrix, Target
from fawheels.options import BuildSettings
from fawheels.toolchain.compilercache import (
    CacheConfig,
    CacheStats,
    Sccache,
    clean_environ,
    find_sccache,
    parse_cache_spec,
)

REPORT_SCHEMA = 1
ERROR_LINES = 6  # of a failure's message in the report and table: enough to name the file at fault


@dataclass(frozen=True)
class PublishFailure:
    """Why a built, verified wheel did not reach the index."""

    error: str
    exit_code: int


@dataclass(frozen=True)
class Outcome:
    """One row of the nightly report: the build's Result as the build left it, and what only the night knows
    (the compiler cache's stats for this target, whether its wheel was published or why not)."""

    result: Result
    cache: CacheStats | None = None
    published: bool = False
    publish_failure: PublishFailure | None = None  # the build passed, publishing it did not

    @property
    def target(self) -> str:
        return self.result.target

    @property
    def status(self) -> Status:
        return Status.FAILED if self.publish_failure else self.result.status

    @property
    def stage(self) -> str:
        """Where it failed ("done" when it did not); "publish" when only publishing failed."""
        return "publish" if self.publish_failure else self.result.stage

    @property
    def error(self) -> str:
        return self.publish_failure.error if self.publish_failure else self.result.error

    @property
    def exit_code(self) -> int:
        return self.publish_failure.exit_code if self.publish_failure else self.result.exit_code

    @property
    def wheel(self) -> str | None:
        return str(self.result.wheel) if self.result.wheel else None

    @property
    def error_head(self) -> list[str]:
        return [line for line in self.error.splitlines() if line.strip()][:ERROR_LINES]

    @property
    def hit_rate(self) -> float | None:
        return self.cache.hit_rate if self.cache else None

    def to_json(self) -> dict[str, Any]:
        rate, built = self.hit_rate, self.result
        return {
            "target": self.target,
            "status": self.status.value,
            "stage": self.stage,
            "error": self.error_head,
            "exit_code": self.exit_code,
            "wall_s": round(built.wall_s, 1),
            "cache_hit_rate": None if rate is None else round(rate, 3),
            "cache": self.cache.to_json() if self.cache else None,
            "wheel": self.wheel,
            "size": built.size,
            "sha256": built.sha256,
            "published": self.published,
            "stages_s": {k: round(v, 2) for k, v in built.stages_s.items()},
            "reused": list(built.reused),
        }


class CacheProbe(Protocol):
    def zero(self) -> None: ...

    def stats(self) -> CacheStats: ...


BuildFn = Callable[[Target], Result]
PublishFn = Callable[[Path], None]


# ----------------------------------------------------------------------------- pure rules


def select_targets(m: Matrix, ids: Sequence[str], keywords: Sequence[str]) -> list[Target]:
    """Named ids (each must exist), else every target; then only those whose id contains every keyword."""
    targets = [m.target(t) for t in dict.fromkeys(ids)] if ids else list(m.targets)
    picked = [t for t in targets if all(k in t.id for k in keywords)]
    if not picked:
        raise ConfigError(f"no target matches -k {' '.join(keywords)!r}", hint="`fawheels matrix` lists the ids")
    return picked


def render_table(outcomes: Sequence[Outcome]) -> str:
    """The summary for people: one line per target, then each failure's first lines."""
    head = ("TARGET", "STATUS", "STAGE", "WALL", "CACHE", "SIZE", "SHA256", "PUBLISHED")
    rows = []
    for o in outcomes:
        rate = o.hit_rate
        rows.append(
            (
                o.target,
                o.status,
                o.stage,
                f"{o.result.wall_s:.0f} s",
                "-" if rate is None else f"{100 * rate:.0f}%",
                f"{o.result.size / 1e6:.1f} MB" if o.result.size else "-",
                o.result.sha256[:12] or "-",
                "yes" if o.published else "no",
            )
        )
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [head, *rows]]
    failed = [o for o in outcomes if o.status is not Status.OK]
    for o in failed:
        lines += [
            "",
            f"{o.target} failed at {o.stage} (exit {o.exit_code}):",
            *(f"    {line}" for line in o.error_head),
        ]
    lines += ["", f"{len(outcomes) - len(failed)} passed, {len(failed)} failed"]
    return "\n".join(lines)


def report_doc(
    outcomes: Sequence[Outcome], *, cache: str | None, index: str | None, started: float, wall_s: float
) -> dict[str, Any]:
    return {
        "schema": REPORT_SCHEMA,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "wall_s": round(wall_s, 1),
        "compiler_cache": cache,
        "index": index,
        "passed": sum(o.status is Status.OK for o in outcomes),
        "failed": sum(o.status is not Status.OK for o in outcomes),
        "targets": [o.to_json() for o in outcomes],
    }


def exit_code(outcomes: Sequence[Outcome]) -> int:
    """0 when every target passed; else the first failure's code (fawheels' stable exit codes), at least 1."""
    failed = [o for o in outcomes if o.status is not Status.OK]
    return max(1, failed[0].exit_code) if failed else 0


# ----------------------------------------------------------------------------- the loop


def _build_one(target: Target, build: BuildFn) -> Result:
    """A bug in one target's build is that target's failure, not the night's."""
    start = time.monotonic()
    try:
        return build(target)
    except (KeyboardInterrupt, SystemExit):
        raise
    except FawheelsError as exc:  # e.g. docker down (exit 9): the error's own code and words, no traceback
        return Result(target.id, Status.FAILED, "build", str(exc), exc.exit_code, wall_s=time.monotonic() - start)
    except Exception as exc:  # a failing target never stops the others, whatever it raised
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return Result(
            target.id,
            Status.FAILED,
            "internal",
            f"{detail}\n{traceback.format_exc()}",
            InternalError.exit_code,
            wall_s=time.monotonic() - start,
        )


def run_targets(
    targets: Sequence[Target], *, build: BuildFn, cache: CacheProbe | None, publish: PublishFn | None
) -> list[Outcome]:
    """Build every target (each one's cache stats on their own), then publish the ones that passed."""
    outcomes: list[Outcome] = []
    for target in targets:
        if cache is not None:
            cache.zero()
        with console.group(target.id):
            built = _build_one(target, build)
        outcomes.append(Outcome(built, cache.stats() if cache is not None else None))
    if publish is None:
        return outcomes
    for i, (target, o) in enumerate(zip(targets, outcomes, strict=True)):
        if (
            o.status is not Status.OK or o.wheel is None or not target.publish
        ):  # demos and reproductions stay unpublished
            continue
        try:
            publish(Path(o.wheel))
        except FawheelsError as exc:
            outcomes[i] = replace(o, publish_failure=PublishFailure(str(exc), exc.exit_code))
        else:
            outcomes[i] = replace(o, published=True)
    return outcomes


# ----------------------------------------------------------------------------- gateways


def build_with_pipeline(matrix: Matrix, out: Path, settings: BuildSettings) -> BuildFn:
    """Host/pip targets through build.build_target; container targets inside their toolchain image.
    Without `settings.clean` a target whose inputs did not change since the last night recompiles nothing (the
    build's own reuse rules: source stamp, configure identity, ninja's dependencies); what did change is
    compiled through the compiler cache."""

    def build(target: Target) -> Result:
        dist = out / target.id
        from fawheels.compile.execute import build_target, build_target_in_container
        from fawheels.compile.plan import builds_in_image

        if builds_in_image(target, settings):
            return build_target_in_container(target, matrix, dist, settings)
        return build_target(target, matrix, dist, settings)

    return build


def with_launcher(settings: BuildSettings, cache: Sccache | None) -> BuildSettings:
    """The night's settings with its compiler cache, once started, as the launcher of every build."""
    if cache is None:
        return settings
    return replace(settings, launcher=cache.env.get("FAWHEELS_COMPILER_LAUNCHER") or settings.launcher)


def publisher(index: str) -> PublishFn:
    """One wheel at a time, so a refused wheel does not hold back the others."""

    def publish(wheel: Path) -> None:
        from fawheels.publish.index import publish_command

        publish_command([wheel], index=index)

    return publish


@contextmanager
def compiler_cache(config: CacheConfig | None) -> Iterator[Sccache | None]:
    """Start the cache's server and put its settings into this process's environment (the build
    hands os.environ to CMake and ninja); stop it and restore the environment afterwards."""
    if config is None:
        yield None
        return
    cache = Sccache(find_sccache(), config)
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update({**clean_environ(saved), **cache.env})
    try:
        cache.start()
    except FawheelsError as exc:  # a cache outage slows the night down; it does not cancel it
        os.environ.clear()
        os.environ.update(saved)
        console.error(f"warning: compiler cache {config.display} unavailable, building without it: {exc}")
        yield None
        return
    try:
        console.step(f"compiler cache: sccache {cache.binary} -> {config.backend} {config.display}")
        yield cache
    finally:
        try:
            cache.stop()
        except FawheelsError as exc:
            console.detail(f"note: {exc}")
        os.environ.clear()
        os.environ.update(saved)


def write_report(path: Path, doc: Mapping[str, Any]) -> None:
    """The JSON report, with credentials masked (an error may quote a URL or a server's echo)."""
    from fawheels._util.redact import redact, secrets_from_env

    write_atomic(path, redact(jsondoc.dumps(doc) + "\n", *secrets_from_env(os.environ)))


def nightly_command(
    *,
    matrix_path: Path | None,
    ids: Sequence[str],
    keywords: Sequence[str],
    out: Path,
    index: str | None,
    cache_spec: str | None,
    settings: BuildSettings,
    report: Path | None,
) -> int:
    matrix = load_matrix_file(matrix_path)
    targets = select_targets(matrix, ids, keywords)
    check_outputs(out, report)  # before an hour of builds, not after (the default report is in --dist)
    if index:
        from fawheels.publish.index import check_index_dir, parse_index

        location = parse_index(index)  # a malformed or credential-carrying URL is refused now, too
        if location.root is not None:
            check_index_dir(location.root)
    config = parse_cache_spec(cache_spec, os.environ)
    console.step(f"nightly: {len(targets)} target(s): {', '.join(t.id for t in targets)}")
    started, t0 = time.time(), time.monotonic()
    with compiler_cache(config) as cache:
        outcomes = run_targets(
            targets,
            # the compiler cache started here is the launcher every build puts in front of nvcc and c++
            build=build_with_pipeline(matrix, out.resolve(), with_launcher(settings, cache)),
            cache=cache,
            publish=publisher(index) if index else None,
        )
        used = f"{cache.config.backend} {cache.config.display}" if cache else None
    doc = report_doc(outcomes, cache=used, index=index, started=started, wall_s=time.monotonic() - t0)
    report_path = report or out / "nightly-report.json"
    write_report(report_path, doc)
    console.step("")
    console.step("== nightly summary")
    (console.error if exit_code(outcomes) else console.step)(render_table(outcomes))
    console.step(f"report: {report_path}")
    return exit_code(outcomes)


def command(args: argparse.Namespace, settings: BuildSettings) -> int:
    """`fawheels nightly`, its options as options.NIGHTLY declares them; `settings` resolved from them once."""
    return nightly_command(
        matrix_path=args.matrix,
        ids=[*args.targets, *getattr(args, "targets_alias", [])],
        keywords=args.keywords,
        out=args.out,
        index=args.index,
        cache_spec=args.cache,
        settings=settings,
        report=args.report,
    )
