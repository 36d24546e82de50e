"""Ingest: pull hourly windows from a source and publish them as hot partitions.

Each hour is read whole, de-duplicated (a sample fetched twice through overlapping selectors is
the same sample), sorted by (series_id, ts) and staged; a run's hours are then published with one
atomic commit per dataset. A rerun of the same hours replaces them with identical content.

An hour the source answers with no rows never replaces rows the lake holds for it (in any tier):
a source forgets (Elasticsearch's and Jaeger's retention, Prometheus's, an index pattern that no
longer matches), and the lake is what keeps what the sources forget. Such an hour is left as it
is, reported ``kept`` with the rows it holds, and the run succeeds; :func:`kept_warning` is the
line that reports it. An answer with rows still replaces the hour, so reruns stay idempotent.
"""

import ctypes
import ctypes.util
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cache

import numpy as np
import pyarrow as pa

from obs_pipelines.datasets import dataset
from obs_pipelines.errors import SourceError
from obs_pipelines.lake import Lake
from obs_pipelines.lake.delta_tables import HourBatch
from obs_pipelines.schemas import METRIC_SAMPLES, METRIC_SERIES
from obs_pipelines.sources.base import MetricChunk, MetricSource, TableSource
from obs_pipelines.windows import TimeWindow, minute_text

# The key of the run's metadata that carries the kept hours' warning (the CLI prints it).
KEPT_METADATA = "run kept hours"


@dataclass(frozen=True)
class MetricsIngestResult:
    window: TimeWindow
    series: int
    samples: int
    source_samples: int  # what the source returned, before de-duplication
    # The distinct (series_id, ts) the source returned, counted apart from the sort and
    # de-duplication that feed the writer: what the published partition must hold.
    source_distinct: int
    duplicates_dropped: int
    bytes: int
    first_ts_ms: int | None
    last_ts_ms: int | None
    # The datasets whose hour the source answered with nothing and the lake kept as it holds
    # it (then ``samples`` or ``series`` count what the lake holds).
    kept: tuple[str, ...] = ()


def ingest_metrics_hour(lake: Lake, source: MetricSource, hour: TimeWindow) -> MetricsIngestResult:
    """Read ``hour`` from ``source`` and replace its ``metric_series`` and ``metric_samples`` partitions."""
    return ingest_metrics_hours(lake, source, [hour])[0]


def ingest_metrics_hours(
    lake: Lake, source: MetricSource, hours: list[TimeWindow]
) -> list[MetricsIngestResult]:
    """Read each of ``hours`` from ``source`` (one hour in memory at a time) and replace them
    in ``metric_series`` and ``metric_samples`` with one commit per dataset: a source failing
    at any hour publishes none of them, and a rerun replaces them all again."""
    staged = []
    with (
        lake.batch("metric_series", source=source.name) as series,
        lake.batch("metric_samples", source=source.name) as samples,
    ):
        for hour, got in _chunks_by_hour(source, hours):
            staged.append(_stage_metrics_hour(series, samples, source, hour, got))
        series_written = {w.window: w for w in series.commit()}
        samples_written = {w.window: w for w in samples.commit()}
    return [
        replace(
            s,
            series=series_written[s.window].rows,
            samples=samples_written[s.window].rows,
            bytes=series_written[s.window].bytes + samples_written[s.window].bytes,
            kept=tuple(
                w.dataset for w in (series_written[s.window], samples_written[s.window]) if w.kept
            ),
        )
        for s in staged
    ]


def metrics_kept_warnings(results: list[MetricsIngestResult]) -> dict[str, str]:
    """The :func:`kept_warning` of each metrics dataset that kept hours of the run."""
    found = {}
    for name, counted in (("metric_series", "series"), ("metric_samples", "samples")):
        line = kept_warning(
            name, [(r.window, getattr(r, counted)) for r in results if name in r.kept]
        )
        if line:
            found[name] = line
    return found


@dataclass
class _HourSamples:
    """One hour's chunks as they arrive: their series tables, and their samples as arrays over
    the chunks' own buffers, column by column, so that each column of the hour can be joined
    and its parts released before the next (a chunk kept whole would hold all three)."""

    series: list[pa.Table] = field(default_factory=list)
    ids: list[np.ndarray] = field(default_factory=list)
    ts: list[np.ndarray] = field(default_factory=list)
    values: list[np.ndarray] = field(default_factory=list)

    @classmethod
    def of(cls, chunks: Iterable[MetricChunk]) -> "_HourSamples":
        """The samples of ``chunks`` (no chunk outlives this call: only its columns do)."""
        got = cls()
        for chunk in chunks:
            got.add(chunk)
        return got

    def add(self, chunk: MetricChunk) -> None:
        samples = chunk.samples
        self.series.append(chunk.series)
        self.ids.append(_array(samples.column("series_id"), pa.uint64()))
        self.ts.append(_array(samples.column("ts").cast(pa.timestamp("ms")), pa.int64()))
        self.values.append(_array(samples.column("value"), pa.float64()))


