"""The Elasticsearch log source, through the official client, against the protocol test server.

Documents are bulk-loaded over HTTP; what the source returns is compared field by field with what
was loaded, independently computed here.
"""

import base64
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from elasticsearch import BadRequestError, Elasticsearch

from obs_pipelines.config import ElasticsearchSourceConfig, parse_config
from obs_pipelines.errors import SourceError
from obs_pipelines.lake import Lake, delta_tables
from obs_pipelines.lake.ingest import ingest_table_hour
from obs_pipelines.schemas import LOG_RECORDS
from obs_pipelines.sources.elasticsearch import ElasticsearchLogs
from obs_pipelines.windows import TimeWindow
from tests import servers
from tests.fake_elasticsearch import FakeElasticsearch, serve

pytestmark = pytest.mark.integration  # exports 25,000 documents from the fake cluster

START = datetime(2026, 11, 1, 10, tzinfo=UTC)
WINDOW = TimeWindow(START, START + timedelta(hours=1))
START_NS = int(START.timestamp()) * 10**9
END_NS = START_NS + 3600 * 10**9
EPOCH = datetime(1970, 1, 1)

Doc = tuple[str, str, dict[str, Any] | bytes]  # index, _id, _source (bytes: indexed as they are)


# --- building documents and what the source must make of them -------------------------------


def iso_nanos(ns: int) -> str:
    seconds, nanos = divmod(ns, 10**9)
    return f"{datetime.fromtimestamp(seconds, UTC):%Y-%m-%dT%H:%M:%S}.{nanos:09d}Z"


