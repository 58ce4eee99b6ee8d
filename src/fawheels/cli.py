"""Command-line interface: thin argument parsing over the package API (DESIGN §3)."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .errors import FawheelsError

Command = Callable[[argparse.Namespace], int]


def _add_matrix_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--matrix",
        type=Path,
        default=None,
        help="build matrix file (default: ./build_matrix.yaml, else the one shipped with fawheels)",
    )


def cmd_matrix(args: argparse.Namespace) -> int:
    from . import matrix

    m = matrix.load_matrix_file(args.matrix)
    print(matrix.render_targets(m, args.format))
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from . import build

    return build.build_command(
        matrix_path=args.matrix,
        target_ids=args.targets,
        dist=args.dist,
        jobs=args.jobs,
        container=args.container,
        offline=args.offline,
        keep_going=args.keep_going,
        report=args.report,
        clean=args.clean,
    )


def cmd_inspect(args: argparse.Namespace) -> int:
    from . import inspect

    return inspect.inspect_command(args.path, as_json=args.json, reader=args.reader)


def cmd_verify(args: argparse.Namespace) -> int:
    from . import verify

    return verify.verify_command(args.wheel, as_json=args.json, reader=args.reader)


def cmd_compat(args: argparse.Namespace) -> int:
    from . import compat

    return compat.compat_command(args.path, gpu=args.gpu, driver=args.driver, as_json=args.json)


def cmd_publish(args: argparse.Namespace) -> int:
    from . import publish

    return publish.publish_command(args.wheels, index=args.index, accept_single_reader=args.accept_single_reader)


def cmd_smoke(args: argparse.Namespace) -> int:
    from . import smoke

    return smoke.smoke_command(str(args.wheel), bench_too=args.bench, out=args.out)


def cmd_overlay(args: argparse.Namespace) -> int:
    from . import overlay

    return overlay.overlay_command(args.wheel, python=args.python, undo_it=args.undo)


def cmd_nightly(args: argparse.Namespace) -> int:
    from . import nightly

    return nightly.command(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fawheels",
        description="Build, read, verify and publish FlashAttention wheels with real SASS for every GPU.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("matrix", help="list the expanded targets of the build matrix")
    _add_matrix_arg(p)
    p.add_argument("--format", choices=["table", "json", "github"], default="table")
    p.set_defaults(func=cmd_matrix)

    p = sub.add_parser("build", help="build targets into dist/ (wheel + .sha256 + .verify.json)")
    _add_matrix_arg(p)
    p.add_argument("targets", nargs="*", metavar="TARGET_ID", help="target ids (default: the default target)")
    p.add_argument("--dist", type=Path, default=Path("dist"), help="output directory (default: dist)")
    p.add_argument("--jobs", "-j", type=int, default=None, help="concurrent nvcc jobs (default: MAX_JOBS or "
                   "as many as cores and memory allow)")
    p.add_argument("--container", action="store_true", help="build inside the target's toolchain image")
    p.add_argument("--offline", action="store_true", help="use only cached sources and the host toolchain "
                   "and torch; never touch a package index")
    p.add_argument("--keep-going", action="store_true", help="build the remaining targets after a failure")
    p.add_argument("--clean", action="store_true",
                   help="compile everything afresh (by default unchanged objects of the last build are reused)")
    p.add_argument("--report", type=Path, default=None,
                   help="write a JSON report (per target: status, stage, wall time, per-job compile times, sha256)")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("inspect", help="list every CUDA code entry of a wheel, .so, cubin or fatbin")
    p.add_argument("path", type=Path)
    p.add_argument("--json", action="store_true")
    p.add_argument("--reader", choices=["fawheels", "cuobjdump", "both"], default="fawheels",
                   help="our fatbin parser (default), cuobjdump, or both cross-checked (exit 1 on disagreement)")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("verify", help="check a wheel against the promises of its target (exit 0 pass, 1 fail)")
    p.add_argument("wheel", type=Path)
    p.add_argument("--json", action="store_true")
    p.add_argument("--reader", choices=["both", "fawheels", "cuobjdump"], default="both",
                   help="who reads the CUDA code: our parser and cuobjdump, which must agree (default), or one")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("compat", help="predict whether each kernel image loads on a GPU with a driver")
    p.add_argument("path", help="wheel, .so, fatbin, or an installed distribution name (vllm, flash-attn)")
    p.add_argument("--gpu", required=True, help="GPU name (RTX PRO 6000, H100), arch (sm_120) or CC (12.0)")
    p.add_argument("--driver", required=True, help="NVIDIA driver version, e.g. 570.195.03")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_compat)

    p = sub.add_parser(
        "publish", help="add verified wheels to a PEP 503 index (directory or URL)",
        epilog="Upload credentials come from FAWHEELS_INDEX_USER/FAWHEELS_INDEX_PASSWORD, "
               "TWINE_USERNAME/TWINE_PASSWORD or keyring, never from the command line (docs/publishing.md).")
    p.add_argument("wheels", nargs="+", type=Path, metavar="WHEEL",
                   help="wheels with a passing <wheel>.verify.json beside them")
    p.add_argument("--index", required=True,
                   help="index directory (DIR, or DIR/cu130 to accept only that variant) or upload URL")
    p.add_argument("--accept-single-reader", action="store_true",
                   help="publish a wheel whose CUDA code only our parser could read (cuobjdump could not run)")
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("nightly", help="build, verify and publish every target; summary and JSON report")
    from .nightly import add_arguments as add_nightly_arguments

    add_nightly_arguments(p)
    p.set_defaults(func=cmd_nightly)

    p = sub.add_parser("smoke", help="on a GPU: check every kernel of a wheel against a float32 reference")
    p.add_argument("wheel", type=Path)
    p.add_argument("--bench", action="store_true", help="also time ours vs torch's flash backend")
    p.add_argument("--out", default=None, help="write the JSON results here too")
    p.set_defaults(func=cmd_smoke)

    p = sub.add_parser(
        "overlay", help="put a vllm-fa2 wheel's _vllm_fa2_C into an installed vLLM of its release (--undo restores)",
        epilog="Checks the vLLM release, the torch version and the op schemas first; keeps the original beside it "
               "(<name>.fawheels-original) so --undo restores it byte for byte. docs/vllm.md")
    p.add_argument("wheel", type=Path, metavar="WHEEL")
    p.add_argument("--into-site-packages", action="store_true", required=True,
                   help="replace the extension inside the site-packages of --python (required: it edits an install)")
    p.add_argument("--python", default=None, help="interpreter whose vLLM to change (default: the one running)")
    p.add_argument("--undo", action="store_true", help="put the original extension back")
    p.set_defaults(func=cmd_overlay)

    return parser


def _interrupt_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # A CI runner cancels with SIGTERM: treat it like Ctrl-C so children stop and dist/ stays as it was.
    signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    func: Command = args.func
    try:
        return func(args)
    except FawheelsError as exc:
        print(f"fawheels: {exc.kind} error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("fawheels: interrupted; dist/ was left as it was", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
