"""Metrics from a real Prometheus, backfilled with history the test wrote, into the lake via Dagster."""

import http.server
import struct
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from obs_pipelines.config import PrometheusSourceConfig, load_config
from obs_pipelines.errors import SourceError
from obs_pipelines.lake import Lake
from obs_pipelines.lake.catalog import connect
from obs_pipelines.lake.ingest import ingest_metrics_hour, ingest_metrics_hours
from obs_pipelines.sources import prometheus_decode
from obs_pipelines.sources.prometheus import PrometheusSource
from obs_pipelines.windows import TimeWindow
from tests import servers
from tests.dagster_runs import run_ingest
from tests.history import HOUR_MS, START, START_MS, history, samples_in

pytestmark = pytest.mark.prometheus
HISTORY = history(extra_series=40)
SELECTORS = ["http_requests_total", "queue_depth", "edge_bytes", '{job="fleet"}']
NAN_BITS = 0x7FF8000000000001  # Prometheus's NaN (Go's math.NaN)


@pytest.fixture(scope="module")
def tsdb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("tsdb") / "data"
    servers.backfill(data, HISTORY)
    return data


@pytest.fixture(scope="module")
def prometheus_url(tsdb: Path) -> Iterator[str]:
    with servers.prometheus(tsdb) as url:
        yield url


def prometheus_section(url: str, **overrides: Any) -> dict[str, Any]:
    return {
        "metrics": "prometheus",
        "prometheus": {"url": url, "selectors": SELECTORS, "retry_backoff_seconds": 0, **overrides},
    }


def lake_samples(
    con: duckdb.DuckDBPyConnection, start_ms: int, end_ms: int
) -> dict[Any, list[tuple[int, int]]]:
    rows = con.execute(
        """SELECT metric, map_entries(labels), epoch_ms(ts), value FROM metrics
           WHERE ts >= make_timestamp(? * 1000) AND ts < make_timestamp(? * 1000) ORDER BY series_id, ts""",
        [start_ms, end_ms],
    ).fetchall()
    found: dict[Any, list[tuple[int, int]]] = {}
    for metric, entries, ts, value in rows:
        key = (metric, tuple(sorted((e["key"], e["value"]) for e in entries)))
        found.setdefault(key, []).append((ts, _bits(value)))
    return found


def expected_samples(start_ms: int, end_ms: int) -> dict[Any, list[tuple[int, int]]]:
    return {
        key: [(x.ts_ms, NAN_BITS if x.value != x.value else _bits(x.value)) for x in samples]
        for key, samples in samples_in(HISTORY, start_ms, end_ms).items()
    }


def _exact(table: Any) -> tuple[list[int], list[int], list[int]]:
    """Rows as integers, NaN included (NaN != NaN would hide a difference or invent one)."""
    values = table.column("value").to_numpy().view("uint64")
    return (
        table.column("series_id").to_pylist(),
        table.column("ts").cast("int64").to_pylist(),
        values.tolist(),
    )