def iso_plus_two_hours(ns: int) -> str:
    """The same instant written in +02:00 with microseconds (ns must be a whole microsecond)."""
    local = datetime.fromtimestamp(ns // 10**9, UTC) + timedelta(hours=2)
    return f"{local:%Y-%m-%dT%H:%M:%S}.{(ns % 10**9) // 1000:06d}+02:00"


def ts_of(ns: int) -> datetime:
    return EPOCH + timedelta(microseconds=ns // 1000)


def ecs_doc(number: int, rng: random.Random) -> tuple[Doc, dict[str, Any]]:
    """One log document (ECS names, nested or as literal dotted keys) and its expected row."""
    index = "logs-app-2026.11.01" if number % 2 else "logs-web-2026.11.01"
    ns = START_NS + rng.randrange(0, 3600 * 10**9)
    if number % 10 == 0:
        # A burst: one in ten documents share one instant, so pages end inside a run of equal
        # timestamps and only the _shard_doc tiebreaker keeps search_after exact.
        ns = START_NS + 25 * 60 * 10**9
    form = number % 3
    if form == 0:
        timestamp: Any = iso_nanos(ns)
    elif form == 1:
        ns -= ns % 10**6
        timestamp = ns // 10**6  # epoch millis
    else:
        ns -= ns % 1000
        timestamp = iso_plus_two_hours(ns)
    service = f"svc-{number % 7}"
    level = rng.choice(["INFO", "Warn", "error", "DEBUG"])
    trace_id = f"{rng.getrandbits(128):032x}" if number % 4 else None
    span_id = f"{rng.getrandbits(64):016x}" if number % 4 else None
    host = f"node-{number % 5}"
    extra = {"http": {"status": 200 + number % 5}, "labels": {"shard": number % 11}}
    if number % 2 == 0:
        source: dict[str, Any] = {
            "@timestamp": timestamp,
            "service": {"name": service},
            "log": {"level": level, "logger": "app.main"},
            "message": f"request {number} served",
            "host": {"name": host},
            **extra,
        }
        if trace_id:
            source["trace"] = {"id": trace_id}
            source["span"] = {"id": span_id}
        attributes = {**extra, "log": {"logger": "app.main"}}
    else:
        source = {
            "@timestamp": timestamp,
            "service.name": service,
            "log.level": level,
            "message": f"request {number} served",
            "host.name": host,
            "trace.id": trace_id,
            "span.id": span_id,
            **extra,
        }
        attributes = extra
    doc_id = f"doc-{number:06d}"
    expected = {
        "ts": ts_of(ns),
        "service": service,
        "level": level.lower(),
        "message": f"request {number} served",
        "trace_id": trace_id,
        "span_id": span_id,
        "host": host,
        "index": index,
        "doc_id": doc_id,
        "attributes": orjson.dumps(attributes, option=orjson.OPT_SORT_KEYS).decode(),
    }
    return (index, doc_id, source), expected


def boundary_docs() -> tuple[list[Doc], list[dict[str, Any]]]:
    """Documents at and just beyond the window's edges; only those inside are expected."""
    app = "logs-app-2026.11.01"
    cases: list[tuple[str, Any, int | None]] = [
        ("at-start", "2026-11-01T10:00:00Z", START_NS),
        ("just-before-end", iso_nanos(END_NS - 1), END_NS - 1),
        ("at-end", "2026-11-01T11:00:00.000Z", None),
        ("just-before-start", (START_NS // 10**6) - 1, None),
        ("next-hour", iso_nanos(END_NS + 300 * 10**9), None),
    ]
    docs, expected = [], []
    for doc_id, timestamp, ns in cases:
        docs.append((app, doc_id, {"@timestamp": timestamp, "message": doc_id}))
        if ns is not None:
            expected.append(
                {
                    "ts": ts_of(ns),
                    "service": None,
                    "level": None,
                    "message": doc_id,
                    "trace_id": None,
                    "span_id": None,
                    "host": None,
                    "index": app,
                    "doc_id": doc_id,
                    "attributes": "{}",
                }
            )
    # Inside the window but in an index the pattern logs-* does not match.
    docs.append(("audit-2026.11.01", "audit-1", {"@timestamp": iso_nanos(START_NS + 10**9)}))
    return docs, expected


def bulk_load(cluster: FakeElasticsearch, docs: list[Doc], **auth: Any) -> None:
    """Load documents through the official client's bulk API, as an operator's shipper would."""
    client = Elasticsearch(cluster.url, **auth)
    operations: list[dict[str, Any]] = []
    for index, doc_id, source in docs:
        operations += [{"index": {"_index": index, "_id": doc_id}}, source]
    for start in range(0, len(operations), 10_000):
        chunk = operations[start : start + 10_000]
        if cluster.major == 9:
            answer = client.bulk(operations=chunk, refresh=True)
        else:  # the 9.x client's typed API speaks compatible-with=9, which 8.x refuses
            ndjson = "application/vnd.elasticsearch+x-ndjson; compatible-with=8"
            answer = client.perform_request(
                "POST",
                "/_bulk",
                params={"refresh": "true"},
                headers={
                    "accept": "application/vnd.elasticsearch+json; compatible-with=8",
                    "content-type": ndjson,
                },
                body=chunk,
            )
        assert answer["errors"] is False
    client.close()


def rows(table: pa.Table) -> list[dict[str, Any]]:
    return sorted(table.to_pylist(), key=lambda row: (row["index"], row["doc_id"]))


def read_all(source: ElasticsearchLogs, window: TimeWindow = WINDOW) -> pa.Table:
    tables = list(source.read(window))
    assert all(t.schema == LOG_RECORDS for t in tables)
    return pa.concat_tables(tables) if tables else LOG_RECORDS.empty_table()


def config(url: str, **options: Any) -> ElasticsearchSourceConfig:
    return ElasticsearchSourceConfig(
        url=url,
        **{"index": "logs-*", "retry_backoff_seconds": 0.001, "retries": 3, **options},
    )


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big() -> Iterator[tuple[FakeElasticsearch, list[dict[str, Any]]]]:
    """A 9.x test server holding 25,000 log documents in two indices, plus edge cases."""
    rng = random.Random(7)
    docs, expected = [], []
    for number in range(25_000):
        doc, row = ecs_doc(number, rng)
        docs.append(doc)
        expected.append(row)
    edge_docs, edge_rows = boundary_docs()
    with serve(FakeElasticsearch(major=9)) as cluster:
        bulk_load(cluster, docs + edge_docs)
        yield cluster, sorted(expected + edge_rows, key=lambda r: (r["index"], r["doc_id"]))


@pytest.fixture(scope="module")
def medium() -> Iterator[tuple[FakeElasticsearch, list[dict[str, Any]]]]:
    """A 9.x test server with 3,000 documents: several pages, for failures part-way through."""
    rng = random.Random(5)
    pairs = [ecs_doc(number, rng) for number in range(3_000)]
    with serve(FakeElasticsearch(major=9)) as cluster:
        bulk_load(cluster, [doc for doc, _ in pairs])
        yield cluster, sorted((row for _, row in pairs), key=lambda r: (r["index"], r["doc_id"]))


@pytest.fixture(scope="module")
def exported(big: tuple[FakeElasticsearch, list[dict[str, Any]]]) -> pa.Table:
    cluster, _ = big
    return read_all(ElasticsearchLogs(config(cluster.url, page_size=5000)))


@pytest.fixture
def cluster_factory() -> Iterator[Callable[..., FakeElasticsearch]]:
    """Small test servers on demand, each loaded with a few documents; stopped afterwards."""
    stack: list[Any] = []

    def start(major: int = 9, docs: list[Doc] | None = None, **security: Any) -> FakeElasticsearch:
        context = serve(FakeElasticsearch(major=major, **security))
        cluster = context.__enter__()
        stack.append(context)
        auth: dict[str, Any] = {}
        if security.get("api_key"):
            auth["api_key"] = security["api_key"]
        if security.get("basic"):
            auth["basic_auth"] = security["basic"]
        bulk_load(cluster, docs if docs is not None else small_docs()[0], **auth)
        return cluster

    yield start
    for context in reversed(stack):
        context.__exit__(None, None, None)


def small_docs(count: int = 40) -> tuple[list[Doc], list[dict[str, Any]]]:
    rng = random.Random(11)
    pairs = [ecs_doc(number, rng) for number in range(count)]
    return [d for d, _ in pairs], sorted((r for _, r in pairs), key=lambda r: r["doc_id"])


# --- completeness and exactness ---------------------------------------------------------------


def test_a_window_of_25000_documents_over_two_indices_is_exported_completely_and_exactly(
    big: tuple[FakeElasticsearch, list[dict[str, Any]]], exported: pa.Table
) -> None:
    _, expected = big
    assert exported.schema == LOG_RECORDS
    assert exported.num_rows == 25_002
    assert rows(exported) == expected
    burst = pc.equal(
        exported.column("ts"), pa.scalar(datetime(2026, 11, 1, 10, 25), pa.timestamp("us"))
    )
    assert pc.sum(burst).as_py() >= 2_500


def test_the_window_includes_its_start_and_excludes_its_end(exported: pa.Table) -> None:
    ids = set(exported.column("doc_id").to_pylist())
    assert {"at-start", "just-before-end"} <= ids
    assert not ids & {"at-end", "just-before-start", "next-hour", "audit-1"}


def test_levels_are_lower_cased_and_unmapped_fields_become_sorted_json(exported: pa.Table) -> None:
    by_id = {row["doc_id"]: row for row in exported.to_pylist()}
    nested, dotted = by_id["doc-000000"], by_id["doc-000001"]
    levels = set(exported.column("level").to_pylist()) - {None}  # edge documents have none
    assert levels == {"info", "warn", "error", "debug"}
    assert (
        nested["attributes"]
        == '{"http":{"status":200},"labels":{"shard":0},"log":{"logger":"app.main"}}'
    )
    assert dotted["attributes"] == '{"http":{"status":201},"labels":{"shard":1}}'
    assert dotted["service"] == "svc-1" and dotted["host"] == "node-1"


def test_a_sliced_export_returns_the_same_rows_as_a_single_one(
    big: tuple[FakeElasticsearch, list[dict[str, Any]]], exported: pa.Table
) -> None:
    cluster, _ = big
    sliced = read_all(ElasticsearchLogs(config(cluster.url, slices=3, page_size=4000)))
    assert {(0, 3), (1, 3), (2, 3)} <= cluster.slices_seen
    assert rows(sliced) == rows(exported)
    assert cluster.open_pits == 0


# --- failures: retried, or one clear line and nothing yielded ------------------------------------


@pytest.mark.parametrize("kind", ["503", "429", "partial", "timed_out", "reset", "truncated"])
def test_a_failure_mid_export_is_retried_and_the_result_is_still_complete(
    kind: str, medium: tuple[FakeElasticsearch, list[dict[str, Any]]]
) -> None:
    cluster, expected = medium
    cluster.fail_next_searches(kind, times=2, after=3)
    table = read_all(ElasticsearchLogs(config(cluster.url, page_size=500)))
    assert cluster.faults_pending == 0
    assert rows(table) == expected
    assert cluster.open_pits == 0


def test_an_expired_point_in_time_restarts_the_window_on_a_new_one(
    medium: tuple[FakeElasticsearch, list[dict[str, Any]]],
) -> None:
    cluster, expected = medium
    opened_before = cluster.pits_opened
    cluster.fail_next_searches("pit_expired", times=1, after=3)
    table = read_all(ElasticsearchLogs(config(cluster.url, page_size=400, slices=2)))
    assert cluster.faults_pending == 0
    assert cluster.pits_opened == opened_before + 2
    assert rows(table) == expected
    assert cluster.open_pits == 0


@pytest.mark.parametrize(
    ("kind", "says"),
    [
        ("503", "answered HTTP 503 (search_phase_execution_exception"),
        ("429", "lower sources.elasticsearch.slices"),
        ("partial", "failed on 1 of 4 shards"),
        ("pit_expired", "raise sources.elasticsearch.keep_alive"),
        ("reset", "cut its answer short (the connection closed before the body was complete)"),
        ("truncated", "cut its answer short (its JSON ends after"),
    ],
)
def test_a_persistent_failure_raises_one_line_and_yields_nothing(
    kind: str, says: str, cluster_factory: Callable[..., FakeElasticsearch]
) -> None:
    cluster = cluster_factory()
    cluster.fail_next_searches(kind, times=1000, after=1)
    source = ElasticsearchLogs(config(cluster.url, page_size=10, retries=2, slices=2))
    window_tables = source.read(WINDOW)
    with pytest.raises(SourceError) as failure:
        next(window_tables)
    message = str(failure.value)
    assert "\n" not in message
    assert says in message
    assert cluster.open_pits == 0
    if kind != "pit_expired":  # an expired PIT is gone already; the others were closed by us
        assert cluster.pits_closed == cluster.pits_opened


def test_the_point_in_time_is_closed_after_success(
    cluster_factory: Callable[..., FakeElasticsearch],
) -> None:
    cluster = cluster_factory()
    _, expected = small_docs()
    table = read_all(ElasticsearchLogs(config(cluster.url, page_size=7)))
    assert rows(table) == sorted(expected, key=lambda r: (r["index"], r["doc_id"]))
    assert cluster.pits_opened == 1
    assert cluster.pits_closed == 1
    assert cluster.open_pits == 0


def test_an_index_pattern_that_matches_no_index_is_refused_in_one_line(
    cluster_factory: Callable[..., FakeElasticsearch],
) -> None:
    cluster = cluster_factory()  # logs-app-* and logs-web-*: "log-*" is a typo
    source = ElasticsearchLogs(config(cluster.url, index="log-*"))
    with pytest.raises(SourceError) as failure:
        read_all(source)
    assert str(failure.value) == (
        f"Elasticsearch at {cluster.url} has no index matching log-* (the point in time opened "
        "on 0 shards); fix sources.elasticsearch.index"
    )
    assert cluster.searches == 0
    assert cluster.open_pits == 0


def test_an_unreachable_cluster_is_one_clear_line(unused_url: str) -> None:
    source = ElasticsearchLogs(config(unused_url, retries=1))
    with pytest.raises(SourceError, match=r"unreachable .* check sources\.elasticsearch\.url"):
        read_all(source)


@pytest.fixture
def unused_url() -> str:
    from tests.servers import free_port

    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1: (certificate file, key file)."""
    return servers.self_signed_certificate(tmp_path)


def test_tls_uses_the_configured_ca_file_and_refuses_an_unknown_certificate(
    certificate: tuple[str, str],
) -> None:
    docs, expected = small_docs()
    with serve(FakeElasticsearch(major=9), tls=certificate) as cluster:
        bulk_load(cluster, docs, ca_certs=certificate[0])
        trusted = ElasticsearchLogs(config(cluster.url, tls={"ca_file": certificate[0]}))
        assert rows(read_all(trusted)) == sorted(expected, key=lambda r: (r["index"], r["doc_id"]))
        untrusted = ElasticsearchLogs(config(cluster.url))
        with pytest.raises(
            SourceError, match=r"^TLS to Elasticsearch at .* check sources\.elasticsearch\.tls$"
        ):
            read_all(untrusted)


# --- field mapping -------------------------------------------------------------------------------


def test_a_custom_field_mapping_reads_its_own_names_and_keeps_the_rest_as_attributes(
    cluster_factory: Callable[..., FakeElasticsearch],
) -> None:
    docs: list[Doc] = [
        (
            "logs-custom",
            "c1",
            {
                "time": "2026-11-01T10:30:00.5+00:00",
                "app": "billing",
                "severity": "CRITICAL",
                "msg": "card declined",
                "otel.trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
                "otel": {"span_id": "00f067aa0ba902b7", "scope": "billing.cards"},
                "kubernetes": {"node": {"name": "k8s-7"}, "pod": "billing-1"},
                "@timestamp": "2020-01-01T00:00:00Z",
            },
        ),
        ("logs-custom", "c2", {"time": 1793529000000, "msg": "bare"}),
    ]
    cluster = cluster_factory(docs=docs)
    fields = {
        "timestamp": "time",
        "service": "app",
        "level": "severity",
        "message": "msg",
        "trace_id": "otel.trace_id",
        "span_id": "otel.span_id",
        "host": "kubernetes.node.name",
    }
    table = read_all(ElasticsearchLogs(config(cluster.url, fields=fields)))
    assert rows(table) == [
        {
            "ts": datetime(2026, 11, 1, 10, 30, 0, 500000),
            "service": "billing",
            "level": "critical",
            "message": "card declined",
            "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
            "span_id": "00f067aa0ba902b7",
            "host": "k8s-7",
            "index": "logs-custom",
            "doc_id": "c1",
            "attributes": '{"@timestamp":"2020-01-01T00:00:00Z","kubernetes":{"pod":"billing-1"},'
            '"otel":{"scope":"billing.cards"}}',
        },
        {
            "ts": datetime(2026, 11, 1, 10, 30),
            "service": None,
            "level": None,
            "message": "bare",
            "trace_id": None,
            "span_id": None,
            "host": None,
            "index": "logs-custom",
            "doc_id": "c2",
            "attributes": "{}",
        },
    ]


# --- documents orjson alone would refuse, alter or not write --------------------------------------


def raw_doc(doc_id: str, minute: int, extra: bytes) -> Doc:
    """A document as a logger's shipper sends it, bytes indexed (and answered) as they are."""
    source = b'{"@timestamp":"2026-11-01T10:%02d:00Z","message":"%s"%s}' % (
        minute,
        doc_id.encode(),
        extra,
    )
    return "logs-app-2026.11.01", doc_id, source


def attributes_by_id(cluster: FakeElasticsearch, **options: Any) -> dict[str, str]:
    table = read_all(ElasticsearchLogs(config(cluster.url, **options)))
    return dict(zip(table["doc_id"].to_pylist(), table["attributes"].to_pylist(), strict=True))


def test_a_lone_surrogate_becomes_a_replacement_character_and_the_window_is_exported(
    cluster_factory: Callable[..., FakeElasticsearch],
) -> None:
    docs = [raw_doc(f"d{n}", n, b"") for n in range(6)]
    # A truncated emoji, as Node and Java loggers write it; an intact one stays as it is.
    docs[3] = raw_doc("d3", 3, b',"note":"user said \\ud83d","ok":"\\ud83d\\ude00"')
    cluster = cluster_factory(docs=docs)
    attributes = attributes_by_id(cluster, page_size=4)
    assert len(attributes) == 6
    assert attributes["d3"] == '{"note":"user said \ufffd","ok":"\U0001f600"}'


def test_a_document_nested_300_levels_deep_is_stored(
    cluster_factory: Callable[..., FakeElasticsearch],
) -> None:
    nested = b'{"x":' * 300 + b"1" + b"}" * 300  # under an unindexed field, as Elasticsearch takes
    docs = [raw_doc("d0", 0, b""), raw_doc("deep", 1, b',"payload":' + nested)]
    cluster = cluster_factory(docs=docs)
    assert attributes_by_id(cluster)["deep"] == '{"payload":' + nested.decode() + "}"
    # Mapped to a column, the same value is stored as its JSON text.
    table = read_all(ElasticsearchLogs(config(cluster.url, fields={"message": "payload"})))
    messages = dict(zip(table["doc_id"].to_pylist(), table["message"].to_pylist(), strict=True))
    assert messages == {"d0": None, "deep": nested.decode()}


def test_integers_beyond_64_bits_keep_their_digits(
    cluster_factory: Callable[..., FakeElasticsearch],
) -> None:
    big = b',"order_id":123456789012345678901234567890,"low":-98765432109876543210987'
    docs = [raw_doc("d0", 0, b',"n":18446744073709551615'), raw_doc("big", 1, big)]
    cluster = cluster_factory(docs=docs)
    attributes = attributes_by_id(cluster)
    assert attributes["big"] == (
        '{"low":-98765432109876543210987,"order_id":123456789012345678901234567890}'
    )
    assert attributes["d0"] == '{"n":18446744073709551615}'


# --- Elasticsearch 8 and 9 -----------------------------------------------------------------------


@pytest.mark.parametrize("major", [8, 9])
def test_auto_detects_the_server_version_and_speaks_its_media_type(
    major: int, cluster_factory: Callable[..., FakeElasticsearch]
) -> None:
    cluster = cluster_factory(major=major)
    _, expected = small_docs()
    source = ElasticsearchLogs(config(cluster.url, server_version="auto", page_size=9))
    table = read_all(source)
    assert rows(table) == sorted(expected, key=lambda r: (r["index"], r["doc_id"]))
    assert source.server_major() == major
    searches = [h for m, t, h in cluster.requests if t == "/_search"]
    assert searches
    assert all(h["accept"].endswith(f"compatible-with={major}") for h in searches)
    assert all(h["content-type"].endswith(f"compatible-with={major}") for h in searches)


def test_forcing_version_9_against_an_8x_cluster_fails_with_one_clear_line(
    cluster_factory: Callable[..., FakeElasticsearch],
) -> None:
    cluster = cluster_factory(major=8)
    source = ElasticsearchLogs(config(cluster.url, server_version="9"))
    with pytest.raises(SourceError) as failure:
        read_all(source)
    message = str(failure.value)
    assert "\n" not in message
    assert "refuses compatible-with=9 requests" in message
    assert "an 8.x cluster" in message
    assert 'set sources.elasticsearch.server_version to "auto"' in message


def test_forcing_version_8_against_a_9x_cluster_works(
    cluster_factory: Callable[..., FakeElasticsearch],
) -> None:
    cluster = cluster_factory(major=9)
    _, expected = small_docs()
    table = read_all(ElasticsearchLogs(config(cluster.url, server_version="8")))
    assert table.num_rows == len(expected)


# --- authentication ------------------------------------------------------------------------------


def test_an_api_key_from_the_environment_is_sent(
    cluster_factory: Callable[..., FakeElasticsearch], monkeypatch: pytest.MonkeyPatch
) -> None:
    key = base64.b64encode(b"key-id:key-secret").decode()
    cluster = cluster_factory(api_key=key)
    monkeypatch.setenv("TEST_ES_API_KEY", key)
    source = ElasticsearchLogs(config(cluster.url, auth={"api_key_env": "TEST_ES_API_KEY"}))
    assert read_all(source).num_rows == 40
    assert {h["authorization"] for _, _, h in cluster.requests} == {f"ApiKey {key}"}


def test_basic_credentials_from_the_environment_are_sent(
    cluster_factory: Callable[..., FakeElasticsearch], monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = cluster_factory(basic=("reader", "s3cret"))
    monkeypatch.setenv("TEST_ES_USER", "reader")
    monkeypatch.setenv("TEST_ES_PASSWORD", "s3cret")
    auth = {"basic": {"username_env": "TEST_ES_USER", "password_env": "TEST_ES_PASSWORD"}}
    source = ElasticsearchLogs(config(cluster.url, auth=auth))
    assert read_all(source).num_rows == 40
    token = base64.b64encode(b"reader:s3cret").decode()
    assert {h["authorization"] for _, _, h in cluster.requests} == {f"Basic {token}"}


def test_a_wrong_api_key_is_one_clear_line_without_the_key(
    cluster_factory: Callable[..., FakeElasticsearch], monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = cluster_factory(api_key="right-key")
    monkeypatch.setenv("TEST_ES_API_KEY", "wrong-key")
    source = ElasticsearchLogs(config(cluster.url, auth={"api_key_env": "TEST_ES_API_KEY"}))
    with pytest.raises(SourceError) as failure:
        read_all(source)
    message = str(failure.value)
    assert "\n" not in message
    assert "refused the credentials (HTTP 401" in message
    assert "check sources.elasticsearch.auth" in message
    assert "wrong-key" not in message


# --- the test server itself speaks the protocol the official client expects ------------------------


def test_the_test_server_serves_the_typed_client_api_and_refuses_deep_from_size(
    big: tuple[FakeElasticsearch, list[dict[str, Any]]],
) -> None:
    cluster, _ = big
    client = Elasticsearch(cluster.url)
    assert client.info()["version"]["number"].startswith("9.")
    pit = client.open_point_in_time(index="logs-*", keep_alive="1m")["id"]
    try:
        page = client.search(pit={"id": pit}, size=3, sort=[{"@timestamp": "asc"}])
        assert len(page["hits"]["hits"]) == 3
        assert page["hits"]["total"] == {"value": 10_000, "relation": "gte"}
        with pytest.raises(BadRequestError, match="search_phase_execution_exception"):
            client.search(pit={"id": pit}, from_=9_000, size=2_000)
    finally:
        assert client.close_point_in_time(id=pit)["succeeded"] is True
    client.close()


def test_an_8x_test_server_refuses_the_9x_client_as_8x_clusters_do(
    cluster_factory: Callable[..., FakeElasticsearch],
) -> None:
    cluster = cluster_factory(major=8)
    with pytest.raises(BadRequestError) as refusal:
        Elasticsearch(cluster.url).info()
    assert refusal.value.body == {
        "error": {
            "root_cause": [
                {
                    "type": "media_type_header_exception",
                    "reason": "Invalid media-type value on headers [Accept, Content-Type]",
                }
            ],
            "type": "media_type_header_exception",
            "reason": "Invalid media-type value on headers [Accept, Content-Type]",
            "caused_by": {
                "type": "status_exception",
                "reason": "Accept version must be either version 8 or 7, but found 9. "
                "Accept=application/vnd.elasticsearch+json; compatible-with=9",
            },
        },
        "status": 400,
    }


# --- ingest into the lake: bounded memory -------------------------------------------------------


def test_an_hour_is_ingested_exactly_while_arrow_holds_a_fraction_of_it(
    big: tuple[FakeElasticsearch, list[dict[str, Any]]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Row groups of 512 KiB stand in for the 64 MiB of a real hour's: the hour is ~20 of them.
    monkeypatch.setattr(delta_tables, "GROUP_BYTES", 1 << 19, raising=False)
    cluster, expected = big
    lake_config = parse_config(
        {"lake": {"root": str(tmp_path / "lake"), "catalog": str(tmp_path / "obs.duckdb")}}
    )
    lake = Lake(lake_config)
    source = ElasticsearchLogs(config(cluster.url, page_size=1000, slices=2))
    # Every Arrow allocation of the ingest (pages, groups, sorts, the Parquet writer) is counted.
    counted = pa.proxy_memory_pool(pa.default_memory_pool())
    before = pa.default_memory_pool()
    pa.set_memory_pool(counted)
    try:
        written = ingest_table_hour(lake, source, WINDOW)
    finally:
        pa.set_memory_pool(before)

    stored = lake.tables.read_window("log_records", WINDOW)
    assert written.rows == len(expected)
    assert rows(stored) == expected
    assert counted.bytes_allocated() == 0  # nothing of the hour is left held
    # The old ingest held every page, then a filtered copy and a sorted one: twice the hour at
    # least. Streamed, the peak is a row group and a page or two.
    assert counted.max_memory() < stored.nbytes / 2
    (path,) = lake.tables.latest("log_records").file_uris()
    groups = pq.ParquetFile(path).metadata.num_row_groups
    assert groups > 4
    for number in range(groups):  # each row group is sorted by the dataset's keys (nulls last)
        group = pq.ParquetFile(path).read_row_group(number, columns=["service", "ts", "doc_id"])
        keys = list(zip(*(group[c].to_pylist() for c in group.column_names), strict=True))
        assert keys == sorted(keys, key=lambda k: (k[0] is None, k[0] or "", k[1], k[2]))
