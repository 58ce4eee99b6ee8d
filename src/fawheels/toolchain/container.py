"""Builds inside a pinned toolchain image (issue 5): the same `fawheels build` pipeline, run in a
container that holds the target's nvcc, gcc, Python and torch.

An image is named by a hash of everything it is built from (Dockerfile, docker/ scripts and pins,
build arguments), so a tag that exists was built from these inputs; `docker/images.lock.json`
records the hash per toolchain and what the image was found to contain (`lock_images`, run by
`nox -s lock-images`). Before a build the image's labels and the versions it reports are compared
with the target; a mismatch is refused. `Engine` is the only code that talks to docker/podman. The recipes
and the lock file are images.py's (pure); the host's indexes for an image build pipserve.py's.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fawheels._util.errors import ContainerError
from fawheels._util.files import write_atomic
from fawheels._util.paths import cache_root, mark_used
from fawheels._util.runner import Completed, TimeoutExpired, call, log, run, run_code
from fawheels.options import IN_IMAGE, BuildSettings, nested_build_argv
from fawheels.toolchain.images import (
    _PROBE,
    BASE_SCRIPT,
    LOCAL_BASE,
    LOCK_FILE,
    PACKAGE_DIR,
    ImageFacts,
    ImageRecipe,
    ToolchainLike,
    base_pins,
    find_checkout,
    lock_key,
    mismatches,
    provide_commands,
    read_lock,
    resolve_recipe,
)
from fawheels.toolchain.pipserve import host_pip_settings, loopback_indexes

ENGINES = ("docker", "podman")
# Inside the container: where the host's pieces are mounted.
SRC, MATRIX_DIR, CACHE, DIST, CA_FILE = "/src", "/matrix", "/cache", "/dist", "/etc/fawheels/ca-certificates.crt"
# The only host environment a build sees: network settings, the reproducibility clock, and the
# compiler cache's backend settings (compilercache.cache_env).
PASSTHROUGH_ENV = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_TRUSTED_HOST",
    "SOURCE_DATE_EPOCH",
    "SCCACHE_CACHE_SIZE",
    "SCCACHE_REDIS_ENDPOINT",
    "SCCACHE_REDIS_KEY_PREFIX",
)
CA_CANDIDATES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")


# ----------------------------------------------------------------------------- pure: what to build


@dataclass(frozen=True)
class Mount:
    host: Path
    container: str
    read_only: bool = False

    def arg(self) -> str:
        return f"type=bind,source={self.host},target={self.container}" + (",readonly" if self.read_only else "")


@dataclass(frozen=True)
class RunSpec:
    """One `fawheels build` inside an image: what is mounted, which environment, which user."""

    image: str
    argv: tuple[str, ...]
    mounts: tuple[Mount, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    user: str = ""
    workdir: str = SRC


def host_ca_bundle(environ: Mapping[str, str]) -> Path | None:
    """The CA bundle the host trusts (a TLS-intercepting proxy's CA lives there)."""
    for candidate in (environ.get("PIP_CERT"), environ.get("SSL_CERT_FILE"), *CA_CANDIDATES):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def plan_run(
    *,
    image: str,
    target_id: str,
    matrix_file: Path,
    dist: Path,
    settings: BuildSettings,
    cache: Path,
    private: Path,
    build_root: Path,
    environ: Mapping[str, str],
    uid: int,
    gid: int,
    package: Path = PACKAGE_DIR,
) -> RunSpec:
    """The container run for one target. No I/O.

    Mounted: the fawheels package that is running here (read-only, so the container runs exactly
    this code, from /src), the matrix file's directory (read-only, for patches), the host's source
    cache (sdists are content-addressed, so sharing is safe) and sccache directory when the host
    build uses one (sccache keys on the compiler binary and the preprocessed input, so sharing is
    safe), a per-image private cache and build tree at the host's build root path (nvcc hashes
    source paths into symbol names, so the path must be the same for identical cubins), dist/, and
    the host CA bundle. Nothing else from the host. `settings`: the host run's (--jobs, --clean, the compiler
    launcher); `environ`: the variables passed through (PASSTHROUGH_ENV, the CA bundle, sccache's)."""
    # Every option that changes the build, with the paths as mounted inside; always offline: the host fetched
    # everything (source into the shared cache, the image itself).
    argv = [
        "python",
        "-m",
        "fawheels.cli",
        "build",
        *nested_build_argv(
            {
                "targets": [target_id],
                "matrix": Path(MATRIX_DIR, matrix_file.name),
                "dist": Path(DIST),
                "offline": True,
                "jobs": settings.jobs,
                "clean": settings.clean,
            }
        ),
    ]
    mounts = [
        Mount(package, f"{SRC}/fawheels", read_only=True),
        Mount(matrix_file.parent, MATRIX_DIR, read_only=True),
        Mount(private / "build", str(build_root)),
        Mount(private / "cache", CACHE),
        Mount(cache / "sources", f"{CACHE}/sources"),
        Mount(dist, DIST),
    ]
    env = {k: environ[k] for k in PASSTHROUGH_ENV if environ.get(k)}
    # A local (file://) index means nothing inside the container.
    for key in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"):
        if key in env:
            urls = [u for u in env[key].split() if u.startswith(("http://", "https://"))]
            if urls:
                env[key] = " ".join(urls)
            else:
                del env[key]
    if settings.launcher:
        # The image's own sccache, with a server inside the container: on the host network the
        # default TCP port would reach the host's server, which runs the host's compilers.
        env.update(FAWHEELS_COMPILER_LAUNCHER="sccache", SCCACHE_SERVER_UDS="/tmp/fawheels-sccache.sock")
        if sccache_dir := environ.get("SCCACHE_DIR"):
            mounts.append(Mount(Path(sccache_dir), f"{CACHE}/sccache"))
            env["SCCACHE_DIR"] = f"{CACHE}/sccache"
    if (ca := host_ca_bundle(environ)) is not None:
        mounts.append(Mount(ca, CA_FILE, read_only=True))
        env.update(PIP_CERT=CA_FILE, SSL_CERT_FILE=CA_FILE, REQUESTS_CA_BUNDLE=CA_FILE)
    env.update(
        PYTHONPATH=SRC,
        FAWHEELS_CACHE=CACHE,
        FAWHEELS_BUILD_ROOT=str(build_root),
        HOME="/tmp",
        **{IN_IMAGE: "1"},
        PYTHONDONTWRITEBYTECODE="1",
    )
    return RunSpec(image, tuple(argv), tuple(mounts), env, f"{uid}:{gid}")


# ----------------------------------------------------------------------------- the engine gateway


@dataclass(frozen=True)
class Engine:
    """docker or podman: the one place that runs them. Every command is printed before it runs."""

    name: str  # "docker" | "podman"
    program: str  # its path

    @classmethod
    def find(cls, environ: Mapping[str, str] = os.environ) -> Engine:
        """The first engine whose daemon answers (FAWHEELS_CONTAINER_ENGINE picks one)."""
        wanted = environ.get("FAWHEELS_CONTAINER_ENGINE")
        if wanted and wanted not in ENGINES:
            raise ContainerError(f"FAWHEELS_CONTAINER_ENGINE={wanted!r}: expected one of {', '.join(ENGINES)}")
        tried = []
        for name in [wanted] if wanted else ENGINES:
            program = shutil.which(name)
            if program is None:
                tried.append(f"{name}: not installed")
                continue
            engine = cls(name, program)
            try:
                proc = engine._call(["info"], check=False, timeout=30)
            except TimeoutExpired:
                tried.append(f"{name}: `{name} info` did not answer in 30 s")
                continue
            if proc.returncode == 0:
                return engine
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            tried.append(f"{name}: {last}")
        raise ContainerError(
            "no container engine is reachable (" + "; ".join(tried) + ")",
            hint="start the docker daemon (`dockerd &` or `systemctl start docker`), or install podman",
        )

    def _call(self, args: Sequence[str], *, check: bool = True, timeout: float | None = None) -> Completed:
        """The engine's answer, captured (shown as `docker ARGS`, run by its path)."""
        proc = call([self.program, *args], timeout=timeout, shown=[self.name, *args])
        if check and proc.returncode != 0:
            raise ContainerError(
                f"`{self.name} {args[0]}` failed (exit {proc.returncode}):\n{proc.stderr.strip()[-2000:]}"
            )
        return proc

    def _stream(self, args: Sequence[str], *, check: bool = True) -> int:
        """Run with the engine's output streamed to our stderr (through the CLI's redaction); its exit code."""
        if check:
            run([self.program, *args], shown=[self.name, *args], what=f"`{self.name} {args[0]}`", error=ContainerError)
            return 0
        return run_code([self.program, *args], shown=[self.name, *args], error=ContainerError)

    def inspect(self, ref: str) -> dict[str, Any] | None:
        """The image's id and labels, or None when there is no such image."""
        proc = self._call(["image", "inspect", ref], check=False)
        if proc.returncode != 0:
            return None
        info: dict[str, Any] = json.loads(proc.stdout)[0]
        return info

    def build(self, *, context: Path, dockerfile: Path, tag: str, build_args: Mapping[str, str]) -> None:
        """Build with the host network (PyPI/Debian through the host's proxy or loopback index)."""
        args = ["build", "--network", "host", "-f", str(dockerfile), "-t", tag]
        for key, value in build_args.items():
            args += ["--build-arg", f"{key}={value}"]
        self._stream([*args, str(context)])

    def output(self, image: str, script: str) -> str:
        """stdout+stderr of a shell script run in a throwaway container without network."""
        proc = self._call(["run", "--rm", "--network", "none", image, "sh", "-c", script])
        return proc.stdout + proc.stderr

    def run(self, spec: RunSpec) -> int:
        args = ["run", "--rm", "--network", "host", "--init", "--user", spec.user, "--workdir", spec.workdir]
        if self.name == "podman" and os.getuid() != 0:
            args += ["--userns", "keep-id"]  # rootless podman: our uid inside is our uid outside
        for mount in spec.mounts:
            args += ["--mount", mount.arg()]
        for key, value in spec.env.items():
            args += ["--env", f"{key}={value}"]
        return self._stream([*args, spec.image, *spec.argv], check=False)


# ----------------------------------------------------------------------------- host pip settings


# ----------------------------------------------------------------------------- lock file


# ----------------------------------------------------------------------------- images


def ensure_base(engine: Engine, base: str, root: Path) -> None:
    """The registry-free base is made here when missing; any other base is pulled by the build."""
    if base != LOCAL_BASE or engine.inspect(base) is not None:
        return
    log(f"base image {base} is missing: building it with debootstrap ({BASE_SCRIPT}, ~30 s)")
    run(
        [root / BASE_SCRIPT, base],
        env={"ENGINE": engine.name},
        error=ContainerError,
        what=f"{BASE_SCRIPT} (it needs root and debootstrap)",
    )


def ensure_image(
    engine: Engine,
    recipe: ImageRecipe,
    root: Path,
    *,
    lock_entry: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] = os.environ,
) -> tuple[str, ImageFacts]:
    """The image for `recipe`, built on demand; refused when it does not hold what the recipe says."""
    digest = recipe.inputs_sha256(root)
    if lock_entry is not None and lock_entry.get("inputs_sha256") != digest:
        raise ContainerError(
            f"{LOCK_FILE} pins image inputs {str(lock_entry.get('inputs_sha256'))[:12]}, the docker/ files "
            f"and toolchain now hash to {digest[:12]}",
            hint="nox -s lock-images (review the diff of docker/images.lock.json)",
        )
    tag = recipe.tag(digest)
    if engine.inspect(tag) is None:
        log(
            f"toolchain image {tag} is missing: building it (CUDA {recipe.cuda}, torch {recipe.torch}, "
            f"Python {recipe.python}; several GB, minutes)"
        )
        ensure_base(engine, recipe.base, root)
        start = time.monotonic()
        with loopback_indexes(host_pip_settings(environ), host_ca_bundle(environ)) as index_args:
            engine.build(
                context=root / "docker",
                dockerfile=root / recipe.dockerfile,
                tag=tag,
                build_args={**recipe.build_args, **index_args},
            )
        log(f"built {tag} in {time.monotonic() - start:.0f} s")
    return tag, check_image(engine, tag, recipe)


