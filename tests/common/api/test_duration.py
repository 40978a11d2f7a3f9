from __future__ import annotations

import pytest

from libs.common.api.duration import format_duration, parse_duration, parse_duration_ns

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0.0),
        ("+0", 0.0),
        ("-0", 0.0),
        ("5s", 5.0),
        ("30s", 30.0),
        ("1m30s", 90.0),
        ("1h", 3600.0),
        ("1h0m0s", 3600.0),
        ("10m", 600.0),
        ("1.5h", 5400.0),
        ("2h45m", 9900.0),
        ("-1.5h", -5400.0),
        ("+5m", 300.0),
        ("250ms", 0.25),
        ("1ms", 0.001),
        ("10us", 0.00001),
        ("10\u00b5s", 0.00001),
        ("10\u03bcs", 0.00001),
        ("100ns", 1e-7),
        (".5s", 0.5),
        ("1.s", 1.0),
        ("1h1m1s1ms", 3661.001),
        ("3m3m", 360.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


def test_parse_duration_is_exact_in_nanoseconds() -> None:
    assert parse_duration_ns("1.000000001s") == 1_000_000_001
    assert parse_duration_ns("0.1s") == 100_000_000
    assert parse_duration_ns("-2m") == -120_000_000_000


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", 'time: invalid duration ""'),
        ("1", 'time: missing unit in duration "1"'),
        ("5x", 'time: unknown unit "x" in duration "5x"'),
        ("1d", 'time: unknown unit "d" in duration "1d"'),
        ("s", 'time: invalid duration "s"'),
        (".s", 'time: invalid duration ".s"'),
        ("-", 'time: invalid duration "-"'),
        ("1h-5m", 'time: unknown unit "h-" in duration "1h-5m"'),
        ("9999999999999h", 'time: invalid duration "9999999999999h"'),
    ],
)
def test_parse_duration_errors_name_the_value(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.0, "0s"),
        (1, "1s"),
        (90, "1m30s"),
        (60, "1m0s"),
        (600, "10m0s"),
        (3600, "1h0m0s"),
        (5400, "1h30m0s"),
        (86400, "24h0m0s"),
        (1.5, "1.5s"),
        (2.005, "2.005s"),
        (0.25, "250ms"),
        (0.0015, "1.5ms"),
        (0.000001, "1\u00b5s"),
        (0.0000015, "1.5\u00b5s"),
        (1e-9, "1ns"),
        (-90, "-1m30s"),
        (-0.5, "-500ms"),
        (3661.001, "1h1m1.001s"),
    ],
)
def test_format_duration_like_go(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("text", ["1m30s", "1h0m0s", "1.5s", "250ms", "5m0s", "-2h3m4.5s", "1\u00b5s"])
def test_format_parse_round_trip(text: str) -> None:
    assert format_duration(parse_duration(text)) == text
