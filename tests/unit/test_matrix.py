"""The build matrix from YAML strings: expansion, ids, and every refusal naming its field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fawheels._util.errors import ConfigError
from fawheels.matrix.config import load_matrix, load_matrix_file, render_targets
from support.matrices import BASE


def with_targets(targets: str, default: str = "fa2-cu130-torch2.14-sm120-cp311") -> str:
    head = BASE.split("targets:")[0].replace("fa2-cu130-torch2.14-sm120-cp311", default)
    return head + "targets:\n" + targets


def refused(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_matrix(text)
    return str(info.value)


def test_expands_axes_into_target_ids() -> None:
    m = load_matrix(BASE)
    assert [t.id for t in m.targets] == ["fa2-cu130-torch2.14-sm120-cp311", "fa2-cu130-torch2.14-sm90-sm120-cp311"]
    t = m.target("fa2-cu130-torch2.14-sm90-sm120-cp311")
    assert [a.sm for a in t.sass] == ["sm_90", "sm_120"]
    assert t.local_version == "cu130torch2.14sm90sm120small"
    assert t.wheel_name == "flash_attn-2.8.3+cu130torch2.14sm90sm120small-cp311-cp311-linux_x86_64.whl"
    assert t.torch.requirement == "torch==2.14.*"
    assert str(t.min_driver) == "580.65.06"
    assert t.profile.translation_units() == ["flash_fwd_hdim128_bf16_causal_sm80.cu"]


def test_objects_are_frozen() -> None:
    t = load_matrix(BASE).targets[0]
    with pytest.raises(AttributeError):
        t.python = "3.12"  # type: ignore[misc]


def test_profile_translation_units_cover_split_kv() -> None:
    text = BASE.replace("causal: [true], split_kv: false", "causal: [false, true], split_kv: true")
    units = load_matrix(text).targets[0].profile.translation_units()
    assert units == [
        "flash_fwd_hdim128_bf16_sm80.cu",
        "flash_fwd_hdim128_bf16_causal_sm80.cu",
        "flash_fwd_split_hdim128_bf16_sm80.cu",
        "flash_fwd_split_hdim128_bf16_causal_sm80.cu",
    ]


def test_ptx_arch_gets_its_own_id_fragment() -> None:
    m = load_matrix(
        BASE.replace("[[sm_120], [sm_90, sm_120]]", "[[sm_120, compute_120]]").replace(
            "default_target: fa2-cu130-torch2.14-sm120-cp311", "default_target: fa2-cu130-torch2.14-sm120-ptx120-cp311"
        )
    )
    t = m.targets[0]
    assert t.id == "fa2-cu130-torch2.14-sm120-ptx120-cp311"
    assert [a.compute for a in t.ptx] == ["compute_120"]


def test_unknown_key_is_refused_with_path_and_suggestion() -> None:
    msg = refused(BASE.replace("profile: [small]", "profile: [small]\n      pyton: ['3.12']"))
    assert "targets[0].matrix.pyton: unknown key (did you mean 'python'?)" in msg


def test_unknown_top_level_key() -> None:
    assert "toolchain: unknown key (did you mean 'toolchains'?)" in refused("toolchain: {}\n" + BASE)


def test_wrong_type_names_the_field() -> None:
    msg = refused(BASE.replace('cu130: {cuda: "13.0", provision: host}', "cu130: {cuda: 13.0, provision: host}"))
    assert "toolchains.cu130.cuda: expected a string, got the number 13.0" in msg
    assert 'quote it: cuda: "13.0"' in msg


def test_unknown_arch_suggests_the_closest() -> None:
    msg = refused(BASE.replace("[[sm_120], [sm_90, sm_120]]", "[[sm_120], [sm_90, sm_12]]"))
    assert "targets[0].matrix.archs[1][1]: unknown arch 'sm_12'" in msg
    assert "did you mean" in msg


def test_unknown_reference_suggests() -> None:
    assert "targets[0].matrix.profile[0]: unknown profile 'smal' (did you mean 'small'?)" in refused(
        BASE.replace("profile: [small]", "profile: [smal]")
    )


def test_duplicate_target_id_is_refused() -> None:
    group = BASE.split("targets:\n")[1]
    msg = refused(BASE + group)
    assert "targets[1]: duplicate target id 'fa2-cu130-torch2.14-sm120-cp311' (also made by targets[0])" in msg


def test_exclude_removes_combinations_and_must_match_a_value() -> None:
    text = BASE.replace("profile: [small]\n", "profile: [small]\n    exclude:\n      - {archs: [sm_90, sm_120]}\n")
    assert [t.id for t in load_matrix(text).targets] == ["fa2-cu130-torch2.14-sm120-cp311"]
    bad = BASE.replace("profile: [small]\n", "profile: [small]\n    exclude:\n      - {python: '3.9'}\n")
    assert "targets[0].exclude[0].python: '3.9' is not a value of matrix.python" in refused(bad)


def test_sm120_needs_cuda_12_8() -> None:
    text = with_targets(
        """  - recipe: fa2
    source: fa
    allow_cuda_minor_mismatch: true
    matrix: {toolchain: [cu126], torch: ["2.8"], archs: [[sm_120]], python: ["3.11"], profile: [small]}
