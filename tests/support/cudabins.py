"""Real CUDA binaries for the inspect/verify/compat tests: compile them, wrap them in wheels, load them.

Also a small command line, so the committed data says how it was made:

    PYTHONPATH=src python tests/support/cudabins.py regen tests/data --nvcc132 /tmp/nvcc132/nvidia/cu13/bin/nvcc
    PYTHONPATH=src python tests/support/cudabins.py gpu-table OUTDIR   # on a machine with a GPU
"""

from __future__ import annotations

import ctypes
import json
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from fawheels.check import compat, cuobjdump, wheelzip
from fawheels.compile.wheel import record_hash
from fawheels.matrix.cudafacts import Version, parse_gpu

DATA = Path(__file__).parents[1] / "data"
GPU_DATA = DATA / "gpu"

KERNEL = r"""
extern "C" __global__ void add(float *x, float a, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) x[i] += a;
}
"""
# a host entry point, so a shared object links the CUDA runtime like a torch extension does
HOST = (
    KERNEL
    + r"""
extern "C" int launch_add(float *x, float a, int n) {
  add<<<(n + 255) / 256, 256>>>(x, a, n);
  return 0;
}
"""
)


def find_nvcc() -> str | None:
    found = shutil.which("nvcc")
    return found or next(
        (p for p in ("/usr/local/cuda/bin/nvcc", "/usr/local/cuda-13.0/bin/nvcc") if Path(p).exists()), None
    )


def gencode(target: str) -> str:
    """`sm_90a` -> SASS, `compute_80` -> PTX only, as nvcc -gencode options."""
    arch = re.sub(r"^sm_", "compute_", target)
    return f"-gencode=arch={arch},code={target}"


def compile_fatbin(
    out: Path, targets: Sequence[str], *, compress: str | None = None, nvcc: str | None = None, source: str = KERNEL
) -> Path:
    """A raw fatbin of the tiny kernel for `targets` (sm_XY = SASS, compute_XY = PTX)."""
    compiler = nvcc or find_nvcc()
    assert compiler, "nvcc not found"
    src = out.with_suffix(".cu")
    src.write_text(source)
    cmd = [compiler, "-fatbin", *map(gencode, targets), "-o", str(out), str(src)]
    if compress:
        cmd.append(f"--compress-mode={compress}")
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    src.unlink()
    return out


