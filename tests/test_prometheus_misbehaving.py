"""A server at sources.prometheus.url that is not quite Prometheus: a proxy's login page, an answer
of another shape, a sample value that is no number, a body cut short. Ingest, the ALERTS and
rules sources and ``obs doctor`` each say so in one line naming the URL and the fix, and no
partition is written."""

import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import orjson
import pytest

from obs_pipelines.config import (
    AlertDerivationConfig,
    AlertmanagerSourceConfig,
    PrometheusSourceConfig,
    load_config,
)
from obs_pipelines.errors import SourceError
from obs_pipelines.lake import Lake
from obs_pipelines.lake.ingest import ingest_metrics_hours
from obs_pipelines.operations.doctor import run_checks
from obs_pipelines.sources.alertmanager import AlertmanagerAlerts
from obs_pipelines.sources.alerts import PrometheusAlertFragments, PrometheusAlertRules
from obs_pipelines.sources.prometheus import PrometheusSource
from obs_pipelines.windows import TimeWindow
from tests.history import HOUR_MS, START, START_MS
from tests.servers import serving_in_process

LOGIN_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Sign in - Corporate SSO</title></head><body>"
    + b"<form>" * 80
    + b"</body></html>"
)
BUILDINFO = b'{"status":"success","data":{"version":"2.53.0"}}'


@dataclass(frozen=True)
class Answer:
    body: bytes
    content_type: str = "application/json"
    cut_at: int | None = None  # send this many bytes of the body, then close the connection
    length: bool = True  # send Content-Length (else the body ends when the connection closes)
    status: int = 200


def matrix(*series: tuple[dict[str, str], list[list[Any]]]) -> bytes:
    result = [{"metric": labels, "values": values} for labels, values in series]
    return orjson.dumps({"status": "success", "data": {"resultType": "matrix", "result": result}})


def vector(value: str) -> bytes:
    result = [{"metric": {}, "value": [START_MS / 1000, value]}]
    return orjson.dumps({"status": "success", "data": {"resultType": "vector", "result": result}})


def at(hour: int, second: int) -> float:
    return (START_MS + hour * HOUR_MS) / 1000 + second


GOOD_HOUR_0 = matrix(({"__name__": "up", "job": "api"}, [[at(0, 15), "1"], [at(0, 30), "1"]]))
NOT_A_NUMBER_HOUR_1 = matrix(
    ({"__name__": "up", "job": "api"}, [[at(1, 15), "1"]]),
    ({"__name__": "up", "job": "db"}, [[at(1, 15), "1"], [at(1, 30), "nope"]]),
)

TWO_SERIES = NOT_A_NUMBER_HOUR_1.replace(b"nope", b"2")
FIRST_SERIES_END = TWO_SERIES.index(b"]]}") + 3


def handler(answer_for: Callable[[str, dict[str, str]], Answer]) -> type[BaseHTTPRequestHandler]:
    """A server answering each request with ``answer_for(path, form)``, misbehaving as told."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._answer({})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
            self._answer(form)

        def _answer(self, form: dict[str, str]) -> None:
            answer = answer_for(urllib.parse.urlsplit(self.path).path, form)
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            if answer.length:
                self.send_header("Content-Length", str(len(answer.body)))
            else:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(answer.body[: answer.cut_at])
            if answer.cut_at is not None or not answer.length:
                self.close_connection = True

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def fake_prometheus() -> Iterator[Callable[[Callable[[str, dict[str, str]], Answer]], str]]:
    """Start a misbehaving server per call (stopped at the end of the test); yields its URL."""
    from contextlib import ExitStack

    with ExitStack() as stack:
        yield lambda answer_for: stack.enter_context(serving_in_process(handler(answer_for)))


def every_request(answer: Answer) -> Callable[[str, dict[str, str]], Answer]:
    return lambda path, form: answer


def by_hour(first: Answer, second: Answer) -> Callable[[str, dict[str, str]], Answer]:
    """Query answers by the hour asked for (its evaluation time); Prometheus's build info else."""

    def answer_for(path: str, form: dict[str, str]) -> Answer:
        if "time" not in form:
            return Answer(BUILDINFO)
        return first if float(form["time"]) * 1000 < START_MS + HOUR_MS else second

    return answer_for


