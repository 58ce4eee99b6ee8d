"""Recipes: what a target builds from its source (CMake project, extension, Python packages, metadata).

The matrix names a recipe per target group; the build (compile/execute.py) is recipe-agnostic and asks the recipe for
every product-specific detail. Each recipe's CMake project lives in `recipes/<cmake_dir>/`.
"""

from __future__ import annotations

from dataclasses import dataclass

# vLLM's _vllm_fa2_C op schemas, as each release's own bundled extension registers them (strings read from
# the .so in the release's PyPI wheel; tests/integration/test_vllm_fa2.py re-reads them). 0.33.0 registers through
# torch's stable ABI, which has no Generator type: its `gen` argument is `Tensor?`, 0.26.0's `Generator?`.
_VARLEN_FWD = (
    "varlen_fwd(Tensor! q, Tensor k, Tensor v, Tensor!? out, Tensor cu_seqlens_q, Tensor cu_seqlens_k, "
    "Tensor? seqused_k, Tensor? leftpad_k, Tensor? block_table, Tensor? alibi_slopes, int max_seqlen_q, "
    "int max_seqlen_k, float p_dropout, float softmax_scale, bool zero_tensors, bool is_causal, "
    "int window_size_left, int window_size_right, float softcap, bool return_softmax, int num_splits, "
    "{gen}? gen) -> Tensor[]"
)
_FWD_KVCACHE = (
    "fwd_kvcache(Tensor! q, Tensor kcache, Tensor vcache, Tensor? k, Tensor? v, Tensor? seqlens_k, "
    "Tensor? rotary_cos, Tensor? rotary_sin, Tensor? cache_batch_idx, Tensor? leftpad_k, "
    "Tensor? block_table, Tensor? alibi_slopes, Tensor!? out, float softmax_scale, bool is_causal, "
    "int window_size_left, int window_size_right, float softcap, bool is_rotary_interleaved, "
    "int num_splits) -> Tensor[]"
)
_FWD_SPARSE = (
    "fwd_sparse(Tensor! q, Tensor k, Tensor v, Tensor block_count, Tensor block_offset, "
    "Tensor column_count, Tensor column_index, Tensor!? out, Tensor? alibi_slopes, float p_dropout, "
    "float softmax_scale, bool is_causal, float softcap, bool return_softmax, {gen}? gen)-> Tensor[]"
)
_VARLEN_FWD_SPARSE = (
    "varlen_fwd_sparse(Tensor! q, Tensor k, Tensor v, Tensor block_count, Tensor block_offset, "
    "Tensor column_count, Tensor column_index, Tensor!? out, Tensor cu_seqlens_q, "
    "Tensor cu_seqlens_k, Tensor? seqused_k, Tensor? alibi_slopes, int max_seqlen_q, "
    "int max_seqlen_k, float p_dropout, float softmax_scale, bool zero_tensors, bool is_causal, "
    "float softcap, bool return_softmax, {gen}? gen) -> Tensor[]"
)


def _vllm_fa2_ops(gen: str) -> tuple[str, ...]:
    return tuple(s.format(gen=gen) for s in (_VARLEN_FWD, _FWD_KVCACHE, _FWD_SPARSE, _VARLEN_FWD_SPARSE))


@dataclass(frozen=True)
class Release:
    """A release of the distribution a recipe's extension plugs into, with what the build and checks need."""

    version: str
    torch: str  # the release's exact torch pin; a target must build against the same torch major.minor
    requires_python: str
    wheel_url: str  # the release's PyPI wheel, where the facts below were read
    wheel_sha256: str
    ops: tuple[str, ...]  # schemas of every op its own extension registers, in its own spelling
    cuda: str = "13.0"  # the CUDA its PyPI wheel (and its torch) is built for: its extensions link libcudart.so.13

    @property
    def op_names(self) -> tuple[str, ...]:
        return tuple(s.split("(", 1)[0] for s in self.ops)


