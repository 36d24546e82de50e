"""Alert quality, incidents and the burn-rate backtest on hand-built cases with known answers.

The checkout service serves 100 requests every 15 s from 10:00 to 16:00 with no errors, except in
two outages where half of them fail (a burn rate of 50x on a 99% SLO):
- A, 11:00 to 11:20: CheckoutErrors fires at 11:02 (detected after 2 min, resolves 5 min after
  the impact ends) and CheckoutSlow at 11:08 (a late detection: 8 min, resolves 10 min after);
- B, 13:00 to 13:10: nothing fires (a missed incident).
Noise: CheckoutFlap fires for one minute every other minute from 14:00 to 14:20 (flapping, every
firing transient), DiskBlip fires 90 s at 15:00 (transient), NodeHot fires at 10:30 with no
service label (unmapped).
"""

import shutil
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest

from obs_pipelines.config import AlertDerivationConfig, ObsConfig, ReportsConfig
from obs_pipelines.lake import Lake
from obs_pipelines.lake.catalog import build_catalog, connect
from obs_pipelines.lake.ingest import ingest_table_hour
from obs_pipelines.reporting.reports import publish, report_connection
from obs_pipelines.sources.alerts import AlertSamples, build_fragments
from obs_pipelines.sources.incidents import incident_source
from obs_pipelines.windows import hour_window, utc
from tests.report_fixtures import (
    EVALUATION_MS,
    HOUR_MS,
    MINUTE_MS,
    SCRAPE_MS,
    Firing,
    MetricSeries,
    hour_of,
    make_config,
    ms,
    write_alerts,
    write_metrics,
)

pytestmark = pytest.mark.integration  # builds catalogs with every report: seconds per test

DAY = "2026-11-10"
OUTAGES = [
    (ms(f"{DAY}T11:00:00Z"), ms(f"{DAY}T11:20:00Z")),
    (ms(f"{DAY}T13:00:00Z"), ms(f"{DAY}T13:10:00Z")),
]
CHECKOUT = {"service": "checkout", "severity": "critical"}


def traffic(
    service: str = "checkout", outages: list[tuple[int, int]] = OUTAGES
) -> list[MetricSeries]:
    """100 requests every 15 s from 10:00 to 16:00, half of them failing during ``outages``."""
    ok, failed = [], []
    good = bad = 0
    ts = ms(f"{DAY}T10:00:05Z")
    while ts < ms(f"{DAY}T16:00:00Z"):
        failing = any(a <= ts < b for a, b in outages)
        good += 50 if failing else 100
        bad += 50 if failing else 0
        ok.append((ts, float(good)))
        failed.append((ts, float(bad)))
        ts += SCRAPE_MS
    return [
        MetricSeries("requests_total", {"service": service, "code": "200"}, ok),
        MetricSeries("requests_total", {"service": service, "code": "500"}, failed),
    ]


def at(hhmm: str) -> int:
    return ms(f"{DAY}T{hhmm}:00Z")


FIRINGS = [
    Firing("CheckoutErrors", CHECKOUT, at("11:02"), at("11:25")),
    Firing("CheckoutSlow", CHECKOUT, at("11:08"), at("11:30")),
    *[
        Firing(
            "CheckoutFlap",
            {"service": "checkout", "severity": "warning"},
            at(f"14:{m:02d}"),
            at(f"14:{m:02d}") + MINUTE_MS,
        )
        for m in range(0, 20, 2)
    ],
    Firing(
        "DiskBlip", {"job": "checkout", "severity": "warning"}, at("15:00"), at("15:01") + 30_000
    ),
    Firing("NodeHot", {"instance": "node-1:9100", "severity": "warning"}, at("10:30"), at("10:45")),
]


PERIOD = (utc(f"{DAY}T00:00:00Z"), utc("2026-11-11T00:00:00Z"))


