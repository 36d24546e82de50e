"""Reports: the SQL files in ``sql/``, one report per file, published as catalog views.

A report reads only catalog views (never files), so it works whatever tier the data sits in.
What reports need from config is written into the catalog by :func:`publish` as small tables
(``services``, ``slo_definitions``, ``alert_policy``, ``impact_windows``, ``report_settings``,
``scorecard_targets``)
and generated views (``report_period``, ``slo_events``), so every report is plain SQL an analyst can
read and rerun, and a changed SLO or policy recomputes history on the next catalog build.

The period a report describes comes from the ``report_period`` view: by default the last
``period`` (7 days) ending at the end of the newest hour holding metric samples, and the same
length before it as the "previous" period that the scorecard compares against. A session picks
another period with ``SET VARIABLE report_start = TIMESTAMP '...'`` and ``report_end``
(:func:`report_connection` does this).
"""

import importlib.resources
import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.resources.abc import Traversable
from operator import attrgetter
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from obs_pipelines.config import LatencySli, ObsConfig, RatioSli, ReportsConfig, ThresholdSli
from obs_pipelines.durations import format_duration
from obs_pipelines.errors import LakeError
from obs_pipelines.lake.attach import connect
from obs_pipelines.lake.delta import add_actions as delta_add_actions
from obs_pipelines.lake.delta import delta_errors
from obs_pipelines.lake.delta_tables import DeltaTables
from obs_pipelines.lake.snapshot import pin_datasets
from obs_pipelines.reporting.slo import check_latency_buckets, slo_version
from obs_pipelines.sources.rule_files import create_configured_rules_table

# The reports ship inside the package: the repository's top-level sql/ is installed as the
# package obs_pipelines.sql (pyproject's package-dir), so a wheel has them as well as a checkout.
SQL_PACKAGE = "obs_pipelines.sql"
# None: the installed package's reports; tests may pass another folder instead.
SQL_DIR: Path | None = None


def report_queries(sql_dir: Path | Traversable | None = SQL_DIR) -> dict[str, str]:
    """Report name (the file stem) -> its SELECT, in name order.

    Finding none is an error, never an empty result: a package installed without its SQL would
    otherwise build a catalog with no reports and say nothing.
    """
    folder = _installed_sql() if sql_dir is None else sql_dir
    queries = {
        path.name.removesuffix(".sql"): path.read_text().strip().rstrip(";")
        for path in sorted(
            folder.iterdir() if folder and folder.is_dir() else [], key=attrgetter("name")
        )
        if path.name.endswith(".sql") and path.is_file()
    }
    if queries:
        return queries
    if sql_dir is None:
        raise LakeError(
            f"no report SQL found in the installed package ({SQL_PACKAGE}); reinstall obs-pipelines"
        )
    raise LakeError(f"no report SQL (*.sql) found in {sql_dir}; put the reports there")


def _installed_sql() -> Traversable | None:
    try:
        return importlib.resources.files(SQL_PACKAGE)
    except ModuleNotFoundError:  # installed without it
        return None


# -- settings -------------------------------------------------------------------------------------
# What reports need from config is the validated ReportsConfig itself (config.reports, or one built
# in code); only what the SQL reads besides it is here.


@dataclass(frozen=True)
class ScorecardMetric:
    """One line of the seed's Success Metrics table; its target is ``reports.targets.<key>``."""

    key: str
    metric: str
    comparator: str  # '>' or '<': the value must be strictly above or below the target
    unit: str  # ratio | minutes
    definition: str

    def target_text(self, target: float) -> str:
        shown = f"{target * 100:g}%" if self.unit == "ratio" else f"{target:g} minutes"
        return f"{self.comparator} {shown}"


SCORECARD_METRICS = (
    ScorecardMetric(
        "uptime",
        "System uptime",
        ">",
        "ratio",
        "share of `up` scrapes equal to 1 over every target of the catalog's critical services",
    ),
    ScorecardMetric(
        "alert_noise",
        "Alert noise ratio",
        "<",
        "ratio",
        "share of alert firings that overlapped no SLO-impact episode of their service "
        "(unmapped alerts count as noise)",
    ),
    ScorecardMetric(
        "mttd",
        "Mean time to detection",
        "<",
        "minutes",
        "mean time from the start of an SLO-impact episode to the first related alert, over "
        "detected episodes",
    ),
    ScorecardMetric(
        "mttr",
        "Mean time to resolution",
        "<",
        "minutes",
        "mean duration of SLO-impact episodes (start of impact to its end)",
    ),
    ScorecardMetric(
        "coverage",
        "Monitoring coverage",
        ">",
        "ratio",
        "share of catalog services with every required pillar present in the period",
    ),
)