@dataclass(frozen=True)
class Recipe:
    name: str
    distribution: str  # wheel distribution name: flash_attn
    cmake_dir: str  # package-data folder holding CMakeLists.txt (and any sources of ours)
    extension: str  # extension module name, also TORCH_EXTENSION_NAME: flash_attn_2_cuda
    extension_dir: str  # where the .so goes inside the wheel ("" = top level)
    abi3: bool  # name the .so `<ext>.abi3.so` (stable ABI) instead of the interpreter's EXT_SUFFIX
    source_packages: tuple[str, ...]  # Python packages copied from the source tree into the wheel
    defines: tuple[str, ...]  # product switches, recorded in build-info.json
    requires: tuple[str, ...]  # Requires-Dist besides the torch pin
    kernel_dir: str = "csrc/flash_attn/src"  # where the profile's translation units live in the tree
    extra_sources: tuple[str, ...] = ()  # our own sources compiled in, relative to recipes/ (a binding)
    serves: str | None = None  # distribution whose installed copy the extension replaces (targets pin a release)
    op_namespace: str | None = None  # torch op namespace the extension registers, with a release's schemas
    releases: tuple[Release, ...] = ()

    def release(self, version: str) -> Release | None:
        return next((r for r in self.releases if r.version == version), None)

    def so_name(self, ext_suffix: str) -> str:
        return f"{self.extension}{'.abi3.so' if self.abi3 else ext_suffix}"

    def wheel_path(self, ext_suffix: str) -> str:
        name = self.so_name(ext_suffix)
        return f"{self.extension_dir}/{name}" if self.extension_dir else name


FA2 = Recipe(
    name="fa2",
    distribution="flash_attn",
    cmake_dir="fa2",
    extension="flash_attn_2_cuda",
    extension_dir="",
    abi3=False,
    source_packages=("flash_attn",),
    # Forward-only, like vLLM's _vllm_fa2_C: no backward kernels, no dropout.
    defines=("FLASHATTENTION_DISABLE_BACKWARD", "FLASHATTENTION_DISABLE_DROPOUT"),
    requires=("einops",),
)

_PYPI = "https://files.pythonhosted.org/packages"
VLLM_FA2 = Recipe(
    name="vllm-fa2",
    distribution="vllm_fa2",
    cmake_dir="fa2",
    extra_sources=("vllm_fa2/binding.cpp",),
    extension="_vllm_fa2_C",
    extension_dir="vllm/vllm_flash_attn",  # where vLLM imports it from
    abi3=True,  # vLLM ships _vllm_fa2_C.abi3.so; the binding's module init uses only the limited API
    source_packages=(),
    # FAWHEELS_NO_PYBIND: flash_api.cpp without its pybind module (patch 0002); binding.cpp registers the ops.
    defines=("FLASHATTENTION_DISABLE_BACKWARD", "FLASHATTENTION_DISABLE_DROPOUT", "FAWHEELS_NO_PYBIND"),
    requires=(),
    serves="vllm",
    op_namespace="_vllm_fa2_C",
    releases=(
        Release(
            "0.33.0",
            torch="2.14.0",
            requires_python=">=3.11,<3.15",
            wheel_url=f"{_PYPI}/8b/a8/92e278093df40fde4c4bfd6572704bb8f398d6a2280d8c82cb5efaf12047/"
            "vllm-0.33.0-cp38-abi3-manylinux_2_28_x86_64.whl",
            wheel_sha256="4b6bdec4ab269990bf70d45a3c1e94c3760a27064513760193b26d6f0da883aa",
            ops=_vllm_fa2_ops("Tensor"),
            cuda="13.0",
        ),
        Release(
            "0.26.0",
            torch="2.11.0",
            requires_python=">=3.10,<3.15",
            wheel_url=f"{_PYPI}/20/96/86edd288415aafc2952bbb969b5ef4e8c58e5525185b60320730276921e6/"
            "vllm-0.26.0-cp38-abi3-manylinux_2_28_x86_64.whl",
            wheel_sha256="adb1e4c9b46d0dfdb094121ae5aad670a42412dd813ed4e5db069ed6a15006de",
            ops=_vllm_fa2_ops("Generator"),
            cuda="13.0",
        ),
    ),
)

RECIPES: dict[str, Recipe] = {r.name: r for r in (FA2, VLLM_FA2)}
