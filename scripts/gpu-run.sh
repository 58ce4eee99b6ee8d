#!/usr/bin/env bash
# On the GPU machine (device tool): offline build of a target, then smoke + benchmark of the wheel.
# Usage: scripts/gpu-run.sh TARGET_ID   (expects .whl/ with pyelftools/zstandard/lz4 and .devcache/ with the sdist)
set -uo pipefail
target=$1
source "$(dirname "$0")/gpu-env.sh"
nvidia-smi --query-gpu=name,compute_cap,driver_version --format=csv,noheader | tee "$out/gpu.txt"
{ nvcc --version | tail -2; python3 -c 'import torch, sys; print(sys.version.split()[0], torch.__version__)'; nproc; } | tee "$out/versions.txt"
timeout 450 python3 -m fawheels.cli build "$target" --offline --dist dist --report "$out/build-report.json" > "$out/build.log" 2>&1
echo "build exit $?"; tail -5 "$out/build.log"
wheel=$(ls dist/*.whl | head -1)
python3 -m fawheels.cli smoke "$wheel" --bench --out "$out/smoke.json" > "$out/smoke.log" 2>&1
echo "smoke exit $?"; tail -30 "$out/smoke.log"
