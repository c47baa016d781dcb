"""Budgets: parse ``[budgets.<name>]``, find the current window, and turn usage into a level.

Pure and database-free. The host sums the usage that matches a budget (``Budget.measure`` says
which figure: ``cost`` in ``Budget.currency``, ``tokens`` or ``requests``; ``Budget.matches`` /
``Budget.filters`` say which rows) over ``budget_window(...)`` and calls ``evaluate``. Provider-side
quotas (``QuotaSnapshot``) become statuses through ``quota_statuses``. ``exit_code`` maps the
statuses to 0 ok / 1 warning / 2 critical, highest level wins.

Config::

    [budgets.test]                # 1M tokens of testing per month, any provider
    limit = 1_000_000
    unit = "tokens"               # or: currency = "USD" for money
    period = "month"              # day | week | month | quarter | year
    warn = 0.5                    # defaults 0.5 and 0.8; reaching a threshold counts (50 % is warning)
    critical = 0.8

    [budgets.welcome-credit]      # a one-time credit: a fixed window instead of a period
    limit = 70_000_000
    unit = "tokens"
    from = 2026-02-01
    to = 2026-12-31               # optional; open-ended when missing
    provider = "acme"             # filters: case-insensitive substrings, like --provider/--model
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import ConfigError

__all__ = [
    "LEVELS",
    "PERIODS",
    "SCHEMA_VERSION",
    "Budget",
    "BudgetStatus",
    "budget_window",
    "evaluate",
    "exit_code",
    "format_amount",
    "parse_budgets",
    "period_key",
    "quota_statuses",
]

# the version of `tokenmeter budget --json` (schemas/budget.schema.json): bumped only when a key is
# removed or changes meaning; new keys may appear within a version
SCHEMA_VERSION = 1
PERIODS = ("day", "week", "month", "quarter", "year")
UNITS = ("tokens", "requests")
LEVELS = ("ok", "warning", "critical")
DEFAULT_WARN = Decimal("0.5")
DEFAULT_CRITICAL = Decimal("0.8")
_KEYS = (
    "limit", "currency", "unit", "period", "from", "to", "provider", "source", "model", "warn", "critical",
)
_CURRENCY = re.compile(r"^[A-Z]{3}$")


@dataclass(frozen=True, slots=True)
class Budget:
    """One ``[budgets.<name>]`` table. Exactly one of ``currency`` (money) and ``unit`` is set;
    either ``period`` is set or ``start`` (config key ``from``, with optional ``end`` = ``to``)."""

    name: str
    limit: Decimal
    currency: str | None = None
    unit: str | None = None
    period: str | None = "month"
    start: date | None = None
    end: date | None = None
    provider: str | None = None
    source: str | None = None
    model: str | None = None
    warn: Decimal = DEFAULT_WARN
    critical: Decimal = DEFAULT_CRITICAL

    @property
    def measure(self) -> str:
        """Which usage figure the budget counts: ``cost``, ``tokens`` or ``requests``."""
        return "cost" if self.currency else str(self.unit)

    @property
    def unit_label(self) -> str:
        """The currency code or ``tokens``/``requests``."""
        return self.currency or str(self.unit)

    @property
    def filters(self) -> dict[str, str]:
        """The set filters, as ``{"provider": ..., "source": ..., "model": ...}`` (substrings)."""
        return {k: v for k in ("provider", "source", "model") if (v := getattr(self, k))}

    def matches(
        self, provider: str | None = None, source: str | None = None, model: str | None = None
    ) -> bool:
        """True when a usage row with these values counts towards the budget."""
        given = {"provider": provider, "source": source, "model": model}
        return all(given[k] is not None and v.lower() in given[k].lower() for k, v in self.filters.items())


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """How much of a budget (or provider quota) is used, and the resulting level.

    ``percent`` is rounded down to 0.01 so it never shows 50.00 while the level is still ok;
    the level itself is decided on the exact ratio.
    """

    name: str
    used: Decimal
    limit: Decimal
    remaining: Decimal
    percent: Decimal
    level: str
    unit: str = "tokens"
    kind: str = "budget"  # "budget" (from config) or "quota" (provider-side snapshot)
    period_from: date | None = None
    period_to: date | None = None
    period_key: str = ""
    warn: Decimal = DEFAULT_WARN
    critical: Decimal = DEFAULT_CRITICAL
    provider: str | None = None
    resets_at: datetime | None = None

    @property
    def is_money(self) -> bool:
        return bool(_CURRENCY.match(self.unit))

    @property
    def exit_code(self) -> int:
        return LEVELS.index(self.level)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: Decimals as plain decimal strings (as in reports), dates ISO."""
        return {
            "name": self.name,
            "kind": self.kind,
            "provider": self.provider,
            "used": plain_decimal(self.used),
            "limit": plain_decimal(self.limit),
            "remaining": plain_decimal(self.remaining),
            "percent": str(self.percent),
            "level": self.level,
            "unit": self.unit,
            "warn": str(self.warn),
            "critical": str(self.critical),
            "period": {
                "from": self.period_from.isoformat() if self.period_from else None,
                "to": self.period_to.isoformat() if self.period_to else None,
                "key": self.period_key,
            },
            "resets_at": self.resets_at.isoformat() if self.resets_at else None,
        }


