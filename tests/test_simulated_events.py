"""The simulated logs and traces tell the Waardhaven story the way Elasticsearch and Jaeger would."""

from collections.abc import Callable
from datetime import UTC, timedelta
from functools import cache
from itertools import pairwise

import duckdb
import pyarrow as pa
import pytest

from obs_pipelines.config import SimulatorConfig
from obs_pipelines.datasets import SCHEMAS
from obs_pipelines.sources.simulated_logs import SimulatedLogs
from obs_pipelines.sources.simulated_spans import SimulatedSpans
from obs_pipelines.windows import TimeWindow, utc

# The weekly incidents (simulator.INCIDENTS) in the week of Monday 2026-11-16.
MARKET_DATA_LAG = TimeWindow(utc("2026-11-16T07:00:00Z"), utc("2026-11-16T07:20:00Z"))
API_OUTAGE = TimeWindow(utc("2026-11-18T14:00:00Z"), utc("2026-11-18T14:25:00Z"))
API_LATENCY = TimeWindow(utc("2026-11-20T09:30:00Z"), utc("2026-11-20T10:15:00Z"))
TRADES_SILENT_ERRORS = TimeWindow(utc("2026-11-21T03:00:00Z"), utc("2026-11-21T03:30:00Z"))


Reader = Callable[..., pa.Table]


def hours(start: str, count: int = 1) -> TimeWindow:
    begin = utc(start)
    return TimeWindow(begin, begin + timedelta(hours=count))


def read_logs(window: TimeWindow, seed: int = 42) -> pa.Table:
    return pa.concat_tables(SimulatedLogs(SimulatorConfig(seed=seed)).read(window))


def read_spans(window: TimeWindow, seed: int = 42) -> pa.Table:
    return pa.concat_tables(SimulatedSpans(SimulatorConfig(seed=seed)).read(window))


# Several tests look at the same hours: generate each once.
logs, spans = cache(read_logs), cache(read_spans)


def query(sql: str, **tables: pa.Table) -> list[tuple]:
    con = duckdb.connect()
    for name, table in tables.items():
        con.register(name, table)
    return con.execute(sql).fetchall()


def scalar(sql: str, **tables: pa.Table) -> object:
    return query(sql, **tables)[0][0]


# -- determinism and windows ---------------------------------------------------------------------


@pytest.mark.parametrize("read", [read_logs, read_spans], ids=["logs", "spans"])
def test_the_same_window_gives_the_same_rows_every_time(read: Reader) -> None:
    window = hours("2026-11-18T13:00:00Z")
    first = read(window)
    assert first.num_rows > 0
    assert first.equals(read(window))
    assert not first.equals(read(window, seed=7))


@pytest.mark.parametrize("read", [logs, spans], ids=["logs", "spans"])
def test_hour_windows_concatenate_into_the_two_hour_window_row_for_row(read: Reader) -> None:
    two_hours = hours("2026-11-18T13:00:00Z", 2)
    parts = pa.concat_tables([read(hour) for hour in two_hours.hours()])
    assert read(two_hours).equals(parts)


@pytest.mark.parametrize("read", [logs, spans], ids=["logs", "spans"])
def test_any_split_of_a_window_yields_the_same_rows(read: Reader) -> None:
    """Cuts that fall inside requests lose nothing and produce nothing twice.

    Each cut falls just after a traced request began: its root span lands on the left of the
    cut, its calls and its access log on the right.
    """
    whole = TimeWindow(API_OUTAGE.start, API_OUTAGE.start + timedelta(minutes=30))
    roots = query(
        "SELECT start_ts FROM t WHERE parent_span_id IS NULL ORDER BY start_ts", t=spans(whole)
    )
    cuts = [
        ts.replace(tzinfo=UTC) + timedelta(microseconds=1) for (ts,) in roots[5 : len(roots) : 10]
    ]
    assert len(cuts) >= 15
    edges = [whole.start, *cuts, whole.end]
    pieces = [TimeWindow(a, b) for a, b in pairwise(edges)]
    assert read(whole).equals(pa.concat_tables([read(piece) for piece in pieces]))


