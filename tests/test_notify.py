"""Alerts raised and resolved in a real Alertmanager, routed to a webhook receiver."""

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from obs_pipelines.operations.notify import Alert, Alertmanager, NotifyError
from tests.servers import free_port

SCOPE = {"obs_check": "lake_freshness"}


@pytest.fixture(scope="module")
def am(webhook_alertmanager: str) -> Alertmanager:
    return Alertmanager(webhook_alertmanager, timeout=5)


def _stale(dataset: str, **extra: str) -> Alert:
    return Alert(
        labels={
            "alertname": "ObsLakeDatasetStale",
            "dataset": dataset,
            "severity": "warning",
            "category": "infrastructure",
            **SCOPE,
            **extra,
        },
        annotations={"summary": f"{dataset} is stale", "description": "d", "runbook": "https://r"},
        starts_at=datetime.now(UTC) - timedelta(hours=1),
    )


def _notifications(
    received: list[dict], status: str, dataset: str, timeout: float = 10
) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [
            a
            for body in received
            for a in body["alerts"]
            if a["status"] == status and a["labels"].get("dataset") == dataset
        ]
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"no {status} notification for {dataset} within {timeout}s")


def test_reconcile_raises_then_resolves_and_the_receiver_hears_both(
    am: Alertmanager, webhook: tuple[str, list[dict]]
) -> None:
    now = datetime.now(UTC)
    first = am.reconcile([_stale("spans"), _stale("log_records")], SCOPE, now)

    assert sorted(labels["dataset"] for labels in first.posted) == ["log_records", "spans"]
    active = am.active(SCOPE)
    assert sorted(a["labels"]["dataset"] for a in active) == ["log_records", "spans"]
    assert all(a["status"]["state"] == "active" for a in active)
    firing = _notifications(webhook[1], "firing", "spans")
    assert firing[0]["annotations"]["runbook"] == "https://r"

    second = am.reconcile([_stale("log_records")], SCOPE, datetime.now(UTC))

    assert [labels["dataset"] for labels in second.resolved] == ["spans"]
    assert [a["labels"]["dataset"] for a in am.active(SCOPE)] == ["log_records"]
    resolved = _notifications(webhook[1], "resolved", "spans")
    ends_at = datetime.fromisoformat(resolved[0]["endsAt"].replace("Z", "+00:00"))
    assert abs((ends_at - datetime.now(UTC)).total_seconds()) < 30
    am.reconcile([], SCOPE, datetime.now(UTC))
    assert am.active(SCOPE) == []


def test_reconcile_leaves_other_alerts_alone(am: Alertmanager) -> None:
    other = Alert(
        labels={"alertname": "MarketDataLag", "pipeline": "market-data", "severity": "critical"},
        starts_at=datetime.now(UTC),
        ends_at=datetime.now(UTC) + timedelta(minutes=10),
    )
    am.post([other])

    am.reconcile([], SCOPE, datetime.now(UTC))

    assert [a["labels"]["alertname"] for a in am.active({"pipeline": "market-data"})] == [
        "MarketDataLag"
    ]


def test_an_alert_outside_the_scope_is_refused(am: Alertmanager) -> None:
    with pytest.raises(ValueError, match="lacks the scope labels"):
        am.reconcile([Alert(labels={"alertname": "X"})], SCOPE, datetime.now(UTC))


def test_unreachable_alertmanager_is_one_sentence(tmp_path: Path) -> None:
    lost = Alertmanager(f"http://127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(
        NotifyError,
        match=r"^Alertmanager at .* is unreachable \(ConnectionError\); check sources.alertmanager.url",
    ):
        lost.post([_stale("spans")])


def test_alertmanager_refusal_names_the_status(am: Alertmanager) -> None:
    with pytest.raises(NotifyError, match=r"refused 1 alerts \(HTTP 400"):
        am.post(
            [
                Alert(
                    labels={"alertname": "Bad"},
                    starts_at=datetime.now(UTC),
                    ends_at=datetime.now(UTC) - timedelta(hours=1),
                )
            ]
        )


def test_a_scope_value_with_quotes_and_backslashes_matches_only_itself(am: Alertmanager) -> None:
    odd = {**SCOPE, "obs_lake": '/srv/obs "blue"\\lake'}
    near = {**SCOPE, "obs_lake": "/srv/obs "}

    am.reconcile([_stale("spans", **odd)], odd, datetime.now(UTC))
    am.reconcile([_stale("spans", **near)], near, datetime.now(UTC))

    assert [a["labels"]["obs_lake"] for a in am.active(odd)] == [odd["obs_lake"]]
    am.reconcile([], odd, datetime.now(UTC))
    assert am.active(odd) == [] and len(am.active(near)) == 1
    am.reconcile([], near, datetime.now(UTC))
