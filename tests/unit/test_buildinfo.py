"""The build-info model: what the build writes is what verify reads, and a malformed field is named."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from fawheels.compile.buildinfo import EXAMPLE, BuildInfo, BuildInfoError, needed_fields
from support.fakes import fake_toolkit, fake_torch

ROOT = Path(__file__).parents[2]
DATA = ROOT / "tests/data"


def test_the_written_bytes_read_back_to_the_same_model() -> None:
    data = EXAMPLE.dumps()
    assert data == (json.dumps(EXAMPLE.to_json(), indent=2, sort_keys=True) + "\n").encode()
    assert BuildInfo.from_json(json.loads(data)) == EXAMPLE


def test_every_field_is_written_null_where_it_has_no_value() -> None:
    info = replace(EXAMPLE, serves=None, profile=None)
    written = info.to_json()
    assert written["serves"] is None and written["profile"] is None
    assert written["source"]["commit"] is None


def test_fields_verify_does_not_need_read_as_absent() -> None:
    minimal = {k: v for k, v in EXAMPLE.to_json().items() if k in needed_fields()}
    minimal["toolchain"] = {"cuda": "13.0"}
    info = BuildInfo.from_json(minimal)
    assert info.serves is None and info.toolchain.nvcc is None and info.patches == ()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("archs", "sass"), "sm_120", 'archs.sass: expected a list, got "sm_120"'),
        (("archs", "sass"), ["sm_120", 90], "archs.sass[1]: expected string, got 90"),
        (("cuda_runtime_major",), True, "cuda_runtime_major: expected integer, got true"),
        (("cuda_runtime_major",), "13", 'cuda_runtime_major: expected integer, got "13"'),
        (("torch",), [], "torch: expected an object, got a list"),
        (("toolchain",), {"nvcc": "13.0.88"}, "toolchain.cuda: missing"),
        (("patches",), [{"file": "a.patch"}], "patches[0].sha256: missing"),
        (("serves",), {"vllm": "0.33.0"}, "serves: expected string, got an object"),
    ],
)
def test_a_field_of_the_wrong_shape_is_named(path: tuple[str, ...], value: object, message: str) -> None:
    data = EXAMPLE.to_json()
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(BuildInfoError) as exc:
        BuildInfo.from_json(data)
    assert str(exc.value) == message


def test_not_an_object_at_all() -> None:
    with pytest.raises(BuildInfoError, match=r"build-info\.json: expected an object, got a list"):
        BuildInfo.from_json([1])


@pytest.mark.parametrize(
    ("target_id", "golden"),
    [
        ("fa2-cu130-torch2.14-sm120-cp311", "build-info-fa2.json"),
        ("vllm-fa2-cu130-torch2.14-sm120-cp311", "build-info-vllm-fa2.json"),
    ],
)
def test_the_build_writes_the_bytes_it_wrote_before_the_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target_id: str, golden: str
) -> None:
    """The golden files were written by the build before the model existed (a dict through json.dumps)."""
    from fawheels import __version__
    from fawheels.compile import execute
    from fawheels.compile.plan import plan_build
    from fawheels.matrix.config import load_matrix_file
    from fawheels.source.fetch import AppliedPatch

    target = load_matrix_file(ROOT / "build_matrix.yaml").target(target_id)
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "PKG-INFO").write_text("Name: flash_attn\nVersion: 2.8.3\nSummary: x\n\n")
    (tree / "LICENSE").write_text("l")
    (tree / "AUTHORS").write_text("a")
    (tmp_path / "x.so").write_bytes(b"")
    tk, torch = fake_toolkit(), fake_torch(tmp_path)
    plan = plan_build(
        target, tree, tmp_path / "w", tk, torch, jobs=2, cpus=2, recipe_dir=tmp_path / "recipe", source_date_epoch=1
    )
    written: dict[str, bytes] = {}

    def capture(spec: object, files: object, extra: dict[str, bytes], out_dir: Path, sde: int) -> Path:
        written.update(extra)
        return out_dir

    monkeypatch.setattr(execute, "write_wheel", capture)
    execute.assemble_wheel(
        plan,
        tmp_path / "x.so",
        [AppliedPatch("0001.patch", "ab" * 32)],
        tk,
        torch,
        1755000000,
        tmp_path,
        host_compiler="gcc 12.2.0",
    )
    expected = (DATA / golden).read_text().replace('"fawheels": "0.1.0"', f'"fawheels": "{__version__}"')
    assert written["build-info.json"] == expected.encode()
