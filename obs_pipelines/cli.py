"""The ``obs`` command: query the catalog, rebuild it, check config, and launch ingest runs.

Only ``materialize`` and ``demo`` touch Dagster (they launch runs on the local instance, so the
UI shows them); everything else is the plain engine.
"""

import argparse
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from obs_pipelines.config import CONFIG_ENV_VAR, DEFAULT_CONFIG_PATH, ObsConfig, load_config
from obs_pipelines.durations import parse_duration
from obs_pipelines.errors import ObsError
from obs_pipelines.windows import HOUR, TimeWindow, floor_hour, utc

INGEST_JOB = "ingest_job"
SNAPSHOT_JOB = "snapshot_job"
RUN_PARTITIONS = 24  # hours per run, as the assets' backfill policy
# The run's events are in the instance (and the UI); the terminal gets one line per run.
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
DEFAULT_INSTANCE_YAML = "telemetry:\n  enabled: false\n"


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except ObsError as exc:
        print(f"obs: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="obs", description="obs-pipelines: the observability lake and its reports."
    )
    parser.add_argument(
        "--config", help=f"config file (default ${CONFIG_ENV_VAR} or {DEFAULT_CONFIG_PATH})"
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    query = commands.add_parser(
        "query", help="run SQL over the catalog and print or write the result"
    )
    query.add_argument("sql")
    query.add_argument("--format", choices=["table", "csv", "json", "parquet"], default="table")
    query.add_argument("--output", "-o", help="write to this file instead of standard output")
    query.add_argument("--max-rows", type=int, default=40, help="rows shown by --format table")
    query.set_defaults(handler=_query)

    catalog = commands.add_parser(
        "catalog", help="rebuild the DuckDB catalog of views over the lake"
    )
    catalog.set_defaults(handler=_catalog)

    check = commands.add_parser("check-config", help="validate the config and summarize it")
    check.set_defaults(handler=_check_config)

    materialize = commands.add_parser(
        "materialize", help="ingest a range of hourly partitions through Dagster"
    )
    span = materialize.add_mutually_exclusive_group(required=True)
    span.add_argument("--last", help="the closed hours of this trailing duration, e.g. 7d")
    span.add_argument("--from", dest="start", help="first hour (ISO 8601, UTC)")
    materialize.add_argument(
        "--to", dest="end", help="end of the range, exclusive (default: the current hour)"
    )
    materialize.set_defaults(handler=_materialize)

    demo = commands.add_parser(
        "demo", help="ingest 7 days of simulated telemetry and summarize the lake"
    )
    demo.add_argument("--days", type=int, default=7)
    demo.set_defaults(handler=_demo)
    return parser


def _config(args: argparse.Namespace) -> ObsConfig:
    return load_config(args.config)


def _query(args: argparse.Namespace) -> int:
    from obs_pipelines.catalog import connect

    con = connect(_config(args))
    try:
        relation = con.sql(args.sql)
    except Exception as exc:  # DuckDB's own errors are already one clear line
        raise ObsError(f"query failed: {str(exc).splitlines()[0]}") from None
    if relation is None:
        return 0
    if args.format == "table":
        relation.show(max_rows=args.max_rows, max_width=200)
        return 0
    if args.format == "parquet" and not args.output:
        raise ObsError("--format parquet needs --output FILE (Parquet is not for a terminal)")
    target = args.output or "/dev/stdout"
    options = {
        "csv": "FORMAT csv, HEADER true",
        "json": "FORMAT json, ARRAY true",
        "parquet": "FORMAT parquet, COMPRESSION zstd",
    }
    con.execute(f"COPY ({args.sql}) TO '{target}' ({options[args.format]})")
    if args.output:
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _catalog(args: argparse.Namespace) -> int:
    from obs_pipelines.catalog import build_catalog

    print(f"catalog rebuilt: {build_catalog(_config(args))}")
    return 0


def _check_config(args: argparse.Namespace) -> int:
    config = _config(args)
    print(
        f"config OK: metrics from {config.sources.metrics}; lake at {config.lake_root}; catalog {config.catalog_path}"
    )
    print(
        f"  {len(config.services)} services, {len(config.slos)} SLOs, ingest from {config.ingest.start:%Y-%m-%d %H:%M}Z"
    )
    return 0


def _materialize(args: argparse.Namespace) -> int:
    config_path = _config_path(args)
    end = floor_hour(utc(args.end)) if args.end else floor_hour(datetime.now(UTC))
    start = (
        floor_hour(end - parse_duration(args.last)) if args.last else floor_hour(utc(args.start))
    )
    failures = launch_ingest_runs(config_path, TimeWindow(start, end))
    return 1 if failures else 0


def _demo(args: argparse.Namespace) -> int:
    config_path = _config_path(args)
    end = floor_hour(datetime.now(UTC))
    window = TimeWindow(end - timedelta(days=args.days), end)
    if launch_ingest_runs(config_path, window, snapshot=True):
        return 1
    _print_summary(load_config(config_path))
    return 0


def _config_path(args: argparse.Namespace) -> str:
    path = args.config or os.environ.get(CONFIG_ENV_VAR) or DEFAULT_CONFIG_PATH
    load_config(path)  # refuse a bad config before Dagster starts
    return str(Path(path).resolve())


def launch_ingest_runs(config_path: str, window: TimeWindow, snapshot: bool = False) -> list[str]:
    """Run the ingest job over ``window`` on the persistent Dagster instance, a day per run, and
    (with ``snapshot``) the rules/Alertmanager snapshot job once.

    Returns one line per failed run (already printed).
    """
    os.environ[CONFIG_ENV_VAR] = config_path
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(Path(".dagster_home").resolve())))
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text(DEFAULT_INSTANCE_YAML)
    from dagster import DagsterInstance

    from obs_pipelines.definitions import build_definitions

    config = load_config(config_path)
    if window.start < config.ingest.start:
        raise ObsError(
            f"{window.start:%Y-%m-%d %H:%M}Z is before ingest.start ({config.ingest.start:%Y-%m-%d %H:%M}Z); "
            "move ingest.start earlier in the config or ask for a later range"
        )
    defs = build_definitions(config_path)
    runs = [
        (
            defs.resolve_job_def(INGEST_JOB),
            str(chunk),
            {
                "dagster/asset_partition_range_start": f"{chunk.start:%Y-%m-%d-%H:%M}",
                "dagster/asset_partition_range_end": f"{chunk.end - HOUR:%Y-%m-%d-%H:%M}",
            },
        )
        for chunk in window.split(RUN_PARTITIONS * HOUR)
    ]
    if snapshot:
        runs.append((defs.resolve_job_def(SNAPSHOT_JOB), "rules and Alertmanager snapshot", {}))
    failures = []
    with DagsterInstance.get() as instance:
        for job, what, tags in runs:
            result = job.execute_in_process(
                instance=instance, tags=tags, raise_on_error=False, run_config=QUIET_RUN_CONFIG
            )
            if result.success:
                print(f"ingested {what} (run {result.run_id[:8]})")
            else:
                line = f"run {result.run_id[:8]} for {what} failed: {_failure_reason(result)}"
                print(f"obs: error: {line}", file=sys.stderr)
                failures.append(line)
    return failures