def _bits(value: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", value))[0]


def test_materialized_partitions_hold_exactly_the_backfilled_samples(
    prometheus_url: str, write_config: Callable[..., Path]
) -> None:
    config_path = write_config(sources=prometheus_section(prometheus_url))

    result = run_ingest(config_path, "2026-11-10-00:00", "2026-11-10-01:00")

    assert result.success
    con = connect(load_config(config_path))
    window_end = START_MS + 2 * HOUR_MS
    assert lake_samples(con, START_MS, window_end) == expected_samples(START_MS, window_end)
    counter = con.execute(
        "SELECT value FROM metrics WHERE metric = 'http_requests_total' ORDER BY ts"
    ).fetchall()
    drops = [i for i in range(1, len(counter)) if counter[i][0] < counter[i - 1][0]]
    assert len(drops) == 1, "the counter reset at 01:20 must be stored as it happened"
    hourly = con.execute(
        "SELECT count(*) FROM metric_samples GROUP BY date_trunc('hour', ts) ORDER BY 1"
    ).fetchall()
    assert sum(n for (n,) in hourly) == sum(
        len(v) for v in expected_samples(START_MS, window_end).values()
    )


def test_rerunning_a_partition_leaves_the_same_rows(
    prometheus_url: str, write_config: Callable[..., Path]
) -> None:
    config_path = write_config(sources=prometheus_section(prometheus_url))
    config = load_config(config_path)
    assert run_ingest(config_path, "2026-11-10-01:00", "2026-11-10-01:00").success
    hour = TimeWindow(START + timedelta(hours=1), START + timedelta(hours=2))
    first = Lake(config).read_hot("metric_samples", hour)

    assert run_ingest(config_path, "2026-11-10-01:00", "2026-11-10-01:00").success

    again = Lake(config).read_hot("metric_samples", hour)
    assert _exact(again) == _exact(first)
    assert again.num_rows == sum(
        len(v) for v in samples_in(HISTORY, START_MS + HOUR_MS, START_MS + 2 * HOUR_MS).values()
    )


def test_asset_checks_pass_and_report_what_the_source_returned(
    prometheus_url: str, write_config: Callable[..., Path]
) -> None:
    config_path = write_config(sources=prometheus_section(prometheus_url))

    result = run_ingest(config_path, "2026-11-10-02:00", "2026-11-10-02:00")

    evaluations = {
        (e.asset_key.to_user_string(), e.check_name): e
        for e in result.get_asset_check_evaluations()
        if e.asset_key.to_user_string().startswith("metric_")
    }
    assert set(evaluations) == {
        ("metric_samples", "expectations"),
        ("metric_samples", "rows_match_source"),
        ("metric_series", "expectations"),
    }
    assert all(e.passed for e in evaluations.values())
    expected_rows = sum(
        len(v) for v in samples_in(HISTORY, START_MS + 2 * HOUR_MS, START_MS + 3 * HOUR_MS).values()
    )
    source_rows = (
        evaluations[("metric_samples", "rows_match_source")].metadata["source samples"].value
    )
    assert source_rows == expected_rows


def test_a_window_over_the_sample_limit_is_split_and_complete(
    tsdb: Path, tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    import shutil

    data = tmp_path / "limited"
    shutil.copytree(tsdb, data, ignore=shutil.ignore_patterns("lock", "wal", "chunks_head"))
    hours = [TimeWindow(START + timedelta(hours=h), START + timedelta(hours=h + 1)) for h in (0, 1)]
    expected = [expected_samples(h.start_ms, h.end_ms) for h in hours]
    fleet_per_hour = sum(len(v) for k, v in expected[0].items() if k[0] == "fleet_load")
    with servers.prometheus(data, "--query.max-samples=2000") as url:
        config = load_config(write_config(sources=prometheus_section(url)))
        source = PrometheusSource(config.sources.prometheus)

        # Two hours as one run: the halves of one hour are queued before the next hour's pieces.
        results = ingest_metrics_hours(Lake(config), source, hours)

    assert fleet_per_hour > 2000, "the fleet selector alone must exceed the limit"
    assert source.requests_made > 2 * len(SELECTORS), "the over-limit windows must have been split"
    assert [r.window for r in results] == hours
    assert [r.samples for r in results] == [sum(len(v) for v in e.values()) for e in expected]
    from obs_pipelines.lake.catalog import build_catalog

    build_catalog(config)
    for hour, expect in zip(hours, expected, strict=True):
        assert lake_samples(connect(config), hour.start_ms, hour.end_ms) == expect


def test_the_same_ingest_works_with_the_lake_on_s3(
    prometheus_url: str, write_config: Callable[..., Path], s3_lake: dict[str, Any]
) -> None:
    config_path = write_config(sources=prometheus_section(prometheus_url), lake=s3_lake)

    result = run_ingest(config_path, "2026-11-10-00:00", "2026-11-10-01:00")

    assert result.success
    config = load_config(config_path)
    published = Lake(config).hot_partitions("metric_samples")
    assert [p.window.start for p in published] == [START, START + timedelta(hours=1)]
    window_end = START_MS + 2 * HOUR_MS
    assert lake_samples(connect(config), START_MS, window_end) == expected_samples(
        START_MS, window_end
    )


def test_an_unreachable_prometheus_fails_with_one_line_and_writes_nothing(
    write_config: Callable[..., Path],
) -> None:
    url = f"http://127.0.0.1:{servers.free_port()}"
    config = load_config(write_config(sources=prometheus_section(url, retries=0)))

    with pytest.raises(SourceError) as error:
        ingest_metrics_hour(
            Lake(config),
            PrometheusSource(config.sources.prometheus),
            TimeWindow(START, START.replace(hour=1)),
        )

    assert str(error.value) == (
        f"Prometheus at {url} is unreachable (Connection refused); "
        "check sources.prometheus.url and that the server is running"
    )
    assert not Path(config.lake_root).exists() or not any(Path(config.lake_root).rglob("*.parquet"))


def test_a_selector_prometheus_rejects_is_named_in_the_error(
    prometheus_url: str, write_config: Callable[..., Path]
) -> None:
    # Valid for Python's re (so config accepts it) but not for Prometheus's RE2: no look-behind.
    selector = 'up{job=~"(?<=a)b"}'
    config = load_config(
        write_config(sources=prometheus_section(prometheus_url, selectors=[selector]))
    )

    with pytest.raises(
        SourceError,
        match=r"^Prometheus refused the selector up\{job=~\"\(\?<=a\)b\"\} \(.*\); fix sources.prometheus.selectors$",
    ):
        ingest_metrics_hour(
            Lake(config),
            PrometheusSource(config.sources.prometheus),
            TimeWindow(START, START.replace(hour=1)),
        )


class _Failing(http.server.BaseHTTPRequestHandler):
    """A Prometheus stand-in that is up but broken: every query answers 503."""

    requests_seen = 0

    def do_POST(self) -> None:
        type(self).requests_seen += 1
        body = b'{"status":"error","errorType":"unavailable","error":"tsdb is shutting down"}'
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_prometheus_answering_503_is_retried_then_fails_cleanly(
    write_config: Callable[..., Path],
) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Failing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    config = load_config(write_config(sources=prometheus_section(url, retries=2, selectors=["up"])))
    try:
        with pytest.raises(SourceError) as error:
            ingest_metrics_hour(
                Lake(config),
                PrometheusSource(config.sources.prometheus),
                TimeWindow(START, START.replace(hour=1)),
            )
    finally:
        server.shutdown()

    assert str(error.value) == (
        f"Prometheus at {url} kept failing (too many 503 error responses) after 2 retries; "
        "check the server's health, then rerun"
    )
    assert _Failing.requests_seen == 3
    assert (
        not any(Path(config.lake_root).rglob("*.parquet"))
        if Path(config.lake_root).exists()
        else True
    )


def test_a_large_answer_is_decoded_holding_its_body_and_columns_not_copies_of_its_text(
    prometheus_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Runs of 4 KiB of values' text stand in for the 16 MiB of an answer of millions of samples.
    monkeypatch.setattr(prometheus_decode, "_GROUP_BYTES", 1 << 12, raising=False)
    source = PrometheusSource(PrometheusSourceConfig(url=prometheus_url, selectors=SELECTORS))
    hour = TimeWindow(START, START + timedelta(hours=1))
    body = bytes(source._query_range_vector('{job="fleet"}', hour))
    every = sum(len(v) for v in expected_samples(START_MS, START_MS + HOUR_MS).values())

    prometheus_decode.decode_matrix(body)  # what a first call loads, once per process
    tracemalloc.start()
    try:
        decoded = prometheus_decode.decode_matrix(body)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    fleet = {
        key: v
        for key, v in expected_samples(START_MS, START_MS + HOUR_MS).items()
        if ("job", "fleet") in key[1]
    }
    assert 0 < decoded.samples == sum(len(v) for v in fleet.values()) < every
    assert sorted(decoded.ts_ms.tolist()) == sorted(t for v in fleet.values() for t, _ in v)
    columns = decoded.ts_ms.nbytes + decoded.values.nbytes
    # The old decode rewrote the whole text at once: a joined copy and a translated one (twice
    # the body) beside the columns. In runs, the text held at once is a run's.
    assert peak - columns < len(body) / 4
