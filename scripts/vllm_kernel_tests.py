"""vLLM's own kernel test of its FA2 backend, `tests/kernels/attention/test_flash_attn.py`, against our
`_vllm_fa2_C`, for a run on a GPU (issue 20: `test_varlen_with_paged_kv`, head sizes 40/72/80/128/256, 16-token
pages, caches of 2,048 and 32,768 pages).

The test file is read from vLLM's pinned sdist (downloaded once into the fawheels cache, checked against the
sha256 below) and written into DEST unchanged (never committed: it is vLLM's). Beside it goes a stand-in `vllm`
package (tests/support/vllm_site.py) with vLLM's own interface file and our extension; the test's FA3 cases
skip themselves there (no `_vllm_fa3_C`), as do its fp8 cases on FA2.

Usage: python scripts/vllm_kernel_tests.py DEST --ext WHEEL_OR_SO --interface flash_attn_interface.py [--test-file F]
then:  (cd DEST && PYTHONPATH=site pytest test_flash_attn.py -k test_varlen_with_paged_kv)
"""

from __future__ import annotations

import argparse
import sys
import tarfile
from pathlib import Path

from fawheels.matrix.model import Source
from fawheels.source.fetch import fetch_sdist

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.vllm_site import make_site

SDIST = Source(
    "vllm-0.26.0.tar.gz",
    "sdist",
    "https://files.pythonhosted.org/packages/cd/72/fa30f8459d11ae206f1a20bd0ac7ed1b9e390b695fa3dfc9ef6056de0cfe/"
    "vllm-0.26.0.tar.gz",
    "23e9fa19d7e20ce7dcc1c074d41503e2116d23f19e688f5d5ea91b741f958502",
)
MEMBER = "vllm-0.26.0/tests/kernels/attention/test_flash_attn.py"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path, help="an empty folder for the test and the stand-in package")
    parser.add_argument("--ext", type=Path, required=True, help="our wheel (or a _vllm_fa2_C.abi3.so)")
    parser.add_argument("--interface", type=Path, required=True, help="vLLM 0.26.0's flash_attn_interface.py")
    parser.add_argument("--test-file", type=Path, help="the test file, already read from the sdist (no download)")
    args = parser.parse_args()
    args.dest.mkdir(parents=True, exist_ok=True)
    if args.test_file:
        (args.dest / "test_flash_attn.py").write_bytes(args.test_file.read_bytes())
    else:
        sdist = fetch_sdist(SDIST)
        with tarfile.open(sdist) as tar:
            member = tar.extractfile(MEMBER)
            if member is None:
                print(f"{sdist.name} has no {MEMBER}", file=sys.stderr)
                return 1
            (args.dest / "test_flash_attn.py").write_bytes(member.read())
    make_site(args.dest / "site", args.ext, args.interface)
    print(f"{args.dest}: vLLM 0.26.0's test_flash_attn.py and a stand-in vllm package over {args.ext.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
