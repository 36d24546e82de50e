"""The embedded Waardhaven simulator behaves like a scraped Prometheus would."""

from datetime import timedelta

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from obs_pipelines.config import SimulatorConfig
from obs_pipelines.sources.simulator import INCIDENTS, SimulatedMetrics
from obs_pipelines.windows import TimeWindow, utc

# 2026-11-18 is a Wednesday: the weekly api-outage runs 14:00-14:25 UTC.
OUTAGE_DAY = utc("2026-11-18T00:00:00Z")


def read(window: TimeWindow, seed: int = 42) -> tuple[pa.Table, pa.Table]:
    chunks = list(SimulatedMetrics(SimulatorConfig(seed=seed)).read_metrics(window))
    return pa.concat_tables([c.series for c in chunks]), pa.concat_tables(
        [c.samples for c in chunks]
    )


def joined(series: pa.Table, samples: pa.Table) -> duckdb.DuckDBPyConnection:
    """A connection with a view `rows`: every sample with its series' metric, labels and instance."""
    con = duckdb.connect()
    con.register("series", series)
    con.register("samples", samples)
    con.execute(
        """CREATE TABLE rows AS SELECT s.metric, s.labels, s.instance, x.series_id, epoch_ms(x.ts) AS ts, x.value
           FROM samples x JOIN series s USING (series_id)"""
    )
    return con


def test_the_same_window_is_the_same_bits_every_time() -> None:
    window = TimeWindow(OUTAGE_DAY.replace(hour=13), OUTAGE_DAY.replace(hour=14))
    first, again = read(window), read(window)
    assert first[0].equals(again[0])
    assert first[1].equals(again[1])
    assert not read(window, seed=7)[1].equals(first[1])


def test_hour_windows_concatenate_into_the_two_hour_window() -> None:
    two_hours = TimeWindow(OUTAGE_DAY.replace(hour=3), OUTAGE_DAY.replace(hour=5))
    _, whole = read(two_hours)
    parts = [read(hour)[1] for hour in two_hours.hours()]
    key = [("series_id", "ascending"), ("ts", "ascending")]
    assert whole.sort_by(key).equals(pa.concat_tables(parts).sort_by(key))


def test_samples_stay_inside_the_window_at_15s_with_millisecond_jitter() -> None:
    window = TimeWindow(OUTAGE_DAY.replace(hour=9), OUTAGE_DAY.replace(hour=10))
    _, samples = read(window)
    ts = samples.column("ts").cast(pa.int64()).to_numpy()
    assert ts.min() >= window.start_ms and ts.max() < window.end_ms
    per_series = duckdb.sql(
        "SELECT series_id, list(epoch_ms(ts) ORDER BY ts) AS t FROM samples GROUP BY 1"
    ).fetchall()
    gaps = np.concatenate([np.diff(t) for _, t in per_series])
    assert gaps.min() >= 14_990 and gaps.max() <= 15_010
    assert (gaps != 15_000).mean() > 0.5


def test_counters_only_drop_at_restarts_and_histograms_are_cumulative() -> None:
    window = TimeWindow(
        OUTAGE_DAY.replace(hour=3), OUTAGE_DAY.replace(hour=5)
    )  # nightly deploy at 04:00
    con = joined(*read(window))
    counters = con.sql(
        """SELECT series_id, instance, list(value ORDER BY ts) AS v FROM rows
           WHERE metric LIKE '%_total' OR metric LIKE '%_count' OR metric LIKE '%_bucket' GROUP BY ALL"""
    ).fetchall()
    drops_per_instance: dict[str, set[int]] = {}
    for _, instance, values in counters:
        diffs = np.diff(values)
        drops_per_instance.setdefault(instance, set()).add(int((diffs < 0).sum()))
    assert all(drops <= {0, 1} for drops in drops_per_instance.values())
    assert any(1 in drops for drops in drops_per_instance.values()), (
        "the nightly deploy must reset counters"
    )
    not_cumulative = con.sql(
        """WITH b AS (SELECT labels['endpoint'] AS ep, labels['status'] AS st, instance, ts,
                       CASE WHEN labels['le'] = '+Inf' THEN 1e308 ELSE CAST(labels['le'] AS DOUBLE) END AS le, value
                     FROM rows WHERE metric = 'api_request_duration_seconds_bucket')
           SELECT count(*) FROM (SELECT value < lag(value) OVER (PARTITION BY ep, st, instance, ts ORDER BY le) AS bad FROM b)
           WHERE bad"""
    ).fetchone()[0]
    assert not_cumulative == 0
    inf_equals_count = con.sql(
        """SELECT bool_and(b.value = c.value) FROM rows b JOIN rows c
           ON b.instance = c.instance AND b.ts = c.ts AND b.labels['endpoint'] = c.labels['endpoint'] AND b.labels['status'] = c.labels['status']
           WHERE b.metric = 'api_request_duration_seconds_bucket' AND b.labels['le'] = '+Inf' AND c.metric = 'api_request_duration_seconds_count'"""
    ).fetchone()[0]
    assert inf_equals_count


def test_the_api_outage_shows_in_errors_and_up() -> None:
    outage = next(i for i in INCIDENTS if i.name == "api-outage")
    start = OUTAGE_DAY + outage.start - timedelta(days=2)
    window = TimeWindow(start.replace(minute=0), start.replace(minute=0) + timedelta(hours=1))
    con = joined(*read(window))
    error_share = con.sql(
        """WITH inc AS (SELECT labels['status'] AS st, series_id, max(value) - min(value) AS n
                        FROM rows WHERE metric = 'api_request_duration_seconds_count' AND instance LIKE '%-1:%'
                        AND ts BETWEEN epoch_ms(TIMESTAMP '2026-11-18 14:01:00') AND epoch_ms(TIMESTAMP '2026-11-18 14:24:00')
                        GROUP BY ALL)
           SELECT sum(n) FILTER (WHERE st = '500') / sum(n) FROM inc"""
    ).fetchone()[0]
    assert error_share == pytest.approx(0.3, abs=0.08)
    down = con.sql("SELECT count(*) FROM rows WHERE metric = 'up' AND value = 0").fetchone()[0]
    assert down == 40  # instance 0 is down for 10 minutes of 15 s scrapes


def test_every_seed_service_reports_up_and_market_data_reports_its_lag() -> None:
    con = joined(*read(TimeWindow(OUTAGE_DAY, OUTAGE_DAY.replace(hour=1))))
    services = {
        r[0] for r in con.sql("SELECT DISTINCT instance FROM rows WHERE metric = 'up'").fetchall()
    }
    assert len(services) == 16
    lag = con.sql(
        "SELECT count(*) FROM rows WHERE metric = 'data_pipeline_lag_seconds' AND labels['pipeline'] = 'market-data'"
    ).fetchone()[0]
    assert lag == 480


def test_one_source_reading_hour_after_hour_gives_the_bits_of_fresh_ones() -> None:
    """A run reads its hours in order through one source, which continues each counter's sum
    from the previous hour: the bits must be those of a source that sums from the restart
    (a nightly deploy at 02:00 UTC, an instance crash and the api outage lie in this range)."""
    hours = list(TimeWindow(OUTAGE_DAY, OUTAGE_DAY + timedelta(hours=26)).hours())
    source = SimulatedMetrics(SimulatorConfig(seed=42))
    order = [*hours, hours[5], hours[3], *hours[3:6]]  # then back, and over again
    for hour in order:
        continued = pa.concat_tables([c.samples for c in source.read_metrics(hour)])
        assert continued.equals(read(hour)[1]), hour
