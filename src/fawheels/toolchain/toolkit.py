"""Toolchains: a CUDA toolkit whose nvcc matches the target, and torch in an isolated per-target env.

Provisioning kinds (matrix `toolchains.*.provision`):
- host: a CUDA_HOME already on the machine; its `nvcc --version` must match, else refused.
- pip: the exact nvidia-cuda-nvcc/nvvm/crt/runtime/cccl wheels into the cache, with their fixups.
- container: see container.py (the same pipeline inside a toolchain image).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from fawheels._util.errors import ToolchainError
from fawheels._util.files import write_atomic
from fawheels._util.paths import COMPLETE_MARKER, cache_root, install_once, is_installed, mark_used
from fawheels._util.runner import call, log, pip_install_into, run
from fawheels.matrix.model import Target, Toolchain, TorchSpec

# Build tools installed beside torch; pinned so two builders configure identically.
CMAKE_PIN = "cmake==4.1.3"
NINJA_PIN = "ninja==1.13.0"


@dataclass(frozen=True)
class CudaToolkit:
    cuda_home: Path
    nvcc: Path
    version: str  # full nvcc version, e.g. 13.0.88
    provision: str

    @property
    def release(self) -> str:
        return ".".join(self.version.split(".")[:2])

    @property
    def lib_dir(self) -> Path:
        # PyPI's cu13 layout has lib/ only; system installs have lib64/.
        lib64 = self.cuda_home / "lib64"
        return lib64 if lib64.is_dir() else self.cuda_home / "lib"


def parse_nvcc_version(output: str) -> str | None:
    """`nvcc --version` -> "13.0.88" (from "Cuda compilation tools, release 13.0, V13.0.88")."""
    m = re.search(r"release \d+\.\d+, V(\d+\.\d+\.\d+)", output)
    return m.group(1) if m else None


def _nvcc_version(nvcc: Path) -> str:
    try:
        proc = call([nvcc, "--version"], quiet=True)
    except OSError as exc:
        raise ToolchainError(f"cannot run {nvcc} --version: {exc}") from exc
    if proc.returncode != 0:
        raise ToolchainError(f"cannot run {nvcc} --version: exit {proc.returncode}: {proc.stderr.strip()[-500:]}")
    out = proc.stdout
    version = parse_nvcc_version(out)
    if version is None:
        raise ToolchainError(f"cannot read the version from `{nvcc} --version`:\n{out}")
    return version


def host_cuda_home_wanted(tc: Toolchain) -> tuple[Path, str]:
    """Where the host toolkit is taken from, and which setting said so: the matrix's `cuda_home`, else
    $CUDA_HOME, else /usr/local/cuda-X.Y when it holds nvcc, else the nvcc on PATH (else /usr/local/cuda-X.Y).
    Nothing is checked here: the dry run prints this, the build checks it (host_cuda_home)."""
    if tc.cuda_home:
        return Path(tc.cuda_home), f"toolchains.{tc.name}.cuda_home"
    if env := os.environ.get("CUDA_HOME"):
        return Path(env), "CUDA_HOME"
    default = Path(f"/usr/local/cuda-{tc.cuda}")
    on_path = shutil.which("nvcc")
    if not (default / "bin" / "nvcc").exists() and on_path:
        return Path(on_path).resolve().parent.parent, "PATH"
    return default, "default"


def host_cuda_home(tc: Toolchain) -> Path:
    """The host toolkit's home, refused when it holds no nvcc. A `cuda_home` in the matrix and a $CUDA_HOME are
    promises: when they hold no nvcc the build stops here, before a torch env is made, instead of quietly
    compiling with whatever other toolkit is found."""
    home, said_by = host_cuda_home_wanted(tc)
    if (home / "bin" / "nvcc").is_file():
        return home
    what = "does not exist" if not home.exists() else "has no bin/nvcc"
    if said_by == "default":
        raise ToolchainError(
            f"toolchains.{tc.name}: no nvcc found for CUDA {tc.cuda} (looked at cuda_home, $CUDA_HOME, "
            f"/usr/local/cuda-{tc.cuda}, PATH)",
            hint=f"install CUDA {tc.cuda}, set CUDA_HOME, or use a pip/container toolchain",
        )
    setting = said_by if said_by != "CUDA_HOME" else "$CUDA_HOME"
    raise ToolchainError(
        f"{setting}: {home} {what}",
        hint=f"point it at a CUDA {tc.cuda} install (the directory holding bin/nvcc)"
        + (", or unset it to use /usr/local/cuda-X.Y or the nvcc on PATH" if said_by == "CUDA_HOME" else ""),
    )


def provision_host(tc: Toolchain) -> CudaToolkit:
    home = host_cuda_home(tc)
    nvcc = home / "bin" / "nvcc"
    version = _nvcc_version(nvcc)
    if not version.startswith(tc.cuda + "."):
        raise ToolchainError(
            f"toolchains.{tc.name} wants CUDA {tc.cuda} but {nvcc} is {version}",
            hint=f"point CUDA_HOME at a CUDA {tc.cuda} install, or use provision: pip",
        )
    return CudaToolkit(home, nvcc, version, "host")


def pip_toolkit_requirements(pip_version: str) -> list[str]:
    release = ".".join(pip_version.split(".")[:2])
    exact = [
        f"{name}=={pip_version}"
        for name in ("nvidia-cuda-nvcc", "nvidia-nvvm", "nvidia-cuda-crt", "nvidia-cuda-runtime")
    ]
    # CCCL is versioned on its own (13.0.85 ships with nvcc 13.0.88); any patch of the release fits.
    return [*exact, f"nvidia-cuda-cccl=={release}.*"]


def fix_pip_toolkit(cuda_home: Path) -> None:
    """Make PyPI's cu13 tree look like a CUDA_HOME: lib64 and the unversioned libcudart.so."""
    lib = cuda_home / "lib"
    if not (cuda_home / "lib64").exists():
        (cuda_home / "lib64").symlink_to("lib")
    sonames = sorted(lib.glob("libcudart.so.*"))
    if sonames and not (lib / "libcudart.so").exists():
        (lib / "libcudart.so").symlink_to(sonames[0].name)


