"""``obs doctor`` checks: a healthy simulator deployment passes every line; an unreachable
Prometheus, a missing catalog or a missing DAGSTER_HOME fail with what to do about it; the log
and trace sources are judged as ingest would read them (fakes of Elasticsearch and Jaeger)."""

import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from elasticsearch import Elasticsearch

from obs_pipelines.config import load_config
from obs_pipelines.lake import Lake
from obs_pipelines.lake.catalog import build_catalog
from obs_pipelines.lake.delta import DELTA_FOLDER
from obs_pipelines.lake.ingest import ingest_metrics_hour
from obs_pipelines.operations.doctor import CheckResult, format_report, run_checks
from obs_pipelines.sources import metric_source
from obs_pipelines.windows import hour_window
from tests import fake_jaeger, ops_servers
from tests.fake_elasticsearch import FakeElasticsearch, serve
from tests.fake_jaeger import FakeSpan
from tests.servers import free_port

pytestmark = pytest.mark.integration  # checks against a real Alertmanager and Prometheus


@pytest.fixture
def dagster_home(tmp_path: Path) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return home


def test_healthy_simulator_setup_passes_every_check(
    write_config: Callable[..., Path], dagster_home: Path, tmp_path: Path
) -> None:
    with ops_servers.alertmanager(tmp_path / "am") as alertmanager:
        config = load_config(write_config(sources={"alertmanager": {"url": alertmanager}}))
        lake = Lake(config)
        ingest_metrics_hour(
            lake, metric_source(config), hour_window(datetime(2026, 1, 1, 3, tzinfo=UTC))
        )
        build_catalog(config)

        results = run_checks(config, dagster_home=str(dagster_home))

    report = format_report(results)
    assert all(r.ok for r in results), report
    by_check = {r.check: r for r in results}
    assert set(by_check) >= {
        "source.metrics",
        "source.alertmanager",
        "lake.writable",
        "lake.tables",
        "catalog",
        "dagster.home",
        "dagster.yaml",
        "dagster.storage",
    }
    assert "simulator" in by_check["source.metrics"].detail
    assert "Alertmanager 0.25" in by_check["source.alertmanager"].detail
    assert "2 files" in by_check["lake.tables"].detail  # series and samples
    assert "views bind" in by_check["catalog"].detail
    assert report.splitlines()[-1] == f"all {len(results)} checks passed"
    assert not list(Path(lake.storage.root).rglob("*probe*"))


def test_a_view_that_no_longer_binds_is_named_once_with_the_fix(
    write_config: Callable[..., Path], dagster_home: Path
) -> None:
    """A table whose log is gone is named, not every report above it; a report whose query no
    longer binds is named too."""
    config = load_config(write_config())
    ingest_metrics_hour(
        Lake(config), metric_source(config), hour_window(datetime(2026, 1, 1, 3, tzinfo=UTC))
    )
    build_catalog(config)
    with duckdb.connect(config.catalog_path) as con:
        views = con.execute("SELECT count(*) FROM duckdb_views() WHERE NOT internal").fetchone()[0]
        con.execute("CREATE TABLE gone AS SELECT 1 AS x")
        con.execute("CREATE VIEW spans_by_team AS SELECT x FROM gone")
        con.execute("DROP TABLE gone")
    shutil.rmtree(Path(config.lake_root) / DELTA_FOLDER / "spans" / "_delta_log")

    catalog = {r.check: r for r in run_checks(config, dagster_home=str(dagster_home))}["catalog"]

    assert not catalog.ok
    # lake_partition_sources reads every table's log too; service_dependencies, which reads
    # spans, binds: the table is the fault.
    assert catalog.detail.startswith(
        f"3 of {views + 1} views do not bind: lake_partition_sources ("
    )
    assert "; spans (IO Error" in catalog.detail
    assert "; spans_by_team (Catalog Error" in catalog.detail
    assert catalog.fix.startswith("rebuild the catalog with `obs catalog`")


