"""Time parameters, RFC 3339 output and Arc's timestamps, all as exact epoch microseconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memtrace.errors import Invalid
from memtrace.timeutil import MAX_US, MIN_US, format_seconds, format_us, now_us, parse_arc_time, parse_time_param

NOW = 1_770_495_300_123_456  # 2026-02-07T20:15:00.123456Z
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def us(dt: datetime) -> int:
    return (dt - EPOCH) // timedelta(microseconds=1)


@pytest.mark.parametrize(
    ("text", "ago"),
    [("30m", 30 * 60), ("2h", 7200), ("7d", 7 * 86400), ("4w", 28 * 86400), ("90s", 90), ("0h", 0), (" 2h ", 7200)],
)
def test_relative_forms_mean_now_minus_the_span(text: str, ago: int) -> None:
    assert parse_time_param(text, NOW, "since") == NOW - ago * 1_000_000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-02-07", datetime(2026, 2, 7, tzinfo=UTC)),
        ("2026-02-07T20:15", datetime(2026, 2, 7, 20, 15, tzinfo=UTC)),
        ("2026-02-07T20:15:00", datetime(2026, 2, 7, 20, 15, tzinfo=UTC)),
        ("2026-02-07 20:15:00", datetime(2026, 2, 7, 20, 15, tzinfo=UTC)),
        ("2026-02-07T20:15:00Z", datetime(2026, 2, 7, 20, 15, tzinfo=UTC)),
        ("2026-02-07t20:15:00z", datetime(2026, 2, 7, 20, 15, tzinfo=UTC)),
        ("2026-02-07T20:15:00.5Z", datetime(2026, 2, 7, 20, 15, 0, 500_000, tzinfo=UTC)),
        ("2026-02-07T20:15:00,25Z", datetime(2026, 2, 7, 20, 15, 0, 250_000, tzinfo=UTC)),
        ("2026-02-07T20:15:00.123456Z", datetime(2026, 2, 7, 20, 15, 0, 123_456, tzinfo=UTC)),
        ("2026-02-07T20:15:00.123456789Z", datetime(2026, 2, 7, 20, 15, 0, 123_456, tzinfo=UTC)),
        ("2026-02-07T22:15:00+02:00", datetime(2026, 2, 7, 20, 15, tzinfo=UTC)),
        ("2026-02-07T22:15:00+0200", datetime(2026, 2, 7, 20, 15, tzinfo=UTC)),
        ("2026-02-07T18:15:00-02", datetime(2026, 2, 7, 20, 15, tzinfo=UTC)),
        ("2026-02-07T20:15:00.000001+00:00", datetime(2026, 2, 7, 20, 15, 0, 1, tzinfo=UTC)),
    ],
)
def test_absolute_forms(text: str, expected: datetime) -> None:
    assert parse_time_param(text, NOW, "until") == us(expected)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "yesterday",
        "2h ago",
        "-2h",
        "+2h",
        "2H",
        "2.5h",
        "h",
        "2",
        "1770495300",
        "2026",
        "2026-02",
        "2026-W06-6",
        "2026-038",
        "20260207",
        "20260207T201500Z",
        "2026-02-30",
        "2026-13-01",
        "2026-02-07T24:00:00Z",
        "2026-02-07T20:15:00+25:00",
        "2026-02-07T20:15:00 UTC",
        "2026-02-07T20:15:00ZZ",
        "２０２６-02-07",
        "0000-01-01",
        "99999999999w",
        "9999999999w",  # before year 1
        "0001-01-01T00:00:00+01:00",  # before year 1 once the offset is applied
        "2026-02-07'; DROP TABLE events; --",
    ],
)
def test_refused_forms_name_the_field(text: str) -> None:
    with pytest.raises(Invalid) as err:
        parse_time_param(text, NOW, "since")
    assert err.value.message.startswith("since ")
    assert err.value.status == 400


def test_format_us_and_seconds() -> None:
    assert format_us(NOW) == "2026-02-07T20:15:00.123456Z"
    assert format_us(0) == "1970-01-01T00:00:00.000000Z"
    assert format_us(-1) == "1969-12-31T23:59:59.999999Z"
    assert format_us(MIN_US) == "0001-01-01T00:00:00.000000Z"
    assert format_us(MAX_US) == "9999-12-31T23:59:59.999999Z"
    assert format_seconds(NOW) == "2026-02-07T20:15:00Z"
    assert format_seconds(NOW + 999_999) == "2026-02-07T20:15:01Z"  # floored, never rounded up a second


@settings(max_examples=300, deadline=None)
@given(st.integers(MIN_US, MAX_US))
def test_format_parse_round_trip(t: int) -> None:
    text = format_us(t)
    assert text == (EPOCH + timedelta(microseconds=t)).strftime("%Y-%m-%dT%H:%M:%S.%fZ").rjust(27, "0")
    assert parse_arc_time(text) == t
    assert parse_arc_time(text[:-1] + "000Z") == t  # Arc's nanosecond form
    assert parse_time_param(text, NOW, "since") == t
    assert format_seconds(t) == text[:19] + "Z"


def test_parse_arc_time_forms() -> None:
    assert parse_arc_time("2026-02-07T20:15:00Z") == NOW - 123_456
    assert parse_arc_time("2026-02-07T20:15:00.123456789Z") == NOW
    assert parse_arc_time("2026-02-07 20:15:00.123456") == NOW  # naive is UTC
    assert parse_arc_time("2026-02-07T22:15:00.123456+02:00") == NOW
    assert parse_arc_time(NOW) == NOW
    assert parse_arc_time(NOW // 1_000_000) == NOW // 1_000_000 * 1_000_000
    assert parse_arc_time(NOW // 1_000) == NOW // 1_000 * 1_000
    assert parse_arc_time(NOW * 1_000) == NOW
    with pytest.raises(ValueError):
        parse_arc_time("not a time")


def test_now_us_is_microseconds() -> None:
    assert abs(now_us() - us(datetime.now(UTC))) < 60_000_000
