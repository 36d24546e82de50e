"""Tiering: hot hours compact into warm days, warm days into cold months, old data is deleted.

What moves when comes from ``retention`` (per dataset, see :class:`Stream`): a file leaves its
tier once the whole span it covers is older than that tier's age. Metric samples are special:
raw samples live in hot and warm only; the day they reach warm, 5-minute and 1-hour rollups are
computed from them (``metric_rollups``), and those follow warm and cold with their own retention.

**Safety.** Every move writes the destination to a staged file, verifies it (row count and an
order-independent bit-exact checksum of the decoded rows against the sources, see
:mod:`obs_pipelines.lake.checksum`), publishes it (one rename or PUT of an immutable,
generation-named file, with the tier's storage class) and only then deletes the sources, each
only if it is still the version that was read. Readers decide what is current from names alone
(:func:`obs_pipelines.lake.paths.supersedes`: a colder tier or a later generation covering the
same span wins), so between any two steps the catalog shows every row exactly once:

* crash after write or verify: only a staged file exists; the next run sweeps it and redoes the
  move;
* crash after publish: the new file already hides its sources; the next run finds them
  superseded, checks that the new file holds exactly their rows, and deletes them;
* an hour re-ingested after its day was compacted (hidden, but different from what the warm
  file holds for that hour) is compacted into a new generation of the day; where that day sits
  in an archive storage class, the run refuses with a message naming the partition instead.

Sources are kept ``lake.delete_delay`` after their replacement is published, so queries that
listed the lake just before the move can still read them. Runs never overlap: each holds the
lake's lock (``flock`` on a folder, a conditional PUT on S3), and a run that finds it taken stops
with :class:`~obs_pipelines.lake.storage.LockBusy`.
"""

import os
import socket
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from obs_pipelines.config import ARCHIVE_STORAGE_CLASSES, DEFAULT_ZSTD_LEVELS, ObsConfig
from obs_pipelines.datasets import REGISTRY
from obs_pipelines.datasets import dataset as dataset_of
from obs_pipelines.errors import LakeError
from obs_pipelines.lake import Lake
from obs_pipelines.lake.checksum import EMPTY, Checksum, table_checksum
from obs_pipelines.lake.integrity import quarantine_damaged, repair_listing_faults
from obs_pipelines.lake.metric_codec import (
    WARM_SAMPLES,
    decode_samples,
    encode_samples,
    warm_samples_encoding,
)
from obs_pipelines.lake.paths import (
    DAY,
    LakeFile,
    cold_file,
    day_start,
    new_generation,
    split_visible,
    supersedes,
    warm_file,
)
from obs_pipelines.lake.rollups import RESOLUTIONS, compute_rollups, last_samples
from obs_pipelines.lake.writer import Encoding
from obs_pipelines.schemas import METRIC_SAMPLES, METRIC_SERIES

ROLLUPS = "metric_rollups"
# Footer key of the source that wrote a file's rows (ingest writes it into every hot partition).
SOURCE_KEY = b"obs.source"
HOUR_COLUMN = "_hour"  # source hour of rows of datasets without a time column, in warm and cold
SERIES_SEEN = ("first_seen_hour", "last_seen_hour")
LOCK_NAME = "tiering.lock"
MAX_PASSES = 16
STEPS = ("write", "verify", "publish", "delete")

Hook = Callable[[str, "Move"], None]


@dataclass(frozen=True)
class Stream:
    """One dataset (and, for rollups, one resolution) with its tiers and the age it leaves each."""

    dataset: str
    resolution: str | None
    stages: tuple[tuple[str, timedelta], ...]

    @property
    def name(self) -> str:
        return f"{self.dataset}[{self.resolution}]" if self.resolution else self.dataset

    @property
    def tiers(self) -> tuple[str, ...]:
        return tuple(t for t, _ in self.stages)

    def next_tier(self, tier: str) -> str | None:
        later = [t for t in self.tiers if _rank(t) > _rank(tier)]
        return later[0] if later else None

    def leaves_at(self, tier: str) -> timedelta:
        """Age at which files of ``tier`` move on (or, in the last tier, are deleted)."""
        for t, age in self.stages:
            if _rank(t) >= _rank(tier):
                return age
        return self.stages[-1][1]