def check_image(engine: Engine, image: str, recipe: ImageRecipe) -> ImageFacts:
    """Refuse an image whose labels or real nvcc/torch/Python/gcc differ from the recipe."""
    info = engine.inspect(image)
    if info is None:
        raise ContainerError(f"no image {image}")
    labels = (info.get("Config") or {}).get("Labels") or {}
    problems = mismatches(recipe, labels, None)
    facts = None
    if not problems:
        facts = ImageFacts.parse(engine.output(image, _PROBE))
        problems = mismatches(recipe, labels, facts)
    if problems or facts is None:
        raise ContainerError(
            f"image {image} does not match the target:\n  - " + "\n  - ".join(problems),
            hint="remove the image (it is rebuilt on demand) or fix the matrix",
        )
    return facts


# ----------------------------------------------------------------------------- entry points


def build_in_container(
    *,
    target_id: str,
    matrix_path: Path | None,
    dist: Path,
    toolchain: ToolchainLike,
    settings: BuildSettings,
) -> int:
    """`fawheels build TARGET --container`: the same pipeline inside the target's toolchain image.
    Every option of the host command that changes the build reaches it (options.BUILD, `forward`): --jobs and
    --clean as given, the build inside always --offline; --offline here means the host fetches nothing either
    (source and image must be there). Returns the exit code of the build inside."""
    from fawheels._util.paths import build_root
    from fawheels.matrix.config import find_matrix_file, load_matrix_file
    from fawheels.source.fetch import prefetch

    matrix_file = find_matrix_file(matrix_path).resolve()
    target = load_matrix_file(matrix_file).target(target_id)
    root = find_checkout(matrix_file.parent)
    recipe = resolve_recipe(toolchain, target.torch.version, target.torch.cuda, target.python, root)
    engine = Engine.find()
    key = lock_key(toolchain.name, recipe.torch, recipe.python)
    entry = read_lock(root).get(key)
    if entry is None:
        log(f"note: {key} is not in {LOCK_FILE}; `nox -s lock-images` pins it")
    if settings.offline and engine.inspect(recipe.tag(recipe.inputs_sha256(root))) is None:
        raise ContainerError(
            f"the toolchain image for {target_id} is not built and --offline forbids building it",
            hint="build it once online (nox -s lock-images), or drop --offline",
        )
    tag, facts = ensure_image(engine, recipe, root, lock_entry=entry)
    log(f"image {tag}: nvcc {facts.nvcc}, gcc {facts.gcc}, torch {facts.torch}, Python {facts.python}")

    # The source (sdist, or git clones with their submodules) is fetched on the host into the shared,
    # content-addressed cache: the build inside runs --offline and never touches an index.
    prefetch(target.source, offline=settings.offline)
    cache = cache_root().resolve()
    private = cache / "containers" / tag.rsplit(":", 1)[1]
    dist = dist.resolve()
    for d in (private / "build", private / "cache", cache / "sources", dist):
        d.mkdir(parents=True, exist_ok=True)  # created by us, so owned by the invoking user
    mark_used(private)
    spec = plan_run(
        image=tag,
        target_id=target_id,
        matrix_file=matrix_file,
        dist=dist,
        settings=settings,
        cache=cache,
        private=private,
        build_root=build_root().absolute(),
        environ=os.environ,
        uid=os.getuid(),
        gid=os.getgid(),
    )
    start = time.monotonic()
    code = engine.run(spec)
    log(f"container build of {target_id} exited {code} after {time.monotonic() - start:.0f} s")
    return code


