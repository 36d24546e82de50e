"""The lake's datasets written and read as Delta tables.

Every dataset is one table (:mod:`obs_pipelines.lake.delta` gives its layout). Writing hours is
one commit that replaces exactly those hours' rows (a run's hours are a batch, :class:`HourBatch`;
a single hour is a batch of one), so a rerun never duplicates an hour, a reader sees the hours
before or after the commit and never part of them, and two writers on S3 are serialized by the
log's conditional PUT (a commit that lost the race is retried on the newest version). Each hour's
rows go to one new Parquet file, written with pyarrow as fast as the file layout's hot tier; the
commit adds the files and removes the files that held those hours only (found from the log's
statistics). Only when an hour's old rows share a file with other hours (its day was compacted)
does delta-rs rewrite that file (a predicate overwrite, a commit of its own). The hour is
identified by the rows' own time column, by the first and last hour a series was seen in
(``metric_series``), or by the hour a snapshot was filed under (``_hour``).

Which hours were written is read from the log's commit records, not from the data: an hour with
no rows is written too (it is listed, and adds no file), and freshness must count it as present.
Ingest adds its hours with ``keep_held``: an empty answer then leaves the rows the table holds
for that hour as they are (no commit for it, the hour reported ``kept``), because a source that
answers nothing for an hour it once had has forgotten it (retention, a deleted index), and the
lake is what keeps what the sources forget.
Each write's commit carries ``obs.operation = ingest``, ``obs.source`` and ``obs.hours``, a JSON
list of the hours with their rows (commits of lakes written before batches carry ``obs.hour``
and ``obs.rows`` for their one hour; both are read).
"""

import contextlib
import itertools
import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from obs_pipelines.config import DEFAULT_ZSTD_LEVELS, TIERS, ObsConfig
from obs_pipelines.datasets import dataset as dataset_of
from obs_pipelines.errors import LakeError
from obs_pipelines.lake import delta
from obs_pipelines.lake.delta import DAY_COLUMN, FILED_HOUR, SERIES_SEEN, TableLayout
from obs_pipelines.windows import TimeWindow

if TYPE_CHECKING:
    import pyarrow.dataset as pads

INGEST = "ingest"
T = TypeVar("T")
COMMIT_ATTEMPTS = 4
_HISTORY_PAGE = 64
# A streamed hour's row groups (HourBatch.add_parts): about this many bytes of Arrow rows each.
GROUP_BYTES = 1 << 24


@dataclass(frozen=True)
class WrittenHour:
    """One hour as a commit wrote it."""

    dataset: str
    window: TimeWindow
    rows: int
    bytes: int
    written_at: datetime
    source: str | None = None
    # Left as the table holds it (an empty answer added with ``keep_held``): ``rows`` are the
    # rows it holds, and nothing was written.
    kept: bool = False


