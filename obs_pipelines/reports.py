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
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from importlib.resources.abc import Traversable
from operator import attrgetter
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from obs_pipelines.config import DEFAULT_IMPACT_WINDOWS as CONFIG_IMPACT_WINDOWS
from obs_pipelines.config import LatencySli, ObsConfig, RatioSli, ThresholdSli
from obs_pipelines.durations import format_duration, parse_duration
from obs_pipelines.errors import LakeError
from obs_pipelines.rule_files import create_configured_rules_table
from obs_pipelines.slo import check_latency_buckets, slo_version

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


@dataclass(frozen=True)
class BurnRateWindows:
    """One line of the multi-window multi-burn-rate policy (SRE Workbook, ch. 5).

    It fires while the burn rate over both the long and the short window exceeds ``burn_rate``.
    """

    name: str
    severity: str
    long_window: timedelta
    short_window: timedelta
    burn_rate: float


# 2% of a 30-day budget in 1h, 5% in 6h, 10% in 1d and 10% in 3d (Sloth's defaults).
DEFAULT_BURN_RATE_POLICY = (
    BurnRateWindows("page_1h_5m", "page", timedelta(hours=1), timedelta(minutes=5), 14.4),
    BurnRateWindows("page_6h_30m", "page", timedelta(hours=6), timedelta(minutes=30), 6.0),
    BurnRateWindows("ticket_1d_2h", "ticket", timedelta(days=1), timedelta(hours=2), 3.0),
    BurnRateWindows("ticket_3d_6h", "ticket", timedelta(days=3), timedelta(hours=6), 1.0),
)


@dataclass(frozen=True)
class ImpactWindow:
    """One window length the SLO-impact episodes test every minute (``sql/impact_episodes.sql``).

    A window is impact when its bad events are improbable under the objective and its burn rate
    reaches ``burn_rate`` (None: the settings' ``impact_burn_rate``).
    """

    window: timedelta
    burn_rate: float | None = None


# The config's defaults (reports.impact_windows), mirrored.
DEFAULT_IMPACT_WINDOWS = tuple(ImpactWindow(w.window, w.burn_rate) for w in CONFIG_IMPACT_WINDOWS)


@dataclass(frozen=True)
class ScorecardTarget:
    """One line of the seed's Success Metrics table."""

    key: str
    metric: str
    comparator: str  # '>' or '<': the value must be strictly above or below the target
    target: float
    unit: str  # ratio | minutes
    definition: str

    @property
    def target_text(self) -> str:
        shown = f"{self.target * 100:g}%" if self.unit == "ratio" else f"{self.target:g} minutes"
        return f"{self.comparator} {shown}"


DEFAULT_TARGETS = (
    ScorecardTarget(
        "uptime",
        "System uptime",
        ">",
        0.999,
        "ratio",
        "share of `up` scrapes equal to 1 over every target of the catalog's critical services",
    ),
    ScorecardTarget(
        "alert_noise",
        "Alert noise ratio",
        "<",
        0.05,
        "ratio",
        "share of alert firings that overlapped no SLO-impact episode of their service "
        "(unmapped alerts count as noise)",
    ),
    ScorecardTarget(
        "mttd",
        "Mean time to detection",
        "<",
        5.0,
        "minutes",
        "mean time from the start of an SLO-impact episode to the first related alert, over "
        "detected episodes",
    ),
    ScorecardTarget(
        "mttr",
        "Mean time to resolution",
        "<",
        30.0,
        "minutes",
        "mean duration of SLO-impact episodes (start of impact to its end)",
    ),
    ScorecardTarget(
        "coverage",
        "Monitoring coverage",
        ">",
        0.95,
        "ratio",
        "share of catalog services with every required pillar present in the period",
    ),
)


