"""Hostile build matrices (issue 12): what YAML would misread without a word is refused, naming the field
and the fix; bombs and pathological files end in a short ConfigError, never a traceback or a huge message."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from fawheels import cli
from fawheels._util.errors import ConfigError, ToolchainError
from fawheels.matrix.config import load_matrix, load_matrix_file
from fawheels.matrix.model import Toolchain
from fawheels.matrix.yamlread import MAX_NODES
from fawheels.toolchain import toolkit as toolchain
from support.matrices import BASE


def refused(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_matrix(text)
    return str(info.value)


def test_a_duplicate_key_is_refused_with_both_lines() -> None:
    text = BASE.replace(
        '  cu130: {cuda: "13.0", provision: host}\n',
        '  cu130: {cuda: "13.0", provision: host}\n  cu130: {cuda: "12.8", provision: host}\n',
    )
    msg = refused(text)
    assert "duplicate key 'cu130'" in msg and "first at line 9" in msg and "matrix:10:" in msg


def test_a_duplicate_key_inside_a_flow_mapping_is_refused() -> None:
    msg = refused(BASE.replace('{cuda: "13.0", provision: host}', '{cuda: "13.0", cuda: "12.6", provision: host}'))
    assert "duplicate key 'cuda'" in msg


@pytest.mark.parametrize(
    ("axis", "quoted", "bare", "misread"), [("python", '"3.11"', "3.10", "3.1"), ("torch", '"2.14"', "2.10", "2.1")]
)
def test_an_unquoted_version_is_refused_with_quote_it(axis: str, quoted: str, bare: str, misread: str) -> None:
    msg = refused(BASE.replace(f"{axis}: [{quoted}]", f"{axis}: [{bare}]"))
    assert f"targets[0].matrix.{axis}[0]: {misread} is a number to YAML" in msg
    assert f'quote it as you meant it: "{bare}"' in msg  # issue 23: the hint said "3.1" for python: [3.10]


def test_python_3_10_unquoted_never_becomes_cp31() -> None:
    msg = refused(BASE.replace('python: ["3.11"]', "python: [3.10]"))
    assert "targets[0].matrix.python[0]" in msg and "quote it" in msg


def test_a_float_section_name_is_refused() -> None:
    msg = refused(BASE.replace('  "2.14": {version: 2.14.1', "  2.14: {version: 2.14.1"))
    assert "torch.2.14: a name must be a string" in msg and "quote it" in msg


def test_cuda_home_must_be_absolute_and_only_on_host_toolchains() -> None:
    assert "not an absolute path" in refused(
        BASE.replace(
            'cu130: {cuda: "13.0", provision: host}', 'cu130: {cuda: "13.0", provision: host, cuda_home: cuda}'
        )
    )
    assert "only a host toolchain uses cuda_home" in refused(
        BASE.replace(
            'cu130: {cuda: "13.0", provision: host}',
            'cu130: {cuda: "13.0", provision: pip, pip_version: "13.0.88", cuda_home: /opt/cuda}',
        )
    )


def test_a_cuda_home_that_does_not_exist_stops_before_any_torch_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other-cuda" / "bin" / "nvcc"  # a toolkit elsewhere must not be used instead
    other.parent.mkdir(parents=True)
    other.write_text("")
    monkeypatch.setenv("CUDA_HOME", str(other.parent.parent))
    tc = Toolchain("cu130", "13.0", "host", cuda_home=str(tmp_path / "nonexistent"))
    with pytest.raises(ToolchainError, match=r"toolchains\.cu130\.cuda_home: .*nonexistent does not exist"):
        toolchain.host_cuda_home(tc)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ToolchainError, match="has no bin/nvcc"):
        toolchain.host_cuda_home(Toolchain("cu130", "13.0", "host", cuda_home=str(empty)))


def test_a_cuda_home_variable_without_nvcc_is_refused_not_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$CUDA_HOME is a promise like the matrix's cuda_home: the build refuses it instead of quietly taking
    /usr/local/cuda-X.Y, and the dry run (host_cuda_home_wanted) names the same place."""
    monkeypatch.setenv("CUDA_HOME", str(tmp_path / "nonexistent"))
    tc = Toolchain("cu130", "13.0", "host")
    assert toolchain.host_cuda_home_wanted(tc) == (tmp_path / "nonexistent", "CUDA_HOME")
    with pytest.raises(ToolchainError, match=r"\$CUDA_HOME: .*nonexistent does not exist") as info:
        toolchain.host_cuda_home(tc)
    assert "unset it" in (info.value.hint or "")
    real = tmp_path / "cuda" / "bin" / "nvcc"
    real.parent.mkdir(parents=True)
    real.write_text("")
    monkeypatch.setenv("CUDA_HOME", str(real.parent.parent))
    assert toolchain.host_cuda_home(tc) == real.parent.parent


