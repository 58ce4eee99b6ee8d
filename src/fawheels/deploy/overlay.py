"""`fawheels overlay`: put a verified wheel's extension into an installed copy of the release it serves
(vllm-fa2: our `_vllm_fa2_C` into vLLM), keeping the original beside it for a byte-exact `--undo`.

Refused before anything is touched: a wheel that fails verify, no or another release of the served
distribution, a torch outside the wheel's pin, and an installed extension whose op schemas differ from ours.
After the copy the target interpreter loads our library under its torch and compares the registered
schemas with the release's; if that fails the original is put back.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.version import Version

from fawheels._util.errors import OverlayError
from fawheels._util.files import copy_atomic, sha256_file, write_atomic
from fawheels._util.runner import TimeoutExpired, call
from fawheels._util.show import say
from fawheels._util.wheels import read_build_info
from fawheels.check.verify import verify_wheel
from fawheels.check.wheelfacts import op_schemas_in, schema_differences
from fawheels.matrix.recipes import RECIPES, Release

BACKUP_SUFFIX = ".fawheels-original"  # not an extension suffix: Python never imports it
STATE_SUFFIX = ".fawheels-overlay.json"

# Run in the target interpreter (`python -c`, name and member as argv), or in this process with `args` given as a
# global (fix-vllm for the running interpreter).
_PROBE = r"""
import importlib.metadata as md, json, sys
name, member = globals().get("args") or sys.argv[1:3]
out = {"python": sys.executable, "python_version": "%d.%d" % sys.version_info[:2], "version": None, "path": None,
       "torch": None}
try:
    dist = md.distribution(name)
    out["version"], out["path"] = dist.version, str(dist.locate_file(member))
except md.PackageNotFoundError:
    pass
try:
    out["torch"] = md.version("torch")
except md.PackageNotFoundError:
    pass
print(json.dumps(out))
"""

# Loads the library as vLLM's import does (its static initializers register the ops), then compares what
# torch registered with the release's schemas, both parsed by that torch.
_LOAD_CHECK = r"""
import json, sys, torch
path, namespace, wanted = sys.argv[1], sys.argv[2], json.loads(sys.stdin.read())
torch.ops.load_library(path)
ops = getattr(torch.ops, namespace)
problems = []
for schema in wanted:
    want = str(torch._C.parse_schema(schema))
    name = want.split("(", 1)[0]
    have = str(getattr(ops, name).default._schema).split("::", 1)[1]
    if have != want:
        problems.append(f"{name}: torch registered {have}, the release calls {want}")
