"""The catalog's statements over the Delta tables: views read through the log.

Each dataset view is one ``delta_scan`` of the dataset's table (:mod:`obs_pipelines.lake.delta`)
with exactly the columns and DuckDB types of the dataset's schema (the views of the file layout
of earlier versions had the same, so reports and analysts' queries did not change), plus the table's partition column ``dt`` (the row's UTC day,
'YYYY-MM-DD') as the last column: a query that filters ``dt`` reads only that day's files
(DuckDB's delta extension prunes on partition values, not on the timestamp columns).
``metric_series`` collapses the table's hourly rows per series, and has
no ``dt``. The table's stored types come back exactly: ``series_id`` from its signed 64 bits to
the registry's UBIGINT, timestamps from UTC microseconds to naive UTC TIMESTAMP by their epoch
value (never through the session's time zone); snapshot tables' ``_hour`` is left out.

The build reads each table's log only: no data file is listed or opened, and a view reads the
table's newest version whenever it is queried, so new commits show up without a rebuild.

* ``lake_partitions`` lists the data files the tables' logs reference now (every one is current,
  none archived: Delta readers cannot read archive classes, so ``obs lake lifecycle`` refuses
  them). Row counts, bytes and times come from the log's add actions. ``tier`` is an age class:
  the tier that the file's age (since it was written) puts it in under the dataset's retention,
  which is when S3 lifecycle rules move it to that tier's storage class; ``storage_class`` is
  NULL (the log does not record it). The span is the file's day partition.
* ``lake_partition_sources`` is a view over the tables' commit records, read when it is
  queried: one row per hour an ingest commit (``obs.operation = ingest``) wrote, with the source
  it recorded (``obs.source``; NULL for derived datasets). A row is an hour, not a data file:
  ``file`` is the commit's log file,
  ``partition`` the hour's day and ``tier`` the commit's age class. An hour is ``current`` when
  this is its newest ingest commit and its day is still in ``lake_partitions`` (or it wrote no
  rows). Days written only by ``obs lake
  migrate`` or tiering have no row (they keep no source), and commits removed by the log's cleanup
  (``delta.logRetentionDuration``, 30 days by default) drop out.
"""

from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa

from obs_pipelines.config import TIERS, ObsConfig
from obs_pipelines.datasets import ALL
from obs_pipelines.datasets import dataset as dataset_of
from obs_pipelines.lake import delta
from obs_pipelines.lake.delta import DAY_COLUMN, TableLayout
from obs_pipelines.lake.delta_tables import INGEST, DeltaTables
from obs_pipelines.lake.tiering import streams
from obs_pipelines.sql_literal import sql_literal

_UNSIGNED_64 = "18446744073709551615"
_MICROSECOND = timedelta(microseconds=1)
# The add actions lake_partitions is built from, one row per data file.
_LISTING = pa.schema(
    [
        ("dataset", pa.string()),
        ("path", pa.string()),
        ("resolution", pa.string()),
        ("dt", pa.string()),
        ("row_count", pa.int64()),
        ("bytes", pa.int64()),
        ("written_ms", pa.int64()),
    ]
)


def view_statements(config: ObsConfig) -> list[str]:
    """``CREATE VIEW`` of every dataset, in registry order (the ``metrics`` join is the
    catalog's, over these)."""
    return [dataset_view(delta.layout(name), delta.scan(config, name)) for name in ALL]


def dataset_view(table: TableLayout, scan: str, create: str = "CREATE OR REPLACE VIEW") -> str:
    """The dataset's view over ``scan`` (its ``delta_scan``, or the table attached under a name),
    with the dataset's columns and types."""
    columns = ", ".join(_column(field) for field in table.source)
    if dataset_of(table.dataset).collapse_series:
        return f"""{create} {table.dataset} AS
SELECT series_id, any_value(metric) AS metric, any_value(labels) AS labels,
       any_value(service) AS service, any_value(job) AS job, any_value(instance) AS instance,
       min(first_seen_hour) AS first_seen_hour, max(last_seen_hour) AS last_seen_hour
FROM (SELECT {columns} FROM {scan}) GROUP BY series_id"""
    return f"{create} {table.dataset} AS\nSELECT {columns}, {DAY_COLUMN} FROM {scan}"


