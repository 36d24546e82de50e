"""Tiering of the lake's Delta tables: days compacted into one file, rollups exact against the
raw samples written (counter resets, the day boundary), retention by day, nothing committed by
a rerun, vacuum after the delay, a crash at any step, a killed process, two runs at once and an
hour re-ingested around a compaction losing and duplicating nothing, locally and on S3.

Every reference is what the test wrote (tests/tiering_data.py) or
:func:`~obs_pipelines.lake.rollups.compute_rollups` over it, compared bit for bit."""

import itertools
import subprocess
import sys
import textwrap
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pytest
import yaml

from obs_pipelines.config import ObsConfig, load_config, parse_config
from obs_pipelines.lake import Lake, delta
from obs_pipelines.lake.catalog import build_catalog, connect
from obs_pipelines.lake.delta_catalog import days_by_tier
from obs_pipelines.lake.delta_tables import DeltaTables
from obs_pipelines.lake.delta_tiering import STEPS, DeltaMove
from obs_pipelines.lake.rollups import RESOLUTIONS, compute_rollups, last_samples
from obs_pipelines.lake.tiering import TieringResult, run_tiering
from obs_pipelines.schemas import METRIC_SAMPLES
from obs_pipelines.windows import HOUR, TimeWindow
from tests.tiering_data import (
    RETENTION,
    day,
    log_hour,
    metric_hour,
    rules_snapshot,
    snapshot,
    some_hours,
    tiered_config,
    tiered_settings,
    write_hours,
)

pytestmark = pytest.mark.integration  # writes, tiers and catalogs whole lakes, seconds per test

DAYS = [day("2026-03-30"), day("2026-03-31"), day("2026-04-01"), day("2026-04-02")]
TABLES = ("metric_series", "metric_samples", "log_records", "alert_rules", "metric_rollups")
SAMPLE_KEY = ["series_id", "ts"]
ROLLUP_KEY = ["series_id", "resolution", "ts"]
WRITERS = {
    "metric_samples": lambda h: metric_hour(h)[1],
    "log_records": log_hour,
    "alert_rules": rules_snapshot,
}


def as_bits(table: pa.Table, order: list[str]) -> dict[str, list[Any]]:
    """Every column, sorted by ``order``, with doubles as their 64 bits (NaN payloads, -0.0)."""
    table = table.sort_by([(c, "ascending") for c in order])
    out = {}
    for name in sorted(table.column_names):
        column = table.column(name).combine_chunks()
        if pa.types.is_floating(column.type):
            out[name] = np.asarray(column).view(np.uint64).tolist()
        elif pa.types.is_timestamp(column.type):
            out[name] = column.cast(pa.timestamp("us")).cast(pa.int64()).to_pylist()
        else:
            out[name] = column.to_pylist()
    return out


def written(dataset: str, hours: list[TimeWindow]) -> pa.Table:
    """What tiering_data wrote of ``dataset`` in ``hours``."""
    return pa.concat_tables([WRITERS[dataset](h) for h in hours])


def held(config: ObsConfig, dataset: str) -> pa.Table:
    """Every row the dataset's table holds now, in the registry's types."""
    return DeltaTables(config).read_window(dataset, None)


def assert_holds(config: ObsConfig, hours: list[TimeWindow], samples: list[TimeWindow]) -> None:
    """Logs and rules of ``hours`` and raw samples of ``samples`` are held bit for bit."""
    for dataset, key, of in (
        ("log_records", ["doc_id"], hours),
        ("alert_rules", ["snapshot_at", "name"], hours),
        ("metric_samples", SAMPLE_KEY, samples),
    ):
        assert as_bits(held(config, dataset), key) == as_bits(written(dataset, of), key), dataset


def expected_rollups(days: list[list[TimeWindow]]) -> pa.Table:
    """``compute_rollups`` of each day's written samples at every resolution, each day starting
    from the last sample of each series the day before (consecutive days; the first: none)."""
    found, previous = [], None
    for hours in days:
        samples = written("metric_samples", hours).sort_by(
            [("series_id", "ascending"), ("ts", "ascending")]
        )
        found += [compute_rollups(samples, r, previous) for r in RESOLUTIONS]
        previous = last_samples(samples)
    return pa.concat_tables(found)