def _array(column: pa.ChunkedArray, kind: pa.DataType) -> np.ndarray:
    """A column of non-null numbers as one numpy array (no copy for one chunk of that type:
    ``combine_chunks`` would copy even that)."""
    column = column.cast(kind)
    whole = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    return whole.to_numpy(zero_copy_only=False)


def _joined(parts: list[np.ndarray], kind: type[np.generic]) -> np.ndarray:
    """``parts`` as one array; the list is emptied, so each part is freed once joined."""
    whole = parts[0] if len(parts) == 1 else np.concatenate(parts) if parts else np.empty(0, kind)
    joined = len(parts) > 1
    parts.clear()
    if joined:
        _return_freed_memory()
    return whole


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim`` (None elsewhere: musl, macOS)."""
    found = ctypes.util.find_library("c")
    return getattr(ctypes.CDLL(found), "malloc_trim", None) if found else None


def _return_freed_memory() -> None:
    """Hand the heap's free pages back to the system. The chunks' columns (each under glibc's
    threshold for memory of its own) were freed into the heap once joined, and glibc keeps such
    pages: the process would count the hour twice while it is sorted (measured in bench/)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _chunks_by_hour(
    source: MetricSource, hours: list[TimeWindow]
) -> Iterator[tuple[TimeWindow, _HourSamples]]:
    """Each of ``hours`` with its samples, in order. A source that reads across hours
    (``read_metrics_hours``: Prometheus) already has the next hour's requests on the server
    while the caller stores this one."""
    across = getattr(source, "read_metrics_hours", None)
    if across is None:
        for hour in hours:
            yield hour, _HourSamples.of(source.read_metrics(hour))
        return
    held: dict[datetime, _HourSamples] = {hour.start: _HourSamples() for hour in hours}
    for window, chunk in across(hours):
        if chunk is None:  # the window's last answer came
            yield window, held.pop(window.start)
        else:
            held[window.start].add(chunk)
    for hour in hours:  # a window the source had nothing to ask for
        if hour.start in held:
            yield hour, held.pop(hour.start)


def _stage_metrics_hour(
    series_batch: HourBatch,
    samples_batch: HourBatch,
    source: MetricSource,
    hour: TimeWindow,
    got: _HourSamples,
) -> MetricsIngestResult:
    """One hour's samples de-duplicated and sorted, and staged in both batches (the rows and
    bytes published are set once the batches commit). The hour's columns are held about once:
    each is joined from its chunks and then replaced by its sorted self, one at a time."""
    series = _unique_series(
        pa.concat_tables(got.series, promote_options="none")
        if got.series
        else METRIC_SERIES.empty_table()
    )
    ids, ts = _joined(got.ids, np.uint64), _joined(got.ts, np.int64)
    source_samples = ids.size
    order = _series_time_order(ids, ts)
    ids = ids[order]  # each column is replaced by its sorted self, one at a time
    ts = ts[order]
    if not _in_series_time_order(ids, ts):  # runs overlapped: a full sort of those
        again = np.lexsort((ts, ids))
        ids, ts, order = ids[again], ts[again], order[again]
        del again
    values = _joined(got.values, np.float64)[order]
    del order
    first = _first_of_each_sample(ids, ts)
    distinct = source_samples if first is None else _distinct_samples(ids, ts)
    if first is not None:
        ids, ts, values = ids[first], ts[first], values[first]
    if ts.size and (ts.min() < hour.start_ms or ts.max() >= hour.end_ms):
        raise SourceError(
            f"{source.name} returned samples outside {hour}; this is a bug in the source, please report it"
        )
    samples = pa.table(
        [pa.array(ids), pa.array(ts.view("datetime64[ms]")), pa.array(values)],
        schema=METRIC_SAMPLES,
    )
    series_batch.add(hour, series, keep_held=True)
    samples_batch.add(hour, samples, sort=False, keep_held=True, source_rows=str(source_samples))
    return MetricsIngestResult(
        window=hour,
        series=series.num_rows,
        samples=samples.num_rows,
        source_samples=source_samples,
        source_distinct=distinct,
        duplicates_dropped=source_samples - samples.num_rows,
        bytes=0,
        first_ts_ms=int(ts.min()) if ts.size else None,
        last_ts_ms=int(ts.max()) if ts.size else None,
    )


def _distinct_samples(ids: np.ndarray, ts: np.ndarray) -> int:
    """Distinct (series_id, ts) by hashing, independently of the de-duplication of neighbours
    (the samples are a permutation of those returned: the same set). Counted only when that
    dropped something: a hash of every sample costs about as much as the sort, and when
    nothing was dropped every sample returned must be published."""
    keys = pa.table({"series_id": ids, "ts": ts})
    return keys.group_by(["series_id", "ts"]).aggregate([]).num_rows


