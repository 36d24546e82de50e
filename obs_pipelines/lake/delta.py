"""The lake's datasets as Delta Lake tables: one open table per dataset that any engine can read.

The file layout of earlier versions was correct only when read through its catalog's views (they
listed files, decoded the warm codec and applied supersede rules in SQL; :mod:`legacy` keeps that
reader for ``obs lake migrate``). A Delta table carries that knowledge in its transaction log
instead, so Spark, Trino, Athena, polars and DuckDB read the same rows, with no duplicates during
a rewrite and nothing left to decode.

Layout (under ``lake.root``, a local folder or ``s3://bucket/prefix``; a table is one unit, its
files are referenced by its log, and a file's tier is its age)::

    <lake.root>/delta/<dataset>/_delta_log/...                  the table's commits
    <lake.root>/delta/<dataset>/dt=YYYY-MM-DD/part-*.parquet    every dataset but rollups
    <lake.root>/delta/metric_rollups/resolution=5m/dt=YYYY-MM-DD/part-*.parquet

* **Columns** are the dataset's plain schema (:mod:`obs_pipelines.schemas`), never the warm codec:
  ``metric_samples`` holds ``series_id, ts, value`` as the catalog decodes them, so no reader
  needs our SQL. ``metric_series`` also keeps the view's ``first_seen_hour`` and
  ``last_seen_hour`` (the hours the series was seen in), which the hourly files only had in
  their paths; snapshots keep ``_hour``, the hour a snapshot was filed under (its own time may
  be later), so rewriting that hour replaces exactly that snapshot.
* **Types** follow Delta's: Delta has no unsigned integers, so ``series_id`` (a BLAKE2b-64
  ``uint64``) is stored as BIGINT with the same 64 bits; joins and equality are unaffected, and
  the unsigned value is ``(series_id::HUGEINT & 18446744073709551615)::UBIGINT`` in DuckDB or
  ``pl.col("series_id").reinterpret(signed=False)`` in polars. Timestamps are Delta
  ``timestamp`` (microseconds, UTC-adjusted): the lake's timestamps are UTC instants, and this
  type needs no table feature, so the tables use protocol reader 1 / writer 2, which every Delta
  reader opens (``timestamp_ntz`` would require reader 3 / writer 7). Millisecond values are
  kept exactly (times 1000). DuckDB shows them as TIMESTAMP WITH TIME ZONE: ``SET TimeZone =
  'UTC'`` (or ``timezone('UTC', ts)``) gives back the lake's naive UTC times.
* **Partitions**: every dataset is partitioned by ``dt``, the UTC day as 'YYYY-MM-DD' of its time
  column (a snapshot: of ``_hour``; ``metric_series``: of ``first_seen_hour``). A day is the unit
  of migration and compaction (one commit, ``mode="overwrite"`` with the predicate
  ``dt = 'YYYY-MM-DD'``), of retention, and of the pruning a one-day query gets from the log
  alone; an hourly write narrows the predicate to its hour
  (:mod:`obs_pipelines.lake.delta_tables`). Snapshots are
  partitioned too although each is small: they accumulate every run and are kept long
  (``incident_records`` is kept longest), so an unpartitioned table would be rewritten whole at
  every snapshot, while by day a snapshot run is one small commit and "the newest snapshot"
  reads one day. ``metric_series`` is partitioned by the day a series was first seen, so an
  hour's series are one small commit like any other dataset's; readers collapse its rows per
  ``series_id`` (earliest first, latest last hour seen), as the catalog's view does.
* **Rollups** are one ``metric_rollups`` table partitioned by ``resolution`` then ``dt``, not a
  table per resolution: the name and columns analysts query stay those of the catalog view
  (``WHERE resolution = '5m'`` prunes to the resolution's files), each resolution has its own
  retention, which drops whole ``resolution=../dt=..`` partitions, and the resolution comes
  first so each one has its own key prefix (S3 lifecycle rules filter by prefix).
* **Files**: rows sorted by the dataset's sort keys (``series_id`` by its stored signed value,
  so min/max statistics prune lookups), zstd at the warm tier's level, DELTA_BINARY_PACKED for
  integer and timestamp columns and BYTE_STREAM_SPLIT for doubles, dictionaries off for both,
  row groups of about a million rows each written as one page per column
  (bench/RESULTS-delta.md: pages of 20,000 rows double the bytes per sample).
* **S3**: delta-rs commits with a conditional PUT (``aws_conditional_put: etag``), so two
  writers never overwrite each other's commit; credentials come from the variables ``lake.s3``
  names, as for the rest of the lake.
"""