def lock_images(matrix_path: Path | None = None) -> dict[str, dict[str, Any]]:
    """Build (if needed) every toolchain image the matrix's targets can use and pin it in the lock
    file: inputs hash, tag, image id, and the versions the image reports."""
    from fawheels.matrix.config import load_matrix_file

    matrix = load_matrix_file(matrix_path)
    root = find_checkout(matrix.root)
    engine = Engine.find()
    previous = read_lock(root)
    images: dict[str, dict[str, Any]] = {}
    for target in matrix.targets:
        tc = target.toolchain
        key = lock_key(tc.name, target.torch.version, target.python)
        if key in images:
            continue
        try:
            recipe = resolve_recipe(tc, target.torch.version, target.torch.cuda, target.python, root)
            preflight_registry_base(recipe, root, target.id)
        except ContainerError as exc:
            # A host-only target has no image; a registry base absent here (no registry) cannot be built,
            # so its earlier pin, if any, is kept as it was rather than dropped.
            log(f"no image locked for {target.id}: {exc.message}")
            if key in previous:
                images[key] = previous[key]
            continue
        tag, facts = ensure_image(engine, recipe, root)
        info = engine.inspect(tag) or {}
        # No base image id: a debootstrap base differs on every machine, and a registry base is
        # pinned by writing its digest into the matrix (base: nvidia/cuda:…@sha256:…).
        images[key] = {
            "tag": tag,
            "inputs_sha256": recipe.inputs_sha256(root),
            "image_id": info.get("Id"),
            "size_bytes": info.get("Size"),
            "base": recipe.base,
            "dockerfile": recipe.dockerfile,
            "build_args": recipe.build_args,
            "nvcc": facts.nvcc,
            "gcc": facts.gcc,
            "torch": facts.torch,
            "python": facts.python,
        }
    lock = {"version": 1, "images": images, "bases": base_pins(root)}  # base digests are kept as pinned
    write_atomic(root / LOCK_FILE, json.dumps(lock, indent=2, sort_keys=True) + "\n", mode=None)
    log(f"wrote {len(images)} image pin(s) to {root / LOCK_FILE}")
    return images