class DeltaTables:
    """The lake's Delta tables: hourly writes and the reads the engine needs (the catalog's
    views read the same tables through DuckDB's ``delta_scan``)."""

    def __init__(self, config: ObsConfig) -> None:
        self.config = config
        self._options = delta.storage_options(config)
        self._current: dict[str, Any] = {}

    def uri(self, dataset: str) -> str:
        return delta.table_uri(self.config, dataset)

    def open(self, dataset: str) -> Any | None:
        """The dataset's ``DeltaTable`` at its newest version, or None before its first commit."""
        from deltalake import DeltaTable
        from deltalake.exceptions import TableNotFoundError

        with delta.delta_errors(f"open {dataset}", self.config):
            try:
                return DeltaTable(self.uri(dataset), storage_options=self._options)
            except TableNotFoundError:
                return None

    def latest(self, dataset: str) -> Any | None:
        """The dataset's table at its newest version, for this object's own reads and writes:
        kept between calls and brought up to date from the commits since (2 ms, where opening
        replays the log since its checkpoint: 10 ms). :meth:`open` gives callers a table of
        their own, which stays at the version they read."""
        cached = self._current.get(dataset)
        if cached is None:
            cached = self.open(dataset)
            if cached is not None:
                self._current[dataset] = cached
            return cached
        with delta.delta_errors(f"read the log of {dataset}", self.config):
            cached.update_incremental()
        return cached

    def ensure_tables(self, datasets: list[str] | None = None) -> dict[str, Any]:
        """Create every missing table, empty, so every view and engine finds every dataset;
        returns every table opened at its newest version (logs read four at a time)."""
        wanted = delta.layouts(datasets)
        with ThreadPoolExecutor(max_workers=4) as pool:
            found = dict(
                zip(
                    [t.dataset for t in wanted],
                    pool.map(self.open, [t.dataset for t in wanted]),
                    strict=True,
                )
            )
        for table in wanted:
            if found[table.dataset] is None:
                self._create(table)
                found[table.dataset] = self.open(table.dataset)
        return found

    def _create(self, table: TableLayout) -> None:
        self._refuse_unmigrated(table.dataset)
        try:
            delta.write_day(
                self.config,
                table,
                None,
                pa.RecordBatchReader.from_batches(table.schema, []),
                operation="create",
            )
        except LakeError:
            if self.open(table.dataset) is None:  # not a concurrent creation that won
                raise

    def _refuse_unmigrated(self, dataset: str) -> None:
        """A lake of the file layout of earlier versions is never read as empty: creating a
        table beside that layout's folders of the same dataset is refused until migrated."""
        import pyarrow.fs as pafs

        from obs_pipelines.lake.storage import open_storage

        root = self.config.resolve_path(self.config.lake.root)
        fs, base = open_storage(self.config.lake, root).arrow_filesystem()
        with delta.delta_errors(f"look for the file layout of {dataset}", self.config):
            found = fs.get_file_info([f"{base}/{tier}/{dataset}" for tier in TIERS])
        if any(info.type == pafs.FileType.Directory for info in found):
            raise LakeError(
                f"{root} holds {dataset} in the file layout of earlier versions; run "
                "`obs lake migrate` to convert it into Delta tables, then run this again"
            )

    def batch(self, dataset: str, *, source: str | None = None) -> "HourBatch":
        """Hours of ``dataset`` written one file at a time and committed together
        (:class:`HourBatch`); ``source`` is recorded in the commit."""
        return HourBatch(self, dataset, source)

    def write_hour(
        self, dataset: str, hour: TimeWindow, table: pa.Table, *, sort: bool = True, **metadata: str
    ) -> WrittenHour:
        """Replace ``hour`` of ``dataset`` with ``table`` (the registry's columns) in one commit:
        a batch of one hour. ``source`` in ``metadata`` names the source; the rest is recorded
        with the hour."""
        source = metadata.pop("source", None)
        with self.batch(dataset, source=source) as batch:
            batch.add(hour, table, sort=sort, **metadata)
            (written,) = batch.commit()
        return written

    def _write_file(
        self, layout: TableLayout, hour: TimeWindow, groups: Iterable[pa.Table]
    ) -> tuple[str | None, int, str]:
        """One new data file of the hour's rows, given as ``groups`` of the registry's rows
        (each at most ``ROWS_PER_GROUP``), each converted and written as a row group as it
        comes, so only one group is ever held in the Delta table's types; returns its path in
        the table (None when no group had rows: no file), its size and its statistics. A file
        left unfinished (a failure in the writer or in whatever yields the groups) is deleted."""
        import pyarrow.parquet as pq

        path = (
            f"{DAY_COLUMN}={hour.start:%Y-%m-%d}/part-h{hour.start:%H}-{uuid.uuid4().hex}.parquet"
        )
        fs = delta.table_filesystem(self.config, layout.dataset)
        samples = dataset_of(layout.dataset).codec == "samples"
        where = f"write {layout.dataset} {hour}"
        stats: list[str] = []
        with contextlib.ExitStack() as open_file:
            writer, opened = None, False
            try:
                for group in groups:
                    if not group.num_rows:
                        continue
                    stored = self._to_table(layout, hour, group).drop_columns([DAY_COLUMN])
                    with delta.delta_errors(where, self.config):
                        if writer is None:
                            sink = open_file.enter_context(fs.open_output_stream(path))
                            opened = True
                            writer = pq.ParquetWriter(
                                sink,
                                stored.schema,
                                compression="zstd",
                                compression_level=self.config.lake.hot.zstd_level
                                or DEFAULT_ZSTD_LEVELS["hot"],
                                use_dictionary=["series_id"] if samples else True,
                                write_statistics=True,
                            )
                            open_file.callback(writer.close)
                        writer.write_table(stored, row_group_size=delta.ROWS_PER_GROUP)
                    stats.append(delta.file_stats(stored))
                if writer is None:
                    return None, 0, ""
                with delta.delta_errors(where, self.config):
                    open_file.close()
                    return path, fs.get_file_info(path).size, _merged_stats(stats)
            except BaseException:
                if opened:
                    with contextlib.suppress(Exception):
                        open_file.close()
                    self._delete_file(layout.dataset, path)
                raise

    def _delete_file(self, dataset: str, path: str) -> None:
        """A file written for a commit that failed: in no log, so no reader ever saw it."""
        with contextlib.suppress(OSError, pa.ArrowException):
            delta.table_filesystem(self.config, dataset).delete_file(path)

    def _overwrite(
        self,
        layout: TableLayout,
        hour: TimeWindow,
        rows: pa.Table,
        custom: dict[str, str],
        source: str | None,
    ) -> WrittenHour:
        """The hour replaced by delta-rs's predicate overwrite, which rewrites the files it
        shares with other hours."""
        from deltalake import CommitProperties, write_deltalake

        def overwrite() -> None:
            with delta.delta_errors(f"write {layout.dataset} {hour}", self.config):
                write_deltalake(
                    self.uri(layout.dataset),
                    rows,
                    mode="overwrite",
                    predicate=hour_predicate(layout, hour),
                    partition_by=list(layout.partition_by),
                    storage_options=self._options,
                    writer_properties=delta.hourly_writer_properties(self.config, layout),
                    commit_properties=CommitProperties(custom_metadata=custom),
                )

        _until_committed(overwrite)
        return WrittenHour(
            layout.dataset,
            hour,
            rows.num_rows,
            self._hour_bytes(layout, hour) if rows.num_rows else 0,
            datetime.now(UTC),
            source,
        )

    def _to_table(self, layout: TableLayout, hour: TimeWindow, table: pa.Table) -> pa.Table:
        """The registry's rows of ``hour`` as the Delta table stores them (types of
        :func:`delta.to_delta`, plus ``dt`` and the columns that place a row in its hour)."""
        registered = dataset_of(layout.dataset)
        rows = table.select(registered.schema.names).cast(registered.schema)
        stamp = pa.repeat(
            pa.scalar(hour.start.replace(tzinfo=None), pa.timestamp("ms")), rows.num_rows
        )
        if registered.collapse_series:
            rows = rows.append_column(SERIES_SEEN[0].name, stamp)
            rows = rows.append_column(SERIES_SEEN[1].name, stamp)
        elif layout.day_of == FILED_HOUR:
            rows = rows.append_column(FILED_HOUR, stamp)
        day = hour.start.strftime("%Y-%m-%d")
        rows = rows.append_column(DAY_COLUMN, pa.repeat(pa.scalar(day, pa.string()), rows.num_rows))
        return rows.select(layout.schema.names).cast(layout.schema, safe=False)

    def _hour_bytes(self, layout: TableLayout, hour: TimeWindow) -> int:
        """Bytes of the files holding only ``hour`` (what the commit just added)."""
        found = self.open(layout.dataset)
        if found is None:
            return 0
        actions = delta.add_actions(found)
        column = _hour_column(layout)
        low, high = f"min.{column}", f"max.{column}"
        if low not in actions.column_names:
            return 0
        day = hour.start.strftime("%Y-%m-%d")
        start = pa.scalar(hour.start.replace(tzinfo=UTC), pa.timestamp("us", tz="UTC"))
        end = pa.scalar(hour.end.replace(tzinfo=UTC), pa.timestamp("us", tz="UTC"))
        mine = pc.and_(
            pc.equal(actions[f"partition.{DAY_COLUMN}"], day),
            pc.and_(
                pc.greater_equal(actions[low].cast(start.type), start),
                pc.less(actions[high].cast(start.type), end),
            ),
        )
        return int(pc.sum(actions.filter(mine)["size_bytes"]).as_py() or 0)

    def held_rows(
        self, found: Any, actions: pa.Table, dataset: str, hours: list[TimeWindow]
    ) -> dict[datetime, int]:
        """Rows the table (``found``, whose add ``actions`` are given) holds for each of
        ``hours``, by hour start: from the log's row counts where an hour's files hold that hour
        alone (hot hours), else from one read of the columns that place rows in hours, from the
        files of the hour's day (a day compacted into files of many hours, whose statistics
        cannot tell): still less than the rewrite of that day an overwrite would cost."""
        layout = delta.layout(dataset)
        counts, unknown = {}, []
        for hour in hours:
            held = _hour_actions(actions, layout, hour)
            if held is not None and not held.num_rows:
                counts[hour.start] = 0
            elif held is None or held["num_records"].null_count:
                unknown.append(hour)
            else:
                counts[hour.start] = int(pc.sum(held["num_records"]).as_py() or 0)
        for _, of_day in itertools.groupby(unknown, key=lambda h: h.start.date()):
            counts.update(self._count_in_day(found, layout, list(of_day)))
        return counts

    def _count_in_day(
        self, found: Any, layout: TableLayout, hours: list[TimeWindow]
    ) -> dict[datetime, int]:
        """Rows of each of ``hours`` (of one day) in the day's files, by :func:`_window_filter`
        (the rule every read places rows by), reading only the columns that bound a row's hours."""
        start = hours[0].start.replace(hour=0)
        day = TimeWindow(start, start + timedelta(days=1))
        first, last = bound_columns(layout)
        files = self._window_files(found, layout.dataset, day)
        with delta.delta_errors(f"count the rows of {layout.dataset} {day}", self.config):
            bounds = files.to_table(columns=list(dict.fromkeys([first, last])))
        return {h.start: bounds.filter(_window_filter(layout, h)).num_rows for h in hours}

    def read_window(self, dataset: str, window: TimeWindow | None) -> pa.Table:
        """The rows of ``dataset`` placed in ``window`` (hour-aligned; None: every row), in the
        registry's types; ``metric_series`` returns each series seen in any of its hours."""
        layout = delta.layout(dataset)
        found = self.latest(dataset)
        if found is None:
            return dataset_of(dataset).schema.empty_table()
        if window is None:
            with delta.delta_errors(f"read {dataset}", self.config):
                stored = found.to_pyarrow_dataset().to_table(columns=layout.source.names)
            return from_delta(dataset, stored)
        files = self._window_files(found, dataset, window)
        with delta.delta_errors(f"read {dataset} {window}", self.config):
            stored = files.to_table(
                filter=_window_filter(layout, window), columns=layout.source.names
            )
        return from_delta(dataset, stored)

    def read_hours(self, dataset: str, window: TimeWindow) -> Iterator[tuple[TimeWindow, pa.Table]]:
        """Every hour of ``window`` with its rows (empty for an hour without any), one hour in
        memory at a time: one listing of the window's files serves every hour, and each hour
        reads only the files whose statistics overlap it (a run's checks read back what it
        published this way, instead of listing the table once per hour)."""
        layout = delta.layout(dataset)
        found = self.latest(dataset)
        if found is None:
            for hour in window.hours():
                yield hour, dataset_of(dataset).schema.empty_table()
            return
        files = self._window_files(found, dataset, window)
        for hour in window.hours():
            with delta.delta_errors(f"read {dataset} {hour}", self.config):
                stored = files.to_table(
                    filter=_window_filter(layout, hour), columns=layout.source.names
                )
            yield hour, from_delta(dataset, stored)

    def _window_files(self, found: Any, dataset: str, window: TimeWindow) -> "pads.Dataset":
        """The window's day partitions as a pyarrow dataset of plain Parquet files: delta-rs's
        own dataset builds an expression per file from its statistics (2 ms a file; 0.5 s at
        264 files), where the files' own row-group statistics prune just as well."""
        import pyarrow.dataset as pads  # imports pandas: only where files are read

        layout = delta.layout(dataset)
        prefix = self.uri(dataset).rstrip("/") + "/"
        with delta.delta_errors(f"read {dataset} {window}", self.config):
            uris = found.file_uris(file_pruning_predicate=[(DAY_COLUMN, "in", _days(window))])
            partitions = pa.schema([layout.schema.field(c) for c in layout.partition_by])
            return pads.dataset(
                [u.removeprefix(prefix) for u in uris],
                schema=layout.schema,
                format="parquet",
                filesystem=delta.table_filesystem(self.config, dataset),
                partitioning=pads.partitioning(partitions, flavor="hive"),
            )

    def read_hour(self, dataset: str, hour: TimeWindow) -> pa.Table | None:
        """The rows of one hour, or None when no commit ever wrote that hour."""
        rows = self.read_window(dataset, hour)
        if rows.num_rows:
            return rows
        return (
            rows if any(h.window == hour for h in self.written_hours(dataset, hour.start)) else None
        )

    def written_hours(
        self, dataset: str, since: datetime, until: datetime | None = None
    ) -> list[WrittenHour]:
        """Every hour in [``since``, ``until``) that an ingest commit wrote, newest commit per
        hour, from the log's commit records only, newest first. The reading stops at the first
        commit older than ``since`` (a commit for an hour is made after the hour began) or, with
        ``until``, once every hour of the range is found (a run's own hours are its newest
        commits, even in a backfill of old hours)."""
        found = self.open(dataset)
        if found is None:
            return []
        horizon = since.timestamp() * 1000
        wanted = None if until is None else int((until - since) / timedelta(hours=1))
        newest: dict[datetime, WrittenHour] = {}
        limit = _HISTORY_PAGE
        while True:
            with delta.delta_errors(f"read the history of {dataset}", self.config):
                commits = found.history(limit)
            for commit in commits:
                if commit.get("obs.operation") != INGEST:
                    continue
                for start, rows in commit_hours(commit):
                    if start < since or (until is not None and start >= until) or start in newest:
                        continue
                    newest[start] = WrittenHour(
                        dataset,
                        TimeWindow(start, start + timedelta(hours=1)),
                        rows,
                        0,
                        datetime.fromtimestamp(commit["timestamp"] / 1000, UTC),
                        commit.get("obs.source"),
                    )
            oldest = min((c["timestamp"] for c in commits), default=0)
            if len(commits) < limit or oldest < horizon or len(newest) == wanted:
                break
            limit *= 4
        return sorted(newest.values(), key=lambda h: h.window.start)

    def time_range(self, dataset: str) -> tuple[datetime, datetime] | None:
        """The first and last time of the rows that place ``dataset``'s rows in hours, from the
        log's file statistics (no data file is read); None for an empty table."""
        found = self.open(dataset)
        if found is None:
            return None
        column = _hour_column(delta.layout(dataset))
        actions = delta.add_actions(found)
        if f"min.{column}" not in actions.column_names or not actions.num_rows:
            return None
        first = pc.min(actions[f"min.{column}"]).as_py()
        last = pc.max(actions[f"max.{column}"]).as_py()
        if first is None or last is None:
            return None
        return first.astimezone(UTC), last.astimezone(UTC)

    def newest_hour_end(self, dataset: str) -> datetime | None:
        """The end of the newest hour holding rows (from the log's file statistics)."""
        span = self.time_range(dataset)
        if span is None:
            return None
        return span[1].replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)

    def newest_snapshot(self, dataset: str, taken_at: str) -> pa.Table | None:
        """The rows of ``dataset``'s newest snapshot: of its newest filed hour, those taken last
        (None before the first snapshot)."""
        found = self.open(dataset)
        if found is None:
            return None
        actions = delta.add_actions(found)
        if not actions.num_rows:
            return None
        newest = pc.max(actions[f"max.{FILED_HOUR}"]).as_py()
        if newest is None:
            return None
        hour = newest.replace(minute=0, second=0, microsecond=0)
        rows = self.read_window(dataset, TimeWindow(hour, hour + timedelta(hours=1)))
        if not rows.num_rows:
            return rows
        return rows.filter(pc.equal(rows[taken_at], pc.max(rows[taken_at])))