# -- publishing -----------------------------------------------------------------------------------


def publish(
    con: duckdb.DuckDBPyConnection, config: ObsConfig, reports: ReportsConfig | None = None
) -> None:
    """Create everything reports need from config, then every ``sql/*.sql`` report as a view.

    ``con`` is a catalog connection whose dataset views already exist. Reports are published in
    dependency order, whatever their names. ``reports`` replaces the config's ``reports:``
    section (to judge the same data with other settings).

    Creating a view binds every view beneath it, and binding a dataset view lists the lake (on
    S3, a LIST per tier and per reference: seconds per report). So the reports are created
    against empty stand-ins of the dataset views, with their exact columns, which shadow them
    in this session only; a view is stored as its SQL and every later session binds it to the
    real views. The checks that read data run after the stand-ins are gone.
    """
    reports = reports or config.reports
    _create_config_tables(con, config, reports)
    create_configured_rules_table(con, config)
    stand_ins = stand_in_views(con)
    try:
        con.execute(
            f"CREATE OR REPLACE VIEW report_period AS\n{report_period_sql(config, reports)}"
        )
        con.execute(f"CREATE OR REPLACE VIEW slo_events AS\n{SLO_EVENTS_SQL}")
        con.execute(f"CREATE OR REPLACE VIEW report_slo_events AS\n{REPORT_SLO_EVENTS_SQL}")
        for macro in (*POISSON_TAIL_SQL, OVERLAP_SQL):
            con.execute(macro)
        create_report_views(con)
    finally:
        for name in stand_ins:
            con.execute(f'DROP TABLE IF EXISTS temp.main."{name}"')
    check_latency_buckets(con, config)


def stand_in_views(
    con: duckdb.DuckDBPyConnection, names: Collection[str] | None = None
) -> list[str]:
    """An empty temporary table in place of each view of ``names`` (default: every view, which
    while publishing means the dataset views), with the view's exact column names and types;
    the names shadowed. Views bound after this read the stand-ins, not the lake."""
    # The columns a view was created with, as stored: DESCRIBE would bind (scan) it again.
    rows = con.execute(
        """SELECT c.table_name, c.column_name, c.data_type
           FROM duckdb_columns() AS c
           JOIN duckdb_views() AS v
             ON v.view_name = c.table_name AND v.schema_name = c.schema_name
            AND v.database_name = c.database_name
           WHERE NOT v.internal AND NOT v.temporary
           ORDER BY c.table_name, c.column_index"""
    ).fetchall()
    columns: dict[str, list[str]] = {}
    for name, column, kind in rows:
        if names is not None and name not in names:
            continue
        columns.setdefault(name, []).append(f'"{column}" {kind}')
    for name, listed in columns.items():
        con.execute(f'CREATE TEMP TABLE "{name}" ({", ".join(listed)})')
    return list(columns)