def test_rows_fall_inside_their_window_and_match_the_lake_schema() -> None:
    window = hours("2026-11-18T13:00:00Z")
    log_rows, span_rows = logs(window), spans(window)
    assert log_rows.schema == SCHEMAS["log_records"]
    assert span_rows.schema == SCHEMAS["spans"]
    start, end = window.start.replace(tzinfo=None), window.end.replace(tzinfo=None)
    ((first_log, last_log),) = query("SELECT min(ts), max(ts) FROM t", t=log_rows)
    ((first_span, last_span),) = query("SELECT min(start_ts), max(start_ts) FROM t", t=span_rows)
    assert start <= first_log <= last_log < end
    assert start <= first_span <= last_span < end


# -- shape and volume ----------------------------------------------------------------------------


def test_a_day_has_a_few_thousand_logs_and_a_few_hundred_traces_an_hour() -> None:
    day = hours("2026-11-17T00:00:00Z", 24)
    per_hour_logs = query("SELECT count(*) FROM t GROUP BY date_trunc('hour', ts)", t=logs(day))
    per_hour_traces = query(
        "SELECT count(DISTINCT trace_id) FROM t GROUP BY date_trunc('hour', start_ts)",
        t=spans(day),
    )
    assert len(per_hour_logs) == len(per_hour_traces) == 24
    assert all(1_000 <= n <= 10_000 for (n,) in per_hour_logs), per_hour_logs
    assert all(80 <= n <= 800 for (n,) in per_hour_traces), per_hour_traces
    # Traffic follows the day: the afternoon peak is busier than the night.
    night = scalar("SELECT count(*) FROM t WHERE hour(ts) = 3", t=logs(day))
    peak = scalar("SELECT count(*) FROM t WHERE hour(ts) = 15", t=logs(day))
    assert peak > 2.5 * night


def test_log_documents_look_like_an_ecs_export() -> None:
    rows = logs(hours("2026-11-18T23:00:00Z", 2))  # across midnight: two daily indexes
    assert scalar("SELECT count(*) = count(DISTINCT doc_id) FROM t", t=rows)
    assert scalar("SELECT bool_and(regexp_full_match(doc_id, '[A-Za-z0-9_-]{20}')) FROM t", t=rows)
    indexes = {
        i for (i,) in query("SELECT DISTINCT index FROM t WHERE service = 'waardhaven-api'", t=rows)
    }
    assert indexes == {"logs-waardhaven-api-2026.11.18", "logs-waardhaven-api-2026.11.19"}
    assert (
        scalar(
            "SELECT count(*) FROM t WHERE index <> ('logs-waardhaven-'"
            " || replace(service, 'waardhaven-', '') || '-' || strftime(ts, '%Y.%m.%d'))",
            t=rows,
        )
        == 0
    )
    assert scalar("SELECT bool_and(host LIKE service || '-%') FROM t", t=rows)
    access = query(
        """SELECT (attributes->>'url.path'), (attributes->>'http.request.method'),
                  CAST((attributes->>'http.response.status_code') AS INT),
                  CAST((attributes->>'event.duration') AS BIGINT)
           FROM t WHERE (attributes->>'log.logger') = 'waardhaven.access' LIMIT 50""",
        t=rows,
    )
    assert len(access) == 50
    assert all(
        path.startswith("/api/") and method in {"GET", "POST"} for path, method, *_ in access
    )
    assert all(100 <= status < 600 and duration > 0 for *_, status, duration in access)


def test_levels_cover_info_warn_error_and_debug() -> None:
    levels = query("SELECT DISTINCT level FROM t", t=logs(hours("2026-11-18T14:00:00Z")))
    assert {level for (level,) in levels} == {"debug", "info", "warn", "error"}