def _column(field: pa.Field) -> str:
    """One column of the view: the registry's type from the table's (bits kept exactly)."""
    name = _ident(field.name)
    if field.type == pa.uint64():
        return f"({name}::HUGEINT & {_UNSIGNED_64})::UBIGINT AS {name}"
    if pa.types.is_unsigned_integer(field.type):
        return f"{name}::{_unsigned(field.type)} AS {name}"
    if pa.types.is_timestamp(field.type):
        return f"make_timestamp(epoch_us({name})) AS {name}"
    return name


def _unsigned(kind: pa.DataType) -> str:
    return {pa.uint8(): "UTINYINT", pa.uint16(): "USMALLINT", pa.uint32(): "UINTEGER"}[kind]


def create_partitions_table(
    con: duckdb.DuckDBPyConnection, config: ObsConfig, opened: dict[str, Any] | None = None
) -> None:
    """``lake_partitions``: every data file the tables' logs reference, from the logs alone
    (``opened``: the tables already open, as :meth:`DeltaTables.ensure_tables` returns them)."""
    tables = DeltaTables(config)
    opened = opened or {}
    listing = pa.concat_tables([_add_actions(tables, name, opened.get(name)) for name in ALL])
    con.register("partitions_listing", listing)
    root = sql_literal(delta.delta_root(config))
    age = "(epoch_us(now()) - written_ms * 1000)"
    con.execute(
        f"""CREATE OR REPLACE TABLE lake_partitions AS
           SELECT dataset, {tier_sql(config, age)} AS tier,
                  concat_ws('/', 'resolution=' || resolution, 'dt=' || dt) AS "partition",
                  resolution, dt::DATE::TIMESTAMP_MS AS span_start,
                  (dt::DATE + INTERVAL 1 DAY)::TIMESTAMP_MS AS span_end, row_count, bytes,
                  NULL::VARCHAR AS storage_class, make_timestamp(written_ms * 1000) AS written_at,
                  true AS "current", false AS archived,
                  CASE WHEN regexp_matches(path, '^([a-z0-9]+://|/)') THEN path
                       ELSE {root} || '/' || dataset || '/' || url_decode(path) END AS file
           FROM partitions_listing ORDER BY dataset, span_start, tier, file"""
    )
    con.unregister("partitions_listing")


def _add_actions(tables: DeltaTables, dataset: str, found: Any | None = None) -> pa.Table:
    """The dataset's current data files as the log's add actions list them (no file opened)."""
    found = found or tables.open(dataset)
    if found is None:
        return _LISTING.empty_table()
    with delta.delta_errors(f"read the log of {dataset}", tables.config):
        actions = delta.add_actions(found)
    rows = actions.num_rows

    def column(name: str, kind: pa.DataType) -> pa.Array | pa.ChunkedArray:
        if name in actions.column_names:
            return actions[name].cast(kind)
        return pa.nulls(rows, kind)

    return pa.table(
        [
            pa.repeat(dataset, rows).cast(pa.string()),
            column("path", pa.string()),
            column("partition.resolution", pa.string()),
            column(f"partition.{DAY_COLUMN}", pa.string()),
            column("num_records", pa.int64()),
            column("size_bytes", pa.int64()),
            column("modification_time", pa.int64()),
        ],
        schema=_LISTING,
    )