# The statistical tests of impact_episodes (sql/impact_episodes.sql): macros in the catalog, so
# that the report, and anyone in a DuckDB client, can call them.
POISSON_TAIL_SQL = (
    """-- poisson_upper_tail(k, mean): P(X >= k) for X ~ Poisson(mean), k and mean any real numbers.
-- The regularized lower incomplete gamma function P(k, mean) as its series,
-- pmf(k) x sum_j mean^j / ((k+1)...(k+j)), 32 terms, plus a geometric bound on the terms left out:
-- exact to rounding when k is clearly above the mean, a slightly larger value (never a smaller
-- one) as k nears the mean, and 1 when k is more than 32 below it (an upper bound there too).
CREATE OR REPLACE MACRO poisson_upper_tail(k, mean) AS
    CASE
        WHEN k <= 0 THEN 1.0
        WHEN mean <= 0 THEN 0.0
        WHEN k + 33 <= mean THEN 1.0
        ELSE least(1.0, exp(k * ln(mean) - mean - lgamma(k + 1)) * (
            list_sum(list_transform(range(32), lambda j:
                exp(j * ln(mean) - lgamma(k + 1 + j) + lgamma(k + 1))))
            + exp(32 * ln(mean) - lgamma(k + 33) + lgamma(k + 1)) * (k + 33) / (k + 33 - mean)
        ))
    END""",
    """-- poisson_upper_tail_below(k, mean, alpha): whether P(X >= k) < alpha for X ~ Poisson(mean),
-- as poisson_upper_tail(k, mean) < alpha decides it. Chernoff's bound, exp(k - mean) x
-- (mean / k)^k for k above the mean, is never below the tail (nor below poisson_upper_tail, which
-- is the tail to rounding there), so when the bound is below alpha the tail is too, and the series
-- is summed only for the rest: most windows of a real failure are decided by the bound alone.
CREATE OR REPLACE MACRO poisson_upper_tail_below(k, mean, alpha) AS
    CASE
        WHEN k > mean AND mean > 0 AND k - mean + k * ln(mean / k) < ln(alpha) THEN true
        ELSE poisson_upper_tail(k, mean) < alpha
    END""",
    """-- poisson_lower_tail(k, mean): P(X <= k) for X ~ Poisson(mean) (k rounded down to a whole
-- number). pmf(k) x sum_i k(k-1)...(k-i+1) / mean^i, 32 terms plus a geometric bound on the rest:
-- exact to rounding when k is clearly below the mean, never smaller than the true value, and 1
-- when k is not below the mean (the test is one-sided).
CREATE OR REPLACE MACRO poisson_lower_tail(k, mean) AS
    CASE
        WHEN mean <= 0 OR floor(k) >= mean THEN 1.0
        WHEN k < 0 THEN 0.0
        ELSE least(1.0, exp(floor(k) * ln(mean) - mean - lgamma(floor(k) + 1)) * (
            list_sum(list_transform(range(32), lambda i:
                CASE WHEN i <= floor(k)
                     THEN exp(lgamma(floor(k) + 1) - lgamma(floor(k) + 1 - i) - i * ln(mean))
                     ELSE 0 END))
            + CASE WHEN floor(k) >= 32
                   THEN exp(lgamma(floor(k) + 1) - lgamma(floor(k) - 31) - 32 * ln(mean))
                        * mean / (mean - floor(k) + 32)
                   ELSE 0 END
        ))
    END""",
)


# The rule that relates an alert firing to an impact episode or an incident
# (sql/alert_impact_matches.sql, sql/incident_alert_matches.sql), written once.
OVERLAP_SQL = """-- overlaps_within(a_start, a_end, b_start, b_end, tolerance_seconds): whether [a_start, a_end)
-- and [b_start, b_end) overlap once each is widened by tolerance_seconds on both sides.
CREATE OR REPLACE MACRO overlaps_within(a_start, a_end, b_start, b_end, tolerance_seconds) AS
    a_start < b_end + to_seconds(tolerance_seconds)
    AND a_end > b_start - to_seconds(tolerance_seconds)"""


# Reports read SLO events from the derived sli_minutes (obs_pipelines/reporting/derived.py), never from raw
# samples: the numbers stay the same after raw samples age out, and reports stay fast.
SLO_EVENTS_SQL = """-- slo_events: per SLO and UTC minute, the SLI's good, bad and total events, from sli_minutes
-- (made at ingest; see obs_pipelines/reporting/derived.py). Only minutes computed with the SLO's current
-- definition count: after an SLO changes, `obs slo recompute --slo NAME` recomputes its history.
-- resolution: raw, or the rollup (5m, 1h) the minute came from once raw samples aged out;
-- uncertain_events: threshold SLIs from rollups, samples of buckets partly within the bounds.
"""
_CURRENT_SLO_MINUTES = """SELECT m.slo_name, m.minute, m.good_events, m.bad_events, m.total_events, m.uncertain_events,
       m.resolution
FROM sli_minutes AS m
JOIN slo_definitions AS d ON d.slo_name = m.slo_name AND d.slo_version = m.slo_version"""
SLO_EVENTS_SQL += _CURRENT_SLO_MINUTES

REPORT_SLO_EVENTS_SQL = f"""-- report_slo_events: the rows of slo_events the reports read, from the report horizon to the
-- period end (report_period): whatever the history's length, a report session reads and pins
-- only these (dt, the row's UTC day, keeps the scan to the horizon's day partitions).
{_CURRENT_SLO_MINUTES}
WHERE m.minute >= (SELECT horizon_start FROM report_period)
  AND m.minute < (SELECT period_end FROM report_period)
  AND m.dt >= (SELECT strftime(horizon_start, '%Y-%m-%d') FROM report_period)
  AND m.dt <= (SELECT strftime(period_end, '%Y-%m-%d') FROM report_period)"""


