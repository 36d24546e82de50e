"""Ingest's ordering and de-duplication of samples, on shapes sources really return."""

import numpy as np

from obs_pipelines.lake.ingest import (
    _first_of_each_sample,
    _in_series_time_order,
    _series_time_order,
)


def ordered(ids: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """The permutation ingest applies: runs ordered, or a full sort where runs overlap."""
    order = _series_time_order(ids, ts)
    if not _in_series_time_order(ids[order], ts[order]):
        order = np.lexsort((ts, ids))
    return order


def test_run_sort_equals_a_full_sort_on_any_input() -> None:
    rng = np.random.default_rng(1)
    for _ in range(300):
        n = int(rng.integers(2, 80))
        ids, ts = rng.integers(0, 6, n).astype(np.uint64), rng.integers(0, 25, n)
        order = ordered(ids, ts)
        full = np.lexsort((ts, ids))
        assert np.array_equal(np.sort(order), np.arange(n))  # a permutation: nothing lost
        assert np.array_equal(ids[order], ids[full])
        assert np.array_equal(ts[order], ts[full])


def test_a_sample_fetched_twice_through_overlapping_selectors_is_kept_once() -> None:
    # Two selectors matched the same series: its run arrives twice, interleaved with another.
    ids = np.array([7, 7, 7, 3, 3, 7, 7, 7], dtype=np.uint64)
    ts = np.array([10, 20, 30, 10, 20, 10, 20, 30])
    values = np.array([1.0, 2.0, 3.0, 9.0, 8.0, 1.0, 2.0, 3.0])

    order = ordered(ids, ts)
    first = _first_of_each_sample(ids[order], ts[order])

    assert first is not None
    assert ids[order][first].tolist() == [3, 3, 7, 7, 7]
    assert ts[order][first].tolist() == [10, 20, 10, 20, 30]
    assert values[order][first].tolist() == [9.0, 8.0, 1.0, 2.0, 3.0]
    assert _first_of_each_sample(ids[:5][ordered(ids[:5], ts[:5])], ts[:5]) is None
