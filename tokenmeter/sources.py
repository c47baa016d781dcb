"""The source interface plugins implement, and the context the host hands them (DESIGN §3)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .errors import NeedsCredentials
from .records import Cursor, QuotaSnapshot, UsageRecord

if TYPE_CHECKING:
    import logging

    import httpx

__all__ = ["Item", "Progress", "Source", "SourceContext", "Window"]

SOURCE_KINDS = ("ledger", "log")

Item = UsageRecord | QuotaSnapshot | Cursor


@dataclass(frozen=True, slots=True)
class Window:
    """The time range a fetch asks for.

    ``start`` is None when the user did not ask for a range: the source then continues from
    its cursor (or backfills what the provider keeps). ``end`` is "now" unless ``--to`` was given.
    """

    start: datetime | None
    end: datetime

    @property
    def explicit(self) -> bool:
        return self.start is not None


class Progress:
    """Progress a source reports; the host renders it (a bar on a TTY, nothing otherwise)."""

    def __init__(self) -> None:
        self.total: int | None = None
        self.done = 0
        self.description = ""

    def set_total(self, total: int | None) -> None:
        self.total = total

    def advance(self, n: int = 1) -> None:
        self.done += n

    def describe(self, text: str) -> None:
        self.description = text


class SourceContext:
    """What the host gives a source: HTTP client, secrets, clock, progress, log, skip counting.

    Sources must use ``ctx.http`` for HTTP (the host sets timeouts, retries, proxy and user
    agent) and ``ctx.secret`` for credentials (the host redacts the values from every message).
    """

    MAX_SKIP_EXAMPLES = 5

    def __init__(
        self,
        source_id: str,
        *,
        now: datetime | None = None,
        timezone: tzinfo | None = None,
        machine_id: str = "local",
        machine_name: str | None = None,
        data_dir: Path | None = None,
        http_factory: Any = None,
        env: Mapping[str, str] | None = None,
        log: logging.Logger | None = None,
        request_deadline: float | None = None,
    ) -> None:
        self.source_id = source_id
        self._request_deadline = request_deadline
        self._now = now
        self.timezone = timezone
        self.machine_id = machine_id
        self.machine_name = machine_name  # the readable name stored with each row (team hubs)
        self.data_dir = data_dir
        self._http_factory = http_factory
        self._http: httpx.Client | None = None
        self._env = env if env is not None else os.environ
        self._log = log
        self.progress = Progress()
        self.skipped = 0
        self.skip_examples: list[str] = []
        self.unrecognised_count = 0
        self.unrecognised_examples: list[str] = []
        self.warnings: list[str] = []
        self.secrets: set[str] = set()
        # set by the host for a source with ``fetch_batches``: prices and encodes a ``RecordBatch``
        # for the store. A source that parses in worker processes may apply it there (it is pure);
        # batches that come without it are prepared by the host (docs/plugins/records.md)
        self.prepare_batch: Callable[[Any], Any] | None = None

    @property
    def log(self) -> logging.Logger:
        """A ``logging.Logger`` named ``tokenmeter.source.<id>`` (made on first use)."""
        if self._log is None:
            import logging  # on first use: most runs log nothing

            self._log = logging.getLogger(f"tokenmeter.source.{self.source_id}")
        return self._log

    @log.setter
    def log(self, value: logging.Logger) -> None:
        self._log = value

    # -- clock -----------------------------------------------------------------------------
    def now(self) -> datetime:
        """The current time, aware. Fixed in tests."""
        if self._now is not None:
            return self._now
        from datetime import UTC

        return datetime.now(UTC)

    # -- HTTP ------------------------------------------------------------------------------
    @property
    def request_deadline(self) -> float:
        """Seconds one request may take in total (``[tokenmeter] request_deadline``, default 120).

        ``ctx.http`` enforces it; a source that runs a subprocess or its own I/O should end it then.
        """
        if self._request_deadline is None:
            from .config import request_deadline

            self._request_deadline = request_deadline()
        return self._request_deadline

    @property
    def http(self) -> httpx.Client:
        """An ``httpx.Client`` (``tokenmeter.http.Client``) with the host's timeouts, retries, total
        deadline, proxy settings and user agent: the one retry path (see ``tokenmeter.http``)."""
        if self._http is None:
            if self._http_factory is None:
                from .http import make_client

                self._http = make_client(deadline=self.request_deadline)
            else:
                self._http = self._http_factory()
        return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    # -- secrets ---------------------------------------------------------------------------
    def secret(self, *env_names: str, file: str | os.PathLike[str] | None = None) -> str | None:
        """Return the first credential found: each env var in order, then ``NAME=value`` in ``file``.

        The value is remembered so the host can redact it from any message. Returns None when
        nothing is set; use ``require_secret`` to raise ``NeedsCredentials`` instead.
        """
        for name in env_names:
            value = (self._env.get(name) or "").strip()
            if value:  # set but blank is not set
                return self._remember(value)
        if file is not None:
            values = read_key_value_file(Path(file).expanduser())
            for name in env_names:
                if values.get(name):
                    return self._remember(values[name])
        return None

    def require_secret(self, *env_names: str, file: str | os.PathLike[str] | None = None) -> str:
        """Like ``secret`` but raise ``NeedsCredentials`` naming every place that was looked at."""
        value = self.secret(*env_names, file=file)
        if value is None:
            where = " or ".join(env_names)
            hint = f" (or put {env_names[0]}=... in {file})" if file else ""
            raise NeedsCredentials(f"{self.source_id}: set {where}{hint}", source=self.source_id)
        return value

    def add_secret(self, value: str) -> None:
        """Register a secret the source read some other way, so it is redacted too."""
        self._remember(value)

    def _remember(self, value: str) -> str:
        if value:
            self.secrets.add(value)
        return value

    # -- data quality ----------------------------------------------------------------------
    def skip(self, where: str, reason: str = "") -> None:
        """Count a line or item that was skipped (corrupt, short, not UTF-8 …)."""
        self.skipped += 1
        if len(self.skip_examples) < self.MAX_SKIP_EXAMPLES:
            self.skip_examples.append(f"{where}: {reason}" if reason else where)

    def unrecognised(self, where: str, what: str = "") -> None:
        """Count data that looks like usage in a shape the source does not know.

        Clients change their formats without notice: such lines are reported in the fetch summary
        (with the first positions), never dropped in silence.
        """
        self.unrecognised_count += 1
        if len(self.unrecognised_examples) < self.MAX_SKIP_EXAMPLES:
            self.unrecognised_examples.append(f"{where}: {what}" if what else where)

    def warn(self, message: str) -> None:
        """A warning shown in the fetch summary (not an error)."""
        self.warnings.append(message)
        self.log.warning(message)


def read_key_value_file(path: Path) -> dict[str, str]:
    """Parse ``KEY=VALUE`` lines (``#`` comments, optional ``export`` and quotes)."""
    values: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return values
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.removeprefix("export ").partition("=")
        values[name.strip()] = value.strip().strip("'\"")
    return values


class Source:
    """Base class for a source of usage data.

    A minimal source sets ``id``, ``provider``, ``kind`` and implements ``fetch``. Config keys
    go in a nested ``Settings`` dataclass; the host fills it from ``[sources.<id>]``.
    """

    id: ClassVar[str]
    provider: ClassVar[str]
    kind: ClassVar[str]  # "ledger" or "log"
    description: ClassVar[str] = ""

    @dataclass
    class Settings:
        pass

    def __init__(self, settings: Any, ctx: SourceContext) -> None:
        self.settings = settings
        self.ctx = ctx

    def available(self) -> str | None:
        """Return None when this source can run, else why not (shown as 'skipped: …').

        ``tokenmeter fetch`` with no names skips unavailable sources quietly; naming the source
        runs it anyway so the user sees the real error.
        """
        return None

    @classmethod
    def demo_settings(cls, workdir: Path) -> dict[str, Any] | None:
        """Offer sample data to ``tokenmeter demo``: copy it under ``workdir``, return the settings.

        The returned dict is this source's ``[sources.<id>]`` table for the demo run (e.g. the path of
        the copied sample log). ``None`` (the default) means the source has no demo data. Runs
        offline: no network, no credentials.
        """
        return None

    def fetch(self, window: Window, cursor: Mapping[str, Any]) -> Iterator[Item]:
        """Yield records, snapshots and ``Cursor`` checkpoints."""
        raise NotImplementedError