@dataclass(frozen=True)
class ReportSettings:
    """Knobs of the reliability reports. Defaults follow the seed, the SRE Workbook and Nagios.

    Read from the config's ``reports`` section when it has one (same field names).
    """

    period: timedelta = timedelta(days=7)
    # SLO-impact episodes (the ground truth for alert quality and incidents; the definition is in
    # sql/impact_episodes.sql): every minute, each of `impact_windows` is significant when its bad
    # events are at least `impact_min_bad_events`, burn at least the window's burn rate
    # (`impact_burn_rate` when it sets none) and are less likely than `impact_significance` at
    # the budget rate (one-sided Poisson test); a CUSUM places the impact inside significant
    # windows, longer windows add only minutes with bad events of their own, and impacted
    # minutes at most `impact_merge_gap` apart form one episode.
    impact_windows: tuple[ImpactWindow, ...] = DEFAULT_IMPACT_WINDOWS
    impact_burn_rate: float = 5.0
    impact_significance: float = 1e-5
    impact_min_bad_events: int = 5
    impact_merge_gap: timedelta = timedelta(minutes=5)
    # An alert and an episode of the same service are related when their intervals overlap once
    # each is widened by this much on both sides.
    match_tolerance: timedelta = timedelta(minutes=5)
    transient_alert: timedelta = timedelta(minutes=5)
    # Nagios flap detection: weighted state-change percentage over the last 21 states.
    flap_high_threshold: float = 20.0
    flap_low_threshold: float = 5.0
    budget_warning: float = 0.5
    budget_critical: float = 0.9
    uptime_tiers: tuple[str, ...] = ("critical",)
    burn_rate_policy: tuple[BurnRateWindows, ...] = DEFAULT_BURN_RATE_POLICY
    targets: tuple[ScorecardTarget, ...] = field(default=DEFAULT_TARGETS)

    def __post_init__(self) -> None:
        # The same rules as the config's (ReportsConfig), for settings made in code.
        minutes = [round(w.window.total_seconds() / 60) for w in self.impact_windows]
        if not minutes or min(minutes) < 1 or len(set(minutes)) < len(minutes):
            raise ValueError(
                "impact_windows: give windows of at least a minute, each a different length"
            )
        if any(rate <= 1 for rate in self.impact_burn_rates):
            raise ValueError("impact burn rates must be above 1 (the budget rate)")
        if not 0 < self.impact_significance < 1:
            raise ValueError("impact_significance must be between 0 and 1")
        if self.impact_min_bad_events < 0:
            raise ValueError("impact_min_bad_events must not be negative")
        if self.impact_merge_gap < timedelta(0):
            raise ValueError("impact_merge_gap must not be negative")

    @property
    def impact_burn_rates(self) -> tuple[float, ...]:
        """The burn-rate floor of each of ``impact_windows``."""
        return tuple(
            self.impact_burn_rate if w.burn_rate is None else w.burn_rate
            for w in self.impact_windows
        )

    @classmethod
    def from_config(cls, config: ObsConfig) -> "ReportSettings":
        section = getattr(config, "reports", None)
        if section is None:
            return cls()
        raw = section.model_dump() if hasattr(section, "model_dump") else dict(section)
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in known or value is None:
                continue
            if key == "burn_rate_policy":
                value = tuple(_burn_rate_windows(item) for item in value)
            elif key == "impact_windows":
                value = tuple(_impact_window(item) for item in value)
            elif key == "targets":
                value = _targets(value)
            elif key == "uptime_tiers":
                value = tuple(value)
            elif isinstance(getattr(cls, key, None), timedelta) and not isinstance(
                value, timedelta
            ):
                value = parse_duration(str(value))
            values[key] = value
        return cls(**values)


def _burn_rate_windows(item: Any) -> BurnRateWindows:
    if isinstance(item, BurnRateWindows):
        return item
    item = dict(item)

    def duration(v: Any) -> timedelta:
        return v if isinstance(v, timedelta) else parse_duration(str(v))

    long_window, short_window = duration(item["long_window"]), duration(item["short_window"])
    name = item.get("name") or (
        f"{item.get('severity', 'page')}_{format_duration(long_window)}_{format_duration(short_window)}"
    )
    return BurnRateWindows(
        name, item.get("severity", "page"), long_window, short_window, float(item["burn_rate"])
    )


def _impact_window(item: Any) -> ImpactWindow:
    if isinstance(item, ImpactWindow):
        return item
    item = dict(item)
    window = item["window"]
    burn_rate = item.get("burn_rate")
    return ImpactWindow(
        window if isinstance(window, timedelta) else parse_duration(str(window)),
        None if burn_rate is None else float(burn_rate),
    )


def _targets(value: Any) -> tuple[ScorecardTarget, ...]:
    """Override target values by key (``{uptime: 0.9995, mttd: 3}``); the rest stay default."""
    overrides = dict(value)
    return tuple(
        ScorecardTarget(
            t.key,
            t.metric,
            t.comparator,
            float(overrides.get(t.key, t.target)),
            t.unit,
            t.definition,
        )
        for t in DEFAULT_TARGETS
    )


