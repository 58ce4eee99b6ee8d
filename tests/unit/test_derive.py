"""Targets derived from a vLLM release's facts (matrix/derive.py, `fawheels build --vllm`), validated like any
matrix target and printed as the YAML that would declare it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from fawheels import cli
from fawheels._util.errors import ConfigError
from fawheels.matrix import config
from fawheels.matrix.derive import derive_vllm_target, write_tree
from fawheels.matrix.recipes import VLLM_FA2
from support.checkout import REPO

MATRIX = REPO / "build_matrix.yaml"


def derive(**kw: object) -> object:
    args = {"vllm": "0.26.0", "archs": ["sm_120"], "python": "3.12", **kw}
    return derive_vllm_target(MATRIX.read_text(), MATRIX, **args)  # type: ignore[arg-type]


def test_vllm_0_26_on_sm120_gets_torch_2_11_and_sm120_sass() -> None:
    d = derive()
    t = d.target  # type: ignore[attr-defined]
    assert t.id == "vllm-fa2-cu130-torch2.11-sm120-cp312"
    assert (t.torch.version, t.toolchain.cuda, [a.sm for a in t.sass], t.ptx) == ("2.11.0", "13.0", ["sm_120"], ())
    assert t.serves == "vllm==0.26.0" and t.profile.name == "qwen3-vl"
    assert not d.in_base  # type: ignore[attr-defined]
    # the printed block, added to the matrix, declares exactly this target
    block = yaml.safe_load(d.yaml)  # type: ignore[attr-defined]
    data = yaml.safe_load(MATRIX.read_text())
    data["targets"] += block["targets"]
    assert t in config.load_matrix(yaml.safe_dump(data), MATRIX).targets


def test_every_known_release_derives() -> None:
    for release in VLLM_FA2.releases:
        t = derive(vllm=release.version, python="3.12").target  # type: ignore[attr-defined]
        # the matrix's torch entry of the pin's major.minor (the extension links that torch's C++ ABI)
        assert t.torch.name == ".".join(release.torch.split(".")[:2]) and t.toolchain.cuda == release.cuda


def test_the_derived_tree_follows_edited_patches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a checkout of its own, so the test may edit a patch: the derived tree holds the edited bytes next time
    checkout = tmp_path / "checkout"
    shutil.copytree(REPO / "patches", checkout / "patches")
    (checkout / "build_matrix.yaml").write_text(MATRIX.read_text())
    patch = REPO / "patches" / "flash-attn-2.8.3" / "0006-paged-kv-per-tile-and-decode-routes.patch"
    monkeypatch.setenv("FAWHEELS_CACHE", str(tmp_path / "cache"))
    matrix = checkout / "build_matrix.yaml"

    def derived_patch() -> bytes:
        d = derive_vllm_target(matrix.read_text(), matrix, vllm="0.26.0", archs=["sm_90"], python="3.12")
        return (write_tree(d).parent / patch.relative_to(REPO)).read_bytes()

    assert derived_patch() == patch.read_bytes()
    edited = checkout / patch.relative_to(REPO)
    edited.write_bytes(patch.read_bytes() + b"\n")
    assert derived_patch() == edited.read_bytes()


def test_a_target_the_matrix_has_is_said_to_be_there() -> None:
    d = derive(archs=["sm_90"])
    assert d.in_base and "already in" in d.yaml  # type: ignore[attr-defined]


def test_another_profile_with_a_taken_id_gets_a_suffix() -> None:
    t = derive(archs=["sm_90"], profile="decode").target  # type: ignore[attr-defined]
    assert t.id == "vllm-fa2-cu130-torch2.11-sm90-cp312-decode"


def test_a_cu128_vllm_build_gets_the_cuda_12_8_toolchain_and_torch() -> None:
    d = derive(cuda="12.8", profile="decode")
    t = d.target  # type: ignore[attr-defined]
    assert (t.toolchain.name, t.torch.cuda, t.min_driver.parts[0]) == ("cu128", "12.8", 570)
    assert "declare this in a matrix of its own" in d.yaml  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"vllm": "0.99.0"}, "not a vLLM release fawheels has the facts of"),
        ({"archs": []}, "name at least one GPU arch"),
        ({"archs": ["rtx5090"]}, "not an arch"),
        ({"profile": "nope"}, "not a profile of the matrix"),
        ({"python": "3.9"}, "requires Python"),
        ({"cuda": "11.8"}, "no toolchain for CUDA 11.8"),
    ],
)
def test_refusals_say_what_to_do(kw: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        derive(**kw)


def test_cli_dry_run_from_an_empty_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli.main(["build", "--dry-run", "--vllm", "0.26.0", "--arch", "sm_120", "--python", "3.12"]) == 0
    out = capsys.readouterr().out
    assert "== vllm-fa2-cu130-torch2.11-sm120-cp312 (dry run" in out
    assert "-gencode=arch=compute_120,code=sm_120" in out and "torch: 2.11.0" in out
    assert list(tmp_path.iterdir()) == []


def test_cli_derive_options_need_vllm(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["build", "--dry-run", "--arch", "sm_120"]) == 2
    assert "only with --vllm" in capsys.readouterr().err
    assert cli.main(["build", "--dry-run", "--vllm", "0.26.0", "--arch", "sm_120", "x"]) == 2
