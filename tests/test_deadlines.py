"""Every request has a total deadline: a server that trickles its answer one byte at a time fails
the read once the section's timeout has passed, and a terminated run exits at once instead of
waiting on a worker thread stuck in a read."""

import http.server
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from obs_pipelines.config import (
    AlertmanagerSourceConfig,
    ElasticsearchSourceConfig,
    JaegerSourceConfig,
    PrometheusSourceConfig,
    load_config,
)
from obs_pipelines.errors import SourceError
from obs_pipelines.operations.doctor import run_checks
from obs_pipelines.operations.notify import Alertmanager, NotifyError
from obs_pipelines.operations.pushgateway import PushError, ReportMetric, push
from obs_pipelines.sources.alertmanager import AlertmanagerAlerts
from obs_pipelines.sources.elasticsearch import ElasticsearchLogs
from obs_pipelines.sources.jaeger import JaegerSpans
from obs_pipelines.sources.prometheus import PrometheusSource
from obs_pipelines.windows import TimeWindow

pytestmark = pytest.mark.integration  # runs obs or duckdb in a subprocess: seconds per test

REPO = Path(__file__).resolve().parent.parent
HOUR = TimeWindow(datetime(2026, 11, 18, 10, tzinfo=UTC), datetime(2026, 11, 18, 11, tzinfo=UTC))
BYTE_EVERY = 0.2  # seconds: a read never waits long, so no socket timeout ever fires
LIMIT = 10.0  # a correctness bound for a 2 s deadline, not a benchmark


class Trickle:
    """An HTTP server that answers every request with 200 and then one body byte per
    ``BYTE_EVERY`` seconds for minutes; ``trickle_headers`` trickles the status line instead."""

    def __init__(self, trickle_headers: bool = False) -> None:
        self.requests = 0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                owner.requests += 1
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    if trickle_headers:
                        self._drip(b"HTTP/1.1 200 OK\r\nX-Slow: " + b"." * 3000)
                        return
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("X-Elastic-Product", "Elasticsearch")
                    self.send_header("Content-Length", "100000")
                    self.end_headers()
                    self._drip(b" " * 3000)
                except OSError:
                    pass  # the client gave up, as it should

            def _drip(self, data: bytes) -> None:
                for byte in data:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(BYTE_EVERY)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(params=["body", "headers"])
def trickle(request: pytest.FixtureRequest) -> Iterator[Trickle]:
    server = Trickle(trickle_headers=request.param == "headers")
    yield server
    server.close()


@pytest.fixture
def body_trickle() -> Iterator[Trickle]:
    server = Trickle()
    yield server
    server.close()


def failing_within(limit: float, run: Callable[[], object], error: type[Exception]) -> str:
    """Run ``run``, which must raise ``error`` within ``limit`` seconds; its one-line message."""
    started = time.monotonic()
    with pytest.raises(error) as raised:
        run()
    elapsed = time.monotonic() - started
    assert elapsed < limit, f"took {elapsed:.1f}s"
    message = str(raised.value)
    assert "\n" not in message
    return message


def test_a_trickling_prometheus_fails_at_the_timeout_retries_included(trickle: Trickle) -> None:
    # Two selectors: two requests in flight on worker threads; the second must not be waited for.
    source = PrometheusSource(
        PrometheusSourceConfig(url=trickle.url, selectors=["up", "node_load1"], timeout=2)
    )

    message = failing_within(LIMIT, lambda: list(source.read_metrics(HOUR)), SourceError)

    assert message == (
        f"Prometheus at {trickle.url} did not finish answering within 2s "
        "(sources.prometheus.timeout); check the server's health or raise the timeout "
        "(or lower sources.prometheus.max_request_window)"
    )


def test_a_trickling_jaeger_fails_at_the_timeout(trickle: Trickle) -> None:
    source = JaegerSpans(JaegerSourceConfig(url=trickle.url, timeout=2))

    message = failing_within(LIMIT, lambda: list(source.read(HOUR)), SourceError)

    assert message == (
        f"Jaeger at {trickle.url} did not finish answering /api/v3/services within 2s "
        "(sources.jaeger.timeout); check the server's health or raise the timeout "
        "(or lower sources.jaeger.search_depth)"
    )


