"""The ``obs`` command: query the catalog, report, tier, check config, and launch runs.

Only ``materialize`` and ``demo`` touch Dagster (they launch runs on the local instance, so the
UI shows them); everything else is the plain engine.
"""

import argparse
import contextlib
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from obs_pipelines.config import (
    CONFIG_ENV_VAR,
    DEFAULT_CONFIG_PATH,
    NO_SOURCE,
    SOURCE_PILLARS,
    TIERS,
    ObsConfig,
    load_config,
    require_writable,
)
from obs_pipelines.durations import parse_duration
from obs_pipelines.errors import ConfigError, ObsError
from obs_pipelines.launch import Run, ingest_runs, launch_runs
from obs_pipelines.windows import OutOfRange, TimeWindow, floor_hour, minute_text, utc

if TYPE_CHECKING:
    import duckdb

MAX_DEMO_DAYS = 365


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        code = args.handler(args)
        sys.stdout.flush()  # a reader gone away shows here, not in Python's flush at exit
        return code
    except ObsError as exc:
        print(f"obs: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `obs ... | head`: the reader went away, as for any Unix filter
        from obs_pipelines.reporting.query import BROKEN_PIPE_EXIT, silence_stdout

        silence_stdout()
        return BROKEN_PIPE_EXIT


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="obs", description="obs-pipelines: the observability lake and its reports."
    )
    parser.add_argument(
        "--config", help=f"config file (default ${CONFIG_ENV_VAR} or {DEFAULT_CONFIG_PATH})"
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    query = commands.add_parser(
        "query",
        help="run SQL over the catalog and print or write the result",
        description=(
            "Run SQL over the catalog in a read-only session that can open the lake and nothing "
            "else. Statements run once each, in order; the last one's result is printed or "
            "written. SET VARIABLE name = value keeps values for getvariable('name'); --from and "
            "--to set the report views' window (report_start, report_end). Exits 2 on an error, "
            "141 (like any Unix filter) when the reader of its output goes away."
        ),
    )
    query.add_argument("sql")
    query.add_argument(
        "--from",
        dest="start",
        help="report period start for the report views (ISO 8601, UTC; as obs report --from)",
    )
    query.add_argument(
        "--to",
        dest="end",
        help="report period end, exclusive (ISO 8601, UTC; default: the end of the newest data)",
    )
    query.add_argument("--format", choices=["table", "csv", "json", "parquet"], default="table")
    query.add_argument("--output", "-o", help="write to this file instead of standard output")
    query.add_argument("--max-rows", type=_count, default=40, help="rows shown by --format table")
    query.add_argument(
        "--allow-write-to",
        metavar="DIR",
        help="let COPY ... TO write files inside DIR, a folder outside the lake (nothing else)",
    )
    query.set_defaults(handler=_query)

    report = commands.add_parser(
        "report", help="print the scorecard and write the HTML reliability report"
    )
    report.add_argument(
        "--from",
        dest="start",
        type=_moment,
        help="period start (ISO 8601, UTC; default: 7 days before --to)",
    )
    report.add_argument(
        "--to",
        dest="end",
        type=_moment,
        help="period end, exclusive (default: the end of the newest data)",
    )
    report.add_argument(
        "--output", "-o", default="reports/reliability.html", help="HTML file to write"
    )
    report.add_argument(
        "--push", action="store_true", help="also push the report metrics to operations.pushgateway"
    )
    report.set_defaults(handler=_report)

    catalog = commands.add_parser(
        "catalog", help="rebuild the DuckDB catalog of views over the lake"
    )
    catalog.set_defaults(handler=_catalog)

    lake = commands.add_parser("lake", help="the lake as Delta Lake tables that any engine reads")
    lake_commands = lake.add_subparsers(required=True, metavar="ACTION")
    migrate = lake_commands.add_parser(
        "migrate",
        help="convert a lake of the earlier file layout into Delta tables, verified row for row",
        description=(
            "Read every dataset of the file layout under lake.root (hot/, warm/, cold/) as its "
            "catalog showed it, a day at a time, and write each day as one Delta commit that "
            "replaces that day under <lake.root>/delta; each day is read back and its rows and "
            "checksum compared. A rerun writes only days the old layout holds that the table lacks "
            "or that migrate itself wrote last; it deletes nothing and keeps days written since "
            "by ingest or tiering. The old files are only read."
        ),
    )
    migrate.add_argument(
        "--dry-run",
        action="store_true",
        help="print, per dataset, the days it would write, leave unchanged and keep; write nothing",
    )
    migrate.add_argument(
        "--dataset",
        action="append",
        dest="datasets",
        metavar="NAME",
        help="a dataset to convert (repeat; default: every dataset)",
    )
    migrate.add_argument(
        "--tier-root",
        action="append",
        dest="tier_roots",
        default=[],
        metavar="TIER=ROOT",
        help="where the old lake kept a tier outside lake.root (its lake.<tier>.root; repeat)",
    )
    migrate.set_defaults(handler=_lake_migrate)
    lifecycle = lake_commands.add_parser(
        "lifecycle",
        help="S3 lifecycle rules moving the Delta tables' files to colder storage classes by age",
        description=(
            "Generate the S3 lifecycle configuration of an S3 lake from `retention` and the "
            "tiers' storage classes: one rule per Delta table moving its files to the warm, then "
            "the cold class by age, and one aborting incomplete uploads; no rule deletes data. "
            "Without --apply, print the JSON (the bucket's other rules included) and change "
            "nothing."
        ),
    )
    lifecycle.add_argument(
        "--apply",
        action="store_true",
        help="write it to the bucket, replacing only rules whose ID starts with obs-",
    )
    lifecycle.set_defaults(handler=_lake_lifecycle)
    vacuum = lake_commands.add_parser(
        "vacuum",
        help="delete data files no Delta table references (e.g. of runs killed before committing)",
        description=(
            "List, in every Delta table, the data files that no version the table keeps "
            "references and that are older than --older-than: files of runs killed between "
            "writing an hour and their commit, and files commits removed. Without --apply, "
            "print what would be deleted and change nothing. The age must exceed your longest "
            "run (a run's files are named by no log until it commits) and lake.delete_delay."
        ),
    )
    vacuum.add_argument(
        "--older-than",
        type=_duration,
        default="7d",
        metavar="DURATION",
        help="only files at least this old (default: 7d, Delta's own default)",
    )
    vacuum.add_argument(
        "--dataset",
        action="append",
        dest="datasets",
        metavar="NAME",
        help="a dataset to vacuum (repeat; default: every dataset)",
    )
    vacuum.add_argument("--apply", action="store_true", help="delete the files listed")
    vacuum.set_defaults(handler=_lake_vacuum)
    repair = lake_commands.add_parser(
        "repair",
        help="take data files the Delta logs reference but storage lost out of the logs "
        "(one FSCK commit per table) and print the obs materialize that re-ingests their hours",
        description=(
            "List, per Delta table, the data files its log references that storage no longer "
            "has, with the rows and hours they held. Without --apply, change nothing. With it, "
            "commit one repair per table (a remove for each lost file), so the table opens "
            "again, and print the obs materialize that re-ingests the lost hours."
        ),
    )
    repair.add_argument(
        "--dataset",
        action="append",
        dest="datasets",
        metavar="NAME",
        help="a dataset to repair (repeat; default: every dataset)",
    )
    repair.add_argument("--apply", action="store_true", help="commit the repair")
    repair.set_defaults(handler=_lake_repair)

    tier = commands.add_parser(
        "tier", help="move data between hot, warm and cold tiers by age (as the daily asset does)"
    )
    tier.add_argument(
        "--now",
        type=_moment,
        help="tier as of this past time (ISO 8601, UTC); default: the clock",
    )
    tier.set_defaults(handler=_tier)

    doctor = commands.add_parser(
        "doctor", help="check every source, the lake, the catalog and the Dagster instance"
    )
    doctor.set_defaults(handler=_doctor)

    check = commands.add_parser("check-config", help="validate the config and summarize it")
    check.set_defaults(handler=_check_config)

    materialize = commands.add_parser(
        "materialize", help="ingest a range of hourly partitions through Dagster"
    )
    span = materialize.add_mutually_exclusive_group(required=True)
    span.add_argument(
        "--last", type=_duration, help="the closed hours of this trailing duration, e.g. 7d"
    )
    span.add_argument("--from", dest="start", type=_moment, help="first hour (ISO 8601, UTC)")
    materialize.add_argument(
        "--to",
        dest="end",
        type=_moment,
        help="end of the range, exclusive (default: the current hour, the last closed hour's end)",
    )
    materialize.set_defaults(handler=_materialize)

    slo = commands.add_parser("slo", help="SLO history: recompute SLI minutes after an SLO changed")
    slo_commands = slo.add_subparsers(required=True, metavar="ACTION")
    recompute = slo_commands.add_parser(
        "recompute",
        help="recompute SLI minutes from raw samples where they exist and rollups where they do not",
    )
    recompute.add_argument(
        "--slo", action="append", dest="slos", help="an SLO to recompute (repeat; default: all)"
    )
    recompute.add_argument(
        "--from",
        dest="start",
        type=_moment,
        help="first hour (ISO 8601, UTC; default: the oldest metric data)",
    )
    recompute.add_argument(
        "--to",
        dest="end",
        type=_moment,
        help="end of the range, exclusive (default: the current hour)",
    )
    recompute.set_defaults(handler=_slo_recompute)

    demo = commands.add_parser(
        "demo", help="ingest, tier and report days of simulated telemetry through Dagster"
    )
    demo.add_argument(
        "--days", type=_demo_days, default=7, help=f"days to simulate, 1 to {MAX_DEMO_DAYS}"
    )
    demo.set_defaults(handler=_demo)
    return parser


def _config(args: argparse.Namespace) -> ObsConfig:
    return load_config(args.config)


def _query(args: argparse.Namespace) -> int:
    """Check the SQL, run it once in the sandboxed session, write the last result; a reader
    that closes the pipe early (``| head``) ends it quietly with 141."""
    from obs_pipelines.reporting import query
    from obs_pipelines.reporting.reports import newest_data_end

    config = _config(args)
    start, end = _query_window(args.start, args.end)
    if end is None and query.reads_reports(args.sql):
        end = newest_data_end(config)  # from the logs, before the session pins the datasets
    box = query.sandbox(config, args.allow_write_to)
    output = query.output_file(box, args.output) if args.output is not None else None
    statements = query.read_statements(args.sql, box.write_dir)
    con = query.connect_sandboxed(config, box, args.sql)
    try:
        query.set_report_window(con, start, end, args.sql)
        query.run(con, statements, args.format, output, args.max_rows)
    except BrokenPipeError:
        query.silence_stdout()
        return query.BROKEN_PIPE_EXIT
    finally:
        con.close()
    if output:
        print(f"wrote {output}", file=sys.stderr)
    return 0


def _report(args: argparse.Namespace) -> int:
    from obs_pipelines.lake.catalog import refresh_catalog
    from obs_pipelines.lake.delta import delta_errors
    from obs_pipelines.reporting.report_export import push_reports
    from obs_pipelines.reporting.report_html import format_scorecard, write_report
    from obs_pipelines.reporting.reports import pin_reports, report_connection

    config = _config(args)
    if args.push and config.operations.pushgateway is None:
        raise ObsError("--push needs operations.pushgateway.url in the config")
    _check_report_bounds(config, args.start, args.end)
    refresh_catalog(config)  # the views read the lake live: rebuilt only if its definition changed
    con = report_connection(config, args.start, args.end)
    try:
        _check_report_period(con)
        with delta_errors("read the lake for the report", config):  # e.g. a data file gone
            pin_reports(con)  # once: the scorecard, the HTML and the push read the same results
        # Written first: a refused --output prints no scorecard above its error.
        written = write_report(con, config, args.output)
        print(format_scorecard(con))
        print(f"\nreport: {written}")
        if args.push:
            pushed = push_reports(config, con)
            print(f"pushed {pushed} samples to {config.operations.pushgateway.url}")
    finally:
        con.close()
    return 0


def _check_report_bounds(config: ObsConfig, start: datetime | None, end: datetime | None) -> None:
    """Refuse, before any work, a period the lake cannot hold: one starting before
    ``ingest.start`` or ending in the future is a typo (year 1, 9999), not a report, and its
    scorecard would read as 0 % coverage or 100 % uptime of nothing."""
    _check_order(start, end)
    if start is not None and start < config.ingest.start:
        raise ObsError(
            f"--from {minute_text(start)} is before ingest.start "
            f"({minute_text(config.ingest.start)}), so the lake holds no data there; "
            "start the report later or move ingest.start earlier in the config"
        )
    now = datetime.now(UTC)
    if end is not None and end > now:
        raise ObsError(
            f"--to {minute_text(end)} is in the future; a report period ends at the latest "
            f"now ({minute_text(now)}): leave --to out for the end of the newest data"
        )


def _check_report_period(con: "duckdb.DuckDBPyConnection") -> None:
    """A ``--from`` at or after the newest data's end (the default ``--to``) is an empty
    period: refused rather than reported as 0 % coverage."""
    from obs_pipelines.reporting.reports import period_of

    period = period_of(con)
    if period.start >= period.end:
        raise ObsError(
            f"the period from {minute_text(period.start)} ends at {minute_text(period.end)} "
            "(the end of the newest data) before it starts; choose an earlier --from or set --to"
        )


def _catalog(args: argparse.Namespace) -> int:
    from obs_pipelines.lake.catalog import build_catalog

    config = _config(args)
    require_writable(config)
    print(f"catalog rebuilt: {build_catalog(config)}")
    return 0


def _lake_migrate(args: argparse.Namespace) -> int:
    """Print each dataset's line as it finishes (a long conversion shows its progress), the
    header only once the old lake was read (an error stays one line)."""
    from obs_pipelines.lake import migrate

    config = _config(args)
    dry_run = args.dry_run

    def show(result: "migrate.DatasetMigration") -> None:
        if not shown:
            print(migrate.format_header(dry_run=dry_run))
            shown.append(result.dataset)
        print(migrate.format_row(result, dry_run=dry_run), flush=True)

    tier_roots = {}
    for given in args.tier_roots:
        tier, _, root = given.partition("=")
        if tier not in TIERS or not root:
            raise ConfigError(
                f"--tier-root {given}: write TIER=ROOT with TIER one of {', '.join(TIERS)}"
            )
        tier_roots[tier] = root
    shown: list[str] = []
    results = migrate.migrate(
        config, args.datasets, dry_run=dry_run, progress=show, tier_roots=tier_roots
    )
    print(migrate.format_footer(results, dry_run=dry_run))
    return 0


def _lake_lifecycle(args: argparse.Namespace) -> int:
    """A dry run prints the JSON alone on standard output (``> lifecycle.json`` gives a file
    ``aws s3api put-bucket-lifecycle-configuration`` takes) and its meaning on standard error."""
    import json

    from obs_pipelines.lake import lifecycle

    result = lifecycle.lifecycle(_config(args), apply=args.apply)
    if args.apply:
        print("\n".join(lifecycle.describe(result)))
    else:
        print(json.dumps(result.configuration, indent=2, default=str))
        for line in lifecycle.describe(result):
            print(f"obs: {line}", file=sys.stderr)
    return 0


def _lake_vacuum(args: argparse.Namespace) -> int:
    from obs_pipelines.lake import vacuum

    found = vacuum.vacuum_unreferenced(
        _config(args), args.older_than, datasets=args.datasets, apply=args.apply
    )
    print("\n".join(vacuum.describe(found, args.older_than, applied=args.apply)))
    return 0


def _lake_repair(args: argparse.Namespace) -> int:
    from obs_pipelines.lake import repair

    found = repair.repair(_config(args), datasets=args.datasets, apply=args.apply)
    print("\n".join(repair.describe(found, applied=args.apply)))
    return 0


def _duration(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _moment(text: str) -> datetime:
    """An option's time (argparse's type): ISO 8601, UTC unless it names its offset."""
    try:
        return _time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _time(text: str) -> datetime:
    """``text`` as a UTC time, or a ValueError whose message says why it is none and how to
    write one; every option that takes a time (argparse's or ``obs query``'s) is read here."""
    try:
        return utc(text)
    except OutOfRange:
        raise
    except ValueError:
        raise ValueError(
            f"{text!r} is not an ISO 8601 time; write e.g. 2026-11-01 or 2026-11-01T00:00:00Z (UTC)"
        ) from None


def _query_window(start: str | None, end: str | None) -> tuple[datetime | None, datetime | None]:
    """``obs query --from/--to`` as UTC times, refused in one line naming the option. Read here
    rather than by argparse, which would print its usage above the line."""
    moments: list[datetime | None] = []
    for option, text in (("--from", start), ("--to", end)):
        try:
            moments.append(_time(text) if text else None)
        except ValueError as exc:
            raise ObsError(f"{option} {exc}") from None
    first, last = moments
    _check_order(first, last, (start, end))
    return first, last


def _check_order(
    start: datetime | None,
    end: datetime | None,
    written: tuple[str | None, str | None] = (None, None),
) -> None:
    """Refuse a ``--from`` at or after ``--to``: an empty period. Each time is shown as
    ``written`` (as the user typed it) or else to the minute."""
    if start is not None and end is not None and start >= end:
        first, last = written[0] or minute_text(start), written[1] or minute_text(end)
        raise ObsError(f"--from {first} is not before --to {last}; swap them or widen the window")


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 0 or more")
    return value


def _demo_days(text: str) -> int:
    days = _count(text)
    if not 1 <= days <= MAX_DEMO_DAYS:
        raise argparse.ArgumentTypeError(f"{text} is not between 1 and {MAX_DEMO_DAYS} days")
    return days


def _tier(args: argparse.Namespace) -> int:
    from obs_pipelines.lake.catalog import build_catalog
    from obs_pipelines.lake.tiering import run_tiering

    config = _config(args)
    require_writable(config)
    if args.now is not None and args.now > datetime.now(UTC):
        raise ObsError(
            f"--now {minute_text(args.now)} is in the future: tiering as of then would move "
            "and delete data that retention still keeps; give a past time, or leave --now out "
            "to tier as of the clock"
        )
    try:
        result = run_tiering(config, args.now)
    except BaseException:  # lake_partitions lists what a run that failed midway committed
        with contextlib.suppress(Exception):  # the tiering error is the one to show
            build_catalog(config)
        raise
    build_catalog(config)
    expired = sum(1 for d in result.deletions if d.reason == "expired")
    print(
        f"tiering as of {minute_text(result.now)}: {len(result.moves)} moves of "
        f"{len(result.deletions) - expired} files into fewer ({result.bytes_before:,} bytes became "
        f"{result.bytes_after:,}); {expired} files deleted by retention"
    )
    for note in result.notes:
        print(f"obs: note: {note}", file=sys.stderr)
    for problem in result.problems:
        print(f"obs: warning: {problem}", file=sys.stderr)
    return 1 if result.problems else 0


def _doctor(args: argparse.Namespace) -> int:
    from obs_pipelines.operations.doctor import format_report, run_checks

    config = _config(args)
    push = config.operations.pushgateway
    results = run_checks(config, pushgateway_url=push.url if push else None)
    print(format_report(results))
    return 1 if any(not r.ok for r in results) else 0


def _check_config(args: argparse.Namespace) -> int:
    config = _config(args)
    print(
        f"config OK: {_pillar_sources(config)}; lake at {config.lake_root}; catalog {config.catalog_path}"
    )
    print(
        f"  {len(config.services)} services, {len(config.slos)} SLOs, ingest from {minute_text(config.ingest.start)}"
    )
    return 0


def _pillar_sources(config: ObsConfig) -> str:
    """'metrics from prometheus, logs none, ...': what feeds each pillar."""
    sources = config.sources
    return ", ".join(
        f"{pillar} none"
        if sources.backend(pillar) == NO_SOURCE
        else f"{pillar} from {sources.backend(pillar)}"
        for pillar in SOURCE_PILLARS
    )


def _materialize(args: argparse.Namespace) -> int:
    config_path = _config_path(args)
    end = floor_hour(args.end) if args.end else floor_hour(datetime.now(UTC))
    start = floor_hour(end - args.last) if args.last is not None else floor_hour(args.start)
    window = closed_hours(start, end, load_config(config_path).ingest.start)
    return 1 if launch_runs(config_path, ingest_runs(window)) else 0


def closed_hours(start: datetime, end: datetime, first: datetime) -> TimeWindow:
    """``[start, end)`` as hours to ingest, refused in one line unless every hour has ended
    and none precedes ``first`` (ingest.start): an hour still open would be stored, and shown
    in Dagster, as complete with part of its data, and no schedule would fetch it again."""
    closed = floor_hour(datetime.now(UTC))
    if end > closed:
        raise ObsError(
            f"--to {minute_text(end)} is past the last closed hour, which ends at "
            f"{minute_text(closed)}; an hour is read only once it has ended"
        )
    if start >= end:
        raise ObsError(
            f"[{minute_text(start)}, {minute_text(end)}) holds no whole hour; "
            "give --from before --to (or a --last of an hour or more)"
        )
    if start < first:
        raise ObsError(
            f"{minute_text(start)} is before ingest.start ({minute_text(first)}); "
            "move ingest.start earlier in the config or ask for a later range"
        )
    return TimeWindow(start, end)


def _slo_recompute(args: argparse.Namespace) -> int:
    """A backfill of the ``sli_minutes`` asset over the range, for the SLOs named."""
    config_path = _config_path(args)
    config = load_config(config_path)
    if args.slos:
        unknown = sorted(set(args.slos) - {s.name for s in config.slos})
        if unknown:
            raise ObsError(
                f"no SLO named {', '.join(unknown)} in the config; choose from "
                f"{', '.join(s.name for s in config.slos) or '(none configured)'}"
            )
    end = floor_hour(args.end) if args.end else floor_hour(datetime.now(UTC))
    start = floor_hour(args.start) if args.start else _oldest_metric_hour(config)
    if start is None or max(start, config.ingest.start) >= end:
        raise ObsError("no metric data to recompute in that range; check --from and --to")
    window = closed_hours(max(start, config.ingest.start), end, config.ingest.start)
    # Every SLO: every derived dataset too (a lake written before they existed needs them all).
    job = "slo_recompute_job" if args.slos else "derive_job"
    run_config = {"ops": {"derive_metric_datasets": {"config": {"slos": args.slos or []}}}}
    names = ", ".join(args.slos or ["every SLO and the inventories"])
    runs = [
        Run(
            job,
            run.what.replace("ingested", f"recomputed {names} for"),
            run.tags,
            run_config,
        )
        for run in ingest_runs(window)
    ]
    return 1 if launch_runs(config_path, runs) else 0


def _oldest_metric_hour(config: ObsConfig) -> datetime | None:
    from obs_pipelines.lake import Lake

    tables = Lake(config).tables
    spans = (tables.time_range(d) for d in ("metric_samples", "metric_rollups"))
    starts = [span[0] for span in spans if span is not None]
    return floor_hour(min(starts)) if starts else None


def _demo(args: argparse.Namespace) -> int:
    config_path = _config_path(args)
    config = load_config(config_path)
    end = floor_hour(datetime.now(UTC))
    yesterday = (end - timedelta(days=1)).date()
    window = closed_hours(end - timedelta(days=args.days), end, config.ingest.start)
    snapshot = config.sources.ingests("alert_rules")
    runs = [
        *ingest_runs(window),
        *([Run("snapshot_job", "rules and Alertmanager snapshot")] if snapshot else []),
        Run(
            "tiering_job",
            f"tiering as of the end of {yesterday}",
            {"dagster/partition": f"{yesterday}"},
        ),
        Run(
            "reports_job",
            f"reports for the week to {yesterday}",
            {"dagster/partition": f"{yesterday}"},
        ),
    ]
    if launch_runs(config_path, runs):
        return 1
    _print_summary(load_config(config_path))
    return 0


def _config_path(args: argparse.Namespace) -> str:
    path = args.config or os.environ.get(CONFIG_ENV_VAR) or DEFAULT_CONFIG_PATH
    require_writable(load_config(path))  # every caller writes: refuse before Dagster starts
    return str(Path(path).resolve())


def _print_summary(config: ObsConfig) -> None:
    from obs_pipelines.lake.catalog import connect
    from obs_pipelines.lake.delta_catalog import days_by_tier
    from obs_pipelines.reporting.report_html import scorecard_text

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
    tiers = days_by_tier(con, config, datetime.now(UTC))
    reports = sorted(Path(config.catalog_path).parent.glob("reports/reliability-*.html"))
    print()
    print(f"Lake:    {config.lake_root}")
    print(
        "Tiers:   "
        + ", ".join(
            f"{tier} {days} days ({files} files, {size / 1e6:.1f} MB)"
            for tier, days, files, size in tiers
        )
        + " by the data's age"
    )
    print(f"Catalog: {config.catalog_path}")
    print(
        f"Metrics: {samples:,} raw samples in {series:,} series from {services} services, {first} .. {last} UTC"
    )
    print(f"Logs:    {logs:,} records ({errors:,} errors)")
    print(f"Traces:  {spans:,} spans in {traces:,} traces")
    print(f"Alerts:  {firings:,} firing intervals of {alertnames} alerts; {rules} alerting rules")
    if reports:
        print(f"Report:  {reports[-1]}")
    print()
    print(scorecard_text(config, None, None))
    print()
    print("Next:")
    print(
        "  make ui                                   # the Dagster UI on http://127.0.0.1:3000 (runs, assets, checks)"
    )
    print("  .venv/bin/obs query \"SELECT * FROM slo_compliance WHERE scope = 'rolling'\"")
    print('  .venv/bin/obs query "SELECT alertname, firings, noise_ratio FROM alert_quality"')
    print(
        f"  .venv/bin/duckdb -readonly {config.catalog_path}    # or any DuckDB client: metrics, log_records, spans, alert_events, reports"
    )


if __name__ == "__main__":
    sys.exit(main())