@dataclass
class _StagedHour:
    hour: TimeWindow
    rows: int
    notes: dict[str, str]
    keep_held: bool = False  # with no rows: leave the rows the table holds for the hour
    path: str | None = None  # its data file, written but in no commit yet; None: no rows
    size: int = 0
    stats: str = ""
    table: pa.Table | None = None  # kept instead of a file for tables not partitioned by day
    writing: Future[tuple[str, int, str]] | None = None  # the file being written: path, size, stats


# A commit's staged hours: committed with their files, left to a rewrite (their day shares files
# with other hours), and kept as the table holds them (with its rows).
_Outcome = tuple[list[_StagedHour], list[_StagedHour], list[tuple[_StagedHour, int]]]


class HourBatch:
    """Hours of one dataset published together. Each hour's rows go to a data file as soon as
    they are added (memory holds one hour), and :meth:`commit` publishes every hour in one
    commit that adds those files and removes the files that held the same hours before, so a
    run of a day costs one commit per dataset, not 24, and a reader sees all of the run's hours
    or none. A batch left without a commit (an error mid-run) deletes its files: no log names
    them, so no reader ever saw them, and a rerun starts clean."""

    def __init__(self, tables: DeltaTables, dataset: str, source: str | None) -> None:
        self.tables, self.dataset, self.source = tables, dataset, source
        self.layout = delta.layout(dataset)
        self._staged: dict[datetime, _StagedHour] = {}
        self._created = False
        self._writer: ThreadPoolExecutor | None = None

    def __enter__(self) -> "HourBatch":
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.discard()
        finally:
            if self._writer is not None:
                self._writer.shutdown()

    def add(
        self,
        hour: TimeWindow,
        table: pa.Table,
        *,
        sort: bool = True,
        keep_held: bool = False,
        **notes: str,
    ) -> int:
        """Stage ``hour``'s rows (the registry's columns; sorted by the dataset's keys unless
        the caller already did); ``notes`` are recorded with the hour. With ``keep_held``, an
        empty ``table`` does not replace rows the table holds for the hour: the commit leaves
        them as they are and reports the hour ``kept``. Returns the rows."""
        layout = self.layout
        if sort and table.num_rows > 1:  # the registry's order (compaction sorts by the stored
            table = table.sort_by([(k, "ascending") for k in layout.sort_keys])  # signed ids)
        registered = dataset_of(self.dataset).schema
        table = table.select(registered.names).cast(registered)  # refused here, not when written
        self._drop(hour)
        staged = _StagedHour(hour, table.num_rows, notes, keep_held)
        if layout.partition_by != (DAY_COLUMN,):
            staged.table = self.tables._to_table(layout, hour, table)
        elif table.num_rows:
            self._prepare_folder()
            if self._writer is None:  # writing (compression) overlaps the caller's next read
                self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hour-file")
            staged.writing = self._writer.submit(self._write, hour, _row_groups(table))
        self._staged[hour.start] = staged
        return table.num_rows

    def add_parts(
        self, hour: TimeWindow, parts: Iterable[pa.Table], *, keep_held: bool = False, **notes: str
    ) -> int:
        """Stage ``hour``'s rows as they arrive in ``parts`` (a source's pages), as :meth:`add`
        does, without ever holding the hour: parts are gathered into groups of up to
        ``GROUP_BYTES`` (and ``ROWS_PER_GROUP`` rows), each sorted by the dataset's keys and
        written as a row group of the hour's file while the next parts are read. The file is
        then sorted within each group (an hour that fits in one group, as it is whole). A
        failure while the parts are read deletes what was written of the file and is raised."""
        if self.layout.partition_by != (DAY_COLUMN,):  # staged as a table anyway
            tables = list(parts)
            schema = dataset_of(self.dataset).schema
            return self.add(hour, pa.concat_tables(tables) if tables else schema.empty_table())
        self._drop(hour)
        self._prepare_folder()
        staged = _StagedHour(hour, 0, notes, keep_held)
        counted = _Counted(self._sorted_groups(parts))
        staged.path, staged.size, staged.stats = self._write(hour, counted)
        staged.rows = counted.rows
        self._staged[hour.start] = staged
        return staged.rows

    def _sorted_groups(self, parts: Iterable[pa.Table]) -> Iterator[pa.Table]:
        """``parts`` gathered into groups of at most ``GROUP_BYTES`` or ``ROWS_PER_GROUP`` rows,
        each sorted by the dataset's keys."""
        keys = [(k, "ascending") for k in self.layout.sort_keys]
        for group in _gathered(parts):
            yield group.sort_by(keys) if group.num_rows > 1 else group

    def _prepare_folder(self) -> None:
        if not self._created:  # the files go in the table's folder
            self._created = self._table() is not None

    def _write(self, hour: TimeWindow, groups: Iterable[pa.Table]) -> tuple[str | None, int, str]:
        return self.tables._write_file(self.layout, hour, groups)

    def _settle(self, item: _StagedHour) -> None:
        """Wait for the hour's file to be written (its error, if any, is raised here)."""
        if item.writing is not None:
            writing, item.writing = item.writing, None
            item.path, item.size, item.stats = writing.result()

    def commit(self) -> list[WrittenHour]:
        """Publish every staged hour; returns them in time order, with the hours left as the
        table holds them (``kept``)."""
        staged = sorted(self._staged.values(), key=lambda s: s.hour.start)
        if not staged:
            return []
        for item in staged:
            self._settle(item)
        committed, shared, kept = self._commit_files(staged)
        written = [self._written(s) for s in committed]
        written += [self._kept(s, rows) for s, rows in kept]
        for item in shared:  # their old rows share files with other hours (a compacted day)
            written.append(self._rewrite(item))
        self._staged.clear()
        return sorted(written, key=lambda w: w.window.start)

    def discard(self) -> None:
        """Delete the files of hours staged and not committed."""
        for hour in list(self._staged):
            self._drop(TimeWindow(hour, hour + timedelta(hours=1)))

    def _commit_files(self, staged: list[_StagedHour]) -> _Outcome:
        """One commit of the staged files of every hour whose old rows sit in files of that
        hour alone (removed by the same commit); returns those hours, the others, and the
        empty hours kept with the rows the table holds for them (decided on the version this
        commit is made on). A commit that lost a race with another writer is retried on the
        newest version."""
        from deltalake import CommitProperties
        from deltalake.transaction import AddAction, RemoveAction

        def commit() -> _Outcome:
            found = self._table()
            current = delta.add_actions(found)
            stamp = int(time.time() * 1000)
            empty = [s.hour for s in staged if s.keep_held and not s.rows]
            held_rows = self.tables.held_rows(found, current, self.dataset, empty) if empty else {}
            mine, shared, kept, actions = [], [], [], []
            for item in staged:
                if held_rows.get(item.hour.start):
                    kept.append((item, held_rows[item.hour.start]))
                    continue
                held = (
                    None if item.table is not None else _hour_files(current, self.layout, item.hour)
                )
                if held is None:
                    shared.append(item)
                    continue
                mine.append(item)
                day = {DAY_COLUMN: item.hour.start.strftime("%Y-%m-%d")}
                actions += [RemoveAction(f, True, stamp, size, day) for f, size in held]
                if item.path is not None:
                    actions.append(AddAction(item.path, item.size, day, stamp, True, item.stats))
            if mine:
                with delta.delta_errors(f"commit {self.dataset} {_span(mine)}", self.tables.config):
                    found.create_write_transaction(
                        actions,
                        "append",
                        found.schema(),
                        [DAY_COLUMN],
                        commit_properties=CommitProperties(custom_metadata=self._custom(mine)),
                    )
            return mine, shared, kept

        mine, shared, kept = _until_committed(commit)
        for item in [*mine, *(k for k, _ in kept)]:
            del self._staged[item.hour.start]
        return mine, shared, kept

    def _table(self) -> Any:
        """The table at its newest version, created empty if it does not exist yet."""
        found = self.tables.latest(self.dataset)
        if found is None:
            self.tables._create(self.layout)
            found = self.tables.latest(self.dataset)
        return found

    def _rewrite(self, item: _StagedHour) -> WrittenHour:
        """The hour replaced by a predicate overwrite, which rewrites the files it shares."""
        rows = item.table
        if rows is None:
            rows = self._read_staged(item)
        written = self.tables._overwrite(
            self.layout, item.hour, rows, self._custom([item]), self.source
        )
        self._drop(item.hour)
        return written

    def _read_staged(self, item: _StagedHour) -> pa.Table:
        import pyarrow.parquet as pq

        layout = self.layout
        if item.path is None:
            return layout.schema.empty_table()
        fs = delta.table_filesystem(self.tables.config, self.dataset)
        with delta.delta_errors(f"read {self.dataset} {item.hour}", self.tables.config):
            stored = pq.read_table(item.path, filesystem=fs)
        day = pa.repeat(pa.scalar(item.hour.start.strftime("%Y-%m-%d")), stored.num_rows)
        return stored.append_column(DAY_COLUMN, day).select(layout.schema.names)

    def _custom(self, hours: list[_StagedHour]) -> dict[str, str]:
        entries = [{"hour": s.hour.start.isoformat(), "rows": s.rows, **s.notes} for s in hours]
        return {
            "obs.operation": INGEST,
            "obs.hours": json.dumps(entries),
            **({"obs.source": self.source} if self.source is not None else {}),
        }

    def _written(self, item: _StagedHour) -> WrittenHour:
        return WrittenHour(
            self.dataset, item.hour, item.rows, item.size, datetime.now(UTC), self.source
        )

    def _kept(self, item: _StagedHour, rows: int) -> WrittenHour:
        return WrittenHour(
            self.dataset, item.hour, rows, 0, datetime.now(UTC), self.source, kept=True
        )

    def _drop(self, hour: TimeWindow) -> None:
        item = self._staged.pop(hour.start, None)
        if item is None:
            return
        with contextlib.suppress(Exception):  # a file that failed to write is not there
            self._settle(item)
        if item.path is not None:
            self.tables._delete_file(self.dataset, item.path)