def test_a_trickling_alertmanager_fails_at_the_timeout(trickle: Trickle) -> None:
    now = datetime.now(UTC)
    source = AlertmanagerAlerts(AlertmanagerSourceConfig(url=trickle.url, timeout=2))
    window = TimeWindow(now - timedelta(minutes=30), now + timedelta(minutes=30))

    message = failing_within(LIMIT, lambda: list(source.read(window)), SourceError)

    assert message == (
        f"Alertmanager at {trickle.url} did not finish answering within 2s "
        "(sources.alertmanager.timeout); check the server's health or raise the timeout"
    )


def test_a_trickling_elasticsearch_fails_at_the_timeout(trickle: Trickle) -> None:
    source = ElasticsearchLogs(ElasticsearchSourceConfig(url=trickle.url, timeout=2, retries=0))

    message = failing_within(LIMIT, lambda: list(source.read(HOUR)), SourceError)

    assert message == (
        f"Elasticsearch at {trickle.url} did not finish answering within 2s "
        "(sources.elasticsearch.timeout) when asked to read the cluster version, still after "
        "0 retries; check the cluster's health or raise the timeout "
        "(or lower sources.elasticsearch.page_size)"
    )


def test_notifications_and_pushes_to_a_trickling_server_fail_at_the_timeout(
    body_trickle: Trickle,
) -> None:
    url = body_trickle.url

    notify = failing_within(LIMIT, Alertmanager(url, timeout=2).ready, NotifyError)
    pushed = failing_within(
        LIMIT,
        lambda: push(url, [ReportMetric("obs_coverage_ratio", {"pillar": "all"}, 1.0)], timeout=2),
        PushError,
    )

    assert notify.startswith(f"Alertmanager at {url} did not finish answering within 2s")
    assert pushed.startswith(f"Pushgateway at {url} did not finish answering within 2s")


def test_obs_doctor_reports_a_trickling_server_as_slow(
    body_trickle: Trickle, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    config = load_config(write_config())
    started = time.monotonic()

    results = run_checks(
        config, dagster_home=str(tmp_path), pushgateway_url=body_trickle.url, timeout=2
    )

    assert time.monotonic() - started < LIMIT + 5
    (line,) = [r for r in results if r.check == "pushgateway"]
    assert not line.ok
    assert line.detail == (
        f"Pushgateway at {body_trickle.url}/-/ready did not finish answering within 2s; "
        "check the server's health"
    )


def test_a_terminated_materialize_exits_promptly_while_prometheus_trickles(
    body_trickle: Trickle, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    # A five-minute timeout: only the termination can end this run in time.
    path = write_config(
        sources={
            "metrics": "prometheus",
            "prometheus": {
                "url": body_trickle.url,
                "selectors": ["up", "node_load1"],
                "timeout": 300,
            },
        }
    )
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "obs_pipelines.cli",
            "--config",
            str(path),
            "materialize",
            "--from",
            "2026-11-18T10:00:00Z",
            "--to",
            "2026-11-18T11:00:00Z",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "DAGSTER_HOME": str(tmp_path / "home")},
        cwd=REPO,
    )
    try:
        deadline = time.monotonic() + 120
        while body_trickle.requests < 2 and run.poll() is None:
            assert time.monotonic() < deadline, "the run never asked Prometheus"
            time.sleep(0.1)
        assert run.poll() is None, run.stderr.read() if run.stderr else ""
        time.sleep(1)  # both requests are now stuck in their reads

        run.send_signal(signal.SIGTERM)
        terminated = time.monotonic()
        try:
            run.wait(timeout=LIMIT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"obs materialize still running {LIMIT:g}s after SIGTERM")
        assert time.monotonic() - terminated < LIMIT
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
