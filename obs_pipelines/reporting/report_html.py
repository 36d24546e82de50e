"""The reliability report as one self-contained HTML file, and the scorecard as a terminal table.

Everything is drawn here as inline SVG from the catalog's report views: no script, no stylesheet
or font from elsewhere, no network, so the file opens the same on a laptop on a plane, in a mail
attachment or in a Dagster run's metadata. Each chart is an ``<svg class="chart" data-chart=...>``
whose marks carry classes (``bar``, ``cell``, ``budget-line``...), so tests and curious readers can
count what was drawn.
"""

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from obs_pipelines.config import ObsConfig
from obs_pipelines.errors import ObsError
from obs_pipelines.lake.delta import delta_root
from obs_pipelines.reporting.chart_axes import time_ticks, value_ticks
from obs_pipelines.reporting.query import output_sink, output_target
from obs_pipelines.reporting.reports import pin_reports, report_connection

WIDTH = 860
# A burn-rate chart's points: a week of 5-minute buckets. Longer periods take longer buckets (the
# highest rate of each), so a quarter's report is not 56 MB of SVG.
CHART_POINTS = 7 * 24 * 12
CHART_STEP = timedelta(minutes=5)
PALETTE = {
    "ink": "#1f2933",
    "muted": "#7b8794",
    "grid": "#e4e7eb",
    "ok": "#2f9e44",
    "bad": "#e03131",
    "warn": "#f08c00",
    "line": "#1c7ed6",
    "impact": "#ffc9c9",
    "alert": "#845ef7",
    "neutral": "#ced4da",
}
PILLARS = ("metrics", "up", "logs", "traces", "alerts", "slo")


@dataclass(frozen=True)
class ScorecardRow:
    metric: str
    target: str
    current: float | None
    previous: float | None
    unit: str
    status: str
    basis: str | None = None  # MTTD and MTTR: the incidents measured (records, impact episodes)

    def shown(self, value: float | None) -> str:
        if value is None:
            return "-"
        return f"{value * 100:.3f}%" if self.unit == "ratio" else f"{value:.1f} min"

    @property
    def change(self) -> str:
        if self.current is None or self.previous is None:
            return "-"
        delta = self.current - self.previous
        return f"{delta * 100:+.3f} pp" if self.unit == "ratio" else f"{delta:+.1f} min"


def render_report(
    config: ObsConfig, start: datetime | None, end: datetime | None, path: str | Path
) -> Path:
    """Write the reliability report for ``[start, end)`` (UTC) to ``path``; returns the path.

    ``None`` bounds take the default period (the week ending with the newest data).
    """
    con = report_connection(config, start, end)
    try:
        pin_reports(con)
        return write_report(con, config, path)
    finally:
        con.close()


def write_report(con: duckdb.DuckDBPyConnection, config: ObsConfig, path: str | Path) -> Path:
    """Write the report of a session whose reports are pinned (``pin_reports``): the scorecard,
    the HTML file and the Pushgateway export of one run share one computation of the reports.

    ``path`` is checked before the report is drawn, as ``obs query --output`` is: never the
    catalog or a Delta table, not a folder, not under a file (one line each). A regular file is
    replaced once the report is whole; a FIFO or device there is written in place."""
    target = output_target(
        path, _kept(config), "reliability.html", "write the report elsewhere (e.g. reports/)"
    )
    document = _document(con)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ObsError(
            f"cannot create the folder {target.parent} for the report ({exc.strerror}); "
            "pass another --output"
        ) from None
    with output_sink(target) as sink:
        sink.write(document.encode())
    return Path(path)


def _kept(config: ObsConfig) -> list[Path]:
    """What a report must never overwrite: the catalog file (and its WAL) and, for a local
    lake, its Delta tables. Not the whole lake root: the report asset writes into ``reports/``
    beside the catalog, often inside it."""
    catalog = Path(config.catalog_path).resolve()
    kept = [catalog, catalog.with_name(f"{catalog.name}.wal")]
    if "://" not in config.lake_root:
        kept.append(Path(delta_root(config)).resolve())
    return kept