print(json.dumps(problems))
"""


@dataclass(frozen=True)
class Served:
    """What a wheel says about the installed distribution it goes into."""

    wheel: Path
    distribution: str  # vllm
    release: Release
    member: str  # the extension's path in the wheel and in site-packages: vllm/vllm_flash_attn/_vllm_fa2_C.abi3.so
    namespace: str
    torch_requirement: Requirement
    data: bytes  # the extension


@dataclass(frozen=True)
class Installed:
    python: str
    version: str | None  # of the served distribution
    path: Path | None  # where its copy of the extension is
    torch: str | None


def read_served(wheel: Path) -> Served:
    try:
        info = read_build_info(wheel)
    except ValueError as exc:
        raise OverlayError(f"{exc}: not a fawheels wheel") from exc
    recipe = RECIPES.get(str(info.get("recipe")))
    serves = info.get("serves")
    if not serves or recipe is None or recipe.serves is None or recipe.op_namespace is None:
        raise OverlayError(
            f"{wheel.name} (target {info.get('target')}) serves no installed distribution",
            hint="only a recipe like vllm-fa2 goes into another package; pip install this one",
        )
    release = recipe.release(str(serves).split("==", 1)[1])
    if release is None:
        raise OverlayError(f"{wheel.name}: fawheels knows no release {serves}")
    (member,) = info["extensions"]
    with zipfile.ZipFile(wheel) as zf:
        code = zf.read(member)
    return Served(
        wheel,
        recipe.serves,
        release,
        member,
        recipe.op_namespace,
        Requirement(info["torch"]["requirement"]),
        code,
    )


def check_python(python: str) -> str:
    """`--python` must name an executable file (a path, or a name on PATH); refused before anything is read."""
    found = shutil.which(python) if os.sep not in python else (python if os.access(python, os.X_OK) else None)
    if found is None or not Path(found).is_file():
        what = (
            "does not exist"
            if not Path(python).exists() and os.sep in python
            else ("is not an executable file" if os.sep in python else "is not on PATH")
        )
        raise OverlayError(
            f"--python {python}: {what}",
            hint="pass the interpreter of the environment that has vLLM, e.g. --python /path/to/venv/bin/python",
        )
    return found


_PROBE_TIMEOUT = 120  # seconds: an interpreter answers in one; a program that waits for input does not


def probe(python: str, served: Served) -> Installed:
    not_python = OverlayError(
        f"--python {python} is not a Python interpreter (it did not answer the probe)",
        hint="pass a python executable, e.g. /path/to/venv/bin/python",
    )
    try:
        proc = call([python, "-c", _PROBE, served.distribution, served.member], timeout=_PROBE_TIMEOUT, quiet=True)
    except TimeoutExpired:
        raise not_python from None
    except OSError as exc:
        raise OverlayError(
            f"--python {python}: cannot run it: {exc.strerror or exc}",
            hint="pass a python executable, e.g. /path/to/venv/bin/python",
        ) from None
    if proc.returncode != 0:
        raise OverlayError(
            f"cannot run {python}: {proc.stderr.strip()[-2000:]}",
            hint="pass a python executable, e.g. /path/to/venv/bin/python",
        )
    try:
        out = json.loads(proc.stdout)
        return Installed(out["python"], out["version"], Path(out["path"]) if out["path"] else None, out["torch"])
    except (ValueError, KeyError, TypeError):
        raise not_python from None


def _state(path: Path) -> dict[str, Any] | None:
    file = path.with_name(path.name + STATE_SUFFIX)
    return json.loads(file.read_text()) if file.exists() else None


def _check_install(served: Served, inst: Installed) -> Path:
    want = f"{served.distribution}=={served.release.version}"
    if inst.version is None or inst.path is None:
        raise OverlayError(
            f"{inst.python} has no {served.distribution} installed; {served.wheel.name} is for {want}",
            hint=f"pip install {want} first, or pass --python for the environment that has it",
        )
    if Version(inst.version) != Version(served.release.version):
        raise OverlayError(
            f"{inst.python} has {served.distribution} {inst.version}; {served.wheel.name} is built for {want} "
            "and its op schemas may differ: refusing",
            hint=f"build a target with `serves: {served.distribution}=={inst.version}`, or install {want}",
        )
    if inst.torch is None or not served.torch_requirement.specifier.contains(inst.torch, prereleases=True):
        raise OverlayError(
            f"{inst.python} has torch {inst.torch or '(none)'}; {served.wheel.name} links against "
            f"{served.torch_requirement}: refusing",
            hint="use the wheel built for that torch",
        )
    if not inst.path.is_file():
        raise OverlayError(f"{inst.path} does not exist: this {served.distribution} has no extension to replace")
    return inst.path


def _load_check(python: str, path: Path, served: Served) -> list[str]:
    proc = call([python, "-c", _LOAD_CHECK, path, served.namespace], input=json.dumps(served.release.ops), quiet=True)
    if proc.returncode != 0:
        return [f"{python} cannot load it: {proc.stderr.strip()[-1500:]}"]
    problems: list[str] = json.loads(proc.stdout.strip().splitlines()[-1])
    return problems


def overlay(wheel: Path, python: str) -> Path:
    """Put the wheel's extension in place of the installed one; returns the path replaced."""
    report = verify_wheel(wheel)
    if not report.ok:
        failed = "; ".join(f"{c.name}: {c.detail}" for c in report.checks if not c.ok)
        raise OverlayError(f"{wheel.name} fails verification ({failed}): refusing", hint=f"fawheels verify {wheel}")
    served = read_served(wheel)
    inst = probe(python, served)
    path = _check_install(served, inst)
    backup = path.with_name(path.name + BACKUP_SUFFIX)
    state = _state(path)
    current = sha256_file(path)
    if state is not None and current != state["overlay_sha256"]:
        raise OverlayError(
            f"{path} changed since fawheels put a build there (a reinstall?); its backup is stale",
            hint=f"reinstall {served.distribution}, then delete {backup} and its {STATE_SUFFIX}",
        )
    if state is None:  # the installed original: its schemas must be ours, then it is kept byte for byte
        theirs = op_schemas_in(path.read_bytes(), served.release.op_names)
        problems = schema_differences(
            op_schemas_in(served.data, served.release.op_names),
            [theirs[n] for n in served.release.op_names if n in theirs],
            f"the installed {served.distribution} {inst.version}",
        )
        if problems or not theirs:
            raise OverlayError(
                f"{path}: the installed extension's op schemas differ from ours: "
                f"{'; '.join(problems) or 'none found'}; refusing"
            )
        copy_atomic(path, backup, stat_from=path)
        state = {"original_sha256": current, "backup": backup.name}
    write_atomic(path, served.data, stat_from=backup)
    state.update(wheel=wheel.name, wheel_sha256=report.sha256, overlay_sha256=sha256_file(path))
    write_atomic(path.with_name(path.name + STATE_SUFFIX), json.dumps(state, indent=2) + "\n")
    problems = _load_check(inst.python, path, served)
    if problems:
        undo(wheel, python)
        raise OverlayError(
            f"{served.wheel.name} does not load as {served.release.version} expects; the original "
            f"is back in place: {'; '.join(problems)}"
        )
    return path


