"""The build matrix: `build_matrix.yaml` -> frozen, validated `Matrix` of `Target`s.

Pure: `load_matrix(text)` does no I/O besides parsing the string it is given, so every rule here is
unit-tested from YAML strings. Every error names its field path (`targets[0].matrix.archs[1]`) and,
for unknown names, the closest known one.
"""

from __future__ import annotations

import difflib
import itertools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import yaml
from packaging.specifiers import SpecifierSet

from fawheels._util import jsondoc, names
from fawheels._util.errors import ConfigError
from fawheels.matrix import cudafacts
from fawheels.matrix.cudafacts import Arch, Version
from fawheels.matrix.recipes import RECIPES, Recipe

SourceKind = Literal["sdist", "git"]
Provision = Literal["host", "pip", "container"]

HEAD_DIMS = (32, 64, 96, 128, 192, 256)
MATRIX_JSON_SCHEMA = 1  # `fawheels matrix --json`: {schema, default_target, targets}
DTYPES = ("bf16", "fp16")
# Features a profile may leave out, and FA2's switch for each (its static_switch.h and flash_api.cpp).
LEAVE_OUT = {
    "alibi": "FLASHATTENTION_DISABLE_ALIBI",
    "local": "FLASHATTENTION_DISABLE_LOCAL",
    "softcap": "FLASHATTENTION_DISABLE_SOFTCAP",
}

# The fields that are keys of build_matrix.yaml carry `yaml_key` metadata: the loader's allowed keys, the JSON
# Schema for editors (build_matrix.schema.json) and docs/matrix.md all come from it (matrix/schema.py).
_NUMBER = r"(0|[1-9][0-9]*)"
MAJOR_MINOR = rf"^{_NUMBER}\.{_NUMBER}$"


def yaml_key(doc: str, schema: Mapping[str, Any], *, required: bool = False, rules: str = "") -> dict[str, Any]:
    """Field metadata of a build_matrix.yaml key: meaning, JSON Schema of its value, the rules beyond it."""
    return {"yaml": {"doc": doc, "schema": dict(schema), "required": required, "rules": rules}}


def yaml_keys(cls: type) -> tuple[str, ...]:
    """The keys a section of build_matrix.yaml allows: the model's fields that carry `yaml_key` metadata."""
    return tuple(f.name for f in fields(cls) if "yaml" in f.metadata)


