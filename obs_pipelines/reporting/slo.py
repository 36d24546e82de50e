"""SLOs from ``obs.yaml`` translated to SQL over the lake: the generated ``slo_events`` view.

Every SLI becomes, per UTC minute, a count of good, bad and total events, so that every report
(compliance, burn rates, impact episodes) is plain SQL over one shape whatever the SLI type.
The view is regenerated from config each time the catalog is built, and it reads raw samples,
so changing an SLO in config and rebuilding recomputes its whole history.

How events are counted, exactly:

- **Counters** (ratio SLIs, histogram buckets): the increase of a series between two consecutive
  raw samples is ``value - previous`` when the counter grew and ``value`` when it dropped (a drop
  is a reset: the counter restarted from zero). The increase is attributed to the minute of the
  later sample. Summed over any range of minutes this is the exact number of events counted in it;
  nothing is extrapolated to window edges the way PromQL's ``increase()`` does. The first sample a
  series has in the report horizon has no predecessor and contributes nothing, and neither does a
  sample whose previous one lies before the UTC hour just before its own (a scrape gap of hours):
  a predecessor is in the same hour or the hour just before. The hourly derivation sees only the
  hour before its own, a counter read again after a gap of hours says how many events the gap
  held but not when, and Prometheus's ``rate()``/``increase()`` do not bridge a gap longer than
  their range either; so every path (one run, hourly runs, rollups) counts the same events.
- **Latency** (histograms): good = the bucket whose ``le`` equals the threshold, total = the
  ``+Inf`` bucket. The bucket must exist (checked when the catalog is built).
- **Threshold** (gauges): every raw sample is one event, good when the value is within the bounds
  (NaN is bad). This is sample-weighted; with a fixed scrape interval it equals the share of time.

Rows are limited to the report horizon (``report_period.horizon_start`` to ``period_end``), which
reaches back far enough for the longest SLO window and burn-rate window of the report period.
"""

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import duckdb
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from obs_pipelines.config import LatencySli, ObsConfig, RatioSli, SloConfig, ThresholdSli
from obs_pipelines.errors import ConfigError
from obs_pipelines.selectors import LabelMatcher, Selector, parse_selector

COUNTER_ROLES = ("total", "good", "bad")