def streams(config: ObsConfig) -> tuple[list[Stream], list[str]]:
    """Every stream tiering manages, and a note for each dataset that no retention names."""
    retention = config.retention
    found, skipped = [], []
    metrics = retention.metrics
    for registered in REGISTRY:
        name = registered.name
        if registered.cadence == "tiering":  # made by tiering in warm, never written to hot
            continue
        ages = retention.for_dataset(name)
        if ages is None:
            skipped.append(
                f"{name}: no retention applies; add retention.datasets.{name} to tier it"
            )
            continue
        stages = ages.stages()
        if registered.rollups:  # raw samples live until their resolution's age, in hot and warm
            raw = retention.resolution_age("raw")
            stages = [("hot", min(metrics.hot, raw))]
            if metrics.warm and raw > metrics.hot:
                stages.append(("warm", raw))
        elif registered.collapse_series:  # series outlive every sample and rollup naming them
            last = max([stages[-1][1]] + [retention.resolution_age(r) for r in RESOLUTIONS])
            stages = [*stages[:-1], (stages[-1][0], last)]
        elif registered.kept_longest and name not in retention.datasets:
            stages = [*stages[:-1], (stages[-1][0], longest_retention(config))]
        found.append(Stream(name, None, tuple(stages)))
    if metrics.warm and retention.resolution_age("raw") > metrics.hot:
        for resolution in RESOLUTIONS:
            age = retention.resolution_age(resolution)
            stages = [("warm", min(metrics.warm, age))]
            if metrics.cold and age > metrics.warm:
                stages.append(("cold", age))
            found.append(Stream(ROLLUPS, resolution, tuple(stages)))
    return found, skipped


def longest_retention(config: ObsConfig) -> timedelta:
    """The age at which the lake's longest-kept data is deleted: derived datasets (SLI minutes,
    up minutes, the series inventory) are kept that long, so reports outlive raw data."""
    retention = config.retention
    ages = [
        ages.stages()[-1][1]
        for ages in (retention.metrics, retention.logs, retention.traces, retention.alerts)
    ]
    ages += [a.stages()[-1][1] for a in retention.datasets.values()]
    ages += [retention.resolution_age(r) for r in RESOLUTIONS]
    return max(ages)


@dataclass
class Move:
    """One compaction into one new destination file (plus rollups for metric samples)."""

    stream: Stream
    tier: str
    start: datetime
    end: datetime
    existing: list[LakeFile]  # destination-tier files merged in and superseded
    sources: list[LakeFile]  # lower-tier files merged in and superseded
    reason: str  # "age" or "late"
    previous: list[LakeFile] = field(default_factory=list)  # raw day before (rollups only)

    @property
    def partition(self) -> str:
        if self.tier == "warm":
            return f"dt={self.start:%Y-%m-%d}"
        return f"month={self.start:%Y-%m} days {self.start:%d}-{(self.end - DAY):%d}"

    def describe(self) -> str:
        res = f" res={self.stream.resolution}" if self.stream.resolution else ""
        return f"{self.stream.dataset}{res} -> {self.tier} {self.partition}"


@dataclass(frozen=True)
class MoveReport:
    dataset: str
    resolution: str | None
    from_tiers: tuple[str, ...]
    tier: str
    partition: str
    key: str
    storage_class: str | None
    rows: int
    source_files: int
    bytes_before: int
    bytes_after: int
    reason: str
    rollup_bytes: int = 0


@dataclass(frozen=True)
class Deletion:
    dataset: str
    tier: str
    key: str
    bytes: int
    reason: str  # expired | superseded


