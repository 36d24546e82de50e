"""End to end on the simulator: the reports find the weekly incidents the simulator stages.

Nine simulated hours are ingested (metrics, alerts, rules, spans, logs): Wednesday 12:00-17:00 UTC
holds "api-outage" (errors from 14:00 to 14:25, HighAPIErrorRate pages) with the daily flapping
HighCPUUsage and the transient pool alert; Saturday 01:00-05:00 holds "trades-silent-errors"
(errors from 03:00 to 03:30 that no alert catches).
"""

from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml
from dagster import DagsterInstance, DailyPartitionsDefinition, materialize

from assets.reports import build_report_assets
from assets.resources import ObsResource
from obs_pipelines.config import ObsConfig, load_config
from obs_pipelines.errors import LakeError
from obs_pipelines.lake import Lake
from obs_pipelines.lake.catalog import build_catalog
from obs_pipelines.lake.ingest import ingest_metrics_hour, ingest_table_hour
from obs_pipelines.reporting.derived import derive
from obs_pipelines.reporting.reports import pin_reports, report_connection
from obs_pipelines.sources import metric_source, table_source
from obs_pipelines.windows import TimeWindow, utc
from tests.report_fixtures import every_report

pytestmark = pytest.mark.integration  # builds catalogs with every report: seconds per test

REPO = Path(__file__).resolve().parent.parent
STRETCHES = [
    ("2026-11-04T12:00:00Z", "2026-11-04T17:00:00Z"),
    ("2026-11-07T01:00:00Z", "2026-11-07T05:00:00Z"),
]
PERIOD = (utc("2026-11-02T00:00:00Z"), utc("2026-11-09T00:00:00Z"))
TABLE_DATASETS = ("alert_fragments", "alert_rules", "spans", "log_records")


@pytest.fixture(scope="module")
def config_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("simulated")
    raw = yaml.safe_load((REPO / "obs.yaml").read_text())
    raw["lake"] = {
        "root": str(root / "lake"),
        "catalog": str(root / "lake" / "obs.duckdb"),
    }
    path = root / "obs.yaml"
    path.write_text(yaml.safe_dump(raw))
    simulate(load_config(path))
    return path


def simulate(config: ObsConfig) -> None:
    """Ingest and derive the simulated ``STRETCHES`` hour by hour, then build the catalog."""
    lake = Lake(config)
    hours = [h for a, b in STRETCHES for h in TimeWindow(utc(a), utc(b)).hours()]
    metrics = metric_source(config)
    tables = [table_source(config, d) for d in TABLE_DATASETS]
    for hour in hours:
        ingest_metrics_hour(lake, metrics, hour)
        for source in tables:
            assert source is not None
            ingest_table_hour(lake, source, hour)
    for a, b in STRETCHES:
        derive(config, TimeWindow(utc(a), utc(b)))
    build_catalog(config)


@pytest.fixture(scope="module")
def con(config_path: Path) -> duckdb.DuckDBPyConnection:
    return report_connection(load_config(config_path), *PERIOD)


def rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    result = con.execute(sql)
    names = [d[0] for d in result.description]
    return [dict(zip(names, r, strict=True)) for r in result.fetchall()]


def test_the_api_outage_burns_the_availability_budget_and_pages(
    con: duckdb.DuckDBPyConnection,
) -> None:
    incidents = rows(con, "SELECT * FROM incidents WHERE period = 'current' ORDER BY started_at")

    outage = incidents[0]
    assert (
        outage["service"],
        outage["started_at"].isoformat(),
        outage["resolved_at"].isoformat(),
    ) == (
        "waardhaven-api",
        "2026-11-04T14:00:00",
        "2026-11-04T14:25:00",
    )
    assert outage["slo_names"] == ["api_availability"]
    assert outage["first_alert"] == "HighAPIErrorRate"
    assert 0 < outage["time_to_detect_minutes"] < 5
    day = rows(
        con,
        "SELECT status FROM slo_compliance WHERE slo_name = 'api_availability' AND scope = 'day' "
        "AND window_start = TIMESTAMP '2026-11-04'",
    )
    assert day == [{"status": "breached"}]
    pages = rows(con, "SELECT started_at FROM slo_burn_episodes WHERE policy_name = 'page_1h_5m'")
    assert pages[0]["started_at"].strftime("%Y-%m-%d %H") == "2026-11-04 14"


