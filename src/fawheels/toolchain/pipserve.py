"""The host's package indexes for an image build: pip's index settings as the host sees them, and a loopback
HTTP server that serves local indexes (and the CA bundle) to the build for its length, so multi-GB wheels already
on disk are not downloaded again and nothing of the host is copied into a layer."""

from __future__ import annotations

import contextlib
import functools
import http.server
import re
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from fawheels._util.errors import ContainerError
from fawheels._util.runner import run


def host_pip_settings(environ: Mapping[str, str]) -> dict[str, list[str]]:
    """index-url / extra-index-url / find-links as the host's pip sees them (config, then env)."""
    output = run(
        [sys.executable, "-m", "pip", "config", "list"],
        env=environ,
        capture=True,
        error=ContainerError,
        what="pip config list",
    )
    found: dict[str, list[str]] = {}
    for line in output.splitlines():
        if m := re.match(r"^[\w:.-]+\.(index-url|extra-index-url|find-links)='(.*)'$", line):
            found[m.group(1)] = m.group(2).split()
    for key in ("index-url", "extra-index-url", "find-links"):
        if value := environ.get("PIP_" + key.upper().replace("-", "_")):
            found[key] = value.split()
    return found


@contextlib.contextmanager
def loopback_indexes(settings: Mapping[str, list[str]], ca: Path | None) -> Iterator[dict[str, str]]:
    """Build arguments that give an image build the host's package indexes and CA bundle.

    Local indexes (file:// or directories) are served over HTTP on 127.0.0.1 for the length of the
    build (the build runs with --network host), so multi-GB wheels already on disk are not
    downloaded again and nothing from the host is copied into a layer."""
    with tempfile.TemporaryDirectory(prefix="fawheels-index-") as tmp:
        root = Path(tmp)
        served: dict[str, list[str]] = {}
        for key, urls in settings.items():
            for url in urls:
                local = url.removeprefix("file://") if url.startswith("file://") or url.startswith("/") else None
                if local is None:
                    served.setdefault(key, []).append(url)
                    continue
                # Serve the directory above a PEP 503 `simple/`, whose pages link to ../../files/.
                path = Path(local.rstrip("/"))
                top, suffix = (path.parent, "/" + path.name) if path.name == "simple" else (path, "")
                name = str(len(list(root.iterdir())))
                (root / name).symlink_to(top)
                served.setdefault(key, []).append(f"{{base}}/{name}{suffix}/")
        if ca is not None:
            (root / "ca.crt").symlink_to(ca)
        handler = functools.partial(_QuietHandler, directory=str(root))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        base = f"http://127.0.0.1:{server.server_address[1]}"
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            args = {
                "PIP_" + k.upper().replace("-", "_"): " ".join(u.format(base=base) for u in v)
                for k, v in served.items()
            }
            if ca is not None:
                args["HOST_CA_URL"] = f"{base}/ca.crt"
            yield args
        finally:
            server.shutdown()
            server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """pip fetches hundreds of pages; their access log is noise."""
