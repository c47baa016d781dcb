from datetime import UTC, date, datetime

import pytest

from tokenmeter import ConfigError, check_base_url, is_loopback, parse_day, parse_time


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "127.9.9.9", "::1", "[::1]"])
def test_loopback_hosts(host):
    assert is_loopback(host)


@pytest.mark.parametrize("host", [None, "", "10.0.0.1", "example.com", "192.168.1.1"])
def test_not_loopback(host):
    assert not is_loopback(host)


def test_check_base_url():
    assert check_base_url("https://api.example.com/v1/", "x.base_url") == "https://api.example.com/v1"
    assert check_base_url("http://127.0.0.1:8080/api", "x.base_url") == "http://127.0.0.1:8080/api"
    with pytest.raises(ConfigError, match=r"^x\.base_url must use https"):
        check_base_url("http://10.0.0.1/api", "x.base_url")
    with pytest.raises(ConfigError, match="not an https:// URL"):
        check_base_url("ftp://127.0.0.1", "x.base_url")
    with pytest.raises(ConfigError, match="plain base URL"):
        check_base_url("https://user:pw@example.com", "x.base_url")


def test_parse_time():
    assert parse_time("2026-03-01T10:00:00Z") == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert parse_time("2026-03-01T18:00:00+08:00") == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert parse_time("2026-03-01T10:00:00") == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert parse_time("yesterday") is None and parse_time(None) is None and parse_time(5) is None


def test_parse_day():
    assert parse_day("2026-03-01") == date(2026, 3, 1)
    assert parse_day("2026-02-30") is None and parse_day(None) is None and parse_day(20260301) is None