@dataclass
class TieringResult:
    now: datetime
    moves: list[MoveReport] = field(default_factory=list)
    deletions: list[Deletion] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. stray files moved aside

    @property
    def bytes_before(self) -> int:
        return sum(m.bytes_before for m in self.moves)

    @property
    def bytes_after(self) -> int:
        return sum(m.bytes_after for m in self.moves)

    @property
    def compression_ratio(self) -> float | None:
        return self.bytes_before / self.bytes_after if self.bytes_after else None


def run_tiering(
    config: ObsConfig, now: datetime | None = None, *, hook: Hook | None = None
) -> TieringResult:
    """Bring the lake in line with the retention config as of ``now`` (default: the clock).

    Idempotent: a second run with the same ``now`` does nothing. ``hook(step, move)`` is called
    after each step of each move (``write``, ``verify``, ``publish``, ``delete``); tests raise
    from it to crash a move at that point.

    With ``lake.format: delta`` the same rules run as Delta commits
    (:func:`obs_pipelines.lake.delta_tiering.run_delta_tiering`; its hook gets a ``DeltaMove``).
    """
    if config.lake.format == "delta":
        from obs_pipelines.lake.delta_tiering import run_delta_tiering

        return run_delta_tiering(config, now, hook=hook)
    now = (now or datetime.now(UTC)).astimezone(UTC)
    lake = Lake(config)
    planned, skipped = streams(config)
    result = TieringResult(now, skipped=skipped)
    with _lake_lock(lake, config):
        for tier in ("warm", "cold"):
            lake.store(tier).sweep_staging(f"{tier}/")
        lake.adopt()
        for finding in repair_listing_faults(lake):
            target = result.notes if finding.kind == "stray" else result.problems
            target.append(finding.describe(lake))
        runner = _Runner(lake, config, now, hook or (lambda step, move: None), result)
        for _ in range(MAX_PASSES):
            if not any([runner.run(stream) for stream in planned]):
                break
        else:
            result.problems.append(f"tiering did not settle after {MAX_PASSES} passes; rerun")
    return result


def merge_rewritten(config: ObsConfig, datasets: tuple[str, ...]) -> TieringResult:
    """Fold hot hours of ``datasets`` written after their day moved to warm or cold (a
    recomputed SLO's minutes) into the file that holds their day now, instead of at the next
    tiering run: until then the colder file hides them. Nothing moves by age."""
    lake = Lake(config)
    result = TieringResult(datetime.now(UTC))
    planned = [s for s in streams(config)[0] if s.dataset in datasets]
    with _lake_lock(lake, config):
        runner = _Runner(lake, config, result.now, lambda step, move: None, result)
        for _ in range(MAX_PASSES):
            acted = False
            for stream in planned:
                files = runner._files(stream)
                visible, hidden = split_visible(files)
                acted = runner._settle_superseded(stream, files, visible, hidden) or acted
            if not acted:
                break
    return result


@contextmanager
def _lake_lock(lake: Lake, config: ObsConfig) -> Iterator[None]:
    store = lake.store("hot")
    owner = f"tiering@{socket.gethostname()}:{os.getpid()}"
    held = store.acquire_lock(LOCK_NAME, owner, config.lake.lock_ttl.total_seconds())
    try:
        yield
    finally:
        store.release_lock(held)