def assert_rollups(config: ObsConfig, days: list[list[TimeWindow]]) -> None:
    rollups = held(config, "metric_rollups")
    assert rollups.num_rows
    assert as_bits(rollups, ROLLUP_KEY) == as_bits(expected_rollups(days), ROLLUP_KEY)


def of_day(hours: list[TimeWindow], start: Any) -> list[TimeWindow]:
    return [h for h in hours if start <= h.start < start + timedelta(days=1)]


def day_files(config: ObsConfig, dataset: str) -> dict[str, int]:
    """Files per partition (``dt=..`` or ``resolution=../dt=..``) in the newest version."""
    actions = delta.add_actions(DeltaTables(config).open(dataset)).to_pylist()
    found: dict[str, int] = {}
    for a in actions:
        key = f"dt={a['partition.dt']}"
        if a.get("partition.resolution"):
            key = f"resolution={a['partition.resolution']}/{key}"
        found[key] = found.get(key, 0) + 1
    return found


def versions(config: ObsConfig, datasets: tuple[str, ...] = TABLES) -> dict[str, int]:
    return {d: DeltaTables(config).open(d).version() for d in datasets}


def commits(config: ObsConfig, dataset: str, operation: str) -> list[dict[str, Any]]:
    history = DeltaTables(config).open(dataset).history()
    return [c for c in history if c.get("obs.operation") == operation]


def parquet_files(config: ObsConfig, dataset: str) -> set[str]:
    """Every data file in the table's folder (local or S3), whether the log lists it or not."""
    fs = delta.table_filesystem(config, dataset)
    found = fs.get_file_info(pafs.FileSelector("", recursive=True))
    return {
        f.path
        for f in found
        if f.type == pafs.FileType.File
        and f.path.endswith(".parquet")
        and not f.path.startswith("_delta_log/")
    }


def listed_files(config: ObsConfig, dataset: str) -> set[str]:
    return set(delta.add_actions(DeltaTables(config).open(dataset)).column("path").to_pylist())


def assert_converged(result: TieringResult, config: ObsConfig, now: Any) -> None:
    """No problem, and a rerun at the same moment finds nothing to do and commits nothing."""
    assert result.problems == []
    before = versions(config)
    again = run_tiering(config, now)
    assert (again.moves, again.deletions, again.problems) == ([], [], [])
    assert versions(config) == before, "a rerun on a tiered lake commits nothing"


def test_the_tiering_asset_leaves_lake_partitions_listing_the_files_it_made(
    tmp_path: Path,
) -> None:
    """The partition index is read from the logs when the catalog is refreshed, not when it is
    queried: after the daily tiering asset it lists the compacted day and its rollups, not the
    hourly files they replaced (make demo ends with tiering, and its summary reads the index,
    by the data's age)."""
    from dagster import DailyPartitionsDefinition, materialize

    from assets.resources import ObsResource
    from assets.tiering import build_tiering_assets

    path = tmp_path / "obs.yaml"
    path.write_text(yaml.safe_dump(tiered_settings(tmp_path)))
    config = load_config(path)
    write_hours(Lake(config), some_hours(DAYS))
    build_catalog(config)
    index = 'SELECT dataset, "partition", row_count, file FROM lake_partitions ORDER BY ALL'

    ran = materialize(
        build_tiering_assets(DailyPartitionsDefinition(start_date="2026-03-30"), deps=[]),
        partition_key="2026-03-31",  # as of 04-01 00:00: 03-30 leaves hot
        resources={"obs": ObsResource(config_path=str(path))},
    )
    with connect(config) as con:
        after_asset = con.execute(index).fetchall()
        tiers = days_by_tier(con, config, DAYS[2])
    build_catalog(config)
    with connect(config) as con:
        after_build = con.execute(index).fetchall()

    assert ran.success
    assert day_files(config, "metric_samples")["dt=2026-03-30"] == 1
    assert after_asset == after_build
    compacted = [r for r in after_asset if r[0] == "metric_samples" and r[1] == "dt=2026-03-30"]
    assert len(compacted) == 1 and compacted[0][2] == sum(
        metric_hour(h)[1].num_rows for h in some_hours(DAYS[:1])
    )
    assert {r[1] for r in after_asset if r[0] == "metric_rollups"} == {
        f"resolution={r}/dt=2026-03-30" for r in RESOLUTIONS
    }
    # What make demo prints: the compacted day (4 tables and 2 rollups) is warm by the data's age;
    # the 3 days after it hot, 3 hourly files in each of 4 tables.
    assert [t[:3] for t in tiers] == [("hot", 3, 36), ("warm", 1, 6)]


