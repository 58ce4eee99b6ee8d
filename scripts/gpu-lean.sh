#!/usr/bin/env bash
# The qwen3 sm_90 build with and without ALiBi/softcap kernels (bench/lean/matrix.yaml), side by side on the
# GPU machine's 16 cores, each from nothing (--clean, no compiler cache), lean first; then the lean wheel's
# smoke test (every kernel against a float32 reference, softcap refused). Device tool, one call; carry .whl/
# and .devcache/ as for gpu-perf.sh. Output (logs, build reports, smoke JSON) in $OUT.
set -uo pipefail
source "$(dirname "$0")/gpu-env.sh"
{ nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; nproc; uptime; } | tee "$out/machine.txt"
m=bench/lean/matrix.yaml
lean=fa2-cu130-torch2.11-sm90-cp312-lean
full=fa2-cu130-torch2.11-sm90-cp312
build() {
  timeout "$2" python3 -m fawheels.cli build "$1" --matrix $m --offline --clean --dist "/tmp/d/$1" \
    --report "$out/build-$1.json" > "$out/build-$1.log" 2>&1
  echo "$1: exit $?; $(grep -E 'compiled in' "$out/build-$1.log")"; tail -1 "$out/build-$1.log"
}
build $lean 200
timeout 120 python3 -m fawheels.cli smoke /tmp/d/$lean/*.whl --out "$out/smoke-$lean.json" > "$out/smoke-$lean.log" 2>&1
echo "smoke $lean: exit $?"; tail -25 "$out/smoke-$lean.log"
build $full 300