class _Runner:
    """Plans and performs the actions of one stream, one class of action per call."""

    def __init__(
        self, lake: Lake, config: ObsConfig, now: datetime, hook: Hook, result: TieringResult
    ) -> None:
        self.lake, self.config, self.now, self.hook, self.result = lake, config, now, hook, result
        self.delay = config.lake.delete_delay
        self.refused: set[str] = set()
        self._cache: dict[tuple[str, str | None], pa.Table] = {}
        # The source each file read records (footer key obs.source), carried into its successor.
        self._sources: dict[tuple[str, str | None], str | None] = {}

    # -- planning ---------------------------------------------------------------------------

    def run(self, stream: Stream) -> bool:
        """:meth:`advance`, except that a file found damaged on the way is quarantined and
        reported (the stream is planned again without it) instead of failing every run."""
        try:
            return self.advance(stream)
        except _Damaged as damaged:
            finding = quarantine_damaged(self.lake, damaged.file, damaged.problem)
            self.result.problems.append(finding.describe(self.lake))
            return True

    def advance(self, stream: Stream) -> bool:
        """Do the first kind of work the stream needs; False when it needs none."""
        self._cache.clear()
        self._sources.clear()
        files = self._files(stream)
        visible, hidden = split_visible(files)
        return (
            self._expire(stream, files, self._awaiting_rollups(stream, files))
            or self._settle_superseded(stream, files, visible, hidden)
            or self._move_due(stream, files, visible)
        )

    def _awaiting_rollups(self, stream: Stream, files: list[LakeFile]) -> set[str]:
        """Hot raw hours past raw retention whose day has no rollups yet but should keep them
        (a run after a long pause): they go through warm first, so their rollups get made."""
        if not dataset_of(stream.dataset).rollups or "warm" not in stream.tiers:
            return set()
        rollups = [f for f in self.lake.files(ROLLUPS) if f.resolution == "5m"]
        keep_after = self.now - min(self.config.retention.resolution_age(r) for r in RESOLUTIONS)
        return {
            f.key
            for f in files
            if f.tier == "hot"
            and f.end > keep_after
            and not any(r.start <= f.start and r.end >= f.end for r in rollups)
        }

    def _files(self, stream: Stream) -> list[LakeFile]:
        files = self.lake.files(stream.dataset)
        return [f for f in files if f.resolution == stream.resolution]

    def _expire(self, stream: Stream, files: list[LakeFile], exempt: set[str]) -> bool:
        horizon = self.now - stream.stages[-1][1]
        expired = [f for f in files if f.end <= horizon and f.key not in exempt]
        for f in expired:
            self._delete(f, "expired")
        return bool(expired)

    def _settle_superseded(
        self,
        stream: Stream,
        files: list[LakeFile],
        visible: list[LakeFile],
        hidden: list[LakeFile],
    ) -> bool:
        """Delete superseded files whose replacement holds their rows; re-compact late ones."""
        acted = False
        late: dict[str, tuple[LakeFile, list[LakeFile]]] = {}
        for f in hidden:
            winner = max(
                (g for g in visible if supersedes(g, f)),
                key=lambda g: (g.rank, g.generation),
                default=None,
            )
            if winner is None:
                continue
            if winner.key in self.refused or datetime.now(UTC) < winner.modified + self.delay:
                continue  # readers that listed the lake before the move may still read it
            if winner.tier == f.tier or self._holds(winner, f):
                self._delete(f, "superseded")
                acted = True
            else:
                late.setdefault(winner.key, (winner, []))[1].append(f)
        for winner, stale in late.values():
            if winner.storage_class in ARCHIVE_STORAGE_CLASSES:
                self.refused.add(winner.key)
                self.result.problems.append(
                    f"{stream.name}: {', '.join(s.key for s in stale)} was rewritten after its "
                    f"data moved to {winner.tier} file {winner.key}, stored as "
                    f"{winner.storage_class}; restore that object (aws s3api restore-object) and "
                    "rerun tiering to merge it, or delete the rewritten hour"
                )
                continue
            move = self._plan_move(stream, files, winner.tier, winner.start, winner.end, "late")
            if move is not None:
                self._perform(move)
                acted = True
        return acted

    def _move_due(self, stream: Stream, files: list[LakeFile], visible: list[LakeFile]) -> bool:
        for tier in ("hot", "warm"):
            target = stream.next_tier(tier)
            if target is None:
                continue
            horizon = self.now - stream.leaves_at(tier)
            # Whole days move: an hour waits until the last hour of its day is old enough.
            due = [f for f in visible if f.tier == tier and _day_end(f) <= horizon]
            if not due:
                continue
            for start, end in _destinations(target, due):
                move = self._plan_move(stream, files, target, start, end, "age")
                if move is not None:
                    self._perform(move)
            return True
        return False

    def _plan_move(
        self,
        stream: Stream,
        files: list[LakeFile],
        tier: str,
        start: datetime,
        end: datetime,
        reason: str,
    ) -> Move | None:
        """The move that makes one ``tier`` file cover [start, end) (a day, or days of a month),
        merging what that tier already holds there and every lower-tier file inside."""
        visible, _ = split_visible(files)
        if tier == "cold":  # one file per month: whatever the month holds is merged
            existing = [
                f
                for f in visible
                if f.tier == tier and (f.start.year, f.start.month) == (start.year, start.month)
            ]
        else:
            existing = [f for f in visible if f.tier == tier and f.end > start and f.start < end]
        readable = [f for f in existing if f.storage_class not in ARCHIVE_STORAGE_CLASSES]
        if tier == "cold" and readable:
            start = min([start, *(f.start for f in readable)])
            end = max([end, *(f.end for f in readable)])
        archived = [f for f in existing if f not in readable]
        overlapping = [f for f in archived if f.end > start and f.start < end]
        if overlapping:
            self.result.problems.append(
                f"{stream.name}: cannot add data to {overlapping[0].key} ({overlapping[0].storage_class}); "
                "restore it (aws s3api restore-object) and rerun tiering"
            )
            return None
        lower = [f for f in files if f.rank < _rank(tier) and f.start >= start and f.end <= end]
        sources, _ = split_visible(lower)
        previous: list[LakeFile] = []
        if dataset_of(stream.dataset).rollups and tier == "warm":
            previous = [f for f in visible if f.end <= start and f.end > start - DAY]
        if not sources and not [f for f in readable if f.tier == tier]:
            return None
        return Move(stream, tier, start, end, readable, sources, reason, previous)

    # -- performing --------------------------------------------------------------------------

    def _perform(self, move: Move) -> None:
        name = move.stream.dataset
        existing = [self._logical(f) for f in move.existing]
        sources = [self._logical(f) for f in move.sources]
        merged, expected = _merge(name, existing, sources, [s.window for s in move.sources])
        generation = new_generation()  # the real clock: generations must grow across runs
        written_by = combined_sources(
            [self._sources.get((f.key, f.etag)) for f in move.sources + move.existing]
        )
        outputs = [self._output(move, merged, expected, generation, None, written_by)]
        if dataset_of(name).rollups and move.tier == "warm":
            previous = _previous_samples([self._logical(f) for f in move.previous])
            for resolution in RESOLUTIONS:
                rollups = compute_rollups(merged, resolution, previous)
                outputs.insert(
                    0,
                    self._output(
                        move, rollups, table_checksum(rollups), generation, resolution, written_by
                    ),
                )
        with ExitStack() as stack:
            staged = [
                stack.enter_context(self.lake.store(move.tier).staging(o.key)) for o in outputs
            ]
            for output, path in zip(outputs, staged, strict=True):
                _write(path, output)
            self.hook("write", move)
            for output, path in zip(outputs, staged, strict=True):
                self._verify(path, output, move)
            self.hook("verify", move)
            sizes = [
                self.lake.store(move.tier).publish(
                    path,
                    o.key,
                    storage_class=self.lake.storage_class(move.tier),
                    rows=o.table.num_rows,
                )
                for o, path in zip(outputs, staged, strict=True)
            ]
        self.hook("publish", move)
        replaced = move.sources + move.existing
        self.result.moves.append(
            MoveReport(
                dataset=name,
                resolution=move.stream.resolution,
                from_tiers=tuple(sorted({f.tier for f in replaced}, key=_rank)),
                tier=move.tier,
                partition=move.partition,
                key=outputs[-1].key,
                storage_class=self.lake.storage_class(move.tier),
                rows=merged.num_rows,
                source_files=len(replaced),
                bytes_before=sum(f.size for f in replaced),
                bytes_after=sizes[-1],
                reason=move.reason,
                rollup_bytes=sum(sizes[:-1]),
            )
        )
        if self.delay <= timedelta(0):
            for f in replaced:
                self._delete(f, "superseded")
            self.hook("delete", move)

    def _output(
        self,
        move: Move,
        table: pa.Table,
        expected: Checksum,
        generation: str,
        resolution: str | None,
        written_by: str | None = None,
    ) -> "_Output":
        dataset = ROLLUPS if resolution else move.stream.dataset
        res = resolution or move.stream.resolution
        if move.tier == "warm":
            key = warm_file(dataset, move.start.date(), generation, res)
        else:
            key = cold_file(dataset, move.start.date(), (move.end - DAY).date(), generation, res)
        level = self.config.lake.tier(move.tier).zstd_level or DEFAULT_ZSTD_LEVELS[move.tier]
        return _Output(
            dataset,
            key,
            table,
            expected,
            _encoding(dataset, level),
            move.start,
            move.end,
            written_by,
        )

    def _verify(self, path: Path, output: "_Output", move: Move) -> None:
        """The staged file, decoded as the catalog decodes it, must hold exactly the expected rows."""
        written = _decode(output.dataset, pq.read_table(path))
        got = table_checksum(written)
        if got != output.expected:
            raise LakeError(
                f"verification of {move.describe()} failed: wrote {got.rows} rows, expected "
                f"{output.expected.rows} (or their checksums differ); nothing was published or "
                "deleted, this is a bug to report"
            )

    def _logical(self, file: LakeFile) -> pa.Table:
        """A file's rows in the form merges work on (decoded; hot rows stamped with their hour)."""
        cached = self._cache.get((file.key, file.etag))
        if cached is None:
            cached = self._cache[(file.key, file.etag)] = self._read_logical(file)
        return cached

    def _read_logical(self, file: LakeFile) -> pa.Table:
        try:
            stored = self.lake.read_file(file)
            self._sources[(file.key, file.etag)] = recorded_source(stored.schema.metadata)
            table = _decode(file.dataset, stored)
        except (LakeError, pa.ArrowException, OSError) as exc:
            raise _Damaged(file, f"unreadable ({str(exc).splitlines()[0][:160]})") from None
        if file.rows is not None and table.num_rows != file.rows:
            raise _Damaged(file, f"{table.num_rows} rows where {file.rows} were published")
        if file.tier != "hot":
            return table
        if dataset_of(file.dataset).collapse_series:
            stamp = pa.array([file.start] * table.num_rows, pa.timestamp("ms"))
            return table.append_column(SERIES_SEEN[0], stamp).append_column(SERIES_SEEN[1], stamp)
        if _time_column(file.dataset) == HOUR_COLUMN:
            stamp = pa.array([file.start] * table.num_rows, pa.timestamp("ms"))
            return table.append_column(HOUR_COLUMN, stamp)
        return table

    def _holds(self, winner: LakeFile, stale: LakeFile) -> bool:
        """Whether ``winner`` holds exactly ``stale``'s rows for ``stale``'s span."""
        mine = self._logical(stale)
        theirs = self._logical(winner)
        if dataset_of(stale.dataset).collapse_series:
            first, last = (np.asarray(theirs.column(c).cast(pa.int64())) for c in SERIES_SEEN)
            hour = int(stale.start.timestamp() * 1000)
            covered = np.asarray(theirs.column("series_id"))[(first <= hour) & (last >= hour)]
            return bool(np.isin(np.asarray(mine.column("series_id")), covered).all())
        inside = _rows_within(theirs, stale.dataset, [stale.window])
        return table_checksum(theirs.filter(inside)) == table_checksum(mine)

    def _delete(self, file: LakeFile, reason: str) -> None:
        if self.lake.store(file.tier).delete_if_unchanged(file.key, file.etag, file.markers):
            self.result.deletions.append(
                Deletion(file.dataset, file.tier, file.key, file.size, reason)
            )
        else:
            self.result.problems.append(
                f"{file.dataset}: {file.key} changed while tiering ran; left for the next run"
            )


