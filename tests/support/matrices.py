"""A small valid build matrix that unit tests vary."""

BASE = """
default_target: fa2-cu130-torch2.14-sm120-cp311
sources:
  fa:
    kind: sdist
    url: https://example.invalid/flash_attn-2.8.3.tar.gz
    sha256: 1e71dd64a9e0280e0447b8a0c2541bad4bf6ac65bdeaa2f90e51a9e57de0370d
toolchains:
  cu130: {cuda: "13.0", provision: host}
  cu129: {cuda: "12.9", provision: host}
  cu128: {cuda: "12.8", provision: host}
  cu126: {cuda: "12.6", provision: host}
torch:
  "2.14": {version: 2.14.1, cuda: "13.0", cxx_std: 20}
  "2.8": {version: 2.8.0, cuda: "12.8", cxx_std: 17}
profiles:
  small: {head_dims: [128], dtypes: [bf16], causal: [true], split_kv: false}
targets:
  - recipe: fa2
    source: fa
    matrix:
      toolchain: [cu130]
      torch: ["2.14"]
      archs: [[sm_120], [sm_90, sm_120]]
      python: ["3.11"]
      profile: [small]
"""