def test_a_full_cycle_compacts_rolls_up_and_expires_days_keeping_the_rows_written(
    tmp_path: Path,
) -> None:
    config = tiered_config(tmp_path)
    hours = some_hours(DAYS)
    write_hours(Lake(config), hours)
    seen = snapshot(config)  # the catalog's views before any tiering

    # A day leaves hot (is compacted and rolled up) a day after it ends; raw samples are kept
    # three days, so 03-30's go in the last run, after 04-01 was rolled up from 03-31's last.
    for now, compacted in (
        (DAYS[0] + timedelta(days=2), "2026-03-30"),
        (DAYS[0] + timedelta(days=3), "2026-03-31"),
        (DAYS[0] + timedelta(days=4, hours=12), "2026-04-01"),
    ):
        result = run_tiering(config, now)

        assert sorted(
            (m.dataset, m.partition) for m in result.moves if m.dataset != "metric_rollups"
        ) == [
            (d, f"dt={compacted}")
            for d in ("alert_rules", "log_records", "metric_samples", "metric_series")
        ]
        for name in ("metric_samples", "log_records", "alert_rules", "metric_series"):
            assert day_files(config, name)[f"dt={compacted}"] == 1, name
            assert day_files(config, name)["dt=2026-04-02"] == 3, name
        assert_converged(result, config, now)
        rolled = [of_day(hours, d) for d in DAYS if f"{d:%Y-%m-%d}" <= compacted]
        assert_rollups(config, rolled)
        shown = snapshot(config)
        assert {k: shown[k] for k in ("series", "logs", "rules")} == {
            k: seen[k] for k in ("series", "logs", "rules")
        }

    assert_holds(config, hours, samples=[h for h in hours if h.start >= DAYS[1]])
    assert sorted(day_files(config, "metric_samples")) == [f"dt={d:%Y-%m-%d}" for d in DAYS[1:]]
    assert day_files(config, "metric_rollups") == {
        f"resolution={r}/dt={d:%Y-%m-%d}": 1 for r in RESOLUTIONS for d in DAYS[:3]
    }
    # metric_series keeps one row per series per compacted day, first and last hour seen.
    con = delta.delta_connection(config)
    per_day = con.execute(
        "SELECT dt, count(*), count(DISTINCT series_id), min(epoch_ms(first_seen_hour)), "
        f"max(epoch_ms(last_seen_hour)) FROM {delta.scan(config, 'metric_series')} "
        "WHERE dt = '2026-03-30' GROUP BY dt"
    ).fetchall()
    con.close()
    start = int(DAYS[0].timestamp() * 1000)
    assert per_day == [("2026-03-30", 12, 12, start, start + 23 * 3_600_000)]
    # One compaction commit per table and day, one rollup commit per resolution and day.
    compactions = commits(config, "metric_samples", "compact")
    assert sorted(c["obs.day"] for c in compactions) == ["2026-03-30", "2026-03-31", "2026-04-01"]
    rollup_commits = commits(config, "metric_rollups", "rollup")
    assert sorted((c["obs.resolution"], c["obs.day"]) for c in rollup_commits) == sorted(
        (r, f"{d:%Y-%m-%d}") for r in RESOLUTIONS for d in DAYS[:3]
    )
    (expired,) = commits(config, "metric_samples", "expire")
    assert expired["obs.days"] == "2026-03-30" and expired["operation"] == "DELETE"

    last = run_tiering(config, DAYS[-1] + timedelta(days=21))  # past every retention

    assert {d.reason for d in last.deletions} == {"expired"} and not last.problems
    assert all(day_files(config, name) == {} for name in TABLES)
    assert all(parquet_files(config, name) == set() for name in TABLES), "vacuumed at 0s delay"
    emptied = snapshot(config)
    assert (emptied["logs"], emptied["rules"], emptied["rollups"]) == ([], [], [])