def sql_string(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def matcher_predicate(matcher: LabelMatcher, labels: str = "labels", metric: str = "metric") -> str:
    """One PromQL label matcher as a DuckDB predicate over ``metric_series``.

    Prometheus semantics: a missing label is the empty string, regexes are fully anchored (RE2,
    which DuckDB also uses).
    """
    column = (
        metric
        if matcher.label == "__name__"
        else f"coalesce({labels}[{sql_string(matcher.label)}], '')"
    )
    value = sql_string(matcher.value)
    if matcher.op == "=":
        return f"{column} = {value}"
    if matcher.op == "!=":
        return f"{column} <> {value}"
    match = f"regexp_full_match({column}, {value})"
    return match if matcher.op == "=~" else f"NOT {match}"


def selector_predicate(selector: Selector | str) -> str:
    """A whole selector (metric name and matchers) as a predicate over ``metric_series``."""
    parsed = parse_selector(selector) if isinstance(selector, str) else selector
    parts = [f"metric = {sql_string(parsed.metric)}"] if parsed.metric else []
    parts += [matcher_predicate(m) for m in parsed.matchers]
    return " AND ".join(parts) if parts else "true"


@dataclass(frozen=True)
class SeriesRole:
    """Which series play which part in one SLO's SLI: ``predicate`` in SQL over
    ``metric_series``, and the same condition as data for :func:`match_roles`."""

    slo: str
    role: str  # total | good | bad | gauge
    predicate: str
    selector: Selector | None = None
    le: str | None = None  # labels['le'] equals this string
    le_value: float | None = None  # labels['le'] read as a number equals this


def series_roles(slo: SloConfig) -> list[SeriesRole]:
    sli = slo.sli
    if isinstance(sli, RatioSli):
        roles = [_role(slo.name, "total", sli.total)]
        if sli.good is not None:
            roles.append(_role(slo.name, "good", sli.good))
        if sli.bad is not None:
            roles.append(_role(slo.name, "bad", sli.bad))
        return roles
    if isinstance(sli, LatencySli):
        parsed = parse_selector(sli.histogram)
        histogram = selector_predicate(parsed)
        return [
            SeriesRole(
                slo.name, "total", f"{histogram} AND labels['le'] = '+Inf'", parsed, le="+Inf"
            ),
            SeriesRole(
                slo.name,
                "good",
                f"{histogram} AND TRY_CAST(labels['le'] AS DOUBLE) = {sli.threshold_seconds!r}",
                parsed,
                le_value=sli.threshold_seconds,
            ),
        ]
    if isinstance(sli, ThresholdSli):
        return [_role(slo.name, "gauge", sli.gauge)]
    raise TypeError(f"SLO {slo.name}: unknown SLI type {type(sli).__name__}")


def _role(slo: str, role: str, selector: str) -> SeriesRole:
    parsed = parse_selector(selector)
    return SeriesRole(slo, role, selector_predicate(parsed), parsed)


def match_roles(series: pa.Table, roles: list[SeriesRole]) -> list[np.ndarray]:
    """For each role, which rows of ``series`` (``metric`` and ``labels`` columns) it selects:
    the condition of its ``predicate``, evaluated once per distinct label value (regexes with
    RE2, fully anchored, as DuckDB's ``regexp_full_match``), so hundreds of SLO selectors cost
    milliseconds where a query with one predicate each takes a second to plan."""
    columns: dict[str, tuple[np.ndarray, pa.Array]] = {}

    def column(label: str) -> tuple[np.ndarray, pa.Array]:
        """(code per series, distinct values) of a label, a missing label being ''."""
        if label not in columns:
            if label == "__name__":
                values = series.column("metric")
            else:
                values = pc.fill_null(pc.map_lookup(series.column("labels"), label, "first"), "")
            encoded = pc.dictionary_encode(values).combine_chunks()
            columns[label] = (
                np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64),
                encoded.dictionary,
            )
        return columns[label]

    matched: dict[tuple[str, str, str], np.ndarray] = {}

    def matcher(label: str, op: str, value: str) -> np.ndarray:
        key = (label, op, value)
        if key not in matched:
            codes, distinct = column(label)
            if op in ("=", "!="):
                hits = np.asarray(pc.equal(distinct, value).to_numpy(zero_copy_only=False))
            else:
                pattern = f"^(?:{value})$"
                hits = np.asarray(
                    pc.match_substring_regex(distinct, pattern).to_numpy(zero_copy_only=False)
                )
            hits = hits.astype(bool) if op in ("=", "=~") else ~hits.astype(bool)
            matched[key] = hits[codes] if codes.size else np.zeros(0, bool)
        return matched[key]

    def le_numbers() -> np.ndarray:
        codes, distinct = column("le")
        numbers = np.array([_number(v) for v in distinct.to_pylist()], dtype=np.float64)
        return numbers[codes] if codes.size else np.zeros(0)

    everything = np.ones(series.num_rows, bool)
    result = []
    for role in roles:
        if role.selector is None:
            raise ValueError(
                f"SLO {role.slo}: {role.role} role has no selector (make roles with series_roles)"
            )
        mask = everything.copy()
        if role.selector.metric:
            mask &= matcher("__name__", "=", role.selector.metric)
        for m in role.selector.matchers:
            mask &= matcher(m.label, m.op, m.value)
        if role.le is not None:
            mask &= matcher("le", "=", role.le)
        if role.le_value is not None:
            mask &= le_numbers() == role.le_value
        result.append(mask)
    return result


def _number(text: str) -> float:
    """``TRY_CAST(text AS DOUBLE)`` for a label value: NaN (equal to nothing) when it is not a
    number."""
    if "_" in text:
        return float("nan")
    try:
        return float(text)
    except ValueError:
        return float("nan")


def _gauge_good(sli: ThresholdSli) -> str:
    bounds = ["NOT isnan(x.value)"]
    if sli.min is not None:
        bounds.append(f"x.value >= {sli.min!r}")
    if sli.max is not None:
        bounds.append(f"x.value <= {sli.max!r}")
    return " AND ".join(bounds)


