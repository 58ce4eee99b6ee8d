#!/usr/bin/env bash
# On the GPU machine (device tool), issue 11's proof, in two steps (one call each; the machine stays warm between):
#   scripts/gpu-paged.sh build   offline builds of the sm_90 qwen3-vl wheels (vllm-fa2 and fa2) side by side
#   scripts/gpu-paged.sh test    vLLM 0.26.0's own interface over paged KV, flash-attn's kvcache test widened to
#                                small pages, and the 16- vs 256-token page decode benchmark
# Expects .whl/ (pyelftools, zstandard, lz4 for cp312) and .devcache/ (FAWHEELS_CACHE: the pinned flash-attn sdist,
# and vllm-0.26.0/flash_attn_interface.py from scripts/vllm_interface.py). Results go to $OUT.
set -uo pipefail
source "$(dirname "$0")/gpu-env.sh"
mkdir -p /tmp/g
VLLM=vllm-fa2-cu130-torch2.11-sm90-cp312
FA2=fa2-cu130-torch2.11-sm90-cp312-qwen3-vl

case ${1:-} in
build)
  machine_facts
  build_targets "$VLLM:8" "$FA2:8"
  ;;
test)  # PARTS (default "vllm kvcache bench") picks steps when one call cannot hold them all
  for _ in $(seq 60); do  # a build that outlived the build call is still finishing
    builds_running || break
    sleep 5
  done
  for t in $VLLM $FA2; do tail -3 "/tmp/g/$t.log"; cp "/tmp/g/$t.log" "/tmp/g/$t.report.json" "$out/" 2>/dev/null; done
  vw=$(ls /tmp/g/dist/vllm_fa2-*.whl) fw=$(ls /tmp/g/dist/flash_attn-*.whl) || { echo "no wheels: run build first"; exit 1; }
  parts=${PARTS:-vllm kvcache bench}
  sha256sum "$vw" "$fw" | tee "$out/wheels.sha256"
  # 1. vLLM's own interface over paged KV (and our direct-op tests with small pages)
  # One pytest process per file: loading the extension twice in one process registers _vllm_fa2_C twice (abort).
  if [[ $parts == *vllm* ]]; then
    export FAWHEELS_VLLM_FA2_WHEEL=$vw FAWHEELS_VLLM_INTERFACE=.devcache/vllm-0.26.0/flash_attn_interface.py
    FAWHEELS_GPU_FIGURES=$out/vllm-paged.json timeout 200 python3 -m pytest -q -rA -p no:cacheprovider \
      tests/gpu/test_vllm_paged_gpu.py 2>&1 | grep -E "PASSED|FAILED|ERROR|passed|failed" | tee "$out/vllm-paged-tests.txt"
    FAWHEELS_GPU_FIGURES=$out/vllm-ops.json timeout 100 python3 -m pytest -q -rA -p no:cacheprovider \
      tests/gpu/test_vllm_fa2_gpu.py 2>&1 | grep -E "PASSED|FAILED|ERROR|passed|failed" | tee "$out/vllm-ops-tests.txt"
  fi
  # 2. flash-attn's own kvcache test, pages of 16..256, against our fa2 wheel
  [[ $parts == *kvcache* ]] && python3 -m pip install -q --no-index --no-deps --target /tmp/fa2site "$fw" &&
  python3 scripts/flash_attn_kvcache_tests.py /tmp/fakv > "$out/fa-kvcache-params.txt" &&
  (cd /tmp/fakv && PYTHONPATH=/tmp/fa2site:/tmp/site timeout -s INT 300 python3 -m pytest -q -p no:cacheprovider \
    -n 12 test_flash_attn.py -k test_flash_attn_kvcache --junitxml "$out/fa-kvcache.xml" 2>&1 | tail -6) \
    | tee "$out/fa-kvcache.txt"
  # 3. decode speed, 16- vs 256-token pages
  [[ $parts == *bench* ]] || exit 0
  python3 scripts/bench_paged_decode.py "$vw" "$out/paged-decode.json" > /dev/null 2> "$out/paged-decode.err"
  tail -3 "$out/paged-decode.err"
  python3 -c "import json; r=json.load(open('$out/paged-decode.json')); print({k: r[k] for k in r if 'throughput' in k or k == 'note'})"
  ;;
*)
  echo "usage: scripts/gpu-paged.sh build|test" >&2
  exit 2
  ;;
esac
