"""Peak memory of ingesting ONE hour, each size in a process of its own.

Why: ingest promises to stream in bounded memory, so the peak RSS of one hour must not grow with
the hour at the rate its rows do. Each size runs the engine's own entry points
(``ingest_metrics_hour``, ``ingest_table_hour``) against real servers, in a fresh child process
whose high-water RSS (``VmHWM``) is printed beside its RSS after ingesting the (empty) hour before,
which loads every library and client the hour uses: the difference is what the hour cost.

- ``prometheus N``: N series x 240 samples in the hour (bench/ingest_bench.py's history, backfilled
  once into ``bench/work/memory/prom<N>``), served by a real Prometheus (tests/servers.py).
- ``elasticsearch N``: N log documents in one hour, held by tests/fake_elasticsearch.py in a
  server process of its own (so its memory is not counted).

Run from the repo root (the lake is written under ``bench/work/memory`` and removed first):

    .venv/bin/python -m bench.memory_bench prometheus 10000 40000
    .venv/bin/python -m bench.memory_bench elasticsearch 100000 500000
"""

import argparse
import datetime as dt
import json
import random
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from bench.ingest_bench import (
    FAMILIES,
    REPO,
    START,
    WORK,
    backfill,
    child_result,
    current_rss_mb,
    peak_rss_mb,
    write_history,
)

MEMORY_WORK = WORK / "memory"
ES_HOUR = datetime(2026, 11, 10, tzinfo=UTC)
CHILD_TIMEOUT_S = 1200


# --- children: one ingest of one hour each, in a fresh process -----------------------------------


def child_prometheus(url: str, lake: str) -> dict[str, object]:
    """Ingest the bench's hour from the Prometheus at ``url`` into a fresh lake."""
    from obs_pipelines.config import parse_config
    from obs_pipelines.lake import Lake
    from obs_pipelines.lake.ingest import ingest_metrics_hour
    from obs_pipelines.sources.prometheus import PrometheusSource
    from obs_pipelines.windows import TimeWindow

    config = parse_config(
        {
            "ingest": {"start": START.isoformat()},
            "lake": {"root": lake, "catalog": f"{lake}/obs.duckdb"},
            "sources": {
                "metrics": "prometheus",
                "prometheus": {
                    "url": url,
                    "selectors": [f.metric for f in FAMILIES],
                    "retry_backoff_seconds": 0,
                },
            },
        }
    )
    lake, source = Lake(config), PrometheusSource(config.sources.prometheus)
    ingest_metrics_hour(lake, source, TimeWindow(START - timedelta(hours=1), START))  # no samples
    floor = current_rss_mb()
    started = time.perf_counter()
    done = ingest_metrics_hour(lake, source, TimeWindow(START, START + timedelta(hours=1)))
    return {"rows": done.samples, "floor_mb": floor, "seconds": time.perf_counter() - started}


def child_elasticsearch(url: str, lake: str) -> dict[str, object]:
    """Ingest ``ES_HOUR`` of ``log_records`` from the (fake) Elasticsearch at ``url``."""
    from obs_pipelines.config import parse_config
    from obs_pipelines.lake import Lake
    from obs_pipelines.lake.ingest import ingest_table_hour
    from obs_pipelines.sources import table_source
    from obs_pipelines.windows import TimeWindow

    config = parse_config(
        {
            "ingest": {"start": "2026-11-01T00:00:00Z"},
            "lake": {"root": lake, "catalog": f"{lake}/obs.duckdb"},
            "sources": {"logs": "elasticsearch", "elasticsearch": {"url": url, "index": "logs-*"}},
        }
    )
    lake, source = Lake(config), table_source(config, "log_records")
    ingest_table_hour(lake, source, TimeWindow(ES_HOUR - timedelta(hours=1), ES_HOUR))  # no logs
    floor = current_rss_mb()
    started = time.perf_counter()
    done = ingest_table_hour(lake, source, TimeWindow(ES_HOUR, ES_HOUR + timedelta(hours=1)))
    return {"rows": done.rows, "floor_mb": floor, "seconds": time.perf_counter() - started}


