"""Known secret values, set in the environment as a deployment would, appear nowhere we print or
store: a real run's output and Dagster's storage, asset metadata, the catalog, the HTML report,
``obs doctor``, error messages (unreachable server, 401, a server echoing what it was sent) and
config errors. Prometheus really checks the basic-auth password (``--web.config.file``)."""

import base64
import http.server
import json
import logging
import os
import subprocess
import sys
import threading
import uuid
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from obs_pipelines.config import (
    AlertmanagerSourceConfig,
    ElasticsearchSourceConfig,
    JaegerSourceConfig,
    PrometheusSourceConfig,
    load_config,
)
from obs_pipelines.errors import ConfigError, ObsError
from obs_pipelines.lake.catalog import build_catalog
from obs_pipelines.operations.doctor import format_report, run_checks
from obs_pipelines.operations.notify import Alertmanager
from obs_pipelines.reporting.report_html import render_report
from obs_pipelines.sources.alertmanager import AlertmanagerAlerts
from obs_pipelines.sources.elasticsearch import ElasticsearchLogs
from obs_pipelines.sources.jaeger import JaegerSpans
from obs_pipelines.sources.prometheus import PrometheusSource
from obs_pipelines.windows import TimeWindow
from tests import servers
from tests.history import START, history

REPO = Path(__file__).resolve().parent.parent
USER = "obs-reader"
PASSWORD = f"prom-pw-{uuid.uuid4().hex}"
WRONG_PASSWORD = f"wrong-pw-{uuid.uuid4().hex}"
TOKEN = f"bearer-{uuid.uuid4().hex}"
API_KEY = base64.b64encode(f"key-id:{uuid.uuid4().hex}".encode()).decode()
S3_SECRET = f"s3-secret-{uuid.uuid4().hex}"
SELECTORS = ["http_requests_total", "queue_depth"]
HOUR = TimeWindow(START, START + timedelta(hours=1))


def basic_header(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


SECRETS = [
    PASSWORD,
    basic_header(USER, PASSWORD),
    WRONG_PASSWORD,
    basic_header(USER, WRONG_PASSWORD),
    TOKEN,
    API_KEY,
    S3_SECRET,
]


def leaks(text: str | bytes) -> list[str]:
    """The secrets found in ``text`` (as bytes, so binary files are scanned too)."""
    data = text.encode() if isinstance(text, str) else text
    return [s for s in SECRETS if s.encode() in data]


def leaks_in_files(root: Path) -> dict[str, list[str]]:
    return {
        str(path.relative_to(root)): found
        for path in sorted(root.rglob("*"))
        if path.is_file() and (found := leaks(path.read_bytes()))
    }


@pytest.fixture(autouse=True)
def secrets_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OBS_TEST_PROM_USER", USER)
    monkeypatch.setenv("OBS_TEST_PROM_PASSWORD", PASSWORD)
    monkeypatch.setenv("OBS_TEST_WRONG_PASSWORD", WRONG_PASSWORD)
    monkeypatch.setenv("OBS_TEST_TOKEN", TOKEN)
    monkeypatch.setenv("OBS_TEST_API_KEY", API_KEY)


@pytest.fixture(scope="module")
def guarded_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus, with history, that only answers ``USER``:``PASSWORD``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # bcrypt through libxcrypt; python-bcrypt and htpasswd are not installed

    folder = tmp_path_factory.mktemp("guarded")
    web = folder / "web.yml"
    hashed = crypt.crypt(PASSWORD, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))
    web.write_text(f"basic_auth_users:\n  {USER}: '{hashed}'\n")
    servers.backfill(folder / "data", history())
    with servers.prometheus(folder / "data", f"--web.config.file={web}") as url:
        yield url


def prometheus_section(url: str, password_env: str = "OBS_TEST_PROM_PASSWORD") -> dict[str, Any]:
    return {
        "metrics": "prometheus",
        "prometheus": {
            "url": url,
            "selectors": SELECTORS,
            "retries": 0,
            "auth": {"basic": {"username_env": "OBS_TEST_PROM_USER", "password_env": password_env}},
        },
    }


def obs(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "obs_pipelines.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "DAGSTER_HOME": str(home)},
        cwd=REPO,
        timeout=300,
    )


