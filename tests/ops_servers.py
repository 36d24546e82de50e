"""Operations servers for tests: Alertmanager, Pushgateway, a scraping Prometheus, PostgreSQL and
Redis, all from Debian packages, on 127.0.0.1 with free ports, stopped firmly afterwards.

Each is a context manager yielding where to reach it; nothing is left running when it exits.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from tests.servers import free_port, stop, wait_until_ready

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _require(binary: str, package: str) -> str:
    path = shutil.which(binary) or (str(PG_BIN / binary) if (PG_BIN / binary).exists() else None)
    if path is None:
        raise RuntimeError(
            f"{binary} is not installed; run `make servers` (Debian package {package})"
        )
    return path


@contextmanager
def alertmanager(workdir: Path, webhook_url: str | None = None) -> Iterator[str]:
    """A real Alertmanager; yields its base URL. Alerts route to ``webhook_url`` if given."""
    binary = _require("prometheus-alertmanager", "prometheus-alertmanager")
    workdir.mkdir(parents=True, exist_ok=True)
    receiver = (
        f"  - name: hook\n    webhook_configs:\n      - url: {webhook_url}\n        send_resolved: true\n"
        if webhook_url
        else "  - name: hook\n"
    )
    config = workdir / "alertmanager.yml"
    config.write_text(
        "route:\n  receiver: hook\n  group_by: [alertname]\n  group_wait: 1s\n"
        "  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n" + receiver
    )
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(f"{url}/-/ready", process)
        yield url
    finally:
        stop(process)


@contextmanager
def pushgateway(workdir: Path) -> Iterator[str]:
    """A real Prometheus Pushgateway; yields its base URL."""
    binary = _require("prometheus-pushgateway", "prometheus-pushgateway")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    process = subprocess.Popen(
        [binary, f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(f"{url}/-/ready", process)
        yield url
    finally:
        stop(process)


@contextmanager
def prometheus_scraping(workdir: Path, target_url: str, interval: str = "1s") -> Iterator[str]:
    """A real Prometheus scraping ``target_url`` (a Pushgateway) with ``honor_labels: true``."""
    binary = _require("prometheus", "prometheus")
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    target = target_url.split("://", 1)[-1]
    config.write_text(
        f"global:\n  scrape_interval: {interval}\n  evaluation_interval: {interval}\n"
        "scrape_configs:\n  - job_name: pushgateway\n    honor_labels: true\n"
        f"    static_configs:\n      - targets: ['{target}']\n"
    )
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(f"{url}/-/ready", process)
        yield url
    finally:
        stop(process)


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
def postgres() -> Iterator[Postgres]:
    """A throwaway PostgreSQL 15 cluster owned by the ``postgres`` user (the server refuses root).

    Its data and socket live in a private temporary folder (pytest's tmp_path is not readable by
    another user); authentication is ``trust`` on 127.0.0.1 only; fsync is off.
    """
    initdb = _require("initdb", "postgresql")
    server = _require("postgres", "postgresql")
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
    process = subprocess.Popen(
        [
            server,
            "-D",
            str(data),
            "-p",
            str(port),
            "-k",
            str(root),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "full_page_writes=off",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        user="postgres",
    )
    try:
        _wait_for_postgres(port, process)
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
        _stop_postgres(process)
        shutil.rmtree(root, ignore_errors=True)


def _wait_for_postgres(port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"postgres on port {port} exited with {process.returncode}")
        ready = subprocess.run(
            [str(PG_BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres"],
            capture_output=True,
        )
        if ready.returncode == 0:
            return
        time.sleep(0.1)
    raise RuntimeError(f"postgres on port {port} not ready after {timeout}s")


def _stop_postgres(process: subprocess.Popen) -> None:
    """SIGINT is PostgreSQL's fast shutdown (SIGTERM would wait for every client to leave)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


@contextmanager
def redis() -> Iterator[str]:
    """A real Redis without persistence; yields ``redis://127.0.0.1:PORT``."""
    binary = _require("redis-server", "redis-server")
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_for_port(port, process, probe=b"PING\r\n", expect=b"+PONG")
        yield f"redis://127.0.0.1:{port}"
    finally:
        stop(process)


def _wait_for_port(
    port: int,
    process: subprocess.Popen,
    probe: bytes | None = None,
    expect: bytes = b"",
    timeout: float = 30.0,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                if probe is None:
                    return
                sock.sendall(probe)
                if sock.recv(64).startswith(expect):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"server on port {port} not ready after {timeout}s")


def stop_process_group(process: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM the whole group, then SIGKILL what is left after ``grace`` seconds (dagster dev
    and the webserver can ignore SIGTERM for a long while)."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


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
