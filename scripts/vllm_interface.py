"""Extract vLLM's own `vllm/vllm_flash_attn/flash_attn_interface.py` from a release's PyPI wheel (downloaded once
into the fawheels cache and checked against the sha256 pinned in the vllm-fa2 recipe), for the GPU tests that
call our `_vllm_fa2_C` exactly as that vLLM does (tests/gpu/test_vllm_paged_gpu.py). The file is vLLM's: it is
read from the wheel, never committed here.

Usage: python scripts/vllm_interface.py DEST [--release 0.26.0]
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from pathlib import Path

from fawheels.matrix.model import Source
from fawheels.matrix.recipes import RECIPES
from fawheels.source.fetch import fetch_sdist

MEMBER = "vllm/vllm_flash_attn/flash_attn_interface.py"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path, help="where to write flash_attn_interface.py")
    parser.add_argument("--release", default="0.26.0", help="vLLM release (one the vllm-fa2 recipe records)")
    args = parser.parse_args()
    releases = {r.version: r for r in RECIPES["vllm-fa2"].releases}
    if args.release not in releases:
        print(f"unknown release {args.release}; recorded: {', '.join(releases)}", file=sys.stderr)
        return 2
    release = releases[args.release]
    wheel = fetch_sdist(Source(release.wheel_url.rsplit("/", 1)[1], "sdist", release.wheel_url, release.wheel_sha256))
    with zipfile.ZipFile(wheel) as zf:
        args.dest.parent.mkdir(parents=True, exist_ok=True)
        args.dest.write_bytes(zf.read(MEMBER))
    print(f"{args.dest}: {MEMBER} of vllm {args.release} ({wheel.name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
