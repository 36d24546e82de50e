"""Coverage on a catalog with known gaps, and the scorecard's pass/fail boundaries."""

import re
from pathlib import Path
from typing import Any

import pytest

from obs_pipelines.config import ObsConfig, ReportsConfig
from obs_pipelines.lake import Lake
from obs_pipelines.lake.catalog import build_catalog, connect
from obs_pipelines.reporting.report_html import findings, render_report, scorecard_text
from obs_pipelines.reporting.reports import (
    SCORECARD_METRICS,
    pin_reports,
    publish,
    report_connection,
)
from obs_pipelines.windows import utc
from tests.report_fixtures import (
    SCRAPE_MS,
    MetricSeries,
    dataset_table,
    hour_of,
    make_config,
    ms,
    stamps,
    write_metrics,
)

pytestmark = pytest.mark.integration  # builds catalogs with every report: seconds per test

DAY = "2026-11-10"
T0 = ms(f"{DAY}T10:00:05Z")
SERVICES = [
    {"name": "api", "owner": "web", "tier": "critical"},
    {"name": "db", "owner": "dba", "tier": "critical", "pillars": ["metrics", "alerts"]},
    {"name": "cache", "owner": "web", "tier": "high", "pillars": ["metrics", "logs"]},
    {"name": "feed", "owner": "data"},
]
SLOS = [
    {
        "name": "api_availability",
        "service": "api",
        "objective": 0.99,
        "sli": {"type": "ratio", "bad": 'requests_total{code="500"}', "total": "requests_total"},
    }
]


def up(job: str, values: list[float]) -> MetricSeries:
    return MetricSeries(
        "up",
        {"job": job, "instance": f"{job}-0:9100"},
        [(T0 + i * SCRAPE_MS, v) for i, v in enumerate(values)],
    )


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> ObsConfig:
    root: Path = tmp_path_factory.mktemp("coverage")
    config = make_config(root, services=SERVICES, slos=SLOS)
    lake = Lake(config)
    # 1000 api scrapes with one failure, 1000 perfect db scrapes: critical uptime 1999/2000.
    write_metrics(
        lake,
        [
            up("api", [1.0] * 499 + [0.0] + [1.0] * 500),
            up("db", [1.0] * 1000),
            MetricSeries(
                "requests_total", {"job": "api", "code": "200"}, [(T0, 1.0), (T0 + SCRAPE_MS, 2.0)]
            ),
            MetricSeries("cache_hits_total", {"job": "cache"}, [(T0, 1.0)]),
            MetricSeries("jobs_total", {"job": "batch"}, [(T0, 1.0)]),
        ],
    )
    hour = hour_of(T0)
    lake.write_hot(
        "log_records",
        hour,
        dataset_table(
            "log_records",
            ts=stamps(T0, T0),
            service=["api", "batch"],
            index=["logs", "logs"],
            doc_id=["1", "2"],
        ),
    )
    lake.write_hot(
        "spans",
        hour,
        dataset_table(
            "spans", trace_id=["a" * 32], span_id=["b" * 16], service=["api"], start_ts=stamps(T0)
        ),
    )
    rules = {
        "snapshot_at": stamps(hour.end_ms, hour.end_ms, hour.end_ms),
        "group": ["g", "g", "g"],
        "name": ["ApiDown", "DbSlow", "Rec"],
        "type": ["alerting", "alerting", "recording"],
        "expr": ['up{job="api"} == 0', 'pg_latency{job="db"} > 1', 'sum(rate(x{job="feed"}[5m]))'],
        "labels": [[("service", "api")], [], []],
    }
    lake.write_hot("alert_rules", hour, dataset_table("alert_rules", **rules))
    build_catalog(config)
    return config


def coverage(config: ObsConfig) -> dict[tuple[str, str], dict[str, Any]]:
    con = report_connection(config, utc(f"{DAY}T00:00:00Z"), utc("2026-11-11T00:00:00Z"))
    result = con.execute("SELECT * FROM coverage WHERE period = 'current'")
    names = [d[0] for d in result.description]
    return {(r[1], r[4]): dict(zip(names, r, strict=True)) for r in result.fetchall()}


