"""Database locations: a file path (SQLite) or a libpq URL (PostgreSQL), and how to show one.

Nothing here imports the rest of tokenmeter: the config, the store and the CLI all use it.

A URL's password is a secret: ``redact_url`` is the only form of it that tokenmeter prints, logs
or puts in an error. libpq reads ``PGPASSWORD``, ``~/.pgpass`` and ``sslmode`` itself, so a
password never has to be in the URL at all.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, unquote, urlsplit

__all__ = ["has_password", "is_url", "redact_text", "redact_url", "url_key", "url_secrets"]

_SCHEMES = ("postgresql://", "postgres://")
_SECRET_PARAMS = ("password", "sslpassword")
# greedy to the last "@" before the path: an unencoded "@" in a password is hidden whole
_USERINFO = re.compile(r"(postgres(?:ql)?://[^:/@\s]*):[^/\s]*@", re.IGNORECASE)
_PARAM = re.compile(r"((?:^|[?&\s])(?:ssl)?password=)[^&\s]*", re.IGNORECASE)


def is_url(location: str) -> bool:
    """Whether ``location`` names a PostgreSQL database rather than a SQLite file."""
    return location.strip().lower().startswith(_SCHEMES)


def has_password(url: str) -> bool:
    """Whether ``url`` carries a password (which belongs in ``~/.pgpass`` or ``PGPASSWORD``)."""
    return bool(_USERINFO.match(url.strip()) or _PARAM.search(url))


def url_key(url: str) -> str:
    """A short, file-name-safe key of a hub's URL, for this machine's files about that hub (locks,
    caches) kept in its data folder."""
    return hashlib.sha256(redact_url(url).encode()).hexdigest()[:16]


def redact_url(url: str) -> str:
    """``url`` with any password (in the user part or a ``password=`` parameter) shown as ``***``."""
    return _PARAM.sub(r"\1***", _USERINFO.sub(r"\1:***@", url))


def url_secrets(url: str) -> list[str]:
    """The passwords in ``url``, raw and decoded, for scrubbing messages that might echo them."""
    try:
        parts = urlsplit(url)
        found = [parts.password or ""]
        found += [v for k, v in parse_qsl(parts.query) if k.lower() in _SECRET_PARAMS]
    except ValueError:
        return []
    return [s for p in found if p for s in {p, unquote(p)} if len(s) >= 1]


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every URL password and each of ``secrets`` replaced by ``***``."""
    text = redact_url(text)
    for secret in sorted(set(secrets), key=len, reverse=True):
        if secret:
            text = text.replace(secret, "***")
    return text
