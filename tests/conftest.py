"""Shared fixtures: configs, lakes and real servers on 127.0.0.1; the unit/integration split.

A test that starts a real server (or builds a wheel, runs the CLI in a subprocess, ...) is an
*integration* test: `make test` runs everything, `pytest -m "not integration"` only the fast unit
tests. Tests get the marker from the fixtures they use (:data:`SERVER_FIXTURES`), from the
`prometheus` and `s3` markers, or from their module's `pytestmark`; and a test that starts a
server through ``tests.servers.running`` without it fails, so a new one cannot be forgotten.
"""

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from obs_pipelines.config import ObsConfig, load_config
from obs_pipelines.windows import TimeWindow
from tests import ops_servers, servers


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """Write an obs.yaml under tmp_path (lake and catalog inside it) and return its path."""

    def write(**sections: Any) -> Path:
        body: dict[str, Any] = {
            "ingest": {"start": "2026-01-01T00:00:00Z"},
            "lake": {
                "root": str(tmp_path / "lake"),
                "catalog": str(tmp_path / "lake" / "obs.duckdb"),
            },
        }
        for key, value in sections.items():
            body[key] = {**body.get(key, {}), **value} if isinstance(value, dict) else value
        path = tmp_path / "obs.yaml"
        path.write_text(yaml.safe_dump(body))
        return path

    return write


@pytest.fixture
def simulated_config(write_config: Callable[..., Path]) -> ObsConfig:
    return load_config(write_config())


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    with servers.moto_s3() as url:
        yield url


@pytest.fixture
def s3_bucket(
    s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> str:
    """A fresh bucket on the moto server, with credentials in the environment."""
    monkeypatch.setenv("OBS_TEST_S3_KEY", "testing-key")
    monkeypatch.setenv("OBS_TEST_S3_SECRET", "testing-secret")
    name = f"lake-{abs(hash(request.node.nodeid)) % 10**10}"
    moto_client(s3_endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_client(s3_endpoint: str) -> Any:
    """A boto3 S3 client of the moto server, with the credentials of ``s3_bucket``."""
    return moto_client(s3_endpoint)


def moto_client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing-key",
        aws_secret_access_key="testing-secret",
    )


@pytest.fixture
def s3_lake(s3_endpoint: str, s3_bucket: str, tmp_path: Path) -> dict[str, Any]:
    """The ``lake`` config section for a lake on the moto server."""
    return {
        "root": f"s3://{s3_bucket}/obs",
        "catalog": str(tmp_path / "obs.duckdb"),
        "s3": {
            "endpoint_url": s3_endpoint,
            "region": "us-east-1",
            "access_key_id_env": "OBS_TEST_S3_KEY",
            "secret_access_key_env": "OBS_TEST_S3_SECRET",
        },
    }


@pytest.fixture(scope="module")
def webhook() -> Iterator[tuple[str, list[dict]]]:
    """A webhook receiver: its URL and the JSON bodies posted to it (one list per test module)."""
    with ops_servers.webhook_receiver() as hook:
        yield hook


@pytest.fixture(scope="module")
def webhook_alertmanager(
    tmp_path_factory: pytest.TempPathFactory, webhook: tuple[str, list[dict]]
) -> Iterator[str]:
    """A real Alertmanager routing every alert to ``webhook``; yields its base URL."""
    with ops_servers.alertmanager(tmp_path_factory.mktemp("am"), webhook_url=webhook[0]) as url:
        yield url


# Fixtures that start a real server or browser (directly or through the fixtures they request): any test
# using one, even through ``request.getfixturevalue`` with the name as a parameter, is marked
# integration. A new server fixture goes here (the guard below names it if it is missing).
SERVER_FIXTURES = frozenset(
    {
        "s3_endpoint",
        "s3_config",
        "webhook_alertmanager",
        "alertmanager_url",
        "prometheus_url",
        "lag_prometheus",
        "guarded_prometheus",
        "stack",
        "pg",
        "celery_setup",
        "webserver",
        "rendered",
    }
)
SERVER_MARKERS = ("prometheus", "s3")
_starting_allowed = {"now": True}
_running = servers.running


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs a server as integration (see the module docstring)."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        params = [v for v in callspec.params.values() if isinstance(v, str)] if callspec else []
        needs_server = not SERVER_FIXTURES.isdisjoint([*getattr(item, "fixturenames", ()), *params])
        if needs_server or any(item.get_closest_marker(m) for m in SERVER_MARKERS):
            item.add_marker(pytest.mark.integration)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    _starting_allowed["now"] = item.get_closest_marker("integration") is not None


@contextmanager
def _guarded_running(command: Sequence[str], *args: Any, **kwargs: Any) -> Iterator[Any]:
    """``servers.running``, refused to a test not marked integration (it would slow the unit run
    down unseen)."""
    if not _starting_allowed["now"]:
        raise RuntimeError(
            f"this test starts {Path(command[0]).name} but is not marked integration: add its "
            "server fixture to SERVER_FIXTURES in tests/conftest.py, or "
            "`pytestmark = pytest.mark.integration` to its module"
        )
    with _running(command, *args, **kwargs) as process:
        yield process


servers.running = _guarded_running
ops_servers.running = _guarded_running


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")


# Root writes anywhere: without these capabilities it is held to the folders' modes like anyone.
AS_ANY_USER = (
    [
        "setpriv",
        "--bounding-set=-dac_override,-dac_read_search",
        "--inh-caps=-dac_override,-dac_read_search",
    ]
    if os.geteuid() == 0
    else []
)


def one_hour_lake(folder: Path, hour: TimeWindow) -> Path:
    """A local lake under ``folder`` with ``hour`` of simulated metrics and its catalog;
    returns the config path."""
    from obs_pipelines.lake import Lake
    from obs_pipelines.lake.catalog import build_catalog
    from obs_pipelines.lake.ingest import ingest_metrics_hour
    from obs_pipelines.sources import metric_source

    path = folder / "obs.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "ingest": {"start": "2026-01-01T00:00:00Z"},
                "lake": {"root": str(folder / "lake"), "catalog": str(folder / "obs.duckdb")},
            }
        )
    )
    config = load_config(path)
    ingest_metrics_hour(Lake(config), metric_source(config), hour)
    build_catalog(config)
    return path