@dataclass(frozen=True)
class Source:
    name: str
    kind: SourceKind = field(
        metadata=yaml_key(
            "how the source is fetched: a release tarball (`sdist`) or a git repository (`git`)",
            {"enum": ["sdist", "git"]},
            required=True,
        )
    )
    url: str = field(metadata=yaml_key("where it is fetched from", {"type": "string"}, required=True))
    sha256: str | None = field(
        default=None,
        metadata=yaml_key(
            "the tarball's sha256, checked before it is unpacked",
            {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            rules="required for an sdist",
        ),
    )
    commit: str | None = field(
        default=None,
        metadata=yaml_key(
            "the full commit to check out",
            {"type": "string", "pattern": "^[0-9a-f]{40}$"},
            rules="required for a git source",
        ),
    )
    patches: tuple[str, ...] = field(
        default=(),
        metadata=yaml_key(
            "patch files applied in order, relative to the matrix file",
            {"type": "array", "items": {"type": "string", "pattern": r"\.patch$"}},
        ),
    )

    @property
    def filename(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class ImageSpec:
    """How a `container` toolchain's image is made (see docker/)."""

    base: str = field(
        metadata=yaml_key(
            "the base image, e.g. nvidia/cuda:12.8.1-devel-ubuntu24.04", {"type": "string"}, required=True
        )
    )
    python: str = field(metadata=yaml_key("the Python installed into the image", {"type": "string"}, required=True))
    dockerfile: str = field(
        default="docker/Dockerfile.pip-cuda",
        metadata=yaml_key(
            "the Dockerfile, relative to the repository (default docker/Dockerfile.pip-cuda)", {"type": "string"}
        ),
    )


@dataclass(frozen=True)
class Toolchain:
    name: str
    cuda: str = field(
        metadata=yaml_key(  # "13.0"
            "the CUDA release (major.minor)",
            {"type": "string", "pattern": MAJOR_MINOR},
            required=True,
            rules="a toolkit fawheels knows (docs/cuda-facts.md)",
        )
    )
    provision: Provision = field(
        metadata=yaml_key(
            "where nvcc comes from: already on the machine (`host`), PyPI wheels (`pip`, CUDA 13 and later) or a "
            "devel image (`container`)",
            {"enum": ["host", "pip", "container"]},
            required=True,
        )
    )
    cuda_home: str | None = field(
        default=None,
        metadata=yaml_key(
            "where the toolkit lives (default $CUDA_HOME, else /usr/local/cuda-X.Y)",
            {"type": "string", "pattern": "^/"},
            rules="host toolchains only",
        ),
    )
    pip_version: str | None = field(
        default=None,
        metadata=yaml_key(
            "the exact nvidia-cuda-nvcc version, e.g. 13.0.88",
            {"type": "string"},
            rules="required for a pip toolchain; starts with the toolchain's `cuda` and a dot (13.0.88 for 13.0)",
        ),
    )
    image: ImageSpec | None = field(
        default=None,
        metadata=yaml_key(
            "how the toolchain image is made", {"$ref": "#/$defs/image"}, rules="required for a container toolchain"
        ),
    )

    @property
    def cuda_version(self) -> Version:
        return Version.parse(self.cuda)


@dataclass(frozen=True)
class TorchSpec:
    name: str  # the matrix key and id fragment: "2.14"
    version: str = field(
        metadata=yaml_key(  # exact: "2.14.1"
            "the exact torch release",
            {"type": "string", "pattern": rf"^{_NUMBER}\.{_NUMBER}\.{_NUMBER}$"},
            required=True,
            rules="a release of the major.minor that names the entry",
        )
    )
    cuda: str = field(
        metadata=yaml_key(  # CUDA the wheel was built for: "13.0"
            "the CUDA that torch wheel was built for",
            {"type": "string", "pattern": MAJOR_MINOR},
            required=True,
            rules="must match the toolchain's CUDA (a minor mismatch only with allow_cuda_minor_mismatch)",
        )
    )
    cxx_std: int = field(metadata=yaml_key("the C++ standard torch's headers need", {"enum": [17, 20]}, required=True))

    @property
    def requirement(self) -> str:
        major, minor = self.version.split(".")[:2]
        return f"torch=={major}.{minor}.*"


@dataclass(frozen=True)
class Profile:
    """Which FA2 forward kernels to compile. Each (head dim, dtype, causal) is one translation unit,
    plus its split-KV twin (decode, paged KV, `flash_attn_with_kvcache`) when `split_kv` is set."""

    name: str
    head_dims: tuple[int, ...] = field(
        metadata=yaml_key(
            "the head dimensions to compile",
            {"type": "array", "items": {"enum": list(HEAD_DIMS)}, "minItems": 1, "uniqueItems": True},
            required=True,
        )
    )
    dtypes: tuple[str, ...] = field(
        metadata=yaml_key(
            "the dtypes to compile",
            {"type": "array", "items": {"enum": list(DTYPES)}, "minItems": 1, "uniqueItems": True},
            required=True,
        )
    )
    causal: tuple[bool, ...] = field(
        metadata=yaml_key(
            "the causal-mask variants to compile (default both)",
            {"type": "array", "items": {"type": "boolean"}, "minItems": 1, "uniqueItems": True},
        )
    )
    split_kv: bool = field(
        metadata=yaml_key(
            "also compile the split-KV twins (decode, paged KV, flash_attn_with_kvcache); default true",
            {"type": "boolean"},
        )
    )
    leave_out: tuple[str, ...] = field(
        metadata=yaml_key(
            "FA2 features not compiled (default none): FA2 instantiates every kernel again for each of them, so "
            "each one left out cuts compile time; a call that uses one is refused by the extension "
            "(`This flash attention build does not support alibi.`)",
            {"type": "array", "items": {"enum": list(LEAVE_OUT)}, "uniqueItems": True},
        )
    )

    @property
    def defines(self) -> tuple[str, ...]:
        """The FA2 switches that compile the left-out features away (and make flash_api refuse them)."""
        return tuple(LEAVE_OUT[f] for f in self.leave_out)

    def kernels(self) -> list[tuple[str, int, str, bool]]:
        """(family, head dim, dtype, causal) for every kernel compiled; family is "fwd" or "split"."""
        families = ("fwd", "split") if self.split_kv else ("fwd",)
        return [(fam, d, dt, c) for fam in families for d in self.head_dims for dt in self.dtypes for c in self.causal]

    def translation_units(self) -> list[str]:
        return [
            f"flash_fwd_{'split_' if fam == 'split' else ''}hdim{d}_{dt}{'_causal' if c else ''}_sm80.cu"
            for fam, d, dt, c in self.kernels()
        ]

    def vllm_route_gaps(self) -> list[str]:
        """The kernels vLLM's FA2 backend calls for the profile's head dims and dtypes that it does not compile.
        vLLM sends every call with a KV cache (prefill and decode) through FA2's paged path, which runs the
        split-KV kernel; a batch of single-token queries turns the causal mask off, so decode needs the
        non-causal split-KV kernel and prefill the causal one."""
        if not self.split_kv:
            return ["split-KV kernel (every call over vLLM's paged KV cache runs one): set `split_kv: true`"]
        missing = [c for c in (False, True) if c not in self.causal]
        why = {False: "decode: single-token queries turn causal off", True: "prefill over the paged cache"}
        return [
            f"{'causal' if c else 'non-causal'} split-KV kernel ({why[c]}): add `{str(c).lower()}` to `causal`"
            for c in missing
        ]


@dataclass(frozen=True)
class Target:
    id: str
    recipe: str
    source: Source
    toolchain: Toolchain
    torch: TorchSpec
    python: str
    profile: Profile
    sass: tuple[Arch, ...]
    ptx: tuple[Arch, ...] = ()
    serves: str | None = None  # "vllm==0.33.0": the installed release the extension is built for
    suffix: str | None = None  # the group's id_suffix
    publish: bool = True  # false: a demo, CI build or failure reproduction the nightly never publishes

    @property
    def served_release(self) -> str | None:
        return self.serves.split("==", 1)[1] if self.serves else None

    @property
    def min_driver(self) -> Version:
        return cudafacts.toolkit(self.toolchain.cuda).min_driver

    @property
    def local_version(self) -> str:
        """PEP 440 local label naming everything that makes this build differ: cu130torch2.14sm120qwen3."""
        return local_label(self)

    @property
    def wheel_version(self) -> str | None:
        """The wheel's public version where the matrix alone says it (None for a git source)."""
        return self.served_release or sdist_version(self.source)

    @property
    def wheel_name(self) -> str:
        """The file name the build will write (`<version>` where only the unpacked source can say)."""
        recipe = RECIPES[self.recipe]
        abi = "abi3" if recipe.abi3 else self.python_tag
        return (
            f"{recipe.distribution}-{self.wheel_version or '<version>'}+{self.local_version}-"
            f"{self.python_tag}-{abi}-linux_x86_64.whl"
        )

    @property
    def python_tag(self) -> str:
        return "cp" + self.python.replace(".", "")

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "recipe": self.recipe,
            "source": self.source.name,
            "cuda": self.toolchain.cuda,
            "toolchain": self.toolchain.name,
            "provision": self.toolchain.provision,
            "torch": self.torch.version,
            "python": self.python,
            "sass": [a.sm for a in self.sass],
            "ptx": [a.compute for a in self.ptx],
            "profile": self.profile.name,
            "translation_units": len(self.profile.translation_units()),
            "serves": self.serves,
        }


@dataclass(frozen=True)
class Matrix:
    sources: Mapping[str, Source]
    toolchains: Mapping[str, Toolchain]
    torch: Mapping[str, TorchSpec]
    profiles: Mapping[str, Profile]
    targets: tuple[Target, ...]
    default_target: str
    path: Path | None = field(default=None, compare=False)

    def target(self, target_id: str) -> Target:
        for t in self.targets:
            if t.id == target_id:
                return t
        raise ConfigError(
            f"no target {target_id!r} in the matrix{_did_you_mean(target_id, [t.id for t in self.targets])}",
            hint="`fawheels matrix` lists the target ids",
        )

    @property
    def root(self) -> Path:
        """Directory that relative paths in the matrix (patches) are resolved against."""
        return self.path.parent if self.path else Path.cwd()


# The shape of build_matrix.yaml where it differs from the expanded model above: the target groups (each
# expands into Targets) and the file itself. The loader reads these keys; matrix/schema.py documents them.

_NAMES = {"type": "array", "items": {"type": "string"}, "minItems": 1}


@dataclass(frozen=True)
class Axes:
    """Every combination of one value per axis is a target."""

    toolchain: tuple[str, ...] = field(metadata=yaml_key("names of `toolchains` entries", _NAMES, required=True))
    torch: tuple[str, ...] = field(
        metadata=yaml_key("names of `torch` entries (quoted: YAML reads 2.10 as a number)", _NAMES, required=True)
    )
    archs: tuple[tuple[str, ...], ...] = field(
        metadata=yaml_key(
            "arch sets, one wheel each: sm_XY (SASS), sm_XYa / sm_XYf (arch-specific / family), compute_XY (PTX)",
            {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "array",
                    "minItems": 1,
                    "uniqueItems": True,
                    "items": {"type": "string", "pattern": "^(sm|compute)_[0-9]+[af]?$"},
                },
            },
            required=True,
            rules="each set has at least one SASS target; every arch one the toolchain's nvcc can compile",
        )
    )
    python: tuple[str, ...] = field(
        metadata=yaml_key(
            "Python versions (quoted: YAML reads 3.10 as 3.1)",
            {"type": "array", "minItems": 1, "items": {"type": "string", "pattern": MAJOR_MINOR}},
            required=True,
        )
    )
    profile: tuple[str, ...] = field(metadata=yaml_key("names of `profiles` entries", _NAMES, required=True))