def test_vacuum_deletes_replaced_files_only_after_the_delete_delay(tmp_path: Path) -> None:
    config = tiered_config(tmp_path, delete_delay="2h")
    write_hours(Lake(config), some_hours(DAYS[:2]))
    hourly = parquet_files(config, "log_records")
    old = DeltaTables(config).open("log_records").version()

    run_tiering(config, DAYS[0] + timedelta(days=2))

    assert (
        len(day_files(config, "log_records")) == 2 and parquet_files(config, "log_records") > hourly
    )
    reader = DeltaTables(config).open("log_records")
    reader.load_as_version(old)  # a reader that opened the table before the compaction
    assert reader.to_pyarrow_table().num_rows == 6 * 50
    before = versions(config)
    assert run_tiering(config, DAYS[0] + timedelta(days=2)).notes == []
    assert versions(config) == before, "nothing to vacuum yet, nothing committed"

    later = tiered_config(tmp_path, delete_delay="0s")  # the delay has passed
    result = run_tiering(later, DAYS[0] + timedelta(days=2))

    assert any(n.startswith("log_records: vacuumed") for n in result.notes)
    replaced = {f for f in hourly if f.startswith("dt=2026-03-30/")}
    assert len(replaced) == 3 and not replaced & parquet_files(config, "log_records")
    assert {f for f in hourly if f.startswith("dt=2026-03-31/")} <= parquet_files(
        config, "log_records"
    )
    before = versions(later)
    run_tiering(later, DAYS[0] + timedelta(days=2))
    assert versions(later) == before


def test_rollups_are_exact_against_the_raw_samples_with_counter_resets() -> None:
    hour = TimeWindow(day("2026-04-01"), day("2026-04-01") + HOUR)
    ts = hour.start_ms + np.array(
        [0, 15_000, 30_000, 290_000, 300_000, 310_000, 899_000, 900_000, 3_599_000]
    )
    values = np.array([5.0, 7.0, 12.0, 3.0, 4.0, 10.0, 10.0, 1.0, 2.5])  # resets at 3.0 and 1.0
    samples = pa.table(
        [
            pa.array(np.full(ts.size, 42, np.uint64)),
            pa.array(ts).cast(pa.timestamp("ms")),
            pa.array(values),
        ],
        schema=METRIC_SAMPLES,
    )
    previous = pa.table(  # the last sample of the hour before
        {
            "series_id": pa.array([42], pa.uint64()),
            "ts": [hour.start_ms - 10_000],
            "value": [4.0],
        }
    )

    five = compute_rollups(samples, "5m", previous).to_pylist()
    hourly = compute_rollups(samples, "1h", previous).to_pylist()

    assert [(r["count"], r["sum"], r["min"], r["max"], r["last"]) for r in five] == [
        (4, 27.0, 3.0, 12.0, 3.0),
        (2, 14.0, 4.0, 10.0, 10.0),
        (1, 10.0, 10.0, 10.0, 10.0),
        (1, 1.0, 1.0, 1.0, 1.0),
        (1, 2.5, 2.5, 2.5, 2.5),
    ]
    # 4->5 (+1), 5->7 (+2), 7->12 (+5), 12->3 (reset: +3) | 3->4 (+1), 4->10 (+6) | 10->10 | reset +1 | +1.5
    assert [r["counter_increase"] for r in five] == [11.0, 7.0, 0.0, 1.0, 1.5]
    assert hourly[0]["counter_increase"] == sum(r["counter_increase"] for r in five) == 20.5
    assert (hourly[0]["count"], hourly[0]["min"], hourly[0]["max"], hourly[0]["last"]) == (
        9,
        1.0,
        12.0,
        2.5,
    )
    total = 0.0
    for v in values:
        total += v
    assert hourly[0]["sum"] == total