def create_report_views(con: duckdb.DuckDBPyConnection, sql_dir: Path = SQL_DIR) -> None:
    """Publish every ``sql/*.sql`` report as a view, dependencies first (whatever their names).

    Each ``CREATE VIEW`` binds every view beneath it, which costs seconds for the deepest
    reports, so the order is worked out from the names each query mentions rather than found by
    failing; a reference the names miss still falls back to retrying."""
    pending = _dependencies_first(report_queries(sql_dir))
    while pending:
        failed: dict[str, str] = {}
        errors: dict[str, str] = {}
        for name, sql in pending.items():
            try:
                con.execute(f"CREATE OR REPLACE VIEW {name} AS\n{sql}")
            except duckdb.CatalogException as exc:
                failed[name], errors[name] = sql, str(exc).splitlines()[0]
            except duckdb.Error as exc:
                raise LakeError(
                    f"report sql/{name}.sql cannot be published: {str(exc).splitlines()[0]}; fix the query"
                ) from None
        if len(failed) == len(pending):
            name = next(iter(failed))
            raise LakeError(
                f"report sql/{name}.sql cannot be published: {errors[name]}; fix the query"
            )
        pending = failed


def _dependencies_first(queries: dict[str, str]) -> dict[str, str]:
    """``queries`` ordered so that each comes after the other reports its text names."""
    mentions = {
        name: {
            other
            for other in queries
            if other != name and re.search(rf"\b{re.escape(other)}\b", _without_comments(sql))
        }
        for name, sql in queries.items()
    }
    ordered: dict[str, str] = {}

    def place(name: str, path: tuple[str, ...]) -> None:
        if name in ordered or name in path:
            return
        for other in sorted(mentions[name]):
            place(other, (*path, name))
        ordered[name] = queries[name]

    for name in queries:
        place(name, ())
    return ordered


def _without_comments(sql: str) -> str:
    return re.sub(r"--[^\n]*", "", sql)


def relation_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM duckdb_views() WHERE view_name = ? AND NOT internal", [name]
        ).fetchone()[0]
        + con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [name]
        ).fetchone()[0]
    )


def _minutes(delta: timedelta) -> int:
    return max(1, round(delta.total_seconds() / 60))


def lookback(config: ObsConfig, reports: ReportsConfig | None = None) -> timedelta:
    """How far before the previous period the reports read: the longest SLO window (rolling
    compliance), or a day more than the longest burn-rate or impact window (burn rates are
    evaluated from a day before the previous period, each over the window before it)."""
    reports = reports or config.reports
    burn_windows = [w.long_window for w in reports.resolved_burn_rate_policy]
    burn_windows += [w.window for w in reports.impact_windows] + [timedelta(minutes=1)]
    return max([slo.window for slo in config.slos] + [timedelta(days=1) + max(burn_windows)])


# report_period's default end: the end of the newest hour of these derived datasets' times
# (its SQL, and newest_data_end from the tables' logs).
NEWEST_DATA = (("series_inventory", "last_ts"), ("sli_minutes", "minute"), ("up_minutes", "minute"))


