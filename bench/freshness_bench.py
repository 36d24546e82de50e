"""How long a lake-freshness tick takes as the written hours grow.

A tick reads the written hours of each watched dataset from the Delta table's commit history
(``DeltaTables.written_hours``) and never opens a data file, so its cost is opening the table
(the log since its last checkpoint; one every 10 commits) and reading the commit records. This
measures ``lake_freshness_from_config`` (the sensor's whole engine work) over 1,000 and 5,000
hourly commits of a local ``metric_samples`` table, each written with ``Lake.write_hot`` as
ingest writes it. The hours are empty by default (a commit record each, no data file); ``--rows
1`` gives each hour a data file, so every checkpoint carries one live file per hour, as a lake
that never tiers would. Writing a commit costs more as the log grows (5 ms at 200 commits; the
5,000 took 3.6 min of CPU, 400 s wall at load 30), so 20,000 are left out; the setup time is
printed beside each tick. Run from the repo root:

    .venv/bin/python -m bench.freshness_bench [--counts 1000,5000] [--rows 0]
"""

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from obs_pipelines.config import parse_config
from obs_pipelines.datasets import SCHEMAS
from obs_pipelines.lake import Lake
from obs_pipelines.operations.freshness import lake_freshness_from_config
from obs_pipelines.windows import HOUR, TimeWindow, floor_hour


def hour_rows(start: datetime, rows: int) -> pa.Table:
    """``rows`` samples of one series in the hour starting at ``start`` (none for 0)."""
    schema = SCHEMAS["metric_samples"].empty_table().schema
    return pa.table(
        {
            "series_id": pa.array([1] * rows, pa.uint64()),
            "ts": pa.array(
                [start + timedelta(seconds=15 * i) for i in range(rows)], pa.timestamp("ms")
            ),
            "value": pa.array([1.0] * rows, pa.float64()),
        },
        schema=schema,
    )


def local_lake(work: Path, count: int, now: datetime, rows: int) -> tuple[dict, float]:
    """``count`` hourly commits of metric_samples ending at ``now``, and the seconds they took."""
    first = now - count * HOUR
    sections = {
        "ingest": {"start": first.isoformat()},
        "lake": {"root": str(work / "lake"), "catalog": str(work / "obs.duckdb")},
        "retention": {"metrics": {"hot": "1000d", "warm": "1100d", "cold": "1200d"}},
        "freshness": {"metric_samples": "2h"},
    }
    lake = Lake(parse_config(sections))
    started = time.perf_counter()
    for i in range(count):
        start = first + i * HOUR
        lake.write_hot("metric_samples", TimeWindow(start, start + HOUR), hour_rows(start, rows))
    return sections, time.perf_counter() - started


def measure(sections: dict, now: datetime, count: int, reps: int = 5) -> float:
    """Median seconds of one tick; every tick must find all ``count`` hours and no gap."""
    config = parse_config(sections)
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        (found,) = lake_freshness_from_config(config, now, gap_lookback=timedelta(days=1000))
        times.append(time.perf_counter() - started)
        if found.partitions != count or found.missing or found.breached:
            raise SystemExit(
                f"tick found {found.partitions} of {count} hours, {len(found.missing)} missing"
            )
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", default="1000,5000")
    parser.add_argument("--rows", type=int, default=0, help="rows per hour (default 0: empty)")
    args = parser.parse_args()
    now = floor_hour(datetime.now(UTC))
    print(
        f"| hourly commits | setup (write_hot, {args.rows} row/h) | tick (median of 5) | per commit |"
    )
    print("|---:|---:|---:|---:|")
    for count in (int(c) for c in args.counts.split(",")):
        with tempfile.TemporaryDirectory() as work:
            sections, setup = local_lake(Path(work), count, now, args.rows)
            seconds = measure(sections, now, count)
        print(
            f"| {count:,} | {setup:.1f} s | {seconds * 1000:.0f} ms "
            f"| {seconds / count * 1e6:.1f} µs |",
            flush=True,
        )


if __name__ == "__main__":
    main()