def test_coverage_marks_each_required_pillar_present_or_missing(config: ObsConfig) -> None:
    cells = coverage(config)

    status = {(s, p): c["status"] for (s, p), c in cells.items()}
    assert [status["api", p] for p in ("metrics", "up", "logs", "traces", "alerts", "slo")] == [
        "present"
    ] * 6
    assert [status["db", p] for p in ("metrics", "up", "alerts", "logs")] == [
        "present",
        "present",
        "present",
        "not required",
    ]
    assert [status["cache", p] for p in ("metrics", "up", "logs", "alerts")] == [
        "present",
        "missing",
        "missing",
        "not required",
    ]
    # A recording rule naming feed is not an alert.
    assert {status["feed", p] for p in ("metrics", "up", "logs", "traces", "alerts", "slo")} == {
        "missing"
    }


def test_coverage_percentages_per_service_per_pillar_and_overall(config: ObsConfig) -> None:
    cells = coverage(config)

    assert {s: cells[s, "metrics"]["service_coverage"] for s in ("api", "db", "cache", "feed")} == {
        "api": 1.0,
        "db": 1.0,
        "cache": 1 / 3,
        "feed": 0.0,
    }
    assert {
        p: cells["api", p]["pillar_coverage"]
        for p in ("metrics", "up", "logs", "traces", "alerts", "slo")
    } == {
        "metrics": 0.75,
        "up": 0.5,
        "logs": 1 / 3,
        "traces": 0.5,
        "alerts": 2 / 3,
        "slo": 0.5,
    }
    assert cells["api", "metrics"]["overall_coverage"] == 0.5


def test_services_seen_only_in_data_are_listed_as_not_in_catalog(config: ObsConfig) -> None:
    cells = coverage(config)

    batch = {p: c for (s, p), c in cells.items() if s == "batch"}
    assert {p for p, c in batch.items() if c["present"]} == {"metrics", "logs"}
    assert not any(c["in_catalog"] or c["required"] for c in batch.values())


def scorecard(config: ObsConfig, **targets: float) -> dict[str, dict[str, Any]]:
    """The scorecard with some targets moved (published into the catalog, then read)."""
    reports = ReportsConfig(targets=targets)
    writable = connect(config, read_only=False)
    try:
        publish(writable, config, reports)
    finally:
        writable.close()
    con = report_connection(config, utc(f"{DAY}T00:00:00Z"), utc("2026-11-11T00:00:00Z"))
    result = con.execute("SELECT metric, current_value, passed, status FROM scorecard")
    keys = [m.key for m in SCORECARD_METRICS]
    return {
        k: dict(zip(("metric", "value", "passed", "status"), r, strict=True))
        for k, r in zip(keys, result.fetchall(), strict=True)
    }


def test_scorecard_values_and_default_targets(config: ObsConfig) -> None:
    card = scorecard(config)

    assert card["uptime"]["value"] == 1999 / 2000
    assert (card["uptime"]["status"], card["coverage"]["value"], card["coverage"]["status"]) == (
        "pass",
        0.5,
        "fail",
    )
    # No alert fired and no incident happened: nothing to measure.
    assert [card[k]["status"] for k in ("alert_noise", "mttd", "mttr")] == ["no data"] * 3
    assert card["uptime"]["metric"] == "System uptime"


def test_a_value_exactly_at_its_target_fails_and_just_past_it_passes(config: ObsConfig) -> None:
    at_target = scorecard(config, uptime=0.9995, coverage=0.5)
    past_target = scorecard(config, uptime=0.99949, coverage=0.49)

    assert (at_target["uptime"]["passed"], at_target["coverage"]["passed"]) == (False, False)
    assert (past_target["uptime"]["passed"], past_target["coverage"]["passed"]) == (True, True)


def test_a_previous_period_without_telemetry_is_no_data_not_zero_coverage(
    config: ObsConfig, tmp_path: Path
) -> None:
    """The lake holds one day, so the week before the report week has no data: its coverage
    is unknown (shown as '-'), not 0%; with telemetry in the previous period it is measured."""
    start, end = utc(f"{DAY}T00:00:00Z"), utc("2026-11-11T00:00:00Z")
    con = report_connection(config, start, end)
    rows = con.execute(
        "SELECT metric, current_value, previous_value, change FROM scorecard"
    ).fetchall()
    text = scorecard_text(config, start, end)
    page = render_report(config, start, end, tmp_path / "report.html").read_text()
    earlier = report_connection(config, utc(f"{DAY}T12:00:00Z"), utc(f"{DAY}T14:00:00Z"))
    previous = earlier.execute(
        "SELECT previous_value FROM scorecard WHERE metric = 'Monitoring coverage'"
    ).fetchone()[0]

    assert [(r[0], r[2], r[3]) for r in rows if r[2] is not None or r[3] is not None] == []
    assert {r[0]: r[1] for r in rows}["Monitoring coverage"] == 0.5
    line = next(x for x in text.splitlines() if x.startswith("Monitoring coverage"))
    assert re.split(r"\s{2,}", line)[2:5] == ["50.000%", "-", "-"]
    assert re.search(
        r"<td>Monitoring coverage</td><td>[^<]*</td><td>50.000%</td><td>-</td><td>-</td>", page
    )
    assert previous == 0.5  # 10:00-12:00 holds every pillar the whole day does


