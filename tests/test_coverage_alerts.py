"""Coverage's alerts pillar: a rule that names the service (a rules snapshot or the configured
rule files) or an alert seen firing or pending for it (ALERTS or Alertmanager) counts; a lake
with no rules snapshot (`obs materialize` takes none) still counts the alerts it saw."""

from pathlib import Path

import pytest
import yaml

from obs_pipelines.config import ObsConfig, parse_config
from obs_pipelines.errors import ConfigError
from obs_pipelines.lake import Lake
from obs_pipelines.lake.catalog import build_catalog, connect
from obs_pipelines.reporting.reports import report_connection
from obs_pipelines.sources.rule_files import configured_rules_table
from obs_pipelines.windows import utc
from tests.report_fixtures import (
    alert_fragments,
    dataset_table,
    hour_of,
    make_config,
    ms,
    stamps,
)

pytestmark = pytest.mark.integration  # builds catalogs with every report: seconds per test

REPO = Path(__file__).resolve().parent.parent
START, END = utc("2026-11-10T00:00:00Z"), utc("2026-11-11T00:00:00Z")  # current; previous before
T0 = ms("2026-11-10T10:00:00Z")
EARLIER = ms("2026-11-09T10:00:00Z")  # inside the previous period
SERVICES = [
    {"name": name, "owner": "team", "pillars": ["alerts"]}
    for name in ("api", "db", "cache", "queue", "feed", "search")
]


def alerts_pillar(config: ObsConfig) -> dict[tuple[str, str], str]:
    """(period, service) -> status of the alerts pillar."""
    con = report_connection(config, START, END)
    try:
        rows = con.execute(
            "SELECT period, service, status FROM coverage WHERE pillar = 'alerts'"
        ).fetchall()
    finally:
        con.close()
    return {(period, service): status for period, service, status in rows}


def test_alerts_seen_firing_or_pending_count_without_any_rules_snapshot(tmp_path: Path) -> None:
    config = make_config(tmp_path, services=SERVICES)
    lake = Lake(config)
    lake.write_hot(
        "alert_fragments",
        hour_of(T0),
        alert_fragments(
            ("ApiErrors", "firing", {"service": "api", "severity": "critical"}, T0),
            ("DbSlow", "pending", {"job": "db"}, T0 + 60_000),  # pending counts: it was seen
            ("NodeDown", "firing", {"instance": "n1"}, T0),  # no service: counts for nobody
        ),
    )
    lake.write_hot(
        "alert_fragments",
        hour_of(EARLIER),
        alert_fragments(("QueueLag", "firing", {"service": "queue"}, EARLIER)),
    )
    snapshot_at = T0 + 1_800_000
    lake.write_hot(
        "alertmanager_alerts",
        hour_of(snapshot_at),
        dataset_table(
            "alertmanager_alerts",
            snapshot_at=stamps(snapshot_at, snapshot_at),
            fingerprint=["f1", "f2"],
            alertname=["CacheMisses", "SearchDown"],
            service=["cache", "search"],
            starts_at=stamps(T0, EARLIER - 86_400_000 * 3),
            # search resolved long before the snapshot, and before either period
            ends_at=stamps(snapshot_at + 240_000, EARLIER - 86_400_000 * 2),
            state=["active", "active"],
        ),
    )
    build_catalog(config)

    status = alerts_pillar(config)

    assert not connect(config).execute("SELECT count(*) FROM alert_rules").fetchone()[0]
    current = {s: status["current", s] for s in ("api", "db", "cache", "queue", "feed", "search")}
    assert current == {
        "api": "present",  # firing, from ALERTS
        "db": "present",  # pending, service from the job label
        "cache": "present",  # active in an Alertmanager snapshot
        "queue": "missing",  # its alert fired in the previous period only
        "feed": "missing",  # neither a rule nor an alert
        "search": "missing",  # resolved before the period began
    }
    assert status["previous", "queue"] == "present"
    assert status["previous", "api"] == "missing"


