"""``obs lake migrate``: convert a lake of the old file layout into Delta tables, verified row
for row.

The source is :mod:`obs_pipelines.lake.legacy`'s views over the old layout (they decode warm
files, apply its supersede rules and skip stray files, as its catalog did), read one day of one
dataset at a time and streamed as Arrow record batches into one Delta commit per (dataset, day)
that replaces exactly that day (see :mod:`obs_pipelines.lake.delta` for the layout). Memory stays bounded by a batch and a row
group, never by a dataset.

Verification is part of every day, not an afterthought: the checksum of the rows the view
returned is taken as they stream past, then the day is read back from the Delta table through
DuckDB's ``delta_scan`` (delta-kernel, a reader independent of the delta-rs writer) and its row
count and checksum must be equal. A mismatch stops the run with one line naming the dataset and
the day; nothing is reported migrated that did not verify. Days the table holds but the lake no
longer does (retention ran since an earlier migrate) are deleted, so a rerun converges on the
lake: an interrupted run leaves whole days behind, and the next run rewrites every day.

Each dataset is vacuumed once converted (:func:`obs_pipelines.lake.delta.vacuum`): the files that
a rerun's commits replaced stop costing storage once they have been unreferenced for
``lake.delete_delay``, while a reader that opened an older version just before keeps working.

The old layout is only read, and nothing writes it any more; delete its ``hot/``, ``warm/``,
``cold/`` and ``_inventory/`` folders once the tables are verified.
"""

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import duckdb
import pyarrow as pa

from obs_pipelines.config import ObsConfig
from obs_pipelines.datasets import ALL
from obs_pipelines.errors import LakeError
from obs_pipelines.lake import delta
from obs_pipelines.lake.checksum import EMPTY, Checksum
from obs_pipelines.lake.delta import TableLayout
from obs_pipelines.lake.legacy import legacy_connection

BATCH_ROWS = 1 << 17
_SIGN_BIT = "9223372036854775808::UBIGINT"


class MigrationMismatch(LakeError):
    """A day read back from its Delta table differs from the lake's view of it."""


@dataclass(frozen=True)
class DatasetMigration:
    """What migrate did (or, in a dry run, would do) for one dataset."""

    dataset: str
    days: int | None  # None: an unpartitioned table
    rows: int
    source_bytes: int  # the dataset's current files in the old layout
    verified: bool
    seconds: float
    checksum: Checksum = EMPTY
    stale_days_deleted: int = 0
    files_vacuumed: int = 0  # files replaced by this or earlier runs, deleted after delete_delay


def migrate(
    config: ObsConfig,
    datasets: list[str] | None = None,
    *,
    dry_run: bool = False,
    progress: Callable[[DatasetMigration], None] | None = None,
    tier_roots: dict[str, str] | None = None,
) -> list[DatasetMigration]:
    """Convert ``datasets`` (default: all) to Delta tables under ``<lake.root>/delta``; with
    ``dry_run``, only count what would be converted and write nothing. ``progress`` is called
    with each dataset's result as soon as it is done."""
    unknown = sorted(set(datasets or ()) - set(ALL))
    if unknown:
        raise LakeError(f"no dataset {', '.join(unknown)}; choose from {', '.join(ALL)}")
    source = legacy_connection(config, tier_roots)
    try:
        if not source.execute("SELECT count(*) FROM legacy_files").fetchone()[0]:
            raise LakeError(
                f"{config.lake_root} holds no lake in the file layout (no hot/, warm/ or cold/ "
                "files); nothing to migrate: check lake.root"
            )
        reader = None if dry_run else delta.delta_connection(config)
        results = []
        try:
            for table in delta.layouts(datasets):
                started = time.monotonic()
                with delta.delta_errors(f"migrate {table.dataset}", config):
                    days = _source_days(source, table)
                    if reader is None:
                        result = DatasetMigration(
                            table.dataset,
                            None if table.day_of is None else len(days),
                            sum(days.values()),
                            _source_bytes(source, table.dataset),
                            False,
                            time.monotonic() - started,
                        )
                    else:
                        result = _migrate_dataset(config, source, reader, table, days, started)
                        vacuumed = delta.vacuum(config, table.dataset, operation="obs lake migrate")
                        result = replace(
                            result,
                            files_vacuumed=vacuumed,
                            seconds=time.monotonic() - started,
                        )
                results.append(result)
                if progress is not None:
                    progress(result)
        finally:
            if reader is not None:
                reader.close()
    finally:
        source.close()
    return results