def test_a_counter_step_from_before_the_hour_just_before_counts_nothing() -> None:
    """A step counts only from a sample in the same UTC hour or the hour just before, whether
    that sample is in ``samples`` or in ``previous``: the rule of the derived datasets."""
    at = day("2026-04-01")
    h = HOUR // timedelta(milliseconds=1)
    start = TimeWindow(at, at + HOUR).start_ms
    rows = [  # (series, ms after midnight, value)
        (7, 10 * h, 5.0),  # previous at 08:59: two hours back, nothing
        (7, 10 * h + 59 * 60_000, 8.0),  # +3
        (7, 12 * h, 20.0),  # 10:59 is two hours back: nothing
        (7, 12 * h + 30 * 60_000, 25.0),  # +5
        (7, 13 * h + 59 * 60_000, 30.0),  # +5 (an hour and a half, from the hour just before)
        (7, 14 * h, 40.0),  # +10
        (8, 10 * h, 3.0),  # previous at 09:59:59: +2
    ]
    samples = pa.table(
        [
            pa.array([r[0] for r in rows], pa.uint64()),
            pa.array([start + r[1] for r in rows]).cast(pa.timestamp("ms")),
            pa.array([r[2] for r in rows]),
        ],
        schema=METRIC_SAMPLES,
    )
    previous = pa.table(
        {
            "series_id": pa.array([7, 8], pa.uint64()),
            "ts": [start + 8 * h + 59 * 60_000, start + 10 * h - 1_000],
            "value": [1.0, 1.0],
        }
    )

    hourly = compute_rollups(samples, "1h", previous).to_pylist()
    five = compute_rollups(samples, "5m", previous).to_pylist()

    assert [(r["series_id"], r["counter_increase"]) for r in hourly] == [
        (7, 3.0),
        (7, 5.0),
        (7, 5.0),
        (7, 10.0),
        (8, 2.0),
    ]
    assert sum(r["counter_increase"] for r in five) == 25.0
    assert last_samples(samples).to_pylist() == [
        {"series_id": 7, "ts": start + 14 * h, "value": 40.0},
        {"series_id": 8, "ts": start + 10 * h, "value": 3.0},
    ]


def test_rollups_in_the_lake_match_raw_samples_across_the_day_boundary(tmp_path: Path) -> None:
    config = tiered_config(tmp_path)
    hours = [TimeWindow(DAYS[0] + h * HOUR, DAYS[0] + (h + 1) * HOUR) for h in range(24)]
    hours += [TimeWindow(DAYS[1] + h * HOUR, DAYS[1] + (h + 1) * HOUR) for h in range(2)]
    lake = Lake(config)
    for hour in hours:
        lake.write_hot("metric_samples", hour, metric_hour(hour)[1], sort=False)
    run_tiering(config, DAYS[3])
    build_catalog(config)
    con = connect(config)
    counter = int(np.asarray(metric_hour(hours[0])[1].column("series_id"))[0])
    raw = con.execute(
        f"SELECT value FROM metric_samples WHERE series_id = {counter} ORDER BY ts"
    ).fetchall()
    increase = sum(b - a if b >= a else b for (a,), (b,) in itertools.pairwise(raw))
    rolled = con.execute(
        f"SELECT resolution, sum(counter_increase), sum(count) FROM metric_rollups "
        f"WHERE series_id = {counter} GROUP BY 1 ORDER BY 1"
    ).fetchall()
    exact = con.execute(
        """SELECT count(*) FILTER (WHERE r.count <> x.n OR r.min <> x.lo OR r.max <> x.hi OR r.last <> x.last_value)
           FROM metric_rollups r JOIN (
               SELECT series_id, time_bucket(INTERVAL 5 MINUTE, ts) AS b, count(*) AS n,
                      min(value) FILTER (WHERE NOT isnan(value)) AS lo,
                      max(value) FILTER (WHERE NOT isnan(value)) AS hi, arg_max(value, ts) AS last_value
               FROM metric_samples GROUP BY ALL) x
             ON r.series_id = x.series_id AND r.ts = x.b AND r.resolution = '5m'"""
    ).fetchone()
    con.close()

    # Both days' rollups chain through the day boundary: they add up to the raw increase.
    assert len(raw) == 26 * 240
    assert rolled == [("1h", increase, len(raw)), ("5m", increase, len(raw))]
    assert exact == (0,)
    assert_rollups(config, [hours[:24], hours[24:]])


