"""Freshness sensors: gaps in the lake are repaired once, breaches reach a real Alertmanager and
are resolved when freshness returns; source lag in a real Prometheus raises and clears alerts."""

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dagster import DagsterInstance, Definitions, build_sensor_context

from assets.metrics import build_metric_ingest
from assets.partitions import hourly_partitions
from assets.resources import ObsResource
from obs_pipelines.config import SourceLagRuleConfig, load_config
from obs_pipelines.datasets import SCHEMAS
from obs_pipelines.durations import format_duration
from obs_pipelines.lake import Lake
from obs_pipelines.operations.freshness import lake_freshness_from_config
from obs_pipelines.operations.notify import Alertmanager
from obs_pipelines.windows import HOUR, TimeWindow, floor_hour
from sensors.freshness import (
    build_lake_freshness_sensor,
    build_source_freshness_sensor,
    with_freshness,
)
from sensors.schedules import metrics_ingest_job
from tests import servers
from tests.servers import Sample, Series

METRIC_DATASETS = ("metric_series", "metric_samples")
# The seed's data_freshness SLO: 99% of 24 h with the market-data lag within 5 s.
DATA_FRESHNESS_SLO = {
    "name": "data_freshness",
    "service": "market-data",
    "objective": 0.99,
    "window": "24h",
    "sli": {
        "type": "threshold",
        "gauge": 'data_pipeline_lag_seconds{pipeline="market-data"}',
        "max": 5,
    },
}


def _write_hours(lake: Lake, hours: list[TimeWindow]) -> None:
    for dataset in METRIC_DATASETS:
        for hour in hours:
            lake.write_hot(dataset, hour, SCHEMAS[dataset].empty_table())


def _hours(first: datetime, count: int) -> list[TimeWindow]:
    return [TimeWindow(first + i * HOUR, first + (i + 1) * HOUR) for i in range(count)]


def _tick(sensor, config_path: Path, cursor: str | None, instance: DagsterInstance):
    partitions = hourly_partitions(load_config(config_path).ingest.start)
    obs = ObsResource(config_path=str(config_path))
    defs = Definitions(
        assets=[build_metric_ingest(partitions)],
        jobs=[metrics_ingest_job],
        sensors=[sensor],
        resources={"obs": obs},
    )
    context = build_sensor_context(
        instance=instance, cursor=cursor, resources={"obs": obs}, definitions=defs
    )
    return sensor(context)


def _wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_lake_gap_is_requested_once_and_breach_raised_then_resolved(
    write_config: Callable[..., Path],
    webhook_alertmanager: str,
    webhook: tuple[str, list[dict]],
) -> None:
    now = datetime.now(UTC)
    current = floor_hour(now)
    config_path = write_config(
        ingest={"start": (current - timedelta(days=2)).isoformat()},
        freshness={"metric_samples": "2h", "metric_series": "2h"},
        sources={"alertmanager": {"url": webhook_alertmanager}},
    )
    lake = Lake(load_config(config_path))
    # Hours current-12h .. current-4h are published except current-8h: a hole and a stale tail.
    published = [h for h in _hours(current - 12 * HOUR, 8) if h.start != current - 8 * HOUR]
    _write_hours(lake, published)
    sensor = build_lake_freshness_sensor(
        {d: metrics_ingest_job for d in METRIC_DATASETS}, gap_lookback=timedelta(hours=12)
    )
    instance = DagsterInstance.ephemeral()

    first = _tick(sensor, config_path, None, instance)

    # Due by now (the hour ended 2h ago at least), newest first: the stale tail, then the hole.
    expected = [current - 3 * HOUR, current - 4 * HOUR, current - 8 * HOUR]
    assert [r.partition_key for r in first.run_requests] == [
        f"{h:%Y-%m-%d-%H:%M}" for h in expected
    ]
    assert {r.job_name for r in first.run_requests} == {"metrics_ingest_job"}
    assert len({r.run_key for r in first.run_requests}) == 3
    stale = Alertmanager(webhook_alertmanager).active({"obs_check": "lake_freshness"})
    assert sorted(a["labels"]["dataset"] for a in stale) == sorted(METRIC_DATASETS)
    assert {a["labels"]["alertname"] for a in stale} == {"ObsLakeDatasetStale"}
    assert all(a["annotations"]["runbook"] and a["annotations"]["summary"] for a in stale)

    second = _tick(sensor, config_path, first.cursor, instance)
    assert second.run_requests == []
    assert len(Alertmanager(webhook_alertmanager).active({"obs_check": "lake_freshness"})) == 2

    # The requested runs (and the schedule) fill the lake up to the last closed hour.
    _write_hours(lake, [TimeWindow(h, h + HOUR) for h in expected])
    _write_hours(lake, _hours(current - 2 * HOUR, 2))
    third = _tick(sensor, config_path, second.cursor, instance)

    assert third.run_requests == []
    assert Alertmanager(webhook_alertmanager).active({"obs_check": "lake_freshness"}) == []
    _wait_for(
        lambda: any(
            a["status"] == "resolved" and a["labels"].get("dataset") == "metric_samples"
            for body in webhook[1]
            for a in body["alerts"]
        )
    )
    resolved = [a for body in webhook[1] for a in body["alerts"] if a["status"] == "resolved"]
    assert all(a["endsAt"] and not a["endsAt"].startswith("0001") for a in resolved)