def test_news_feed_logs_nothing_and_the_datastores_log_little() -> None:
    rows = logs(hours("2026-11-17T00:00:00Z", 24))
    per_service = dict(query("SELECT service, count(*) FROM t GROUP BY 1", t=rows))
    assert "news-feed" not in per_service
    assert set(per_service) == {
        "waardhaven-api",
        "trading-engine",
        "market-data",
        "recommendation-engine",
        "auth-service",
        "postgresql",
        "redis",
        "kafka",
    }
    for datastore in ("postgresql", "redis", "kafka"):
        assert 0 < per_service[datastore] < per_service["waardhaven-api"] / 10


# -- traces --------------------------------------------------------------------------------------


def test_recommendation_engine_and_the_datastores_appear_only_as_peers() -> None:
    rows = spans(hours("2026-11-17T12:00:00Z", 2))
    services = {s for (s,) in query("SELECT DISTINCT service FROM t", t=rows)}
    assert services == {"waardhaven-api", "trading-engine", "market-data", "auth-service"}
    callees = dict(
        query(
            "SELECT peer_service, list(DISTINCT service) FROM t"
            " WHERE peer_service IS NOT NULL GROUP BY 1",
            t=rows,
        )
    )
    assert callees["recommendation-engine"] == ["waardhaven-api"]
    assert set(callees["postgresql"]) == {"trading-engine"}
    assert set(callees["redis"]) == {"auth-service", "market-data"}
    assert set(callees["kafka"]) == {"trading-engine"}
    assert set(callees["trading-engine"]) == {"waardhaven-api"}
    # Every peer_service is on a client (or producer) span, never on a server span.
    assert (
        scalar(
            "SELECT count(*) FROM t WHERE peer_service IS NOT NULL AND kind NOT IN ('client', 'producer')",
            t=rows,
        )
        == 0
    )


def test_every_span_has_its_parent_in_its_trace_and_lies_inside_it() -> None:
    window = hours("2026-11-18T13:00:00Z", 2)  # spans the api-outage and the instance crash
    rows = spans(window)
    con = duckdb.connect()
    con.register("t", rows)
    assert con.execute(
        "SELECT bool_and(length(trace_id) = 32 AND length(span_id) = 16"
        " AND regexp_full_match(trace_id || span_id, '[0-9a-f]+')) FROM t"
    ).fetchone() == (True,)
    assert con.execute("SELECT count(*) = count(DISTINCT span_id) FROM t").fetchone() == (True,)
    orphans = con.execute(
        """SELECT c.trace_id, c.start_ts FROM t c
           LEFT JOIN t p ON p.trace_id = c.trace_id AND p.span_id = c.parent_span_id
           WHERE c.parent_span_id IS NOT NULL AND p.span_id IS NULL"""
    ).fetchall()
    # Only traces that began before the window (their root is in the previous partition) and so
    # within a request's lifetime of its start may miss a parent.
    assert all(ts < window.start.replace(tzinfo=None) + timedelta(seconds=10) for _, ts in orphans)
    escaped = con.execute(
        """SELECT count(*) FROM t c JOIN t p ON p.trace_id = c.trace_id AND p.span_id = c.parent_span_id
           WHERE c.start_ts < p.start_ts
              OR c.start_ts + to_microseconds(c.duration_us) > p.start_ts + to_microseconds(p.duration_us)
              OR c.duration_us <= 0"""
    ).fetchone()
    assert escaped == (0,)
    roots = con.execute(
        "SELECT count(*), count(DISTINCT trace_id) FROM t WHERE parent_span_id IS NULL"
    ).fetchone()
    assert roots[0] == roots[1] > 300
    assert con.execute(
        "SELECT DISTINCT service, kind FROM t WHERE parent_span_id IS NULL"
    ).fetchall() == [("waardhaven-api", "server")]