# -- publishing -----------------------------------------------------------------------------------


def publish(
    con: duckdb.DuckDBPyConnection, config: ObsConfig, settings: ReportSettings | None = None
) -> None:
    """Create everything reports need from config, then every ``sql/*.sql`` report as a view.

    ``con`` is a catalog connection whose dataset views already exist. Reports are published in
    dependency order, whatever their names.
    """
    settings = settings or ReportSettings.from_config(config)
    _create_config_tables(con, config, settings)
    create_configured_rules_table(con, config)
    check_latency_buckets(con, config)
    con.execute(f"CREATE OR REPLACE VIEW report_period AS\n{report_period_sql(config, settings)}")
    con.execute(f"CREATE OR REPLACE VIEW slo_events AS\n{SLO_EVENTS_SQL}")
    for macro in POISSON_TAIL_SQL:
        con.execute(macro)
    create_report_views(con)


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


# Reports read SLO events from the derived sli_minutes (obs_pipelines/derived.py), never from raw
# samples: the numbers stay the same after raw samples age out, and reports stay fast.
SLO_EVENTS_SQL = """-- slo_events: per SLO and UTC minute, the SLI's good, bad and total events, from sli_minutes
-- (made at ingest; see obs_pipelines/derived.py). Only minutes computed with the SLO's current
-- definition count: after an SLO changes, `obs slo recompute --slo NAME` recomputes its history.
-- resolution: raw, or the rollup (5m, 1h) the minute came from once raw samples aged out;
-- uncertain_events: threshold SLIs from rollups, samples of buckets partly within the bounds.
SELECT m.slo_name, m.minute, m.good_events, m.bad_events, m.total_events, m.uncertain_events,
       m.resolution
FROM sli_minutes AS m
JOIN slo_definitions AS d ON d.slo_name = m.slo_name AND d.slo_version = m.slo_version"""


def create_report_views(con: duckdb.DuckDBPyConnection, sql_dir: Path = SQL_DIR) -> None:
    """Publish every ``sql/*.sql`` report as a view, dependencies first (whatever their names)."""
    pending = report_queries(sql_dir)
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


def lookback(config: ObsConfig, settings: ReportSettings) -> timedelta:
    """How far before the previous period the reports read: the longest window they evaluate."""
    windows = [slo.window for slo in config.slos]
    windows += [w.long_window for w in settings.burn_rate_policy]
    windows += [w.window for w in settings.impact_windows] + [timedelta(days=1)]
    return max(windows)


def report_period_sql(config: ObsConfig, settings: ReportSettings) -> str:
    period = _minutes(settings.period)
    reach = _minutes(lookback(config, settings))
    return f"""-- report_period: the window reports describe, the one before it (for the scorecard's change),
-- and the horizon they read from (reaching back by the longest SLO or burn-rate window).
-- Default: the last {format_duration(settings.period)} ending at the end of the newest hour holding
-- metric data (raw samples or rollups, from the derived datasets). Another period: SET VARIABLE report_start = TIMESTAMP '...' (and report_end).
WITH newest AS (
    SELECT date_trunc('hour', greatest(
               (SELECT max(last_ts) FROM series_inventory),
               (SELECT max(minute) FROM sli_minutes),
               (SELECT max(minute) FROM up_minutes)
           )) + INTERVAL 1 HOUR AS data_end
),
bounds AS (
    SELECT
        coalesce(
            getvariable('report_end')::TIMESTAMP,
            data_end,
            date_trunc('hour', make_timestamp(epoch_us(now())))
        ) AS period_end,
        getvariable('report_start')::TIMESTAMP AS chosen_start
    FROM newest
),
starts AS (
    SELECT coalesce(chosen_start, period_end - INTERVAL {period} MINUTE) AS period_start, period_end
    FROM bounds
)
SELECT
    period_start,
    period_end,
    period_start - (period_end - period_start)                              AS previous_start,
    period_start                                                            AS previous_end,
    period_start - (period_end - period_start) - INTERVAL {reach} MINUTE    AS horizon_start
FROM starts"""