def provision_pip(tc: Toolchain, *, offline: bool = False) -> CudaToolkit:
    assert tc.pip_version is not None
    root = cache_root() / "toolchains" / f"cuda-{tc.pip_version}-pip"
    cuda_home = root / "nvidia" / f"cu{tc.cuda.split('.')[0]}"
    if offline and not is_installed(root):
        raise ToolchainError(
            f"toolchains.{tc.name}: pip toolkit {tc.pip_version} is not cached and --offline forbids installing it",
            hint="use a host toolchain offline",
        )
    version = tc.pip_version

    def install() -> None:
        pip_install_into(root, pip_toolkit_requirements(version), what="pip toolkit install", error=ToolchainError)
        fix_pip_toolkit(cuda_home)

    install_once(root, version, install, note=f"installing CUDA {version} from PyPI into {root}")
    mark_used(root)
    nvcc = cuda_home / "bin" / "nvcc"
    version = _nvcc_version(nvcc)
    if version != tc.pip_version:
        raise ToolchainError(f"{nvcc} is {version}, expected {tc.pip_version}; delete {root} to reinstall")
    return CudaToolkit(cuda_home, nvcc, version, "pip")


def provision_cuda(tc: Toolchain, *, offline: bool = False, in_image: bool = False) -> CudaToolkit:
    """The toolkit of `tc`; `in_image` (BuildSettings): inside a toolchain image, where a container toolchain
    is the host's."""
    if tc.provision == "host" or (tc.provision == "container" and in_image):
        return provision_host(tc)
    if tc.provision == "pip":
        return provision_pip(tc, offline=offline)
    raise ToolchainError(
        f"toolchains.{tc.name}: a container toolchain runs inside its image", hint="build with --container"
    )


@dataclass(frozen=True)
class TorchEnv:
    """What the build needs to know about the torch it links against (read from the env itself)."""

    python: Path
    torch_version: str
    torch_cuda: str | None
    cxx11_abi: bool
    torch_dir: Path  # site-packages/torch
    python_include: str
    ext_suffix: str
    python_version: str
    cmake: Path
    ninja: Path

    @property
    def include_dirs(self) -> list[Path]:
        return [self.torch_dir / "include", self.torch_dir / "include" / "torch" / "csrc" / "api" / "include"]

    @property
    def lib_dir(self) -> Path:
        return self.torch_dir / "lib"


_PROBE = r"""
import json, sys, sysconfig, os, shutil
import torch
out = {
    "torch_version": torch.__version__, "torch_cuda": torch.version.cuda,
    "cxx11_abi": bool(torch._C._GLIBCXX_USE_CXX11_ABI), "torch_dir": os.path.dirname(torch.__file__),
    "python_include": sysconfig.get_paths()["include"], "ext_suffix": sysconfig.get_config_var("EXT_SUFFIX"),
    "python_version": "%d.%d" % sys.version_info[:2],
}
try:
    import cmake, ninja
    out["cmake"] = os.path.join(cmake.CMAKE_BIN_DIR, "cmake"); out["ninja"] = os.path.join(ninja.BIN_DIR, "ninja")
except ImportError:
    out["cmake"] = shutil.which("cmake"); out["ninja"] = shutil.which("ninja")
print(json.dumps(out))
"""


