#!/bin/sh
# Runs once inside `docker build` (Dockerfile.pip-cuda, Dockerfile.nvidia-cuda); its ARGs arrive as environment.
set -eu
export DEBIAN_FRONTEND=noninteractive
export PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

# gcc from the distribution: on bookworm it is exactly the host's compiler. git applies patches.
apt-get update
apt-get install -y --no-install-recommends \
    "gcc-$GCC_VERSION" "g++-$GCC_VERSION" binutils git \
    "python$PYTHON_VERSION" "python$PYTHON_VERSION-venv" "python$PYTHON_VERSION-dev"
rm -rf /var/lib/apt/lists/*
for tool in gcc g++ cpp gcc-ar gcc-nm gcc-ranlib; do
    ln -sf "/usr/bin/$tool-$GCC_VERSION" "/usr/local/bin/$tool"
done
ln -sf /usr/local/bin/gcc /usr/local/bin/cc
ln -sf /usr/local/bin/g++ /usr/local/bin/c++

# The host CA bundle (TLS-intercepting proxies) is served to the build over loopback and used
# for this RUN only, so it never lands in a layer.
if [ -n "${HOST_CA_URL:-}" ]; then
    "python$PYTHON_VERSION" -c 'import sys, urllib.request; urllib.request.urlretrieve(*sys.argv[1:])' \
        "$HOST_CA_URL" /tmp/host-ca.crt
    export PIP_CERT=/tmp/host-ca.crt
fi

"python$PYTHON_VERSION" -m venv /opt/fawheels/venv
PIP=/opt/fawheels/venv/bin/pip
"$PIP" install -r /opt/fawheels/requirements/tools.txt

SITE=$(/opt/fawheels/venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
case "$CUDA_SOURCE" in
pypi)
    # One resolution for torch and nvcc, so torch's CUDA runtime pins and ours must agree.
    "$PIP" install "torch==$TORCH_VERSION" -r "/opt/fawheels/requirements/cuda-$CUDA_VERSION.txt"
    CUDA_DIR="$SITE/nvidia/cu${CUDA_VERSION%%.*}"
    # The fixups of docs/toolchains.md: the wheels ship lib/ (no lib64) and no unversioned libcudart.so.
    ln -sfn lib "$CUDA_DIR/lib64"
    ln -sf "$(basename "$(ls "$CUDA_DIR"/lib/libcudart.so.* | head -n 1)")" "$CUDA_DIR/lib/libcudart.so"
    ;;
system)
    # CUDA 12.x torch builds live on the PyTorch index (e.g. https://download.pytorch.org/whl/cu128).
    if [ -n "$TORCH_INDEX_URL" ]; then
        "$PIP" install --index-url "$TORCH_INDEX_URL" "torch==$TORCH_VERSION"
    else
        "$PIP" install "torch==$TORCH_VERSION"
    fi
    CUDA_DIR=/usr/local/cuda
    ;;
*)
    echo "install-toolchain: CUDA_SOURCE must be pypi or system, not $CUDA_SOURCE" >&2
    exit 1
    ;;
esac
# One fixed CUDA_HOME whatever the source, so the run command does not depend on the variant.
ln -sfn "$CUDA_DIR" /opt/fawheels/cuda

# Fail the image build, not a later compile, when the pins did not give the promised versions.
/opt/fawheels/cuda/bin/nvcc --version | grep -q "V$NVCC_VERSION" || {
    /opt/fawheels/cuda/bin/nvcc --version >&2
    echo "install-toolchain: nvcc is not $NVCC_VERSION" >&2
    exit 1
}
/opt/fawheels/venv/bin/python - "$TORCH_VERSION" "$CUDA_VERSION" <<'PY'
import sys
import torch
want_torch, want_cuda = sys.argv[1:]
if torch.__version__.split("+")[0] != want_torch or torch.version.cuda != want_cuda:
    sys.exit(f"install-toolchain: torch {torch.__version__} (CUDA {torch.version.cuda}), "
             f"wanted {want_torch} (CUDA {want_cuda})")
PY
rm -f /tmp/host-ca.crt
