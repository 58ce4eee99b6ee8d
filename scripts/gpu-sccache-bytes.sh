#!/usr/bin/env bash
# Why does a wheel built through sccache differ from one built without it? Builds the one-TU sm_90 target
# twice from nothing (plain, then through sccache with an empty cache), then compares the two extensions
# section by section (ELF) and entry by entry (fatbin). Device tool, one call; carry .whl/ and .devcache/.
set -uo pipefail
source "$(dirname "$0")/gpu-env.sh"
t=fa2-cu130-torch2.11-sm90-cp312-one-tu
so=/tmp/fawheels-build/$t/stage
python3 -m fawheels.cli build $t --offline --clean --dist /tmp/plain > "$out/plain.log" 2>&1; echo "plain exit $?"
cp -r $so /tmp/plain-stage
export SCCACHE_DIR=/tmp/sccache FAWHEELS_COMPILER_LAUNCHER=/tmp/site/bin/sccache
/tmp/site/bin/sccache --start-server > /dev/null 2>&1
python3 -m fawheels.cli build $t --offline --clean --dist /tmp/cached > "$out/cached.log" 2>&1; echo "sccache exit $?"
cp -r $so /tmp/cached-stage
sha256sum /tmp/plain/*.whl /tmp/cached/*.whl | tee "$out/wheels.sha256"
python3 - /tmp/plain-stage /tmp/cached-stage <<'PY' | tee "$out/compare.txt"
import hashlib, sys
from pathlib import Path
from elftools.elf.elffile import ELFFile
a, b = (next(Path(d).glob("*.so")) for d in sys.argv[1:3])
def sections(p):
    with open(p, "rb") as fh:
        elf = ELFFile(fh)
        return {s.name: (s["sh_size"], hashlib.sha256(s.data()).hexdigest()[:16]) for s in elf.iter_sections() if s["sh_type"] != "SHT_NOBITS"}
sa, sb = sections(a), sections(b)
print("so sizes", a.stat().st_size, b.stat().st_size)
for name in sorted(set(sa) | set(sb)):
    if sa.get(name) != sb.get(name):
        print("differs:", name, sa.get(name), sb.get(name))
from fawheels.check import binary
ra, rb = binary.read_file(a), binary.read_file(b)
for x, y in zip(ra.entries, rb.entries):
    print("entry", x.kind, x.arch, x.compression, x.size, x.uncompressed_size, "|", y.size, y.uncompressed_size)
PY
grep -n "nvcc\b.*-c\|sccache" "$out/cached.log" | head -3
