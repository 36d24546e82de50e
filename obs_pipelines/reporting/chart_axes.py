"""Where the report's charts put their axis labels: round values and round UTC moments.

A reader compares a chart with other tools (Grafana, Alertmanager, a postmortem timeline), so
time labels fall on the clock's round marks (every 6 hours, at midnight, on Mondays, on the 1st
of a month), not on equal divisions of whatever the period happens to be.
"""

import math
from datetime import datetime, timedelta

# The steps a time axis may take before it counts in months; weeks start on Mondays.
_CLOCK_STEPS = (
    *(timedelta(minutes=m) for m in (5, 10, 15, 30)),
    *(timedelta(hours=h) for h in (1, 2, 3, 6, 12)),
    *(timedelta(days=d) for d in (1, 2, 7, 14)),
)
_MONTH_STEPS = (1, 2, 3, 6, 12)
_MONDAY = datetime(2024, 1, 1)  # a Monday at midnight: the origin every clock step counts from


def value_ticks(low: float, high: float) -> list[float]:
    """At most about six round ticks covering ``low`` to ``high``: the first at or below
    ``low``, the last at or below ``high``."""
    raw = (high - low) / 5 or 0.25
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step) * step
    return [first + step * i for i in range(int((high - first) / step) + 1)]


def time_ticks(first: datetime, last: datetime, count: int = 7) -> tuple[list[datetime], str]:
    """At most ``count`` round moments from ``first`` to ``last`` (naive UTC, both included),
    at the smallest clock step that fits, and the ``strftime`` format that labels them (the
    time of day only where the step is shorter than a day)."""
    if last <= first:
        return [first], "%m-%d %H:%M"
    for step in _CLOCK_STEPS:
        if (last - first) // step + 1 <= count:
            offset = (first - _MONDAY) % step
            start = first if not offset else first + (step - offset)
            moments = [start + step * i for i in range(int((last - start) // step) + 1)]
            return moments, "%m-%d %H:%M" if step < timedelta(days=1) else "%m-%d"
    for months in _MONTH_STEPS:
        moments = _month_starts(first, last, months)
        if len(moments) <= count:
            return moments, "%Y-%m"
    return [first, last], "%Y-%m-%d"


def _month_starts(first: datetime, last: datetime, every: int) -> list[datetime]:
    """The first days of the months from ``first`` to ``last`` whose number is 1 modulo
    ``every`` (January, then every ``every`` months)."""
    year, month = first.year, first.month
    moments = []
    while True:
        moment = datetime(year, month, 1)
        if moment > last:
            return moments
        if moment >= first and (month - 1) % every == 0:
            moments.append(moment)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
