"""Derived datasets: what the reports need from raw metric samples, made when an hour is ingested
and kept long after raw samples age out (retention: as long as the lake keeps anything).

* ``sli_minutes``: per SLO and UTC minute, the good, bad and total events of its SLI (and, from
  rollups, the uncertain ones), with the resolution they came from and the SLO's version.
* ``up_minutes``: per service and minute, the ``up`` samples and those equal to 1.
* ``series_inventory``: per series and hour, the samples, the first and the last timestamp.

From raw samples the numbers are exactly those :mod:`obs_pipelines.slo` defines, and a counter's
increase across the boundary of an hour is exact: each hour reads the hour before it for every
series' last sample. Where raw samples are gone, an hour is computed from the finest rollup kept
(``resolution`` says which, so a report knows how exact a window is):

* counters: the bucket's ``counter_increase`` (exact over the bucket) lands on its first minute;
* threshold SLIs: a bucket's samples are good when its min and max are both within the bounds,
  bad when both are outside, and otherwise ``uncertain_events`` (counted in the total);
* ``up``: the bucket's count and sum (``up`` is 0 or 1, so the sum counts the 1s);
* the inventory: bucket counts, first and last bucket start.

At the boundary where rollups give way to raw samples, the last value of the rollup bucket before
the first raw sample is that sample's predecessor, so no increase is lost or counted twice.
"""

from dataclasses import dataclass, field
from datetime import datetime

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from obs_pipelines.catalog import lake_connection
from obs_pipelines.config import ObsConfig, SloConfig, ThresholdSli
from obs_pipelines.errors import ConfigError
from obs_pipelines.lake import Lake, LockBusy
from obs_pipelines.lake.rollups import RESOLUTIONS
from obs_pipelines.schemas import DERIVED_SCHEMAS, SLI_MINUTES, TIME_COLUMN
from obs_pipelines.slo import series_roles, slo_events_sql, slo_version, sql_string
from obs_pipelines.tiering import merge_rewritten
from obs_pipelines.windows import HOUR, TimeWindow

DERIVED = tuple(DERIVED_SCHEMAS)
RAW = "raw"


@dataclass
class DerivedResult:
    window: TimeWindow
    rows: dict[str, int] = field(default_factory=dict)
    hours_by_resolution: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def derive(
    config: ObsConfig,
    window: TimeWindow,
    *,
    slo_names: list[str] | None = None,
    datasets: tuple[str, ...] = DERIVED,
) -> DerivedResult:
    """Compute and publish the derived datasets of every hour of ``window``, from raw samples
    where they exist and from rollups where they do not.

    ``slo_names`` recomputes those SLOs only: each hour's other SLOs keep the rows they have.
    """
    slos = _selected(config, slo_names)
    lake = Lake(config)
    sources = hour_sources(lake, window)
    con = lake_connection(config)
    try:
        _register_sources(con, window, sources)
        # Every SLO selector reads metric_series: once, not once per selector over every file.
        con.execute("CREATE TEMP TABLE metric_series AS SELECT * FROM main.metric_series")
        tables = {
            "sli_minutes": lambda: _sli_minutes(con, slos),
            "up_minutes": lambda: _query(con, UP_SQL, DERIVED_SCHEMAS["up_minutes"]),
            "series_inventory": lambda: _query(
                con, INVENTORY_SQL, DERIVED_SCHEMAS["series_inventory"]
            ),
        }
        computed = {d: tables[d]() for d in datasets}
        if slo_names is not None and "sli_minutes" in computed:
            computed["sli_minutes"] = _keep_other_slos(
                con, computed["sli_minutes"], [s.name for s in slos], window
            )
    finally:
        con.close()
    result = DerivedResult(window)
    for resolution in sources.values():
        if resolution:
            result.hours_by_resolution[resolution] = (
                result.hours_by_resolution.get(resolution, 0) + 1
            )
    late: list[str] = []
    for dataset, table in computed.items():
        result.rows[dataset] = table.num_rows
        colder = [f.window for f in lake.files(dataset, ("warm", "cold"))]
        for hour in window.hours():
            lake.write_hot(dataset, hour, _within(table, TIME_COLUMN[dataset], hour))
            if dataset not in late and any(w.start <= hour.start < w.end for w in colder):
                late.append(dataset)
    if late:
        try:
            merged = merge_rewritten(config, tuple(late))
            result.notes += merged.problems
        except LockBusy as busy:
            result.notes.append(f"{busy}; the recomputed hours show once that run ends")
    return result


