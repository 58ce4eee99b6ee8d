"""Fuzz tier: the ELF, fatbin and zip readers under mutated real binaries and random bytes.

Only the project's own errors may escape (InspectError; verify turns member-level trouble into failed
checks), and no input may make a reader hold much more memory than the input itself. Fixed budget:
derandomized (the same examples on every run, so CI cannot flake), no example database, a capped example
count per test; the whole file runs in well under 40 s on a 2-core machine.
"""

from __future__ import annotations

import io
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fawheels._util.errors import FawheelsError
from fawheels.check import binary as inspect
from fawheels.check import verify, wheelzip
from support.cudabins import DATA, EXT, build_info, write_wheel

pytestmark = pytest.mark.fuzz

SEEDS = {
    name: (DATA / name).read_bytes()
    for name in (
        "libtwo.so",
        "sm_120f.cubin",
        "multi.fatbin",
        "sm80+ptx80-speed.fatbin",
        "sm80+ptx80-size.fatbin",
        "lto80.fatbin",
    )
}
MEMORY_CAP = 32 << 20  # far above what any of these (< 50 KB) inputs needs
BUDGET = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def bounded(read: Callable[[], object]) -> None:
    """Run one reader: only FawheelsError may escape, and its peak Python memory stays under the cap."""
    tracemalloc.start()
    try:
        read()
    except FawheelsError as exc:
        assert str(exc)  # a message for the user, naming what failed
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < MEMORY_CAP, f"peak {peak} bytes"


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, bytes]:
    """A real binary with a few bytes overwritten (often in its headers), cut short, or extended."""
    name = draw(st.sampled_from(sorted(SEEDS)))
    data = bytearray(SEEDS[name])
    for _ in range(draw(st.integers(1, 4))):
        # headers live at the start of fatbins and at both ends of ELF files: bias towards them
        pos = draw(
            st.one_of(
                st.integers(0, min(255, len(data) - 1)),
                st.integers(max(0, len(data) - 2048), len(data) - 1),
                st.integers(0, len(data) - 1),
            )
        )
        width = draw(st.sampled_from([1, 1, 2, 4, 8]))
        value = draw(st.sampled_from([b"\x00", b"\xff", b"\x7f", b"\x80"]) | st.binary(min_size=1, max_size=1))
        data[pos : pos + width] = (value * width)[:width]
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return name, bytes(data)


@BUDGET
@given(mutated())
def test_parser_on_mutated_real_binaries(case: tuple[str, bytes]) -> None:
    name, data = case
    bounded(lambda: inspect.parse_bytes(data, name))


@BUDGET
@given(st.sampled_from([b"\x7fELF", b"\x50\xed\x55\xba", b"\xb1\x43\x62\x46", b""]), st.binary(max_size=4096))
def test_parser_on_random_bytes_behind_a_magic(magic: bytes, tail: bytes) -> None:
    bounded(lambda: inspect.parse_bytes(magic + tail, "random"))


@BUDGET
@given(mutated(), st.integers(0, 3))
def test_embedded_scan_on_mutated_fatbins(case: tuple[str, bytes], pad: int) -> None:
    _name, data = case
    member = wheelzip.Member("m.dat", b"", len(data) + pad, b"\n" * pad + data, fatbin_at=pad)
    bounded(lambda: wheelzip.embedded_fatbin(member, "w.whl"))


def _wheel_bytes(tmp: Path, member: bytes) -> bytes:
    path = write_wheel(tmp, {"fa2toy/__init__.py": b"", EXT: member}, info=build_info())
    data = path.read_bytes()
    path.unlink()
    return data


@pytest.fixture(scope="module")
def wheel_seed(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return _wheel_bytes(tmp_path_factory.mktemp("fuzz"), SEEDS["libtwo.so"])


@BUDGET
@given(data=st.data())
def test_zip_readers_on_mutated_wheels(
    wheel_seed: bytes, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    """A real wheel with bytes overwritten anywhere (local headers, deflate streams, central directory)."""
    whole = bytearray(wheel_seed)
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.one_of(st.integers(0, len(whole) - 1), st.integers(len(whole) - 600, len(whole) - 1)))
        whole[pos] = data.draw(st.integers(0, 255))
    path = tmp_path_factory.mktemp("w") / "fa2toy-1.0+cu130torch2.14-cp311-cp311-linux_x86_64.whl"
    path.write_bytes(bytes(whole))
    bounded(lambda: verify.verify_wheel(path, reader="fawheels"))
    bounded(lambda: wheelzip.read_path(path))


@BUDGET
@given(
    members=st.lists(
        st.tuples(
            st.sampled_from(
                ["a.so", "x.dist-info/WHEEL", "x.dist-info/RECORD", "x.dist-info/build-info.json", "d/e.bin"]
            ),
            st.binary(max_size=512) | st.sampled_from(sorted(SEEDS.values())),
        ),
        max_size=5,
    )
)
@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_zip_readers_on_random_wheels(
    tmp_path_factory: pytest.TempPathFactory, members: list[tuple[str, bytes]]
) -> None:
    """Random members, duplicate names included, some of them real binaries."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("x.dist-info/WHEEL", "Wheel-Version: 1.0\n")
        for name, blob in members:
            zf.writestr(name, blob)
    path = tmp_path_factory.mktemp("r") / "x-1.0-py3-none-any.whl"
    path.write_bytes(buf.getvalue())
    bounded(lambda: verify.verify_wheel(path, reader="fawheels"))
    bounded(lambda: wheelzip.read_path(path))