def plain_decimal(value: Decimal) -> str:
    """``1.9``, ``190000``, ``0.0000005``: never exponent notation (``str`` gives ``1.9E+5``, ``5E-7``)."""
    return format(value.normalize(), "f") if value else "0"


# -- parsing -------------------------------------------------------------------------------------


def _number(where: str, value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    try:
        number = Decimal(str(value).replace("_", "")) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if not number.is_finite():
        raise ConfigError(f"{where}: expected a finite number, got {value!r}")
    return number


def _date(where: str, value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ConfigError(f"{where}: expected a date such as 2026-02-01, got {value!r}")


def _text(where: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: expected a non-empty string, got {value!r}")
    return value.strip()


def _fraction(where: str, value: Any) -> Decimal:
    number = _number(where, value)
    if not 0 < number <= 1:
        raise ConfigError(f"{where}: must be between 0 and 1 (a fraction: 0.5 means 50 %), got {value!r}")
    return number


def parse_budget(name: str, table: Mapping[str, Any]) -> Budget:
    """Parse one ``[budgets.<name>]`` table; ``ConfigError`` names the offending key."""
    at = f"budgets.{name}"
    if not isinstance(table, Mapping):
        raise ConfigError(f"{at}: expected a table ([budgets.{name}]), got {type(table).__name__}")
    for key in table:
        if key not in _KEYS:
            raise ConfigError(f"{at}.{key}: unknown key (known: {', '.join(_KEYS)})")
    if "limit" not in table:
        raise ConfigError(f"{at}.limit: missing; set the budget's size, e.g. limit = 1_000_000")
    limit = _number(f"{at}.limit", table["limit"])
    if limit <= 0:
        raise ConfigError(f"{at}.limit: must be greater than 0, got {table['limit']!r}")

    currency = unit = None
    if "currency" in table and "unit" in table:
        raise ConfigError(f"{at}.unit: set either currency (money) or unit (tokens/requests), not both")
    if "currency" in table:
        currency = _text(f"{at}.currency", table["currency"]).upper()
        if not _CURRENCY.match(currency):
            raise ConfigError(
                f"{at}.currency: expected an ISO 4217 code such as \"USD\", got {table['currency']!r}"
            )
    elif "unit" in table:
        unit = _text(f"{at}.unit", table["unit"]).lower()
        if unit not in UNITS:
            hint = ' (for money use currency = "..." instead)' if _CURRENCY.match(unit.upper()) else ""
            raise ConfigError(f"{at}.unit: must be \"tokens\" or \"requests\", got {table['unit']!r}{hint}")
    else:
        raise ConfigError(f"{at}.unit: missing; set unit = \"tokens\" or \"requests\", or currency = \"USD\"")

    period: str | None = None
    start = end = None
    if "period" in table and ("from" in table or "to" in table):
        raise ConfigError(f"{at}.period: set either period or a fixed from/to window, not both")
    if "from" in table or "to" in table:
        if "from" not in table:
            raise ConfigError(f"{at}.from: missing; a fixed window needs a start date (from = 2026-02-01)")
        start = _date(f"{at}.from", table["from"])
        if "to" in table:
            end = _date(f"{at}.to", table["to"])
            if end < start:
                raise ConfigError(f"{at}.to: must not be before from ({start.isoformat()})")
    else:
        period = _text(f"{at}.period", table.get("period", "month")).lower()
        if period not in PERIODS:
            raise ConfigError(f"{at}.period: must be one of {', '.join(PERIODS)}, got {table['period']!r}")

    warn = _fraction(f"{at}.warn", table["warn"]) if "warn" in table else DEFAULT_WARN
    critical = _fraction(f"{at}.critical", table["critical"]) if "critical" in table else DEFAULT_CRITICAL
    if warn >= critical:
        raise ConfigError(f"{at}.critical: must be greater than warn ({warn}), got {critical}")

    filters = {k: _text(f"{at}.{k}", table[k]) for k in ("provider", "source", "model") if k in table}
    return Budget(name=name, limit=limit, currency=currency, unit=unit, period=period, start=start, end=end,
                  warn=warn, critical=critical, **filters)


def parse_budgets(table: Mapping[str, Any] | None) -> list[Budget]:
    """Parse the whole ``[budgets]`` table (``{name: {...}}``), in config order."""
    if not table:
        return []
    if not isinstance(table, Mapping):
        raise ConfigError("budgets: expected a table of [budgets.<name>] tables")
    return [parse_budget(str(name), sub) for name, sub in table.items()]


# -- windows -------------------------------------------------------------------------------------


def _zone(tz: tzinfo | str | None, now: datetime) -> tzinfo:
    if tz is None:
        return now.tzinfo or UTC
    if isinstance(tz, str):
        try:
            return ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"timezone: unknown zone {tz!r}") from None
    return tz


def _local_today(now: datetime, tz: tzinfo | str | None) -> date:
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return now.astimezone(_zone(tz, now)).date()


def _month_end(year: int, month: int) -> date:
    first_next = date(year + month // 12, month % 12 + 1, 1)
    return first_next - timedelta(days=1)


def budget_window(budget: Budget, now: datetime, tz: tzinfo | str | None = None) -> tuple[date, date]:
    """The inclusive (first, last) calendar days of the budget's current window in zone ``tz``.

    Weeks are ISO weeks (Monday to Sunday). A fixed window without ``to`` runs until today.
    """
    today = _local_today(now, tz)
    if budget.period is None:
        start = budget.start or today
        return start, budget.end or max(today, start)
    if budget.period == "day":
        return today, today
    if budget.period == "week":
        monday = today - timedelta(days=today.weekday())
        return monday, monday + timedelta(days=6)
    if budget.period == "month":
        return today.replace(day=1), _month_end(today.year, today.month)
    if budget.period == "quarter":
        first = 3 * ((today.month - 1) // 3) + 1
        return date(today.year, first, 1), _month_end(today.year, first + 2)
    return date(today.year, 1, 1), date(today.year, 12, 31)


def period_key(budget: Budget, window: tuple[date, date] | None) -> str:
    """A stable id of the budget's current window: alerts are sent once per level per key.

    ``2026-03-01..2026-03-31`` for periods; a fixed window uses its configured ``from..to``
    (``2026-02-01..`` when open-ended) so it does not change from day to day.
    """
    if budget.period is None:
        start, end = (d.isoformat() if d else "" for d in (budget.start, budget.end))
        return f"{start}..{end}"
    if window is None:
        raise ValueError(f"budget {budget.name!r} has a period: pass its window (budget_window)")
    return f"{window[0].isoformat()}..{window[1].isoformat()}"


# -- levels --------------------------------------------------------------------------------------


def _level(used: Decimal, limit: Decimal, warn: Decimal, critical: Decimal) -> tuple[Decimal, str]:
    if limit <= 0:
        # nothing was ever available (a zero quota): as exhausted as it gets
        return Decimal(100), "critical"
    ratio = used / limit
    percent = (ratio * 100).quantize(Decimal("0.01"), rounding=ROUND_FLOOR)
    if ratio >= critical:
        return percent, "critical"
    if ratio >= warn:
        return percent, "warning"
    return percent, "ok"


def evaluate(
    budget: Budget,
    used: Decimal | int | float,
    *,
    window: tuple[date, date] | None = None,
) -> BudgetStatus:
    """The status of ``budget`` given the usage summed over its window (pass the window to label it)."""
    used = used if isinstance(used, Decimal) else Decimal(str(used))
    percent, level = _level(used, budget.limit, budget.warn, budget.critical)
    return BudgetStatus(
        name=budget.name,
        used=used,
        limit=budget.limit,
        remaining=budget.limit - used,
        percent=percent,
        level=level,
        unit=budget.unit_label,
        kind="budget",
        period_from=window[0] if window else budget.start,
        period_to=window[1] if window else budget.end,
        period_key=period_key(budget, window) if window or budget.period is None else "",
        warn=budget.warn,
        critical=budget.critical,
        provider=budget.provider,
    )


def _get(snapshot: Any, name: str) -> Any:
    if isinstance(snapshot, Mapping):
        return snapshot.get(name)
    return getattr(snapshot, name, None)


def _optional_decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _aware(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def quota_statuses(snapshots: Iterable[Any], now: datetime | None = None) -> list[BudgetStatus]:
    """Turn quota snapshots (``QuotaSnapshot`` objects or dicts with the same keys) into statuses.

    The limit is ``total``, else ``used + remaining``; used is ``used``, else ``total - remaining``.
    Snapshots where neither can be worked out (only a balance) are skipped: no percentage exists.
    Default thresholds apply. The name is ``provider:name`` (``provider:account:name`` with an
    account); the period key is the reset hour (UTC), else the total, so a reset or a top-up
    allows alerts again. With ``now``, a snapshot whose ``resets_at`` has passed is skipped: its
    figures describe a window that is over (until the next fetch observes the new one).
    """
    now = _aware(now)
    statuses = []
    for snap in snapshots:
        used, remaining, total = (_optional_decimal(_get(snap, k)) for k in ("used", "remaining", "total"))
        limit = total
        if limit is None and used is not None and remaining is not None:
            limit = used + remaining
        if used is None and limit is not None and remaining is not None:
            used = limit - remaining
        if limit is None or used is None:
            continue
        provider, account, name = _get(snap, "provider"), _get(snap, "account"), _get(snap, "name")
        resets_at = _aware(_get(snap, "resets_at"))
        if now is not None and resets_at is not None and resets_at <= now:
            continue
        key = resets_at.astimezone(UTC).strftime("resets %Y-%m-%dT%H") if resets_at else f"total {limit}"
        percent, level = _level(used, limit, DEFAULT_WARN, DEFAULT_CRITICAL)
        statuses.append(
            BudgetStatus(
                name=":".join(str(p) for p in (provider, account, name) if p),
                used=used,
                limit=limit,
                remaining=remaining if remaining is not None else limit - used,
                percent=percent,
                level=level,
                unit=str(_get(snap, "unit") or ""),
                kind="quota",
                period_to=resets_at.date() if resets_at else None,
                period_key=key,
                provider=provider,
                resets_at=resets_at,
            )
        )
    return statuses


def exit_code(statuses: Iterable[BudgetStatus]) -> int:
    """0 when every status is ok, 1 when the worst is a warning, 2 when any is critical."""
    return max((LEVELS.index(s.level) for s in statuses), default=0)


def format_amount(value: Decimal | int | float | str | None, unit: str | None) -> str:
    """``812,000 tokens``, ``12.34 USD``, ``0.007726 USD`` (small money keeps 6 decimals)."""
    if value is None:
        return "-"
    number = Decimal(str(value))
    if unit and _CURRENCY.match(unit):
        if abs(number) >= 1 or number == 0:
            text = f"{number.quantize(Decimal('0.01')):,}"
        else:
            text = f"{number.quantize(Decimal('0.000001')).normalize():f}"
        return f"{text} {unit}"
    if number == number.to_integral_value():
        text = f"{int(number):,}"
    else:
        text = f"{number:,.2f}"
    return f"{text} {unit}" if unit else text