def compile_so(
    out: Path, sources: Sequence[str], targets: Sequence[str], *, cudart: str = "shared", libs: Sequence[str] = ()
) -> Path:
    """A shared object, one translation unit (= one fatbin container) per source."""
    compiler = find_nvcc()
    assert compiler, "nvcc not found"
    files = []
    for i, text in enumerate(sources):
        f = out.parent / f"{out.stem}_{i}.cu"
        f.write_text(text.replace("add", f"add{i}"))
        files.append(str(f))
    link = ["-Xlinker", "--no-as-needed", *[f"-l{lib}" for lib in libs]] if libs else []
    subprocess.run(
        [
            compiler,
            "-shared",
            "-Xcompiler",
            "-fPIC",
            "-cudart",
            cudart,
            *map(gencode, targets),
            *files,
            *link,
            "-o",
            str(out),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return out


def cuobjdump_text(path: Path) -> str:
    exe = cuobjdump.find_cuobjdump()
    assert exe, "cuobjdump not found"
    return subprocess.run([str(exe), "-elf", "-ptx", str(path)], check=True, capture_output=True, text=True).stdout


# --- wheels ------------------------------------------------------------------------------------------

PKG = "fa2toy"
VERSION = "1.0+cu130torch2.14"
TAG = "cp311-cp311-linux_x86_64"
EXT = f"{PKG}/_C.cpython-311-x86_64-linux-gnu.so"


def build_info(**changes: object) -> dict[str, object]:
    """A schema-1 build-info.json (docs/build-info.md) for an sm_120 CUDA 13.0 target."""
    info: dict[str, object] = {
        "schema": 1,
        "target": "fa2toy-cu130-torch2.14-sm120-cp311",
        "recipe": "fa2",
        "distribution": PKG,
        "version": VERSION,
        "source": {"name": "fa2toy-1.0", "kind": "sdist", "url": "file:///dev/null", "sha256": "0" * 64},
        "patches": [],
        "toolchain": {"cuda": "13.0", "nvcc": "13.0.88", "provision": "host"},
        "torch": {"version": "2.14.1+cu130", "cuda": "13.0", "requirement": "torch==2.14.*", "cxx_std": 20},
        "python": "3.11",
        "archs": {"sass": ["sm_120"], "ptx": []},
        "min_driver": "580.65.06",
        "cuda_runtime_major": 13,
        "extensions": [EXT],
        "source_date_epoch": 1755000000,
    }
    info.update(changes)
    return info


def write_wheel(
    directory: Path,
    files: Mapping[str, bytes],
    *,
    info: Mapping[str, object] | None,
    requires: Sequence[str] = ("torch==2.14.*",),
    wheel_tag: str = TAG,
    filename_tag: str = TAG,
    tamper: Mapping[str, bytes] | None = None,
) -> Path:
    """A wheel with a correct RECORD; `tamper` replaces members after RECORD was written."""
    dist_info = f"{PKG}-{VERSION}.dist-info"
    meta = f"Metadata-Version: 2.1\nName: {PKG}\nVersion: {VERSION}\n" + "".join(
        f"Requires-Dist: {r}\n" for r in requires
    )
    members = dict(files)
    members[f"{dist_info}/METADATA"] = meta.encode()
    members[f"{dist_info}/WHEEL"] = (
        f"Wheel-Version: 1.0\nGenerator: cudabins\nRoot-Is-Purelib: false\nTag: {wheel_tag}\n"
    ).encode()
    if info is not None:
        members[f"{dist_info}/build-info.json"] = json.dumps(info, indent=2).encode()
    record = "".join(f"{n},{record_hash(d)},{len(d)}\n" for n, d in members.items())
    members[f"{dist_info}/RECORD"] = (record + f"{dist_info}/RECORD,,\n").encode()
    members.update(tamper or {})
    path = directory / f"{PKG}-{VERSION}-{filename_tag}.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


# --- the GPU comparison --------------------------------------------------------------------------------


@dataclass(frozen=True)
class GpuCase:
    name: str
    targets: tuple[str, ...]
    nvcc: str = "13.0"
    compress: str | None = None


GPU_CASES = (
    GpuCase("sm90-sass", ("sm_90",)),
    GpuCase("sm90a-sass", ("sm_90a",)),
    GpuCase("sm80-sass", ("sm_80",)),
    GpuCase("sm89-sass", ("sm_89",)),
    GpuCase("sm100f-sass", ("sm_100f",)),
    GpuCase("sm120-sass", ("sm_120",)),
    GpuCase("ptx80-none", ("compute_80",), compress="none"),
    GpuCase("ptx80-lz4", ("compute_80",), compress="speed"),
    GpuCase("ptx80-zstd", ("compute_80",), compress="size"),
    GpuCase("ptx89", ("compute_89",)),
    GpuCase("ptx90a", ("compute_90a",)),
    GpuCase("ptx100", ("compute_100",)),
    GpuCase("ptx120f", ("compute_120f",)),
    GpuCase("sm80-sass+ptx80", ("sm_80", "compute_80")),
    GpuCase("ptx80-nvcc13.2", ("compute_80",), nvcc="13.2"),
    GpuCase("sm90-sass-nvcc13.2", ("sm_90",), nvcc="13.2"),
    GpuCase("sm80-sass+ptx80-nvcc13.2", ("sm_80", "compute_80"), nvcc="13.2"),
    GpuCase("sm90-sass+ptx80-nvcc13.2", ("sm_90", "compute_80"), nvcc="13.2"),
)

# what cuModuleLoadData returns (cuda.h), by the runtime error compat names
DRIVER_RESULTS = {0: None, 209: "cudaErrorNoKernelImageForDevice", 222: "cudaErrorUnsupportedPtxVersion"}


def gpu_fatbin(case: GpuCase) -> Path:
    return GPU_DATA / f"{case.name}.fatbin"


def predicted(case: GpuCase, gpu: str, driver: str) -> compat.Prediction:
    objects = wheelzip.read_path(gpu_fatbin(case))
    report = compat.predict(objects, parse_gpu(gpu), Version.parse(driver))
    assert len(report.predictions) == 1
    return report.predictions[0]


def _libcuda() -> ctypes.CDLL:
    return ctypes.CDLL("libcuda.so.1")


def gpu_present() -> bool:
    try:
        cuda = _libcuda()
    except OSError:
        return False
    count = ctypes.c_int(0)
    return cuda.cuInit(0) == 0 and cuda.cuDeviceGetCount(ctypes.byref(count)) == 0 and count.value > 0


def gpu_cc_and_driver() -> tuple[str, str]:
    """Compute capability of device 0 and the Linux driver version (`/proc` or nvidia-smi)."""
    cuda = _libcuda()
    assert cuda.cuInit(0) == 0
    major, minor = ctypes.c_int(), ctypes.c_int()
    cuda.cuDeviceGetAttribute(ctypes.byref(major), 75, 0)  # CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR
    cuda.cuDeviceGetAttribute(ctypes.byref(minor), 76, 0)
    proc = Path("/proc/driver/nvidia/version")
    m = re.search(r"Kernel Module\s+(\d+\.\d+(\.\d+)?)", proc.read_text()) if proc.exists() else None
    driver = (
        m.group(1)
        if m
        else subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()[0]
    )
    return f"{major.value}.{minor.value}", driver


def driver_load(fatbin: bytes) -> int:
    """cuModuleLoadData's result for a fatbin image on device 0 (0 = loaded)."""
    cuda = _libcuda()
    assert cuda.cuInit(0) == 0
    dev, ctx, module = ctypes.c_int(), ctypes.c_void_p(), ctypes.c_void_p()
    assert cuda.cuDeviceGet(ctypes.byref(dev), 0) == 0
    assert cuda.cuDevicePrimaryCtxRetain(ctypes.byref(ctx), dev) == 0
    assert cuda.cuCtxSetCurrent(ctx) == 0
    buf = ctypes.create_string_buffer(fatbin, len(fatbin))
    result = int(cuda.cuModuleLoadData(ctypes.byref(module), buf))
    if result == 0:
        cuda.cuModuleUnload(module)
    return result


def gpu_table() -> tuple[str, dict[str, object], list[tuple[GpuCase, compat.Prediction, int]]]:
    """Predicted vs observed for every GPU case on this machine's GPU and driver: markdown, JSON, rows."""
    gpu, driver = gpu_cc_and_driver()
    rows = [(c, predicted(c, gpu, driver), driver_load(gpu_fatbin(c).read_bytes())) for c in GPU_CASES]
    lines = [
        f"GPU compute capability {gpu}, driver {driver}",
        "",
        "| fatbin | contents | nvcc | compat predicts | image | cuModuleLoadData | agree |",
        "|---|---|---|---|---|---|---|",
    ]
    for case, pred, result in rows:
        want = "loads" if pred.ok else pred.error
        got = "0 (loaded)" if result == 0 else f"{result} ({DRIVER_RESULTS.get(result, 'other')})"
        agree = DRIVER_RESULTS.get(result, "other") == pred.error
        lines.append(
            f"| {case.name}.fatbin | {' + '.join(case.targets)} | {case.nvcc} | {want} "
            f"| {pred.image or '-'} | {got} | {'yes' if agree else 'NO'} |"
        )
    observed: dict[str, object] = {"gpu": gpu, "driver": driver, "results": {c.name: r for c, _, r in rows}}
    return "\n".join(lines) + "\n", observed, rows


# --- regenerating tests/data --------------------------------------------------------------------------


def regen(data: Path, nvcc132: str | None) -> None:
    """Compile the committed binaries and record what cuobjdump says of them."""
    data.mkdir(parents=True, exist_ok=True)
    (data / "gpu").mkdir(exist_ok=True)
    for case in GPU_CASES:
        compiler = nvcc132 if case.nvcc == "13.2" else None
        if case.nvcc == "13.2" and not nvcc132:
            continue
        compile_fatbin(data / "gpu" / f"{case.name}.fatbin", case.targets, compress=case.compress, nvcc=compiler)
    compile_fatbin(
        data / "multi.fatbin",
        ("sm_90a", "compute_90a", "sm_100f", "compute_100f", "compute_120a", "compute_120f", "sm_110", "sm_90"),
    )
    for mode in ("none", "speed", "size"):
        compile_fatbin(data / f"sm80+ptx80-{mode}.fatbin", ("sm_80", "compute_80"), compress=mode)
    so = compile_so(data / "libtwo.so", [HOST, HOST], ("sm_120", "compute_80"))
    subprocess.run(["strip", "--strip-all", str(so)], check=True)
    for leftover in data.glob("libtwo_*.cu"):
        leftover.unlink()
    nvcc = find_nvcc()
    assert nvcc
    src = data / "k.cu"
    src.write_text(KERNEL)
    subprocess.run([nvcc, "-cubin", "-arch=sm_120f", "-o", str(data / "sm_120f.cubin"), str(src)], check=True)
    subprocess.run(
        [nvcc, "-fatbin", "-gencode=arch=compute_80,code=lto_80", "-o", str(data / "lto80.fatbin"), str(src)],
        check=True,
    )
    src.unlink()
    for f in ("multi.fatbin", "sm80+ptx80-size.fatbin", "libtwo.so", "sm_120f.cubin"):
        (data / f"{f}.cuobjdump.txt").write_text(cuobjdump_text(data / f))
    exe = cuobjdump.find_cuobjdump()
    assert exe, "cuobjdump not found"
    for f in ("multi.fatbin", "libtwo.so"):  # the listing verify starts from
        listing = subprocess.run(
            [str(exe), "-all", "-lelf", "-lptx", f], cwd=data, check=True, capture_output=True, text=True
        ).stdout
        (data / f"{f}.cuobjdump-list.txt").write_text(listing)


def main(argv: Sequence[str]) -> int:
    if argv[:1] == ["regen"] and len(argv) >= 2:
        nvcc132 = argv[argv.index("--nvcc132") + 1] if "--nvcc132" in argv else None
        regen(Path(argv[1]), nvcc132)
        return 0
    if argv[:1] == ["gpu-table"] and len(argv) == 2:
        table, observed, rows = gpu_table()
        out = Path(argv[1])
        (out / "compat-gpu-table.md").write_text(table)
        (out / "observed.json").write_text(json.dumps(observed, indent=2) + "\n")
        print(table)
        return 0 if all(DRIVER_RESULTS.get(r, "other") == p.error for _, p, r in rows) else 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