def _failure_reason(result: object) -> str:
    for event in result.all_events:  # type: ignore[attr-defined]
        if event.is_step_failure and event.step_failure_data.error:
            error = event.step_failure_data.error
            while error.cause is not None:
                error = error.cause
            return error.message.strip().split(": ", 1)[-1].splitlines()[0]
    return "see the run in the Dagster UI"


def _print_summary(config: ObsConfig) -> None:
    from obs_pipelines.catalog import connect

    con = connect(config)
    series, samples, first, last = con.execute(
        "SELECT (SELECT count(*) FROM metric_series), count(*), min(ts), max(ts) FROM metric_samples"
    ).fetchone()
    services = con.execute("SELECT count(DISTINCT service) FROM metric_series").fetchone()[0]
    logs, errors = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE level = 'error') FROM log_records"
    ).fetchone()
    spans, traces = con.execute("SELECT count(*), count(DISTINCT trace_id) FROM spans").fetchone()
    firings, alertnames = con.execute(
        "SELECT count(*), count(DISTINCT alertname) FROM alert_events"
    ).fetchone()
    rules = con.execute(
        "SELECT count(DISTINCT name) FROM alert_rules WHERE type = 'alerting'"
    ).fetchone()[0]
    print()
    print(f"Lake:    {config.lake_root}")
    print(f"Catalog: {config.catalog_path}")
    print(
        f"Metrics: {samples:,} raw samples in {series:,} series from {services} services, {first} .. {last} UTC"
    )
    print(f"Logs:    {logs:,} records ({errors:,} errors)")
    print(f"Traces:  {spans:,} spans in {traces:,} traces")
    print(f"Alerts:  {firings:,} firing intervals of {alertnames} alerts; {rules} alerting rules")
    print()
    print("Next:")
    print(
        "  make ui                                   # the Dagster UI on http://127.0.0.1:3000 (runs, assets, checks)"
    )
    print(
        '  .venv/bin/obs query "SELECT service, count(*) AS samples FROM metrics GROUP BY ALL ORDER BY 2 DESC"'
    )
    print('  .venv/bin/obs query "SELECT alertname, count(*) FROM alert_events GROUP BY ALL"')
    print(
        f"  duckdb -readonly {config.catalog_path}    # any DuckDB client: metrics, log_records, spans, alert_events, ..."
    )


if __name__ == "__main__":
    sys.exit(main())
