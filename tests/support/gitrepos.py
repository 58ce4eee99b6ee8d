"""Git repositories made by the tests: a superproject pinning a submodule (the git source kind)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.org",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.org",
    "GIT_CONFIG_NOSYSTEM": "1",
    # git refuses file:// submodules unless allowed (CVE-2022-39253); the tests' repos are local paths.
    "GIT_CONFIG_COUNT": "1",
    "GIT_CONFIG_KEY_0": "protocol.file.allow",
    "GIT_CONFIG_VALUE_0": "always",
}


def git(cwd: Path, *args: str, date: str = "2025-01-02T03:04:05Z") -> str:
    env = {**os.environ, **GIT_ENV, "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


def commit_all(repo: Path, message: str, date: str = "2025-01-02T03:04:05Z") -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message, date=date)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str, str]:
    """origin/super.git pins origin/sub.git at its first commit; sub has moved on since."""
    monkeypatch.setenv("FAWHEELS_CACHE", str(tmp_path / "cache"))
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)
    origin = tmp_path / "origin"
    sub = origin / "sub.git"
    sub.mkdir(parents=True)
    git(sub, "init", "-q", "-b", "main")
    (sub / "lib.h").write_text("#define VERSION 1\n")
    pinned_sub = commit_all(sub, "v1")
    sup = origin / "super.git"
    sup.mkdir()
    git(sup, "init", "-q", "-b", "main")
    (sup / "main.c").write_text('#include "third_party/lib.h"\nint main(void) { return VERSION; }\n')
    git(sup, "submodule", "add", "-q", "../sub.git", "third_party")
    pinned = commit_all(sup, "pin sub at v1", date="2025-03-04T05:06:07Z")
    (sub / "lib.h").write_text("#define VERSION 2\n")
    commit_all(sub, "v2")
    (sup / "main.c").write_text("int main(void) { return 99; }\n")
    commit_all(sup, "later")
    return sup, pinned, pinned_sub