def test_a_new_deployment_pages_only_once_its_first_hour_is_due(
    write_config: Callable[..., Path], webhook_alertmanager: str
) -> None:
    current = floor_hour(datetime.now(UTC))
    sensor = build_lake_freshness_sensor({d: metrics_ingest_job for d in METRIC_DATASETS})
    am = Alertmanager(webhook_alertmanager)

    def tick(start: datetime):
        config_path = write_config(
            ingest={"start": start.isoformat()},
            freshness={"metric_samples": "2h", "metric_series": "2h"},
            sources={"alertmanager": {"url": webhook_alertmanager}},
        )
        result = _tick(sensor, config_path, None, DagsterInstance.ephemeral())
        return result, am.active(
            {"obs_check": "lake_freshness", "obs_lake": str(config_path.parent / "lake")}
        )

    # Ingest starts this hour, or in two days: the empty lake is not late, nothing is posted.
    for start in (current, current + timedelta(days=2)):
        result, active = tick(start)
        assert result.run_requests == [] and active == []
        assert result.skip_reason.skip_message.startswith("0 of 2 datasets stale")

    # Ingest started 3 h ago: its first hour ended 2 h ago, so it is due, requested and paged.
    result, active = tick(current - 3 * HOUR)
    assert [r.partition_key for r in result.run_requests] == [
        f"{current - 3 * HOUR:%Y-%m-%d-%H:%M}"
    ]
    assert sorted(a["labels"]["dataset"] for a in active) == sorted(METRIC_DATASETS)


def test_the_hour_that_makes_a_dataset_stale_is_requested_and_the_alert_says_so(
    write_config: Callable[..., Path], webhook_alertmanager: str
) -> None:
    current = floor_hour(datetime.now(UTC))
    config_path = write_config(
        ingest={"start": (current - 4 * HOUR).isoformat()},
        freshness={"metric_samples": "2h", "metric_series": "2h"},
        sources={"alertmanager": {"url": webhook_alertmanager}},
    )
    lake = Lake(load_config(config_path))
    # metric_samples ends 2 h ago and more (its next hour is due in the next hour): fresh.
    # metric_series lacks the hour that ended 2 h ago, whose run failed: stale.
    for hour in _hours(current - 4 * HOUR, 2):
        lake.write_hot("metric_samples", hour, SCHEMAS["metric_samples"].empty_table())
    lake.write_hot(
        "metric_series", _hours(current - 4 * HOUR, 1)[0], SCHEMAS["metric_series"].empty_table()
    )
    sensor = build_lake_freshness_sensor({d: metrics_ingest_job for d in METRIC_DATASETS})
    instance = DagsterInstance.ephemeral()
    scope = {"obs_check": "lake_freshness", "obs_lake": str(config_path.parent / "lake")}

    def description() -> str:
        [stale] = Alertmanager(webhook_alertmanager).active(scope)
        assert stale["labels"]["dataset"] == "metric_series"
        return stale["annotations"]["description"]

    first = _tick(sensor, config_path, None, instance)

    assert [r.partition_key for r in first.run_requests] == [f"{current - 3 * HOUR:%Y-%m-%d-%H:%M}"]
    assert (
        "requested 1 run of metrics_ingest_job for its missing hours in this tick" in description()
    )

    second = _tick(sensor, config_path, first.cursor, instance)

    assert second.run_requests == []
    assert "requested 0 runs of metrics_ingest_job" in description()
    assert "1 missing hour requested in earlier ticks" in description()


