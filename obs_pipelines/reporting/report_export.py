"""Report results as Pushgateway metrics (names documented in ``pushgateway.REPORT_METRICS``),
so the seed's Grafana dashboards can chart error budgets, noise, coverage, MTTD and MTTR.

Reads the report views of a catalog connection for the current report period; writes nothing.
"""

import duckdb

from obs_pipelines.config import ObsConfig
from obs_pipelines.operations.pushgateway import ReportMetric, push

MINUTE = 60.0


def report_metrics(con: duckdb.DuckDBPyConnection) -> list[ReportMetric]:
    """Every documented report metric for the current period, from the report views (pin them
    first with :func:`reports.pin_reports` so each view is computed once)."""
    metrics: list[ReportMetric] = []
    latest: dict[str, tuple] = {}
    for row in con.execute(
        """SELECT slo_name, service, sli_measurement, slo_target, error_budget_remaining,
                  error_budget_remaining_minutes, window_end
           FROM slo_compliance WHERE scope = 'rolling'"""
    ).fetchall():
        if row[0] not in latest or row[-1] > latest[row[0]][-1]:
            latest[row[0]] = row
    for slo, service, sli, objective, remaining, remaining_minutes, _ in latest.values():
        labels = {"slo": slo, "service": service}
        metrics += _some(
            ("obs_slo_sli_ratio", labels, sli),
            ("obs_slo_objective_ratio", labels, objective),
            ("obs_slo_error_budget_remaining_ratio", labels, remaining),
            ("obs_slo_error_budget_remaining_minutes", labels, remaining_minutes),
        )
    for slo, service, window_minutes, burn_rate in con.execute(
        """SELECT slo_name, service, window_minutes, burn_rate FROM slo_burn_rates
           WHERE evaluated_at = (SELECT period_end FROM report_period)"""
    ).fetchall():
        labels = {"slo": slo, "service": service, "window": _window(window_minutes)}
        metrics += _some(("obs_slo_burn_rate", labels, burn_rate))
    for alertname, noise, precision, recall in con.execute(
        "SELECT alertname, noise_ratio, precision, recall FROM alert_quality WHERE period = 'current'"
    ).fetchall():
        labels = {"alertname": alertname or ""}
        metrics += _some(
            ("obs_alert_noise_ratio", labels, noise),
            ("obs_alert_precision_ratio", labels, precision),
            ("obs_alert_recall_ratio", labels, recall),
        )
    coverage = con.execute(
        """SELECT DISTINCT pillar, pillar_coverage, overall_coverage FROM coverage
           WHERE period = 'current' AND in_catalog"""
    ).fetchall()
    for pillar, pillar_coverage, _ in coverage:
        metrics += _some(("obs_coverage_ratio", {"pillar": pillar}, pillar_coverage))
    if coverage:
        metrics += _some(("obs_coverage_ratio", {"pillar": "all"}, coverage[0][2]))
    # A period holding no data has unknown coverage (its ratios are NULL): no pillar sent as absent.
    for service, pillar, present in con.execute(
        """SELECT service, pillar, present FROM coverage
           WHERE period = 'current' AND in_catalog AND period_has_data"""
    ).fetchall():
        metrics.append(
            ReportMetric(
                "obs_service_pillar_present", {"service": service, "pillar": pillar}, float(present)
            )
        )
    for service, incidents, mttd, mttr in con.execute(
        "SELECT service, incidents, mttd_minutes, mttr_minutes FROM incident_summary WHERE period = 'current'"
    ).fetchall():
        labels = {"service": service or ""}
        metrics += _some(
            ("obs_incidents", labels, incidents),
            ("obs_incident_mttd_seconds", labels, None if mttd is None else mttd * MINUTE),
            ("obs_incident_mttr_seconds", labels, None if mttr is None else mttr * MINUTE),
        )
    for metric, value, target, passed in con.execute(
        """SELECT s.metric, s.current_value, t.target_value, s.passed
           FROM scorecard AS s JOIN scorecard_targets AS t USING (metric_order) ORDER BY metric_order"""
    ).fetchall():
        labels = {"metric": metric}
        metrics += _some(
            ("obs_scorecard_value", labels, value),
            ("obs_scorecard_target", labels, target),
            ("obs_scorecard_pass", labels, None if passed is None else float(passed)),
        )
    return metrics


def push_reports(config: ObsConfig, con: duckdb.DuckDBPyConnection) -> int | None:
    """Push the report metrics to ``operations.pushgateway`` if one is configured; returns the
    number of samples pushed, or None when no Pushgateway is configured."""
    gateway = config.operations.pushgateway
    if gateway is None:
        return None
    return push(
        gateway.url, report_metrics(con), job=gateway.job, timeout=gateway.timeout.total_seconds()
    )


def _some(*samples: tuple[str, dict[str, str], float | None]) -> list[ReportMetric]:
    """Samples with a value; a report cell without one (no data) is left out, not sent as 0."""
    return [
        ReportMetric(name, labels, float(value))
        for name, labels, value in samples
        if value is not None
    ]


def _window(minutes: int) -> str:
    for unit, size in (("d", 1440), ("h", 60)):
        if minutes % size == 0:
            return f"{minutes // size}{unit}"
    return f"{minutes}m"
