"""`build-info.json`, the record every wheel carries of how it was built and what it promises: one model.

The build writes it (`BuildInfo.to_json`, `dumps`), verify reads it (`BuildInfo.from_json`, which turns any
malformed document into a `BuildInfoError` naming the field), and docs/build-info.md is generated from the
fields' types and their `doc` metadata (`markdown`), so the three cannot drift apart.

Reading is lenient where the checks allow it: a field without a default is one verify needs; every other
field reads as None (or empty) when absent, so wheels written by an older fawheels of schema 1 still verify.
The build always writes every field, null where it has no value.
"""

from __future__ import annotations

import json
import types
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from typing import Any, Union, get_args, get_origin, get_type_hints

SCHEMA = 1


class BuildInfoError(ValueError):
    """A build-info.json that does not fit the model; the message names the field path."""


def _doc(text: str) -> dict[str, str]:
    return {"doc": text}


@dataclass(frozen=True, kw_only=True)
class SourceInfo:
    name: str | None = field(default=None, metadata=_doc("the matrix's name of the source"))
    kind: str | None = field(default=None, metadata=_doc("`sdist` or `git`"))
    url: str | None = field(default=None, metadata=_doc("where the source was fetched from"))
    sha256: str | None = field(default=None, metadata=_doc("the sdist's sha256 (null for a git source)"))
    commit: str | None = field(default=None, metadata=_doc("the git commit (null for an sdist)"))


@dataclass(frozen=True, kw_only=True)
class PatchInfo:
    file: str = field(metadata=_doc("file name of a patch applied to the source, in order"))
    sha256: str = field(metadata=_doc("sha256 of the patch file"))


@dataclass(frozen=True, kw_only=True)
class ToolchainInfo:
    cuda: str = field(metadata=_doc("CUDA toolkit release (major.minor) the extension was compiled with"))
    nvcc: str | None = field(default=None, metadata=_doc("full nvcc version, e.g. 13.0.88"))
    provision: str | None = field(default=None, metadata=_doc("how the toolkit came: `host`, `pip` or `container`"))
    host_compiler: str | None = field(default=None, metadata=_doc("the C++ compiler nvcc used, e.g. `gcc 12.2.0`"))


@dataclass(frozen=True, kw_only=True)
class TorchInfo:
    version: str | None = field(default=None, metadata=_doc("the exact torch the extension was built against"))
    cuda: str | None = field(
        default=None, metadata=_doc("the CUDA that torch was built for; its major must match `toolchain.cuda`")
    )
    requirement: str | None = field(
        default=None, metadata=_doc("the torch pin in Requires-Dist (the C++ ABI is only stable within a torch minor)")
    )
    cxx_std: int | None = field(default=None, metadata=_doc("the C++ standard the extension was compiled as"))


@dataclass(frozen=True, kw_only=True)
class ArchsInfo:
    sass: tuple[str, ...] = field(
        default=(),
        metadata=_doc(
            "every SM target compiled to machine code; the wheel promises every GPU these run on "
            "(binary-compatibility rules: docs/cuda-facts.md)"
        ),
    )
    ptx: tuple[str, ...] = field(
        default=(),
        metadata=_doc(
            "PTX embedded for JIT (empty unless the target asks for it); its ISA must be JIT-able by `min_driver`"
        ),
    )


@dataclass(frozen=True, kw_only=True)
class ProfileInfo:
    name: str | None = field(default=None, metadata=_doc("the matrix's kernel profile"))
    head_dims: tuple[int, ...] | None = field(default=None, metadata=_doc("head dimensions compiled"))
    dtypes: tuple[str, ...] | None = field(default=None, metadata=_doc("`bf16` and/or `fp16`"))
    causal: tuple[bool, ...] | None = field(default=None, metadata=_doc("causal masking variants compiled"))
    split_kv: bool | None = field(
        default=None, metadata=_doc("whether the split-KV (decode, paged KV) kernels were compiled too")
    )
    translation_units: tuple[str, ...] | None = field(
        default=None,
        metadata=_doc("the kernel translation units compiled; anything else fails with a clear error at call time"),
    )


@dataclass(frozen=True, kw_only=True)
class FlagsInfo:
    nvcc: tuple[str, ...] | None = field(default=None, metadata=_doc("nvcc flags, free of machine paths"))
    cxx: tuple[str, ...] | None = field(default=None, metadata=_doc("host C++ flags, free of machine paths"))
    defines: tuple[str, ...] | None = field(default=None, metadata=_doc("the recipe's product switches, passed as -D"))
    prefix_maps: tuple[str, ...] | None = field(
        default=None,
        metadata=_doc(
            "what build paths were rewritten to in debug info and `__FILE__` (-ffile-prefix-map), so the "
            "binary does not depend on where it was built"
        ),
    )


