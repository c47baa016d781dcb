"""The ``openrouter`` source (provider-apis.md §B).

Two modes, chosen by which credential is set:

- **management key** (``OPENROUTER_MANAGEMENT_KEY``): ``GET /activity?date=D`` for each day that
  is not final yet, one billed record per (date, model, endpoint); ``GET /credits`` and the paged
  ``GET /keys`` become quota snapshots.
- **ordinary key** only (``OPENROUTER_API_KEY``): ``GET /key`` becomes a ``key-limit`` snapshot
  and a billed record of today's spend for that key (no tokens, no model).

``/activity`` covers only the last 30 completed UTC days and OpenRouter may still settle the most
recent ones, so the cursor remembers the last day fetched after it was final (``final_through``)
and every run re-fetches the days after it; older rows stay in the database untouched.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from tokenmeter import (
    Cursor,
    NeedsCredentials,
    ProviderAuthError,
    ProviderResponseError,
    QuotaSnapshot,
    Source,
    UsageRecord,
    Window,
    check_base_url,
    parse_day,
)

from .cursor import cursor_state, last_final_day
from .figures import (
    add_rows,
    as_count,
    as_money,
    key_hash,
    limit_figures,
    midnight,
    next_reset,
    usage_details,
)

__all__ = ["OpenRouterSource"]

DEFAULT_BASE_URL = "https://openrouter.ai/api/v1"
MANAGEMENT_KEYS_URL = "https://openrouter.ai/settings/management-keys"
HISTORY_DAYS = 30  # /activity: the last 30 completed UTC days
SETTLE_DAYS = 2  # the most recent completed days may still change; re-fetch them every run
KEYS_PAGE = 100  # /keys pages hold 100 keys (management-keys guide)
MAX_KEY_PAGES = 1000  # a server that ignores `offset` must not keep us looping
NO_MANAGEMENT_NOTE = "per-model detail needs a management key"
# A full OpenRouter key; a "label" that looks like one is never used as a name.
_FULL_KEY = re.compile(r"sk-or-[A-Za-z0-9-]*[A-Za-z0-9]{20,}")


class OpenRouterSource(Source):
    """OpenRouter: billed daily usage per model and endpoint, key spend and credits."""

    id = "openrouter"
    provider = "openrouter"
    kind = "ledger"
    description = "OpenRouter activity (per day, model, endpoint; billed USD), credits and key limits"

    @dataclass
    class Settings:
        base_url: str = field(
            default=DEFAULT_BASE_URL,
            metadata={"help": "OpenRouter API base URL (https; plain http only for localhost/127.0.0.1)"},
        )
        management_key_env: str = field(
            default="OPENROUTER_MANAGEMENT_KEY",
            metadata={"help": "env var holding a management key: per-model daily usage, credits, keys"},
        )
        api_key_env: str = field(
            default="OPENROUTER_API_KEY",
            metadata={"help": "env var holding an ordinary key: used only when no management key is set "
                              "(key limit and today's key spend, no per-model detail)"},
        )
        group_by_workspace: bool = field(
            default=False,
            metadata={"help": "split /activity rows per workspace (group_by=workspace); adds the "
                              "workspace to each row's key"},
        )

    # -- setup -------------------------------------------------------------------------------
    def _base_url(self) -> str:
        return check_base_url(self.settings.base_url, f"{self.id}: base_url")

    def available(self) -> str | None:
        s = self.settings
        if self.ctx.secret(s.management_key_env) or self.ctx.secret(s.api_key_env):
            return None
        return f"set {s.management_key_env} (per-model daily usage) or {s.api_key_env} (key spend only)"

    def fetch(self, window: Window, cursor: Mapping[str, Any]) -> Iterator[Any]:
        s = self.settings
        self._base = self._base_url()
        self._keys: set[str] = set()
        management = self.ctx.secret(s.management_key_env)
        if management:
            self._keys.add(management)
            yield from self._fetch_management(management, s.management_key_env, window, cursor)
            return
        api_key = self.ctx.secret(s.api_key_env)
        if api_key:
            self._keys.add(api_key)
            yield from self._fetch_key(api_key, window, cursor)
            return
        raise NeedsCredentials(
            f"{self.id}: set {s.management_key_env} (a management key, for per-model daily usage, credits "
            f"and keys; create one at {MANAGEMENT_KEYS_URL}) or {s.api_key_env} (an ordinary key, for "
            "its limit and today's spend only)",
            source=self.id,
        )

    # -- HTTP --------------------------------------------------------------------------------
    def _get(self, path: str, key: str, env: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET ``path`` and return the ``data`` member; the host's transport retries 429/5xx."""
        from tokenmeter import send  # the HTTP layer loads when a fetch needs it, not with the plugin

        client = self.ctx.http
        request = client.build_request(
            "GET",
            f"{self._base}{path}",
            params=dict(params or {}),
            headers={"Authorization": f"Bearer {key}", "Accept": "application/json"},
        )
        response = send(client, request, source=self.id)
        if response.status_code >= 400:
            self._raise(response, path, env)
        try:
            body = response.json()
        except ValueError:
            raise ProviderResponseError(
                f"{self.id}: {path} answered HTTP {response.status_code} with a body that is not JSON",
                source=self.id,
            ) from None
        if not isinstance(body, dict) or "data" not in body:
            raise ProviderResponseError(f"{self.id}: {path} answered without a 'data' member", source=self.id)
        return body["data"]

    def _raise(self, response: Any, path: str, env: str) -> None:
        """Map OpenRouter's ``{"error": {"code", "message", "metadata"}}`` to tokenmeter errors."""
        message = ""
        try:
            body = response.json()
            error = body.get("error") if isinstance(body, dict) else None
            if isinstance(error, dict) and isinstance(error.get("message"), str):
                message = " ".join(error["message"].split())[:200]  # one line, whatever the API sent
        except ValueError:
            pass
        for key in self._keys:  # never echo a key, even if a proxy put it in an error text
            message = message.replace(key, "***")
        status = response.status_code
        said = f" ({message})" if message else ""
        if status == 401:
            raise ProviderAuthError(
                f"{self.id}: key rejected by OpenRouter (HTTP 401{': ' + message if message else ''}): "
                f"check {env}",
                source=self.id,
            )
        if status == 403 and "management key" in message.lower():
            raise ProviderAuthError(
                f"{self.id}: {path} needs a management key and {env} is not one{said}: create one at "
                f"{MANAGEMENT_KEYS_URL} and set {self.settings.management_key_env}",
                source=self.id,
            )
        if status == 403:
            raise ProviderAuthError(
                f"{self.id}: HTTP 403 from OpenRouter on {path}{said}: check the permissions of {env}",
                source=self.id,
            )
        from tokenmeter import raise_for_status

        raise_for_status(response, source=self.id)  # 429 (after retries), 5xx, other 4xx

    # -- management key ----------------------------------------------------------------------
    def _fetch_management(
        self, key: str, env: str, window: Window, cursor: Mapping[str, Any]
    ) -> Iterator[Any]:
        now = self.ctx.now().astimezone(UTC)
        today = now.date()
        oldest = today - timedelta(days=HISTORY_DAYS)
        newest = today - timedelta(days=1)
        final_limit = newest - timedelta(days=SETTLE_DAYS)
        base = parse_day(cursor.get("final_through"))

        if window.start is not None:  # an explicit --from/--to range
            first = max(oldest, window.start.astimezone(UTC).date())
            last = min(newest, (window.end - timedelta(microseconds=1)).astimezone(UTC).date())
            if window.start.astimezone(UTC).date() < oldest:
                self.ctx.warn(
                    f"{self.id}: OpenRouter keeps /activity for the last {HISTORY_DAYS} completed UTC days "
                    f"only; days before {oldest} cannot be fetched (rows already stored are kept)"
                )
        else:
            first = oldest if base is None else max(oldest, base + timedelta(days=1))
            last = newest
            if base is not None and base + timedelta(days=1) < oldest:
                lost_from, lost_to = base + timedelta(days=1), oldest - timedelta(days=1)
                self.ctx.warn(
                    f"{self.id}: no fetch since {base}; OpenRouter no longer serves {lost_from} "
                    f"to {lost_to} (it keeps {HISTORY_DAYS} days)"
                )
        days = [first + timedelta(days=i) for i in range((last - first).days + 1)]

        progress = self.ctx.progress
        progress.set_total(len(days) + 2)
        account = "management"
        fetched: set[date] = set()
        reasoning_warned = False
        # One call per day rather than one unparameterised call: /activity has no paging and an
        # undocumented row cap, so a busy 30-day window could come back truncated without notice;
        # per-day answers are small, and a checkpoint after each day lets a broken backfill resume.
        for day in days:
            progress.describe(f"activity {day}")
            params: dict[str, str] = {"date": day.isoformat()}
            if self.settings.group_by_workspace:
                params["group_by"] = "workspace"
            rows = self._get("/activity", key, env, params)
            if not isinstance(rows, list):
                raise ProviderResponseError(f"{self.id}: /activity 'data' is not a list", source=self.id)
            merged: dict[str, UsageRecord] = {}
            for index, row in enumerate(rows):
                try:
                    record, odd_reasoning = self._activity_record(row, account)
                except (ValueError, TypeError, KeyError) as exc:
                    self.ctx.skip(f"/activity?date={day} row {index}", str(exc))
                    continue
                if odd_reasoning and not reasoning_warned:
                    reasoning_warned = True
                    self.ctx.warn(
                        f"{self.id}: /activity reported more reasoning than completion tokens; kept "
                        "completion tokens as output and the reasoning count in details"
                    )
                previous = merged.get(record.key)
                merged[record.key] = record if previous is None else add_rows(previous, record)
            yield from merged.values()
            fetched.add(day)
            progress.advance()
            yield Cursor(cursor_state(cursor, last_final_day(base, fetched, oldest, final_limit)))

        progress.describe("credits")
        yield self._credits(key, env, account, now)
        progress.advance()
        progress.describe("keys")
        yield from self._key_list(key, env, account, now)
        progress.advance()
        yield Cursor(cursor_state(cursor, last_final_day(base, fetched, oldest, final_limit)))

    def _activity_record(self, row: Any, account: str) -> tuple[UsageRecord, bool]:
        if not isinstance(row, Mapping):
            raise ValueError("row is not an object")
        day = date.fromisoformat(str(row["date"])[:10])
        model = row.get("model") or None
        permaslug = row.get("model_permaslug") or model
        endpoint = row.get("endpoint_id") or row.get("provider_name")
        if not permaslug or not endpoint:
            raise ValueError("row has no model_permaslug/model or endpoint_id")
        key = f"{day.isoformat()}/{permaslug}/{endpoint}"
        workspace = row.get("workspace_id")
        if self.settings.group_by_workspace and workspace:
            key += f"/{workspace}"
        prompt = as_count(row.get("prompt_tokens"), "prompt_tokens")
        completion = as_count(row.get("completion_tokens"), "completion_tokens")
        reasoning = as_count(row.get("reasoning_tokens"), "reasoning_tokens")
        details: dict[str, Any] = {"endpoint_id": row.get("endpoint_id"), "model_permaslug": permaslug}
        if row.get("provider_name"):
            details["provider_name"] = row["provider_name"]
        byok = as_money(row.get("byok_usage_inference"), "byok_usage_inference")
        if byok is not None:
            details["byok_usage_inference"] = str(byok)  # USD paid to the BYOK provider, not to OpenRouter
        if workspace:
            details["workspace_id"] = workspace
        # OpenRouter counts reasoning as output (OpenAI convention: completion_tokens includes
        # completion_tokens_details.reasoning_tokens), so completion maps to the inclusive
        # output_tokens as is. A row contradicting that keeps its figure in details only.
        odd = reasoning is not None and completion is not None and reasoning > completion
        if odd:
            details["reported_reasoning_tokens"] = reasoning
            reasoning = None
        record = UsageRecord(
            key=key,
            start=midnight(day),
            end=midnight(day + timedelta(days=1)),
            provider=self.provider,
            model=model or permaslug,
            account=account,
            requests=as_count(row.get("requests"), "requests"),
            input_tokens=prompt,
            output_tokens=completion,
            reasoning_tokens=reasoning,
            cost=as_money(row.get("usage"), "usage"),
            currency="USD",
            cost_kind="billed",
            details=details,
        )
        if record.cost is None:
            record = record.replace(currency=None, cost_kind=None)
        return record, odd

    def _credits(self, key: str, env: str, account: str, now: datetime) -> QuotaSnapshot:
        data = self._get("/credits", key, env)
        try:
            total = as_money(data.get("total_credits"), "total_credits")
            used = as_money(data.get("total_usage"), "total_usage")
        except (AttributeError, ValueError) as exc:
            raise ProviderResponseError(
                f"{self.id}: /credits answer not understood: {exc}", source=self.id
            ) from None
        remaining = total - used if total is not None and used is not None else None
        return QuotaSnapshot(
            provider=self.provider,
            account=account,
            name="credits",
            unit="USD",
            observed_at=now,
            used=used,
            remaining=remaining,
            total=total,
        )

    def _key_list(self, key: str, env: str, account: str, now: datetime) -> Iterator[QuotaSnapshot]:
        seen: set[str] = set()
        offset = 0
        for _ in range(MAX_KEY_PAGES):
            page = self._get("/keys", key, env, {"offset": offset} if offset else None)
            if not isinstance(page, list):
                raise ProviderResponseError(f"{self.id}: /keys 'data' is not a list", source=self.id)
            new = 0
            for index, item in enumerate(page):
                try:
                    snapshot, ident = self._key_snapshot(item, account, now)
                except (ValueError, TypeError, AttributeError) as exc:
                    self.ctx.skip(f"/keys offset {offset} item {index}", str(exc))
                    continue
                if ident in seen:
                    continue
                seen.add(ident)
                new += 1
                yield snapshot
            if len(page) < KEYS_PAGE or new == 0:  # last page, or a server that ignores offset
                return
            offset += len(page)

    def _key_snapshot(self, item: Any, account: str, now: datetime) -> tuple[QuotaSnapshot, str]:
        if not isinstance(item, Mapping):
            raise ValueError("key entry is not an object")
        ident = str(item.get("hash") or "")
        label = item.get("label")
        if not isinstance(label, str) or not label or label in self._keys or _FULL_KEY.search(label):
            label = None
        if not ident and not label:
            raise ValueError("key entry has neither hash nor label")
        name = f"key/{label or ident[:12]}"
        used, remaining, total = limit_figures(item)
        details = usage_details(item)
        if ident:
            details["hash"] = ident
        if isinstance(item.get("name"), str) and item["name"]:
            details["key_name"] = item["name"]
        return (
            QuotaSnapshot(
                provider=self.provider,
                account=account,
                name=name,
                unit="USD",
                observed_at=now,
                used=used,
                remaining=remaining,
                total=total,
                resets_at=next_reset(item.get("limit_reset"), now) if total is not None else None,
                details=details,
            ),
            ident or name,
        )

    # -- ordinary key ------------------------------------------------------------------------
    def _fetch_key(self, key: str, window: Window, cursor: Mapping[str, Any]) -> Iterator[Any]:
        s = self.settings
        now = self.ctx.now().astimezone(UTC)
        today = now.date()
        self.ctx.progress.set_total(1)
        self.ctx.progress.describe("key")
        data = self._get("/key", key, s.api_key_env)
        if not isinstance(data, Mapping):
            raise ProviderResponseError(f"{self.id}: /key 'data' is not an object", source=self.id)
        if data.get("is_management_key") or data.get("is_provisioning_key"):
            # Someone put a management key in the ordinary variable: it can do everything, use it.
            self.ctx.warn(
                f"{self.id}: {s.api_key_env} holds a management key; using it for per-model usage "
                f"(set it as {s.management_key_env} instead)"
            )
            yield from self._fetch_management(key, s.api_key_env, window, cursor)
            return
        self.ctx.warn(
            f"{self.id}: only {s.api_key_env} is set, so tokenmeter records today's key spend without "
            f"tokens or models; {NO_MANAGEMENT_NOTE}: create one at {MANAGEMENT_KEYS_URL} and set "
            f"{s.management_key_env}"
        )
        account = f"key-{key_hash(key)[:8]}"
        try:
            used, remaining, total = limit_figures(data)
            daily = as_money(data.get("usage_daily"), "usage_daily")
        except ValueError as exc:
            raise ProviderResponseError(
                f"{self.id}: /key answer not understood: {exc}", source=self.id
            ) from None
        details = usage_details(data)
        label = data.get("label")
        if isinstance(label, str) and label and label != key and not _FULL_KEY.search(label):
            details["label"] = label
        yield QuotaSnapshot(
            provider=self.provider,
            account=account,
            name="key-limit",
            unit="USD",
            observed_at=now,
            used=used,
            remaining=remaining,
            total=total,
            resets_at=next_reset(data.get("limit_reset"), now) if total is not None else None,
            details=details,
        )
        if daily is not None:
            record_details: dict[str, Any] = {"note": NO_MANAGEMENT_NOTE, "observed_at": now.isoformat()}
            if "byok_usage_daily" in details:
                record_details["byok_usage_daily"] = details["byok_usage_daily"]
            # One row per UTC day, replaced by every run that day; the last run of a day leaves
            # that day's final observed figure.
            yield UsageRecord(
                key=f"{today.isoformat()}/key-daily",
                start=midnight(today),
                end=midnight(today + timedelta(days=1)),
                provider=self.provider,
                model=None,
                account=account,
                cost=daily,
                currency="USD",
                cost_kind="billed",
                details=record_details,
            )
        self.ctx.progress.advance()
        yield Cursor(dict(cursor))  # keep the management-key progress for when one is set again