class _Damaged(Exception):
    """A file a move needed could not be read as published."""

    def __init__(self, file: LakeFile, problem: str) -> None:
        super().__init__(problem)
        self.file, self.problem = file, problem


@dataclass(frozen=True)
class _Output:
    dataset: str
    key: str
    table: pa.Table
    expected: Checksum
    encoding: Encoding
    start: datetime
    end: datetime
    written_by: str | None = None  # obs.source: the sources of the files it was made from


def recorded_source(metadata: dict[bytes, bytes] | None) -> str | None:
    """The source a lake file records in its footer (``obs.source``), if any."""
    value = (metadata or {}).get(SOURCE_KEY)
    return value.decode() if value else None


def combined_sources(recorded: list[str | None]) -> str | None:
    """What a file made from files that recorded ``recorded`` records: their distinct sources,
    sorted and comma-separated (``prometheus``, or ``prometheus,simulator`` when sources were
    mixed), with ``unknown`` for inputs that recorded none; None when none recorded any (derived
    datasets, or a lake written before sources were recorded)."""
    names = {n for r in recorded if r for n in r.split(",")}
    if not names:
        return None
    if any(r is None for r in recorded):
        names.add("unknown")
    return ",".join(sorted(names))


def _write(path: Path, output: _Output) -> None:
    samples = dataset_of(output.dataset).codec == "samples"
    table = encode_samples(output.table) if samples else output.table
    metadata = {
        b"obs.dataset": output.dataset.encode(),
        b"obs.window_start": output.start.isoformat().encode(),
        b"obs.window_end": output.end.isoformat().encode(),
        b"obs.written_at": datetime.now(UTC).isoformat().encode(),
        **({SOURCE_KEY: output.written_by.encode()} if output.written_by else {}),
    }
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    options = output.encoding.for_schema(table.schema).writer_options()
    pq.write_table(table, path, row_group_size=output.encoding.row_group_size, **options)  # type: ignore[arg-type]


