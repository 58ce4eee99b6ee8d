"""Command-line interface: thin argument parsing over the package API (README: Commands)."""

from __future__ import annotations

import argparse
import errno
import io
import os
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

from fawheels._util import console
from fawheels._util.errors import (
    BuildError,
    ConfigError,
    FawheelsError,
    InspectError,
    InternalError,
    OverlayError,
    PublishError,
    UsageError,
)
from fawheels._util.redact import RedactingStream, secrets_from_env
from fawheels._util.show import say
from fawheels.options import BUILD, MATRIX, NIGHTLY, BuildSettings, add_options

Command = Callable[[argparse.Namespace], int]


def cmd_matrix(args: argparse.Namespace) -> int:
    from fawheels.matrix import config as matrix

    m = matrix.load_matrix_file(args.matrix)
    say(matrix.render_targets(m, "json" if args.json else args.format))
    return 0


def check_output_paths(dist: Path | None, report: Path | None) -> None:
    """Paths a command will write at the end, checked before it starts: an hour of building must not end in
    'cannot write'. Creates nothing: a probe file in the nearest existing directory, removed at once."""
    from fawheels._util.files import writable_dir

    for what, d in (("--dist", dist), ("--report's directory", report.parent if report else None)):
        if d is not None and (why := writable_dir(d)) is not None:
            raise UsageError(f"{what} {d}: cannot write there: {why}", hint="pass a path this user can write")
    if report is not None and report.is_dir():
        raise UsageError(f"--report {report} is a directory", hint="pass a file path, e.g. --report build.json")


DERIVE_OPTIONS = ("archs", "python", "profile", "from_config", "cuda")


def derived_target(args: argparse.Namespace) -> Any:
    """`build --vllm VERSION --arch …`: the derived target, its matrix and its YAML block (matrix/derive.py)."""
    from fawheels.matrix import config, derive, modelprofile

    if args.targets:
        raise UsageError(
            "name targets or derive one with --vllm, not both", hint="fawheels build --vllm 0.26.0 --arch sm_120"
        )
    if args.profile and args.from_config:
        raise UsageError("--profile and --from-config both name the kernel profile: give one")
    path = config.find_matrix_file(args.matrix)
    text = path.read_text(encoding="utf-8")
    from_config = None
    if args.from_config is not None:
        model = read_model_config(args.from_config)
        from_config, _ = modelprofile.profile_from_config(model, modelprofile.profile_name(model))
    python = args.python or f"{sys.version_info.major}.{sys.version_info.minor}"
    return derive.derive_vllm_target(
        text,
        path.resolve(),
        vllm=args.vllm,
        archs=args.archs,
        python=python,
        profile=args.profile,
        config_profile=from_config,
        cuda=args.cuda,
    )


def cmd_build(args: argparse.Namespace) -> int:
    from fawheels.compile import command as build

    check_output_paths(args.dist, args.report)
    settings = BuildSettings.resolve(args, os.environ)  # the one place a build's flags and variables are read
    matrix_path, target_ids = args.matrix, args.targets
    if args.vllm is not None:
        from fawheels.compile import dryrun
        from fawheels.matrix import derive

        derived = derived_target(args)
        say(derived.yaml, flush=True)
        if args.dry_run:
            return dryrun.print_plans(derived.matrix, [derived.target], settings, as_json=args.json)
        matrix_path, target_ids = derive.write_tree(derived), [derived.target.id]
    elif given := [f"--{n.replace('_', '-')}" for n in DERIVE_OPTIONS if getattr(args, n)]:
        raise UsageError(f"{', '.join(given)}: only with --vllm VERSION (a derived target)")
    if args.json and not args.dry_run:
        raise UsageError("build --json: only with --dry-run (a build's JSON is --report FILE)")

    return build.build_command(
        matrix_path=matrix_path,
        target_ids=target_ids,
        dist=args.dist,
        settings=settings,
        keep_going=args.keep_going,
        report=args.report,
        dry_run=args.dry_run,
        as_json=args.json,
    )


def cmd_inspect(args: argparse.Namespace) -> int:
    from fawheels.check import inspect

    return inspect.inspect_command(args.path, as_json=args.json, reader=args.reader)


def cmd_verify(args: argparse.Namespace) -> int:
    from fawheels.check import verify

    return verify.verify_command(args.wheel, as_json=args.json, reader=args.reader, write=args.write_report)


