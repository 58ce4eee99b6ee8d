"""The subcommands of `fawheels`, each declared once in COMMANDS: its name, help, arguments, handler, the error
class an OS error in it belongs to, and what an interrupt left as it was. cli.py builds the parser and runs the
handler from this table."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fawheels._util.errors import (
    BuildError,
    ConfigError,
    ContainerError,
    FawheelsError,
    InspectError,
    OverlayError,
    PublishError,
    ToolchainError,
    UsageError,
)
from fawheels._util.show import say
from fawheels.options import BUILD, MATRIX, NIGHTLY, BuildSettings, Option, add_options, positive_int

Handler = Callable[[argparse.Namespace], int]

# ----------------------------------------------------------------------------- the handlers


def cmd_matrix(args: argparse.Namespace) -> int:
    from fawheels.matrix import config as matrix

    m = matrix.load_matrix_file(args.matrix)
    say(matrix.render_targets(m, "json" if args.json else args.format))
    return 0


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
    from fawheels._util.files import check_outputs
    from fawheels.compile import command as build

    check_outputs(args.dist, args.report)
    settings = BuildSettings.resolve(args, os.environ)  # read once, here: every stage below gets this object
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


def cmd_first_call(args: argparse.Namespace) -> int:
    from fawheels.deploy import firstcall

    return firstcall.first_call_command(str(args.wheel), runs=args.runs, out=args.report)


def cmd_lock_images(args: argparse.Namespace) -> int:
    from fawheels.toolchain.container import lock_images

    lock_images(args.matrix)
    return 0


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
        settings=BuildSettings.resolve(None, os.environ),  # fix-vllm has no build flags: the variables alone
    )


def cmd_nightly(args: argparse.Namespace) -> int:
    from fawheels import nightly

    return nightly.command(args, BuildSettings.resolve(args, os.environ))


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


# ----------------------------------------------------------------------------- each command's arguments


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


def matrix_arguments(p: argparse.ArgumentParser) -> None:
    MATRIX.add_to(p)
    p.add_argument(
        "--format",
        choices=["table", "json", "github"],
        default="table",
        help="a table for people (default), JSON for tools, or a GitHub Actions include matrix",
    )
    p.add_argument("--json", action="store_true", help="the targets as one JSON document (as --format json)")


def inspect_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", type=Path, metavar="PATH", help="a wheel, .so, cubin or fatbin")
    p.add_argument("--json", action="store_true", help="one JSON document instead of the table")
    p.add_argument(
        "--reader",
        choices=["fawheels", "cuobjdump", "both"],
        default="fawheels",
        help="our fatbin parser (default), cuobjdump, or both cross-checked (exit 1 on disagreement)",
    )


def verify_arguments(p: argparse.ArgumentParser) -> None:
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


def compat_arguments(p: argparse.ArgumentParser) -> None:
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


def publish_arguments(p: argparse.ArgumentParser) -> None:
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


def profile_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from-config", type=Path, required=True, metavar="CONFIG_JSON", help="a Hugging Face config.json")
    p.add_argument("--name", default=None, help="profile name (default: the config's model_type)")


def fix_vllm_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--python", default=None, help="interpreter whose vLLM to fix (default: the one running)")
    add_machine_options(p)
    p.add_argument("--index", default=None, metavar="DIR_OR_URL", help="a fawheels index to take the wheel from")
    MATRIX.add_to(p)
    p.add_argument("--dry-run", action="store_true", help="print the whole plan; change nothing")
    p.add_argument("--json", action="store_true", help="the plan as one JSON document")
    p.add_argument("--undo", action="store_true", help="put the original _vllm_fa2_C back, byte for byte")


def smoke_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("wheel", type=Path, metavar="WHEEL")
    p.add_argument("--bench", action="store_true", help="also time ours vs torch's flash backend")
    p.add_argument("--report", default=None, metavar="FILE", help="write the JSON results here too")
    p.add_argument("--out", dest="report", default=argparse.SUPPRESS, help=argparse.SUPPRESS)  # the old spelling


def first_call_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "wheel", type=Path, metavar="WHEEL", help="a fawheels wheel built for this machine's torch and Python"
    )
    p.add_argument(
        "--runs",
        type=positive_int,
        default=3,
        metavar="N",
        help="fresh processes with the JIT cache disabled (default 3)",
    )
    p.add_argument("--report", default=None, metavar="FILE", help="also write the JSON document here")
    p.add_argument("--out", dest="report", default=argparse.SUPPRESS, help=argparse.SUPPRESS)  # the script's spelling


def lock_images_arguments(p: argparse.ArgumentParser) -> None:
    MATRIX.add_to(p)


def overlay_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("wheel", type=Path, metavar="WHEEL")
    p.add_argument(
        "--into-site-packages",
        action="store_true",
        required=True,
        help="replace the extension inside the site-packages of --python (required: it edits an install)",
    )
    p.add_argument("--python", default=None, help="interpreter whose vLLM to change (default: the one running)")
    p.add_argument("--undo", action="store_true", help="put the original extension back")


def cache_arguments(p: argparse.ArgumentParser) -> None:
    from fawheels.cache import KIND_NAMES

    what: dict[str, Any] = {
        "dest": "kinds",
        "action": "append",
        "choices": KIND_NAMES,
        "metavar": "KIND",
        "help": f"only this kind (repeat for more): {', '.join(KIND_NAMES)}",
    }
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


# ----------------------------------------------------------------------------- what an interrupt left


def publish_interrupted(args: argparse.Namespace) -> str:
    if str(args.index).startswith(("http://", "https://")):
        return f"interrupted; the upload to {args.index} was cut off (check that index for the wheel)"
    return f"interrupted; the index {args.index} was left as it was (no partial file was listed or left in it)"


def build_interrupted(args: argparse.Namespace) -> str:
    return f"interrupted; {str(args.dist).rstrip('/')}/ was left as it was"


def nightly_interrupted(args: argparse.Namespace) -> str:
    return f"interrupted; {args.out} holds only whole files"


def just_interrupted(args: argparse.Namespace) -> str:
    return "interrupted"


# ----------------------------------------------------------------------------- the registry


@dataclass(frozen=True)
class Command:
    """One subcommand, declared once: the parser, the handler and its failure paths are made from this."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    handler: Handler
    error: type[FawheelsError] = UsageError  # the class an OS error nobody closer mapped belongs to (its exit)
    interrupted: Callable[[argparse.Namespace], str] = just_interrupted  # what Ctrl-C left as it was
    epilog: str | None = None