def undo(wheel: Path, python: str) -> Path:
    """Put the original extension back, byte for byte, and remove the backup and the record."""
    served = read_served(wheel)
    inst = probe(python, served)
    if inst.path is None:
        raise OverlayError(f"{inst.python} has no {served.distribution} installed: nothing to undo")
    return restore(inst.path)


def restore(path: Path, *, dry_run: bool = False) -> Path:
    """The original extension back at `path` from its backup, byte for byte (checked against the record); the
    backup and the record removed. `dry_run`: only the checks."""
    state = _state(path)
    backup = path.with_name(path.name + BACKUP_SUFFIX)
    if state is None or not backup.is_file():
        raise OverlayError(f"{path} carries no fawheels overlay: nothing to undo")
    current = sha256_file(path)
    if current not in (state["overlay_sha256"], state["original_sha256"]):
        raise OverlayError(
            f"{path} changed since fawheels put a build there; not overwriting it",
            hint=f"the original is kept at {backup}",
        )
    if sha256_file(backup) != state["original_sha256"]:
        raise OverlayError(f"{backup} is not the original any more (sha256 differs from the record): refusing")
    if dry_run:
        return path
    copy_atomic(backup, path, stat_from=backup)
    backup.unlink()
    path.with_name(path.name + STATE_SUFFIX).unlink()
    return path


def overlay_command(wheel: Path, *, python: str | None, undo_it: bool) -> int:
    py = check_python(python) if python is not None else sys.executable
    if not wheel.is_file():
        raise OverlayError(
            f"{wheel}: {'is a directory' if wheel.is_dir() else 'no such file'}",
            hint="pass the path of a vllm-fa2 wheel",
        )
    if undo_it:
        say(f"restored the original {undo(wheel, py)}")
    else:
        path = overlay(wheel, py)
        again = f"fawheels overlay {wheel} --into-site-packages{f' --python {python}' if python else ''} --undo"
        say(
            f"{path} now holds the extension of {wheel.name} (original kept as {path.name}{BACKUP_SUFFIX}; "
            f"`{again}` puts it back)"
        )
    return 0
