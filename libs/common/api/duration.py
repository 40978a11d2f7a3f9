"""Go `time.Duration` parsing and formatting, as Flux's `metav1.Duration` fields use them.

`parse_duration` accepts everything Go's `time.ParseDuration` accepts (signs, fractions, several
units in a row, `ns`/`us`/`µs`/`ms`/`s`/`m`/`h`) and returns seconds as a float;
`format_duration` writes seconds the way Go's `Duration.String` does (`1m30s`, `1h0m0s`,
`1.5s`, `250ms`, `0s`).
"""

from __future__ import annotations

import re

__all__ = ["DURATION_PATTERN", "TIMEOUT_PATTERN", "format_duration", "parse_duration", "parse_duration_ns"]

#: The pattern Flux's CRDs put on interval-like fields.
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
#: The pattern Flux's CRDs put on source timeouts (no hours).
TIMEOUT_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m))+$"

_NANOSECOND = 1
_MICROSECOND = 1000 * _NANOSECOND
_MILLISECOND = 1000 * _MICROSECOND
_SECOND = 1000 * _MILLISECOND
_MINUTE = 60 * _SECOND
_HOUR = 60 * _MINUTE

_UNITS: dict[str, int] = {
    "ns": _NANOSECOND,
    "us": _MICROSECOND,
    "\u00b5s": _MICROSECOND,  # U+00B5 micro sign
    "\u03bcs": _MICROSECOND,  # U+03BC Greek small letter mu
    "ms": _MILLISECOND,
    "s": _SECOND,
    "m": _MINUTE,
    "h": _HOUR,
}

_MAX_NS = (1 << 63) - 1
_COMPONENT = re.compile(r"([0-9]*)(?:\.([0-9]*))?([^0-9.]*)")


def parse_duration_ns(value: str) -> int:
    """Parse a Go duration string into integer nanoseconds (exactly, without float rounding)."""
    if not isinstance(value, str):
        raise TypeError(f"time: invalid duration {value!r}: not a string")
    original = value
    text = value
    negative = False
    if text[:1] in ("-", "+"):
        negative = text[0] == "-"
        text = text[1:]
    if text == "0":
        return 0
    if text == "":
        raise ValueError(f'time: invalid duration "{original}"')
    total = 0
    pos = 0
    while pos < len(text):
        match = _COMPONENT.match(text, pos)
        if match is None or match.end() == pos:
            raise ValueError(f'time: invalid duration "{original}"')
        whole, frac, unit = match.group(1), match.group(2), match.group(3)
        if whole == "" and not frac:
            # Go requires at least one digit before or after the dot.
            raise ValueError(f'time: invalid duration "{original}"')
        if unit == "":
            raise ValueError(f'time: missing unit in duration "{original}"')
        if unit not in _UNITS:
            raise ValueError(f'time: unknown unit "{unit}" in duration "{original}"')
        scale = _UNITS[unit]
        amount = int(whole or "0") * scale
        if frac:
            # Exact fractional part: frac / 10**len(frac) * scale, truncated like Go.
            amount += int(frac) * scale // (10 ** len(frac))
        total += amount
        if total > _MAX_NS + (1 if negative else 0):
            raise ValueError(f'time: invalid duration "{original}"')
        pos = match.end()
    return -total if negative else total


def parse_duration(value: str) -> float:
    """Parse a Go duration (`"1m30s"`, `"1.5h"`, `"-250ms"`, `"0"`) into seconds.

    Raises `ValueError` naming the value, worded like Go's errors.
    """
    return parse_duration_ns(value) / _SECOND


def _fraction(value: int, digits: int) -> str:
    """`value` split at `digits` decimal places, trailing zeros dropped (Go's fmtFrac+fmtInt)."""
    whole, frac = divmod(value, 10**digits)
    if frac == 0:
        return str(whole)
    return f"{whole}." + f"{frac:0{digits}d}".rstrip("0")


def format_duration(seconds: float | int) -> str:
    """Format seconds like Go's `time.Duration.String` (`90` -> `"1m30s"`, `3600` -> `"1h0m0s"`)."""
    if isinstance(seconds, int):
        ns = seconds * _SECOND
    else:
        ns = round(seconds * _SECOND)
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    u = abs(ns)
    if u < _SECOND:
        if u < _MICROSECOND:
            return f"{sign}{u}ns"
        if u < _MILLISECOND:
            return f"{sign}{_fraction(u, 3)}\u00b5s"
        return f"{sign}{_fraction(u, 6)}ms"
    out = f"{_fraction(u % _MINUTE, 9)}s"
    minutes = u // _MINUTE
    if minutes > 0:
        out = f"{minutes % 60}m{out}"
        hours = minutes // 60
        if hours > 0:
            out = f"{hours}h{out}"
    return sign + out
