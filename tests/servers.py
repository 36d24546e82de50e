"""Real servers for tests, started on 127.0.0.1 and stopped firmly afterwards.

Prometheus comes from Debian (the Makefile installs it); history is backfilled with promtool, as
an operator would. S3 is moto's server over real HTTP.

Every server here and in ``tests/ops_servers.py`` starts through ``running`` (its own process
group, so ``stop`` reaches whatever it forks) and waits with ``wait_until`` (fails fast when the
process exits instead of waiting out the timeout).
"""

import math
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
import yaml


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(
    ready: Callable[[], bool],
    process: subprocess.Popen,
    what: str,
    timeout: float = 30.0,
    interval: float = 0.05,
) -> None:
    """Poll ``ready`` until it is true; raise at once if ``process`` dies (its exit code says more
    than a timeout would), or after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        if ready():
            return
        time.sleep(interval)
    raise RuntimeError(f"{what} not ready after {timeout}s")


def wait_until_ready(url: str, process: subprocess.Popen, timeout: float = 30.0) -> None:
    """Wait until ``url`` answers with anything but a server error."""
    wait_until(lambda: _answers(url), process, f"server for {url}", timeout)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code < 500
    except requests.RequestException:
        return False


def wait_for_port(
    port: int,
    process: subprocess.Popen,
    probe: bytes | None = None,
    expect: bytes = b"",
    timeout: float = 30.0,
) -> None:
    """Wait until 127.0.0.1:``port`` accepts a connection (and, with ``probe``, answers it with
    bytes starting with ``expect``): for servers that do not speak HTTP."""
    wait_until(
        lambda: _port_answers(port, probe, expect), process, f"server on port {port}", timeout
    )


def _port_answers(port: int, probe: bytes | None, expect: bytes) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            if probe is None:
                return True
            sock.sendall(probe)
            return sock.recv(64).startswith(expect)
    except OSError:
        return False


def stop(process: subprocess.Popen, first: int = signal.SIGTERM, grace: float = 5.0) -> None:
    """Send ``first`` to the whole process group, then SIGKILL what is left of the group after
    ``grace`` seconds (dagster dev and the webserver can ignore SIGTERM for a long while; children
    that outlive their parent are killed too)."""
    if process.poll() is not None:
        return
    try:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, first)
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


@contextmanager
def running(
    command: Sequence[str],
    ready: Callable[[subprocess.Popen], None],
    first: int = signal.SIGTERM,
    grace: float = 5.0,
    **popen: Any,
) -> Iterator[subprocess.Popen]:
    """Start ``command`` in its own process group (output discarded unless ``popen`` says
    otherwise), wait for ``ready(process)``, and ``stop`` it on exit whatever happens."""
    options: dict[str, Any] = {
        "stdout": subprocess.DEVNULL,
        "stderr": subprocess.DEVNULL,
        **popen,
        "start_new_session": True,
    }
    process = subprocess.Popen(list(command), **options)
    try:
        ready(process)
        yield process
    finally:
        stop(process, first, grace)


@contextmanager
def serving_http(command: Sequence[str], port: int, ready_path: str = "/-/ready") -> Iterator[str]:
    """``running`` for an HTTP server listening on 127.0.0.1:``port``; yields its base URL."""
    url = f"http://127.0.0.1:{port}"
    with running(command, lambda process: wait_until_ready(f"{url}{ready_path}", process)):
        yield url


@contextmanager
def serving_in_process(
    handler: type[BaseHTTPRequestHandler], tls: tuple[str, str] | None = None
) -> Iterator[str]:
    """Serve ``handler`` on a free 127.0.0.1 port from a thread until the block ends, and yield
    its base URL; ``tls`` (certificate file, key file) makes it HTTPS only. The wire-faithful
    fakes of servers that cannot run here use it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    scheme = "http"
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def require(binary: str, package: str, fallback: Path | None = None) -> str:
    """The path of ``binary`` (or ``fallback`` if it exists), or a message saying what to install."""
    path = shutil.which(binary) or (str(fallback) if fallback and fallback.exists() else None)
    if path is None:
        raise RuntimeError(
            f"{binary} is not installed; run `make servers` (Debian package {package})"
        )
    return path


