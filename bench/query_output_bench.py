"""``obs query --format csv|json`` output speed: the writer of ``query.run`` today against the
one of ``OLD_COMMIT`` (lists, structs and maps made Python values one by one, then orjson).

The result is a DuckDB-generated relation shaped like ``SELECT * FROM metrics`` (metric, a
``labels`` map of six entries, service, job, instance, series_id, ts, value), ``--rows`` rows,
written by ``query.run`` to a file under ``bench/work/`` as ``obs query -o`` writes it (Arrow
batches of ``BATCH_ROWS``, the staged file renamed over). Each writer and format runs in its
own child process (its peak RSS is the child's), and the outputs' SHA-256 are compared. From the
repo root:

    .venv/bin/python -m bench.query_output_bench [--rows 2000000 --formats csv,json]
"""

import argparse
import hashlib
import importlib.util
import resource
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import duckdb

OLD_COMMIT = "1e12974"
COMMAND = (sys.executable, "-m", "bench.query_output_bench")
WORK = Path(__file__).resolve().parent / "work" / "query_output"
METRICS_LIKE = """
SELECT 'http_requests_total' AS metric,
       MAP {{'instance': 'host-' || (i % 50)::VARCHAR || ':9100', 'job': 'api',
             'service': 'waardhaven-api', 'code': (200 + i % 5)::VARCHAR, 'le': '0.5',
             'path': '/v1/items/' || (i % 97)::VARCHAR}} AS labels,
       'waardhaven-api' AS service, 'api' AS job, 'host-' || (i % 50)::VARCHAR AS instance,
       (i % 5000)::UBIGINT AS series_id,
       TIMESTAMP '2026-11-18 14:00:00' + to_microseconds(i * 15000) AS ts,
       (i % 1000) / 7.0 AS value
FROM range({rows}) t(i)
"""


def writer(which: str) -> ModuleType:
    """``query`` of this tree (``new``) or of ``OLD_COMMIT`` (``old``), as a module."""
    if which == "new":
        from obs_pipelines.reporting import query

        return query
    source = subprocess.run(
        ["git", "show", f"{OLD_COMMIT}:obs_pipelines/reporting/query.py"],
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    path = WORK / "old_query.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("old_query", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def one(which: str, fmt: str, rows: int) -> None:
    """In the child: write the relation once; print seconds, peak RSS and the output's hash."""
    query = writer(which)
    con = duckdb.connect()
    output = WORK / f"{which}.{fmt}"
    sql = METRICS_LIKE.format(rows=rows)
    started = time.perf_counter()
    query.run(con, duckdb.extract_statements(sql), fmt, output)
    seconds = time.perf_counter() - started
    digest = hashlib.sha256(output.read_bytes()).hexdigest()[:16]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{seconds:.2f} {peak:.0f} {output.stat().st_size} {digest}")
    output.unlink()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--formats", default="csv,json")
    parser.add_argument("--one", nargs=2, metavar=("WHICH", "FORMAT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    if args.one:
        one(*args.one, args.rows)
        return
    print(f"{args.rows:,} rows shaped like SELECT * FROM metrics")
    print("| format | writer | seconds | rows/s | peak RSS MB | bytes | sha256[:16] |")
    print("|---|---|---:|---:|---:|---:|---|")
    for fmt in args.formats.split(","):
        for which in ("old", "new"):
            done = subprocess.run(
                [*COMMAND, "--rows", str(args.rows), "--one", which, fmt],
                capture_output=True,
                text=True,
                check=True,
            )
            seconds, peak, size, digest = done.stdout.split()
            rate = args.rows / float(seconds)
            print(f"| {fmt} | {which} | {seconds} | {rate:,.0f} | {peak} | {size} | {digest} |")


if __name__ == "__main__":
    main()
