"""nox sessions: thin wrappers over the fawheels package (all logic lives in src/fawheels)."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = "3.11"  # the interpreter of the default targets (cp311)
TEST_TOOLS = [
    "nvidia-cuda-cuobjdump==13.2.86",  # cuobjdump reads 12.x and 13.x binaries (docs/cuda-facts.md)
    "cmake==4.1.3",
    "ninja==1.13.0",
]  # the recipe's CMake project (tests/integration/test_schedule_cmake.py)


@nox.session(name="build-sm120", python=PYTHON)
def build_sm120(session: nox.Session) -> None:
    """Build the default sm_120 target into dist/ (after --: any option of `fawheels build --help`)."""
    session.install(".")
    session.run("fawheels", "build", *session.posargs)


@nox.session(python=PYTHON)
def build(session: nox.Session) -> None:
    """Build the named targets: nox -s build -- TARGET_ID... [options of `fawheels build --help`]."""
    if not [a for a in session.posargs if not a.startswith("-")]:
        session.error("name at least one target: nox -s build -- TARGET_ID  (fawheels matrix lists them)")
    session.install(".")
    session.run("fawheels", "build", *session.posargs)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Lint, type-check, generated files up to date, then the test suite (unit + committed tool outputs + real
    nvcc/docker/server)."""
    session.install("-e", ".[test]", *TEST_TOOLS)
    session.run("ruff", "check", "src", "tests", "scripts", "bench", "noxfile.py")
    session.run("ruff", "format", "--check", "src", "tests", "scripts", "bench", "noxfile.py")
    session.run("mypy")
    # docs/build-info.md, docs/matrix.md, build_matrix.schema.json are generated from the models: stale fails
    session.run("python", "-m", "fawheels._util.generate", "--check")
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHON)
def nightly(session: nox.Session) -> None:
    """Build, verify and publish every target through the compiler cache; summary + JSON report
    (after --: any option of `fawheels nightly --help`, e.g. --index DIR_OR_URL)."""
    session.install(".[nightly]")
    session.run("fawheels", "nightly", *session.posargs)


@nox.session(name="lock-images", python=PYTHON)
def lock_images(session: nox.Session) -> None:
    """Build (if missing) every toolchain image the matrix can use; pin it in docker/images.lock.json."""
    session.install(".")
    session.run("fawheels", "lock-images", *session.posargs)


def _wheel_args(session: nox.Session) -> list[str]:
    import glob

    wheels = session.posargs or sorted(glob.glob("dist/*.whl"))
    if not wheels:
        session.error("no wheel: build one first (nox -s build-sm120) or pass its path after --")
    return list(wheels)


@nox.session(name="gpu-smoke", python=False)
def gpu_smoke(session: nox.Session) -> None:
    """On a GPU machine, with its own torch: every kernel of each wheel against a float32 reference."""
    for wheel in _wheel_args(session):
        session.run("python", "-m", "fawheels.cli", "smoke", wheel, env={"PYTHONPATH": "src"})


@nox.session(name="bench-gpu", python=False)
def bench_gpu(session: nox.Session) -> None:
    """On a GPU machine: smoke plus throughput of ours vs torch's flash backend (medians, ratio)."""
    for wheel in _wheel_args(session):
        session.run(
            "python",
            "-m",
            "fawheels.cli",
            "smoke",
            wheel,
            "--bench",
            "--report",
            f"{wheel}.gpu.json",
            env={"PYTHONPATH": "src"},
        )


@nox.session(name="first-call", python=False)
def first_call(session: nox.Session) -> None:
    """On a GPU machine: the first attention call of each wheel in a fresh process, JIT cache disabled."""
    for wheel in _wheel_args(session):
        session.run(
            "python",
            "-m",
            "fawheels.cli",
            "first-call",
            wheel,
            "--report",
            f"{wheel}.first-call.json",
            env={"PYTHONPATH": "src"},
        )


@nox.session(python=PYTHON)
def generate(session: nox.Session) -> None:
    """Rewrite the files generated from the models (docs/build-info.md, docs/matrix.md,
    build_matrix.schema.json); `-- --check` only reports the stale ones."""
    session.install("-e", ".")
    session.run("python", "-m", "fawheels._util.generate", *session.posargs)