# ----------------------------------------------------------------------------- registry bases (CUDA 12.x)


def preflight_registry_base(
    recipe: ImageRecipe, root: Path, target_id: str, environ: Mapping[str, str] = os.environ
) -> None:
    """Refuse, before any work, a container build whose registry base is not on this machine (and whose
    toolchain image was not built yet): fawheels never pulls implicitly, and says the exact command."""
    if recipe.base == LOCAL_BASE:
        return
    pin = base_pins(root).get(recipe.base.split("@", 1)[0], {})
    unverified = "" if pin.get("verified") else f" (its digest in {LOCK_FILE} is marked unverified)"
    try:
        engine = Engine.find(environ)
    except ContainerError as exc:
        raise ContainerError(
            f"{target_id}: builds in an image from {recipe.base}{unverified}, and {exc.message}",
            hint="start a container engine, then: "
            + "\n  ".join(provide_commands("docker", recipe.base, recipe.tag(recipe.inputs_sha256(root)), target_id)),
        ) from None
    tag = recipe.tag(recipe.inputs_sha256(root))
    if engine.inspect(tag) is not None or engine.inspect(recipe.base) is not None:
        return
    raise ContainerError(
        f"{target_id}: base image {recipe.base} is not on this machine{unverified}; nothing was built",
        hint="provide it first:\n  " + "\n  ".join(provide_commands(engine.name, recipe.base, tag, target_id)),
    )
