"""`fawheels cache` and `cache prune` on a cache and a build root in a temporary directory."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from fawheels import cache, cli
from fawheels._util.paths import mark_used

OLD = time.time() - 40 * cache.DAY


def age(path: Path, when: float = OLD) -> None:
    """Every file and folder in `path` last changed at `when` (links themselves, not their targets)."""
    for p in [path, *path.rglob("*")] if path.is_dir() and not path.is_symlink() else [path]:
        os.utime(p, (when, when), follow_symlinks=False)


def put(path: Path, size: int = 1000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    return path


@pytest.fixture
def roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A cache with an old and a new torch env, an old sdist, and a build root with an old and a new tree."""
    c, b = tmp_path / "cache", tmp_path / "build"
    monkeypatch.setenv("FAWHEELS_CACHE", str(c))
    monkeypatch.setenv("FAWHEELS_BUILD_ROOT", str(b))
    put(c / "envs" / "torch-old" / "lib" / "torch.so", 50_000)
    age(c / "envs" / "torch-old")
    put(c / "envs" / "torch-new" / "bin" / "python", 20_000)
    put(c / "sources" / "sha256" / "ab12" / "fa.tar.gz", 8000)
    age(c / "sources" / "sha256" / "ab12")
    put(c / "jobstats" / "history.json", 10)
    for name, when in (("t-old", OLD), ("t-new", time.time())):
        put(b / name / "obj" / "a.o", 30_000)
        put(b / f"{name}.lock", 0)
        put(b / f"{name}.log", 100)
        for path in (b / name, b / f"{name}.lock", b / f"{name}.log"):
            age(path, when)
    return c, b


