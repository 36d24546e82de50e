"""Spans from Jaeger's query API (v3 and v1), against a fake Jaeger that speaks its wire formats.

Jaeger cannot run here; ``tests/fake_jaeger.py`` answers as it does, and is itself checked
against the real responses in ``/work/shared/wire-fixtures`` at the end of this file.
"""

import dataclasses
import json
import logging
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pytest
import requests

from obs_pipelines.config import JaegerSourceConfig
from obs_pipelines.errors import SourceError
from obs_pipelines.schemas import SPANS
from obs_pipelines.sources.jaeger import JaegerSpans, decode_v1, decode_v3
from obs_pipelines.windows import TimeWindow
from tests import fake_jaeger
from tests.fake_jaeger import FakeSpan
from tests.servers import free_port

FIXTURES = Path("/work/shared/wire-fixtures")
WINDOW = TimeWindow(datetime(2026, 11, 1, 10, tzinfo=UTC), datetime(2026, 11, 1, 11, tzinfo=UTC))
START_NS = int(WINDOW.start.timestamp()) * 10**9
END_NS = int(WINDOW.end.timestamp()) * 10**9
MS = 1_000_000


def source(url: str, **overrides: Any) -> JaegerSpans:
    settings = {"url": url, "retries": 0, "retry_backoff_seconds": 0, "timeout": 10}
    return JaegerSpans(JaegerSourceConfig.model_validate(settings | overrides))


def read_all(spans_source: JaegerSpans, window: TimeWindow = WINDOW) -> pa.Table:
    tables = list(spans_source.read(window))
    table = pa.concat_tables(tables) if tables else SPANS.empty_table()
    assert table.schema == SPANS
    return table.sort_by([("trace_id", "ascending"), ("span_id", "ascending")])


def rows_by_span(table: pa.Table) -> dict[str, dict[str, Any]]:
    return {row["span_id"]: row for row in table.to_pylist()}


def shop_traces(count: int, seed: int = 7, first_ns: int = START_NS, spread_s: int = 3600):
    """``count`` traces of a small shop (frontend -> checkout -> payments), starting at random
    nanoseconds in ``[first_ns, first_ns + spread_s)``, with every kind of tag on some span."""
    rng = random.Random(seed)
    spans: list[FakeSpan] = []
    for n in range(count):
        bits = 64 if n % 5 == 0 else 128  # some 64-bit ids: v1 prints 16 hex chars
        trace_id = f"{rng.getrandbits(bits) | 1:032x}"
        t0 = first_ns + (rng.randrange(spread_s * 10**9) if spread_s else 0)
        failed = n % 7 == 0
        ids = [f"{rng.getrandbits(64) | 1:016x}" for _ in range(5)]
        common = {
            "trace_id": trace_id,
            "scope_name": "shop.http",
            "scope_version": "1.4.0",
        }
        frontend = {"host.name": f"web-{n % 3}", "deployment.environment": "prod"}
        spans += [
            FakeSpan(
                span_id=ids[0],
                service="frontend",
                name="GET /checkout",
                start_ns=t0,
                end_ns=t0 + 40 * MS + n,
                kind=2,
                status_code=2 if failed else 1,
                status_message="payment declined" if failed else "",
                attributes={"http.status_code": 502 if failed else 200, "http.method": "GET"},
                resource=frontend,
                **common,
            ),
            FakeSpan(
                span_id=ids[1],
                parent_span_id=ids[0],
                service="frontend",
                name="POST checkout",
                start_ns=t0 + 1 * MS + 317,
                end_ns=t0 + 38 * MS,
                kind=3,
                attributes={"peer.service": "checkout", "retry.count": n % 3, "cache.hit": False},
                resource=frontend,
                **common,
            ),
            FakeSpan(
                span_id=ids[2],
                parent_span_id=ids[1],
                service="checkout",
                name="POST /orders",
                start_ns=t0 + 2 * MS,
                end_ns=t0 + 37 * MS,
                kind=2,
                attributes={
                    "http.response.status_code": 503 if failed else 201,
                    "order.total": 12.5 + n,
                    "order.id": 2**62 + n,  # past JavaScript's safe range: v1 sends a string
                    "error": failed,
                },
                resource={"host.name": "checkout-0"},
                **common,
            ),
            FakeSpan(
                span_id=ids[3],
                parent_span_id=ids[2],
                service="checkout",
                name="publish payment",
                start_ns=t0 + 3 * MS,
                end_ns=t0 + 4 * MS,
                kind=4,
                attributes={"messaging.system": "kafka", "payload": b"\x00\x01\xfe"},
                trace_id=trace_id,
            ),
            FakeSpan(
                span_id=ids[4],
                parent_span_id=ids[3],
                service="payments",
                name="charge card",
                start_ns=t0 + 5 * MS,
                end_ns=t0 + 30 * MS,
                kind=5 if n % 2 else 0,
                attributes={"otel.status_code": "ERROR"} if failed else {"card.brand": "visa"},
                trace_id=trace_id,
            ),
        ]
    return spans


