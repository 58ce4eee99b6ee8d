"""The build matrix's frozen model: sources, toolchains, torch pins, kernel profiles, targets and the matrix, each
field with its YAML name, JSON Schema and rules (matrix/schema.py writes build_matrix.schema.json and
docs/matrix.md from them). Pure; config.py reads a file into it."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from fawheels._util.errors import ConfigError
from fawheels.matrix import cudafacts
from fawheels.matrix.cudafacts import Arch, Version
from fawheels.matrix.recipes import RECIPES

SourceKind = Literal["sdist", "git"]


Provision = Literal["host", "pip", "container"]


HEAD_DIMS = (32, 64, 96, 128, 192, 256)


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


def _did_you_mean(name: str, known: Iterable[str]) -> str:
    if len(str(name)) > 100:  # nothing known is that long, and difflib's cost grows with the length
        return ""
    close = difflib.get_close_matches(str(name), [str(k) for k in known], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


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
