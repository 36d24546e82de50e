"""Tiering of the lake's Delta tables: compaction, rollups and retention as commits.

The rules of :mod:`obs_pipelines.lake.tiering` (per :func:`streams`), on the tables of
:mod:`obs_pipelines.lake.delta`, where a day partition is the unit:

* **Compaction.** A day whose end is older than the stream's hot age and that holds more than
  one file (hourly commits, or an hour re-ingested after the day was compacted) is rewritten as
  one file sorted by the dataset's sort keys (``series_id`` by its stored signed value);
  ``metric_series`` collapses to one row per series within the day (first and last hour seen).
  Retention-only streams (no tier after hot) are never compacted.
* **Rollups.** When a ``metric_samples`` day is compacted, or its rollups are missing or were
  made from other files than the day holds now, its 5-minute and 1-hour rollups are computed
  with :func:`~obs_pipelines.lake.rollups.compute_rollups` from the day's rows plus the last
  sample of each series the day before and its time (so a counter's first increase of the day
  counts when that sample lies in the day before's last hour), the
  same bits the file layout of earlier versions made. The rollup file's name carries a
  fingerprint of the sample files it was made from, which is how a later run knows they are
  current without reading data. Raw samples are the truth only for the hours they hold a
  sample in: when the day's rollups cover hours the raw day no longer holds (retention deleted
  the day's raw samples, then some hours were re-ingested, say at ``obs doctor``'s advice), those
  hours' rollup rows are kept as they are and only the held hours' rows are remade
  (:func:`~obs_pipelines.lake.rollups.rollups_for_hours`): remaking the day from the hours left
  would replace 24 hours of rollups with one, for good.
* **Retention.** Days whose end is older than the stream's last age are deleted, one commit per
  table. Raw sample days past retention whose rollups are due but missing (a run after a long
  pause) get their rollups first.
* **Storage.** Files that commits removed are vacuumed once ``lake.delete_delay`` has passed
  (:func:`obs_pipelines.lake.delta.vacuum`); storage classes follow object age through the S3
  lifecycle rules of ``obs lake lifecycle``, so nothing moves between prefixes here.

**Guarantees.** Each rewrite of a partition is one commit that removes exactly the files read
(at the table version read) and adds the new file, written and verified *before* the commit:
the new file is read back and its row count and order-independent checksum
(:mod:`obs_pipelines.lake.checksum`, every stored column) must equal those of the rows read
(for ``metric_series``, of the collapse computed from them). A reader therefore sees the day as
it was or as it is, never both. A concurrent commit that removed any file read (an hour
re-ingested meanwhile, or another tiering run's compaction of the same day) makes delta-rs
refuse the commit (``CommitFailedError``, the delta-rs conflict checker, which sees it only
because rewrites are committed as data changes: see ``_DATA_CHANGE``); the day is then read again and redone, up to :data:`ATTEMPTS` times, then
left for the next run with a problem. A concurrent commit that only added a file (a new hour)
does not conflict and is kept as is: the day then holds two files and is compacted next run.
A file written for a commit that failed is deleted; one orphaned by a killed process is in no
commit, so no reader ever sees it (``VACUUM ... FULL`` by any Delta engine removes it).

**Failures.** A table that cannot be read or written (a data file its log names is missing, its
folder is read-only) fails alone: the day is left as it was, every other day and table is still
tiered, and the run ends with one problem per failed table naming it and the fix
(``TieringResult.failed`` lists them; ``obs tier`` then exits 1 and the ``lake_tiering`` asset
fails, both after the partition index is read again, so it lists what was tiered).

A rerun converges, and on a tiered lake it commits nothing (vacuum included: it runs only when a
commit removed files since the last vacuum and the delay has passed).
"""

import contextlib
import hashlib
import math
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from obs_pipelines.config import DEFAULT_ZSTD_LEVELS, ObsConfig
from obs_pipelines.datasets import dataset as dataset_of
from obs_pipelines.durations import format_duration
from obs_pipelines.errors import LakeError
from obs_pipelines.lake import delta
from obs_pipelines.lake.checksum import Checksum, table_checksum
from obs_pipelines.lake.delta import DAY_COLUMN, FILED_HOUR, SERIES_SEEN, TableLayout
from obs_pipelines.lake.delta_tables import DeltaTables, from_delta
from obs_pipelines.lake.rollups import (
    RESOLUTIONS,
    compute_rollups,
    held_hours,
    known_samples,
    last_samples,
    rollups_for_hours,
)
from obs_pipelines.lake.tiering import (
    ROLLUPS,
    Deletion,
    MoveReport,
    Stream,
    TieringResult,
    streams,
)
from obs_pipelines.schemas import METRIC_SAMPLES