def _migrate_dataset(
    config: ObsConfig,
    source: duckdb.DuckDBPyConnection,
    reader: duckdb.DuckDBPyConnection,
    table: TableLayout,
    days: dict[str | None, int],
    started: float,
) -> DatasetMigration:
    total = EMPTY
    existed = delta.table_exists(config, table.dataset)
    if not days and not existed:  # still a table, so every engine finds every dataset
        delta.write_day(config, table, None, pa.RecordBatchReader.from_batches(table.schema, []))
    for day in days:
        written = _write_day(config, source, table, day)
        read_back = _delta_checksum(config, reader, table, day)
        if read_back != written:
            raise MigrationMismatch(
                f"{table.dataset} {day or '(whole table)'}: the Delta table holds "
                f"{read_back.rows} rows (checksum {read_back.digest:016x}) where the lake's view "
                f"has {written.rows} (checksum {written.digest:016x}); nothing of this day is "
                "verified: rerun `obs lake migrate --dataset "
                f"{table.dataset}`, and report it if it persists"
            )
        total += written
    stale: list[str] = []
    if table.day_of is not None and (existed or days):
        stale = sorted(_delta_days(config, reader, table) - {d for d in days if d})
        delta.delete_days(config, table, stale)
    held = _delta_rows(config, reader, table)
    if held != total.rows:
        raise MigrationMismatch(
            f"{table.dataset}: the Delta table holds {held} rows after migrating where the lake's "
            f"view has {total.rows}; another writer may be using {delta.table_uri(config, table.dataset)}"
            " (stop it and rerun `obs lake migrate`)"
        )
    return DatasetMigration(
        table.dataset,
        None if table.day_of is None else len(days),
        total.rows,
        _source_bytes(source, table.dataset),
        True,
        time.monotonic() - started,
        total,
        len(stale),
    )


def _write_day(
    config: ObsConfig, source: duckdb.DuckDBPyConnection, table: TableLayout, day: str | None
) -> Checksum:
    """Stream one day of the view into one Delta commit; returns the checksum of the view's rows
    as they went past (hashed in the view's own types, before the Delta cast)."""
    tally = [EMPTY]

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in rows:
            tally[0] += delta.content_checksum(batch, table)
            yield delta.to_delta(batch, table)

    with delta.delta_errors(f"read {table.dataset} {day or ''} from the old layout", config):
        rows = source.execute(_day_query(table, day)).to_arrow_reader(BATCH_ROWS)
    delta.write_day(
        config,
        table,
        day,
        pa.RecordBatchReader.from_batches(table.schema, batches()),
        operation="obs lake migrate",
    )
    return tally[0]


def _day_query(table: TableLayout, day: str | None) -> str:
    """The view's rows of one day (every row for an unpartitioned table), with ``dt`` and the
    table's derived columns, in the table's file order: its sort keys, ``series_id`` by the
    signed value the table stores."""
    columns = ", ".join(_ident(c) for c in table.columns)
    columns += "".join(f", {sql} AS {_ident(name)}" for name, sql in table.derived)
    order = ", ".join(
        f"xor({_ident(k)}, {_SIGN_BIT})" if k == "series_id" else _ident(k) for k in table.sort_keys
    )
    if day is None:
        return f"SELECT {columns} FROM {_ident(table.dataset)} ORDER BY {order}"
    delta.day_predicate(day)
    time_column = _ident(table.view_time or "")
    return (
        f"SELECT {columns}, '{day}' AS {delta.DAY_COLUMN} FROM {_ident(table.dataset)} "
        f"WHERE {time_column} >= TIMESTAMP '{day}' "
        f"AND {time_column} < TIMESTAMP '{day}' + INTERVAL 1 DAY ORDER BY {order}"
    )


