"""Incident records: PagerDuty through the official client against a wire-faithful fake, the
postmortems file, the lake snapshot, and reports that take records as ground truth.

The report case (one day, 2026-11-10, 99% SLOs, failing minutes at 50% errors):
- checkout fails 11:00-11:20 and 13:00-13:10 (two impact episodes), but has postmortems:
  PM-1 11:00 -> detected 11:06 -> resolved 11:45, and PM-2 14:30 -> 14:50 -> 15:10;
  CheckoutErrors fires 11:02-11:25 (related to PM-1 only);
- payments fails 12:00-12:20 (one impact episode) and has no records; PaymentsErrors fires
  12:03-12:30.
By hand: checkout (records) MTTD (6 + 20) / 2 = 13, MTTR (45 + 40) / 2 = 42.5, recall 1/2;
payments (episodes) MTTD 3, MTTR 20, recall 1/1; all services MTTD (6 + 20 + 3) / 3,
MTTR (45 + 40 + 20) / 3, recall 2/3.
"""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import duckdb
import pytest

from obs_pipelines.config import ObsConfig, load_config
from obs_pipelines.errors import ConfigError, SourceError
from obs_pipelines.lake import Lake
from obs_pipelines.lake.catalog import build_catalog, connect
from obs_pipelines.lake.ingest import ingest_table_hour
from obs_pipelines.reporting.report_html import (
    _scorecard_table,
    incidents_basis_note,
    scorecard_rows,
)
from obs_pipelines.reporting.reports import report_connection
from obs_pipelines.sources.incidents import incident_source, read_postmortems
from obs_pipelines.windows import hour_window, utc
from tests import servers
from tests.fake_pagerduty import FakeIncident, FakeLogEntry, FakePagerDuty, serve
from tests.report_fixtures import (
    SCRAPE_MS,
    Firing,
    MetricSeries,
    make_config,
    ms,
    write_alerts,
    write_metrics,
)
from tests.test_cli import obs

pytestmark = pytest.mark.integration  # builds catalogs with every report: seconds per test

TOKEN = "pd-Sekr3t-token-9f8e"
TOKEN_ENV = "PD_TEST_TOKEN"
NOW = datetime(2026, 11, 11, 0, 30, tzinfo=UTC)
INTEGRATION = "events_api_v2_inbound_integration_reference"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1: (certificate file, key file)."""
    return servers.self_signed_certificate(tmp_path_factory.mktemp("tls"))


def entry(kind: str, at: str, agent: str = "user_reference") -> FakeLogEntry:
    return FakeLogEntry(f"{kind}_log_entry", f"2026-11-{at}Z", agent)


def pd_incidents() -> list[FakeIncident]:
    """Seven incidents: five of Checkout API (mapped by id), one of Payments (mapped by name),
    one of an unmapped service. Notify entries are not overview entries and must not matter."""
    checkout = ("PCHK001", "Checkout API")
    return [
        # Paged by Prometheus through an integration: detected when created.
        FakeIncident(
            "Q1AAA", 101, "Checkout 5xx", *checkout, "2026-11-05T10:00:00Z",
            log=[entry("trigger", "05T10:00:00", INTEGRATION), entry("notify", "05T10:00:30"),
                 entry("acknowledge", "05T10:07:00"), entry("resolve", "05T10:40:00")],
        ),
        # Opened by hand: detected at the first acknowledgement (of two).
        FakeIncident(
            "Q1BBB", 102, "Customers report slow checkout", *checkout, "2026-11-06T09:00:00Z",
            log=[entry("trigger", "06T09:00:00"), entry("acknowledge", "06T09:12:00"),
                 entry("unacknowledge", "06T09:30:00"), entry("acknowledge", "06T09:35:00"),
                 entry("resolve", "06T11:00:00")],
        ),
        # Resolved days after it started.
        FakeIncident(
            "Q1CCC", 103, "Slow burn", *checkout, "2026-11-07T22:00:00Z", priority="P2",
            log=[entry("trigger", "07T22:00:00", INTEGRATION), entry("acknowledge", "08T08:00:00"),
                 entry("resolve", "09T16:00:00")],
        ),
        # Still open, never acknowledged, opened by hand: no detection time yet.
        FakeIncident(
            "Q1DDD", 104, "Odd refunds", *checkout, "2026-11-10T20:00:00Z", status="triggered",
            log=[entry("trigger", "10T20:00:00"), entry("notify", "10T20:00:10")],
        ),
        FakeIncident(
            "Q1EEE", 105, "Checkout latency", *checkout, "2026-11-10T21:00:00Z",
            status="acknowledged",
            log=[entry("trigger", "10T21:00:00", INTEGRATION), entry("acknowledge", "10T21:02:00")],
        ),
        FakeIncident(
            "Q2AAA", 201, "Payments down", "PPAY002", "Payments", "2026-11-08T12:00:00Z",
            log=[entry("trigger", "08T12:00:00", INTEGRATION), entry("acknowledge", "08T12:01:00"),
                 entry("resolve", "08T12:31:00")],
        ),
        FakeIncident(
            "Q9ZZZ", 901, "Someone else's pager", "POTHER9", "Marketing site",
            "2026-11-09T12:00:00Z",
            log=[entry("trigger", "09T12:00:00"), entry("resolve", "09T12:10:00")],
        ),
    ]  # fmt: skip


def pd_config(tmp_path: Path, url: str, cert: str, **pagerduty: Any) -> ObsConfig:
    return make_config(
        tmp_path,
        sources={
            "incidents": {
                "pagerduty": {
                    "url": url,
                    "token_env": TOKEN_ENV,
                    "services": {"PCHK001": "checkout", "Payments": "payments"},
                    "page_size": 3,
                    "tls": {"ca_file": cert},
                    **pagerduty,
                }
            }
        },
    )


@pytest.fixture
def pagerduty(certificate: tuple[str, str]) -> Iterator[FakePagerDuty]:
    with serve(FakePagerDuty(pd_incidents(), TOKEN), certificate) as api:
        yield api


def snapshot(config: ObsConfig, now: datetime = NOW) -> int:
    """One run of the incident_records asset's work at ``now``: rows published."""
    lake = Lake(config)
    previous = lake.newest_snapshot("incident_records", "fetched_at")
    source = incident_source(config, clock=lambda: now, previous=previous)
    return ingest_table_hour(lake, source, hour_window(now)).rows


