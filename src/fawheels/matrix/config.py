"""The build matrix's loader: `build_matrix.yaml` -> frozen, validated `Matrix` of `Target`s (model.py).

Pure: `load_matrix(text)` does no I/O besides parsing the string it is given, so every rule here is
unit-tested from YAML strings. Every error names its field path (`targets[0].matrix.archs[1]`) and,
for unknown names, the closest known one.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from packaging.specifiers import SpecifierSet

from fawheels._util import jsondoc, names
from fawheels._util.errors import ConfigError
from fawheels.matrix import cudafacts
from fawheels.matrix.cudafacts import Arch, Version
from fawheels.matrix.model import (
    DTYPES,
    HEAD_DIMS,
    LEAVE_OUT,
    Axes,
    ImageSpec,
    Matrix,
    MatrixFile,
    Profile,
    Source,
    Target,
    TargetGroup,
    Toolchain,
    TorchSpec,
    _did_you_mean,
    yaml_keys,
)
from fawheels.matrix.recipes import RECIPES, Recipe
from fawheels.matrix.yamlread import (
    MAX_MATRIX_BYTES,
    _Node,
    _parse_version_text,
    _ref,
    _show,
    _version_string,
    parse_yaml,
)

MATRIX_JSON_SCHEMA = 1  # `fawheels matrix --json`: {schema, default_target, targets}


# The shape of build_matrix.yaml where it differs from the expanded model above: the target groups (each
# expands into Targets) and the file itself. The loader reads these keys; matrix/schema.py documents them.


# ----------------------------------------------------------------------------- parsing helpers


# ----------------------------------------------------------------------------- sections


def _parse_source(name: str, raw: object) -> Source:
    n = _Node(f"sources.{name}", raw, yaml_keys(Source))
    kind = n.text("kind")
    if kind not in ("sdist", "git"):
        raise ConfigError(
            f"{n.at('kind')}: expected 'sdist' or 'git', got {_show(kind)}{_did_you_mean(kind, ['sdist', 'git'])}"
        )
    sha256 = n.text("sha256", None)
    commit = n.text("commit", None)
    if kind == "sdist":
        if not sha256 or not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise ConfigError(f"{n.at('sha256')}: an sdist source must be pinned by a 64-hex-digit sha256")
    elif not commit or not re.fullmatch(r"[0-9a-f]{40}", commit):
        raise ConfigError(f"{n.at('commit')}: a git source must be pinned by a full 40-hex-digit commit")
    patches = n.items("patches", [])
    for i, p in enumerate(patches):
        if not isinstance(p, str) or not p.endswith(".patch"):
            raise ConfigError(f"{n.at('patches')}[{i}]: expected a path to a .patch file, got {_show(p)}")
    return Source(name, kind, n.text("url"), sha256, commit, tuple(str(p) for p in patches))


def _parse_toolchain(name: str, raw: object) -> Toolchain:
    n = _Node(f"toolchains.{name}", raw, yaml_keys(Toolchain))
    cuda = _parse_version_text(n.at("cuda"), n.text("cuda"))
    try:
        cudafacts.toolkit(cuda)
    except ConfigError as exc:
        raise ConfigError(f"{n.at('cuda')}: {exc.message}") from None
    provision = n.text("provision")
    if provision not in ("host", "pip", "container"):
        raise ConfigError(
            f"{n.at('provision')}: expected host, pip or container, got {_show(provision)}"
            f"{_did_you_mean(provision, ['host', 'pip', 'container'])}"
        )
    pip_version = n.text("pip_version", None)
    if provision == "pip":
        if Version.parse(cuda).major < 13:
            raise ConfigError(
                f"{n.at('provision')}: CUDA {cuda} cannot be provisioned from PyPI (the 12.x wheels carry "
                "no nvcc/cicc)",
                hint="use provision: container (nvidia/cuda devel image) or host",
            )
        if not pip_version or not pip_version.startswith(cuda + "."):
            raise ConfigError(
                f"{n.at('pip_version')}: a pip toolchain needs the exact nvidia-cuda-nvcc version, "
                f"e.g. {cuda}.88 (got {_show(pip_version)})"
            )
    image = None
    if "image" in n.data:
        im = _Node(n.at("image"), n.data["image"], yaml_keys(ImageSpec))
        image = ImageSpec(im.text("base"), im.text("python"), im.text("dockerfile", "docker/Dockerfile.pip-cuda"))
    if provision == "container" and image is None:
        raise ConfigError(f"{n.at('image')}: a container toolchain needs an image (base, python)")
    cuda_home = n.text("cuda_home", None)
    if cuda_home is not None and (provision != "host" or not cuda_home.startswith("/")):
        raise ConfigError(
            f"{n.at('cuda_home')}: "
            + (
                f"only a host toolchain uses cuda_home ({provision} ignores it)"
                if provision != "host"
                else f"{_show(cuda_home)} is not an absolute path"
            ),
            hint="cuda_home: /usr/local/cuda-X.Y on a provision: host toolchain",
        )
    return Toolchain(name, cuda, provision, cuda_home, pip_version, image)


def _parse_torch(name: str, raw: object) -> TorchSpec:
    n = _Node(f"torch.{name}", raw, yaml_keys(TorchSpec))
    version = _parse_version_text(n.at("version"), n.text("version"), r"\d+\.\d+\.\d+")
    if not version.startswith(name + "."):
        raise ConfigError(f"{n.at('version')}: {version} is not a release of torch {name}")
    cuda = _parse_version_text(n.at("cuda"), n.text("cuda"))
    cxx_std = n.integer("cxx_std")
    if cxx_std not in (17, 20):
        raise ConfigError(f"{n.at('cxx_std')}: expected 17 or 20, got {cxx_std}")
    return TorchSpec(name, version, cuda, cxx_std)


def _parse_profile(name: str, raw: object) -> Profile:
    n = _Node(f"profiles.{name}", raw, yaml_keys(Profile))
    head_dims = n.items("head_dims")
    for i, d in enumerate(head_dims):
        if d not in HEAD_DIMS:
            raise ConfigError(
                f"{n.at('head_dims')}[{i}]: FA2 has no kernels for head dim {_show(d)}",
                hint=f"choose from {', '.join(map(str, HEAD_DIMS))}",
            )
    dtypes = n.items("dtypes")
    for i, dt in enumerate(dtypes):
        if dt not in DTYPES:
            raise ConfigError(f"{n.at('dtypes')}[{i}]: unknown dtype {_show(dt)}{_did_you_mean(str(dt), DTYPES)}")
    causal = n.items("causal", [False, True])
    for i, c in enumerate(causal):
        if not isinstance(c, bool):
            raise ConfigError(f"{n.at('causal')}[{i}]: expected true or false, got {_show(c)}")
    for key, values in (("head_dims", head_dims), ("dtypes", dtypes), ("causal", causal)):
        if not values:
            raise ConfigError(f"{n.at(key)}: must not be empty")
        if len(set(values)) != len(values):
            raise ConfigError(f"{n.at(key)}: duplicate entries {values}")
    return Profile(
        name,
        tuple(sorted(int(d) for d in head_dims)),  # type: ignore[call-overload]
        tuple(sorted(str(d) for d in dtypes)),
        tuple(sorted(bool(c) for c in causal)),
        n.flag("split_kv", True),
        _parse_leave_out(n),
    )


def _parse_leave_out(n: _Node) -> tuple[str, ...]:
    features = n.items("leave_out", [])
    for i, f in enumerate(features):
        if f not in LEAVE_OUT:
            raise ConfigError(
                f"{n.at('leave_out')}[{i}]: unknown feature {_show(f)}{_did_you_mean(str(f), LEAVE_OUT)}",
                hint=f"choose from {', '.join(LEAVE_OUT)}",
            )
    if len(set(features)) != len(features):
        raise ConfigError(f"{n.at('leave_out')}: duplicate entries {features}")
    return tuple(sorted(str(f) for f in features))


def _parse_arch_set(path: str, raw: object) -> tuple[tuple[Arch, ...], tuple[Arch, ...]]:
    """An arch set: SASS targets (sm_XY) and PTX targets (compute_XY)."""
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{path}: expected a non-empty list of arches like [sm_90, sm_120]")
    sass: list[Arch] = []
    ptx: list[Arch] = []
    for i, item in enumerate(raw):
        text = str(item)
        try:
            arch = Arch.parse(text)
            cudafacts.arch_support(arch)
        except (ValueError, ConfigError):
            raise ConfigError(
                f"{path}[{i}]: unknown arch {text!r}{_did_you_mean(text, cudafacts.known_arches())}",
                hint="write sm_XY (SASS), sm_XYa / sm_XYf (arch-specific / family), compute_XY (PTX)",
            ) from None
        group = ptx if text.startswith("compute_") else sass
        if arch in group:
            raise ConfigError(
                f"{path}[{i}]: {text} is already in this arch set",
                hint="list each arch once (the id would name it twice)",
            )
        group.append(arch)
    if not sass:
        raise ConfigError(f"{path}: an arch set needs at least one SASS target (sm_XY)")
    return tuple(sass), tuple(ptx)


_AXES = yaml_keys(Axes)


def _target_id(
    recipe: str,
    tc: Toolchain,
    torch: TorchSpec,
    sass: Iterable[Arch],
    ptx: Iterable[Arch],
    python: str,
    suffix: str | None,
) -> str:
    archs = "-".join([a.short for a in sass] + [f"ptx{a.major}{a.minor}{a.suffix}" for a in ptx])
    parts = [recipe, f"cu{tc.cuda.replace('.', '')}", f"torch{torch.name}", archs, "cp" + python.replace(".", "")]
    if suffix:
        parts.append(suffix)
    return "-".join(parts)


def check_wheel_names(targets: Iterable[Target]) -> None:
    """Refuse two targets that would write the same wheel file name (an index can hold only one)."""
    seen: dict[str, str] = {}
    for t in targets:
        key = t.wheel_name if t.wheel_version else f"{t.wheel_name} ({t.source.name})"
        if key in seen:
            raise ConfigError(
                f"targets: {seen[key]} and {t.id} would both be built as {t.wheel_name}",
                hint="give one group an id_suffix or another profile (both are part of the wheel's local label)",
            )
        seen[key] = t.id


def _check_compatibility(
    path: str, tc: Toolchain, torch: TorchSpec, arches: Iterable[Arch], allow_minor_mismatch: bool
) -> None:
    """Refuse, before compiling, what the toolkit cannot build or what would not match torch."""
    cuda = tc.cuda_version
    for arch in arches:
        why = cudafacts.toolkit_compile_error(cuda, arch)
        if why:
            raise ConfigError(
                f"{path}: toolchain {tc.name!r}: {why}", hint="pick a newer toolchain or drop the arch from the set"
            )
    torch_cuda = Version.parse(torch.cuda)
    if torch_cuda.major != cuda.major:
        raise ConfigError(
            f"{path}: torch {torch.version} was built for CUDA {torch.cuda} but toolchain {tc.name!r} is "
            f"CUDA {tc.cuda}; the CUDA major must match",
            hint=f"use a CUDA {torch_cuda.major}.x toolchain for torch {torch.name}",
        )
    if torch_cuda != cuda and not allow_minor_mismatch:
        raise ConfigError(
            f"{path}: torch {torch.version} was built for CUDA {torch.cuda} but toolchain {tc.name!r} is "
            f"CUDA {tc.cuda}",
            hint=f"use a CUDA {torch.cuda} toolchain, or set allow_cuda_minor_mismatch: true on the target group",
        )


def _parse_serves(n: _Node, recipe: Recipe) -> str | None:
    """`serves: vllm==0.33.0`: required exactly when the recipe's extension goes into another distribution."""
    raw: str | None = n.text("serves", None)
    if recipe.serves is None:
        if raw is not None:
            raise ConfigError(f"{n.at('serves')}: recipe {recipe.name!r} builds a standalone wheel; it serves nothing")
        return None
    example = f"{recipe.serves}=={recipe.releases[0].version}"
    if raw is None:
        raise ConfigError(
            f"{n.at('serves')}: recipe {recipe.name!r} builds for an installed {recipe.serves}; name its release",
            hint=f"serves: {example}",
        )
    m = re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)", raw)
    if not m or m.group(1) != recipe.serves:
        raise ConfigError(
            f"{n.at('serves')}: expected {recipe.serves}==<release>, got {_show(raw)}", hint=f"serves: {example}"
        )
    known = [r.version for r in recipe.releases]
    if recipe.release(m.group(2)) is None:
        raise ConfigError(
            f"{n.at('serves')}: {recipe.serves} {m.group(2)} is not a release fawheels has the op schemas of"
            f"{_did_you_mean(m.group(2), known)}",
            hint=f"known releases: {', '.join(known)} (src/fawheels/matrix/recipes/__init__.py)",
        )
    return raw


