"""Exact counter increases from the lake agree with a real Prometheus's own ``increase()``.

The same samples are backfilled into Prometheus (promtool) and ingested from it into the lake, so
both sides see identical data. They still differ by design, and the tolerance says by how much:
PromQL's ``increase(x[1h])`` at time t looks only at the samples inside (t-1h, t], takes last minus
first (plus any reset), and extrapolates that to the window edges (by up to 1.1 average intervals,
else by half an interval). The lake's increase counts every sample-to-sample step whose later
sample is in the hour, including the step that enters the hour, and extrapolates nothing. So per
series the two differ by at most about one scrape's increase at each edge: we allow two times the
largest single-scrape increase per series.
"""

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from obs_pipelines.config import ObsConfig
from obs_pipelines.lake import Lake
from obs_pipelines.lake.catalog import build_catalog
from obs_pipelines.lake.ingest import ingest_metrics_hour
from obs_pipelines.lake.tiering import run_tiering
from obs_pipelines.reporting.derived import derive
from obs_pipelines.reporting.reports import report_connection
from obs_pipelines.sources.prometheus import PrometheusSource
from obs_pipelines.windows import TimeWindow, utc
from tests import servers
from tests.report_fixtures import HOUR_MS, SCRAPE_MS, every_report, make_config, ms

pytestmark = pytest.mark.prometheus
START_MS = ms("2026-11-10T00:00:00Z")
HOURS = 3
RESET_MS = ms("2026-11-10T01:20:00Z")
MAX_INCREMENT = {"200": 40, "500": 3, "404": 9}