def es_server(documents: int) -> None:
    """Serve ``documents`` log documents spread over ``ES_HOUR`` until stdin closes."""
    from tests.fake_elasticsearch import FakeElasticsearch, serve

    cluster = FakeElasticsearch(major=9)
    rng = random.Random(1)
    base_ns = int(ES_HOUR.timestamp()) * 10**9
    for i in range(documents):
        seconds, nanos = divmod(base_ns + i * 3_600_000_000_000 // documents, 10**9)
        stamp = dt.datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        doc = {
            "@timestamp": f"{stamp}.{nanos:09d}Z",
            "service": {"name": f"svc-{i % 20}"},
            "log": {"level": rng.choice(["INFO", "WARN", "ERROR"])},
            "message": f"GET /api/v1/orders/{i} completed in {rng.randint(1, 900)} ms "
            f"status=200 user=u{i % 997}",
            "trace": {"id": f"{rng.getrandbits(128):032x}"},
            "span": {"id": f"{rng.getrandbits(64):016x}"},
            "host": {"name": f"node-{i % 50}"},
            "http": {"method": "GET", "status_code": 200},
            "labels": {"region": "eu-west-1"},
        }
        cluster._index_doc("logs-2026.11.10", f"d{i}", orjson.dumps(doc))
    with serve(cluster) as served:
        print(served.url, flush=True)
        sys.stdin.read()


def child_main(kind: str, url: str, lake: str) -> None:
    result = {"prometheus": child_prometheus, "elasticsearch": child_elasticsearch}[kind](url, lake)
    result["peak_mb"] = peak_rss_mb()
    print(json.dumps(result))


# --- parent --------------------------------------------------------------------------------------


def run_child(kind: str, url: str, lake: Path) -> dict[str, object]:
    shutil.rmtree(lake, ignore_errors=True)
    args = ["bench.memory_bench", "--child", kind, url, str(lake)]
    return child_result(args, f"{kind} ingest", CHILD_TIMEOUT_S)


def prometheus_tsdb(series: int) -> tuple[Path, int]:
    """The backfilled TSDB of ``series`` x one hour (made once) and its samples."""
    work = MEMORY_WORK / f"prom{series}"
    tsdb, count = work / "tsdb", work / "samples"
    if not count.exists():
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        history = write_history(work / "history.om", series, 1)
        backfill(work / "history.om", tsdb)
        (work / "history.om").unlink()
        count.write_text(str(history.samples_per_hour[0]))
    return tsdb, int(count.read_text())


def measure_prometheus(series: int) -> dict[str, object]:
    from tests import servers

    tsdb, samples = prometheus_tsdb(series)
    with servers.prometheus(tsdb) as url:
        result = run_child("prometheus", url, MEMORY_WORK / f"lake-prom{series}")
    if result["rows"] != samples:
        raise SystemExit(f"ingested {result['rows']} samples where the TSDB holds {samples}")
    return result


def measure_elasticsearch(documents: int) -> dict[str, object]:
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.memory_bench", "--es-server", str(documents)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert server.stdout is not None and server.stdin is not None
        url = server.stdout.readline().strip()
        if not url:
            raise SystemExit("the fake Elasticsearch server did not start")
        result = run_child("elasticsearch", url, MEMORY_WORK / f"lake-es{documents}")
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(timeout=60)
    if result["rows"] != documents:
        raise SystemExit(f"ingested {result['rows']} documents of {documents}")
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=3, metavar=("KIND", "URL", "LAKE"), help=argparse.SUPPRESS)
    parser.add_argument("--es-server", type=int, help=argparse.SUPPRESS)
    parser.add_argument("source", nargs="?", choices=["prometheus", "elasticsearch"])
    parser.add_argument("sizes", nargs="*", type=int, help="series (prometheus) or documents")
    args = parser.parse_args(argv)
    if args.child:
        child_main(*args.child)
        return
    if args.es_server:
        es_server(args.es_server)
        return
    if not args.source or not args.sizes:
        parser.error("give a source and at least one size")
    measure = {"prometheus": measure_prometheus, "elasticsearch": measure_elasticsearch}
    unit = {"prometheus": "samples", "elasticsearch": "documents"}[args.source]
    print(f"| {unit} | peak RSS | RSS after an empty hour | hour's share | per row | ingest |")
    print("|---:|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        r = measure[args.source](size)
        rows, peak, floor = int(r["rows"]), float(r["peak_mb"]), float(r["floor_mb"])
        per_row = (peak - floor) * 2**20 / rows if rows else 0.0
        print(
            f"| {rows:,} | {peak:,.0f} MiB | {floor:,.0f} MiB | {peak - floor:,.0f} MiB "
            f"| {per_row:,.0f} B | {float(r['seconds']):.1f} s |",
            flush=True,
        )


if __name__ == "__main__":
    main()