def availability_slo(service: str) -> dict[str, Any]:
    """A 99% availability SLO of ``service`` on the requests of ``traffic`` (the only ones in
    the lake)."""
    return {
        "name": f"{service}_availability",
        "service": service,
        "objective": 0.99,
        "window": "1d",
        "sli": {
            "type": "ratio",
            "bad": 'requests_total{code="500"}',
            "total": "requests_total",
        },
    }


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> ObsConfig:
    root: Path = tmp_path_factory.mktemp("quality")
    config = make_config(
        root,
        services=[{"name": "checkout", "owner": "team"}],
        slos=[availability_slo("checkout")],
    )
    lake = Lake(config)
    write_metrics(lake, traffic())
    write_alerts(lake, FIRINGS)
    build_catalog(config)
    return config


@pytest.fixture(scope="module")
def con(config: ObsConfig) -> duckdb.DuckDBPyConnection:
    return report_connection(config, *PERIOD)


def rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    result = con.execute(sql)
    names = [d[0] for d in result.description]
    return [dict(zip(names, r, strict=True)) for r in result.fetchall()]


def quality(con: duckdb.DuckDBPyConnection) -> dict[str | None, dict[str, Any]]:
    return {
        r["alertname"]: r for r in rows(con, "SELECT * FROM alert_quality WHERE period = 'current'")
    }


def test_impact_episodes_are_exactly_the_outages(con: duckdb.DuckDBPyConnection) -> None:
    episodes = rows(con, "SELECT service, started_at, ended_at, slo_names FROM impact_episodes")

    assert [
        (e["started_at"].strftime("%H:%M"), e["ended_at"].strftime("%H:%M")) for e in episodes
    ] == [
        ("11:00", "11:20"),
        ("13:00", "13:10"),
    ]
    assert {e["service"] for e in episodes} == {"checkout"}
    assert episodes[0]["slo_names"] == ["checkout_availability"]


def test_a_true_positive_and_a_late_detection(con: duckdb.DuckDBPyConnection) -> None:
    by_alert = quality(con)

    errors, slow = by_alert["CheckoutErrors"], by_alert["CheckoutSlow"]
    assert (errors["firings"], errors["matched_firings"], errors["precision"]) == (1, 1, 1.0)
    assert (errors["impact_episodes"], errors["detected_episodes"], errors["recall"]) == (2, 1, 0.5)
    assert (errors["mean_detection_minutes"], errors["mean_reset_minutes"]) == (2.0, 5.0)
    assert (slow["precision"], slow["recall"]) == (1.0, 0.5)
    assert (slow["mean_detection_minutes"], slow["mean_reset_minutes"]) == (8.0, 10.0)
    assert errors["transient_firings"] == 0 and not errors["flapping"]


def test_a_flapping_alert_is_detected_the_nagios_way(con: duckdb.DuckDBPyConnection) -> None:
    flap = quality(con)["CheckoutFlap"]

    assert flap["flapping"]
    # 20 state changes in a row reach 100%; the flap starts when the weighted share first
    # reaches 20% (the 4th change, 14:03) and ends when it falls to 5% (14:38).
    assert flap["max_state_change_pct"] == 100.0
    assert (flap["flap_starts"], flap["flapping_minutes"]) == (1, 35)
    assert (flap["firings"], flap["transient_firings"], flap["transient_share"]) == (10, 10, 1.0)
    assert (flap["precision"], flap["noise_ratio"]) == (0.0, 1.0)


def test_a_transient_alert_and_an_unmapped_alert_are_noise(con: duckdb.DuckDBPyConnection) -> None:
    by_alert = quality(con)

    blip, node = by_alert["DiskBlip"], by_alert["NodeHot"]
    assert (blip["firings"], blip["transient_firings"], blip["noise_ratio"]) == (1, 1, 1.0)
    assert blip["services"] == ["checkout"]
    assert (node["firings"], node["unmapped_firings"], node["services"]) == (1, 1, [])
    assert (node["impact_episodes"], node["recall"], node["noise_ratio"]) == (0, None, 1.0)


