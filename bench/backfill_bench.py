"""End-to-end backfill through Dagster: `obs materialize` over days of simulated telemetry, with
the lake as files and as Delta tables (issue 13: "an end-to-end 10-day backfill through Dagster
at least 3x faster than today on the same data").

Each format gets a fresh lake, catalog and Dagster instance, and runs the same command a user
runs (`obs --config ... materialize --from ... --to ...`: the ingest job, a day of hourly
partitions per run, every pillar from the built-in simulator, derived datasets and the catalog
included). The run's own log lines give the time per day. Afterwards both lakes must hold the
same rows: the bench compares row counts and checksums of every dataset through each catalog.

    .venv/bin/python -m bench.backfill_bench [--days 10] [--formats files,delta] [--work DIR]
"""

import argparse
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
START = datetime(2026, 11, 1, tzinfo=UTC)


def write_config(work: Path, lake_format: str) -> Path:
    """The demo's config (obs.demo.yaml: simulator everywhere) with its own lake and format."""
    body = {
        "extends": str(REPO / "obs.demo.yaml"),
        "ingest": {"start": START.strftime("%Y-%m-%dT%H:%M:%SZ")},
        "lake": {
            "root": str(work / "lake"),
            "catalog": str(work / "obs.duckdb"),
            "format": lake_format,
        },
    }
    path = work / "obs.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def backfill(work: Path, lake_format: str, days: int) -> tuple[float, list[str]]:
    """Seconds the whole `obs materialize` took, and the lines it printed (one per run)."""
    work.mkdir(parents=True, exist_ok=True)
    config = write_config(work, lake_format)
    env = {**os.environ, "DAGSTER_HOME": str(work / "dagster_home")}
    end = START + timedelta(days=days)
    started = time.perf_counter()
    done = subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "obs"),
            "--config",
            str(config),
            "materialize",
            "--from",
            START.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "--to",
            end.strftime("%Y-%m-%dT%H:%M:%SZ"),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"{lake_format}: obs materialize failed:\n{done.stdout}\n{done.stderr}")
    return seconds, done.stdout.splitlines()


def dataset_checksums(work: Path) -> dict[str, tuple[int, int]]:
    """(rows, checksum) of every dataset view, through the format's own catalog."""
    from obs_pipelines.config import load_config
    from obs_pipelines.datasets import ALL
    from obs_pipelines.lake.catalog import connect

    config = load_config(work / "obs.yaml")
    con = connect(config)
    try:
        found = {}
        for name in ALL:
            columns = [
                c
                for (c,) in con.execute(
                    "SELECT column_name FROM duckdb_columns() WHERE table_name = ? AND column_name <> 'dt'",
                    [name],
                ).fetchall()
            ]
            quoted = ", ".join(f'"{c}"' for c in columns)
            row = con.execute(
                f"SELECT count(*), coalesce(sum(hash({quoted})), 0) FROM {name}"
            ).fetchone()
            found[name] = (int(row[0]), int(row[1]))
        return found
    finally:
        con.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--formats", default="files,delta")
    parser.add_argument("--work", type=Path, default=REPO / "bench" / "work" / "backfill")
    args = parser.parse_args(argv)
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    seconds, sums = {}, {}
    for lake_format in formats:
        work = args.work / lake_format
        if work.exists():
            subprocess.run(["rm", "-rf", str(work)], check=True)
        seconds[lake_format], lines = backfill(work, lake_format, args.days)
        print(f"{lake_format}: {seconds[lake_format]:.1f} s for {args.days} days", flush=True)
        for line in lines:
            print(f"  {line}")
        sums[lake_format] = dataset_checksums(work)
    print(f"\n| format | {args.days}-day backfill | per day |\n|---|---:|---:|")
    for lake_format in formats:
        s = seconds[lake_format]
        print(f"| {lake_format} | {s:.1f} s | {s / args.days:.1f} s |")
    if len(formats) == 2:
        a, b = formats
        print(f"\n{a} / {b}: {seconds[a] / seconds[b]:.2f}x")
        differ = [d for d in sums[a] if sums[a][d] != sums[b][d]]
        rows = sum(r for r, _ in sums[a].values())
        print(
            f"datasets with other rows: {', '.join(differ) or 'none'} "
            f"({rows:,} rows compared by count and hash)"
        )
        if differ:
            sys.exit(1)


if __name__ == "__main__":
    main()