def _row_groups(table: pa.Table) -> Iterator[pa.Table]:
    """``table`` in slices of ``ROWS_PER_GROUP`` rows (views, no copy): the row groups
    ``pq.write_table`` makes, converted to the table's types one at a time."""
    for offset in range(0, table.num_rows, delta.ROWS_PER_GROUP):
        yield table.slice(offset, delta.ROWS_PER_GROUP)


def _gathered(parts: Iterable[pa.Table]) -> Iterator[pa.Table]:
    """``parts`` joined into groups of about ``GROUP_BYTES`` (at most ``ROWS_PER_GROUP``
    rows): row groups big enough to compress and skip well, small enough to hold one."""
    held: list[pa.Table] = []
    rows = size = 0
    for part in parts:
        held.append(part)
        rows, size = rows + part.num_rows, size + part.nbytes
        if size >= GROUP_BYTES or rows >= delta.ROWS_PER_GROUP:
            yield pa.concat_tables(held)
            held, rows, size = [], 0, 0
    if rows:
        yield pa.concat_tables(held)


class _Counted:
    """The tables of ``tables`` passed through, their rows counted in ``rows``."""

    def __init__(self, tables: Iterable[pa.Table]) -> None:
        self._tables, self.rows = tables, 0

    def __iter__(self) -> Iterator[pa.Table]:
        for table in self._tables:
            self.rows += table.num_rows
            yield table