def test_a_lake_ahead_of_the_sensors_clock_shows_a_negative_lag(
    write_config: Callable[..., Path],
) -> None:
    current = floor_hour(datetime.now(UTC))
    config = load_config(
        write_config(
            ingest={"start": (current - HOUR).isoformat()}, freshness={"metric_samples": "2h"}
        )
    )
    # The ingesting host's clock runs 3 h ahead of the sensor's: hours up to current+3h exist.
    for hour in _hours(current - HOUR, 4):
        Lake(config).write_hot("metric_samples", hour, SCHEMAS["metric_samples"].empty_table())

    [result] = lake_freshness_from_config(config, current)

    assert not result.breached and result.missing == ()
    assert ", lag -3h, 3h ahead of the sensor's clock" in result.describe()
    assert [format_duration(timedelta(minutes=m)) for m in (-90, -1, 0)] == ["-1h30m", "-1m", "0s"]


def test_two_lakes_sharing_an_alertmanager_only_resolve_their_own_alerts(
    write_config: Callable[..., Path], webhook_alertmanager: str, tmp_path: Path
) -> None:
    current = floor_hour(datetime.now(UTC))
    shared = {
        "ingest": {"start": (current - 6 * HOUR).isoformat()},
        "freshness": {"metric_samples": "2h", "metric_series": "2h"},
        "sources": {"alertmanager": {"url": webhook_alertmanager}},
    }
    # Prod's lake is fresh; staging's (another root) is empty: both tick against one Alertmanager.
    prod = write_config(**shared).rename(tmp_path / "prod.yaml")
    staging = write_config(
        **shared,
        lake={"root": str(tmp_path / "staging"), "catalog": str(tmp_path / "staging.duckdb")},
    ).rename(tmp_path / "staging.yaml")
    _write_hours(Lake(load_config(prod)), _hours(current - 6 * HOUR, 6))
    sensor = build_lake_freshness_sensor({d: metrics_ingest_job for d in METRIC_DATASETS})
    am = Alertmanager(webhook_alertmanager)
    staging_lake = {"obs_check": "lake_freshness", "obs_lake": str(tmp_path / "staging")}

    _tick(sensor, staging, None, DagsterInstance.ephemeral())
    _tick(sensor, prod, None, DagsterInstance.ephemeral())

    # Prod's tick, fresh itself, left staging's breaches firing, labelled with staging's lake.
    stale = am.active(staging_lake)
    assert sorted(a["labels"]["dataset"] for a in stale) == sorted(METRIC_DATASETS)
    assert {a["labels"]["severity"] for a in stale} == {"warning"}
    assert am.active({"obs_lake": str(tmp_path / "lake")}) == []

    _write_hours(Lake(load_config(staging)), _hours(current - 6 * HOUR, 6))
    _tick(sensor, staging, None, DagsterInstance.ephemeral())
    assert am.active(staging_lake) == []


def test_long_gap_is_requested_in_bounded_ticks_newest_first(
    write_config: Callable[..., Path],
) -> None:
    current = floor_hour(datetime.now(UTC))
    config_path = write_config(
        ingest={"start": (current - timedelta(hours=40)).isoformat()},
        freshness={"metric_samples": "1h"},
    )
    sensor = build_lake_freshness_sensor(
        {"metric_samples": metrics_ingest_job}, max_runs_per_tick=24
    )
    instance = DagsterInstance.ephemeral()
    cursor = None
    requested: list[str] = []
    for _ in range(3):
        result = _tick(sensor, config_path, cursor, instance)
        requested.append([r.partition_key for r in result.run_requests])
        cursor = result.cursor
    # Due hours: ingest.start .. current-1h, i.e. 39 of them; 24, then 15, then none.
    assert [len(batch) for batch in requested] == [24, 15, 0]
    flat = [key for batch in requested for key in batch]
    assert flat == sorted(flat, reverse=True)
    assert len(set(flat)) == 39
    assert flat[0] == f"{current - 2 * HOUR:%Y-%m-%d-%H:%M}"


