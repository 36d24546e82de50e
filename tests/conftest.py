"""Shared fixtures: configs, lakes and real servers on 127.0.0.1."""

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from obs_pipelines.config import ObsConfig, load_config
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
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing-key",
        aws_secret_access_key="testing-secret",
    )
    client.create_bucket(Bucket=name)
    return name


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


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