import json
import math
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from obs_pipelines.config import DEFAULT_ZSTD_LEVELS, ObsConfig, secret
from obs_pipelines.datasets import ALL
from obs_pipelines.datasets import dataset as dataset_of
from obs_pipelines.errors import ConfigError, LakeError
from obs_pipelines.lake.attach import load_packaged_extension
from obs_pipelines.lake.checksum import Checksum, table_checksum
from obs_pipelines.sql_literal import sql_literal

DELTA_FOLDER = "delta"
DAY_COLUMN = "dt"
# Snapshots have no hourly time column in the registry; their rows carry the moment they were
# taken, which places them in a day.
SNAPSHOT_TIME = {
    "alert_rules": "snapshot_at",
    "alertmanager_alerts": "snapshot_at",
    "incident_records": "fetched_at",
}
# Snapshot rows are filed under the hour of the run that took them (their own time may lie
# later, e.g. a rule evaluation's window end plus lag): the table keeps that hour, so rewriting
# a run's hour replaces exactly its snapshot.
FILED_HOUR = "_hour"
# The catalog's metric_series view adds the hours each series was seen in.
SERIES_SEEN = (
    pa.field("first_seen_hour", pa.timestamp("ms")),
    pa.field("last_seen_hour", pa.timestamp("ms")),
)
ROWS_PER_GROUP = 1 << 20
# Properties a table is created with. A checkpoint every 10 commits (Delta's default is 100):
# every hourly write and every reader opens the table by replaying the log since the last
# checkpoint, and 100 JSON commits cost 50 ms per open where 10 cost 5 ms (measured here).
TABLE_CONFIGURATION = {"delta.checkpointInterval": "10"}
PAGE_BYTES = 1 << 26  # above any page of ROWS_PER_GROUP rows: the row count decides


@dataclass(frozen=True)
class TableLayout:
    """How one dataset is laid out as a Delta table."""

    dataset: str
    source: pa.Schema  # the catalog view's columns, as the view returns them
    schema: pa.Schema  # the Delta table's columns, partition columns last
    partition_by: tuple[str, ...]
    day_of: str | None  # the table's column whose UTC day is `dt`; None: unpartitioned
    sort_keys: tuple[str, ...]
    view_time: str | None = None  # the view's column that places a row in a day
    # Table columns the view has not, as DuckDB expressions over the view's columns.
    derived: tuple[tuple[str, str], ...] = ()

    @property
    def columns(self) -> list[str]:
        """The data columns (what checksums hash): every column but ``dt``."""
        return self.source.names


def layout(dataset: str) -> TableLayout:
    """The Delta layout of a registered dataset (see the module docstring for the reasons)."""
    registered = dataset_of(dataset)
    source = registered.schema
    derived: tuple[tuple[str, str], ...] = ()
    if registered.collapse_series:
        source = pa.schema([*source, *SERIES_SEEN])
        day_of = view_time = SERIES_SEEN[0].name
    elif registered.time_column is not None:
        day_of = view_time = registered.time_column
    elif dataset in SNAPSHOT_TIME:
        view_time, day_of = SNAPSHOT_TIME[dataset], FILED_HOUR
        derived = ((FILED_HOUR, f"date_trunc('hour', \"{view_time}\")"),)
    else:
        raise LakeError(
            f"dataset {dataset} has no time column to partition its Delta table by; add it to "
            "SNAPSHOT_TIME in obs_pipelines/lake/delta.py"
        )
    fields = {f.name: _delta_field(f) for f in source}
    if derived:
        fields[FILED_HOUR] = _delta_field(pa.field(FILED_HOUR, pa.timestamp("ms"), nullable=False))
    partition_by: tuple[str, ...] = ()
    if day_of is not None:
        fields[DAY_COLUMN] = pa.field(DAY_COLUMN, pa.string(), nullable=False)
        partition_by = (
            ("resolution", DAY_COLUMN) if registered.codec == "rollups" else (DAY_COLUMN,)
        )
    ordered = [f for name, f in fields.items() if name not in partition_by]
    ordered += [fields[name] for name in partition_by]  # partition columns last, in order
    return TableLayout(
        dataset,
        source,
        pa.schema(ordered),
        partition_by,
        day_of,
        registered.sort_keys,
        view_time,
        derived,
    )


