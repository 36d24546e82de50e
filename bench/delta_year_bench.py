"""Catalog build and one-day queries on the Delta lake as it grows to a year
(issue 13: "catalog rebuild <= 1 s and flat in lake size; a query over one day reads only that
day's files, shown with EXPLAIN ANALYZE").

The lake is what a year of tiering leaves: every dataset one file per day (compacted), rollups one
file per resolution and day, plus the last two days still hourly (24 files a day). Rows are few:
the build reads the tables' logs only, so its cost depends on files and commits, not on rows.
Each size is built from scratch, then ``build_catalog`` is timed (median of 3) and
``SELECT count(*) FROM metric_samples WHERE dt = <a day>`` is profiled.

    .venv/bin/python -m bench.delta_year_bench [--days 7,90,365] [--work DIR]
"""

import argparse
import json
import re
import shutil
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

from obs_pipelines.config import ObsConfig, parse_config
from obs_pipelines.datasets import ALL
from obs_pipelines.datasets import dataset as dataset_of
from obs_pipelines.lake import delta
from obs_pipelines.lake.catalog import build_catalog, connect
from obs_pipelines.lake.delta_tables import DeltaTables
from obs_pipelines.windows import TimeWindow

REPO = Path(__file__).resolve().parent.parent
END = datetime(2026, 12, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
ROWS = 240  # per file


def config_for(work: Path) -> ObsConfig:
    return parse_config(
        {
            "lake": {
                "root": str(work / "lake"),
                "catalog": str(work / "obs.duckdb"),
            }
        }
    )


def rows_for(dataset: str, window: TimeWindow) -> pa.Table:
    """``ROWS`` rows of ``dataset`` spread over ``window``: every column of its schema, nulls where
    nullable, ids and times that vary."""
    schema = dataset_of(dataset).schema
    step = int((window.end - window.start).total_seconds() * 1000) // ROWS
    starts = window.start_ms + np.arange(ROWS, dtype=np.int64) * step
    columns = {}
    for field in schema:
        kind = field.type
        if pa.types.is_timestamp(kind):
            columns[field.name] = pa.array(starts, pa.int64()).cast(pa.timestamp("ms")).cast(kind)
        elif pa.types.is_integer(kind):
            columns[field.name] = pa.array(np.arange(ROWS) % 50, pa.int64()).cast(kind)
        elif pa.types.is_floating(kind):
            columns[field.name] = pa.array(np.linspace(0, 1, ROWS), kind)
        elif pa.types.is_boolean(kind):
            columns[field.name] = pa.array(np.arange(ROWS) % 2 == 0)
        elif pa.types.is_string(kind):
            columns[field.name] = pa.array([f"v{i % 7}" for i in range(ROWS)], kind)
        elif pa.types.is_map(kind):
            columns[field.name] = pa.array([[("k", f"v{i % 3}")] for i in range(ROWS)], kind)
        elif pa.types.is_list(kind):
            columns[field.name] = pa.array([["a"] for _ in range(ROWS)], kind)
        else:
            raise SystemExit(f"no generator for {dataset}.{field.name} ({kind})")
    return pa.table(columns, schema=schema)


def build_lake(work: Path, days: int) -> tuple[ObsConfig, int]:
    """A lake of ``days`` compacted days plus two hourly days; returns it and its file count."""
    if work.exists():
        shutil.rmtree(work)
    config = config_for(work)
    tables = DeltaTables(config)
    tables.ensure_tables()
    first = END - timedelta(days=days)
    for layout in delta.layouts():
        name = layout.dataset
        for d in range(days - 2):
            start = first + timedelta(days=d)
            window = TimeWindow(start, start + timedelta(days=1))
            rows = rows_for(name, window)
            if name == "metric_rollups":  # both resolutions of the day in one commit
                at = rows.schema.get_field_index("resolution")
                rows = pa.concat_tables(
                    rows.set_column(at, "resolution", pa.array([r] * ROWS)) for r in ("5m", "1h")
                )
            _write_day(config, layout, rows, start)
        if name == "metric_rollups":
            continue
        for h in range(48):  # the last two days, still hourly
            start = END - timedelta(days=2) + h * HOUR
            tables.write_hour(
                name,
                TimeWindow(start, start + HOUR),
                rows_for(name, TimeWindow(start, start + HOUR)),
            )
    files = sum(
        pa.table(tables.open(name).get_add_actions(flatten=True)).num_rows  # type: ignore[union-attr]
        for name in ALL
    )
    return config, files


def _write_day(
    config: ObsConfig, layout: delta.TableLayout, table: pa.Table, day: datetime
) -> None:
    """One compacted day through the same conversion an hourly write uses."""
    tables = DeltaTables(config)
    stored = tables._to_table(layout, TimeWindow(day, day + HOUR), table)
    delta.write_day(
        config,
        layout,
        day.strftime("%Y-%m-%d"),
        pa.RecordBatchReader.from_batches(layout.schema, stored.to_batches()),
        operation="bench",
    )


def timed_build(config: ObsConfig) -> float:
    seconds = []
    for _ in range(3):
        started = time.perf_counter()
        build_catalog(config)
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def one_day_profile(config: ObsConfig, day: str) -> tuple[int, str, str]:
    """Rows of one day, and the scan's file counts from DuckDB's profile of the query."""
    con = connect(config)
    try:
        plan = con.execute(
            f"EXPLAIN ANALYZE SELECT count(*) FROM metric_samples WHERE dt = '{day}'"
        ).fetchall()
        text = plan[0][1]
        rows = con.execute(f"SELECT count(*) FROM metric_samples WHERE dt = '{day}'").fetchone()[0]
    finally:
        con.close()
    scanning = re.search(r"Scanning Files: *([0-9]+/[0-9]+)", text)
    read = re.search(r"Total Files Read: *([0-9]+)", text)
    return rows, scanning.group(1) if scanning else "?", read.group(1) if read else "?"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", default="7,90,365")
    parser.add_argument("--work", type=Path, default=REPO / "bench" / "work" / "delta-year")
    args = parser.parse_args(argv)
    print(
        "| days | data files | catalog build (median of 3) | one-day query: rows, files scanned, files read |"
    )
    print("|---:|---:|---:|---|")
    for days in [int(d) for d in args.days.split(",")]:
        config, files = build_lake(args.work / f"d{days}", days)
        build = timed_build(config)
        day = (END - timedelta(days=days // 2)).strftime("%Y-%m-%d")
        rows, scanning, read = one_day_profile(config, day)
        print(
            f"| {days} | {files:,} | {build:.2f} s | {rows} rows, {scanning} scanned, {read} read |",
            flush=True,
        )
    print(json.dumps({"end": END.isoformat()}))


if __name__ == "__main__":
    main()