def cmd_compat(args: argparse.Namespace) -> int:
    from fawheels.check import compat

    if args.index is not None or args.path is None:
        return cmd_compat_index(args)
    return compat.compat_command(args.path, gpu=args.gpu, driver=args.driver, as_json=args.json, strict=args.strict)


def cmd_compat_index(args: argparse.Namespace) -> int:
    """`compat --index URL`: which wheel of a published index suits the machine (variants.py)."""
    from fawheels._util.errors import ConfigError
    from fawheels.publish import variants

    if args.index is None or args.path is not None:
        raise ConfigError(
            "compat takes a PATH or --index URL (exactly one)",
            hint="fawheels compat WHEEL --gpu G --driver V, or fawheels compat --index URL --gpu G --driver V",
        )
    return variants.index_command(args.index, gpu=args.gpu, driver=args.driver, project=args.project, as_json=args.json)


def cmd_publish(args: argparse.Namespace) -> int:
    from fawheels.publish import index as publish

    return publish.publish_command(args.wheels, index=args.index, accept_single_reader=args.accept_single_reader)


def cmd_smoke(args: argparse.Namespace) -> int:
    from fawheels.deploy import smoke

    return smoke.smoke_command(str(args.wheel), bench_too=args.bench, out=args.report)


def cmd_overlay(args: argparse.Namespace) -> int:
    from fawheels.deploy import overlay

    return overlay.overlay_command(args.wheel, python=args.python, undo_it=args.undo)


def cmd_profile(args: argparse.Namespace) -> int:
    from fawheels.matrix import modelprofile

    config = read_model_config(args.from_config)
    name = modelprofile.profile_name(config, args.name)
    profile, found = modelprofile.profile_from_config(config, name)
    say(modelprofile.render_yaml(profile, found, str(args.from_config)))
    return 0


def read_model_config(path: Path) -> Any:
    """A model's config.json, refused (ConfigError) when it is not one."""
    import json

    from fawheels._util.errors import ConfigError
    from fawheels._util.files import read_regular

    hint = "give the model's config.json"
    data = read_regular(path, 4 << 20, ConfigError)  # a config.json is kilobytes; a FIFO is refused, not awaited
    try:
        config = json.loads(data.decode("utf-8"))
    except ValueError as exc:  # not UTF-8, not JSON, or a number of thousands of digits
        raise ConfigError(f"{path}: not a JSON file ({str(exc)[:200]})", hint=hint) from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a model's config.json", hint=hint) from None
    return config


def cmd_fix_vllm(args: argparse.Namespace) -> int:
    from fawheels.deploy import fixvllm

    return fixvllm.fix_vllm_command(
        python=args.python,
        gpu=args.gpu,
        driver=args.driver,
        index=args.index,
        dry_run=args.dry_run,
        as_json=args.json,
        undo_it=args.undo,
        matrix=args.matrix,
    )


def cmd_nightly(args: argparse.Namespace) -> int:
    from fawheels import nightly

    return nightly.command(args)


def cmd_cache(args: argparse.Namespace) -> int:
    from fawheels import cache

    if args.cache_action == "prune":
        return cache.prune_command(
            older_than_days=args.older_than, kinds=args.kinds, dry_run=args.dry_run, as_json=args.json
        )
    return cache.show_command(kinds=args.kinds or cache.KIND_NAMES, as_json=args.json)


