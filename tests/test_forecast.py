from __future__ import annotations

from datetime import date
from decimal import Decimal

from tokenmeter.forecast import DailyPoint, days_until_exhausted, exhaustion_date, exhaustion_info, forecast

TODAY = date(2026, 3, 15)


def _series():
    # 1..14 March: 1.00 USD and 100,000 tokens a day, except 10 March (3.00 / 300,000), no usage on
    # 12 March (missing from the series = zero); 15 March (today, partial) 0.25 / 20,000.
    out = []
    for d in range(1, 15):
        if d == 12:
            continue
        cost, tokens = (Decimal("3.00"), 300_000) if d == 10 else (Decimal("1.00"), 100_000)
        out.append((date(2026, 3, d), cost, tokens))
    out.append((date(2026, 3, 15), Decimal("0.25"), 20_000))
    return out


def test_forecast_on_a_fixed_series():
    f = forecast(_series(), TODAY, currency="USD")
    # window 8..14 March: 1+1+3+1+0+1+1 = 8.00 USD and 800,000 tokens over 7 days
    assert (f.window_from, f.window_to, f.window_days) == (date(2026, 3, 8), date(2026, 3, 14), 7)
    assert f.window_label == "last 7 complete days (2026-03-08..2026-03-14)"
    assert f.cost_per_day == Decimal("1.142857143")
    assert f.tokens_per_day == Decimal("114285.71")
    assert f.month_to_date_cost == Decimal("15.25") and f.month_to_date_tokens == 1_520_000
    assert f.days_left == 17  # 15..31 March
    # 15.00 up to yesterday + 17 x 1.142857143
    assert f.projected_cost == Decimal("34.428571431")
    assert f.projected_tokens == 1_500_000 + round(Decimal("114285.71") * 17)  # 3,442,857
    assert f.projected_tokens == 3_442_857
    assert f.rate_for("cost") == f.cost_per_day
    d = f.to_dict()
    assert d["projected_cost"] == "34.428571431" and d["window"]["days"] == 7
    assert d["month"] == {"from": "2026-03-01", "to": "2026-03-31"}


def test_short_history_uses_fewer_days():
    series = [(date(2026, 3, 13), Decimal("2"), 1000, 4), {"date": "2026-03-14", "cost": "4", "tokens": 3000}]
    f = forecast(series, TODAY)
    assert f.window_days == 2 and f.window_label == "last 2 complete days (2026-03-13..2026-03-14)"
    assert (f.cost_per_day, f.tokens_per_day, f.requests_per_day) == (Decimal(3), Decimal(2000), Decimal(2))
    assert f.projected_cost == Decimal(6 + 3 * 17)
    one = forecast([DailyPoint(date(2026, 3, 14), Decimal(1), 10)], TODAY)
    assert one.window_label == "last complete day (2026-03-14)"


def test_no_complete_day_yet():
    f = forecast([(TODAY, Decimal("1"), 10)], TODAY)
    assert f.window_days == 0 and f.cost_per_day is None and f.projected_cost is None
    assert f.window_label == "no complete day of usage yet"
    assert f.month_to_date_cost == 1
    assert forecast([], TODAY).projected_tokens is None


def test_projection_never_below_month_to_date():
    # a quiet week, then a heavy today: the month has already used more than the rate projects
    series = [(date(2026, 3, 30), Decimal("0"), 0), (date(2026, 3, 31), Decimal("50"), 9000)]
    f = forecast(series, date(2026, 3, 31))
    assert f.cost_per_day == 0 and f.projected_cost == 50 and f.projected_tokens == 9000


def test_days_until_exhausted():
    assert days_until_exhausted(Decimal(100), Decimal(8)) == 12.5
    assert days_until_exhausted(Decimal(0), Decimal(8)) == 0.0
    assert days_until_exhausted(Decimal(-3), Decimal(8)) == 0.0
    assert days_until_exhausted(100, None) is None
    assert days_until_exhausted(100, 0) is None
    assert exhaustion_date(TODAY, 12.5) == date(2026, 3, 27)
    assert exhaustion_date(TODAY, None) is None


def test_exhaustion_info_for_a_budget():
    info = exhaustion_info(Decimal("4.46"), Decimal("0.419837"), TODAY, date(2026, 3, 31))
    assert info == {"per_day": "0.419837", "days_left": 10.62, "exhausted_on": "2026-03-25",
                    "period_end": "2026-03-31", "before_period_end": True}
    # a monthly budget that resets before it would run out
    late = exhaustion_info(Decimal("14.46"), Decimal("0.419837"), TODAY, date(2026, 3, 31))
    assert (late["exhausted_on"], late["before_period_end"]) == ("2026-04-18", False)
    assert exhaustion_info(100, None, TODAY)["days_left"] is None
    assert exhaustion_info(100, None, TODAY, date(2026, 3, 31))["before_period_end"] is False


def test_json_decimals_are_plain():
    # a tiny or zero daily spend: str(Decimal) would write "1.43E-7" / "0E-9" into the JSON
    series = [(date(2026, 3, d), Decimal("0.000001"), 10) for d in range(8, 15)]
    d = forecast(series, TODAY, currency="USD").to_dict()
    assert d["cost_per_day"] == "0.000001000"
    zero = forecast([(date(2026, 3, 14), Decimal(0), 10)], TODAY).to_dict()
    assert (zero["cost_per_day"], zero["projected_cost"]) == ("0.000000000", "0.000000000")
    tiny = forecast([(date(2026, 3, 14), Decimal("0.0000001"), 10)], TODAY).to_dict()
    assert tiny["cost_per_day"] == "0.000000100" and "E" not in tiny["projected_cost"]
    assert exhaustion_info(1, Decimal("1E-7"), TODAY)["per_day"] == "0.0000001"


def test_exhaustion_beyond_the_calendar_does_not_crash():
    # a 70M-token welcome credit used at 1.43 tokens a day: ~49M days, past year 9999
    info = exhaustion_info(Decimal(70_000_000), Decimal("1.43"), TODAY, date(2026, 12, 31))
    assert info["days_left"] == 48951048.95 and info["exhausted_on"] is None
    assert info["before_period_end"] is False
    assert exhaustion_date(TODAY, float((date.max - TODAY).days)) == date.max
    assert exhaustion_date(TODAY, float((date.max - TODAY).days + 1)) is None