@dataclass(frozen=True, kw_only=True)
class BuildInfo:
    schema: int = field(metadata=_doc(f"the layout version of this file; fawheels reads {SCHEMA}"))
    target: str = field(metadata=_doc("the matrix target id the wheel was built for"))
    recipe: str | None = field(default=None, metadata=_doc("the build recipe (`fa2`, `vllm-fa2`)"))
    distribution: str = field(metadata=_doc("the wheel's distribution name; must match its file name"))
    version: str = field(metadata=_doc("the wheel's version, with the local label naming the build"))
    source: SourceInfo | None = field(default=None, metadata=_doc("the pinned upstream source"))
    patches: tuple[PatchInfo, ...] = field(default=(), metadata=_doc("patches applied, in order"))
    toolchain: ToolchainInfo = field(metadata=_doc("the CUDA toolkit and host compiler"))
    torch: TorchInfo = field(metadata=_doc("the torch the extension links against"))
    python: str = field(metadata=_doc("the Python (major.minor) the wheel is tagged for"))
    archs: ArchsInfo = field(metadata=_doc("the GPU code in the extension"))
    min_driver: str = field(metadata=_doc("the oldest NVIDIA driver the target supports: the toolkit's minimum"))
    cuda_runtime_major: int = field(metadata=_doc("the libcudart major the extension may need (DT_NEEDED)"))
    profile: ProfileInfo | None = field(default=None, metadata=_doc("which forward kernels were compiled"))
    flags: FlagsInfo | None = field(default=None, metadata=_doc("the compile flags, as recorded by the build"))
    extensions: tuple[str, ...] = field(
        metadata=_doc(
            "wheel-relative paths of the shared objects built for the target; no other member may carry CUDA code"
        )
    )
    serves: str | None = field(
        default=None,
        metadata=_doc(
            "the installed release the extension is built for (`vllm==0.33.0`), null for a standalone wheel; "
            "such a wheel must register exactly the op schemas that release calls"
        ),
    )
    source_date_epoch: int | None = field(
        default=None,
        metadata=_doc(
            "the timestamp of every file in the wheel (fixed by the source pin, so rebuilds are byte-identical)"
        ),
    )
    fawheels: str | None = field(default=None, metadata=_doc("the fawheels version that built the wheel"))

    @classmethod
    def from_json(cls, data: object) -> BuildInfo:
        """The model of a parsed build-info.json; BuildInfoError names the first field that does not fit."""
        info: BuildInfo = _parse(cls, data, "")
        return info

    def to_json(self) -> dict[str, Any]:
        """Every field, null where there is no value: the dict the build writes."""
        data = _dump(self)
        assert isinstance(data, dict)
        return data

    def dumps(self) -> bytes:
        """The bytes of build-info.json in the wheel (sorted keys, two-space indent, final newline)."""
        return (json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n").encode()


def needed_fields() -> tuple[str, ...]:
    """The top-level fields verify cannot do without (those without a default), in the model's order."""
    return tuple(f.name for f in fields(BuildInfo) if _required(f))


# --- reading and writing by the types of the fields ------------------------------------------------------


def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def _required(f: Any) -> bool:
    return f.default is MISSING and f.default_factory is MISSING


def _show(value: object) -> str:
    text = json.dumps(value) if isinstance(value, str | int | float | bool | None) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def _json_kind(value: object) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return _show(value)


def _parse(cls: type, data: object, path: str) -> Any:
    if not isinstance(data, dict):
        raise BuildInfoError(f"{path or 'build-info.json'}: expected an object, got {_json_kind(data)}")
    hints = _hints(cls)
    values: dict[str, Any] = {}
    for f in fields(cls):
        at = f"{path}.{f.name}" if path else f.name
        if f.name not in data:
            if _required(f):
                raise BuildInfoError(f"{at}: missing")
            continue
        values[f.name] = _value(hints[f.name], data[f.name], at)
    return cls(**values)


def _value(tp: Any, value: object, at: str) -> Any:
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _value(inner, value, at)
    if origin is tuple:
        if not isinstance(value, list):
            raise BuildInfoError(f"{at}: expected a list, got {_json_kind(value)}")
        return tuple(_value(args[0], item, f"{at}[{i}]") for i, item in enumerate(value))
    if is_dataclass(tp):
        return _parse(tp, value, at)  # type: ignore[arg-type]
    ok = (
        isinstance(value, str)
        if tp is str
        else (isinstance(value, bool) if tp is bool else isinstance(value, int) and not isinstance(value, bool))
    )
    if not ok:
        raise BuildInfoError(f"{at}: expected {_type_name(tp)}, got {_json_kind(value)}")
    return value


def _dump(value: object) -> object:
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _dump(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple):
        return [_dump(v) for v in value]
    return value


# --- the generated reference (docs/build-info.md) ------------------------------------------------------------


def _type_name(tp: Any) -> str:
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return " or ".join(_type_name(a) for a in inner) + " or null"
    if origin is tuple:
        return f"list of {_type_name(args[0])}"
    if is_dataclass(tp):
        return "object"
    return {str: "string", int: "integer", bool: "boolean"}[tp]


def _rows(cls: type, prefix: str) -> list[tuple[str, str, bool, str]]:
    rows: list[tuple[str, str, bool, str]] = []
    hints = _hints(cls)
    for f in fields(cls):
        path, tp = f"{prefix}{f.name}", hints[f.name]
        rows.append((path, _type_name(tp), _required(f), f.metadata["doc"]))
        if get_origin(tp) is tuple and is_dataclass(get_args(tp)[0]):
            rows += _rows(get_args(tp)[0], f"{path}[].")
        for a in get_args(tp) or (tp,):
            if is_dataclass(a):
                rows += _rows(a, f"{path}.")  # type: ignore[arg-type]
    return rows


EXAMPLE = BuildInfo(
    schema=SCHEMA,
    target="fa2-cu130-torch2.14-sm120-cp311",
    recipe="fa2",
    distribution="flash_attn",
    version="2.8.3+cu130torch2.14sm120qwen3",
    source=SourceInfo(
        name="flash-attn-2.8.3",
        kind="sdist",
        url="https://.../flash_attn-2.8.3.tar.gz",
        sha256="1e71dd64...",
        commit=None,
    ),
    patches=(PatchInfo(file="0001-forward-only-profile-dispatch.patch", sha256="..."),),
    toolchain=ToolchainInfo(cuda="13.0", nvcc="13.0.88", provision="host", host_compiler="gcc 12.2.0"),
    torch=TorchInfo(version="2.14.1+cu130", cuda="13.0", requirement="torch==2.14.*", cxx_std=20),
    python="3.11",
    archs=ArchsInfo(sass=("sm_120",), ptx=()),
    min_driver="580.65.06",
    cuda_runtime_major=13,
    profile=ProfileInfo(
        name="qwen3",
        head_dims=(128,),
        dtypes=("bf16", "fp16"),
        causal=(False, True),
        split_kv=True,
        translation_units=("flash_fwd_hdim128_bf16_causal_sm80.cu", "..."),
    ),
    flags=FlagsInfo(
        nvcc=("-O3", "..."),
        cxx=("-O3", "..."),
        defines=("TORCH_EXTENSION_NAME=flash_attn_2_cuda", "..."),
        prefix_maps=("/fawheels/build", "/fawheels/cuda", "/fawheels/python", "/fawheels/torch"),
    ),
    extensions=("flash_attn_2_cuda.cpython-311-x86_64-linux-gnu.so",),
    serves=None,
    source_date_epoch=1755000000,
    fawheels="0.1.0",
)


def markdown() -> str:
    """docs/build-info.md, generated from the model (`python -m fawheels._util.generate`)."""
    rows = "\n".join(
        "| " + " | ".join(c.replace("|", "\\|") for c in (f"`{path}`", tp, "yes" if req else "", doc)) + " |"
        for path, tp, req, doc in _rows(BuildInfo, "")
    )
    return f"""# `build-info.json`: what a wheel promises

Every wheel fawheels builds carries `<dist>-<version>.dist-info/build-info.json`. `fawheels verify`
checks the wheel against it; `fawheels publish` shows it on the index page. Schema version {SCHEMA}, for
example:

```json
{EXAMPLE.dumps().decode().rstrip()}
```

The build writes every field below (null where it has no value). "needed" marks the fields `fawheels
verify` cannot do without (within their object, when that is present): a build-info.json that lacks one,
or has any field of the wrong type, fails verification. Fields not marked read as null (or empty) when
absent, so wheels written by an older fawheels of the same schema still verify.

| field | type | needed | meaning |
|---|---|---|---|
{rows}
"""
