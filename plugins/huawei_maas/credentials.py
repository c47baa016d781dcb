"""Huawei Cloud AK/SK credentials: environment variables or a credentials file.

Values are only ever handed to the signer; they are registered with the context
(``ctx.secret`` / ``ctx.add_secret``) so the host redacts them from every message, and the
``Credentials`` object never shows them in its ``repr``.
"""

from __future__ import annotations

import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from tokenmeter import NeedsCredentials, SourceContext

# (access key, secret key, security token) env names, in order of preference. The HW_* names are
# the skill's; HUAWEICLOUD_SDK_* are what Huawei's own SDK and signing samples read.
ENV_SETS = (
    ("HW_ACCESS_KEY", "HW_SECRET_KEY", "HW_SECURITY_TOKEN"),
    ("HUAWEICLOUD_SDK_AK", "HUAWEICLOUD_SDK_SK", "HUAWEICLOUD_SDK_SECURITY_TOKEN"),
)
_AK_NAMES = {"HW_ACCESS_KEY", "HUAWEICLOUD_SDK_AK"}
_SK_NAMES = {"HW_SECRET_KEY", "HUAWEICLOUD_SDK_SK"}
_TOKEN_NAMES = {"HW_SECURITY_TOKEN", "HUAWEICLOUD_SDK_SECURITY_TOKEN"}
_KEY_VALUE = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$")

MISSING_HINT = "set HW_ACCESS_KEY and HW_SECRET_KEY (or credentials_file in [sources.huawei-maas])"


@dataclass(frozen=True)
class Credentials:
    """An access key pair, plus a security token for temporary credentials."""

    ak: str = field(repr=False)
    sk: str = field(repr=False)
    token: str | None = field(default=None, repr=False)
    origin: str = "HW_ACCESS_KEY/HW_SECRET_KEY"  # where they came from (names, never values), for messages

    @property
    def values(self) -> tuple[str, ...]:
        return tuple(v for v in (self.ak, self.sk, self.token) if v)


def from_env(ctx: SourceContext) -> Credentials | None:
    """Credentials from the environment (both halves of one naming scheme), or None."""
    for ak_name, sk_name, token_name in ENV_SETS:
        ak = ctx.secret(ak_name)
        sk = ctx.secret(sk_name)
        if ak and sk:
            names = [ak_name, sk_name]
            token = None
            for name in dict.fromkeys((token_name, "HW_SECURITY_TOKEN")):
                token = ctx.secret(name)
                if token:
                    names.append(name)
                    break
            return Credentials(ak, sk, token, origin="/".join(names))
    return None


def parse_credentials_text(text: str) -> tuple[str | None, str | None, str | None]:
    """Parse the skill's three layouts: KEY=VALUE lines, one ``AK,SK[,TOKEN]`` line, bare lines.

    Blank lines and ``#`` comments are ignored. Returns (ak, sk, token), each possibly None.
    """
    lines = [ln.strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    if not lines:
        return None, None, None
    pairs: dict[str, str] = {}
    for line in lines:
        match = _KEY_VALUE.match(line)
        if match and match.group(1).upper() in _AK_NAMES | _SK_NAMES | _TOKEN_NAMES:
            pairs[match.group(1).upper()] = match.group(2).strip().strip("'\"")
    if pairs:
        ak = next((pairs[n] for n in ("HW_ACCESS_KEY", "HUAWEICLOUD_SDK_AK") if pairs.get(n)), None)
        sk = next((pairs[n] for n in ("HW_SECRET_KEY", "HUAWEICLOUD_SDK_SK") if pairs.get(n)), None)
        token = next(
            (pairs[n] for n in ("HW_SECURITY_TOKEN", "HUAWEICLOUD_SDK_SECURITY_TOKEN") if pairs.get(n)), None
        )
        return ak, sk, token
    if len(lines) == 1 and "," in lines[0]:
        # A token may itself contain commas in theory; only the first two split.
        parts = [p.strip() for p in lines[0].split(",", 2)]
        return parts[0] or None, parts[1] or None, (parts[2] if len(parts) > 2 and parts[2] else None)
    ak = lines[0]
    sk = lines[1] if len(lines) > 1 else None
    token = lines[2] if len(lines) > 2 else None
    return ak, sk, token


def from_file(ctx: SourceContext, path_text: str, *, warn: bool = True) -> Credentials:
    """Credentials from ``path_text``; raises ``NeedsCredentials`` when absent or incomplete."""
    path = Path(path_text).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise NeedsCredentials(
            f"huawei-maas: credentials_file {path} does not exist; create it or set HW_ACCESS_KEY and "
            "HW_SECRET_KEY",
            source="huawei-maas",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise NeedsCredentials(
            f"huawei-maas: cannot read credentials_file {path} ({type(exc).__name__}); "
            "set HW_ACCESS_KEY and HW_SECRET_KEY instead",
            source="huawei-maas",
        ) from None
    ak, sk, token = parse_credentials_text(text)
    for value in (ak, sk, token):
        if value:
            ctx.add_secret(value)
    if warn and mode & (stat.S_IRGRP | stat.S_IROTH):
        ctx.warn(f"huawei-maas: credentials file {path} is readable by other users; run: chmod 600 {path}")
    if not ak or not sk:
        raise NeedsCredentials(
            f"huawei-maas: credentials_file {path} has no access key and secret key; put "
            "HW_ACCESS_KEY=... and HW_SECRET_KEY=... lines in it (or 'AK,SK' on one line)",
            source="huawei-maas",
        )
    return Credentials(ak, sk, token, origin=f"the keys in {path}")


def load(ctx: SourceContext, credentials_file: str | None, *, warn: bool = True) -> Credentials:
    """Environment first (as the skill does), then the configured file; else ``NeedsCredentials``."""
    creds = from_env(ctx)
    if creds is not None:
        return creds
    if credentials_file:
        return from_file(ctx, credentials_file, warn=warn)
    raise NeedsCredentials(f"huawei-maas: no credentials: {MISSING_HINT}", source="huawei-maas")


def unavailable_reason(ctx: SourceContext, credentials_file: str | None) -> str | None:
    """Why the source cannot run (no credentials anywhere), or None; never raises, never warns."""
    if from_env(ctx) is not None:
        return None
    if credentials_file:
        path = Path(credentials_file).expanduser()
        if path.is_file():
            return None
        return f"credentials_file {path} does not exist"
    return "no credentials: set HW_ACCESS_KEY and HW_SECRET_KEY"