def layouts(datasets: list[str] | None = None) -> list[TableLayout]:
    """Layouts of ``datasets`` (default: every registered dataset), in registry order."""
    return [layout(name) for name in ALL if datasets is None or name in datasets]


def named_datasets(named: list[str] | None) -> list[str]:
    """The datasets a ``--dataset`` option names (default: every one), refused in one line if
    one is unknown."""
    known = [t.dataset for t in layouts()]
    unknown = [n for n in named or [] if n not in known]
    if unknown:
        raise ConfigError(f"no dataset named {', '.join(unknown)}; choose from {', '.join(known)}")
    return named or known


def _delta_field(field: pa.Field) -> pa.Field:
    """The Delta type of one column: unsigned becomes signed (same bits), timestamps UTC µs."""
    kind = field.type
    if pa.types.is_unsigned_integer(kind):
        kind = pa.int64()
    elif pa.types.is_timestamp(kind):
        kind = pa.timestamp("us", tz="UTC")
    return pa.field(field.name, kind, nullable=field.nullable)


def to_delta(batch: pa.RecordBatch, table: TableLayout) -> pa.RecordBatch:
    """A batch of the view's rows (plus ``dt``) in the table's types: a bit-preserving cast
    (``uint64`` to ``int64`` wraps; naive UTC timestamps gain their zone), no Python per row."""
    ordered = batch.select(table.schema.names)
    return ordered.cast(table.schema, safe=False)


def content_checksum(data: pa.RecordBatch | pa.Table, table: TableLayout) -> Checksum:
    """The lake's order-independent, bit-exact checksum (:mod:`obs_pipelines.lake.checksum`) of
    the dataset's columns (``dt`` excluded), whichever side they were read from: timestamps are
    compared as UTC microseconds and integers by their 64 bits, so the catalog view's
    ``uint64``/milliseconds and the table's ``int64``/microseconds hash alike."""
    columns = [
        column.cast(pa.timestamp("us")) if pa.types.is_timestamp(column.type) else column
        for column in (data.column(name) for name in table.columns)
    ]
    return table_checksum(pa.Table.from_arrays(columns, names=table.columns))


def table_uri(config: ObsConfig, dataset: str) -> str:
    """Where the dataset's Delta table lives: ``<lake.root>/delta/<dataset>``."""
    return f"{config.lake_root.rstrip('/')}/{DELTA_FOLDER}/{dataset}"


def delta_root(config: ObsConfig) -> str:
    return f"{config.lake_root.rstrip('/')}/{DELTA_FOLDER}"


def storage_options(config: ObsConfig) -> dict[str, str] | None:
    """delta-rs options for an S3 lake (None for a local folder): the endpoint, the region, the
    credentials named by ``lake.s3`` (read from the environment, never written anywhere), and
    conditional PUTs so concurrent commits are safe without a lock."""
    if not config.lake_root.startswith("s3://"):
        return None
    s3 = config.lake.s3
    options = {
        "AWS_REGION": s3.region,
        "aws_conditional_put": "etag",
        # bounded like the rest of the lake's S3 calls (storage.S3Storage): fail, never hang
        "connect_timeout": "10s",
        "timeout": "60s",
        "max_retries": "4",
        "retry_timeout": "120s",
    }
    if s3.endpoint_url:
        options["AWS_ENDPOINT_URL"] = s3.endpoint_url
        if s3.endpoint_url.startswith("http://"):
            options["AWS_ALLOW_HTTP"] = "true"
    for key, variable in (
        ("AWS_ACCESS_KEY_ID", s3.access_key_id_env),
        ("AWS_SECRET_ACCESS_KEY", s3.secret_access_key_env),
        ("AWS_SESSION_TOKEN", s3.session_token_env),
    ):
        if variable:
            options[key] = secret(variable)
    return options