COMPACT, ROLLUP, EXPIRE = "compact", "rollup", "expire"
STEPS = ("write", "verify", "commit")
ATTEMPTS = 3
DAY = timedelta(days=1)
_COMPACTED = "-compacted"  # name suffix of files this module writes by compaction
_FROM = "-from-"  # rollup files: "-from-<fingerprint of the sample files>"
_NOT_REMOVING = {"VACUUM START", "VACUUM END", "CREATE TABLE", "SET TBLPROPERTIES"}

HOURS_A_DAY = 24
# What one table's failure raises: the lake refusing a read or write (delta_errors turns storage
# and delta-rs errors into LakeError) or a data file pyarrow cannot decode.
_TABLE_FAILURES = (LakeError, pa.ArrowException)

# How storage says a folder or bucket refuses writes (local: EACCES, EPERM for an immutable
# folder, EROFS; S3: 403).
_UNWRITABLE = (
    "permission denied",
    "operation not permitted",
    "read-only",
    "access denied",
    "forbidden",
)

DeltaHook = Callable[[str, "DeltaMove"], None]


@dataclass(frozen=True)
class LogFile:
    """One data file of a table as the log lists it."""

    path: str
    size: int
    rows: int


@dataclass(frozen=True)
class Partition:
    """One day of a table (and, for rollups, one resolution) at the version it was read."""

    values: tuple[tuple[str, str], ...]  # partition column -> value, in partition_by order
    files: tuple[LogFile, ...]

    @property
    def day(self) -> str:
        return dict(self.values)[DAY_COLUMN]

    @property
    def resolution(self) -> str | None:
        return dict(self.values).get("resolution")

    @property
    def end(self) -> datetime:
        return datetime.fromisoformat(self.day).replace(tzinfo=UTC) + DAY

    @property
    def folder(self) -> str:
        return "/".join(f"{k}={v}" for k, v in self.values)

    @property
    def filters(self) -> list[tuple[str, str, str]]:
        return [(k, "=", v) for k, v in self.values]

    def sql(self) -> str:
        return " AND ".join(f"{k} = '{v}'" for k, v in self.values)


@dataclass
class DeltaMove:
    """One unit of work on one day: what the hook is called with after each step."""

    stream: Stream
    day: str
    compact: bool
    rollups: tuple[str, ...]

    def describe(self) -> str:
        what = [COMPACT] if self.compact else []
        what += [f"{ROLLUP} {r}" for r in self.rollups]
        return f"{self.stream.name} dt={self.day}: {', '.join(what)}"


@dataclass
class _Output:
    """A file to add to one partition of a table, replacing the files it lists."""

    dataset: str
    partition: Partition
    rows: pa.Table  # in the file's schema (the table's columns but the partition columns)
    expected: Checksum
    path: str
    size: int = 0
    written: bool = False
    committed: bool = False
    replaces: tuple[LogFile, ...] = field(default_factory=tuple)
    # The table the rows were read from, when they are the files they replace (a compaction):
    # committing after any of those was removed since would lose or resurrect rows, so the day
    # is redone instead.
    read: Any | None = None
    # Rows kept from the files replaced (a rollup merge), read from the newest table: committed
    # only if the partition still holds exactly those files.
    merged: bool = False


# Every rewrite is committed as a data change, although compaction adds no data (OPTIMIZE marks
# it dataChange=false): delta-rs 1.x detects two commits removing the same files only when they
# change data, and two runs compacting one day must never both commit (the rows would double).
# The cost: a streaming reader of the table re-reads a compacted day unless it ignores changes.
_DATA_CHANGE = True


class _Conflict(Exception):
    """The table changed under a rewrite in a way that would lose data: read again, redo."""


