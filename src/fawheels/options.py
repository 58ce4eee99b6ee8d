"""Every option of `fawheels build` and `fawheels nightly`, declared once.

From these tables come the argparse parsers of both commands (cli.py) and the argv of a nested build, the
`fawheels build` that runs inside a toolchain image (toolchain/container.py). Each build option says whether
a nested build receives it (`forward`): an option that changes what gets built must reach the build that does
the work, or `--container` would quietly build something else. `nested_build_argv` takes a value for exactly
the forwarded options, so an option added here cannot be left behind by a caller that does not know of it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fawheels._util.errors import InternalError, UsageError

MAX_COUNT = 4096


def positive_int(text: str) -> int:
    """argparse type for counts like --jobs: 0 or a negative number would be a silent nonsense build."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a count: use 1 or more")
    if value > MAX_COUNT:  # 10**20 jobs would be planned as what memory allows, without a word
        raise argparse.ArgumentTypeError(f"{text[:40]} is more than {MAX_COUNT}: no machine runs that many")
    return value


@dataclass(frozen=True)
class Option:
    """One command-line option: what argparse needs, and whether a nested build gets it."""

    flags: tuple[str, ...]  # ("--jobs", "-j"); a positional has its name alone: ("targets",)
    help: str
    forward: bool = False  # build options: does the build inside a toolchain image receive it?
    dest: str = ""  # default: from the first flag
    action: str = "store"  # store | store_true | append
    type: Callable[[str], Any] | None = None
    default: Any = None
    nargs: str | None = None
    metavar: str | None = None
    aliases: tuple[str, ...] = ()  # old spellings, accepted and not shown (docs/cli.md: one flag, one meaning)

    @property
    def name(self) -> str:
        return self.dest or self.flags[0].lstrip("-").replace("-", "_")

    @property
    def positional(self) -> bool:
        return not self.flags[0].startswith("-")

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        kwargs: dict[str, Any] = {"help": self.help, "action": self.action, "default": self.default}
        if not self.positional and self.dest:
            kwargs["dest"] = self.dest
        for key in ("type", "nargs", "metavar"):
            if getattr(self, key) is not None:
                kwargs[key] = getattr(self, key)
        parser.add_argument(*self.flags, **kwargs)
        if self.aliases:  # hidden; a positional's alias stores beside it (`<name>_alias`), the command merges
            hidden = {**kwargs, "help": argparse.SUPPRESS, "default": argparse.SUPPRESS}
            hidden["dest"] = f"{self.name}_alias" if self.positional else self.name
            if self.positional:
                hidden["nargs"] = "+"
            parser.add_argument(*self.aliases, **hidden)

    def to_argv(self, value: Any) -> list[str]:
        """The words that parse back to `value` (none for a default that needs no saying)."""
        if self.positional:
            return [str(v) for v in value]
        flag = self.flags[0]
        if self.action == "store_true":
            return [flag] if value else []
        if self.action == "append":
            return [w for v in value for w in (flag, str(v))]
        if value is None:
            return []
        if self.nargs is not None:
            return [flag, *(str(v) for v in value)] if value else []
        return [flag, str(value)]


def switch(flag: str, help: str, *, forward: bool = False) -> Option:
    """An on/off option, off by default."""
    return Option((flag,), help, forward=forward, action="store_true", default=False)


def add_options(parser: argparse.ArgumentParser, options: Sequence[Option]) -> None:
    for option in options:
        option.add_to(parser)


# ----------------------------------------------------------------------------- shared by several commands

MATRIX = Option(
    ("--matrix",),
    "build matrix file (default: build_matrix.yaml in the current directory, else the one shipped with fawheels)",
    forward=True,
    type=Path,
    metavar="PATH",
)
JOBS = Option(
    ("--jobs", "-j"),
    "concurrent nvcc jobs per build (default: MAX_JOBS, else as many as cores and memory allow)",
    forward=True,
    type=positive_int,
    metavar="N",
)
OFFLINE = switch(
    "--offline",
    "never touch a package index: only cached sources, and the host toolchain and torch "
    "(a target built in its toolchain image: the source and the image must already be here)",
    forward=True,
)

