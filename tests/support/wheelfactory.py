"""Small but real wheels for publish tests.

Real FA2 wheels take minutes of nvcc; these take about two seconds. `toy_wheel` writes, with the build's
own reproducible writer (fawheels.compile.wheel), a wheel shaped like a fawheels build (local version
`+cuXYZtorchA.B`, `build-info.json`, RECORD) whose
extension is a real CPython module compiled by nvcc with sm_120 SASS (static cudart: it imports without
torch and without a GPU). Without `extension` it is a pure-python wheel of the same shape, for tests that
use a stand-in verifier (the real one wants compiled code). A `cuda="12.8"` toy is still compiled by the
nvcc at hand: only its labels say 12.8, which is all an index test needs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sysconfig
from pathlib import Path

from fawheels.compile.wheel import WheelSpec, render_metadata, write_wheel
from fawheels.matrix import cudafacts

SOURCE_DATE_EPOCH = 1755000000
EXT_SUFFIX = sysconfig.get_config_var("EXT_SUFFIX")
PY_TAG = f"cp{sysconfig.get_python_version().replace('.', '')}"

_KERNEL = r"""
#include <Python.h>
__global__ void add_one(float* x) { x[threadIdx.x] += 1.0f; }
static PyObject* kernel_name(PyObject*, PyObject*) { return PyUnicode_FromString("add_one"); }
static PyMethodDef methods[] = {{"kernel_name", kernel_name, METH_NOARGS, nullptr},
                                {nullptr, nullptr, 0, nullptr}};
static PyModuleDef mod = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, methods};
PyMODINIT_FUNC PyInit__C(void) { return PyModule_Create(&mod); }
"""


def nvcc() -> str | None:
    return shutil.which("nvcc") or (
        "/usr/local/cuda-13.0/bin/nvcc" if Path("/usr/local/cuda-13.0/bin/nvcc").exists() else None
    )


def compile_extension(workdir: Path, archs: tuple[str, ...] = ("120",), cudart: str = "static") -> Path:
    """A CPython extension module `_C` with one kernel, SASS for each of `archs` only (default sm_120), cudart
    linked statically (`cudart="shared"`: libcudart.so, as real builds do)."""
    compiler = nvcc()
    if compiler is None:
        raise RuntimeError("nvcc not found")
    workdir.mkdir(parents=True, exist_ok=True)
    src = workdir / "_C.cu"
    src.write_text(_KERNEL)
    out = workdir / f"_C{EXT_SUFFIX}"
    gencodes = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in archs]
    subprocess.run(
        [
            compiler,
            "-shared",
            "-Xcompiler",
            "-fPIC",
            "-O2",
            *gencodes,
            "-cudart",
            cudart,
            f"-I{sysconfig.get_paths()['include']}",
            str(src),
            "-o",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    # nvcc's tmpxft_<pid> names land in the symbol table; stripping keeps the wheel reproducible.
    subprocess.run(["strip", "--strip-unneeded", str(out)], check=True)
    return out


def toy_wheel(
    out_dir: Path,
    *,
    name: str = "fatoy",
    version: str = "1.0",
    cuda: str = "13.0",
    torch: str = "2.14",
    extension: Path | None = None,
    salt: str = "",
) -> Path:
    """Write `<name>-<version>+cu<cuda>torch<torch>-…whl` into out_dir with fawheels' own wheel writer.

    `extension` is a compiled `_C` module (see compile_extension); `salt` changes the bytes but not the
    filename (for same-name-different-hash tests).
    """
    cu = "cu" + cuda.replace(".", "")
    full_version = f"{version}+{cu}torch{torch}"
    ext_name = f"{name}/_C{EXT_SUFFIX}"
    files: dict[str, bytes] = {
        f"{name}/__init__.py": (
            f'"""Toy package for fawheels publish tests{salt}."""\n'
            f'VARIANT = "{cu}"\n' + ("from ._C import kernel_name  # noqa: F401\n" if extension else "")
        ).encode(),
    }
    if extension:
        files[ext_name] = extension.read_bytes()
    metadata = render_metadata(
        [
            ("Metadata-Version", "2.1"),
            ("Name", name),
            ("Version", full_version),
            ("Summary", "toy CUDA extension for fawheels publish tests"),
            ("Requires-Python", ">=3.10"),
            ("Requires-Dist", f"torch=={torch}.*"),
        ]
    )
    build_info = {
        "schema": 1,
        "target": f"{name}-{cu}-torch{torch}-sm120-{PY_TAG}",
        "recipe": name,
        "distribution": name,
        "version": full_version,
        "toolchain": {"cuda": cuda, "nvcc": "13.0.88", "provision": "host", "host_compiler": "gcc"},
        "torch": {"version": f"{torch}.1+{cu}", "cuda": cuda, "requirement": f"torch=={torch}.*", "cxx_std": 20},
        "python": sysconfig.get_python_version(),
        "archs": {"sass": ["sm_120"] if extension else [], "ptx": []},
        "min_driver": str(cudafacts.toolkit(cuda).min_driver),
        "cuda_runtime_major": int(cuda.split(".")[0]),
        "extensions": [ext_name] if extension else [],
        "source_date_epoch": SOURCE_DATE_EPOCH,
    }
    tag = f"{PY_TAG}-{PY_TAG}-linux_x86_64" if extension else "py3-none-any"
    spec = WheelSpec(name, full_version, tag, metadata, "fawheels-tests")
    extra = {"build-info.json": (json.dumps(build_info, indent=2) + "\n").encode()}
    return write_wheel(spec, files, extra, out_dir, SOURCE_DATE_EPOCH)
