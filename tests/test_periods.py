"""Period presets against a fixed "now" and zone: boundaries, DST, fractional offsets."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from helpers_host import cli_json, make_source, rec, register

from tokenmeter import ConfigError
from tokenmeter.periods import Period, label, local_day_bounds, offset_segments, resolve_period
from tokenmeter.reports import usage_report
from tokenmeter.store import Store

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
TOKYO = ZoneInfo("Asia/Tokyo")
KOLKATA = ZoneInfo("Asia/Kolkata")
KATHMANDU = ZoneInfo("Asia/Kathmandu")
NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)  # a Sunday


def span(preset=None, now=NOW, tz=UTC, **kw):
    p = resolve_period(now, tz, preset=preset, **kw)
    return p.start, p.end


D = date


@pytest.mark.parametrize(
    "preset,expected",
    [
        (None, (D(2026, 3, 15), D(2026, 3, 15))),
        ("today", (D(2026, 3, 15), D(2026, 3, 15))),
        ("yesterday", (D(2026, 3, 14), D(2026, 3, 14))),
        ("week", (D(2026, 3, 9), D(2026, 3, 15))),  # ISO week: Monday..Sunday
        ("month", (D(2026, 3, 1), D(2026, 3, 31))),
        ("last-month", (D(2026, 2, 1), D(2026, 2, 28))),
        ("quarter", (D(2026, 1, 1), D(2026, 3, 31))),
        ("year", (D(2026, 1, 1), D(2026, 12, 31))),
        ("all", (None, None)),
        ("2026-02", (D(2026, 2, 1), D(2026, 2, 28))),
        ("2024-02", (D(2024, 2, 1), D(2024, 2, 29))),
        ("2025-12", (D(2025, 12, 1), D(2025, 12, 31))),
    ],
)
def test_presets_utc(preset, expected):
    assert span(preset) == expected


def test_days_and_ranges():
    assert span(days=1) == (D(2026, 3, 15), D(2026, 3, 15))
    assert span(days=7) == (D(2026, 3, 9), D(2026, 3, 15))
    assert span(days=30) == (D(2026, 2, 14), D(2026, 3, 15))
    assert span(date_from="2026-01-05", date_to="2026-01-10") == (D(2026, 1, 5), D(2026, 1, 10))
    assert span(date_from="2026-03-01") == (D(2026, 3, 1), D(2026, 3, 15))  # open end = today
    assert span(date_to="2026-03-01") == (None, D(2026, 3, 1))
    # --from/--to beat a preset
    assert span("year", date_from="2026-02-02", date_to="2026-02-03") == (D(2026, 2, 2), D(2026, 2, 3))


@pytest.mark.parametrize(
    "kw,message",
    [
        ({"days": 0}, "--days must be at least 1"),
        ({"date_from": "2026-03-10", "date_to": "2026-03-01"}, "before --from"),
        ({"date_from": "2026-13-01"}, "--from: expected a date as YYYY-MM-DD or YYYYMMDD, got '2026-13-01'"),
        ({"date_to": "yesterday-ish"}, "--to: expected a date"),
        ({"preset": "fortnight"}, "unknown period 'fortnight'"),
        ({"preset": "2026-13"}, "unknown period '2026-13'"),
    ],
)
def test_bad_periods(kw, message):
    with pytest.raises(ConfigError) as info:
        resolve_period(NOW, UTC, **kw)
    assert message in str(info.value)


def test_year_boundary_depends_on_zone():
    # 2026-01-01 00:30 in Tokyo is still 2025-12-31 in UTC
    now = datetime(2026, 1, 1, 0, 30, tzinfo=TOKYO)
    assert span("today", now, TOKYO) == (D(2026, 1, 1), D(2026, 1, 1))
    assert span("today", now, UTC) == (D(2025, 12, 31), D(2025, 12, 31))
    assert span("yesterday", now, TOKYO) == (D(2025, 12, 31), D(2025, 12, 31))
    assert span("month", now, TOKYO) == (D(2026, 1, 1), D(2026, 1, 31))
    assert span("month", now, UTC) == (D(2025, 12, 1), D(2025, 12, 31))
    assert span("last-month", now, TOKYO) == (D(2025, 12, 1), D(2025, 12, 31))
    assert span("last-month", now, UTC) == (D(2025, 11, 1), D(2025, 11, 30))
    assert span("quarter", now, TOKYO) == (D(2026, 1, 1), D(2026, 3, 31))
    assert span("quarter", now, UTC) == (D(2025, 10, 1), D(2025, 12, 31))
    assert span("year", now, TOKYO) == (D(2026, 1, 1), D(2026, 12, 31))
    assert span("year", now, UTC) == (D(2025, 1, 1), D(2025, 12, 31))
    # the ISO week spans the new year: Monday 2025-12-29 .. Sunday 2026-01-04
    assert span("week", now, TOKYO) == (D(2025, 12, 29), D(2026, 1, 4))
    assert span("week", now, UTC) == (D(2025, 12, 29), D(2026, 1, 4))
    # the Tokyo day starts at 15:00 UTC the day before
    lo, hi = resolve_period(now, TOKYO, preset="today").bounds()
    assert datetime.fromtimestamp(lo, UTC) == datetime(2025, 12, 31, 15, tzinfo=UTC)
    assert hi - lo == 86400


@pytest.mark.parametrize(
    "now,week,quarter",
    [
        ((2026, 3, 16, 0, 0), (D(2026, 3, 16), D(2026, 3, 22)), (D(2026, 1, 1), D(2026, 3, 31))),
        ((2026, 4, 1, 0, 0), (D(2026, 3, 30), D(2026, 4, 5)), (D(2026, 4, 1), D(2026, 6, 30))),
        ((2026, 9, 30, 23, 59), (D(2026, 9, 28), D(2026, 10, 4)), (D(2026, 7, 1), D(2026, 9, 30))),
        ((2026, 12, 31, 23, 59), (D(2026, 12, 28), D(2027, 1, 3)), (D(2026, 10, 1), D(2026, 12, 31))),
    ],
)
def test_week_and_quarter_boundaries(now, week, quarter):
    now = datetime(*now, tzinfo=UTC)
    assert span("week", now) == week
    assert span("quarter", now) == quarter


def test_last_month_in_january_and_march():
    assert span("last-month", datetime(2026, 1, 20, tzinfo=UTC)) == (D(2025, 12, 1), D(2025, 12, 31))
    assert span("last-month", datetime(2024, 3, 31, tzinfo=UTC)) == (D(2024, 2, 1), D(2024, 2, 29))


def test_dst_day_lengths():
    def hours(day, tz):
        lo, hi = local_day_bounds(day, tz)
        return (hi - lo) / 3600

    assert hours(D(2026, 3, 29), BERLIN) == 23
    assert hours(D(2026, 10, 25), BERLIN) == 25
    assert hours(D(2026, 3, 28), BERLIN) == 24
    assert hours(D(2026, 3, 8), NEW_YORK) == 23
    assert hours(D(2026, 11, 1), NEW_YORK) == 25
    lo, _ = local_day_bounds(D(2026, 3, 29), BERLIN)
    assert datetime.fromtimestamp(lo, UTC) == datetime(2026, 3, 28, 23, tzinfo=UTC)
    # the period of a DST day has the short length
    p = Period(D(2026, 3, 29), D(2026, 3, 29), BERLIN)
    lo, hi = p.bounds()
    assert hi - lo == 23 * 3600


def test_offset_segments_split_at_dst():
    lo, _ = local_day_bounds(D(2026, 3, 28), BERLIN)
    _, hi = local_day_bounds(D(2026, 3, 30), BERLIN)
    switch = int(datetime(2026, 3, 29, 1, 0, tzinfo=UTC).timestamp())
    assert offset_segments(lo, hi, BERLIN) == [(lo, switch, 3600), (switch, hi, 7200)]
    # autumn: back to +1 at 01:00 UTC on 2026-10-25
    lo, _ = local_day_bounds(D(2026, 10, 24), BERLIN)
    _, hi = local_day_bounds(D(2026, 10, 26), BERLIN)
    back = int(datetime(2026, 10, 25, 1, 0, tzinfo=UTC).timestamp())
    assert offset_segments(lo, hi, BERLIN) == [(lo, back, 7200), (back, hi, 3600)]
    # New York spring: 2026-03-08 07:00 UTC
    lo, _ = local_day_bounds(D(2026, 3, 1), NEW_YORK)
    _, hi = local_day_bounds(D(2026, 3, 31), NEW_YORK)
    ny = int(datetime(2026, 3, 8, 7, 0, tzinfo=UTC).timestamp())
    assert offset_segments(lo, hi, NEW_YORK) == [(lo, ny, -5 * 3600), (ny, hi, -4 * 3600)]
    # a whole year has exactly two switches in Berlin
    lo, _ = local_day_bounds(D(2026, 1, 1), BERLIN)
    _, hi = local_day_bounds(D(2026, 12, 31), BERLIN)
    assert [s[2] for s in offset_segments(lo, hi, BERLIN)] == [3600, 7200, 3600]


def test_fractional_offsets():
    for tz, offset in ((KOLKATA, 19800), (KATHMANDU, 20700)):
        lo, hi = local_day_bounds(D(2026, 3, 15), tz)
        assert hi - lo == 86400
        assert datetime.fromtimestamp(lo, UTC) == datetime(2026, 3, 15, tzinfo=tz).astimezone(UTC)
        assert offset_segments(lo, hi, tz) == [(lo, hi, offset)]
        # 2026-03-15 00:10 local is the 14th in UTC but the 15th locally
        now = datetime(2026, 3, 15, 0, 10, tzinfo=tz)
        assert span("today", now, tz) == (D(2026, 3, 15), D(2026, 3, 15))
        assert span("today", now, UTC) == (D(2026, 3, 14), D(2026, 3, 14))


def test_labels():
    assert label(D(2026, 3, 15), "day") == "2026-03-15"
    assert label(D(2026, 3, 15), "week") == "2026-03-09"
    assert label(D(2026, 1, 1), "week") == "2025-12-29"
    assert label(D(2026, 3, 15), "month") == "2026-03"
    assert label(D(2026, 3, 31), "quarter") == "2026-Q1"
    assert label(D(2026, 10, 1), "quarter") == "2026-Q4"


def _berlin_records():
    def at(y, mo, d, h, mi, tz=BERLIN):
        return datetime(y, mo, d, h, mi, tzinfo=tz)

    return [
        rec("a", start=at(2026, 3, 28, 23, 30), requests=1),  # CET, 22:30 UTC on the 28th
        rec("b", start=at(2026, 3, 29, 0, 30), requests=2),  # CET, 23:30 UTC on the 28th
        rec("c", start=at(2026, 3, 29, 23, 30), requests=4),  # CEST, 21:30 UTC on the 29th
        rec("d", start=at(2026, 3, 30, 0, 30), requests=8),  # CEST, 22:30 UTC on the 29th
        rec("e", start=at(2026, 10, 24, 23, 30), requests=16),  # CEST, 21:30 UTC
        rec("f", start=at(2026, 10, 25, 0, 30), requests=32),  # CEST, 22:30 UTC on the 24th
        rec("g", start=at(2026, 10, 25, 23, 30), requests=64),  # CET, 22:30 UTC on the 25th
        rec("h", start=at(2026, 10, 26, 0, 30), requests=128),  # CET, 23:30 UTC on the 25th
    ]


def test_report_by_day_across_dst(tmp_path):
    with Store.open(tmp_path / "t.db") as store:
        session = store.session("src", "log")
        for r in _berlin_records():
            session.add(r)
        session.finish(None)
        store.refresh_rollup()
        report = usage_report(store, Period(D(2026, 3, 28), D(2026, 10, 26), BERLIN), by=["day"])
        got = {r["day"]: r["requests"] for r in report.rows}
        assert got == {"2026-03-28": 1, "2026-03-29": 6, "2026-03-30": 8,
                       "2026-10-24": 16, "2026-10-25": 96, "2026-10-26": 128}
        # the same records in UTC days
        utc = usage_report(store, Period(D(2026, 3, 28), D(2026, 10, 26), UTC), by=["day"])
        assert {r["day"]: r["requests"] for r in utc.rows} == {
            "2026-03-28": 3, "2026-03-29": 12, "2026-10-24": 48, "2026-10-25": 192}
        # one DST day selected alone: exactly its 23 hours
        spring = usage_report(store, Period(D(2026, 3, 29), D(2026, 3, 29), BERLIN), by=["day"])
        assert [(r["day"], r["requests"]) for r in spring.rows] == [("2026-03-29", 6)]
        autumn = usage_report(store, Period(D(2026, 10, 25), D(2026, 10, 25), BERLIN))
        assert autumn.total[0]["requests"] == 96


def test_cli_report_by_day_in_berlin():
    register(make_source("fake", _berlin_records()))
    assert cli_json(["fetch", "fake", "--json"])["exit_code"] == 0
    data = cli_json(["report", "--from", "2026-03-28", "--to", "2026-03-30", "--by", "day",
                     "--tz", "Europe/Berlin", "--json", "--offline"])
    assert data["period"] == {"from": "2026-03-28", "to": "2026-03-30", "tz": "Europe/Berlin"}
    assert [(r["day"], r["requests"]) for r in data["rows"]] == [
        ("2026-03-28", 1), ("2026-03-29", 6), ("2026-03-30", 8)]
    assert data["total"]["requests"] == 15


def test_cli_presets_with_fixed_now():
    # TOKENMETER_NOW fixes "now" for the CLI; the zone decides which day it is
    env = {"TOKENMETER_NOW": "2025-12-31T15:30:00Z"}
    for args, expected in [
        (["--tz", "Asia/Tokyo", "--today"], ("2026-01-01", "2026-01-01")),
        (["--tz", "UTC", "--today"], ("2025-12-31", "2025-12-31")),
        (["--tz", "Asia/Tokyo", "--year"], ("2026-01-01", "2026-12-31")),
        (["--tz", "UTC", "--quarter"], ("2025-10-01", "2025-12-31")),
        (["--tz", "UTC", "--last-month"], ("2025-11-01", "2025-11-30")),
        (["--tz", "UTC", "--week"], ("2025-12-29", "2026-01-04")),
        (["--tz", "UTC", "--yesterday"], ("2025-12-30", "2025-12-30")),
        (["--tz", "UTC", "--month"], ("2025-12-01", "2025-12-31")),
        (["--tz", "UTC", "--period", "2025-02"], ("2025-02-01", "2025-02-28")),
        (["--tz", "UTC", "--days", "3"], ("2025-12-29", "2025-12-31")),
        (["--tz", "UTC", "--since", "2025-12-01", "--until", "2025-12-02"], ("2025-12-01", "2025-12-02")),
        (["--tz", "UTC", "--all"], (None, None)),
    ]:
        data = cli_json(["report", *args, "--json", "--offline"], env)
        assert (data["period"]["from"], data["period"]["to"]) == expected, args


def test_offset_segments_switch_in_the_last_step():
    # spring and autumn in one period ending on the autumn day: the period is a whole number of
    # days long, so the autumn switch falls inside the last step of the scan
    lo, _ = local_day_bounds(D(2026, 3, 28), BERLIN)
    _, hi = local_day_bounds(D(2026, 10, 25), BERLIN)
    spring = int(datetime(2026, 3, 29, 1, tzinfo=UTC).timestamp())
    autumn = int(datetime(2026, 10, 25, 1, tzinfo=UTC).timestamp())
    assert offset_segments(lo, hi, BERLIN) == [(lo, spring, 3600), (spring, autumn, 7200), (autumn, hi, 3600)]
    # a single autumn day
    lo, hi = local_day_bounds(D(2026, 10, 25), BERLIN)
    assert offset_segments(lo, hi, BERLIN) == [(lo, autumn, 7200), (autumn, hi, 3600)]


def test_report_ending_on_the_autumn_switch_day(tmp_path):
    with Store.open(tmp_path / "t.db") as store:
        session = store.session("src", "log")
        for r in _berlin_records():
            session.add(r)
        session.finish(None)
        store.refresh_rollup()
        report = usage_report(store, Period(D(2026, 3, 28), D(2026, 10, 25), BERLIN), by=["day"])
        got = {r["day"]: r["requests"] for r in report.rows}
        assert got == {"2026-03-28": 1, "2026-03-29": 6, "2026-03-30": 8, "2026-10-24": 16, "2026-10-25": 96}