def _encoding(name: str, level: int) -> Encoding:
    codec = dataset_of(name).codec
    if codec == "samples":
        return warm_samples_encoding(level)
    if codec == "rollups":
        return Encoding(
            compression_level=level,
            column_encoding={
                "ts": "DELTA_BINARY_PACKED",
                "count": "DELTA_BINARY_PACKED",
                **{
                    c: "BYTE_STREAM_SPLIT"
                    for c in ("sum", "min", "max", "last", "counter_increase")
                },
            },
            use_dictionary=("series_id", "resolution"),
            whole_pages=True,
        )
    return Encoding(compression_level=level, whole_pages=True)


def _decode(name: str, table: pa.Table) -> pa.Table:
    """A stored table in its logical form (warm metric samples are stored encoded)."""
    if dataset_of(name).codec == "samples" and "ts_base" in table.column_names:
        return decode_samples(table)
    return table.replace_schema_metadata(None)


def _time_column(name: str) -> str:
    return dataset_of(name).time_column or HOUR_COLUMN


def _rows_within(table: pa.Table, name: str, windows: list) -> pa.Array:
    """Mask of rows whose time falls in any of ``windows``, compared in the column's own unit
    (spans and logs carry microseconds: a cast to ms would refuse or round them)."""
    column = table.column(_time_column(name))
    inside = pa.array(np.zeros(len(column), dtype=bool))
    for w in windows:
        start = pa.scalar(w.start, column.type)
        end = pa.scalar(w.end, column.type)
        inside = pc.or_(inside, pc.and_(pc.greater_equal(column, start), pc.less(column, end)))
    return inside.combine_chunks() if isinstance(inside, pa.ChunkedArray) else inside