def test_overall_precision_recall_detection_and_reset(con: duckdb.DuckDBPyConnection) -> None:
    overall = quality(con)[None]

    assert overall["scope"] == "all alerts"
    assert (overall["firings"], overall["matched_firings"], overall["unmapped_firings"]) == (
        14,
        2,
        1,
    )
    assert overall["precision"] == pytest.approx(2 / 14)
    assert overall["noise_ratio"] == pytest.approx(12 / 14)
    assert (overall["impact_episodes"], overall["detected_episodes"], overall["recall"]) == (
        2,
        1,
        0.5,
    )
    # The earliest related alert detects A after 2 min; the last one resolves 10 min after it.
    assert (overall["mean_detection_minutes"], overall["mean_reset_minutes"]) == (2.0, 10.0)


def test_incidents_report_detection_resolution_mttd_and_mttr(
    con: duckdb.DuckDBPyConnection,
) -> None:
    incidents = rows(con, "SELECT * FROM incidents WHERE period = 'current'")
    summary = rows(
        con, "SELECT * FROM incident_summary WHERE period = 'current' AND scope = 'all services'"
    )[0]

    assert [
        (i["detected"], i["first_alert"], i["time_to_detect_minutes"], i["time_to_resolve_minutes"])
        for i in incidents
    ] == [
        (True, "CheckoutErrors", 2.0, 20.0),
        (False, None, None, 10.0),
    ]
    assert incidents[0]["alerts"] == ["CheckoutErrors", "CheckoutSlow"]
    assert (summary["incidents"], summary["detected"], summary["undetected"]) == (2, 1, 1)
    assert (summary["mttd_minutes"], summary["mttr_minutes"], summary["median_ttr_minutes"]) == (
        2.0,
        15.0,
        15.0,
    )
    assert summary["p90_ttr_minutes"] == pytest.approx(19.0)


def test_burn_rate_policy_replay_and_backtest(con: duckdb.DuckDBPyConnection) -> None:
    episodes = rows(
        con, "SELECT * FROM slo_burn_episodes WHERE policy_name = 'page_1h_5m' ORDER BY started_at"
    )
    backtest = rows(
        con,
        "SELECT * FROM alert_policy_backtest WHERE policy_name = 'page_1h_5m' ORDER BY policy_started_at",
    )

    # Each failing minute has 50% errors: a burn rate of 50x. The 1 h window needs more than
    # 14.4 / 50 * 60 = 17.28 failing minutes (from 11:18); the 5 min window more than 1.44 (until
    # 11:23, whose window still holds 11:18 and 11:19). Outage B (10 min) never pages.
    assert [
        (e["started_at"].strftime("%H:%M"), e["ended_at"].strftime("%H:%M")) for e in episodes
    ] == [("11:18", "11:24")]
    assert episodes[0]["peak_long_burn_rate"] == pytest.approx(20 * 0.5 / 60 / 0.01)
    assert backtest[0]["row_kind"] == "policy and alerts"
    assert backtest[0]["alertnames"] == ["CheckoutErrors", "CheckoutSlow"]
    # The real alerts fired 16 minutes before the policy would have paged.
    assert backtest[0]["lead_minutes"] == -16.0
    assert backtest[0]["alert_overlap_minutes"] == 6.0


def test_scorecard_targets_are_strict_for_noise_mttd_and_mttr(
    config: ObsConfig, tmp_path: Path
) -> None:
    # A copy of the catalog (the module's read-only connection keeps the original open).
    copy = tmp_path / "obs.duckdb"
    shutil.copy(config.catalog_path, copy)
    config = config.model_copy(
        update={"lake": config.lake.model_copy(update={"catalog": str(copy)})}
    )

    def judged(**targets: float) -> list[bool]:
        reports = ReportsConfig(targets=targets)
        writable = connect(config, read_only=False)
        try:
            publish(writable, config, reports)
        finally:
            writable.close()
        con = report_connection(config, *PERIOD)
        passed = dict(con.execute("SELECT metric, passed FROM scorecard").fetchall())
        con.close()
        return [
            passed[m]
            for m in ("Alert noise ratio", "Mean time to detection", "Mean time to resolution")
        ]

    # Noise is 12/14, MTTD 2 min, MTTR 15 min: "< target" fails at the target, passes just above.
    assert judged(alert_noise=12 / 14, mttd=2.0, mttr=15.0) == [False, False, False]
    assert judged(alert_noise=0.8572, mttd=2.001, mttr=15.001) == [True, True, True]
    assert judged() == [False, True, True]


