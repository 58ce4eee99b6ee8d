"""Split-KV units compiled in parts (patch 0005): which units the plan compiles, what it generates for them,
and the order they start in. Pure planning; the real-nvcc proof is in bench/splitkv-parts.md."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from fawheels.compile import jobstats
from fawheels.compile.plan import SCHEDULE_VAR, BuildPlan, configure_identity, plan_build
from fawheels.compile.units import (
    SPLITKV_PARTS,
    SPLITKV_PARTS_HEADER,
    SPLITKV_PARTS_MARKER,
    compile_units,
    splitkv_parts_available,
)
from fawheels.matrix.config import load_matrix_file
from fawheels.matrix.model import Target
from support.fakes import fake_toolkit, fake_torch

REPO = Path(__file__).resolve().parents[2]
MATRIX = load_matrix_file(REPO / "build_matrix.yaml")
PATCH = REPO / "patches/flash-attn-2.8.3/0005-split-kv-parts.patch"
QWEN3_SM90 = "fa2-cu130-torch2.11-sm90-cp312"  # the target whose wall was floored by one split-KV unit


def plan(
    tmp_path: Path,
    target: str | Target = QWEN3_SM90,
    *,
    splitkv_parts: bool,
    schedule: list[str] | None = None,
) -> BuildPlan:
    return plan_build(
        MATRIX.target(target) if isinstance(target, str) else target,
        tmp_path / "w/src/t",
        tmp_path / "w",
        fake_toolkit(),
        fake_torch(tmp_path, torch="2.11.0+cu130", python="3.12"),
        jobs=16,
        cpus=16,
        recipe_dir=tmp_path / "w/recipe",
        source_date_epoch=1,
        schedule=schedule,
        splitkv_parts=splitkv_parts,
    )


def cmake_list(configure: list[str], name: str) -> list[str]:
    value = next(a for a in configure if a.startswith(f"-D{name}=")).split("=", 1)[1]
    return [Path(x).name for x in value.split(";")]


def test_each_split_kv_unit_becomes_a_dispatch_unit_and_four_parts() -> None:
    profile = MATRIX.target(QWEN3_SM90).profile
    upstream = profile.translation_units()
    assert compile_units(profile, splitkv_parts=False) == upstream  # an unpatched source: as before
    units = compile_units(profile, splitkv_parts=True)
    assert len(upstream) == 8 and len(units) == 4 + 4 * 5
    split = "flash_fwd_split_hdim128_fp16_sm80"
    assert units[units.index(f"{split}_dispatch.cu") :][:5] == [
        f"{split}_dispatch.cu",
        f"{split}_part_split0_softcap0.cu",
        f"{split}_part_split0_softcap1.cu",
        f"{split}_part_split1_softcap0.cu",
        f"{split}_part_split1_softcap1.cu",
    ]
    assert [u for u in units if "_split_" not in u] == [u for u in upstream if "_split_" not in u]
    # CMake names each object library after the file name up to its first dot: it must stay unique.
    assert len({u.split(".")[0] for u in units}) == len(units)


def test_plan_links_the_parts_in_a_fixed_order_and_generates_them(tmp_path: Path) -> None:
    sharded = plan(tmp_path, splitkv_parts=True)
    units = compile_units(MATRIX.target(QWEN3_SM90).profile, splitkv_parts=True)
    assert cmake_list(sharded.configure, "FA_KERNEL_SOURCES") == units
    assert set(sharded.generated) == {"include/fawheels_kernels.h", *(f"units/{u}" for u in units)}
    dispatch = sharded.generated["units/flash_fwd_split_hdim128_bf16_causal_sm80_dispatch.cu"]
    # The macro must come before the upstream unit, which includes the launch template.
    assert dispatch.index("#define FAWHEELS_SPLITKV_PARTS_EXTERN 1") < dispatch.index(
        f'#include "{tmp_path}/w/src/t/csrc/flash_attn/src/flash_fwd_split_hdim128_bf16_causal_sm80.cu"'
    )
    part = sharded.generated["units/flash_fwd_split_hdim128_fp16_sm80_part_split1_softcap0.cu"]
    assert (
        "template void run_flash_splitkv_fwd_part<splitkv_dispatch_traits<cutlass::half_t, 128>, "
        "false, true, false>(Flash_fwd_params &params, cudaStream_t stream);"
    ) in part
    assert "FAWHEELS_SPLITKV_PARTS_EXTERN" not in part
    assert str(tmp_path) not in part  # no build path in a part: the include path finds the header
    anchors = [m for text in sharded.generated.values() for m in re.findall(r"fawheels_module_anchor_\w+", text)]
    assert len(anchors) == len(set(anchors)) == len(units)  # one stable module id per unit
    # Unsharded (a source without patch 0005): the same plan as before this change.
    plain = plan(tmp_path, splitkv_parts=False)
    assert cmake_list(plain.configure, "FA_KERNEL_SOURCES") == MATRIX.target(QWEN3_SM90).profile.translation_units()


def test_longest_first_puts_the_parts_after_the_forward_units(tmp_path: Path) -> None:
    units = compile_units(MATRIX.target(QWEN3_SM90).profile, splitkv_parts=True)
    static = {u: jobstats.static_estimate_s(u, 1) for u in units}
    order = jobstats.schedule(units, static)
    assert order[:2] == ["flash_fwd_hdim128_bf16_sm80.cu", "flash_fwd_hdim128_fp16_sm80.cu"]  # 148 s each
    assert all("_dispatch" in u for u in order[-4:])  # combine kernels only
    # Before the parts the longest job was a whole split-KV unit (~305 s); now no job is above ~148 s.
    assert max(static.values()) == 148.0
    assert max(jobstats.static_estimate_s(u, 1) for u in MATRIX.target(QWEN3_SM90).profile.translation_units()) == 305
    ordered = plan(tmp_path, splitkv_parts=True, schedule=order)
    assert cmake_list(ordered.configure, SCHEDULE_VAR) == order
    assert configure_identity(ordered.configure) == configure_identity(plan(tmp_path, splitkv_parts=True).configure)
    record = jobstats.JobRecord(
        output="flash_fwd_split_hdim128_bf16_sm80_part_split0_softcap1.cu.o",
        exit=0,
        wall_s=1.0,
        cpu_s=1.0,
        peak_rss_bytes=1,
        max_process_rss_bytes=1,
    )
    assert record.unit in units  # measured times find their unit again


def test_parts_are_on_only_where_the_patch_is(tmp_path: Path) -> None:
    assert not splitkv_parts_available(tmp_path)  # no header at all
    (tmp_path / SPLITKV_PARTS_HEADER).write_text("void run_flash_splitkv_fwd(...);\n")  # upstream's
    assert not splitkv_parts_available(tmp_path)
    text = PATCH.read_text()
    # The marker is what the patch adds, and the parts fawheels generates are the switches it moves out.
    assert f"+void {SPLITKV_PARTS_MARKER}(Flash_fwd_params &params, cudaStream_t stream)" in text
    assert "+template<typename Kernel_traits, bool Is_causal, bool Split, bool Is_softcap>" in text
    assert "+    BOOL_SWITCH(params.num_splits > 1, Split, [&] {" in text
    assert "+        SOFTCAP_SWITCH(params.softcap > 0.0, Is_softcap, [&] {" in text
    assert sorted(SPLITKV_PARTS) == [(False, False), (False, True), (True, False), (True, True)]
    (tmp_path / SPLITKV_PARTS_HEADER).write_text(f"void {SPLITKV_PARTS_MARKER}(...);\n")
    assert splitkv_parts_available(tmp_path)
    for source in ("flash-attn-2.8.3", "flash-attn-2.8.3-vllm"):  # both FA2 recipes build in parts
        assert PATCH.name in [Path(p).name for p in MATRIX.sources[source].patches]


def test_a_profile_without_softcap_compiles_no_softcap_parts_and_passes_the_switches(tmp_path: Path) -> None:
    target = MATRIX.target(QWEN3_SM90)
    lean = dataclasses.replace(target, profile=dataclasses.replace(target.profile, leave_out=("alibi", "softcap")))
    units = compile_units(lean.profile, splitkv_parts=True)
    assert len(units) == 4 + 4 * 3  # forward units; per split-KV unit its dispatch and the two softcap-free parts
    assert not [u for u in units if "softcap1" in u]
    built = plan(tmp_path, lean, splitkv_parts=True)
    defines = built.recorded_flags["defines"]
    assert defines[-2:] == ["FLASHATTENTION_DISABLE_ALIBI", "FLASHATTENTION_DISABLE_SOFTCAP"]
    assert "FLASHATTENTION_DISABLE_ALIBI" not in plan(tmp_path, splitkv_parts=True).recorded_flags["defines"]
    # Measurements of a lean build are kept apart from the full profile's (fewer kernels per unit).
    full = jobstats.stats_key("13.0.88", ["sm_90"], units[0], ["--threads=1"])
    lean_key = jobstats.stats_key("13.0.88", ["sm_90"], units[0], ["--threads=1", "-DFLASHATTENTION_DISABLE_ALIBI"])
    assert full != lean_key and full == jobstats.stats_key("13.0.88", ["sm_90"], units[0], ["--threads=1", "-O3"])