QUIET = Option(("--quiet", "-q"), "print errors only", action="store_true", default=False)
VERBOSE = Option(
    ("--verbose", "-v"),
    "print everything the log file gets too: every command, its output, the schedule, the target",
    action="store_true",
    default=False,
)

# ----------------------------------------------------------------------------- fawheels build

# Order: the forwarded ones first, in the order the nested argv names them.
BUILD: tuple[Option, ...] = (
    Option(
        ("targets",),
        "target ids (default: the default target)",
        forward=True,
        nargs="*",
        default=[],
        metavar="TARGET_ID",
    ),
    MATRIX,
    Option(
        ("--dist",), "output directory (default: dist)", forward=True, type=Path, default=Path("dist"), metavar="DIR"
    ),
    OFFLINE,
    JOBS,
    switch(
        "--clean", "compile everything afresh (by default unchanged objects of the last build are reused)", forward=True
    ),
    # Meaningful only to the outer run: the build inside is already in its image, builds one target, and its
    # result is reported by the run that started it; a dry run starts nothing.
    switch("--container", "build inside the target's toolchain image"),
    switch("--keep-going", "build the remaining targets after a failure"),
    QUIET,
    VERBOSE,
    Option(
        ("--report",),
        "write a JSON report (per target: status, stage, wall time, per-job compile times, sha256)",
        type=Path,
        metavar="FILE",
    ),
    switch(
        "--dry-run",
        "print the whole plan (image, toolkit, torch, nvcc command per job, wheel name, time estimate) and check "
        "what can be checked without compiling (nvcc, disk, memory); run nothing",
    ),
    switch("--json", "with --dry-run: the plan as one JSON document (with a schema field)"),
    # A target derived from a vLLM release instead of named (matrix/derive.py): the outer run writes the derived
    # matrix and hands the nested build its file and the target id, so none of these is forwarded.
    Option(
        ("--vllm",),
        "derive a vllm-fa2 target for this vLLM release (its torch pin, CUDA and op schemas) instead of naming one",
        metavar="VERSION",
    ),
    Option(
        ("--arch",),
        "with --vllm: a GPU arch to compile SASS for (repeat: --arch sm_90 --arch sm_120)",
        dest="archs",
        action="append",
        default=[],
        metavar="ARCH",
    ),
    Option(("--python",), "with --vllm: the Python of that vLLM (default: this interpreter's)", metavar="X.Y"),
    Option(("--profile",), "with --vllm: a kernel profile of the matrix (default: qwen3-vl)", metavar="NAME"),
    Option(
        ("--from-config",),
        "with --vllm: the kernel profile that serves this model's config.json instead of --profile",
        type=Path,
        metavar="CONFIG_JSON",
    ),
    Option(("--cuda",), "with --vllm: a vLLM built for another CUDA than its PyPI wheel (12.8)", metavar="X.Y"),
)


def nested_build_argv(values: Mapping[str, Any]) -> list[str]:
    """`fawheels build`'s arguments for a build started by another run: `values` names every forwarded option
    (with the value the nested run must see: its own paths, one target), and no other."""
    wanted = [o.name for o in BUILD if o.forward]
    if sorted(values) != sorted(wanted):
        missing, extra = sorted(set(wanted) - set(values)), sorted(set(values) - set(wanted))
        raise InternalError(f"nested build: values for {wanted} expected; missing {missing}, not options {extra}")
    return [word for o in BUILD if o.forward for word in o.to_argv(values[o.name])]


# ----------------------------------------------------------------------------- fawheels nightly

