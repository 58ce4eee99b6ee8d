"""The `git` source kind against repositories these tests create: a superproject pinned at a commit whose
submodule (relative URL) is pinned at an older commit than its branch; patches, offline reuse, refusals;
and a real one-TU vllm-fa2 build from a git copy of the flash-attn sdist with cutlass as a submodule."""

from __future__ import annotations

import json
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest

from fawheels._util.errors import SourceError
from fawheels.matrix.model import Source
from fawheels.source.fetch import git_cache_dir, prepare_tree, source_epoch
from support.checkout import copy_repo, fawheels
from support.gitrepos import GIT_ENV, commit_all, git

pytestmark = pytest.mark.tools


def test_a_pinned_commit_is_exported_with_its_submodule_at_the_pinned_commit(
    repos: tuple[Path, str, str], tmp_path: Path
) -> None:
    sup, pinned, _ = repos
    patch = tmp_path / "0001-bump.patch"
    patch.write_text(
        "--- a/third_party/lib.h\n+++ b/third_party/lib.h\n@@ -1 +1 @@\n-#define VERSION 1\n+#define VERSION 3\n"
    )
    source = Source("super", "git", str(sup), commit=pinned)
    tree, applied = prepare_tree(source, [patch], tmp_path / "work")
    assert tree == tmp_path / "work" / "src" / "super"
    assert (tree / "main.c").read_text().startswith('#include "third_party/lib.h"')  # not the later commit
    assert (tree / "third_party" / "lib.h").read_text() == "#define VERSION 3\n"  # v1, then patched
    assert [a.file for a in applied] == ["0001-bump.patch"]
    assert not (tree / ".git").exists()
    assert source_epoch(source) == 1741064767  # the pinned commit's committer time (2025-03-04T05:06:07Z)


def test_a_cached_pin_builds_offline_and_an_uncached_one_is_refused(
    repos: tuple[Path, str, str], tmp_path: Path
) -> None:
    sup, pinned, _ = repos
    prepare_tree(Source("super", "git", str(sup), commit=pinned), [], tmp_path / "online")
    moved = tmp_path / "gone"
    shutil.move(sup.parent, moved)  # the origin is unreachable now: everything must come from the cache
    tree, _ = prepare_tree(Source("super", "git", str(sup), commit=pinned), [], tmp_path / "offline", offline=True)
    assert (tree / "third_party" / "lib.h").read_text() == "#define VERSION 1\n"
    other = "0" * 40
    with pytest.raises(SourceError, match=f"commit {other} of .* is not in the cache and --offline forbids"):
        prepare_tree(Source("super", "git", str(sup), commit=other), [], tmp_path / "x", offline=True)
    assert git_cache_dir(str(sup)).is_dir()


def test_a_commit_the_repository_lacks_is_refused(repos: tuple[Path, str, str], tmp_path: Path) -> None:
    sup, _, _ = repos
    with pytest.raises(SourceError, match=f"{sup} has no commit {'1' * 40}"):
        prepare_tree(Source("super", "git", str(sup), commit="1" * 40), [], tmp_path / "work")


def test_a_submodule_commit_missing_upstream_is_refused(repos: tuple[Path, str, str], tmp_path: Path) -> None:
    sup, pinned, pinned_sub = repos
    sub = sup.parent / "sub.git"
    git(sub, "checkout", "-q", "--orphan", "rewritten")  # history rewritten: the pinned commit is gone
    git(sub, "branch", "-q", "-D", "main")
    commit_all(sub, "rewritten")
    git(sub, "reflog", "expire", "--expire=now", "--all")
    git(sub, "gc", "-q", "--prune=now")
    with pytest.raises(SourceError, match=f"has no commit {pinned_sub}"):
        prepare_tree(Source("super", "git", str(sup), commit=pinned), [], tmp_path / "work")


# --- a real build from git ---------------------------------------------------------------------------------


@pytest.mark.nvcc
@pytest.mark.skipif(
    shutil.which("nvcc") is None and not Path("/usr/local/cuda-13.0/bin/nvcc").exists(), reason="needs nvcc 13.0"
)
def test_a_git_source_goes_through_patch_build_and_verify(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """flash-attn 2.8.3 as a git repository (named like the sdist's top directory, so the build sees the
    same paths) with csrc/cutlass as a submodule; the vllm-fa2 one-TU target built from it."""
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)
    checkout = copy_repo(tmp_path / "clone")
    from fawheels.matrix.config import load_matrix_file
    from fawheels.source.fetch import fetch_sdist

    sdist = fetch_sdist(load_matrix_file(checkout / "build_matrix.yaml").sources["flash-attn-2.8.3-vllm"])
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    tree = tmp_path / "unpacked" / "flash_attn-2.8.3"
    cutlass = tmp_path / "origin" / "cutlass"
    shutil.copytree(tree / "csrc" / "cutlass", cutlass)
    shutil.rmtree(tree / "csrc" / "cutlass")
    git(cutlass, "init", "-q", "-b", "main")
    commit_all(cutlass, "cutlass as shipped in flash-attn 2.8.3")
    repo = tmp_path / "origin" / "flash_attn-2.8.3"
    shutil.move(tree, repo)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "submodule", "add", "-q", "../cutlass", "csrc/cutlass")
    commit = commit_all(repo, "flash-attn 2.8.3")

    matrix = checkout / "build_matrix.yaml"
    text = matrix.read_text()
    start = text.index("  flash-attn-2.8.3-vllm:")
    end = text.index("    patches:", start)  # same patches, now applied to the git export
    matrix.write_text(
        f"{text[:start]}  flash-attn-2.8.3-vllm:\n    kind: git\n    url: {repo}\n    commit: {commit}\n{text[end:]}"
    )
    proc = fawheels(checkout, "build", "vllm-fa2-cu130-torch2.14-sm120-cp311-one-tu")
    assert proc.returncode == 0, proc.stderr[-4000:]
    (wheel,) = (checkout / "dist").glob("*.whl")
    report = json.loads(wheel.with_name(wheel.name + ".verify.json").read_text())
    assert report["ok"], report
    with zipfile.ZipFile(wheel) as zf:
        info = json.loads(zf.read("vllm_fa2-0.33.0+cu130torch2.14sm120onetu.dist-info/build-info.json"))
    assert (info["source"]["kind"], info["source"]["url"], info["source"]["commit"]) == ("git", str(repo), commit)
    assert [p["file"] for p in info["patches"]] == [
        "0001-forward-only-profile-dispatch.patch",
        "0002-host-api-without-pybind-module.patch",
        "0003-paged-kv-pages-of-16-tokens.patch",
        "0004-varlen-fwd-num-splits.patch",
        "0005-split-kv-parts.patch",
        "0006-paged-kv-per-tile-and-decode-routes.patch",
    ]


@pytest.mark.parametrize(
    ("base", "url", "resolved"),
    [
        (
            "https://github.com/vllm-project/flash-attention.git",
            "../cutlass.git",
            "https://github.com/vllm-project/cutlass.git",
        ),
        ("/srv/git/super.git", "./sub", "/srv/git/super.git/sub"),
        ("/srv/git/super.git", "https://example.org/x.git", "https://example.org/x.git"),
    ],
)
def test_relative_submodule_urls_resolve_against_the_superproject(base: str, url: str, resolved: str) -> None:
    from fawheels.source.fetch import _submodule_url

    assert _submodule_url(base, url) == resolved
