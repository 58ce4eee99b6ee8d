"""A stand-in `vllm` package around one `_vllm_fa2_C`: vLLM's own `flash_attn_interface.py` (read from the pinned
wheel by scripts/vllm_interface.py) importing the given extension as `vllm.vllm_flash_attn._vllm_fa2_C`, plus the
two pieces of vLLM that file and vLLM's kernel tests import: `vllm.platforms.current_platform` (the device
capability) and `vllm.utils.torch_utils.set_random_seed`. Used by the GPU tests and the GPU-machine scripts,
which cannot install vLLM there (no registry) and must load one extension per process."""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

PLATFORMS = """import torch


class _CudaPlatform:
    def get_device_capability(self):
        return torch.cuda.get_device_capability()

    def has_device_capability(self, capability):
        major, minor = torch.cuda.get_device_capability()
        return major * 10 + minor >= capability

    def is_device_capability_family(self, family):
        return torch.cuda.get_device_capability()[0] * 10 == family

    def is_rocm(self):
        return False

    def is_cuda(self):
        return True


current_platform = _CudaPlatform()
"""

TORCH_UTILS = """import random

import numpy
import torch


def set_random_seed(seed):
    random.seed(seed)
    numpy.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
"""

# What vLLM's own vllm/vllm_flash_attn/__init__.py exports for FA2 (its FA3/FA4 parts are not carried).
PACKAGE = """from vllm.vllm_flash_attn.flash_attn_interface import (  # noqa: F401
    fa_version_unsupported_reason,
    flash_attn_varlen_func,
    get_scheduler_metadata,
    is_fa_version_supported,
)
"""


def make_site(root: Path, extension: Path, interface: Path) -> Path:
    """Write the stand-in under `root` (put it first on sys.path); `extension` is a `.so` or a wheel holding one."""
    pkg = root / "vllm" / "vllm_flash_attn"
    pkg.mkdir(parents=True)
    (root / "vllm" / "platforms").mkdir()
    (root / "vllm" / "utils").mkdir()
    (root / "vllm" / "__init__.py").write_text("")
    (root / "vllm" / "platforms" / "__init__.py").write_text(PLATFORMS)
    (root / "vllm" / "utils" / "__init__.py").write_text("")
    (root / "vllm" / "utils" / "torch_utils.py").write_text(TORCH_UTILS)
    (pkg / "__init__.py").write_text(PACKAGE)
    shutil.copy(interface, pkg / "flash_attn_interface.py")
    so = pkg / "_vllm_fa2_C.abi3.so"
    if extension.suffix == ".whl":
        with zipfile.ZipFile(extension) as zf:
            member = next(n for n in zf.namelist() if n.endswith("_vllm_fa2_C.abi3.so"))
            so.write_bytes(zf.read(member))
    else:
        os.symlink(extension.resolve(), so)
    return root