def expected_keys(spans: list[FakeSpan], window: TimeWindow = WINDOW) -> set[tuple[str, str]]:
    start = int(window.start.timestamp()) * 10**6
    end = int(window.end.timestamp()) * 10**6
    return {(s.trace_id, s.span_id) for s in spans if start <= s.start_ns // 1000 < end}


# -- completeness --------------------------------------------------------------------------


@pytest.mark.parametrize("api", ["v3", "v1"])
def test_window_with_more_traces_than_the_search_depth_is_exported_completely(api: str) -> None:
    spans = shop_traces(150)
    # Traces just before and after the hour: their spans belong to other partitions.
    spans += shop_traces(10, seed=8, first_ns=START_NS - 10**9, spread_s=1)
    spans += shop_traces(10, seed=9, first_ns=END_NS - 20 * MS, spread_s=0)
    with fake_jaeger.serve(spans) as jaeger:
        one_search = requests.get(
            f"{jaeger.url}/api/traces",
            params={"service": "checkout", "start": START_NS // 1000, "end": END_NS // 1000},
            timeout=5,
        ).json()
        assert len(one_search["data"]) == 100  # one search is cut at the depth
        table = read_all(source(jaeger.url, api=api, search_depth=20))
    keys = list(zip(table["trace_id"].to_pylist(), table["span_id"].to_pylist(), strict=True))
    assert len(keys) == len(set(keys))  # exactly once
    assert set(keys) == expected_keys(spans)
    assert len(keys) > 150 * 5  # the boundary traces contributed their in-window spans


def test_search_that_stays_full_at_the_smallest_window_fails_clearly() -> None:
    # 30 traces starting in the same microsecond cannot be split apart below a depth of 20.
    spans = shop_traces(30, first_ns=START_NS + 5 * 10**9, spread_s=0)
    with fake_jaeger.serve(spans) as jaeger:
        message = one_line_error(source(jaeger.url, search_depth=20))
    assert "sources.jaeger.search_depth" in message and "'checkout'" in message


def test_a_trace_touching_two_services_appears_once() -> None:
    spans = shop_traces(3)
    with fake_jaeger.serve(spans) as jaeger:
        table = read_all(source(jaeger.url, api="v3"))
        searched = {p["query.service_name"] for p in jaeger.searches()}
    assert searched == {"frontend", "checkout", "payments"}  # each returned all 3 traces
    assert table.num_rows == 15
    assert table.group_by(["trace_id"]).aggregate([("span_id", "count_distinct")]).column(
        "span_id_count_distinct"
    ).to_pylist() == [5, 5, 5]


def test_configured_services_limit_the_export_to_their_spans() -> None:
    spans = shop_traces(4)
    with fake_jaeger.serve(spans) as jaeger:
        table = read_all(source(jaeger.url, services=["payments"]))
    assert set(table["service"].to_pylist()) == {"payments"}
    assert table.num_rows == 4


# -- v1 and v3 agree ----------------------------------------------------------------------


def test_v1_and_v3_give_the_same_rows_for_the_same_traces() -> None:
    spans = shop_traces(60)
    with fake_jaeger.serve(spans) as jaeger:
        from_v3 = read_all(source(jaeger.url, api="v3", search_depth=25))
        from_v1 = read_all(source(jaeger.url, api="v1", search_depth=25))
    assert from_v3.num_rows == 300
    assert from_v1.equals(from_v3)


@pytest.mark.parametrize("mode", ["v3", "v1", "legacy"])
def test_auto_detection_and_every_wire_format_give_the_same_rows(mode: str) -> None:
    spans = shop_traces(20)
    with fake_jaeger.serve(spans, mode="both") as jaeger:
        reference = read_all(source(jaeger.url, api="v3"))
    with fake_jaeger.serve(spans, mode=mode) as jaeger:  # type: ignore[arg-type]
        detected = source(jaeger.url, api="auto")
        table = read_all(detected)
    assert detected.api == ("v1" if mode == "v1" else "v3")
    assert table.num_rows == 100
    assert table.equals(reference)


# -- mapping -------------------------------------------------------------------------------


def mapping_spans() -> list[FakeSpan]:
    trace = "0000000000000000" + "a1b2c3d4e5f60718"  # a 64-bit id
    t0 = START_NS + 60 * 10**9
    base = {"trace_id": trace, "service": "api", "end_ns": t0 + 2_500_000}
    return [
        FakeSpan(
            span_id="00000000000000a1",
            name="root",
            start_ns=t0,
            kind=2,
            status_code=1,
            attributes={"http.status_code": 200, "user.id": "u-7"},
            resource={"host.name": "h1", "k8s.pod.uid": "p-1"},
            scope_name="lib",
            scope_version="2.0",
            **base,
        ),
        FakeSpan(  # error by status
            span_id="00000000000000a2",
            parent_span_id="00000000000000a1",
            name="status error",
            start_ns=t0 + 1000,
            kind=3,
            status_code=2,
            status_message="boom",
            attributes={"peer.service": "db", "http.response.status_code": 503},
            **base,
        ),
        FakeSpan(  # error by tag error=true
            span_id="00000000000000a3",
            parent_span_id="00000000000000a1",
            name="error tag",
            start_ns=t0 + 2000,
            kind=4,
            attributes={"error": True},
            **base,
        ),
        FakeSpan(  # error by tag otel.status_code=ERROR
            span_id="00000000000000a4",
            parent_span_id="00000000000000a1",
            name="otel status tag",
            start_ns=t0 + 3000,
            kind=5,
            attributes={"otel.status_code": "ERROR", "http.status_code": "404"},
            **base,
        ),
        FakeSpan(
            span_id="00000000000000a5",
            parent_span_id="00000000000000a1",
            name="typed",
            start_ns=t0 + 4000,
            kind=1,
            attributes={
                "s": "text",
                "b": True,
                "i": -3,
                "big": 9223372036854775222,
                "f": 0.25,
                "bytes": b"\x00\x00\x30\x39",
            },
            **base,
        ),
        FakeSpan(span_id="00000000000000a6", name="no kind", start_ns=t0 + 5000, **base),
    ]


@pytest.mark.parametrize("api", ["v3", "v1"])
def test_columns_are_mapped_from_either_api(api: str) -> None:
    with fake_jaeger.serve(mapping_spans()) as jaeger:
        rows = rows_by_span(read_all(source(jaeger.url, api=api)))
    root, status_error, error_tag, otel_tag, typed, no_kind = (
        rows[f"00000000000000a{i}"] for i in range(1, 7)
    )
    assert root["trace_id"] == "0000000000000000a1b2c3d4e5f60718"
    assert root["parent_span_id"] is None and status_error["parent_span_id"] == root["span_id"]
    assert root["service"] == "api" and root["operation"] == "root"
    assert root["start_ts"] == datetime(2026, 11, 1, 10, 1)
    assert root["duration_us"] == 2500
    assert (root["kind"], root["status_code"], root["is_error"]) == ("server", "ok", False)
    assert root["http_status"] == 200
    assert json.loads(root["attributes"]) == {
        "otel.scope.name": "lib",
        "otel.scope.version": "2.0",
        "resource.host.name": "h1",
        "resource.k8s.pod.uid": "p-1",
        "user.id": "u-7",
    }
    assert (status_error["kind"], status_error["status_code"], status_error["is_error"]) == (
        "client",
        "error",
        True,
    )
    assert status_error["http_status"] == 503 and status_error["peer_service"] == "db"
    assert status_error["attributes"] == '{"otel.status_description":"boom"}'
    assert (error_tag["kind"], error_tag["status_code"], error_tag["is_error"]) == (
        "producer",
        "error",
        True,
    )
    assert error_tag["attributes"] == "{}"
    assert (otel_tag["kind"], otel_tag["status_code"], otel_tag["is_error"]) == (
        "consumer",
        "error",
        True,
    )
    assert otel_tag["http_status"] == 404
    assert typed["kind"] == "internal" and typed["status_code"] == "unset"
    assert typed["is_error"] is False and typed["http_status"] is None
    assert typed["attributes"] == (
        '{"b":true,"big":9223372036854775222,"bytes":"AAAwOQ==","f":0.25,"i":-3,"s":"text"}'
    )
    assert no_kind["kind"] == "unspecified" and no_kind["peer_service"] is None


def test_v3_arrays_and_maps_stay_typed_in_attributes() -> None:
    span = FakeSpan(
        trace_id="c" * 32,
        span_id="d" * 16,
        service="api",
        name="op",
        start_ns=START_NS,
        end_ns=START_NS + 1000,
        attributes={"list": [1, "two", False, 0.5], "map": {"k": "v", "n": {"deep": 2}}},
    )
    with fake_jaeger.serve([span]) as jaeger:
        rows = read_all(source(jaeger.url, api="v3")).to_pylist()
    assert rows[0]["attributes"] == '{"list":[1,"two",false,0.5],"map":{"k":"v","n":{"deep":2}}}'


@pytest.mark.parametrize("api", ["v3", "v1"])
def test_spans_at_start_are_included_and_at_end_excluded(api: str) -> None:
    def at(span_id: str, start_ns: int) -> FakeSpan:
        return FakeSpan(
            trace_id=span_id * 2,
            span_id=span_id,
            service="api",
            name=span_id,
            start_ns=start_ns,
            end_ns=start_ns + 10**6,
        )

    spans = [
        at("1000000000000001", START_NS - 1000),  # 1 µs before the start
        at("1000000000000002", START_NS),  # exactly at the start
        at("1000000000000003", END_NS - 1000),  # the last microsecond
        at("1000000000000004", END_NS - 1),  # 1 ns before the end: still in the last µs
        at("1000000000000005", END_NS),  # exactly at the end
    ]
    with fake_jaeger.serve(spans) as jaeger:
        table = read_all(source(jaeger.url, api=api))
    assert table["span_id"].to_pylist() == [
        "1000000000000002",
        "1000000000000003",
        "1000000000000004",
    ]


def test_v1_fixture_decodes_with_jaeger_parent_and_tag_rules() -> None:
    trace = json.loads((FIXTURES / "jaeger/trace_object_all_tag_types.json").read_text())
    result = decode_v1({"data": [trace], "total": 0, "limit": 0, "offset": 0, "errors": None})
    rows = {(r.span_id, r.operation): r for r in result.spans}
    tagged = rows[("0000000000000002", "some-operation")]
    assert tagged.trace_id == "0" * 31 + "1"
    assert tagged.service == "service-x"
    assert (tagged.peer_service, tagged.status_code, tagged.is_error) == (
        "service-y",
        "error",
        True,
    )
    assert tagged.attributes == (
        '{"blob":"AAAwOQ==","javascript_limit":9223372036854775222,'
        '"peer.ipv4":23456,"temperature":72.5}'
    )
    # The CHILD_OF into another trace is skipped; the one in this trace wins over FOLLOWS_FROM.
    assert rows[("0000000000000004", "reference-test")].parent_span_id == "0000000000000002"
    assert rows[("0000000000000003", "some-operation")].service == "service-y"
    assert result.trace_count == 1


def test_v3_fixtures_decode_both_current_and_legacy_streams() -> None:
    two = decode_v3(
        (FIXTURES / "jaeger-v3/traces_search_response.two_traces.assembled.json").read_bytes()
    )
    assert two.trace_count == 2 and len(two.spans) == 6
    server = next(r for r in two.spans if r.span_id == "eee19b7ec3c1b174")
    assert (server.service, server.kind, server.parent_span_id) == (
        "my.service",
        "server",
        "eee19b7ec3c1b173",
    )
    assert server.attributes == (
        '{"internal.span.format":"otlp","my.span.attr":"some value",'
        '"otel.scope.name":"my.library","otel.scope.version":"1.0.0"}'
    )
    assert (server.start_us, server.duration_us) == (1544712660000000, 1000000)
    legacy = decode_v3(
        (FIXTURES / "jaeger-v3/trace_get_response.jaeger-1.31-grpc-gateway.wire.json").read_bytes()
        + b"\n"
    )
    (span,) = legacy.spans
    assert (span.trace_id, span.span_id) == ("5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b173")
    assert (span.parent_span_id, span.kind, span.service) == (None, "internal", None)
    assert span.attributes == (
        '{"attr1":55,"internal.span.format":"proto","resource.host.name":"testHost"}'
    )


# -- errors --------------------------------------------------------------------------------


def one_line_error(spans_source: JaegerSpans) -> str:
    with pytest.raises(SourceError) as error:
        list(spans_source.read(WINDOW))
    message = str(error.value)
    assert "\n" not in message and message.count(". ") == 0
    return message


def test_unreachable_server_is_one_line_naming_the_url_key() -> None:
    message = one_line_error(source(f"http://127.0.0.1:{free_port()}", retries=1))
    assert "unreachable" in message and "sources.jaeger.url" in message


def test_server_errors_after_retries_are_one_line_quoting_the_status() -> None:
    with fake_jaeger.serve(shop_traces(2)) as jaeger:
        jaeger.fail_status = 503
        message = one_line_error(source(jaeger.url, retries=2))
        attempts = len(jaeger.requests)
    assert "HTTP 503" in message and "upstream unavailable" in message
    assert "after 2 retries" in message
    assert attempts == 3


def test_v1_requested_from_a_server_that_removed_it_says_to_use_v3() -> None:
    with fake_jaeger.serve(shop_traces(2), mode="v3") as jaeger:
        message = one_line_error(source(jaeger.url, api="v1"))
    assert "HTTP 404" in message and "sources.jaeger.api to v3 or auto" in message


def test_v3_requested_from_a_server_without_it_says_to_use_v1() -> None:
    with fake_jaeger.serve(shop_traces(2), mode="v1") as jaeger:
        message = one_line_error(source(jaeger.url, api="v3"))
    assert "/api/v3" in message and "sources.jaeger.api to v1 or auto" in message


@pytest.mark.parametrize("api", ["v3", "v1"])
def test_a_refused_search_quotes_the_server_message(api: str) -> None:
    with fake_jaeger.serve(shop_traces(2)) as jaeger:
        jaeger.storage_refuses = "service name is required by this storage"
        message = one_line_error(source(jaeger.url, api=api))
    assert "HTTP 400: service name is required by this storage" in message


def test_a_search_depth_beyond_the_storage_limit_names_the_key() -> None:
    with fake_jaeger.serve(shop_traces(2), max_traces=50) as jaeger:
        message = one_line_error(source(jaeger.url, search_depth=80))
    assert "search depth must be greater than 0" in message
    assert "sources.jaeger.search_depth" in message


def test_a_login_page_instead_of_a_v3_search_answer_is_one_line() -> None:
    with fake_jaeger.serve(shop_traces(2), mode="v3") as jaeger:
        jaeger.login_page_paths = {"/api/v3/traces"}  # an auth proxy whose session expired
        message = one_line_error(source(jaeger.url))
    assert message == (
        f"Jaeger at {jaeger.url}/api/v3/traces answered with something that is not its JSON API "
        "(text/html: '<!doctype html><html><head><title>Sign in</title></head><...'); "
        "check sources.jaeger.url points at the Jaeger query server (not a proxy login page or "
        "UI path)"
    )


@pytest.mark.parametrize("how", ["reset", "truncated"])
@pytest.mark.parametrize("api", ["v3", "v1"])
def test_a_search_answer_cut_short_is_retried_and_the_export_is_complete(
    api: str, how: str
) -> None:
    spans = shop_traces(20)
    with fake_jaeger.serve(spans) as jaeger:
        jaeger.cut_next_searches(how, times=2)
        table = read_all(source(jaeger.url, api=api, retries=2))
        assert jaeger.take_cut() is None  # both cuts were served
    keys = set(zip(table["trace_id"].to_pylist(), table["span_id"].to_pylist(), strict=True))
    assert table.num_rows == 100 and keys == expected_keys(spans)


@pytest.mark.parametrize(
    ("how", "why"),
    [
        ("reset", "the connection closed before the body was complete"),
        ("truncated", "its JSON ends after"),
    ],
)
def test_a_search_answer_cut_short_every_time_is_one_line_saying_so(how: str, why: str) -> None:
    with fake_jaeger.serve(shop_traces(2)) as jaeger:
        jaeger.cut_next_searches(how, times=100)
        message = one_line_error(source(jaeger.url, api="v3", retries=1))
        searches = len(jaeger.searches())
    assert message.startswith(f"Jaeger at {jaeger.url} cut its answer to /api/v3/traces short (")
    assert why in message
    assert message.endswith(
        "still after 1 retry; check the query service's health and any proxy in between, then rerun"
    )
    assert searches == 2


@pytest.mark.parametrize(
    ("rewrite", "what"),
    [
        (
            lambda span: span.pop("startTime"),
            'span 00000000000000a1 of trace a1b2c3d4e5f60718 without a "startTime"',
        ),
        (
            lambda span: span["tags"][0].pop("key"),
            'a tag without a "key" on span 00000000000000a1 of trace a1b2c3d4e5f60718',
        ),
    ],
)
def test_a_v1_span_that_is_not_jaegers_model_is_one_line_naming_it(rewrite: Any, what: str) -> None:
    with fake_jaeger.serve(mapping_spans()[:1], mode="v1") as jaeger:
        jaeger.rewrite_v1_span = rewrite
        message = one_line_error(source(jaeger.url))
    assert message == (
        f"Jaeger at {jaeger.url} answered the search for service 'api' with what Jaeger never "
        f"sends ({what}); check sources.jaeger.url points at the Jaeger query service itself, "
        "not at something that rewrites its answers"
    )


@pytest.mark.parametrize(
    ("change", "what"),
    [
        ({"start_ns": 0}, 'span 00000000000000a2 of trace {trace} without a "startTimeUnixNano"'),
        ({"span_id": ""}, 'span (no id) of trace {trace} without a "spanId"'),
    ],
)
def test_a_v3_span_without_an_id_or_a_start_is_one_line_naming_it(
    change: dict[str, Any], what: str
) -> None:
    """OTLP never sends these empty: a zero start used to drop the span without a word."""
    root, child, *rest = mapping_spans()
    with fake_jaeger.serve([root, dataclasses.replace(child, **change), *rest]) as jaeger:
        message = one_line_error(source(jaeger.url, api="v3"))
    trace = root.trace_id
    assert message == (
        f"Jaeger at {jaeger.url} answered the search for service 'api' with what Jaeger never "
        f"sends ({what.format(trace=trace)}); check sources.jaeger.url points at the Jaeger query "
        "service itself, not at something that rewrites its answers"
    )


def test_a_jaeger_listing_no_services_exports_nothing_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with fake_jaeger.serve([], mode="v1") as jaeger, caplog.at_level(logging.WARNING):
        table = read_all(source(jaeger.url))
    assert table.num_rows == 0
    assert [r.getMessage() for r in caplog.records if r.name == "obs_pipelines.sources.jaeger"] == [
        f"Jaeger at {jaeger.url} lists no services, so {WINDOW} has no spans; if it should, "
        "check that sources.jaeger.url is the Jaeger that receives the traces"
    ]


# -- the fake against real responses -------------------------------------------------------


def fixture_trace_157() -> FakeSpan:
    return FakeSpan(
        trace_id="5b8efff798038103d269b633813fc60c",
        span_id="eee19b7ec3c1b174",
        parent_span_id="eee19b7ec3c1b173",
        service="my.service",
        name="I'm a server span",
        kind=2,
        start_ns=1544712660000000000,
        end_ns=1544712661000000000,
        attributes={"my.span.attr": "some value", "internal.span.format": "otlp"},
        scope_name="my.library",
        scope_version="1.0.0",
    )


def test_fake_v3_answers_byte_for_byte_as_jaeger_157_and_the_snapshots() -> None:
    wire = (FIXTURES / "jaeger-v3/trace_get_response.jaeger-1.57.wire.json").read_bytes().strip()
    snapshot_span = FakeSpan(
        trace_id="0" * 31 + "1",
        span_id="0" * 15 + "2",
        service=None,
        name="foobar",
        start_ns=0,
        end_ns=0,
        kind=2,
        status_code=2,
    )
    with fake_jaeger.serve([fixture_trace_157(), snapshot_span]) as jaeger:
        got = requests.get(
            f"{jaeger.url}/api/v3/traces/5B8EFFF798038103D269B633813FC60C", timeout=5
        )
        found = requests.get(
            f"{jaeger.url}/api/v3/traces",
            params={
                "query.service_name": "my.service",
                "query.start_time_min": "2018-12-13T14:51:00Z",
                "query.start_time_max": "2018-12-13T14:51:00.000000000+00:00",
                "query.num_traces": "5",
            },
            timeout=5,
        )
        snapshot = requests.get(f"{jaeger.url}/api/v3/traces/1", timeout=5).json()
        empty = requests.get(
            f"{jaeger.url}/api/v3/traces",
            params={
                "query.startTimeMin": "2030-01-01T00:00:00Z",
                "query.startTimeMax": "2030-01-02T00:00:00Z",
            },
            timeout=5,
        )
        missing = requests.get(
            f"{jaeger.url}/api/v3/traces",
            params={"query.start_time_min": "2030-01-01T00:00:00Z"},
            timeout=5,
        )
    assert got.content == wire and found.content == wire
    assert snapshot == json.loads(
        (FIXTURES / "jaeger-v3/trace_get_response.snapshot.json").read_text()
    )
    no_traces = (
        (FIXTURES / "jaeger-v3/error_404_no_traces_found.assembled.json").read_bytes().strip()
    )
    assert (empty.status_code, empty.content) == (404, no_traces + b"\n")
    assert empty.headers["Content-Type"] == "text/plain; charset=utf-8"
    required = (FIXTURES / "jaeger-v3/error_400_time_range_required.assembled.json").read_bytes()
    assert (missing.status_code, missing.content.strip()) == (400, required.strip())


def test_fake_legacy_gateway_streams_the_131_wire_format() -> None:
    wire = (
        FIXTURES / "jaeger-v3/trace_get_response.jaeger-1.31-grpc-gateway.wire.json"
    ).read_bytes()
    span = FakeSpan(
        trace_id="5b8efff798038103d269b633813fc60c",
        span_id="eee19b7ec3c1b173",
        service=None,
        name="testSpan",
        kind=1,
        start_ns=1544712660000000000,
        end_ns=1544712661000000000,
        attributes={"attr1": 55, "internal.span.format": "proto"},
        resource={"host.name": "testHost"},
    )
    with fake_jaeger.serve([span], mode="legacy") as jaeger:
        got = requests.get(
            f"{jaeger.url}/api/v3/traces/5b8efff798038103d269b633813fc60c", timeout=5
        )
        empty = requests.get(
            f"{jaeger.url}/api/v3/traces",
            params={
                "query.start_time_min": "2030-01-01T00:00:00Z",
                "query.start_time_max": "2030-01-02T00:00:00Z",
            },
            timeout=5,
        )
    assert got.content == wire.strip() + b"\n"
    assert got.headers["Transfer-Encoding"] == "chunked"
    assert (empty.status_code, empty.content) == (200, b"")


def test_fake_v1_answers_as_the_jaeger_fixtures() -> None:
    fixture = json.loads((FIXTURES / "jaeger/api_traces_by_id_response.json").read_text())
    span = FakeSpan(
        trace_id="83a9efd15c1c98a977e0711cc93ee28b",
        span_id="e127af99e3b3e074",
        parent_span_id="909541b92cf05311",
        service="telemetrygen",
        name="okey-dokey-0",
        kind=2,
        start_ns=1706678909209712000,
        end_ns=1706678909209835000,
        attributes={"net.peer.ip": "1.2.3.4", "peer.service": "telemetrygen-client"},
        scope_name="telemetrygen",
    )
    with fake_jaeger.serve([span]) as jaeger:
        by_id = requests.get(f"{jaeger.url}/api/traces/{span.trace_id}", timeout=5).json()
        unknown = requests.get(f"{jaeger.url}/api/traces/{'f' * 32}", timeout=5)
        services = requests.get(f"{jaeger.url}/api/services", timeout=5).json()
        bad = requests.get(
            f"{jaeger.url}/api/traces", params={"service": "x", "start": "soon"}, timeout=5
        )
    with fake_jaeger.serve([]) as jaeger:
        no_services = requests.get(f"{jaeger.url}/api/services", timeout=5).json()
        no_v3_services = requests.get(f"{jaeger.url}/api/v3/services", timeout=5).content
    (trace,) = fixture["data"]
    expected = {**trace, "spans": trace["spans"][:1]}  # the fixture repeats its one span
    assert by_id == {**fixture, "data": [expected]}
    not_found = (FIXTURES / "jaeger/api_error_404_trace_not_found.json").read_bytes().strip()
    assert (unknown.status_code, unknown.content) == (404, not_found + b"\n")
    services_fixture = json.loads(
        (FIXTURES / "jaeger/api_services_response.assembled.json").read_text()
    )
    assert services.keys() == services_fixture.keys()
    assert services == {**services_fixture, "data": ["telemetrygen"], "total": 1}
    assert no_services == {**services_fixture, "data": None, "total": 0}
    assert (
        no_v3_services
        == (FIXTURES / "jaeger-v3/services_response_empty.wire.json").read_bytes().strip()
    )
    assert bad.status_code == 400
    assert orjson.loads(bad.content)["errors"][0]["msg"].startswith("unable to parse param 'start'")
