"""Toolchain images, pure: what an image is built from (its recipe, named by a hash of its inputs), what it was
found to hold, the lock file (docker/images.lock.json) that pins each image and each registry base by digest,
and the commands that provide a registry base where fawheels may not pull one."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from fawheels._util.errors import ContainerError

LABEL = "org.fawheels."
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # src/fawheels: mounted into the image as the code that runs there
# Relative to the source checkout (`find_checkout`).
LOCK_FILE = "docker/images.lock.json"
BASE_SCRIPT = "scripts/make-base-image.sh"
# Built locally by scripts/make-base-image.sh (no registry needed), never pulled; Debian 12 ships
# one Python, 3.11.
LOCAL_BASE, LOCAL_BASE_PYTHON = "fawheels/base:debian-bookworm", "3.11"
PIP_DOCKERFILE = "docker/Dockerfile.pip-cuda"
SYSTEM_DOCKERFILE = "docker/Dockerfile.nvidia-cuda"

# Prints the versions an image really has (ImageFacts.parse reads them).
_PROBE = (
    'nvcc --version; gcc -dumpfullversion; python -W ignore -c "import sys, torch; '
    "print('torch', torch.__version__, torch.version.cuda, '%d.%d' % sys.version_info[:2])\""
)


class ImageLike(Protocol):
    """matrix.ImageSpec, read-only."""

    @property
    def base(self) -> str: ...
    @property
    def python(self) -> str: ...
    @property
    def dockerfile(self) -> str: ...


class ToolchainLike(Protocol):
    """matrix.Toolchain, read-only: all a container build needs of it."""

    @property
    def name(self) -> str: ...
    @property
    def cuda(self) -> str: ...
    @property
    def image(self) -> ImageLike | None: ...


@dataclass(frozen=True)
class ImageRecipe:
    """Everything a toolchain image is built from, and what it must contain."""

    dockerfile: str  # relative to the repository root
    base: str
    cuda: str  # "13.0"
    nvcc: str  # exact ("13.0.88") from PyPI pins, or the release ("12.8") for a base's own nvcc
    torch: str  # "2.14.1"
    python: str  # "3.11"
    gcc: str = "12"
    torch_index_url: str = ""

    @property
    def build_args(self) -> dict[str, str]:
        return {
            "BASE_IMAGE": self.base,
            "CUDA_VERSION": self.cuda,
            "NVCC_VERSION": self.nvcc,
            "PYTHON_VERSION": self.python,
            "GCC_VERSION": self.gcc,
            "TORCH_VERSION": self.torch,
            "TORCH_INDEX_URL": self.torch_index_url,
        }

    @property
    def labels(self) -> dict[str, str]:
        """The labels the Dockerfile sets from these arguments."""
        return {
            f"{LABEL}cuda": self.cuda,
            f"{LABEL}nvcc": self.nvcc,
            f"{LABEL}torch": self.torch,
            f"{LABEL}python": self.python,
            f"{LABEL}gcc": self.gcc,
        }

    def inputs_sha256(self, root: Path) -> str:
        """Hash of the Dockerfile, every file under docker/ it can COPY, and the build arguments."""
        h = hashlib.sha256()
        context = root / "docker"
        # The lock file records this hash, so it cannot be part of it.
        files = [
            root / self.dockerfile,
            *sorted(p for p in context.rglob("*") if p.is_file() and p != root / LOCK_FILE),
        ]
        for path in files:
            h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
        h.update(json.dumps(self.build_args, sort_keys=True).encode())
        return h.hexdigest()

    def tag(self, inputs_sha256: str) -> str:
        return (
            f"fawheels/toolchain:cu{self.cuda.replace('.', '')}-torch{self.torch}-py{self.python}-{inputs_sha256[:12]}"
        )


def pinned_nvcc(cuda: str, root: Path) -> str:
    """The exact nvcc the PyPI image installs for a CUDA release (docker/requirements/cuda-X.Y.txt)."""
    path = root / "docker" / "requirements" / f"cuda-{cuda}.txt"
    if not path.is_file():
        raise ContainerError(
            f"no PyPI toolchain pins for CUDA {cuda} ({path.relative_to(root)} is missing)",
            hint=f"add them, or give the toolchain an image: {{base: nvidia/cuda:{cuda}.x-devel-…, "
            f"dockerfile: {SYSTEM_DOCKERFILE}}}",
        )
    if m := re.search(r"^nvidia-cuda-nvcc==(\S+)\s*$", path.read_text(), re.M):
        return m.group(1)
    raise ContainerError(f"{path.relative_to(root)} pins no exact nvidia-cuda-nvcc version")


def recipe_for(toolchain: ToolchainLike, torch: str, torch_cuda: str, python: str, root: Path) -> ImageRecipe:
    """The image a target needs: the toolchain's own image if the matrix gives one, else nvcc from
    PyPI on the registry-free Debian base (CUDA 13.x only: PyPI has no 12.x nvcc)."""
    image = toolchain.image
    dockerfile = image.dockerfile if image else PIP_DOCKERFILE
    if image and image.python != python:
        raise ContainerError(
            f"toolchains.{toolchain.name}.image is Python {image.python}, the target is for Python {python}"
        )
    if torch_cuda != toolchain.cuda:
        raise ContainerError(
            f"torch {torch} is built for CUDA {torch_cuda}, toolchain {toolchain.name} is CUDA {toolchain.cuda}"
        )
    if image is None and python != LOCAL_BASE_PYTHON:
        raise ContainerError(
            f"the default base ({LOCAL_BASE}) has Python {LOCAL_BASE_PYTHON}, the target is for Python {python}",
            hint=f"give toolchains.{toolchain.name} an image whose base has it",
        )
    if dockerfile == PIP_DOCKERFILE:
        return ImageRecipe(
            dockerfile,
            image.base if image else LOCAL_BASE,
            toolchain.cuda,
            pinned_nvcc(toolchain.cuda, root),
            torch,
            python,
        )
    if image is None:
        raise ContainerError(f"toolchains.{toolchain.name}: no image to build in")
    # A base's own toolkit (nvidia/cuda): torch comes from the PyTorch index for that CUDA.
    return ImageRecipe(
        dockerfile,
        image.base,
        toolchain.cuda,
        toolchain.cuda,
        torch,
        python,
        torch_index_url=f"https://download.pytorch.org/whl/cu{toolchain.cuda.replace('.', '')}",
    )


@dataclass(frozen=True)
class ImageFacts:
    """What an image reports about itself when run."""

    nvcc: str
    gcc: str
    torch: str
    torch_cuda: str
    python: str

    @classmethod
    def parse(cls, output: str) -> ImageFacts:
        nvcc = re.search(r"release \d+\.\d+, V(\d+\.\d+\.\d+)", output)
        gcc = re.search(r"^(\d+\.\d+\.\d+)\s*$", output, re.M)
        torch = re.search(r"^torch (\S+) (\S+) (\S+)\s*$", output, re.M)
        if not (nvcc and gcc and torch):
            raise ContainerError(f"cannot read nvcc/gcc/torch versions from the image:\n{output.strip()[-2000:]}")
        return cls(nvcc.group(1), gcc.group(1), torch.group(1), torch.group(2), torch.group(3))


def mismatches(recipe: ImageRecipe, labels: Mapping[str, str], facts: ImageFacts | None) -> list[str]:
    """Why an image cannot build for this recipe; empty when it can."""
    problems = [f"label {k}={labels.get(k)!r}, wanted {v!r}" for k, v in recipe.labels.items() if labels.get(k) != v]
    if facts is None:
        return problems
    nvcc_release = ".".join(facts.nvcc.split(".")[:2])
    if nvcc_release != recipe.cuda or not (facts.nvcc + ".").startswith(recipe.nvcc + "."):
        problems.append(f"nvcc is {facts.nvcc}, wanted {recipe.nvcc}")
    if facts.torch.split("+")[0] != recipe.torch or facts.torch_cuda != recipe.cuda:
        problems.append(f"torch is {facts.torch} (CUDA {facts.torch_cuda}), wanted {recipe.torch} (CUDA {recipe.cuda})")
    if facts.python != recipe.python:
        problems.append(f"Python is {facts.python}, wanted {recipe.python}")
    if facts.gcc.split(".")[0] != recipe.gcc:
        problems.append(f"gcc is {facts.gcc}, wanted {recipe.gcc}")
    return problems


def find_checkout(*starts: Path) -> Path:
    """The fawheels source checkout, which holds docker/ and scripts/: the first of `starts`, this
    module's checkout, or the current directory. (`nox -s build-sm120` installs fawheels into a venv,
    so the module alone does not say where the checkout is.)"""
    from fawheels._util.project import project_root

    shipped = [root] if (root := project_root()) is not None else []  # docker/ inside an installed fawheels
    for start in (*starts, PACKAGE_DIR.parents[1], *shipped, Path.cwd()):
        if (start / PIP_DOCKERFILE).is_file():
            return start
    raise ContainerError(
        "container builds need the fawheels source checkout (docker/, scripts/)",
        hint="run from the checkout, or pass a --matrix that lives in it",
    )


def read_lock(root: Path) -> dict[str, dict[str, Any]]:
    path = root / LOCK_FILE
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    images: dict[str, dict[str, Any]] = data.get("images", {})
    return images


def lock_key(toolchain: str, torch: str, python: str) -> str:
    return f"{toolchain}/torch{torch}/py{python}"


def base_pins(root: Path) -> dict[str, dict[str, Any]]:
    """`bases` of the lock file: registry base tag -> {digest, verified, note}."""
    path = root / LOCK_FILE
    if not path.is_file():
        return {}
    bases: dict[str, dict[str, Any]] = json.loads(path.read_text()).get("bases", {})
    return bases


def pinned_base(base: str, root: Path) -> str:
    """A registry base as `tag@sha256:…` from the lock file (the local debootstrap base, and a base the
    matrix already pins by digest, stay as they are). A registry tag without a pin is refused: tags move."""
    if base == LOCAL_BASE or "@sha256:" in base:
        return base
    pin = base_pins(root).get(base)
    digest = str((pin or {}).get("digest", ""))
    if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        raise ContainerError(
            f'base image {base} has no sha256 digest in {LOCK_FILE} ("bases")',
            hint="look it up where a registry is reachable "
            f"(`docker buildx imagetools inspect {base}`) "
            f'and add {{"{base}": {{"digest": "sha256:…", "verified": true}}}}',
        )
    return f"{base}@{digest}"


def resolve_recipe(toolchain: ToolchainLike, torch: str, torch_cuda: str, python: str, root: Path) -> ImageRecipe:
    """recipe_for, with a registry base pinned by its digest from the lock file."""
    recipe = recipe_for(toolchain, torch, torch_cuda, python, root)
    return dataclasses.replace(recipe, base=pinned_base(recipe.base, root))


def provide_commands(engine: str, base_ref: str, image_tag: str, target_id: str) -> list[str]:
    """What makes a registry-based toolchain image available here: pull its pinned base where a registry is
    reachable; without one, build the toolchain image where there is one and carry the image over (a
    loaded base would lose its registry digest, so the finished toolchain image travels, not the base)."""
    return [
        f"{engine} pull {base_ref}",
        f"# no registry here: where there is one, `{engine} pull {base_ref} && fawheels build {target_id}` "
        f"builds {image_tag}; `{engine} save {image_tag} -o toolchain.tar` there, `{engine} load -i toolchain.tar` "
        "here",
    ]