def _merged_stats(groups: list[str]) -> str:
    """The add action's statistics of a file from those of its row groups
    (:func:`delta.file_stats` of each): rows and null counts add up, bounds widen."""
    merged: dict[str, Any] = {"numRecords": 0, "minValues": {}, "maxValues": {}, "nullCount": {}}
    for text in groups:
        group = json.loads(text)
        merged["numRecords"] += group["numRecords"]
        for name, count in group["nullCount"].items():
            merged["nullCount"][name] = merged["nullCount"].get(name, 0) + count
        for key, pick in (("minValues", min), ("maxValues", max)):
            for name, value in group[key].items():  # same-format UTC texts order as times
                held = merged[key].get(name)
                merged[key][name] = value if held is None else pick(held, value)
    return json.dumps(merged)


def _until_committed(commit: Callable[[], T]) -> T:
    """``commit()`` (which reads the table's newest version itself), again after a short backoff
    while it is refused for losing a race with another writer; any other error, and the last
    refusal, is raised."""
    from deltalake.exceptions import CommitFailedError

    for attempt in range(COMMIT_ATTEMPTS):
        try:
            return commit()
        except LakeError as exc:
            if not isinstance(exc.__context__, CommitFailedError) or attempt == COMMIT_ATTEMPTS - 1:
                raise
            time.sleep(0.2 * 2**attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def _span(hours: list[_StagedHour]) -> str:
    first, last = hours[0].hour, hours[-1].hour
    return str(first) if len(hours) == 1 else str(TimeWindow(first.start, last.end))


def commit_hours(commit: dict[str, Any]) -> list[tuple[datetime, int]]:
    """(hour start, rows) of every hour an ingest commit wrote: ``obs.hours`` (a JSON list), or
    ``obs.hour`` and ``obs.rows`` as commits of one hour were recorded before batches."""
    if "obs.hours" in commit:
        return [
            (datetime.fromisoformat(e["hour"]), int(e.get("rows", 0)))
            for e in json.loads(commit["obs.hours"])
        ]
    if "obs.hour" in commit:
        return [(datetime.fromisoformat(commit["obs.hour"]), int(commit.get("obs.rows", 0)))]
    return []


@dataclass(frozen=True)
class TableSummary:
    """One table as its log describes it, checked against the objects under it."""

    dataset: str
    version: int
    files: int
    rows: int
    bytes: int
    problems: tuple[str, ...]  # a referenced file missing or of another size
    unreferenced_files: int = 0  # data files listed that the current version does not reference
    unreferenced_bytes: int = 0


def summarize(tables: DeltaTables, listing: dict[str, dict[str, int]]) -> list[TableSummary]:
    """Every table's files, rows and bytes from its log, each referenced file that is missing
    from ``listing`` (key under the table -> sizes found) or has another size there, and the
    listed data files the log does not reference (removed by commits and not yet vacuumed, or
    written by runs killed before their commit)."""
    found = []
    for layout in delta.layouts():
        table = tables.open(layout.dataset)
        if table is None:
            continue
        actions = delta.add_actions(table)
        paths = actions["path"].to_pylist()
        sizes = actions["size_bytes"].to_pylist()
        problems = tuple(
            f"{layout.dataset}/{path}: "
            + (
                "missing"
                if path not in listing.get(layout.dataset, {})
                else f"{listing[layout.dataset][path]} bytes where the log says {size}"
            )
            for path, size in zip(paths, sizes, strict=True)
            if listing.get(layout.dataset, {}).get(path) != size
        )
        referenced = set(paths)
        unreferenced = [
            size
            for path, size in listing.get(layout.dataset, {}).items()
            if path not in referenced and not path.startswith("_")
        ]
        found.append(
            TableSummary(
                layout.dataset,
                table.version(),
                actions.num_rows,
                int(pc.sum(actions["num_records"]).as_py() or 0),
                int(pc.sum(actions["size_bytes"]).as_py() or 0),
                problems,
                len(unreferenced),
                sum(unreferenced),
            )
        )
    return found


def _hour_files(
    actions: pa.Table, layout: TableLayout, hour: TimeWindow
) -> list[tuple[str, int]] | None:
    """(path, bytes) of the files (of the table's add ``actions``) of the hour's day that hold
    rows of this hour only; None when a file holds rows of this hour and of others, or has no
    statistics to tell."""
    held = _hour_actions(actions, layout, hour)
    if held is None:
        return None
    if not held.num_rows:
        return []
    return list(zip(held["path"].to_pylist(), held["size_bytes"].to_pylist(), strict=True))


def _hour_actions(actions: pa.Table, layout: TableLayout, hour: TimeWindow) -> pa.Table | None:
    """The add ``actions`` of the files of the hour's day that hold rows of this hour only;
    None when a file holds rows of this hour and of others, or has no statistics to tell."""
    first, last = bound_columns(layout)
    day = hour.start.strftime("%Y-%m-%d")
    if actions.num_rows:
        actions = actions.filter(pc.equal(actions[f"partition.{DAY_COLUMN}"], day))
    if not actions.num_rows:
        return actions
    if f"min.{first}" not in actions.column_names or f"max.{last}" not in actions.column_names:
        return None
    kind = pa.timestamp("us", tz="UTC")
    low = actions[f"min.{first}"].cast(kind)
    high = actions[f"max.{last}"].cast(kind)
    start, end = pa.scalar(hour.start, kind), pa.scalar(hour.end, kind)
    if low.null_count or high.null_count:
        return None
    inside = pc.and_(pc.greater_equal(low, start), pc.less(high, end))
    overlaps = pc.and_(pc.less(low, end), pc.greater_equal(high, start))
    if pc.any(pc.and_(overlaps, pc.invert(inside))).as_py():
        return None
    return actions.filter(inside)


def bound_columns(layout: TableLayout) -> tuple[str, str]:
    """The columns whose minimum and maximum bound the hours a file holds."""
    if dataset_of(layout.dataset).collapse_series:
        return SERIES_SEEN[0].name, SERIES_SEEN[1].name
    column = _hour_column(layout)
    return column, column


def hour_predicate(layout: TableLayout, hour: TimeWindow) -> str:
    """The delta-rs predicate selecting exactly the rows of ``hour`` (with its day partition,
    so only that day's files are considered)."""
    day = delta.day_predicate(hour.start.strftime("%Y-%m-%d"))
    start, end = (_literal(t) for t in (hour.start, hour.end))
    if dataset_of(layout.dataset).collapse_series:
        first, last = (f.name for f in SERIES_SEEN)
        return f"{day} AND {first} = '{start}' AND {last} = '{start}'"
    column = _hour_column(layout)
    if column == FILED_HOUR:
        return f"{day} AND {FILED_HOUR} = '{start}'"
    return f"{day} AND \"{column}\" >= '{start}' AND \"{column}\" < '{end}'"


def _hour_column(layout: TableLayout) -> str:
    return layout.day_of or SERIES_SEEN[0].name


def _literal(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _days(window: TimeWindow) -> list[str]:
    """The day partitions ('YYYY-MM-DD') ``window`` touches."""
    days = []
    day = window.start.replace(hour=0, minute=0, second=0, microsecond=0)
    while day < window.end:
        days.append(day.strftime("%Y-%m-%d"))
        day += timedelta(days=1)
    return days


def _window_filter(layout: TableLayout, window: TimeWindow) -> pc.Expression:
    """The rows of ``window`` among its days' files (the days were chosen from the log)."""
    start = pa.scalar(window.start.astimezone(UTC), pa.timestamp("us", tz="UTC"))
    end = pa.scalar(window.end.astimezone(UTC), pa.timestamp("us", tz="UTC"))
    if dataset_of(layout.dataset).collapse_series:
        first, last = (pc.field(f.name) for f in SERIES_SEEN)
        return (first < end) & (last >= start)
    column = pc.field(_hour_column(layout))
    return (column >= start) & (column < end)


def from_delta(dataset: str, stored: pa.Table) -> pa.Table:
    """Rows read from a Delta table back in the registry's types (signed ``series_id`` to its
    unsigned bits, UTC microseconds to the registry's naive timestamps: exact for values the
    lake wrote)."""
    schema = dataset_of(dataset).schema
    columns = []
    for field in schema:
        column = stored.column(field.name)
        if pa.types.is_timestamp(field.type):
            column = column.cast(pa.timestamp("us")).cast(field.type)
        else:
            column = column.cast(field.type, safe=False)
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=schema)