@dataclass(frozen=True)
class TargetGroup:
    """A recipe and a source, built for every combination of its axes."""

    recipe: str = field(metadata=yaml_key("the build recipe", {"enum": sorted(RECIPES)}, required=True))
    source: str = field(metadata=yaml_key("name of a `sources` entry", {"type": "string"}, required=True))
    matrix: Axes = field(
        metadata=yaml_key("the axes", {"$ref": "#/$defs/axes"}, required=True, rules="no axis may be empty")
    )
    exclude: tuple[Mapping[str, object], ...] = field(
        default=(),
        metadata=yaml_key(
            "combinations to leave out: each entry names values of some axes",
            {"type": "array", "items": {"type": "object", "propertyNames": {"enum": list(yaml_keys(Axes))}}},
            rules="every value must be one of that axis",
        ),
    )
    id_suffix: str | None = field(
        default=None,
        metadata=yaml_key(
            "appended to the target ids, to tell groups with the same axes apart",
            {"type": "string", "pattern": "^[a-z0-9][a-z0-9.-]*$"},
        ),
    )
    allow_cuda_minor_mismatch: bool = field(
        default=False,
        metadata=yaml_key(
            "allow a toolchain CUDA minor other than torch's (same major); default false", {"type": "boolean"}
        ),
    )
    publish: bool = field(
        default=True,
        metadata=yaml_key(
            "whether the nightly publishes this group's wheels; false for demos, CI builds and failure "
            "reproductions; default true",
            {"type": "boolean"},
            rules="a group of a recipe serving vLLM that publishes must have profiles that serve every vLLM call "
            "route (split-KV kernels, causal and non-causal)",
        ),
    )
    serves: str | None = field(
        default=None,
        metadata=yaml_key(
            "the installed release the extension is built for, e.g. vllm==0.33.0",
            {"type": "string", "pattern": "^[A-Za-z0-9_.-]+==[^\\s]+$"},
            rules="required exactly when the recipe builds for another distribution; a release whose op schemas "
            "fawheels knows, pinning the target's torch major.minor and allowing its Python",
        ),
    )


