"""The ``huawei-maas`` source: daily MaaS usage from ShowStatistics, one call per local day.

ShowStatistics returns one aggregate for a time window, and keeps 30 days. To build a daily ledger
(kept by tokenmeter beyond those 30 days) the source asks once per local day window, per
``service_type`` × ``infer_type``. Each request goes through the host's retry path
(``tokenmeter.send``) with an ``AkSkSigner`` as its auth, so it is signed with the AK/SK just
before it is sent, and again on every retry, because a signature is only valid for 15 minutes.
"""

from __future__ import annotations

import collections
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from datetime import time as dtime
from typing import TYPE_CHECKING, Any, ClassVar

from tokenmeter import (
    Cursor,
    ProviderRateLimited,
    ProviderResponseError,
    ProviderUnavailable,
    Source,
    SourceContext,
    UsageRecord,
    Window,
)

from . import credentials as creds_mod

if TYPE_CHECKING:  # the HTTP layer (httpx) loads when a fetch needs it, not with the plugin
    from tokenmeter import RetryEvent, RetryPolicy

    from . import signing
from .answers import PERMISSIONS, error_detail, raise_for, read_json
from .credentials import Credentials
from .figures import as_count, epoch_ms, local_time, thousands
from .settings import (
    ALLOWED_INFER_TYPES,
    ALLOWED_SERVICE_TYPES,
    PROJECT_ID,
    SOURCE_ID,
    Config,
    Endpoint,
    parse_endpoint,
    timezone_name,
    validate,
)

# settings, figures and error answers live in settings.py, figures.py and answers.py; importable here as before
__all__ = [
    "ALLOWED_INFER_TYPES",
    "ALLOWED_SERVICE_TYPES",
    "OVERLAP_DAYS",
    "PERMISSIONS",
    "RETENTION_DAYS",
    "SOURCE_ID",
    "STATISTICS_PATH",
    "Clock",
    "Config",
    "Endpoint",
    "HuaweiMaasSource",
    "parse_endpoint",
    "timezone_name",
    "validate",
]

RETENTION_DAYS = 30  # the API keeps statistics for 30 days
OVERLAP_DAYS = 2  # re-fetch the last complete days in case figures settle late
STATISTICS_PATH = "/v1/{project_id}/maas/monitoring/show-statistics"


