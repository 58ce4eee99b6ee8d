#!/usr/bin/env bash
# How much does the GPU machine's 16-core wall gain from running more nvcc jobs at once? Builds the one-TU
# sm_90 target (its forward unit compiles in ~113 s alone), then compiles that same unit as 8 and as 16
# concurrent copies (the exact command ninja ran, each copy writing its own object) and records each copy's
# wall, CPU seconds and peak RSS, with lscpu. If 16 copies take much longer each than one, the machine's
# throughput, not the job schedule, is what bounds a 16-job build.
#
#   bash scripts/gpu-contention.sh     (device tool; carry .whl/ and .devcache/ as for gpu-perf.sh)
set -uo pipefail
source "$(dirname "$0")/gpu-env.sh"
target=fa2-cu130-torch2.11-sm90-cp312-one-tu
{ lscpu; nproc; free -g | head -2; nvcc --version | tail -1; } > "$out/machine.txt" 2>&1
grep -E "^(Model name|Thread|Core|Socket|CPU\(s\))" "$out/machine.txt"

timeout 200 python3 -m fawheels.cli build $target --offline --clean --dist /tmp/d \
  --report "$out/build-$target.json" > "$out/build-$target.log" 2>&1
echo "build exit $?"
tree=$(dirname "$(find /tmp/fawheels-build/$target -name build.ninja | head -1)")
obj=$(ninja -C "$tree" -t targets all | grep -oE '^[^:]*flash_fwd_hdim128[^:]*\.o' | head -1)
cmd=$(ninja -C "$tree" -t commands "$obj" | tail -1)
echo "unit object: $obj"
echo "$cmd" > "$out/nvcc-command.txt"

for n in 8 16; do
  rm -rf /tmp/c && mkdir -p /tmp/c
  start=$(date +%s.%N)
  for i in $(seq 1 "$n"); do
    copy=${cmd//$obj//tmp/c/$i.o}
    (cd "$tree" && /usr/bin/time -f "$n $i %e %U %S %M" -o "/tmp/c/$i.time" bash -c "$copy" > "/tmp/c/$i.log" 2>&1) &
  done
  wait
  end=$(date +%s.%N)
  cat /tmp/c/*.time >> "$out/copies.txt"
  echo "$n copies: wall $(echo "$end - $start" | bc) s"
done
echo "per copy (copies, index, wall s, user s, sys s, peak RSS KiB):"
cat "$out/copies.txt"
