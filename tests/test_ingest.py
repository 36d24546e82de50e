"""Ingest's ordering and de-duplication of samples, on shapes sources really return."""

import numpy as np
import pyarrow as pa

from obs_pipelines.lake.ingest import _drop_repeated_samples, _sorted_by_series_and_time


def table(ids: np.ndarray, ts: np.ndarray, values: np.ndarray) -> pa.Table:
    return pa.table(
        {
            "series_id": pa.array(ids, pa.uint64()),
            "ts": pa.array(ts, pa.int64()).cast(pa.timestamp("ms")),
            "value": pa.array(values, pa.float64()),
        }
    )


def test_run_sort_equals_a_full_sort_on_any_input() -> None:
    rng = np.random.default_rng(1)
    for _ in range(300):
        n = int(rng.integers(2, 80))
        samples = table(rng.integers(0, 6, n), rng.integers(0, 25, n), rng.random(n))
        ours = _sorted_by_series_and_time(samples).select(["series_id", "ts"])
        full = samples.sort_by([("series_id", "ascending"), ("ts", "ascending")]).select(
            ["series_id", "ts"]
        )
        assert ours.equals(full)


def test_a_sample_fetched_twice_through_overlapping_selectors_is_kept_once() -> None:
    # Two selectors matched the same series: its run arrives twice, interleaved with another.
    ids = np.array([7, 7, 7, 3, 3, 7, 7, 7])
    ts = np.array([10, 20, 30, 10, 20, 10, 20, 30])
    values = np.array([1.0, 2.0, 3.0, 9.0, 8.0, 1.0, 2.0, 3.0])

    result = _drop_repeated_samples(_sorted_by_series_and_time(table(ids, ts, values)))

    assert result.column("series_id").to_pylist() == [3, 3, 7, 7, 7]
    assert result.column("ts").cast(pa.int64()).to_pylist() == [10, 20, 10, 20, 30]
    assert result.column("value").to_pylist() == [9.0, 8.0, 1.0, 2.0, 3.0]
