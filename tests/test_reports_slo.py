"""SLIs computed in DuckDB equal the exact event counts of hand-built data, resets included."""

import json
import math
import random
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from obs_pipelines.errors import ConfigError
from obs_pipelines.lake import Lake
from obs_pipelines.lake.catalog import build_catalog
from obs_pipelines.lake.delta import table_uri
from obs_pipelines.reporting.derived import derive
from obs_pipelines.reporting.reports import (
    PINNED_REPORTS,
    newest_data_end,
    pin_reports,
    report_connection,
    report_queries,
)
from obs_pipelines.windows import TimeWindow, utc
from tests.report_fixtures import HOUR_MS, SCRAPE_MS, MetricSeries, make_config, ms, write_metrics

pytestmark = pytest.mark.integration  # builds catalogs with every report: seconds per test

DAY = "2026-11-10"
START_MS = ms(f"{DAY}T00:00:00Z")
HOURS = 4
RESET_MS = ms(f"{DAY}T01:30:00Z")


def scrapes(phase_ms: int) -> list[int]:
    return [START_MS + phase_ms + k * SCRAPE_MS for k in range(HOURS * HOUR_MS // SCRAPE_MS)]


def counter(
    phase_ms: int, increments: list[int], reset_ms: int | None = None
) -> list[tuple[int, float]]:
    """Cumulative values; at ``reset_ms`` the counter restarts from zero."""
    value, out, reset_done = 0, [], False
    for ts, inc in zip(scrapes(phase_ms), increments, strict=True):
        if reset_ms is not None and ts >= reset_ms and not reset_done:
            value, reset_done = 0, True
        value += inc
        out.append((ts, float(value)))
    return out


class Truth:
    """What each SLI must count: the increments of every sample after a series' first."""

    def __init__(self) -> None:
        rng = random.Random(11)
        n = HOURS * HOUR_MS // SCRAPE_MS
        self.ok_a = [rng.randint(0, 20) for _ in range(n)]
        self.ok_b = [rng.randint(0, 30) for _ in range(n)]
        self.err_a = [rng.randint(0, 2) for _ in range(n)]
        self.fast = [rng.randint(0, 10) for _ in range(n)]
        self.slow = [rng.randint(0, 3) for _ in range(n)]
        self.lag = [rng.choice([0.5, 1.0, 4.99, 5.0, 5.01, 12.0, math.nan]) for _ in range(n)]

    def series(self) -> list[MetricSeries]:
        under = list(self.fast)
        total = [f + s for f, s in zip(self.fast, self.slow, strict=True)]
        return [
            MetricSeries(
                "http_requests_total",
                {"service": "shop", "code": "200", "instance": "a"},
                counter(5_000, self.ok_a, reset_ms=RESET_MS),
            ),
            MetricSeries(
                "http_requests_total",
                {"service": "shop", "code": "200", "instance": "b"},
                counter(9_000, self.ok_b),
            ),
            MetricSeries(
                "http_requests_total",
                {"service": "shop", "code": "503", "instance": "a"},
                counter(5_000, self.err_a, reset_ms=RESET_MS),
            ),
            MetricSeries(
                "latency_seconds_bucket",
                {"service": "shop", "le": "0.1"},
                counter(7_000, [0] * len(under)),
            ),
            MetricSeries(
                "latency_seconds_bucket",
                {"service": "shop", "le": "0.5"},
                counter(7_000, under, RESET_MS),
            ),
            MetricSeries(
                "latency_seconds_bucket",
                {"service": "shop", "le": "+Inf"},
                counter(7_000, total, RESET_MS),
            ),
            MetricSeries(
                "queue_lag_seconds",
                {"service": "shop", "pipeline": "orders"},
                list(zip(scrapes(3_000), self.lag, strict=True)),
            ),
        ]


SLOS = [
    {
        "name": "availability",
        "service": "shop",
        "objective": 0.99,
        "window": "1d",
        "sli": {
            "type": "ratio",
            "bad": 'http_requests_total{code=~"5.."}',
            "total": "http_requests_total",
        },
    },
    {
        "name": "latency",
        "service": "shop",
        "objective": 0.9,
        "window": "1d",
        "sli": {"type": "latency", "histogram": "latency_seconds_bucket", "threshold_seconds": 0.5},
    },
    {
        "name": "freshness",
        "service": "shop",
        "objective": 0.8,
        "window": "1d",
        "sli": {"type": "threshold", "gauge": 'queue_lag_seconds{pipeline="orders"}', "max": 5},
    },
]
SERVICES = [{"name": "shop", "owner": "team"}]


@pytest.fixture(scope="module")
def truth() -> Truth:
    return Truth()


@pytest.fixture(scope="module")
def lake_dir(tmp_path_factory: pytest.TempPathFactory, truth: Truth) -> Path:
    root = tmp_path_factory.mktemp("slo")
    config = make_config(root, services=SERVICES, slos=SLOS)
    write_metrics(Lake(config), truth.series())
    return root


def day_rows(root: Path, slos: list[dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    config = make_config(root, services=SERVICES, slos=slos or SLOS)
    build_catalog(config)
    con = report_connection(config, utc(f"{DAY}T00:00:00Z"), utc("2026-11-11T00:00:00Z"))
    rows = con.execute(
        "SELECT * FROM slo_compliance WHERE scope = 'day' ORDER BY slo_name"
    ).fetchall()
    names = [d[0] for d in con.description]
    con.close()
    return {r[0]: dict(zip(names, r, strict=True)) for r in rows}


def test_ratio_sli_counts_every_event_exactly_across_a_counter_reset(
    lake_dir: Path, truth: Truth
) -> None:
    rows = day_rows(lake_dir)

    row = rows["availability"]
    bad = sum(truth.err_a[1:])
    total = sum(truth.ok_a[1:]) + sum(truth.ok_b[1:]) + bad
    assert (row["bad_events_count"], row["events_count"]) == (bad, total)
    assert row["good_events_count"] == total - bad
    assert row["sli_measurement"] == pytest.approx((total - bad) / total, rel=1e-12)
    assert row["error_budget_burn_rate"] == pytest.approx(bad / total / 0.01, rel=1e-9)
    assert row["window_minutes"] == 24 * 60
    assert row["error_budget_target_minutes"] == pytest.approx(24 * 60 * 0.01)


def test_latency_sli_counts_the_threshold_bucket_against_the_inf_bucket(
    lake_dir: Path, truth: Truth
) -> None:
    rows = day_rows(lake_dir)

    row = rows["latency"]
    assert row["good_events_count"] == sum(truth.fast[1:])
    assert row["events_count"] == sum(truth.fast[1:]) + sum(truth.slow[1:])


def test_threshold_sli_counts_samples_within_bounds_and_nan_as_bad(
    lake_dir: Path, truth: Truth
) -> None:
    rows = day_rows(lake_dir)

    row = rows["freshness"]
    good = sum(1 for v in truth.lag if not math.isnan(v) and v <= 5)
    assert (row["good_events_count"], row["events_count"]) == (good, len(truth.lag))
    # 80% objective: the day's own budget is 20% of samples, so the status follows from the SLI.
    consumed = (1 - good / len(truth.lag)) / 0.2
    expected = (
        "breached"
        if consumed > 1
        else "critical"
        if consumed >= 0.9
        else "warning"
        if consumed >= 0.5
        else "ok"
    )
    assert row["status"] == expected
    assert row["error_budget_burn_rate"] == pytest.approx(consumed)


def test_events_land_in_the_minute_of_the_later_sample(lake_dir: Path, truth: Truth) -> None:
    config = make_config(lake_dir, services=SERVICES, slos=SLOS)
    build_catalog(config)
    con = report_connection(config, utc(f"{DAY}T00:00:00Z"), utc("2026-11-11T00:00:00Z"))

    hourly = con.execute(
        """SELECT hour(minute), sum(bad_events) FROM slo_events
           WHERE slo_name = 'availability' GROUP BY 1 ORDER BY 1"""
    ).fetchall()

    per_scrape = list(zip(counter(5_000, truth.err_a), truth.err_a, strict=True))
    expected = [
        (h, float(sum(inc for (ts, _), inc in per_scrape[1:] if (ts - START_MS) // HOUR_MS == h)))
        for h in range(HOURS)
    ]
    assert hourly == expected


def test_a_changed_slo_counts_nothing_until_its_history_is_recomputed(
    lake_dir: Path, truth: Truth
) -> None:
    changed = [
        {
            **SLOS[0],
            "sli": {
                "type": "ratio",
                "good": 'http_requests_total{instance="b"}',
                "total": "http_requests_total",
            },
        }
    ]
    day = TimeWindow(utc(f"{DAY}T00:00:00Z"), utc("2026-11-11T00:00:00Z"))

    stale = day_rows(lake_dir, changed)["availability"]
    derive(make_config(lake_dir, services=SERVICES, slos=changed), day, slo_names=["availability"])
    row = day_rows(lake_dir, changed)["availability"]
    derive(make_config(lake_dir, services=SERVICES, slos=SLOS), day, slo_names=["availability"])

    assert stale["events_count"] == 0  # minutes of the old definition are not mixed in
    assert row["good_events_count"] == sum(truth.ok_b[1:])
    assert day_rows(lake_dir)["latency"]["good_events_count"] == sum(truth.fast[1:])


def test_a_latency_threshold_that_is_not_a_bucket_bound_is_refused(lake_dir: Path) -> None:
    wrong = [SLOS[0], {**SLOS[1], "sli": {**SLOS[1]["sli"], "threshold_seconds": 0.3}}]
    config = make_config(lake_dir, services=SERVICES, slos=wrong)

    with pytest.raises(ConfigError) as refused:
        build_catalog(config)

    assert str(refused.value) == (
        "slos[1].sli.threshold_seconds: 0.3 is not a bucket bound of latency_seconds_bucket "
        "(le = 0.1, 0.5, +Inf); set it to one of those bounds"
    )


def test_a_latency_histogram_without_its_inf_bucket_is_refused(lake_dir: Path) -> None:
    """Without +Inf the total is 0 and bad = total - good went negative: "no data" with traffic."""
    narrowed = {**SLOS[1]["sli"], "histogram": 'latency_seconds_bucket{le!="+Inf"}'}
    config = make_config(lake_dir, services=SERVICES, slos=[SLOS[0], {**SLOS[1], "sli": narrowed}])

    with pytest.raises(ConfigError) as refused:
        build_catalog(config)

    assert str(refused.value) == (
        'slos[1].sli.histogram: latency_seconds_bucket{le!="+Inf"} has no le="+Inf" bucket '
        "(le = 0.1, 0.5), which counts every request; every Prometheus histogram exports one, "
        "so widen the selector to include it"
    )


def test_report_period_defaults_to_the_week_ending_with_the_newest_hour(lake_dir: Path) -> None:
    config = make_config(lake_dir, services=SERVICES, slos=SLOS)
    build_catalog(config)

    con = duckdb.connect(config.catalog_path, read_only=True)
    start, end, previous = con.execute(
        "SELECT period_start, period_end, previous_start FROM report_period"
    ).fetchone()

    assert (start.isoformat(), end.isoformat(), previous.isoformat()) == (
        "2026-11-03T04:00:00",
        "2026-11-10T04:00:00",
        "2026-10-27T04:00:00",
    )


def test_a_period_far_wider_than_the_data_evaluates_only_minutes_whose_windows_hold_events(
    lake_dir: Path,
) -> None:
    """Six months around four hours of data: the same burn rates and compliance as a ten-day
    period, and no evaluation where every window is empty (a grid of every minute of a year
    took gigabytes for nothing)."""
    config = make_config(lake_dir, services=SERVICES, slos=SLOS)
    build_catalog(config)
    burn_rates = """SELECT slo_name, window_minutes, count(*), count(burn_rate), sum(bad_events),
                           sum(total_events), min(evaluated_at), max(evaluated_at)
                    FROM slo_burn_rates GROUP BY ALL ORDER BY ALL"""
    compliance = f"""SELECT * FROM slo_compliance
                     WHERE scope = 'day' AND window_start = TIMESTAMP '{DAY}' ORDER BY ALL"""
    results = []
    for start in (f"{DAY}T00:00:00Z", "2026-05-01T00:00:00Z"):
        con = report_connection(config, utc(start), utc("2026-11-20T00:00:00Z"))
        results.append(
            (
                con.execute(burn_rates).fetchall(),
                con.execute(compliance).fetchall(),
                con.execute("SELECT * FROM impact_episodes ORDER BY ALL").fetchall(),
            )
        )
        first, last = con.execute("SELECT min(minute), max(minute) FROM slo_events").fetchone()
        longest = con.execute("SELECT max(window_minutes) FROM slo_burn_rates").fetchone()[0]
        con.close()

    (day_rates, day_compliance, day_impact), (wide_rates, wide_compliance, wide_impact) = results
    assert wide_rates == day_rates and wide_compliance == day_compliance
    assert wide_impact == day_impact and len(day_impact) > 0
    assert {r[6] for r in wide_rates} == {first + timedelta(minutes=1)}
    assert max(r[7] for r in wide_rates) == last + timedelta(minutes=1 + longest)
    assert all(r[3] > 0 for r in wide_rates)


def test_reports_read_only_the_horizon_and_get_the_same_numbers_as_from_all_of_slo_events(
    lake_dir: Path,
) -> None:
    """A report session pins report_slo_events, the report horizon of slo_events, not the whole
    history (which grows with the lake). A one-day period whose horizon starts in the middle of
    the data: the 3-day burn-rate windows at its start still see every event they saw when the
    reports read all of slo_events (the horizon reaches a day plus the longest burn-rate window
    before the previous period, not just the longest window)."""
    config = make_config(lake_dir, services=SERVICES, slos=SLOS)
    build_catalog(config)
    views = ("slo_burn_rates", "impact_episodes", "slo_compliance", "slo_burn_episodes")
    results = []
    for horizon_only in (True, False):
        con = report_connection(config, utc("2026-11-15T02:00:00Z"), utc("2026-11-16T02:00:00Z"))
        if not horizon_only:
            con.execute("CREATE TEMP VIEW report_slo_events AS SELECT * FROM slo_events")
        results.append(
            {v: con.execute(f"SELECT * FROM {v} ORDER BY ALL").fetchall() for v in views}
        )
        if horizon_only:
            horizon = con.execute("SELECT horizon_start FROM report_period").fetchone()[0]
            pinned = con.execute("SELECT count(*), min(minute) FROM report_slo_events").fetchone()
            whole = con.execute(
                "SELECT count(*), count(*) FILTER (WHERE minute >= ?) FROM slo_events", [horizon]
            ).fetchone()
        con.close()

    assert results[0] == results[1]
    assert horizon.isoformat() == f"{DAY}T02:00:00"
    assert pinned == (whole[1], horizon) and 0 < whole[1] < whole[0]
    # The test reaches the edge: 3-day windows starting within the two hours of data after it.
    starts = {
        r[2] - timedelta(days=3) for r in results[0]["slo_burn_rates"] if r[3] == 4320 and r[6]
    }
    assert starts and horizon <= min(starts) and max(starts) < horizon + timedelta(hours=2)


@pytest.mark.parametrize(
    "reports",
    [
        {},
        # impact windows of lengths the alert policy has not, with floors above and below its own
        {"impact_windows": [{"window": "10m", "burn_rate": 4}, {"window": "3h", "burn_rate": 1.2}]},
    ],
)
def test_episodes_from_the_burning_windows_alone_are_those_from_every_window(
    lake_dir: Path, reports: dict[str, Any]
) -> None:
    """A report session keeps slo_burning_windows, not every window of slo_burn_rates (a quarter's
    report of 150 SLOs held 155 M windows, 19 GB). The burn-rate and impact episodes computed from
    them must be those computed from every window: no window either report could pass is left
    out. A period with both kinds of episode, compared with the reports reading slo_burn_rates."""
    config = make_config(lake_dir, services=SERVICES, slos=SLOS, reports=reports)
    build_catalog(config)
    views = ("slo_burn_episodes", "impact_episodes", "incidents", "scorecard")
    results = []
    for burning_only in (True, False):
        con = report_connection(config, utc(f"{DAY}T00:00:00Z"), utc(f"{DAY}T06:00:00Z"))
        pinned = PINNED_REPORTS
        if not burning_only:
            con.execute("CREATE TEMP VIEW slo_burning_windows AS SELECT * FROM slo_burn_rates")
            pinned = tuple(name for name in pinned if name != "slo_burning_windows")
        pin_reports(con, pinned)
        results.append(
            {v: con.execute(f"SELECT * FROM {v} ORDER BY ALL").fetchall() for v in views}
        )
        kept, every = con.execute(
            "SELECT (SELECT count(*) FROM slo_burning_windows), (SELECT count(*) FROM slo_burn_rates)"
        ).fetchone()
        con.close()
        if burning_only:
            assert 0 < kept < every

    assert results[0] == results[1]
    assert results[0]["slo_burn_episodes"] and results[0]["impact_episodes"]


def test_a_report_reads_only_the_days_of_its_horizon_however_long_the_history(
    tmp_path: Path, truth: Truth
) -> None:
    """Reports must not slow down as history grows: a week's reports read the days of their
    horizon, not every day the lake holds, and the default period's end comes from the tables'
    logs. Proof: once an old day's data files are gone from storage (any read of them now fails),
    every report of a recent week, pinned as `obs report` pins them, gives the same rows, and
    the default period is the same. metric_inventory, the lake's whole inventory, is the one
    report that reads every day by definition."""
    config = make_config(tmp_path, services=SERVICES, slos=SLOS)
    lake = Lake(config)
    old = timedelta(days=40).total_seconds() * 1000
    up = MetricSeries("up", {"service": "shop", "job": "shop"}, [(t, 1.0) for t in scrapes(0)])
    series = [*truth.series(), up]
    write_metrics(lake, series)
    write_metrics(
        lake,
        [MetricSeries(s.metric, s.labels, [(t - old, v) for t, v in s.samples]) for s in series],
    )
    build_catalog(config)
    names = [name for name in report_queries() if name != "metric_inventory"]

    def reports() -> dict[str, list[tuple[Any, ...]]]:
        con = report_connection(config, utc("2026-11-04T00:00:00Z"), utc("2026-11-11T00:00:00Z"))
        pin_reports(con)
        rows = {
            name: con.execute(f"SELECT * FROM {name} ORDER BY ALL").fetchall() for name in names
        }
        con.close()
        return rows

    def default_period() -> tuple[Any, ...]:
        con = report_connection(config)  # the default end: the newest hour with data
        period = con.execute("SELECT * FROM report_period").fetchone()
        con.close()
        return period

    before, default_before = reports(), default_period()
    old_day = [f for f in (tmp_path / "lake").rglob("*.parquet") if "/dt=2026-10-01/" in str(f)]
    datasets = {f.relative_to(tmp_path / "lake" / "delta").parts[0] for f in old_day}
    assert datasets >= {"metric_samples", "sli_minutes", "up_minutes", "series_inventory"}
    found_by_sql = duckdb.connect(config.catalog_path, read_only=True)
    assert found_by_sql.execute("SELECT * FROM report_period").fetchone() == default_before
    found_by_sql.close()
    assert default_before[1].isoformat() == f"{DAY}T04:00:00"
    for f in old_day:
        if "metric_series" not in f.parts:  # metric_series is one row per series, whole history
            f.unlink()

    assert reports() == before
    assert default_period() == default_before
    assert any(before[name] for name in ("slo_compliance", "service_uptime", "coverage"))
    con = duckdb.connect(config.catalog_path, read_only=True)
    with pytest.raises(duckdb.Error):
        con.execute("SELECT count(*) FROM sli_minutes").fetchall()
    con.close()


def test_without_file_statistics_the_default_end_is_found_by_reading_the_data(
    tmp_path: Path, truth: Truth
) -> None:
    """Delta's per-file statistics are optional: when a writer left them out, the default period
    end cannot come from the log, and report_period's scan finds the same end."""
    config = make_config(tmp_path, services=SERVICES, slos=SLOS)
    write_metrics(Lake(config), truth.series())
    build_catalog(config)
    from_log = newest_data_end(config)
    assert from_log is not None and from_log.isoformat() == f"{DAY}T04:00:00+00:00"

    for commit in Path(table_uri(config, "sli_minutes"), "_delta_log").glob("*.json"):
        actions = [json.loads(line) for line in commit.read_text().splitlines()]
        for action in actions:
            action.get("add", {}).pop("stats", None)
        commit.write_text("".join(json.dumps(action) + "\n" for action in actions))

    assert newest_data_end(config) is None
    con = report_connection(config)
    assert con.execute("SELECT period_end FROM report_period").fetchone()[0] == from_log.replace(
        tzinfo=None
    )
    con.close()


def test_budget_boundaries_are_decided_by_the_counts_not_by_rounding(tmp_path: Path) -> None:
    """An SLI exactly at its objective has spent exactly its budget (0 left, not -8.9e-16) and
    one at half its budget is a warning (consumed 0.5, not 0.4999999999999968)."""

    def slo(name: str, objective: float, metric: str) -> dict[str, Any]:
        return {
            "name": name,
            "service": "shop",
            "objective": objective,
            "window": "1d",
            "sli": {"type": "ratio", "bad": f'{metric}{{code="500"}}', "total": metric},
        }

    config = make_config(
        tmp_path,
        services=SERVICES,
        slos=[slo("half", 0.985, "a_total"), slo("exact", 0.99, "b_total")],
    )
    start, end = ms(f"{DAY}T10:00:00Z"), ms(f"{DAY}T10:00:15Z")
    write_metrics(
        Lake(config),
        [
            MetricSeries(
                "a_total", {"service": "shop", "code": "200"}, [(start, 0.0), (end, 3970.0)]
            ),
            MetricSeries(
                "a_total", {"service": "shop", "code": "500"}, [(start, 0.0), (end, 30.0)]
            ),
            MetricSeries(
                "b_total", {"service": "shop", "code": "200"}, [(start, 0.0), (end, 99.0)]
            ),
            MetricSeries("b_total", {"service": "shop", "code": "500"}, [(start, 0.0), (end, 1.0)]),
        ],
    )
    build_catalog(config)
    con = report_connection(config, utc(f"{DAY}T00:00:00Z"), utc("2026-11-11T00:00:00Z"))
    rows = con.execute(
        """SELECT slo_name, gap, error_budget_consumed, error_budget_remaining,
                  error_budget_remaining_minutes, status
           FROM slo_compliance WHERE scope = 'day' ORDER BY slo_name"""
    ).fetchall()
    con.close()

    assert rows == [
        ("exact", 0.0, 1.0, 0.0, 0.0, "critical"),
        ("half", rows[1][1], 0.5, 0.5, rows[1][4], "warning"),
    ]
    assert rows[1][1] > 0 and rows[1][4] == pytest.approx(1440 * 0.0075)


GAP_SLO = {
    "name": "avail",
    "service": "shop",
    "objective": 0.99,
    "window": "1d",
    "sli": {"type": "ratio", "bad": 'req_total{code="500"}', "total": "req_total"},
}


@pytest.mark.parametrize("batching", ["one run", "hourly runs"])
def test_an_increase_across_a_scrape_gap_of_hours_counts_the_same_however_ingest_is_batched(
    tmp_path: Path, batching: str
) -> None:
    # The 12:09 samples' predecessors (10:59) are two hours back: the gap's increase is not
    # counted, by a backfill over the three hours as by the hourly runs (which cannot see it).
    stamps = [ms(f"{DAY}T10:00:00Z"), ms(f"{DAY}T10:59:00Z"), ms(f"{DAY}T12:09:00Z")]
    values = {"200": [0.0, 100.0, 200.0], "500": [0.0, 10.0, 20.0]}

    def series(lo: int, hi: int) -> list[MetricSeries]:
        return [
            MetricSeries(
                "req_total",
                {"service": "shop", "code": code},
                [(t, v) for t, v in zip(stamps, vs, strict=True) if lo <= t < hi],
            )
            for code, vs in values.items()
        ]

    config = make_config(tmp_path, services=[{"name": "shop", "owner": "t"}], slos=[GAP_SLO])
    if batching == "one run":
        write_metrics(Lake(config), series(0, 2**62))
    else:
        for hour in ("10", "12"):
            lo = ms(f"{DAY}T{hour}:00:00Z")
            write_metrics(Lake(config), series(lo, lo + HOUR_MS))
    build_catalog(config)

    con = report_connection(config, utc(f"{DAY}T00:00:00Z"), utc("2026-11-11T00:00:00Z"))
    found = con.execute(
        "SELECT bad_events_count, events_count FROM slo_compliance WHERE scope = 'day'"
    ).fetchall()
    con.close()
    assert found == [(10.0, 110.0)]


def test_rolling_windows_across_days_count_exactly_the_minutes_between_their_bounds(
    tmp_path: Path, truth: Truth
) -> None:
    """slo_compliance sums a window's whole days from per-day totals and only the minutes of its
    first and last day one by one. Windows of 3 days ending at 03:30 start and end inside a day
    with whole days between: each window's counts, minutes with events, uncertain events and
    resolution are those of the minutes of slo_events in [window_start, window_end)."""
    slos = [{**slo, "window": "3d"} for slo in SLOS]
    config = make_config(tmp_path, services=SERVICES, slos=slos)
    lake = Lake(config)
    day_ms = timedelta(days=1).total_seconds() * 1000
    for days_before in (3, 2, 1, 0):
        write_metrics(
            lake,
            [
                MetricSeries(
                    s.metric, s.labels, [(t - days_before * day_ms, v) for t, v in s.samples]
                )
                for s in truth.series()
            ],
        )
    build_catalog(config)
    con = report_connection(config, utc("2026-11-08T01:30:00Z"), utc(f"{DAY}T03:30:00Z"))
    pin_reports(con)
    rows = con.execute(
        """SELECT c.slo_name, c.scope, c.window_start, c.window_end, c.good_events_count,
                  c.bad_events_count, c.events_count, c.data_coverage, c.uncertain_events_count,
                  c.resolution,
                  coalesce(sum(e.good_events), 0), coalesce(sum(e.bad_events), 0),
                  coalesce(sum(e.total_events), 0),
                  count(e.minute) FILTER (WHERE e.total_events > 0) / any_value(c.window_minutes),
                  coalesce(sum(e.uncertain_events), 0),
                  CASE WHEN count(e.minute) > 0 THEN 'raw' END
           FROM slo_compliance AS c
           LEFT JOIN slo_events AS e
               ON e.slo_name = c.slo_name AND e.minute >= c.window_start
              AND e.minute < c.window_end
           GROUP BY ALL ORDER BY ALL"""
    ).fetchall()
    con.close()

    rolling = [r for r in rows if r[1] == "rolling"]
    assert len(rolling) == 3 * 3  # three SLOs, windows ending 11-09, 11-10 and 11-10 03:30
    crossing = [r for r in rolling if r[2].date() < r[3].date() - timedelta(days=1)]
    assert crossing and any(r[2].hour or r[2].minute for r in crossing)
    for row in rows:
        assert row[4:10] == row[10:16], row[:4]
    assert any(r[6] > 0 for r in crossing)