""",
        default="fa2-cu126-torch2.8-sm120-cp311",
    )
    msg = refused(text)
    assert "sm_120 needs CUDA >= 12.8 (toolkit is 12.6)" in msg


def test_family_and_sm121_need_cuda_12_9() -> None:
    for arch in ("sm_120f", "sm_121"):
        text = with_targets(
            f"""  - recipe: fa2
    source: fa
    matrix: {{toolchain: [cu128], torch: ["2.8"], archs: [[{arch}]], python: ["3.11"], profile: [small]}}
""",
            default="x",
        )
        assert f"{arch} needs CUDA >= 12.9 (toolkit is 12.8)" in refused(text)


def test_cuda13_refuses_sm70() -> None:
    msg = refused(BASE.replace("[[sm_120], [sm_90, sm_120]]", "[[sm_70]]"))
    assert "CUDA 13.0 cannot compile sm_70 offline" in msg


def test_torch_cuda_major_mismatch_is_refused() -> None:
    text = with_targets(
        """  - recipe: fa2
    source: fa
    matrix: {toolchain: [cu130], torch: ["2.8"], archs: [[sm_120]], python: ["3.11"], profile: [small]}
""",
        default="x",
    )
    msg = refused(text)
    assert "torch 2.8.0 was built for CUDA 12.8 but toolchain 'cu130' is CUDA 13.0; the CUDA major must match" in msg


def test_torch_cuda_minor_mismatch_needs_an_allowance() -> None:
    group = """  - recipe: fa2
    source: fa
{extra}    matrix: {{toolchain: [cu129], torch: ["2.8"], archs: [[sm_120]], python: ["3.11"], profile: [small]}}
"""
    msg = refused(with_targets(group.format(extra=""), default="fa2-cu129-torch2.8-sm120-cp311"))
    assert "allow_cuda_minor_mismatch: true" in msg
    m = load_matrix(
        with_targets(
            group.format(extra="    allow_cuda_minor_mismatch: true\n"), default="fa2-cu129-torch2.8-sm120-cp311"
        )
    )
    assert m.targets[0].id == "fa2-cu129-torch2.8-sm120-cp311"


def test_sdist_must_be_pinned() -> None:
    msg = refused(
        BASE.replace("sha256: 1e71dd64a9e0280e0447b8a0c2541bad4bf6ac65bdeaa2f90e51a9e57de0370d", "sha256: abc")
    )
    assert "sources.fa.sha256: an sdist source must be pinned" in msg


def test_pip_provision_refused_for_cuda12() -> None:
    msg = refused(
        BASE.replace(
            'cu128: {cuda: "12.8", provision: host}', 'cu128: {cuda: "12.8", provision: pip, pip_version: "12.8.93"}'
        )
    )
    assert "toolchains.cu128.provision: CUDA 12.8 cannot be provisioned from PyPI" in msg


def test_bad_head_dim_and_default_target() -> None:
    assert "profiles.small.head_dims[0]: FA2 has no kernels for head dim 100" in refused(
        BASE.replace("head_dims: [128]", "head_dims: [100]")
    )
    assert "default_target: 'nope' is not a target id" in refused(
        BASE.replace("default_target: fa2-cu130-torch2.14-sm120-cp311", "default_target: nope")
    )


def test_unknown_target_selection_suggests() -> None:
    m = load_matrix(BASE)
    with pytest.raises(ConfigError, match=r"did you mean 'fa2-cu130-torch2\.14-sm120-cp311'"):
        m.target("fa2-cu130-torch2.14-sm120-cp312")


def test_render_formats() -> None:
    m = load_matrix(BASE)
    table = render_targets(m, "table")
    assert "fa2-cu130-torch2.14-sm120-cp311" in table and "(default)" in table
    doc = json.loads(render_targets(m, "json"))
    assert doc["schema"] == 1 and doc["default_target"] == m.default_target
    assert doc["targets"][1]["sass"] == ["sm_90", "sm_120"]
    gh = json.loads(render_targets(m, "github"))
    assert gh["include"][0] == {"target": "fa2-cu130-torch2.14-sm120-cp311", "cuda": "13.0", "provision": "host"}


def test_repository_matrix_is_valid() -> None:
    m = load_matrix_file(Path(__file__).parents[2] / "build_matrix.yaml")
    assert m.default_target == "fa2-cu130-torch2.14-sm120-cp311"
    default = m.target(m.default_target)
    assert default.profile.head_dims == (128,) and default.profile.split_kv
    assert [a.sm for a in default.sass] == ["sm_120"]
    one_tu = m.target("fa2-cu130-torch2.14-sm120-cp311-one-tu")
    assert len(one_tu.profile.translation_units()) == 1


def test_local_label_names_arch_set_profile_and_a_suffix_beyond_the_profile() -> None:
    text = with_targets(
        """
  - recipe: fa2
    source: fa
    id_suffix: small
    matrix: {toolchain: [cu130], torch: ["2.14"], archs: [[sm_120]], python: ["3.11"], profile: [small]}
  - recipe: fa2
    source: fa
    id_suffix: pip
    matrix: {toolchain: [cu130], torch: ["2.14"], archs: [[sm_80, compute_80]], python: ["3.11"], profile: [small]}