RULES = """groups:
  - name: app
    rules:
      - alert: ApiDown
        expr: up{job="api"} == 0
        for: 2m
        labels: {severity: critical, service: api}
      - alert: DbReplicationLag
        expr: |
          pg_replication_lag_seconds
            > 30
        labels: {job: db}
      - record: feed:items:rate5m
        expr: sum(rate(items_total{service="feed"}[5m]))
  - name: infra
    rules:
      - alert: CacheEvictions
        expr: rate(evictions_total{job="cache"}[5m]) > 100
"""


def test_a_configured_rule_file_gives_the_pillar_to_the_services_its_rules_name(
    tmp_path: Path,
) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "app.yml").write_text(RULES)
    config = make_config(tmp_path, services=SERVICES, sources={"alert_rule_files": ["rules/*.yml"]})
    build_catalog(config)

    status = alerts_pillar(config)
    rules = (
        connect(config)
        .execute(
            """SELECT "group", name, expr, for_seconds, severity, service, file
               FROM configured_alert_rules ORDER BY name"""
        )
        .fetchall()
    )

    rule_file = str(tmp_path / "rules" / "app.yml")
    assert rules == [
        ("app", "ApiDown", 'up{job="api"} == 0', 120.0, "critical", "api", rule_file),
        (
            "infra",
            "CacheEvictions",
            'rate(evictions_total{job="cache"}[5m]) > 100',
            0.0,
            None,
            None,
            rule_file,
        ),
        ("app", "DbReplicationLag", "pg_replication_lag_seconds > 30", 0.0, None, "db", rule_file),
    ]
    for period in ("current", "previous"):  # the files as they are now stand for both periods
        assert {s: status[period, s] for s in ("api", "db", "cache", "feed", "queue")} == {
            "api": "present",  # service label
            "db": "present",  # job label
            "cache": "present",  # its expression names it, as for snapshot rules
            "feed": "missing",  # a recording rule is not an alert
            "queue": "missing",  # neither a rule nor an alert
        }


def test_the_seeds_rule_files_publish_every_alerting_rule() -> None:
    config = parse_config({"sources": {"alert_rule_files": ["rules/*.yml"]}}, base_dir=REPO)

    rules = configured_rules_table(config)

    expected = [
        rule["alert"]
        for path in sorted((REPO / "rules").glob("*.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]
    assert rules.column("name").to_pylist() == expected
    by_name = dict(zip(expected, rules.column("service").to_pylist(), strict=True))
    assert by_name["HighAPIErrorRate"] == "waardhaven-api"
    assert by_name["HighCPUUsage"] is None  # node alerts name no service


@pytest.mark.parametrize(
    ("files", "text", "message"),
    [
        (
            ["missing.yml"],
            None,
            "sources.alert_rule_files[0]: {tmp}/missing.yml not found; give the path of a "
            "Prometheus rule file (relative to the config file)",
        ),
        (
            ["rules/*.yaml"],
            None,
            "sources.alert_rule_files[0]: 'rules/*.yaml' matches no file ({tmp}/rules/*.yaml); "
            "fix the pattern (relative to the config file)",
        ),
        (
            ["rules/bad.yml"],
            "groups:\n  - rules: []\n",
            "sources.alert_rule_files: {tmp}/rules/bad.yml is not a Prometheus rule file: "
            "group 1 has no name; fix it (promtool check rules)",
        ),
        (
            ["rules/bad.yml"],
            "groups:\n  - name: g\n    rules:\n      - alert: A\n",
            "sources.alert_rule_files: {tmp}/rules/bad.yml is not a Prometheus rule file: "
            "group 'g', rule 1 ('A') has no `expr`; fix it (promtool check rules)",
        ),
        (
            ["rules/bad.yml"],
            "scrape_configs: []\n",
            "sources.alert_rule_files: {tmp}/rules/bad.yml is not a Prometheus rule file: "
            "it has no `groups:` list; fix it (promtool check rules)",
        ),
    ],
)
def test_rule_files_that_are_missing_or_not_rules_are_refused_at_load(
    tmp_path: Path, files: list[str], text: str | None, message: str
) -> None:
    (tmp_path / "rules").mkdir()
    if text is not None:
        (tmp_path / "rules" / "bad.yml").write_text(text)

    with pytest.raises(ConfigError) as refused:
        make_config(tmp_path, sources={"alert_rule_files": files})

    assert str(refused.value) == f"{tmp_path / 'obs.yaml'}: " + message.format(tmp=tmp_path)
