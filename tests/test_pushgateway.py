"""Report metrics pushed to a real Pushgateway are queryable in a real Prometheus scraping it."""

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from obs_pipelines.operations.pushgateway import PushError, ReportMetric, exposition, push
from tests import ops_servers
from tests.servers import free_port

REPORT = [
    ReportMetric(
        "obs_slo_error_budget_remaining_ratio",
        {"slo": "api_availability", "service": "waardhaven-api"},
        0.62,
    ),
    ReportMetric(
        "obs_slo_burn_rate",
        {"slo": "api_availability", "service": "waardhaven-api", "window": "1h"},
        14.4,
    ),
    ReportMetric("obs_slo_sli_ratio", {"slo": "data_freshness", "service": "market-data"}, 0.9931),
    ReportMetric("obs_alert_noise_ratio", {"alertname": ""}, 0.35),
    ReportMetric("obs_coverage_ratio", {"pillar": "traces"}, 5 / 9),
    ReportMetric("obs_incident_mttd_seconds", {"service": "waardhaven-api"}, 240.0),
    ReportMetric("obs_incident_mttr_seconds", {"service": "waardhaven-api"}, 1800.0),
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    work = tmp_path_factory.mktemp("push")
    with (
        ops_servers.pushgateway(work / "pgw") as gateway,
        ops_servers.prometheus_scraping(work / "prom", gateway) as prometheus,
    ):
        yield gateway, prometheus


def _query(prometheus: str, promql: str) -> list[dict]:
    response = requests.get(f"{prometheus}/api/v1/query", params={"query": promql}, timeout=5)
    response.raise_for_status()
    return response.json()["data"]["result"]


def _eventually(prometheus: str, promql: str, timeout: float = 15.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = _query(prometheus, promql)
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"{promql} returned nothing within {timeout}s")


@pytest.mark.prometheus
def test_report_metrics_reach_prometheus_through_the_pushgateway(stack: tuple[str, str]) -> None:
    gateway, prometheus = stack

    pushed = push(gateway, REPORT, job="obs_reports", grouping={"env": "test"})

    assert pushed == len(REPORT) + 1
    budget = _eventually(prometheus, 'obs_slo_error_budget_remaining_ratio{slo="api_availability"}')
    assert float(budget[0]["value"][1]) == pytest.approx(0.62)
    assert budget[0]["metric"]["job"] == "obs_reports"  # honor_labels keeps the pushed job
    assert budget[0]["metric"]["env"] == "test"
    burn = _eventually(prometheus, 'obs_slo_burn_rate{window="1h"}')
    assert float(burn[0]["value"][1]) == pytest.approx(14.4)
    mttr = _eventually(prometheus, 'obs_incident_mttr_seconds{service="waardhaven-api"}')
    assert float(mttr[0]["value"][1]) == 1800.0
    stamp = _eventually(prometheus, 'obs_report_last_push_timestamp_seconds{job="obs_reports"}')
    assert abs(float(stamp[0]["value"][1]) - time.time()) < 60


@pytest.mark.prometheus
def test_a_push_replaces_the_previous_report(stack: tuple[str, str]) -> None:
    gateway, _ = stack
    push(gateway, REPORT, job="replaced")

    push(gateway, [ReportMetric("obs_coverage_ratio", {"pillar": "traces"}, 0.75)], job="replaced")

    text = requests.get(f"{gateway}/metrics", timeout=5).text
    mine = [
        line for line in text.splitlines() if 'job="replaced"' in line and not line.startswith("#")
    ]
    assert any(line.startswith("obs_coverage_ratio") and line.endswith(" 0.75") for line in mine)
    assert not any(line.startswith("obs_slo_burn_rate") for line in mine)


def test_undocumented_metric_or_wrong_labels_are_refused() -> None:
    with pytest.raises(ValueError, match="not a documented report metric"):
        exposition([ReportMetric("obs_made_up", {}, 1.0)])
    with pytest.raises(ValueError, match=r"takes the labels \['service', 'slo'\]"):
        exposition([ReportMetric("obs_slo_sli_ratio", {"slo": "x"}, 1.0)])


def test_exposition_escapes_label_values_and_types_every_metric() -> None:
    text = exposition(
        [ReportMetric("obs_scorecard_value", {"metric": 'MTTD "minutes"\\x'}, float("nan"))],
        pushed_at=1.0,
    )
    assert 'obs_scorecard_value{metric="MTTD \\"minutes\\"\\\\x"} NaN' in text
    assert "# TYPE obs_scorecard_value gauge" in text
    assert "obs_report_last_push_timestamp_seconds 1.0" in text


def test_unreachable_pushgateway_is_one_clear_sentence(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(
        PushError, match=r"^Pushgateway at .* is unreachable .*; check the pushgateway url"
    ):
        push(url, REPORT, timeout=2)