def hour_sources(lake: Lake, window: TimeWindow) -> dict[datetime, str | None]:
    """For every hour of ``window`` and the one before it: ``raw`` where raw samples are in the
    lake, else the finest rollup resolution kept, else None."""
    raw = [f.window for f in lake.files("metric_samples")]
    rollups = [(f.resolution, f.window) for f in lake.files("metric_rollups")]
    found: dict[datetime, str | None] = {}
    hour = window.start - HOUR
    while hour < window.end:
        span = TimeWindow(hour, hour + HOUR)
        if any(w.start <= span.start and w.end >= span.end for w in raw):
            found[hour] = RAW
        else:
            found[hour] = next(
                (
                    res
                    for res in RESOLUTIONS
                    for r, w in rollups
                    if r == res and w.start <= span.start and w.end >= span.end
                ),
                None,
            )
        hour += HOUR
    return found


def _selected(config: ObsConfig, names: list[str] | None) -> list[SloConfig]:
    if names is None:
        return list(config.slos)
    known = {s.name: s for s in config.slos}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(
            f"no SLO named {', '.join(unknown)} in the config; choose from "
            f"{', '.join(sorted(known)) or '(none configured)'}"
        )
    return [known[n] for n in names]


def _register_sources(
    con: duckdb.DuckDBPyConnection, window: TimeWindow, sources: dict[datetime, str | None]
) -> None:
    """``derive_hours`` (hour, resolution), the window, ``raw_samples`` of raw hours and
    ``derive_samples``: raw samples plus each rollup bucket's last value as a sample at the
    bucket's end, so the first raw sample after rollup-only hours has its predecessor."""
    hours = pa.table(
        {
            "hour": pa.array([h.replace(tzinfo=None) for h in sources], pa.timestamp("ms")),
            "resolution": pa.array(list(sources.values()), pa.string()),
        }
    )
    con.register("derive_hours_arrow", hours)
    con.execute("CREATE TEMP TABLE derive_hours AS SELECT * FROM derive_hours_arrow")
    con.unregister("derive_hours_arrow")
    start, end = window.start.replace(tzinfo=None), window.end.replace(tzinfo=None)
    con.execute(
        "CREATE TEMP TABLE derive_window AS SELECT ?::TIMESTAMP AS window_start, "
        "?::TIMESTAMP AS window_end, ?::TIMESTAMP - INTERVAL 1 HOUR AS read_start",
        [start, end, start],
    )
    con.execute(
        """CREATE TEMP VIEW raw_samples AS
           SELECT x.series_id, x.ts, x.value FROM metric_samples AS x
           WHERE x.ts >= (SELECT read_start FROM derive_window)
             AND x.ts < (SELECT window_end FROM derive_window)
             AND date_trunc('hour', x.ts) IN (SELECT hour FROM derive_hours WHERE resolution = 'raw')"""
    )
    con.execute(
        """CREATE TEMP VIEW rollup_buckets AS
           SELECT r.* FROM metric_rollups AS r
           JOIN derive_hours AS h ON h.hour = date_trunc('hour', r.ts) AND h.resolution = r.resolution"""
    )
    widths = " ".join(f"WHEN '{r}' THEN {ms}" for r, ms in RESOLUTIONS.items())
    con.execute(
        f"""CREATE TEMP VIEW derive_samples AS
            SELECT series_id, ts, value FROM raw_samples
            UNION ALL
            SELECT series_id, ts + to_milliseconds(CASE resolution {widths} END - 1) AS ts,
                   "last" AS value
            FROM rollup_buckets"""
    )
    # slo_events_sql reads its horizon from report_period.
    con.execute(
        """CREATE TEMP VIEW report_period AS
           SELECT read_start AS horizon_start, window_end AS period_end FROM derive_window"""
    )