def _check_served_release(path: str, recipe: Recipe, serves: str, torch: TorchSpec, python: str) -> None:
    """The extension links against torch's C++ ABI: it must be the served release's torch major.minor."""
    release = recipe.release(serves.split("==", 1)[1])
    assert release is not None
    if release.torch.split(".")[:2] != torch.version.split(".")[:2]:
        raise ConfigError(
            f"{path}: {serves} pins torch=={release.torch}, the target builds against torch {torch.version}",
            hint=f"use a torch {'.'.join(release.torch.split('.')[:2])} entry",
        )
    if not SpecifierSet(release.requires_python).contains(f"{python}.0"):
        raise ConfigError(f"{path}: {serves} requires Python {release.requires_python}, the target is Python {python}")


def _expand_group(index: int, raw: object, m: _PartialMatrix) -> list[Target]:
    n = _Node(f"targets[{index}]", raw, yaml_keys(TargetGroup))
    recipe = n.text("recipe")
    if recipe not in RECIPES:
        raise ConfigError(f"{n.at('recipe')}: unknown recipe {recipe!r}{_did_you_mean(recipe, RECIPES)}")
    source = _ref(n.at("source"), n.text("source"), m.sources, "source")
    suffix = n.text("id_suffix", None)
    if suffix is not None and not re.fullmatch(r"[a-z0-9][a-z0-9.-]*", suffix):
        raise ConfigError(f"{n.at('id_suffix')}: use lower-case letters, digits, '.' and '-' only")
    allow_minor = n.flag("allow_cuda_minor_mismatch", False)
    publish = n.flag("publish", True)
    serves = _parse_serves(n, RECIPES[recipe])
    axes = _Node(n.at("matrix"), n.raw("matrix"), _AXES)
    values: dict[str, list[object]] = {}
    for axis in _AXES:
        items = axes.items(axis)
        if not items:
            raise ConfigError(f"{axes.at(axis)}: must not be empty")
        values[axis] = items

    toolchains: list[Toolchain] = [
        _ref(f"{axes.at('toolchain')}[{i}]", v, m.toolchains, "toolchain") for i, v in enumerate(values["toolchain"])
    ]
    torches: list[TorchSpec] = [
        _ref(f"{axes.at('torch')}[{i}]", _version_string(f"{axes.at('torch')}[{i}]", v), m.torch, "torch version")
        for i, v in enumerate(values["torch"])
    ]
    arch_sets = [_parse_arch_set(f"{axes.at('archs')}[{i}]", v) for i, v in enumerate(values["archs"])]
    pythons = [
        _parse_version_text(f"{axes.at('python')}[{i}]", _version_string(f"{axes.at('python')}[{i}]", v))
        for i, v in enumerate(values["python"])
    ]
    profiles: list[Profile] = [
        _ref(f"{axes.at('profile')}[{i}]", v, m.profiles, "profile") for i, v in enumerate(values["profile"])
    ]
    if publish and RECIPES[recipe].serves == "vllm":
        for i, profile in enumerate(profiles):
            if gaps := profile.vllm_route_gaps():
                raise ConfigError(
                    f"{axes.at('profile')}[{i}]: profile {profile.name!r} cannot serve vLLM's calls; it compiles no "
                    + "; no ".join(gaps),
                    hint="fix the profile (the `vllm` profile serves every model vLLM runs with FA2), or mark "
                    "the group `publish: false` if it is a demo or CI build",
                )

    excludes: list[dict[str, object]] = []
    for i, ex in enumerate(n.items("exclude", [])):
        en = _Node(f"{n.at('exclude')}[{i}]", ex, _AXES)
        for axis, v in en.data.items():
            if v not in values[axis]:
                raise ConfigError(f"{en.at(axis)}: {_show(v)} is not a value of matrix.{axis}, so it excludes nothing")
        excludes.append(en.data)

    targets = []
    for it, ip, ia, iy, il in itertools.product(*(range(len(values[a])) for a in _AXES)):
        picked = dict(zip(_AXES, (values[a][i] for a, i in zip(_AXES, (it, ip, ia, iy, il), strict=True)), strict=True))
        if any(all(picked[k] == v for k, v in ex.items()) for ex in excludes):
            continue
        tc, torch, (sass, ptx), python, profile = toolchains[it], torches[ip], arch_sets[ia], pythons[iy], profiles[il]
        path = f"{n.path} ({', '.join(f'{a}={picked[a]}' for a in _AXES)})"
        _check_compatibility(path, tc, torch, (*sass, *ptx), allow_minor)
        if serves:
            _check_served_release(path, RECIPES[recipe], serves, torch, python)
        tid = _target_id(recipe, tc, torch, sass, ptx, python, suffix)
        targets.append(
            Target(tid, recipe, source, tc, torch, python, profile, sass, ptx, serves, suffix=suffix, publish=publish)
        )
    return targets


