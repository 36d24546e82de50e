"""End-to-end backfill through Dagster: `obs materialize` over days of simulated telemetry into
the Delta lake (issue 13: "an end-to-end 10-day backfill through Dagster at least 3x faster than
today on the same data"; the files-vs-Delta figures are in RESULTS-delta.md section 6).

A fresh lake, catalog and Dagster instance run the same command a user runs (`obs --config ...
materialize --from ... --to ...`: the ingest job, a day of hourly partitions per run, every pillar
from the built-in simulator, derived datasets and the catalog included). The run's own log lines
give the time per day. Afterwards the bench prints the rows and checksum of every dataset view
(and writes them to `<work>/checksums.json`), so a rerun after a change can be compared with
this one: the simulator is deterministic, so the same days must give the same rows.

``--instance production`` runs it on the production instance profile (`deploy/dagster.yaml`:
Dagster's PostgreSQL storage) against a throwaway PostgreSQL started for the bench with fsync on,
as a production server commits; the default is the local SQLite instance `obs materialize` makes.
Dagster's own batching of a ranged run's materializations is set in the environment as for any
Dagster process (`DAGSTER_EVENT_BATCH_SIZE`, see deploy/README.md).

    .venv/bin/python -m bench.backfill_bench [--days 10] [--work DIR] [--instance production]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
START = datetime(2026, 11, 1, tzinfo=UTC)


def write_config(work: Path) -> Path:
    """The demo's config (obs.demo.yaml: simulator everywhere) with its own lake."""
    body = {
        "extends": str(REPO / "obs.demo.yaml"),
        "ingest": {"start": START.strftime("%Y-%m-%dT%H:%M:%SZ")},
        "lake": {
            "root": str(work / "lake"),
            "catalog": str(work / "obs.duckdb"),
        },
    }
    path = work / "obs.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


@contextmanager
def dagster_instance(work: Path, kind: str) -> Iterator[None]:
    """``$DAGSTER_HOME`` for the bench: empty (`obs materialize` writes its local SQLite default)
    or the production profile on a PostgreSQL that lives as long as the context."""
    home = work / "dagster_home"
    os.environ["DAGSTER_HOME"] = str(home)
    if kind == "sqlite":
        yield
        return
    sys.path.insert(0, str(REPO))  # tests.ops_servers starts PostgreSQL as the test suite does
    from tests import ops_servers

    home.mkdir(parents=True)
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    with ops_servers.postgres(durable=True) as pg:
        os.environ.update(
            DAGSTER_PG_HOST=pg.host,
            DAGSTER_PG_PORT=str(pg.port),
            DAGSTER_PG_USER=pg.user,
            DAGSTER_PG_PASSWORD="",
            DAGSTER_PG_DB=pg.database,
        )
        yield


def backfill(work: Path, days: int) -> tuple[float, list[str]]:
    """Seconds the whole `obs materialize` took, and the lines it printed (one per run)."""
    work.mkdir(parents=True, exist_ok=True)
    config = write_config(work)
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
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"obs materialize failed:\n{done.stdout}\n{done.stderr}")
    return seconds, done.stdout.splitlines()


def dataset_checksums(work: Path) -> dict[str, tuple[int, int]]:
    """(rows, checksum) of every dataset view, through the catalog (``dt`` left out: it is
    derived from the time column)."""
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


def step_seconds(work: Path) -> tuple[dict[str, float], float]:
    """Seconds of each step (summed over the runs) and of the runs, start to success, from the
    instance's event log: where a run's time goes (the derived datasets' share of an ingest run
    is issue 10's "derived datasets add <= 10% to ingest time" as a user's run shows it)."""
    from dagster import DagsterEventType, DagsterInstance

    os.environ["DAGSTER_HOME"] = str(work / "dagster_home")
    kinds = {
        DagsterEventType.RUN_START,
        DagsterEventType.RUN_SUCCESS,
        DagsterEventType.STEP_START,
        DagsterEventType.STEP_SUCCESS,
    }
    steps: dict[str, float] = {}
    runs = 0.0
    with DagsterInstance.get() as instance:
        for run in instance.get_runs():
            started: dict[str | None, float] = {}
            for record in instance.all_logs(run.run_id, of_type=kinds):
                event = record.dagster_event
                if event.event_type in (DagsterEventType.RUN_START, DagsterEventType.STEP_START):
                    started[event.step_key] = record.timestamp
                    continue
                seconds = record.timestamp - started.pop(event.step_key)
                if event.step_key is None:
                    runs += seconds
                else:
                    steps[event.step_key] = steps.get(event.step_key, 0.0) + seconds
    return steps, runs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--work", type=Path, default=REPO / "bench" / "work" / "backfill")
    parser.add_argument("--instance", choices=["sqlite", "production"], default="sqlite")
    args = parser.parse_args(argv)
    if args.work.exists():
        subprocess.run(["rm", "-rf", str(args.work)], check=True)
    args.work.mkdir(parents=True)
    with dagster_instance(args.work, args.instance):
        report(args.work, args.days)


def report(work: Path, days: int) -> None:
    """Run the backfill and print its figures: time, steps, rows and checksums."""
    seconds, lines = backfill(work, days)
    print(f"{seconds:.1f} s for {days} days", flush=True)
    for line in lines:
        print(f"  {line}")
    sums = dataset_checksums(work)
    print(f"\n| {days}-day backfill | per day |\n|---:|---:|")
    print(f"| {seconds:.1f} s | {seconds / days:.1f} s |")
    steps, runs = step_seconds(work)
    print(f"\n| step | seconds | share of the runs ({runs:.1f} s) |\n|---|---:|---:|")
    for step, spent in sorted(steps.items(), key=lambda s: -s[1]):
        print(f"| {step} | {spent:.1f} | {spent / runs:.1%} |")
    print("\n| dataset | rows | checksum |\n|---|---:|---:|")
    for name, (rows, checksum) in sums.items():
        print(f"| {name} | {rows:,} | {checksum} |")
    total = sum(r for r, _ in sums.values())
    print(f"| total | {total:,} | |")
    (work / "checksums.json").write_text(
        json.dumps({"days": days, "start": START.isoformat(), "datasets": sums}, indent=1)
    )
    print(f"\nwritten to {work / 'checksums.json'}")


if __name__ == "__main__":
    main()