def test_raw_days_past_retention_get_their_rollups_before_they_go(tmp_path: Path) -> None:
    config = tiered_config(tmp_path)
    hours = [TimeWindow(DAYS[0] + h * HOUR, DAYS[0] + (h + 1) * HOUR) for h in range(24)]
    hours += [TimeWindow(DAYS[1] + h * HOUR, DAYS[1] + (h + 1) * HOUR) for h in (0, 1)]
    tables = DeltaTables(config)
    for hour in hours:
        tables.write_hour("metric_samples", hour, metric_hour(hour)[1], sort=False)
    now = DAYS[0] + timedelta(days=6)  # tiering ran last before either day was written

    result = run_tiering(config, now)

    assert not result.problems
    assert day_files(config, "metric_samples") == {}
    assert sorted(day_files(config, "metric_rollups")) == [
        f"resolution={r}/dt={d}" for r in ("1h", "5m") for d in ("2026-03-30", "2026-03-31")
    ]
    assert_rollups(config, [hours[:24], hours[24:]])
    before = versions(config, ("metric_samples", "metric_rollups"))
    run_tiering(config, now)
    assert versions(config, ("metric_samples", "metric_rollups")) == before


@pytest.mark.parametrize("step", STEPS)
def test_a_crash_after_any_step_loses_and_duplicates_nothing(tmp_path: Path, step: str) -> None:
    config = tiered_config(tmp_path)
    hours = some_hours(DAYS[:2])
    write_hours(Lake(config), hours)
    seen = snapshot(config)
    now = DAYS[0] + timedelta(days=2)

    def crash(at: str, move: DeltaMove) -> None:
        if at == step and move.stream.dataset == "metric_samples":
            raise RuntimeError(f"crash after {at}")

    with pytest.raises(RuntimeError, match=f"crash after {step}"):
        run_tiering(config, now, hook=crash)
    assert_holds(config, hours, hours)
    if step != "commit":
        assert day_files(config, "metric_samples")["dt=2026-03-30"] == 3
    crashed = snapshot(config)
    assert {k: v for k, v in crashed.items() if k != "rollups"} == {
        k: v for k, v in seen.items() if k != "rollups"
    }

    result = run_tiering(config, now)

    assert_converged(result, config, now)
    assert_holds(config, hours, hours)
    assert day_files(config, "metric_samples") == {"dt=2026-03-30": 1, "dt=2026-03-31": 3}
    assert day_files(config, "metric_rollups") == {
        "resolution=5m/dt=2026-03-30": 1,
        "resolution=1h/dt=2026-03-30": 1,
    }
    assert_rollups(config, [of_day(hours, DAYS[0])])
    for name in ("metric_samples", "metric_rollups"):
        assert parquet_files(config, name) == listed_files(config, name), (
            "no file outside the log is left behind"
        )