def test_a_real_run_keeps_every_secret_out_of_output_storage_catalog_and_report(
    guarded_prometheus: str,
    s3_lake: dict[str, Any],
    write_config: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("OBS_TEST_S3_SECRET", S3_SECRET)  # moto takes any key; ours is known
    caplog.set_level(logging.DEBUG)
    home = tmp_path / "dagster_home"
    path = write_config(sources=prometheus_section(guarded_prometheus), lake=s3_lake)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(path.read_text().replace("OBS_TEST_PROM_PASSWORD", "OBS_TEST_WRONG_PASSWORD"))
    span = [
        "--from",
        f"{START:%Y-%m-%dT%H:%M:%SZ}",
        "--to",
        f"{START + timedelta(hours=2):%Y-%m-%dT%H:%M:%SZ}",
    ]

    ran = obs("--config", str(path), "materialize", *span, home=home)
    refused = obs("--config", str(wrong), "materialize", *span, home=home)
    config = load_config(path)
    catalog = build_catalog(config)
    report = render_report(config, None, None, tmp_path / "report.html")
    doctor = format_report(run_checks(config, dagster_home=str(home)))

    assert ran.returncode == 0, ran.stderr
    assert refused.returncode == 1
    assert "refused the credentials (HTTP 401)" in refused.stderr
    from dagster import DagsterEventType, DagsterInstance

    with DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
        events = [event for run in runs for event in instance.all_logs(run.run_id)]
    materialized = [
        e for e in events if e.dagster_event_type == DagsterEventType.ASSET_MATERIALIZATION
    ]
    assert len(runs) == 2 and materialized, "one good run with materializations, one refused"
    assert [e for e in materialized if "metric_samples" in str(e.dagster_event.asset_key)]
    assert leaks("\n".join(repr(e) for e in events)) == []
    for output in (ran.stdout, ran.stderr, refused.stdout, refused.stderr, doctor, caplog.text):
        assert leaks(output) == []
    assert leaks_in_files(home) == {}
    assert any(home.rglob("*.db")), "Dagster's SQLite storage was scanned"
    assert leaks_in_files(catalog.parent) == {}
    assert leaks(report.read_bytes()) == []


class _Echo(http.server.BaseHTTPRequestHandler):
    """A careless server that repeats what it was sent: a 400 whose body quotes the request's
    headers and an internal URL with credentials in it."""

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = dict(self.headers.items())
        body = json.dumps(
            {
                "status": "error",
                "error": f"upstream http://admin:{PASSWORD}@10.0.0.9:9090 failed; sent {headers}",
            }
        ).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def echo_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def failures(url: str) -> list[str]:
    """The error message of every client of ours reading from ``url``, each with credentials."""
    basic = {
        "basic": {"username_env": "OBS_TEST_PROM_USER", "password_env": "OBS_TEST_PROM_PASSWORD"}
    }
    bearer = {"bearer_token_env": "OBS_TEST_TOKEN"}
    now = datetime.now(UTC)
    attempts: list[Callable[[], object]] = [
        lambda: list(
            PrometheusSource(
                PrometheusSourceConfig(url=url, selectors=["up"], retries=0, auth=basic)
            ).read_metrics(HOUR)
        ),
        lambda: list(JaegerSpans(JaegerSourceConfig(url=url, retries=0, auth=bearer)).read(HOUR)),
        lambda: list(
            AlertmanagerAlerts(AlertmanagerSourceConfig(url=url, retries=0, auth=basic)).read(
                TimeWindow(now - timedelta(minutes=5), now + timedelta(minutes=5))
            )
        ),
        lambda: list(
            ElasticsearchLogs(
                ElasticsearchSourceConfig(
                    url=url, retries=0, auth={"api_key_env": "OBS_TEST_API_KEY"}
                )
            ).read(HOUR)
        ),
        lambda: Alertmanager.from_config(AlertmanagerSourceConfig(url=url, auth=bearer)).active(
            {"obs_check": "x"}
        ),
    ]
    messages = []
    for attempt in attempts:
        with pytest.raises(ObsError) as raised:
            attempt()
        messages.append(str(raised.value))
    return messages


def test_error_messages_never_carry_credentials(
    echo_url: str, write_config: Callable[..., Path], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    closed = f"http://127.0.0.1:{servers.free_port()}"
    config = load_config(
        write_config(
            sources={
                **prometheus_section(echo_url),
                "traces": "jaeger",
                "jaeger": {"url": echo_url, "auth": {"bearer_token_env": "OBS_TEST_TOKEN"}},
                "logs": "elasticsearch",
                "elasticsearch": {"url": closed, "auth": {"api_key_env": "OBS_TEST_API_KEY"}},
            }
        )
    )

    echoed = failures(echo_url)
    unreachable = failures(closed)
    doctor = format_report(run_checks(config, timeout=2))

    assert all("refused" in m or "HTTP 400" in m for m in echoed), echoed
    assert all("unreachable" in m for m in unreachable), unreachable
    assert all("***" in m for m in echoed[:4]), "the sources quote the server, credentials masked"
    for message in [*echoed, *unreachable]:
        assert "\n" not in message
        assert leaks(message) == [], message
        assert "admin:" not in message
    assert "HTTP 400" in doctor and "unreachable" in doctor
    assert leaks(doctor) == [] and leaks(caplog.text) == []


@pytest.mark.parametrize(
    "url",
    [f"http://reader:{PASSWORD}@prometheus:9090", f"http://reader:{PASSWORD}@prometheus:99999"],
    ids=["credentials", "credentials-and-a-bad-port"],
)
def test_a_url_with_credentials_is_refused_without_repeating_them(
    url: str, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    path = write_config(
        sources={"metrics": "prometheus", "prometheus": {"url": url, "selectors": ["up"]}}
    )

    with pytest.raises(ConfigError) as refused:
        load_config(path)
    checked = obs("--config", str(path), "check-config", home=tmp_path / "home")

    assert leaks(str(refused.value)) == []
    assert checked.returncode == 2
    assert leaks(checked.stdout + checked.stderr) == []
    assert "sources.prometheus.url" in checked.stderr
