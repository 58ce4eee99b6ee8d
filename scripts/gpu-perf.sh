#!/usr/bin/env bash
# Issue 13 on the GPU machine (device tool), one call, under 9 minutes on 16 cores + H200 with the machine's
# torch 2.11.0+cu130 and Python 3.12, no network. Carry .whl/ (pyelftools, zstandard, lz4 wheels) and
# .devcache/ (the sdist under sources/; jobstats/history.json from an earlier run, if any) as for gpu-run.sh.
#
#   bash scripts/gpu-perf.sh [PHASE...]     phases, run in the order given (default: builds bench firstcall rebuild)
#     build     fa2 sm_90 qwen3 alone, from nothing (--clean): the 16-core wall, per-job time/CPU/peak RSS
#     pair      the one-tu sm_90 (SASS) and sm_80+compute_80 (8.0+PTX, JIT on sm_90) wheels, built concurrently
#     builds    build and pair at the same time (the qwen3 wall is its slowest unit, ~5 min, while most cores
#               idle; the pair's 4 jobs fit beside its 9 on 16 cores): what fits one 9-minute call
#     bench     smoke + kernel-only benchmark of the qwen3 wheel vs torch's flash backend, with the GPU's ceilings
#     firstcall the first attention call of each of the pair in fresh processes, JIT cache disabled
#     rebuild   the qwen3 target again, nothing changed: the stages outside compilation
#
# If the default run is cut short (the PTX wheel's JIT is the unknown), run it in two calls:
#   bash scripts/gpu-perf.sh builds bench rebuild     then     bash scripts/gpu-perf.sh pair firstcall
# Everything lands in $OUT (default /tmp/out): logs, build reports (JSON), smoke/bench JSON, first-call JSON,
# and the job history. Each phase has its own timeout from what is left of the 530 s budget, so a slow phase
# cuts the later ones short instead of the whole call.
set -uo pipefail
out=${OUT:-/tmp/out}
mkdir -p "$out"
start=$(date +%s)
budget=${BUDGET_S:-530}
left() { local l=$((budget - ($(date +%s) - start))); echo $((l > 5 ? l : 5)); }
phases=${*:-builds bench firstcall rebuild}
qwen=fa2-cu130-torch2.11-sm90-cp312
sass=fa2-cu130-torch2.11-sm90-cp312-one-tu
ptx=fa2-cu130-torch2.11-sm80-ptx80-cp312-one-tu

export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 FAWHEELS_CACHE=$PWD/.devcache
if [ -z "${CHILD:-}" ]; then
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/pyelftools-*.whl .whl/zstandard-*.whl .whl/lz4-*.whl
{ nvidia-smi --query-gpu=name,compute_cap,driver_version,clocks.sm,clocks.max.sm,clocks.mem,power.limit --format=csv
  nvcc --version | tail -2; python3 -c 'import torch, sys; print(sys.version.split()[0], torch.__version__)'
  echo "cores $(nproc)"; free -g | head -2; uptime; } > "$out/machine.txt" 2>&1
cat "$out/machine.txt"
fi

for phase in $phases; do
  echo "== $phase (t=$(( $(date +%s) - start )) s, $(left) s left)"
  case $phase in
    builds)
      BUDGET_S=$(left) CHILD=1 bash "$0" build > "$out/phase-build.log" 2>&1 &
      BUDGET_S=$(left) CHILD=1 bash "$0" pair > "$out/phase-pair.log" 2>&1
      wait; grep -v "^==" "$out/phase-build.log" "$out/phase-pair.log" | grep -v "cores\|Mem\|total" ;;
    build)
      timeout "$(left)" python3 -m fawheels.cli build $qwen --offline --clean --dist /tmp/d/$qwen \
        --report "$out/build-$qwen.json" > "$out/build-$qwen.log" 2>&1
      echo "build exit $?"; grep -E "job\(s\), limited|schedule|compiled in|stages:" "$out/build-$qwen.log" ;;
    rebuild)
      timeout "$(left)" python3 -m fawheels.cli build $qwen --offline --dist /tmp/d/$qwen \
        --report "$out/rebuild-$qwen.json" > "$out/rebuild-$qwen.log" 2>&1
      echo "rebuild exit $?"; grep -E "compiled in|stages:|reused" "$out/rebuild-$qwen.log" ;;
    bench)
      timeout "$(left)" python3 -m fawheels.cli smoke /tmp/d/$qwen/*.whl --bench \
        --out "$out/bench-$qwen.json" > "$out/bench-$qwen.log" 2>&1
      echo "smoke --bench exit $?"; tail -3 "$out/bench-$qwen.log" ;;
    pair)
      for t in $sass $ptx; do
        timeout "$(left)" python3 -m fawheels.cli build $t --offline --clean --dist /tmp/d/$t \
          --report "$out/build-$t.json" > "$out/build-$t.log" 2>&1 &
      done
      wait; for t in $sass $ptx; do echo "$t: $(grep -E 'compiled in' "$out/build-$t.log")"; tail -1 "$out/build-$t.log"; done ;;
    firstcall)
      for t in $sass $ptx; do
        # The PTX wheel's JIT may take a while per process: give it what is left, 3 runs when there is time.
        runs=3; [ "$(left)" -lt 200 ] && runs=2; [ "$(left)" -lt 100 ] && runs=1
        timeout "$(left)" python3 scripts/first_call.py /tmp/d/$t/*.whl --runs $runs \
          --out "$out/first-call-$t.json" > "$out/first-call-$t.log" 2>&1
        echo "first-call $t exit $?"; grep -E "run [0-9]" "$out/first-call-$t.log"
      done ;;
    *) echo "unknown phase $phase"; exit 2 ;;
  esac
done
cp "$FAWHEELS_CACHE/jobstats/history.json" "$out/jobstats-history.json" 2>/dev/null
echo "done in $(( $(date +%s) - start )) s"
