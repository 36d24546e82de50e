"""Tiering after hours are re-ingested into days already tiered, and tiering with a broken table.

* A day whose raw samples retention already deleted keeps its rollups: re-ingesting some of its
  hours (``obs doctor`` advises it for a missing file, ``obs materialize`` always ingests metrics)
  remakes exactly those hours' rollup rows, every other hour's rows stay bit for bit, and the
  samples each day's rollups count are those the day had.
* A table that cannot be read (a data file its log names is missing) or written (a read-only day
  folder) fails alone: every other table is tiered, the run ends with one problem per failed
  table naming the fix, and the ``lake_tiering`` asset fails after refreshing ``lake_partitions``.

References are what tests/tiering_data.py wrote, or
:func:`~obs_pipelines.lake.rollups.compute_rollups` over it."""

import contextlib
import os
import subprocess
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import yaml

from obs_pipelines.config import ObsConfig, load_config
from obs_pipelines.lake import Lake
from obs_pipelines.lake.catalog import build_catalog, connect
from obs_pipelines.lake.delta_tables import DeltaTables
from obs_pipelines.lake.rollups import RESOLUTIONS, compute_rollups
from obs_pipelines.lake.tiering import TieringResult, run_tiering
from obs_pipelines.windows import HOUR, TimeWindow
from tests.test_tiering import (
    DAYS,
    ROLLUP_KEY,
    as_bits,
    assert_converged,
    day_files,
    expected_rollups,
    held,
    listed_files,
    parquet_files,
    versions,
)
from tests.tiering_data import (
    metric_hour,
    some_hours,
    tiered_config,
    tiered_settings,
    write_hours,
)

pytestmark = pytest.mark.integration  # writes and tiers whole lakes, seconds per test


def whole_day(start: object) -> list[TimeWindow]:
    return [TimeWindow(start + h * HOUR, start + (h + 1) * HOUR) for h in range(24)]


def ingest_samples(config: ObsConfig, hours: list[TimeWindow]) -> None:
    tables = DeltaTables(config)
    for hour in hours:
        tables.write_hour("metric_samples", hour, metric_hour(hour)[1], sort=False)


def samples_per_day(config: ObsConfig) -> dict[tuple[str, str], int]:
    """The raw samples each day's rollups count, per resolution: what a report sums."""
    rollups = held(config, "metric_rollups")
    days = pc.strftime(rollups.column("ts"), "%Y-%m-%d").to_pylist()
    found: dict[tuple[str, str], int] = {}
    for resolution, day, count in zip(
        rollups.column("resolution").to_pylist(),
        days,
        rollups.column("count").to_pylist(),
        strict=True,
    ):
        found[(resolution, day)] = found.get((resolution, day), 0) + count
    return found


def assert_samples_converged(result: TieringResult, config: ObsConfig, now: datetime) -> None:
    """No problem, and a rerun finds nothing to do in the two metric tables and commits nothing."""
    assert result.problems == []
    tables = ("metric_samples", "metric_rollups")
    before = versions(config, tables)
    again = run_tiering(config, now)
    assert (again.moves, again.deletions, again.problems) == ([], [], [])
    assert versions(config, tables) == before


def rows_in_hours(rollups: pa.Table, hours: list[TimeWindow], inside: bool) -> pa.Table:
    ts = np.asarray(rollups.column("ts").cast(pa.int64()))
    mask = np.zeros(ts.size, bool)
    for hour in hours:
        mask |= (ts >= hour.start_ms) & (ts < hour.end_ms)
    return rollups.filter(pa.array(mask if inside else ~mask))


