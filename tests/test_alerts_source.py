"""Alert intervals: ALERTS history in a real Prometheus -> fragments per window -> alert_events.

The test writes the history itself (so every interval is known), backfills it with promtool, and
checks that the stitched intervals are exactly the written ones whatever order the hourly windows
were materialized in. The simulator is held to the same stitching and to its incident story.
"""

import itertools
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from obs_pipelines.config import (
    AlertDerivationConfig,
    AlertmanagerSourceConfig,
    PrometheusSourceConfig,
    SimulatorConfig,
)
from obs_pipelines.errors import SourceError
from obs_pipelines.fingerprint import fingerprint
from obs_pipelines.sources.alertmanager import AlertmanagerAlerts
from obs_pipelines.sources.alerts import PrometheusAlertFragments
from obs_pipelines.sources.simulated_alerts import (
    SimulatedAlertFragments,
    SimulatedAlertmanagerAlerts,
)
from obs_pipelines.sources.simulator import INCIDENTS
from obs_pipelines.windows import TimeWindow
from tests import ops_servers, servers
from tests.servers import Sample, Series

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
# alert_events over alert_fragments alone: the alert_intervals view it reads, inlined.
ALERT_EVENTS_SQL = (
    f"WITH alert_intervals AS ({(SQL_DIR / 'alert_intervals.sql').read_text()})\n"
    f"SELECT * FROM ({(SQL_DIR / 'alert_events.sql').read_text()})"
)
START = datetime(2026, 11, 10, tzinfo=UTC)
HOURS = [TimeWindow(START + timedelta(hours=h), START + timedelta(hours=h + 1)) for h in range(4)]
EVAL_MS = 15_000
PHASE_MS = 7_000
DERIVATION = AlertDerivationConfig(evaluation_interval=timedelta(seconds=15))


def at(hh: int, mm: int, ss: int = 0) -> datetime:
    """A time on the test day, naive UTC (as DuckDB returns TIMESTAMP)."""
    return datetime(2026, 11, 10, hh, mm, ss)


def evaluations(
    begin: datetime, end: datetime, missing: tuple[datetime, ...] = (), every_ms: int = EVAL_MS
) -> list[int]:
    """Rule evaluation times (15 s grid unless ``every_ms``, 7 s phase) in [begin, end), minus the
    missed ones."""
    skip = {_ms(m) for m in missing}
    first = -((PHASE_MS - _ms(begin)) // every_ms)
    times = range(first * every_ms + PHASE_MS, _ms(end), every_ms)
    return [t for t in times if t not in skip]


def _ms(moment: datetime) -> int:
    return round(moment.replace(tzinfo=UTC).timestamp() * 1000)


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC).replace(tzinfo=None)


# The alerts the test writes: labels, pending stretches, firing stretches (each a list of samples).
History = list[tuple[dict[str, str], list[list[int]], list[list[int]]]]
BOUNDARY = {  # crosses 01:00 with the evaluation right after the boundary missed
    "alertname": "HighAPIErrorRate",
    "endpoint": "/api/trades",
    "severity": "critical",
    "category": "application",
    "service": "waardhaven-api",
}
FLAPPING = {
    "alertname": "HighCPUUsage",
    "instance": "node-1:9100",
    "severity": "warning",
    "category": "infrastructure",
}
MISSED_ONE = {  # one missed evaluation inside an interval: still one interval
    "alertname": "MarketDataLag",
    "job": "market-data",
    "instance": "market-data-0:9100",
    "service": "market-data",
    "severity": "critical",
}
MISSED_TWO = {  # two missed evaluations: more than tolerated, so two intervals
    "alertname": "LowRecommendationAccuracy",
    "job": "recommendation-engine",
    "severity": "warning",
}
STILL_FIRING = {
    "alertname": "DiskSpaceLow",
    "instance": "node-2:9100",
    "job": "node",
    "mountpoint": "/data",
    "severity": "critical",
}