def test_a_process_killed_mid_compaction_leaves_nothing_a_rerun_does_not_converge(
    tmp_path: Path,
) -> None:
    config = tiered_config(tmp_path)
    hours = some_hours(DAYS[:2])
    write_hours(Lake(config), hours)
    seen = snapshot(config)
    script = textwrap.dedent(
        f"""
        import os
        from datetime import datetime
        from obs_pipelines.config import parse_config
        from obs_pipelines.lake.tiering import run_tiering
        config = parse_config({config.model_dump(mode="json", by_alias=True, exclude={"base_dir"})!r})
        def die(step, move):
            if step == "write" and move.stream.dataset == "log_records":
                os._exit(9)  # the day's file written, nothing committed
        run_tiering(config, datetime.fromisoformat("2026-04-01T00:00:00+00:00"), hook=die)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path)
    assert done.returncode == 9
    orphans = parquet_files(config, "log_records") - listed_files(config, "log_records")
    assert len(orphans) == 1, "the killed run's file is in no commit"
    assert day_files(config, "log_records")["dt=2026-03-30"] == 3
    assert snapshot(config)["logs"] == seen["logs"]

    result = run_tiering(config, DAYS[0] + timedelta(days=2))

    assert_converged(result, config, DAYS[0] + timedelta(days=2))
    assert_holds(config, hours, hours)
    assert day_files(config, "log_records") == {"dt=2026-03-30": 1, "dt=2026-03-31": 3}
    assert not orphans & listed_files(config, "log_records"), "the orphan is never read"
    after = snapshot(config)
    assert {k: v for k, v in after.items() if k != "rollups"} == {
        k: v for k, v in seen.items() if k != "rollups"
    }


def test_two_runs_at_once_leave_a_consistent_lake(tmp_path: Path) -> None:
    config = tiered_config(tmp_path)
    hours = some_hours(DAYS[:2])
    write_hours(Lake(config), hours)
    now = DAYS[0] + timedelta(days=2)
    inside, release = threading.Event(), threading.Event()
    outcomes: dict[str, Any] = {}

    def slow(step: str, move: DeltaMove) -> None:
        if step == "verify" and move.stream.dataset == "metric_samples" and not inside.is_set():
            inside.set()
            release.wait(30)

    def first() -> None:
        try:
            outcomes["first"] = run_tiering(config, now, hook=slow)
        except Exception as exc:  # reported below, with the lake's state
            outcomes["first"] = exc

    thread = threading.Thread(target=first)
    thread.start()
    assert inside.wait(30)
    # The second run compacts and rolls up the same day while the first holds its files.
    second = run_tiering(config, now)
    release.set()
    thread.join(60)

    assert not second.problems and second.moves
    first_result = outcomes["first"]
    assert isinstance(first_result, TieringResult), first_result
    assert first_result.problems == []
    assert_converged(first_result, config, now)
    assert_holds(config, hours, hours)
    assert_rollups(config, [of_day(hours, DAYS[0])])
    assert day_files(config, "metric_samples") == {"dt=2026-03-30": 1, "dt=2026-03-31": 3}
    assert day_files(config, "metric_rollups") == {
        "resolution=5m/dt=2026-03-30": 1,
        "resolution=1h/dt=2026-03-30": 1,
    }
    for name in ("metric_samples", "metric_rollups"):
        assert parquet_files(config, name) == listed_files(config, name), name


def test_an_hour_re_ingested_while_or_after_its_day_is_compacted_is_kept(tmp_path: Path) -> None:
    config = tiered_config(tmp_path)
    write_hours(Lake(config), some_hours(DAYS[:2]))
    late = TimeWindow(DAYS[0] + 7 * HOUR, DAYS[0] + 8 * HOUR)
    rewritten = log_hour(late).slice(0, 10)  # the source now has 10 rows for that hour
    done: list[str] = []

    def reingest(step: str, move: DeltaMove) -> None:
        if step == "verify" and move.stream.dataset == "log_records" and not done:
            done.append(move.describe())
            DeltaTables(config).write_hour("log_records", late, rewritten)

    result = run_tiering(config, DAYS[0] + timedelta(days=2), hook=reingest)

    assert done and not result.problems
    logs = held(config, "log_records")
    in_late = [d for d in logs.column("doc_id").to_pylist() if d.startswith("2026033007")]
    assert len(in_late) == 10 and logs.num_rows == 6 * 50 - 40
    assert day_files(config, "log_records")["dt=2026-03-30"] == 1
    history = DeltaTables(config).open("log_records").history()
    assert [c.get("obs.operation") for c in history[:4]][::-1] == [
        "ingest",
        "compact",
        "vacuum",
        "vacuum",
    ]
    assert len(parquet_files(config, "log_records")) == 4, "the refused file was deleted"

    # The same hour re-ingested after the compaction: delta-rs rewrites the day's file with it
    # in the same commit, so the day stays one file holding every row, and nothing is due.
    DeltaTables(config).write_hour("log_records", late, log_hour(late))
    assert day_files(config, "log_records")["dt=2026-03-30"] == 1
    assert run_tiering(config, DAYS[0] + timedelta(days=2)).moves == []
    assert as_bits(held(config, "log_records"), ["doc_id"]) == as_bits(
        written("log_records", some_hours(DAYS[:2])), ["doc_id"]
    )


def test_rollups_are_remade_when_samples_of_a_compacted_day_are_re_ingested(
    tmp_path: Path,
) -> None:
    now = DAYS[0] + timedelta(days=2)
    hours = some_hours(DAYS[:2])
    late = TimeWindow(DAYS[0] + 7 * HOUR, DAYS[0] + 8 * HOUR)
    samples = metric_hour(late)[1]
    doubled = pc.multiply(samples.column("value"), 2.0)
    changed = samples.set_column(2, samples.schema.field("value"), doubled)
    config = tiered_config(tmp_path)
    write_hours(Lake(config), hours)
    run_tiering(config, now)
    DeltaTables(config).write_hour("metric_samples", late, changed, sort=False)

    result = run_tiering(config, now)

    assert sorted((m.dataset, m.resolution, m.partition) for m in result.moves) == [
        ("metric_rollups", "1h", "resolution=1h/dt=2026-03-30"),
        ("metric_rollups", "5m", "resolution=5m/dt=2026-03-30"),
    ]
    first_day = [h for h in of_day(hours, DAYS[0]) if h != late]
    expected = pa.concat_tables([written("metric_samples", first_day + hours[3:]), changed])
    assert as_bits(held(config, "metric_samples"), SAMPLE_KEY) == as_bits(expected, SAMPLE_KEY)
    ordered = pa.concat_tables([written("metric_samples", first_day), changed]).sort_by(
        [("series_id", "ascending"), ("ts", "ascending")]
    )
    rollups = pa.concat_tables([compute_rollups(ordered, r) for r in RESOLUTIONS])
    assert as_bits(held(config, "metric_rollups"), ROLLUP_KEY) == as_bits(rollups, ROLLUP_KEY)
    assert_converged(result, config, now)


def test_compacted_metric_samples_take_at_most_1_4_bytes_each(tmp_path: Path) -> None:
    from obs_pipelines.config import SimulatorConfig
    from obs_pipelines.lake.ingest import ingest_metrics_hour
    from obs_pipelines.sources.simulator import SimulatedMetrics

    config = tiered_config(tmp_path)
    lake = Lake(config)
    source = SimulatedMetrics(SimulatorConfig(instances_per_service=1))
    for hour in TimeWindow(DAYS[0], DAYS[1]).hours():
        ingest_metrics_hour(lake, source, hour)

    result = run_tiering(config, DAYS[0] + timedelta(days=2))

    (move,) = [m for m in result.moves if m.dataset == "metric_samples"]
    assert move.rows == held(config, "metric_samples").num_rows > 0
    assert move.bytes_after == sum(
        a["size_bytes"]
        for a in delta.add_actions(DeltaTables(config).open("metric_samples")).to_pylist()
    )
    assert move.bytes_after / move.rows <= 1.4
    assert move.bytes_before / move.rows > 1.7, "hourly files favour write speed over size"


def test_tiering_on_s3_keeps_the_rows_written_and_survives_a_crash(
    s3_lake: dict[str, Any],
) -> None:
    config = parse_config({"lake": {**s3_lake, "delete_delay": "0s"}, "retention": RETENTION})
    hours = some_hours(DAYS[:2])
    write_hours(Lake(config), hours)
    now = DAYS[0] + timedelta(days=2)

    def crash(step: str, move: DeltaMove) -> None:
        if step == "verify" and move.stream.dataset == "log_records":
            raise RuntimeError("crash after verify")

    with pytest.raises(RuntimeError, match="crash after verify"):
        run_tiering(config, now, hook=crash)
    assert_holds(config, hours, hours)
    assert parquet_files(config, "log_records") == listed_files(config, "log_records")

    result = run_tiering(config, now)

    assert "log_records" in {m.dataset for m in result.moves}  # the rest did not crash
    assert_converged(result, config, now)
    assert_holds(config, hours, hours)
    assert_rollups(config, [of_day(hours, DAYS[0])])
    assert day_files(config, "metric_samples") == {"dt=2026-03-30": 1, "dt=2026-03-31": 3}
    assert day_files(config, "log_records") == {"dt=2026-03-30": 1, "dt=2026-03-31": 3}
    assert delta.table_uri(config, "log_records").startswith("s3://")
    for name in ("metric_samples", "log_records", "metric_rollups"):
        assert parquet_files(config, name) == listed_files(config, name), name
