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
the day; nothing is reported migrated that did not verify.

Once migrated, the tables are the lake: ingest writes new hours into them, tiering compacts and
expires their days, while the old files stay until the operator deletes them. So a rerun
decides each day from the table's own log (the add and remove actions of every commit, and the
``obs.operation`` its commit records), never from the old layout alone:

* migrate only ever writes days the old layout holds. A day the table holds and the old layout
  does not (written by ingest since, or dropped by the old layout's retention, or in a tier
  the run was not pointed at) is never touched: migrate deletes nothing, and tiering's
  retention expires old days as it does every day's.
* a day the table already holds exactly as the old layout has it (same rows, same checksum) is
  not rewritten: a rerun after a successful migration is a verified no-op, and a rerun after an
  interrupted one writes only the days still missing.
* a day is written when the table lacks it, or when the newest commit that changed it is a
  migrate commit (the old layout changed since: an older version still writing it).
* a day whose newest commit is anyone else's (ingest, compaction, rollups, expiry, a commit
  recording no ``obs.operation``), or whose writer the log no longer records, is kept as the
  table has it and reported ("written since the migration by ingest; kept"): the table holds
  newer data than the old layout, or retention removed it on purpose.

A dry run makes the same plan from the same reads and prints it per dataset. Just before each
day is written the log is read again for commits made since the plan, so a day another writer
changed meanwhile is kept too (the window left is one commit's; stop ingest while migrating).

Each dataset is vacuumed once converted (:func:`obs_pipelines.lake.delta.vacuum`): the files that
a rerun's commits replaced stop costing storage once they have been unreferenced for
``lake.delete_delay``, while a reader that opened an older version just before keeps working.
Last, the catalog's ``lake_partitions`` is read again from the logs
(:func:`obs_pipelines.lake.catalog.refresh_partitions`), so it lists the files now current.

The old layout is only read, and nothing writes it any more; delete its ``hot/``, ``warm/``,
``cold/`` and ``_inventory/`` folders once the tables are verified.
"""

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import date
from itertools import groupby

import duckdb
import pyarrow as pa

from obs_pipelines.config import ObsConfig
from obs_pipelines.datasets import ALL
from obs_pipelines.errors import LakeError
from obs_pipelines.lake import delta
from obs_pipelines.lake.checksum import EMPTY, Checksum
from obs_pipelines.lake.delta import TableLayout
from obs_pipelines.lake.legacy import legacy_connection
from obs_pipelines.sql_literal import sql_literal

BATCH_ROWS = 1 << 17
MIGRATE = "obs lake migrate"  # the obs.operation of migrate's commits
_SIGN_BIT = "9223372036854775808::UBIGINT"
_WHOLE = "(whole table)"  # the day of an unpartitioned table in results and messages


class MigrationMismatch(LakeError):
    """A day read back from its Delta table differs from the lake's view of it."""


@dataclass(frozen=True)
class Writer:
    """The newest commit that added or removed a file of a day: its table version and what
    wrote it (``obs.operation``, or the Delta operation of a commit that recorded none)."""

    version: int
    operation: str


@dataclass(frozen=True)
class DatasetMigration:
    """What migrate did (or, in a dry run, would do) for one dataset. ``days`` and ``rows`` are
    the old layout's days the table holds as verified after the run: ``written`` plus
    ``unchanged``; ``kept`` days are left as the table has them, with why."""

    dataset: str
    days: int | None  # None: an unpartitioned table
    rows: int
    source_bytes: int  # the dataset's current files in the old layout
    verified: bool
    seconds: float
    checksum: Checksum = EMPTY
    files_vacuumed: int = 0  # files replaced by this or earlier runs, deleted after delete_delay
    written: tuple[str, ...] = ()  # days written (a dry run: that would be)
    unchanged: tuple[str, ...] = ()  # days the table held as the old layout does: not rewritten
    kept: tuple[tuple[str, str], ...] = ()  # (day, why) the old layout's days left as they are
    untouched: tuple[str, ...] = ()  # days the table holds and the old layout does not


@dataclass
class _Plan:
    """One dataset's days sorted into what a run does with them."""

    write: list[str | None] = field(default_factory=list)
    unchanged: dict[str | None, Checksum] = field(default_factory=dict)
    kept: dict[str | None, str] = field(default_factory=dict)
    untouched: list[str] = field(default_factory=list)
    version: int = -1  # the table's version the plan read (-1: no table)


def migrate(
    config: ObsConfig,
    datasets: list[str] | None = None,
    *,
    dry_run: bool = False,
    progress: Callable[[DatasetMigration], None] | None = None,
    tier_roots: dict[str, str] | None = None,
) -> list[DatasetMigration]:
    """Convert ``datasets`` (default: all) to Delta tables under ``<lake.root>/delta``, day by
    day as the module docstring says; with ``dry_run``, only read and plan: write nothing.
    ``progress`` is called with each dataset's result as soon as it is done. A run (not a dry
    one) refreshes the catalog's ``lake_partitions`` last."""
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
        reader = delta.delta_connection(config)
        results = []
        try:
            for table in delta.layouts(datasets):
                started = time.monotonic()
                with delta.delta_errors(f"migrate {table.dataset}", config):
                    days = _source_days(source, table)
                    plan = _plan(config, source, reader, table, days)
                    if dry_run:
                        result = _result(source, table, days, plan, started)
                    else:
                        result = _migrate_dataset(config, source, reader, table, days, plan)
                        result = _result(source, table, days, plan, started, result)
                        vacuumed = delta.vacuum(config, table.dataset, operation=MIGRATE)
                        result = replace(
                            result,
                            files_vacuumed=vacuumed,
                            seconds=time.monotonic() - started,
                        )
                results.append(result)
                if progress is not None:
                    progress(result)
        finally:
            reader.close()
    finally:
        source.close()
    if not dry_run:
        _refresh_partitions(config)
    return results


def _refresh_partitions(config: ObsConfig) -> None:
    """``lake_partitions`` read again from the logs, as ingest and tiering runs do after
    writing: it lists data files, and migrate's commits replace some. Skipped while a dataset
    of the old layout has no table yet (a run with ``--dataset``): no catalog of the Delta
    tables can be built before every dataset is migrated."""
    from obs_pipelines.lake.catalog import refresh_partitions

    if not all(delta.table_exists(config, name) for name in ALL):
        return
    try:
        refresh_partitions(config)
    except LakeError as exc:
        raise LakeError(
            f"every day is migrated and verified, but lake_partitions could not be refreshed: "
            f"{exc}; run `obs catalog`"
        ) from None


def _plan(
    config: ObsConfig,
    source: duckdb.DuckDBPyConnection,
    reader: duckdb.DuckDBPyConnection,
    table: TableLayout,
    days: dict[str | None, int],
) -> _Plan:
    """Which of the old layout's days to write, which the table already holds unchanged, and
    which to keep as the table has them (the rules are the module docstring's)."""
    plan = _Plan()
    plan.version = _table_version(config, table.dataset)
    if plan.version < 0:
        plan.write = list(days)
        return plan
    writers = _day_writers(config, reader, table, range(plan.version + 1))
    held = _delta_days(config, reader, table)
    for day in days:
        writer = writers.get(day)
        migrated = writer is not None and writer.operation == MIGRATE
        if day not in held and (writer is None or migrated):
            plan.write.append(day)
            continue
        lake = _source_checksum(config, source, table, day)
        if lake == _delta_checksum(config, reader, table, day):
            plan.unchanged[day] = lake
        elif migrated:
            plan.write.append(day)
        else:
            plan.kept[day] = _why_kept(writer)
    if table.day_of is not None:
        plan.untouched = sorted(d for d in held if d is not None and d not in days)
    return plan


def _why_kept(writer: Writer | None) -> str:
    if writer is None:
        return "its last writer is no longer in the table's log (log retention); kept"
    return (
        f"written since the migration by {writer.operation} (table version {writer.version}); kept"
    )


def _migrate_dataset(
    config: ObsConfig,
    source: duckdb.DuckDBPyConnection,
    reader: duckdb.DuckDBPyConnection,
    table: TableLayout,
    days: dict[str | None, int],
    plan: _Plan,
) -> Checksum:
    """Write and verify the plan's days; a day another writer changed since the plan moves to
    ``plan.kept``. Returns the checksum of the written days."""
    total = EMPTY
    if plan.version < 0 and not days:  # still a table, so every engine finds every dataset
        delta.write_day(
            config,
            table,
            None,
            pa.RecordBatchReader.from_batches(table.schema, []),
            operation=MIGRATE,
        )
    seen = plan.version
    for day in list(plan.write):
        now = _table_version(config, table.dataset)
        since = _day_writers(config, reader, table, range(seen + 1, now + 1))
        seen = now  # the commits since the plan (ours included) are read once each
        writer = since.get(day)
        if writer is not None and writer.operation != MIGRATE:  # another writer's, meanwhile
            plan.write.remove(day)
            plan.kept[day] = _why_kept(writer)
            continue
        written = _write_day(config, source, table, day)
        read_back = _delta_checksum(config, reader, table, day)
        if read_back != written:
            raise MigrationMismatch(
                f"{table.dataset} {day or _WHOLE}: the Delta table holds "
                f"{read_back.rows} rows (checksum {read_back.digest:016x}) where the lake's view "
                f"has {written.rows} (checksum {written.digest:016x}); nothing of this day is "
                "verified: rerun `obs lake migrate --dataset "
                f"{table.dataset}`, and report it if it persists"
            )
        total += written
    return total


def _result(
    source: duckdb.DuckDBPyConnection,
    table: TableLayout,
    days: dict[str | None, int],
    plan: _Plan,
    started: float,
    written: Checksum | None = None,
) -> DatasetMigration:
    """The dataset's line: ``written`` is the checksum of the days a run wrote (None: a dry
    run, which verified nothing)."""
    held = [*plan.write, *plan.unchanged]
    checksum = EMPTY
    if written is not None:
        checksum = written
        for unchanged in plan.unchanged.values():
            checksum += unchanged
    return DatasetMigration(
        table.dataset,
        None if table.day_of is None else len(held),
        sum(days[d] for d in held),
        _source_bytes(source, table.dataset),
        written is not None,
        time.monotonic() - started,
        checksum,
        written=tuple(d or _WHOLE for d in plan.write),
        unchanged=tuple(d or _WHOLE for d in plan.unchanged),
        kept=tuple((d or _WHOLE, why) for d, why in sorted(plan.kept.items(), key=_by_day)),
        untouched=tuple(plan.untouched),
    )


def _by_day(item: tuple[str | None, str]) -> str:
    return item[0] or ""


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
        operation=MIGRATE,
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


def _source_checksum(
    config: ObsConfig, source: duckdb.DuckDBPyConnection, table: TableLayout, day: str | None
) -> Checksum:
    """Count and checksum of one day of the view, as :func:`_write_day` would write it."""
    total = EMPTY
    with delta.delta_errors(f"read {table.dataset} {day or ''} from the old layout", config):
        for batch in source.execute(_day_query(table, day)).to_arrow_reader(BATCH_ROWS):
            total += delta.content_checksum(batch, table)
    return total


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
) -> set[str | None]:
    """The days the table holds rows of (``{None}``: an unpartitioned table with rows)."""
    scan = delta.scan(config, table.dataset)
    with delta.delta_errors(f"list the days of {table.dataset}", config):
        if table.day_of is None:
            row = reader.execute(f"SELECT count(*) FROM {scan}").fetchone()
            return {None} if row and row[0] else set()
        found = reader.execute(f"SELECT DISTINCT {delta.DAY_COLUMN} FROM {scan}").fetchall()
    return {day for (day,) in found}


