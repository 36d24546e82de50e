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

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime

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
        for hour, chunks in _chunks_by_hour(source, hours):
            staged.append(_stage_metrics_hour(series, samples, source, hour, chunks))
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


def _chunks_by_hour(
    source: MetricSource, hours: list[TimeWindow]
) -> Iterator[tuple[TimeWindow, list[MetricChunk]]]:
    """Each of ``hours`` with its chunks, in order. A source that reads across hours
    (``read_metrics_hours``: Prometheus) already has the next hour's requests on the server
    while the caller stores this one."""
    across = getattr(source, "read_metrics_hours", None)
    if across is None:
        for hour in hours:
            yield hour, list(source.read_metrics(hour))
        return
    chunks: dict[datetime, list[MetricChunk]] = {hour.start: [] for hour in hours}
    for window, chunk in across(hours):
        if chunk is None:  # the window's last answer came
            yield window, chunks.pop(window.start)
        else:
            chunks[window.start].append(chunk)
    for hour in hours:  # a window the source had nothing to ask for
        if hour.start in chunks:
            yield hour, chunks.pop(hour.start)


def _stage_metrics_hour(
    series_batch: HourBatch,
    samples_batch: HourBatch,
    source: MetricSource,
    hour: TimeWindow,
    chunks: list[MetricChunk],
) -> MetricsIngestResult:
    """One hour's chunks de-duplicated and sorted, and staged in both batches (the rows and
    bytes published are set once the batches commit)."""
    series = _unique_series(
        pa.concat_tables([c.series for c in chunks], promote_options="none")
        if chunks
        else METRIC_SERIES.empty_table()
    )
    samples = (
        pa.concat_tables([c.samples for c in chunks]) if chunks else METRIC_SAMPLES.empty_table()
    )
    returned = samples
    source_samples = returned.num_rows
    samples = _drop_repeated_samples(_sorted_by_series_and_time(returned))
    dropped = samples.num_rows < source_samples
    ts = samples.column("ts").cast(pa.int64()).to_numpy()
    if ts.size and (ts.min() < hour.start_ms or ts.max() >= hour.end_ms):
        raise SourceError(
            f"{source.name} returned samples outside {hour}; this is a bug in the source, please report it"
        )
    series_batch.add(hour, series, keep_held=True)
    samples_batch.add(hour, samples, sort=False, keep_held=True, source_rows=str(source_samples))
    return MetricsIngestResult(
        window=hour,
        series=series.num_rows,
        samples=samples.num_rows,
        source_samples=source_samples,
        source_distinct=_distinct_samples(returned) if dropped else source_samples,
        duplicates_dropped=source_samples - samples.num_rows,
        bytes=0,
        first_ts_ms=int(ts.min()) if ts.size else None,
        last_ts_ms=int(ts.max()) if ts.size else None,
    )


def _distinct_samples(samples: pa.Table) -> int:
    """Distinct (series_id, ts) by hashing, independently of the sort-based de-duplication.
    Counted only when that dropped something: a hash of every sample costs about as much as
    the sort, and when nothing was dropped every sample returned must be published."""
    return samples.group_by(["series_id", "ts"]).aggregate([]).num_rows


def _unique_series(series: pa.Table) -> pa.Table:
    ids = series.column("series_id").to_numpy()
    _, first = np.unique(ids, return_index=True)
    return series.take(pa.array(np.sort(first)))


def _sorted_by_series_and_time(samples: pa.Table) -> pa.Table:
    """Sort by (series_id, ts) by ordering whole runs: sources return each series' samples in
    time order, so only the runs need sorting (3x faster than a row sort). Overlapping runs (the
    same series fetched twice) fall back to a full sort."""
    if samples.num_rows < 2:
        return samples
    ids = samples.column("series_id").to_numpy()
    ts = samples.column("ts").cast(pa.int64()).to_numpy()
    starts = np.flatnonzero(np.r_[True, (ids[1:] != ids[:-1]) | (ts[1:] <= ts[:-1])])
    lengths = np.diff(np.r_[starts, ids.size])
    order = np.lexsort((ts[starts], ids[starts]))
    offsets = np.r_[0, np.cumsum(lengths[order])[:-1]]
    index = np.repeat(starts[order] - offsets, lengths[order]) + np.arange(ids.size)
    ids, ts = ids[index], ts[index]
    if np.any((ids[1:] < ids[:-1]) | ((ids[1:] == ids[:-1]) & (ts[1:] < ts[:-1]))):
        return samples.sort_by([("series_id", "ascending"), ("ts", "ascending")])
    return samples.take(pa.array(index))


def _drop_repeated_samples(samples: pa.Table) -> pa.Table:
    if samples.num_rows < 2:
        return samples
    ids = samples.column("series_id").to_numpy()
    ts = samples.column("ts").cast(pa.int64()).to_numpy()
    repeated = np.zeros(ids.size, dtype=bool)
    repeated[1:] = (ids[1:] == ids[:-1]) & (ts[1:] == ts[:-1])
    return samples.filter(pa.array(~repeated)) if repeated.any() else samples


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
    """Read each of ``hours`` of one dataset from ``source`` (one hour in memory at a time) and
    replace them in one commit: a source failing at any hour publishes none of them. An hourly
    dataset's hour answered with no rows keeps what the lake holds (a snapshot's does not)."""
    registered = dataset(source.dataset)
    schema = registered.schema
    with lake.batch(source.dataset, source=source.name) as batch:
        for hour in hours:
            tables = [t.select(schema.names).cast(schema) for t in source.read(hour)]
            table = pa.concat_tables(tables) if tables else schema.empty_table()
            _refuse_rows_outside(source, registered.time_column, table, hour)
            batch.add(hour, table, keep_held=registered.cadence == "hourly")
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