def _slo_select(slo: SloConfig, samples: str = "metric_samples") -> str:
    """One SLO's per-minute good/bad/total from the per-role event counts."""
    sli, name = slo.sli, sql_string(slo.name)
    if isinstance(sli, ThresholdSli):
        return f"""    SELECT {name} AS slo_name, date_trunc('minute', x.ts) AS minute,
           count(*) FILTER (WHERE {_gauge_good(sli)})::DOUBLE AS good_events,
           count(*) FILTER (WHERE NOT ({_gauge_good(sli)}))::DOUBLE AS bad_events,
           count(*)::DOUBLE AS total_events
    FROM {samples} AS x
    JOIN slo_series AS s ON s.series_id = x.series_id AND s.slo_name = {name} AND s.role = 'gauge'
    WHERE x.ts >= (SELECT horizon_start FROM report_period)
      AND x.ts < (SELECT period_end FROM report_period)
    GROUP BY ALL"""
    total = "coalesce(sum(events) FILTER (WHERE role = 'total'), 0)"
    if isinstance(sli, RatioSli) and sli.bad is not None:
        bad = "coalesce(sum(events) FILTER (WHERE role = 'bad'), 0)"
        good = f"{total} - {bad}"
    else:
        good = "coalesce(sum(events) FILTER (WHERE role = 'good'), 0)"
        bad = f"{total} - {good}"
    return f"""    SELECT slo_name, minute, {good} AS good_events, {bad} AS bad_events, {total} AS total_events
    FROM counter_events
    WHERE slo_name = {name}
    GROUP BY slo_name, minute"""


def slo_events_sql(
    slos: Iterable[SloConfig], with_rollups: bool = False, samples: str = "metric_samples"
) -> str:
    """The SELECT behind the ``slo_events`` view (see the module docstring for the semantics).

    ``with_rollups``: also count increases from ``metric_rollups`` (``counter_increase``) for
    buckets before a series' first raw sample in the horizon, for history whose raw samples have
    moved to a tier that keeps only rollups. Rollup buckets land on their bucket's start minute,
    so windows shorter than the rollup resolution are approximate there.
    """
    slos = list(slos)
    header = (
        "-- slo_events: per SLO and UTC minute, the SLI's good, bad and total events.\n"
        "-- Generated from obs.yaml `slos` by obs_pipelines/reporting/slo.py when the catalog is built;\n"
        "-- see that module for exactly how counters, histograms and gauges become events.\n"
    )
    if not slos:
        return (
            header
            + "SELECT CAST(NULL AS VARCHAR) AS slo_name, CAST(NULL AS TIMESTAMP) AS minute,\n"
            "       CAST(NULL AS DOUBLE) AS good_events, CAST(NULL AS DOUBLE) AS bad_events,\n"
            "       CAST(NULL AS DOUBLE) AS total_events\nWHERE false"
        )
    roles = [role for slo in slos for role in series_roles(slo)]
    series_union = "\n    UNION ALL\n".join(
        f"    SELECT series_id, {sql_string(r.slo)} AS slo_name, '{r.role}' AS role\n"
        f"    FROM metric_series WHERE {r.predicate}"
        for r in roles
    )
    rollup_branch = ""
    if with_rollups:
        rollup_branch = """
    UNION ALL
    -- Older history kept only as rollups: their counter_increase, before the first raw sample.
    SELECT r.series_id, r.ts AS minute, r.counter_increase AS increase
    FROM metric_rollups AS r
    LEFT JOIN first_raw_sample AS f ON f.series_id = r.series_id
    WHERE r.series_id IN (SELECT series_id FROM counter_series)
      AND r.ts >= (SELECT horizon_start FROM report_period)
      AND r.ts < coalesce(f.first_ts, (SELECT period_end FROM report_period))
      -- Each increase once: the finest resolution kept (1h only where no 5m bucket remains).
      AND (r.resolution = '5m' OR NOT EXISTS (
          SELECT 1 FROM metric_rollups AS fine
          WHERE fine.series_id = r.series_id AND fine.resolution = '5m'
            AND fine.ts >= r.ts AND fine.ts < r.ts + INTERVAL 1 HOUR))"""
    first_raw = (
        """
first_raw_sample AS (
    SELECT series_id, date_trunc('minute', min(ts)) AS first_ts
    FROM counter_samples GROUP BY series_id
),"""
        if with_rollups
        else ""
    )
    per_slo = "\n    UNION ALL\n".join(_slo_select(slo, samples) for slo in slos)
    return f"""{header}WITH slo_series AS (
{series_union}
),
counter_series AS (
    SELECT DISTINCT series_id FROM slo_series WHERE role IN ('total', 'good', 'bad')
),
counter_samples AS (
    SELECT x.series_id, x.ts, x.value,
           lag(x.value) OVER (PARTITION BY x.series_id ORDER BY x.ts) AS previous_value,
           lag(x.ts) OVER (PARTITION BY x.series_id ORDER BY x.ts) AS previous_ts
    FROM {samples} AS x
    WHERE x.series_id IN (SELECT series_id FROM counter_series)
      AND x.ts >= (SELECT horizon_start FROM report_period)
      AND x.ts < (SELECT period_end FROM report_period)
),{first_raw}
counter_increases AS (
    -- A drop is a reset: the counter restarted from zero, so it counted `value` since.
    -- A predecessor before the hour just before the sample's (a gap of hours) is none.
    SELECT series_id, date_trunc('minute', ts) AS minute,
           CASE
               WHEN previous_value IS NULL OR isnan(value) OR isnan(previous_value) THEN 0
               WHEN date_trunc('hour', previous_ts)
                    < date_trunc('hour', ts) - INTERVAL 1 HOUR THEN 0
               WHEN value >= previous_value THEN value - previous_value
               ELSE value
           END AS increase
    FROM counter_samples{rollup_branch}
),
counter_events AS (
    SELECT s.slo_name, s.role, i.minute, sum(i.increase) AS events
    FROM counter_increases AS i
    JOIN slo_series AS s ON s.series_id = i.series_id AND s.role IN ('total', 'good', 'bad')
    GROUP BY s.slo_name, s.role, i.minute
),
events AS (
{per_slo}
)
SELECT slo_name, minute, good_events, bad_events, total_events FROM events"""


