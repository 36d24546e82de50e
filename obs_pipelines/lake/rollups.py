"""Metric rollups (Thanos-style downsampling), computed exactly from raw samples with numpy.

One row per series per bucket (``ts`` is the bucket start; ``resolution`` '5m' or '1h'):

* ``count``, ``min``, ``max``, ``last``: of the raw samples in the bucket (min and max ignore NaN
  unless every sample is NaN, like PromQL's ``min_over_time``).
* ``sum``: the samples added one after another in time order, starting from the first (what
  PromQL's ``sum_over_time`` did before Kahan summation), so it is reproducible bit for bit.
* ``counter_increase``: the increase of a counter across every raw sample in the bucket, each
  measured from the sample just before it in the same series, *including the last sample of
  the previous bucket* (and of the previous day, looked up when a day is compacted). A drop is a
  reset: the increase of that step is the new value (the counter restarted from zero). Every
  step between two raw samples therefore belongs to exactly one bucket, the one holding its later
  sample, so the buckets of any range sum to the raw increase over that range (exactly, for
  counters of whole events). The first sample of a series with no earlier sample adds nothing,
  and so does a step into or out of a NaN (as in the catalog's SLI queries).
  A step counts only when its earlier sample lies in the same UTC hour as its later one or in the
  hour just before (:func:`counter_steps_count`, the rule of
  :mod:`obs_pipelines.reporting.derived` and of :func:`obs_pipelines.reporting.slo.slo_events_sql`):
  after a scrape gap of hours the counter says how many events the gap held but not when, the
  hourly derivation sees only the hour before its own, and Prometheus's ``rate()``/``increase()``
  do not bridge a gap longer than their range either. So every path counts the same events
  whatever the batching.
  The column is computed for every series; it means something only for counters.

A day whose raw samples are held for some hours only (retention deleted them once its rollups
were made, then hours were re-ingested) is rolled up per hour by :func:`rollups_for_hours`:
its existing rollups are kept for every other hour, since no raw sample is left to remake them.
"""

import numpy as np
import pyarrow as pa

from obs_pipelines.schemas import METRIC_ROLLUPS

RESOLUTIONS = {"5m": 300_000, "1h": 3_600_000}
HOUR_MS = 3_600_000
_KNOWN = pa.schema(
    [("series_id", pa.uint64()), ("ts", pa.int64()), ("value", pa.float64())]
)  # samples known before a bucket: raw ones, or a rollup bucket's ``last`` at its start


def compute_rollups(
    samples: pa.Table, resolution: str, previous: pa.Table | None = None
) -> pa.Table:
    """Rollups of ``samples`` (sorted by series_id, ts) at ``resolution``.

    ``previous`` holds, per series, the last sample known before ``samples`` begin (columns
    series_id, ts in epoch ms, value: :func:`last_samples`); it gives the first step of each
    series its starting point when it lies in the hour of that series' first sample or the hour
    just before (:func:`counter_steps_count`).
    """
    width = RESOLUTIONS[resolution]
    n = samples.num_rows
    if n == 0:
        return METRIC_ROLLUPS.empty_table()
    sid = np.asarray(samples.column("series_id").combine_chunks()).astype(np.uint64, copy=False)
    ts = np.asarray(samples.column("ts").cast(pa.int64()).combine_chunks())
    values = np.asarray(samples.column("value").combine_chunks()).astype(np.float64, copy=False)
    bucket = ts // width * width

    series_start = np.r_[True, sid[1:] != sid[:-1]]
    starts = np.flatnonzero(series_start | np.r_[True, bucket[1:] != bucket[:-1]])
    ends = np.r_[starts[1:], n]

    steps = _counter_steps(sid, ts, values, series_start, previous)
    return pa.table(
        [
            pa.array(sid[starts], pa.uint64()),
            pa.array(bucket[starts], pa.int64()).cast(pa.timestamp("ms")),
            pa.array(np.full(starts.size, resolution, dtype=object), pa.string()),
            pa.array(ends - starts, pa.int64()),
            pa.array(sequential_sums(values, starts, ends), pa.float64()),
            pa.array(np.fmin.reduceat(values, starts), pa.float64()),
            pa.array(np.fmax.reduceat(values, starts), pa.float64()),
            pa.array(values[ends - 1], pa.float64()),
            pa.array(sequential_sums(steps, starts, ends), pa.float64()),
        ],
        schema=METRIC_ROLLUPS,
    )