def test_an_hour_re_ingested_into_a_day_whose_raw_samples_are_gone_replaces_only_its_rollups(
    tmp_path: Path,
) -> None:
    """The outside tester's case: the day's raw samples went by retention after its rollups
    were made, then one hour was ingested again. Tiering used to remake the day's rollups from
    that hour alone (23 of 24 hours gone for good)."""
    config = tiered_config(tmp_path)
    day = whole_day(DAYS[0])
    ingest_samples(config, day)
    now = DAYS[0] + timedelta(days=5)  # past raw retention (3 days), within rollups' (20)
    run_tiering(config, now)
    assert day_files(config, "metric_samples") == {}, "the raw day is gone"
    original = held(config, "metric_rollups")
    assert as_bits(original, ROLLUP_KEY) == as_bits(expected_rollups([day]), ROLLUP_KEY)
    counted = samples_per_day(config)
    assert counted == {(r, "2026-03-30"): 24 * 12 * 240 for r in RESOLUTIONS}

    # The same hour again, as the source still has it: nothing changes, bit for bit.
    ingest_samples(config, [day[5]])
    result = run_tiering(config, now)

    assert not result.problems
    assert samples_per_day(config) == counted
    assert as_bits(held(config, "metric_rollups"), ROLLUP_KEY) == as_bits(original, ROLLUP_KEY)
    assert day_files(config, "metric_samples") == {}, "the re-ingested hour went again"
    assert_samples_converged(result, config, now)

    # The source now has other values for that hour: its rollups follow, the others stay.
    samples = metric_hour(day[5])[1]
    changed = samples.set_column(
        2, samples.schema.field("value"), pc.multiply(samples.column("value"), 2.0)
    )
    DeltaTables(config).write_hour("metric_samples", day[5], changed, sort=False)
    result = run_tiering(config, now)

    assert not result.problems
    assert samples_per_day(config) == counted
    # Hour 5 as if the day had been rolled up whole with the new values (each series starts
    # from its last sample of hour 4); every other hour as it was.
    others = pa.concat_tables([metric_hour(h)[1] for h in day if h != day[5]])
    whole = pa.concat_tables([others, changed]).sort_by(
        [("series_id", "ascending"), ("ts", "ascending")]
    )
    remade = pa.concat_tables([compute_rollups(whole, r) for r in RESOLUTIONS])
    expected = pa.concat_tables(
        [rows_in_hours(remade, [day[5]], True), rows_in_hours(original, [day[5]], False)]
    )
    rollups = held(config, "metric_rollups")
    assert as_bits(rollups, ROLLUP_KEY) == as_bits(expected, ROLLUP_KEY)
    assert as_bits(rows_in_hours(rollups, [day[5]], True), ROLLUP_KEY) != as_bits(
        rows_in_hours(original, [day[5]], True), ROLLUP_KEY
    ), "the new values are rolled up"
    assert_samples_converged(result, config, now)


def test_re_ingested_hours_apart_and_at_midnight_keep_every_counter_increase_exact(
    tmp_path: Path,
) -> None:
    """Hours 00, 01 and 07 of a second day, both days' raw samples gone: each run of held
    hours starts from the sample before it, found in the rollups kept (the day before's for
    00:00), so a counter's increase across every hour boundary counts exactly once, as when
    the days were rolled up whole."""
    config = tiered_config(tmp_path)
    first, second = whole_day(DAYS[0]), whole_day(DAYS[1])
    ingest_samples(config, first + second)
    now = DAYS[0] + timedelta(days=6)
    run_tiering(config, now)  # both days rolled up (the second from the first's last), then gone
    original = held(config, "metric_rollups")
    assert as_bits(original, ROLLUP_KEY) == as_bits(expected_rollups([first, second]), ROLLUP_KEY)
    counted = samples_per_day(config)

    again = [second[0], second[1], second[7]]
    ingest_samples(config, again)
    result = run_tiering(config, now)

    assert not result.problems
    assert day_files(config, "metric_samples") == {}
    assert samples_per_day(config) == counted
    rollups = held(config, "metric_rollups")
    assert as_bits(rollups, ROLLUP_KEY) == as_bits(original, ROLLUP_KEY)
    increase = pc.sum(rows_in_hours(rollups, again, True).column("counter_increase")).as_py()
    assert increase == pc.sum(rows_in_hours(original, again, True)["counter_increase"]).as_py()
    assert_samples_converged(result, config, now)


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """``folder`` refuses new files (root ignores permissions: an immutable folder then)."""
    if os.geteuid() == 0:
        made = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, check=False)
        if made.returncode:
            pytest.skip(f"cannot make a folder read-only as root here: {made.stderr!r}")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
    else:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)


LOST = TimeWindow(DAYS[0] + 7 * HOUR, DAYS[0] + 8 * HOUR)


def broken_lake(tmp_path: Path) -> tuple[ObsConfig, Path]:
    """Hours 00, 07 and 23 of two days in every test table, the file of metric_series' 07:00
    of the first day (due for compaction from 04-01) missing; and the obs.yaml it reads.
    metric_series is the first table tiering visits: every other one comes after it."""
    path = tmp_path / "obs.yaml"
    path.write_text(yaml.safe_dump(tiered_settings(tmp_path)))
    config = load_config(path)
    write_hours(Lake(config), some_hours(DAYS[:2]))
    (lost,) = [f for f in listed_files(config, "metric_series") if "dt=2026-03-30/part-h07" in f]
    (tmp_path / "lake" / "delta" / "metric_series" / lost).unlink()
    return config, path


