"""An hour a source answers with no rows never replaces the rows the lake holds for it.

Sources forget: Elasticsearch's retention deletes a day's index, Jaeger keeps 7 days,
Prometheus answers nothing before its retention. A rerun of such an hour (``obs materialize
--last 30d``, Dagster's "re-execute failed") used to replace the archived hour with an empty
one, silently. Now the hour is kept as the lake holds it (hot, or compacted into a warm day),
nothing is committed for it, the run succeeds and says so: one warning line per dataset in the
run's log, in the asset's metadata and in ``obs materialize``'s output. An answer with rows still
replaces the hour.
"""

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from dagster import DagsterEventType, DagsterInstance
from elasticsearch import Elasticsearch, helpers

from obs_pipelines import cli
from obs_pipelines.config import ObsConfig, load_config
from obs_pipelines.lake import Lake
from obs_pipelines.lake.delta_tables import DeltaTables
from obs_pipelines.lake.ingest import KEPT_METADATA, ingest_table_hours
from obs_pipelines.lake.tiering import run_tiering
from obs_pipelines.sources import table_source
from obs_pipelines.windows import HOUR, TimeWindow
from tests import fake_elasticsearch, fake_jaeger, servers
from tests.dagster_runs import run_ingest
from tests.history import START, history
from tests.test_tiering import day_files
from tests.tiering_data import RETENTION

pytestmark = pytest.mark.integration  # real (fake) servers and Dagster runs, seconds per test

H10 = datetime(2026, 1, 2, 10, tzinfo=UTC)
TEN, ELEVEN = TimeWindow(H10, H10 + HOUR), TimeWindow(H10 + HOUR, H10 + 2 * HOUR)
NO_OTHER_SOURCES = {"metrics": "none", "logs": "none", "traces": "none", "alerts": "none"}
SORT_KEYS = {
    "log_records": ["doc_id"],
    "spans": ["span_id"],
    "metric_samples": ["series_id", "ts"],
    "metric_series": ["series_id"],
}


def exact(dataset: str, table: pa.Table | None) -> dict[str, list[Any]]:
    """The rows of ``table`` in a canonical order, floats as their bits (NaN included)."""
    assert table is not None
    table = table.sort_by([(k, "ascending") for k in SORT_KEYS[dataset]])
    return {
        name: (
            np.asarray(column).view(np.uint64).tolist()
            if pa.types.is_floating(column.type)
            else column.to_pylist()
        )
        for name, column in zip(table.column_names, table.columns, strict=True)
    }


def version(config: ObsConfig, dataset: str) -> int:
    return DeltaTables(config).open(dataset).version()


def log_docs(index: str, hour: datetime, count: int, prefix: str) -> list[dict[str, Any]]:
    return [
        {
            "_index": index,
            "_id": f"{prefix}-{i}",
            "@timestamp": f"{hour + timedelta(seconds=i * 30):%Y-%m-%dT%H:%M:%S}.{i:06d}Z",
            "service": {"name": "waardhaven-api"},
            "log": {"level": "ERROR" if i % 10 == 0 else "INFO"},
            "message": f"{prefix} request {i}",
        }
        for i in range(count)
    ]


def drop_index(cluster: fake_elasticsearch.FakeElasticsearch, index: str) -> None:
    """The index deleted, as Elasticsearch's retention (ILM) deletes a day's index."""
    with cluster.lock:
        del cluster.indices[index]
        cluster.ids = {key: doc for key, doc in cluster.ids.items() if key[0] != index}


@pytest.fixture
def elasticsearch() -> Iterator[tuple[fake_elasticsearch.FakeElasticsearch, Elasticsearch]]:
    """A cluster holding 100 log lines at 10:00 (in the day's index) and 40 at 11:00."""
    with fake_elasticsearch.serve(fake_elasticsearch.FakeElasticsearch(major=9)) as cluster:
        client = Elasticsearch(cluster.url)
        docs = log_docs("logs-app-2026.01.02", TEN.start, 100, "app")
        docs += log_docs("logs-edge-2026.01.02", ELEVEN.start, 40, "edge")
        helpers.bulk(client, docs)
        yield cluster, client


def elasticsearch_sources(url: str) -> dict[str, Any]:
    return {
        **NO_OTHER_SOURCES,
        "logs": "elasticsearch",
        "elasticsearch": {"url": url, "index": "logs-*", "retry_backoff_seconds": 0},
    }


def materialization_metadata(instance: DagsterInstance, run_id: str, asset: str) -> list[Any]:
    events = instance.all_logs(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION)
    found = [e.dagster_event.event_specific_data.materialization for e in events]
    return [m.metadata for m in found if m.asset_key.to_user_string() == asset]