def column_encodings(schema: pa.Schema) -> dict[str, str]:
    """The encodings of a day's file: DELTA_BINARY_PACKED integers and timestamps,
    BYTE_STREAM_SPLIT doubles (the rest: the writer's default)."""
    encodings = {}
    for field in schema:
        if pa.types.is_integer(field.type) or pa.types.is_timestamp(field.type):
            encodings[field.name] = "DELTA_BINARY_PACKED"
        elif pa.types.is_floating(field.type):
            encodings[field.name] = "BYTE_STREAM_SPLIT"
    return encodings


def writer_properties(config: ObsConfig, table: TableLayout) -> Any:
    """zstd at the warm tier's level; :func:`column_encodings` without dictionaries; one page
    per column per row group: a day's file, kept long."""
    from deltalake import ColumnProperties, WriterProperties

    data = pa.schema([f for f in table.schema if f.name not in table.partition_by])
    columns = {
        name: ColumnProperties(dictionary_enabled=False, encoding=encoding)
        for name, encoding in column_encodings(data).items()
    }
    return WriterProperties(
        compression="ZSTD",
        compression_level=config.lake.warm.zstd_level or DEFAULT_ZSTD_LEVELS["warm"],
        max_row_group_size=ROWS_PER_GROUP,
        data_page_row_count_limit=ROWS_PER_GROUP,
        data_page_size_limit=PAGE_BYTES,
        column_properties=columns,
    )


def hourly_writer_properties(config: ObsConfig, table: TableLayout) -> Any:
    """An hour's file lives until its day is compacted: written fast (zstd at the hot level, default encodings; ``metric_samples`` dictionary-encodes
    ``series_id`` only: bench/RESULTS.md measured it twice as fast to write as dictionaries on
    every column)."""
    from deltalake import ColumnProperties, WriterProperties

    columns = {}
    if dataset_of(table.dataset).codec == "samples":
        columns = {
            name: ColumnProperties(dictionary_enabled=name == "series_id")
            for name in table.schema.names
            if name not in table.partition_by
        }
    return WriterProperties(
        compression="ZSTD",
        compression_level=config.lake.hot.zstd_level or DEFAULT_ZSTD_LEVELS["hot"],
        column_properties=columns or None,
    )