def _named(ref: str) -> dict[str, Any]:
    return {"type": "object", "minProperties": 1, "additionalProperties": {"$ref": f"#/$defs/{ref}"}}


@dataclass(frozen=True)
class MatrixFile:
    """build_matrix.yaml itself."""

    default_target: str = field(
        metadata=yaml_key(
            "the target `fawheels build` builds when none is named",
            {"type": "string"},
            required=True,
            rules="an id the matrix expands to",
        )
    )
    sources: Mapping[str, Source] = field(
        metadata=yaml_key("pinned upstream sources, by name", _named("source"), required=True)
    )
    toolchains: Mapping[str, Toolchain] = field(
        metadata=yaml_key("CUDA toolchains, by name", _named("toolchain"), required=True)
    )
    torch: Mapping[str, TorchSpec] = field(
        metadata=yaml_key("torch releases, by major.minor (quoted)", _named("torch"), required=True)
    )
    profiles: Mapping[str, Profile] = field(
        metadata=yaml_key("kernel profiles, by name", _named("profile"), required=True)
    )
    targets: tuple[TargetGroup, ...] = field(
        metadata=yaml_key(
            "target groups",
            {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/target_group"}},
            required=True,
            rules="target ids must be unique across groups",
        )
    )


# ----------------------------------------------------------------------------- parsing helpers


def _did_you_mean(name: str, known: Iterable[str]) -> str:
    if len(str(name)) > 100:  # nothing known is that long, and difflib's cost grows with the length
        return ""
    close = difflib.get_close_matches(str(name), [str(k) for k in known], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _Node:
    """A mapping from the YAML with its field path, for typed reads with precise errors."""

    def __init__(self, path: str, value: object, allowed: Iterable[str]) -> None:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {type(value).__name__}")
        allowed = tuple(allowed)
        for key in value:
            if key not in allowed:
                raise ConfigError(
                    f"{path}.{_show(key).strip(chr(39))}: unknown key{_did_you_mean(key, allowed)}",
                    hint=f"allowed keys: {', '.join(allowed)}",
                )
        self.path = path
        self.data: dict[str, object] = value

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def raw(self, key: str, default: object = ...) -> object:
        if key in self.data:
            return self.data[key]
        if default is ...:
            raise ConfigError(f"{self.at(key)}: required key is missing")
        return default

    def text(self, key: str, default: object = ...) -> Any:
        value = self.raw(key, default)
        if value is None and default is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ConfigError(f"{self.at(key)}: expected a string, got {type(value).__name__}")
        if isinstance(value, float | int):
            raise ConfigError(
                f"{self.at(key)}: expected a string, got the number {_show(value)}",
                hint=f'quote it: {key}: "{value}"',
            )
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self.raw(key, default)
        if not isinstance(value, bool):
            raise ConfigError(f"{self.at(key)}: expected true or false, got {_show(value)}")
        return value

    def integer(self, key: str, default: object = ...) -> int:
        value = self.raw(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{self.at(key)}: expected an integer, got {_show(value)}")
        return value

    def items(self, key: str, default: object = ...) -> list[object]:
        value = self.raw(key, default)
        if not isinstance(value, list):
            raise ConfigError(f"{self.at(key)}: expected a list, got {type(value).__name__}")
        return value

    def mapping(self, key: str) -> dict[str, object]:
        value = self.raw(key)
        if not isinstance(value, dict):
            raise ConfigError(f"{self.at(key)}: expected a mapping, got {type(value).__name__}")
        return value


def _ref(path: str, name: object, known: Mapping[str, object], what: str) -> Any:
    if not isinstance(name, str) or name not in known:
        raise ConfigError(
            f"{path}: unknown {what} {_show(name)}{_did_you_mean(str(name), known)}",
            hint=f"known {what}s: {', '.join(known)}",
        )
    return known[name]


def _quote_hint(value: float) -> str:
    """How to write a version YAML read as a number: `3.10` arrives as 3.1, so name both readings."""
    text = str(value)
    if isinstance(value, float) and re.fullmatch(r"\d+\.\d", text):
        return f'quote it as you meant it: "{text}0" (YAML read 3.10 as 3.1) or "{text}"'
    return f'quote it: "{text}"'


def _version_string(path: str, value: object) -> str:
    """A version in a list must be a string: YAML reads `3.10` as the float 3.1."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ConfigError(
            f"{path}: {_show(value)} is a number to YAML (3.10 reads as 3.1), not a version",
            hint=_quote_hint(value),
        )
    raise ConfigError(f"{path}: expected a version string, got {type(value).__name__} {_show(value)}")


def _parse_version_text(path: str, text: str, pattern: str = r"\d+\.\d+") -> str:
    # Numbers without leading zeros: "13.00" or "3.011" would name the same release yet make other ids
    # (cu1300, cp3011) and compare unequal to the canonical spelling elsewhere.
    if not re.fullmatch(pattern.replace(r"\d+", r"(?:0|[1-9]\d*)"), text):
        raise ConfigError(
            f"{path}: {_show(text)} is not a version like 13.0",
            hint="digits and dots, no leading zeros (13.0, 3.11, 2.14.1)",
        )
    return text


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


def _label_part(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def local_label(t: Target) -> str:
    """CUDA, torch, arch set and profile (and the id suffix when it says more than the profile), e.g.
    `cu130torch2.14sm90sm120qwen3`: two targets that compile different code never share a wheel name.
    Letters and digits only (PEP 440 local labels; `-` would split a wheel file name)."""
    archs = "".join([a.short for a in t.sass] + [f"ptx{a.major}{a.minor}{a.suffix}" for a in t.ptx])
    parts = [f"cu{t.toolchain.cuda.replace('.', '')}", f"torch{t.torch.name}", archs, _label_part(t.profile.name)]
    if t.suffix and _label_part(t.suffix) != _label_part(t.profile.name):
        parts.append(_label_part(t.suffix))
    return "".join(parts)


def sdist_version(source: Source) -> str | None:
    """`flash_attn-2.8.3.tar.gz` -> `2.8.3`; None for a git source."""
    if source.kind != "sdist":
        return None
    m = re.fullmatch(r"[A-Za-z0-9_.]+?-(\d[^-]*)\.(?:tar\.gz|zip)", source.filename)
    return m.group(1) if m else None


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


MAX_DEPTH = 32  # a matrix nests 5 levels; deeper is not a matrix (and recursion must stay bounded)
MAX_NODES = 20_000  # values after aliases are expanded; the shipped matrix has a few hundred
MAX_MATRIX_BYTES = 1 << 20


class _StrictLoader(yaml.SafeLoader):
    """safe_load that refuses what it would otherwise misread: a duplicate key (PyYAML keeps the last one
    without a word) and nesting deeper than MAX_DEPTH."""

    def __init__(self, stream: str, where: str) -> None:
        super().__init__(stream)
        self.where = where
        self.depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise ConfigError(
                    f"{self.where}:{mark.line + 1}: nested more than {MAX_DEPTH} levels deep",
                    hint="a build matrix nests a handful of levels; check the brackets and indents",
                )
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, OverflowError) as exc:  # a scalar PyYAML cannot convert (an int of 5,000 digits)
            raise ConfigError(
                f"{self.where}:{node.start_mark.line + 1}: cannot read the value "
                f"{_show(node.value) if isinstance(node.value, str) else ''}: {str(exc)[:120]}",
                hint="quote it if it is meant as text",
            ) from None

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        seen: dict[object, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise ConfigError(
                    f"{self.where}:{key_node.start_mark.line + 1}: a YAML merge key (`<<: *anchor`) is not read here",
                    hint="write the keys out; an alias of a whole value (`key: *anchor`) works",
                )
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.get(key)
                seen.setdefault(key, key_node.start_mark.line + 1)
            except TypeError:  # an unhashable key: the base constructor says so as a YAML error
                continue
            if first is not None:
                raise ConfigError(
                    f"{self.where}:{key_node.start_mark.line + 1}: duplicate key {_show(key)} (first at line "
                    f"{first}); YAML would silently keep only the last one",
                    hint="remove or rename one of them",
                )
        result: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return result


def _show(value: object, limit: int = 60) -> str:
    """repr of a value from the matrix, cut short: an error message never grows with the input."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _expanded_size(data: object) -> int:
    """Number of values once every alias is expanded, computed without expanding (shared nodes counted once
    per use through a memo). Stops counting past MAX_NODES."""
    memo: dict[int, int] = {}
    open_: set[int] = set()  # containers being counted: meeting one again is a cycle (`a: &a [*a]`)

    def size(o: object) -> int:
        if id(o) in memo:
            return memo[id(o)]
        if id(o) in open_:
            raise ConfigError(
                "matrix: a value contains itself through an alias (like `a: &a [*a]`)",
                hint="an alias may only refer to a value defined before and outside it",
            )
        children: Iterable[object] = ()
        if isinstance(o, dict):
            children = itertools.chain(o.keys(), o.values())
        elif isinstance(o, list):
            children = o
        total = 1
        open_.add(id(o))
        for c in children:
            total += size(c)
            if total > MAX_NODES:
                break
        open_.discard(id(o))
        memo[id(o)] = total
        return total

    return size(data)


def parse_yaml(text: str, where: str = "matrix") -> object:
    """The YAML of a matrix, refused (ConfigError) when empty, malformed, duplicated, too deep or too large."""
    if not text.strip():
        raise ConfigError(f"{where}: the file is empty", hint="start from the build_matrix.yaml shipped with fawheels")
    loader: _StrictLoader | None = None
    try:
        loader = _StrictLoader(text, where)  # the reader already refuses control characters here
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML: {str(exc)[:1000]}") from None
    except (ValueError, OverflowError) as exc:  # a scalar PyYAML cannot convert (an int of 5,000 digits)
        raise ConfigError(
            f"{where}: a value cannot be read: {str(exc)[:200]}", hint="quote it if it is meant as text"
        ) from None
    except RecursionError:  # a flow collection too deep for the parser itself
        raise ConfigError(f"{where}: nested too deeply to read", hint="check the brackets") from None
    finally:
        if loader is not None:
            loader.dispose()
    if data is None:
        raise ConfigError(
            f"{where}: the file holds no values (only comments?)",
            hint="start from the build_matrix.yaml shipped with fawheels",
        )
    if _expanded_size(data) > MAX_NODES:
        raise ConfigError(
            f"{where}: expands to more than {MAX_NODES} values (aliases used as a bomb?)",
            hint="a build matrix is a few hundred values; write it out or use fewer aliases",
        )
    return data


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