def report_period_sql(config: ObsConfig, reports: ReportsConfig | None = None) -> str:
    reports = reports or config.reports
    period = _minutes(reports.period)
    reach = _minutes(lookback(config, reports))
    first = f"TIMESTAMP '{config.ingest.start:%Y-%m-%d %H:%M:%S}'"
    newest = ",\n".join(
        f"               (SELECT max({column}) FROM {dataset} "
        "WHERE getvariable('report_end') IS NULL)"
        for dataset, column in NEWEST_DATA
    )
    return f"""-- report_period: the window reports describe, the one before it (for the scorecard's change),
-- and the horizon they read from (reaching back by the longest SLO window, or a day more than the
-- longest burn-rate or impact window).
-- Default: the last {format_duration(reports.period)} ending at the end of the newest hour holding
-- metric data (raw samples or rollups, from the derived datasets), starting no earlier than
-- ingest.start. Another period: SET VARIABLE report_start = TIMESTAMP '...' (and report_end).
-- With report_end set, the datasets are not read at all (reports read this view many times).
WITH newest AS (
    SELECT date_trunc('hour', greatest(
{newest}
           )) + INTERVAL 1 HOUR AS data_end
),
bounds AS (
    SELECT
        coalesce(
            {_utc_variable("report_end")},
            data_end,
            date_trunc('hour', make_timestamp(epoch_us(now())))
        ) AS period_end,
        {_utc_variable("report_start")} AS chosen_start
    FROM newest
),
starts AS (
    -- A default start before ingest.start (a lake younger than one period) is ingest.start:
    -- the period holds no time the lake could hold no data for.
    SELECT coalesce(
               chosen_start,
               CASE WHEN period_end - INTERVAL {period} MINUTE < {first} AND {first} < period_end
                    THEN {first} ELSE period_end - INTERVAL {period} MINUTE END
           ) AS period_start,
           period_end
    FROM bounds
)
SELECT
    period_start,
    period_end,
    period_start - (period_end - period_start)                              AS previous_start,
    period_start                                                            AS previous_end,
    period_start - (period_end - period_start) - INTERVAL {reach} MINUTE    AS horizon_start
FROM starts"""


def _utc_variable(name: str) -> str:
    """The variable ``name`` as a naive UTC TIMESTAMP: a TIMESTAMPTZ converted by its instant,
    never through the session's time zone (a DuckDB client's is the machine's)."""
    value = f"getvariable('{name}')"
    return (
        f"CASE WHEN typeof({value}) = 'TIMESTAMP WITH TIME ZONE' "
        f"THEN make_timestamp(epoch_us({value}::TIMESTAMPTZ)) ELSE {value}::TIMESTAMP END"
    )


def _create_config_tables(
    con: duckdb.DuckDBPyConnection, config: ObsConfig, reports: ReportsConfig
) -> None:
    tables = {
        "services": _services_table(config),
        "slo_definitions": _slo_table(config),
        "alert_policy": _policy_table(reports),
        "impact_windows": _impact_windows_table(reports),
        "burn_rate_windows": _burn_rate_windows_table(reports),
        "report_settings": _settings_table(reports),
        "scorecard_targets": _targets_table(reports),
    }
    for name, table in tables.items():
        con.register("_publish_source", table)
        try:
            con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM _publish_source")
        finally:
            con.unregister("_publish_source")


def _services_table(config: ObsConfig) -> pa.Table:
    services = config.services
    return pa.table(
        {
            "service": pa.array([s.name for s in services], pa.string()),
            "owner": pa.array([s.owner for s in services], pa.string()),
            "tier": pa.array([s.tier for s in services], pa.string()),
            "description": pa.array([s.description for s in services], pa.string()),
            "required_pillars": pa.array(
                [_required_pillars(s.pillars) for s in services], pa.list_(pa.string())
            ),
        }
    )


def _required_pillars(pillars: list[str]) -> list[str]:
    """The config's pillars, plus `up` wherever metrics are required (a scraped target says it is
    up; its absence means nobody would notice the target vanishing)."""
    required = list(pillars)
    if "metrics" in required:
        required.insert(required.index("metrics") + 1, "up")
    return required


def _slo_table(config: ObsConfig) -> pa.Table:
    rows: dict[str, list[Any]] = {
        name: []
        for name in (
            "slo_name",
            "service",
            "description",
            "sli_type",
            "slo_target",
            "error_budget_target",
            "window_minutes",
            "good_selector",
            "bad_selector",
            "total_selector",
            "threshold_seconds",
            "gauge_min",
            "gauge_max",
            "slo_version",
            "slo_number",
        )
    }
    # slo_number: the SLO's place by name, the key slo_running_totals and slo_burn_rates join on.
    numbers = {name: n for n, name in enumerate(sorted(s.name for s in config.slos), start=1)}
    for slo in config.slos:
        sli = slo.sli
        rows["slo_version"].append(slo_version(slo))
        rows["slo_number"].append(numbers[slo.name])
        rows["slo_name"].append(slo.name)
        rows["service"].append(slo.service)
        rows["description"].append(slo.description)
        rows["sli_type"].append(sli.type)
        rows["slo_target"].append(slo.objective)
        rows["error_budget_target"].append(round(1 - slo.objective, 12))
        rows["window_minutes"].append(_minutes(slo.window))
        rows["good_selector"].append(sli.good if isinstance(sli, RatioSli) else None)
        rows["bad_selector"].append(sli.bad if isinstance(sli, RatioSli) else None)
        rows["total_selector"].append(
            sli.total
            if isinstance(sli, RatioSli)
            else sli.histogram
            if isinstance(sli, LatencySli)
            else sli.gauge
        )
        rows["threshold_seconds"].append(
            sli.threshold_seconds if isinstance(sli, LatencySli) else None
        )
        rows["gauge_min"].append(sli.min if isinstance(sli, ThresholdSli) else None)
        rows["gauge_max"].append(sli.max if isinstance(sli, ThresholdSli) else None)
    types = {
        "slo_target": pa.float64(),
        "error_budget_target": pa.float64(),
        "window_minutes": pa.int64(),
        "threshold_seconds": pa.float64(),
        "gauge_min": pa.float64(),
        "gauge_max": pa.float64(),
        "slo_number": pa.int64(),
    }
    return pa.table({k: pa.array(v, types.get(k, pa.string())) for k, v in rows.items()})