def last_samples(samples: pa.Table) -> pa.Table:
    """The last sample of each series in ``samples`` (sorted by series_id, ts), as (series_id,
    ts epoch ms, value)."""
    sid = np.asarray(samples.column("series_id").combine_chunks()).astype(np.uint64, copy=False)
    if sid.size == 0:
        return _KNOWN.empty_table()
    last = pa.array(np.flatnonzero(np.r_[sid[1:] != sid[:-1], True]))
    return pa.table(
        [
            pa.array(sid[last.to_numpy()], pa.uint64()),
            samples.column("ts").cast(pa.int64()).take(last),
            samples.column("value").cast(pa.float64()).take(last),
        ],
        schema=_KNOWN,
    )


def sequential_sums(values: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Sum of each ``values[start:end]`` added left to right, vectorized across groups: step j
    adds the j-th value of every group that long (groups ordered longest first, so each step is
    a slice)."""
    lengths = ends - starts
    order = np.argsort(-lengths, kind="stable")
    ordered_starts, ordered_lengths = starts[order], lengths[order]
    sums = values[ordered_starts].copy()
    active = ordered_lengths.size
    with np.errstate(invalid="ignore", over="ignore"):  # +Inf + -Inf is NaN, as in SQL's sum
        for j in range(1, int(ordered_lengths[0]) if ordered_lengths.size else 0):
            while active and ordered_lengths[active - 1] <= j:
                active -= 1
            sums[:active] += values[ordered_starts[:active] + j]
    result = np.empty_like(sums)
    result[order] = sums
    return result


def counter_steps_count(before_ms: np.ndarray, ts_ms: np.ndarray) -> np.ndarray:
    """Whether a counter's step from a sample at ``before_ms`` to the next one of its series at
    ``ts_ms`` (epoch ms) counts: when the earlier sample lies in the same UTC hour or the hour
    just before. Otherwise the later sample has no predecessor, like a series' first sample.

    An hourly run derives an hour from it and the hour before only, and a counter read again
    after a scrape gap of hours says how many events the gap held but not when (Prometheus's
    ``rate()``/``increase()`` do not bridge a gap longer than their range either), so the
    increase across such a gap is counted by no path, whatever the batching."""
    return before_ms // HOUR_MS >= ts_ms // HOUR_MS - 1


def _counter_steps(
    sid: np.ndarray,
    ts: np.ndarray,
    values: np.ndarray,
    series_start: np.ndarray,
    previous: pa.Table | None,
) -> np.ndarray:
    """Increase of each sample over the one before it in its series (reset: the new value),
    zero where that one is older than the hour before the sample's (:func:`counter_steps_count`)."""
    before = np.r_[np.nan, values[:-1]]
    before_ts = np.r_[ts[:1], ts[:-1]]
    has_before = ~series_start
    if previous is not None and previous.num_rows:
        prev_ids = np.asarray(previous.column("series_id").combine_chunks()).astype(np.uint64)
        prev_ts = np.asarray(previous.column("ts").cast(pa.int64()).combine_chunks())
        prev_values = np.asarray(previous.column("value").combine_chunks()).astype(np.float64)
        order = np.argsort(prev_ids, kind="stable")
        prev_ids, prev_ts, prev_values = prev_ids[order], prev_ts[order], prev_values[order]
        first = np.flatnonzero(series_start)
        where = np.clip(np.searchsorted(prev_ids, sid[first]), 0, prev_ids.size - 1)
        found = prev_ids[where] == sid[first]
        before[first[found]] = prev_values[where[found]]
        before_ts[first[found]] = prev_ts[where[found]]
        has_before[first[found]] = True
    has_before &= counter_steps_count(before_ts, ts)
    with np.errstate(invalid="ignore"):
        steps = np.where(values >= before, values - before, values)
    # As the catalog's SLI queries do: a step into or out of a NaN adds nothing.
    return np.where(has_before & ~np.isnan(values) & ~np.isnan(before), steps, 0.0)


def held_hours(samples: pa.Table) -> np.ndarray:
    """The hours (their start, epoch ms, ascending) ``samples`` hold a sample in."""
    ts = np.asarray(samples.column("ts").cast(pa.int64()).combine_chunks())
    return np.unique(ts // HOUR_MS * HOUR_MS)


def rollups_for_hours(
    samples: pa.Table, kept: pa.Table, resolution: str, before: pa.Table | None = None
) -> pa.Table:
    """A day's rollups at ``resolution`` when its raw ``samples`` (sorted by series_id, ts)
    may not cover every hour its existing rollups ``kept`` do: raw samples are the truth for
    each hour they hold a sample in, the existing rows for every other hour (their raw
    samples are gone, so dropping or remaking those rows would lose them for good).

    Each run of consecutive held hours is rolled up on its own, every series starting from
    the sample known just before the run (a counter's increase across the run's start counts
    once, as it did when the day was rolled up whole): the latest of the held samples and the
    kept buckets' ``last`` before it, else of ``before`` (:func:`known_samples` of the day
    before). Rows are returned in no particular order."""
    hours = held_hours(samples)
    kept_ts = np.asarray(kept.column("ts").cast(pa.int64()).combine_chunks())
    kept = kept.filter(pa.array(~np.isin(kept_ts // HOUR_MS * HOUR_MS, hours)))
    known = [known_samples(samples), known_samples(None, kept)]
    if before is not None:
        known.append(before)
    history = pa.concat_tables(known)
    ts = np.asarray(samples.column("ts").cast(pa.int64()).combine_chunks())
    found = [kept]
    for run in np.split(hours, np.flatnonzero(np.diff(hours) != HOUR_MS) + 1):
        if not run.size:
            continue
        start, end = int(run[0]), int(run[-1]) + HOUR_MS
        rows = samples.filter(pa.array((ts >= start) & (ts < end)))
        found.append(compute_rollups(rows, resolution, _latest(history, start)))
    return pa.concat_tables(found)


def known_samples(samples: pa.Table | None, rollups: pa.Table | None = None) -> pa.Table:
    """Samples known of a stretch of time, as (series_id, ts ms, value): every raw sample,
    and each rollup bucket's ``last`` at the bucket's start for the hours ``samples`` hold
    none in (the hours of the two never overlap, so ordering by ``ts`` orders them in time)."""
    found = [_KNOWN.empty_table()]
    hours = np.empty(0, np.int64)
    if samples is not None and samples.num_rows:
        hours = held_hours(samples)
        found.append(_known(samples, "value"))
    if rollups is not None and rollups.num_rows:
        ts = np.asarray(rollups.column("ts").cast(pa.int64()).combine_chunks())
        rollups = rollups.filter(pa.array(~np.isin(ts // HOUR_MS * HOUR_MS, hours)))
        found.append(_known(rollups, "last"))
    return pa.concat_tables(found)


def _known(rows: pa.Table, value: str) -> pa.Table:
    return pa.table(
        [
            rows.column("series_id").cast(pa.uint64()),
            rows.column("ts").cast(pa.int64()),
            rows.column(value).cast(pa.float64()),
        ],
        schema=_KNOWN,
    )


def _latest(known: pa.Table, before_ms: int) -> pa.Table:
    """Per series, its latest known sample before ``before_ms`` (series_id, ts, value: the time
    decides whether a counter's step from it counts, :func:`counter_steps_count`)."""
    ts = np.asarray(known.column("ts").combine_chunks())
    earlier = known.filter(pa.array(ts < before_ms))
    earlier = earlier.sort_by([("series_id", "ascending"), ("ts", "ascending")])
    return last_samples(earlier)