def test_firing_time_stops_at_the_period_end_whether_or_not_the_alert_resolved_later(
    config: ObsConfig,
) -> None:
    """A past period's firing time must not change once the lake holds the resolution."""
    con = report_connection(config, utc(f"{DAY}T00:00:00Z"), utc(f"{DAY}T11:15:00Z"))
    firings = {
        r["alertname"]: r
        for r in rows(
            con,
            "SELECT alertname, ends_at, firing_minutes FROM alert_firings WHERE period = 'current'",
        )
    }

    # CheckoutErrors fired 11:02-11:25 and CheckoutSlow 11:08-11:30: both resolved after 11:15.
    assert firings["CheckoutErrors"]["firing_minutes"] == 13.0
    assert firings["CheckoutSlow"]["firing_minutes"] == 7.0
    assert firings["NodeHot"]["firing_minutes"] == 15.0
    assert quality(con)["CheckoutErrors"]["firing_minutes"] == 13.0


def test_firing_time_counts_in_the_period_it_was_spent_in_whichever_period_it_started_in(
    config: ObsConfig,
) -> None:
    """A firing that spans the period boundary spends part of its time in each period."""
    con = report_connection(config, utc(f"{DAY}T11:10:00Z"), utc(f"{DAY}T11:20:00Z"))
    by_period = {
        (r["period"], r["alertname"]): (r["firings"], r["firing_minutes"])
        for r in rows(con, "SELECT * FROM alert_quality")
    }

    # The previous period is 11:00-11:10. CheckoutErrors fired 11:02-11:25: 8 min before 11:10
    # and 10 min after; CheckoutSlow fired 11:08-11:30: 2 min before, 10 min after.
    assert by_period == {
        ("previous", "CheckoutErrors"): (1, 8.0),
        ("previous", "CheckoutSlow"): (1, 2.0),
        ("previous", None): (2, 10.0),
        # Both started in the previous period: no firing of the current one, but 2 x 10 minutes.
        ("current", "CheckoutErrors"): (0, 10.0),
        ("current", "CheckoutSlow"): (0, 10.0),
        ("current", None): (0, 20.0),
    }
    firings = rows(
        con,
        "SELECT period, alertname, previous_minutes, current_minutes, firing_minutes"
        " FROM alert_firings ORDER BY starts_at",
    )
    con.close()
    assert [tuple(r.values()) for r in firings] == [
        ("previous", "CheckoutErrors", 8.0, 10.0, 18.0),
        ("previous", "CheckoutSlow", 2.0, 10.0, 12.0),
    ]


def test_a_firing_begun_before_the_previous_period_meets_the_policy_it_overlaps(
    config: ObsConfig,
) -> None:
    """The backtest sets a policy episode beside every alert firing through it."""
    con = report_connection(config, utc(f"{DAY}T11:30:00Z"), utc(f"{DAY}T11:50:00Z"))
    backtest = rows(con, "SELECT * FROM alert_policy_backtest WHERE policy_name = 'page_1h_5m'")
    by_period = {
        (r["period"], r["alertname"]): (r["firings"], r["firing_minutes"])
        for r in rows(con, "SELECT * FROM alert_quality")
    }
    con.close()

    # The previous period is 11:10-11:30; the policy pages 11:18-11:24. CheckoutErrors (from
    # 11:02) and CheckoutSlow (from 11:08) started before it and fired through the page.
    assert [(r["period"], r["row_kind"], r["alertnames"]) for r in backtest] == [
        ("previous", "policy and alerts", ["CheckoutErrors", "CheckoutSlow"])
    ]
    assert (backtest[0]["lead_minutes"], backtest[0]["alert_overlap_minutes"]) == (-16.0, 6.0)
    # Neither started in a report period; 11:10-11:25 and 11:10-11:30 were spent in the previous.
    assert by_period == {
        ("previous", "CheckoutErrors"): (0, 15.0),
        ("previous", "CheckoutSlow"): (0, 20.0),
        ("previous", None): (0, 35.0),
        ("current", None): (0, 0.0),
    }


