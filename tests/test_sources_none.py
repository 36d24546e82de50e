"""Every source can be `none`, simulated data never mixes with real data unless asked for, and
the lake records which source wrote each partition."""

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from obs_pipelines.config import load_config, parse_config
from obs_pipelines.datasets import SCHEMAS
from obs_pipelines.definitions import INGEST_JOB, build_definitions
from obs_pipelines.errors import ConfigError, ObsError
from obs_pipelines.lake import Lake
from obs_pipelines.lake.catalog import build_catalog, connect
from obs_pipelines.lake.tiering import run_tiering
from obs_pipelines.launch import Run, launch_runs
from obs_pipelines.operations.doctor import run_checks
from obs_pipelines.operations.freshness import lake_freshness_from_config
from obs_pipelines.reporting.reports import report_connection
from obs_pipelines.sources import table_source
from obs_pipelines.windows import TimeWindow, utc
from tests import servers
from tests.dagster_runs import run_ingest
from tests.report_fixtures import HOUR_MS, SCRAPE_MS, ms

pytestmark = pytest.mark.integration  # materializes assets through Dagster, seconds per test

REPO = Path(__file__).resolve().parent.parent
PROMETHEUS = {"prometheus": {"url": "http://prom:9090", "selectors": ["up"]}}
PILLARS = ("metrics", "logs", "traces", "alerts")


def pillars(raw_sources: dict[str, Any]) -> dict[str, str]:
    sources = parse_config({"sources": raw_sources}).sources
    return {p: sources.backend(p) for p in PILLARS}


# --- which source feeds each pillar ----------------------------------------------------------


def test_unset_pillars_beside_a_real_backend_are_none_not_simulated() -> None:
    assert pillars({"metrics": "prometheus", **PROMETHEUS}) == {
        "metrics": "prometheus",
        "logs": "none",
        "traces": "none",
        "alerts": "none",
    }
    assert pillars({"alerts": "prometheus", **PROMETHEUS})["metrics"] == "none"


def test_simulated_data_beside_a_real_backend_must_be_asked_for() -> None:
    assert pillars({"metrics": "prometheus", "logs": "simulator", **PROMETHEUS}) == {
        "metrics": "prometheus",
        "logs": "simulator",
        "traces": "none",
        "alerts": "none",
    }


def test_with_no_real_backend_unset_pillars_stay_simulated() -> None:
    everything = dict.fromkeys(PILLARS, "simulator")
    assert pillars({}) == everything
    assert pillars({"metrics": "simulator"}) == everything
    # A configured but unselected server is not a source: still the embedded demo.
    assert pillars(PROMETHEUS) == everything
    assert pillars({"logs": "none"}) == {**everything, "logs": "none"}
    for shipped in ("obs.yaml", "obs.demo.yaml"):
        sources = load_config(REPO / shipped).sources
        assert {p: sources.backend(p) for p in PILLARS} == everything, shipped


def test_every_pillar_accepts_none_and_a_typo_lists_it() -> None:
    assert pillars(dict.fromkeys(PILLARS, "none")) == dict.fromkeys(PILLARS, "none")
    with pytest.raises(ConfigError) as refused:
        parse_config({"sources": {"logs": "off"}})
    assert str(refused.value) == (
        "config: sources.logs: got 'off'; input should be 'simulator', 'elasticsearch' or 'none'"
    )


# --- what a pillar without a source defines and writes --------------------------------------


def asset_keys(config_path: Path) -> set[str]:
    defs = build_definitions(str(config_path))
    return {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}


def job_names(config_path: Path) -> set[str]:
    return {job.name for job in build_definitions(str(config_path)).resolve_all_job_defs()}


def test_a_pillar_without_source_has_no_assets_and_jobs_select_what_is_defined(
    write_config: Callable[..., Path],
) -> None:
    path = write_config(sources={"logs": "none", "traces": "none"})
    defs = build_definitions(str(path))

    keys = asset_keys(path)
    ingest = {
        k.to_user_string() for k in defs.resolve_job_def(INGEST_JOB).asset_layer.selected_asset_keys
    }

    assert not keys & {"log_records", "spans"}
    assert {"metric_samples", "alert_fragments", "alert_rules", "sli_minutes"} <= keys
    assert ingest == {
        "metric_series",
        "metric_samples",
        "alert_fragments",
        "sli_minutes",
        "up_minutes",
        "series_inventory",
        "lake_catalog",
    }
    assert not {"repair_log_records_job", "repair_spans_job"} & job_names(path)
    assert "repair_alert_fragments_job" in job_names(path)


