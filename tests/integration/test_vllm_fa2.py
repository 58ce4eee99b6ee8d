"""vllm-fa2: the matrix field naming the vLLM release, the op-schema facts against vLLM's own wheels, a real
one-TU build whose registered ops are compared (under torch) with those of vLLM's bundled `_vllm_fa2_C`,
and `fawheels overlay` into a venv holding that vLLM release, then `--undo`."""

from __future__ import annotations

import ast
import ctypes.util
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from fawheels._util.errors import ConfigError, OverlayError
from fawheels.check.verify import check_op_schemas
from fawheels.check.wheelfacts import WheelFacts, op_schemas_in
from fawheels.check.wheelzip import read_file
from fawheels.compile.buildinfo import BuildInfo
from fawheels.compile.units import ops_header
from fawheels.deploy.overlay import BACKUP_SUFFIX, STATE_SUFFIX, Installed, Served, _check_install
from fawheels.matrix.config import load_matrix, load_matrix_file
from fawheels.matrix.model import Source
from fawheels.matrix.recipes import VLLM_FA2, Release
from fawheels.source.fetch import fetch_sdist
from support.checkout import copy_repo, fawheels
from support.cudabins import build_info

REPO = Path(__file__).resolve().parents[2]
MATRIX = load_matrix_file(REPO / "build_matrix.yaml")
DECODE = "vllm-fa2-cu130-torch2.14-sm120-cp311-decode"  # the smallest build vLLM can decode with
_RELEASE = VLLM_FA2.release("0.33.0")
assert _RELEASE is not None
RELEASE: Release = _RELEASE  # narrowed for the functions below
SO = "vllm/vllm_flash_attn/_vllm_fa2_C.abi3.so"
HAS_NVCC = shutil.which("nvcc") is not None or Path("/usr/local/cuda-13.0/bin/nvcc").exists()


# --- the matrix field -----------------------------------------------------------------------------------


def matrix_text(group: str, torch: str = "2.14", python: str = "3.11") -> str:
    return f"""
default_target: vllm-fa2-cu130-torch{torch}-sm120-cp{python.replace(".", "")}
sources:
  fa: {{kind: sdist, url: https://x/flash_attn-2.8.3.tar.gz, sha256: "{"a" * 64}"}}
toolchains:
  cu130: {{cuda: "13.0", provision: host}}
torch:
  "2.14": {{version: 2.14.1, cuda: "13.0", cxx_std: 20}}
  "2.11": {{version: 2.11.0, cuda: "13.0", cxx_std: 20}}
profiles:
  p: {{head_dims: [128], dtypes: [bf16], causal: [false, true], split_kv: true}}  # serves vLLM's calls
targets:
  - recipe: vllm-fa2
    source: fa
{group}    matrix: {{toolchain: [cu130], torch: ["{torch}"], archs: [[sm_120]], python: ["{python}"], profile: [p]}}
"""


def test_a_target_carries_the_release_it_serves() -> None:
    m = load_matrix(matrix_text("    serves: vllm==0.33.0\n"))
    (target,) = m.targets
    assert (target.serves, target.served_release) == ("vllm==0.33.0", "0.33.0")
    assert target.summary()["serves"] == "vllm==0.33.0"
    assert all(t.serves is None for t in MATRIX.targets if t.recipe == "fa2")
    assert {t.serves for t in MATRIX.targets if t.recipe == "vllm-fa2"} == {"vllm==0.33.0", "vllm==0.26.0"}


