"""Every exception tokenmeter raises, and the exit code each one maps to.

The tree::

    TokenmeterError                  base; str(error) is one line meant for the user

Each class also has ``code``, the word the command line's JSON error document carries
(``{"error": {"code", "message", "exit_code"}}``): scripts match on it, never on the message.

    ├── ConfigError                  bad config file, key or value           exit 4
    │   └── UsageError               command-line options that cannot work together  exit 64
    ├── PluginError                  plugin failed to load, bad hook, duplicate source id  exit 4
    ├── InvalidRecord (ValueError)   a record or snapshot breaks the contract exit 6
    ├── StoreError                   the database cannot be opened, merged or written  exit 4
    └── ProviderError                raised by sources; carries ``source``    exit 6
        ├── NeedsCredentials         a credential is missing                  exit 5
        ├── ProviderAuthError        the provider rejected the credential     exit 5
        ├── ProviderRateLimited      429; ``retry_after`` seconds if known    exit 3
        ├── ProviderUnavailable      network failure, timeout, 5xx            exit 3
        ├── ProviderResponseError    an answer that cannot be understood      exit 6
        └── SourceDataError          local data the source cannot use         exit 6

Plugins raise the ``Provider*`` types (and ``NeedsCredentials``); the host turns any other
exception escaping a source into a ``ProviderError`` naming the source, so one failing source
never stops the others.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConfigError",
    "InvalidRecord",
    "NeedsCredentials",
    "PluginError",
    "ProviderAuthError",
    "ProviderError",
    "ProviderRateLimited",
    "ProviderResponseError",
    "ProviderUnavailable",
    "SourceDataError",
    "StoreError",
    "TokenmeterError",
    "UsageError",
]


class TokenmeterError(Exception):
    """Base class: the message is a single line that says what is wrong and how to fix it."""

    exit_code: int = 1
    code: str = "error"


class ConfigError(TokenmeterError):
    """The config file, a key in it, or a value is wrong."""

    exit_code = 4
    code = "config_error"


class UsageError(ConfigError):
    """Command-line options that cannot work: ``--days 0``, ``--from`` after ``--to``, a date out of range.

    A ``ConfigError`` for Python callers; the command line exits 64 with the one-line message.
    """

    exit_code = 64
    code = "usage_error"


class PluginError(TokenmeterError):
    """A plugin failed to load or registered something invalid."""

    exit_code = 4
    code = "plugin_error"


class StoreError(TokenmeterError):
    """The database cannot be opened, migrated, merged or written.

    ``reason`` says why a write failed when it is one of the known cases: ``"busy"`` (another run
    holds the lock), ``"full"`` (no space left) or ``"read-only"``; else None.
    """

    exit_code = 4
    code = "database_error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        self.reason = reason
        super().__init__(message)


class InvalidRecord(TokenmeterError, ValueError):
    """A ``UsageRecord`` or ``QuotaSnapshot`` breaks the record contract.

    ``field`` names the offending field; ``plugin`` is filled in by the host when it knows
    which source produced the record.
    """

    exit_code = 6
    code = "invalid_record"

    def __init__(self, field: str, message: str, *, plugin: str | None = None) -> None:
        self.field = field
        self.message = message
        self.plugin = plugin
        super().__init__(self._text())

    def _text(self) -> str:
        where = f" (from {self.plugin})" if self.plugin else ""
        return f"invalid record field {self.field!r}{where}: {self.message}"

    def with_plugin(self, plugin: str) -> InvalidRecord:
        """Return a copy that names the plugin or source that produced the record."""
        return InvalidRecord(self.field, self.message, plugin=plugin)

    def __reduce__(self) -> tuple[Any, ...]:
        # picklable: a record batch is checked in a worker process, which sends the error back
        return _invalid_record, (self.field, self.message, self.plugin)


def _invalid_record(field: str, message: str, plugin: str | None) -> InvalidRecord:
    return InvalidRecord(field, message, plugin=plugin)


class ProviderError(TokenmeterError):
    """A source could not fetch its data. ``source`` is the source id when known."""

    exit_code = 6
    code = "source_failed"

    def __init__(self, message: str, *, source: str | None = None) -> None:
        self.source = source
        super().__init__(message)


class NeedsCredentials(ProviderError):
    """A credential is missing. The message names the env vars or file to set."""

    exit_code = 5
    code = "credentials"


class ProviderAuthError(ProviderError):
    """The provider rejected the credential (401/403)."""

    exit_code = 5
    code = "credentials_rejected"


class ProviderRateLimited(ProviderError):
    """The provider said to slow down (429). ``retry_after`` is in seconds, if it said."""

    exit_code = 3
    code = "rate_limited"

    def __init__(
        self, message: str, *, retry_after: float | None = None, source: str | None = None
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, source=source)


class ProviderUnavailable(ProviderError):
    """Network failure, timeout or a 5xx answer after the retries ran out."""

    exit_code = 3
    code = "network"


class ProviderResponseError(ProviderError):
    """The provider answered something tokenmeter cannot understand."""

    exit_code = 6


class SourceDataError(ProviderError):
    """Local data (a log file, a CLI's output) that the source cannot use."""

    exit_code = 6