def non_negative_days(text: str) -> float:
    """argparse type for --older-than: a number of days, 0 or more (fractions allowed)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days") from None
    if not value >= 0 or value == float("inf"):  # NaN fails the first test
        raise argparse.ArgumentTypeError(f"{text} is not a number of days: use 0 or more")
    return value


def add_cache_parser(sub: Any) -> None:
    from fawheels.cache import KIND_NAMES

    what = {
        "dest": "kinds",
        "action": "append",
        "choices": KIND_NAMES,
        "metavar": "KIND",
        "help": f"only this kind (repeat for more): {', '.join(KIND_NAMES)}",
    }
    p = sub.add_parser(
        "cache",
        help="show what the caches hold (sizes, last use); `cache prune` removes what is old",
        epilog="The cache is FAWHEELS_CACHE (default ~/.cache/fawheels), the build trees FAWHEELS_BUILD_ROOT "
        "(default /tmp/fawheels-build). docs/cli.md",
    )
    p.add_argument("--what", default=None, **what)
    p.add_argument("--json", action="store_true", help="one JSON document instead of the table")
    actions = p.add_subparsers(dest="cache_action", metavar="ACTION")
    q = actions.add_parser(
        "prune",
        help="remove cache entries and build trees (never outside the cache roots, never one a build holds)",
    )
    q.add_argument(
        "--older-than",
        type=non_negative_days,
        default=None,
        metavar="DAYS",
        help="only entries not used for DAYS days (default: every entry of --what)",
    )
    q.add_argument("--what", default=None, **what)
    q.add_argument("--dry-run", action="store_true", help="print what would be removed; remove nothing")
    q.add_argument("--json", action="store_true", help="one JSON document instead of the list")
    p.set_defaults(func=cmd_cache)


def add_machine_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--gpu",
        default=None,
        help="GPU name as nvidia-smi prints it (NVIDIA RTX PRO 6000 Blackwell Workstation Edition, H100), arch "
        "(sm_120) or compute capability (12.0); default: nvidia-smi's first GPU",
    )
    p.add_argument(
        "--driver", default=None, metavar="VERSION", help="NVIDIA driver, e.g. 570.195.03; default: nvidia-smi's"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fawheels",
        description="Build, read, verify and publish FlashAttention wheels with real SASS for every GPU.",
    )
    from fawheels import __version__

    parser.add_argument("--version", action="version", version=f"fawheels {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("matrix", help="list the expanded targets of the build matrix")
    MATRIX.add_to(p)
    p.add_argument(
        "--format",
        choices=["table", "json", "github"],
        default="table",
        help="a table for people (default), JSON for tools, or a GitHub Actions include matrix",
    )
    p.add_argument("--json", action="store_true", help="the targets as one JSON document (as --format json)")
    p.set_defaults(func=cmd_matrix)

    p = sub.add_parser("build", help="build targets into dist/ (wheel + .sha256 + .verify.json)")
    add_options(p, BUILD)
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("inspect", help="list every CUDA code entry of a wheel, .so, cubin or fatbin")
    p.add_argument("path", type=Path, metavar="PATH", help="a wheel, .so, cubin or fatbin")
    p.add_argument("--json", action="store_true", help="one JSON document instead of the table")
    p.add_argument(
        "--reader",
        choices=["fawheels", "cuobjdump", "both"],
        default="fawheels",
        help="our fatbin parser (default), cuobjdump, or both cross-checked (exit 1 on disagreement)",
    )
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("verify", help="check a wheel against the promises of its target (exit 0 pass, 1 fail)")
    p.add_argument("wheel", type=Path, metavar="WHEEL")
    p.add_argument("--json", action="store_true", help="one JSON document instead of the report")
    p.add_argument(
        "--write-report",
        action="store_true",
        help="also write <wheel>.verify.json beside it (what `fawheels publish` requires)",
    )
    p.add_argument(
        "--reader",
        choices=["both", "fawheels", "cuobjdump"],
        default="both",
        help="who reads the CUDA code: our parser and cuobjdump, which must agree (default), or one",
    )
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("compat", help="predict whether each kernel image loads on a GPU with a driver")
    p.add_argument(
        "path",
        nargs="?",
        default=None,
        metavar="PATH",
        help="wheel, .so, fatbin, or an installed distribution name (vllm, flash-attn)",
    )
    p.add_argument(
        "--index",
        default=None,
        metavar="DIR_OR_URL",
        help="instead of PATH: a fawheels index (directory or URL); names the wheel that suits the machine",
    )
    p.add_argument(
        "--project", default=None, metavar="NAME", help="with --index: only this project (flash-attn, vllm-fa2)"
    )
    add_machine_options(p)
    p.add_argument("--json", action="store_true", help="one JSON document instead of the table")
    p.add_argument(
        "--strict", action="store_true", help="exit 1 also when something loads only after PTX JIT (default: exit 0)"
    )
    p.set_defaults(func=cmd_compat)

    p = sub.add_parser(
        "publish",
        help="add verified wheels to a PEP 503 index (directory or URL)",
        epilog="Upload credentials come from FAWHEELS_INDEX_USER/FAWHEELS_INDEX_PASSWORD, "
        "TWINE_USERNAME/TWINE_PASSWORD or keyring, never from the command line (docs/publishing.md).",
    )
    p.add_argument(
        "wheels", nargs="+", type=Path, metavar="WHEEL", help="wheels with a passing <wheel>.verify.json beside them"
    )
    p.add_argument(
        "--index",
        required=True,
        metavar="DIR_OR_URL",
        help="index directory (DIR, or DIR/cu130 to accept only that variant) or upload URL",
    )
    p.add_argument(
        "--accept-single-reader",
        action="store_true",
        help="publish a wheel whose CUDA code only our parser could read (cuobjdump could not run)",
    )
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser(
        "profile",
        help="print the kernel profile that serves a model, from its config.json",
        epilog="Reads the language model (top level or text_config) and a vision_config: head dim "
        "(head_dim, or hidden_size / heads), dtype; prints YAML for build_matrix.yaml's "
        "profiles. docs/vllm.md",
    )
    p.add_argument("--from-config", type=Path, required=True, metavar="CONFIG_JSON", help="a Hugging Face config.json")
    p.add_argument("--name", default=None, help="profile name (default: the config's model_type)")
    p.set_defaults(func=cmd_profile)

    p = sub.add_parser(
        "fix-vllm",
        help="give the installed vLLM a _vllm_fa2_C with SASS for this GPU (from --index, or built); --undo restores",
        epilog="Reads vLLM, torch, the CUDA runtime its extensions link and the Python of --python; the GPU and "
        "driver from nvidia-smi (or --gpu/--driver); says what the installed _vllm_fa2_C does there (compat's "
        "verdict), then fetches or builds, verifies, overlays and smokes. docs/vllm.md",
    )
    p.add_argument("--python", default=None, help="interpreter whose vLLM to fix (default: the one running)")
    add_machine_options(p)
    p.add_argument("--index", default=None, metavar="DIR_OR_URL", help="a fawheels index to take the wheel from")
    MATRIX.add_to(p)
    p.add_argument("--dry-run", action="store_true", help="print the whole plan; change nothing")
    p.add_argument("--json", action="store_true", help="the plan as one JSON document")
    p.add_argument("--undo", action="store_true", help="put the original _vllm_fa2_C back, byte for byte")
    p.set_defaults(func=cmd_fix_vllm)

    p = sub.add_parser("nightly", help="build, verify and publish every target; summary and JSON report")
    add_options(p, NIGHTLY)
    p.set_defaults(func=cmd_nightly)

    p = sub.add_parser("smoke", help="on a GPU: check every kernel of a wheel against a float32 reference")
    p.add_argument("wheel", type=Path, metavar="WHEEL")
    p.add_argument("--bench", action="store_true", help="also time ours vs torch's flash backend")
    p.add_argument("--report", default=None, metavar="FILE", help="write the JSON results here too")
    p.add_argument("--out", dest="report", default=argparse.SUPPRESS, help=argparse.SUPPRESS)  # the old spelling
    p.set_defaults(func=cmd_smoke)

    p = sub.add_parser(
        "overlay",
        help="put a vllm-fa2 wheel's _vllm_fa2_C into an installed vLLM of its release (--undo restores)",
        epilog="Checks the vLLM release, the torch version and the op schemas first; keeps the original beside it "
        "(<name>.fawheels-original) so --undo restores it byte for byte. docs/vllm.md",
    )
    p.add_argument("wheel", type=Path, metavar="WHEEL")
    p.add_argument(
        "--into-site-packages",
        action="store_true",
        required=True,
        help="replace the extension inside the site-packages of --python (required: it edits an install)",
    )
    p.add_argument("--python", default=None, help="interpreter whose vLLM to change (default: the one running)")
    p.add_argument("--undo", action="store_true", help="put the original extension back")
    p.set_defaults(func=cmd_overlay)

    add_cache_parser(sub)
    return parser


def _interrupt_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


BROKEN_PIPE_EXIT = 141  # 128 + SIGPIPE, what a shell reports for a writer whose reader went away
MAX_MESSAGE = 8000  # characters of one error message: enough for every field path, never megabytes

# Which error class an OS error (a path that cannot be read or written) belongs to, per command.
_OS_ERROR_CLASS: dict[str, type[FawheelsError]] = {
    "matrix": ConfigError,
    "build": BuildError,
    "nightly": BuildError,
    "inspect": InspectError,
    "verify": InspectError,
    "compat": InspectError,
    "publish": PublishError,
    "overlay": OverlayError,
    "fix-vllm": OverlayError,
    "smoke": UsageError,
}
_OS_HINTS = {
    errno.EACCES: "check the permissions of that path, or choose one this user can use",
    errno.EPERM: "check the permissions of that path, or choose one this user can use",
    errno.EROFS: "that filesystem is read-only: choose a writable location",
    errno.ENOENT: "check the path",
    errno.ENOTDIR: "a part of that path is a file where a directory is needed",
    errno.EISDIR: "that path is a directory where a file is needed",
    errno.EEXIST: "something is already at that path",
    errno.ENOSPC: "the disk is full: free space and run again",
}


def os_error(command: str, exc: OSError) -> FawheelsError:
    """An OS error nobody closer to it mapped: the command's error class, the path and a fix."""
    cls = _OS_ERROR_CLASS.get(command, UsageError)
    where = f"{exc.filename}: " if exc.filename else ""
    return cls(f"{where}{exc.strerror or exc}", hint=_OS_HINTS.get(exc.errno or 0, "check the path and run again"))


