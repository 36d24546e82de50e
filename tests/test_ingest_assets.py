"""Every ingest asset through Dagster: partitions land in the lake, checks pass, the catalog sees them."""

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch, helpers

from obs_pipelines.config import load_config
from obs_pipelines.lake.catalog import connect
from tests import fake_elasticsearch, fake_jaeger
from tests.dagster_runs import run_ingest

pytestmark = pytest.mark.integration  # materializes assets through Dagster, seconds per test

HOUR_START = datetime(2026, 11, 18, 14, 0, tzinfo=UTC)  # the simulator's weekly api-outage
HOUR_NS = int(HOUR_START.timestamp()) * 10**9


def test_the_simulated_default_fills_every_dataset_and_passes_every_check(
    write_config: Callable[..., Path],
) -> None:
    config_path = write_config()

    result = run_ingest(config_path, "2026-11-18-13:00", "2026-11-18-14:00")

    assert result.success
    evaluations = result.get_asset_check_evaluations()
    assert {e.asset_key.to_user_string() for e in evaluations} == {
        "metric_samples",
        "metric_series",
        "log_records",
        "spans",
        "alert_fragments",
        "sli_minutes",
        "series_inventory",
    }
    assert [e for e in evaluations if not e.passed] == []
    con = connect(load_config(config_path))
    counts = dict(
        con.execute(
            """SELECT 'logs', count(*) FROM log_records UNION ALL SELECT 'spans', count(*) FROM spans
               UNION ALL SELECT 'outage alerts', count(*) FROM alert_events WHERE alertname = 'HighAPIErrorRate'
               UNION ALL SELECT 'hours of logs', count(DISTINCT date_trunc('hour', ts)) FROM log_records"""
        ).fetchall()
    )
    assert counts["logs"] > 1000 and counts["spans"] > 500
    assert counts["outage alerts"] >= 1
    assert counts["hours of logs"] == 2


def test_logs_from_elasticsearch_and_traces_from_jaeger_land_exactly(
    write_config: Callable[..., Path],
) -> None:
    docs = [
        {
            "_index": f"logs-checkout-{i % 2}",
            "_id": f"doc-{i}",
            "@timestamp": f"2026-11-18T14:{i % 60:02d}:{i % 57:02d}.{i:06d}Z",
            "service": {"name": "checkout"},
            "log": {"level": "ERROR" if i % 10 == 0 else "INFO"},
            "message": f"request {i}",
            "http": {"status": 500 if i % 10 == 0 else 200},
        }
        for i in range(1500)
    ]
    spans = [
        fake_jaeger.FakeSpan(
            trace_id=f"{t:032x}",
            span_id=f"{t * 16 + s + 1:016x}",
            service="checkout" if s == 0 else "payments",
            name="GET /pay" if s == 0 else "charge",
            start_ns=HOUR_NS + t * 10**9 + s * 1000,
            end_ns=HOUR_NS + t * 10**9 + 5_000_000,
            parent_span_id=None if s == 0 else f"{t * 16 + 1:016x}",
            kind=2 if s == 0 else 3,
        )
        for t in range(300)
        for s in range(2)
    ]
    with (
        fake_elasticsearch.serve(fake_elasticsearch.FakeElasticsearch(major=9)) as es,
        fake_jaeger.serve(spans, mode="v3") as jaeger,
    ):
        client = Elasticsearch(es.url)
        helpers.bulk(client, ({**d, "_op_type": "index"} for d in docs))
        config_path = write_config(
            sources={
                "logs": "elasticsearch",
                "traces": "jaeger",
                "elasticsearch": {
                    "url": es.url,
                    "index": "logs-*",
                    "page_size": 400,
                    "retry_backoff_seconds": 0,
                },
                "jaeger": {"url": jaeger.url, "search_depth": 100},
            }
        )

        result = run_ingest(config_path, "2026-11-18-14:00", "2026-11-18-14:00")

    assert result.success
    assert [e.check_name for e in result.get_asset_check_evaluations() if not e.passed] == []
    con = connect(load_config(config_path))
    assert con.execute(
        "SELECT count(*), count(DISTINCT doc_id), count(*) FILTER (WHERE level = 'error') FROM log_records"
    ).fetchone() == (1500, 1500, 150)
    assert con.execute(
        "SELECT count(*), count(DISTINCT trace_id), count(parent_span_id) FROM spans"
    ).fetchone() == (600, 300, 300)
    assert con.execute("SELECT DISTINCT service FROM spans ORDER BY 1").fetchall() == [
        ("checkout",),
        ("payments",),
    ]