def _policy_table(reports: ReportsConfig) -> pa.Table:
    policy = reports.resolved_burn_rate_policy
    return pa.table(
        {
            "policy_name": pa.array([p.policy_name for p in policy], pa.string()),
            "severity": pa.array([p.severity for p in policy], pa.string()),
            "long_window_minutes": pa.array([_minutes(p.long_window) for p in policy], pa.int64()),
            "short_window_minutes": pa.array(
                [_minutes(p.short_window) for p in policy], pa.int64()
            ),
            "burn_rate_threshold": pa.array([p.burn_rate for p in policy], pa.float64()),
        }
    )


def _impact_windows_table(reports: ReportsConfig) -> pa.Table:
    """The windows impact_episodes tests, each with its burn-rate floor resolved."""
    windows = reports.impact_windows
    return pa.table(
        {
            "window_minutes": pa.array([_minutes(w.window) for w in windows], pa.int64()),
            "burn_rate_threshold": pa.array(reports.impact_burn_rates, pa.float64()),
        }
    )


def _burn_rate_windows_table(reports: ReportsConfig) -> pa.Table:
    """The window lengths slo_burn_rates evaluates: the alert policy's long and short windows,
    the impact windows, and 1 minute."""
    windows = [w.window for w in reports.impact_windows]
    windows += [
        w for p in reports.resolved_burn_rate_policy for w in (p.long_window, p.short_window)
    ]
    lengths = sorted({1, *(_minutes(w) for w in windows)})
    return pa.table({"window_minutes": pa.array(lengths, pa.int64())})


def _settings_table(reports: ReportsConfig) -> pa.Table:
    return pa.table(
        {
            "period_minutes": pa.array([_minutes(reports.period)], pa.int64()),
            "impact_burn_rate": pa.array([reports.impact_burn_rate], pa.float64()),
            "impact_significance": pa.array([reports.impact_significance], pa.float64()),
            "impact_min_bad_events": pa.array([reports.impact_min_bad_events], pa.int64()),
            "impact_merge_gap_minutes": pa.array(
                [round(reports.impact_merge_gap.total_seconds() / 60)], pa.int64()
            ),
            "match_tolerance_seconds": pa.array(
                [reports.match_tolerance.total_seconds()], pa.float64()
            ),
            "transient_alert_seconds": pa.array(
                [reports.transient_alert.total_seconds()], pa.float64()
            ),
            "flap_high_threshold": pa.array([reports.flap_high_threshold], pa.float64()),
            "flap_low_threshold": pa.array([reports.flap_low_threshold], pa.float64()),
            "budget_warning": pa.array([reports.budget_warning], pa.float64()),
            "budget_critical": pa.array([reports.budget_critical], pa.float64()),
            "uptime_tiers": pa.array([list(reports.uptime_tiers)], pa.list_(pa.string())),
        }
    )


def _targets_table(reports: ReportsConfig) -> pa.Table:
    metrics = SCORECARD_METRICS
    targets = [getattr(reports.targets, m.key) for m in metrics]
    return pa.table(
        {
            "metric_order": pa.array(range(1, len(metrics) + 1), pa.int64()),
            "metric_key": pa.array([m.key for m in metrics], pa.string()),
            "metric": pa.array([m.metric for m in metrics], pa.string()),
            "comparator": pa.array([m.comparator for m in metrics], pa.string()),
            "target_value": pa.array(targets, pa.float64()),
            "target": pa.array(
                [m.target_text(t) for m, t in zip(metrics, targets, strict=True)], pa.string()
            ),
            "unit": pa.array([m.unit for m in metrics], pa.string()),
            "definition": pa.array([m.definition for m in metrics], pa.string()),
        }
    )


