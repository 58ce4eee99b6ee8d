"""verify: each check on hand-made facts, whole wheels around the committed nvcc-built libtwo.so (pass and
every failure mode), and — marked nvcc — wheels around extensions compiled during the run."""

from __future__ import annotations

import json
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from fawheels import cli
from fawheels._util.errors import InspectError
from fawheels.check import verify, wheelfacts
from fawheels.check.binary import CodeEntry, CodeObject
from fawheels.compile.buildinfo import BuildInfo
from support import cudabins
from support.cudabins import DATA, EXT, build_info, write_wheel

# Every wheel is read by both readers, our parser and the real cuobjdump (nvidia-cuda-cuobjdump)
pytestmark = pytest.mark.tools

LIBTWO = (DATA / "libtwo.so").read_bytes()  # sm_120 SASS + compute_80 PTX (ISA 9.0), needs libcudart.so.13
FILES = {"fa2toy/__init__.py": b"", EXT: LIBTWO}
GOOD_INFO = build_info()


def failing(report: verify.VerifyReport) -> dict[str, str]:
    return {c.name: c.detail for c in report.checks if not c.ok}


def wheel(
    tmp_path: Path, files: dict[str, bytes] | None = None, info: dict[str, object] | None = GOOD_INFO, **kwargs: Any
) -> verify.VerifyReport:
    return verify.verify_wheel(write_wheel(tmp_path, FILES if files is None else files, info=info, **kwargs))


# --- pure checks on facts ------------------------------------------------------------------------------


def facts(
    entries: list[CodeEntry], needed: tuple[str, ...] = ("libcudart.so.13", "libc.so.6")
) -> wheelfacts.WheelFacts:
    return wheelfacts.WheelFacts(
        filename="x.whl",
        members={EXT: ("", 0)},
        dist_info="x.dist-info",
        texts={},
        objects=(CodeObject(EXT, "shared-object", needed, tuple(entries)),),
    )


def e(kind: str, arch: str, isa: str | None = None, container: int = 0) -> CodeEntry:
    return CodeEntry(EXT, kind, arch, isa, isa or "1.8", "zstd", 1, 1, container)


def test_promised_gpus_follow_binary_compatibility() -> None:
    from fawheels.matrix.cudafacts import Arch

    assert verify.promised_ccs([Arch.parse("sm_120")]) == [(12, 0), (12, 1)]
    assert verify.promised_ccs([Arch.parse("sm_120a")]) == [(12, 0)]
    assert verify.promised_ccs([Arch.parse("sm_90a"), Arch.parse("sm_80")]) == [(8, 0), (8, 6), (8, 7), (8, 9), (9, 0)]


def test_sass_check_per_module() -> None:
    info = BuildInfo.from_json(build_info(archs={"sass": ["sm_120", "sm_90"], "ptx": []}))
    ok = verify.check_sass(facts([e("sass", "sm_120"), e("sass", "sm_90")]), info)
    assert ok.ok and "12.1" in ok.detail
    bad = verify.check_sass(facts([e("sass", "sm_120"), e("sass", "sm_90"), e("sass", "sm_120a", container=1)]), info)
    assert not bad.ok and "module 1: nothing runs on 9.0, 12.1" in bad.detail
    assert not verify.check_sass(facts([]), info).ok


def test_ptx_check_against_min_driver() -> None:
    info = BuildInfo.from_json(build_info(archs={"sass": [], "ptx": ["compute_80"]}))
    assert verify.check_ptx(facts([e("ptx", "sm_80", "9.0")]), info).ok
    too_new = verify.check_ptx(facts([e("ptx", "sm_80", "9.2")]), info)
    assert not too_new.ok and "595.45.04" in too_new.detail
    missing = verify.check_ptx(facts([e("sass", "sm_80")]), info)
    assert not missing.ok and "no compute_80 PTX" in missing.detail
    # ISA 8.8 on a CUDA 12.8 target (min driver 570.26) is the seed failure
    info128 = BuildInfo.from_json(build_info(min_driver="570.26"))
    assert not verify.check_ptx(facts([e("ptx", "sm_80", "8.8")]), info128).ok
    assert verify.check_ptx(facts([e("ptx", "sm_80", "8.7")]), info128).ok


@pytest.mark.parametrize(
    ("needed", "ok"),
    [
        (
            (
                "libc10.so",
                "libc10_cuda.so",
                "libtorch.so",
                "libtorch_cpu.so",
                "libtorch_cuda.so",
                "libtorch_python.so",
                "libcudart.so.13",
                "libstdc++.so.6",
                "libm.so.6",
                "libgcc_s.so.1",
                "libc.so.6",
                "libpthread.so.0",
                "libdl.so.2",
                "librt.so.1",
                "ld-linux-x86-64.so.2",
            ),
            True,
        ),
        (("libcudart.so.12",), False),
        (("libcuda.so.1",), False),
        (("libpython3.11.so.1.0",), False),
    ],
)
def test_needed_libraries(needed: tuple[str, ...], ok: bool) -> None:
    assert verify.check_needed(facts([], needed), BuildInfo.from_json(build_info())).ok == ok