def test_a_tick_finds_the_one_missing_hour_from_the_commit_history_alone(
    write_config: Callable[..., Path],
) -> None:
    current = floor_hour(datetime.now(UTC))
    count = 300
    first = current - count * HOUR
    config_path = write_config(
        ingest={"start": first.isoformat()},
        freshness={"metric_samples": "2h"},
        retention={"metrics": {"hot": "400d", "warm": "500d", "cold": "900d"}},
    )
    lake = Lake(load_config(config_path))
    hole = current - 100 * HOUR
    for hour in _hours(first, count):
        if hour.start != hole:
            lake.write_hot("metric_samples", hour, SCHEMAS["metric_samples"].empty_table())
    # Not Parquet at all: a tick that opened any data file would fail on it.
    for data in Path(lake.tables.uri("metric_samples")).glob("dt=*/*.parquet"):
        data.write_bytes(b"not a parquet file")
    sensor = build_lake_freshness_sensor(
        {"metric_samples": metrics_ingest_job}, gap_lookback=timedelta(days=400)
    )
    instance = DagsterInstance.ephemeral()

    result = _tick(sensor, config_path, None, instance)

    # The one hole among 300 hours is found from the log alone (the cost of a tick as the lake
    # grows is measured by bench/freshness_bench.py, not here).
    assert [r.partition_key for r in result.run_requests] == [f"{hole:%Y-%m-%d-%H:%M}"]


def test_a_hole_past_the_hot_age_is_requested_within_the_look_back_but_not_past_retention(
    write_config: Callable[..., Path],
) -> None:
    current = floor_hour(datetime.now(UTC))
    first = current - 100 * HOUR
    config_path = write_config(
        ingest={"start": first.isoformat()},
        freshness={"log_records": "2h"},
        retention={"logs": {"hot": "1d", "warm": "3d"}},
    )
    lake = Lake(load_config(config_path))
    older_than_hot, past_retention = current - 40 * HOUR, current - 80 * HOUR
    for hour in _hours(first, 100):
        if hour.start not in (older_than_hot, past_retention):
            lake.write_hot("log_records", hour, SCHEMAS["log_records"].empty_table())
    sensor = build_lake_freshness_sensor(
        {"log_records": metrics_ingest_job}, gap_lookback=timedelta(days=30)
    )

    result = _tick(sensor, config_path, None, DagsterInstance.ephemeral())

    # 40 hours old: past the 1-day hot age (its day is compacted by now), inside the 30-day
    # look-back; 80 hours old: past the 3-day retention, deleted on purpose.
    assert [r.partition_key for r in result.run_requests] == [f"{older_than_hot:%Y-%m-%d-%H:%M}"]


def test_freshness_policy_attached_from_config() -> None:
    partitions = hourly_partitions(datetime(2026, 1, 1, tzinfo=UTC))
    [assets_def] = with_freshness(
        [build_metric_ingest(partitions)], {"metric_samples": timedelta(hours=2)}
    )
    policies = {spec.key.to_user_string(): spec.freshness_policy for spec in assets_def.specs}
    assert policies["metric_series"] is None
    policy = policies["metric_samples"]
    assert policy.fail_window.to_timedelta() == timedelta(hours=2)
    assert policy.warn_window.to_timedelta() == timedelta(minutes=90)


# --- source lag in a real Prometheus ----------------------------------------------------------

START = floor_hour(datetime.now(UTC)) - timedelta(hours=72)
SLOW = (START + timedelta(hours=6), START + timedelta(hours=6, minutes=30))  # lag 12 s
SPIKE = (START + timedelta(hours=30), START + timedelta(hours=30, minutes=3))  # lag 45 s
END = START + timedelta(hours=60)
MARKET_DATA_LAG = SourceLagRuleConfig(
    name="MarketDataLag",
    pipeline="market-data",
    gauge='data_pipeline_lag_seconds{pipeline="market-data"}',
    max_seconds=30,
    hold=timedelta(minutes=1),
    runbook="https://runbooks.example/market-data-lag",
)


def _lag_at(moment: datetime) -> float:
    if SPIKE[0] <= moment < SPIKE[1]:
        return 45.0
    if SLOW[0] <= moment < SLOW[1]:
        return 12.0
    return 1.5 + (moment.minute % 3) * 0.5


