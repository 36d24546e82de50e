"""What a report query costs on an S3 lake: requests and seconds per ``obs query``.

Starts moto's S3 server on 127.0.0.1 (its request log kept), materializes ``--hours`` of the
built-in simulator into a lake on it with ``obs materialize`` (``--run-hours`` per run; 1 gives
each table a commit per hour, as the hourly schedule does), then runs each query as its own ``obs
query`` process, and ``obs report``, counts the requests the server logged while each ran and
compares the checkouts' output (the rows as CSV; the scorecard). ``--repo`` runs the commands
with another checkout's code (e.g. a ``git worktree`` of an older commit) on the same lake and
catalog. Binding a ``delta_scan`` reads the table's log (``_last_checkpoint``, a listing, the
checkpoint and commits since), so a report that reaches a dataset through many views pays that
at every reference unless the session pins the tables (:mod:`obs_pipelines.lake.snapshot`).
Request counts are what a real S3 would see; moto answers in well under a millisecond, so its
seconds are a floor unless ``--latency-ms`` delays each request as a real S3's round trip does.
Run from the repo root:

    .venv/bin/python -m bench.s3_session_bench [--hours 3] [--run-hours 3] [--latency-ms 0]
        [--repo PATH ...]
"""

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import yaml

from tests import servers
from tests.conftest import moto_client

ROOT = Path(__file__).resolve().parent.parent
QUERIES = (
    "SELECT count(*) FROM metric_samples",
    "SELECT count(*) FROM metrics",
    "SELECT * FROM slo_compliance",
    "SELECT * FROM alert_quality",
    "SELECT * FROM scorecard",
)
START = "2026-01-01T00:00:00Z"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=int, default=3)
    parser.add_argument(
        "--run-hours", type=int, default=3, help="hours per run (1: as the hourly schedule)"
    )
    parser.add_argument("--repo", type=Path, action="append", help="checkouts to compare")
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="delay each request by this much (a real S3's round trip) once the lake is written",
    )
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="s3-session-"))
    work.mkdir(parents=True, exist_ok=True)
    repos = args.repo or [ROOT]
    log_path = work / "moto.log"
    port = servers.free_port()
    command = [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1"]
    url = f"http://127.0.0.1:{port}"
    with (
        log_path.open("w") as log,
        servers.running(
            [*command, "-p", str(port)],
            lambda p: servers.wait_until_ready(f"{url}/moto-api/", p),
            stdout=log,
            stderr=log,
        ),
    ):
        env = _environment(work, url)
        started = time.perf_counter()
        for first in range(0, args.hours, args.run_hours):
            last = min(first + args.run_hours, args.hours)
            _obs(ROOT, env, "materialize", "--from", _hour(first), "--to", _hour(last))
        print(
            f"lake: {args.hours} simulated hours on moto S3, {args.run_hours} per run "
            f"({time.perf_counter() - started:.1f} s)"
        )
        if args.latency_ms:
            proxy = _delaying_proxy(port, args.latency_ms / 1000)
            config = Path(env["OBS_BENCH_CONFIG"])
            config.write_text(config.read_text().replace(url, f"http://127.0.0.1:{proxy}"))
            print(f"each request to S3 delayed {args.latency_ms:g} ms")
        print("| command | " + " | ".join(f"{r.name}: requests, s" for r in repos) + " | same |")
        print("|---|" + "---:|" * len(repos) + "---|")
        commands = [("query", "--format", "csv", sql) for sql in QUERIES]
        for command_args in [*commands, ("report", "--output", str(work / "report.html"))]:
            cells, outputs = [], set()
            for repo in repos:
                before = _lines(log_path)
                started = time.perf_counter()
                outputs.add(_obs(repo, env, *command_args))
                seconds = time.perf_counter() - started
                cells.append(f"{_lines(log_path) - before:,}, {seconds:.2f}")
            shown = (
                f'obs query "{command_args[-1]}"' if command_args[0] == "query" else "obs report"
            )
            same = "yes" if len(outputs) == 1 else "NO"
            print(f"| `{shown}` | " + " | ".join(cells) + f" | {same} |")


def _delaying_proxy(target: int, delay: float) -> int:
    """A TCP proxy to 127.0.0.1:``target`` on a free port that holds each chunk a client sends
    for ``delay`` seconds (one per request: they are small); returns its port."""
    listener = socket.create_server(("127.0.0.1", 0))

    def pipe(source: socket.socket, sink: socket.socket, wait: float) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                time.sleep(wait)
                sink.sendall(data)
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def accept() -> None:
        while True:
            client, _ = listener.accept()
            upstream = socket.create_connection(("127.0.0.1", target))
            for end in (client, upstream):
                end.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=pipe, args=(client, upstream, delay), daemon=True).start()
            threading.Thread(target=pipe, args=(upstream, client, 0.0), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return listener.getsockname()[1]


def _hour(n: int) -> str:
    moment = datetime.fromisoformat(START) + timedelta(hours=n)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _environment(work: Path, url: str) -> dict[str, str]:
    keys = {"OBS_BENCH_S3_KEY": "testing", "OBS_BENCH_S3_SECRET": "testing-secret"}
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing-secret")
    moto_client(url).create_bucket(Bucket="lake")
    config = {
        "ingest": {"start": START},
        "lake": {
            "root": "s3://lake/obs",
            "catalog": str(work / "obs.duckdb"),
            "s3": {
                "endpoint_url": url,
                "region": "us-east-1",
                "access_key_id_env": "OBS_BENCH_S3_KEY",
                "secret_access_key_env": "OBS_BENCH_S3_SECRET",
            },
        },
    }
    (work / "obs.yaml").write_text(yaml.safe_dump(config))
    (work / "dagster_home").mkdir(exist_ok=True)
    return {
        **os.environ,
        **keys,
        "DAGSTER_HOME": str(work / "dagster_home"),
        "OBS_BENCH_CONFIG": str(work / "obs.yaml"),
    }


def _obs(repo: Path, env: dict[str, str], *args: str) -> str:
    """Run ``obs`` from ``repo``; its standard output (a query's rows, the report's scorecard)."""
    done = subprocess.run(
        [sys.executable, "-m", "obs_pipelines.cli", "--config", env["OBS_BENCH_CONFIG"], *args],
        cwd=repo,
        env={**env, "PYTHONPATH": str(repo)},
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"obs {' '.join(args)} failed in {repo}:\n{done.stderr[-2000:]}")
    return done.stdout


def _lines(path: Path) -> int:
    with path.open("rb") as log:
        return sum(1 for _ in log)


if __name__ == "__main__":
    main()