""",
        default="fa2-cu130-torch2.14-sm120-cp311-small",
    )
    labels = [t.local_version for t in load_matrix(text).targets]
    assert labels == ["cu130torch2.14sm120small", "cu130torch2.14sm80ptx80smallpip"]


def test_two_targets_with_one_wheel_name_are_refused() -> None:
    # Different ids (one has a suffix that only repeats the profile), same wheel file: an index holds one.
    msg = refused(
        with_targets("""
  - recipe: fa2
    source: fa
    matrix: {toolchain: [cu130], torch: ["2.14"], archs: [[sm_120]], python: ["3.11"], profile: [small]}
  - recipe: fa2
    source: fa
    id_suffix: small
    matrix: {toolchain: [cu130], torch: ["2.14"], archs: [[sm_120]], python: ["3.11"], profile: [small]}
""")
    )
    assert (
        "fa2-cu130-torch2.14-sm120-cp311 and fa2-cu130-torch2.14-sm120-cp311-small would both be built as "
        "flash_attn-2.8.3+cu130torch2.14sm120small-cp311-cp311-linux_x86_64.whl"
    ) in msg


def test_repository_matrix_has_no_two_targets_with_one_wheel_name() -> None:
    m = load_matrix_file(Path(__file__).parents[2] / "build_matrix.yaml")
    names = [t.wheel_name for t in m.targets]
    assert len(set(names)) == len(names) == len(m.targets)
    assert all("<version>" not in n for n in names)  # every default target's version is known up front


def test_repository_matrix_serves_cuda_12_drivers() -> None:
    m = load_matrix_file(Path(__file__).parents[2] / "build_matrix.yaml")
    cu12 = [t for t in m.targets if t.toolchain.cuda.startswith("12.")]
    assert {t.toolchain.cuda for t in cu12} == {"12.8", "12.9"}
    assert all(t.toolchain.provision == "container" for t in cu12)
    assert {t.torch.version for t in cu12 if t.toolchain.cuda == "12.8"} == {"2.9.1", "2.10.0"}
    wide = m.target("fa2-cu128-torch2.9-sm80-sm86-sm89-sm90-sm120-cp312")
    assert [a.sm for a in wide.sass] == ["sm_80", "sm_86", "sm_89", "sm_90", "sm_120"] and not wide.ptx


def test_leave_out_names_fa2_switches_and_refuses_what_it_does_not_know() -> None:
    lean = load_matrix(BASE.replace("split_kv: false}", "split_kv: false, leave_out: [softcap, alibi]}"))
    profile = lean.target("fa2-cu130-torch2.14-sm120-cp311").profile
    assert profile.leave_out == ("alibi", "softcap")  # sorted: the order written does not make another wheel
    assert profile.defines == ("FLASHATTENTION_DISABLE_ALIBI", "FLASHATTENTION_DISABLE_SOFTCAP")
    assert load_matrix(BASE).targets[0].profile.defines == ()
    assert "profiles.small.leave_out[0]: unknown feature 'softcaps' (did you mean 'softcap'?)" in refused(
        BASE.replace("split_kv: false}", "split_kv: false, leave_out: [softcaps]}")
    )
    assert "profiles.small.leave_out: duplicate entries" in refused(
        BASE.replace("split_kv: false}", "split_kv: false, leave_out: [local, local]}")
    )
    assert "profiles.small.leave_out: expected a list" in refused(
        BASE.replace("split_kv: false}", "split_kv: false, leave_out: alibi}")
    )


VLLM_GROUP = """
  - recipe: vllm-fa2
    source: fa
    serves: vllm==0.33.0
    matrix:
      toolchain: [cu130]
      torch: ["2.14"]
      archs: [[sm_120]]
      python: ["3.11"]
      profile: [p]
