"""Issue 10's figures: the report suite over a month of history, with the derived datasets
(``sli_minutes``, ``up_minutes``, ``series_inventory``) and with the query-time computation from
raw samples that reports used before them (commit ``OLD_COMMIT``).

History: ``--services`` (50) services x 2 instances, each service with a ratio SLO (counters
``http_requests_total{code="200"|"500"}``), a latency SLO (histogram
``http_request_duration_seconds_bucket``, le 0.1 / 0.5 / +Inf, threshold 0.5 s) and a threshold SLO
(gauge ``queue_lag_seconds``, max 5), plus ``up`` per instance: 14 series per service, 60 s scrapes,
``--days`` (30) days. Deterministic (numpy, ``--seed``), with instance restarts (``up`` = 0 and no
other samples for 1-3 minutes, then every counter of the instance resets) and error, latency and
lag bursts, so the reports have incidents.

What it measures:

1. ingest: each hour's ``metric_series`` and ``metric_samples`` written with ``Lake.write_hot``
   (generation not timed). Derived datasets per day (24 h windows, as the ingest runs do):
   ``up_minutes`` + ``series_inventory`` every day; ``sli_minutes`` alone on the first, the
   ``--first-days``-th and the last day (each in a child process, ``--derive-timeout``), the other
   days in one call per range, so the reports have the whole month;
2. ``build_catalog`` after ``--first-days`` (10) days and after all of them;
3. with the derived datasets: ``SELECT *`` of ``report_period``, ``slo_events`` and every view of
   ``sql/``, each in its own process (``--view-timeout``), then what ``obs report`` runs after its
   catalog build: ``scorecard_text`` and ``render_report`` (each pins the reports itself);
4. before (query-time computation), on the same catalog and data: temporary views shadow the
   catalog's ``report_period``, ``slo_events``, ``coverage``, ``metric_inventory`` and
   ``scorecard`` with their ``OLD_COMMIT`` definitions, and unchanged views that read them resolve
   to the temporary ones (checked). ``slo_events`` itself runs once (``--old-timeout``); views that
   read it recompute it in every query, so they are not run (``--old-full`` runs them, for hours);
5. baselines for the derived-time ratio: ``ingest_metrics_hour`` over the last day's hours served
   from memory (the real ingest code minus the fetch), and over the built-in simulator.

Queries run in child processes killed at their timeout: in the DuckDB hang, ``interrupt()`` is not
honoured. Writes ``bench/RESULTS-reports.md``; the lake and catalog go to ``bench/work/reports/``.
From the repo root (~20 minutes on 2 cores):

    .venv/bin/python -m bench.report_bench [--days 30 --first-days 10 --services 50]
"""

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

import obs_pipelines.reporting.report_html as report_html
from obs_pipelines.config import ObsConfig, SimulatorConfig, parse_config
from obs_pipelines.lake import Lake
from obs_pipelines.lake.catalog import build_catalog, connect
from obs_pipelines.lake.ingest import ingest_metrics_hour, ingest_metrics_hours
from obs_pipelines.reporting.derived import derive
from obs_pipelines.reporting.reports import (
    PINNED_REPORTS,
    pin_reports,
    report_connection,
    report_period_sql,
    report_queries,
)
from obs_pipelines.reporting.slo import check_latency_buckets, series_roles, slo_events_sql
from obs_pipelines.schemas import METRIC_SAMPLES
from obs_pipelines.sources.base import MetricChunk
from obs_pipelines.sources.series import series_table
from obs_pipelines.sources.simulator import SimulatedMetrics
from obs_pipelines.windows import HOUR, TimeWindow

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / "work" / "reports"
RESULTS = ROOT / "bench" / "RESULTS-reports.md"
# The last commit whose reports computed SLO events, uptime, coverage and the metric inventory
# from raw samples at query time (the derived datasets came after it).
OLD_COMMIT = "3375a6546e9776cd121f266da6249756614482d7"
OLD_SQL_FILES = ("coverage", "metric_inventory", "scorecard")
CHANGED = ("report_period", "slo_events", *OLD_SQL_FILES)
START = datetime(2026, 1, 1, tzinfo=UTC)
SCRAPE_MS = 60_000
MINUTES_PER_HOUR = 60
# Per instance, in this order: the ratio SLO's counters, the histogram's buckets, the gauge, up.
FAMILIES = (
    ("http_requests_total", {"code": "200"}),
    ("http_requests_total", {"code": "500"}),
    ("http_request_duration_seconds_bucket", {"le": "0.1"}),
    ("http_request_duration_seconds_bucket", {"le": "0.5"}),
    ("http_request_duration_seconds_bucket", {"le": "+Inf"}),
    ("queue_lag_seconds", {}),
    ("up", {}),
)
COUNTERS = 5  # the first five families
GAUGE, UP = 5, 6
INSTANCES = 2
SUITE_GOAL_S = 5.0
DERIVED_GOAL = 0.10
KEEP_ROWS = 200_000  # results up to this size are kept to compare the two paths
GOOD_EVENTS = "SELECT coalesce(sum(good_events_count), 0) FROM slo_compliance"


PEAK_LOAD = [0.0]  # the highest 1-minute load average seen at a log line


def log(message: str) -> None:
    PEAK_LOAD[0] = max(PEAK_LOAD[0], os.getloadavg()[0])
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- the history ----------------------------------------------------------------------------------


def service_name(i: int) -> str:
    return f"svc-{i:02d}"


def bench_config(services: int, days: int) -> ObsConfig:
    names = [service_name(i) for i in range(services)]
    slos: list[dict[str, Any]] = []
    for name in names:
        key = name.replace("-", "_")
        selector = f'{{service="{name}"}}'
        slos += [
            {
                "name": f"{key}_availability",
                "service": name,
                "objective": 0.999,
                "window": "30d",
                "sli": {
                    "type": "ratio",
                    "total": f"http_requests_total{selector}",
                    "bad": f'http_requests_total{{service="{name}",code="500"}}',
                },
            },
            {
                "name": f"{key}_latency",
                "service": name,
                "objective": 0.95,
                "window": "30d",
                "sli": {
                    "type": "latency",
                    "histogram": f"http_request_duration_seconds_bucket{selector}",
                    "threshold_seconds": 0.5,
                },
            },
            {
                "name": f"{key}_queue_lag",
                "service": name,
                "objective": 0.99,
                "window": "24h",
                "sli": {"type": "threshold", "gauge": f"queue_lag_seconds{selector}", "max": 5},
            },
        ]
    tiers = ("critical", "high", "standard", "standard", "low")
    sections = {
        "ingest": {"start": START.isoformat()},
        "lake": {"root": str(WORK / "lake"), "catalog": str(WORK / "obs.duckdb")},
        # Nothing here tiers; long ages keep every partition hot and say so.
        "retention": {
            "metrics": {"hot": f"{days + 400}d", "warm": f"{days + 500}d", "cold": f"{days + 600}d"}
        },
        "services": [
            {
                "name": n,
                "owner": f"team-{i % 5}",
                "tier": tiers[i % 5],
                "pillars": ["metrics", "slo"],
            }
            for i, n in enumerate(names)
        ],
        "slos": slos,
    }
    return parse_config(sections, source="report_bench")