def test_show_lists_every_kind_with_sizes_and_last_use(
    roots: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["cache", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == cache.SCHEMA and doc["cache"] == str(roots[0])
    by_path = {Path(e["path"]).name: e for e in doc["entries"]}
    assert set(by_path) == {"torch-old", "torch-new", "ab12", "history.json", "t-old", "t-new"}
    assert by_path["torch-old"]["what"] == "envs" and by_path["torch-old"]["bytes"] >= 50_000
    assert by_path["t-old"]["what"] == "builds" and by_path["t-old"]["last_used"] < by_path["t-new"]["last_used"]
    assert doc["total_bytes"] == sum(e["bytes"] for e in doc["entries"])
    assert cli.main(["cache", "--what", "envs"]) == 0
    out = capsys.readouterr().out
    assert "envs" in out and "torch-old" in out and "40 days ago" in out and "t-old" not in out


def test_prune_removes_what_is_older_and_says_what_it_freed(
    roots: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    c, b = roots
    assert cli.main(["cache", "prune", "--older-than", "30", "--dry-run"]) == 0
    assert "would remove envs" in capsys.readouterr().out and (c / "envs" / "torch-old").exists()
    assert cli.main(["cache", "prune", "--older-than", "30", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert sorted(Path(e["path"]).name for e in doc["removed"]) == ["ab12", "t-old", "torch-old"]
    assert doc["freed_bytes"] == sum(e["bytes"] for e in doc["removed"]) >= 88_000
    assert not (c / "envs" / "torch-old").exists() and (c / "envs" / "torch-new").exists()
    assert not any(b.glob("t-old*")) and (b / "t-new").is_dir() and (b / "t-new.lock").exists()
    assert (c / "jobstats" / "history.json").exists()  # new


def test_prune_what_removes_a_kind_whatever_its_age(
    roots: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    c, _ = roots
    assert cli.main(["cache", "prune", "--what", "envs"]) == 0
    out = capsys.readouterr().out
    assert "removed envs" in out and "freed" in out
    assert list((c / "envs").iterdir()) == [] and (c / "sources" / "sha256" / "ab12").exists()


def test_prune_skips_a_build_tree_whose_lock_is_held(
    roots: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, b = roots
    with (b / "t-old.lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as a running build holds it (execute._lock_workdir)
        assert cli.main(["cache", "prune", "--what", "builds"]) == 0
    out = capsys.readouterr().out
    assert "left builds" in out and "in use" in out and "removed builds" in out
    assert (b / "t-old" / "obj" / "a.o").exists() and not (b / "t-new").exists()


def test_prune_never_leaves_the_roots(
    roots: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    c, b = roots
    outside = tmp_path / "precious"
    put(outside / "keep.txt")
    (c / "envs" / "torch-link").symlink_to(outside)  # an entry that is a link leaving the cache
    put(c / "envs" / "torch-old" / "escape").unlink()
    (c / "envs" / "torch-old" / "escape").symlink_to(outside)  # a link inside an entry: removed, not followed
    (c / "tools").symlink_to(outside)  # a kind folder that leads outside
    age(c / "envs" / "torch-link")
    age(c / "envs" / "torch-old")
    put(b / "not-a-build" / "x.txt")  # no lock file beside it: not made by a build
    age(b / "not-a-build")
    assert cli.main(["cache", "prune", "--older-than", "0", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [Path(e["path"]).name for e in doc["skipped"]] == ["torch-link"]
    assert "outside" in doc["skipped"][0]["refused"] and any("tools" in n for n in doc["notes"])
    assert (outside / "keep.txt").exists() and (c / "envs" / "torch-link").is_symlink()
    assert not (c / "envs" / "torch-old").exists()
    assert (b / "not-a-build" / "x.txt").exists()


def test_an_entry_that_cannot_be_removed_is_a_usage_error_after_the_rest(
    roots: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    c, _ = roots
    real = shutil.rmtree

    def rmtree(path: Path) -> None:
        if "torch-old" in Path(path).name:  # renamed aside first (.torch-old.fawheels-removing-PID)
            raise PermissionError(13, "Permission denied", str(path))
        real(path)

    monkeypatch.setattr(shutil, "rmtree", rmtree)
    assert cli.main(["cache", "prune", "--older-than", "30"]) == 2
    captured = capsys.readouterr()
    assert "could not remove" in captured.err and "torch-old: Permission denied" in captured.err
    assert "removed builds" in captured.out and not (c / "sources" / "sha256" / "ab12").exists()
    (aside,) = (c / "envs").glob(".torch-old.fawheels-removing-*")  # not a usable env under its own name
    assert not (c / "envs" / "torch-old").exists() and (aside / "lib" / "torch.so").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["cache", "prune"], "say what to remove"),
        (["cache", "prune", "--older-than", "-1"], "0 or more"),
        (["cache", "prune", "--older-than", "nan"], "0 or more"),
        (["cache", "prune", "--what", "everything"], "invalid choice"),
    ],
)
def test_prune_refuses_a_vague_or_bad_command_line(
    argv: list[str], message: str, roots: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse
        code = int(exc.code or 0)
    assert code == 2 and message in capsys.readouterr().err
    assert (roots[0] / "envs" / "torch-old").exists()


def test_a_cache_that_is_a_file_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    put(tmp_path / "f")
    monkeypatch.setenv("FAWHEELS_CACHE", str(tmp_path / "f"))
    assert cli.main(["cache"]) == 2
    assert "a file, not a directory" in capsys.readouterr().err


def test_a_used_entry_is_new_again(tmp_path: Path) -> None:
    put(tmp_path / "env" / "python")
    age(tmp_path / "env")
    mark_used(tmp_path / "env")
    assert time.time() - (tmp_path / "env").stat().st_mtime < 60


def test_what_an_interrupted_prune_left_is_removed_next_time(
    roots: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    c, b = roots
    put(c / "envs" / f".torch-x{cache.REMOVING}-99" / "lib" / "a.so")
    put(b / f".t-y{cache.REMOVING}-99" / "obj" / "a.o")  # a build tree renamed aside: no lock beside it
    assert cli.main(["cache", "prune", "--what", "envs", "--what", "builds"]) == 0
    assert list((c / "envs").iterdir()) == [] and not any(b.glob(f"*{cache.REMOVING}*"))