def build_history() -> tuple[list[servers.Series], dict[str, list[tuple[int, int]]]]:
    """Counters with jittered 15 s scrapes and a reset at 01:20; returns (series, increments)."""
    rng = random.Random(3)
    series, increments = [], {}
    for n, (code, most) in enumerate(MAX_INCREMENT.items()):
        value, samples, steps, reset_done = 0, [], [], False
        for k in range(HOURS * HOUR_MS // SCRAPE_MS):
            ts = START_MS + 1_000 + n * 2_000 + k * SCRAPE_MS + rng.randint(-4, 4)
            inc = rng.randint(0, most)
            if ts >= RESET_MS and not reset_done:
                value, reset_done = 0, True
            value += inc
            samples.append(servers.Sample(ts, float(value)))
            steps.append((ts, inc))
        series.append(
            servers.Series(
                "http_requests_total",
                {"job": "api", "instance": "api-0:8080", "service": "checkout", "code": code},
                samples,
            )
        )
        increments[code] = steps
    return series, increments


HISTORY, INCREMENTS = build_history()


@pytest.fixture(scope="module")
def prometheus_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("tsdb") / "data"
    servers.backfill(data, HISTORY)
    with servers.prometheus(data) as url:
        yield url


@pytest.fixture(scope="module")
def hourly_from_lake(
    prometheus_url: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[int, dict[str, float]]:
    root: Path = tmp_path_factory.mktemp("lake")
    config = prometheus_config(root, prometheus_url)
    lake, source = Lake(config), PrometheusSource(config.sources.prometheus)
    start = utc("2026-11-10T00:00:00Z")
    for hour in TimeWindow(start, utc("2026-11-10T03:00:00Z")).hours():
        ingest_metrics_hour(lake, source, hour)
    derive(config, TimeWindow(start, utc("2026-11-10T03:00:00Z")))
    build_catalog(config)
    con = report_connection(config, start, utc("2026-11-10T03:00:00Z"))
    rows = con.execute(
        """SELECT hour(minute), sum(total_events), sum(bad_events) FROM slo_events
           GROUP BY 1 ORDER BY 1"""
    ).fetchall()
    con.close()
    return {h: {"total": total, "bad": bad} for h, total, bad in rows}


def prometheus_config(root: Path, prometheus_url: str, **extra: Any) -> ObsConfig:
    return make_config(
        root,
        sources={
            "metrics": "prometheus",
            "prometheus": {
                "url": prometheus_url,
                "selectors": ["http_requests_total"],
                "retry_backoff_seconds": 0,
            },
        },
        services=[{"name": "checkout", "owner": "team"}],
        slos=[
            {
                "name": "checkout_availability",
                "service": "checkout",
                "objective": 0.99,
                "sli": {
                    "type": "ratio",
                    "bad": 'http_requests_total{code=~"5.."}',
                    "total": "http_requests_total",
                },
            }
        ],
        **extra,
    )


def promql(url: str, query: str, at_ms: int) -> float:
    body = requests.get(
        f"{url}/api/v1/query", params={"query": query, "time": at_ms / 1000}, timeout=10
    ).json()
    assert body["status"] == "success", body
    return float(body["data"]["result"][0]["value"][1])


def exact(hour: int, codes: tuple[str, ...]) -> int:
    """Ground truth: every increment whose sample lies in the hour, except each series' first."""
    return sum(
        inc
        for code in codes
        for ts, inc in INCREMENTS[code][1:]
        if (ts - START_MS) // HOUR_MS == hour
    )


@pytest.mark.parametrize("hour", [0, 1, 2])
def test_lake_increase_is_the_exact_count_of_events(
    hourly_from_lake: dict[int, dict[str, float]], hour: int
) -> None:
    assert hourly_from_lake[hour]["total"] == exact(hour, ("200", "500", "404"))
    assert hourly_from_lake[hour]["bad"] == exact(hour, ("500",))


@pytest.mark.parametrize("hour", [1, 2])
def test_lake_increase_agrees_with_promql_increase_within_one_scrape_per_edge(
    prometheus_url: str, hourly_from_lake: dict[int, dict[str, float]], hour: int
) -> None:
    at_ms = START_MS + (hour + 1) * HOUR_MS

    total = promql(prometheus_url, "sum(increase(http_requests_total[1h]))", at_ms)
    bad = promql(prometheus_url, 'sum(increase(http_requests_total{code=~"5.."}[1h]))', at_ms)

    assert abs(hourly_from_lake[hour]["total"] - total) <= 2 * sum(MAX_INCREMENT.values())
    assert abs(hourly_from_lake[hour]["bad"] - bad) <= 2 * MAX_INCREMENT["500"]
    # The difference is the edges only: both see the reset at 01:20 the same way.
    assert hourly_from_lake[hour]["total"] == pytest.approx(total, rel=0.02)


def test_every_report_from_a_real_prometheus_is_unchanged_after_raw_samples_age_out(
    prometheus_url: str, tmp_path: Path
) -> None:
    lake_section = {
        "root": str(tmp_path / "lake"),
        "catalog": str(tmp_path / "lake" / "obs.duckdb"),
        "delete_delay": "0s",
    }
    ages = {"hot": "1d", "warm": "2d", "cold": "60d"}
    config = prometheus_config(
        tmp_path,
        prometheus_url,
        lake=lake_section,
        retention={"metrics": ages, "alerts": ages, "logs": ages, "traces": ages},
    )
    lake, source = Lake(config), PrometheusSource(config.sources.prometheus)
    window = TimeWindow(utc("2026-11-10T00:00:00Z"), utc("2026-11-10T03:00:00Z"))
    for hour in window.hours():
        ingest_metrics_hour(lake, source, hour)
    derive(config, window)
    build_catalog(config)
    con = report_connection(config)
    before = every_report(con)
    con.close()

    run_tiering(config, utc("2026-11-13T00:00:00Z"))
    build_catalog(config)
    con = report_connection(config)
    after = every_report(con)
    raw_left = con.execute("SELECT count(*) FROM metric_samples").fetchone()[0]
    con.close()

    assert raw_left == 0
    assert sum(row[4] for row in before["slo_events"]) == exact(0, ("200", "500", "404")) + exact(
        1, ("200", "500", "404")
    ) + exact(2, ("200", "500", "404"))
    assert {k: v for k, v in after.items() if v != before[k]} == {}
