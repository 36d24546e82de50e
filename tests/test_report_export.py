"""Report results reach a real Pushgateway with the values the report views hold."""

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from obs_pipelines.config import load_config
from obs_pipelines.lake import Lake
from obs_pipelines.lake.catalog import build_catalog
from obs_pipelines.lake.ingest import ingest_metrics_hour, ingest_table_hour
from obs_pipelines.reporting.derived import derive
from obs_pipelines.reporting.report_export import push_reports, report_metrics
from obs_pipelines.reporting.reports import pin_reports, report_connection
from obs_pipelines.sources import metric_source, table_source
from obs_pipelines.windows import TimeWindow, utc
from tests import ops_servers

pytestmark = pytest.mark.integration  # pushes to a real Pushgateway

REPO = Path(__file__).resolve().parent.parent
# The simulator's weekly api-outage (Wednesday 14:00-14:25 UTC) inside six ingested hours.
HOURS = TimeWindow(utc("2026-11-18T11:00:00Z"), utc("2026-11-18T17:00:00Z"))


def test_the_pushgateway_serves_the_reports_values(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    with ops_servers.pushgateway(tmp_path / "pgw") as gateway:
        config = load_config(
            write_config(
                extends=str(REPO / "obs.yaml"), operations={"pushgateway": {"url": gateway}}
            )
        )
        lake = Lake(config)
        for hour in HOURS.hours():
            ingest_metrics_hour(lake, metric_source(config), hour)
            ingest_table_hour(lake, table_source(config, "alert_fragments"), hour)
        derive(config, HOURS)
        build_catalog(config)
        con = report_connection(config, HOURS.end - timedelta(days=7), HOURS.end)
        pin_reports(con)
        availability = con.execute(
            """SELECT error_budget_remaining FROM slo_compliance
               WHERE slo_name = 'api_availability' AND scope = 'rolling' ORDER BY window_end DESC LIMIT 1"""
        ).fetchone()[0]

        pushed = push_reports(config, con)
        exposed = requests.get(f"{gateway}/metrics", timeout=5).text

    assert pushed == len(report_metrics(con)) + 1  # and the last-push timestamp
    line = next(
        line
        for line in exposed.splitlines()
        if line.startswith("obs_slo_error_budget_remaining_ratio{")
        and 'slo="api_availability"' in line
    )
    assert float(line.rsplit(" ", 1)[1]) == availability
    assert availability < 0.9, "the outage spent most of a 30-day budget of 99.9%"
    assert (
        'obs_scorecard_pass{instance="",job="obs_pipelines_reports",metric="System uptime"}'
        in exposed
    )


def test_a_period_holding_no_data_pushes_no_coverage(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    """An empty lake's coverage is unknown: no coverage ratio and no pillar sent as absent (0),
    which dashboards would chart as every service unmonitored."""
    with ops_servers.pushgateway(tmp_path / "pgw") as gateway:
        config = load_config(
            write_config(
                extends=str(REPO / "obs.yaml"), operations={"pushgateway": {"url": gateway}}
            )
        )
        build_catalog(config)
        con = report_connection(config, HOURS.end - timedelta(days=7), HOURS.end)
        pin_reports(con)

        pushed = push_reports(config, con)
        exposed = requests.get(f"{gateway}/metrics", timeout=5).text
        con.close()

    names = {line.split("{")[0] for line in exposed.splitlines() if line.startswith("obs_")}
    assert pushed and "obs_scorecard_target" in names
    assert names.isdisjoint({"obs_coverage_ratio", "obs_service_pillar_present"})
