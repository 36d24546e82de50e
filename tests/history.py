"""Telemetry history that tests backfill into a real Prometheus, with every sample known exactly."""

import random
from datetime import UTC, datetime

from tests.servers import Sample, Series

START = datetime(2026, 11, 10, 0, 0, tzinfo=UTC)
START_MS = int(START.timestamp() * 1000)
HOUR_MS = 3_600_000
SCRAPE_MS = 15_000
RESET_AT_MS = START_MS + HOUR_MS + 20 * 60_000  # the counter restarts at 01:20
SPECIAL_VALUES = (
    float("nan"),
    float("inf"),
    float("-inf"),
    -0.0,
    5e-324,
    1.7976931348623157e308,
    0.1 + 0.2,
)


def scrape_times(phase_ms: int, rng: random.Random, hours: int = 3) -> list[int]:
    """15 s scrapes with a few milliseconds of jitter, strictly increasing."""
    return [
        START_MS + phase_ms + k * SCRAPE_MS + rng.randint(-4, 4)
        for k in range(hours * HOUR_MS // SCRAPE_MS)
    ]


def history(extra_series: int = 0, seed: int = 7) -> list[Series]:
    rng = random.Random(seed)
    series: list[Series] = []

    count = 0
    counter_samples = []
    for ts in scrape_times(1_234, rng):
        count = (
            0
            if ts >= RESET_AT_MS
            and (not counter_samples or counter_samples[-1].ts_ms < RESET_AT_MS)
            else count
        )
        count += rng.randint(0, 40)
        counter_samples.append(Sample(ts, float(count)))
    series.append(
        Series(
            "http_requests_total",
            {"job": "api", "instance": "api-0:8080", "code": "200", "service": "checkout"},
            counter_samples,
        )
    )

    gauge_samples = []
    for i, ts in enumerate(scrape_times(7_777, rng)):
        value = (
            SPECIAL_VALUES[i // 50 % len(SPECIAL_VALUES)] if i % 50 == 0 else rng.uniform(-1e6, 1e6)
        )
        gauge_samples.append(Sample(ts, value))
    series.append(
        Series("queue_depth", {"job": "worker", "instance": "worker-1:9100"}, gauge_samples)
    )

    odd_labels = {
        "job": "edge",
        "instance": "edge:1",
        "path": 'C:\\temp\\"quoted"',
        "note": "line1\nline2 ünïcode ✓",
    }
    series.append(
        Series(
            "edge_bytes", odd_labels, [Sample(ts, rng.random()) for ts in scrape_times(3_000, rng)]
        )
    )

    for n in range(extra_series):
        labels = {"job": "fleet", "instance": f"node-{n:04d}:9100"}
        series.append(
            Series(
                "fleet_load",
                labels,
                [
                    Sample(ts, round(rng.random(), 6))
                    for ts in scrape_times(n * 37 % SCRAPE_MS, rng)
                ],
            )
        )
    return series


def samples_in(
    series: list[Series], start_ms: int, end_ms: int
) -> dict[tuple[str, tuple[tuple[str, str], ...]], list[Sample]]:
    """What a lake partition over [start_ms, end_ms) must hold, keyed by (metric, sorted labels)."""
    expected = {}
    for s in series:
        inside = [x for x in s.samples if start_ms <= x.ts_ms < end_ms]
        if inside:
            expected[(s.metric, tuple(sorted(s.labels.items())))] = inside
    return expected
