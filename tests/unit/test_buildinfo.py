"""The build-info model: what the build writes is what verify reads, and a malformed field is named."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from fawheels.build.buildinfo import EXAMPLE, BuildInfo, BuildInfoError, needed_fields


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


@pytest.mark.parametrize(("path", "value", "message"), [
    (("archs", "sass"), "sm_120", "archs.sass: expected a list, got \"sm_120\""),
    (("archs", "sass"), ["sm_120", 90], "archs.sass[1]: expected string, got 90"),
    (("cuda_runtime_major",), True, "cuda_runtime_major: expected integer, got true"),
    (("cuda_runtime_major",), "13", "cuda_runtime_major: expected integer, got \"13\""),
    (("torch",), [], "torch: expected an object, got a list"),
    (("toolchain",), {"nvcc": "13.0.88"}, "toolchain.cuda: missing"),
    (("patches",), [{"file": "a.patch"}], "patches[0].sha256: missing"),
    (("serves",), {"vllm": "0.33.0"}, "serves: expected string, got an object"),
])
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