def test_a_log_hour_whose_index_retention_deleted_keeps_its_rows_and_obs_materialize_warns(
    elasticsearch: tuple[fake_elasticsearch.FakeElasticsearch, Elasticsearch],
    write_config: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The tester's case through ``obs materialize``: 10:00's index is gone (11:00 gained five
    lines meanwhile), and the rerun of both hours used to leave 10:00 empty, exit 0, silently."""
    cluster, client = elasticsearch
    path = write_config(sources=elasticsearch_sources(cluster.url))
    config = load_config(path)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    both = ["materialize", "--from", "2026-01-02T10:00:00Z", "--to", "2026-01-02T12:00:00Z"]
    assert cli.main(["--config", str(path), *both]) == 0
    capsys.readouterr()
    before = exact("log_records", Lake(config).read_hot("log_records", TEN))
    assert len(before["doc_id"]) == 100

    drop_index(cluster, "logs-app-2026.01.02")
    helpers.bulk(client, log_docs("logs-edge-2026.01.02", ELEVEN.start + HOUR / 2, 5, "late"))
    code = cli.main(["--config", str(path), *both])

    out, err = capsys.readouterr()
    line = (
        "log_records 2026-01-02 10:00Z: the source returned no rows; kept the 100 rows the "
        "lake holds (the source may have aged them out)"
    )
    lake = Lake(config)
    assert exact("log_records", lake.read_hot("log_records", TEN)) == before
    eleven = lake.read_hot("log_records", ELEVEN)  # an answer with rows replaces the hour
    assert eleven is not None and eleven.num_rows == 45
    assert code == 0
    assert out.startswith("ingested [2026-01-02T10:00:00Z, 2026-01-02T12:00:00Z) (run ")
    assert err.splitlines() == [f"obs: warning: {line}"]
    with DagsterInstance.get() as instance:
        run_id = instance.get_runs(limit=1)[0].run_id
        warnings = [e.user_message for e in instance.all_logs(run_id) if e.level == logging.WARNING]
        metadata = materialization_metadata(instance, run_id, "log_records")
    assert line in warnings
    assert {m[KEPT_METADATA].value for m in metadata} == {line}


def test_a_trace_hour_past_jaeger_retention_keeps_its_spans(
    write_config: Callable[..., Path],
) -> None:
    start_ns = int(H10.timestamp()) * 10**9
    spans = [
        fake_jaeger.FakeSpan(
            trace_id=f"{t + 1:032x}",
            span_id=f"{t * 16 + s + 1:016x}",
            service="waardhaven-api" if s == 0 else "trading-engine",
            name="GET /x" if s == 0 else "trade",
            start_ns=start_ns + t * 60 * 10**9 + s * 1000,
            end_ns=start_ns + t * 60 * 10**9 + 5_000_000,
            parent_span_id=None if s == 0 else f"{t * 16 + 1:016x}",
            kind=2 if s == 0 else 3,
        )
        for t in range(22)
        for s in range(2)
    ]
    with fake_jaeger.serve(spans, mode="v3") as jaeger:
        path = write_config(
            sources={**NO_OTHER_SOURCES, "traces": "jaeger", "jaeger": {"url": jaeger.url}}
        )
        config = load_config(path)
        assert run_ingest(path, "2026-01-02-10:00", "2026-01-02-10:00").success
        before = exact("spans", Lake(config).read_hot("spans", TEN))
        committed = version(config, "spans")
        jaeger.traces.clear()  # 7 days later: Jaeger's retention deleted them

        result = run_ingest(path, "2026-01-02-10:00", "2026-01-02-10:00")

    assert result.success
    assert [e.check_name for e in result.get_asset_check_evaluations() if not e.passed] == []
    assert len(before["span_id"]) == 44
    assert exact("spans", Lake(config).read_hot("spans", TEN)) == before
    assert version(config, "spans") == committed, "nothing is rewritten"
    (metadata,) = [
        m.metadata
        for m in result.asset_materializations_for_node("spans")
        if m.partition == "2026-01-02-10:00"
    ]
    assert metadata[KEPT_METADATA].value == (
        "spans 2026-01-02 10:00Z: the source returned no rows; kept the 44 rows the lake holds "
        "(the source may have aged them out)"
    )
    assert metadata["rows"].value == 44 and metadata["kept"].value is True


def test_log_hours_compacted_into_a_warm_day_are_kept_with_their_rows(
    elasticsearch: tuple[fake_elasticsearch.FakeElasticsearch, Elasticsearch],
    write_config: Callable[..., Path],
) -> None:
    """Hours of a day tiering compacted into one file: the rows of each are counted in that
    file, and neither is rewritten out of it."""
    cluster, client = elasticsearch
    path = write_config(
        sources=elasticsearch_sources(cluster.url),
        retention=RETENTION,
        lake={"delete_delay": "0s"},
    )
    config = load_config(path)
    lake = Lake(config)
    ingest_table_hours(lake, table_source(config, "log_records"), [TEN, ELEVEN])
    run_tiering(config, H10 + timedelta(days=2))
    assert day_files(config, "log_records") == {"dt=2026-01-02": 1}, "the day is compacted"
    before = {h: exact("log_records", lake.read_hot("log_records", h)) for h in (TEN, ELEVEN)}
    committed = version(config, "log_records")

    # Retention deletes the day's indices while later days' stay (a pattern matching no index
    # at all is refused as a misconfiguration).
    helpers.bulk(client, log_docs("logs-app-2026.01.05", H10 + timedelta(days=3), 1, "later"))
    drop_index(cluster, "logs-app-2026.01.02")
    drop_index(cluster, "logs-edge-2026.01.02")
    results = ingest_table_hours(lake, table_source(config, "log_records"), [TEN, ELEVEN])

    assert {h: exact("log_records", lake.read_hot("log_records", h)) for h in before} == before
    assert version(config, "log_records") == committed, "the compacted day is not rewritten"
    assert [(r.window, r.rows, r.kept) for r in results] == [(TEN, 100, True), (ELEVEN, 40, True)]


def test_an_hour_that_was_never_stored_is_still_written_empty(
    elasticsearch: tuple[fake_elasticsearch.FakeElasticsearch, Elasticsearch],
    write_config: Callable[..., Path],
) -> None:
    """Nothing to keep: the empty hour is committed as before (freshness counts it present)."""
    cluster, _ = elasticsearch
    config = load_config(write_config(sources=elasticsearch_sources(cluster.url)))
    lake = Lake(config)
    nine = TimeWindow(H10 - HOUR, H10)

    (result,) = ingest_table_hours(lake, table_source(config, "log_records"), [nine])

    assert (result.rows, result.kept) == (0, False)
    assert [h.window for h in lake.tables.written_hours("log_records", nine.start)] == [nine]


def prometheus_sources(url: str) -> dict[str, Any]:
    return {
        **NO_OTHER_SOURCES,
        "metrics": "prometheus",
        "prometheus": {
            "url": url,
            "selectors": ["http_requests_total", "queue_depth", '{job="fleet"}'],
            "retry_backoff_seconds": 0,
        },
    }


def without(series: list[servers.Series], hour: TimeWindow) -> list[servers.Series]:
    """``series`` as a Prometheus holds them once ``hour`` is gone from its TSDB."""
    return [
        servers.Series(
            s.metric,
            s.labels,
            [x for x in s.samples if not hour.start_ms <= x.ts_ms < hour.end_ms],
        )
        for s in series
    ]


@pytest.mark.prometheus
def test_a_metrics_hour_prometheus_no_longer_holds_keeps_its_samples_hot_and_warm(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    """A Prometheus that answers nothing for 01:00 (past its retention): the rerun keeps the
    hour's samples and series, hot and again once the day is compacted into a warm file, and
    the asset's check that rows match the source does not fail on a kept hour."""
    one = TimeWindow(START + HOUR, START + 2 * HOUR)
    full = history(extra_series=10)
    servers.backfill(tmp_path / "full", full)
    servers.backfill(tmp_path / "forgot", without(full, one))
    settings = {"retention": RETENTION, "lake": {"delete_delay": "0s"}}
    datasets = ("metric_samples", "metric_series")
    with servers.prometheus(tmp_path / "full") as url:
        path = write_config(sources=prometheus_sources(url), **settings)
        assert run_ingest(path, "2026-11-10-00:00", "2026-11-10-02:00").success
    config = load_config(path)
    before = {d: exact(d, Lake(config).read_hot(d, one)) for d in datasets}

    with servers.prometheus(tmp_path / "forgot") as url:
        path = write_config(sources=prometheus_sources(url), **settings)
        hot = run_ingest(path, "2026-11-10-01:00", "2026-11-10-01:00")
        held_hot = {d: exact(d, Lake(config).read_hot(d, one)) for d in datasets}
        run_tiering(config, START + timedelta(days=2, hours=1))
        assert day_files(config, "metric_samples") == {"dt=2026-11-10": 1}
        committed = {d: version(config, d) for d in datasets}
        warm = run_ingest(path, "2026-11-10-01:00", "2026-11-10-01:00")
        held_warm = {d: exact(d, Lake(config).read_hot(d, one)) for d in datasets}

    samples, series = len(before["metric_samples"]["ts"]), len(before["metric_series"]["series_id"])
    assert samples == 12 * 240 and series == 12
    assert held_hot == before and held_warm == before
    assert {d: version(config, d) for d in datasets} == committed, "the warm day is not rewritten"
    for result in (hot, warm):
        assert result.success
        assert [e.check_name for e in result.get_asset_check_evaluations() if not e.passed] == []
        kept = {
            m.asset_key.to_user_string(): m.metadata[KEPT_METADATA].value
            for m in (e.materialization for e in result.get_asset_materialization_events())
            if KEPT_METADATA in m.metadata
        }
        assert kept == {
            "metric_samples": f"metric_samples 2026-11-10 01:00Z: the source returned no rows; "
            f"kept the {samples} rows the lake holds (the source may have aged them out)",
            "metric_series": f"metric_series 2026-11-10 01:00Z: the source returned no rows; "
            f"kept the {series} rows the lake holds (the source may have aged them out)",
        }
