"""How long a lake-freshness tick takes as the partition count grows.

A tick lists the hot partitions of each watched dataset and never opens a file, so its cost is
the listing: this measures ``lake_freshness_from_config`` (the sensor's whole engine work) over
1,000 to 20,000 hourly partitions of a local lake. Run from the repo root:

    .venv/bin/python -m bench.freshness_bench [--counts 1000,5000,20000]
"""

import argparse
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from obs_pipelines.config import parse_config
from obs_pipelines.datasets import SCHEMAS
from obs_pipelines.lake import Lake
from obs_pipelines.lake.paths import hot_file
from obs_pipelines.operations.freshness import lake_freshness_from_config
from obs_pipelines.windows import HOUR, TimeWindow, floor_hour


def local_lake(work: Path, count: int, now: datetime) -> dict:
    """``count`` hourly metric_samples partitions ending at ``now`` (hard links of one file)."""
    first = now - count * HOUR
    sections = {
        "ingest": {"start": first.isoformat()},
        "lake": {"root": str(work / "lake"), "catalog": str(work / "obs.duckdb")},
        "retention": {"metrics": {"hot": "1000d", "warm": "1100d", "cold": "1200d"}},
        "freshness": {"metric_samples": "2h"},
    }
    lake = Lake(parse_config(sections))
    template = TimeWindow(first, first + HOUR)
    lake.write_hot("metric_samples", template, SCHEMAS["metric_samples"].empty_table())
    source = Path(lake.storage.root) / hot_file("metric_samples", template)
    for i in range(1, count):
        hour = TimeWindow(first + i * HOUR, first + (i + 1) * HOUR)
        target = Path(lake.storage.root) / hot_file("metric_samples", hour)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(source, target)
    return sections


def measure(sections: dict, now: datetime, reps: int = 5) -> float:
    config = parse_config(sections)
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        lake_freshness_from_config(config, now, gap_lookback=timedelta(days=1000))
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", default="1000,5000,20000")
    args = parser.parse_args()
    now = floor_hour(datetime.now(UTC))
    print("| partitions | tick (median of 5) | per partition |")
    print("|---:|---:|---:|")
    for count in (int(c) for c in args.counts.split(",")):
        with tempfile.TemporaryDirectory() as work:
            seconds = measure(local_lake(Path(work), count, now), now)
        print(f"| {count:,} | {seconds * 1000:.0f} ms | {seconds / count * 1e6:.1f} µs |")


if __name__ == "__main__":
    main()
