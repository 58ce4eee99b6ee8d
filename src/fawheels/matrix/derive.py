"""Targets derived, not hand-written: a `vllm-fa2` target from a vLLM release's facts (recipes/__init__.py
`Release`: its torch pin, the CUDA its PyPI build links, its op schemas) and the user's GPU archs, Python and
kernel profile, on top of a base matrix (its sources, toolchains, torch entries and profiles).

Pure but for what the caller passes in: the result is a matrix (the base's sections, the derived torch entry,
profile and target group) loaded and validated like any build_matrix.yaml, the target in it, and the YAML block
that would declare that target in the base matrix.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fawheels._util.errors import ConfigError
from fawheels.matrix.config import load_matrix
from fawheels.matrix.cudafacts import Arch
from fawheels.matrix.model import Matrix, Profile, Target
from fawheels.matrix.recipes import VLLM_FA2, Release
from fawheels.matrix.yamlread import parse_yaml

# Toolchain provisions in the order a derived target takes them (the first one the machine has, if it says).
PROVISION_ORDER = ("host", "pip", "container")
DEFAULT_PROFILE = "qwen3-vl"  # what the matrix's vllm-fa2 targets serve (Qwen3 / Qwen3-VL)


@dataclass(frozen=True)
class Derived:
    matrix: Matrix  # the base's sections with the derived target as its only (and default) target
    target: Target
    yaml: str  # what to add to the base build_matrix.yaml to declare it there
    data: dict[str, Any]  # the derived matrix as YAML data (written out for a real build)
    in_base: bool  # the base matrix already declares this very target


def release_of(version: str) -> Release:
    release = VLLM_FA2.release(version)
    if release is None:
        known = ", ".join(r.version for r in VLLM_FA2.releases)
        raise ConfigError(
            f"--vllm {version[:40]}: not a vLLM release fawheels has the facts of (known: {known})",
            hint="adding one is one Release entry in src/fawheels/matrix/recipes/__init__.py (torch pin, CUDA, "
            "op schemas read from that release's wheel)",
        )
    return release


def _toolchain_for(data: Mapping[str, Any], cuda: str, available: Sequence[str] | None) -> str:
    """The base matrix's toolchain for `cuda`: host, else pip, else container (only those `available` when the
    caller knows which provisions this machine has)."""
    toolchains = data.get("toolchains") or {}
    fitting = [(n, t) for n, t in toolchains.items() if isinstance(t, dict) and str(t.get("cuda")) == cuda]
    order = [p for p in PROVISION_ORDER if available is None or p in available] or list(PROVISION_ORDER)
    for provision in order:
        for name, t in fitting:
            if t.get("provision") == provision:
                return str(name)
    if fitting:
        return str(fitting[0][0])
    raise ConfigError(
        f"the matrix has no toolchain for CUDA {cuda}",
        hint=f'add one under `toolchains:` (e.g. cu{cuda.replace(".", "")}: {{cuda: "{cuda}", provision: ...}}; '
        "docs/toolchains.md)",
    )


def _vllm_source(data: Mapping[str, Any]) -> str:
    for group in data.get("targets") or []:
        if isinstance(group, dict) and group.get("recipe") == VLLM_FA2.name:
            return str(group["source"])
    raise ConfigError(
        "the matrix has no vllm-fa2 target group to take the source (sdist + patches) from",
        hint="use the build_matrix.yaml shipped with fawheels (pass no --matrix)",
    )


class _Dumper(yaml.SafeDumper):
    """Lists inline, as the shipped matrix writes them."""


def _flow_lists(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flow = not any(isinstance(v, dict) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _flow_lists)


def _dump(value: object) -> str:
    return yaml.dump(value, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=200)


def profile_yaml(profile: Profile) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "head_dims": list(profile.head_dims),
        "dtypes": list(profile.dtypes),
        "causal": list(profile.causal),
        "split_kv": profile.split_kv,
    }
    if profile.leave_out:
        doc["leave_out"] = list(profile.leave_out)
    return doc


def derive_vllm_target(
    base_text: str,
    base_path: Path | None,
    *,
    vllm: str,
    archs: Sequence[str],
    python: str,
    profile: str | None = None,
    config_profile: Profile | None = None,
    cuda: str | None = None,
    provisions: Sequence[str] | None = None,
) -> Derived:
    """The vllm-fa2 target serving vLLM `vllm` on `archs` under `python`: torch = the release's pin, CUDA = the
    release's (or `cuda`: a vLLM built for another CUDA, e.g. 12.8), the base's source of vllm-fa2 targets, and
    `profile` (a base profile name) or `config_profile` (from a model's config.json)."""
    release = release_of(vllm)
    if not archs:
        raise ConfigError("--arch: name at least one GPU arch (sm_120 for RTX 5090 / RTX PRO 6000, sm_90 for H100)")
    for a in archs:
        try:
            Arch.parse(a)
        except ValueError:
            raise ConfigError(f"--arch {a[:40]!r}: not an arch (sm_120, sm_90, sm_120f)") from None
    base = parse_yaml(base_text, str(base_path or "matrix"))
    assert isinstance(base, dict)
    data: dict[str, Any] = copy.deepcopy(base)
    cuda = cuda or release.cuda
    torch_name = ".".join(release.torch.split(".")[:2])
    torch_entry = {"version": release.torch, "cuda": cuda, "cxx_std": 20}
    block: dict[str, Any] = {}
    have = (data.get("torch") or {}).get(torch_name)
    clash = ""
    if not isinstance(have, dict) or str(have.get("cuda")) != cuda:
        data.setdefault("torch", {})[torch_name] = torch_entry
        block["torch"] = {torch_name: torch_entry}
        if isinstance(have, dict):
            clash = (
                f"\n# (the matrix's torch {torch_name} is CUDA {have.get('cuda')}: one matrix holds one build of a "
                "torch release, so declare this in a matrix of its own)"
            )
    if config_profile is not None:
        profile_name = config_profile.name
        data.setdefault("profiles", {})[profile_name] = profile_yaml(config_profile)
        block["profiles"] = {profile_name: profile_yaml(config_profile)}
    else:
        profile_name = profile or DEFAULT_PROFILE
        if profile_name not in (data.get("profiles") or {}):
            known = ", ".join(data.get("profiles") or {})
            raise ConfigError(
                f"--profile {profile_name[:40]!r}: not a profile of the matrix (known: {known})",
                hint="or derive one from the model: --from-config CONFIG_JSON",
            )
    group: dict[str, Any] = {
        "recipe": VLLM_FA2.name,
        "source": _vllm_source(data),
        "serves": f"{VLLM_FA2.serves}=={release.version}",
        "matrix": {
            "toolchain": [_toolchain_for(data, cuda, provisions)],
            "torch": [torch_name],
            "archs": [list(archs)],
            "python": [python],
            "profile": [profile_name],
        },
    }
    data["targets"] = [group]
    base_matrix = load_matrix(base_text, base_path)
    matrix = load_matrix(_dump(data), base_path, first_is_default=True)
    same = next((t for t in base_matrix.targets if t.id == matrix.targets[0].id), None)
    if same is not None and same != matrix.targets[0]:  # that id is another build there: tell them apart
        group["id_suffix"] = profile_name
        matrix = load_matrix(_dump(data), base_path, first_is_default=True)
    data["default_target"] = matrix.default_target
    target = matrix.targets[0]
    in_base = any(t == target for t in base_matrix.targets)
    block["targets"] = [group]
    head = (
        f"# vllm-fa2 for vLLM {release.version} (torch {release.torch}, CUDA {cuda} runtime), "
        f"{', '.join(a.sm for a in target.sass)} SASS, Python {python}, profile {profile_name}: "
        f"{'already in' if in_base else 'add to'} build_matrix.yaml"
    )
    return Derived(matrix, target, f"{head}{clash}\n{_dump(block)}", data, in_base)


def write_tree(derived: Derived) -> Path:
    """The derived matrix as a file a build (and a build inside a toolchain image) reads like any other:
    `<cache>/derived/<target-id>/build_matrix.yaml` beside copies of the patches and docker/ it names."""
    import shutil

    from fawheels._util.files import write_atomic
    from fawheels._util.paths import cache_root
    from fawheels._util.project import project_root, shipped_files

    dest = cache_root() / "derived" / derived.target.id
    roots = [derived.matrix.root, *([r] if (r := project_root()) is not None else [])]
    taken = {"build_matrix.yaml"}  # a file of the matrix's own tree wins over the installed one of that name
    for root in roots:
        for name in shipped_files(root):
            if name in taken:
                continue
            taken.add(name)
            # copied again when it changed: an edited patch must reach the next build, not the first copy
            if not (dest / name).is_file() or (dest / name).read_bytes() != (root / name).read_bytes():
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(root / name, dest / name)
    path = dest / "build_matrix.yaml"
    write_atomic(path, "# derived by fawheels build --vllm (matrix/derive.py)\n" + _dump(derived.data), mode=None)
    return path