class Clock:
    """Wall clock (for X-Sdk-Date), monotonic clock and sleep; tests swap in a fake."""

    def utcnow(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@dataclass
class _Plan:
    days: list[date]
    can_advance: bool


class HuaweiMaasSource(Source):
    """Huawei Cloud MaaS usage statistics (ShowStatistics), one record per local day."""

    id: ClassVar[str] = SOURCE_ID
    provider: ClassVar[str] = "huawei-maas"
    kind: ClassVar[str] = "ledger"
    description: ClassVar[str] = "Huawei Cloud MaaS usage statistics (AK/SK), daily, 30-day API retention"

    @dataclass
    class Settings:
        region: str = field(
            default="cn-southwest-2",
            metadata={
                "help": "Huawei Cloud region: cn-southwest-2 (China site) or ap-southeast-1 "
                "(CN-Hong Kong, international site)"
            },
        )
        project_id: str | None = field(
            default=None,
            metadata={"help": "project id of the region; unset = looked up once via IAM and cached"},
        )
        service_types: list[int] = field(
            default_factory=lambda: [2],
            metadata={"help": "MaaS service types: 1 my services, 2 preset services, 4 custom endpoints"},
        )
        infer_types: list[str] = field(
            default_factory=lambda: ["real_time"],
            metadata={"help": "inference types to query: real_time and/or batch"},
        )
        endpoint: str | None = field(
            default=None,
            metadata={
                "help": "MaaS API base URL; default https://modelarts.{region}.myhuaweicloud.com "
                "(http only for loopback hosts)"
            },
        )
        iam_endpoint: str | None = field(
            default=None,
            metadata={
                "help": "IAM base URL for the project lookup; default https://iam.{region}.myhuaweicloud.com"
            },
        )
        credentials_file: str | None = field(
            default=None,
            metadata={
                "help": "file with HW_ACCESS_KEY=/HW_SECRET_KEY= lines, one 'AK,SK[,TOKEN]' line, or "
                "AK and SK on two lines; used when the env vars are not set"
            },
        )

    # Retry and pacing policy; class attributes so tests (and a subclass) can tune them. The
    # retrying itself is the host's (``_retry_policy``); these numbers are the API's own advice.
    clock: ClassVar[Clock] = Clock()
    rate_limit_wait: ClassVar[float] = 60.0  # the API's advice after a 429
    max_rate_limit_wait: ClassVar[float] = 120.0  # never sleep longer than this for one 429
    retries: ClassVar[int] = 3  # after a 429, a 5xx or a network error
    backoff: ClassVar[float] = 2.0  # first wait after a 5xx/network error; doubles
    pace_limit: ClassVar[int] = 180  # calls per rolling minute; the API allows 200 per user
    pace_period: ClassVar[float] = 60.0

    def __init__(self, settings: Any, ctx: SourceContext) -> None:
        super().__init__(settings, ctx)
        self.config = validate(settings)
        self._creds: Credentials | None = None
        self._auth: signing.AkSkSigner | None = None  # made in fetch(), once the credentials are known
        self._calls: collections.deque[float] = collections.deque()

    # -- host interface ----------------------------------------------------------------------
    def available(self) -> str | None:
        return creds_mod.unavailable_reason(self.ctx, self.config.credentials_file)

    def fetch(self, window: Window, cursor: Mapping[str, Any]) -> Iterator[Any]:
        cfg = self.config
        self._creds = creds_mod.load(self.ctx, cfg.credentials_file)
        from . import signing

        self._auth = signing.AkSkSigner(self._creds, self.clock.utcnow, before=self._pace)
        tz = self.ctx.timezone or UTC
        now = self.ctx.now()
        today = now.astimezone(tz).date()
        state = self._usable_cursor(cursor)
        previous = state.get("last_complete_day")
        plan = self._plan(window, previous, today, tz)
        project_id: str | None = cfg.project_id or state.get("project_id")
        last_complete: date | None = previous

        def cursor_state() -> dict[str, Any]:
            return {
                "region": cfg.region,
                "project_id": project_id,
                "last_complete_day": last_complete.isoformat() if last_complete else None,
            }

        if not plan.days:
            yield Cursor(cursor_state())
            return
        if project_id is None:
            project_id = self._lookup_project_id()
        combos = [(st, it) for st in cfg.service_types for it in cfg.infer_types]
        self.ctx.progress.set_total(len(plan.days) * len(combos))
        tz_label = timezone_name(tz)
        for day in plan.days:
            start = datetime.combine(day, dtime(0), tzinfo=tz)
            end = datetime.combine(day + timedelta(days=1), dtime(0), tzinfo=tz)
            partial = day >= today
            for service_type, infer_type in combos:
                self.ctx.progress.describe(f"huawei-maas {day} service_type {service_type} {infer_type}")
                data = self._statistics(
                    project_id, start, min(end, now) if partial else end, service_type, infer_type, tz_label
                )
                yield self._record(
                    day, start, end, service_type, infer_type, project_id, data, partial, tz_label
                )
                self.ctx.progress.advance()
            if not partial and plan.can_advance and (last_complete is None or day > last_complete):
                last_complete = day
            yield Cursor(cursor_state())

    # -- planning ------------------------------------------------------------------------------
    def _usable_cursor(self, cursor: Mapping[str, Any]) -> dict[str, Any]:
        """The saved state, or {} when it belongs to another region or project."""
        cfg = self.config
        state: dict[str, Any] = {}
        if not isinstance(cursor, Mapping):
            return state
        if cursor.get("region") not in (None, cfg.region):
            return state
        saved_project = cursor.get("project_id")
        if isinstance(saved_project, str) and PROJECT_ID.match(saved_project):
            if cfg.project_id and saved_project != cfg.project_id:
                return state
            state["project_id"] = saved_project
        day = cursor.get("last_complete_day")
        if isinstance(day, str):
            try:
                state["last_complete_day"] = date.fromisoformat(day)
            except ValueError:
                self.ctx.log.debug("ignoring a bad last_complete_day in the cursor")
        return state

    def _plan(self, window: Window, previous: date | None, today: date, tz: tzinfo) -> _Plan:
        earliest = today - timedelta(days=RETENTION_DAYS - 1)
        end_local = local_time(window.end, tz)
        end_day = end_local.date()
        # An end exactly at local midnight is exclusive (--to given as the next midnight).
        if end_local.timetz().replace(tzinfo=None) == dtime(0) and (
            window.start is None or window.end > window.start
        ):
            end_day -= timedelta(days=1)
        end_day = min(end_day, today)
        if window.start is not None:
            start_day = local_time(window.start, tz).date()
            if start_day < earliest:
                self.ctx.warn(
                    f"huawei-maas: the API keeps {RETENTION_DAYS} days; fetching from {earliest} instead of "
                    f"{start_day}"
                )
                start_day = earliest
        elif previous is not None:
            start_day = previous - timedelta(days=OVERLAP_DAYS)
            if previous + timedelta(days=1) < earliest:
                self.ctx.warn(
                    f"huawei-maas: last fetched through {previous}; the days up to "
                    f"{earliest - timedelta(days=1)} are past the API's {RETENTION_DAYS}-day retention and "
                    "are missing (fetch at least monthly to keep a complete history)"
                )
            start_day = max(start_day, earliest)
        else:
            start_day = earliest
        days = []
        day = start_day
        while day <= end_day:
            days.append(day)
            day += timedelta(days=1)
        # Only move the cursor forward over a range that joins what was fetched before (or starts at
        # the retention limit, when the hole cannot be filled any more); with no history yet, only a
        # range that starts at the retention limit counts, so a short first run does not skip the backfill.
        joins = earliest if previous is None else max(previous + timedelta(days=1), earliest)
        can_advance = start_day <= joins
        return _Plan(days, can_advance)

    # -- records -------------------------------------------------------------------------------
    def _record(
        self,
        day: date,
        start: datetime,
        end: datetime,
        service_type: int,
        infer_type: str,
        project_id: str,
        data: Mapping[str, Any],
        partial: bool,
        tz_label: str,
    ) -> UsageRecord:
        details: dict[str, Any] = {
            "service_type": service_type,
            "service": ALLOWED_SERVICE_TYPES[service_type],
            "infer_type": infer_type,
            "region": self.config.region,
            "timezone": tz_label,
        }
        if partial:
            details["partial"] = True  # today so far; replaced by the next run
        if infer_type == "batch":
            for name, label in (
                ("total_completion_tasks", "completion_tasks"),
                ("total_infer_count", "infer_count"),
            ):
                count = as_count(data, name)
                if count is not None:
                    details[label] = count
        return UsageRecord(
            key=f"{day.isoformat()}/{service_type}/{infer_type}",
            start=start.astimezone(UTC),
            end=end.astimezone(UTC),
            provider=self.provider,
            model=None,
            account=project_id,
            requests=as_count(data, "total_request_count"),
            errors=as_count(data, "total_error_count"),
            input_tokens=thousands(data, "total_prompt_token"),
            output_tokens=thousands(data, "total_completion_token"),
            total_tokens=thousands(data, "total_token"),
            details=details,
        )

    # -- API calls -----------------------------------------------------------------------------
    def _statistics(
        self,
        project_id: str,
        start: datetime,
        end: datetime,
        service_type: int,
        infer_type: str,
        tz_label: str,
    ) -> Mapping[str, Any]:
        body = {
            "service_type": service_type,
            "start_time": epoch_ms(start),
            "end_time": epoch_ms(end),
            "infer_type": infer_type,
            "timezone": tz_label,
        }
        data = self._call(
            "POST",
            self.config.endpoint,
            STATISTICS_PATH.format(project_id=project_id),
            body=json.dumps(body, separators=(",", ":")).encode(),
        )
        if isinstance(data, Mapping) and "total_request_count" not in data:
            for wrapper in ("data", "result"):  # tolerate an enveloped answer
                if isinstance(data.get(wrapper), Mapping):
                    data = data[wrapper]
                    break
        if not isinstance(data, Mapping) or not any(str(k).startswith("total_") for k in data):
            keys = sorted(data)[:8] if isinstance(data, Mapping) else type(data).__name__
            raise ProviderResponseError(
                f"huawei-maas: ShowStatistics answered without usage totals (got {keys})", source=SOURCE_ID
            )
        return data

    def _lookup_project_id(self) -> str:
        region = self.config.region
        self.ctx.progress.describe(f"huawei-maas: looking up the project id of {region}")
        data = self._call("GET", self.config.iam_endpoint, "/v3/projects", query=[("name", region)])
        projects = data.get("projects") if isinstance(data, Mapping) else None
        if not isinstance(projects, list):
            raise ProviderResponseError(
                "huawei-maas: IAM project list has no 'projects' array", source=SOURCE_ID
            )
        matches = [
            p
            for p in projects
            if isinstance(p, Mapping) and isinstance(p.get("id"), str) and p.get("name", region) == region
        ]
        if not matches:
            raise ProviderResponseError(
                f"huawei-maas: no IAM project named {region!r} for these credentials; check region in "
                "[sources.huawei-maas] (cn-southwest-2 or ap-southeast-1) or set project_id",
                source=SOURCE_ID,
            )
        if len(matches) > 1:
            ids = ", ".join(str(p["id"]) for p in matches[:5])
            raise ProviderResponseError(
                f"huawei-maas: {len(matches)} IAM projects match {region!r} ({ids}); set project_id in "
                "[sources.huawei-maas] to the one to use",
                source=SOURCE_ID,
            )
        project_id = matches[0]["id"]
        if not PROJECT_ID.match(project_id):
            raise ProviderResponseError(
                f"huawei-maas: IAM returned an odd project id {project_id!r}", source=SOURCE_ID
            )
        return project_id

    def _pace(self) -> None:
        """Keep under the per-user limit of 200 requests per minute (rolling window)."""
        now = self.clock.monotonic()
        while self._calls and now - self._calls[0] >= self.pace_period:
            self._calls.popleft()
        if len(self._calls) >= self.pace_limit:
            wait = self.pace_period - (now - self._calls[0])
            if wait > 0:
                self.ctx.progress.describe(f"huawei-maas: pacing under the API's rate limit, {wait:.0f}s")
                self.clock.sleep(wait)
            now = self.clock.monotonic()
            while self._calls and now - self._calls[0] >= self.pace_period:
                self._calls.popleft()
        self._calls.append(now)

    def _retry_policy(self) -> RetryPolicy:
        """The host's retry path, tuned to the API: 60 s after a 429 (its advice), a Retry-After
        cut to 120 s, plain doubling backoff, every 5xx, and each try within the request deadline."""
        from tokenmeter import RetryPolicy

        return RetryPolicy(
            attempts=self.retries + 1,
            backoff=self.backoff,
            max_backoff=self.backoff * 2**self.retries,
            max_wait=self.max_rate_limit_wait,
            cap_wait=True,
            rate_limit_wait=self.rate_limit_wait,
            jitter=False,
            statuses=frozenset({429, *range(500, 600)}),
            attempt_deadline=self.ctx.request_deadline,
        )

    def _call(
        self,
        method: str,
        endpoint: Endpoint,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> Any:
        """Send one signed call through the host's retry path and return the parsed JSON answer."""
        from tokenmeter import send

        http = self.ctx.http
        # the whole call may also wait out the 429s the API asks us to (its deadline covers waits)
        deadline = self.ctx.request_deadline + self.retries * self.max_rate_limit_wait
        request = http.build_request(
            method,
            f"{endpoint.scheme}://{endpoint.netloc}{endpoint.base_path}{path}",
            params=list(query),
            content=body,
            extensions={"deadline": deadline},
        )
        previous = self.ctx.progress.description
        try:
            # Never follow a redirect: httpx would forward X-Security-Token to the other host.
            response = send(http, request, source=SOURCE_ID, retry=self._retry_policy(), auth=self._auth,
                            sleep=self.clock.sleep, on_retry=self._on_retry, follow_redirects=False)
        finally:
            if request.extensions.get("attempts", 1) > 1:
                self.ctx.progress.describe(previous)
        status = response.status_code
        self.ctx.log.debug("%s %s -> HTTP %d", method, path, status)
        tries = request.extensions.get("attempts", 1)
        if status == 429:
            from tokenmeter import parse_retry_after

            after = parse_retry_after(response.headers.get("Retry-After"))
            raise ProviderRateLimited(
                f"huawei-maas: still rate limited (HTTP 429) after {tries - 1} retries; "
                "the API allows 200 requests per minute per user, try again later",
                retry_after=after if after is not None else self.rate_limit_wait,
                source=SOURCE_ID,
            )
        if status >= 500:
            detail = error_detail(response, self._creds)
            raise ProviderUnavailable(
                f"huawei-maas: HTTP {status} from {endpoint.host}{detail}; try again later",
                source=SOURCE_ID,
            )
        if status >= 300:
            raise_for(response, endpoint, self._creds)
        return read_json(response, endpoint)

    def _on_retry(self, event: RetryEvent) -> None:
        """Say on the progress line (and in the log) why the source is waiting."""
        host = event.request.url.netloc.decode("ascii")
        if event.status == 429:
            why = f"rate limited (HTTP 429), retry {event.attempt} of {event.attempts - 1}"
        elif event.status is not None:
            why = f"HTTP {event.status} from {host}"
        else:
            why = f"{host} unreachable ({type(event.error).__name__})"
        self.ctx.progress.describe(f"huawei-maas: {why}; waiting {event.wait:.0f}s")
        self.ctx.log.info("huawei-maas: %s; waiting %.0fs", why, event.wait)
