"""The seed's alert rules (rules/*.yml): valid for promtool, loaded by a real Prometheus, listed by
the alert_rules snapshot, and mapped to the service catalog."""

import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml

from obs_pipelines.config import PrometheusSourceConfig, SimulatorConfig, load_config
from obs_pipelines.errors import SourceError
from obs_pipelines.sources.alerts import PrometheusAlertRules
from obs_pipelines.sources.simulated_alerts import SimulatedAlertRules
from obs_pipelines.windows import TimeWindow
from tests import servers

REPO = Path(__file__).resolve().parent.parent
RULES_DIR = REPO / "rules"
RULE_FILES = sorted(RULES_DIR.glob("*.yml"))
WINDOW = TimeWindow(datetime(2026, 11, 10, 9, tzinfo=UTC), datetime(2026, 11, 10, 10, tzinfo=UTC))


def rules_in_files() -> dict[str, dict[str, Any]]:
    """Every alerting rule written in the files, by name, with its group."""
    rules = {}
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                rules[rule["alert"]] = {**rule, "group": group["name"], "file": path.name}
    return rules


@pytest.fixture(scope="module")
def prometheus_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus whose config loads rules/*.yml (evaluated every 15 s)."""
    with servers.prometheus(
        tmp_path_factory.mktemp("rules-prometheus") / "data",
        evaluation_interval="15s",
        rule_files=[RULES_DIR / "*.yml"],
    ) as url:
        yield url


def table_rows(source: Any, window: TimeWindow = WINDOW) -> list[dict[str, Any]]:
    return pa.concat_tables(list(source.read(window))).to_pylist()


def test_promtool_accepts_every_rule_file() -> None:
    result = subprocess.run(
        ["promtool", "check", "rules", *map(str, RULE_FILES)], capture_output=True, text=True
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert [p.name for p in RULE_FILES] == [
        "application.yml",
        "business.yml",
        "infrastructure.yml",
        "security.yml",
    ]
    assert result.stdout.count("SUCCESS: 3 rules found") == 4


def test_the_snapshot_lists_every_rule_as_prometheus_loaded_it(prometheus_url: str) -> None:
    config = PrometheusSourceConfig(url=prometheus_url, selectors=["up"], retry_backoff_seconds=0)

    rows = {row["name"]: row for row in table_rows(PrometheusAlertRules(config))}

    written = rules_in_files()
    assert set(rows) == set(written) and len(written) == 12
    for name, rule in written.items():
        row = rows[name]
        assert row["snapshot_at"] == WINDOW.end.replace(tzinfo=None)
        assert (row["group"], Path(row["file"]).name, row["type"]) == (
            rule["group"],
            rule["file"],
            "alerting",
        )
        # Prometheus prints the parsed expression; it differs from the file only in spacing.
        assert "".join(row["expr"].split()) == "".join(str(rule["expr"]).split())
        assert (
            row["for_seconds"] == {"0m": 0, "1m": 60, "2m": 120, "5m": 300, "10m": 600}[rule["for"]]
        )
        assert dict(row["labels"]) == rule["labels"]
        assert dict(row["annotations"]) == rule["annotations"]
        assert (row["severity"], row["category"], row["service"]) == (
            rule["labels"]["severity"],
            rule["labels"]["category"],
            rule["labels"].get("service"),
        )
        assert row["group_interval_seconds"] == 15
        assert row["state"] == "inactive"  # no data in this Prometheus: nothing fires


def test_the_simulated_snapshot_lists_the_same_rules_as_a_real_prometheus(
    prometheus_url: str,
) -> None:
    config = PrometheusSourceConfig(url=prometheus_url, selectors=["up"], retry_backoff_seconds=0)
    shared = ("group", "name", "type", "for_seconds", "labels", "annotations", "service")

    real = table_rows(PrometheusAlertRules(config))
    simulated = table_rows(SimulatedAlertRules(SimulatorConfig()))

    def comparable(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return sorted(
            (*(str(r[c]) for c in shared), Path(r["file"]).name, "".join(r["expr"].split()))
            for r in rows
        )

    assert comparable(simulated) == comparable(real)


def test_the_simulated_rule_state_follows_the_simulated_alerts() -> None:
    monday = datetime(2026, 11, 2, tzinfo=UTC)  # market-data-lag runs 07:00 to 07:20 on Mondays
    during = TimeWindow(
        monday + timedelta(hours=6, minutes=10), monday + timedelta(hours=7, minutes=10)
    )
    after = TimeWindow(monday + timedelta(hours=7), monday + timedelta(hours=8))

    states_during = {
        r["name"]: r["state"] for r in table_rows(SimulatedAlertRules(SimulatorConfig()), during)
    }
    states_after = {
        r["name"]: r["state"] for r in table_rows(SimulatedAlertRules(SimulatorConfig()), after)
    }

    assert states_during["MarketDataLag"] == "firing"
    assert states_after["MarketDataLag"] == "inactive"
    assert states_during["HighAPIErrorRate"] == "inactive"


def test_every_service_label_names_a_service_in_the_catalog() -> None:
    catalog = {s.name for s in load_config(REPO / "obs.yaml").services}

    services = {r["labels"].get("service") for r in rules_in_files().values()} - {None}

    assert services and services <= catalog
    assert rules_in_files()["HighAPIErrorRate"]["labels"]["service"] == "waardhaven-api"
    assert rules_in_files()["MarketDataLag"]["labels"]["service"] == "market-data"


def test_a_prometheus_that_is_not_there_is_one_sentence_naming_the_url_key() -> None:
    config = PrometheusSourceConfig(
        url=f"http://127.0.0.1:{servers.free_port()}", selectors=["up"], retries=0
    )

    with pytest.raises(SourceError) as raised:
        table_rows(PrometheusAlertRules(config))

    assert "\n" not in str(raised.value)
    assert "sources.prometheus.url" in str(raised.value)