def _table_version(config: ObsConfig, dataset: str) -> int:
    """The table's newest version (-1: there is no table yet)."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    with delta.delta_errors(f"open {dataset}", config):
        try:
            uri = delta.table_uri(config, dataset)
            return DeltaTable(uri, storage_options=delta.storage_options(config)).version()
        except TableNotFoundError:
            return -1


def _day_writers(
    config: ObsConfig, reader: duckdb.DuckDBPyConnection, table: TableLayout, versions: range
) -> dict[str | None, Writer]:
    """Per day (its ``dt``; None for an unpartitioned table), the newest of the commits
    ``versions`` that added or removed one of its files, from the actions in the log's commit
    files (a range from 0 reads every commit the log still keeps; commits its cleanup removed,
    older than ``delta.logRetentionDuration``, are not there to read). Commits that change no
    file (vacuum, properties) change no day."""
    if not versions:
        return {}
    log = f"{delta.table_uri(config, table.dataset)}/_delta_log/"
    if versions.start == 0:
        files = sql_literal(log + "*.json")
    else:
        files = "[" + ", ".join(sql_literal(f"{log}{v:020d}.json") for v in versions) + "]"
    day = f"'$.partitionValues.{delta.DAY_COLUMN}'"
    with delta.delta_errors(f"read the log of {table.dataset}", config):
        found = reader.execute(
            f"""WITH actions AS (
                SELECT regexp_extract(filename, '([0-9]{{20}})\\.json$', 1)::BIGINT AS version,
                       commitInfo AS info,
                       coalesce(json_extract_string("add", {day}),
                                json_extract_string("remove", {day})) AS day,
                       "add" IS NOT NULL OR "remove" IS NOT NULL AS changes
                FROM read_json({files}, columns = {{'commitInfo': 'JSON', 'add': 'JSON',
                                                    'remove': 'JSON'}},
                               format = 'newline_delimited', filename = true)
                WHERE regexp_matches(filename, '/[0-9]{{20}}\\.json$')
            ), commits AS (
                SELECT version, coalesce(json_extract_string(info, '$."obs.operation"'),
                                         json_extract_string(info, '$.operation'),
                                         'an unrecorded writer') AS operation
                FROM actions WHERE info IS NOT NULL
            )
            SELECT a.day, max(a.version) AS version, arg_max(c.operation, a.version)
            FROM actions AS a LEFT JOIN commits AS c USING (version)
            WHERE a.changes AND a.version >= {versions.start} AND a.version < {versions.stop}
            GROUP BY a.day"""
        ).fetchall()
    return {
        day: Writer(version, operation or "an unrecorded writer")
        for day, version, operation in found
    }


def format_results(results: list[DatasetMigration], *, dry_run: bool) -> str:
    """The table ``obs lake migrate`` prints: a header, each dataset's line (and what it did
    with its days), a summary."""
    return "\n".join(
        [format_header(dry_run=dry_run)]
        + [format_row(r, dry_run=dry_run) for r in results]
        + [format_footer(results, dry_run=dry_run)]
    )


def format_header(*, dry_run: bool) -> str:
    last = f"{'source bytes':>14}" if dry_run else f"{'verified':>8} {'seconds':>8}"
    return f"{'dataset':<20} {'days':>5} {'rows':>14} {last}"


def format_row(result: DatasetMigration, *, dry_run: bool) -> str:
    """The dataset's line, then one indented line per kind of day it has: written, already
    there unchanged, kept (per reason), not in the old layout; a dry run says them all in the
    conditional, so nothing a run would do, and nothing it would leave, goes unsaid."""
    line = f"{result.dataset:<20} {_days(result):>5} {result.rows:>14,} "
    if dry_run:
        line += f"{result.source_bytes:>14,}"
    else:
        line += f"{'yes' if result.verified else 'no':>8} {result.seconds:>8.1f}"
        if result.files_vacuumed:
            line += f"  ({result.files_vacuumed} replaced files vacuumed)"
    notes = []
    if result.written:
        notes.append(f"{'would write' if dry_run else 'written'}: {_day_list(result.written)}")
    if result.unchanged:
        verb = "would be left" if dry_run else "left"
        notes.append(
            f"already migrated, same rows and checksum ({verb} as is): "
            f"{_day_list(result.unchanged)}"
        )
    reasons = sorted({why for _, why in result.kept})
    for why in reasons:
        days = tuple(day for day, reason in result.kept if reason == why)
        notes.append(f"{'would keep' if dry_run else 'kept'} {_day_list(days)}: {why}")
    if result.untouched:
        notes.append(
            f"not in the old layout, {'would be left' if dry_run else 'left'} as the table has "
            f"them (migrate deletes nothing): {_day_list(result.untouched)}"
        )
    return "\n".join([line, *(f"    {note}" for note in notes)])


def format_footer(results: list[DatasetMigration], *, dry_run: bool) -> str:
    rows = sum(r.rows for r in results)
    written = sum(len(r.written) for r in results)
    unchanged = sum(len(r.unchanged) for r in results)
    kept = sum(len(r.kept) for r in results)
    if dry_run:
        source = sum(r.source_bytes for r in results)
        return (
            f"dry run: {rows:,} rows from {source:,} bytes; {written} days would be written, "
            f"{unchanged} are already migrated unchanged, {kept} would be kept as the tables "
            "have them; nothing would be deleted, and nothing was written"
        )
    return (
        f"{len(results)} Delta tables, {rows:,} rows, each day verified against the lake's views "
        f"({written} days written, {unchanged} already migrated unchanged, {kept} kept as the "
        "tables have them; nothing deleted)"
    )


def _day_list(days: tuple[str, ...]) -> str:
    """Days as runs of consecutive dates (``2026-03-30..2026-04-02``), so a year is a line."""
    dated = [d for d in days if d != _WHOLE]
    runs: list[str] = [_WHOLE] if len(dated) < len(days) else []
    ordinals = sorted(date.fromisoformat(d).toordinal() for d in dated)
    for _, run in groupby(enumerate(ordinals), key=lambda item: item[1] - item[0]):
        members = [ordinal for _, ordinal in run]
        first, last = date.fromordinal(members[0]), date.fromordinal(members[-1])
        runs.append(str(first) if first == last else f"{first}..{last}")
    return ", ".join(runs) + (f" ({len(days)} days)" if len(days) > 1 else "")


def _days(result: DatasetMigration) -> str:
    return "-" if result.days is None else str(result.days)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