def ingest_two_hours(write_config: Callable[..., Path], url: str) -> tuple[str, Path]:
    """Ingest two hours from ``url``; the error's message and the lake root."""
    section = {"url": url, "selectors": ["up"], "retries": 0, "retry_backoff_seconds": 0}
    config = load_config(write_config(sources={"metrics": "prometheus", "prometheus": section}))
    hours = [TimeWindow(START, START.replace(hour=1)), TimeWindow(START.replace(hour=1), START.replace(hour=2))]  # fmt: skip
    with pytest.raises(SourceError) as error:
        ingest_metrics_hours(Lake(config), PrometheusSource(config.sources.prometheus), hours)
    return str(error.value), Path(config.lake_root)


def assert_nothing_written(lake_root: Path) -> None:
    """No data file, and no Delta commit past the creation of the (empty) tables."""
    files = [p for p in lake_root.rglob("*") if p.is_file()] if lake_root.exists() else []
    assert not [p for p in files if p.suffix == ".parquet"], files
    commits = [p.name for p in files if p.parent.name == "_delta_log" and p.suffix == ".json"]
    assert set(commits) <= {"00000000000000000000.json"}, commits


# -- ingest (obs materialize) -----------------------------------------------------------------


def test_an_html_page_answered_with_200_is_one_line_and_writes_nothing(
    write_config: Callable[..., Path], fake_prometheus: Any
) -> None:
    login = Answer(LOGIN_PAGE, content_type="text/html; charset=utf-8")
    url = fake_prometheus(by_hour(Answer(GOOD_HOUR_0), login))

    message, lake_root = ingest_two_hours(write_config, url)

    assert message == (
        f"Prometheus at {url} answered with something that is not its JSON API (text/html: "
        "'<!DOCTYPE html> <html><head><title>Sign in - Corporate SS...'); check "
        "sources.prometheus.url points at the Prometheus server (not a proxy login page or UI path)"
    )
    assert_nothing_written(lake_root)


def test_a_sample_value_that_is_no_number_names_the_series_and_writes_nothing(
    write_config: Callable[..., Path], fake_prometheus: Any
) -> None:
    url = fake_prometheus(by_hour(Answer(GOOD_HOUR_0), Answer(NOT_A_NUMBER_HOUR_1)))

    message, lake_root = ingest_two_hours(write_config, url)

    assert message == (
        f"Prometheus at {url} sent a malformed answer, not a Prometheus API response (sample "
        'value "nope" of up{job="db"} is not a number); check sources.prometheus.url points at '
        "the Prometheus server"
    )
    assert_nothing_written(lake_root)


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (
            b'{"status":"success","data":{"resultType":"scalar","result":[1794268800,"1"]}}',
            'a "scalar" result where a range vector was asked for',
        ),
        (b'{"status":"success"}', 'no "data" object'),
        (b'{"status":"success","data":{"resultType":"matrix"}}', '"result" is not a list'),
        (b'{"data":{"resultType":"matrix","result":[]}}', '"status" is null, not "success"'),
        (b"[]", "a JSON list, not an object"),
    ],
    ids=["scalar", "no data", "no result", "no status", "a list"],
)
def test_json_of_another_shape_is_one_line_and_writes_nothing(
    write_config: Callable[..., Path], fake_prometheus: Any, body: bytes, detail: str
) -> None:
    url = fake_prometheus(by_hour(Answer(GOOD_HOUR_0), Answer(body)))

    message, lake_root = ingest_two_hours(write_config, url)

    assert message == (
        f"Prometheus at {url} sent a malformed answer, not a Prometheus API response ({detail}); "
        "check sources.prometheus.url points at the Prometheus server"
    )
    assert_nothing_written(lake_root)


