"""Metrics ingest benchmark against a real, backfilled Prometheus.

Why: ingest must keep up with a fleet's scrape volume on a small worker. The reference points
are the bare HTTP fetch of the same data (the floor nothing can beat) and prometheus-api-client's
documented path to a table (``custom_query_range`` -> ``MetricRangeDataFrame`` -> Parquet).

The parent process generates OpenMetrics history (vectorized, one write per chunk of series),
backfills it with promtool, starts Prometheus on 127.0.0.1 and runs every method in a fresh child
process, so each peak RSS belongs to one method alone. Run from the repo root:

    .venv/bin/python -m bench.ingest_bench [--series N --hours H --reps R]
"""

import argparse
import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "bench" / "work"
START = datetime(2026, 11, 2, tzinfo=UTC)  # fixed, so every run backfills identical history
HOUR_MS = 3_600_000
SCRAPE_MS = 15_000
JITTER_MS = 4  # scrape timestamps wander by up to this much either way
SHARDS = 16  # every series has a `shard` label, so a subset is one regex away
SEED = 20261102
CHILD_TIMEOUT_S = 240


@dataclass(frozen=True)
class Family:
    """One metric family: its stored name, its OpenMetrics TYPE line and how its values move."""

    metric: str
    om_name: str
    om_type: str
    share: float  # fraction of all series
    shape: str


FAMILIES = (
    Family("bench_http_requests_total", "bench_http_requests", "counter", 0.35, "requests"),
    Family(
        "bench_http_request_duration_seconds_bucket",
        "bench_http_request_duration_seconds_bucket",
        "unknown",
        0.25,
        "buckets",
    ),
    Family(
        "bench_process_resident_memory_bytes",
        "bench_process_resident_memory_bytes",
        "gauge",
        0.15,
        "bytes",
    ),
    Family("bench_cpu_utilisation_ratio", "bench_cpu_utilisation_ratio", "gauge", 0.15, "ratio"),
    Family("bench_queue_depth", "bench_queue_depth", "gauge", 0.10, "depth"),
)
SERVICES = [f"svc-{name}" for name in "abcdefghijklmnopqrst"]  # 20
ROUTES = [
    "/",
    "/api/v1/orders",
    "/api/v1/orders/{id}",
    "/api/v1/users",
    "/login",
    "/healthz",
    "/search",
    "/cart",
]
CODES = ["200", "201", "404", "500", "503"]
BUCKETS = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf"]
QUEUES = ["ingest", "email", "billing", "search-index"]


# --- history -------------------------------------------------------------------------------------


def family_sizes(series: int) -> list[int]:
    sizes = [int(series * f.share) for f in FAMILIES]
    sizes[0] += series - sum(sizes)
    return sizes


