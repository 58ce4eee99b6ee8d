"""GPU names as nvidia-smi prints them are read by family, never across generations ("RTX 6000 Ada" is 8.9)."""

from __future__ import annotations

import pytest

from fawheels._util.errors import ConfigError
from fawheels.matrix.cudafacts import parse_gpu

# What nvidia-smi prints (--query-gpu=name), family by family.
NAMES = {
    (12, 0): [
        "NVIDIA RTX PRO 6000 Blackwell Workstation Edition",
        "NVIDIA RTX PRO 6000 Blackwell Max-Q Workstation Edition",
        "NVIDIA RTX PRO 6000 Blackwell Server Edition",
        "NVIDIA RTX PRO 5000 Blackwell",
        "NVIDIA RTX PRO 4500 Blackwell",
        "NVIDIA RTX PRO 4000 Blackwell",
        "RTX PRO 6000",
        *[f"NVIDIA GeForce RTX {n}" for n in ("5090", "5080", "5070 Ti", "5070", "5060 Ti", "5060", "5050")],
        "NVIDIA GeForce RTX 5090 Laptop GPU",
        "RTX 5060Ti",
    ],
    (12, 1): ["NVIDIA GB10", "DGX Spark"],
    (10, 0): ["NVIDIA B200", "NVIDIA GB200"],
    (10, 3): ["NVIDIA B300"],
    (9, 0): ["NVIDIA H100 80GB HBM3", "NVIDIA H100 PCIe", "NVIDIA H100 NVL", "NVIDIA H200", "NVIDIA GH200 480GB"],
    (8, 9): [
        "NVIDIA L40S",
        "NVIDIA L4",
        "NVIDIA GeForce RTX 4090",
        "NVIDIA GeForce RTX 4070 Ti SUPER",
        "NVIDIA RTX 6000 Ada Generation",
        "NVIDIA RTX 4000 SFF Ada Generation",
    ],
    (8, 6): ["NVIDIA GeForce RTX 3090", "NVIDIA GeForce RTX 3060 Ti", "NVIDIA RTX A6000", "NVIDIA A10G"],
    (8, 0): ["NVIDIA A100-SXM4-80GB", "NVIDIA A100 80GB PCIe", "NVIDIA A100-PCIE-40GB"],
    (7, 5): ["Tesla T4", "Quadro RTX 6000"],
}


@pytest.mark.parametrize(("name", "cc"), [(n, cc) for cc, names in NAMES.items() for n in names])
def test_nvidia_smi_names_by_family(name: str, cc: tuple[int, int]) -> None:
    assert parse_gpu(name) == cc


@pytest.mark.parametrize("name", ["RTX 6000", "RTX 5000", "RTX 4000"])
def test_a_name_several_generations_carried_is_refused_with_the_choices(name: str) -> None:
    with pytest.raises(ConfigError, match=r"several generations.*\(12\.0\).*\(8\.9\)"):
        parse_gpu(name)


@pytest.mark.parametrize("name", ["RTX 5095", "RTX PRO 6000 Ada", "H300", "RTX 4090 Blackwell", "A1000"])
def test_no_name_reaches_another_generation(name: str) -> None:
    with pytest.raises(ConfigError, match="unknown GPU"):
        parse_gpu(name)
