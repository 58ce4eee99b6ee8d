"""The pure build planner and the reproducible wheel writer (no compiler is run here)."""

from __future__ import annotations

import functools
import hashlib
import zipfile
from pathlib import Path

import pytest

from fawheels._util.errors import BuildError
from fawheels.compile.execute import ninja_job_times
from fawheels.compile.plan import SCHEDULE_VAR, configure_identity, gencode_flags, nvcc_parallel_flags, plan_build
from fawheels.compile.units import kernels_header
from fawheels.compile.wheel import WheelSpec, write_wheel
from fawheels.matrix.config import load_matrix_file
from fawheels.matrix.cudafacts import Arch
from fawheels.toolchain.toolkit import parse_nvcc_version, pip_toolkit_requirements
from support.fakes import fake_toolkit, fake_torch

MATRIX = load_matrix_file(Path(__file__).parents[2] / "build_matrix.yaml")


def test_nvcc_parallelism_is_a_function_of_the_target_not_the_machine(tmp_path: Path) -> None:
    # The flags are in every compile command and in build-info.json: another machine (cores, memory, job
    # count) must give the same ones, or the wheel and the compiler cache keys would follow the machine.
    assert nvcc_parallel_flags(1) == ["--threads=1"]
    assert nvcc_parallel_flags(2) == ["--threads=2"]
    target = MATRIX.target("fa2-cu130-torch2.14-sm90-sm120-cp311")
    plans = [
        plan_build(
            target,
            tmp_path / "w/src/t",
            tmp_path / "w",
            fake_toolkit(),
            fake_torch(tmp_path),
            jobs=jobs,
            cpus=cpus,
            recipe_dir=tmp_path / "w/recipe",
            source_date_epoch=1,
        )
        for jobs, cpus in [(2, 2), (16, 16), (1, 128)]
    ]
    assert plans[0].recorded_flags == plans[1].recorded_flags == plans[2].recorded_flags
    assert configure_identity(plans[0].configure) == configure_identity(plans[1].configure)


def test_schedule_reorders_compiles_but_not_the_link(tmp_path: Path) -> None:
    target = MATRIX.target(MATRIX.default_target)
    units = target.profile.translation_units()
    longest_first = sorted(units, key=lambda u: ("_split_" not in u, "_causal" in u, u))
    plan = functools.partial(
        plan_build,
        target,
        tree=tmp_path / "w/src/t",
        workdir=tmp_path / "w",
        tk=fake_toolkit(),
        torch=fake_torch(tmp_path),
        jobs=2,
        cpus=2,
        recipe_dir=tmp_path / "w/recipe",
        source_date_epoch=1,
    )
    plain = plan()
    ordered = plan(schedule=longest_first)

    def var(plan_configure: list[str], name: str) -> list[str]:
        value = next(a for a in plan_configure if a.startswith(f"-D{name}=")).split("=", 1)[1]
        return [Path(x).name for x in value.split(";")]

    assert var(ordered.configure, SCHEDULE_VAR) == longest_first
    assert var(ordered.configure, "FA_KERNEL_SOURCES") == var(plain.configure, "FA_KERNEL_SOURCES") == units
    # A new schedule alone must not throw away the configured tree (and with it every object).
    assert configure_identity(ordered.configure) == configure_identity(plain.configure)
    assert ordered.configure != plain.configure
    with pytest.raises(BuildError, match="not a permutation"):
        plan(schedule=units[:-1])


def test_job_meter_goes_in_front_of_the_compiler_cache(tmp_path: Path) -> None:
    target = MATRIX.target(MATRIX.default_target)
    plan = plan_build(
        target,
        tmp_path / "t",
        tmp_path / "w",
        fake_toolkit(),
        fake_torch(tmp_path),
        jobs=2,
        cpus=2,
        recipe_dir=tmp_path / "r",
        source_date_epoch=1,
        launcher="/usr/bin/sccache",
        job_launcher=["/py", "/w/tools/fawheels-job.py", "/w/jobstats"],
    )
    assert "-DCMAKE_CUDA_COMPILER_LAUNCHER=/py;/w/tools/fawheels-job.py;/w/jobstats;/usr/bin/sccache" in plan.configure
    assert "-DCMAKE_CXX_COMPILER_LAUNCHER=/py;/w/tools/fawheels-job.py;/w/jobstats;/usr/bin/sccache" in plan.configure


def test_gencode_is_sass_per_arch_and_ptx_only_when_asked() -> None:
    sass = (Arch.parse("sm_90"), Arch.parse("sm_120"), Arch.parse("sm_120f"))
    assert gencode_flags(sass, ()) == [
        "-gencode=arch=compute_90,code=sm_90",
        "-gencode=arch=compute_120,code=sm_120",
        "-gencode=arch=compute_120f,code=sm_120f",
    ]
    assert gencode_flags((), (Arch.parse("compute_120"),)) == ["-gencode=arch=compute_120,code=compute_120"]


def test_kernels_header_lists_exactly_the_profile() -> None:
    header = kernels_header(MATRIX.target(MATRIX.default_target).profile)
    assert header.count("fwd_compiled<") == 4  # one specialization per kernel of the profile
    assert "split_compiled<cutlass::half_t, 128, false> = true;" in header
    assert 'kProfileName = "qwen3"' in header
    one = kernels_header(MATRIX.target("fa2-cu130-torch2.14-sm120-cp311-one-tu").profile)
    assert "fwd_compiled<cutlass::bfloat16_t, 128, true> = true;" in one
    assert "split_compiled<cutlass" not in one