def series_labels(family: Family, index: int) -> dict[str, str]:
    """Distinct, realistic label sets: the index is spelled in mixed radix over the label values."""
    service = SERVICES[index % len(SERVICES)]
    rest = index // len(SERVICES)
    labels = {"job": "bench", "service": service, "shard": str(index % SHARDS)}
    if family.shape == "requests":
        labels |= {"route": ROUTES[rest % 8], "code": CODES[rest // 8 % 5]}
        pod = rest // 40
    elif family.shape == "buckets":
        labels |= {"route": ROUTES[rest % 8], "le": BUCKETS[rest // 8 % 10]}
        pod = rest // 80
    elif family.shape == "depth":
        labels |= {"queue": QUEUES[rest % 4]}
        pod = rest // 4
    else:
        pod = rest
    labels["instance"] = f"{service}-{pod:04d}.prod.internal:9100"
    return labels


def family_values(shape: str, rng: np.random.Generator, n: int, m: int) -> np.ndarray:
    """``n`` series x ``m`` samples of plausible values for ``shape``."""
    if shape in ("requests", "buckets"):
        # Counters: integer increments, an occasional reset to zero (a restarted process).
        start = rng.integers(0, 5_000_000, n).astype(np.float64)[:, None]
        rate = np.clip(rng.lognormal(1.0, 1.5, n), 0.01, 2_000)[:, None]
        inc = rng.poisson(rate, (n, m)).astype(np.float64)
        total = start + np.cumsum(inc, axis=1)
        reset = rng.random((n, m)) < 1 / 3_000
        reset[:, 0] = False
        base = np.where(reset, total - inc, 0.0)
        return total - np.maximum.accumulate(base, axis=1)
    if shape == "bytes":
        level = rng.integers(50_000_000, 4_000_000_000, n)[:, None]
        walk = np.cumsum(rng.normal(0, 200_000, (n, m)), axis=1)
        noise = rng.normal(0, 1_000_000, (n, m))
        return np.maximum(4096.0, np.round((level + walk + noise) / 4096) * 4096)
    if shape == "ratio":
        level = rng.uniform(0.05, 0.8, n)[:, None]
        wave = 0.05 * np.sin(np.linspace(0, 6 * np.pi, m))[None, :]
        return np.clip(level + wave + rng.normal(0, 0.02, (n, m)), 0.0, 1.0)
    if shape == "depth":
        level = rng.uniform(0, 200, n)[:, None]
        return np.maximum(0.0, np.round(level + np.cumsum(rng.normal(0, 2, (n, m)), axis=1)))
    raise ValueError(shape)


def scrape_times(rng: np.random.Generator, n: int, m: int, start_ms: int) -> np.ndarray:
    """A 15 s scrape per series at its own phase, each timestamp jittered by a few ms.

    The phase keeps clear of the hour boundaries, so every hour holds exactly 240 samples of
    every series and the expected counts are exact.
    """
    phase = rng.integers(JITTER_MS + 10, SCRAPE_MS - JITTER_MS - 10, n)[:, None]
    jitter = rng.integers(-JITTER_MS, JITTER_MS + 1, (n, m))
    return start_ms + phase + np.arange(m, dtype=np.int64)[None, :] * SCRAPE_MS + jitter


_MS_SUFFIX = pa.array([f".{i:03d}\n" for i in range(1000)], pa.large_string())


def openmetrics_lines(heads: list[str], ts_ms: np.ndarray, values: np.ndarray) -> memoryview:
    """``head value seconds.millis`` lines for every sample, as one buffer built by Arrow kernels."""
    n, m = values.shape
    head = pa.array([f"{h} " for h in heads], pa.large_string()).take(
        pa.array(np.repeat(np.arange(n), m))
    )
    flat_ts = ts_ms.ravel()
    lines = pc.binary_join_element_wise(
        head,
        pa.array(values.ravel()).cast(pa.large_string()),
        pa.scalar(" ", pa.large_string()),
        pa.array(flat_ts // 1000).cast(pa.large_string()),
        _MS_SUFFIX.take(pa.array(flat_ts % 1000)),
        pa.scalar("", pa.large_string()),
    )
    offsets = np.frombuffer(
        lines.buffers()[1], np.int64, count=len(lines) + 1, offset=lines.offset * 8
    )
    return memoryview(lines.buffers()[2])[offsets[0] : offsets[-1]]


@dataclass(frozen=True)
class History:
    hours: list[datetime]
    samples_per_hour: list[int]
    series: int
    bytes: int
    seconds: float


def write_history(path: Path, series: int, hours: int) -> History:
    """Write the OpenMetrics file promtool backfills from; returns the exact counts per hour."""
    started = time.perf_counter()
    start_ms = int(START.timestamp() * 1000)
    per_sample_count = hours * HOUR_MS // SCRAPE_MS
    per_hour = np.zeros(hours, np.int64)
    rng = np.random.default_rng(SEED)
    with path.open("wb") as out:
        for family, size in zip(FAMILIES, family_sizes(series), strict=True):
            out.write(f"# TYPE {family.om_name} {family.om_type}\n".encode())
            for first in range(0, size, 1000):  # bounded memory at any --series
                count = min(1000, size - first)
                heads = [
                    family.metric
                    + "{"
                    + ",".join(f'{k}="{v}"' for k, v in series_labels(family, i).items())
                    + "}"
                    for i in range(first, first + count)
                ]
                ts = scrape_times(rng, count, per_sample_count, start_ms)
                values = family_values(family.shape, rng, count, per_sample_count)
                out.write(openmetrics_lines(heads, ts, values))
                per_hour += np.bincount(((ts - start_ms) // HOUR_MS).ravel(), minlength=hours)[
                    :hours
                ]
        out.write(b"# EOF\n")
    return History(
        hours=[START + timedelta(hours=h) for h in range(hours)],
        samples_per_hour=[int(c) for c in per_hour],
        series=series,
        bytes=path.stat().st_size,
        seconds=time.perf_counter() - started,
    )


def backfill(openmetrics: Path, data_dir: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [
            "promtool",
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            "--max-block-duration=48h",
            str(openmetrics),
            str(data_dir),
        ],
        check=True,
        capture_output=True,
        timeout=CHILD_TIMEOUT_S,
    )
    return time.perf_counter() - started


# --- children: one method each, in a fresh process ----------------------------------------------


def peak_rss_mb() -> float:
    """This process's own high-water RSS.

    Not ``getrusage().ru_maxrss``: Linux carries that across fork and exec, so every child would
    report the parent's peak (the history generation) instead of its own. ``VmHWM`` belongs to the
    address space, which exec replaces.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def hour_windows(spec: dict[str, Any]) -> list[Any]:
    from obs_pipelines.windows import TimeWindow

    starts = [datetime.fromisoformat(h) for h in spec["hours"]]
    return [TimeWindow(s, s + timedelta(hours=1)) for s in starts]


def repeat(reps: int, run_once: Callable[[], dict[str, float]]) -> list[dict[str, float]]:
    """Run ``run_once`` ``reps`` times, adding the CPU seconds this process spent (all threads):
    unlike wall time, that barely moves when other work shares the machine."""
    runs = []
    for _ in range(reps):
        before = resource.getrusage(resource.RUSAGE_SELF)
        run = run_once()
        after = resource.getrusage(resource.RUSAGE_SELF)
        run["cpu_seconds"] = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        runs.append(run)
    return runs


def child_ours(spec: dict[str, Any]) -> dict[str, Any]:
    """The real path: ``ingest_metrics_hours`` with the shipped ``PrometheusSource`` into a local
    lake, the hours as one run (Delta tables: one commit per dataset for the run's hours)."""
    from obs_pipelines.config import parse_config
    from obs_pipelines.lake import Lake
    from obs_pipelines.lake.ingest import ingest_metrics_hours
    from obs_pipelines.sources.prometheus import PrometheusSource

    lake_root = Path(spec["work"]) / "lake-ours"
    config = parse_config(
        {
            "ingest": {"start": spec["hours"][0]},
            "lake": {
                "root": str(lake_root),
                "catalog": str(lake_root / "obs.duckdb"),
            },
            "sources": {
                "metrics": "prometheus",
                "prometheus": {
                    "url": spec["url"],
                    "selectors": spec["selectors"],
                    "retry_backoff_seconds": 0,
                },
            },
        },
        base_dir=Path(spec["work"]),
    )
    windows = hour_windows(spec)
    baseline = current_rss_mb()

    def once() -> dict[str, float]:
        started = time.perf_counter()
        source = PrometheusSource(config.sources.prometheus)
        results = ingest_metrics_hours(Lake(config), source, windows)  # as the asset's run
        for result, expected in zip(results, spec["samples_per_hour"], strict=True):
            if result.samples != expected:
                raise SystemExit(
                    f"ours wrote {result.samples} samples for {result.window}, expected {expected}"
                )
        return {
            "seconds": time.perf_counter() - started,
            "samples": sum(r.samples for r in results),
        }

    runs = repeat(spec["reps"], once)
    # Each rep's commits replaced the last's hours: count the live files only.
    from obs_pipelines.lake.delta_tables import DeltaTables

    tables = DeltaTables(config)
    parquet = sum(
        sum(pa.table(t.get_add_actions(flatten=True))["size_bytes"].to_pylist())
        for t in (tables.open(d) for d in ("metric_series", "metric_samples"))
        if t is not None
    ) / len(windows)
    return {
        "runs": runs,
        "baseline_rss_mb": baseline,
        "note": f"{parquet / 2**20:.1f} MiB of Parquet per hour",
    }


def fetch_bodies(spec: dict[str, Any], window: Any, encoding: str) -> list[bytes]:
    """The exact requests our source makes for ``window``: instant queries of range selectors."""
    import requests

    session = requests.Session()
    width = window.end_ms - window.start_ms
    bodies = []
    for selector in spec["selectors"]:
        response = session.post(
            f"{spec['url']}/api/v1/query",
            data={"query": f"{selector}[{width}ms]", "time": f"{(window.end_ms - 1) / 1000:.3f}"},
            headers={"Accept-Encoding": encoding},
            timeout=120,
        )
        response.raise_for_status()
        bodies.append(response.content)
    return bodies


def child_floor(spec: dict[str, Any], encoding: str) -> dict[str, Any]:
    windows = hour_windows(spec)
    baseline = current_rss_mb()
    body_bytes = 0

    def once() -> dict[str, float]:
        nonlocal body_bytes
        started = time.perf_counter()
        body_bytes = sum(len(b) for w in windows for b in fetch_bodies(spec, w, encoding))
        return {"seconds": time.perf_counter() - started, "samples": sum(spec["samples_per_hour"])}

    runs = repeat(spec["reps"], once)
    return {
        "runs": runs,
        "baseline_rss_mb": baseline,
        "note": f"{body_bytes / len(windows) / 2**20:.1f} MiB of JSON per hour",
    }


def child_decode(spec: dict[str, Any]) -> dict[str, Any]:
    from obs_pipelines.sources.prometheus_decode import decode_matrix

    window = hour_windows(spec)[0]
    bodies = fetch_bodies(spec, window, "gzip")
    baseline = current_rss_mb()
    size = sum(len(b) for b in bodies)

    def once() -> dict[str, float]:
        started = time.perf_counter()
        samples = sum(decode_matrix(body).samples for body in bodies)
        if samples != spec["samples_per_hour"][0]:
            raise SystemExit(
                f"decode_matrix found {samples} samples, expected {spec['samples_per_hour'][0]}"
            )
        return {"seconds": time.perf_counter() - started, "samples": samples}

    runs = repeat(max(spec["reps"], 5), once)
    seconds = statistics.median(r["seconds"] for r in runs)
    return {
        "runs": runs,
        "baseline_rss_mb": baseline,
        "note": f"{size / 2**20:.1f} MiB JSON at {size / 2**20 / seconds:.0f} MiB/s",
    }


def child_client(spec: dict[str, Any], variant: str, encoding: str | None = None) -> dict[str, Any]:
    """prometheus-api-client's own path to a table, as its README shows it (its default headers
    ask for gzip; ``encoding`` overrides that, to show how much of its time is the server's)."""
    import pandas as pd  # noqa: F401  (imported before the baseline, as the path needs it)
    from prometheus_api_client import MetricRangeDataFrame, PrometheusConnect

    headers = {"Accept-Encoding": encoding} if encoding else None
    prom = PrometheusConnect(url=spec["url"], headers=headers, disable_ssl=True)
    windows = hour_windows(spec)
    out = Path(spec["work"]) / f"client-{variant}-{encoding}.parquet"
    baseline = current_rss_mb()
    phases = {"fetch": 0.0, "frame": 0.0, "parquet": 0.0}

    def once() -> dict[str, float]:
        started = time.perf_counter()
        rows = 0
        for window in windows:
            t0 = time.perf_counter()
            result: list[dict[str, Any]] = []
            for selector in spec["client_selectors"]:
                if variant == "range":
                    result += prom.custom_query_range(
                        selector,
                        start_time=window.start,
                        end_time=window.end - timedelta(seconds=15),
                        step="15s",
                    )
                else:
                    result += prom.get_metric_range_data(
                        selector, start_time=window.start, end_time=window.end
                    )
            t1 = time.perf_counter()
            frame = MetricRangeDataFrame(result)
            t2 = time.perf_counter()
            frame.to_parquet(out)
            t3 = time.perf_counter()
            rows += len(frame)
            phases["fetch"] += t1 - t0
            phases["frame"] += t2 - t1
            phases["parquet"] += t3 - t2
            del frame, result
        return {"seconds": time.perf_counter() - started, "samples": rows}

    runs = repeat(spec["reps"], once)
    total = sum(phases.values())
    split = ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in phases.items())
    return {"runs": runs, "baseline_rss_mb": baseline, "note": f"time: {split}"}


def child_profile(spec: dict[str, Any]) -> dict[str, Any]:
    """cProfile of ours over the first hour; the stats go to bench/work/profile-ours.txt."""
    import cProfile
    import io
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    result = child_ours(
        {
            **spec,
            "hours": spec["hours"][:1],
            "samples_per_hour": spec["samples_per_hour"][:1],
            "reps": 1,
        }
    )
    profiler.disable()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("cumulative").print_stats(35)
    stats.sort_stats("tottime").print_stats(25)
    (Path(spec["work"]) / "profile-ours.txt").write_text(text.getvalue())
    return result


CHILDREN: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "floor": lambda spec: child_floor(spec, "identity"),
    "floor_gzip": lambda spec: child_floor(spec, "gzip"),
    "ours": child_ours,
    "decode": child_decode,
    "client_range": lambda spec: child_client(spec, "range"),
    "client_raw": lambda spec: child_client(spec, "raw"),
    "client_range_identity": lambda spec: child_client(spec, "range", "identity"),
    "profile": child_profile,
}

LABELS = {
    "floor": "the floor: bare fetch of the same requests as ours (requests, body read and discarded)",
    "floor_gzip": "the same bare fetch asking for gzip (what `sources.prometheus.compress: true` costs)",
    "ours": "**ours**: `ingest_metrics_hours` (fetch + decode + sort + Parquet, one Delta commit per dataset for the run)",
    "decode": "`decode_matrix` alone on captured bodies (1 hour)",
    "client_range": "prometheus-api-client: `custom_query_range(step=15s)` -> `MetricRangeDataFrame` -> `to_parquet`",
    "client_raw": "prometheus-api-client: `get_metric_range_data` -> `MetricRangeDataFrame` -> `to_parquet`",
    "client_range_identity": "prometheus-api-client: `custom_query_range` path, `Accept-Encoding: identity`",
}


def child_result(
    module_args: list[str], what: str, timeout_s: float, stdin: str | None = None
) -> dict[str, Any]:
    """Run ``python -m <module_args>`` from the repo root in its own process (so its peak RSS
    is its own) and return the JSON object on its last line of output."""
    done = subprocess.run(
        [sys.executable, "-m", *module_args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=timeout_s,
    )
    if done.returncode != 0:
        raise SystemExit(f"{what} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_child(method: str, spec: dict[str, Any]) -> dict[str, Any]:
    args = ["bench.ingest_bench", "--child", method]
    return child_result(args, method, CHILD_TIMEOUT_S, json.dumps(spec))


def child_main(method: str) -> None:
    spec = json.loads(sys.stdin.read())
    result = CHILDREN[method](spec)
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))


# --- parent --------------------------------------------------------------------------------------


def machine() -> str:
    model = "unknown CPU"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    prometheus = subprocess.run(
        ["prometheus", "--version"], capture_output=True, text=True
    ).stdout.splitlines()
    return (
        f"{os.cpu_count()} CPUs ({model}), {os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / 2**30:.0f} GiB RAM, "
        f"{platform.system()} {platform.release()}; Python {platform.python_version()}, "
        f"pyarrow {pa.__version__}, numpy {np.__version__}, pandas {version('pandas')}, "
        f"prometheus-api-client {version('prometheus-api-client')}; "
        f"{prometheus[0] if prometheus else 'prometheus ?'}"
    )


def summarize(method: str, results: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over every run of every round; the highest peak RSS of the method's children."""
    runs = [run for result in results for run in result["runs"]]
    seconds = statistics.median(r["seconds"] for r in runs)
    samples = runs[0]["samples"]
    peak = max(results, key=lambda r: r["peak_rss_mb"])
    return {
        "method": method,
        "samples": samples,
        "seconds": seconds,
        "rate": samples / seconds,
        "cpu_us_per_sample": statistics.median(r["cpu_seconds"] for r in runs) / samples * 1e6,
        "peak_rss_mb": peak["peak_rss_mb"],
        "working_mb": peak["peak_rss_mb"] - peak["baseline_rss_mb"],
        "note": results[-1].get("note", ""),
        "reps": len(runs),
    }


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| method | samples per run | median s | samples/s | client CPU µs/sample | peak RSS MiB | above import baseline MiB | runs | notes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {LABELS[r['method']]} | {r['samples']:,} | {r['seconds']:.2f} | {r['rate']:,.0f} | "
            f"{r['cpu_us_per_sample']:.2f} | {r['peak_rss_mb']:.0f} | {r['working_mb']:.0f} | {r['reps']} | {r['note']} |"
        )
    return "\n".join(lines)


def ratios(by: dict[str, dict[str, Any]]) -> str:
    """The goals: ours >= 10x the samples/s of the MetricRangeDataFrame path, and at most 1.5x the
    time of a bare fetch of the same requests."""
    lines = [
        "| | x client range path | x client raw path | time / bare fetch of the same requests |",
        "|---|---:|---:|---:|",
    ]

    def speedup(ours: dict[str, Any], other: str) -> str:
        if other not in by:
            return "-"
        x = ours["rate"] / by[other]["rate"]
        return f"{x:.1f}x {'ok' if x >= 10 else 'MISS'}"

    def slowdown(ours: dict[str, Any], floor: str, goal: bool) -> str:
        if floor not in by:
            return "-"
        x = by[floor]["rate"] / ours["rate"]
        return f"{x:.2f}x" + ((" ok" if x <= 1.5 else " MISS") if goal else "")

    if "ours" in by:
        ours = by["ours"]
        lines.append(
            f"| ours | {speedup(ours, 'client_range')} | {speedup(ours, 'client_raw')} | "
            f"{slowdown(ours, 'floor', True)} |"
        )
    if "decode" in by:
        lines.append(
            f"\n`decode_matrix` alone: {by['decode']['rate'] / 1e6:.2f} M samples/s ({by['decode']['note']})."
        )
    return "\n".join(lines)


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, default=5000, help="series in total (default 5000)")
    parser.add_argument(
        "--hours", type=int, default=3, help="hourly partitions backfilled and read (default 3)"
    )
    parser.add_argument(
        "--reps", type=int, default=3, help="repetitions per method; the median is reported"
    )
    parser.add_argument(
        "--client-shards",
        type=int,
        default=4,
        help=f"prometheus-api-client reads series of this many of {SHARDS} shards (it is slow); per-sample rates compare",
    )
    parser.add_argument(
        "--methods",
        default=",".join(LABELS),
        help="comma-separated subset of: " + ", ".join(LABELS),
    )
    parser.add_argument(
        "--profile", action="store_true", help="also cProfile ours (bench/work/profile-ours.txt)"
    )
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        child_main(args.child)
        return
    sys.path.insert(0, str(REPO))  # tests.servers starts Prometheus as the test suite does
    from tests import servers

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally below stops Prometheus
    started = time.perf_counter()
    WORK.mkdir(parents=True, exist_ok=True)
    run_dir = WORK / f"run-{args.series}x{args.hours}h"
    if run_dir.exists():
        subprocess.run(["rm", "-rf", str(run_dir)], check=True)
    run_dir.mkdir()
    openmetrics = run_dir / "history.om"
    history = write_history(openmetrics, args.series, args.hours)
    backfill_s = backfill(openmetrics, run_dir / "tsdb")
    openmetrics.unlink()
    print(
        f"history: {args.series:,} series x {args.hours} h = {sum(history.samples_per_hour):,} samples "
        f"({history.bytes / 2**20:.0f} MiB OpenMetrics written in {history.seconds:.1f} s, "
        f"promtool backfill {backfill_s:.1f} s)",
        flush=True,
    )
    selectors = [f.metric for f in FAMILIES]
    shards = "|".join(str(s) for s in range(min(args.client_shards, SHARDS)))
    spec = {
        "work": str(run_dir),
        "hours": [h.isoformat() for h in history.hours],
        "samples_per_hour": history.samples_per_hour,
        "selectors": selectors,
        "client_selectors": selectors
        if args.client_shards >= SHARDS
        else [f'{s}{{shard=~"{shards}"}}' for s in selectors],
        "reps": 1,  # the parent runs rounds
    }
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    load_before = load_average()
    rows = []
    with servers.prometheus(run_dir / "tsdb") as url:
        spec["url"] = url
        from obs_pipelines.windows import TimeWindow

        for hour in history.hours:  # warm Prometheus's caches so no method pays for the first read
            fetch_bodies(spec, TimeWindow(hour, hour + timedelta(hours=1)), "gzip")
        # Rounds interleave the methods, so a burst of other work on the machine hits them alike.
        results: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}
        for round_number in range(args.reps):
            for method in methods:
                results[method].append(run_child(method, spec))
                run = results[method][-1]["runs"][0]
                print(
                    f"  round {round_number + 1}/{args.reps} {method}: {run['samples'] / run['seconds']:,.0f} samples/s",
                    flush=True,
                )
        if args.profile:
            run_child("profile", spec)
    rows = [summarize(method, results[method]) for method in methods]
    by = {r["method"]: r for r in rows}
    report = "\n\n".join(
        [
            f"Machine: {machine()}. Load average (1, 5, 15 min) before the methods ran: {load_before}; "
            f"after: {load_average()}.",
            f"History: {args.series:,} series x {args.hours} h, 240 samples per series per hour "
            f"({history.samples_per_hour[0]:,} samples per hourly partition); "
            f"prometheus-api-client rows read {min(args.client_shards, SHARDS)}/{SHARDS} of the series.",
            table(rows),
            ratios(by),
            f"Command: .venv/bin/python -m bench.ingest_bench {' '.join(argv if argv is not None else sys.argv[1:])}".rstrip()
            + f"  (total {time.perf_counter() - started:.0f} s)",
        ]
    )
    print("\n" + report)
    (WORK / "last-run.md").write_text(report + "\n")
    (WORK / "last-run.json").write_text(
        json.dumps({"rows": rows, "history": history.samples_per_hour}, indent=1)
    )


if __name__ == "__main__":
    main()