# -- reading --------------------------------------------------------------------------------------


def report_connection(
    config: ObsConfig, start: datetime | None = None, end: datetime | None = None
) -> duckdb.DuckDBPyConnection:
    """A read-only catalog connection whose reports describe ``[start, end)`` (UTC).

    Either bound may be None: the end defaults to the newest data, the start to one period
    before the end. The default end is found once, here, from the tables' logs
    (:func:`newest_data_end`), and set as ``report_end``: every report reads ``report_period``
    many times, and each read would otherwise scan the derived datasets for their newest minute
    (the session's period stays put as data arrives, as a pinned report's does). The session
    reads one version of each dataset (:mod:`obs_pipelines.lake.snapshot`): each table's log is
    read once, not at every reference.
    """
    # Before the datasets are pinned: their versions hold at least the data it saw.
    end = end or newest_data_end(config)
    con = connect(config, read_only=True)
    try:
        pin_datasets(con, config)
        con.execute("SET enable_progress_bar = false")
        for name, moment in (("report_start", start), ("report_end", end)):
            if moment is not None:
                con.execute(f"SET VARIABLE {name} = ?::TIMESTAMP", [_naive_utc(moment)])
        if end is None:
            con.execute("SET VARIABLE report_end = (SELECT period_end FROM report_period)")
    except BaseException:
        con.close()
        raise
    return con


def newest_data_end(config: ObsConfig) -> datetime | None:
    """report_period's default end, the end of the newest hour holding metric data (UTC),
    from the tables' logs: each data file's add action holds its maximum, so no data file is
    read, where report_period's SQL scans every file (about 5 s at a year of hourly files).

    None when the tables hold no rows, or a file has no statistics: report_period then finds it.
    """
    tables = DeltaTables(config)
    newest: list[datetime] = []
    for dataset, column in NEWEST_DATA:
        found = tables.open(dataset)
        if found is None:
            continue
        with delta_errors(f"read the log of {dataset}", config):
            actions = delta_add_actions(found)
        if actions.num_rows == 0:
            continue
        stat = f"max.{column}"
        if stat not in actions.column_names or actions.column(stat).null_count:
            return None
        newest.append(pc.max(actions.column(stat)).as_py())
    if not newest:
        return None
    latest = max(_naive_utc(moment) for moment in newest)  # stored times are UTC
    return latest.replace(minute=0, second=0, microsecond=0, tzinfo=UTC) + timedelta(hours=1)


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


@dataclass(frozen=True)
class ReportWindow:
    start: datetime
    end: datetime


def period_of(con: duckdb.DuckDBPyConnection) -> ReportWindow:
    start, end = con.execute("SELECT period_start, period_end FROM report_period").fetchone()
    return ReportWindow(start, end)


# Report views that later reports read several times: pinning them as session tables makes a
# whole HTML report compute each once. Order matters: each may read the ones before it.
PINNED_REPORTS = (
    "report_period",
    "report_periods",
    "report_slo_events",
    "slo_running_totals",
    "slo_burning_windows",
    "impact_episodes",
    "alert_firings",
    "alert_impact_matches",
    "alert_flapping",
    "incidents",
    "incident_summary",
    "alert_quality",
    "coverage",
    "slo_burn_episodes",
    "slo_compliance",
)


def pin_reports(con: duckdb.DuckDBPyConnection, names: tuple[str, ...] = PINNED_REPORTS) -> None:
    """Compute each report once for this session: a temporary table of the same name shadows the
    view for every later query (including other views), with the same rows.

    The period is frozen too, so set it (:func:`report_connection`) before pinning.
    """
    database, limit = con.execute(
        "SELECT current_database(), current_setting('memory_limit')"
    ).fetchone()
    for name in names:
        try:
            con.execute(
                f'CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM "{database}".main.{name}'
            )
        except duckdb.OutOfMemoryException:
            raise LakeError(
                f"computing {name} needs more memory than DuckDB may use here ({limit}); raise "
                "lake.query_memory_limit (unset: 80% of the RAM) or report a shorter period"
            ) from None