def options_of(table: tuple[Option, ...]) -> Callable[[argparse.ArgumentParser], None]:
    return lambda p: add_options(p, table)


# In the order `fawheels --help` lists them.
COMMANDS: tuple[Command, ...] = (
    Command("matrix", "list the expanded targets of the build matrix", matrix_arguments, cmd_matrix, ConfigError),
    Command(
        "build",
        "build targets into dist/ (wheel + .sha256 + .verify.json)",
        options_of(BUILD),
        cmd_build,
        BuildError,
        build_interrupted,
    ),
    Command(
        "inspect",
        "list every CUDA code entry of a wheel, .so, cubin or fatbin",
        inspect_arguments,
        cmd_inspect,
        InspectError,
    ),
    Command(
        "verify",
        "check a wheel against the promises of its target (exit 0 pass, 1 fail)",
        verify_arguments,
        cmd_verify,
        InspectError,
    ),
    Command(
        "compat",
        "predict whether each kernel image loads on a GPU with a driver",
        compat_arguments,
        cmd_compat,
        InspectError,
    ),
    Command(
        "publish",
        "add verified wheels to a PEP 503 index (directory or URL)",
        publish_arguments,
        cmd_publish,
        PublishError,
        publish_interrupted,
        epilog="Upload credentials come from FAWHEELS_INDEX_USER/FAWHEELS_INDEX_PASSWORD, "
        "TWINE_USERNAME/TWINE_PASSWORD or keyring, never from the command line (docs/publishing.md).",
    ),
    Command(
        "profile",
        "print the kernel profile that serves a model, from its config.json",
        profile_arguments,
        cmd_profile,
        epilog="Reads the language model (top level or text_config) and a vision_config: head dim "
        "(head_dim, or hidden_size / heads), dtype; prints YAML for build_matrix.yaml's "
        "profiles. docs/vllm.md",
    ),
    Command(
        "fix-vllm",
        "give the installed vLLM a _vllm_fa2_C with SASS for this GPU (from --index, or built); --undo restores",
        fix_vllm_arguments,
        cmd_fix_vllm,
        OverlayError,
        epilog="Reads vLLM, torch, the CUDA runtime its extensions link and the Python of --python; the GPU and "
        "driver from nvidia-smi (or --gpu/--driver); says what the installed _vllm_fa2_C does there (compat's "
        "verdict), then fetches or builds, verifies, overlays and smokes. docs/vllm.md",
    ),
    Command(
        "nightly",
        "build, verify and publish every target; summary and JSON report",
        options_of(NIGHTLY),
        cmd_nightly,
        BuildError,
        nightly_interrupted,
    ),
    Command("smoke", "on a GPU: check every kernel of a wheel against a float32 reference", smoke_arguments, cmd_smoke),
    Command(
        "first-call",
        "on a GPU: time a wheel's first attention call in fresh processes, the driver's JIT cache disabled",
        first_call_arguments,
        cmd_first_call,
        ToolchainError,
        epilog="Installs WHEEL into a temporary directory on top of this interpreter's torch; prints one JSON "
        "document (schema 1), written to --report after every run. docs/architecture.md",
    ),
    Command(
        "overlay",
        "put a vllm-fa2 wheel's _vllm_fa2_C into an installed vLLM of its release (--undo restores)",
        overlay_arguments,
        cmd_overlay,
        OverlayError,
        epilog="Checks the vLLM release, the torch version and the op schemas first; keeps the original beside it "
        "(<name>.fawheels-original) so --undo restores it byte for byte. docs/vllm.md",
    ),
    Command(
        "lock-images",
        "build (if missing) every toolchain image the matrix can use; pin it in docker/images.lock.json",
        lock_images_arguments,
        cmd_lock_images,
        ContainerError,
    ),
    Command(
        "cache",
        "show what the caches hold (sizes, last use); `cache prune` removes what is old",
        cache_arguments,
        cmd_cache,
        epilog="The cache is FAWHEELS_CACHE (default ~/.cache/fawheels), the build trees FAWHEELS_BUILD_ROOT "
        "(default /tmp/fawheels-build). docs/cli.md",
    ),
)
BY_NAME = {c.name: c for c in COMMANDS}
