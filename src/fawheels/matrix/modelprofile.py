"""The kernel profile that serves a model, read from its Hugging Face `config.json` (`fawheels profile
--from-config`). Pure: a dict in, a profile and its YAML out; the CLI reads the file.

What a model needs from FA2 (docs/vllm.md, "Profiles"):
- its language model's head dim (`head_dim`, else `hidden_size / num_attention_heads`), causal for prefill and
  non-causal for decode (FA2 runs a one-token query without the causal mask), with the split-KV kernels that
  paged-KV decode always takes;
- a vision tower's head dim (`vision_config`: `hidden_size / num_heads`), non-causal;
- the checkpoint's dtype.
FA2 compiles one kernel per head-dim bucket (32, 64, 96, 128, 192, 256) and runs a head dim in the smallest
bucket that holds it (72 runs in 96). A layout this cannot read is an error, never a guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fawheels._util import names
from fawheels._util.errors import ConfigError
from fawheels._util.show import one_line
from fawheels.matrix.model import HEAD_DIMS, Profile

DTYPES = {"bfloat16": "bf16", "float16": "fp16", "half": "fp16"}


@dataclass(frozen=True)
class Tower:
    """One attention stack of the model: where it was read, its head dim and the FA2 bucket it runs in."""

    where: str
    head_dim: int
    bucket: int
    causal: bool


def _int(cfg: dict[str, Any], key: str, where: str) -> int | None:
    value = cfg.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{where}.{key}: expected a positive integer, got {value!r}")
    return value


def _bucket(where: str, head_dim: int) -> int:
    for bucket in HEAD_DIMS:
        if head_dim <= bucket:
            return bucket
    raise ConfigError(
        f"{where}: head dim {head_dim} is larger than FA2's largest kernel ({HEAD_DIMS[-1]})",
        hint="FA2 cannot serve this model; it needs another attention backend",
    )


def _head_dim(cfg: dict[str, Any], where: str, heads_keys: tuple[str, ...]) -> int | None:
    """head_dim, else hidden_size / heads; None when the section has no attention layout at all."""
    if "kv_lora_rank" in cfg or "qk_rope_head_dim" in cfg:
        raise ConfigError(
            f"{where}: multi-head latent attention (kv_lora_rank / qk_rope_head_dim) is not FA2's layout",
            hint="FA2 serves models whose query, key and value heads share one head dim",
        )
    explicit = _int(cfg, "head_dim", where)
    if explicit is not None:
        return explicit
    hidden = _int(cfg, "hidden_size", where)
    heads_key = next((k for k in heads_keys if k in cfg), None)
    if hidden is None and heads_key is None:
        return None
    if hidden is None or heads_key is None:
        raise ConfigError(
            f"{where}: has {'hidden_size' if hidden else heads_key} but not "
            f"{heads_keys[0] if hidden else 'hidden_size'}, and no head_dim",
            hint="add head_dim, or both hidden_size and the number of heads",
        )
    heads = _int(cfg, heads_key, where)
    assert heads is not None
    if hidden % heads:
        raise ConfigError(
            f"{where}: hidden_size {hidden} is not a multiple of {heads_key} {heads}",
            hint="the head dim cannot be derived; give head_dim explicitly",
        )
    return hidden // heads


def _dtype(config: dict[str, Any], text: dict[str, Any]) -> str:
    for cfg, where in ((text, "text_config"), (config, "config")):
        for key in ("torch_dtype", "dtype"):
            if key in cfg:
                name = str(cfg[key]).removeprefix("torch.")
                if name not in DTYPES:
                    raise ConfigError(
                        f"{where}.{key}: FA2 runs bfloat16 or float16, not {cfg[key]!r}",
                        hint="serve the model in bf16 or fp16 (vLLM: --dtype)",
                    )
                return DTYPES[name]
    raise ConfigError(
        "config: no torch_dtype or dtype, so the kernels' dtype is unknown",
        hint='add "torch_dtype": "bfloat16" (or float16) to the config',
    )


def towers(config: dict[str, Any]) -> list[Tower]:
    """The model's attention stacks: its language model (top level or `text_config`) and a `vision_config`."""
    if not isinstance(config, dict):
        raise ConfigError("config: expected a JSON object")
    text, where = config, "config"
    if isinstance(config.get("text_config"), dict):
        text, where = config["text_config"], "config.text_config"
    found = []
    head_dim = _head_dim(text, where, ("num_attention_heads",))
    if head_dim is None:
        raise ConfigError(
            f"{where}: no attention layout (head_dim, or hidden_size and num_attention_heads)",
            hint="this does not look like a transformer language model's config.json",
        )
    found.append(Tower(where, head_dim, _bucket(where, head_dim), True))
    vision = config.get("vision_config")
    if vision is not None:
        if not isinstance(vision, dict):
            raise ConfigError("config.vision_config: expected an object")
        vhead = _head_dim(vision, "config.vision_config", ("num_heads", "num_attention_heads"))
        if vhead is None:
            raise ConfigError(
                "config.vision_config: no attention layout (head_dim, or hidden_size and num_heads)",
                hint="remove vision_config if the model has no vision tower",
            )
        found.append(Tower("config.vision_config", vhead, _bucket("config.vision_config", vhead), False))
    return found


def profile_from_config(config: dict[str, Any], name: str) -> tuple[Profile, list[Tower]]:
    found = towers(config)
    text = config["text_config"] if isinstance(config.get("text_config"), dict) else config
    profile = Profile(
        name=name,
        head_dims=tuple(sorted({t.bucket for t in found})),
        dtypes=(_dtype(config, text),),
        # causal: the language model's prefill; non-causal: its decode steps and a vision tower
        causal=(False, True),
        split_kv=True,  # paged-KV decode always runs the split-KV kernels
        leave_out=(),  # a config does not say reliably which of ALiBi, softcap, windows the model needs
    )
    return profile, found


def profile_name(config: dict[str, Any], given: str | None = None) -> str:
    """`--name`, else the config's model_type (`qwen2_vl` → `qwen2-vl`), else `model`; a label either way
    (`[a-z0-9._-]+`): it becomes a YAML key the user pastes, so a newline or `:` in it would add keys."""
    if given is not None:
        return names.label(given, "--name", ConfigError)
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if not isinstance(model_type, str) or not model_type:
        return "model"
    try:
        return names.label(model_type.replace("_", "-").lower(), "config.model_type", ConfigError)
    except ConfigError as exc:
        raise ConfigError(exc.message, hint="name the profile with --name NAME") from None


def render_yaml(profile: Profile, found: list[Tower], source: str) -> str:
    def flow(values: tuple[object, ...]) -> str:
        return "[" + ", ".join(str(v).lower() if isinstance(v, bool) else str(v) for v in values) + "]"

    lines = [f"# from {one_line(source)}:"]  # a newline in the path must not end the comment
    for t in found:
        run = f"runs in FA2's {t.bucket} kernels" if t.bucket != t.head_dim else "its own FA2 kernels"
        lines.append(f"#   {t.where}: head dim {t.head_dim}, {'causal' if t.causal else 'non-causal'}, {run}")
    lines += [
        "# paste under `profiles:` in build_matrix.yaml",
        f"{profile.name}:",
        f"  head_dims: {flow(profile.head_dims)}",
        f"  dtypes: {flow(profile.dtypes)}",
        f"  causal: {flow(profile.causal)}",
        f"  split_kv: {str(profile.split_kv).lower()}",
    ]
    return "\n".join(lines)