def interrupted_message(args: argparse.Namespace) -> str:
    """What an interrupt left as it was, named for the command that was interrupted."""
    if args.command == "publish":
        if str(args.index).startswith(("http://", "https://")):
            return f"interrupted; the upload to {args.index} was cut off (check that index for the wheel)"
        return f"interrupted; the index {args.index} was left as it was (no partial file was listed or left in it)"
    if args.command == "build":
        return f"interrupted; {str(args.dist).rstrip('/')}/ was left as it was"
    if args.command == "nightly":
        return f"interrupted; {args.out} holds only whole files"
    return "interrupted"


def _say_error(kind: str, message: str) -> None:
    if len(message) > MAX_MESSAGE:
        message = message[:MAX_MESSAGE] + f"… ({len(message) - MAX_MESSAGE} more characters not shown)"
    say(f"fawheels: {kind} error: {message}", file=sys.stderr)


def _run(args: argparse.Namespace) -> int:
    func: Command = args.func
    try:
        return func(args)
    except FawheelsError as exc:
        _say_error(exc.kind, str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        say(f"fawheels: {interrupted_message(args)}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `fawheels matrix | head -1`: the reader stopped early, nothing to report
        inner = getattr(sys.stdout, "inner", sys.stdout)
        # The process's own stdout: point it at /dev/null so the interpreter's flush at exit is quiet too.
        if inner is sys.__stdout__ and inner is not None:
            with suppress(OSError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), inner.fileno())
        return BROKEN_PIPE_EXIT
    except OSError as exc:
        err = os_error(args.command, exc)
        _say_error(err.kind, str(err))
        return err.exit_code
    except Exception as exc:  # a bug: say so in one line, with its own exit code; the traceback on request
        if os.environ.get("FAWHEELS_DEBUG"):
            traceback.print_exc()
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()[:500]
        _say_error(
            "internal",
            f"{detail}\n  this is a bug in fawheels, not in your input; rerun with "
            "FAWHEELS_DEBUG=1 for the traceback and report it (docs/errors.md)",
        )
        return InternalError.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "quiet", False) and getattr(args, "verbose", False):
        parser.error("-q/--quiet and -v/--verbose: give one")  # usage, exit 2
    console.set_level(console.level_from(getattr(args, "quiet", False), getattr(args, "verbose", False)))
    # A CI runner cancels with SIGTERM, a closed terminal sends SIGHUP: treat both like Ctrl-C so children
    # stop and files being written are removed.
    signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    signal.signal(signal.SIGHUP, _interrupt_on_sigterm)
    # Everything printed passes through the redactor: no credential reaches a terminal or a CI log.
    secrets, users = secrets_from_env(os.environ)
    saved = sys.stdout, sys.stderr
    for stream in saved:  # PYTHONIOENCODING=ascii and a non-ASCII name: an escape, not a UnicodeEncodeError
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    sys.stdout = RedactingStream(saved[0], secrets, users)
    sys.stderr = RedactingStream(saved[1], secrets, users)
    try:
        return _run(args)
    finally:
        for stream in (sys.stdout, sys.stderr):
            with suppress(OSError):  # a closed pipe must not turn into a traceback on the way out
                stream.flush()
        sys.stdout, sys.stderr = saved


if __name__ == "__main__":
    sys.exit(main())
