"""The Dagster UI: ``dagster-webserver`` on ``workspace.yaml`` serves every asset, asset check,
schedule and sensor of the definitions over GraphQL, and is stopped firmly afterwards."""

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from obs_pipelines.definitions import build_definitions
from tests import servers
from tests.servers import free_port

REPO = Path(__file__).resolve().parents[1]
INVENTORY = """
{
  repositoriesOrError {
    __typename
    ... on RepositoryConnection {
      nodes {
        name
        assetNodes {
          assetKey { path }
          assetChecksOrError { ... on AssetChecks { checks { name } } }
        }
        schedules { name cronSchedule }
        sensors { name }
      }
    }
  }
}
"""
LOCATION_STATUS = """
{ workspaceOrError { ... on Workspace { locationEntries {
    loadStatus
    locationOrLoadError { __typename ... on PythonError { message } }
} } } }
"""


@pytest.fixture(scope="module")
def webserver(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, subprocess.Popen, Path]]:
    work = tmp_path_factory.mktemp("ui")
    config_path = work / "obs.yaml"
    config_path.write_text(
        f"ingest: {{start: 2026-01-01T00:00:00Z}}\nlake: {{root: {work / 'lake'}, catalog: {work / 'lake' / 'obs.duckdb'}}}\n"
        "freshness: {metric_samples: 2h, metric_series: 2h}\n"
    )
    home = work / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = work / "webserver.log"
    command = [
        str(Path(sys.executable).with_name("dagster-webserver")),
        "-w",
        "workspace.yaml",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
    ]
    with servers.running(
        command,
        lambda process: _wait_for_location(url, process, log),
        cwd=REPO,
        env={**os.environ, "OBS_CONFIG": str(config_path), "DAGSTER_HOME": str(home)},
        stderr=log.open("w"),
    ) as process:
        yield url, process, config_path


def _graphql(url: str, query: str) -> dict:
    response = requests.post(f"{url}/graphql", json={"query": query}, timeout=30)
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


def _wait_for_location(url: str, process: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dagster-webserver exited: {log.read_text()[-2000:]}")
        try:
            entries = _graphql(url, LOCATION_STATUS)["workspaceOrError"]["locationEntries"]
        except requests.RequestException:
            entries = []
        if entries and all(e["loadStatus"] == "LOADED" for e in entries):
            errors = [
                e["locationOrLoadError"]
                for e in entries
                if e["locationOrLoadError"]["__typename"] == "PythonError"
            ]
            if errors:
                raise RuntimeError(f"code location failed to load: {errors[0]['message'][:2000]}")
            return
        time.sleep(0.5)
    raise RuntimeError(f"dagster-webserver at {url} did not load the workspace in {timeout}s")


def test_ui_serves_every_asset_check_schedule_and_sensor(
    webserver: tuple[str, subprocess.Popen, Path],
) -> None:
    url, _, config_path = webserver
    defs = build_definitions(str(config_path))
    graph = defs.resolve_asset_graph()
    repository = defs.get_repository_def()

    data = _graphql(url, INVENTORY)["repositoriesOrError"]
    [repo] = data["nodes"]

    served_assets = {"/".join(n["assetKey"]["path"]) for n in repo["assetNodes"]}
    served_checks = {
        ("/".join(n["assetKey"]["path"]), c["name"])
        for n in repo["assetNodes"]
        for c in (n["assetChecksOrError"].get("checks") or [])
    }
    assert served_assets == {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert served_checks == {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    assert {s["name"] for s in repo["schedules"]} == {s.name for s in repository.schedule_defs}
    assert {s["name"] for s in repo["sensors"]} == {s.name for s in repository.sensor_defs}
    assert {"metric_samples", "metric_series"} <= served_assets
    assert ("metric_samples", "expectations") in served_checks
    assert repo["schedules"], "the definitions have schedules; the UI must show them"


def test_webserver_stops_firmly(webserver: tuple[str, subprocess.Popen, Path]) -> None:
    url, process, _ = webserver
    servers.stop(process, grace=5)
    assert process.poll() is not None
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/server_info", timeout=2)
