"""tokenmeter: LLM usage and cost from every provider, log and plugin, in one SQLite database.

Everything in ``__all__`` is the public API that plugins and scripts may rely on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import errors
from ._version import __version__
from .batch import RecordBatch
from .errors import (
    ConfigError,
    InvalidRecord,
    NeedsCredentials,
    PluginError,
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
    ProviderResponseError,
    ProviderUnavailable,
    SourceDataError,
    TokenmeterError,
)
from .hookspecs import hookimpl
from .pricing.entries import PriceEntry, PriceRegion, Tier
from .records import Cursor, QuotaSnapshot, UsageRecord
from .sources import Progress, Source, SourceContext, Window
from .util import check_base_url, is_loopback, parse_day, parse_time

if TYPE_CHECKING:
    from .api import Tokenmeter


__all__ = [
    "ConfigError",
    "Cursor",
    "InvalidRecord",
    "NeedsCredentials",
    "PluginError",
    "PriceEntry",
    "PriceRegion",
    "Progress",
    "ProviderAuthError",
    "ProviderError",
    "ProviderRateLimited",
    "ProviderResponseError",
    "ProviderUnavailable",
    "QuotaSnapshot",
    "RecordBatch",
    "RequestSigner",
    "RetryEvent",
    "RetryPolicy",
    "Source",
    "SourceContext",
    "SourceDataError",
    "Tier",
    "TokenmeterError",
    "UsageRecord",
    "Window",
    "__version__",
    "check_base_url",
    "errors",
    "hookimpl",
    "is_loopback",
    "open",
    "parse_day",
    "parse_retry_after",
    "parse_time",
    "raise_for_status",
    "send",
]


# from .http, served on first use: keeps httpx off the startup path
_LAZY = {"RequestSigner", "RetryEvent", "RetryPolicy", "parse_retry_after", "raise_for_status", "send"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import http

        return getattr(http, name)
    raise AttributeError(f"module 'tokenmeter' has no attribute {name!r}")


def open(db: Any = None, *, config: Any = None) -> Tokenmeter:  # noqa: A001 - the documented API name
    """Open the tokenmeter database for scripts: ``tokenmeter.open().usage(period="week")``."""
    from .api import Tokenmeter

    return Tokenmeter(db=db, config=config)