def published(config: ObsConfig, now: datetime = NOW) -> list[dict[str, Any]]:
    table = Lake(config).read_hot("incident_records", hour_window(now))
    return sorted(table.to_pylist(), key=lambda r: r["incident_id"])


def t(text: str) -> datetime:
    return datetime.fromisoformat(text)


# The requests that find the mapped services' ids, before any listing: PCHK001 by name (no
# service is named so) then by id, Payments by name.
LOOKUPS = 3


def query(request: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(request).query)


def path(request: str) -> str:
    """The request's path, with its ``query`` parameter only (the others are paging)."""
    words = query(request).get("query")
    return urlsplit(request).path + (f"?query={words[0]}" if words else "")


# --- PagerDuty ---------------------------------------------------------------------------------


def test_pagerduty_incidents_across_pages_with_log_entries(
    pagerduty: FakePagerDuty, certificate: tuple[str, str], tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    config = pd_config(tmp_path, pagerduty.url, certificate[0])

    assert snapshot(config) == 6
    got = {
        r["incident_id"]: (
            r["service"], r["status"], r["started_at"], r["detected_at"], r["detection"],
            r["acknowledged_at"], r["resolved_at"],
        )
        for r in published(config)
    }  # fmt: skip
    assert got == {
        "Q1AAA": ("checkout", "resolved", t("2026-11-05 10:00"), t("2026-11-05 10:00"),
                  "integration trigger", t("2026-11-05 10:07"), t("2026-11-05 10:40")),
        "Q1BBB": ("checkout", "resolved", t("2026-11-06 09:00"), t("2026-11-06 09:12"),
                  "first acknowledge", t("2026-11-06 09:12"), t("2026-11-06 11:00")),
        "Q1CCC": ("checkout", "resolved", t("2026-11-07 22:00"), t("2026-11-07 22:00"),
                  "integration trigger", t("2026-11-08 08:00"), t("2026-11-09 16:00")),
        "Q1DDD": ("checkout", "triggered", t("2026-11-10 20:00"), None, None, None, None),
        "Q1EEE": ("checkout", "acknowledged", t("2026-11-10 21:00"), t("2026-11-10 21:00"),
                  "integration trigger", t("2026-11-10 21:02"), None),
        "Q2AAA": ("payments", "resolved", t("2026-11-08 12:00"), t("2026-11-08 12:00"),
                  "integration trigger", t("2026-11-08 12:01"), t("2026-11-08 12:31")),
    }  # fmt: skip
    record = next(r for r in published(config) if r["incident_id"] == "Q1CCC")
    assert (record["incident_number"], record["severity"], record["source"]) == (
        103,
        "P2",
        "pagerduty",
    )
    assert record["external_service"] == "Checkout API (PCHK001)"
    assert record["fetched_at"] == datetime(2026, 11, 11, 0, 30)

    # The mapped services' ids (PCHK001 is no service's name but an id; Payments a name), then
    # their 6 incidents in pages of 3 (the 7th, of an unmapped service, is not asked for), then
    # each one's log, paged too.
    assert [path(r) for r in pagerduty.requests[:LOOKUPS]] == [
        "/services?query=PCHK001",
        "/services/PCHK001",
        "/services?query=Payments",
    ]
    listing = [query(r) for r in pagerduty.requests if r.startswith("/incidents?")]
    assert [q["offset"] for q in listing] == [["0"], ["3"]]
    assert listing[0]["service_ids[]"] == ["PCHK001", "PPAY002"]
    assert listing[0]["since"] == ["2026-10-12T00:30:00Z"]
    assert listing[0]["until"] == ["2026-11-11T00:30:00Z"]
    assert listing[0]["statuses[]"] == ["triggered", "acknowledged", "resolved"]
    logs = [r for r in pagerduty.requests if "/log_entries" in r]
    assert {r.split("/")[2] for r in logs} == {"Q1AAA", "Q1BBB", "Q1CCC", "Q1DDD", "Q1EEE", "Q2AAA"}
    assert sum("/incidents/Q1BBB/log_entries" in r for r in logs) == 2  # 5 entries, pages of 3
    assert all("is_overview=true" in r for r in logs)


def test_a_wrong_token_is_one_line_that_never_shows_the_token(
    pagerduty: FakePagerDuty, certificate: tuple[str, str], tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv(TOKEN_ENV, "pd-wrong-token-1234")
    config = pd_config(tmp_path, pagerduty.url, certificate[0])

    with pytest.raises(SourceError) as caught:
        snapshot(config)

    message = str(caught.value)
    assert message == (
        f"PagerDuty at {pagerduty.url} refused the token in {TOKEN_ENV} (401 Authentication "
        f"failed); set {TOKEN_ENV} to a valid REST API token, or fix "
        "sources.incidents.pagerduty.url for your service region"
    )
    assert "pd-wrong" not in message and "1234" not in message
    assert Lake(config).hot_partitions("incident_records") == []
    assert len(pagerduty.requests) == 1  # a 401 is not retried


def test_a_500_mid_pagination_writes_nothing_and_a_rerun_converges(
    pagerduty: FakePagerDuty, certificate: tuple[str, str], tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    config = pd_config(tmp_path, pagerduty.url, certificate[0], retries=0)
    lake = Lake(config)

    pagerduty.fail_at = LOOKUPS + 2  # the second page of /incidents
    with pytest.raises(SourceError, match=r"answered 500 to GET /incidents \(Internal Server"):
        snapshot(config)
    assert lake.hot_partitions("incident_records") == []

    pagerduty.fail_at = None
    assert snapshot(config) == 6
    first = published(config)
    assert snapshot(config) == 6  # a rerun in the same hour replaces the hour
    assert published(config) == first
    assert len(lake.hot_partitions("incident_records")) == 1

    # An hour later the open incident was resolved: a new snapshot, and the report sees one
    # incident, resolved, not two versions of it.
    still_open = next(i for i in pagerduty.incidents if i.id == "Q1DDD")
    still_open.status = "resolved"
    still_open.log.append(entry("resolve", "11T01:10:00"))
    later = NOW + timedelta(hours=1)
    assert snapshot(config, later) == 6
    build_catalog(config)
    con = report_connection(config, utc("2026-11-10T00:00:00Z"), utc("2026-11-11T00:00:00Z"))
    rows = con.execute(
        "SELECT incident_id, resolved_at, time_to_resolve_minutes, ongoing FROM incidents "
        "WHERE period = 'current' ORDER BY incident_id"
    ).fetchall()
    assert rows == [
        ("Q1DDD", datetime(2026, 11, 11, 1, 10), 310.0, True),  # resolved after the period end
        ("Q1EEE", None, None, True),
    ]
    assert con.execute("SELECT count(*) FROM incident_records").fetchone() == (12,)


def flood(count: int, service: tuple[str, str], first: str, every: timedelta) -> list[FakeIncident]:
    """``count`` resolved incidents of ``service`` (id, name), one each ``every`` from
    ``first``, each triggered by an integration."""
    start = t(first)
    created = [(start + n * every).strftime("%Y-%m-%dT%H:%M:%SZ") for n in range(count)]
    return [
        FakeIncident(f"QF{n:06d}", 1000 + n, "Disk full", *service, at,
                     log=[FakeLogEntry("trigger_log_entry", at, INTEGRATION)])
        for n, at in enumerate(created)
    ]  # fmt: skip


def test_other_services_incidents_do_not_crowd_ours_out_of_the_listing(
    pagerduty: FakePagerDuty, certificate: tuple[str, str], tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    config = pd_config(tmp_path, pagerduty.url, certificate[0], page_size=100)
    # Another team's noisy service: 10,050 incidents before ours, past classic pagination's
    # 10,000 results if the listing asked for every service's.
    others = flood(
        10_050, ("POTHER9", "Marketing site"), "2026-10-13T00:00:00Z", timedelta(minutes=2)
    )
    pagerduty.incidents = pagerduty.incidents + others

    assert snapshot(config) == 6
    assert {r["incident_id"] for r in published(config)} == {
        "Q1AAA", "Q1BBB", "Q1CCC", "Q1DDD", "Q1EEE", "Q2AAA"
    }  # fmt: skip
    listing = [query(r) for r in pagerduty.requests if r.startswith("/incidents?")]
    assert [q["service_ids[]"] for q in listing] == [["PCHK001", "PPAY002"]]


def test_a_mapped_service_pagerduty_does_not_know_is_one_line(
    pagerduty: FakePagerDuty, certificate: tuple[str, str], tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    services = {"PCHK001": "checkout", "Paymnets": "payments"}
    config = pd_config(tmp_path, pagerduty.url, certificate[0], services=services)

    with pytest.raises(SourceError) as caught:
        snapshot(config)

    assert str(caught.value) == (
        f"PagerDuty at {pagerduty.url} has no service named 'Paymnets' or with that id; nothing "
        "was written; fix the key under sources.incidents.pagerduty.services"
    )


def test_more_incidents_than_pagination_serves_are_listed_in_halves_of_since(
    pagerduty: FakePagerDuty, certificate: tuple[str, str], tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    config = pd_config(
        tmp_path, pagerduty.url, certificate[0], page_size=100, services={"PCHK001": "checkout"}
    )
    # A service paging once a minute for a week: 10,050 incidents within since (30 days).
    pagerduty.incidents = flood(
        10_050, ("PCHK001", "Checkout API"), "2026-11-01T00:00:00Z", timedelta(minutes=1)
    )

    assert snapshot(config) == 10_050
    assert len({r["incident_id"] for r in published(config)}) == 10_050
    spans = [
        (q["since"][0], q["until"][0])
        for r in pagerduty.requests
        if r.startswith("/incidents?") and (q := query(r))["offset"] == ["0"]
    ]
    assert spans == [
        ("2026-10-12T00:30:00Z", "2026-11-11T00:30:00Z"),  # total 10,050: halved
        ("2026-10-12T00:30:00Z", "2026-10-27T00:30:00Z"),  # none
        ("2026-10-27T00:30:00Z", "2026-11-11T00:30:00Z"),  # all 10,050: halved again
        ("2026-10-27T00:30:00Z", "2026-11-03T12:30:00Z"),  # 3,630 (to 2026-11-03T12:29)
        ("2026-11-03T12:30:00Z", "2026-11-11T00:30:00Z"),  # 6,420
    ]


def test_more_incidents_in_one_second_than_pagination_serves_is_one_line_not_a_truncation(
    pagerduty: FakePagerDuty, certificate: tuple[str, str], tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    config = pd_config(
        tmp_path, pagerduty.url, certificate[0], page_size=100, services={"PCHK001": "checkout"}
    )
    pagerduty.incidents = flood(
        10_001, ("PCHK001", "Checkout API"), "2026-11-10T12:00:00Z", timedelta(0)
    )

    with pytest.raises(SourceError) as caught:
        snapshot(config)

    assert str(caught.value) == (
        f"PagerDuty at {pagerduty.url} holds more than 10,000 incidents of the mapped services "
        "created in the second from 2026-11-10T12:00:00Z, more than its API lists; nothing was "
        "written; map fewer services under sources.incidents.pagerduty.services"
    )
    assert not [r for r in pagerduty.requests if "/log_entries" in r]
    assert Lake(config).hot_partitions("incident_records") == []


RATE_LIMIT_FIX = (
    "nothing was written; the next run starts over; if other tools share the account's rate "
    "limit, run them at other times, or raise sources.incidents.pagerduty.retries and timeout"
)


def test_pagerduty_rate_limiting_past_the_retries_is_one_line_and_a_rerun_converges(
    pagerduty: FakePagerDuty, certificate: tuple[str, str], tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    config = pd_config(
        tmp_path, pagerduty.url, certificate[0], retries=2, retry_backoff_seconds=0.001
    )
    pagerduty.rate_limit_at = range(LOOKUPS + 1, LOOKUPS + 13)  # a dozen /incidents in a row

    with pytest.raises(SourceError) as caught:
        snapshot(config)

    assert str(caught.value) == (
        f"PagerDuty at {pagerduty.url} kept rate-limiting GET /incidents (429 Too Many "
        f"Requests 3 times); {RATE_LIMIT_FIX}"
    )
    assert len(pagerduty.requests) == LOOKUPS + 3  # the first try and its 2 retries
    assert Lake(config).hot_partitions("incident_records") == []

    pagerduty.rate_limit_at = ()
    assert snapshot(config) == 6


def test_pagerduty_asking_to_wait_past_the_timeout_fails_at_once_and_a_shorter_wait_is_kept(
    pagerduty: FakePagerDuty, certificate: tuple[str, str], tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    config = pd_config(
        tmp_path, pagerduty.url, certificate[0], timeout="5s", retry_backoff_seconds=0.001
    )
    pagerduty.rate_limit_at, pagerduty.retry_after = {LOOKUPS + 1}, "120"

    with pytest.raises(SourceError) as caught:
        snapshot(config)

    assert str(caught.value) == (
        f"PagerDuty at {pagerduty.url} kept rate-limiting GET /incidents (429 Too Many "
        "Requests 1 time, the next try due in 120s, past sources.incidents.pagerduty.timeout "
        f"(5s)); {RATE_LIMIT_FIX}"
    )
    assert len(pagerduty.requests) == LOOKUPS + 1

    rerun = len(pagerduty.requests) + LOOKUPS + 1  # the rerun's first /incidents
    pagerduty.rate_limit_at, pagerduty.retry_after = {rerun}, "1"
    assert snapshot(config) == 6
    assert pagerduty.requests[rerun - 1] == pagerduty.requests[rerun]  # again, after the wait


def test_pagerduty_trickling_its_answer_fails_at_the_timeout_in_one_line(
    pagerduty: FakePagerDuty, certificate: tuple[str, str], tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    config = pd_config(tmp_path, pagerduty.url, certificate[0], timeout="1s", retries=0)
    pagerduty.trickle_at = {LOOKUPS + 1}  # each read gets a few bytes well within the timeout

    with pytest.raises(SourceError) as caught:
        snapshot(config)

    assert str(caught.value) == (
        f"PagerDuty at {pagerduty.url} did not answer GET /incidents within 1s "
        "(sources.incidents.pagerduty.timeout: retries and their waits included); nothing was "
        "written; check PagerDuty's status, or raise the timeout"
    )
    assert Lake(config).hot_partitions("incident_records") == []


def test_an_incident_open_at_the_last_snapshot_is_read_again_after_it_leaves_since(
    pagerduty: FakePagerDuty, certificate: tuple[str, str], tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    config = pd_config(tmp_path, pagerduty.url, certificate[0])
    assert snapshot(config) == 6  # Q1DDD (triggered) and Q1EEE (acknowledged) are open

    # 40 days on, both were created before `since` (30 days): Q1DDD was resolved meanwhile,
    # Q1EEE is still open, and a long-closed one (Q1AAA) is not asked for again.
    later = NOW + timedelta(days=40)
    resolved = next(i for i in pagerduty.incidents if i.id == "Q1DDD")
    resolved.status = "resolved"
    resolved.log.append(entry("resolve", "12T08:00:00"))
    pagerduty.requests.clear()
    assert snapshot(config, later) == 2
    again = {r["incident_id"]: (r["status"], r["resolved_at"]) for r in published(config, later)}
    assert again == {
        "Q1DDD": ("resolved", datetime(2026, 11, 12, 8, 0)),
        "Q1EEE": ("acknowledged", None),
    }
    fetched = sorted(path(r) for r in pagerduty.requests[LOOKUPS:] if "/log_entries" not in r)
    assert fetched == ["/incidents", "/incidents/Q1DDD", "/incidents/Q1EEE"]

    # The next snapshot carries only Q1EEE forward; an id PagerDuty no longer knows is dropped.
    pagerduty.incidents = [i for i in pagerduty.incidents if i.id != "Q1EEE"]
    assert snapshot(config, later + timedelta(hours=1)) == 0


def test_config_refuses_plain_http_and_needs_the_token_variable(
    tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    section = {"token_env": TOKEN_ENV, "services": {"PX": "checkout"}}
    with pytest.raises(ConfigError, match=r"talks HTTPS only; write https://pd\.example:8443"):
        make_config(
            tmp_path,
            sources={"incidents": {"pagerduty": {**section, "url": "http://pd.example:8443"}}},
        )
    monkeypatch.delenv(TOKEN_ENV)
    with pytest.raises(
        ConfigError,
        match=rf"sources\.incidents\.pagerduty\.token_env: environment variable {TOKEN_ENV} is "
        "not set",
    ):
        make_config(tmp_path, sources={"incidents": {"pagerduty": section}})


# --- postmortems -------------------------------------------------------------------------------

CSV_TEXT = """service,started_at,detected_at,resolved_at,id,title,severity
checkout,2026-11-10T11:00:00Z,2026-11-10T11:06:00Z,2026-11-10T11:45:00Z,PM-1,Checkout outage,SEV1
checkout,2026-11-10T16:30:00+02:00,2026-11-10T16:50:00+02:00,2026-11-10T17:10:00+02:00,,"Refunds, late",
"""

YAML_TEXT = """postmortems:
  - service: checkout
    started_at: 2026-11-10T11:00:00Z
    detected_at: 2026-11-10T11:06:00Z
    resolved_at: 2026-11-10T11:45:00Z
    id: PM-1
    title: Checkout outage
    severity: SEV1
  - service: checkout
    started_at: "2026-11-10T16:30:00+02:00"
    detected_at: 2026-11-10T16:50:00+02:00
    resolved_at: 2026-11-10T17:10:00+02:00
    title: Refunds, late
"""


@pytest.mark.parametrize(
    ("name", "text"),
    [("pm.csv", CSV_TEXT), ("pm.csv", "\ufeff" + CSV_TEXT), ("pm.yaml", YAML_TEXT)],
    ids=["csv", "csv with Excel's byte order mark", "yaml"],
)
def test_postmortems_from_csv_and_yaml(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)

    records = read_postmortems(path, {"checkout"})

    assert [
        (r["incident_id"], r["title"], r["severity"], r["started_at"], r["detected_at"],
         r["resolved_at"], r["status"], r["detection"])
        for r in records
    ] == [
        ("PM-1", "Checkout outage", "SEV1", utc("2026-11-10T11:00:00Z"),
         utc("2026-11-10T11:06:00Z"), utc("2026-11-10T11:45:00Z"), "resolved", "postmortem"),
        ("checkout@2026-11-10T14:30:00Z", "Refunds, late", None, utc("2026-11-10T14:30:00Z"),
         utc("2026-11-10T14:50:00Z"), utc("2026-11-10T15:10:00Z"), "resolved", "postmortem"),
    ]  # fmt: skip


MALFORMED = [
    (
        "pm.csv",
        "service,started_at,detected_at,resolved_at\ncheckout,2026-11-10 11:00,,\n",
        "pm.csv: line 2: started_at '2026-11-10 11:00' has no time zone; write it in UTC as "
        "2026-11-10T11:00:00Z or with its offset (+02:00)",
    ),
    (
        "pm.csv",
        "service,started_at,resolved_at\ncheckout,2026-11-10T11:00:00Z,\n",
        "pm.csv: line 1 (header): detected_at missing; every postmortem has service, started_at, "
        "detected_at, resolved_at (optional: id, title, severity)",
    ),
    (
        "pm.csv",
        "service,started_at,detected_at,resolved_at\n"
        "checkout,2026-11-10T11:00:00Z,,2026-11-10T11:30:00Z\n"
        "checkout,2026-11-10T12:00:00Z,,2026-11-10T11:30:00Z\n",
        "pm.csv: line 3: resolved_at 2026-11-10T11:30:00Z is before started_at "
        "2026-11-10T12:00:00Z; fix one of them",
    ),
    (
        "pm.csv",
        "service,started_at,detected_at,resolved_at\ncheckout,yesterday,,\n",
        "pm.csv: line 2: started_at 'yesterday' is not an ISO 8601 time; write it as "
        "2026-11-10T11:00:00Z",
    ),
    (
        "pm.yaml",
        "- service: chekout\n  started_at: 2026-11-10T11:00:00Z\n  detected_at: ''\n"
        "  resolved_at: ''\n",
        "pm.yaml: entry 1 (line 1): service 'chekout' is not under services in the config; fix "
        "the name or add the service",
    ),
    (
        "pm.yaml",
        "- service: checkout\n  started_at: 2026-11-10T11:00:00Z\n  detected_at: ''\n"
        "  resolved_at: ''\n  ended_at: ''\n",
        "pm.yaml: entry 1 (line 1): unknown 'ended_at'; the fields are service, started_at, "
        "detected_at, resolved_at, id, title, severity",
    ),
    (
        "pm.yaml",
        "service: checkout\n",
        "pm.yaml: expected a list of postmortems (or postmortems: [...]); write one mapping per "
        "incident with service, started_at, detected_at, resolved_at",
    ),
]


def postmortems_config(tmp_path: Path, name: str) -> Path:
    """A config file whose one service is checkout and whose postmortems are ``name``."""
    config_file = tmp_path / "obs.yaml"
    config_file.write_text(
        "services: [{name: checkout, owner: team}]\n"
        f"sources: {{incidents: {{postmortems: {name}}}}}\n"
        f"lake: {{root: {tmp_path / 'lake'}}}\n"
    )
    return config_file


@pytest.mark.parametrize(("name", "text", "error"), MALFORMED)
def test_a_malformed_postmortems_file_is_refused_at_load_in_one_line(
    tmp_path: Path, name: str, text: str, error: str
) -> None:
    (tmp_path / name).write_text(text)
    config_file = postmortems_config(tmp_path, name)

    with pytest.raises(ConfigError) as caught:
        load_config(config_file)

    assert str(caught.value) == f"{config_file}: {tmp_path / error}"
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("name", "text", "line"), [("pm.csv", CSV_TEXT, 3), ("pm.yaml", YAML_TEXT, 13)]
)
def test_a_postmortems_file_not_in_utf8_is_refused_at_load_naming_the_line(
    tmp_path: Path, name: str, text: str, line: int
) -> None:
    # Saved as Latin-1 (Excel's plain "CSV"): "é" is the single byte 0xe9.
    (tmp_path / name).write_bytes(text.replace("Refunds", "Remboursés").encode("latin-1"))
    config_file = postmortems_config(tmp_path, name)

    with pytest.raises(ConfigError) as caught:
        load_config(config_file)
    done = obs("--config", str(config_file), "query", "SELECT 1")

    error = f"{tmp_path / name}: line {line}: byte 0xe9 is not UTF-8; save the file as UTF-8"
    assert str(caught.value) == f"{config_file}: {error}"
    assert done.returncode == 2
    assert done.stderr == f"obs: error: {config_file}: {error}\n"


def test_the_incidents_asset_exists_only_when_configured(tmp_path: Path) -> None:
    from obs_pipelines.definitions import build_definitions

    (tmp_path / "pm.csv").write_text(CSV_TEXT)
    base = f"lake: {{root: {tmp_path / 'lake'}}}\n"
    without, with_records = tmp_path / "without.yaml", tmp_path / "with.yaml"
    without.write_text(base)
    with_records.write_text(base + "sources: {incidents: {postmortems: pm.csv}}\n")

    def keys(path: Path) -> set[str]:
        graph = build_definitions(str(path)).get_repository_def().asset_graph
        return {k.to_user_string() for k in graph.get_all_asset_keys()}

    assert "incident_records" not in keys(without)
    assert "incident_records" in keys(with_records)


def test_the_incidents_asset_publishes_the_records_and_checks_them_through_dagster(
    tmp_path: Path,
) -> None:
    from dagster import DagsterInstance, materialize

    from assets.incidents import build_incident_records
    from assets.resources import ObsResource

    (tmp_path / "pm.csv").write_text(CSV_TEXT)
    config_path = tmp_path / "obs.yaml"
    config_path.write_text(
        f"lake: {{root: {tmp_path / 'lake'}}}\n"
        "services: [{name: checkout, owner: shop}]\n"
        "sources: {incidents: {postmortems: pm.csv}}\n"
    )

    result = materialize(
        [build_incident_records()],
        resources={"obs": ObsResource(config_path=str(config_path))},
        instance=DagsterInstance.ephemeral(),
    )

    (check,) = result.get_asset_check_evaluations()
    assert result.success and check.check_name == "records" and check.passed
    con = connect(load_config(config_path), read_only=True)
    rows = con.execute(
        "SELECT service, epoch(started_at), epoch(resolved_at) FROM incident_records "
        "ORDER BY started_at"
    ).fetchall()
    assert rows == [
        ("checkout", t("2026-11-10T11:00:00Z").timestamp(), t("2026-11-10T11:45:00Z").timestamp()),
        ("checkout", t("2026-11-10T14:30:00Z").timestamp(), t("2026-11-10T15:10:00Z").timestamp()),
    ]


# --- reports -----------------------------------------------------------------------------------

DAY = "2026-11-10"


def at(hhmm: str) -> int:
    return ms(f"{DAY}T{hhmm}:00Z")


def traffic(service: str, outages: list[tuple[int, int]]) -> list[MetricSeries]:
    ok, failed = [], []
    good = bad = 0
    ts = at("10:00") + 5_000
    while ts < at("16:00"):
        failing = any(a <= ts < b for a, b in outages)
        good += 50 if failing else 100
        bad += 50 if failing else 0
        ok.append((ts, float(good)))
        failed.append((ts, float(bad)))
        ts += SCRAPE_MS
    return [
        MetricSeries("requests_total", {"service": service, "code": "200"}, ok),
        MetricSeries("requests_total", {"service": service, "code": "500"}, failed),
    ]


def slo(service: str) -> dict[str, Any]:
    return {
        "name": f"{service}_availability",
        "service": service,
        "objective": 0.99,
        "window": "1d",
        "sli": {
            "type": "ratio",
            "bad": f'requests_total{{service="{service}",code="500"}}',
            "total": f'requests_total{{service="{service}"}}',
        },
    }


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> duckdb.DuckDBPyConnection:
    root = tmp_path_factory.mktemp("incident_reports")
    (root / "postmortems.yaml").write_text(
        "- {service: checkout, id: PM-1, started_at: '2026-11-10T11:00:00Z',"
        " detected_at: '2026-11-10T11:06:00Z', resolved_at: '2026-11-10T11:45:00Z'}\n"
        "- {service: checkout, id: PM-2, started_at: '2026-11-10T14:30:00Z',"
        " detected_at: '2026-11-10T14:50:00Z', resolved_at: '2026-11-10T15:10:00Z'}\n"
    )
    config = make_config(
        root,
        services=[{"name": "checkout", "owner": "a"}, {"name": "payments", "owner": "b"}],
        slos=[slo("checkout"), slo("payments")],
        sources={"incidents": {"postmortems": "postmortems.yaml"}},
    )
    lake = Lake(config)
    write_metrics(
        lake,
        [
            *traffic("checkout", [(at("11:00"), at("11:20")), (at("13:00"), at("13:10"))]),
            *traffic("payments", [(at("12:00"), at("12:20"))]),
        ],
    )
    write_alerts(
        lake,
        [
            Firing("CheckoutErrors", {"service": "checkout"}, at("11:02"), at("11:25")),
            Firing("PaymentsErrors", {"service": "payments"}, at("12:03"), at("12:30")),
        ],
    )
    snapshot(config, datetime(2026, 11, 10, 16, 5, tzinfo=UTC))
    build_catalog(config)
    return report_connection(config, utc(f"{DAY}T00:00:00Z"), utc("2026-11-11T00:00:00Z"))


def dicts(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def test_records_are_the_ground_truth_where_they_exist_and_episodes_elsewhere(
    report: duckdb.DuckDBPyConnection,
) -> None:
    # checkout's impact episodes exist (11:00 and 13:00), but its records replace them.
    episodes = report.execute(
        "SELECT service, count(*) FROM impact_episodes WHERE period = 'current' GROUP BY 1 "
        "ORDER BY 1"
    ).fetchall()
    assert episodes == [("checkout", 2), ("payments", 1)]

    incidents = dicts(
        report,
        "SELECT service, basis, incident_id, time_to_detect_minutes, time_to_resolve_minutes, "
        "alerts, alert_detected FROM incidents WHERE period = 'current' ORDER BY started_at",
    )
    assert [tuple(i.values()) for i in incidents] == [
        ("checkout", "records", "PM-1", 6.0, 45.0, ["CheckoutErrors"], True),
        ("payments", "impact episodes", "payments@2026-11-10T12:00Z", 3.0, 20.0,
         ["PaymentsErrors"], True),
        ("checkout", "records", "PM-2", 20.0, 40.0, [], False),
    ]  # fmt: skip

    summary = {
        r["scope"] + ":" + str(r["service"]): r
        for r in dicts(report, "SELECT * FROM incident_summary WHERE period = 'current'")
    }
    checkout, payments = summary["service:checkout"], summary["service:payments"]
    overall = summary["all services:None"]
    assert (checkout["basis"], checkout["incidents"], checkout["mttd_minutes"]) == (
        "records",
        2,
        13.0,
    )
    assert (checkout["mttr_minutes"], checkout["alert_recall"]) == (42.5, 0.5)
    assert (payments["basis"], payments["incidents"], payments["mttd_minutes"]) == (
        "impact episodes",
        1,
        3.0,
    )
    assert (payments["mttr_minutes"], payments["alert_recall"]) == (20.0, 1.0)
    assert overall["basis"] == "records and impact episodes"
    assert overall["mttd_minutes"] == pytest.approx((6 + 20 + 3) / 3)
    assert overall["mttr_minutes"] == pytest.approx((45 + 40 + 20) / 3)
    assert overall["alert_recall"] == pytest.approx(2 / 3)


def test_alert_recall_and_the_scorecard_say_which_basis_they_used(
    report: duckdb.DuckDBPyConnection,
) -> None:
    quality = {
        str(r["alertname"]): r
        for r in dicts(report, "SELECT * FROM alert_quality WHERE period = 'current'")
    }
    checkout, payments = quality["CheckoutErrors"], quality["PaymentsErrors"]
    assert (checkout["impact_episodes"], checkout["detected_episodes"]) == (2, 1)
    assert (checkout["recall"], checkout["basis"], checkout["mean_detection_minutes"]) == (
        0.5,
        "records",
        2.0,  # fired at 11:02, PM-1 started at 11:00
    )
    assert (payments["recall"], payments["basis"], payments["mean_detection_minutes"]) == (
        1.0,
        "impact episodes",
        3.0,
    )
    overall = quality["None"]
    assert (overall["impact_episodes"], overall["detected_episodes"]) == (3, 2)
    assert overall["basis"] == "records and impact episodes"

    card = {
        r["metric"]: r for r in dicts(report, "SELECT metric, current_value, basis FROM scorecard")
    }
    assert card["Mean time to detection"]["current_value"] == pytest.approx((6 + 20 + 3) / 3)
    assert card["Mean time to resolution"]["current_value"] == pytest.approx((45 + 40 + 20) / 3)
    assert card["Mean time to detection"]["basis"] == "records and impact episodes"
    assert card["Mean time to resolution"]["basis"] == "records and impact episodes"
    assert card["System uptime"]["basis"] is None


def test_the_printed_scorecard_says_which_incidents_mttd_and_mttr_were_measured_on(
    report: duckdb.DuckDBPyConnection,
) -> None:
    rows = scorecard_rows(report)

    assert incidents_basis_note(rows) == "MTTD and MTTR measured on: records and impact episodes"
    assert "MTTD and MTTR measured on: records and impact episodes" in _scorecard_table(rows)


def test_a_firing_during_a_recorded_incident_the_slos_did_not_see_is_no_noise(
    tmp_path: Path,
) -> None:
    (tmp_path / "postmortems.yaml").write_text(
        "- {service: checkout, id: PM-9, started_at: '2026-11-10T14:30:00Z',"
        " detected_at: '2026-11-10T14:40:00Z', resolved_at: '2026-11-10T15:10:00Z'}\n"
    )
    config = make_config(
        tmp_path,
        services=[{"name": "checkout", "owner": "a"}],
        slos=[slo("checkout")],
        sources={"incidents": {"postmortems": "postmortems.yaml"}},
    )
    lake = Lake(config)
    write_metrics(lake, traffic("checkout", [(at("11:00"), at("11:20"))]))
    write_alerts(
        lake,
        [
            Firing("CheckoutErrors", {"service": "checkout"}, at("11:02"), at("11:25")),
            Firing("CheckoutQueue", {"service": "checkout"}, at("14:35"), at("14:50")),
            Firing("CheckoutQueue", {"service": "checkout"}, at("15:30"), at("15:40")),
        ],
    )
    snapshot(config, datetime(2026, 11, 10, 16, 5, tzinfo=UTC))
    build_catalog(config)
    con = report_connection(config, utc(f"{DAY}T00:00:00Z"), utc("2026-11-11T00:00:00Z"))

    quality = {
        str(r["alertname"]): r
        for r in dicts(con, "SELECT * FROM alert_quality WHERE period = 'current'")
    }
    noise = con.execute(
        "SELECT current_value FROM scorecard WHERE metric = 'Alert noise ratio'"
    ).fetchone()

    # 11:02: the SLO episode (no record); 14:35: PM-9 (no SLO impact); 15:30: nothing.
    assert (quality["CheckoutErrors"]["firings"], quality["CheckoutErrors"]["precision"]) == (1, 1)
    assert (quality["CheckoutQueue"]["matched_firings"], quality["CheckoutQueue"]["precision"]) == (
        1,
        0.5,
    )
    assert quality["None"]["noise_ratio"] == pytest.approx(1 / 3)
    assert noise == (pytest.approx(1 / 3),)


PM_HEADER = "id,service,started_at,detected_at,resolved_at\n"
PM_1 = "PM-1,checkout,2026-11-10T11:00:00Z,2026-11-10T11:06:00Z,2026-11-10T11:45:00Z\n"
PM_2 = "PM-2,checkout,2026-11-10T14:30:00Z,2026-11-10T14:50:00Z,2026-11-10T15:10:00Z\n"


def after_each_run(config: ObsConfig, files: list[str], sql: str) -> list[list[tuple[Any, ...]]]:
    """``sql``'s rows over 2026-11-10 after each of hourly runs that find the postmortems file
    holding each of ``files`` (rows after the header) in turn."""
    build_catalog(config)  # its views read the newest version of each table when queried
    answers = []
    for hour, rows in enumerate(files, start=1):
        (config.base_dir / "postmortems.csv").write_text(PM_HEADER + rows)
        snapshot(config, datetime(2026, 11, 11, hour, 5, tzinfo=UTC))
        con = report_connection(config, utc(f"{DAY}T00:00:00Z"), utc("2026-11-11T00:00:00Z"))
        answers.append(con.execute(sql).fetchall())
        con.close()
    return answers


def test_postmortems_deleted_from_the_file_leave_the_reports_the_last_one_too(
    tmp_path: Path,
) -> None:
    (tmp_path / "postmortems.csv").write_text(PM_HEADER)
    config = make_config(
        tmp_path,
        services=[{"name": "checkout", "owner": "a"}],
        sources={"incidents": {"postmortems": "postmortems.csv"}},
    )

    summaries = after_each_run(
        config,
        [PM_1 + PM_2, PM_2, ""],
        "SELECT incidents, mttd_minutes, mttr_minutes FROM incident_summary "
        "WHERE period = 'current' AND scope = 'all services'",
    )

    # By hand: (6 + 20) / 2 and (45 + 40) / 2; then PM-2 alone; then no incident at all.
    assert summaries == [[(2, 13.0, 42.5)], [(1, 20.0, 40.0)], [(0, None, None)]]


def test_an_emptied_postmortems_file_beside_pagerduty_leaves_pagerdutys_incidents_alone(
    pagerduty: FakePagerDuty, certificate: tuple[str, str], tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    (tmp_path / "postmortems.csv").write_text(PM_HEADER)
    config = make_config(
        tmp_path,
        sources={
            "incidents": {
                "postmortems": "postmortems.csv",
                "pagerduty": {
                    "url": pagerduty.url,
                    "token_env": TOKEN_ENV,
                    "services": {"PCHK001": "checkout"},
                    "tls": {"ca_file": certificate[0]},
                },
            }
        },
    )

    incidents = after_each_run(
        config,
        [PM_1 + PM_2, ""],
        "SELECT source, incident_id FROM incidents WHERE period = 'current' ORDER BY ALL",
    )

    pagerdutys = [("pagerduty", "Q1DDD"), ("pagerduty", "Q1EEE")]  # created on 2026-11-10
    assert incidents == [
        [*pagerdutys, ("postmortems", "PM-1"), ("postmortems", "PM-2")],
        pagerdutys,
    ]