@pytest.mark.parametrize(
    ("group", "torch", "python", "message"),
    [
        ("", "2.14", "3.11", "targets[0].serves: recipe 'vllm-fa2' builds for an installed vllm; name its release"),
        (
            "    serves: vllm==0.34.0\n",
            "2.14",
            "3.11",
            "targets[0].serves: vllm 0.34.0 is not a release fawheels has the op schemas of (did you mean '0.33.0'?)",
        ),
        ("    serves: vllm>=0.33\n", "2.14", "3.11", "targets[0].serves: expected vllm==<release>, got 'vllm>=0.33'"),
        ("    serves: sglang==0.33.0\n", "2.14", "3.11", "targets[0].serves: expected vllm==<release>"),
        (
            "    serves: vllm==0.33.0\n",
            "2.11",
            "3.11",
            "targets[0] (toolchain=cu130, torch=2.11, archs=['sm_120'], python=3.11, profile=p): vllm==0.33.0 pins "
            "torch==2.14.0, the target builds against torch 2.11.0",
        ),
        (
            "    serves: vllm==0.33.0\n",
            "2.14",
            "3.10",
            "vllm==0.33.0 requires Python >=3.11,<3.15, the target is Python 3.10",
        ),
    ],
)
def test_the_served_release_is_validated_with_its_field_path(group: str, torch: str, python: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_matrix(matrix_text(group, torch, python))
    assert message in str(err.value)


def test_a_standalone_recipe_serves_nothing() -> None:
    text = (
        matrix_text("    serves: vllm==0.33.0\n")
        .replace("recipe: vllm-fa2", "recipe: fa2")
        .replace("default_target: vllm-fa2", "default_target: fa2")
    )
    with pytest.raises(ConfigError, match=r"targets\[0\]\.serves: recipe 'fa2' builds a standalone wheel"):
        load_matrix(text)


def test_the_ops_header_carries_the_served_release_schemas_verbatim() -> None:
    header = ops_header(MATRIX.target(DECODE))
    assert 'kServes = "vllm==0.33.0"' in header
    for schema in RELEASE.ops:
        assert json.dumps(schema) in header
    old = ops_header(MATRIX.target("vllm-fa2-cu130-torch2.11-sm90-cp312"))
    assert "Generator? gen) -> Tensor[]" in old and "Tensor? gen) -> Tensor[]" not in old
    assert ops_header(MATRIX.target("fa2-cu130-torch2.14-sm120-cp311-one-tu")) == ""


# --- the op-schema check of verify (pure) ------------------------------------------------------------------


def facts(schemas: dict[str, str]) -> WheelFacts:
    return WheelFacts("w.whl", {}, None, {}, (), {}, {SO: schemas})


INFO = BuildInfo.from_json(build_info(recipe="vllm-fa2", serves="vllm==0.33.0", extensions=[SO]))


def test_op_schemas_pass_when_identical_and_name_the_differing_argument_otherwise() -> None:
    ours = dict(zip(RELEASE.op_names, RELEASE.ops, strict=True))
    assert check_op_schemas(facts(ours), INFO).ok
    old = VLLM_FA2.release("0.26.0")
    assert old is not None
    check = check_op_schemas(facts(dict(zip(old.op_names, old.ops, strict=True))), INFO)
    assert not check.ok
    assert (
        f"{SO}: varlen_fwd: argument 21 is `Generator? gen`, vllm==0.33.0 calls it with `Tensor? gen`" in check.detail
    )
    ours.pop("fwd_kvcache")
    assert "fwd_kvcache: not registered (needed by vllm==0.33.0)" in check_op_schemas(facts(ours), INFO).detail
    assert check_op_schemas(facts({}), replace(INFO, serves=None)).ok  # a wheel that serves nothing promises no ops


def test_schema_strings_are_found_in_a_binary_without_loading_it() -> None:
    blob = b"\x7fELF\0junk\0varlen_fwd(Tensor q\0" + RELEASE.ops[0].encode() + b"\0more\0"
    assert op_schemas_in(blob) == {"varlen_fwd": RELEASE.ops[0]}


# --- overlay refusals (pure) -------------------------------------------------------------------------------


SERVED_WHEEL = "vllm_fa2-0.33.0+cu130torch2.14sm120onetu-cp311-abi3-linux_x86_64.whl"


def served(tmp_path: Path) -> Served:
    from packaging.requirements import Requirement

    return Served(tmp_path / SERVED_WHEEL, "vllm", RELEASE, SO, "_vllm_fa2_C", Requirement("torch==2.14.*"), b"")


@pytest.mark.parametrize(
    ("version", "torch", "message"),
    [
        (None, "2.14.1", "has no vllm installed"),
        (
            "0.32.0",
            "2.14.0",
            f"has vllm 0.32.0; {SERVED_WHEEL} is built for vllm==0.33.0 and its op schemas may differ: refusing",
        ),
        ("0.33.0", "2.13.0", f"has torch 2.13.0; {SERVED_WHEEL} links against torch==2.14.*: refusing"),
    ],
)
def test_overlay_refuses_another_release_or_torch(
    tmp_path: Path, version: str | None, torch: str, message: str
) -> None:
    so = tmp_path / "x.so"
    so.write_bytes(b"")
    with pytest.raises(OverlayError) as err:
        _check_install(served(tmp_path), Installed("/venv/bin/python", version, so if version else None, torch))
    assert message in str(err.value)


# --- the facts, read from vLLM's own wheels ----------------------------------------------------------------


def vllm_wheel(release: Release) -> Path:
    """The release's PyPI wheel, downloaded once into the fawheels cache and checked against its pin."""
    name = release.wheel_url.rsplit("/", 1)[1]
    return fetch_sdist(Source(name, "sdist", release.wheel_url, release.wheel_sha256))


@pytest.mark.network
@pytest.mark.parametrize("release", VLLM_FA2.releases, ids=[r.version for r in VLLM_FA2.releases])
def test_recorded_schemas_are_what_the_release_registers_and_calls(release: Release) -> None:
    with zipfile.ZipFile(vllm_wheel(release)) as zf:
        registered = op_schemas_in(zf.read(SO), release.op_names)
        interface = zf.read("vllm/vllm_flash_attn/flash_attn_interface.py").decode()
        metadata = next(zf.read(n).decode() for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
    assert registered == dict(zip(release.op_names, release.ops, strict=True))
    assert f"Requires-Dist: torch=={release.torch}\n" in metadata
    # Every call the interface makes passes exactly as many arguments as the schema has.
    calls = [
        node
        for node in ast.walk(ast.parse(interface))
        if isinstance(node, ast.Call) and ast.unparse(node.func).startswith("torch.ops._vllm_fa2_C.")
    ]
    assert {ast.unparse(c.func).rsplit(".", 1)[1] for c in calls} >= {"varlen_fwd"}
    for call in calls:
        name = ast.unparse(call.func).rsplit(".", 1)[1]
        assert len(call.args) == registered[name].split("->")[0].count(",") + 1, name


# --- a real build, its ops under torch, and the overlay ----------------------------------------------------


@pytest.fixture(scope="module")
def decode_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    checkout = copy_repo(tmp_path_factory.mktemp("vllm-clone"))
    proc = fawheels(checkout, "build", DECODE)
    assert proc.returncode == 0, proc.stderr[-4000:]
    (wheel,) = (checkout / "dist").glob("*.whl")
    return wheel


@pytest.fixture(scope="module")
def torch_python() -> Path:
    from fawheels.toolchain.toolkit import torch_env

    return torch_env(MATRIX.target(DECODE)).python


def registered_under_torch(python: Path, so: Path, names: tuple[str, ...], stub_dir: Path) -> dict[str, str]:
    """Load the library into torch (no GPU needed) and print the schemas torch registered, as torch prints them."""
    script = (
        "import json, sys, torch; torch.ops.load_library(sys.argv[1]); ns = torch.ops._vllm_fa2_C; "
        "print(json.dumps({n: str(getattr(ns, n).default._schema) for n in sys.argv[2:]}))"
    )
    env = dict(os.environ)
    if ctypes.util.find_library("cuda") is None:
        # vLLM's extension links the driver library; an empty stand-in lets it load where no driver is.
        stub = stub_dir / "libcuda.so.1"
        subprocess.run(
            ["gcc", "-shared", "-x", "c", "/dev/null", "-o", str(stub), "-Wl,-soname,libcuda.so.1"], check=True
        )
        env["LD_LIBRARY_PATH"] = f"{stub_dir}:{env.get('LD_LIBRARY_PATH', '')}"
    proc = subprocess.run([str(python), "-c", script, str(so), *names], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    schemas: dict[str, str] = json.loads(proc.stdout.strip().splitlines()[-1])
    return schemas


@pytest.mark.nvcc
@pytest.mark.network
@pytest.mark.skipif(not HAS_NVCC, reason="needs nvcc 13.0")
def test_the_build_registers_exactly_the_ops_of_vllms_own_extension(
    decode_wheel: Path, torch_python: Path, tmp_path: Path
) -> None:
    assert decode_wheel.name == "vllm_fa2-0.33.0+cu130torch2.14sm120decode-cp311-abi3-linux_x86_64.whl"
    report = json.loads(decode_wheel.with_name(decode_wheel.name + ".verify.json").read_text())
    assert report["ok"] and {c["name"]: c["ok"] for c in report["checks"]}["op-schemas"]
    with zipfile.ZipFile(decode_wheel) as zf:
        names = zf.namelist()
        ours = tmp_path / "ours" / "_vllm_fa2_C.abi3.so"
        ours.parent.mkdir()
        ours.write_bytes(zf.read(SO))
        metadata = zf.read("vllm_fa2-0.33.0+cu130torch2.14sm120decode.dist-info/METADATA").decode()
    assert [n for n in names if not n.startswith("vllm_fa2-")] == [SO]
    facts = read_file(ours)
    assert {(e.kind, e.arch) for e in facts.entries} == {("sass", "sm_120")}
    # vLLM's 16-token pages: the host API's page check is patch 0003's, not upstream's multiple-of-256 rule
    binary = ours.read_bytes()
    assert b"Paged KV cache block size must be a positive multiple of 16 tokens" in binary
    assert b"divisible by 256" not in binary
    assert "Requires-Dist: torch==2.14.*\n" in metadata and "Requires-Dist: vllm==0.33.0\n" in metadata
    with zipfile.ZipFile(vllm_wheel(RELEASE)) as zf:
        theirs = tmp_path / "theirs" / "_vllm_fa2_C.abi3.so"
        theirs.parent.mkdir()
        theirs.write_bytes(zf.read(SO))
    # Both libraries loaded by the same torch, which parses and prints each registered schema.
    assert registered_under_torch(torch_python, ours, RELEASE.op_names, tmp_path) == registered_under_torch(
        torch_python, theirs, RELEASE.op_names, tmp_path
    )


@pytest.fixture
def vllm_venv(tmp_path: Path, torch_python: Path) -> Path:
    """A venv with vllm 0.33.0 installed without its dependencies; torch comes from the build's torch env."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-deps",
            "--no-compile",
            str(vllm_wheel(RELEASE)),
        ],
        check=True,
    )
    torch_site = subprocess.run(
        [str(torch_python), "-c", "import torch, os; print(os.path.dirname(os.path.dirname(torch.__file__)))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    site = next((venv / "lib").glob("python3.*/site-packages"))
    (site / "torch-env.pth").write_text(torch_site + "\n")
    return python


def overlay(wheel: Path, python: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return fawheels(REPO, "overlay", str(wheel), "--into-site-packages", "--python", str(python), *extra)


@pytest.mark.nvcc
@pytest.mark.network
@pytest.mark.skipif(not HAS_NVCC, reason="needs nvcc 13.0")
def test_overlay_into_a_venv_with_that_vllm_and_undo_byte_for_byte(decode_wheel: Path, vllm_venv: Path) -> None:
    site = next((vllm_venv.parent.parent / "lib").glob("python3.*/site-packages"))
    installed = site / SO
    original = installed.read_bytes()
    mode = installed.stat().st_mode

    proc = overlay(decode_wheel, vllm_venv)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with zipfile.ZipFile(decode_wheel) as zf:
        assert installed.read_bytes() == zf.read(SO)
    assert (site / (SO + BACKUP_SUFFIX)).read_bytes() == original
    state = json.loads((site / (SO + STATE_SUFFIX)).read_text())
    assert state["original_sha256"] == hashlib.sha256(original).hexdigest()
    # vLLM's `from . import _vllm_fa2_C` now loads ours (limited-API module init) and registers its ops.
    script = (
        "import importlib.util as u, sys, torch; s = u.spec_from_file_location('vllm.vllm_flash_attn."
        "_vllm_fa2_C', sys.argv[1]); m = u.module_from_spec(s); s.loader.exec_module(m); "
        "print(torch.ops._vllm_fa2_C.varlen_fwd.default._schema.name)"
    )
    imported = subprocess.run([str(vllm_venv), "-c", script, str(installed)], capture_output=True, text=True)
    assert imported.stdout.strip() == "_vllm_fa2_C::varlen_fwd", imported.stderr[-2000:]

    again = overlay(decode_wheel, vllm_venv)  # a second overlay keeps the first backup: the original
    assert again.returncode == 0, again.stderr[-2000:]
    assert (site / (SO + BACKUP_SUFFIX)).read_bytes() == original

    undone = overlay(decode_wheel, vllm_venv, "--undo")
    assert undone.returncode == 0, undone.stderr[-2000:]
    assert installed.read_bytes() == original and installed.stat().st_mode == mode
    assert not (site / (SO + BACKUP_SUFFIX)).exists() and not (site / (SO + STATE_SUFFIX)).exists()
    nothing = overlay(decode_wheel, vllm_venv, "--undo")
    assert nothing.returncode == 10 and "carries no fawheels overlay: nothing to undo" in nothing.stderr

    # Another vLLM release is refused before anything is touched.
    metadata = next(site.glob("vllm-0.33.0.dist-info")) / "METADATA"
    metadata.write_text(metadata.read_text().replace("Version: 0.33.0", "Version: 0.32.0", 1))
    refused = overlay(decode_wheel, vllm_venv)
    assert refused.returncode == 10, refused.stderr[-2000:]
    assert "has vllm 0.32.0;" in refused.stderr and "is built for vllm==0.33.0" in refused.stderr
    assert installed.read_bytes() == original and not (site / (SO + BACKUP_SUFFIX)).exists()


def test_overlay_needs_the_site_packages_flag() -> None:
    from fawheels.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["overlay", "w.whl"])
    args = build_parser().parse_args(["overlay", "w.whl", "--into-site-packages", "--undo"])
    assert args.undo and args.python is None and os.fspath(args.wheel) == "w.whl"
