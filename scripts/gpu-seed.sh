#!/usr/bin/env bash
# On the GPU machine (device tool), in two calls because nvcc 13.2 from PyPI (114 MB) exceeds one carry:
#   scripts/gpu-seed.sh prepare   carry .n132a (nvcc/crt/runtime/cccl 13.2.86 wheels), .whlmin, .devcache
#   scripts/gpu-seed.sh run       carry .n132b (the nvvm 13.2.86 wheel); builds both wheels offline, runs the test
set -uo pipefail
export FAWHEELS_CACHE=/tmp/fwcache PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1
tk=$FAWHEELS_CACHE/toolchains/cuda-13.2.86-pip
out=${OUT:-/tmp/out}
case $1 in
  prepare)
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whlmin/*.whl
    mkdir -p "$FAWHEELS_CACHE" && cp -r .devcache/sources "$FAWHEELS_CACHE/"
    python3 -m pip install -q --no-index --no-deps --target "$tk" .n132a/*.whl && echo prepared ;;
  run)
    # The same layout and fixups `provision: pip` makes, from carried wheels instead of PyPI.
    # pip --target skips a top-level folder that exists (nvidia/), so merge nvvm in by hand.
    python3 -m pip install -q --no-index --no-deps --target /tmp/nvvm132 .n132b/*.whl && cp -a /tmp/nvvm132/nvidia/. "$tk/nvidia/"
    python3 -c "from fawheels.toolchain.toolkit import fix_pip_toolkit; from pathlib import Path; fix_pip_toolkit(Path('$tk/nvidia/cu13'))"
    echo 13.2.86 > "$tk/.fawheels-complete"
    "$tk/nvidia/cu13/bin/nvcc" --version | tail -1
    for t in fa2-cu132-torch2.11-sm80-ptx80-cp312-seed-ptx fa2-cu130-torch2.11-sm90-cp312-one-tu; do
      python3 -m fawheels.cli build "$t" --offline --dist "/tmp/seed/$t" > "$out/build-$t.log" 2>&1 &
    done
    wait; for f in "$out"/build-*.log; do tail -n 3 "$f"; done
    python3 -m fawheels.cli inspect /tmp/seed/fa2-cu132*/*.whl | tee "$out/inspect-seed.txt"
    FAWHEELS_SEED_WHEEL=$(ls /tmp/seed/fa2-cu132*/*.whl) FAWHEELS_CURE_WHEEL=$(ls /tmp/seed/fa2-cu130*/*.whl) \
      FAWHEELS_GPU_FIGURES=$out/seed-failure.json python3 -m pytest -p no:cacheprovider -q -s \
      tests/gpu/test_seed_failure_gpu.py 2>&1 | tail -15 ;;
esac