NIGHTLY: tuple[Option, ...] = (
    Option(
        ("targets",),
        "only these target ids (default: every target)",
        nargs="*",
        default=[],
        metavar="TARGET_ID",
        aliases=("--targets",),
    ),
    MATRIX,
    Option(
        ("-k",),
        "only targets whose id contains TEXT (repeat: all must match)",
        dest="keywords",
        action="append",
        default=[],
        metavar="TEXT",
    ),
    Option(
        ("--dist",),
        "output directory: a dist directory per target and the report (default: dist/nightly/)",
        dest="out",
        type=Path,
        default=Path("dist/nightly"),
        metavar="DIR",
        aliases=("--out",),
    ),
    switch(
        "--keep-going",
        "build the remaining targets after a failure (the nightly always does; accepted for the "
        "same meaning as build's)",
    ),
    Option(("--index",), "publish passing wheels to this index (directory or URL)", metavar="DIR_OR_URL"),
    Option(
        ("--compiler-cache",),
        "off | local (<cache>/sccache, the default) | DIR | redis://HOST:PORT "
        "(default from FAWHEELS_COMPILER_CACHE or SCCACHE_REDIS_ENDPOINT)",
        dest="cache",
        metavar="SPEC",
    ),
    JOBS,
    OFFLINE,
    switch(
        "--clean",
        "build every target from nothing, as a fresh runner would (by default a night reuses the patched source, "
        "configure and objects the last night left where their inputs are unchanged; the wheels are the same bytes)",
    ),
    Option(("--report",), "JSON report (default: <out>/nightly-report.json)", type=Path, metavar="FILE"),
    QUIET,
    VERBOSE,
)


# ----------------------------------------------------------------------------- the settings of a build

IN_IMAGE = "FAWHEELS_IN_CONTAINER"  # container.py sets it in what it runs inside a toolchain image


def _env_count(environ: Mapping[str, str], name: str) -> int | None:
    value = environ.get(name, "").strip()
    if not value:
        return None
    try:
        return positive_int(value)
    except argparse.ArgumentTypeError as exc:
        raise UsageError(f"{name}={value[:40]!r}: {exc}", hint=f"set {name} to a count like 4, or unset it") from None


def _env_epoch(environ: Mapping[str, str], name: str) -> int | None:
    value = environ.get(name, "").strip()
    if not value:
        return None
    if not value.isdigit() or len(value) > 12:  # seconds since 1970; a wheel's zip time must fit in 1980-2107
        raise UsageError(
            f"{name}={value[:40]!r} is not a time in whole seconds since 1970",
            hint=f"set {name} to a number like 1755000000, or unset it",
        )
    return int(value)


@dataclass(frozen=True)
class BuildSettings:
    """How a build runs, decided once from the command line and the environment (`resolve`) and passed down:
    no part of the build reads these flags or variables again, so two parts cannot disagree about them."""

    jobs: int | None = None  # --jobs, else MAX_JOBS; None: as many as cores and memory allow (the planner)
    offline: bool = False  # --offline
    clean: bool = False  # --clean
    container: bool = False  # --container
    launcher: str | None = None  # FAWHEELS_COMPILER_LAUNCHER: a compiler cache in front of nvcc and c++
    source_date_epoch: int | None = None  # SOURCE_DATE_EPOCH; None: the time fixed by the source's pin
    in_image: bool = False  # FAWHEELS_IN_CONTAINER: this process runs inside a toolchain image

    @classmethod
    def resolve(cls, args: argparse.Namespace | None, environ: Mapping[str, str]) -> BuildSettings:
        """The settings of `fawheels build`/`nightly` (or of a command without build options: `args` None):
        an option wins over its variable; a variable that is set but makes no sense is a usage error (exit 2)
        naming it, before any work."""

        def flag(name: str) -> Any:
            return getattr(args, name, None) if args is not None else None

        jobs = flag("jobs")
        return cls(
            jobs=jobs if jobs is not None else _env_count(environ, "MAX_JOBS"),
            offline=bool(flag("offline")),
            clean=bool(flag("clean")),
            container=bool(flag("container")),
            launcher=environ.get("FAWHEELS_COMPILER_LAUNCHER") or None,
            source_date_epoch=_env_epoch(environ, "SOURCE_DATE_EPOCH"),
            in_image=bool(environ.get(IN_IMAGE)),
        )


