"""Prometheus-style durations (``15s``, ``5m``, ``2h``, ``7d``, ``1w``, ``1y``) used across the config."""

import re
from datetime import timedelta

_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")


def parse_duration(text: str) -> timedelta:
    """Parse ``1h30m``-style text; raise ValueError with the accepted forms otherwise."""
    text = str(text).strip()
    pos, seconds = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        seconds += int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(
            f"'{text}' is not a duration; write a number and a unit such as 90s, 15m, 2h, 7d, 1w or 1y"
        )
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"'{text}' is too long a duration; write at most 1000y") from None


def format_duration(delta: timedelta) -> str:
    """The shortest exact Prometheus-style spelling of ``delta`` (whole milliseconds); a
    negative one is a minus sign before its magnitude (``-3h``, not divmod's ``-1d21h``)."""
    ms = round(delta.total_seconds() * 1000)
    if ms == 0:
        return "0s"
    if ms < 0:
        return "-" + format_duration(-delta)
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, ms = divmod(ms, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
