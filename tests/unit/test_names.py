"""The one rule for names and paths from data (issue 21): grammars, paths proven inside their root, member names
compared as an installer writes them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fawheels._util import names
from fawheels._util.errors import PublishError


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("pkg/ext.so", "pkg/./ext.so"),
        ("pkg/ext.so", "pkg//ext.so"),
        ("pkg/ext.so", "./pkg/ext.so"),
        ("pkg/ext.so", "PKG/Ext.SO"),
        ("pkg/\u010c.so", "pkg/C\u030c.so"),  # NFC and NFD of one name
    ],
)
def test_member_names_that_install_to_one_file_have_one_key(a: str, b: str) -> None:
    assert names.member_key(a) == names.member_key(b)


@pytest.mark.parametrize("parts", [("..", "x"), ("/etc",), ("a/b",), ("cu130", ".."), ("x\x00",), ("\u202ex",)])
def test_a_path_part_that_leaves_the_root_is_refused(tmp_path: Path, parts: tuple[str, ...]) -> None:
    with pytest.raises(PublishError, match="variant"):
        names.under(tmp_path, *parts, field="variant", error=PublishError)


def test_a_symlink_out_of_the_root_is_refused(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "cu130").symlink_to(tmp_path)
    with pytest.raises(PublishError, match="leads outside"):
        names.under(tmp_path / "root", "cu130", field="variant", error=PublishError)


@given(st.lists(st.text(max_size=12), min_size=1, max_size=4))
def test_under_never_returns_a_path_outside_its_root(parts: list[str]) -> None:
    root = Path("/srv/index")
    try:
        path = names.under(root, *parts, field="x", error=PublishError)
    except PublishError:
        return
    assert path == root or root in path.parents


@pytest.mark.parametrize(
    ("check", "value"),
    [
        (lambda v: names.project_name(v, "p", PublishError, normalized=True), "Flash_Attn"),
        (lambda v: names.project_name(v, "p", PublishError), "a;b"),
        (lambda v: names.version(v, "v", PublishError), "1.0\n"),
        (lambda v: names.version(v, "v", PublishError), "1.0.0-1"),  # valid PEP 440, not normalized
        (lambda v: names.label(v, "l", PublishError), "CU130"),
        (lambda v: names.label(v, "l", PublishError), "."),
        (lambda v: names.integer(v, "i", PublishError), True),
        (lambda v: names.integer(v, "i", PublishError), 1 << 70),
    ],
)
def test_values_outside_their_grammar_are_refused_naming_the_field(
    check: Callable[[object], object], value: object
) -> None:
    with pytest.raises(PublishError):
        check(value)