def test_span_status_follows_opentelemetry_rules() -> None:
    rows = spans(hours("2026-11-18T14:00:00Z"))
    inconsistent = query(
        """SELECT count(*) FROM t WHERE
             is_error <> (status_code = 'error')
             OR status_code NOT IN ('unset', 'error')
             OR (kind = 'server' AND http_status >= 500 AND NOT is_error)
             OR (kind = 'server' AND http_status < 500 AND is_error)
             OR (kind = 'client' AND http_status >= 400 AND NOT is_error)
             OR (kind = 'server' AND http_status IS NULL)""",
        t=rows,
    )
    assert inconsistent == [(0,)]
    # Database calls carry no HTTP status; they say what they ran instead.
    calls, with_status, with_statement = query(
        "SELECT count(*), count(http_status), count((attributes->>'db.statement'))"
        " FROM t WHERE peer_service IN ('postgresql', 'redis')",
        t=rows,
    )[0]
    assert calls > 100 and with_status == 0 and with_statement == calls
    # A failed request has a failed call below it that says why.
    unexplained = scalar(
        """SELECT count(*) FROM t r WHERE r.parent_span_id IS NULL AND r.is_error
             AND NOT EXISTS (SELECT 1 FROM t c WHERE c.trace_id = r.trace_id
                             AND c.parent_span_id = r.span_id AND c.is_error)""",
        t=rows,
    )
    assert unexplained == 0


# -- incidents -----------------------------------------------------------------------------------


def test_api_outage_floods_the_api_with_error_logs_and_error_traces() -> None:
    baseline = hours("2026-11-18T12:00:00Z", 2)

    def log_error_share(window: TimeWindow) -> float:
        return scalar(
            "SELECT avg((level = 'error')::INT) FROM t WHERE service = 'waardhaven-api'",
            t=logs(window),
        )

    def trace_error_share(window: TimeWindow) -> float:
        return scalar(
            "SELECT avg(is_error::INT) FROM t WHERE parent_span_id IS NULL", t=spans(window)
        )

    assert log_error_share(baseline) < 0.01
    assert log_error_share(API_OUTAGE) > 0.15
    assert trace_error_share(baseline) < 0.01
    assert trace_error_share(API_OUTAGE) > 0.10
    # The 5xx lines say what broke, and match the request's status.
    statuses = query(
        """SELECT DISTINCT CAST((attributes->>'http.response.status_code') AS INT) FROM t
           WHERE service = 'waardhaven-api' AND level = 'error'
             AND (attributes->>'log.logger') = 'waardhaven.access'""",
        t=logs(API_OUTAGE),
    )
    assert {s for (s,) in statuses} >= {503, 504}
    assert all(500 <= s < 600 for (s,) in statuses)


def test_the_crashed_api_instance_serves_nothing_while_down() -> None:
    crash = TimeWindow(utc("2026-11-18T14:05:00Z"), utc("2026-11-18T14:15:00Z"))
    per_host = dict(
        query(
            "SELECT host, count(*) FROM t WHERE (attributes->>'log.logger') = 'waardhaven.access'"
            " GROUP BY 1",
            t=logs(crash),
        )
    )
    assert per_host.get("waardhaven-api-0", 0) <= 1  # a request that began before the crash
    assert per_host["waardhaven-api-1"] > 20
    lifecycle = query(
        "SELECT level, message FROM t WHERE host = 'waardhaven-api-0'"
        " AND (attributes->>'log.logger') = 'lifecycle' ORDER BY ts",
        t=logs(hours("2026-11-18T14:00:00Z")),
    )
    assert [level for level, _ in lifecycle] == ["error", "info"]
    assert "Out of memory" in lifecycle[0][1]


def test_api_latency_shows_as_slow_traces_and_slow_request_warnings() -> None:
    def p95_ms(window: TimeWindow) -> float:
        return scalar(
            "SELECT quantile_cont(duration_us, 0.95) / 1000 FROM t WHERE parent_span_id IS NULL",
            t=spans(window),
        )

    assert p95_ms(hours("2026-11-20T07:00:00Z", 2)) < 300
    assert p95_ms(API_LATENCY) > 1000
    slow = scalar(
        "SELECT count(*) FROM t WHERE level = 'warn' AND message LIKE '%(slow request)'",
        t=logs(API_LATENCY),
    )
    assert slow > 50


