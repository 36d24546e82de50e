"""The HTML report opened in a real headless Chromium: every chart drawn, no request made.

Two simulated hours around Wednesday's api-outage feed it (metrics, alerts, rules). Chromium loads
the file with every host name unresolvable and a proxy that counts connection attempts; the DOM it
builds is compared with what the report views say should be drawn.
"""

import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from itertools import accumulate
from pathlib import Path

import pytest
import yaml

from obs_pipelines.config import ObsConfig, load_config
from obs_pipelines.lake import Lake
from obs_pipelines.lake.catalog import build_catalog
from obs_pipelines.lake.ingest import ingest_metrics_hour, ingest_table_hour
from obs_pipelines.reporting.derived import derive
from obs_pipelines.reporting.report_html import (
    chart_step,
    findings,
    hourly_bad_shares,
    render_report,
    scorecard_text,
)
from obs_pipelines.reporting.reports import pin_reports, report_connection
from obs_pipelines.sources import metric_source, table_source
from obs_pipelines.sources.incidents import incident_source
from obs_pipelines.windows import TimeWindow, hour_window, utc
from tests.report_fixtures import (
    MINUTE_MS,
    SCRAPE_MS,
    MetricSeries,
    make_config,
    ms,
    write_metrics,
)

pytestmark = pytest.mark.integration  # builds catalogs with every report: seconds per test

REPO = Path(__file__).resolve().parent.parent
START, END = utc("2026-11-04T00:00:00Z"), utc("2026-11-05T00:00:00Z")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> ObsConfig:
    root = tmp_path_factory.mktemp("html")
    raw = yaml.safe_load((REPO / "obs.yaml").read_text())
    raw["lake"] = {"root": str(root / "lake"), "catalog": str(root / "lake" / "obs.duckdb")}
    (root / "obs.yaml").write_text(yaml.safe_dump(raw))
    config = load_config(root / "obs.yaml")
    lake = Lake(config)
    for hour in TimeWindow(utc("2026-11-04T14:00:00Z"), utc("2026-11-04T16:00:00Z")).hours():
        ingest_metrics_hour(lake, metric_source(config), hour)
        for dataset in ("alert_fragments", "alert_rules"):
            source = table_source(config, dataset)
            assert source is not None
            ingest_table_hour(lake, source, hour)
    derive(config, TimeWindow(utc("2026-11-04T14:00:00Z"), utc("2026-11-04T16:00:00Z")))
    build_catalog(config)
    return config


