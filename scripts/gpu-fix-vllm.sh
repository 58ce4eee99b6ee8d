#!/usr/bin/env bash
# On the GPU machine (device tool): `fawheels fix-vllm` for real over an installed stand-in of vLLM 0.26.0 (issue 22).
# The stand-in: a venv that sees the machine's torch 2.11, holding vllm-0.26.0.dist-info and a
# vllm/vllm_flash_attn/_vllm_fa2_C.abi3.so made by tests/support/elfs.py (sm_80 SASS + compute_80 PTX modules,
# linking libcudart.so.13, and vLLM 0.26.0's op schema literals: the shape of vLLM's own; only read, never loaded). The index holds the carried
# sm_90 vllm-fa2 wheel (.devcache/wheels/, with its .verify.json). Then: fix-vllm --dry-run; fix-vllm (the index's
# wheel, verify, overlay, smoke on the GPU); --undo; the stand-in's sha256 before and after. Results go to $OUT.
set -uo pipefail
source "$(dirname "$0")/gpu-env.sh"
python3 -m venv --system-site-packages /tmp/fv
site=$(/tmp/fv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# python3 there is itself a venv's (/opt/torch/.venv): --system-site-packages does not reach its torch, a .pth does
python3 -c 'import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))' > "$site/machine-torch.pth"
python3 - "$site" <<'PY'
import sys
from pathlib import Path

sys.path.insert(0, "tests")
from fawheels.matrix.recipes import VLLM_FA2
from support.elfs import write_extension

site = Path(sys.argv[1])
info = site / "vllm-0.26.0.dist-info"
info.mkdir(parents=True)
(info / "METADATA").write_text("Metadata-Version: 2.1\nName: vllm\nVersion: 0.26.0\n")
(info / "RECORD").write_text("")
(site / "vllm" / "vllm_flash_attn").mkdir(parents=True)
(site / "vllm" / "__init__.py").write_text("")
so = write_extension(site / "vllm" / "vllm_flash_attn" / "_vllm_fa2_C.abi3.so", runtime=13, modules=3)
release = VLLM_FA2.release("0.26.0")
assert release is not None
with so.open("ab") as f:  # the op schema literals a TORCH_LIBRARY registration leaves in vLLM's own extension
    f.write(b"".join(b"\0" + op.encode() + b"\0" for op in release.ops))
PY
so=$site/vllm/vllm_flash_attn/_vllm_fa2_C.abi3.so
fix() { python3 -m fawheels.cli fix-vllm --python /tmp/fv/bin/python "$@"; }
sha256sum "$so" | tee "$out/before.sha256"
python3 -m fawheels.cli publish .devcache/wheels/*.whl --index /tmp/idx 2>&1 | tail -2
{ fix --index /tmp/idx --dry-run; echo "exit $?"; } 2>&1 | tee "$out/fix-vllm-dry-run.txt"
{ fix --index /tmp/idx; echo "exit $?"; } 2>&1 | tee "$out/fix-vllm.txt"
{ fix --undo; echo "exit $?"; } 2>&1 | tee "$out/fix-vllm-undo.txt"
sha256sum "$so" | tee "$out/after.sha256"