@pytest.fixture(scope="module")
def lag_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    step = timedelta(seconds=15)
    samples, moment = [], START
    while moment < END:
        samples.append(Sample(int(moment.timestamp() * 1000), _lag_at(moment)))
        moment += step
    data = tmp_path_factory.mktemp("lag") / "data"
    servers.backfill(
        data,
        [
            Series(
                "data_pipeline_lag_seconds",
                {"pipeline": "market-data", "source": "polygon"},
                samples,
            ),
            Series(
                "data_pipeline_lag_seconds",
                {"pipeline": "news-feed", "source": "rss"},
                [Sample(s.ts_ms, 99.0) for s in samples],
            ),
        ],
    )
    with servers.prometheus(data) as url:
        yield url


@pytest.mark.prometheus
def test_source_lag_breach_raises_then_clears(
    write_config: Callable[..., Path], lag_prometheus: str, webhook_alertmanager: str
) -> None:
    config_path = write_config(
        sources={
            "metrics": "prometheus",
            "prometheus": {"url": lag_prometheus, "selectors": ["data_pipeline_lag_seconds"]},
            "alertmanager": {"url": webhook_alertmanager},
        },
        slos=[DATA_FRESHNESS_SLO],
    )
    instant = {"at": SPIKE[0] + timedelta(minutes=2)}
    sensor = build_source_freshness_sensor([MARKET_DATA_LAG], evaluate_at=lambda: instant["at"])
    instance = DagsterInstance.ephemeral()
    am = Alertmanager(webhook_alertmanager)

    during = _tick(sensor, config_path, None, instance)

    firing = {a["labels"]["alertname"]: a for a in am.active({"obs_check": "source_lag"})}
    assert set(firing) == {"MarketDataLag", "ObsLagObjectiveMissed"}
    lag = firing["MarketDataLag"]
    assert lag["labels"]["pipeline"] == "market-data"
    assert lag["labels"]["severity"] == "critical" and lag["labels"]["category"] == "business"
    assert "45" in lag["annotations"]["description"]
    assert "97." in firing["ObsLagObjectiveMissed"]["annotations"]["description"]
    assert "BREACHED" in during.skip_message

    # 7 h later the spike is over and the slow half hour has left the 24 h window.
    instant["at"] = SPIKE[0] + timedelta(hours=7)
    after = _tick(sensor, config_path, None, instance)

    assert am.active({"obs_check": "source_lag"}) == []
    assert "BREACHED" not in after.skip_message


@pytest.mark.prometheus
def test_source_lag_is_watched_when_prometheus_is_one_of_several_metrics_backends(
    write_config: Callable[..., Path], lag_prometheus: str, webhook_alertmanager: str
) -> None:
    cloudwatch = {
        "region": "eu-west-1",
        "queries": [
            {"namespace": "AWS/ApplicationELB", "metric_name": "RequestCount", "statistic": "Sum"}
        ],
    }
    watched = write_config(
        sources={
            "metrics": ["prometheus", "cloudwatch"],
            "prometheus": {"url": lag_prometheus, "selectors": ["data_pipeline_lag_seconds"]},
            "cloudwatch": cloudwatch,
            "alertmanager": {"url": webhook_alertmanager},
        }
    )
    sensor = build_source_freshness_sensor(
        [MARKET_DATA_LAG], evaluate_at=lambda: SPIKE[0] + timedelta(minutes=2)
    )

    during = _tick(sensor, watched, None, DagsterInstance.ephemeral())

    assert "BREACHED" in during.skip_message
    assert {a["labels"]["alertname"] for a in Alertmanager(webhook_alertmanager).active({})} >= {
        "MarketDataLag"
    }


@pytest.mark.prometheus
def test_lag_rule_needs_the_whole_hold_window(
    write_config: Callable[..., Path], lag_prometheus: str
) -> None:
    from obs_pipelines.operations.freshness import PrometheusQuery, source_freshness

    config = load_config(
        write_config(
            sources={"prometheus": {"url": lag_prometheus, "selectors": ["up"]}},
        )
    )
    query = PrometheusQuery(config.sources.prometheus)
    early, held = (
        source_freshness(query, [MARKET_DATA_LAG], SPIKE[0] + timedelta(seconds=30))[0],
        source_freshness(query, [MARKET_DATA_LAG], SPIKE[0] + timedelta(seconds=75))[0],
    )
    assert not early.breached  # above 30 s for only 30 s
    assert held.breached and held.value == 45.0