def slo_version(slo: SloConfig) -> str:
    """A digest of everything that decides an SLO's events (not its description)."""
    body = slo.model_dump(mode="json", exclude={"description"})
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def slos_version(slos: Iterable[SloConfig]) -> str:
    """One digest of every SLO: the ``sli_minutes`` asset's code version in Dagster, so a changed
    SLO shows its partitions as stale."""
    joined = ",".join(f"{s.name}={slo_version(s)}" for s in sorted(slos, key=lambda s: s.name))
    return hashlib.sha256(joined.encode()).hexdigest()[:16]


def check_latency_buckets(con: duckdb.DuckDBPyConnection, config: ObsConfig) -> None:
    """Refuse a latency SLO whose threshold is not one of its histogram's bucket bounds, or
    whose histogram has no ``+Inf`` bucket (the total its SLI divides by).

    A histogram only knows how many requests were under each ``le``; any other threshold would be
    an interpolation, not a count. An SLO whose histogram has no series yet passes (no data).
    """
    latency = [
        (index, slo.sli) for index, slo in enumerate(config.slos) if isinstance(slo.sli, LatencySli)
    ]
    if not latency:
        return
    # One scan of metric_series (it spans every partition of the lake) for every latency SLO,
    # then each selector over that small table.
    metrics = {parse_selector(sli.histogram).metric for _, sli in latency}
    scope = (
        f"metric IN ({', '.join(sql_string(m) for m in sorted(metrics))})"
        if all(metrics)
        else "true"
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE latency_bucket_series AS SELECT DISTINCT metric, labels "
        f"FROM metric_series WHERE {scope} AND labels['le'] IS NOT NULL"
    )
    try:
        for index, sli in latency:
            _check_threshold_is_a_bound(con, index, sli)
    finally:
        con.execute("DROP TABLE IF EXISTS latency_bucket_series")


def _check_threshold_is_a_bound(
    con: duckdb.DuckDBPyConnection, index: int, sli: LatencySli
) -> None:
    bounds = con.execute(
        "SELECT DISTINCT labels['le'] FROM latency_bucket_series "
        f"WHERE {selector_predicate(sli.histogram)}"
    ).fetchall()
    values = sorted({float(le) for (le,) in bounds if le is not None and _is_number(le)})
    shown = ", ".join("+Inf" if v == float("inf") else f"{v:g}" for v in values)
    if values and sli.threshold_seconds not in values:
        raise ConfigError(
            f"slos[{index}].sli.threshold_seconds: {sli.threshold_seconds:g} is not a bucket "
            f"bound of {sli.histogram} (le = {shown}); set it to one of those bounds"
        )
    if values and float("inf") not in values:  # the total: without it, bad = 0 - good
        raise ConfigError(
            f'slos[{index}].sli.histogram: {sli.histogram} has no le="+Inf" bucket (le = '
            f"{shown}), which counts every request; every Prometheus histogram exports one, so "
            "widen the selector to include it"
        )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
