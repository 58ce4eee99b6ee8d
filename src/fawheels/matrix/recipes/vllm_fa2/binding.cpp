// fawheels: vLLM's `_vllm_fa2_C` over FlashAttention-2's host API (flash_api.cpp of the pinned source).
//
// The op schemas are the targeted vLLM release's own strings (fawheels_ops.h, generated from the matrix).
// Kernels are boxed and read their arguments by name from the registered schema, so releases that spell
// an argument differently (0.26.0 `Generator? gen`, 0.33.0 `Tensor? gen`) share this file unchanged.
// vLLM's sparse ops (fwd_sparse, varlen_fwd_sparse) are registered with their schemas too, so nothing vLLM
// looks up disappears, but their kernels are not in the flash-attn sdist: calling them raises.

// Only the limited API: the module is `_vllm_fa2_C.abi3.so`, importable by any CPython 3 vLLM runs on.
#define Py_LIMITED_API 0x03090000
#include <Python.h>

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>
#include <torch/library.h>

#include <optional>
#include <string>
#include <vector>

#include "fawheels_kernels.h"
#include "fawheels_ops.h"
#include "namespace_config.h"

namespace FLASH_NAMESPACE {  // defined in flash_api.cpp (built with FAWHEELS_NO_PYBIND)
// mha_varlen_fwd with vLLM's num_splits (patch 0004)
std::vector<at::Tensor> mha_varlen_fwd_splits(
    at::Tensor &q, const at::Tensor &k, const at::Tensor &v, std::optional<at::Tensor> &out_,
    const at::Tensor &cu_seqlens_q, const at::Tensor &cu_seqlens_k, std::optional<at::Tensor> &seqused_k,
    std::optional<const at::Tensor> &leftpad_k_, std::optional<at::Tensor> &block_table_,
    std::optional<at::Tensor> &alibi_slopes_, int max_seqlen_q, const int max_seqlen_k, const float p_dropout,
    const float softmax_scale, const bool zero_tensors, bool is_causal, int window_size_left,
    int window_size_right, const float softcap, const bool return_softmax, std::optional<at::Generator> gen_,
    const int num_splits);

std::vector<at::Tensor> mha_fwd_kvcache(
    at::Tensor &q, const at::Tensor &kcache, const at::Tensor &vcache, std::optional<const at::Tensor> &k_,
    std::optional<const at::Tensor> &v_, std::optional<const at::Tensor> &seqlens_k_,
    std::optional<const at::Tensor> &rotary_cos_, std::optional<const at::Tensor> &rotary_sin_,
    std::optional<const at::Tensor> &cache_batch_idx_, std::optional<const at::Tensor> &leftpad_k_,
    std::optional<at::Tensor> &block_table_, std::optional<at::Tensor> &alibi_slopes_,
    std::optional<at::Tensor> &out_, const float softmax_scale, bool is_causal, int window_size_left,
    int window_size_right, const float softcap, bool is_rotary_interleaved, int num_splits);
}  // namespace FLASH_NAMESPACE

namespace {

// The arguments of one call, found by the names in the op's registered schema.
class Args {
 public:
  Args(const c10::OperatorHandle &op, torch::jit::Stack *stack)
      : schema_(op.schema()), values_(torch::jit::last(*stack, schema_.arguments().size())) {}

  const c10::IValue &operator[](const char *name) const {
    auto index = schema_.argumentIndexWithName(name);
    TORCH_CHECK(index.has_value(), schema_.name(), " has no argument '", name, "'");
    return values_[*index];
  }
  at::Tensor tensor(const char *name) const { return (*this)[name].toTensor(); }
  std::optional<at::Tensor> optional(const char *name) const { return (*this)[name].toOptional<at::Tensor>(); }
  int integer(const char *name) const { return static_cast<int>((*this)[name].toInt()); }
  float real(const char *name) const { return static_cast<float>((*this)[name].toDouble()); }
  bool flag(const char *name) const { return (*this)[name].toBool(); }