def test_market_data_lag_logs_lag_warnings_above_the_freshness_threshold() -> None:
    lag = query(
        """SELECT count(*), min(CAST((attributes->>'pipeline.lag_seconds') AS DOUBLE)) FROM t
           WHERE service = 'market-data' AND level = 'warn' AND message LIKE 'Market data lag%'""",
        t=logs(MARKET_DATA_LAG),
    )[0]
    assert lag[0] > 100 and lag[1] > 5
    quiet = scalar(
        "SELECT count(*) FROM t WHERE service = 'market-data' AND level = 'warn'",
        t=logs(hours("2026-11-16T08:00:00Z")),
    )
    assert quiet < 10


def test_trades_silent_errors_are_visible_in_logs_on_api_trades() -> None:
    def trade_errors(window: TimeWindow) -> int:
        return scalar(
            """SELECT count(*) FROM t WHERE service = 'waardhaven-api' AND level = 'error'
               AND (attributes->>'url.path') = '/api/trades'""",
            t=logs(window),
        )

    # Night traffic is thin, yet 30 minutes of the incident show several times the failures of
    # the two quiet hours before it (where the rare baseline failure may show up).
    assert trade_errors(TRADES_SILENT_ERRORS) >= 5
    assert trade_errors(hours("2026-11-21T01:00:00Z", 2)) <= 2
    settlement = scalar(
        "SELECT count(*) FROM t WHERE service = 'trading-engine' AND level = 'error'",
        t=logs(TRADES_SILENT_ERRORS),
    )
    assert settlement >= 5
    # Other endpoints keep working: the errors are specific to trades.
    assert (
        scalar(
            """SELECT count(*) FROM t WHERE service = 'waardhaven-api' AND level = 'error'
           AND (attributes->>'url.path') <> '/api/trades'""",
            t=logs(TRADES_SILENT_ERRORS),
        )
        <= 1
    )


# -- logs and traces together --------------------------------------------------------------------


def test_log_lines_of_sampled_requests_point_at_their_trace_and_span() -> None:
    window = hours("2026-11-18T13:00:00Z", 2)
    log_rows, span_rows = logs(window), spans(window)
    # Requests last at most seconds: a line from after the first minute has its whole trace here.
    settled = window.start.replace(tzinfo=None) + timedelta(minutes=1)
    con = duckdb.connect()
    con.register("l", log_rows)
    con.register("s", span_rows)
    linked, dangling, wrong_service = con.execute(
        """SELECT count(*), count(*) FILTER (WHERE s.span_id IS NULL),
                  count(*) FILTER (WHERE s.service <> l.service)
           FROM l LEFT JOIN s ON s.trace_id = l.trace_id AND s.span_id = l.span_id
           WHERE l.trace_id IS NOT NULL AND l.ts >= $settled""",
        {"settled": settled},
    ).fetchone()
    assert linked > 500
    assert dangling == 0 and wrong_service == 0
    # About a quarter of the API's requests are traced, and each traced request has its line.
    traced_share = con.execute(
        """SELECT avg((trace_id IS NOT NULL)::INT) FROM l
           WHERE (attributes->>'log.logger') = 'waardhaven.access'"""
    ).fetchone()[0]
    assert 0.15 < traced_share < 0.35
    missing_access_lines = con.execute(
        """SELECT count(*) FROM s WHERE parent_span_id IS NULL
             AND start_ts + to_microseconds(duration_us) < $end
             AND trace_id NOT IN (SELECT trace_id FROM l WHERE service = 'waardhaven-api'
                                  AND trace_id IS NOT NULL)""",
        {"end": window.end.replace(tzinfo=None)},
    ).fetchone()
    assert missing_access_lines == (0,)
    # recommendation-engine is not traced: its lines never carry a trace id.
    assert con.execute(
        "SELECT count(*) FROM l WHERE service = 'recommendation-engine' AND trace_id IS NOT NULL"
    ).fetchone() == (0,)