@dataclass(frozen=True)
class Sample:
    ts_ms: int
    value: float


@dataclass(frozen=True)
class Series:
    metric: str
    labels: dict[str, str]
    samples: list[Sample]


def openmetrics_text(series: Iterable[Series]) -> str:
    """OpenMetrics exposition with explicit timestamps (in seconds, as promtool requires)."""
    lines: list[str] = []
    by_metric: dict[str, list[Series]] = {}
    for s in series:
        by_metric.setdefault(s.metric, []).append(s)
    for metric, members in by_metric.items():
        lines.append(f"# TYPE {metric} gauge")
        for s in members:
            labels = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(s.labels.items()))
            head = f"{metric}{{{labels}}}" if labels else metric
            lines += [
                f"{head} {_format_value(x.value)} {x.ts_ms // 1000}.{x.ts_ms % 1000:03d}"
                for x in s.samples
            ]
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def backfill(data_dir: Path, series: Iterable[Series]) -> None:
    """Write ``series`` into a Prometheus TSDB directory with promtool."""
    data_dir.mkdir(parents=True, exist_ok=True)
    source = data_dir.parent / f"{data_dir.name}.om"
    source.write_text(openmetrics_text(series))
    subprocess.run(
        [
            "promtool",
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            "--max-block-duration=48h",
            str(source),
            str(data_dir),
        ],
        check=True,
        capture_output=True,
    )


@contextmanager
def prometheus(
    data_dir: Path,
    *extra_args: str,
    scrape_interval: str = "15s",
    evaluation_interval: str | None = None,
    rule_files: Iterable[str | Path] = (),
    scrape_configs: Sequence[dict[str, Any]] = (),
    config: Mapping[str, Any] | None = None,
) -> Iterator[str]:
    """Run a real Prometheus over ``data_dir``; yields its base URL.

    ``rule_files`` (globs allowed) are loaded and evaluated every ``evaluation_interval``;
    ``scrape_configs`` are Prometheus' own ``scrape_configs`` entries; ``config`` adds further
    top-level sections of prometheus.yml (``alerting``...), its ``global`` keys to the others."""
    binary = require("prometheus", "prometheus")
    config = dict(config or {})
    settings: dict[str, Any] = {
        "global": {"scrape_interval": scrape_interval, **config.pop("global", {})},
        **config,
    }
    if evaluation_interval is not None:
        settings["global"]["evaluation_interval"] = evaluation_interval
    if rule_files := [str(path) for path in rule_files]:
        settings["rule_files"] = rule_files
    if scrape_configs:
        settings["scrape_configs"] = list(scrape_configs)
    config_file = data_dir.parent / f"{data_dir.name}-prometheus.yml"
    config_file.parent.mkdir(parents=True, exist_ok=True)
    config_file.write_text(yaml.safe_dump(settings, sort_keys=False))
    port = free_port()
    command = [
        binary,
        f"--config.file={config_file}",
        f"--storage.tsdb.path={data_dir}",
        "--storage.tsdb.retention.time=3650d",
        f"--web.listen-address=127.0.0.1:{port}",
        *extra_args,
    ]
    with serving_http(command, port) as url:
        yield url


@contextmanager
def moto_s3() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1; yields the endpoint URL."""
    port = free_port()
    binary = Path(sys.executable).with_name("moto_server")
    command = [str(binary), "-H", "127.0.0.1", "-p", str(port)]
    with serving_http(command, port, ready_path="/moto-api/") as url:
        yield url


def self_signed_certificate(folder: Path) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 in ``folder``: (certificate file, key file)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return str(cert), str(key)