def _sli_minutes(con: duckdb.DuckDBPyConnection, slos: list[SloConfig]) -> pa.Table:
    if not slos:
        return SLI_MINUTES.empty_table()
    versions = " ".join(
        f"WHEN {sql_string(s.name)} THEN {sql_string(slo_version(s))}" for s in slos
    )
    raw = f"""SELECT e.slo_name, e.minute, e.good_events, e.bad_events, e.total_events,
       0::DOUBLE AS uncertain_events, 'raw' AS resolution
FROM ({slo_events_sql(slos, samples="derive_samples")}) AS e
WHERE e.minute >= (SELECT window_start FROM derive_window)
  AND date_trunc('hour', e.minute) IN (SELECT hour FROM derive_hours WHERE resolution = 'raw')"""
    sql = f"""SELECT slo_name, minute, good_events, bad_events, total_events, uncertain_events,
       resolution, CASE slo_name {versions} END AS slo_version
FROM ({raw} UNION ALL {_rollup_sli_sql(slos)})
WHERE total_events > 0 OR good_events > 0 OR bad_events > 0"""
    return _query(con, sql, SLI_MINUTES)


def _rollup_sli_sql(slos: list[SloConfig]) -> str:
    """Per SLO and bucket start, events from the rollups of rollup-only hours."""
    roles = [r for slo in slos for r in series_roles(slo)]
    series_union = " UNION ALL ".join(
        f"SELECT series_id, {sql_string(r.slo)} AS slo_name, '{r.role}' AS role "
        f"FROM metric_series WHERE {r.predicate}"
        for r in roles
    )
    per_slo = []
    for slo in slos:
        name = sql_string(slo.name)
        if isinstance(slo.sli, ThresholdSli):
            within, outside = _bucket_bounds(slo.sli)
            per_slo.append(
                f"""SELECT {name} AS slo_name, b.ts AS minute,
       coalesce(sum(b.count) FILTER (WHERE {within}), 0)::DOUBLE AS good_events,
       coalesce(sum(b.count) FILTER (WHERE {outside}), 0)::DOUBLE AS bad_events,
       sum(b.count)::DOUBLE AS total_events,
       coalesce(sum(b.count) FILTER (WHERE NOT ({within}) AND NOT ({outside})), 0)::DOUBLE
           AS uncertain_events,
       b.resolution
FROM rollup_hour_buckets AS b JOIN slo_series AS s
  ON s.series_id = b.series_id AND s.slo_name = {name} AND s.role = 'gauge'
GROUP BY ALL"""
            )
            continue
        total = "coalesce(sum(events) FILTER (WHERE role = 'total'), 0)"
        if getattr(slo.sli, "bad", None) is not None:
            bad = "coalesce(sum(events) FILTER (WHERE role = 'bad'), 0)"
            good = f"{total} - {bad}"
        else:
            good = "coalesce(sum(events) FILTER (WHERE role = 'good'), 0)"
            bad = f"{total} - {good}"
        per_slo.append(
            f"""SELECT slo_name, minute, {good} AS good_events, {bad} AS bad_events,
       {total} AS total_events, 0::DOUBLE AS uncertain_events, resolution
FROM counter_bucket_events WHERE slo_name = {name} GROUP BY slo_name, minute, resolution"""
        )
    return f"""(WITH slo_series AS ({series_union}),
rollup_hour_buckets AS (
    SELECT * FROM rollup_buckets
    WHERE ts >= (SELECT window_start FROM derive_window)
      AND ts < (SELECT window_end FROM derive_window)
),
counter_bucket_events AS (
    SELECT s.slo_name, s.role, b.ts AS minute, b.resolution, sum(b.counter_increase) AS events
    FROM rollup_hour_buckets AS b
    JOIN slo_series AS s ON s.series_id = b.series_id AND s.role IN ('total', 'good', 'bad')
    GROUP BY ALL
)
{" UNION ALL ".join(per_slo)})"""


