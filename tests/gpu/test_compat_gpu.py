"""compat's prediction against what the CUDA driver does: cuModuleLoadData on each committed fatbin.

Skipped without an NVIDIA GPU. The table of one such run (H100, driver 580.159.04) is in
bench/compat-gpu.md and tests/data/gpu/observed.json; test_compat.py replays it without a GPU.
"""

from __future__ import annotations

import pytest

from support import cudabins
from support.cudabins import DRIVER_RESULTS, GPU_CASES, GpuCase

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def gpu_and_driver() -> tuple[str, str]:
    if not cudabins.gpu_present():
        pytest.skip("no NVIDIA GPU (libcuda.so.1 with a device)")
    return cudabins.gpu_cc_and_driver()


@pytest.mark.parametrize("case", GPU_CASES, ids=lambda c: c.name)
def test_prediction_matches_the_driver(case: GpuCase, gpu_and_driver: tuple[str, str]) -> None:
    gpu, driver = gpu_and_driver
    prediction = cudabins.predicted(case, gpu, driver)
    result = cudabins.driver_load(cudabins.gpu_fatbin(case).read_bytes())
    assert DRIVER_RESULTS.get(result, f"CUDA error {result}") == prediction.error, prediction.reason
