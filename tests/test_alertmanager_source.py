"""Alertmanager snapshots against a real Alertmanager (Debian's prometheus-alertmanager)."""

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import requests

from obs_pipelines.config import AlertmanagerSourceConfig
from obs_pipelines.errors import SourceError
from obs_pipelines.fingerprint import fingerprint, fingerprint_int
from obs_pipelines.sources.alertmanager import AlertmanagerAlerts
from obs_pipelines.windows import TimeWindow
from tests import ops_servers, servers

AM_CONFIG = """
route:
  receiver: team-chat
  group_wait: 1s
  routes:
    - matchers: ['severity="critical"']
      receiver: oncall-pager
receivers:
  - name: team-chat
  - name: oncall-pager
inhibit_rules:
  - source_matchers: ['alertname="DatacenterDown"']
    target_matchers: ['severity="warning"']
    equal: [datacenter]
"""


@pytest.fixture
def alertmanager_url(tmp_path: Path) -> Iterator[str]:
    with ops_servers.alertmanager(tmp_path / "alertmanager", config=AM_CONFIG) as url:
        yield url


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def post_alerts(url: str, alerts: list[dict[str, Any]]) -> None:
    requests.post(f"{url}/api/v2/alerts", json=alerts, timeout=5).raise_for_status()


def silence(url: str, alertname: str) -> str:
    now = datetime.now(UTC)
    body = {
        "matchers": [{"name": "alertname", "value": alertname, "isRegex": False, "isEqual": True}],
        "startsAt": rfc3339(now - timedelta(minutes=1)),
        "endsAt": rfc3339(now + timedelta(hours=1)),
        "createdBy": "test",
        "comment": "maintenance",
    }
    response = requests.post(f"{url}/api/v2/silences", json=body, timeout=5)
    response.raise_for_status()
    return response.json()["silenceID"]


def snapshot(source: AlertmanagerAlerts) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    window = TimeWindow(now - timedelta(minutes=30), now + timedelta(minutes=30))
    return pa.concat_tables(list(source.read(window))).to_pylist()


def wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


def test_fingerprints_match_prometheus_commons_reference_values() -> None:
    # Values from prometheus/common model/signature_test.go (labelSetToFingerprint).
    assert fingerprint_int({}) == 14695981039346656037
    assert fingerprint_int({"name": "garland, briggs", "fear": "love is not enough"}) == (
        5799056148416392346
    )
    assert fingerprint_int({"first-label": "first-label-value"}) == 5146282821936882169


def test_posted_alerts_appear_with_state_silences_inhibitions_and_receivers(
    alertmanager_url: str,
) -> None:
    started = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    api_errors = {
        "alertname": "HighAPIErrorRate",
        "endpoint": "/api/trades",
        "severity": "critical",
        "category": "application",
        "service": "waardhaven-api",
    }
    cpu = {
        "alertname": "HighCPUUsage",
        "instance": "node-1:9100",
        "severity": "warning",
        "note": "ünïcode ✓",
    }
    disk = {"alertname": "DiskSpaceLow", "severity": "warning", "datacenter": "ams1", "job": "node"}
    down = {"alertname": "DatacenterDown", "severity": "critical", "datacenter": "ams1"}
    post_alerts(
        alertmanager_url,
        [
            {
                "labels": api_errors,
                "annotations": {"summary": "High API error rate"},
                "startsAt": rfc3339(started),
                "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
            },
            {"labels": cpu, "startsAt": rfc3339(started)},
            {"labels": disk, "startsAt": rfc3339(started)},
            {"labels": down, "startsAt": rfc3339(started)},
        ],
    )
    silence_id = silence(alertmanager_url, "HighCPUUsage")
    source = AlertmanagerAlerts(AlertmanagerSourceConfig(url=alertmanager_url, retries=0))
    wait_for(lambda: {a["state"] for a in snapshot(source)} == {"active", "suppressed"})
    wait_for(lambda: any(a["inhibited_by"] for a in snapshot(source)))

    before = datetime.now(UTC).replace(tzinfo=None)
    rows = {row["alertname"]: row for row in snapshot(source)}
    after = datetime.now(UTC).replace(tzinfo=None)

    assert set(rows) == {"HighAPIErrorRate", "HighCPUUsage", "DiskSpaceLow", "DatacenterDown"}
    errors = rows["HighAPIErrorRate"]
    assert errors["state"] == "active"
    assert (errors["severity"], errors["category"], errors["service"]) == (
        "critical",
        "application",
        "waardhaven-api",
    )
    assert dict(errors["labels"]) == api_errors
    assert dict(errors["annotations"]) == {"summary": "High API error rate"}
    assert errors["starts_at"] == started.replace(tzinfo=None)
    assert errors["receivers"] == ["oncall-pager"]
    assert errors["generator_url"] == "http://prometheus:9090/graph?g0.expr=up"
    assert before - timedelta(seconds=1) <= errors["snapshot_at"] <= after
    assert (rows["HighCPUUsage"]["state"], rows["HighCPUUsage"]["silenced_by"]) == (
        "suppressed",
        [silence_id],
    )
    assert rows["HighCPUUsage"]["receivers"] == ["team-chat"]
    assert rows["DiskSpaceLow"]["state"] == "suppressed"
    assert rows["DiskSpaceLow"]["inhibited_by"] == [fingerprint(down)]
    assert rows["DiskSpaceLow"]["service"] == "node"  # no service label: the job
    for labels in (api_errors, cpu, disk, down):
        assert rows[labels["alertname"]]["fingerprint"] == fingerprint(labels)


def test_a_window_long_past_is_refused_because_alertmanager_keeps_no_history(
    alertmanager_url: str,
) -> None:
    source = AlertmanagerAlerts(AlertmanagerSourceConfig(url=alertmanager_url, retries=0))
    last_week = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=7)

    with pytest.raises(SourceError, match="keeps no history"):
        list(source.read(TimeWindow(last_week, last_week + timedelta(hours=1))))


def test_an_unreachable_alertmanager_is_one_sentence_naming_the_url_key() -> None:
    config = AlertmanagerSourceConfig(url=f"http://127.0.0.1:{servers.free_port()}", retries=0)

    with pytest.raises(SourceError) as raised:
        snapshot(AlertmanagerAlerts(config))

    assert "\n" not in str(raised.value)
    assert "is unreachable; check sources.alertmanager.url" in str(raised.value)


def test_a_url_that_is_not_alertmanagers_base_is_one_sentence_naming_the_url_key(
    alertmanager_url: str,
) -> None:
    config = AlertmanagerSourceConfig(url=f"{alertmanager_url}/alertmanager", retries=0)

    with pytest.raises(SourceError) as raised:
        snapshot(AlertmanagerAlerts(config))

    assert "\n" not in str(raised.value)
    assert "HTTP 404" in str(raised.value)
    assert "sources.alertmanager.url must be the Alertmanager base URL" in str(raised.value)
