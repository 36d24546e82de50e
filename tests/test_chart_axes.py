"""The report charts' axes: time labels on the clock's round marks, value gridlines that stay
inside the plot (no label drawn over another)."""

import re
from datetime import datetime, timedelta

import pytest

from obs_pipelines.reporting.chart_axes import time_ticks, value_ticks
from obs_pipelines.reporting.report_html import _burn_down_chart


def day(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.mark.parametrize(
    ("first", "last", "count", "expected", "fmt"),
    [
        # A week's burn-down: hourly points from the end of the first hour.
        (
            "2026-12-01 01:00",
            "2026-12-08 00:00",
            7,
            [f"2026-12-0{d} 00:00" for d in range(2, 9)],
            "%m-%d",
        ),
        # A day's burn-rate chart: every 6 hours (3 would be 9 labels).
        (
            "2026-11-04 00:00",
            "2026-11-05 00:00",
            8,
            [f"2026-11-04 {h:02d}:00" for h in (0, 6, 12, 18)] + ["2026-11-05 00:00"],
            "%m-%d %H:%M",
        ),
        # A period that starts off the hour: the first label is the next round mark.
        (
            "2026-11-04 05:17",
            "2026-11-04 13:43",
            7,
            ["2026-11-04 06:00", "2026-11-04 08:00", "2026-11-04 10:00", "2026-11-04 12:00"],
            "%m-%d %H:%M",
        ),
        # A quarter: every other Monday (counted from Monday 2024-01-01).
        (
            "2026-01-01 00:00",
            "2026-04-01 00:00",
            7,
            [
                (day("2026-01-12") + timedelta(days=14 * i)).isoformat(sep=" ")[:16]
                for i in range(6)
            ],
            "%m-%d",
        ),
        # Eleven months: the first of every other month, from January.
        (
            "2026-01-01 00:00",
            "2026-12-01 00:00",
            8,
            [f"2026-{m:02d}-01 00:00" for m in (1, 3, 5, 7, 9, 11)],
            "%Y-%m",
        ),
    ],
)
def test_time_labels_fall_on_the_clocks_round_marks(
    first: str, last: str, count: int, expected: list[str], fmt: str
) -> None:
    moments, label = time_ticks(day(first), day(last), count)

    assert [m.isoformat(sep=" ")[:16] for m in moments] == expected
    assert label == fmt
    assert len(moments) <= count


def test_the_lowest_value_gridline_is_at_or_below_the_lowest_value() -> None:
    for low in (-2.5, -1.0, -0.3, 0.0):
        ticks = value_ticks(low, 1.0)
        assert ticks[0] <= low < ticks[1]
        assert ticks[-1] == pytest.approx(1.0)


def test_a_burn_down_far_below_zero_keeps_its_value_labels_above_the_time_labels() -> None:
    """An SLO 250 % over its budget: the chart's lowest gridline (-300 %) is its bottom edge,
    not a label drawn onto the time axis below it."""
    start = datetime(2026, 12, 1, 1)
    shares = [0.0005] * 40 + [0.0035] * 128  # budget 0.001: 50 % left, then -250 %
    svg = _burn_down_chart(
        ("api_availability", "api", 0.999, None),
        [(start + timedelta(hours=i), share) for i, share in enumerate(shares)],
    )

    values = [
        (float(y), int(text))
        for y, text in re.findall(r'class="y-label" x="[^"]+" y="([^"]+)"[^>]*>(-?\d+)%<', svg)
    ]
    times = {float(y) for y in re.findall(r'class="x-label" x="[^"]+" y="([^"]+)"', svg)}
    assert min(v for _, v in values) == -300 and max(v for _, v in values) == 100
    (baseline,) = times
    assert max(y for y, _ in values) <= baseline - 12  # a line of the chart's 11 px text apart
    labels = re.findall(r'class="x-label"[^>]*>([^<]+)<', svg)
    assert labels == [f"12-{d:02d}" for d in range(2, 9)]