def _bucket_bounds(sli: ThresholdSli) -> tuple[str, str]:
    """(every sample of the bucket within the bounds, every sample outside them)."""
    within = ["NOT isnan(b.min)", "NOT isnan(b.max)"]
    outside = []
    if sli.min is not None:
        within.append(f"b.min >= {sli.min!r}")
        outside.append(f"b.max < {sli.min!r}")
    if sli.max is not None:
        within.append(f"b.max <= {sli.max!r}")
        outside.append(f"b.min > {sli.max!r}")
    return " AND ".join(within), "(" + " OR ".join(outside) + ")"


UP_SQL = """
SELECT s.service, date_trunc('minute', x.ts) AS minute, count(*) AS up_samples,
       count(*) FILTER (WHERE x.value = 1) AS up_ok_samples, 'raw' AS resolution
FROM raw_samples AS x JOIN metric_series AS s USING (series_id)
WHERE s.metric = 'up' AND x.ts >= (SELECT window_start FROM derive_window)
GROUP BY ALL
UNION ALL
SELECT s.service, b.ts AS minute, sum(b.count)::BIGINT AS up_samples,
       sum(b.sum)::BIGINT AS up_ok_samples, b.resolution
FROM rollup_buckets AS b JOIN metric_series AS s USING (series_id)
WHERE s.metric = 'up' AND b.ts >= (SELECT window_start FROM derive_window)
GROUP BY ALL
"""

INVENTORY_SQL = """
SELECT series_id, date_trunc('hour', ts) AS hour, count(*) AS samples, min(ts) AS first_ts,
       max(ts) AS last_ts, 'raw' AS resolution
FROM raw_samples WHERE ts >= (SELECT window_start FROM derive_window)
GROUP BY ALL
UNION ALL
SELECT series_id, date_trunc('hour', ts) AS hour, sum(count)::BIGINT AS samples, min(ts) AS first_ts,
       max(ts) AS last_ts, resolution
FROM rollup_buckets WHERE ts >= (SELECT window_start FROM derive_window)
GROUP BY ALL
"""


def _query(con: duckdb.DuckDBPyConnection, sql: str, schema: pa.Schema) -> pa.Table:
    """The rows of ``sql``, computed into a temporary table first: fetched straight to Arrow, a
    window over these unions parks DuckDB 1.5.5's threads once an SLO list is long (about 9)."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE derive_result AS {sql}")
    table = con.execute("SELECT * FROM derive_result").to_arrow_table()
    con.execute("DROP TABLE derive_result")
    return table.select(schema.names).cast(schema)


def _keep_other_slos(
    con: duckdb.DuckDBPyConnection, fresh: pa.Table, names: list[str], window: TimeWindow
) -> pa.Table:
    """The window's current rows of the SLOs not recomputed, plus ``fresh``."""
    kept = con.execute(
        "SELECT * FROM sli_minutes WHERE minute >= ? AND minute < ? AND NOT list_contains(?, slo_name)",
        [window.start.replace(tzinfo=None), window.end.replace(tzinfo=None), names],
    ).to_arrow_table()
    return pa.concat_tables([kept.select(SLI_MINUTES.names).cast(SLI_MINUTES), fresh])


def _within(table: pa.Table, column: str, hour: TimeWindow) -> pa.Table:
    times = table.column(column)
    start = pa.scalar(hour.start, times.type)
    end = pa.scalar(hour.end, times.type)
    return table.filter(pc.and_(pc.greater_equal(times, start), pc.less(times, end)))