def scorecard_text(config: ObsConfig, start: datetime | None, end: datetime | None) -> str:
    """The Success Metrics table for ``[start, end)`` as aligned plain text."""
    con = report_connection(config, start, end)
    try:
        pin_reports(con)
        return format_scorecard(con)
    finally:
        con.close()


def format_scorecard(con: duckdb.DuckDBPyConnection) -> str:
    """The Success Metrics table of a report session as aligned plain text."""
    rows = scorecard_rows(con)
    period_start, period_end = con.execute(
        "SELECT period_start, period_end FROM report_period"
    ).fetchone()
    table = [("Metric", "Target", "Current", "Previous", "Change", "Status")]
    table += [
        (r.metric, r.target, r.shown(r.current), r.shown(r.previous), r.change, r.status.upper())
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = [f"Scorecard {period_start:%Y-%m-%d %H:%M} .. {period_end:%Y-%m-%d %H:%M} UTC"]
    for n, row in enumerate(table):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines += [n for n in (incidents_basis_note(rows), no_data_note(con)) if n]
    return "\n".join(lines) + "\n"


def incidents_basis_note(rows: list[ScorecardRow]) -> str | None:
    """Which incidents MTTD and MTTR were measured on: incident records (postmortems, PagerDuty)
    are ground truth, impact episodes the fallback; a reader must know which."""
    basis = next((r.basis for r in rows if r.basis), None)
    return f"MTTD and MTTR measured on: {basis}" if basis else None


def no_data_note(con: duckdb.DuckDBPyConnection) -> str | None:
    """Says so when the report period holds no data (coverage's ``period_has_data``: no metric
    sample, log record, span, alert or rule snapshot), so that a report of an empty lake or of
    the wrong dates is not read as one of a quiet, unmonitored week. Coverage has a row per
    service known to the catalog or the data: none at all means no data either."""
    (has_data,) = con.execute(
        "SELECT bool_or(period_has_data) FROM coverage WHERE period = 'current'"
    ).fetchone()
    if has_data:
        return None
    start, end = con.execute("SELECT period_start, period_end FROM report_period").fetchone()
    return (
        f"The period {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC holds no data (no metric "
        "sample, log record, span, alert or rule snapshot): there is nothing to measure; report "
        "a period the lake holds data for, or ingest this one first"
    )


def scorecard_rows(con: duckdb.DuckDBPyConnection) -> list[ScorecardRow]:
    return [
        ScorecardRow(*row)
        for row in con.execute(
            """SELECT metric, target, current_value, previous_value, unit, status, basis
               FROM scorecard ORDER BY metric_order"""
        ).fetchall()
    ]


def findings(con: duckdb.DuckDBPyConnection, limit: int = 10) -> list[str]:
    """The few things a lead should read first, most severe first."""
    found = [note] if (note := no_data_note(con)) else []
    for slo, status, remaining in con.execute(
        """SELECT slo_name, status, error_budget_remaining FROM slo_compliance
           WHERE scope = 'rolling' AND status IN ('breached', 'critical', 'warning')
             AND window_end = (SELECT max(window_end) FROM slo_compliance)
           ORDER BY error_budget_remaining"""
    ).fetchall():
        found.append(f"SLO {slo} is {status}: {remaining * 100:.0f}% of its error budget left")
    for service, started, minutes in con.execute(
        """SELECT service, started_at, time_to_resolve_minutes FROM incidents
           WHERE period = 'current' AND NOT detected ORDER BY started_at"""
    ).fetchall():
        impact = "ongoing" if minutes is None else f"{minutes:.0f} min of SLO impact"
        found.append(
            f"Undetected incident on {service} at {started:%Y-%m-%d %H:%M} UTC ({impact}, no alert)"
        )
    for alert, firings, noise, flapping in con.execute(
        """SELECT alertname, firings, noise_ratio, flapping FROM alert_quality
           WHERE period = 'current' AND scope = 'alert' AND (noise_ratio > 0.5 OR flapping)
           ORDER BY firings * noise_ratio DESC, alertname"""
    ).fetchall():
        what = "flapping, " if flapping else ""
        found.append(
            f"Alert {alert}: {what}{firings} firings, {noise * 100:.0f}% matched no impact"
        )
    for service, pillars in con.execute(
        """SELECT service, string_agg(pillar, ', ' ORDER BY pillar) FROM coverage
           WHERE period = 'current' AND in_catalog AND status = 'missing' AND period_has_data
           GROUP BY service ORDER BY service"""
    ).fetchall():
        found.append(f"{service} lacks required {pillars}")
    return found[:limit]


# -- the document ---------------------------------------------------------------------------------


def _document(con: duckdb.DuckDBPyConnection) -> str:
    period_start, period_end = con.execute(
        "SELECT period_start, period_end FROM report_period"
    ).fetchone()
    slos = con.execute(
        "SELECT slo_name, service, slo_target, window_minutes FROM slo_definitions ORDER BY slo_name"
    ).fetchall()
    no_data = no_data_note(con)
    step = chart_step(period_start, period_end)
    one_hour_rates = _one_hour_burn_rates(con, step)
    budget_shares = hourly_bad_shares(con)
    marks = ChartMarks.read(con)
    sections = [
        _section("Scorecard", _scorecard_table(scorecard_rows(con))),
        _section("Top findings", _list(findings(con)) or "<p>Nothing stands out.</p>"),
        _section(
            "Error budget burn-down",
            "<p>Error budget left over each SLO's own window, hour by hour.</p>"
            + "".join(_burn_down_chart(slo, budget_shares.get(slo[0], [])) for slo in slos),
        ),
        _section(
            "Burn rate, impact and alerts",
            "<p>1-hour burn rate (log scale); shaded: SLO-impact episodes of the service; "
            "violet bars: the service's alerts that actually fired.</p>"
            + "".join(
                _burn_rate_chart(
                    marks, slo, one_hour_rates.get(slo[0], []), step, period_start, period_end
                )
                for slo in slos
            ),
        ),
        _section("Alert noise", _noise_chart(con)),
        _section("Monitoring coverage", _coverage_heatmap(con, known=no_data is None)),
        _section("SLO compliance at period end", _compliance_table(con)),
        _section("Incidents", _incident_table(con)),
    ]
    title = f"Reliability report {period_start:%Y-%m-%d} to {period_end:%Y-%m-%d}"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{_e(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; color: {PALETTE["ink"]}; margin: 24px auto; max-width: {WIDTH + 40}px; }}
h1 {{ font-size: 22px; }} h2 {{ font-size: 17px; margin-top: 32px; border-bottom: 1px solid {PALETTE["grid"]}; }}
table {{ border-collapse: collapse; font-size: 13px; }}
td, th {{ padding: 4px 10px; border-bottom: 1px solid {PALETTE["grid"]}; text-align: left; }}
.pass {{ color: {PALETTE["ok"]}; font-weight: 600; }} .fail {{ color: {PALETTE["bad"]}; font-weight: 600; }}
.nodata {{ color: {PALETTE["muted"]}; }}
.notice {{ border-left: 4px solid {PALETTE["warn"]}; padding: 8px 12px; background: #fff4e6; }}
svg text {{ font-size: 11px; fill: {PALETTE["ink"]}; }}
</style>
</head>
<body>
<h1>{_e(title)}</h1>
<p>Period {period_start:%Y-%m-%d %H:%M} to {period_end:%Y-%m-%d %H:%M} UTC, compared with the same
length before it. Computed from the lake's catalog views (slo_compliance, alert_quality, coverage,
incidents, scorecard).</p>
{_notice(no_data)}{"".join(sections)}
</body>
</html>
"""


def _notice(text: str | None) -> str:
    return f'<p class="notice">{_e(text)}</p>\n' if text else ""


def _section(title: str, body: str) -> str:
    return f"<section><h2>{_e(title)}</h2>\n{body}\n</section>\n"


def _list(items: Sequence[str]) -> str:
    return "<ul>" + "".join(f"<li>{_e(i)}</li>" for i in items) + "</ul>" if items else ""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _scorecard_table(rows: list[ScorecardRow]) -> str:
    body = "".join(
        f"<tr><td>{_e(r.metric)}</td><td>{_e(r.target)}</td><td>{_e(r.shown(r.current))}</td>"
        f"<td>{_e(r.shown(r.previous))}</td><td>{_e(r.change)}</td>"
        f'<td class="{"nodata" if r.status == "no data" else r.status}">{_e(r.status.upper())}</td></tr>'
        for r in rows
    )
    note = incidents_basis_note(rows)
    return (
        '<table class="scorecard"><tr><th>Metric</th><th>Target</th><th>Current</th>'
        f"<th>Previous</th><th>Change</th><th>Status</th></tr>{body}</table>"
        + (f'<p class="note">{_e(note)}</p>' if note else "")
    )


def _compliance_table(con: duckdb.DuckDBPyConnection) -> str:
    rows = con.execute(
        """SELECT slo_name, sli_measurement, slo_target, error_budget_remaining,
                  error_budget_remaining_minutes, status
           FROM slo_compliance
           WHERE scope = 'rolling' AND window_end = (SELECT max(window_end) FROM slo_compliance)
           ORDER BY slo_name"""
    ).fetchall()
    body = "".join(
        f"<tr><td>{_e(name)}</td><td>{_pct(sli)}</td><td>{_pct(target)}</td>"
        f"<td>{_pct(remaining)}</td><td>{_num(minutes)}</td><td>{_e(status)}</td></tr>"
        for name, sli, target, remaining, minutes, status in rows
    )
    return (
        "<table><tr><th>SLO</th><th>SLI</th><th>Objective</th><th>Budget left</th>"
        f"<th>Budget left (min)</th><th>Status</th></tr>{body}</table>"
    )


def _incident_table(con: duckdb.DuckDBPyConnection) -> str:
    rows = con.execute(
        """SELECT service, started_at, resolved_at, first_alert, detected,
                  time_to_detect_minutes, time_to_resolve_minutes, slo_names
           FROM incidents WHERE period = 'current' ORDER BY started_at"""
    ).fetchall()
    if not rows:
        return "<p>No SLO-impact episodes in the period.</p>"
    body = "".join(
        f"<tr><td>{_e(service)}</td><td>{start:%Y-%m-%d %H:%M}</td>"
        f"<td>{'ongoing' if end is None else f'{end:%H:%M}'}</td>"
        f"<td>{_e(alert or _undetected(detected, end))}</td><td>{_num(ttd)}</td><td>{_num(ttr)}</td>"
        f"<td>{_e(', '.join(slos or []))}</td></tr>"
        for service, start, end, alert, detected, ttd, ttr, slos in rows
    )
    return (
        "<table><tr><th>Service</th><th>Start (UTC)</th><th>End</th><th>First alert</th>"
        f"<th>TTD (min)</th><th>TTR (min)</th><th>SLOs</th></tr>{body}</table>"
    )


def _undetected(detected: bool, resolved_at: datetime | None) -> str:
    """The first-alert cell of an incident no alert related to: a postmortem may record its
    detection all the same, and an open incident may still be detected."""
    if detected:
        return "none"
    return "none (not detected yet)" if resolved_at is None else "none (undetected)"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.3f}%"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


# -- charts ---------------------------------------------------------------------------------------


def _svg(chart: str, height: int, body: str, **data: str) -> str:
    attributes = "".join(f' data-{k.replace("_", "-")}="{_e(v)}"' for k, v in data.items())
    return (
        f'<svg class="chart" data-chart="{chart}"{attributes} width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" role="img">{body}</svg>\n'
    )


def hourly_bad_shares(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[datetime, Any]]]:
    """Every SLO's share of bad events over its own window, hour by hour through the period
    (None: no events), in one query: the window ending at each hour ``at`` sums the clock hours
    ``h`` with ``at - window <= h < at`` of the session's events (which end with the period), as
    the difference of two hourly running totals."""
    rows = con.execute(
        """WITH hourly AS (
               SELECT slo_name, date_trunc('hour', minute) AS hour,
                      sum(bad_events) AS bad, sum(total_events) AS total
               FROM report_slo_events GROUP BY ALL
           ),
           through AS (
               SELECT slo_name, hour, sum(bad) OVER w AS bad_through,
                      sum(total) OVER w AS total_through
               FROM hourly
               WINDOW w AS (PARTITION BY slo_name ORDER BY hour ROWS UNBOUNDED PRECEDING)
           ),
           ends AS (
               SELECT d.slo_name, e.at,
                      date_trunc('hour', e.at - INTERVAL 1 MICROSECOND) AS last_hour,
                      date_trunc('hour', e.at - to_minutes(d.window_minutes)
                                         - INTERVAL 1 MICROSECOND) AS hour_before
               FROM slo_definitions AS d,
                    (SELECT unnest(generate_series(period_start + INTERVAL 1 HOUR, period_end,
                                                   INTERVAL 1 HOUR)) AS at
                     FROM report_period) AS e
           )
           SELECT e.slo_name, e.at,
                  (coalesce(l.bad_through, 0) - coalesce(b.bad_through, 0))
                      / nullif(coalesce(l.total_through, 0) - coalesce(b.total_through, 0), 0)
           FROM ends AS e
           ASOF LEFT JOIN through AS l ON l.slo_name = e.slo_name AND l.hour <= e.last_hour
           ASOF LEFT JOIN through AS b ON b.slo_name = e.slo_name AND b.hour <= e.hour_before
           ORDER BY e.slo_name, e.at"""
    ).fetchall()
    return _grouped(rows)


def _burn_down_chart(slo: tuple[Any, ...], points: list[tuple[datetime, Any]]) -> str:
    name, service, target, _ = slo
    budget = 1 - target
    series = [(at, None if share is None else 1 - share / budget) for at, share in points]
    height, top, bottom, left, right = 180, 24, 30, 56, 16
    values = [v for _, v in series if v is not None]
    ticks = value_ticks(min([0.0, *values]), 1.0)
    low = ticks[0]  # the lowest gridline is the plot's bottom edge, clear of the time labels
    span_y = 1 - low or 1
    x = _time_axis(
        series[0][0] if series else datetime(1970, 1, 1),
        series[-1][0] if series else datetime(1970, 1, 2),
        left,
        WIDTH - right,
    )

    def y(value: float) -> float:
        return top + (1 - value) / span_y * (height - top - bottom)

    known = [(at, v) for at, v in series if v is not None]
    path = _path(
        [(x(at), y(v)) for at, v in known], _gaps([at for at, _ in known], timedelta(hours=1))
    )
    grid = "".join(
        f'<line x1="{left}" x2="{WIDTH - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
        f'stroke="{PALETTE["grid"]}"/><text class="y-label" x="{left - 6}" y="{y(v) + 4:.1f}" '
        f'text-anchor="end">{v * 100:.0f}%</text>'
        for v in ticks
    )
    zero = (
        f'<line class="zero" x1="{left}" x2="{WIDTH - right}" y1="{y(0):.1f}" y2="{y(0):.1f}" '
        f'stroke="{PALETTE["bad"]}" stroke-dasharray="4 3"/>'
    )
    line = (
        f'<path class="budget-line" d="{path}" fill="none" stroke="{PALETTE["line"]}" stroke-width="2"/>'
        if path
        else '<text class="empty" x="60" y="90">no events in the period</text>'
    )
    title = f'<text x="{left}" y="14" font-weight="600">{_e(name)} ({_e(service)}), objective {target * 100:g}%</text>'
    return _svg(
        "burn-down",
        height,
        title + grid + zero + line + _time_labels(series, x, height - 10, left, WIDTH - right),
        slo=name,
        points=str(len(values)),
    )


def chart_step(start: datetime, end: datetime) -> timedelta:
    """The bucket of a burn-rate chart over ``[start, end)``: 5 minutes, or the period over
    ``CHART_POINTS`` rounded up to whole 5 minutes."""
    steps = math.ceil((end - start) / CHART_POINTS / CHART_STEP)
    return CHART_STEP * max(1, steps)


def _one_hour_burn_rates(
    con: duckdb.DuckDBPyConnection, step: timedelta
) -> dict[str, list[tuple[datetime, Any]]]:
    """Every SLO's 1-hour burn rate over the period, the highest of each ``step``, in one query:
    a session does not keep slo_burn_rates, so each read computes it."""
    rows = con.execute(
        """SELECT slo_name, time_bucket(to_minutes(?), evaluated_at - INTERVAL 1 MINUTE) AS at,
                  max(burn_rate) AS burn_rate
           FROM slo_burn_rates
           WHERE window_minutes = 60
             AND evaluated_at > (SELECT period_start FROM report_period)
             AND evaluated_at <= (SELECT period_end FROM report_period)
           GROUP BY 1, 2 ORDER BY 1, 2""",
        [step // timedelta(minutes=1)],
    ).fetchall()
    return _grouped(rows)


@dataclass(frozen=True)
class ChartMarks:
    """What the burn-rate charts shade, read once for every SLO: the current period's impact
    episodes by SLO, and its alert firings (clipped to the period) by service, in time order."""

    episodes: dict[str, list[tuple[datetime, datetime]]]
    alerts: dict[str, list[tuple[str, datetime, datetime]]]

    @classmethod
    def read(cls, con: duckdb.DuckDBPyConnection) -> "ChartMarks":
        episodes = con.execute(
            """SELECT unnest(slo_names) AS slo_name, started_at, ended_at FROM impact_episodes
               WHERE period = 'current' ORDER BY started_at, slo_name"""
        ).fetchall()
        alerts = con.execute(
            """SELECT f.service, f.alertname, greatest(f.starts_at, p.period_start),
                      least(f.effective_end, p.period_end)
               FROM alert_firings AS f, report_period AS p
               WHERE f.current_minutes > 0 ORDER BY f.starts_at, f.alertname"""
        ).fetchall()
        return cls(_grouped(episodes), _grouped(alerts))


def _grouped(rows: list[tuple[Any, ...]]) -> dict[Any, list[tuple[Any, ...]]]:
    """Query rows by their first column, each the rest of its row, in the rows' order."""
    grouped: dict[Any, list[tuple[Any, ...]]] = {}
    for key, *rest in rows:
        grouped.setdefault(key, []).append(tuple(rest))
    return grouped


def _burn_rate_chart(
    marks: ChartMarks,
    slo: tuple[Any, ...],
    rates: list[tuple[datetime, Any]],
    step: timedelta,
    start: datetime,
    end: datetime,
) -> str:
    name, service, _, _ = slo
    episodes = marks.episodes.get(name, [])
    alerts = marks.alerts.get(service, [])
    height, top, lane, left, right = 220, 22, 26, 56, 16
    plot_bottom = height - lane - 26
    x = _time_axis(start, end, left, WIDTH - right)
    low, high = -1.0, 3.0  # log10 of 0.1x .. 1000x

    def y(rate: float) -> float:
        value = min(max(math.log10(max(rate, 1e-9)), low), high)
        return top + (high - value) / (high - low) * (plot_bottom - top)

    shaded = "".join(
        f'<rect class="impact" x="{x(a):.1f}" y="{top}" width="{max(x(b) - x(a), 1.5):.1f}" '
        f'height="{plot_bottom - top}" fill="{PALETTE["impact"]}"><title>impact '
        f"{a:%Y-%m-%d %H:%M} to {b:%H:%M}</title></rect>"
        for a, b in episodes
    )
    fired = "".join(
        f'<rect class="alert" x="{x(a):.1f}" y="{plot_bottom + 8}" width="{max(x(b) - x(a), 1.5):.1f}" '
        f'height="{lane - 12}" fill="{PALETTE["alert"]}"><title>{_e(alert)} '
        f"{a:%Y-%m-%d %H:%M} to {b:%H:%M}</title></rect>"
        for alert, a, b in alerts
    )
    grid = "".join(
        f'<line x1="{left}" x2="{WIDTH - right}" y1="{y(r):.1f}" y2="{y(r):.1f}" '
        f'stroke="{PALETTE["warn"] if r in (1, 14.4) else PALETTE["grid"]}"/>'
        f'<text class="y-label" x="{left - 6}" y="{y(r) + 4:.1f}" text-anchor="end">{r:g}x</text>'
        for r in (0.1, 1, 14.4, 100, 1000)
    )
    known = [(at, rate) for at, rate in rates if rate is not None]
    path = _path(
        [(x(at), y(rate)) for at, rate in known],
        _gaps([at for at, _ in known], step),
    )
    line = (
        f'<path class="burn-line" d="{path}" fill="none" stroke="{PALETTE["line"]}" stroke-width="1.5"/>'
        if path
        else ""
    )
    title = f'<text x="{left}" y="14" font-weight="600">{_e(name)}: 1h burn rate</text>'
    lane_label = f'<text x="{left - 6}" y="{plot_bottom + 20}" text-anchor="end">alerts</text>'
    ticks = _time_labels([(start, None), (end, None)], x, height - 6, left, WIDTH - right, count=8)
    return _svg(
        "burn-rate",
        height,
        title + shaded + grid + line + fired + lane_label + ticks,
        slo=name,
        impact_episodes=str(len(episodes)),
        alerts=str(len(alerts)),
    )


def _noise_chart(con: duckdb.DuckDBPyConnection) -> str:
    rows = con.execute(
        """SELECT alertname, matched_firings, firings - matched_firings AS unmatched, flapping
           FROM alert_quality WHERE period = 'current' AND scope = 'alert'
           ORDER BY firings DESC, alertname"""
    ).fetchall()
    if not rows:
        return _svg(
            "alert-noise",
            40,
            '<text x="10" y="24">No alert fired in the period.</text>',
            alerts="0",
        )
    row_height, left, right, top = 24, 250, 60, 10
    height = top + row_height * len(rows) + 30
    most = max(m + u for _, m, u, _ in rows) or 1
    scale = (WIDTH - left - right) / most
    marks = []
    for i, (alert, matched, unmatched, flapping) in enumerate(rows):
        y = top + i * row_height
        label = f"{alert}{' (flapping)' if flapping else ''}"
        marks.append(f'<text x="{left - 8}" y="{y + 15}" text-anchor="end">{_e(label)}</text>')
        marks.append(
            f'<rect class="bar matched" x="{left}" y="{y + 3}" width="{matched * scale:.1f}" '
            f'height="{row_height - 8}" fill="{PALETTE["ok"]}"><title>{matched} matched an impact</title></rect>'
        )
        marks.append(
            f'<rect class="bar noise" x="{left + matched * scale:.1f}" y="{y + 3}" '
            f'width="{unmatched * scale:.1f}" height="{row_height - 8}" fill="{PALETTE["bad"]}">'
            f"<title>{unmatched} matched no impact</title></rect>"
        )
        marks.append(
            f'<text x="{left + (matched + unmatched) * scale + 6:.1f}" y="{y + 15}">'
            f"{matched + unmatched}</text>"
        )
    legend = (
        f'<text x="{left}" y="{height - 8}">green: firings that matched an SLO impact; '
        "red: firings that matched none (noise)</text>"
    )
    return _svg("alert-noise", height, "".join(marks) + legend, alerts=str(len(rows)))


def _coverage_heatmap(con: duckdb.DuckDBPyConnection, known: bool) -> str:
    """Service x pillar cells; when the period holds no data (``known`` false), a line saying
    so: every required cell would be red, a gap in the lake drawn as a gap in monitoring."""
    if not known:
        return _svg(
            "coverage",
            40,
            '<text x="10" y="24">No data in the period: coverage is unknown.</text>',
            services="0",
            pillars=str(len(PILLARS)),
        )
    rows = con.execute(
        """SELECT service, in_catalog, pillar, status FROM coverage
           WHERE period = 'current' ORDER BY NOT in_catalog, service"""
    ).fetchall()
    services: list[tuple[str, bool]] = []
    status: dict[tuple[str, str], str] = {}
    for service, in_catalog, pillar, state in rows:
        if (service, in_catalog) not in services:
            services.append((service, in_catalog))
        status[service, pillar] = state
    cell_w, cell_h, left, top = 90, 22, 230, 28
    height = top + cell_h * len(services) + 30
    fill = {"present": PALETTE["ok"], "missing": PALETTE["bad"], "not required": PALETTE["neutral"]}
    marks = [
        f'<text x="{left + i * cell_w + cell_w / 2}" y="{top - 8}" text-anchor="middle">{p}</text>'
        for i, p in enumerate(PILLARS)
    ]
    for r, (service, in_catalog) in enumerate(services):
        y = top + r * cell_h
        label = service if in_catalog else f"{service} (not in catalog)"
        marks.append(f'<text x="{left - 8}" y="{y + 15}" text-anchor="end">{_e(label)}</text>')
        for c, pillar in enumerate(PILLARS):
            state = status.get((service, pillar), "not required")
            marks.append(
                f'<rect class="cell {state.replace(" ", "-")}" x="{left + c * cell_w + 1}" y="{y + 1}" '
                f'width="{cell_w - 2}" height="{cell_h - 2}" fill="{fill[state]}">'
                f"<title>{_e(service)} / {pillar}: {state}</title></rect>"
            )
    legend = f'<text x="{left}" y="{height - 8}">green: present; red: required but missing; grey: not required and absent</text>'
    return _svg(
        "coverage",
        height,
        "".join(marks) + legend,
        services=str(len(services)),
        pillars=str(len(PILLARS)),
    )


# -- chart helpers --------------------------------------------------------------------------------


def _time_axis(start: datetime, end: datetime, x0: float, x1: float) -> Any:
    span = (end - start).total_seconds() or 1.0

    def x(moment: datetime) -> float:
        return x0 + (moment - start).total_seconds() / span * (x1 - x0)

    return x


def _time_labels(
    series: Sequence[tuple[datetime, Any]],
    x: Any,
    baseline: float,
    left: float,
    right: float,
    count: int = 7,
) -> str:
    """Labels at round moments of the series' span (:func:`time_ticks`); one near an edge of
    the plot (``left``, ``right``) is aligned to it rather than centred past it."""
    if not series:
        return ""
    moments, fmt = time_ticks(series[0][0], series[-1][0], count)
    labels = []
    for moment in moments:
        at = x(moment)
        anchor = "start" if at - left < 30 else "end" if right - at < 30 else "middle"
        labels.append(
            f'<text class="x-label" x="{at:.1f}" y="{baseline}" text-anchor="{anchor}" '
            f'fill="{PALETTE["muted"]}">{moment.strftime(fmt)}</text>'
        )
    return "".join(labels)


def _path(points: list[tuple[float, float]], breaks: set[int] | None = None) -> str:
    """An SVG path through ``points``, lifting the pen before each index in ``breaks``."""
    breaks = breaks or set()
    return " ".join(
        f"{'M' if i == 0 or i in breaks else 'L'}{px:.1f},{py:.1f}"
        for i, (px, py) in enumerate(points)
    )


def _gaps(moments: list[datetime], step: timedelta) -> set[int]:
    """Indexes whose point is more than one ``step`` after the previous one (missing data)."""
    return {i for i in range(1, len(moments)) if moments[i] - moments[i - 1] > step}