def test_the_silent_trade_errors_are_an_incident_no_alert_caught(
    con: duckdb.DuckDBPyConnection,
) -> None:
    incidents = rows(con, "SELECT * FROM incidents WHERE period = 'current' ORDER BY started_at")
    overall = rows(
        con, "SELECT * FROM alert_quality WHERE period = 'current' AND scope = 'all alerts'"
    )[0]

    silent = incidents[1]
    assert (silent["started_at"].isoformat(), silent["resolved_at"].isoformat()) == (
        "2026-11-07T03:00:00",
        "2026-11-07T03:30:00",
    )
    assert (silent["detected"], silent["alerts"]) == (False, [])
    assert len(incidents) == 2
    assert (overall["impact_episodes"], overall["detected_episodes"], overall["recall"]) == (
        2,
        1,
        0.5,
    )


def test_noise_flapping_and_unmapped_alerts_from_the_simulator(
    con: duckdb.DuckDBPyConnection,
) -> None:
    by_alert = {
        r["alertname"]: r
        for r in rows(
            con, "SELECT * FROM alert_quality WHERE period = 'current' AND scope = 'alert'"
        )
    }

    cpu = by_alert["HighCPUUsage"]
    assert cpu["flapping"] and cpu["unmapped_firings"] == cpu["firings"] > 3
    assert by_alert["HighAPIErrorRate"]["precision"] == 1.0
    assert by_alert["DatabaseConnectionPoolExhausted"]["transient_firings"] == 1


def test_dependencies_coverage_and_scorecard_from_simulated_telemetry(
    con: duckdb.DuckDBPyConnection,
) -> None:
    edges = {
        (r["caller"], r["callee"]): r
        for r in rows(con, "SELECT * FROM service_dependencies WHERE period = 'current'")
    }
    missing = rows(
        con,
        "SELECT pillar FROM coverage WHERE period = 'current' AND service = 'news-feed' AND status = 'missing'",
    )
    card = rows(con, "SELECT metric, status FROM scorecard ORDER BY metric_order")

    assert edges["waardhaven-api", "recommendation-engine"]["derived_from"] == "peer_service"
    assert edges["waardhaven-api", "auth-service"]["derived_from"] == "parent_child"
    assert edges["trading-engine", "postgresql"]["calls"] > 0
    assert len(missing) == 6
    assert [c["metric"] for c in card] == [
        "System uptime",
        "Alert noise ratio",
        "Mean time to detection",
        "Mean time to resolution",
        "Monitoring coverage",
    ]
    assert {c["metric"]: c["status"] for c in card}["Mean time to detection"] == "pass"


def test_the_daily_report_asset_writes_the_html_and_reports_the_scorecard(
    config_path: Path,
) -> None:
    partitions = DailyPartitionsDefinition(start_date="2026-11-01")
    assets = build_report_assets(partitions)

    result = materialize(
        assets,
        partition_key="2026-11-08",
        resources={"obs": ObsResource(config_path=str(config_path))},
        instance=DagsterInstance.ephemeral(),
    )

    assert result.success
    metadata = result.asset_materializations_for_node("reliability_report")[0].metadata
    path = Path(metadata["report"].value)
    assert path.name == "reliability-2026-11-09.html" and path.stat().st_size > 10_000
    assert "| Mean time to detection | < 5 minutes |" in metadata["scorecard"].value
    assert (
        "Undetected incident on waardhaven-api at 2026-11-07 03:00 UTC"
        in metadata["top findings"].value
    )


def limited(config_path: Path, limit: str) -> ObsConfig:
    config = load_config(config_path)
    return config.model_copy(
        update={"lake": config.lake.model_copy(update={"query_memory_limit": limit})}
    )


def test_a_memory_limited_session_reports_the_same_rows(config_path: Path) -> None:
    """``lake.query_memory_limit`` reaches DuckDB, and the reports under it are the same (one
    session at a time: sessions of one process share the catalog's DuckDB instance)."""
    found = []
    for config in (load_config(config_path), limited(config_path, "256MB")):
        con = report_connection(config, *PERIOD)
        try:
            limit = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
            found.append((limit, every_report(con)))
        finally:
            con.close()
    [(default, reports), (capped, capped_reports)] = found

    assert capped == "244.1 MiB" and default != capped
    assert capped_reports == reports
    assert sum(len(rows) for rows in reports.values()) > 1000


def test_a_report_out_of_memory_fails_in_one_line_naming_the_limit(config_path: Path) -> None:
    con = report_connection(limited(config_path, "8MB"), *PERIOD)
    try:
        with pytest.raises(LakeError) as error:
            pin_reports(con)
    finally:
        con.close()

    assert str(error.value).startswith("computing ")
    assert (
        "needs more memory than DuckDB may use here (7.6 MiB); raise lake.query_memory_limit"
        in str(error.value)
    )
    assert "\n" not in str(error.value)