def _merge(
    name: str, existing: list[pa.Table], sources: list[pa.Table], windows: list
) -> tuple[pa.Table, Checksum]:
    """The destination's rows: what it held outside the sources' spans, plus the sources' rows
    (a rewritten hour replaces that hour), sorted; and their checksum summed from the inputs."""
    registered = dataset_of(name)
    if registered.collapse_series:
        merged = _collapse_series(existing + sources)
        return merged, table_checksum(merged)
    kept = [t.filter(pc.invert(_rows_within(t, name, windows))) for t in existing]
    parts = [t for t in kept + sources if t.num_rows]
    expected = sum((table_checksum(t) for t in parts), EMPTY)
    schema = _logical_schema(name)
    table = (
        pa.concat_tables([t.select(schema.names).cast(schema) for t in parts])
        if parts
        else schema.empty_table()
    )
    if table.num_rows > 1 and registered.sort_keys:
        table = table.sort_by([(k, "ascending") for k in registered.sort_keys])
    return table, expected


def stored_schema(name: str, tier: str) -> pa.Schema | None:
    """The schema of ``name``'s files in ``tier`` as written (None: it never lives there)."""
    registered = dataset_of(name)
    if tier == "hot":
        return None if registered.cadence == "tiering" else registered.schema
    if registered.codec == "samples":
        return WARM_SAMPLES
    if registered.collapse_series:
        return _series_schema()
    return _logical_schema(name)