def _source_days(source: duckdb.DuckDBPyConnection, table: TableLayout) -> dict[str | None, int]:
    """Rows per UTC day of the view (``{None: rows}`` for an unpartitioned table; days without
    rows are absent)."""
    view = _ident(table.dataset)
    if table.day_of is None:
        rows = source.execute(f"SELECT count(*) FROM {view}").fetchone()
        return {None: rows[0]} if rows and rows[0] else {}
    found = source.execute(
        f"SELECT strftime({_ident(table.view_time or '')}, '%Y-%m-%d') AS day, count(*) FROM {view} "
        "GROUP BY ALL ORDER BY day"
    ).fetchall()
    return {day: rows for day, rows in found}


def _source_bytes(source: duckdb.DuckDBPyConnection, dataset: str) -> int:
    row = source.execute(
        "SELECT coalesce(sum(bytes), 0) FROM legacy_files WHERE dataset = ?",
        [dataset],
    ).fetchone()
    return int(row[0]) if row else 0


def _delta_checksum(
    config: ObsConfig, reader: duckdb.DuckDBPyConnection, table: TableLayout, day: str | None
) -> Checksum:
    """Count and checksum of one day as DuckDB's delta_scan reads it back, batch by batch."""
    columns = ", ".join(_ident(c) for c in table.columns)
    where = f" WHERE {delta.day_predicate(day)}" if day else ""
    total = EMPTY
    with delta.delta_errors(f"read back {table.dataset} {day or ''}", config):
        stream = reader.execute(
            f"SELECT {columns} FROM {delta.scan(config, table.dataset)}{where}"
        ).to_arrow_reader(BATCH_ROWS)
        for batch in stream:
            total += delta.content_checksum(batch, table)
    return total


def _delta_days(
    config: ObsConfig, reader: duckdb.DuckDBPyConnection, table: TableLayout
) -> set[str]:
    with delta.delta_errors(f"list the days of {table.dataset}", config):
        found = reader.execute(
            f"SELECT DISTINCT {delta.DAY_COLUMN} FROM {delta.scan(config, table.dataset)}"
        ).fetchall()
    return {day for (day,) in found}


def _delta_rows(config: ObsConfig, reader: duckdb.DuckDBPyConnection, table: TableLayout) -> int:
    with delta.delta_errors(f"count {table.dataset}", config):
        row = reader.execute(f"SELECT count(*) FROM {delta.scan(config, table.dataset)}").fetchone()
    return int(row[0]) if row else 0


def format_results(results: list[DatasetMigration], *, dry_run: bool) -> str:
    """The table ``obs lake migrate`` prints: a header, one line per dataset, a summary."""
    return "\n".join(
        [format_header(dry_run=dry_run)]
        + [format_row(r, dry_run=dry_run) for r in results]
        + [format_footer(results, dry_run=dry_run)]
    )


def format_header(*, dry_run: bool) -> str:
    last = f"{'source bytes':>14}" if dry_run else f"{'verified':>8} {'seconds':>8}"
    return f"{'dataset':<20} {'days':>5} {'rows':>14} {last}"


def format_row(result: DatasetMigration, *, dry_run: bool) -> str:
    line = f"{result.dataset:<20} {_days(result):>5} {result.rows:>14,} "
    if dry_run:
        return line + f"{result.source_bytes:>14,}"
    line += f"{'yes' if result.verified else 'no':>8} {result.seconds:>8.1f}"
    if result.stale_days_deleted:
        line += f"  ({result.stale_days_deleted} days no longer in the lake removed)"
    if result.files_vacuumed:
        line += f"  ({result.files_vacuumed} replaced files vacuumed)"
    return line


def format_footer(results: list[DatasetMigration], *, dry_run: bool) -> str:
    rows = sum(r.rows for r in results)
    if dry_run:
        source = sum(r.source_bytes for r in results)
        return (
            f"dry run: {rows:,} rows from {source:,} bytes would be converted; nothing was written"
        )
    return f"{len(results)} Delta tables, {rows:,} rows, each day verified against the lake's views"


def _days(result: DatasetMigration) -> str:
    return "-" if result.days is None else str(result.days)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
