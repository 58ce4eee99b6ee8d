"""Publishing to an index server: the legacy upload API that pypiserver, devpi and PyPI speak, credentials from
the environment or keyring only (never the command line), answers bounded and redacted, redirects refused."""

from __future__ import annotations

import base64
import http.client
import ipaddress
import secrets
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from email.parser import HeaderParser
from importlib import import_module
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

from fawheels._util.errors import PublishError
from fawheels.publish.checked import (
    CheckedWheel,
)
from fawheels.publish.pages import (
    parse_simple_links,
)
from fawheels.publish.records import (
    MAX_ANSWER,
    is_new,
)

_CHUNK = 1 << 20


TIMEOUT_VAR = "FAWHEELS_INDEX_TIMEOUT"


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)  # repr=False keeps it out of tracebacks and debug prints


def credentials_from_env(env: Mapping[str, str]) -> Credentials | None:
    for user_var, pass_var in (
        ("FAWHEELS_INDEX_USER", "FAWHEELS_INDEX_PASSWORD"),
        ("TWINE_USERNAME", "TWINE_PASSWORD"),
    ):
        if env.get(pass_var):
            return Credentials(env.get(user_var) or "__token__", env[pass_var])
    return None


def redact(text: str, creds: Credentials | None) -> str:
    """`text` without the password in any form (plain, in a Basic header's base64, URL-quoted) and without
    any other credential-shaped value (redact.py)."""
    from fawheels._util.redact import redact as _redact

    if creds is None:
        return _redact(text)
    return _redact(text, [creds.password], [creds.username])


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A pypiserver redirects unknown projects to PyPI; that is "not here", not something to follow.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServerIndex:
    """A running index server (pypiserver, devpi, …) reached through the legacy upload API at `url`."""

    url: str
    credentials: Credentials | None
    timeout: float = 60.0  # seconds for the connection and for each read: a silent server ends in an error

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if self.credentials and parts.scheme != "https" and not _is_loopback(parts.hostname or ""):
            raise PublishError(
                f"refusing to send credentials over plain http to {parts.hostname}",
                hint="use https, or a loopback address",
            )

    def publish(self, wheels: Sequence[CheckedWheel]) -> list[tuple[CheckedWheel, bool]]:
        plan = [(w, is_new(w.record, self._listed(w), self.url)) for w in wheels]
        if any(new for _, new in plan):
            self._check_auth()
        for w, new in plan:
            if new:
                self._upload(w)
                stored = self._listed(w)
                if stored is not None and stored != w.record.sha256:
                    raise PublishError(
                        f"{w.name.filename}: the server lists sha256 {stored}, not the {w.record.sha256} that was sent"
                    )
        return plan

    def _headers(self) -> dict[str, str]:
        if self.credentials is None:
            return {}
        token = f"{self.credentials.username}:{self.credentials.password}".encode()
        return {"Authorization": "Basic " + base64.b64encode(token).decode()}

    def _request(self, req: urllib.request.Request) -> tuple[int, str]:
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            with opener.open(req, timeout=self.timeout) as resp:
                return int(resp.status), resp.read(MAX_ANSWER).decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(MAX_ANSWER).decode("utf-8", "replace")
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                raise self._timed_out() from None
            reason = redact(str(exc.reason), self.credentials)
            raise PublishError(
                f"cannot reach the index at {self.url}: {reason}", hint="check the URL and that the server is up"
            ) from None
        except TimeoutError:
            raise self._timed_out() from None
        except (OSError, http.client.HTTPException) as exc:  # reset or closed mid-answer
            raise PublishError(
                f"the index at {self.url} broke off the connection: "
                f"{redact(str(exc) or type(exc).__name__, self.credentials)}",
                hint="retry; if it persists, look at the server's log",
            ) from None

    def _timed_out(self) -> PublishError:
        return PublishError(
            f"the index at {self.url} did not answer within {self.timeout:g} s",
            hint=f"check that the server is up and not overloaded; {TIMEOUT_VAR}=SECONDS waits longer",
        )

    def _listed(self, w: CheckedWheel) -> str | None:
        """sha256 of the file of that name the server already lists, or None."""
        url = urljoin(self.url, f"simple/{quote(w.name.project)}/")
        status, body = self._request(urllib.request.Request(url, headers=self._headers()))
        if status in (401, 403):
            raise PublishError(
                f"the index at {self.url} refused to list {w.name.project} ({status})",
                hint="check FAWHEELS_INDEX_USER / FAWHEELS_INDEX_PASSWORD",
            )
        links = parse_simple_links(body) if status == 200 else {}
        if w.name.filename not in links:
            return None
        digest = links[w.name.filename]
        if digest is None:
            raise PublishError(f"{w.name.filename}: {self.url} already lists it without a sha256 to compare")
        return digest

    def _refuse_auth(self, status: int) -> PublishError:
        who = "anonymous upload" if self.credentials is None else "the credentials"
        return PublishError(
            f"the index at {self.url} refused {who} ({status})",
            hint="set FAWHEELS_INDEX_USER / FAWHEELS_INDEX_PASSWORD (or keyring)",
        )

    def _check_auth(self) -> None:
        """An upload without its file: servers answer 401/403 before reading a body, and a refused
        upload of hundreds of MB would only show up as a broken pipe."""
        boundary = "fawheels-" + secrets.token_hex(16)
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name=":action"\r\n\r\nfile_upload\r\n--{boundary}--\r\n'
        ).encode()
        req = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={**self._headers(), "Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        status, _ = self._request(req)
        if status in (401, 403):
            raise self._refuse_auth(status)

    def _upload(self, w: CheckedWheel) -> None:
        meta = HeaderParser().parsestr(w.metadata.decode("utf-8"))
        fields = {
            ":action": "file_upload",
            "protocol_version": "1",
            "metadata_version": meta.get("Metadata-Version", "2.1"),
            "name": meta.get("Name", w.name.project),
            "version": meta.get("Version", str(w.name.version)),
            "filetype": "bdist_wheel",
            "pyversion": w.name.python_tag,
            "sha256_digest": w.record.sha256,
            "requires_python": w.record.requires_python or "",
        }
        boundary = "fawheels-" + secrets.token_hex(16)
        head = (
            b"".join(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
                for k, v in fields.items()
            )
            + (
                f'--{boundary}\r\nContent-Disposition: form-data; name="content"; '
                f'filename="{w.name.filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
            ).encode()
        )
        tail = f"\r\n--{boundary}--\r\n".encode()

        def body() -> Iterator[bytes]:  # streamed: FA2 wheels are hundreds of MB
            yield head
            with open(w.path, "rb") as fh:
                while chunk := fh.read(_CHUNK):
                    yield chunk
            yield tail

        req = urllib.request.Request(
            self.url,
            data=body(),
            method="POST",
            headers={
                **self._headers(),
                "Content-Type": f"multipart/form-data; boundary={boundary}",
                "Content-Length": str(len(head) + w.record.size + len(tail)),
            },
        )
        status, text = self._request(req)
        if status in (401, 403):
            raise self._refuse_auth(status)
        if not 200 <= status < 300:
            raise PublishError(
                f"the index at {self.url} refused {w.name.filename} ({status}): "
                f"{redact(text.strip()[:300], self.credentials)}"
            )


def _keyring_credentials(url: str) -> Credentials | None:
    """keyring is optional: used when installed and it holds a credential for the index URL."""
    try:
        keyring: Any = import_module("keyring")
    except ImportError:
        return None
    try:
        cred = keyring.get_credential(url, None)
    except keyring.errors.KeyringError:  # no usable backend (headless CI) is "no credential"
        return None
    return Credentials(str(cred.username), str(cred.password)) if cred and cred.password else None


def index_timeout(env: Mapping[str, str]) -> float:
    raw = env.get(TIMEOUT_VAR)
    if not raw:
        return 60.0
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= 3600:
        raise PublishError(f"{TIMEOUT_VAR}={raw!r}: expected seconds between 0 and 3600", hint="e.g. 120")
    return value