@pytest.fixture(scope="module")
def report(config: ObsConfig, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render_report(config, START, END, tmp_path_factory.mktemp("out") / "report.html")


class ConnectionCounter:
    """A TCP listener standing in for a proxy: it only counts who tries to connect."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.attempts = 0
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.attempts += 1
            conn.close()

    def close(self) -> None:
        self.running = False
        self.thread.join(timeout=2)
        self.sock.close()


@pytest.fixture(scope="module")
def rendered(report: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """(DOM after load, connection attempts) from headless Chromium."""
    if CHROMIUM is None:
        pytest.skip(
            "chromium is not installed; apt-get install -y --no-install-recommends chromium"
        )
    counter = ConnectionCounter()
    profile = tmp_path_factory.mktemp("chromium-profile")
    try:
        done = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--host-resolver-rules=MAP * ~NOTFOUND",
                f"--proxy-server=127.0.0.1:{counter.port}",
                "--proxy-bypass-list=<-loopback>",
                "--virtual-time-budget=2000",
                "--dump-dom",
                report.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=90,
            check=True,
        )
        yield done.stdout, counter.attempts
    finally:
        counter.close()


class Marks(HTMLParser):
    """Every SVG chart in a DOM, the classes of the marks drawn in it and their paths' data."""

    def __init__(self) -> None:
        super().__init__()
        self.charts: list[dict[str, object]] = []
        self.inside = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "svg":
            self.inside = True
            self.charts.append({"attrs": attributes, "marks": [], "paths": {}})
        elif self.inside:
            for cls in (attributes.get("class") or "").split():
                self.charts[-1]["marks"].append(f"{tag}.{cls}")  # type: ignore[union-attr]
                if tag == "path":
                    self.charts[-1]["paths"][cls] = attributes.get("d") or ""  # type: ignore[index]

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self.inside = False


def charts(dom: str, kind: str) -> list[dict[str, object]]:
    parser = Marks()
    parser.feed(dom)
    return [c for c in parser.charts if c["attrs"]["data-chart"] == kind]  # type: ignore[index]


def count(chart: dict[str, object], mark: str) -> int:
    return chart["marks"].count(mark)  # type: ignore[union-attr]


def test_the_report_file_references_nothing_outside_itself(report: Path) -> None:
    text = report.read_text()

    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", text, re.IGNORECASE)
    assert not re.search(
        r"<(script|link|img|iframe|object)\b|\bsrc=|url\(|@import", text, re.IGNORECASE
    )


def test_chromium_loads_the_report_without_any_network_request(rendered: tuple[str, int]) -> None:
    dom, attempts = rendered

    assert attempts == 0
    assert "Reliability report 2026-11-04 to 2026-11-05" in dom


def test_every_chart_is_drawn_with_the_marks_the_data_calls_for(
    rendered: tuple[str, int], config: ObsConfig
) -> None:
    dom, _ = rendered
    con = report_connection(config, START, END)
    slos = [
        name
        for (name,) in con.execute("SELECT slo_name FROM slo_definitions ORDER BY 1").fetchall()
    ]
    alerts = con.execute(
        "SELECT count(*) FROM alert_quality WHERE period = 'current' AND scope = 'alert'"
    ).fetchone()[0]
    services = con.execute(
        "SELECT count(DISTINCT service) FROM coverage WHERE period = 'current'"
    ).fetchone()[0]
    api_firings = con.execute(
        "SELECT count(*) FROM alert_firings WHERE current_minutes > 0 AND service = 'waardhaven-api'"
    ).fetchone()[0]
    con.close()

    burn_down = charts(dom, "burn-down")
    assert [c["attrs"]["data-slo"] for c in burn_down] == slos  # type: ignore[index]
    assert all(count(c, "path.budget-line") == 1 for c in burn_down)
    burn_rate = {c["attrs"]["data-slo"]: c for c in charts(dom, "burn-rate")}  # type: ignore[index]
    availability = burn_rate["api_availability"]
    assert (count(availability, "rect.impact"), count(availability, "path.burn-line")) == (1, 1)
    assert count(availability, "rect.alert") == api_firings == 3
    noise = charts(dom, "alert-noise")[0]
    assert count(noise, "rect.bar") == 2 * alerts and alerts == 2
    heatmap = charts(dom, "coverage")[0]
    assert count(heatmap, "rect.cell") == 6 * services
    assert count(heatmap, "rect.missing") > 0


def test_scorecard_text_is_an_aligned_table_of_the_five_success_metrics(config: ObsConfig) -> None:
    text = scorecard_text(config, START, END)

    lines = text.splitlines()
    assert lines[0] == "Scorecard 2026-11-04 00:00 .. 2026-11-05 00:00 UTC"
    assert lines[1].split() == ["Metric", "Target", "Current", "Previous", "Change", "Status"]
    assert [line.split("  ")[0] for line in lines[3:8]] == [
        "System uptime",
        "Alert noise ratio",
        "Mean time to detection",
        "Mean time to resolution",
        "Monitoring coverage",
    ]
    target_column = lines[1].index("Target")
    assert [line[target_column:].split("  ")[0] for line in lines[3:8]] == [
        "> 99.9%",
        "< 5%",
        "< 5 minutes",
        "< 30 minutes",
        "> 95%",
    ]
    assert lines[5].endswith("PASS") and "min" in lines[5]
    assert lines[8:] == ["MTTD and MTTR measured on: impact episodes"]


class Tables(HTMLParser):
    """The text of every cell of every ``<table>`` in a document, row by row."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.cell = []

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self.cell is not None:
            self.tables[-1][-1].append("".join(self.cell))
            self.cell = None


def incident_rows(page: str) -> list[list[str]]:
    parser = Tables()
    parser.feed(page)
    return next(t for t in parser.tables if t[0][:3] == ["Service", "Start (UTC)", "End"])[1:]


def test_incidents_still_open_or_not_yet_detected_are_reported_as_such(tmp_path: Path) -> None:
    """Postmortems of incidents still open (no resolved_at) and not yet detected (no
    detected_at) are valid records: the report shows them as ongoing and undetected."""
    (tmp_path / "postmortems.csv").write_text(
        "service,id,started_at,detected_at,resolved_at\n"
        "checkout,PM-1,2026-11-10T11:00:00Z,,\n"
        "payments,PM-2,2026-11-10T12:00:00Z,,2026-11-10T12:30:00Z\n"
        "checkout,PM-3,2026-11-10T13:00:00Z,2026-11-10T13:04:00Z,\n"
    )
    config = make_config(
        tmp_path,
        services=[
            {"name": name, "owner": "team", "pillars": ["metrics"]}
            for name in ("checkout", "payments")
        ],
        sources={"incidents": {"postmortems": "postmortems.csv"}},
    )
    lake = Lake(config)
    t0 = ms("2026-11-10T10:00:05Z")
    write_metrics(
        lake,
        [
            MetricSeries("up", {"job": name}, [(t0 + i * SCRAPE_MS, 1.0) for i in range(8)])
            for name in ("checkout", "payments")
        ],
    )
    now = utc("2026-11-10T14:05:00Z")
    ingest_table_hour(lake, incident_source(config, clock=lambda: now), hour_window(now))
    build_catalog(config)
    start, end = utc("2026-11-10T00:00:00Z"), utc("2026-11-11T00:00:00Z")

    page = render_report(config, start, end, tmp_path / "report.html").read_text()
    con = report_connection(config, start, end)
    pin_reports(con)
    found = findings(con)
    con.close()

    rows = incident_rows(page)
    # Service, start, end, first alert, TTR, SLOs (TTD: incidents.sql's, only the detected one's)
    assert [r[:4] + r[5:] for r in rows] == [
        ["checkout", "2026-11-10 11:00", "ongoing", "none (not detected yet)", "-", ""],
        ["payments", "2026-11-10 12:00", "12:30", "none (undetected)", "30.0", ""],
        ["checkout", "2026-11-10 13:00", "ongoing", "none", "-", ""],
    ]
    assert rows[2][4] == "4.0"
    assert found == [
        "Undetected incident on checkout at 2026-11-10 11:00 UTC (ongoing, no alert)",
        "Undetected incident on payments at 2026-11-10 12:00 UTC (30 min of SLO impact, no alert)",
    ]


def burn_lines(page: str) -> dict[str, int]:
    """Points of each burn-rate chart's line, by SLO (charts without a line left out)."""
    return {
        chart["attrs"]["data-slo"]: len(re.findall(r"[ML]", chart["paths"]["burn-line"]))  # type: ignore[index]
        for chart in charts(page, "burn-rate")
        if "burn-line" in chart["paths"]  # type: ignore[operator]
    }


def test_a_long_periods_burn_rate_charts_draw_one_point_per_longer_bucket(
    config: ObsConfig, tmp_path: Path
) -> None:
    """A week's chart has a point per 5 minutes; a longer period's buckets grow with it (the
    highest rate of each), so that no chart holds more than a week's points: a quarter's report
    of 150 SLOs was a 56 MB file. 157 days: 115-minute buckets."""
    start = utc("2026-06-01T00:00:00Z")
    assert chart_step(START, END) == timedelta(minutes=5)
    assert chart_step(start, END) == timedelta(minutes=115)

    page = render_report(config, start, END, tmp_path / "report.html").read_text()
    con = report_connection(config, start, END)
    buckets = """SELECT slo_name,
                        count(DISTINCT time_bucket(to_minutes(?), evaluated_at - INTERVAL 1 MINUTE))
                 FROM slo_burn_rates
                 WHERE window_minutes = 60 AND burn_rate IS NOT NULL
                   AND evaluated_at > (SELECT period_start FROM report_period)
                   AND evaluated_at <= (SELECT period_end FROM report_period)
                 GROUP BY 1"""
    coarse = dict(con.execute(buckets, [115]).fetchall())
    fine = dict(con.execute(buckets, [5]).fetchall())
    con.close()

    assert burn_lines(page) == coarse and coarse
    assert all(fine[slo] > 10 * points for slo, points in coarse.items())


def test_each_burn_down_point_is_the_bad_share_of_its_windows_clock_hours(
    tmp_path: Path,
) -> None:
    """A 2-hour SLO over 8 hours of known requests: the point at each hour ``at`` of the period
    (an unaligned one too) is the bad share of the clock hours ``h`` with ``at - 2h <= h < at``
    (of their minutes before the period's end)."""
    config = make_config(
        tmp_path,
        services=[{"name": "api", "owner": "team"}],
        slos=[
            {
                "name": "api_availability",
                "service": "api",
                "objective": 0.99,
                "window": "2h",
                "sli": {
                    "type": "ratio",
                    "bad": 'requests_total{service="api",code="500"}',
                    "total": 'requests_total{service="api"}',
                },
            }
        ],
    )
    first = ms("2026-11-04T08:00:00Z") // MINUTE_MS
    minutes = range(first, first + 8 * 60)
    bad = {m: (m * 7) % 5 for m in minutes}  # minute m's events land in minute m (scraped at :30)
    good = {m: 40 + (m * 3) % 11 for m in minutes}
    write_metrics(
        Lake(config),
        [
            MetricSeries(
                "requests_total",
                {"service": "api", "code": code},
                [
                    (m * MINUTE_MS + 30_000, float(total))
                    for m, total in zip(
                        minutes, accumulate(events[m] for m in minutes), strict=True
                    )
                ],
            )
            for code, events in (("200", good), ("500", bad))
        ],
    )
    derive(config, TimeWindow(utc("2026-11-04T08:00:00Z"), utc("2026-11-04T16:00:00Z")))
    build_catalog(config)

    for start, end in (
        ("2026-11-04T11:00:00Z", "2026-11-04T16:00:00Z"),
        ("2026-11-04T11:17:00Z", "2026-11-04T15:43:00Z"),
    ):
        con = report_connection(config, utc(start), utc(end))
        try:
            [(name, points)] = hourly_bad_shares(con).items()
        finally:
            con.close()
        expected = []
        at = utc(start) + timedelta(hours=1)
        while at <= utc(end):
            hours = [  # the report's events end with its period
                m
                for m in minutes
                if at - timedelta(hours=2) <= datetime.fromtimestamp(m // 60 * 3600, UTC) < at
                and m * MINUTE_MS < ms(end)
            ]
            errors = sum(bad[m] for m in hours)
            expected.append(
                (at.replace(tzinfo=None), errors / (errors + sum(good[m] for m in hours)))
            )
            at += timedelta(hours=1)
        assert name == "api_availability"
        assert points == expected
