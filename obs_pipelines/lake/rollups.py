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
  The column is computed for every series; it means something only for counters.
"""

import numpy as np
import pyarrow as pa

from obs_pipelines.schemas import METRIC_ROLLUPS

RESOLUTIONS = {"5m": 300_000, "1h": 3_600_000}


def compute_rollups(
    samples: pa.Table, resolution: str, previous: pa.Table | None = None
) -> pa.Table:
    """Rollups of ``samples`` (sorted by series_id, ts) at ``resolution``.

    ``previous`` holds, per series, the last raw sample before ``samples`` begin (columns
    series_id, value); it gives the first step of each series its starting point.
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

    steps = _counter_steps(sid, values, series_start, previous)
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
    """The last sample of each series in ``samples`` (sorted by series_id, ts)."""
    sid = np.asarray(samples.column("series_id").combine_chunks()).astype(np.uint64, copy=False)
    if sid.size == 0:
        return pa.table(
            {"series_id": pa.array([], pa.uint64()), "value": pa.array([], pa.float64())}
        )
    last = np.flatnonzero(np.r_[sid[1:] != sid[:-1], True])
    return pa.table(
        {
            "series_id": pa.array(sid[last], pa.uint64()),
            "value": samples.column("value").take(pa.array(last)),
        }
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
    for j in range(1, int(ordered_lengths[0]) if ordered_lengths.size else 0):
        while active and ordered_lengths[active - 1] <= j:
            active -= 1
        sums[:active] += values[ordered_starts[:active] + j]
    result = np.empty_like(sums)
    result[order] = sums
    return result


def _counter_steps(
    sid: np.ndarray, values: np.ndarray, series_start: np.ndarray, previous: pa.Table | None
) -> np.ndarray:
    """Increase of each sample over the one before it in its series (reset: the new value)."""
    before = np.r_[np.nan, values[:-1]]
    has_before = ~series_start
    if previous is not None and previous.num_rows:
        prev_ids = np.asarray(previous.column("series_id").combine_chunks()).astype(np.uint64)
        prev_values = np.asarray(previous.column("value").combine_chunks()).astype(np.float64)
        order = np.argsort(prev_ids)
        prev_ids, prev_values = prev_ids[order], prev_values[order]
        first = np.flatnonzero(series_start)
        where = np.clip(np.searchsorted(prev_ids, sid[first]), 0, prev_ids.size - 1)
        found = prev_ids[where] == sid[first]
        before[first[found]] = prev_values[where[found]]
        has_before[first[found]] = True
    with np.errstate(invalid="ignore"):
        steps = np.where(values >= before, values - before, values)
    # As the catalog's SLI queries do: a step into or out of a NaN adds nothing.
    return np.where(has_before & ~np.isnan(values) & ~np.isnan(before), steps, 0.0)