FLAP_STARTS = [at(1, 51) + timedelta(minutes=4 * i) for i in range(6)]
HISTORY: History = [
    (
        BOUNDARY,
        [evaluations(at(0, 50), at(0, 52))],
        [evaluations(at(0, 52), at(1, 10), missing=(at(1, 0, 7),))],
    ),
    (
        FLAPPING,
        [evaluations(s - timedelta(minutes=1), s) for s in FLAP_STARTS],
        [evaluations(s, s + timedelta(minutes=2, seconds=30)) for s in FLAP_STARTS],
    ),
    (MISSED_ONE, [], [evaluations(at(2, 20), at(2, 40), missing=(at(2, 30, 7),))]),
    (MISSED_TWO, [], [evaluations(at(2, 0), at(2, 10), missing=(at(2, 5, 7), at(2, 5, 22)))]),
    (STILL_FIRING, [evaluations(at(3, 35), at(3, 40))], [evaluations(at(3, 40), at(4, 0))]),
]


def expected_events() -> list[tuple[Any, ...]]:
    """(alertname, fingerprint, starts_at, ends_at, pending_since) as the test wrote them."""
    b, f, m1, m2, s = (
        fingerprint(x) for x in (BOUNDARY, FLAPPING, MISSED_ONE, MISSED_TWO, STILL_FIRING)
    )
    events = [("HighAPIErrorRate", b, at(0, 52, 7), at(1, 10, 7), at(0, 50, 7))]
    for start in FLAP_STARTS:
        begin = start.replace(tzinfo=None)
        events.append(
            (
                "HighCPUUsage",
                f,
                begin + timedelta(seconds=7),
                begin + timedelta(minutes=2, seconds=37),
                begin - timedelta(seconds=53),
            )
        )
    events += [
        ("MarketDataLag", m1, at(2, 20, 7), at(2, 40, 7), None),
        ("LowRecommendationAccuracy", m2, at(2, 0, 7), at(2, 5, 7), None),
        ("LowRecommendationAccuracy", m2, at(2, 5, 37), at(2, 10, 7), None),
        ("DiskSpaceLow", s, at(3, 40, 7), None, at(3, 35, 7)),
    ]
    return sorted(events, key=lambda e: (e[2], e[0]))


def alerts_history(history: History = HISTORY) -> list[Series]:
    series = []
    for labels, pending, firing in history:
        for state, stretches in (("pending", pending), ("firing", firing)):
            times = sorted(t for stretch in stretches for t in stretch)
            if times:
                series.append(
                    Series(
                        "ALERTS",
                        {**labels, "alertstate": state},
                        [Sample(t, 1.0) for t in times],
                    )
                )
    return series


