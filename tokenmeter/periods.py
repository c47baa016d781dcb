"""Period presets and calendar labels in a chosen time zone (DESIGN §6: dates inclusive, local)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

from .errors import ConfigError, UsageError

__all__ = ["PRESETS", "Period", "label", "local_day_bounds", "offset_segments", "resolve_period"]

PRESETS = ("today", "yesterday", "week", "month", "last-month", "quarter", "year", "all")


@dataclass(frozen=True)
class Period:
    """Inclusive local dates; None means open (``--all``)."""

    start: date | None
    end: date | None
    tz: tzinfo
    name: str = ""

    def bounds(self) -> tuple[int | None, int | None]:
        """Epoch seconds [start, end) of the period in its zone."""
        lo = local_day_bounds(self.start, self.tz)[0] if self.start else None
        hi = local_day_bounds(self.end, self.tz)[1] if self.end else None
        return lo, hi


def local_day_bounds(day: date, tz: tzinfo) -> tuple[int, int]:
    start = datetime.combine(day, time(0), tz)
    end = datetime.combine(day + timedelta(days=1), time(0), tz)
    return int(start.timestamp()), int(end.timestamp())


def _quarter_start(d: date) -> date:
    return date(d.year, 3 * ((d.month - 1) // 3) + 1, 1)


def _month_end(d: date) -> date:
    nxt = date(d.year + (d.month == 12), d.month % 12 + 1, 1)
    return nxt - timedelta(days=1)


def _representable(period: Period, where: str) -> Period:
    """The period, if its first and last day have instants in its zone (not 9999-12-31's end)."""
    try:
        period.bounds()
    except (OverflowError, ValueError):
        raise UsageError(f"{where}: dates must lie between {date.min + timedelta(days=1)} and "
                         f"{date.max - timedelta(days=1)}") from None
    return period


def _parse_date(value: str, where: str) -> date:
    """A command-line date: ``YYYY-MM-DD`` or ccusage's ``YYYYMMDD`` (nothing else ``fromisoformat``
    would take, such as ISO week dates); a bad one is a usage error."""
    text = value.strip()
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}|\d{8}", text):
            raise ValueError(text)
        digits = text.replace("-", "")
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        raise UsageError(f"{where}: expected a date as YYYY-MM-DD or YYYYMMDD, got {value!r}") from None


def resolve_period(
    now: datetime,
    tz: tzinfo,
    *,
    preset: str | None = None,
    date_from: str | date | None = None,
    date_to: str | date | None = None,
    days: int | None = None,
) -> Period:
    """Turn CLI period options into a ``Period``. ``--from/--to`` beat a preset; no option = today."""
    today = now.astimezone(tz).date()
    if date_from is not None or date_to is not None:
        lo = _parse_date(date_from, "--from") if isinstance(date_from, str) else date_from
        hi = _parse_date(date_to, "--to") if isinstance(date_to, str) else date_to
        if lo and hi and hi < lo:
            raise UsageError(f"--to {hi} is before --from {lo}")
        return _representable(Period(lo, hi if hi is not None else today, tz, "range"), "--from/--to")
    if days is not None:
        if days < 1:
            raise UsageError("--days must be at least 1")
        try:
            first = today - timedelta(days=days - 1)
        except OverflowError:
            raise UsageError(f"--days {days} reaches back before the year 1; use --all") from None
        return _representable(Period(first, today, tz, f"last {days} days"), f"--days {days}")
    preset = preset or "today"
    if preset == "today":
        return Period(today, today, tz, preset)
    if preset == "yesterday":
        y = today - timedelta(days=1)
        return Period(y, y, tz, preset)
    if preset == "week":
        monday = today - timedelta(days=today.weekday())
        return Period(monday, monday + timedelta(days=6), tz, preset)
    if preset == "month":
        first = today.replace(day=1)
        return Period(first, _month_end(first), tz, preset)
    if preset == "last-month":
        last = today.replace(day=1) - timedelta(days=1)
        return Period(last.replace(day=1), last, tz, preset)
    if preset == "quarter":
        first = _quarter_start(today)
        end = _month_end(date(first.year, first.month + 2, 1))
        return Period(first, end, tz, preset)
    if preset == "year":
        return Period(date(today.year, 1, 1), date(today.year, 12, 31), tz, preset)
    if preset == "all":
        return Period(None, None, tz, preset)
    m = re.fullmatch(r"(\d{4})-(\d{2})", preset)
    if m and 1 <= int(m.group(2)) <= 12:
        first = date(int(m.group(1)), int(m.group(2)), 1)
        return Period(first, _month_end(first), tz, preset)
    raise ConfigError(f"unknown period {preset!r}; use one of {', '.join(PRESETS)} or YYYY-MM")


def label(day: date, unit: str) -> str:
    """Calendar label of a local day: day YYYY-MM-DD, week = its ISO Monday, month YYYY-MM, quarter YYYY-Qn."""
    if unit == "day":
        return day.isoformat()
    if unit == "week":
        return (day - timedelta(days=day.weekday())).isoformat()
    if unit == "month":
        return f"{day.year:04d}-{day.month:02d}"
    if unit == "quarter":
        return f"{day.year:04d}-Q{(day.month - 1) // 3 + 1}"
    raise ValueError(unit)


def offset_segments(lo: int, hi: int, tz: tzinfo) -> list[tuple[int, int, int]]:
    """Split [lo, hi) epoch seconds into runs of constant UTC offset: (start, end, offset_seconds).

    Within a run, ``(ts + offset) // 86400`` is the local day number, so SQL can bucket by local
    day without per-row time zone conversion (DST-correct, fractional offsets included).
    """
    from datetime import UTC

    def off(ts: int) -> int:
        return int(datetime.fromtimestamp(ts, UTC).astimezone(tz).utcoffset().total_seconds())

    segments: list[tuple[int, int, int]] = []
    cur_start, cur_off = lo, off(lo)
    step = 86400
    t = lo
    while t < hi:
        nxt = min(t + step, hi)
        o = off(min(nxt, hi - 1))  # the last step too: a switch can fall inside it
        if o != cur_off:
            a, b = t, nxt  # the offset changes somewhere in (a, b]: find the first second with it
            while b - a > 1:
                mid = (a + b) // 2
                if off(mid) == cur_off:
                    a = mid
                else:
                    b = mid
            segments.append((cur_start, b, cur_off))
            cur_start, cur_off = b, o
        t = nxt
    segments.append((cur_start, hi, cur_off))
    return segments
