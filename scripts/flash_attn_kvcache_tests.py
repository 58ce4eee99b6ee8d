"""flash-attn 2.8.3's own `tests/test_flash_attn.py::test_flash_attn_kvcache`, with its paged block sizes widened
from [None, 256] to [None, 16, 32, 64, 256] (pages smaller than a tile: patch 0003) and its head dims set to the
kernel profile's, for a run against our `fa2` wheel on a GPU.

The test file is read from the pinned sdist in the fawheels cache and rewritten into DEST (never committed:
it is flash-attn's). The upstream grid is about 250,000 cases; PARAMETERS below keeps every axis that touches
paged KV (page size, new K/V appended into the cache with and without rotary, causal, local, ALiBi, MHA/MQA/GQA,
num_splits 0 and 1, both dtypes) and trims the rest so a run takes minutes. Each change is printed.

Usage: python scripts/flash_attn_kvcache_tests.py DEST_DIR [--head-dims 96,128]
then:  pytest DEST_DIR/test_flash_attn.py -k test_flash_attn_kvcache
"""

from __future__ import annotations

import argparse
import sys
import tarfile
from pathlib import Path

from fawheels.matrix.config import load_matrix_file
from fawheels.source.fetch import fetch_sdist

# parameter of the kvcache test: flash-attn 2.8.3's values -> ours
PARAMETERS = [
    ("dtype", "[torch.float16]", "[torch.float16, torch.bfloat16]"),
    ("mha_type", '["mha", "mqa", "gqa"]', '["mha", "gqa"]'),
    ("seqlen_new_eq_seqlen_q", "[True, False]", "[True]"),
    ("rotary_interleaved", "[False, True]", "[False]"),
    ("rotary_fraction", "[0.0, 0.5, 1.0]", "[0.0, 1.0]"),
    ("paged_kv_block_size", "[None, 256]", "PAGES"),
    ("has_leftpad", "[False, True]", "[False]"),
    ("d", "[32, 59, 64, 80, 128, 256]", "HEAD_DIMS"),
]
SEQLENS_OLD = """        (1, 128),
        (1, 339),
        (3, 1024),
        (64, 800),
        (64, 256),
        (3, 799),
        (64, 2048),
        (16, 20000),
        (1, 128 * 1024),
        (16, 128 * 1024),
        (128, 128),
    ],
)
# @pytest.mark.parametrize('seqlen_q,seqlen_k', [(256, 128)])
def test_flash_attn_kvcache("""
SEQLENS_NEW = """        (1, 339),
        (3, 1024),
        (64, 800),
    ],
)
# @pytest.mark.parametrize('seqlen_q,seqlen_k', [(256, 128)])
def test_flash_attn_kvcache("""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path)
    parser.add_argument("--head-dims", default="96,128", help="comma-separated (default: qwen3-vl's 96,128)")
    parser.add_argument(
        "--pages",
        default="None,16,32,64,256",
        help="paged_kv_block_size values, None = contiguous cache (default: None,16,32,64,256)",
    )
    args = parser.parse_args()
    source = load_matrix_file(Path("build_matrix.yaml")).sources["flash-attn-2.8.3"]
    with tarfile.open(fetch_sdist(source)) as tf:
        member = tf.extractfile("flash_attn-2.8.3/tests/test_flash_attn.py")
        assert member is not None
        text = member.read().decode()
    start = text.index("def test_flash_attn_splitkv(")  # the kvcache test's decorators follow this test
    end = text.index("def test_flash_attn_kvcache(") + len("def test_flash_attn_kvcache(")
    head, block, tail = text[:start], text[start:end], text[end:]
    lines = [
        (f'@pytest.mark.parametrize("{n}", {old})', f'@pytest.mark.parametrize("{n}", {new})')
        for n, old, new in PARAMETERS
    ]
    for old, new in [*lines, (SEQLENS_OLD, SEQLENS_NEW)]:
        if block.count(old) != 1:
            print(f"flash-attn's test file changed: {old.splitlines()[0]!r} not found once", file=sys.stderr)
            return 1
        block = block.replace(old, new)
        print(f"- {old.splitlines()[0].strip()}\n+ {new.splitlines()[0].strip()}")
    dims = [int(d) for d in args.head_dims.split(",")]
    pages = [None if p == "None" else int(p) for p in args.pages.split(",")]
    args.dest.mkdir(parents=True, exist_ok=True)
    (args.dest / "test_flash_attn.py").write_text(
        f"HEAD_DIMS, PAGES = {dims}, {pages}  # fawheels\n{head}{block}{tail}"
    )
    print(f"{args.dest / 'test_flash_attn.py'}: test_flash_attn_kvcache, head dims {dims}, pages {pages}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