def alert_events(con: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    cursor = con.execute(
        f"SELECT alertname, fingerprint, starts_at, ends_at, pending_since FROM ({ALERT_EVENTS_SQL})"
    )
    return sorted(cursor.fetchall(), key=lambda e: (e[2], e[0]))


def events_of(tables: list[pa.Table]) -> list[tuple[Any, ...]]:
    con = duckdb.connect()
    con.register("alert_fragments", pa.concat_tables(tables))
    return alert_events(con)


@pytest.fixture(scope="module")
def prometheus_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("alerts-tsdb") / "data"
    servers.backfill(data, alerts_history())
    with servers.prometheus(data) as url:
        yield url


def prometheus_fragments(url: str) -> PrometheusAlertFragments:
    config = PrometheusSourceConfig(url=url, selectors=["up"], retry_backoff_seconds=0)
    return PrometheusAlertFragments(config, DERIVATION)


def read_window(source: Any, window: TimeWindow) -> pa.Table:
    return pa.concat_tables(list(source.read(window)))


def test_alert_events_are_the_written_intervals_in_every_materialization_order(
    prometheus_url: str, tmp_path: Path
) -> None:
    seen_by_hours: dict[frozenset[int], list[tuple[Any, ...]]] = {}
    for number, order in enumerate(itertools.permutations(range(len(HOURS)))):
        lake = tmp_path / f"order-{number}"
        lake.mkdir()
        con = duckdb.connect()
        source = prometheus_fragments(prometheus_url)  # one source reads all hours, in this order
        done: set[int] = set()
        for hour in order:
            pq.write_table(read_window(source, HOURS[hour]), lake / f"hour={hour}.parquet")
            done.add(hour)
            con.execute(
                f"CREATE OR REPLACE VIEW alert_fragments AS SELECT * FROM read_parquet('{lake}/*.parquet')"
            )
            events = alert_events(con)
            # The same set of hours gives the same intervals, whichever came first.
            assert seen_by_hours.setdefault(frozenset(done), events) == events, order

        assert events == expected_events(), order


def test_one_long_window_gives_the_same_intervals_as_hourly_windows(prometheus_url: str) -> None:
    source = prometheus_fragments(prometheus_url)

    whole = read_window(source, TimeWindow(START, START + timedelta(hours=4)))

    assert events_of([whole]) == expected_events()
    assert whole.column("samples").to_pylist() != []
    assert sum(whole.column("samples").to_pylist()) == sum(len(s.samples) for s in alerts_history())


def test_an_alert_firing_at_the_end_of_the_newest_window_has_no_end_yet(
    prometheus_url: str,
) -> None:
    source = prometheus_fragments(prometheus_url)
    first_hour = read_window(source, HOURS[0])

    only_first = events_of([first_hour])
    with_second = events_of([first_hour, read_window(source, HOURS[1])])

    assert only_first == [
        ("HighAPIErrorRate", fingerprint(BOUNDARY), at(0, 52, 7), None, at(0, 50, 7))
    ]
    assert with_second[0] == (
        "HighAPIErrorRate",
        fingerprint(BOUNDARY),
        at(0, 52, 7),
        at(1, 10, 7),
        at(0, 50, 7),
    )


def test_fragments_name_the_alert_and_promote_severity_category_and_service(
    prometheus_url: str,
) -> None:
    source = prometheus_fragments(prometheus_url)

    fragments = read_window(source, TimeWindow(START, START + timedelta(hours=4))).to_pylist()

    by_alert = {(f["alertname"], f["state"]): f for f in fragments}
    boundary = by_alert[("HighAPIErrorRate", "firing")]
    assert boundary["fingerprint"] == fingerprint(BOUNDARY)
    assert dict(boundary["labels"]) == BOUNDARY  # ALERTS minus __name__ and alertstate
    assert (boundary["severity"], boundary["category"], boundary["service"]) == (
        "critical",
        "application",
        "waardhaven-api",
    )
    assert by_alert[("HighAPIErrorRate", "pending")]["samples"] == 8
    assert by_alert[("LowRecommendationAccuracy", "firing")]["service"] == "recommendation-engine"
    assert by_alert[("HighCPUUsage", "firing")]["service"] is None
    assert {f["source"] for f in fragments} == {"prometheus"}


def test_an_unreachable_prometheus_is_one_sentence_naming_the_url_key() -> None:
    config = PrometheusSourceConfig(
        url=f"http://127.0.0.1:{servers.free_port()}", selectors=["up"], retries=0
    )

    with pytest.raises(SourceError) as raised:
        read_window(PrometheusAlertFragments(config), HOURS[0])

    message = str(raised.value)
    assert "\n" not in message
    assert "sources.prometheus.url" in message


# -- the simulator ----------------------------------------------------------------------------------

WEEK_START = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday: incidents are offsets from it


def simulated_events(window: TimeWindow, hourly: bool = False) -> list[dict[str, Any]]:
    source = SimulatedAlertFragments(SimulatorConfig())
    windows = list(window.hours()) if hourly else [window]
    con = duckdb.connect()
    con.register("alert_fragments", pa.concat_tables([read_window(source, w) for w in windows]))
    cursor = con.execute(ALERT_EVENTS_SQL)
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


@pytest.fixture(scope="module")
def simulated_week() -> list[dict[str, Any]]:
    return simulated_events(TimeWindow(WEEK_START, WEEK_START + timedelta(days=7)))


def incident_span(name: str) -> tuple[datetime, datetime]:
    incident = next(i for i in INCIDENTS if i.name == name)
    begin = (WEEK_START + incident.start).replace(tzinfo=None)
    return begin, begin + incident.duration


def test_simulated_outage_pages_a_couple_of_minutes_in_and_clears_a_few_minutes_after(
    simulated_week: list[dict[str, Any]],
) -> None:
    begin, end = incident_span("api-outage")
    errors = [e for e in simulated_week if e["alertname"] == "HighAPIErrorRate"]

    assert len(errors) == 3  # one per endpoint whose error share the outage raises
    for event in errors:
        assert begin + timedelta(minutes=1) <= event["starts_at"] <= begin + timedelta(minutes=5)
        assert end <= event["ends_at"] <= end + timedelta(minutes=8)
        assert event["service"] == "waardhaven-api"


def test_simulated_lag_and_latency_alerts_follow_their_incidents(
    simulated_week: list[dict[str, Any]],
) -> None:
    lag_begin, lag_end = incident_span("market-data-lag")
    slow_begin, slow_end = incident_span("api-latency")
    lag = [e for e in simulated_week if e["alertname"] == "MarketDataLag"]
    slow = [e for e in simulated_week if e["alertname"] == "HighAPIResponseTime"]

    assert lag and all(
        lag_begin < e["starts_at"] < lag_begin + timedelta(minutes=3)
        and lag_end <= e["ends_at"] <= lag_end + timedelta(minutes=2)
        for e in lag
    )
    assert slow and all(
        e["starts_at"] >= slow_begin + timedelta(minutes=10) and e["ends_at"] > slow_end
        for e in slow
    ), "the latency alert is detected late"


def test_nobody_is_paged_for_the_silent_trade_errors(simulated_week: list[dict[str, Any]]) -> None:
    begin, end = incident_span("trades-silent-errors")

    overlapping = [
        e
        for e in simulated_week
        if e["service"] == "waardhaven-api" and e["starts_at"] < end and e["ends_at"] > begin
    ]

    assert overlapping == []


def test_simulated_noise_flaps_daily_resolves_transiently_and_has_an_unmapped_alert(
    simulated_week: list[dict[str, Any]],
) -> None:
    flaps = [e for e in simulated_week if e["alertname"] == "HighCPUUsage"]
    transient = [e for e in simulated_week if e["alertname"] == "DatabaseConnectionPoolExhausted"]
    per_day = {e["starts_at"].date() for e in flaps}

    assert len(per_day) == 7 and len(flaps) >= 7 * 5, "several firings every day"
    assert all(e["service"] is None for e in flaps), "a node alert maps to no service"
    assert all(
        e["starts_at"].hour * 60 + e["starts_at"].minute >= 12 * 60 + 30
        and e["ends_at"] <= e["starts_at"].replace(hour=13, minute=31)
        for e in flaps
    )
    assert len(transient) == 7
    assert all(e["duration_seconds"] <= 120 for e in transient)


def test_simulated_hourly_windows_stitch_into_the_intervals_of_one_long_window() -> None:
    # Sunday noon to Monday 08:00: the daily flapping and transient alerts, the disk alert that
    # crosses midnight and the week boundary, and Monday's market-data lag.
    window = TimeWindow(datetime(2026, 11, 8, 12, tzinfo=UTC), datetime(2026, 11, 9, 8, tzinfo=UTC))

    hourly = simulated_events(window, hourly=True)
    whole = simulated_events(window)

    assert [{**e, "fragments": 0} for e in hourly] == [{**e, "fragments": 0} for e in whole]
    assert any(e["alertname"] == "DiskSpaceLow" and e["fragments"] > 1 for e in hourly)
    assert {e["alertname"] for e in whole} >= {"HighCPUUsage", "DiskSpaceLow", "MarketDataLag"}


def test_simulated_alerts_are_the_same_on_every_read() -> None:
    source = SimulatedAlertFragments(SimulatorConfig())
    window = TimeWindow(
        WEEK_START + timedelta(days=2, hours=14), WEEK_START + timedelta(days=2, hours=15)
    )

    assert read_window(source, window).equals(
        read_window(SimulatedAlertFragments(SimulatorConfig()), window)
    )


def test_simulated_alertmanager_lists_what_fires_at_the_window_end() -> None:
    begin, _ = incident_span("api-outage")
    window = TimeWindow(
        (begin + timedelta(minutes=10)).replace(tzinfo=UTC) - timedelta(hours=1),
        (begin + timedelta(minutes=10)).replace(tzinfo=UTC),
    )
    events = simulated_events(TimeWindow(window.start, window.end + timedelta(hours=1)))

    snapshot = read_window(SimulatedAlertmanagerAlerts(SimulatorConfig()), window).to_pylist()

    firing = {
        (e["fingerprint"], e["starts_at"])
        for e in events
        if e["starts_at"] < window.end.replace(tzinfo=None)
        and (e["ends_at"] is None or e["ends_at"] > window.end.replace(tzinfo=None))
    }
    assert {(a["fingerprint"], a["starts_at"]) for a in snapshot} == firing
    assert {a["alertname"] for a in snapshot} == {"HighAPIErrorRate"}
    assert all(
        a["state"] == "active" and a["fingerprint"] == fingerprint(dict(a["labels"]))
        for a in snapshot
    )


def test_an_evaluation_interval_shorter_than_prometheuses_is_refused_with_the_key(
    prometheus_url: str,
) -> None:
    config = PrometheusSourceConfig(url=prometheus_url, selectors=["up"])
    too_short = AlertDerivationConfig(evaluation_interval=timedelta(seconds=5))

    with pytest.raises(SourceError) as raised:
        read_window(PrometheusAlertFragments(config, too_short), HOURS[0])

    assert "sources.alert_derivation.evaluation_interval" in str(raised.value)
    assert "\n" not in str(raised.value)


# -- rule groups with their own `interval:` ---------------------------------------------------------

MINUTE_MS = 60_000
# Never true: the rules are there for Prometheus's /api/v1/rules; the history is backfilled.
GROUPED_RULES = """
groups:
  - name: fast  # the global evaluation_interval, 15s
    rules:
      - alert: CheckoutErrors
        expr: vector(1) < 0
        labels: {service: checkout, severity: critical}
      - alert: QueueBacklog
        expr: vector(1) < 0
        labels: {severity: warning, queue: "{{ $labels.queue }}"}
  - name: slow
    interval: 1m
    rules:
      - alert: CheckoutSlow
        expr: vector(1) < 0
        labels: {service: checkout, severity: warning}
      - alert: QueueBacklog
        expr: vector(1) < 0
        labels: {severity: critical}
"""
CHECKOUT_ERRORS = {"alertname": "CheckoutErrors", "service": "checkout", "severity": "critical"}
CHECKOUT_SLOW = {"alertname": "CheckoutSlow", "service": "checkout", "severity": "warning"}
BACKLOG_FAST = {"alertname": "QueueBacklog", "queue": "orders", "severity": "warning"}
BACKLOG_SLOW = {"alertname": "QueueBacklog", "queue": "orders", "severity": "critical"}
UNLISTED = {"alertname": "DiskPressure", "instance": "node-3:9100", "severity": "warning"}
GROUPED_HISTORY: History = [
    (CHECKOUT_ERRORS, [], [evaluations(at(2, 0), at(2, 30)), evaluations(at(4, 0), at(4, 30))]),
    # Every minute, across 03:00 with the evaluation right after it missed: one interval.
    (
        CHECKOUT_SLOW,
        [],
        [evaluations(at(2, 20), at(3, 20), missing=(at(3, 0, 7),), every_ms=MINUTE_MS)],
    ),
    (BACKLOG_SLOW, [], [evaluations(at(2, 10), at(2, 50), every_ms=MINUTE_MS)]),
    # Same name, the fast group (told apart by severity): two missed evaluations split it.
    (
        BACKLOG_FAST,
        [],
        [evaluations(at(2, 10), at(2, 20), missing=(at(2, 15, 7), at(2, 15, 22)))],
    ),
    # No listed rule and every minute: the configured 15 s cannot apply to it.
    (UNLISTED, [], [evaluations(at(4, 0), at(4, 30), every_ms=MINUTE_MS)]),
]


@pytest.fixture(scope="module")
def grouped_prometheus_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus (global evaluation_interval 15s) whose rule group `slow` has its own
    `interval: 1m`, over a backfilled ALERTS history that follows those intervals."""
    folder = tmp_path_factory.mktemp("grouped-alerts")
    rules = folder / "rules.yml"
    rules.write_text(GROUPED_RULES)
    servers.backfill(folder / "data", alerts_history(GROUPED_HISTORY))
    with servers.prometheus(folder / "data", evaluation_interval="15s", rule_files=[rules]) as url:
        yield url


@pytest.mark.prometheus
def test_alerts_of_a_group_with_its_own_interval_are_not_split_between_evaluations(
    grouped_prometheus_url: str,
) -> None:
    source = prometheus_fragments(grouped_prometheus_url)  # configured interval: 15 s

    events = events_of([read_window(source, HOURS[2]), read_window(source, HOURS[3])])

    assert sorted(e[:4] for e in events) == sorted(
        [
            ("CheckoutErrors", fingerprint(CHECKOUT_ERRORS), at(2, 0, 7), at(2, 30, 7)),
            ("QueueBacklog", fingerprint(BACKLOG_FAST), at(2, 10, 7), at(2, 15, 7)),
            ("QueueBacklog", fingerprint(BACKLOG_SLOW), at(2, 10, 7), at(2, 50, 7)),
            ("QueueBacklog", fingerprint(BACKLOG_FAST), at(2, 15, 37), at(2, 20, 7)),
            ("CheckoutSlow", fingerprint(CHECKOUT_SLOW), at(2, 20, 7), at(3, 20, 7)),
        ]
    )


@pytest.mark.prometheus
def test_an_unlisted_alert_slower_than_the_configured_interval_is_refused_beside_faster_ones(
    grouped_prometheus_url: str,
) -> None:
    source = prometheus_fragments(grouped_prometheus_url)

    with pytest.raises(SourceError) as raised:
        read_window(source, TimeWindow(HOURS[3].end, HOURS[3].end + timedelta(hours=1)))

    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("ALERTS samples of DiskPressure are at least 60s apart but ")
    assert "sources.alert_derivation.evaluation_interval is 15s" in message


# -- fingerprints as Alertmanager sees them ----------------------------------------------------------

ALWAYS_FIRING = """
groups:
  - name: checkout
    rules:
      - alert: CheckoutDown
        expr: vector(1)
        labels: {service: checkout, severity: critical, team: payments}
"""
EXTERNAL_LABELS = {"cluster": "prod", "team": "platform"}  # the alert's own `team` wins


@pytest.fixture
def alerting_prometheus(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A real Prometheus with external_labels, evaluating ALWAYS_FIRING every 2 s and sending it to
    a real Alertmanager: (Prometheus URL, Alertmanager URL)."""
    rules = tmp_path / "rules.yml"
    rules.write_text(ALWAYS_FIRING)
    with ops_servers.alertmanager(tmp_path / "alertmanager") as alertmanager_url:
        target = alertmanager_url.removeprefix("http://")
        settings = {
            "global": {"evaluation_interval": "2s", "external_labels": EXTERNAL_LABELS},
            "rule_files": [str(rules)],
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [target]}]}]},
        }
        config = tmp_path / "prometheus.yml"
        config.write_text(yaml.safe_dump(settings))
        port = servers.free_port()
        command = [
            servers.require("prometheus", "prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            # A first send made before Alertmanager is discovered is dropped; resend soon.
            "--rules.alert.resend-delay=1s",
        ]
        with servers.serving_http(command, port) as prometheus_url:
            yield prometheus_url, alertmanager_url


def until_rows(read: Callable[[], pa.Table], timeout: float = 60.0) -> pa.Table:
    """``read()`` again until it gives rows (the servers need an evaluation or two first)."""
    deadline = time.monotonic() + timeout
    while (table := read()).num_rows == 0:
        if time.monotonic() > deadline:
            raise AssertionError(f"still no rows after {timeout:g}s")
        time.sleep(0.5)
    return table


@pytest.mark.prometheus
def test_fragments_have_alertmanagers_fingerprint_when_prometheus_has_external_labels(
    alerting_prometheus: tuple[str, str],
) -> None:
    prometheus_url, alertmanager_url = alerting_prometheus
    now = datetime.now(UTC)
    window = TimeWindow(now - timedelta(minutes=5), now + timedelta(minutes=5))
    alertmanager = AlertmanagerAlerts(AlertmanagerSourceConfig(url=alertmanager_url))

    fragments = until_rows(lambda: read_window(prometheus_fragments(prometheus_url), window))
    (held,) = until_rows(lambda: read_window(alertmanager, window)).to_pylist()

    alert = {"alertname": "CheckoutDown", "service": "checkout", "severity": "critical"}
    assert dict(held["labels"]) == {**alert, "team": "payments", "cluster": "prod"}
    assert set(fragments.column("fingerprint").to_pylist()) == {held["fingerprint"]}
    # The fragment's labels stay the ALERTS series' own: the external labels are not stored.
    assert {tuple(labels) for labels in fragments.column("labels").to_pylist()} == {
        tuple(sorted({**alert, "team": "payments"}.items()))
    }