 private:
  const c10::FunctionSchema &schema_;
  c10::ArrayRef<c10::IValue> values_;
};

// vLLM passes `out` and reads it, ignoring what the op returns. FA2 computes decode with GQA in a reshaped
// copy (it swaps q's head groups into the sequence dimension), so the result is copied back when it is
// not already in `out`; (out, softmax_lse) is what vLLM unpacks.
void finish(const c10::OperatorHandle &op, torch::jit::Stack *stack, const std::optional<at::Tensor> &out,
            const std::vector<at::Tensor> &result) {
  at::Tensor o = result[0];
  if (out.has_value() && o.data_ptr() != out->data_ptr()) {
    out->copy_(o);
    o = *out;
  }
  torch::jit::drop(*stack, op.schema().arguments().size());
  torch::jit::push(*stack, c10::IValue(std::vector<at::Tensor>{o, result[1]}));
}

// Inference build (FLASHATTENTION_DISABLE_DROPOUT): vLLM always passes p_dropout 0 and no generator.
void check_no_dropout(const Args &a) {
  TORCH_CHECK(a.real("p_dropout") == 0.f && !a.flag("return_softmax"),
              "_vllm_fa2_C (fawheels): built without dropout; p_dropout must be 0 and return_softmax false");
}

void varlen_fwd(const c10::OperatorHandle &op, torch::jit::Stack *stack) {
  Args a(op, stack);
  check_no_dropout(a);
  // 0: FA2's heuristic picks the split count of a GQA decode batch; 1: never split (vLLM's batch-invariant
  // mode). vLLM's interface never passes more.
  const int num_splits = a.integer("num_splits");
  TORCH_CHECK(num_splits == 0 || num_splits == 1,
              "_vllm_fa2_C (fawheels): varlen_fwd supports num_splits 0 or 1, got ", std::to_string(num_splits));
  at::Tensor q = a.tensor("q");
  std::optional<at::Tensor> out = a.optional("out"), seqused_k = a.optional("seqused_k"),
                            block_table = a.optional("block_table"), alibi = a.optional("alibi_slopes");
  std::optional<const at::Tensor> leftpad_k = a.optional("leftpad_k");
  auto r = FLASH_NAMESPACE::mha_varlen_fwd_splits(
      q, a.tensor("k"), a.tensor("v"), out, a.tensor("cu_seqlens_q"), a.tensor("cu_seqlens_k"), seqused_k,
      leftpad_k, block_table, alibi, a.integer("max_seqlen_q"), a.integer("max_seqlen_k"), 0.f,
      a.real("softmax_scale"), a.flag("zero_tensors"), a.flag("is_causal"), a.integer("window_size_left"),
      a.integer("window_size_right"), a.real("softcap"), false, std::nullopt, num_splits);
  finish(op, stack, a.optional("out"), r);
}

void fwd_kvcache(const c10::OperatorHandle &op, torch::jit::Stack *stack) {
  Args a(op, stack);
  at::Tensor q = a.tensor("q");
  std::optional<const at::Tensor> k = a.optional("k"), v = a.optional("v"), seqlens_k = a.optional("seqlens_k"),
                                  cos = a.optional("rotary_cos"), sin = a.optional("rotary_sin"),
                                  batch_idx = a.optional("cache_batch_idx"), leftpad_k = a.optional("leftpad_k");
  // FA2 checks `out` against the swapped decode shape and refuses it, so it writes a fresh tensor here.
  std::optional<at::Tensor> block_table = a.optional("block_table"), alibi = a.optional("alibi_slopes"),
                            fresh = std::nullopt;
  auto r = FLASH_NAMESPACE::mha_fwd_kvcache(
      q, a.tensor("kcache"), a.tensor("vcache"), k, v, seqlens_k, cos, sin, batch_idx, leftpad_k, block_table,
      alibi, fresh, a.real("softmax_scale"), a.flag("is_causal"), a.integer("window_size_left"),
      a.integer("window_size_right"), a.real("softcap"), a.flag("is_rotary_interleaved"), a.integer("num_splits"));
  finish(op, stack, a.optional("out"), r);
}

void not_built(const c10::OperatorHandle &op, torch::jit::Stack *) {
  TORCH_CHECK(false, op.schema().name(), ": this fawheels build of _vllm_fa2_C carries FlashAttention-2's forward "
              "kernels only (kernel profile '", fawheels::kProfileName, "'); vLLM's sparse kernels are not in it");
}

// One boxed kernel for every op of the namespace: which one is asked for is in the schema's name.
void call(const c10::OperatorHandle &op, torch::jit::Stack *stack) {
  const std::string &name = op.schema().name();
  if (name == "_vllm_fa2_C::varlen_fwd") return varlen_fwd(op, stack);
  if (name == "_vllm_fa2_C::fwd_kvcache") return fwd_kvcache(op, stack);
  not_built(op, stack);
}

}  // namespace

TORCH_LIBRARY(_vllm_fa2_C, m) {
  for (const char *schema : fawheels::kOpSchemas) m.def(schema);
}

TORCH_LIBRARY_IMPL(_vllm_fa2_C, CUDA, m) {
  for (const char *schema : fawheels::kOpSchemas) {
    std::string s(schema);
    m.impl(s.substr(0, s.find('(')).c_str(), torch::CppFunction::makeFromBoxedFunction<&call>());
  }
}

// `from . import _vllm_fa2_C` (vLLM's flash_attn_interface) only needs the import to succeed: the ops are
// registered by the static initializers above when the library loads.
PyMODINIT_FUNC PyInit__vllm_fa2_C(void) {
  static PyModuleDef module = {PyModuleDef_HEAD_INIT, "_vllm_fa2_C",
                               "FlashAttention-2 forward ops for vLLM, built by fawheels", -1, nullptr,
                               nullptr, nullptr, nullptr, nullptr};
  return PyModule_Create(&module);
}
