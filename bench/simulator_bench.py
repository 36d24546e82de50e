"""The built-in simulator's own cost: a day of each simulated pillar read hour by hour through one
source, as an ingest run reads it (the demo, `make demo` and most tests run on it, and it is
most of the backfill bench's metrics step).

    .venv/bin/python -m bench.simulator_bench [--days 1] [--reps 3]

Prints, per pillar, the best of ``--reps`` (wall seconds for the days, and rows).
"""

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from obs_pipelines.config import parse_config
from obs_pipelines.sources import metric_source, table_source
from obs_pipelines.windows import TimeWindow

START = datetime(2026, 11, 16, tzinfo=UTC)  # a Monday: the week's incidents follow
PILLARS = ("metrics", "log_records", "spans", "alert_fragments")


def reader(pillar: str) -> Callable[[list[TimeWindow]], int]:
    """What reads the hours of one pillar through one fresh source; returns the rows read."""
    config = parse_config({})

    def read(hours: list[TimeWindow]) -> int:
        if pillar == "metrics":
            source = metric_source(config)
            return sum(c.samples.num_rows for h in hours for c in source.read_metrics(h))
        tables = table_source(config, pillar)
        assert tables is not None, pillar
        return sum(t.num_rows for h in hours for t in tables.read(h))

    return read


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(argv)
    hours = [
        TimeWindow(START + timedelta(hours=h), START + timedelta(hours=h + 1))
        for h in range(24 * args.days)
    ]
    print(f"| pillar | {args.days} day(s), best of {args.reps} | rows |\n|---|---:|---:|")
    for pillar in PILLARS:
        best, rows = float("inf"), 0
        for _ in range(args.reps):
            started = time.perf_counter()
            rows = reader(pillar)(hours)
            best = min(best, time.perf_counter() - started)
        print(f"| {pillar} | {best:.2f} s | {rows:,} |", flush=True)


if __name__ == "__main__":
    main()
