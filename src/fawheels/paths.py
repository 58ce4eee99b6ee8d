"""Where fawheels keeps what it downloads and builds (overridable, so CI and containers can share it)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """FAWHEELS_CACHE, else $XDG_CACHE_HOME/fawheels, else ~/.cache/fawheels."""
    if env := os.environ.get("FAWHEELS_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fawheels"