# --- alerts firing since before the previous period ------------------------------------------
# checkout has a postmortem, PM-1, 11:00 -> 11:45; payments has no records and fails 13:00-13:10
# (one impact episode). CheckoutDown and PaymentsDown have fired since 11-08 10:00 and resolve at
# 11:50 and 13:40: both fired through the whole previous period (11-09) and into the incidents.

LONG_FIRINGS = [
    Firing("CheckoutDown", CHECKOUT, ms("2026-11-08T10:00:00Z"), at("11:50")),
    Firing("PaymentsDown", {"service": "payments"}, ms("2026-11-08T10:00:00Z"), at("13:40")),
]


def write_long_alerts(lake: Lake, firings: list[Firing], end_ms: int) -> None:
    """Publish the hourly ``alert_fragments`` Prometheus's ALERTS samples of ``firings`` (one per
    evaluation) give, from the hour of the first one to ``end_ms``, as an ingest run would."""
    labels = [
        {**f.labels, "__name__": "ALERTS", "alertname": f.alertname, "alertstate": "firing"}
        for f in firings
    ]
    stamps = [np.arange(f.start_ms, f.end_ms, EVALUATION_MS, dtype=np.int64) for f in firings]
    samples = AlertSamples(
        labels,
        np.concatenate([np.full(s.size, i, np.int64) for i, s in enumerate(stamps)]),
        np.concatenate(stamps),
    )
    first = hour_of(min(f.start_ms for f in firings)).start_ms
    with lake.batch("alert_fragments") as batch:
        for start in range(first, end_ms, HOUR_MS):
            hour = hour_of(start)
            batch.add(hour, build_fragments(samples, hour, AlertDerivationConfig(), "prometheus"))
        batch.commit()


@pytest.fixture(scope="module")
def long_alerts(tmp_path_factory: pytest.TempPathFactory) -> ObsConfig:
    root: Path = tmp_path_factory.mktemp("long_alerts")
    (root / "postmortems.csv").write_text(
        "id,service,started_at,detected_at,resolved_at\n"
        f"PM-1,checkout,{DAY}T11:00:00Z,{DAY}T11:06:00Z,{DAY}T11:45:00Z\n"
    )
    config = make_config(
        root,
        services=[{"name": "checkout", "owner": "team"}, {"name": "payments", "owner": "team"}],
        slos=[availability_slo("payments")],
        sources={"incidents": {"postmortems": "postmortems.csv"}},
    )
    lake = Lake(config)
    write_metrics(lake, traffic("payments", [(at("13:00"), at("13:10"))]))
    write_long_alerts(lake, LONG_FIRINGS, at("16:00"))
    now = utc(f"{DAY}T16:05:00Z")
    ingest_table_hour(lake, incident_source(config, clock=lambda: now), hour_window(now))
    build_catalog(config)
    return config