@pytest.fixture(params=["empty lake", "period before the data"])
def dataless(request: pytest.FixtureRequest, config: ObsConfig, tmp_path: Path) -> ObsConfig:
    """A config whose lake holds nothing in the week of 2026-11-01: an empty lake, or the
    module's lake (its one day is 2026-11-10; its later rule snapshot, SLO and catalog remain)."""
    if request.param == "period before the data":
        return config
    empty = make_config(tmp_path, services=SERVICES, slos=SLOS)
    build_catalog(empty)
    return empty


def test_a_period_holding_no_data_has_unknown_coverage_not_zero(
    dataless: ObsConfig, tmp_path: Path
) -> None:
    start, end = utc("2026-11-01T00:00:00Z"), utc("2026-11-08T00:00:00Z")
    con = report_connection(dataless, start, end)
    pin_reports(con)
    card = con.execute(
        "SELECT current_value, previous_value, status FROM scorecard "
        "WHERE metric = 'Monitoring coverage'"
    ).fetchone()
    shares = con.execute(
        "SELECT DISTINCT pillar_coverage, overall_coverage FROM coverage WHERE period = 'current'"
    ).fetchall()
    found = findings(con)
    text = scorecard_text(dataless, start, end)
    page = render_report(dataless, start, end, tmp_path / "report.html").read_text()

    assert card == (None, None, "no data")
    assert shares == [(None, None)]
    note = (
        "The period 2026-11-01 00:00 to 2026-11-08 00:00 UTC holds no data (no metric sample, "
        "log record, span, alert or rule snapshot): there is nothing to measure; report a period "
        "the lake holds data for, or ingest this one first"
    )
    assert found == [note], "no service 'lacks required' anything in a period without data"
    line = next(x for x in text.splitlines() if x.startswith("Monitoring coverage"))
    assert re.split(r"\s{2,}", line)[2:] == ["-", "-", "-", "NO DATA"]
    assert text.splitlines()[-1] == note
    assert f'<p class="notice">{note}</p>' in page
    assert re.search(r'data-chart="coverage" data-services="0"[^>]*><text[^>]*>No data', page)
    assert con.execute("SELECT DISTINCT period_has_data FROM coverage").fetchall() == [(False,)]
    con.close()


def test_service_uptime_breaks_the_scorecard_uptime_down_by_service(config: ObsConfig) -> None:
    con = report_connection(config, utc(f"{DAY}T00:00:00Z"), utc("2026-11-11T00:00:00Z"))
    result = con.execute(
        "SELECT period, service, tier, in_scorecard, up_samples, up_ok_samples, uptime, "
        "down_minutes FROM service_uptime ORDER BY period, service"
    )
    rows = {(r[0], r[1]): r[2:] for r in result.fetchall()}
    card_uptime = con.execute(
        "SELECT current_value FROM scorecard WHERE metric = 'System uptime'"
    ).fetchone()[0]

    # api failed one scrape of 1000 (one down minute), db none; cache and feed have no `up`.
    assert rows[("current", "api")] == ("critical", True, 1000, 999, 0.999, 1)
    assert rows[("current", "db")] == ("critical", True, 1000, 1000, 1.0, 0)
    assert rows[("current", "cache")] == ("high", False, 0, 0, None, 0)
    assert rows[("current", "feed")] == ("standard", False, 0, 0, None, 0)
    # The previous period has no data: every catalog service is listed, with nothing measured.
    assert {k[1] for k in rows if k[0] == "previous"} == {"api", "db", "cache", "feed"}
    assert all(v[4] is None for k, v in rows.items() if k[0] == "previous")
    scored = [v for k, v in rows.items() if k[0] == "current" and v[1]]
    assert sum(v[3] for v in scored) / sum(v[2] for v in scored) == card_uptime == 1999 / 2000