@pytest.mark.prometheus
def test_unreachable_prometheus_keeps_the_lag_alerts_and_says_lag_is_unknown(
    write_config: Callable[..., Path], lag_prometheus: str, webhook_alertmanager: str
) -> None:
    def config(prometheus: str) -> Path:
        return write_config(
            sources={
                "metrics": "prometheus",
                "prometheus": {"url": prometheus, "selectors": ["up"], "retries": 0},
                "alertmanager": {"url": webhook_alertmanager},
            },
            slos=[DATA_FRESHNESS_SLO],
        )

    instant = {"at": SPIKE[0] + timedelta(minutes=2)}
    sensor = build_source_freshness_sensor([MARKET_DATA_LAG], evaluate_at=lambda: instant["at"])
    instance = DagsterInstance.ephemeral()
    am = Alertmanager(webhook_alertmanager)
    lake = str(load_config(config(lag_prometheus)).lake_root)
    lag_scope = {"obs_check": "source_lag", "obs_lake": lake}
    unknown_scope = {"alertname": "ObsFreshnessUnknown", "obs_lake": lake}
    _tick(sensor, config(lag_prometheus), None, instance)
    open_lag = {a["labels"]["alertname"]: a for a in am.active(lag_scope)}
    assert set(open_lag) == {"MarketDataLag", "ObsLagObjectiveMissed"}

    dead = f"http://127.0.0.1:{servers.free_port()}"
    for _ in range(2):  # the outage lasts two ticks: one unknown alert, kept up, never doubled
        time.sleep(0.01)
        during = _tick(sensor, config(dead), None, instance)

        assert during.skip_message.startswith("source lag unknown, its alerts left as they were:")
        assert f"Prometheus at {dead} is unreachable (ConnectionError)" in during.skip_message
        # Not resolved, and re-posted (a later end) so they do not expire while unmeasured.
        kept = {a["labels"]["alertname"]: a for a in am.active(lag_scope)}
        assert set(kept) == set(open_lag)
        assert all(kept[n]["endsAt"] > open_lag[n]["endsAt"] for n in kept)
        assert all(kept[n]["annotations"] == open_lag[n]["annotations"] for n in kept)
        [unknown] = am.active(unknown_scope)
        assert unknown["labels"]["source"] == "prometheus"
        assert "\n" not in unknown["annotations"]["description"]
        assert f"Prometheus at {dead} is unreachable" in unknown["annotations"]["description"]
        open_lag = kept

    # Prometheus answers again, 7 h later: the lag is measured and fine, everything resolves.
    instant["at"] = SPIKE[0] + timedelta(hours=7)
    after = _tick(sensor, config(lag_prometheus), None, instance)

    assert "ok" in after.skip_message
    assert am.active(unknown_scope) == [] and am.active(lag_scope) == []


def test_the_deployed_sensor_repairs_a_gap_with_that_datasets_job_only(
    write_config: Callable[..., Path],
) -> None:
    from obs_pipelines.definitions import build_definitions

    current = floor_hour(datetime.now(UTC))
    first = current - 6 * HOUR
    config_path = write_config(
        ingest={"start": first.isoformat()}, freshness={"metric_samples": "2h", "log_records": "2h"}
    )
    lake = Lake(load_config(config_path))
    hole = current - 4 * HOUR
    for hour in _hours(first, 6):
        lake.write_hot("metric_samples", hour, SCHEMAS["metric_samples"].empty_table())
        if hour.start != hole:
            lake.write_hot("log_records", hour, SCHEMAS["log_records"].empty_table())
    defs = build_definitions(str(config_path))
    sensor = defs.resolve_sensor_def("lake_freshness_sensor")
    obs = ObsResource(config_path=str(config_path))
    context = build_sensor_context(
        instance=DagsterInstance.ephemeral(), resources={"obs": obs}, definitions=defs
    )

    result = sensor(context)

    assert [(r.job_name, r.partition_key) for r in result.run_requests] == [
        ("repair_log_records_job", f"{hole:%Y-%m-%d-%H:%M}")
    ]