def test_with_every_pillar_none_only_the_lake_assets_remain(
    write_config: Callable[..., Path],
) -> None:
    path = write_config(sources=dict.fromkeys(PILLARS, "none"))

    assert asset_keys(path) == {"lake_catalog", "lake_tiering", "reliability_report"}
    assert job_names(path) - {"__ASSET_JOB"} == {INGEST_JOB, "tiering_job", "reports_job"}


def test_a_run_of_a_job_whose_pillar_is_none_is_refused_in_one_line(
    write_config: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    path = write_config(sources={"alerts": "none"})

    with pytest.raises(ObsError) as refused:
        launch_runs(str(path), [Run("snapshot_job", "rules and Alertmanager snapshot")])

    assert str(refused.value) == (
        "snapshot_job is not defined: sources.alerts is none, so nothing feeds it; "
        "set sources.alerts to a backend (or simulator) in the config"
    )
    with pytest.raises(ConfigError) as asked:
        table_source(load_config(path), "alert_rules")
    assert str(asked.value) == (
        "sources.alerts is none, so alert_rules is not ingested; set sources.alerts to a "
        "backend (or simulator) to ingest it"
    )


def test_doctor_prints_a_skip_line_for_each_pillar_without_source(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    config = load_config(write_config(sources={"logs": "none", "traces": "none"}))

    lines = {r.check: r for r in run_checks(config, dagster_home=str(tmp_path), timeout=2)}

    for pillar in ("logs", "traces"):
        result = lines[f"source.{pillar}"]
        assert (result.ok, result.skipped) == (True, True)
        assert result.line() == f"skip  {f'source.{pillar}':<22} none (not ingested)"
    assert lines["source.metrics"].detail == "built-in simulator (no server needed)"


def test_the_freshness_sensor_does_not_watch_a_dataset_that_is_not_ingested(
    write_config: Callable[..., Path],
) -> None:
    config = load_config(
        write_config(
            sources={"logs": "none"}, freshness={"log_records": "2h", "metric_samples": "2h"}
        )
    )

    results = lake_freshness_from_config(config, datetime(2026, 11, 18, 12, tzinfo=UTC))

    assert [r.dataset for r in results] == ["metric_samples"]


# --- which source wrote each partition ------------------------------------------------------


def recorded_sources(config_path: Path) -> dict[tuple[str, str], set[str | None]]:
    con = connect(load_config(config_path))
    try:
        rows = con.execute(
            "SELECT dataset, tier, source FROM lake_partition_sources WHERE current"
        ).fetchall()
    finally:
        con.close()
    found: dict[tuple[str, str], set[str | None]] = {}
    for dataset, tier, source in rows:
        found.setdefault((dataset, tier), set()).add(source)
    return found


def test_simulated_metrics_alone_write_only_metrics_and_record_their_source_through_tiering(
    write_config: Callable[..., Path],
) -> None:
    path = write_config(
        sources={"logs": "none", "traces": "none", "alerts": "none"},
        retention={"metrics": {"hot": "1d", "warm": "30d", "cold": "365d"}},
    )
    config = load_config(path)

    result = run_ingest(path, "2026-11-18-13:00", "2026-11-18-14:00")

    assert result.success
    lake = Lake(config)
    for dataset in ("log_records", "spans", "alert_fragments", "alert_rules"):
        assert lake.hot_partitions(dataset) == [], dataset
    written = lake.tables.written_hours("metric_samples", utc("2026-11-18T00:00:00Z"))
    assert [(h.window.start.hour, h.source) for h in written] == [
        (13, "simulator"),
        (14, "simulator"),
    ]
    sources = recorded_sources(path)
    assert sources[("metric_samples", "hot")] == sources[("metric_series", "hot")] == {"simulator"}
    assert sources[("series_inventory", "hot")] == {None}  # derived in the lake, not ingested

    run_tiering(config, now=utc("2026-11-21T00:00:00Z"))  # the day moves to warm
    build_catalog(config)

    sources = recorded_sources(path)
    assert {s for (d, _), found in sources.items() if d == "metric_samples" for s in found} == {
        "simulator"
    }
    con = connect(config)
    try:
        rollups = con.execute("SELECT count(*) FROM metric_rollups").fetchone()
    finally:
        con.close()
    assert rollups is not None and rollups[0] > 0


# --- a lake fed by a real Prometheus only ---------------------------------------------------

START_MS = ms("2026-11-18T10:00:00Z")


@pytest.fixture(scope="module")
def prometheus_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Prometheus holding two hours of one service, `checkout`: its `up` and a counter."""
    steps = range(2 * HOUR_MS // SCRAPE_MS)
    labels = {"job": "checkout", "instance": "checkout-0:8080"}
    history = [
        servers.Series(
            "up", labels, [servers.Sample(START_MS + k * SCRAPE_MS + 500, 1.0) for k in steps]
        ),
        servers.Series(
            "http_requests_total",
            {**labels, "code": "200"},
            [servers.Sample(START_MS + k * SCRAPE_MS + 700, float(k)) for k in steps],
        ),
    ]
    data = tmp_path_factory.mktemp("tsdb") / "data"
    servers.backfill(data, history)
    with servers.prometheus(data) as url:
        yield url


@pytest.mark.prometheus
def test_a_prometheus_only_config_writes_no_simulated_data_and_reports_no_phantom_services(
    prometheus_url: str, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    path = write_config(
        sources={
            "metrics": "prometheus",
            "prometheus": {
                "url": prometheus_url,
                "selectors": ["up", "http_requests_total"],
                "retry_backoff_seconds": 0,
            },
        },
        services=[{"name": "checkout", "owner": "shop"}],
    )
    config = load_config(path)

    result = run_ingest(path, "2026-11-18-10:00", "2026-11-18-11:00")

    assert result.success
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == {
        "metric_series",
        "metric_samples",
        "sli_minutes",
        "up_minutes",
        "series_inventory",
        "lake_catalog",
    }
    lake = Lake(config)
    for dataset in ("log_records", "spans", "alert_fragments", "alert_rules"):
        assert lake.hot_partitions(dataset) == [], f"{dataset} was written"
    con = report_connection(config, utc("2026-11-18T10:00:00Z"), utc("2026-11-18T12:00:00Z"))
    cells = con.execute(
        "SELECT service, pillar, status FROM coverage WHERE period = 'current'"
    ).fetchall()
    con.close()
    assert {service for service, _, _ in cells} == {"checkout"}, "no simulated services"
    assert {pillar: status for _, pillar, status in cells} == {
        "metrics": "present",
        "up": "present",
        "logs": "missing",
        "traces": "missing",
        "alerts": "missing",
        "slo": "missing",
    }
    assert recorded_sources(path) == {
        ("metric_series", "hot"): {"prometheus"},
        ("metric_samples", "hot"): {"prometheus"},
        ("sli_minutes", "hot"): {None},
        ("up_minutes", "hot"): {None},
        ("series_inventory", "hot"): {None},
    }
    doctor = {r.check: r.line() for r in run_checks(config, dagster_home=str(tmp_path))}
    assert doctor["source.logs"] == f"skip  {'source.logs':<22} none (not ingested)"
    assert doctor["source.traces"] == f"skip  {'source.traces':<22} none (not ingested)"
    assert doctor["source.alerts"] == (
        f"skip  {'source.alerts':<22} none (not ingested); set sources.alerts: prometheus "
        "to ingest the ALERTS of sources.prometheus"
    )


def test_doctor_warns_of_partitions_written_by_a_source_not_in_use(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{servers.free_port()}"
    path = write_config(
        sources={"metrics": "prometheus", "prometheus": {"url": url, "selectors": ["up"]}}
    )
    config = load_config(path)
    lake = Lake(config)
    hour = TimeWindow(utc("2026-11-18T10:00:00Z"), utc("2026-11-18T11:00:00Z"))
    for dataset in ("metric_series", "metric_samples"):
        lake.write_hot(dataset, hour, SCHEMAS[dataset].empty_table(), source="prometheus")
    build_catalog(config)
    ok = {r.check: r for r in run_checks(config, dagster_home=str(tmp_path), timeout=2)}
    # A demo run's simulated logs left in a lake now fed by Prometheus alone.
    for start in ("2026-11-18T10:00:00Z", "2026-11-18T11:00:00Z"):
        window = TimeWindow(utc(start), utc(start) + timedelta(hours=1))
        lake.write_hot(
            "log_records", window, SCHEMAS["log_records"].empty_table(), source="simulator"
        )
    build_catalog(config)

    mixed = {r.check: r for r in run_checks(config, dagster_home=str(tmp_path), timeout=2)}

    assert ok["lake.sources"].line() == (
        f"ok    {'lake.sources':<22} every partition comes from a configured source (prometheus)"
    )
    assert mixed["lake.sources"].warn and mixed["lake.sources"].ok
    assert mixed["lake.sources"].line() == (
        f"warn  {'lake.sources':<22} files written by sources not in use count in the reports: "
        "2 of log_records from simulator (sources.logs: none) -> delete those partitions "
        "(SELECT file FROM lake_partition_sources) if they do not belong in this lake, then run "
        "`obs catalog`"
    )