"""


def vllm_matrix(profile: str, group_extra: str = "") -> str:
    head = BASE.split("profiles:")[0].replace("fa2-cu130-torch2.14-sm120-cp311", "vllm-fa2-cu130-torch2.14-sm120-cp311")
    group = VLLM_GROUP.replace("    serves:", f"{group_extra}    serves:") if group_extra else VLLM_GROUP
    return f"{head}profiles:\n  p: {profile}\ntargets:{group}"


@pytest.mark.parametrize(
    ("profile", "missing"),
    [
        ("{head_dims: [128], dtypes: [bf16], causal: [true], split_kv: true}", "no non-causal split-KV kernel (decode"),
        ("{head_dims: [128], dtypes: [bf16], causal: [false], split_kv: true}", "no causal split-KV kernel (prefill"),
        ("{head_dims: [128], dtypes: [bf16], causal: [true], split_kv: false}", "no split-KV kernel (every call"),
    ],
)
def test_a_published_vllm_profile_must_serve_every_call_route(profile: str, missing: str) -> None:
    message = refused(vllm_matrix(profile))
    assert message.startswith("targets[0].matrix.profile[0]: profile 'p' cannot serve vLLM's calls;"), message
    assert missing in message
    assert "publish: false" in message  # the way out for a demo build


def test_a_vllm_profile_with_both_split_kv_kernels_serves_and_a_demo_may_do_less() -> None:
    serving = "{head_dims: [128], dtypes: [bf16], causal: [false, true], split_kv: true}"
    assert load_matrix(vllm_matrix(serving)).targets[0].publish
    one_tu = "{head_dims: [128], dtypes: [bf16], causal: [true], split_kv: false}"
    demo = load_matrix(vllm_matrix(one_tu, "    publish: false\n"))
    assert not demo.targets[0].publish


def test_the_shipped_vllm_profiles_serve_vllm_and_the_vllm_profile_has_every_bucket() -> None:
    m = load_matrix_file(Path(__file__).parents[2] / "build_matrix.yaml")
    for t in m.targets:
        if t.recipe == "vllm-fa2" and t.publish:
            assert t.profile.vllm_route_gaps() == [], t.id
    vllm = m.profiles["vllm"]
    assert vllm.head_dims == (32, 64, 96, 128, 192, 256)
    assert set(vllm.dtypes) == {"bf16", "fp16"} and set(vllm.causal) == {False, True} and vllm.split_kv
    assert m.profiles["decode"].vllm_route_gaps() == []