def run_delta_tiering(
    config: ObsConfig,
    now: datetime | None = None,
    *,
    hook: Callable[[str, Any], None] | None = None,
) -> TieringResult:
    """Bring the Delta lake in line with the retention config as of ``now`` (default: the
    clock). ``hook(step, move)`` is called after each step (``write``, ``verify``, ``commit``)
    of each :class:`DeltaMove`; tests raise from it to crash a move there."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    planned, skipped = streams(config)
    result = TieringResult(now, skipped=skipped)
    runner = _Runner(config, now, hook or (lambda step, move: None), result)
    for stream in planned:
        runner.rework(stream)
    datasets = list(dict.fromkeys(s.dataset for s in planned))
    for dataset in datasets:
        with runner.failing_alone(dataset, "expired days"):
            runner.expire(dataset, [s for s in planned if s.dataset == dataset])
    for dataset in datasets:
        with runner.failing_alone(dataset, "vacuum"):
            runner.vacuum(dataset)
    runner.report_failures()
    return result


class _Runner:
    def __init__(
        self, config: ObsConfig, now: datetime, hook: DeltaHook, result: TieringResult
    ) -> None:
        self.config, self.now, self.hook, self.result = config, now, hook, result
        self.tables = DeltaTables(config)
        self.retention = config.retention
        self.zstd_level = config.lake.warm.zstd_level or DEFAULT_ZSTD_LEVELS["warm"]
        self._rollup_parts: dict[tuple[tuple[str, str], ...], Partition] | None = None
        self._gone: set[str] = set()
        self._failures: dict[str, list[tuple[str, LakeError | pa.ArrowException]]] = {}

    # -- failures ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def failing_alone(self, dataset: str, what: str) -> Iterator[None]:
        """Record a failure of ``what`` (a day, a step) of one table and carry on: one broken
        or unwritable table must not leave every table after it untiered."""
        try:
            yield
        except _TABLE_FAILURES as exc:
            self._failures.setdefault(dataset, []).append((what, exc))

    def report_failures(self) -> None:
        """One problem per failed table, naming what was left and the fix."""
        for dataset, failures in self._failures.items():
            left = ", ".join(dict.fromkeys(what for what, _ in failures))
            reason = _one_reason(self.config, dataset, failures[0][1])
            more = f" (and {len(failures) - 1} more failures)" if len(failures) > 1 else ""
            line = f"{dataset}: not tiered: {left} left as they were: {reason}{more}"
            self.result.failed[dataset] = line
            self.result.problems.append(line)

    # -- planning ---------------------------------------------------------------------------

    def rework(self, stream: Stream) -> None:
        """Compact every due day of the stream (and roll up raw sample days)."""
        parts: dict[tuple[tuple[str, str], ...], Partition] = {}
        with self.failing_alone(stream.dataset, "every day"):
            table = self.tables.open(stream.dataset)
            if table is not None:
                parts = _partitions(table, stream.resolution)
        hot_age = _hot_age(stream)
        # Days retention deletes without waiting for rollups: gone before any rollup is made,
        # so none is the "day before" of another (as in files, where expiry runs first).
        horizon = self.now - stream.stages[-1][1]
        self._gone = {
            p.day
            for p in parts.values()
            if p.end <= horizon and not (self._makes_rollups(stream) and self._awaiting(stream, p))
        }
        for part in parts.values():
            with self.failing_alone(stream.dataset, part.folder):
                compact, rollups = self._needs(stream, part, hot_age)
                if compact or rollups:
                    self._redo(stream, part.day, hot_age)

    def _needs(
        self, stream: Stream, part: Partition, hot_age: timedelta | None
    ) -> tuple[bool, tuple[str, ...]]:
        """Whether the day is due for compaction, and the resolutions to roll it up at."""
        expired = part.end <= self.now - stream.stages[-1][1]
        due = hot_age is not None and part.end <= self.now - hot_age
        compact = due and not expired and len(part.files) > 1
        if not self._makes_rollups(stream) or not (due or self._awaiting(stream, part)):
            return compact, ()
        if not compact and self._rollups_current(part, part.files):
            return False, ()
        return compact, self._live_resolutions(part)

    def _makes_rollups(self, stream: Stream) -> bool:
        return dataset_of(stream.dataset).rollups and "warm" in stream.tiers

    def _awaiting(self, stream: Stream, part: Partition) -> bool:
        """A raw day past retention that must keep rollups it has not got yet (as the files
        layout's ``_awaiting_rollups``: within every resolution's retention)."""
        if part.end > self.now - stream.stages[-1][1]:
            return False
        keep_after = self.now - min(self.retention.resolution_age(r) for r in RESOLUTIONS)
        return part.end > keep_after and not self._rollups_current(part, part.files)

    def _live_resolutions(self, part: Partition) -> tuple[str, ...]:
        return tuple(
            r for r in RESOLUTIONS if part.end > self.now - self.retention.resolution_age(r)
        )

    def _rollups_current(self, samples: Partition, files: Iterable[LogFile]) -> bool:
        """Whether every kept resolution of the day holds one file made from ``files``."""
        if self._rollup_parts is None:
            table = self.tables.open(ROLLUPS)
            self._rollup_parts = _partitions(table, None) if table is not None else {}
        rollups = self._rollup_parts
        mark = _FROM + _fingerprint(f.path for f in files) + "."
        for resolution in self._live_resolutions(samples):
            found = rollups.get((("resolution", resolution), (DAY_COLUMN, samples.day)))
            if found is None or len(found.files) != 1 or mark not in found.files[0].path:
                return False
        return True

    # -- performing --------------------------------------------------------------------------

    def _redo(self, stream: Stream, day: str, hot_age: timedelta | None) -> None:
        """Read the day at the newest version and redo what it needs, again if the table
        changed under the commit (up to ATTEMPTS times)."""
        for _ in range(ATTEMPTS):
            table = self.tables.open(stream.dataset)
            parts = _partitions(table, stream.resolution) if table is not None else {}
            part = next((p for p in parts.values() if p.day == day), None)
            if part is None:
                return
            compact, rollups = self._needs(stream, part, hot_age)
            if not compact and not rollups:
                return
            try:
                self._perform(table, stream, part, parts, DeltaMove(stream, day, compact, rollups))
                return
            except _Conflict:
                continue
        self.result.problems.append(
            f"{stream.name} dt={day}: the day kept changing while tiering rewrote it "
            f"({ATTEMPTS} attempts); left as it is for the next run"
        )

    def _perform(
        self,
        table: Any,
        stream: Stream,
        part: Partition,
        parts: dict[tuple[tuple[str, str], ...], Partition],
        move: DeltaMove,
    ) -> None:
        layout = delta.layout(stream.dataset)
        with delta.delta_errors(f"read {stream.dataset} {part.folder}", self.config):
            rows = _read(table, layout, part)
        outputs: list[_Output] = []
        compacted = None
        if move.compact:
            merged = _compact(layout, rows)
            collapse = dataset_of(stream.dataset).collapse_series
            compacted = _Output(
                stream.dataset,
                part,
                merged,
                table_checksum(merged) if collapse else table_checksum(rows),
                f"{part.folder}/part-00000-{uuid.uuid4()}{_COMPACTED}.zstd.parquet",
                replaces=part.files,
                read=table,
            )
        if move.rollups:
            sample_files = [compacted.path] if compacted else [f.path for f in part.files]
            prior = self._prior_samples(table, layout, part, parts)
            outputs += self._rollups(rows, prior, part.day, move.rollups, sample_files)
        if compacted is not None:
            outputs.append(compacted)  # committed last: its rollups are then in place
        try:
            for output in outputs:
                self._write(output)
            self.hook("write", move)
            for output in outputs:
                self._verify(output)
            self.hook("verify", move)
            for output in outputs:
                self._commit(output)
            self.hook("commit", move)
        finally:
            for output in outputs:
                if output.written and not output.committed:
                    self._remove_file(output)
        self._report(stream, part, compacted, [o for o in outputs if o is not compacted])

    def _prior_samples(
        self,
        table: Any,
        layout: TableLayout,
        part: Partition,
        parts: dict[tuple[tuple[str, str], ...], Partition],
    ) -> pa.Table | None:
        """The raw samples of the day before, as files tiering sees them: none when that day
        is gone or about to be deleted without waiting for rollups."""
        before = (part.end - 2 * DAY).strftime("%Y-%m-%d")
        prior = parts.get(((DAY_COLUMN, before),))
        if prior is None or prior.day in self._gone:
            return None
        samples = _registry_samples(_read(table, layout, prior))
        return samples if samples.num_rows else None

    def _rollups(
        self,
        rows: pa.Table,
        prior: pa.Table | None,
        day: str,
        resolutions: tuple[str, ...],
        sample_files: list[str],
    ) -> list[_Output]:
        """The day's rollup files: made from its raw samples, or merged per hour with the
        rollups it has when those cover hours the raw samples no longer do."""
        table = self.tables.open(ROLLUPS)
        if table is None:
            self.tables.ensure_tables([ROLLUPS])
            table = self.tables.open(ROLLUPS)
        layout = delta.layout(ROLLUPS)
        existing = _partitions(table, None)
        samples = _registry_samples(rows)
        hours = held_hours(samples)
        previous = last_samples(prior) if prior is not None else None
        fingerprint = _fingerprint(sample_files)
        outputs = []
        for resolution in resolutions:
            values = (("resolution", resolution), (DAY_COLUMN, day))
            target = existing.get(values, Partition(values, ()))
            kept = None
            if target.files and hours.size < HOURS_A_DAY:  # a whole day remakes every hour
                kept = _registry_rollups(table, layout, target)
                if np.isin(held_hours(kept), hours).all():
                    kept = None  # every hour they cover has raw samples: remade whole
            if kept is None:
                rolled = compute_rollups(samples, resolution, previous)
            else:
                before_day = (target.end - 2 * DAY).strftime("%Y-%m-%d")
                prior_part = existing.get((("resolution", resolution), (DAY_COLUMN, before_day)))
                prior_rollups = _registry_rollups(table, layout, prior_part) if prior_part else None
                before = known_samples(prior, prior_rollups)
                rolled = rollups_for_hours(samples, kept, resolution, before)
            stored = _stored(layout, rolled)
            keys = [k for k in layout.sort_keys if k in stored.column_names]
            stored = stored.sort_by([(k, "ascending") for k in keys])
            outputs.append(
                _Output(
                    ROLLUPS,
                    target,
                    stored,
                    table_checksum(stored),
                    f"{target.folder}/part-00000-{uuid.uuid4()}{_FROM}{fingerprint}.zstd.parquet",
                    replaces=target.files,
                    merged=kept is not None,
                )
            )
        return outputs

    def _write(self, output: _Output) -> None:
        fs = self._fs(output.dataset)
        encodings = delta.column_encodings(output.rows.schema)
        others = [n for n in output.rows.column_names if n not in encodings]
        with delta.delta_errors(f"write {output.path} of {output.dataset}", self.config):
            output.written = True
            with fs.open_output_stream(output.path) as sink:
                pq.write_table(
                    output.rows,
                    sink,
                    compression="zstd",
                    compression_level=self.zstd_level,
                    column_encoding=encodings or None,
                    use_dictionary=others or False,
                    row_group_size=delta.ROWS_PER_GROUP,
                    max_rows_per_page=delta.ROWS_PER_GROUP,
                    data_page_size=delta.PAGE_BYTES,
                    write_statistics=True,
                )
            output.size = fs.get_file_info(output.path).size

    def _verify(self, output: _Output) -> None:
        """The written file, read back, must hold exactly the rows meant for it."""
        with delta.delta_errors(f"read back {output.path} of {output.dataset}", self.config):
            written = pq.read_table(output.path, filesystem=self._fs(output.dataset))
        got = table_checksum(written.replace_schema_metadata(None))
        if got != output.expected or written.schema.names != output.rows.schema.names:
            raise LakeError(
                f"verification of {output.dataset} {output.partition.folder} failed: wrote "
                f"{got.rows} rows, expected {output.expected.rows} (or their checksums differ); "
                "nothing was committed, this is a bug to report"
            )

    def _commit(self, output: _Output) -> None:
        """Add the file and remove what it replaces in one commit. ``output.read``: the table
        as the rows were read from it (the commit then fails if any file read has been removed
        since); None: the output does not depend on the table's content (rollups made from
        raw samples alone), so a conflicting commit is redone at the newest version, unless
        it kept rows of the files it replaces (``merged``) and those changed meanwhile."""
        from deltalake import CommitProperties
        from deltalake.exceptions import CommitFailedError
        from deltalake.transaction import AddAction, RemoveAction

        operation = COMPACT if output.dataset != ROLLUPS else ROLLUP
        read = output.read
        for attempt in range(ATTEMPTS):
            table = read if read is not None else self.tables.open(output.dataset)
            if read is None:
                found = _partitions(table, None).get(output.partition.values)
                files = found.files if found else ()
                if output.merged and files != output.replaces:
                    raise _Conflict()  # the rows kept are no longer what the day holds
                output.replaces = files
            stamp = int(time.time() * 1000)
            values = dict(output.partition.values)
            actions: list[Any] = [
                AddAction(
                    output.path,
                    output.size,
                    values,
                    stamp,
                    _DATA_CHANGE,
                    delta.file_stats(output.rows),
                )
            ]
            actions += [
                RemoveAction(f.path, _DATA_CHANGE, stamp, f.size, values) for f in output.replaces
            ]
            metadata = {
                "obs.operation": operation,
                "obs.day": output.partition.day,
                "obs.rows": str(output.rows.num_rows),
                "obs.removed_files": str(len(output.replaces)),
                **({"obs.resolution": values["resolution"]} if "resolution" in values else {}),
            }
            try:
                with delta.delta_errors(
                    f"commit {operation} of {output.dataset} {output.partition.folder}", self.config
                ):
                    table.create_write_transaction(
                        actions,
                        "append",
                        table.schema(),
                        list(values),
                        commit_properties=CommitProperties(custom_metadata=metadata),
                    )
            except LakeError as exc:
                if not isinstance(exc.__context__, CommitFailedError):
                    raise
                if read is not None or output.merged:
                    raise _Conflict() from None
                if attempt == ATTEMPTS - 1:
                    raise
                continue
            output.committed = True
            if output.dataset == ROLLUPS:
                self._rollup_parts = None
            return

    def _fs(self, dataset: str) -> Any:
        return delta.table_filesystem(self.config, dataset)

    def _remove_file(self, output: _Output) -> None:
        # Never written, or storage unreachable: the file is in no commit either way.
        with contextlib.suppress(OSError, pa.ArrowException):
            self._fs(output.dataset).delete_file(output.path)

    def _report(
        self, stream: Stream, part: Partition, compacted: _Output | None, rollups: list[_Output]
    ) -> None:
        rollup_bytes = sum(o.size for o in rollups)
        if compacted is None:
            self.result.moves += [
                MoveReport(
                    dataset=ROLLUPS,
                    resolution=o.partition.resolution,
                    from_tiers=("hot",),
                    tier="warm",
                    partition=o.partition.folder,
                    key=o.path,
                    storage_class=None,
                    rows=o.rows.num_rows,
                    source_files=len(part.files),
                    bytes_before=0,  # rollups add bytes; compaction ratios leave them out
                    bytes_after=0,
                    reason="age",
                    rollup_bytes=o.size,
                )
                for o in rollups
            ]
            return
        late = any(_COMPACTED in f.path for f in part.files)
        self.result.moves.append(
            MoveReport(
                dataset=stream.dataset,
                resolution=stream.resolution,
                from_tiers=("hot", "warm") if late else ("hot",),
                tier="warm",
                partition=part.folder,
                key=compacted.path,
                storage_class=None,
                rows=compacted.rows.num_rows,
                source_files=len(part.files),
                bytes_before=sum(f.size for f in part.files),
                bytes_after=compacted.size,
                reason="late" if late else "age",
                rollup_bytes=rollup_bytes,
            )
        )
        self.result.deletions += [
            Deletion(
                stream.dataset,
                "warm" if _COMPACTED in f.path else "hot",
                f.path,
                f.size,
                "superseded",
            )
            for f in part.files
        ]

    # -- retention and vacuum ----------------------------------------------------------------

    def expire(self, dataset: str, planned: list[Stream]) -> None:
        """Delete every day past its stream's last age in one commit (raw sample days only once
        their rollups exist)."""
        from deltalake import CommitProperties
        from deltalake.exceptions import CommitFailedError

        for _ in range(ATTEMPTS):
            table = self.tables.open(dataset)
            if table is None:
                return
            due: list[tuple[Stream, Partition]] = []
            for stream in planned:
                horizon = self.now - stream.stages[-1][1]
                for part in _partitions(table, stream.resolution).values():
                    if part.end > horizon:
                        continue
                    if self._makes_rollups(stream) and self._awaiting(stream, part):
                        continue  # its rollups could not be made this run: a problem says why
                    due.append((stream, part))
            if not due:
                return
            predicate = " OR ".join(f"({p.sql()})" for _, p in due)
            days = sorted({p.day for _, p in due})
            metadata = {"obs.operation": EXPIRE, "obs.days": ",".join(days)}
            try:
                with delta.delta_errors(f"delete expired days of {dataset}", self.config):
                    table.delete(
                        predicate, commit_properties=CommitProperties(custom_metadata=metadata)
                    )
            except LakeError as exc:
                if isinstance(exc.__context__, CommitFailedError):
                    continue
                raise
            if dataset == ROLLUPS:
                self._rollup_parts = None
            self.result.deletions += [
                Deletion(dataset, stream.stages[-1][0], f.path, f.size, "expired")
                for stream, part in due
                for f in part.files
            ]
            return
        self.result.problems.append(
            f"{dataset}: expired days kept changing while tiering deleted them; left for the "
            "next run"
        )

    def vacuum(self, dataset: str) -> None:
        """Vacuum the table when a commit removed files since the last vacuum and the delay
        has passed (delta-rs lists a removed file until its tombstone expires, a week, so a
        vacuum every run would commit every run)."""
        table = self.tables.open(dataset)
        if table is None or not self._vacuum_due(table):
            return
        gone = delta.vacuum(self.config, dataset)
        self.result.notes.append(
            f"{dataset}: vacuumed the files commits removed more than "
            f"{format_duration(self.config.lake.delete_delay)} ago ({gone} listed)"
        )

    def _vacuum_due(self, table: Any) -> bool:
        hours = math.ceil(self.config.lake.delete_delay / timedelta(hours=1))
        delay_ms = hours * 3_600_000
        ripe = time.time() * 1000 - delay_ms  # removed before this: vacuum deletes them now
        limit = 32
        while True:
            with delta.delta_errors("read the history", self.config):
                commits = table.history(limit)
            vacuumed = next(
                (c["timestamp"] for c in commits if c["operation"] == "VACUUM END"), None
            )
            handled = vacuumed - delay_ms if vacuumed is not None else None
            for commit in commits:
                if handled is not None and commit["timestamp"] <= handled:
                    return False
                if _removes_files(commit) and commit["timestamp"] <= ripe:
                    return True
            if len(commits) < limit:
                return False
            limit *= 4


# -- reading and writing -----------------------------------------------------------------------


def _partitions(table: Any, resolution: str | None) -> dict[tuple[tuple[str, str], ...], Partition]:
    """The table's partitions at the version ``table`` was loaded at (rollups: of one
    resolution, or all when ``resolution`` is None)."""
    actions = delta.add_actions(table)
    columns = list(table.metadata().partition_columns)
    found: dict[tuple[tuple[str, str], ...], list[LogFile]] = {}
    if not columns or not actions.num_rows:
        return {}
    keys = zip(*(actions.column(f"partition.{c}").to_pylist() for c in columns), strict=True)
    files = zip(
        actions.column("path").to_pylist(),
        actions.column("size_bytes").to_pylist(),
        actions.column("num_records").to_pylist(),
        strict=True,
    )
    for key, (path, size, rows) in zip(keys, files, strict=True):
        values = tuple(zip(columns, key, strict=True))
        if resolution is not None and dict(values).get("resolution") != resolution:
            continue
        found.setdefault(values, []).append(LogFile(path, size, rows or 0))
    return {
        k: Partition(k, tuple(sorted(v, key=lambda f: f.path))) for k, v in sorted(found.items())
    }


def _read(table: Any, layout: TableLayout, part: Partition) -> pa.Table:
    """The partition's rows as stored (partition columns dropped), at the table's version."""
    columns = _file_schema(layout)
    dataset = table.to_pyarrow_dataset(file_pruning_predicate=part.filters)
    rows = dataset.to_table(columns=columns.names)
    return rows.cast(columns).replace_schema_metadata(None)


def _registry_rollups(table: Any, layout: TableLayout, part: Partition) -> pa.Table:
    """A rollup partition's rows in the registry's types (its resolution a column again)."""
    rows = _read(table, layout, part)
    resolution = pa.repeat(pa.scalar(part.resolution, pa.string()), rows.num_rows)
    return from_delta(ROLLUPS, rows.append_column("resolution", resolution))


def _one_reason(config: ObsConfig, dataset: str, exc: BaseException) -> str:
    """Why a table failed, and the fix, in one line (the storage error names the file)."""
    text = delta.without_advice(exc)
    lowered = text.lower()
    if "not found" in lowered or "no such file" in lowered:
        return (
            f"{text}; fix: restore that data file, or take it out of the log with "
            "`obs lake repair --apply` and re-ingest the hours it names, then rerun `obs tier`"
        )
    if any(w in lowered for w in _UNWRITABLE):
        return (
            f"{text}; fix: make {delta.table_uri(config, dataset)} writable by the user "
            "running tiering, then rerun `obs tier`"
        )
    return " ".join(str(exc).split())


def _file_schema(layout: TableLayout) -> pa.Schema:
    return pa.schema([f for f in layout.schema if f.name not in layout.partition_by])


def _stored(layout: TableLayout, rows: pa.Table) -> pa.Table:
    """Registry-typed rows (plus ``dt``) in the file's schema (signed ids, UTC microseconds)."""
    schema = _file_schema(layout)
    return rows.select(schema.names).cast(schema, safe=False)