@dataclass
class History:
    """Deterministic metrics of ``services`` x 2 instances over ``days`` days, hour by hour."""

    services: int
    days: int
    seed: int
    minutes: int = field(init=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        n_svc, n_inst = self.services, self.services * INSTANCES
        self.minutes = m = self.days * 24 * 60
        self.svc_of = np.repeat(np.arange(n_svc), INSTANCES)
        self.phase_ms = rng.integers(0, SCRAPE_MS, n_inst)
        self.base_rate = rng.uniform(50, 800, n_inst)  # requests per minute per instance
        self.diurnal_phase = rng.uniform(0, 2 * np.pi, n_svc)
        self.down = np.zeros((n_inst, m), bool)
        self.reset = np.zeros((n_inst, m), bool)
        self.err_share = np.repeat(rng.uniform(0.0001, 0.0008, n_svc)[:, None], m, axis=1)
        self.slow_share = np.repeat(rng.uniform(0.005, 0.03, n_svc)[:, None], m, axis=1)
        self.lag_extra = np.zeros((n_svc, m))
        self.counts = {"restarts": 0, "error bursts": 0, "latency bursts": 0, "lag bursts": 0}
        for inst in range(n_inst):  # restarts: down 1-3 min, then every counter restarts at 0
            for start in rng.integers(0, m - 4, rng.poisson(self.days / 4)):
                length = int(rng.integers(1, 4))
                self.down[inst, start : start + length] = True
                self.reset[inst, start + length] = True
                self.counts["restarts"] += 1
        for svc in range(n_svc):
            for start in rng.integers(0, m, rng.poisson(self.days / 3)):
                self.err_share[svc, start : start + rng.integers(5, 61)] = rng.uniform(0.02, 0.3)
                self.counts["error bursts"] += 1
            for start in rng.integers(0, m, rng.poisson(self.days / 4)):
                self.slow_share[svc, start : start + rng.integers(10, 46)] = rng.uniform(0.1, 0.5)
                self.counts["latency bursts"] += 1
            for start in rng.integers(0, m, rng.poisson(self.days / 4)):
                self.lag_extra[svc, start : start + rng.integers(10, 61)] = rng.uniform(6, 60)
                self.counts["lag bursts"] += 1
        # Series: instance-major; `order` sorts them by id so an hour's rows come out sorted.
        label_sets = []
        for inst in range(n_inst):
            service = service_name(int(self.svc_of[inst]))
            instance = f"{service}-{inst % INSTANCES}:9100"
            for metric, extra in FAMILIES:
                label_sets.append(
                    {
                        "__name__": metric,
                        "service": service,
                        "job": service,
                        "instance": instance,
                        **extra,
                    }
                )
        self.series, ids = series_table(label_sets)
        self.ids = np.array(ids, np.uint64)
        self.order = np.argsort(self.ids, kind="stable")
        self.state = np.zeros((COUNTERS, n_inst))  # cumulative counter values, carried across hours

    @property
    def series_count(self) -> int:
        return len(self.ids)

    def hour(self, index: int) -> tuple[TimeWindow, pa.Table]:
        """Hour ``index``'s samples, sorted by (series_id, ts). Hours must be asked in order."""
        rng = np.random.default_rng([self.seed, index])
        n_inst = self.services * INSTANCES
        cols = slice(index * MINUTES_PER_HOUR, (index + 1) * MINUTES_PER_HOUR)
        minute = np.arange(cols.start, cols.stop)
        window = TimeWindow(START + index * HOUR, START + (index + 1) * HOUR)
        diurnal = 1 + 0.5 * np.sin(2 * np.pi * (minute % 1440) / 1440 + self.diurnal_phase[:, None])
        down, reset = self.down[:, cols], self.reset[:, cols]
        svc = self.svc_of
        requests = rng.poisson(self.base_rate[:, None] * diurnal[svc]).astype(np.int64)
        requests[down] = 0
        errors = rng.binomial(requests, self.err_share[svc, cols])
        slow = rng.binomial(requests, self.slow_share[svc, cols])
        fast = rng.binomial(requests - slow, 0.7)
        increments = np.stack([requests - errors, errors, fast, requests - slow, requests])
        counters = np.empty((COUNTERS, n_inst, MINUTES_PER_HOUR))
        state = self.state
        for j in range(MINUTES_PER_HOUR):
            state = np.where(reset[None, :, j], 0.0, state) + increments[:, :, j]
            counters[:, :, j] = state
        self.state = state
        lag = np.exp(rng.normal(0.0, 0.5, (n_inst, MINUTES_PER_HOUR))) + self.lag_extra[svc, cols]
        values = np.empty((n_inst, len(FAMILIES), MINUTES_PER_HOUR))
        values[:, :COUNTERS] = counters.transpose(1, 0, 2)
        values[:, GAUGE] = np.round(lag, 3)
        values[:, UP] = (~down).astype(np.float64)
        present = np.repeat(~down[:, None, :], len(FAMILIES), axis=1)
        present[:, UP] = True  # Prometheus writes up = 0 for a failed scrape, nothing else
        ts = (
            window.start_ms
            + np.arange(MINUTES_PER_HOUR)[None, :] * SCRAPE_MS
            + self.phase_ms[:, None]
        )
        ts = np.repeat(ts[:, None, :], len(FAMILIES), axis=1)
        shape = (self.series_count, MINUTES_PER_HOUR)
        values, present, ts = (a.reshape(shape)[self.order] for a in (values, present, ts))
        ids = np.repeat(self.ids[self.order][:, None], MINUTES_PER_HOUR, axis=1)
        table = pa.table(
            [
                pa.array(ids[present], pa.uint64()),
                pa.array(ts[present], pa.int64()).cast(pa.timestamp("ms")),
                pa.array(values[present], pa.float64()),
            ],
            schema=METRIC_SAMPLES,
        )
        return window, table


# -- timing helpers -------------------------------------------------------------------------------


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def day_window(day: int, days: int = 1) -> TimeWindow:
    return TimeWindow(START + day * 24 * HOUR, START + (day + days) * 24 * HOUR)


# -- child processes: every query that may hang or run long ---------------------------------------


def child_main(spec: dict[str, Any]) -> None:
    global WORK
    WORK = Path(spec["work"])
    config = bench_config(spec["services"], spec["days"])
    kind, out = spec["kind"], {}
    if kind == "derive":
        window = day_window(spec["day"], spec["days"])
        seconds, result = timed(lambda: derive(config, window, datasets=("sli_minutes",)))
        out = {"seconds": seconds, "rows": result.rows.get("sli_minutes")}
    elif kind == "view":
        # Opening the session is timed too: report_connection finds the default period there.
        wall, cpu = time.perf_counter(), time.process_time()
        con = report_connection(config)
        if spec["old"]:
            # Only what the view reads: binding the old slo_events takes seconds.
            old = old_definitions(config)
            shadow_with(con, {n: sql for n, sql in old.items() if n in spec["shadow"]})
        table = select_all(con, spec["name"])
        seconds, cpu_s = time.perf_counter() - wall, time.process_time() - cpu
        con.close()
        if table.num_rows <= KEEP_ROWS:
            with pa.OSFile(spec["keep"], "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
                w.write_table(table)
        out = {"seconds": seconds, "cpu_s": cpu_s, "rows": table.num_rows}
    elif kind == "session":
        out = session_suite(config, spec["names"])
    elif kind == "report":
        if spec["old"]:
            old = old_definitions(config)
            report_html.pin_reports = lambda con, names=PINNED_REPORTS: old_pin(con, old, names)
        scorecard_s, text = timed(lambda: report_html.scorecard_text(config, None, None))
        render_s, _ = timed(lambda: report_html.render_report(config, None, None, spec["html"]))
        out = {"scorecard_s": scorecard_s, "render_s": render_s, "scorecard": text}
    print(json.dumps(out), flush=True)


def session_suite(config: ObsConfig, names: list[str]) -> dict[str, Any]:
    """The whole suite in one report session, as ``obs report`` and the Dagster report asset run
    it: open, pin the reports (each computed once), then every view's rows."""
    wall, cpu = time.perf_counter(), time.process_time()
    con = report_connection(config)
    pin_reports(con)
    pinned = time.perf_counter() - wall, time.process_time() - cpu
    rows = {name: select_all(con, name).num_rows for name in names}
    con.close()
    return {
        "seconds": time.perf_counter() - wall,
        "cpu_s": time.process_time() - cpu,
        "pin_s": pinned[0],
        "pin_cpu_s": pinned[1],
        "rows": rows,
    }


def select_all(con: duckdb.DuckDBPyConnection, name: str) -> pa.Table:
    """Every row of ``name``, computed into a temporary table and then fetched as Arrow: fetching
    straight to Arrow hangs DuckDB 1.5.5 on some of these queries (the old slo_events with 15
    SLOs, for one), as it hangs derive."""
    con.execute(f"CREATE TEMP TABLE bench_result AS SELECT * FROM {name}")
    table = con.execute("SELECT * FROM bench_result").to_arrow_table()
    con.execute("DROP TABLE bench_result")
    return table


@dataclass
class ChildResult:
    out: dict[str, Any] | None  # None: killed at the timeout (or failed)
    wall_s: float
    cpu_s: float | None  # the child's CPU time when it was killed
    error: str = ""


def run_child(spec: dict[str, Any], timeout: float) -> ChildResult:
    command = [sys.executable, "-m", "bench.report_bench", "--child", json.dumps(spec)]
    started = time.perf_counter()
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        stdout, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        cpu = _cpu_seconds(proc.pid)
        proc.kill()
        proc.communicate()
        return ChildResult(None, time.perf_counter() - started, cpu, "timeout")
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        return ChildResult(None, wall, None, f"exit {proc.returncode}")
    return ChildResult(json.loads(stdout.strip().splitlines()[-1]), wall, None)


def _cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


# -- the old (query-time) definitions -------------------------------------------------------------


def old_definitions(config: ObsConfig) -> dict[str, str]:
    """The definitions at OLD_COMMIT of everything the derived datasets replaced."""
    period = report_period_sql(config, config.reports)
    head, sep, rest = period.partition("WITH newest AS (\n")
    body, sep2, tail = rest.partition("\n),\nbounds AS")
    if not (sep and sep2 and "series_inventory" in body):
        raise SystemExit("report_period_sql changed shape; update old_definitions()")
    old = {
        "report_period": head
        + sep
        + "    SELECT date_trunc('hour', max(ts)) + INTERVAL 1 HOUR AS data_end FROM metric_samples"
        + sep2
        + tail,
        # At OLD_COMMIT publish() used with_rollups = relation_exists(con, "metric_rollups"),
        # true in every catalog (an empty view stands in for a dataset with no files).
        "slo_events": slo_events_sql(config.slos, with_rollups=True),
    }
    for name in OLD_SQL_FILES:
        old[name] = (
            subprocess.run(
                ["git", "-C", str(ROOT), "show", f"{OLD_COMMIT}:sql/{name}.sql"],
                check=True,
                capture_output=True,
                text=True,
            )
            .stdout.strip()
            .rstrip(";")
        )
    return old


def shadow_with(con: duckdb.DuckDBPyConnection, old: dict[str, str]) -> None:
    for name, sql in old.items():
        con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS\n{sql}")


def old_pin(con: duckdb.DuckDBPyConnection, old: dict[str, str], names: tuple[str, ...]) -> None:
    """pin_reports as at OLD_COMMIT: the same tables, the old definitions where they differ."""
    database = con.execute("SELECT current_database()").fetchone()[0]
    for name in names:
        source = old.get(name) or f'SELECT * FROM "{database}".main.{name}'
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {source}")
    for name, sql in old.items():
        if name not in names:
            con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS\n{sql}")


def check_shadowing(config: ObsConfig) -> str:
    """Catalog views that read slo_events must read a temporary view of that name: with an empty
    one, slo_compliance must count no good events."""
    con = report_connection(config)
    try:
        database = con.execute("SELECT current_database()").fetchone()[0]
        before = con.execute(GOOD_EVENTS).fetchone()[0]
        con.execute(
            f'CREATE TEMP VIEW slo_events AS SELECT * FROM "{database}".main.slo_events WHERE false'
        )
        after = con.execute(GOOD_EVENTS).fetchone()[0]
    finally:
        con.close()
    if before == 0 or after != 0:
        raise SystemExit(f"temporary views do not shadow the catalog's ({before} -> {after})")
    return (
        f"slo_compliance counts {before:,.0f} good events, and 0 with an empty temporary slo_events"
    )


def reads(queries: dict[str, str]) -> dict[str, set[str]]:
    """Every view each view reads, directly or not (names in its SQL, comments left out)."""
    direct = {
        name: {
            other
            for other in queries
            if other != name and re.search(rf"\b{other}\b", re.sub(r"--[^\n]*", "", sql))
        }
        for name, sql in queries.items()
    }
    closure = {name: set(found) for name, found in direct.items()}
    changed = True
    while changed:
        changed = False
        for found in closure.values():
            more = set().union(*(closure[f] for f in found)) - found if found else set()
            if more:
                found |= more
                changed = True
    return closure


# -- ingest ---------------------------------------------------------------------------------------


@dataclass
class Day:
    day: int
    write_s: float
    samples: int
    inventory_s: float
    sli_s: float | None = None  # sli_minutes of the day alone, on sample days
    sli_error: "ChildResult | None" = None


@dataclass
class Figures:
    days: list[Day] = field(default_factory=list)
    fills: list[dict[str, Any]] = field(default_factory=list)
    builds: list[dict[str, Any]] = field(default_factory=list)
    kept_hours: list[tuple[TimeWindow, pa.Table]] = field(default_factory=list)

    @property
    def samples(self) -> int:
        return sum(d.samples for d in self.days)

    @property
    def write_s(self) -> float:
        return sum(d.write_s for d in self.days)


def write_day(config: ObsConfig, history: History, day: int, figures: Figures) -> Day:
    lake = Lake(config)
    write_s, samples = 0.0, 0
    for h in range(day * 24, (day + 1) * 24):
        window, table = history.hour(h)
        started = time.perf_counter()
        lake.write_hot("metric_series", window, history.series)
        lake.write_hot("metric_samples", window, table, sort=False)  # generated sorted
        write_s += time.perf_counter() - started
        samples += table.num_rows
        if day == history.days - 1:
            figures.kept_hours.append((window, table))
    inventory_s, _ = timed(
        lambda: derive(config, day_window(day), datasets=("up_minutes", "series_inventory"))
    )
    record = Day(day, write_s, samples, inventory_s)
    figures.days.append(record)
    log(
        f"day {day + 1}/{history.days}: write {write_s:.2f} s ({samples:,} samples), "
        f"up_minutes + series_inventory {inventory_s:.2f} s"
    )
    return record


def sli_days(
    args: argparse.Namespace, figures: Figures, first: int, days: int, record: Day | None
) -> None:
    """sli_minutes of ``days`` days from ``first``, as shipped, in a child process: per day on
    sample days (``record``), else in one call for the whole range (filling the lake)."""
    if days <= 0:
        return
    spec = {**base_spec(args), "kind": "derive", "day": first, "days": days}
    result = run_child(spec, args.derive_timeout * (1 if record else 3))
    seconds = result.out["seconds"] if result.out else None
    label = f"day {first + 1}" if days == 1 else f"days {first + 1}-{first + days}"
    if result.out is None:
        log(
            f"  sli_minutes of {label}: no result after {result.wall_s:.0f} s ({result.error}, "
            f"{result.cpu_s} s of CPU)"
        )
    else:
        log(f"  sli_minutes of {label}: {seconds:.1f} s")
    if record is not None:
        record.sli_s, record.sli_error = seconds, result
    else:
        figures.fills.append({"first": first, "last": first + days, "result": result})


def measure_build(config: ObsConfig, figures: Figures, days: int, reps: int) -> None:
    times = [timed(lambda: build_catalog(config))[0] for _ in range(reps)]
    con = connect(config)
    try:
        partitions = con.execute("SELECT count(*) FROM lake_partitions").fetchone()[0]
        check_s, _ = timed(lambda: check_latency_buckets(con, config))
        series_s, _ = timed(lambda: con.execute("SELECT count(*) FROM metric_series").fetchone())
    finally:
        con.close()
    figures.builds.append(
        {
            "days": days,
            "times": times,
            "best": min(times),
            "partitions": partitions,
            "check_s": check_s,
            "series_s": series_s,
        }
    )
    log(
        f"build_catalog at {days} days ({partitions:,} partitions): "
        f"{', '.join(f'{t:.2f}' for t in times)} s; check_latency_buckets {check_s:.2f} s, "
        f"one read of the metric_series view {series_s:.2f} s"
    )


# -- baselines ------------------------------------------------------------------------------------


class MemorySource:
    """The bench's hours served from memory through the MetricSource interface."""

    name = "bench-memory"

    def __init__(self, series: pa.Table, hours: dict[TimeWindow, pa.Table]) -> None:
        self.series, self.hours = series, hours

    def read_metrics(self, window: TimeWindow) -> Iterator[MetricChunk]:
        yield MetricChunk(series=self.series, samples=self.hours[window])


def ingest_baselines(history: History, figures: Figures, sim_hours: int) -> dict[str, Any]:
    """ingest_metrics_hour over the last day's hours (memory source) and over the simulator, each
    into a scratch lake."""
    out: dict[str, Any] = {}
    scratch = WORK / "scratch"
    runs = {
        "memory": (
            MemorySource(history.series, dict(figures.kept_hours)),
            [w for w, _ in figures.kept_hours],
        ),
        "simulator": (
            SimulatedMetrics(SimulatorConfig(seed=42, instances_per_service=2)),
            [TimeWindow(START + h * HOUR, START + (h + 1) * HOUR) for h in range(sim_hours)],
        ),
    }
    for name, (source, windows) in runs.items():
        config = parse_config(
            {"lake": {"root": str(scratch / name), "catalog": str(scratch / f"{name}.duckdb")}}
        )
        lake = Lake(config)
        seconds, samples = 0.0, 0
        for window in windows:
            s, result = timed(lambda w=window, a=lake, b=source: ingest_metrics_hour(a, b, w))
            seconds, samples = seconds + s, samples + result.samples
        out[name] = {"hours": len(windows), "samples": samples, "seconds": seconds}
    shutil.rmtree(scratch, ignore_errors=True)
    return out


# -- what the derived datasets add to ingest (--derive-only) -------------------------------------


def clocks() -> tuple[float, float]:
    """(wall, CPU of this process, every thread) now: the machine is shared, CPU is the figure
    other work disturbs least."""
    return time.perf_counter(), time.process_time()


def since(mark: tuple[float, float]) -> tuple[float, float]:
    wall, cpu = clocks()
    return wall - mark[0], cpu - mark[1]


def derive_bench(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Each day of the history ingested as a day's run does, with ``ingest_metrics_hours`` (memory
    source: the real ingest code minus the fetch; one commit per dataset), then derived as the two Dagster assets call
    ``derive`` after an ingest run: ``sli_minutes``, then ``up_minutes`` + ``series_inventory``.
    ``--derive-hourly`` derives each hour on its own (hourly runs) instead of a day at a time."""
    work = WORK / "derive"
    shutil.rmtree(work, ignore_errors=True)
    config = parse_config(
        {
            **bench_config(args.services, args.days).model_dump(mode="json", exclude_unset=True),
            "lake": {"root": str(work / "lake"), "catalog": str(work / "obs.duckdb")},
        },
        source="report_bench",
    )
    history = History(args.services, args.days, args.seed)
    lake, rows = Lake(config), []
    for day in range(args.days):
        hours = [history.hour(h) for h in range(day * 24, (day + 1) * 24)]
        source = MemorySource(history.series, dict(hours))
        mark = clocks()
        ingest_metrics_hours(lake, source, [window for window, _ in hours])  # as a day's run
        ingest = since(mark)
        runs = [w for w, _ in hours] if args.derive_hourly else [day_window(day)]
        mark = clocks()
        for window in runs:
            derive(config, window, datasets=("sli_minutes",))
            derive(config, window, datasets=("up_minutes", "series_inventory"))
        derived = since(mark)
        row = {
            "day": day + 1,
            "samples": sum(t.num_rows for _, t in hours),
            "ingest_wall": ingest[0],
            "ingest_cpu": ingest[1],
            "derive_wall": derived[0],
            "derive_cpu": derived[1],
        }
        rows.append(row)
        log(
            f"day {day + 1}: ingest {ingest[0]:.2f} s ({ingest[1]:.2f} s CPU), derive "
            f"{derived[0]:.2f} s ({derived[1]:.2f} s CPU): {derived[0] / ingest[0]:.0%} wall, "
            f"{derived[1] / ingest[1]:.0%} CPU"
        )
    return rows


# -- the report suite -----------------------------------------------------------------------------


def run_views(
    args: argparse.Namespace,
    names: list[str],
    old: bool,
    skip: dict[str, str],
    closure: dict[str, set[str]],
) -> dict[str, dict[str, Any]]:
    tag = "old" if old else "new"
    (WORK / "results" / tag).mkdir(parents=True, exist_ok=True)
    found: dict[str, dict[str, Any]] = {}
    for name in names:
        if name in skip:
            found[name] = {"skipped": skip[name]}
            continue
        keep = WORK / "results" / tag / f"{name}.arrow"
        timeout = args.old_timeout if old and name == "slo_events" else args.view_timeout
        spec = {
            **base_spec(args),
            "kind": "view",
            "name": name,
            "old": old,
            "keep": str(keep),
            "shadow": sorted(({name} | closure.get(name, set())) & set(CHANGED)),
        }
        result = run_child(spec, timeout)
        if result.out is None:
            found[name] = {"timeout": timeout, "error": result.error}
            log(f"  {name}: no result after {result.wall_s:.0f} s ({result.error})")
        else:
            found[name] = {**result.out, "keep": str(keep) if keep.exists() else None}
            log(f"  {name}: {result.out['seconds']:.2f} s, {result.out['rows']:,} rows")
    return found


def base_spec(args: argparse.Namespace) -> dict[str, Any]:
    return {"services": args.services, "days": args.days, "work": str(WORK)}


def read_kept(path: str | None) -> pa.Table | None:
    if not path:
        return None
    with pa.memory_map(path) as source:
        return pa.ipc.open_file(source).read_all()


def same_rows(a: pa.Table, b: pa.Table) -> str:
    """yes / no, comparing values (floats to 6 decimals, decimals as numbers), and the column
    types that differ."""
    if a.column_names != b.column_names:
        return "columns differ"

    def key(row: dict[str, Any]) -> tuple:
        numbers = (int, float, Decimal)
        values = (
            float(v) if isinstance(v, numbers) and not isinstance(v, bool) else v
            for v in row.values()
        )
        return tuple(round(v, 6) if isinstance(v, float) and v == v else repr(v) for v in values)

    same = a.num_rows == b.num_rows and sorted(map(key, a.to_pylist())) == sorted(
        map(key, b.to_pylist())
    )
    types = [
        f"{x.name} {x.type} vs {y.type}"
        for x, y in zip(a.schema, b.schema, strict=True)
        if x.type != y.type
    ]
    return ("yes" if same else "**no**") + (f" (types: {'; '.join(types)})" if types else "")


# -- the results file -----------------------------------------------------------------------------


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} CPUs ({model}), Linux {platform.release()}; Python "
        f"{platform.python_version()}, duckdb {duckdb.__version__}, pyarrow {pa.__version__}, "
        f"numpy {np.__version__}"
    )


def verdict(met: bool) -> str:
    return "**met**" if met else "**missed**"


def seconds_of(entry: dict[str, Any]) -> str:
    if "seconds" in entry:
        return f"{entry['seconds']:.2f}"
    if "timeout" in entry:
        return f"> {entry['timeout']:.0f} ({entry['error']})"
    return "not run"


def rows_of(entry: dict[str, Any]) -> str:
    return f"{entry['rows']:,}" if "rows" in entry else "-"


def write_results(ctx: dict[str, Any]) -> str:
    f: Figures = ctx["figures"]
    history: History = ctx["history"]
    new, old = ctx["new_views"], ctx["old_views"]
    new_report, old_report = ctx["new_report"], ctx["old_report"]
    base = ctx["baselines"]
    first, last = f.builds[0], f.builds[-1]
    per_day_write = f.write_s / len(f.days)
    sampled = [d for d in f.days if d.sli_s is not None] or f.days[:1]

    def lower(entries: dict[str, dict[str, Any]]) -> tuple[float, bool]:
        total, exact = 0.0, True
        for entry in entries.values():
            if "seconds" in entry:
                total += entry["seconds"]
            else:
                exact = False
                total += entry.get("timeout", 0.0)
        return total, exact

    new_views_s, new_exact = lower(new)
    new_views_cpu = sum(e.get("cpu_s", 0.0) for e in new.values())
    session = ctx["session"].out
    report_s = (
        new_report.out["scorecard_s"] + new_report.out["render_s"] if new_report.out else None
    )
    suite_s = new_views_s + (report_s or ctx["report_timeout"])
    suite_text = f"{'' if new_exact and report_s else '> '}{suite_s:.1f} s"
    old_slo = old.get("slo_events", {})
    old_slo_s = old_slo.get("seconds")
    mem, sim = base["memory"], base["simulator"]
    mem_day = mem["seconds"] / mem["hours"] * 24
    last_day = sampled[-1]
    derived_last = last_day.inventory_s + (last_day.sli_s or 0.0)  # 0: no sample day finished
    lines = [
        "# Reports over a month of history: derived datasets vs query-time computation (issue 10)",
        "",
        f"Reproduce (~{ctx['runtime'] / 60:.0f} min here): `{ctx['command']}`",
        "",
        f"Machine: {machine()}. Load average before: {ctx['load_before']}; after: "
        f"{ctx['load_after']}; highest seen during the run: {PEAK_LOAD[0]:.2f} (other work "
        f"shared the machine when above ~2). Run of {ctx['when']}.",
        "",
        f"History: {history.services} services x {INSTANCES} instances, {history.series_count} "
        "series (ratio counters, histogram buckets le 0.1/0.5/+Inf, a lag gauge and `up` per "
        f"instance), 60 s scrapes, {history.days} days from {START:%Y-%m-%d}: **{f.samples:,} "
        f"samples** in {len(f.days) * 24} hourly partitions; {len(ctx['config'].slos)} SLOs "
        f"(ratio 30d, latency 30d, threshold 24h per service). Events: "
        f"{', '.join(f'{v} {k}' for k, v in history.counts.items())}. No logs, spans or "
        "alerts: the alert views run on empty datasets.",
        "",
        "## Figures",
        "",
        "| figure | measured | goal | | how |",
        "|---|---:|---|---|---|",
        f"| report suite with derived datasets: every view + `obs report` | **{suite_text}** "
        f"| <= {SUITE_GOAL_S:g} s | {verdict(suite_s <= SUITE_GOAL_S)} | {len(new)} `SELECT *`, "
        f"{'' if new_exact else 'some cut at their timeout, '}{new_views_s:.1f} s + `obs report` "
        f"after its build: "
        + (
            f"scorecard_text {new_report.out['scorecard_s']:.1f} s + render_report "
            f"{new_report.out['render_s']:.1f} s"
            if new_report.out
            else f"> {ctx['report_timeout']:.0f} s"
        )
        + " |",
        f"| CPU time of those {len(new)} `SELECT *` (each process, all threads) | "
        f"{new_views_cpu:.1f} s | | | the machine is shared: CPU time is what other work disturbs "
        "least |",
        "| the suite in one report session (`report_connection` + `pin_reports` + every "
        "`SELECT *`), as `obs report` and the report asset run it | "
        + (
            f"**{session['seconds']:.1f} s** ({session['cpu_s']:.1f} s CPU) | <= "
            f"{SUITE_GOAL_S:g} s | {verdict(session['seconds'] <= SUITE_GOAL_S)} | pinning "
            f"{session['pin_s']:.1f} s ({session['pin_cpu_s']:.1f} s CPU), then "
            f"{session['seconds'] - session['pin_s']:.1f} s for {len(session['rows'])} views |"
            if session
            else f"> {ctx['report_timeout']:.0f} s | <= {SUITE_GOAL_S:g} s | **missed** | |"
        ),
        "| `obs report` alone (its catalog build + scorecard_text + render_report) | "
        + (f"{last['best'] + report_s:.1f} s" if report_s else "-")
        + f" | (<= {SUITE_GOAL_S:g} s) | {verdict(bool(report_s) and last['best'] + report_s <= SUITE_GOAL_S)} "
        f"| build {last['best']:.1f} s (best of {len(last['times'])}) |",
        f"| `slo_events`: derived vs query-time (before) | {new['slo_events'].get('seconds', 0):.2f} s "
        f"vs {seconds_of(old_slo)} s | | | one `SELECT *` each, same catalog and data |",
        f"| derived datasets / ingest write, per day at day {last_day.day + 1} | "
        f"**{derived_last / last_day.write_s * 100:,.0f} %** | <= {DERIVED_GOAL * 100:g} % "
        f"| {verdict(derived_last <= DERIVED_GOAL * last_day.write_s)} | up_minutes + "
        f"series_inventory {last_day.inventory_s:.1f} s + sli_minutes {last_day.sli_s or 0:.1f} s "
        f"vs write_hot {last_day.write_s:.2f} s |",
        f"| derived datasets / real ingest code (memory source), day {last_day.day + 1} | "
        f"{derived_last / mem_day * 100:,.0f} % | <= {DERIVED_GOAL * 100:g} % "
        f"| {verdict(derived_last <= DERIVED_GOAL * mem_day)} | ingest_metrics_hour over the "
        f"last day's {mem['hours']} hours from memory: {mem_day:.2f} s per day (no fetch) |",
        f"| derived datasets / simulator ingest, per sample, day {last_day.day + 1} | "
        f"{derived_last / last_day.samples / (sim['seconds'] / sim['samples']) * 100:,.0f} % | "
        f"<= {DERIVED_GOAL * 100:g} % | "
        f"{verdict(derived_last / last_day.samples <= DERIVED_GOAL * sim['seconds'] / sim['samples'])} "
        f"| simulator + ingest_metrics_hour {sim['seconds'] / sim['samples'] * 1e6:.2f} µs/sample "
        f"({sim['hours']} h, {sim['samples']:,} samples: other data, an estimate) vs derive "
        f"{derived_last / last_day.samples * 1e6:.2f} µs/sample |",
        f"| catalog rebuild at {first['days']} days | {first['best']:.2f} s | | | "
        f"{first['partitions']:,} partitions; runs {', '.join(f'{t:.2f}' for t in first['times'])} s |",
        f"| catalog rebuild at {last['days']} days | {last['best']:.2f} s | not growing with "
        f"partitions | {verdict(last['best'] <= first['best'] * 1.5)} | {last['partitions']:,} "
        f"partitions ({last['partitions'] / first['partitions']:.1f}x); "
        f"{last['best'] / first['best']:.1f}x the time |",
        "",
        "Met means: within 5 s; within 10 % of the baseline on the row; the rebuild at "
        f"{last['days']} days within 1.5x the one at {first['days']} days.",
        "",
        "## Derived datasets",
        "",
    ]
    lines += [
        "`derive(config, day, ...)` as the tree has it, per day on sample days (each in its own "
        "process; `sli_minutes` alone, then `up_minutes` + `series_inventory`, as the two Dagster "
        "assets call it). Every day's `up_minutes` + `series_inventory` was timed; the other days' "
        "`sli_minutes` were filled by one call per range (below).",
        "",
        "| day | days in lake | write s | up_minutes + series_inventory s | sli_minutes s "
        "| derived / write |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for d in (d for d in f.days if d.sli_error is not None):
        if d.sli_s is None:
            shown, ratio = f"> {d.sli_error.wall_s:.0f} ({d.sli_error.error})", "-"
        else:
            shown = f"{d.sli_s:.1f}"
            ratio = f"{(d.inventory_s + d.sli_s) / d.write_s * 100:,.0f} %"
        lines.append(
            f"| {d.day + 1} | {d.day + 1} | {d.write_s:.2f} | {d.inventory_s:.2f} | {shown} "
            f"| {ratio} |"
        )
    inv = [d.inventory_s for d in f.days]
    lines += [
        "",
        f"Over all {len(f.days)} days: write {f.write_s:.1f} s ({per_day_write:.2f} s per day); "
        f"up_minutes + series_inventory {sum(inv):.1f} s (day 1 {inv[0]:.2f} s, day "
        f"{len(inv)} {inv[-1]:.2f} s). Other days' sli_minutes, one call per range: "
        + "; ".join(
            f"days {x['first'] + 1}-{x['last']}: "
            + (
                f"{x['result'].out['seconds']:.1f} s"
                if x["result"].out
                else f"> {x['result'].wall_s:.0f} s ({x['result'].error})"
            )
            for x in f.fills
        )
        + ". In Dagster the derived datasets are hourly partitions run a day at a time by the "
        "backfill policy.",
        "",
        "While this bench was written, `sli_minutes` as then shipped never finished: DuckDB 1.5.5 "
        "parked every thread fetching its query straight to Arrow (`fetchall()` too) once the "
        "config had about 9 SLOs, and ignored `interrupt()`; `count(*)` over the same query, "
        "`CREATE TABLE AS` or an `ORDER BY` finished (like duckdb/duckdb#24961, a window over a "
        "UNION with an IN-subquery arm). `derived._query` now computes into a temporary table "
        "first. The old `slo_events` fetched straight to Arrow hangs the same way (5 services, 3 "
        "days), hence `select_all` here. A derive that does not finish shows above as a timeout.",
        "",
        "## Catalog rebuild",
        "",
        "| days | partitions | build s (each run) | check_latency_buckets s | one `metric_series` read s |",
        "|---:|---:|---|---:|---:|",
    ]
    for b in f.builds:
        lines.append(
            f"| {b['days']} | {b['partitions']:,} | {', '.join(f'{t:.2f}' for t in b['times'])} "
            f"| {b['check_s']:.2f} | {b['series_s']:.3f} |"
        )
    lines += [
        "",
        "`check_latency_buckets` (run by `publish`) reads the `metric_series` view once per latency "
        f"SLO ({len([s for s in ctx['config'].slos if s.sli.type == 'latency'])} here), and that "
        "view reads every hourly `metric_series` partition.",
        "",
        "## Each view",
        "",
        f"Each `SELECT *` in its own process on the catalog at {last['days']} days, timed from "
        "opening its `report_connection` (which finds the default period once) to its last row ("
        "computed "
        "into a temporary table, then fetched as Arrow: fetched straight to Arrow, the old "
        "`slo_events` hangs DuckDB as derive does, already at 5 services and 3 days; killed "
        f"after {ctx['view_timeout']:.0f} s, the old `slo_events` after "
        f"{ctx['old_timeout']:.0f} s). `same`: identical rows on both paths (floats to 6 "
        f"decimals; results up to {KEEP_ROWS:,} rows with the same columns).",
        "",
        "| view | derived s | CPU s | rows | before s | rows | same |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, entry in new.items():
        before = old.get(name, {})
        same = "-"
        a, b = read_kept(entry.get("keep")), read_kept(before.get("keep"))
        if a is not None and b is not None:
            same = same_rows(a, b)
        shown_before = (
            f"not run: {before['skipped']}" if "skipped" in before else seconds_of(before)
        )
        cpu = f"{entry['cpu_s']:.2f}" if "cpu_s" in entry else "-"
        lines.append(
            f"| {name} | {seconds_of(entry)} | {cpu} | {rows_of(entry)} | {shown_before} | "
            f"{rows_of(before)} | {same} |"
        )
    lines += [
        f"| **views** | **{'' if new_exact else '> '}{new_views_s:.1f}** | {new_views_cpu:.1f} "
        "| | | | |",
        "",
        "`obs report` (after its build; each of the two pins the reports in its own session):",
        "",
        "| | derived s | before s |",
        "|---|---:|---:|",
    ]
    for key, label in (("scorecard_s", "scorecard_text"), ("render_s", "render_report")):
        shown = f"{new_report.out[key]:.1f}" if new_report.out else f"> {ctx['report_timeout']:.0f}"
        if old_report is not None and old_report.out:
            before = f"{old_report.out[key]:.1f}"
        elif old_slo_s is not None:
            before = f">= {old_slo_s:.0f} (not run: pins the old slo_events, {old_slo_s:.0f} s)"
        elif "timeout" in old_slo:
            before = f"> {old_slo['timeout']:.0f} (not run: pins the old slo_events)"
        else:
            before = "not run"
        lines.append(f"| {label} | {shown} | {before} |")
    if new_report.out:
        lines += [
            "",
            "Scorecard (derived datasets):",
            "",
            "```",
            new_report.out["scorecard"].rstrip(),
            "```",
        ]
    lines += [
        "",
        "## How the two paths were measured",
        "",
        "* One lake and one catalog, built by the current code. Every query runs in a "
        "`report_connection` session in its own process (default period: the last 7 days; the "
        "horizon reaches 30 days before the previous period, so the whole history is read).",
        "* **Before** (query-time computation): temporary views shadow the catalog's "
        f"`{'`, `'.join(CHANGED)}` with their definitions at {OLD_COMMIT[:7]}: "
        "`slo_events_sql(slos, with_rollups=True)`, `report_period` taking its newest hour from "
        f"`max(ts)` of `metric_samples`, and `git show {OLD_COMMIT[:7]}:sql/<view>.sql`. Views "
        f"that did not change read the temporary ones (checked: {ctx['shadow_check']}). Views "
        "that read `slo_events` recompute it in each query, so each takes at least the old "
        "`slo_events` time and they were not run (`--old-full` runs them). For `obs report`, "
        "`pin_reports` pins the old definitions under the same names (`--old-full`).",
        "* Ingest: generation is not timed; hours are generated sorted and written with "
        "`write_hot(..., sort=False)`, as `ingest_metrics_hour` writes after its own sort.",
        "",
    ]
    text = "\n".join(lines)
    RESULTS.write_text(text)
    return text


# -- main -----------------------------------------------------------------------------------------


def main() -> None:
    global WORK
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=50)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--first-days", type=int, default=10)
    parser.add_argument("--seed", type=int, default=10)
    parser.add_argument("--build-reps", type=int, default=2)
    parser.add_argument("--view-timeout", type=float, default=30, help="s per view")
    parser.add_argument("--report-timeout", type=float, default=300, help="s for obs report")
    parser.add_argument("--old-timeout", type=float, default=720, help="s for old slo_events")
    parser.add_argument(
        "--derive-timeout", type=float, default=300, help="s per day of sli_minutes (x3 to fill)"
    )
    parser.add_argument("--old-full", action="store_true", help="run every old view (hours)")
    parser.add_argument("--sim-hours", type=int, default=6)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, default=WORK, help="lake, catalog and results")
    parser.add_argument(
        "--derive-only", action="store_true", help="only what derive adds to ingest, per day"
    )
    parser.add_argument("--derive-hourly", action="store_true", help="derive each hour alone")
    args = parser.parse_args()
    if args.child:
        child_main(json.loads(args.child))
        return
    WORK = args.work.resolve()
    if args.derive_only:
        derive_bench(args)
        return
    began = time.perf_counter()
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    config = bench_config(args.services, args.days)
    history = History(args.services, args.days, args.seed)
    log(f"{history.series_count} series, {len(config.slos)} SLOs, events {history.counts}")
    figures = Figures()
    base = base_spec(args)
    phases = [(0, args.first_days), (args.first_days, args.days)]
    for first, last in phases:
        for day in range(first, last):
            record = write_day(config, history, day, figures)
            if day == 0:
                sli_days(args, figures, 0, 1, record)
        if last - 1 > 0:
            sli_days(args, figures, last - 1, 1, figures.days[-1])
        fill_from = max(first, 1)
        sli_days(args, figures, fill_from, last - 1 - fill_from, None)
        measure_build(config, figures, last, args.build_reps)
    log(f"ingest: write {figures.write_s:.1f} s, {figures.samples:,} samples")

    queries = report_queries()
    names = ["report_period", "slo_events", *queries]
    log("report suite with derived datasets")
    # What each view reads, by the old definitions where they changed (the old slo_events reads
    # report_period): which old views a view's session shadows, and which read slo_events.
    closure = reads({**queries, **old_definitions(config)})
    new_views = run_views(args, names, False, {}, closure)
    new_report = run_child(
        {**base, "kind": "report", "old": False, "html": str(WORK / "report.html")},
        args.report_timeout,
    )
    log(
        f"  obs report: {new_report.out and {k: v for k, v in new_report.out.items() if k != 'scorecard'}}"
    )
    session = run_child({**base, "kind": "session", "names": names}, args.report_timeout)
    log(
        f"  the suite in one session: {session.out and {k: v for k, v in session.out.items() if k != 'rows'}}"
    )

    shadow_check = check_shadowing(config)
    log(f"shadowing: {shadow_check}")
    skip = {}
    if not args.old_full:
        skip = {
            n: "reads slo_events: at least its time"
            for n in names
            if "slo_events" in closure.get(n, set())
        }
    log("report suite with the query-time computation (before)")
    old_views = run_views(args, names, True, skip, closure)
    old_report = None
    if args.old_full:
        old_report = run_child(
            {**base, "kind": "report", "old": True, "html": str(WORK / "report-before.html")},
            args.report_timeout * 10,
        )

    log("ingest baselines (ingest_metrics_hour: memory source, simulator)")
    baselines = ingest_baselines(history, figures, args.sim_hours)
    log(f"baselines: {baselines}")
    runtime = time.perf_counter() - began
    command = ".venv/bin/python -m bench.report_bench"
    for action in parser._actions:
        value = getattr(args, action.dest, None)
        if action.dest not in ("help", "child") and value != action.default:
            command += f" --{action.dest.replace('_', '-')}" + (
                "" if isinstance(value, bool) else f" {value}"
            )
    text = write_results(
        {
            "figures": figures,
            "history": history,
            "config": config,
            "new_views": new_views,
            "old_views": old_views,
            "new_report": new_report,
            "session": session,
            "old_report": old_report,
            "baselines": baselines,
            "command": command,
            "runtime": runtime,
            "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "load_before": load_before,
            "load_after": " ".join(f"{x:.2f}" for x in os.getloadavg()),
            "shadow_check": shadow_check,
            "view_timeout": args.view_timeout,
            "old_timeout": args.old_timeout,
            "report_timeout": args.report_timeout,
            "selectors": sum(len(series_roles(s)) for s in config.slos),
        }
    )
    print(text)
    log(f"wrote {RESULTS.relative_to(ROOT)} in {runtime:.0f} s")


if __name__ == "__main__":
    main()