def file_stats(rows: pa.Table) -> str:
    """The add action's statistics: row count, null counts of flat columns, and min/max of
    integer and timestamp columns (the ones queries prune on; timestamps to the millisecond,
    the minimum rounded down and the maximum up, as bounds must be)."""
    low: dict[str, Any] = {}
    high: dict[str, Any] = {}
    nulls: dict[str, int] = {}
    for f in rows.schema:
        if pa.types.is_nested(f.type):
            continue
        column = rows.column(f.name)
        nulls[f.name] = column.null_count
        if column.null_count == len(column) or not (
            pa.types.is_integer(f.type) or pa.types.is_timestamp(f.type)
        ):
            continue
        bounds = pc.min_max(column.cast(pa.int64()) if pa.types.is_timestamp(f.type) else column)
        lo, hi = bounds["min"].as_py(), bounds["max"].as_py()
        if pa.types.is_timestamp(f.type):
            low[f.name], high[f.name] = _ms_text(lo // 1000), _ms_text(-(-hi // 1000))
        else:
            low[f.name], high[f.name] = lo, hi
    return json.dumps(
        {"numRecords": rows.num_rows, "minValues": low, "maxValues": high, "nullCount": nulls}
    )


def _ms_text(ms: int) -> str:
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def add_actions(table: Any) -> pa.Table:
    """The table's current data files as its log lists them (path, size, rows, partition values,
    per-column min/max and null counts), flattened into one Arrow table; no data file is read."""
    return pa.table(table.get_add_actions(flatten=True))


def table_filesystem(config: ObsConfig, dataset: str) -> Any:
    """The table's folder as a pyarrow filesystem, through delta-rs's own object store (the
    same storage options, hence credentials and endpoint, as the commits)."""
    from deltalake.fs import DeltaStorageHandler
    from pyarrow.fs import PyFileSystem

    return PyFileSystem(DeltaStorageHandler(table_uri(config, dataset), storage_options(config)))


def day_predicate(day: str) -> str:
    """The predicate selecting one day's partition (``day`` is 'YYYY-MM-DD')."""
    if len(day) != 10 or day[4] != "-" or day[7] != "-" or not day.replace("-", "").isdigit():
        raise ValueError(f"'{day}' is not a day (YYYY-MM-DD)")
    return f"{DAY_COLUMN} = '{day}'"


def write_day(
    config: ObsConfig,
    table: TableLayout,
    day: str | None,
    batches: pa.RecordBatchReader,
    *,
    operation: str = "write",
) -> None:
    """One commit that replaces exactly ``day`` of the table with ``batches`` (already in the
    table's schema and sorted); ``day=None`` replaces the whole (unpartitioned) table. The
    first write creates the table, with the dataset's name and description."""
    from deltalake import CommitProperties, write_deltalake

    with delta_errors(f"write {table.dataset} {day or ''}".strip(), config):
        write_deltalake(
            table_uri(config, table.dataset),
            batches,
            mode="overwrite",
            predicate=day_predicate(day) if day else None,
            partition_by=list(table.partition_by) or None,
            name=table.dataset,
            description=dataset_of(table.dataset).description,
            configuration=TABLE_CONFIGURATION,
            storage_options=storage_options(config),
            writer_properties=writer_properties(config, table),
            commit_properties=CommitProperties(
                custom_metadata={"obs.operation": operation, "obs.day": day or "all"}
            ),
        )


def vacuum(config: ObsConfig, dataset: str, *, operation: str = "vacuum") -> int:
    """Delete the files that commits removed from the table (days replaced or deleted) more
    than ``lake.delete_delay`` ago, so they stop costing storage while a reader that opened an
    older version just before keeps working; returns how many files went.

    Only files a commit removed are candidates ("lite" vacuum): a file a concurrent writer has
    uploaded but not yet committed is in no log and is never touched."""
    return len(vacuum_files(config, dataset, config.lake.delete_delay, operation=operation))


def vacuum_files(
    config: ObsConfig,
    dataset: str,
    older_than: timedelta,
    *,
    operation: str,
    full: bool = False,
    dry_run: bool = False,
) -> list[str]:
    """delta-rs's vacuum of the files older than ``older_than`` that the table no longer
    references: those commits removed, and with ``full`` any file in the table's folder no log
    names; returns their paths (``dry_run``: deletes nothing).

    delta-rs counts the age in whole hours, so it is rounded up (files are kept a little
    longer, never less)."""
    from deltalake import CommitProperties, DeltaTable

    hours = math.ceil(older_than / timedelta(hours=1))
    with delta_errors(f"vacuum {dataset}", config):
        return DeltaTable(
            table_uri(config, dataset), storage_options=storage_options(config)
        ).vacuum(
            retention_hours=hours,
            dry_run=dry_run,
            enforce_retention_duration=False,  # the table's default is a week
            full=full,
            commit_properties=CommitProperties(custom_metadata={"obs.operation": operation}),
        )


def table_exists(config: ObsConfig, dataset: str) -> bool:
    from deltalake import DeltaTable

    with delta_errors(f"open {dataset}", config):
        return DeltaTable.is_deltatable(
            table_uri(config, dataset), storage_options=storage_options(config)
        )


def last_commit(config: ObsConfig, dataset: str) -> datetime | None:
    """When the dataset's table was last committed to (None: there is no table)."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    with delta_errors(f"read the history of {dataset}", config):
        try:
            table = DeltaTable(table_uri(config, dataset), storage_options=storage_options(config))
        except TableNotFoundError:
            return None
        (newest,) = table.history(1)
    return datetime.fromtimestamp(newest["timestamp"] / 1000, UTC)


def scan(config: ObsConfig, dataset: str) -> str:
    """The DuckDB table function reading the dataset's table (needs :func:`attach_delta`)."""
    return "delta_scan(" + sql_literal(table_uri(config, dataset)) + ")"


def attach_delta(con: duckdb.DuckDBPyConnection, config: ObsConfig) -> None:
    """Make the Delta tables readable in ``con``: the ``delta`` extension from its wheel (no
    network), and on S3 httpfs and a temporary secret built from ``lake.s3``."""
    load_packaged_extension(con, "duckdb_extension_delta", "delta")
    if config.lake_root.startswith("s3://"):
        from obs_pipelines.lake.storage import S3Storage

        load_packaged_extension(con, "duckdb_extension_httpfs", "httpfs")
        S3Storage(config.lake_root, config.lake).create_duckdb_secret(con)


def delta_connection(config: ObsConfig) -> duckdb.DuckDBPyConnection:
    """A DuckDB session ready to ``delta_scan`` the lake's tables: a cursor on one in-memory
    database per process and storage settings. DuckDB verifies the delta extension's signature
    (its 82 MB, ~0.35 s) in every new database, so each session of a process after the first
    starts at once. Closing the session leaves the database; what a session creates is its own
    as long as it is temporary."""
    key = (os.getpid(), _storage_key(config))
    with _SHARED_LOCK:
        shared = _SHARED.get(key)
        if shared is None:
            shared = duckdb.connect()
            attach_delta(shared, config)
            if len(_SHARED) >= _SHARED_MAX:
                del _SHARED[next(iter(_SHARED))]  # not closed: that would close its sessions
            _SHARED[key] = shared
        return shared.cursor()


# Databases that delta_connection hands out sessions of, by process (a forked child opens its
# own) and storage; beyond a few (a process that reads several lakes) the oldest is dropped,
# and goes when its last session closes.
_SHARED: dict[tuple[int, str], duckdb.DuckDBPyConnection] = {}
_SHARED_LOCK = threading.Lock()
_SHARED_MAX = 4


def _storage_key(config: ObsConfig) -> str:
    """What a database's attachment depends on: the S3 secret (credentials as the environment
    gives them now), or nothing for a local lake."""
    if not config.lake_root.startswith("s3://"):
        return "local"
    from obs_pipelines.lake.storage import S3Storage

    return S3Storage(config.lake_root, config.lake).duckdb_secret_sql()


# The advice of a storage failure (:func:`delta_errors`); ``obs doctor`` gives its own.
STORAGE_ADVICE = (
    "check lake.root, lake.s3 and the network, then rerun (`obs doctor` names data files the "
    "tables' logs reference that are missing or damaged)"
)
STALE_CHECKPOINT_ADVICE = (
    "the table's _delta_log/_last_checkpoint names a checkpoint that is gone; `obs doctor` says "
    "whether deleting that stale hint is enough (it is when every JSON commit is still there)"
)


@contextmanager
def delta_errors(action: str, config: ObsConfig) -> Iterator[None]:
    """Turn delta-rs and DuckDB failures into one line naming the action and the fix (neither
    library puts storage options, hence credentials, in its messages)."""
    from deltalake.exceptions import DeltaError

    try:
        yield
    except (DeltaError, duckdb.Error, OSError) as exc:
        cause = _one_line(exc)
        advice = STALE_CHECKPOINT_ADVICE if "_last_checkpoint hint" in cause else STORAGE_ADVICE
        raise LakeError(
            f"could not {action} under {delta_root(config)}: {cause}; {advice}"
        ) from None


def without_advice(exc: BaseException) -> str:
    """A lake error's message, on one line, without the storage advice :func:`delta_errors`
    appends: for callers that name a fix of their own."""
    return " ".join(str(exc).split()).split(f"; {STORAGE_ADVICE}")[0]


def _one_line(exc: BaseException) -> str:
    """delta-rs nests causes over several lines with colour codes, and with ``RUST_BACKTRACE``
    set appends a stack trace: one plain line of the causes instead."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).replace("↳", " ")
    causes = [line for line in text.splitlines() if not _BACKTRACE_LINE.match(line)]
    return (" ".join(" ".join(causes).split()) or type(exc).__name__)[:400]


_BACKTRACE_LINE = re.compile(r"\s*(\d+: |at \S+:\d+(:\d+)?$|stack backtrace:)", re.IGNORECASE)