def test_an_alert_firing_since_before_the_previous_period_detects_the_incidents_it_spans(
    long_alerts: ObsConfig,
) -> None:
    """An alert already firing when impact starts detects it at once, however long ago it
    started."""
    con = report_connection(long_alerts, *PERIOD)
    incidents = rows(
        con,
        "SELECT incident_id, basis, alerts, alert_detected, time_to_detect_minutes"
        " FROM incidents WHERE period = 'current' ORDER BY started_at",
    )
    summary = rows(
        con, "SELECT * FROM incident_summary WHERE period = 'current' AND scope = 'all services'"
    )[0]
    by_alert = quality(con)
    firings = rows(
        con,
        "SELECT alertname, period, previous_minutes, current_minutes FROM alert_firings"
        " ORDER BY alertname",
    )
    flapping = con.execute("SELECT count(*) FILTER (WHERE flapping) FROM alert_flapping").fetchone()
    con.close()

    assert [tuple(i.values()) for i in incidents] == [
        ("PM-1", "records", ["CheckoutDown"], True, 6.0),
        ("payments@2026-11-10T13:00Z", "impact episodes", ["PaymentsDown"], True, 0.0),
    ]
    assert (summary["incidents"], summary["alert_detected"], summary["alert_recall"]) == (2, 2, 1.0)
    # Detected at once (0 min); resolved 11:50 - 11:45 and 13:40 - 13:10 after the impact.
    assert {
        name: (
            r["firings"],
            r["firing_minutes"],
            r["impact_episodes"],
            r["detected_episodes"],
            r["recall"],
            r["mean_detection_minutes"],
            r["mean_reset_minutes"],
        )
        for name, r in by_alert.items()
    } == {
        "CheckoutDown": (0, 710.0, 1, 1, 1.0, 0.0, 5.0),
        "PaymentsDown": (0, 820.0, 1, 1, 1.0, 0.0, 30.0),
        None: (0, 1530.0, 2, 2, 1.0, 0.0, 17.5),
    }
    # Started in neither period (no firing of either), all of 11-09 in the previous one.
    assert [tuple(f.values()) for f in firings] == [
        ("CheckoutDown", None, 1440.0, 710.0),
        ("PaymentsDown", None, 1440.0, 820.0),
    ]
    assert flapping == (0,)


@pytest.fixture(scope="module")
def undetected(tmp_path_factory: pytest.TempPathFactory) -> ObsConfig:
    root: Path = tmp_path_factory.mktemp("undetected")
    (root / "postmortems.csv").write_text(
        "id,service,started_at,detected_at,resolved_at\n"
        f"PM-1,checkout,{DAY}T11:00:00Z,{DAY}T11:10:00Z,{DAY}T11:40:00Z\n"
        f"PM-2,checkout,{DAY}T13:00:00Z,,{DAY}T13:20:00Z\n"
        f"PM-3,checkout,{DAY}T14:00:00Z,{DAY}T14:01:18.21Z,{DAY}T14:10:00Z\n"
    )
    config = make_config(
        root,
        services=[{"name": "checkout", "owner": "team"}],
        sources={"incidents": {"postmortems": "postmortems.csv"}},
    )
    now = utc(f"{DAY}T16:05:00Z")
    ingest_table_hour(Lake(config), incident_source(config, clock=lambda: now), hour_window(now))
    build_catalog(config)
    return config


def test_an_undetected_incident_has_no_time_to_detect_and_detection_times_are_exact(
    undetected: ObsConfig,
) -> None:
    con = report_connection(undetected, *PERIOD)
    incidents = rows(
        con, "SELECT incident_id, detected, time_to_detect_minutes FROM incidents ORDER BY 1"
    )
    summary = rows(
        con, "SELECT * FROM incident_summary WHERE period = 'current' AND scope = 'all services'"
    )[0]
    con.close()

    # 78.21 s is 1.3035 min exactly (to the double), not 1.3035000006357829 from epoch seconds.
    assert [tuple(i.values()) for i in incidents] == [
        ("PM-1", True, 10.0),
        ("PM-2", False, None),
        ("PM-3", True, 1.3035),
    ]
    assert (summary["detected"], summary["undetected"]) == (2, 1)
    assert summary["mttd_minutes"] == pytest.approx((10 + 1.3035) / 2, rel=1e-15)
    assert summary["mttr_minutes"] == pytest.approx((40 + 20 + 10) / 3, rel=1e-15)