def test_plan_compiles_only_the_profile_with_path_free_recorded_flags(tmp_path: Path) -> None:
    target = MATRIX.target("fa2-cu130-torch2.14-sm90-sm120-cp311")
    tree = tmp_path / "w/src/flash_attn-2.8.3"
    plan = plan_build(
        target,
        tree,
        tmp_path / "w",
        fake_toolkit(),
        fake_torch(tmp_path),
        jobs=4,
        cpus=16,
        recipe_dir=tmp_path / "w/recipe",
        source_date_epoch=1755000000,
    )
    sources = next(a for a in plan.configure if a.startswith("-DFA_KERNEL_SOURCES=")).split("=", 1)[1].split(";")
    assert [Path(s).name for s in sources] == target.profile.translation_units()
    cuda_flags = next(a for a in plan.configure if a.startswith("-DFA_CUDA_FLAGS="))
    assert "-gencode=arch=compute_90,code=sm_90;-gencode=arch=compute_120,code=sm_120" in cuda_flags
    assert f"-Xcompiler=-ffile-prefix-map={tmp_path / 'w'}=/fawheels/build" in cuda_flags
    assert "compute_80" not in cuda_flags  # no sm_80 fallback pretending to serve sm_120
    assert plan.compile[-2:] == ["-j", "4"]
    assert plan.env["SOURCE_DATE_EPOCH"] == "1755000000"
    assert "-DFA_CXX_STD=20" in plan.configure
    recorded = repr(plan.recorded_flags)
    assert str(tmp_path) not in recorded  # build-info.json must not depend on the build directory
    assert plan.so_name == "flash_attn_2_cuda.cpython-311-x86_64-linux-gnu.so"
    wrapper = plan.generated["units/flash_fwd_hdim128_bf16_causal_sm80.cu"]
    assert "int fawheels_module_anchor_flash_fwd_hdim128_bf16_causal_sm80 = 0;" in wrapper
    assert f'#include "{tree}/csrc/flash_attn/src/flash_fwd_hdim128_bf16_causal_sm80.cu"' in wrapper
    assert set(plan.generated) == {
        "include/fawheels_kernels.h",
        *(f"units/{u}" for u in target.profile.translation_units()),
    }


def test_ninja_log_gives_per_job_seconds(tmp_path: Path) -> None:
    (tmp_path / ".ninja_log").write_text(
        "# ninja log v6\n0\t155000\t1\tCMakeFiles/x.dir/a/flash_fwd_hdim128_bf16_causal_sm80.cu.o\tabc\n"
        "10\t9010\t1\tCMakeFiles/x.dir/flash_api.cpp.o\tdef\n"
    )
    assert ninja_job_times(tmp_path) == {"flash_fwd_hdim128_bf16_causal_sm80.cu.o": 155.0, "flash_api.cpp.o": 9.0}
    assert ninja_job_times(tmp_path, skip_lines=2) == {"flash_api.cpp.o": 9.0}  # only this run's jobs


def test_nvcc_version_and_pip_requirements() -> None:
    out = "nvcc: NVIDIA (R) Cuda compiler driver\nCuda compilation tools, release 13.0, V13.0.88\n"
    assert parse_nvcc_version(out) == "13.0.88"
    assert parse_nvcc_version("garbage") is None
    assert pip_toolkit_requirements("13.0.88") == [
        "nvidia-cuda-nvcc==13.0.88",
        "nvidia-nvvm==13.0.88",
        "nvidia-cuda-crt==13.0.88",
        "nvidia-cuda-runtime==13.0.88",
        "nvidia-cuda-cccl==13.0.*",
    ]


def _wheel(dest: Path, files: dict[str, bytes]) -> Path:
    spec = WheelSpec("demo", "1.0+cu130torch2.14", "cp311-cp311-linux_x86_64", "Metadata-Version: 2.1\n", "t")
    return write_wheel(spec, files, {"build-info.json": b"{}"}, dest, source_date_epoch=1755000000)


def test_wheel_bytes_do_not_depend_on_order_dir_or_umask(tmp_path: Path) -> None:
    files = {"demo/__init__.py": b"x = 1\n", "demo_ext.so": b"\x7fELF...", "demo/a.py": b""}
    first = _wheel(tmp_path / "a", files)
    second = _wheel(tmp_path / "b", dict(reversed(list(files.items()))))
    assert hashlib.sha256(first.read_bytes()).digest() == hashlib.sha256(second.read_bytes()).digest()
    with zipfile.ZipFile(first) as zf:
        names = zf.namelist()
        assert names[-1] == "demo-1.0+cu130torch2.14.dist-info/RECORD"
        assert names[:3] == ["demo/__init__.py", "demo/a.py", "demo_ext.so"]
        assert zf.getinfo("demo_ext.so").external_attr >> 16 == 0o100755
        assert zf.getinfo("demo/a.py").date_time == (2025, 8, 12, 12, 0, 0)
        record = zf.read(names[-1]).decode()
        assert "demo/__init__.py,sha256=" in record and record.endswith("RECORD,,\n")
    assert not [p for p in (tmp_path / "a").iterdir() if p.name.startswith(".partial")]