def probe_torch(python: Path) -> TorchEnv:
    proc = call([python, "-c", _PROBE], quiet=True)
    if proc.returncode != 0:
        raise ToolchainError(f"{python} cannot import torch:\n{proc.stderr.strip()[-2000:]}")
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    if not info["cmake"] or not info["ninja"]:
        raise ToolchainError(
            f"{python}: cmake and ninja are needed beside torch", hint=f"pip install {CMAKE_PIN} {NINJA_PIN}"
        )
    return TorchEnv(
        python=python,
        torch_version=info["torch_version"],
        torch_cuda=info["torch_cuda"],
        cxx11_abi=info["cxx11_abi"],
        torch_dir=Path(info["torch_dir"]),
        python_include=info["python_include"],
        ext_suffix=info["ext_suffix"],
        python_version=info["python_version"],
        cmake=Path(info["cmake"]),
        ninja=Path(info["ninja"]),
    )


def check_torch(env: TorchEnv, spec: TorchSpec, python: str) -> None:
    """Refuse an env whose torch or interpreter is not the one the target names."""
    base = env.torch_version.split("+")[0]
    if base != spec.version:
        raise ToolchainError(f"torch in {env.python} is {env.torch_version}, the target needs {spec.version}")
    if env.torch_cuda != spec.cuda:
        raise ToolchainError(
            f"torch {env.torch_version} in {env.python} was built for CUDA {env.torch_cuda}, "
            f"the matrix says torch.{spec.name}.cuda is {spec.cuda}",
            hint="install the torch build for that CUDA, or fix the matrix",
        )
    if env.python_version != python:
        raise ToolchainError(
            f"{env.python} is Python {env.python_version}, the target is for Python {python}",
            hint=f"run fawheels with a Python {python} interpreter",
        )


def torch_env(target: Target, *, offline: bool = False) -> TorchEnv:
    """An isolated venv with exactly the target's torch (+ pinned cmake/ninja), made once and cached.

    Offline, the interpreter running fawheels is used instead when its torch is the one asked for."""
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    if running != target.python:
        raise ToolchainError(
            f"target {target.id} is for Python {target.python}, fawheels runs on {running}",
            hint=f"run fawheels (or nox) with Python {target.python}",
        )
    root = cache_root() / "envs" / f"torch-{target.torch.version}-{target.python_tag}"
    python = root / "bin" / "python"
    if offline and not is_installed(root):
        log(f"offline: using the running interpreter's torch ({sys.executable})")
        env = probe_torch(Path(sys.executable))
        check_torch(env, target.torch, target.python)
        return env

    def install() -> None:
        run([sys.executable, "-m", "venv", str(root)], error=ToolchainError, what="venv")
        run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--progress-bar",
                "off",
                f"torch=={target.torch.version}",
                CMAKE_PIN,
                NINJA_PIN,
            ],
            error=ToolchainError,
            what=f"pip install torch=={target.torch.version}",
        )

    note = f"creating torch env {root} (torch=={target.torch.version}; once per torch/Python)"
    install_once(root, target.torch.version, install, note=note)
    mark_used(root)
    env = _probe_cached_env(root, python)
    check_torch(env, target.torch, target.python)
    return env


PROBE_FILE = ".fawheels-probe.json"


def _probe_cached_env(root: Path, python: Path) -> TorchEnv:
    """probe_torch for an env fawheels made (it never changes after its marker is written): the first probe
    (an `import torch`, seconds) is kept beside the marker and reused while the marker is the same file."""
    marker = root / COMPLETE_MARKER
    ident = [marker.read_text(), marker.stat().st_mtime_ns]
    saved = root / PROBE_FILE
    try:
        doc = json.loads(saved.read_text())
        if doc["marker"] == ident:
            f = doc["env"]
            return TorchEnv(**{**f, **{k: Path(f[k]) for k in ("python", "torch_dir", "cmake", "ninja")}})
    except (OSError, ValueError, KeyError, TypeError):
        pass
    env = probe_torch(python)
    fields = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(env).items()}
    write_atomic(saved, json.dumps({"marker": ident, "env": fields}))
    return env


def host_compiler_version() -> str:
    out = call(["c++", "--version"], quiet=True).stdout
    first = out.splitlines()[0] if out else "unknown"
    m = re.search(r"(\d+\.\d+\.\d+)", first)
    return f"{'gcc' if 'g++' in first or 'GCC' in first else 'c++'} {m.group(1) if m else first}"