def test_unreachable_prometheus_fails_with_the_fix(
    write_config: Callable[..., Path], dagster_home: Path
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    config = load_config(
        write_config(
            sources={"metrics": "prometheus", "prometheus": {"url": url, "selectors": ["up"]}}
        )
    )
    build_catalog(config)

    results = run_checks(config, dagster_home=str(dagster_home), timeout=2)

    failed = [r for r in results if not r.ok]
    assert [r.check for r in failed] == ["source.metrics"]
    line = failed[0].line()
    assert line.startswith("FAIL  source.metrics")
    assert (
        f"Prometheus at {url}/api/v1/status/buildinfo is unreachable (connection refused)" in line
    )
    assert "start it or fix sources.prometheus.url" in line
    assert format_report(results).endswith(f"1 of {len(results)} checks failed")


@pytest.mark.prometheus
def test_reachable_prometheus_answers_a_real_query(
    write_config: Callable[..., Path], dagster_home: Path, tmp_path: Path
) -> None:
    from tests import servers
    from tests.servers import Sample, Series

    now_ms = int(datetime.now(UTC).timestamp() * 1000) - 600_000
    data = tmp_path / "tsdb"
    servers.backfill(
        data,
        [
            Series("up", {"job": "api", "instance": f"i{i}"}, [Sample(now_ms, 1.0)])
            for i in range(3)
        ],
    )
    with servers.prometheus(data) as url:
        config = load_config(
            write_config(
                sources={"metrics": "prometheus", "prometheus": {"url": url, "selectors": ["up"]}}
            )
        )
        result = next(
            r
            for r in run_checks(config, dagster_home=str(dagster_home))
            if r.check == "source.metrics"
        )
    assert result.ok, result.line()
    assert "Prometheus 2." in result.detail and "3 series of up in the last hour" in result.detail


def _metrics_probe(results: list[CheckResult]) -> CheckResult:
    return next(r for r in results if r.check == "source.metrics")


@pytest.mark.prometheus
def test_a_backfilled_prometheus_with_only_old_data_warns_with_its_age(
    write_config: Callable[..., Path], dagster_home: Path, tmp_path: Path
) -> None:
    from tests import servers
    from tests.servers import Sample, Series

    newest = datetime.now(UTC).replace(second=30, microsecond=0) - timedelta(days=3)
    newest_ms = int(newest.timestamp() * 1000)
    data = tmp_path / "tsdb"
    servers.backfill(
        data,
        [
            Series(
                "up",
                {"job": "api", "instance": f"i{i}"},
                [Sample(newest_ms - k * 15_000, 1.0) for k in range(240)],
            )
            for i in range(3)
        ],
    )
    with servers.prometheus(data) as url:
        path = write_config(
            sources={"metrics": "prometheus", "prometheus": {"url": url, "selectors": ["up"]}}
        )
        build_catalog(load_config(path))
        results = run_checks(load_config(path), dagster_home=str(dagster_home))

    result, report = _metrics_probe(results), format_report(results)

    line = result.line()
    assert result.ok and result.warn, line
    assert line.startswith("warn  source.metrics")
    assert (
        f"newest sample {newest:%Y-%m-%d %H:%M}Z (3 days ago: a historical or backfilled server?)"
        in line
    )
    assert "3 series of up in the hour before it" in line
    end = newest.replace(minute=0, second=0) + timedelta(hours=1)
    assert line.endswith(f"obs materialize --from <start> --to {end:%Y-%m-%dT%H:%M:%SZ}")
    assert "\n" not in line
    assert report.splitlines()[-1] == f"all {len(results)} checks passed (1 with a warning)", report


@pytest.mark.prometheus
def test_a_live_prometheus_without_the_selector_or_without_data_fails(
    write_config: Callable[..., Path], dagster_home: Path, tmp_path: Path
) -> None:
    from tests import servers
    from tests.servers import Sample, Series

    recent_ms = int(datetime.now(UTC).timestamp() * 1000) - 600_000
    recent = tmp_path / "recent"
    servers.backfill(recent, [Series("up", {"job": "api"}, [Sample(recent_ms, 1.0)])])
    empty = tmp_path / "empty"
    empty.mkdir()
    probes = {}
    for name, data in (("recent", recent), ("empty", empty)):
        with servers.prometheus(data) as url:
            config = {"url": url, "selectors": ["missing_metric"]}
            path = write_config(sources={"metrics": "prometheus", "prometheus": config})
            results = run_checks(load_config(path), dagster_home=str(dagster_home))
            probes[name] = _metrics_probe(results).line()

    assert probes["recent"].startswith("FAIL  source.metrics"), probes
    assert probes["recent"].endswith(
        "0 series of missing_metric in the last hour -> check sources.prometheus.selectors "
        "against the server's metrics"
    )
    assert probes["empty"].startswith("FAIL  source.metrics"), probes
    assert probes["empty"].endswith(
        "holds no samples at all -> check sources.prometheus.url is the server with the data"
    )


def test_missing_catalog_and_dagster_home_say_what_to_do(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    config = load_config(write_config())

    results = {r.check: r for r in run_checks(config, dagster_home=str(tmp_path / "nowhere"))}

    assert not results["catalog"].ok and "run `obs catalog`" in results["catalog"].line()
    assert not results["dagster.home"].ok and "mkdir -p" in results["dagster.home"].line()


def _source_line(results: list[CheckResult], check: str) -> str:
    return next(r for r in results if r.check == check).line()


def test_an_elasticsearch_index_pattern_matching_nothing_fails_while_a_matching_one_passes(
    write_config: Callable[..., Path], dagster_home: Path
) -> None:
    with serve(FakeElasticsearch(major=9)) as cluster:
        client = Elasticsearch(cluster.url)
        client.bulk(
            operations=[{"index": {"_index": "logs-app-2026.01.01", "_id": "1"}}, {"m": "x"}],
            refresh=True,
        )
        lines = {}
        for index in ("log-*", "logs-*"):
            sources = {
                "logs": "elasticsearch",
                "elasticsearch": {"url": cluster.url, "index": index},
            }
            config = load_config(write_config(sources=sources))
            lines[index] = _source_line(
                run_checks(config, dagster_home=str(dagster_home)), "source.logs"
            )
    assert lines["log-*"] == (
        f"FAIL  source.logs            Elasticsearch 9.1.0 at {cluster.url}; no index matches log-* "
        "(0 shards), so ingest refuses it -> fix sources.elasticsearch.index"
    )
    assert lines["logs-*"] == (
        f"ok    source.logs            Elasticsearch 9.1.0 at {cluster.url}; 1 documents in logs-*"
    )


def test_a_jaeger_before_125_passes_with_api_auto_as_ingest_reads_it(
    write_config: Callable[..., Path], dagster_home: Path
) -> None:
    span = FakeSpan(
        trace_id="a" * 32, span_id="b" * 16, service="api", name="GET /", start_ns=1, end_ns=2
    )
    with fake_jaeger.serve([span], mode="v1") as jaeger:
        config = load_config(
            write_config(sources={"traces": "jaeger", "jaeger": {"url": jaeger.url}})
        )
        line = _source_line(run_checks(config, dagster_home=str(dagster_home)), "source.traces")
    assert line == f"ok    source.traces          Jaeger at {jaeger.url} (v1 API); 1 services"


def test_a_jaeger_listing_no_services_warns(
    write_config: Callable[..., Path], dagster_home: Path
) -> None:
    with fake_jaeger.serve([], mode="v3") as jaeger:
        config = load_config(
            write_config(sources={"traces": "jaeger", "jaeger": {"url": jaeger.url}})
        )
        results = run_checks(config, dagster_home=str(dagster_home))
    assert _source_line(results, "source.traces") == (
        f"warn  source.traces          Jaeger at {jaeger.url} (v3 API); 0 services, so ingest "
        "finds no spans -> a new Jaeger lists none until its first trace; otherwise check "
        "sources.jaeger.url is the Jaeger that receives the traces"
    )


def test_a_login_page_in_front_of_jaeger_fails_with_what_came_back(
    write_config: Callable[..., Path], dagster_home: Path
) -> None:
    with fake_jaeger.serve([], mode="both") as jaeger:
        jaeger.login_page_paths = {"/api/v3/services", "/api/services"}
        config = load_config(
            write_config(sources={"traces": "jaeger", "jaeger": {"url": jaeger.url}})
        )
        line = _source_line(run_checks(config, dagster_home=str(dagster_home)), "source.traces")
    assert line.startswith(
        f"FAIL  source.traces          Jaeger at {jaeger.url}/api/services answered with something "
        "that is not its JSON API (text/html: '<!doctype html>"
    )
    assert line.endswith("(not a proxy login page or UI path)")