def _series_schema() -> pa.Schema:
    return METRIC_SERIES.append(pa.field(SERIES_SEEN[0], pa.timestamp("ms"))).append(
        pa.field(SERIES_SEEN[1], pa.timestamp("ms"))
    )


def _logical_schema(name: str) -> pa.Schema:
    schema = dataset_of(name).schema
    if _time_column(name) == HOUR_COLUMN:
        schema = schema.append(pa.field(HOUR_COLUMN, pa.timestamp("ms"), nullable=False))
    return schema


def _collapse_series(tables: list[pa.Table]) -> pa.Table:
    """One row per series with the first and last hour it was seen in (series never change:
    the id is a hash of the metric and labels)."""
    schema = _series_schema()
    tables = [t.select(schema.names).cast(schema) for t in tables if t.num_rows]
    if not tables:
        return schema.empty_table()
    rows = pa.concat_tables(tables).sort_by(
        [("series_id", "ascending"), (SERIES_SEEN[0], "ascending")]
    )
    ids = np.asarray(rows.column("series_id"))
    first = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    starts = np.asarray(rows.column(SERIES_SEEN[0]).cast(pa.int64()))
    ends = np.asarray(rows.column(SERIES_SEEN[1]).cast(pa.int64()))
    collapsed = rows.take(pa.array(first))
    return collapsed.set_column(
        schema.get_field_index(SERIES_SEEN[0]),
        SERIES_SEEN[0],
        pa.array(np.minimum.reduceat(starts, first)).cast(pa.timestamp("ms")),
    ).set_column(
        schema.get_field_index(SERIES_SEEN[1]),
        SERIES_SEEN[1],
        pa.array(np.maximum.reduceat(ends, first)).cast(pa.timestamp("ms")),
    )


def _previous_samples(tables: list[pa.Table]) -> pa.Table | None:
    if not tables:
        return None
    samples = pa.concat_tables(
        [t.select(METRIC_SAMPLES.names).cast(METRIC_SAMPLES) for t in tables]
    )
    return last_samples(samples.sort_by([("series_id", "ascending"), ("ts", "ascending")]))


def _destinations(tier: str, due: list[LakeFile]) -> list[tuple[datetime, datetime]]:
    """Destination spans for ``due`` files: one per day (warm) or per month (cold: the due days)."""
    if tier == "warm":
        days = sorted({day_start(f.start.date()) for f in due})
        return [(d, d + DAY) for d in days]
    months: dict[tuple[int, int], tuple[datetime, datetime]] = {}
    for f in due:
        key = (f.start.year, f.start.month)
        start = day_start(f.start.date())
        end = day_start((f.end - timedelta(milliseconds=1)).date()) + DAY
        lo, hi = months.get(key, (start, end))
        months[key] = (min(lo, start), max(hi, end))
    return sorted(months.values())


def _day_end(file: LakeFile) -> datetime:
    return day_start((file.end - timedelta(milliseconds=1)).date()) + DAY


def _rank(tier: str) -> int:
    return {"hot": 0, "warm": 1, "cold": 2}[tier]
