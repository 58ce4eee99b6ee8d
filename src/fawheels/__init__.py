"""fawheels: reproducible, verified FlashAttention wheels for a CUDA x torch x arch x Python matrix."""

__version__ = "0.1.0"