def partition_sources_view(
    config: ObsConfig,
    name: str = "lake_partition_sources",
    datasets: tuple[str, ...] = ALL,
) -> str:
    """``lake_partition_sources``: a view over the tables' commit records (read when queried,
    never at the build), one row per hour an ingest commit wrote, with its recorded source.
    ``name`` and ``datasets`` make the same view of fewer tables: a filter on the dataset does
    not keep DuckDB from reading every table's commits (one GET each on S3)."""
    logs = ", ".join(
        sql_literal(f"{delta.table_uri(config, d)}/_delta_log/*.json") for d in datasets
    )
    age = "(epoch_us(now()) - committed_ms * 1000)"
    return f"""CREATE OR REPLACE VIEW {name} AS
WITH commits AS (
    SELECT regexp_extract(filename, '/([^/]+)/_delta_log/[^/]*$', 1) AS dataset,
           regexp_extract(filename, '([0-9]+)\\.json$', 1)::BIGINT AS version,
           filename AS file, commitInfo AS info
    FROM read_json([{logs}], columns = {{'commitInfo': 'JSON'}},
                   format = 'newline_delimited', filename = true)
    WHERE commitInfo IS NOT NULL
      AND json_extract_string(commitInfo, '$."obs.operation"') = '{INGEST}'
      AND regexp_matches(filename, '/[0-9]{{20}}\\.json$')
),
hours AS (
    SELECT dataset, version, file,
           make_timestamp(epoch_us(h.hour::TIMESTAMPTZ)) AS span_start,
           json_extract_string(info, '$."obs.source"') AS source,
           h.rows AS row_count,
           json_extract(info, '$.timestamp')::BIGINT AS committed_ms
    FROM commits, unnest(from_json(coalesce(
             json_extract_string(info, '$."obs.hours"'),
             json_array(json_object(
                 'hour', json_extract_string(info, '$."obs.hour"'),
                 'rows', json_extract_string(info, '$."obs.rows"')::BIGINT))::VARCHAR),
         '[{{"hour": "VARCHAR", "rows": "BIGINT"}}]')) AS t(h)
),
newest AS (
    SELECT *, 'dt=' || strftime(span_start, '%Y-%m-%d') AS "partition",
           row_number() OVER (PARTITION BY dataset, span_start ORDER BY version DESC) = 1
               AS newest
    FROM hours
)
SELECT n.dataset, {tier_sql(config, age, dataset="n.dataset", resolution="NULL")} AS tier,
       n."partition", NULL::VARCHAR AS resolution, n.span_start::TIMESTAMP_MS AS span_start,
       (n.span_start + INTERVAL 1 HOUR)::TIMESTAMP_MS AS span_end,
       n.newest AND (n.row_count = 0 OR n."partition" IN (
           SELECT p."partition" FROM lake_partitions AS p WHERE p.dataset = n.dataset
       )) AS "current",
       n.source, n.file
FROM newest AS n
ORDER BY n.dataset, n.span_start, n.version"""


def tier_sql(
    config: ObsConfig, age_us: str, *, dataset: str = "dataset", resolution: str = "resolution"
) -> str:
    """A SQL expression naming the tier that data ``age_us`` microseconds old is in under the
    retention of its dataset (and, for rollups, resolution), as tiering's streams map it: the
    first tier it has not yet left, or the last one once it is past every age (awaiting
    deletion). A dataset no retention names stays hot."""
    found, _ = streams(config)
    branches = []
    for stream in found:
        match = f"{dataset} = {sql_literal(stream.dataset)}"
        if stream.resolution is not None:
            match += f" AND {resolution} = {sql_literal(stream.resolution)}"
        steps = " ".join(
            f"WHEN {age_us} < {age // _MICROSECOND} THEN {sql_literal(tier)}"
            for tier, age in stream.stages[:-1]
        )
        last = sql_literal(stream.stages[-1][0])
        branches.append(
            f"WHEN {match} THEN " + (f"CASE {steps} ELSE {last} END" if steps else last)
        )
    return f"CASE {' '.join(branches)} ELSE 'hot' END" if branches else "'hot'"


def days_by_tier(
    con: duckdb.DuckDBPyConnection, config: ObsConfig, now: datetime
) -> list[tuple[str, int, int, int]]:
    """(tier, days, files, bytes) of ``lake_partitions``, hot to cold, by the age of the data
    at ``now`` under ``retention``: what tiering has done. ``lake_partitions.tier`` is by the
    files' age instead (the S3 storage class), which a lake written at once has all hot."""
    age = f"(epoch_us(TIMESTAMP '{now.astimezone(UTC):%Y-%m-%d %H:%M:%S}') - epoch_us(span_end))"
    return con.execute(
        f"""SELECT {tier_sql(config, age)} AS data_tier, count(DISTINCT span_start), count(*),
                   sum(bytes)
            FROM lake_partitions GROUP BY data_tier
            ORDER BY list_position({list(TIERS)}, data_tier)"""
    ).fetchall()


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