def _create_config_tables(
    con: duckdb.DuckDBPyConnection, config: ObsConfig, settings: ReportSettings
) -> None:
    tables = {
        "services": _services_table(config),
        "slo_definitions": _slo_table(config),
        "alert_policy": _policy_table(settings),
        "impact_windows": _impact_windows_table(settings),
        "report_settings": _settings_table(settings),
        "scorecard_targets": _targets_table(settings),
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
        )
    }
    for slo in config.slos:
        sli = slo.sli
        rows["slo_version"].append(slo_version(slo))
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
    }
    return pa.table({k: pa.array(v, types.get(k, pa.string())) for k, v in rows.items()})


def _policy_table(settings: ReportSettings) -> pa.Table:
    policy = settings.burn_rate_policy
    return pa.table(
        {
            "policy_name": pa.array([p.name for p in policy], pa.string()),
            "severity": pa.array([p.severity for p in policy], pa.string()),
            "long_window_minutes": pa.array([_minutes(p.long_window) for p in policy], pa.int64()),
            "short_window_minutes": pa.array(
                [_minutes(p.short_window) for p in policy], pa.int64()
            ),
            "burn_rate_threshold": pa.array([p.burn_rate for p in policy], pa.float64()),
        }
    )


def _impact_windows_table(settings: ReportSettings) -> pa.Table:
    """The windows impact_episodes tests, each with its burn-rate floor resolved."""
    windows = settings.impact_windows
    return pa.table(
        {
            "window_minutes": pa.array([_minutes(w.window) for w in windows], pa.int64()),
            "burn_rate_threshold": pa.array(settings.impact_burn_rates, pa.float64()),
        }
    )


def _settings_table(settings: ReportSettings) -> pa.Table:
    return pa.table(
        {
            "period_minutes": pa.array([_minutes(settings.period)], pa.int64()),
            "impact_burn_rate": pa.array([settings.impact_burn_rate], pa.float64()),
            "impact_significance": pa.array([settings.impact_significance], pa.float64()),
            "impact_min_bad_events": pa.array([settings.impact_min_bad_events], pa.int64()),
            "impact_merge_gap_minutes": pa.array(
                [round(settings.impact_merge_gap.total_seconds() / 60)], pa.int64()
            ),
            "match_tolerance_seconds": pa.array(
                [settings.match_tolerance.total_seconds()], pa.float64()
            ),
            "transient_alert_seconds": pa.array(
                [settings.transient_alert.total_seconds()], pa.float64()
            ),
            "flap_high_threshold": pa.array([settings.flap_high_threshold], pa.float64()),
            "flap_low_threshold": pa.array([settings.flap_low_threshold], pa.float64()),
            "budget_warning": pa.array([settings.budget_warning], pa.float64()),
            "budget_critical": pa.array([settings.budget_critical], pa.float64()),
            "uptime_tiers": pa.array([list(settings.uptime_tiers)], pa.list_(pa.string())),
        }
    )


def _targets_table(settings: ReportSettings) -> pa.Table:
    targets = settings.targets
    return pa.table(
        {
            "metric_order": pa.array(range(1, len(targets) + 1), pa.int64()),
            "metric_key": pa.array([t.key for t in targets], pa.string()),
            "metric": pa.array([t.metric for t in targets], pa.string()),
            "comparator": pa.array([t.comparator for t in targets], pa.string()),
            "target_value": pa.array([t.target for t in targets], pa.float64()),
            "target": pa.array([t.target_text for t in targets], pa.string()),
            "unit": pa.array([t.unit for t in targets], pa.string()),
            "definition": pa.array([t.definition for t in targets], pa.string()),
        }
    )


# -- reading --------------------------------------------------------------------------------------


def report_connection(
    config: ObsConfig, start: datetime | None = None, end: datetime | None = None
) -> duckdb.DuckDBPyConnection:
    """A read-only catalog connection whose reports describe ``[start, end)`` (UTC).

    Either bound may be None: the end defaults to the newest data, the start to one period
    before the end.
    """
    from obs_pipelines.catalog import connect

    con = connect(config, read_only=True)
    con.execute("SET enable_progress_bar = false")
    for name, moment in (("report_start", start), ("report_end", end)):
        if moment is not None:
            con.execute(f"SET VARIABLE {name} = ?::TIMESTAMP", [_naive_utc(moment)])
    return con


def _naive_utc(moment: datetime) -> datetime:
    from datetime import UTC

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
    "slo_events",
    "slo_burn_rates",
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
    database = con.execute("SELECT current_database()").fetchone()[0]
    for name in names:
        con.execute(
            f'CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM "{database}".main.{name}'
        )
