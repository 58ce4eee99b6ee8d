"""Keep credentials out of everything fawheels prints or writes.

A secret can reach a message in several forms: as itself (a server echoing a form field), inside an
`Authorization: Basic <base64 of user:password>` or `Bearer <token>` header that a server echoes in an error
page, URL- or form-encoded, HTML-escaped, or as the userinfo of a URL (`https://user:token@host/`). `redact`
removes the known secrets in each of those forms and, whatever the secret, any header value (`Basic` and
`Bearer` in any letter case), URL userinfo and `password=`-style assignment. Pure: the secrets are passed in
(`secrets_from_env` collects them).
"""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Iterable, Mapping
from typing import TextIO
from urllib.parse import quote, quote_plus

from fawheels._util.show import visible

MASK = "***"
MIN_SECRET = 4  # shorter values ("1", "yes") would mask ordinary text and hide nothing worth hiding
MIN_ENV_SECRET = 6  # of a value found in the environment by its variable's name (`*_TOKEN=false` is no secret)
_NOT_SECRET = {"true", "false", "none", "null", "disabled", "enabled"}

# Environment variables whose values are secrets, wherever they end up.
_SECRET_VAR = re.compile(r"(PASSWORD|PASSWD|TOKEN|SECRET|API_?KEY|CREDENTIALS?)$", re.IGNORECASE)
_USER_VARS = ("FAWHEELS_INDEX_USER", "TWINE_USERNAME")

# Every repetition is bounded (or anchored by a literal right before it), so each pattern costs a constant per
# position: the redactor runs over every line fawheels prints, compiler logs included, and must stay linear.
_HEADER = re.compile(
    r"(?im)\b((?:proxy-)?authorization|x-api-key|cookie)(\"?'?[ \t]{0,8}[:=][ \t]{0,8}[\"']?)"
    r"([^\r\n\"']{1,4096})"
)
_BASIC = re.compile(r"\b((?i:basic))([ \t]{1,8})([A-Za-z0-9+/]{4,4096}={0,2})")  # any case: bAsIc is Basic
_BEARER = re.compile(r"\b((?i:bearer)|Token)([ \t]{1,8})([A-Za-z0-9._~+/-]{8,4096}=*)")
_USERINFO = re.compile(r"(?i)(?<![a-z0-9+.-])([a-z][a-z0-9+.-]{0,30}://)([^\s/@\"'<>]{1,512})@")
_ASSIGN = re.compile(
    r"(?i)(?<![a-z0-9_.-])([a-z0-9_.-]{0,40}?(?:password|passwd|secret|api_?key|token"
    r"|signature))([\"']?[ \t]{0,8}[:=][ \t]{0,8}[\"']?)([^\s\"',;&}<]{1,4096})"
)


def _forms(secret: str, users: Iterable[str]) -> set[str]:
    """The spellings of one secret that can appear in text: as itself, URL- and form-encoded (either hex case),
    HTML-escaped (named or numeric entities, as a server's error page echoes a field), base64."""
    encoded = {quote(secret, safe=""), quote_plus(secret, safe=""), quote(secret), quote_plus(secret)}
    encoded |= {re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), e) for e in encoded}
    entities = {html.escape(secret), html.escape(secret, quote=False)}
    for numeric in ("&#{};", "&#x{:x};"):  # every character, or only the non-alphanumeric ones, as numbers
        entities.add("".join(numeric.format(ord(c)) for c in secret))
        entities.add("".join(c if c.isalnum() else numeric.format(ord(c)) for c in secret))
    entities |= {e.replace("&#x27;", "&#39;") for e in entities}
    forms = {secret, *encoded, *entities, base64.b64encode(secret.encode()).decode()}
    for user in users:
        pair = base64.b64encode(f"{user}:{secret}".encode()).decode()
        forms |= {pair, pair.rstrip("=")}
    return {f for f in forms if len(f) >= MIN_SECRET}


def _is_basic(value: str) -> bool:
    """Basic credentials are base64 of `user:password`; `basic checks` in prose is not."""
    try:
        return b":" in base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except ValueError:
        return False


def _tokenish(value: str) -> bool:
    """A bearer token has digits or mixed case; an English word after `Token` does not."""
    return any(c.isdigit() for c in value) or (value.lower() != value and value.upper() != value)


def redact(text: str, secrets: Iterable[str] = (), users: Iterable[str] = ()) -> str:
    """`text` with every known secret (in each form) and every credential-shaped value masked."""
    users = tuple(u for u in users if u)
    forms: set[str] = set()
    for s in secrets:
        if s and len(s) >= MIN_SECRET:
            forms |= _forms(s, users)
    for form in sorted(forms, key=len, reverse=True):  # longest first: a form may contain another
        text = text.replace(form, MASK)
    text = _HEADER.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    text = _BASIC.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}" if _is_basic(m.group(3)) else m.group(0), text)
    text = _BEARER.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}" if _tokenish(m.group(3)) else m.group(0), text)
    text = _USERINFO.sub(lambda m: f"{m.group(1)}{MASK}@", text)
    return _ASSIGN.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)


def secrets_from_env(env: Mapping[str, str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(secrets, user names) found in the environment: every *PASSWORD/*TOKEN/*SECRET value."""
    secrets = tuple(
        v for k, v in env.items() if _SECRET_VAR.search(k) and len(v) >= MIN_ENV_SECRET and v.lower() not in _NOT_SECRET
    )
    users = (*(env[k] for k in _USER_VARS if env.get(k)), "__token__")
    return secrets, users


class RedactingStream(io.TextIOBase):
    """A text stream that redacts each write before passing it on (installed on stdout/stderr by the CLI), and
    makes control characters visible (show.py) whatever wrote it: argparse, a child's output, `say`."""

    def __init__(self, inner: TextIO, secrets: Iterable[str], users: Iterable[str]) -> None:
        super().__init__()
        self.inner = inner
        self.secrets = tuple(secrets)
        self.users = tuple(users)

    def write(self, s: str) -> int:
        self.inner.write(visible(redact(s, self.secrets, self.users)))
        return len(s)

    def flush(self) -> None:
        self.inner.flush()

    def isatty(self) -> bool:
        return self.inner.isatty()

    def fileno(self) -> int:
        return self.inner.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.inner, "encoding", "utf-8")