@pytest.mark.parametrize(
    ("answer", "size"),
    [
        # Content-Length promises more than comes: the client sees the connection end early.
        (Answer(GOOD_HOUR_0, cut_at=len(GOOD_HOUR_0) // 2), ""),
        # No Content-Length: the body just ends, here right after the first series' values,
        # which reads as a smaller, complete answer unless its shape is checked to the end.
        (
            Answer(TWO_SERIES, cut_at=FIRST_SERIES_END, length=False),
            f" (the JSON ends after {FIRST_SERIES_END} bytes)",
        ),
    ],
    ids=["content-length", "connection close"],
)
def test_a_body_cut_short_is_one_line_and_writes_nothing(
    write_config: Callable[..., Path], fake_prometheus: Any, answer: Answer, size: str
) -> None:
    url = fake_prometheus(by_hour(Answer(GOOD_HOUR_0), answer))

    message, lake_root = ingest_two_hours(write_config, url)

    assert message == (
        f"Prometheus at {url} closed the connection before its answer was complete{size}; check "
        "the server's health and any proxy in between, then rerun"
    )
    assert_nothing_written(lake_root)


# -- the alerts sources -----------------------------------------------------------------------


def test_an_html_page_for_the_rules_is_the_same_one_line(fake_prometheus: Any) -> None:
    url = fake_prometheus(every_request(Answer(LOGIN_PAGE, content_type="text/html")))
    rules = PrometheusAlertRules(PrometheusSourceConfig(url=url, selectors=["up"], retries=0))

    with pytest.raises(SourceError) as error:
        list(rules.read(TimeWindow(START, START.replace(hour=1))))

    assert str(error.value).startswith(
        f"Prometheus at {url} answered with something that is not its JSON API (text/html: "
        "'<!DOCTYPE html>"
    )
    assert "\n" not in str(error.value)


def test_an_html_page_from_alertmanager_says_what_came_back(fake_prometheus: Any) -> None:
    url = fake_prometheus(every_request(Answer(LOGIN_PAGE, content_type="text/html")))
    alerts = AlertmanagerAlerts(AlertmanagerSourceConfig(url=url, retries=0), snapshot_at=START)

    with pytest.raises(SourceError) as error:
        list(alerts.read(TimeWindow(START, START.replace(hour=1))))

    assert str(error.value) == (
        f"Alertmanager at {url} answered with something that is not its JSON API (text/html: "
        "'<!DOCTYPE html> <html><head><title>Sign in - Corporate SS...'); check "
        "sources.alertmanager.url points at the Alertmanager server (not a proxy login page or "
        "UI path)"
    )


# -- obs doctor -------------------------------------------------------------------------------

MALFORMED = "sent a malformed answer, not a Prometheus API response"
URL_FIX = "check sources.prometheus.url points at the Prometheus server"


def on_query(answer: Answer) -> Callable[[str, dict[str, str]], Answer]:
    return lambda path, form: answer if path == "/api/v1/query" else Answer(BUILDINFO)


@pytest.mark.parametrize(
    ("answer_for", "detail"),
    [
        (
            every_request(Answer(LOGIN_PAGE, content_type="text/html")),
            " answered with something that is not its JSON API (text/html: '<!DOCTYPE html> "
            "<html><head><title>Sign in - Corporate SS...'); check sources.prometheus.url points "
            "at the Prometheus server (not a proxy login page or UI path)",
        ),
        (
            on_query(Answer(vector("nope"))),
            f' {MALFORMED} (sample value "nope" of count(last_over_time(up[1h])) is not a number); '
            f"{URL_FIX}",
        ),
        (  # the same answer to every query, as a stand-in replaying a canned file
            on_query(Answer(NOT_A_NUMBER_HOUR_1)),
            f' {MALFORMED} (a "matrix" result to the instant query count(last_over_time(up[1h]))); '
            f"{URL_FIX}",
        ),
        (
            every_request(Answer(b'{"status":"success"}')),
            f' {MALFORMED} (no "data" object); {URL_FIX}',
        ),
        (
            every_request(Answer(BUILDINFO, cut_at=20)),
            "/api/v1/status/buildinfo closed the connection before its answer was complete; "
            "check the server's health and any proxy in between, then rerun",
        ),
    ],
    ids=["html", "not a number", "a matrix", "no data", "cut short"],
)
def test_doctor_fails_the_metrics_source_with_the_same_one_line(
    write_config: Callable[..., Path],
    fake_prometheus: Any,
    tmp_path: Path,
    answer_for: Callable[[str, dict[str, str]], Answer],
    detail: str,
) -> None:
    url = fake_prometheus(answer_for)
    section = {"url": url, "selectors": ["up"]}
    config = load_config(write_config(sources={"metrics": "prometheus", "prometheus": section}))

    results = run_checks(config, dagster_home=str(tmp_path), timeout=5)

    metrics = next(r for r in results if r.check == "source.metrics")
    assert not metrics.ok
    assert metrics.line() == f"FAIL  source.metrics         Prometheus at {url}{detail}"


def test_alerts_from_a_server_without_the_rules_and_config_apis_follow_the_configured_interval(
    fake_prometheus: Any,
) -> None:
    """Thanos Query answers 404 for /api/v1/status/config (and, without rulers, /api/v1/rules):
    its alerts are derived as before either was read, not refused."""
    alert = {"__name__": "ALERTS", "alertname": "ApiDown", "alertstate": "firing", "job": "api"}
    firing = matrix((alert, [[at(0, s), "1"] for s in range(60, 661, 60)]))

    def answer_for(path: str, form: dict[str, str]) -> Answer:
        if path in ("/api/v1/status/config", "/api/v1/rules"):
            return Answer(b"404 page not found\n", "text/plain", status=404)
        return Answer(firing) if "time" in form else Answer(BUILDINFO)

    url = fake_prometheus(answer_for)
    config = PrometheusSourceConfig(url=url, selectors=["up"], retries=0, retry_backoff_seconds=0)
    source = PrometheusAlertFragments(config, AlertDerivationConfig(evaluation_interval="1m"))
    (table,) = source.read(TimeWindow(START, START.replace(hour=1)))

    rows = table.to_pylist()
    assert [
        (r["alertname"], r["first_sample"].minute, r["samples"], r["evaluation_interval_ms"])
        for r in rows
    ] == [("ApiDown", 1, 11, 60_000)]


def test_alert_relabelling_obs_cannot_reproduce_is_one_line_naming_the_rule(
    fake_prometheus: Any,
) -> None:
    """A newer Prometheus's relabel action (here a made-up one) would give alerts labels obs
    cannot compute: refused in one line naming the rule, and nothing else of the configuration
    (the Alertmanager's credentials) is repeated."""
    settings = (
        "global:\n  external_labels: {cluster: prod}\n"
        "alerting:\n  alert_relabel_configs:\n"
        "  - {regex: replica, action: labeldrop}\n"
        "  - {source_labels: [team], target_label: owner, action: labelswap}\n"
        "  alertmanagers:\n  - basic_auth: {username: ops, password: hunter2}\n"
    )
    config = orjson.dumps({"status": "success", "data": {"yaml": settings}})
    rules = b'{"status":"success","data":{"groups":[]}}'
    answers = {"/api/v1/status/config": config, "/api/v1/rules": rules}
    url = fake_prometheus(lambda path, form: Answer(answers.get(path, BUILDINFO)))
    config_ = PrometheusSourceConfig(url=url, selectors=["up"], retries=0, retry_backoff_seconds=0)
    source = PrometheusAlertFragments(config_, AlertDerivationConfig(evaluation_interval="1m"))

    with pytest.raises(SourceError) as raised:
        list(source.read(TimeWindow(START, START.replace(hour=1))))

    assert str(raised.value) == (
        f"Prometheus at {url}: alerting.alert_relabel_configs[1] has the relabel action "
        "'labelswap', which obs cannot reproduce (it knows drop, dropequal, hashmod, keep, "
        "keepequal, labeldrop, labelkeep, labelmap, lowercase, replace, uppercase); obs applies "
        "Prometheus's alert relabelling to name alerts as Alertmanager does; change that rule "
        "or report this"
    )
