"""The Great Expectations suites catch what a bad partition looks like, and name its hour."""

import pyarrow as pa

from obs_pipelines.lake.quality import validate_partitions
from obs_pipelines.windows import TimeWindow, utc

FIRST = TimeWindow(utc("2026-11-10T05:00:00Z"), utc("2026-11-10T06:00:00Z"))
SECOND = TimeWindow(FIRST.end, utc("2026-11-10T07:00:00Z"))


def samples(window: TimeWindow, offsets_ms: list[int], ids: list[int]) -> pa.Table:
    return pa.table(
        {
            "series_id": pa.array(ids, pa.uint64()),
            "ts": pa.array([window.start_ms + o for o in offsets_ms], pa.int64()).cast(
                pa.timestamp("ms")
            ),
            "value": pa.array([1.0] * len(ids)),
        }
    )


def test_good_partitions_pass_and_a_bad_one_is_named_with_its_faults() -> None:
    good = samples(FIRST, [0, 1000, 3_599_999], [1, 1, 2])
    # One sample an hour late (it belongs to the next partition) and one sample twice.
    bad = samples(SECOND, [0, 0, 3_600_000], [5, 5, 6])

    results = dict(validate_partitions("metric_samples", [(FIRST, good), (SECOND, bad)]))

    assert all(o.success for o in results[FIRST])
    failed = {(o.expectation, o.column): o.unexpected for o in results[SECOND] if not o.success}
    assert failed == {
        ("expect_column_pair_values_a_to_be_greater_than_b", "_window_end,ts"): 1,
        ("expect_compound_columns_to_be_unique", "series_id,ts"): 2,
    }


def test_a_series_may_appear_in_every_hour_but_once_per_hour() -> None:
    series = pa.table({"series_id": pa.array([1, 2], pa.uint64()), "metric": ["up", "up"]})
    twice = pa.table({"series_id": pa.array([3, 3], pa.uint64()), "metric": ["up", "up"]})

    results = dict(validate_partitions("metric_series", [(FIRST, series), (SECOND, series)]))
    assert all(o.success for outcomes in results.values() for o in outcomes)

    results = dict(validate_partitions("metric_series", [(FIRST, series), (SECOND, twice)]))
    assert all(o.success for o in results[FIRST])
    assert [o.column for o in results[SECOND] if not o.success] == ["series_id,_window_start"]
