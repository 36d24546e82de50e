"""SLI history that never decays: reports read derived datasets, so every number is the same
before and after raw samples age out, and SLO minutes are exact across hour boundaries, counter
resets and the boundary between rollups and raw samples."""

import random
from datetime import timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import yaml

from obs_pipelines.config import load_config
from obs_pipelines.lake import Lake
from obs_pipelines.lake.catalog import build_catalog, connect, refresh_catalog
from obs_pipelines.lake.ingest import ingest_metrics_hour, ingest_table_hour
from obs_pipelines.lake.tiering import run_tiering
from obs_pipelines.reporting.derived import derive
from obs_pipelines.reporting.reports import report_connection
from obs_pipelines.sources import metric_source, table_source
from obs_pipelines.windows import TimeWindow, utc
from tests.report_fixtures import (
    SCRAPE_MS,
    MetricSeries,
    every_report,
    make_config,
    ms,
    write_metrics,
)
from tests.test_cli import obs

pytestmark = pytest.mark.integration  # builds catalogs with every report: seconds per test

REPO = Path(__file__).resolve().parent.parent
AGES = {"hot": "1d", "warm": "2d", "cold": "60d"}
RETENTION = {
    "metrics": AGES,
    "logs": AGES,
    "traces": AGES,
    "alerts": AGES,
    "metric_resolutions": {"5m": "60d", "1h": "60d"},
}
RATIO_SLO = {
    "name": "availability",
    "service": "shop",
    "objective": 0.99,
    "window": "1d",
    "sli": {
        "type": "ratio",
        "bad": 'http_requests_total{code=~"5.."}',
        "total": "http_requests_total",
    },
}


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two days of the simulated platform, every dataset, with the derived datasets."""
    root = tmp_path_factory.mktemp("history")
    raw = yaml.safe_load((REPO / "obs.yaml").read_text())
    raw["lake"] = {
        "root": str(root / "lake"),
        "catalog": str(root / "lake" / "obs.duckdb"),
        "delete_delay": "0s",
    }
    raw["retention"] = RETENTION
    raw["reports"] = {**raw.get("reports", {}), "period": "1d"}
    (root / "obs.yaml").write_text(yaml.safe_dump(raw))
    config = load_config(root / "obs.yaml")
    lake = Lake(config)
    window = TimeWindow(utc("2026-11-04T00:00:00Z"), utc("2026-11-06T00:00:00Z"))
    metrics = metric_source(config)
    tables = [table_source(config, d) for d in ("alert_fragments", "alert_rules", "spans")]
    for hour in window.hours():
        ingest_metrics_hour(lake, metrics, hour)
        for source in tables:
            assert source is not None
            ingest_table_hour(lake, source, hour)
    derive(config, window)
    return root / "obs.yaml"


def test_every_report_is_unchanged_after_raw_samples_age_out(simulated: Path) -> None:
    config = load_config(simulated)
    build_catalog(config)
    con = report_connection(config)
    before = every_report(con)
    con.close()
    assert any(row[2] for row in before["slo_events"])  # the reports have data to compare

    result = run_tiering(config, utc("2026-11-09T00:00:00Z"))
    build_catalog(config)
    con = connect(config)
    raw_left = con.execute("SELECT count(*) FROM metric_samples").fetchone()[0]
    con.close()
    con = report_connection(config)
    after = every_report(con)
    con.close()

    assert result.problems == []
    assert raw_left == 0
    assert {k: v for k, v in after.items() if v != before[k]} == {}


def minute_series(start: str, minutes: int, phase_ms: int = 0) -> list[int]:
    first = ms(start) + phase_ms
    return [first + k * SCRAPE_MS for k in range(minutes * 60_000 // SCRAPE_MS)]


def counting(
    stamps: list[int], increments: list[int], reset_at: int | None = None
) -> list[tuple[int, float]]:
    value, out = 0, []
    for ts, inc in zip(stamps, increments, strict=True):
        if reset_at is not None and ts == reset_at:
            value = 0
        value += inc
        out.append((ts, float(value)))
    return out


def sli_totals(config: Any, by: str = "day") -> dict[tuple[str, Any], tuple[float, float]]:
    refresh_catalog(config)  # rebuilt when an SLO changed
    con = connect(config)
    rows = con.execute(
        f"""SELECT slo_name, date_trunc('{by}', minute), sum(total_events), sum(bad_events)
            FROM slo_events GROUP BY ALL ORDER BY ALL"""
    ).fetchall()
    con.close()
    return {(name, at): (total, bad) for name, at, total, bad in rows}


def test_a_reset_just_after_an_hour_boundary_counts_exactly_in_its_minute(tmp_path: Path) -> None:
    config = make_config(tmp_path, services=[{"name": "shop", "owner": "team"}], slos=[RATIO_SLO])
    stamps = minute_series("2026-11-10T00:58:00Z", 4, phase_ms=5_000)
    increments = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3]
    reset_at = ms("2026-11-10T01:00:05Z")  # the first sample of 01:00, after 00:59:50
    values = counting(stamps, increments, reset_at)
    lake = Lake(config)
    write_metrics(
        lake, [MetricSeries("http_requests_total", {"service": "shop", "code": "200"}, values)]
    )
    for hour in ("00", "01"):  # as two ingest runs, each derives its own hour
        derive(
            config,
            TimeWindow(
                utc(f"2026-11-10T{hour}:00:00Z"),
                utc(f"2026-11-10T{hour}:00:00Z") + timedelta(hours=1),
            ),
        )

    totals = sli_totals(config, by="minute")

    minute = utc("2026-11-10T01:00:00Z").replace(tzinfo=None)
    first = stamps.index(reset_at)
    assert totals[("availability", minute)][0] == sum(increments[first : first + 4])
    assert sum(t for t, _ in totals.values()) == sum(increments[1:])


def two_days_of_requests() -> tuple[list[MetricSeries], int, int]:
    rng = random.Random(5)
    stamps = minute_series("2026-11-10T00:00:00Z", 2 * 24 * 60, phase_ms=7_000)
    ok = [rng.randint(0, 40) for _ in stamps]
    errors = [rng.randint(0, 2) for _ in stamps]
    reset = stamps[len(stamps) // 3]
    series = [
        MetricSeries(
            "http_requests_total", {"service": "shop", "code": "200"}, counting(stamps, ok, reset)
        ),
        MetricSeries(
            "http_requests_total", {"service": "shop", "code": "500"}, counting(stamps, errors)
        ),
    ]
    return series, sum(ok[1:]) + sum(errors[1:]), sum(errors[1:])


def aged_config(tmp_path: Path, slo: dict[str, Any], **retention: Any) -> Any:
    return make_config(
        tmp_path,
        services=[{"name": "shop", "owner": "team"}],
        slos=[slo],
        lake={
            "root": str(tmp_path / "lake"),
            "catalog": str(tmp_path / "lake" / "obs.duckdb"),
            "delete_delay": "0s",
        },
        retention={**RETENTION, **retention},
    )


def test_the_raw_to_rollup_boundary_loses_no_increase(tmp_path: Path) -> None:
    config = aged_config(tmp_path, RATIO_SLO)
    series, total, bad = two_days_of_requests()
    write_metrics(Lake(config), series)
    days = TimeWindow(utc("2026-11-10T00:00:00Z"), utc("2026-11-12T00:00:00Z"))
    from_raw = sli_totals(config)

    run_tiering(config, utc("2026-11-13T00:00:00Z"))  # the first day is rollups only
    derive(config, days)  # recomputed: day one from 5m rollups, day two from raw samples
    recomputed = sli_totals(config)

    con = connect(config)
    resolutions = dict(
        con.execute("SELECT resolution, count(*) FROM sli_minutes GROUP BY ALL").fetchall()
    )
    con.close()
    assert set(resolutions) == {"raw", "5m"}
    assert sum(t for t, _ in from_raw.values()) == total
    assert sum(t for t, _ in recomputed.values()) == total
    assert sum(b for _, b in recomputed.values()) == bad
    assert recomputed == from_raw


def counted_increase(samples: list[tuple[int, float]]) -> float:
    """The events a counter's samples count by the predecessor rule, one sample at a time: from
    the sample before only when that one lies in the same UTC hour or the hour just before."""
    total = 0.0
    for (before_ts, before), (ts, value) in pairwise(samples):
        if before_ts // 3_600_000 >= ts // 3_600_000 - 1:
            total += value - before if value >= before else value
    return total


def gapped(samples: list[tuple[int, float]], *gaps: tuple[str, str]) -> list[tuple[int, float]]:
    """``samples`` without those in each [start, end) of ``gaps`` (a scrape gap)."""
    cut = [(ms(start), ms(end)) for start, end in gaps]
    return [(ts, v) for ts, v in samples if not any(lo <= ts < hi for lo, hi in cut)]


@pytest.mark.parametrize(
    ("tiered_at", "resolutions", "hour_by_hour"),
    [("2026-11-13T00:00:00Z", {"raw", "5m"}, True), ("2026-11-14T00:00:00Z", {"5m"}, False)],
)
def test_a_scrape_gap_of_hours_counts_the_same_from_raw_samples_and_from_rollups(
    tmp_path: Path, tiered_at: str, resolutions: set[str], hour_by_hour: bool
) -> None:
    config = aged_config(tmp_path, RATIO_SLO)
    series, _, _ = two_days_of_requests()
    # 200: no sample 05:00-06:59 (04:59 -> 07:00, two hours back: nothing counted) nor across
    # midnight 22:00-23:59 (day two's first sample, at the raw/rollup boundary, counts nothing);
    # 500: none 10:01-11:58 (10:00 -> 11:59 is the hour just before: the gap's increase counts).
    series[0].samples = gapped(
        series[0].samples,
        ("2026-11-10T05:00:00Z", "2026-11-10T07:00:00Z"),
        ("2026-11-10T22:00:00Z", "2026-11-11T00:00:00Z"),
    )
    series[1].samples = gapped(series[1].samples, ("2026-11-10T10:01:00Z", "2026-11-10T11:59:00Z"))
    total = sum(counted_increase(s.samples) for s in series)
    bad = counted_increase(series[1].samples)
    write_metrics(Lake(config), series)
    days = TimeWindow(utc("2026-11-10T00:00:00Z"), utc("2026-11-12T00:00:00Z"))
    from_raw = sli_totals(config, by="hour")
    if hour_by_hour:  # the hourly schedule counts the same as the backfill (checked once)
        for hour in days.hours():
            derive(config, hour)
    else:
        derive(config, days)
    hourly = sli_totals(config, by="hour")

    run_tiering(config, utc(tiered_at))
    derive(config, days)  # recomputed from rollups where raw samples are gone
    recomputed = sli_totals(config, by="hour")

    con = connect(config)
    found = {r for (r,) in con.execute("SELECT DISTINCT resolution FROM sli_minutes").fetchall()}
    con.close()
    assert found == resolutions
    assert recomputed == hourly == from_raw
    assert sum(t for t, _ in from_raw.values()) == total
    assert sum(b for _, b in from_raw.values()) == bad


def test_an_slo_changed_after_raw_data_aged_out_is_recomputed_from_rollups(tmp_path: Path) -> None:
    config = aged_config(tmp_path, RATIO_SLO)
    series, total, _ = two_days_of_requests()
    write_metrics(Lake(config), series)
    run_tiering(config, utc("2026-11-14T00:00:00Z"))  # both days are rollups only
    only_500 = {**RATIO_SLO, "sli": {**RATIO_SLO["sli"], "bad": 'http_requests_total{code="500"}'}}
    changed = aged_config(tmp_path, only_500)
    assert sli_totals(changed) == {}  # the old definition's minutes are not counted

    derive(
        changed,
        TimeWindow(utc("2026-11-10T00:00:00Z"), utc("2026-11-12T00:00:00Z")),
        slo_names=["availability"],
    )

    totals = sli_totals(changed)
    con = connect(changed)
    resolutions = {
        r for (r,) in con.execute("SELECT DISTINCT resolution FROM slo_events").fetchall()
    }
    con.close()
    assert resolutions == {"5m"}
    assert sum(t for t, _ in totals.values()) == total
    errors_500 = sum(s.samples[-1][1] for s in series if s.labels["code"] == "500")
    assert sum(b for _, b in totals.values()) == errors_500 - series[1].samples[0][1]


def test_a_threshold_sli_from_rollups_brackets_the_raw_count(tmp_path: Path) -> None:
    gauge_slo = {
        "name": "freshness",
        "service": "shop",
        "objective": 0.9,
        "window": "1d",
        "sli": {"type": "threshold", "gauge": "queue_lag_seconds", "max": 5},
    }
    config = aged_config(tmp_path, gauge_slo)
    rng = random.Random(9)
    stamps = minute_series("2026-11-10T00:00:00Z", 24 * 60, phase_ms=3_000)
    lag = [
        rng.choice([0.5, 1.0, 2.0, 3.0]) if (i // 40) % 5 else rng.choice([1.0, 9.0])
        for i, _ in enumerate(stamps)
    ]
    write_metrics(
        Lake(config),
        [
            MetricSeries(
                "queue_lag_seconds", {"service": "shop"}, list(zip(stamps, lag, strict=True))
            )
        ],
    )
    raw_good = sum(1 for v in lag if v <= 5)

    run_tiering(config, utc("2026-11-13T00:00:00Z"))
    derive(config, TimeWindow(utc("2026-11-10T00:00:00Z"), utc("2026-11-11T00:00:00Z")))
    build_catalog(config)
    con = connect(config)
    good, bad, uncertain, total = con.execute(
        "SELECT sum(good_events), sum(bad_events), sum(uncertain_events), sum(total_events) FROM slo_events"
    ).fetchone()
    con.close()

    assert total == len(stamps) and good + bad + uncertain == total
    assert good <= raw_good <= good + uncertain
    assert uncertain > 0 and good > 0


def test_obs_slo_recompute_backfills_a_changed_slo_through_dagster(tmp_path: Path) -> None:
    config = aged_config(tmp_path, RATIO_SLO)
    series, _, _ = two_days_of_requests()
    write_metrics(Lake(config), series)
    config_file = tmp_path / "obs.yaml"
    body = yaml.safe_load(config_file.read_text())
    body["slos"][0]["sli"]["bad"] = 'http_requests_total{code="500"}'
    config_file.write_text(yaml.safe_dump(body))
    changed = load_config(config_file)
    assert sli_totals(changed) == {}

    done = obs(
        "--config",
        str(config_file),
        "slo",
        "recompute",
        "--slo",
        "availability",
        "--from",
        "2026-11-10T00:00:00Z",
        "--to",
        "2026-11-11T00:00:00Z",
        env={"DAGSTER_HOME": str(tmp_path / "dagster")},
    )

    assert done.returncode == 0, done.stderr
    assert "recomputed availability for" in done.stdout
    day_one = sli_totals(changed)
    errors = [v for ts, v in series[1].samples if ts < ms("2026-11-11T00:00:00Z")]
    assert day_one == {
        ("availability", utc("2026-11-10T00:00:00Z").replace(tzinfo=None)): (
            day_one[("availability", utc("2026-11-10T00:00:00Z").replace(tzinfo=None))][0],
            errors[-1] - errors[0],
        )
    }
    unknown = obs("--config", str(config_file), "slo", "recompute", "--slo", "nope")
    assert unknown.returncode == 2 and "no SLO named nope" in unknown.stderr
    assert len(unknown.stderr.strip().splitlines()) == 1


def test_compliance_says_how_exact_each_window_is(simulated: Path) -> None:
    config = load_config(simulated)
    build_catalog(config)
    con = report_connection(config)
    rows = con.execute(
        "SELECT DISTINCT resolution, uncertain_events_count FROM slo_compliance WHERE scope = 'day'"
    ).fetchall()
    con.close()
    assert rows == [("raw", 0.0)]


def test_a_long_slo_list_is_derived_in_one_pass(tmp_path: Path) -> None:
    """Twelve SLOs of the simulated platform in one derivation: each has events every minute."""
    raw = yaml.safe_load((REPO / "obs.yaml").read_text())
    raw["lake"] = {
        "root": str(tmp_path / "lake"),
        "catalog": str(tmp_path / "obs.duckdb"),
    }
    raw["slos"] = [{**s, "name": f"{s['name']}_{i}"} for i in range(4) for s in raw["slos"]]
    (tmp_path / "obs.yaml").write_text(yaml.safe_dump(raw))
    config = load_config(tmp_path / "obs.yaml")
    window = TimeWindow(utc("2026-11-10T00:00:00Z"), utc("2026-11-10T02:00:00Z"))
    lake, metrics = Lake(config), metric_source(config)
    for hour in window.hours():
        ingest_metrics_hour(lake, metrics, hour)

    result = derive(config, window)

    assert len(config.slos) == 12
    assert result.rows["sli_minutes"] == 12 * 120  # every SLO has events in every minute


def test_derived_minutes_outlive_raw_samples_and_rollups_through_a_recompute(
    tmp_path: Path,
) -> None:
    """Logs kept for 60 days keep the derived datasets that long; once metrics and their rollups
    are gone after 3, recomputing an SLO has nothing to read and must not erase its minutes."""
    short = {"hot": "1d", "warm": "2d", "cold": "3d"}
    config = aged_config(
        tmp_path, RATIO_SLO, metrics=short, metric_resolutions={"5m": "3d", "1h": "3d"}
    )
    series, total, bad = two_days_of_requests()
    write_metrics(Lake(config), series)
    days = TimeWindow(utc("2026-11-10T00:00:00Z"), utc("2026-11-12T00:00:00Z"))
    derive(config, days)
    before = sli_totals(config)
    run_tiering(config, utc("2026-11-20T00:00:00Z"))  # metrics and rollups aged out
    con = connect(config)
    samples = con.execute("SELECT count(*) FROM metric_samples").fetchone()
    rollups = con.execute("SELECT count(*) FROM metric_rollups").fetchone()
    con.close()
    assert (samples, rollups) == ((0,), (0,))

    result = derive(config, days, slo_names=["availability"])

    assert result.hours_without_data == 48
    assert sli_totals(config) == before
    assert sum(t for t, _ in before.values()) == total
    assert sum(b for _, b in before.values()) == bad
