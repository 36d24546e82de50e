"""What a time filter costs through the catalog's views, by how the tables store timestamps.

The lake stores Delta ``timestamp`` (UTC-adjusted; protocol reader 1 / writer 2) and the views
turn it into naive UTC with ``make_timestamp(epoch_us(ts))``, which DuckDB cannot push into the
scan; a ``timestamp_ntz`` column (reader 3 / writer 7, the ``timestampNtz`` feature) needs no
expression. Writes the same samples both ways (one file per day, as a compacted lake holds them)
and times the same queries over each view:

    .venv/bin/python -m bench.timestamp_filter_bench --days 60 --rows-per-day 1000000
"""

import argparse
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from obs_pipelines.lake.attach import load_packaged_extension
from obs_pipelines.sql_literal import sql_literal

DAY_US = 86_400_000_000
START_US = int(np.datetime64("2026-01-01T00:00:00", "us").astype(np.int64))


def write_tables(root: Path, days: int, rows: int) -> None:
    """The same samples as a ``timestamp`` table and a ``timestamp_ntz`` table."""
    from deltalake import write_deltalake

    rng = np.random.default_rng(30)
    for day in range(days):
        start = START_US + day * DAY_US
        stamps = pa.array(np.sort(start + rng.integers(0, DAY_US, rows)), pa.int64())
        columns = {
            "series_id": pa.array(rng.integers(0, 700, rows), pa.int64()),
            "value": pa.array(rng.random(rows)),
            "dt": pa.array([str(np.datetime64(start, "us").astype("datetime64[D]"))] * rows),
        }
        for name, zone in (("zoned", "UTC"), ("ntz", None)):
            table = pa.table({"ts": stamps.cast(pa.timestamp("us", tz=zone)), **columns})
            write_deltalake(str(root / name), table, mode="append", partition_by=["dt"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--rows-per-day", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        started = time.perf_counter()
        write_tables(root, args.days, args.rows_per_day)
        print(f"wrote 2 x {args.days} days in {time.perf_counter() - started:.1f} s")
        con = duckdb.connect()
        load_packaged_extension(con, "duckdb_extension_delta", "delta")
        con.execute(
            "CREATE VIEW zoned AS SELECT series_id, make_timestamp(epoch_us(ts)) AS ts, value, dt "
            f"FROM delta_scan({sql_literal(str(root / 'zoned'))})"
        )
        con.execute(
            "CREATE VIEW ntz AS SELECT series_id, ts, value, dt "
            f"FROM delta_scan({sql_literal(str(root / 'ntz'))})"
        )
        last = np.datetime64(START_US + (args.days - 2) * DAY_US, "us")
        hour = last + np.timedelta64(12, "h")
        queries = {
            "the last 2 days": f"ts >= '{last}'",
            "one hour": f"ts >= '{hour}' AND ts < '{hour + np.timedelta64(1, 'h')}'",
        }
        for label, where in queries.items():
            for view in ("zoned", "ntz"):
                times = []
                for _ in range(args.reps):
                    started = time.perf_counter()
                    rows, _ = con.execute(
                        f"SELECT count(*), sum(value) FROM {view} WHERE {where}"
                    ).fetchone()
                    times.append(time.perf_counter() - started)
                listed = ", ".join(f"{t:.3f}" for t in times)
                print(f"{label:16} {view:6} {rows:>10,} rows  {listed} s")


if __name__ == "__main__":
    main()