def _compact(layout: TableLayout, rows: pa.Table) -> pa.Table:
    """The day's rows as one file: sorted by the sort keys (snapshots: then by filed hour);
    ``metric_series`` collapsed to one row per series within the day."""
    if dataset_of(layout.dataset).collapse_series:
        return _collapse_series(rows)
    keys = list(layout.sort_keys)
    if layout.day_of == FILED_HOUR:
        keys.append(FILED_HOUR)
    return rows.sort_by([(k, "ascending") for k in keys]) if rows.num_rows > 1 else rows


def _collapse_series(rows: pa.Table) -> pa.Table:
    """One row per series: its row seen first, with the first and last hour it was seen in
    (series never change: the id hashes metric and labels)."""
    first, last = (f.name for f in SERIES_SEEN)
    if not rows.num_rows:
        return rows
    rows = rows.sort_by([("series_id", "ascending"), (first, "ascending")])
    ids = np.asarray(rows.column("series_id"))
    heads = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    starts = np.asarray(rows.column(first).cast(pa.int64()))
    ends = np.asarray(rows.column(last).cast(pa.int64()))
    kind = rows.schema.field(first).type
    collapsed = rows.take(pa.array(heads))
    collapsed = collapsed.set_column(
        rows.schema.get_field_index(first),
        rows.schema.field(first),
        pa.array(np.minimum.reduceat(starts, heads)).cast(kind),
    )
    return collapsed.set_column(
        rows.schema.get_field_index(last),
        rows.schema.field(last),
        pa.array(np.maximum.reduceat(ends, heads)).cast(kind),
    )