def _unique_series(series: pa.Table) -> pa.Table:
    ids = series.column("series_id").to_numpy()
    _, first = np.unique(ids, return_index=True)
    return series.take(pa.array(np.sort(first)))


def _series_time_order(ids: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """The permutation ordering samples by (series_id, ts) by ordering whole runs: sources
    return each series' samples in time order, so only the runs need sorting (3x faster than a
    row sort). Overlapping runs (the same series fetched twice) leave it out of order: the
    caller checks (:func:`_in_series_time_order`) and falls back to a full sort."""
    if ids.size < 2:
        return np.arange(ids.size)
    starts = np.flatnonzero(np.r_[True, (ids[1:] != ids[:-1]) | (ts[1:] <= ts[:-1])])
    lengths = np.diff(np.r_[starts, ids.size])
    runs = np.lexsort((ts[starts], ids[starts]))
    offsets = np.r_[0, np.cumsum(lengths[runs])[:-1]]
    index = np.repeat(starts[runs] - offsets, lengths[runs])
    index += np.arange(ids.size)
    return index


def _in_series_time_order(ids: np.ndarray, ts: np.ndarray) -> bool:
    return not np.any((ids[1:] < ids[:-1]) | ((ids[1:] == ids[:-1]) & (ts[1:] < ts[:-1])))


def _first_of_each_sample(ids: np.ndarray, ts: np.ndarray) -> np.ndarray | None:
    """Of samples sorted by (series_id, ts), the mask keeping the first of each (series, time),
    or None when no sample repeats (a sample fetched twice is stored once)."""
    repeated = (ids[1:] == ids[:-1]) & (ts[1:] == ts[:-1])
    if not repeated.any():
        return None
    return np.r_[True, ~repeated]


@dataclass(frozen=True)
class TableIngestResult:
    dataset: str
    window: TimeWindow
    rows: int
    bytes: int
    kept: bool = False  # the source returned nothing; ``rows`` are what the lake kept


def ingest_table_hour(lake: Lake, source: TableSource, hour: TimeWindow) -> TableIngestResult:
    """Read ``hour`` of one dataset from ``source`` and replace its hourly partition.

    For snapshot datasets (rules, Alertmanager state) ``hour`` is the hour the snapshot is filed
    under; a later snapshot in the same hour replaces the earlier one, even an empty one (no rule
    loaded, no alert active): a snapshot describes now, so its empty answer is the truth.
    """
    return ingest_table_hours(lake, source, [hour])[0]


def ingest_table_hours(
    lake: Lake, source: TableSource, hours: list[TimeWindow]
) -> list[TableIngestResult]:
    """Read each of ``hours`` of one dataset from ``source`` and replace them in one commit: a
    source failing at any hour publishes none of them. The tables a source yields are written
    to the hour's file as they come (memory holds a row group, not the hour). An hourly
    dataset's hour answered with no rows keeps what the lake holds (a snapshot's does not)."""
    registered = dataset(source.dataset)
    with lake.batch(source.dataset, source=source.name) as batch:
        for hour in hours:
            parts = _checked_parts(source, registered.schema, registered.time_column, hour)
            batch.add_parts(hour, parts, keep_held=registered.cadence == "hourly")
        written = batch.commit()
    return [TableIngestResult(source.dataset, w.window, w.rows, w.bytes, w.kept) for w in written]


def kept_warning(dataset: str, kept: list[tuple[TimeWindow, int]]) -> str | None:
    """One line reporting the hours of ``dataset`` that were kept, each with the rows the lake
    holds for it (None when none was): the run succeeded, but the source has forgotten them,
    which its owner may want to know (a retention shorter than thought, a wrong index)."""
    if not kept:
        return None
    rows = sum(n for _, n in kept)
    first, last = kept[0][0].start, kept[-1][0].start
    hours = (
        minute_text(first)
        if len(kept) == 1
        else f"{len(kept)} hours from {minute_text(first)} to {minute_text(last)}"
    )
    return (
        f"{dataset} {hours}: the source returned no rows; kept the {rows} rows the lake holds "
        "(the source may have aged them out)"
    )


def _checked_parts(
    source: TableSource, schema: pa.Schema, time_column: str | None, hour: TimeWindow
) -> Iterator[pa.Table]:
    """The tables ``source`` yields for ``hour``, in the registry's columns, each checked to
    hold rows of that hour only."""
    for part in source.read(hour):
        table = part.select(schema.names).cast(schema)
        _refuse_rows_outside(source, time_column, table, hour)
        yield table


def _refuse_rows_outside(
    source: TableSource, time_column: str | None, table: pa.Table, hour: TimeWindow
) -> None:
    if not time_column or not table.num_rows:
        return
    times = table.column(time_column).cast(pa.timestamp("us")).cast(pa.int64()).to_numpy()
    if times.min() < hour.start_ms * 1000 or times.max() >= hour.end_ms * 1000:
        raise SourceError(
            f"{source.name} returned {source.dataset} rows outside {hour}; this is a bug in the source, please report it"
        )