# --- wheels around the committed extension ----------------------------------------------------------------


def test_a_good_wheel_passes_and_the_report_lands_beside_it(tmp_path: Path) -> None:
    path = write_wheel(tmp_path, FILES, info=build_info())
    report = verify.verify_wheel(path)
    assert report.ok, failing(report)
    assert [c.name for c in report.checks] == [
        "format",
        "record",
        "readers",
        "build-info",
        "extensions",
        "sass",
        "ptx",
        "dt-needed",
        "requires-torch",
        "op-schemas",
    ]
    assert report.target == "fa2toy-cu130-torch2.14-sm120-cp311"
    written = verify.write_report(path)
    assert written == tmp_path / (path.name + ".verify.json")
    doc = json.loads(written.read_text())
    assert doc["ok"] is True and doc["wheel"] == path.name and len(doc["sha256"]) == 64
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, written.name])


def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write_wheel(tmp_path, FILES, info=build_info())
    assert cli.main(["verify", str(good)]) == 0
    assert "verified" in capsys.readouterr().out
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    bad = write_wheel(bad_dir, FILES, info=build_info(archs={"sass": ["sm_120", "sm_90"], "ptx": []}))
    assert cli.main(["verify", "--json", str(bad)]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False and any(c["name"] == "sass" and not c["ok"] for c in doc["checks"])


@pytest.mark.parametrize(
    ("kwargs", "check", "says"),
    [
        ({"info": build_info(archs={"sass": ["sm_120", "sm_90"], "ptx": []})}, "sass", "nothing runs on 9.0"),
        ({"info": build_info(archs={"sass": ["sm_120"], "ptx": ["compute_90"]})}, "ptx", "no compute_90 PTX"),
        ({"requires": ("torch==2.13.*",)}, "requires-torch", "build-info says torch==2.14.*"),
        ({"requires": ()}, "requires-torch", "no torch"),
        ({"requires": ("torch==2.14.*", "torch>=2")}, "requires-torch", "Requires-Dist has"),
        ({"wheel_tag": "cp312-cp312-linux_x86_64"}, "format", "WHEEL tags"),
        ({"tamper": {"fa2toy/__init__.py": b"print('changed')"}}, "record", "hash or size differs"),
        ({"info": build_info(min_driver="570.26")}, "build-info", "is not CUDA 13.0's minimum 580.65.06"),
        ({"info": build_info(python="3.12")}, "build-info", "tagged cp311"),
        (
            {"info": build_info(torch={"version": "2.13.0+cu130", "cuda": "13.0", "requirement": "torch==2.14.*"})},
            "requires-torch",
            "which torch==2.14.* excludes",
        ),
        ({"info": build_info(extensions=[EXT, "fa2toy/_D.so"])}, "build-info", "fa2toy/_D.so is not in the wheel"),
        ({"info": build_info(extensions=[])}, "extensions", "not listed in build-info.json"),
        ({"info": build_info(archs={"sass": ["sm_101"], "ptx": []})}, "build-info", "cannot compile sm_101"),
        ({"info": None}, "build-info", "no fa2toy-1.0+cu130torch2.14.dist-info/build-info.json"),
        ({"info": build_info(schema=2)}, "sass", "schema 2"),
    ],
)
def test_each_failure_mode(tmp_path: Path, kwargs: dict[str, Any], check: str, says: str) -> None:
    report = wheel(tmp_path, **kwargs)
    assert not report.ok
    assert says in failing(report).get(check, ""), failing(report)


def test_ptx_too_new_for_the_targets_oldest_driver(tmp_path: Path) -> None:
    # the same ISA 9.0 PTX, promised to a CUDA 12.9 target whose oldest driver (575.51.03) cannot JIT it
    info = build_info(
        toolchain={"cuda": "12.9"},
        torch={"version": "2.14.1+cu129", "cuda": "12.9", "requirement": "torch==2.14.*"},
        min_driver="575.51.03",
        cuda_runtime_major=12,
    )
    report = wheel(tmp_path, info=info)
    assert "needs driver >= 580.65.06, the target supports 575.51.03" in failing(report)["ptx"]
    assert "libcudart.so.13" in failing(report)["dt-needed"]


def test_unreadable_extension_fails_the_check_not_the_run(tmp_path: Path) -> None:
    report = wheel(tmp_path, {EXT: LIBTWO[: len(LIBTWO) // 2]})
    assert failing(report)["extensions"].startswith(f"{EXT}: not a readable ELF object")


def test_wrong_types_in_build_info_fail_checks_not_the_run(tmp_path: Path) -> None:
    report = wheel(tmp_path, info=build_info(archs={"sass": ["sm_12"], "ptx": []}, min_driver="new"))
    assert not report.ok and "unusable" in failing(report)["build-info"]


def test_not_a_wheel_is_an_inspect_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk-1.0-py3-none-any.whl"
    junk.write_bytes(b"PK but not really")
    with pytest.raises(InspectError):
        verify.verify_wheel(junk)
    evil = tmp_path / "evil-1.0-cp311-cp311-linux_x86_64.whl"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("evil-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\n")
        zf.writestr("../evil.so", LIBTWO)
    assert cli.main(["verify", str(evil)]) == InspectError.exit_code
    assert "path traversal" in capsys.readouterr().err


def test_bad_filename_is_a_format_failure(tmp_path: Path) -> None:
    path = write_wheel(tmp_path, FILES, info=build_info())
    odd = path.rename(tmp_path / "not-a-wheel-name.whl")
    report = verify.verify_wheel(odd)
    assert "bad wheel file name" in failing(report)["format"]


# --- nvcc: extensions compiled now -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def extensions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("ext")
    jobs = {
        "sm120": lambda: cudabins.compile_so(out / "sm120.so", [cudabins.HOST], ("sm_120",)),
        # static runtime, so only the PTX decides the outcome
        "ptx-static": lambda: cudabins.compile_so(out / "ptx.so", [cudabins.HOST], ("compute_120",), cudart="static"),
        "extra-lib": lambda: cudabins.compile_so(out / "z.so", [cudabins.HOST], ("sm_120",), libs=("z",)),
    }
    with ThreadPoolExecutor(2) as pool:
        futures = {n: pool.submit(j) for n, j in jobs.items()}
        return {n: f.result().read_bytes() for n, f in futures.items()}


needs_nvcc = pytest.mark.skipif(cudabins.find_nvcc() is None, reason="needs nvcc")


@pytest.mark.nvcc
@needs_nvcc
def test_fresh_extension_passes(extensions: dict[str, bytes], tmp_path: Path) -> None:
    report = wheel(tmp_path, {EXT: extensions["sm120"]})
    assert report.ok, failing(report)


@pytest.mark.nvcc
@needs_nvcc
def test_fresh_ptx_only_extension_on_a_12_9_target(extensions: dict[str, bytes], tmp_path: Path) -> None:
    info = build_info(
        toolchain={"cuda": "12.9"},
        torch={"version": "2.14.1+cu129", "cuda": "12.9", "requirement": "torch==2.14.*"},
        min_driver="575.51.03",
        cuda_runtime_major=12,
        archs={"sass": [], "ptx": ["compute_120"]},
    )
    report = wheel(tmp_path, {EXT: extensions["ptx-static"]}, info=info)
    assert set(failing(report)) == {"ptx"}, failing(report)
    (tmp_path / "13").mkdir()
    same_on_13 = wheel(
        tmp_path / "13", {EXT: extensions["ptx-static"]}, info=build_info(archs={"sass": [], "ptx": ["compute_120"]})
    )
    assert same_on_13.ok, failing(same_on_13)


@pytest.mark.nvcc
@needs_nvcc
def test_fresh_extension_with_an_unexpected_library(extensions: dict[str, bytes], tmp_path: Path) -> None:
    report = wheel(tmp_path, {EXT: extensions["extra-lib"]})
    assert set(failing(report)) == {"dt-needed"} and "libz.so.1" in failing(report)["dt-needed"]


def test_malformed_wheel_metadata_fails_checks_not_the_run(tmp_path: Path) -> None:
    report = wheel(tmp_path, wheel_tag="not-a-tag-at-all")
    assert "is not interpreter-abi-platform" in failing(report)["format"]  # issue 21: was "not enough values"
    (tmp_path / "r").mkdir()
    broken_record = {f"{cudabins.PKG}-{cudabins.VERSION}.dist-info/RECORD": b'a,b\n\x00"unterminated'}
    report = wheel(tmp_path / "r", tamper=broken_record)
    assert "record" in failing(report)


def test_a_build_info_field_of_the_wrong_type_fails_naming_the_field(tmp_path: Path) -> None:
    report = wheel(tmp_path, info=build_info(archs={"sass": "sm_120", "ptx": []}))
    assert "archs.sass: expected a list" in failing(report)["build-info"]
    assert "archs.sass: expected a list" in failing(report)["sass"]
