#!/usr/bin/env bash
# On the GPU machine (device tool), issue 20's proof in steps, one call each (the machine keeps /tmp while warm
# between calls; it is given back 30 s after a call ends, so a step that waits on a background one, a build or warm,
# must start within those 30 s or start it afresh):
#   scripts/gpu-vs-stock.sh build   sm_90 builds, offline, side by side: vllm-fa2 ...-vllm-tests (VLLM_TARGET) and fa2
#                                   qwen3 (FA2_TARGET; empty: none)
#                                   (or carry wheels built elsewhere in .devcache/wheels/ and skip this step; they
#                                   stay on a warm machine: rm -rf .devcache/wheels /tmp/g/carried before using a build)
#   scripts/gpu-vs-stock.sh start   the same builds started in the background, for the next calls (returns at once)
#   scripts/gpu-vs-stock.sh warm    stock's first run over every case (its driver JIT fills the cache the later runs
#                                   read; first-call times in $out/stock-warm.json), alongside running builds
#   scripts/gpu-vs-stock.sh test    tests/gpu (vLLM's interface over paged KV, our ops, the LSE on every route),
#                                   vLLM's own test_varlen_with_paged_kv (VLLM_K: a -k filter), and flash-attn's
#                                   kvcache test (pages 16-256; KV_HEAD_DIMS, default 128: the fa2 target's
#                                   qwen3 profile) when an fa2 wheel is there
#   scripts/gpu-vs-stock.sh tune    ours alone: the decode cases at 0-16 splits, and the prefill routes and vision
#                                   cases on the forward kernel's own tiles and on its sm_86 tiles (sm8x_tiles_shim.c)
#   scripts/gpu-vs-stock.sh ncu     Nsight Compute on our paged and contiguous prefill (one call each, full set):
#                                   $out/ncu-details.txt, ncu-raw.csv, ncu-source.csv (stall samples per SASS line)
#   scripts/gpu-vs-stock.sh ab      two builds of ours, AB_A and AB_B (wheels), side by side on the prefill and mixed
#                                   cases or BENCH_CASES (compare's "stock" side is AB_A): a kernel change against the
#                                   one before
#   scripts/gpu-vs-stock.sh placements
#                                   the long decodes with their cache at 6 places in GPU memory, stock (after warm)
#                                   and ours (PLACE_WHEEL, default the build's): $out/placements-{stock,ours}.jsonl
#   scripts/gpu-vs-stock.sh bench   stock vLLM 0.26.0's _vllm_fa2_C against ours (scripts/bench_vllm_vs_stock.py,
#                                   each side stopped after BENCH_LIMIT_S; BENCH_ROUNDS runs per side, alternating;
#                                   BENCH_CASES "name|name": only those), then our first paged decode in a fresh
#                                   process with CUDA_CACHE_DISABLE=1 (stock's too with FIRST_CALL_STOCK=1)
# Carried (no registry there): .whl/ (pyelftools, zstandard, lz4 for cp312) and .devcache/ = FAWHEELS_CACHE: the
# pinned flash-attn sdist; vllm-0.26.0/flash_attn_interface.py (scripts/vllm_interface.py) and test_flash_attn.py
# (from vLLM's sdist: scripts/vllm_kernel_tests.py); stock/part-* = the stock extension from vLLM 0.26.0's wheel,
# zstd -19 with a 128 MiB window (80 MB), split in parts so each call stays under the carry limit: every call
# keeps the parts it carries in /tmp/stock-parts. Results go to $OUT.
set -uo pipefail
source "$(dirname "$0")/gpu-env.sh"
STOCK_SHA=869c73f37150ad0f5bad7c637be808f67fb80bc9419a53d6c1e046dc8788cdf3  # vllm/vllm_flash_attn/_vllm_fa2_C.abi3.so
VLLM=${VLLM_TARGET:-vllm-fa2-cu130-torch2.11-sm90-cp312-vllm-tests}
FA2=${FA2_TARGET-fa2-cu130-torch2.11-sm90-cp312}  # FA2_TARGET= (empty): no fa2 build
IFACE=.devcache/vllm-0.26.0/flash_attn_interface.py
export CUDA_CACHE_MAXSIZE=4294967296  # stock's JIT-compiled kernels stay cached for the next process
mkdir -p /tmp/g/carried /tmp/stock-parts
cp .devcache/stock/part-* /tmp/stock-parts/ 2>/dev/null
cp .devcache/wheels/*.whl /tmp/g/carried/ 2>/dev/null  # wheels built elsewhere, kept for the next call

wheels() {
  if ls /tmp/g/carried/vllm_fa2-*.whl > /dev/null 2>&1; then
    vw=$(ls /tmp/g/carried/vllm_fa2-*.whl) fw=$(ls /tmp/g/carried/flash_attn-*.whl 2>/dev/null)
    return
  fi
  for _ in $(seq 100); do  # a build that outlived the build call is still finishing
    builds_running || break
    sleep 5
  done
  cp /tmp/g/*.log /tmp/g/*.report.json "$out/" 2>/dev/null
  vw=$(ls /tmp/g/dist/vllm_fa2-*.whl) || { echo "no wheels: run build first"; exit 1; }
  fw=$(ls /tmp/g/dist/flash_attn-*.whl 2>/dev/null)
}

# The stock extension, from the carried parts, checked against its sha256 (once per machine).
stock_so() {
  [ -f /tmp/stock.so ] && return
  cat /tmp/stock-parts/part-* | python3 -c 'import sys, zstandard; zstandard.ZstdDecompressor().copy_stream(sys.stdin.buffer, sys.stdout.buffer)' \
    > /tmp/stock.so.part && mv /tmp/stock.so.part /tmp/stock.so
  echo "$STOCK_SHA  /tmp/stock.so" | sha256sum -c || { rm -f /tmp/stock.so; exit 1; }
}

# BENCH_CASES (case names separated by "|") as compare's arguments, in $cases (empty: BENCH_CASES unset).
case_args() {
  cases=()
  IFS='|' read -ra names <<< "${BENCH_CASES:-}"
  for n in "${names[@]}"; do cases+=(--case "$n"); done
}

case ${1:-} in
build | start)
  machine_facts
  jobs=("$VLLM:16")
  [ -n "$FA2" ] && jobs=("$VLLM:10" "$FA2:6")
  if [ "$1" = build ]; then build_targets "${jobs[@]}"; else start_builds "${jobs[@]}"; fi
  ;;
warm)
  stock_so
  mkdir -p /tmp/warm  # the worker keeps each case's output beside its report: large, so not in $out
  timeout "${BENCH_LIMIT_S:-500}" python3 scripts/bench_vllm_vs_stock.py worker --ext /tmp/stock.so --interface $IFACE \
    --out /tmp/warm/stock-warm.json 2>&1 | tee "$out/stock-warm.log"
  cp /tmp/warm/stock-warm.json "$out/"
  ;;
bench)
  wheels
  stock_so
  sha256sum "$vw" | tee "$out/wheels.sha256"
  case_args  # default: every case
  python3 scripts/bench_vllm_vs_stock.py compare --stock /tmp/stock.so --ours "$vw" --interface $IFACE \
    --out "$out" --limit-s "${BENCH_LIMIT_S:-600}" --rounds "${BENCH_ROUNDS:-1}" "${cases[@]}" 2>&1 |
    tee "$out/bench.log" | grep -v "^+"
  for ext in "$vw" ${FIRST_CALL_STOCK:+/tmp/stock.so}; do
    CUDA_CACHE_DISABLE=1 timeout 200 python3 scripts/bench_vllm_vs_stock.py first-call --ext "$ext" --interface $IFACE
  done | tee "$out/first-call.jsonl"
  ;;
tune)
  wheels
  sha256sum "$vw" | tee "$out/wheels.sha256"
  gcc -shared -fPIC -O2 -o /tmp/shim.so scripts/sm8x_tiles_shim.c -ldl || exit 1
  py="python3 scripts/bench_vllm_vs_stock.py"
  $py splits --ext "$vw" --interface $IFACE | tee "$out/splits.jsonl"
  $py routes --ext "$vw" --interface $IFACE | tee "$out/routes.jsonl"
  LD_PRELOAD=/tmp/shim.so FAWHEELS_SHIM_EXT=_vllm_fa2_C $py routes --ext "$vw" --interface $IFACE |
    tee "$out/routes-sm8x-tiles.jsonl"
  ;;
ab)
  case_args
  [ ${#cases[@]} = 0 ] && for n in "prefill 8 x 2048" "mixed 32 x decode 2048 + 2 x prefill 1024"; do
    for tag in "" ", page 64" ", page 256"; do cases+=(--case "$n$tag"); done
  done
  sha256sum "$AB_A" "$AB_B" | tee "$out/wheels.sha256"
  python3 scripts/bench_vllm_vs_stock.py compare --stock "$AB_A" --ours "$AB_B" --interface $IFACE --out "$out" \
    --rounds "${BENCH_ROUNDS:-3}" "${cases[@]}" 2>&1 | tee "$out/ab.log" | grep -v "^+"
  ;;
placements)
  long=()
  for tag in "" ", page 64" ", page 256"; do long+=(--case "decode 16 x 32768$tag"); done
  if [ -n "${PLACE_WHEEL:-}" ]; then vw=$PLACE_WHEEL; else wheels; fi
  for side in ${PLACE_SIDES:-ours stock}; do
    ext=$vw; [ $side = stock ] && stock_so && ext=/tmp/stock.so
    python3 scripts/bench_vllm_vs_stock.py placements --ext "$ext" --interface $IFACE "${long[@]}" |
      tee "$out/placements-$side.jsonl"
  done
  ;;
ncu)
  wheels
  sha256sum "$vw" | tee "$out/wheels.sha256"
  ncu=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
  "$ncu" --profile-from-start off --set full -f -o /tmp/prefill python3 scripts/bench_vllm_vs_stock.py profile \
    --ext "$vw" --interface $IFACE --case "prefill 8 x 2048, paged (forward kernel)" \
    --case "prefill 8 x 2048, contiguous K/V" 2>&1 | tail -20 | tee "$out/ncu.log"
  "$ncu" --import /tmp/prefill.ncu-rep --page details --print-details all > "$out/ncu-details.txt"
  "$ncu" --import /tmp/prefill.ncu-rep --page raw --csv > "$out/ncu-raw.csv"
  "$ncu" --import /tmp/prefill.ncu-rep --page source --print-source sass --csv > "$out/ncu-source.csv"
  ;;
test | ours | vllm | kvcache)  # test: all three; ours, vllm, kvcache: one of them
  wheels
  sha256sum "$vw" $fw | tee "$out/wheels.sha256"
  # One pytest process per file: loading the extension twice in one process registers _vllm_fa2_C twice (abort).
  export FAWHEELS_VLLM_FA2_WHEEL=$vw FAWHEELS_VLLM_INTERFACE=$IFACE
  [[ $1 == test || $1 == ours ]] && for t in vllm_paged vllm_fa2; do
    FAWHEELS_GPU_FIGURES=$out/$t.json timeout 120 python3 -m pytest -q -rfE -p no:cacheprovider \
      tests/gpu/test_${t}_gpu.py 2>&1 | tail -15 | tee "$out/$t-tests.txt"
  done
  rm -rf /tmp/vk /tmp/fakv  # a second run on the same warm machine writes them afresh
  [[ $1 == test || $1 == vllm ]] && python3 scripts/vllm_kernel_tests.py /tmp/vk --ext "$vw" --interface $IFACE \
    --test-file .devcache/vllm-0.26.0/test_flash_attn.py &&
  (cd /tmp/vk && PYTHONPATH=/tmp/vk/site:/tmp/site timeout 300 python3 -m pytest -q -p no:cacheprovider -n 8 \
    test_flash_attn.py -k "test_varlen_with_paged_kv ${VLLM_K:+and ($VLLM_K)}" --junitxml "$out/vllm-kernel-tests.xml" \
    2>&1 | tail -6) | tee "$out/vllm-kernel-tests.txt"
  [[ $1 == test || $1 == kvcache ]] && [ -n "$fw" ] &&
  python3 -m pip install -q --no-index --no-deps --target /tmp/fa2site "$fw" &&
  python3 scripts/flash_attn_kvcache_tests.py /tmp/fakv --head-dims "${KV_HEAD_DIMS:-128}" > "$out/fa-kvcache-params.txt" &&
  (cd /tmp/fakv && PYTHONPATH=/tmp/fa2site:/tmp/site timeout -s INT 420 python3 -m pytest -q -p no:cacheprovider \
    -n 12 test_flash_attn.py -k test_flash_attn_kvcache 2>&1 | tail -4) | tee "$out/fa-kvcache.txt"
  exit 0
  ;;
*)
  echo "usage: scripts/gpu-vs-stock.sh build|start|warm|tune|ab|placements|ncu|bench|test|ours|vllm|kvcache" >&2
  exit 2
  ;;
esac