@dataclass
class _PartialMatrix:
    sources: dict[str, Source]
    toolchains: dict[str, Toolchain]
    torch: dict[str, TorchSpec]
    profiles: dict[str, Profile]


def _section(top: _Node, key: str) -> dict[str, object]:
    value = top.mapping(key)
    if not value:
        raise ConfigError(f"{key}: must not be empty")
    for k in value:
        if not isinstance(k, str | int) or isinstance(k, bool):
            raise ConfigError(
                f"{key}.{k}: a name must be a string; YAML reads {k!r} as a {type(k).__name__}", hint=f'quote it: "{k}"'
            )
        # a name is printed in tables and may reach a wheel name: one label, no newline or escape sequence
        names.label(str(k), key, ConfigError)
    return {str(k): v for k, v in value.items()}


def load_matrix(text: str, path: Path | None = None, *, first_is_default: bool = False) -> Matrix:
    """Parse and validate a build matrix; raise ConfigError naming the field on any problem. `first_is_default`:
    the first target is the default whatever default_target says (a derived matrix of one target)."""
    data = parse_yaml(text, str(path or "matrix"))
    top = _Node("", data, yaml_keys(MatrixFile))
    partial = _PartialMatrix(
        sources={k: _parse_source(k, v) for k, v in _section(top, "sources").items()},
        toolchains={k: _parse_toolchain(k, v) for k, v in _section(top, "toolchains").items()},
        torch={k: _parse_torch(k, v) for k, v in _section(top, "torch").items()},
        profiles={k: _parse_profile(k, v) for k, v in _section(top, "profiles").items()},
    )
    targets: list[Target] = []
    seen: dict[str, str] = {}
    for i, group in enumerate(top.items("targets")):
        for t in _expand_group(i, group, partial):
            if t.id in seen:
                raise ConfigError(
                    f"targets[{i}]: duplicate target id {t.id!r} (also made by {seen[t.id]})",
                    hint="add an exclude, or an id_suffix to one of the groups",
                )
            seen[t.id] = f"targets[{i}]"
            targets.append(t)
    if not targets:
        raise ConfigError("targets: the matrix expands to no targets")
    check_wheel_names(targets)
    default = targets[0].id if first_is_default else top.text("default_target")
    if default not in seen:
        raise ConfigError(f"default_target: {default!r} is not a target id{_did_you_mean(default, seen)}")
    return Matrix(partial.sources, partial.toolchains, partial.torch, partial.profiles, tuple(targets), default, path)