BOMB = """
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


@pytest.mark.parametrize("where", ["top", "field"])
def test_an_alias_bomb_is_refused_small_and_fast(where: str) -> None:
    # top: the bomb alone; field: a real matrix whose profile field is the bomb
    text = BOMB if where == "top" else BOMB + BASE.replace("split_kv: false}", "split_kv: *i}")
    tracemalloc.start()
    try:
        msg = refused(text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert f"more than {MAX_NODES} values" in msg and len(msg) < 1000
    assert peak < 50 << 20, f"the loader used {peak / 1e6:.0f} MB on a bomb"


def test_twenty_thousand_levels_deep_is_a_clear_error() -> None:
    for text in ("a: " + "[" * 20_000 + "]" * 20_000, "a:\n" + "".join(" " * i + "- \n" for i in range(2000))):
        msg = refused(text)
        assert "nested" in msg and len(msg) < 1000


def test_an_empty_or_comment_only_file_is_a_clear_error() -> None:
    assert "the file is empty" in refused("")
    assert "the file is empty" in refused("  \n\n")
    assert "holds no values" in refused("# just a comment\n")


def test_a_non_utf8_file_names_the_line_and_byte(tmp_path: Path) -> None:
    f = tmp_path / "build_matrix.yaml"
    f.write_bytes(b"default_target: x\nsources:\n  fa: \xff\xfe\n")
    with pytest.raises(ConfigError, match=r"build_matrix\.yaml:3: not UTF-8 \(byte 33: 0xff\)"):
        load_matrix_file(f)


def test_a_huge_value_is_cut_short_in_the_message() -> None:
    text = BASE.replace("head_dims: [128]", "head_dims: [" + "9" * 100_000 + "]")
    line = text[: text.index("head_dims")].count("\n") + 1
    msg = refused(text)
    assert f"matrix:{line}: cannot read the value '9999" in msg and len(msg) < 1000
    msg = refused(BASE.replace("head_dims: [128]", "head_dims: ['" + "9" * 100_000 + "']"))
    assert "profiles.small.head_dims[0]: FA2 has no kernels for head dim '9999" in msg and len(msg) < 1000


def test_cli_matrix_errors_exit_3_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for content in (b"", b"\xff", BOMB.encode(), b"a: " + b"[" * 20_000):
        f = tmp_path / "m.yaml"
        f.write_bytes(content)
        assert cli.main(["matrix", "--matrix", str(f)]) == ConfigError.exit_code
        err = capsys.readouterr().err
        assert "config error" in err and "Traceback" not in err and len(err) < 2000


def test_control_characters_are_a_config_error() -> None:  # found by tests/unit/test_fuzz.py
    assert "not valid YAML" in refused("a: \x00\n")


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('cu130: {cuda: "13.0"', 'cu130: {cuda: "13.00"'),
        ('cu130: {cuda: "13.0"', 'cu130: {cuda: "013.0"'),
        ('cuda: "13.0", cxx_std: 20', 'cuda: "13.00", cxx_std: 20'),
        ('python: ["3.11"]', 'python: ["3.011"]'),
        ("version: 2.14.1", "version: 2.14.01"),
    ],
)
def test_a_version_with_leading_zeros_is_refused_not_turned_into_another_id(old: str, new: str) -> None:
    # Before: "13.00" passed every check and made targets fa2-cu1300-…; only a default_target that no
    # longer matched stopped it, and a matrix without one would have built them.
    text = BASE.replace(old, new)
    assert text != BASE
    assert "is not a version like 13.0" in refused(text)


@pytest.mark.parametrize("archs", ["[sm_120, sm_120]", "[sm_120, compute_120, compute_120]", "[sm_90, 'sm_90 ']"])
def test_an_arch_twice_in_one_set_is_refused(archs: str) -> None:
    # Before: [compute_120, sm_120, compute_120] made the id …-sm120-ptx120-ptx120-…
    msg = refused(BASE.replace("archs: [[sm_120], [sm_90, sm_120]]", f"archs: [[sm_120], {archs}]"))
    assert "targets[0].matrix.archs[1][" in msg and "is already in this arch set" in msg


@pytest.mark.parametrize("text", ["a: &a [*a]\n", "a: &a {b: *a}\n", "x: &x [1, &y [*x, *y]]\n"])
def test_a_value_that_contains_itself_is_refused(text: str) -> None:  # was a RecursionError
    assert "contains itself through an alias" in refused(text)


@pytest.mark.parametrize(
    ("name", "shown"),
    [('"s\\nx"', "'s\\nx'"), ('"s\\ud800"', "'s\\ud800'"), ('"s\\e]0;x\\a"', "'s\\x1b]0;x\\x07'"), ("..", "'..'")],
)
def test_a_section_name_must_be_a_label(name: str, shown: str) -> None:
    # issue 21: a profile name with a newline or an escape sequence reached the table raw
    message = refused(BASE.replace("small", name))
    assert f"profiles: {shown} is not a label" in message


def test_a_yaml_merge_key_is_refused_by_name() -> None:
    message = refused(BASE + "\nx: &b {a: 1}\ny:\n  <<: *b\n")
    assert "merge key" in message and "could not determine a constructor" not in message
