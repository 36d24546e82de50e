"""Issue 10's full-size figures without the per-view children of ``bench.report_bench``: write the
bench's history at ``--services`` x ``--days`` with its derived datasets, time ``build_catalog``,
and time the report suite in one session step by step (as ``obs report`` and the report asset
run it: open, pin every report of ``PINNED_REPORTS`` in order, then every other view).

    .venv/bin/python -m bench.report_suite --services 50 --days 30 --work /tmp/bench50x30 prep
    .venv/bin/python -m bench.report_suite --services 50 --days 30 --work /tmp/bench50x30 build
    .venv/bin/python -m bench.report_suite --services 50 --days 30 --work /tmp/bench50x30 suite

Prints one line per step (wall and CPU seconds of this process, all threads).
"""

import argparse
import statistics
import time
from pathlib import Path

import bench.report_bench as report_bench
from obs_pipelines.config import ObsConfig
from obs_pipelines.lake import delta
from obs_pipelines.lake.catalog import build_catalog
from obs_pipelines.lake.delta_tables import DeltaTables
from obs_pipelines.reporting.derived import derive
from obs_pipelines.reporting.reports import PINNED_REPORTS, report_connection, report_queries

METRIC_DATASETS = (
    "metric_samples",
    "metric_series",
    "sli_minutes",
    "up_minutes",
    "series_inventory",
)


def prep(config: ObsConfig, services: int, days: int) -> None:
    """The bench's history, day by day, with up_minutes and series_inventory per day (as
    ``report_bench`` writes it), then sli_minutes over the whole range."""
    history = report_bench.History(services, days, seed=10)
    figures = report_bench.Figures()
    started = time.perf_counter()
    for day in range(days):
        report_bench.write_day(config, history, day, figures)
    derive(config, report_bench.day_window(0, days), datasets=("sli_minutes",))
    print(f"prepared {days} days in {time.perf_counter() - started:.1f} s", flush=True)


def build(config: ObsConfig, reps: int) -> None:
    tables = DeltaTables(config)
    files = sum(
        delta.add_actions(found).num_rows
        for found in (tables.open(d) for d in METRIC_DATASETS)
        if found is not None
    )
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        build_catalog(config)
        times.append(time.perf_counter() - started)
    listed = ", ".join(f"{t:.2f}" for t in times)
    print(
        f"build_catalog: {files:,} live data files; runs {listed} s; median {statistics.median(times):.2f} s"
    )


def suite(config: ObsConfig) -> None:
    wall, cpu = time.perf_counter(), time.process_time()
    con = report_connection(config)
    print(f"{'open, pin the default end':28s} {time.perf_counter() - wall:7.2f}", flush=True)
    database = con.execute("SELECT current_database()").fetchone()[0]

    def timed(label: str, create: str, table: str) -> None:
        """Run ``create`` (which makes ``table``) and print its wall and CPU seconds and rows."""
        step, step_cpu = time.perf_counter(), time.process_time()
        con.execute(create)
        rows = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        print(
            f"{label:28s} {time.perf_counter() - step:7.2f} cpu {time.process_time() - step_cpu:7.2f}"
            f"  {rows:,} rows",
            flush=True,
        )

    for name in PINNED_REPORTS:
        timed(
            name,
            f'CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM "{database}".main.{name}',
            name,
        )
    others = time.perf_counter()
    for name in report_queries():
        if name not in PINNED_REPORTS:
            timed(
                f"  {name}",
                f"CREATE TEMP TABLE bench_result AS SELECT * FROM {name}",
                "bench_result",
            )
            con.execute("DROP TABLE bench_result")
    print(f"{'every other view':28s} {time.perf_counter() - others:7.2f}")
    con.close()
    print(f"{'total':28s} {time.perf_counter() - wall:7.2f} cpu {time.process_time() - cpu:7.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=50)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--work", type=Path, required=True, help="lake and catalog folder")
    parser.add_argument("--reps", type=int, default=3, help="catalog builds to time")
    parser.add_argument("step", choices=("prep", "build", "suite"))
    args = parser.parse_args()
    report_bench.WORK = args.work.resolve()  # bench_config reads it for the lake's paths
    args.work.mkdir(parents=True, exist_ok=True)
    config = report_bench.bench_config(args.services, args.days)
    if args.step == "prep":
        prep(config, args.services, args.days)
    elif args.step == "build":
        build(config, args.reps)
    else:
        suite(config)


if __name__ == "__main__":
    main()