def find_matrix_file(path: Path | None) -> Path:
    if path is not None:
        if not path.is_file():
            what = "is not a regular file" if path.exists() else "does not exist"
            raise ConfigError(f"matrix file {path} {what}", hint="pass --matrix PATH of a build_matrix.yaml")
        return path
    here = Path.cwd() / "build_matrix.yaml"
    if here.is_file():
        return here
    from fawheels._util.project import project_root

    root = project_root()
    if root is not None:
        return root / "build_matrix.yaml"
    raise ConfigError(
        "no build_matrix.yaml in the current directory, and none shipped with this fawheels",
        hint="pass --matrix PATH, or reinstall fawheels (pip install <checkout>) so its default matrix ships with it",
    )


def load_matrix_file(path: Path | None) -> Matrix:
    found = find_matrix_file(path)
    try:
        with found.open("rb") as fh:
            raw = fh.read(MAX_MATRIX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(
            f"matrix file {found}: cannot read it: {exc.strerror or exc}", hint="check the path and its permissions"
        ) from None
    if len(raw) > MAX_MATRIX_BYTES:
        raise ConfigError(f"matrix file {found}: larger than {MAX_MATRIX_BYTES} bytes; not a build matrix")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"matrix file {found}:{line}: not UTF-8 (byte {exc.start}: {raw[exc.start]:#04x})",
            hint="save the file as UTF-8",
        ) from None
    return load_matrix(text, found.resolve())


def render_targets(m: Matrix, fmt: str) -> str:
    """`fawheels matrix` output: a table for people, JSON for tools (with its schema), a GitHub Actions include
    matrix (GitHub's layout, read by `strategy.matrix`: no schema field)."""
    rows = [t.summary() for t in m.targets]
    if fmt == "json":
        return jsondoc.dumps({"schema": MATRIX_JSON_SCHEMA, "default_target": m.default_target, "targets": rows})
    if fmt == "github":
        include = [{"target": r["id"], "cuda": r["cuda"], "provision": r["provision"]} for r in rows]
        return json.dumps({"include": include}, separators=(",", ":"))
    cols = ("id", "cuda", "provision", "torch", "python", "sass", "ptx", "profile", "translation_units")
    cells = [[", ".join(v) if isinstance(v := r[c], list) else str(v) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(cols, widths, strict=True))]
    for row, r in zip(cells, rows, strict=True):
        mark = " (default)" if r["id"] == m.default_target else ""
        lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() + mark)
    return "\n".join(lines)
