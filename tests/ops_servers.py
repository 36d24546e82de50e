"""Operations servers for tests: Alertmanager, Pushgateway, a scraping Prometheus, PostgreSQL and
Redis, all from Debian packages, on 127.0.0.1 with free ports, stopped firmly afterwards.

Each is a context manager yielding where to reach it; nothing is left running when it exits. They
start, wait and stop through ``tests.servers`` (one implementation of each).
"""

import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.servers import (
    free_port,
    prometheus,
    require,
    running,
    serving_http,
    wait_for_port,
    wait_until,
)

PG_BIN = Path("/usr/lib/postgresql/15/bin")


@contextmanager
def alertmanager(
    workdir: Path, webhook_url: str | None = None, config: str | None = None
) -> Iterator[str]:
    """A real Alertmanager; yields its base URL.

    Alerts route to ``webhook_url`` if given; ``config`` replaces the whole alertmanager.yml (for
    tests that need routes or inhibit rules of their own)."""
    if webhook_url is not None and config is not None:
        raise ValueError("give either webhook_url or config, not both")
    binary = require("prometheus-alertmanager", "prometheus-alertmanager")
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "alertmanager.yml"
    path.write_text(config if config is not None else _webhook_config(webhook_url))
    port = free_port()
    command = [
        binary,
        f"--config.file={path}",
        f"--storage.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    with serving_http(command, port) as url:
        yield url


def _webhook_config(webhook_url: str | None) -> str:
    """One receiver, ``hook``, posting to ``webhook_url`` (or nowhere), grouped within a second."""
    receiver = (
        f"  - name: hook\n    webhook_configs:\n      - url: {webhook_url}\n        send_resolved: true\n"
        if webhook_url
        else "  - name: hook\n"
    )
    return (
        "route:\n  receiver: hook\n  group_by: [alertname]\n  group_wait: 1s\n"
        "  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n" + receiver
    )


@contextmanager
def pushgateway(workdir: Path) -> Iterator[str]:
    """A real Prometheus Pushgateway; yields its base URL. Its metrics persist in ``workdir``:
    Debian's build defaults to one file in /var/lib/prometheus, which every gateway of every
    test would load and save (one test's pushes showing up in another's)."""
    binary = require("prometheus-pushgateway", "prometheus-pushgateway")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = [
        binary,
        f"--web.listen-address=127.0.0.1:{port}",
        f"--persistence.file={workdir / 'pushgateway.data'}",
    ]
    with serving_http(command, port) as url:
        yield url


@contextmanager
def prometheus_scraping(workdir: Path, target_url: str, interval: str = "1s") -> Iterator[str]:
    """A real Prometheus scraping ``target_url`` (a Pushgateway) with ``honor_labels: true``."""
    target = target_url.split("://", 1)[-1]
    scrape = {
        "job_name": "pushgateway",
        "honor_labels": True,
        "static_configs": [{"targets": [target]}],
    }
    with prometheus(
        workdir / "data",
        scrape_interval=interval,
        evaluation_interval=interval,
        scrape_configs=[scrape],
    ) as url:
        yield url


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    user: str
    database: str

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"


@contextmanager
def postgres(durable: bool = False) -> Iterator[Postgres]:
    """A throwaway PostgreSQL 15 cluster owned by the ``postgres`` user (the server refuses root).

    Its data and socket live in a private temporary folder (pytest's tmp_path is not readable by
    another user); authentication is ``trust`` on 127.0.0.1 only. fsync is off unless ``durable``
    (benchmarks: every commit then costs what it costs a production server). It is stopped with
    SIGINT, PostgreSQL's fast shutdown (SIGTERM would wait for every client to leave).
    """
    initdb = require("initdb", "postgresql", PG_BIN / "initdb")
    server = require("postgres", "postgresql", PG_BIN / "postgres")
    root = Path(tempfile.mkdtemp(prefix="obs-pg-"))
    shutil.chown(root, "postgres", "postgres")
    data = root / "data"
    subprocess.run(
        [initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"],
        check=True,
        capture_output=True,
        user="postgres",
    )
    port = free_port()
    command = [
        server,
        "-D",
        str(data),
        "-p",
        str(port),
        "-k",
        str(root),
        "-c",
        "listen_addresses=127.0.0.1",
    ]
    if not durable:
        command += ["-c", "fsync=off", "-c", "full_page_writes=off"]
    try:
        with running(
            command,
            lambda process: _wait_for_postgres(port, process),
            first=signal.SIGINT,
            grace=10,
            user="postgres",
        ):
            subprocess.run(
                [
                    str(PG_BIN / "createdb"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "-U",
                    "postgres",
                    "dagster",
                ],
                check=True,
                capture_output=True,
            )
            yield Postgres("127.0.0.1", port, "postgres", "dagster")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _wait_for_postgres(port: int, process: subprocess.Popen) -> None:
    isready = [str(PG_BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres"]
    wait_until(
        lambda: subprocess.run(isready, capture_output=True).returncode == 0,
        process,
        f"postgres on port {port}",
        interval=0.1,
    )


@contextmanager
def redis() -> Iterator[str]:
    """A real Redis without persistence; yields ``redis://127.0.0.1:PORT``."""
    binary = require("redis-server", "redis-server")
    port = free_port()
    command = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    with running(
        command, lambda process: wait_for_port(port, process, probe=b"PING\r\n", expect=b"+PONG")
    ):
        yield f"redis://127.0.0.1:{port}"


@contextmanager
def webhook_receiver() -> Iterator[tuple[str, list[dict]]]:
    """An HTTP endpoint collecting the JSON bodies Alertmanager's webhook receiver posts."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append(json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()