def test_a_missing_file_and_a_read_only_folder_fail_their_tables_alone(tmp_path: Path) -> None:
    config, _ = broken_lake(tmp_path)
    now = DAYS[0] + timedelta(days=2)  # 03-30 leaves hot
    logs = tmp_path / "lake" / "delta" / "log_records" / "dt=2026-03-30"

    with read_only(logs):
        result = run_tiering(config, now)

    assert sorted(result.failed) == ["log_records", "metric_series"]
    assert [p.split(":")[0] for p in result.problems] == ["metric_series", "log_records"]
    assert "not found" in result.failed["metric_series"]
    assert "re-ingest the hours" in result.failed["metric_series"]
    assert "writable" in result.failed["log_records"]
    assert all("dt=2026-03-30" in line for line in result.failed.values())
    # Every table after the broken ones was tiered; those kept their day as it was.
    for name in ("metric_samples", "alert_rules"):
        assert day_files(config, name) == {"dt=2026-03-30": 1, "dt=2026-03-31": 3}, name
    assert sorted(day_files(config, "metric_rollups")) == sorted(
        f"resolution={r}/dt=2026-03-30" for r in RESOLUTIONS
    )
    assert day_files(config, "metric_series") == {"dt=2026-03-30": 3, "dt=2026-03-31": 3}
    assert day_files(config, "log_records") == {"dt=2026-03-30": 3, "dt=2026-03-31": 3}
    assert parquet_files(config, "log_records") == listed_files(config, "log_records")

    # Once fixed (the folder writable again, the lost hour re-ingested), a rerun converges.
    series, _ = metric_hour(LOST)
    DeltaTables(config).write_hour("metric_series", LOST, series)
    result = run_tiering(config, now)
    assert result.failed == {}
    assert day_files(config, "metric_series")["dt=2026-03-30"] == 1
    assert day_files(config, "log_records")["dt=2026-03-30"] == 1
    assert_converged(result, config, now)


def test_the_tiering_asset_fails_listing_the_broken_tables_after_tiering_the_others(
    tmp_path: Path,
) -> None:
    """The asset fails (a WARN check alone would show green) and its partition shows failed, not
    materialized (so "re-execute failed" offers it); lake_partitions lists the compacted files
    of the tables that were tiered, not the hourly files they replaced."""
    from dagster import AssetKey, DagsterInstance, DailyPartitionsDefinition, materialize
    from dagster._core.storage.partition_status_cache import AssetPartitionStatus

    from assets.resources import ObsResource
    from assets.tiering import build_tiering_assets

    config, path = broken_lake(tmp_path)
    build_catalog(config)
    index = 'SELECT dataset, "partition", count(*) FROM lake_partitions GROUP BY ALL ORDER BY ALL'

    daily = DailyPartitionsDefinition(start_date="2026-03-30")
    instance = DagsterInstance.ephemeral()
    ran = materialize(
        build_tiering_assets(daily, deps=[]),
        partition_key="2026-03-31",  # as of 04-01 00:00: 03-30 leaves hot
        resources={"obs": ObsResource(config_path=str(path))},
        instance=instance,
        raise_on_error=False,
    )

    assert not ran.success
    (failure,) = [e for e in ran.all_events if e.event_type_value == "STEP_FAILURE"]
    message = failure.step_failure_data.error.message
    assert "metric_series" in message and "re-ingest the hours" in message
    assert "log_records" not in message
    assert not [e for e in ran.all_events if e.event_type_value == "ASSET_MATERIALIZATION"]
    metadata = failure.step_failure_data.user_failure_data.metadata
    assert list(metadata["failed tables"].value) == ["metric_series"]
    assert metadata["moves"].value > 0, "what was tiered is on the failure"
    status = instance.get_status_by_partition(AssetKey("lake_tiering"), ["2026-03-31"], daily)
    assert status == {"2026-03-31": AssetPartitionStatus.FAILED}
    with connect(config) as con:
        listed = con.execute(index).fetchall()
    for name in ("metric_samples", "log_records", "alert_rules"):
        assert (name, "dt=2026-03-30", 1) in listed, name
    assert ("metric_series", "dt=2026-03-30", 3) in listed
    assert {p for d, p, _ in listed if d == "metric_rollups"} == {
        f"resolution={r}/dt=2026-03-30" for r in RESOLUTIONS
    }