def _registry_samples(rows: pa.Table) -> pa.Table:
    """Stored samples back in the registry's types, sorted as files tiering sorts them
    (unsigned ``series_id``, then ``ts``): rollups see the same rows in the same order."""
    samples = from_delta("metric_samples", rows).select(METRIC_SAMPLES.names)
    if samples.num_rows > 1:
        samples = samples.sort_by([("series_id", "ascending"), ("ts", "ascending")])
    return samples


def _fingerprint(paths: Iterable[str]) -> str:
    return hashlib.blake2b("\n".join(sorted(paths)).encode(), digest_size=8).hexdigest()


def _hot_age(stream: Stream) -> timedelta | None:
    """The age at which a day leaves hot (is compacted); None when the stream has no later
    tier (its days stay as written until retention deletes them)."""
    if stream.stages[0][0] != "hot" or len(stream.stages) < 2:
        return None
    return stream.stages[0][1]


def _removes_files(commit: dict[str, Any]) -> bool:
    """Whether a commit may have removed files (vacuum then has something to delete later)."""
    if commit.get("operation") in _NOT_REMOVING:
        return False
    if "obs.removed_files" in commit:
        return int(commit["obs.removed_files"]) > 0
    metrics = commit.get("operationMetrics") or {}
    for key in ("num_removed_files", "numRemovedFiles", "numFilesRemoved"):
        if key in metrics:
            return int(metrics[key]) > 0
    return commit.get("operationParameters", {}).get("mode") != "Append"