DEFAULT_SETTINGS = BuildSettings()  # no flag given, no variable set: what a bare `fawheels build` would do


# ----------------------------------------------------------------------------- environment variables

# Every environment variable fawheels reads (or sets for the processes it starts), declared here once:
# docs/environment.md is generated from this table, and tests/unit/test_cli_convention.py fails on a name the
# package uses that is missing here. (sccache's own SCCACHE_* settings pass through; see compilercache.py.)
ENVIRONMENT: tuple[tuple[str, str], ...] = (
    ("MAX_JOBS", "concurrent compile jobs, as `--jobs N` (the option wins)"),
    (
        "CUDA_HOME",
        "the host CUDA toolkit of a `host` toolchain (default `/usr/local/cuda-<cuda>`, else the nvcc on PATH); "
        "one without `bin/nvcc` is refused (exit 4), not skipped",
    ),
    (
        "SOURCE_DATE_EPOCH",
        "the time stamped into a wheel (default: fixed by the source's pin, so two builds give the same bytes)",
    ),
    (
        "FAWHEELS_CACHE",
        "the cache (default `~/.cache/fawheels`: torch envs, sources, toolkits, job history, sccache); "
        "`fawheels cache` shows and prunes it",
    ),
    (
        "FAWHEELS_BUILD_ROOT",
        "where targets compile (default `/tmp/fawheels-build`; a fixed place keeps nvcc's symbol names stable); "
        "each target's log file is `<root>/<target>.log`; `fawheels cache --what builds` shows and prunes it",
    ),
    ("FAWHEELS_DEBUG", "`1`: an internal error (exit 11) prints its traceback"),
    ("FAWHEELS_CONTAINER_ENGINE", "`docker` or `podman` for toolchain images (default: the first one found)"),
    ("FAWHEELS_COMPILER_CACHE", "the nightly's compiler cache, as `--compiler-cache SPEC` (the option wins)"),
    ("FAWHEELS_SCCACHE", "the sccache binary to use (default: the one on PATH or installed by `.[nightly]`)"),
    (
        "FAWHEELS_COMPILER_LAUNCHER",
        "a compiler cache put in front of nvcc and c++ (set by the nightly for its builds; sccache or ccache)",
    ),
    ("FAWHEELS_CUOBJDUMP", "the cuobjdump `verify` and `inspect` use (default: the toolkit's, else one from PyPI)"),
    ("FAWHEELS_INDEX_USER", "user name for an upload index (else TWINE_USERNAME, else keyring)"),
    ("FAWHEELS_INDEX_PASSWORD", "password or token for an upload index (else TWINE_PASSWORD, else keyring)"),
    ("FAWHEELS_INDEX_TIMEOUT", "seconds to wait for an index server (publish, compat --index)"),
    ("FAWHEELS_IMAGE", "set inside a toolchain image: its tag, recorded in the provenance file"),
    ("FAWHEELS_IMAGE_DIGEST", "set inside a toolchain image: its digest, recorded in the provenance file"),
    ("FAWHEELS_IN_CONTAINER", "set inside a toolchain image: the build there uses the image's toolkit"),
    ("GITHUB_ACTIONS", "`true` (set by GitHub's runners): each target's build and nightly lines fold into a log group"),
)


def environment_markdown() -> str:
    """docs/environment.md: the table above."""
    lines = [
        "# Environment variables",
        "",
        "Every variable fawheels reads or sets for the processes it starts. A command-line option with the same",
        "meaning wins over the variable (docs/cli.md).",
        "",
        "| variable | meaning |",
        "|---|---|",
    ]
    lines += [f"| `{name}` | {meaning} |" for name, meaning in ENVIRONMENT]
    return "\n".join(lines) + "\n"
