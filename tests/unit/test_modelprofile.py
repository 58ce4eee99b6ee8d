"""`fawheels profile --from-config`: a model's config.json -> the kernel profile that serves it (pure; the CLI
tests read the committed configs in tests/data/configs)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from fawheels._util.errors import ConfigError
from fawheels.cli import main
from fawheels.matrix import modelprofile
from fawheels.matrix.config import load_matrix

CONFIGS = Path(__file__).parents[1] / "data" / "configs"


def load(name: str) -> dict[str, Any]:
    config: dict[str, Any] = json.loads((CONFIGS / name).read_text())
    return config


def test_qwen3_vl_needs_128_for_its_language_model_and_96_for_its_vision_tower() -> None:
    profile, found = modelprofile.profile_from_config(load("qwen3-vl.json"), "qwen3-vl")
    assert [(t.where, t.head_dim, t.bucket, t.causal) for t in found] == [
        ("config.text_config", 128, 128, True),
        ("config.vision_config", 72, 96, False),
    ]
    assert (profile.head_dims, profile.dtypes, profile.causal, profile.split_kv) == (
        (96, 128),
        ("bf16",),
        (False, True),
        True,
    )


def test_the_matrix_profile_qwen3_vl_covers_what_the_config_asks_for() -> None:
    from fawheels.matrix.config import load_matrix_file

    ours = load_matrix_file(Path(__file__).parents[2] / "build_matrix.yaml").profiles["qwen3-vl"]
    wanted, _ = modelprofile.profile_from_config(load("qwen3-vl.json"), "qwen3-vl")
    assert set(wanted.kernels()) <= set(ours.kernels())


def test_a_top_level_decoder_without_head_dim_divides_hidden_size() -> None:
    profile, found = modelprofile.profile_from_config(load("llama-fp16.json"), "llama")
    assert [t.head_dim for t in found] == [128]
    assert profile.dtypes == ("fp16",)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("mla.json", "multi-head latent attention"),
        ("float32.json", "FA2 runs bfloat16 or float16, not 'float32'"),
        ("no-attention.json", "config: no attention layout"),
    ],
)
def test_a_layout_it_cannot_read_is_an_error_naming_the_field(config: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        modelprofile.profile_from_config(load(config), "x")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"hidden_size": 1000, "num_attention_heads": 3, "torch_dtype": "bfloat16"},
            "config: hidden_size 1000 is not a multiple of num_attention_heads 3",
        ),
        ({"head_dim": 512, "torch_dtype": "bfloat16"}, "head dim 512 is larger than FA2's largest kernel"),
        ({"head_dim": "128", "torch_dtype": "bfloat16"}, "config.head_dim: expected a positive integer"),
        ({"hidden_size": 4096, "torch_dtype": "bfloat16"}, "has hidden_size but not num_attention_heads"),
        ({"head_dim": 64}, "no torch_dtype or dtype"),
        (
            {"head_dim": 64, "dtype": "bfloat16", "vision_config": {"depth": 3}},
            "config.vision_config: no attention layout",
        ),
        ([1, 2], "expected a JSON object"),
    ],
)
def test_malformed_configs(config: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        modelprofile.profile_from_config(config, "x")


def test_the_printed_yaml_loads_as_a_matrix_profile(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", "--from-config", str(CONFIGS / "qwen3-vl.json")]) == 0
    printed = capsys.readouterr().out
    assert "config.vision_config: head dim 72, non-causal, runs in FA2's 96 kernels" in printed
    body = "\n".join("  " + line for line in printed.splitlines() if not line.startswith("#"))
    matrix = load_matrix(f"""
default_target: fa2-cu130-torch2.14-sm120-cp311
sources: {{fa: {{kind: sdist, url: https://x/fa.tar.gz, sha256: "{"a" * 64}"}}}}
toolchains: {{cu130: {{cuda: "13.0", provision: host}}}}
torch: {{"2.14": {{version: 2.14.1, cuda: "13.0", cxx_std: 20}}}}
profiles:
{body}
targets:
  - {{recipe: fa2, source: fa, matrix: {{toolchain: [cu130], torch: ["2.14"], archs: [[sm_120]], python: ["3.11"],
                                       profile: [qwen3-vl]}}}}
""")
    assert matrix.profiles["qwen3-vl"].head_dims == (96, 128)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "No such file"),
        (b"{not json", "not a JSON file"),
        (b"\xff\xfe", "not a JSON file"),
        (b"[" * 200_000 + b"]" * 200_000, "nested too deeply"),
        (b'{"head_dim": ' + b"1" * 5000 + b"}", "not a JSON file"),  # issue 21: was exit 11
    ],
)
def test_the_cli_refuses_an_unreadable_file_with_exit_3(
    tmp_path: Path, content: bytes | None, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.json"
    if content is not None:
        path.write_bytes(content)
    assert main(["profile", "--from-config", str(path)]) == 3
    err = capsys.readouterr().err
    assert message in err and str(path) in err and "Traceback" not in err


def test_a_device_is_not_read_as_a_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", "--from-config", "/dev/zero"]) == 3
    assert "/dev/zero: a device" in capsys.readouterr().err


def test_a_fifo_is_refused_not_waited_on(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    os.mkfifo(tmp_path / "config.json")
    assert main(["profile", "--from-config", str(tmp_path / "config.json")]) == 3
    assert "a FIFO" in capsys.readouterr().err


QWEN3 = {"model_type": "qwen3", "head_dim": 128, "torch_dtype": "bfloat16"}


@pytest.mark.parametrize(
    ("model_type", "name", "field"),
    [
        ("qwen3\nevil:\n  head_dims: [256]", None, "config.model_type"),
        ("qwen3: {}", None, "config.model_type"),
        ("\ud800", None, "config.model_type"),
        ("qwen3", "x\ny: 1", "--name"),
        ("qwen3", "\ud800", "--name"),
        ("qwen3", "..", "--name"),
    ],
)
def test_a_profile_name_that_would_inject_yaml_is_refused(
    tmp_path: Path, model_type: str, name: str | None, field: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**QWEN3, "model_type": model_type}))
    argv = ["profile", "--from-config", str(path)] + (["--name", name] if name else [])
    assert main(argv) == 3  # issue 21: was a YAML document with extra keys, or exit 11
    captured = capsys.readouterr()
    assert captured.out == "" and field in captured.err


def test_a_path_with_a_newline_stays_in_its_comment(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "a\nevil: 1\nb.json"
    path.write_text(json.dumps(QWEN3))
    assert main(["profile", "--from-config", str(path)]) == 0
    doc = yaml.safe_load(capsys.readouterr().out)
    assert list(doc) == ["qwen3"]
