"""CloudWatch metrics from moto's server over HTTP, through the Dagster asset into the lake.

The test puts raw datapoints with PutMetricData and computes every expected statistic from them;
moto aggregates them per period. A wire-faithful proxy in front of moto (tests/cloudwatch_fixtures)
pages answers at MaxDatapoints (moto does not) and throttles on demand.
"""

import json
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from obs_pipelines.config import load_config, parse_config
from obs_pipelines.errors import ConfigError, SourceError
from obs_pipelines.lake import Lake
from obs_pipelines.lake.catalog import build_catalog, connect
from obs_pipelines.lake.ingest import ingest_metrics_hour
from obs_pipelines.operations.doctor import CheckResult, run_checks
from obs_pipelines.reporting.derived import derive
from obs_pipelines.reporting.reports import report_connection
from obs_pipelines.sources import CombinedMetrics, metric_source
from obs_pipelines.sources.cloudwatch import CloudWatchSource, metric_name
from obs_pipelines.sources.series import series_id
from obs_pipelines.windows import TimeWindow
from tests import servers
from tests.cloudwatch_fixtures import CloudWatchProxy, cloudwatch_proxy
from tests.dagster_runs import run_ingest

REGION = "eu-central-1"  # this module's data in moto (the S3 tests use us-east-1)
START = datetime(2026, 11, 10, tzinfo=UTC)
START_MS = int(START.timestamp() * 1000)
HOUR_MS = 3_600_000
HOURS = 2
ALB = "AWS/ApplicationELB"
LBS = ("app/shop/1f2e", "app/shop-canary/9a8b")
INSTANCES = [f"i-{n:04d}" for n in range(510)]  # > 500 queries: GetMetricData is called twice
QUEUE = {
    "namespace": "Waardhaven/Checkout",
    "metric_name": "QueueDepth",
    "dims": {"Queue": "orders"},
}

Point = tuple[str, str, dict[str, str], int, float]  # namespace, metric, dimensions, ts_ms, value


def build_points() -> list[Point]:
    """Integer-valued datapoints (sums are exact), several per minute, from 5 minutes before the
    first hour to 5 minutes after the last, some exactly on the hour boundaries."""
    rng = random.Random(14)
    points: list[Point] = []
    for minute in range(-5, HOURS * 60 + 5):
        base = START_MS + minute * 60_000
        for lb in LBS:
            for second in sorted(rng.sample(range(60), 3)) if minute % 7 else [0, 30]:
                points.append(
                    (
                        ALB,
                        "RequestCount",
                        {"LoadBalancer": lb},
                        base + second * 1000,
                        rng.randint(0, 50),
                    )
                )
            if minute % 4 == 0:
                points.append(
                    (
                        ALB,
                        "HTTPCode_Target_5XX_Count",
                        {"LoadBalancer": lb},
                        base + rng.randint(0, 59) * 1000,
                        rng.randint(0, 3),
                    )
                )
        if minute % 2 == 0:
            points.append(
                (
                    QUEUE["namespace"],
                    QUEUE["metric_name"],
                    QUEUE["dims"],
                    base + 15_000,
                    rng.randint(-20, 500),
                )
            )
    for hour in range(HOURS):
        for n, instance in enumerate(INSTANCES):
            ts = START_MS + hour * HOUR_MS + (n % 60) * 60_000 + 1_000
            points.append(
                ("AWS/EC2", "CPUUtilization", {"InstanceId": instance}, ts, (n % 97) + 0.25)
            )
    return [(ns, m, d, ts, float(v)) for ns, m, d, ts, v in points]  # fmt: skip


POINTS = build_points()
QUERIES: list[dict[str, Any]] = [
    *(
        {"namespace": ALB, "metric_name": name, "dimensions": {"LoadBalancer": lb},
         "statistic": "Sum", "service": "shop"}
        for lb in LBS
        for name in ("RequestCount", "HTTPCode_Target_5XX_Count")
    ),
    *(
        {"namespace": QUEUE["namespace"], "metric_name": QUEUE["metric_name"],
         "dimensions": QUEUE["dims"], "statistic": stat, "period": "5m"}
        for stat in ("Maximum", "Minimum")
    ),
]  # fmt: skip
DISCOVER = [
    {
        "namespace": "AWS/EC2",
        "metric_name": "CPUUtilization",
        "statistic": "Average",
        "period": 3600,
    }
]
STATS: dict[str, Callable[[list[float]], float]] = {
    "Sum": sum,
    "Maximum": max,
    "Minimum": min,
    "Average": lambda xs: sum(xs) / len(xs),
}


def expected(first_ms: int, end_ms: int) -> dict[Any, list[tuple[int, float]]]:
    """Every series the source must publish for whole hours [first_ms, end_ms), computed from
    the datapoints put: each statistic per period, and the counter view of every Sum."""
    specs = [
        (q["namespace"], q["metric_name"], q["dimensions"], q["statistic"], _seconds(q.get("period", 60)), q.get("service"))
        for q in QUERIES
    ] + [("AWS/EC2", "CPUUtilization", {"InstanceId": i}, "Average", 3600, None) for i in INSTANCES]  # fmt: skip
    found: dict[Any, list[tuple[int, float]]] = {}
    for namespace, name, dims, stat, period_s, service in specs:
        labels = {"source": "cloudwatch", "region": REGION, "namespace": namespace,
                  "metric_name": name, "statistic": stat,
                  **{f"dimension_{k}": v for k, v in dims.items()},
                  **({"service": service} if service else {})}  # fmt: skip
        key = (metric_name(namespace, name, stat), tuple(sorted(labels.items())))
        mine = [(ts, v) for ns, m, d, ts, v in POINTS if (ns, m, d) == (namespace, name, dims)]
        for hour_ms in range(first_ms, end_ms, HOUR_MS):
            rows = []
            for period_ms in range(hour_ms, hour_ms + HOUR_MS, period_s * 1000):
                values = [v for ts, v in mine if period_ms <= ts < period_ms + period_s * 1000]
                if values:
                    rows.append((period_ms, STATS[stat](values)))
            if not rows:
                continue
            found.setdefault(key, []).extend(rows)
            if stat == "Sum":
                counter = found.setdefault((key[0] + "_total", key[1]), [(hour_ms, 0.0)])
                if counter[-1][0] != hour_ms:
                    counter.append((hour_ms, 0.0))
                for ts, value in rows:
                    counter.append((ts + period_s * 1000 - 1, counter[-1][1] + value))
    return found


def _seconds(period: int | str) -> int:
    return int(period) if isinstance(period, int) else int(period.rstrip("m")) * 60


@pytest.fixture(scope="module")
def cloudwatch(s3_endpoint: str) -> Iterator[tuple[str, CloudWatchProxy]]:
    """moto (the session's server) holding POINTS in REGION, behind the paging proxy."""
    client = boto3.client(
        "cloudwatch",
        endpoint_url=s3_endpoint,
        region_name=REGION,
        aws_access_key_id="testing-key",
        aws_secret_access_key="testing-secret",
    )
    data = [
        {"MetricName": m, "Dimensions": [{"Name": k, "Value": v} for k, v in d.items()],
         "Timestamp": datetime.fromtimestamp(ts / 1000, UTC), "Value": v, "_ns": ns}
        for ns, m, d, ts, v in POINTS
    ]  # fmt: skip
    for namespace in {p["_ns"] for p in data}:
        mine = [{k: v for k, v in p.items() if k != "_ns"} for p in data if p["_ns"] == namespace]
        for i in range(0, len(mine), 500):
            client.put_metric_data(Namespace=namespace, MetricData=mine[i : i + 500])
    with cloudwatch_proxy(s3_endpoint) as proxy:
        yield proxy


@pytest.fixture(autouse=True)
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials the way production has them: in the standard chain, never in the config."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret")


def cloudwatch_section(url: str, **overrides: Any) -> dict[str, Any]:
    return {
        "region": REGION,
        "endpoint_url": url,
        "queries": QUERIES,
        "discover": DISCOVER,
        "retry_backoff_seconds": 0.01,
        **overrides,
    }


SLO_SELECTOR = f'{{dimension_LoadBalancer="{LBS[0]}"}}'
SLOS = [
    {
        "name": "shop_alb_availability",
        "service": "shop",
        "objective": 0.99,
        "window": "1d",
        "sli": {
            "type": "ratio",
            "bad": f"aws_applicationelb_httpcode_target_5xx_count_sum_total{SLO_SELECTOR}",
            "total": f"aws_applicationelb_request_count_sum_total{SLO_SELECTOR}",
        },
    }
]


@pytest.fixture(scope="module")
def ingested(
    cloudwatch: tuple[str, CloudWatchProxy], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Any, CloudWatchProxy]:
    """Both hours materialized once through the ingest job, answers paged at 97 datapoints."""
    url, proxy = cloudwatch
    proxy.reset()
    folder = tmp_path_factory.mktemp("cloudwatch")
    path = _write(
        folder,
        sources={"metrics": "cloudwatch", "cloudwatch": cloudwatch_section(url, max_datapoints=97)},
        services=[{"name": "shop", "owner": "team"}],
        slos=SLOS,
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ACCESS_KEY_ID", "testing-key")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret")
        result = run_ingest(path, "2026-11-10-00:00", "2026-11-10-01:00")
    return path, result, proxy


def _write(folder: Path, **sections: Any) -> Path:
    """An obs.yaml in ``folder`` (conftest's write_config, for module-scoped fixtures too)."""
    body = {
        "ingest": {"start": "2026-11-01T00:00:00Z"},
        "lake": {
            "root": str(folder / "lake"),
            "catalog": str(folder / "lake" / "obs.duckdb"),
        },
        **sections,
    }
    path = folder / "obs.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def lake_series(path: Path) -> dict[Any, list[tuple[int, float]]]:
    con = connect(load_config(path))
    rows = con.execute(
        "SELECT metric, map_entries(labels), epoch_ms(ts), value FROM metrics ORDER BY series_id, ts"
    ).fetchall()
    con.close()
    found: dict[Any, list[tuple[int, float]]] = {}
    for metric, entries, ts, value in rows:
        key = (metric, tuple(sorted((e["key"], e["value"]) for e in entries)))
        found.setdefault(key, []).append((ts, value))
    return found


# --- through the asset ------------------------------------------------------------------------


def test_datapoints_put_come_back_exactly_through_the_asset_across_pages(
    ingested: tuple[Path, Any, CloudWatchProxy],
) -> None:
    path, result, proxy = ingested

    assert result.success
    assert [e for e in result.get_asset_check_evaluations() if not e.passed] == []
    want = expected(START_MS, START_MS + HOURS * HOUR_MS)
    assert lake_series(path) == want
    # 516 queries an hour: two GetMetricData calls of at most 500 queries, each paged at 97
    # datapoints with PartialData until complete.
    firsts = [c for c in proxy.log.calls if "NextToken" not in c]
    assert sorted(len(c["MetricDataQueries"]) for c in firsts) == [16, 16, 500, 500]
    assert all(c["ScanBy"] == "TimestampAscending" for c in proxy.log.calls)
    assert proxy.log.pages_partial >= sum(len(v) for v in want.values()) // 97 // 2
    samples = next(
        m
        for m in result.get_asset_materialization_events()
        if m.asset_key.path == ["metric_samples"]
    )
    metadata = samples.materialization.metadata
    raw_points = sum(len(v) for k, v in want.items() if not k[0].endswith("_total"))
    assert metadata["run samples from cloudwatch"].value == sum(len(v) for v in want.values())
    assert metadata["run samples from cloudwatch"].value > raw_points


def test_an_slo_on_alb_5xx_over_requests_counts_exactly_the_numbers_put(
    ingested: tuple[Path, Any, CloudWatchProxy],
) -> None:
    path, _, _ = ingested
    config = load_config(path)
    build_catalog(config)
    end = START + timedelta(hours=HOURS)
    bad = sum(
        v for ns, m, d, ts, v in POINTS
        if m == "HTTPCode_Target_5XX_Count" and d["LoadBalancer"] == LBS[0] and START_MS <= ts < end.timestamp() * 1000
    )  # fmt: skip
    total = sum(
        v for ns, m, d, ts, v in POINTS
        if m == "RequestCount" and d["LoadBalancer"] == LBS[0] and START_MS <= ts < end.timestamp() * 1000
    )  # fmt: skip

    con = report_connection(config, START, START + timedelta(days=1))
    row = con.execute(
        """SELECT bad_events_count, events_count, sli_measurement FROM slo_compliance
           WHERE slo_name = 'shop_alb_availability' AND scope = 'day'"""
    ).fetchone()
    con.close()

    assert bad > 0 and total > bad
    assert row[0] == bad and row[1] == total
    assert row[2] == pytest.approx((total - bad) / total, rel=1e-12)


# --- the source on its own --------------------------------------------------------------------


def test_throttling_is_retried_with_growing_backoff_then_succeeds(
    cloudwatch: tuple[str, CloudWatchProxy],
) -> None:
    url, proxy = cloudwatch
    proxy.reset()
    proxy.faults.throttle = 3
    config = parse_config(
        {
            "sources": {
                "metrics": "cloudwatch",
                "cloudwatch": cloudwatch_section(url, retry_backoff_seconds=0.5),
            }
        }
    ).sources.cloudwatch
    slept: list[float] = []
    source = CloudWatchSource(config, sleep=slept.append)
    hour = TimeWindow(START, START + timedelta(hours=1))

    rows = sum(chunk.samples.num_rows for chunk in source.read_metrics(hour))

    assert proxy.log.throttled == 3 and slept == [0.5, 1.0, 2.0]
    assert rows == sum(len(v) for v in expected(START_MS, START_MS + HOUR_MS).values())


def test_throttling_that_outlasts_the_retries_fails_the_hour_and_writes_nothing(
    cloudwatch: tuple[str, CloudWatchProxy], tmp_path: Path
) -> None:
    url, proxy = cloudwatch
    proxy.reset()
    proxy.faults.throttle = 100
    path = _write(
        tmp_path,
        sources={"metrics": "cloudwatch", "cloudwatch": cloudwatch_section(url, retries=2)},
    )
    config = load_config(path)
    hour = TimeWindow(START, START + timedelta(hours=1))

    with pytest.raises(SourceError) as error:
        ingest_metrics_hour(Lake(config), metric_source(config), hour)

    assert proxy.log.throttled == 3
    assert str(error.value).startswith(
        f"CloudWatch at {url} kept throttling GetMetricData (throttled: Throttling) after 2 retries; "
    )
    assert "\n" not in str(error.value)
    assert Lake(config).read_hot("metric_samples", hour) is None


def test_http_429_from_a_proxy_is_throttling_retried_then_the_hour_is_complete(
    cloudwatch: tuple[str, CloudWatchProxy],
) -> None:
    url, proxy = cloudwatch
    proxy.reset()
    proxy.faults.answers = [(429, {"Content-Type": "text/plain"}, b"Too Many Requests")] * 2
    config = parse_config(
        {"sources": {"metrics": "cloudwatch", "cloudwatch": cloudwatch_section(url)}}
    ).sources.cloudwatch
    slept: list[float] = []
    source = CloudWatchSource(config, sleep=slept.append)
    hour = TimeWindow(START, START + timedelta(hours=1))

    rows = sum(chunk.samples.num_rows for chunk in source.read_metrics(hour))

    assert slept == [0.01, 0.02] and not proxy.faults.answers
    assert rows == sum(len(v) for v in expected(START_MS, START_MS + HOUR_MS).values())


def test_an_expired_signature_says_to_check_the_clock(
    cloudwatch: tuple[str, CloudWatchProxy],
) -> None:
    url, proxy = cloudwatch
    proxy.reset()
    said = "Signature expired: 20261110T000000Z is now earlier than 20261110T001000Z"
    body = json.dumps({"__type": "InvalidSignatureException", "message": said}).encode()
    proxy.faults.answers = [(400, {"Content-Type": "application/x-amz-json-1.0"}, body)]
    config = parse_config(
        {"sources": {"metrics": "cloudwatch", "cloudwatch": cloudwatch_section(url)}}
    )
    hour = TimeWindow(START, START + timedelta(hours=1))

    with pytest.raises(SourceError) as error:
        list(metric_source(config).read_metrics(hour))

    assert str(error.value) == (
        f"CloudWatch at {url} refused the request's signature (InvalidSignatureException: {said}); "
        "check this machine's clock (AWS refuses a signature more than 5 minutes off: sync it "
        "with NTP), then the AWS credentials of the standard AWS chain"
    )


def test_refused_credentials_and_an_unreachable_endpoint_are_one_line_each(
    cloudwatch: tuple[str, CloudWatchProxy], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, proxy = cloudwatch
    proxy.reset()
    proxy.faults.refuse_credentials = 1
    hour = TimeWindow(START, START + timedelta(hours=1))

    def read(**overrides: Any) -> str:
        section = cloudwatch_section(url, **overrides)
        config = parse_config({"sources": {"metrics": "cloudwatch", "cloudwatch": section}})
        with pytest.raises(SourceError) as error:
            list(metric_source(config).read_metrics(hour))
        return str(error.value)

    assert read() == (
        f"CloudWatch at {url} refused the AWS credentials (InvalidClientTokenId); check the "
        "credentials of the standard AWS chain (AWS_ACCESS_KEY_ID, AWS_PROFILE or the role) are "
        "valid, not expired, and for this account"
    )
    closed = f"http://127.0.0.1:{servers.free_port()}"
    assert read(endpoint_url=closed, retries=1) == (
        f"CloudWatch at {closed} is unreachable or failing (EndpointConnectionError) after 1 "
        "retries; check sources.cloudwatch.region and endpoint_url and the network, then rerun"
    )
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    monkeypatch.delenv("AWS_WEB_IDENTITY_TOKEN_FILE", raising=False)
    assert read().startswith("no AWS credentials found for CloudWatch; provide them through")


def test_doctor_probes_cloudwatch_and_names_refused_credentials_in_one_line(
    cloudwatch: tuple[str, CloudWatchProxy], tmp_path: Path
) -> None:
    url, proxy = cloudwatch
    proxy.reset()
    config = load_config(
        _write(tmp_path, sources={"metrics": "cloudwatch", "cloudwatch": cloudwatch_section(url)})
    )

    def probe() -> CheckResult:
        return next(r for r in run_checks(config) if r.check == "source.metrics")

    found = probe()
    assert found.ok and found.detail.startswith(f"CloudWatch at {url} answers ListMetrics")
    proxy.faults.refuse_credentials = 1
    refused = probe()
    assert not refused.ok
    assert "refused the AWS credentials (InvalidClientTokenId)" in refused.detail
    assert "\n" not in refused.line() and "testing-secret" not in refused.line()


@pytest.mark.prometheus
def test_prometheus_and_cloudwatch_together_publish_the_union_of_the_hour(
    cloudwatch: tuple[str, CloudWatchProxy], tmp_path: Path
) -> None:
    url, proxy = cloudwatch
    proxy.reset()
    up = [servers.Sample(START_MS + 5_000 + k * 15_000, float(k % 2)) for k in range(240)]
    prom = servers.Series("shop_ready", {"job": "shop", "instance": "shop-0:8080"}, up)
    servers.backfill(tmp_path / "tsdb", [prom])
    with servers.prometheus(tmp_path / "tsdb") as prometheus_url:
        path = _write(
            tmp_path,
            sources={
                "metrics": ["prometheus", "cloudwatch"],
                "prometheus": {"url": prometheus_url, "selectors": ["shop_ready"]},
                "cloudwatch": cloudwatch_section(url),
            },
        )
        result = run_ingest(path, "2026-11-10-00:00", "2026-11-10-00:00")

    assert result.success
    assert [e for e in result.get_asset_check_evaluations() if not e.passed] == []
    cloud = expected(START_MS, START_MS + HOUR_MS)
    key = ("shop_ready", (("instance", "shop-0:8080"), ("job", "shop")))
    assert lake_series(path) == {**cloud, key: [(s.ts_ms, s.value) for s in up]}
    samples = next(
        m
        for m in result.get_asset_materialization_events()
        if m.asset_key.path == ["metric_samples"]
    )
    metadata = samples.materialization.metadata
    assert metadata["source"].value == "prometheus+cloudwatch"
    assert metadata["run samples from prometheus"].value == len(up)
    assert metadata["run samples from cloudwatch"].value == sum(len(v) for v in cloud.values())


def test_a_failing_backend_fails_the_hour_before_anything_is_written(
    cloudwatch: tuple[str, CloudWatchProxy], tmp_path: Path
) -> None:
    url, proxy = cloudwatch
    proxy.reset()
    path = _write(
        tmp_path,
        sources={
            "metrics": ["cloudwatch", "prometheus"],
            "prometheus": {"url": f"http://127.0.0.1:{servers.free_port()}", "selectors": ["up"], "retries": 0},
            "cloudwatch": cloudwatch_section(url),
        },
    )  # fmt: skip
    config = load_config(path)
    source = metric_source(config)
    hour = TimeWindow(START, START + timedelta(hours=1))

    with pytest.raises(SourceError, match=r"Prometheus at .* is unreachable"):
        ingest_metrics_hour(Lake(config), source, hour)

    assert isinstance(source, CombinedMetrics) and proxy.log.calls  # CloudWatch answered first
    assert Lake(config).read_hot("metric_samples", hour) is None
    assert Lake(config).read_hot("metric_series", hour) is None


# --- pages that misbehave (scripted by the proxy) ----------------------------------------------

SCRIPTED = [
    {"namespace": ALB, "metric_name": name, "dimensions": {"LoadBalancer": LBS[0]},
     "statistic": "Sum", "service": "shop"}
    for name in ("RequestCount", "HTTPCode_Target_5XX_Count")
]  # fmt: skip
START_S = START_MS // 1000


def result(query_id: str, points: list[tuple[int, float]], status: str = "Complete") -> dict:
    """One query's part of a page: (minute of the hour, value) datapoints, as on the wire."""
    return {
        "Id": query_id,
        "Label": query_id,
        "Timestamps": [START_S + minute * 60 for minute, _ in points],
        "Values": [value for _, value in points],
        "StatusCode": status,
    }


def scripted_hour(url: str, folder: Path, **overrides: Any) -> Any:
    """The first hour ingested from the scripted proxy, SLOS on the two queries of SCRIPTED."""
    section = cloudwatch_section(url, **{"queries": SCRIPTED, "discover": [], **overrides})
    path = _write(
        folder,
        sources={"metrics": "cloudwatch", "cloudwatch": section},
        services=[{"name": "shop", "owner": "team"}],
        slos=SLOS,
    )
    config = load_config(path)
    hour = TimeWindow(START, START + timedelta(hours=1))
    return path, hour, lambda: ingest_metrics_hour(Lake(config), metric_source(config), hour)


def slo_events(config: Any) -> tuple[float, float]:
    """The SLO's bad and total events of the day, as the report shows them."""
    day = TimeWindow(START, START + timedelta(days=1))
    derive(config, day)
    build_catalog(config)
    con = report_connection(config, day.start, day.end)
    row = con.execute(
        """SELECT bad_events_count, events_count FROM slo_compliance
           WHERE slo_name = 'shop_alb_availability' AND scope = 'day'"""
    ).fetchone()
    con.close()
    return row[0], row[1]


@pytest.mark.parametrize(
    "pages",
    [
        # page 2 repeats 00:01 of page 1
        [[(0, 100.0), (1, 100.0)], [(1, 100.0), (2, 100.0)]],
        # one page, newest first
        [[(2, 100.0), (1, 100.0), (0, 100.0)]],
    ],
    ids=["repeated-across-pages", "out-of-order"],
)
def test_repeated_or_unordered_datapoints_count_once_in_the_counter_and_the_slo(
    cloudwatch: tuple[str, CloudWatchProxy], tmp_path: Path, pages: list[list[tuple[int, float]]]
) -> None:
    url, proxy = cloudwatch
    proxy.reset()

    def answer(ids: list[str], number: int) -> dict[str, Any]:
        last = number == len(pages) - 1
        bad = [(0, 1.0)] if number == 0 else []
        out = {
            "MetricDataResults": [
                result(ids[0], pages[number], "Complete" if last else "PartialData"),
                result(ids[1], bad),
            ]
        }
        return out if last else {**out, "NextToken": "more"}

    proxy.faults.pages = answer
    path, _, ingest = scripted_hour(url, tmp_path)

    ingest()

    config = load_config(path)
    build_catalog(config)
    found = lake_series(path)
    counter = next(
        v for k, v in found.items() if k[0] == "aws_applicationelb_request_count_sum_total"
    )
    exact = next(v for k, v in found.items() if k[0] == "aws_applicationelb_request_count_sum")
    assert exact == [(START_MS + m * 60_000, 100.0) for m in range(3)]
    assert counter == [(START_MS, 0.0)] + [
        (START_MS + m * 60_000 - 1, m * 100.0) for m in (1, 2, 3)
    ]
    assert slo_events(config) == (1.0, 300.0)


def test_one_timestamp_with_two_values_fails_the_hour_in_one_line(
    cloudwatch: tuple[str, CloudWatchProxy], tmp_path: Path
) -> None:
    url, proxy = cloudwatch
    proxy.reset()
    proxy.faults.pages = lambda ids, number: {
        "MetricDataResults": [
            result(ids[0], [(0, 100.0), (1, 100.0), (1, 120.0)]),
            result(ids[1], []),
        ]
    }
    path, hour, ingest = scripted_hour(url, tmp_path)

    with pytest.raises(SourceError) as error:
        ingest()

    assert str(error.value) == (
        f"CloudWatch returned two values for {ALB} RequestCount{{LoadBalancer={LBS[0]}}} Sum at "
        f"2026-11-10T00:01:00+00:00 (100 and 120) for {hour}; rerun the hour"
    )
    assert Lake(load_config(path)).read_hot("metric_samples", hour) is None


REQUESTS = f"{ALB} RequestCount{{LoadBalancer={LBS[0]}}} Sum"
ERRORS = f"{ALB} HTTPCode_Target_5XX_Count{{LoadBalancer={LBS[0]}}} Sum"


def flip(ids: list[str], number: int) -> dict[str, Any]:
    """Page 1 fails the requests query, page 2 calls it Complete."""
    if number == 0:
        failed = {
            **result(ids[0], [(0, 5.0)], "InternalError"),
            "Messages": [{"Code": "InternalError", "Value": "partial failure"}],
        }
        return {"MetricDataResults": [failed, result(ids[1], [])], "NextToken": "more"}
    return {"MetricDataResults": [result(ids[0], [(1, 5.0)]), result(ids[1], [])]}


@pytest.mark.parametrize(
    ("pages", "problem"),
    [
        (
            lambda ids, number: {"MetricDataResults": [result(ids[0], [(0, 5.0)])]},
            f"never answered {ERRORS} for {{hour}}; rerun the hour",
        ),
        (
            flip,
            f"answered InternalError for {REQUESTS} for {{hour}} (partial failure); rerun the "
            "hour, and if it persists check that query in sources.cloudwatch",
        ),
    ],
    ids=["query-never-answered", "error-then-complete"],
)
def test_a_query_missing_or_failed_on_any_page_fails_the_hour_in_one_line(
    cloudwatch: tuple[str, CloudWatchProxy],
    tmp_path: Path,
    pages: Callable[[list[str], int], dict[str, Any]],
    problem: str,
) -> None:
    url, proxy = cloudwatch
    proxy.reset()
    proxy.faults.pages = pages
    path, hour, ingest = scripted_hour(url, tmp_path)

    with pytest.raises(SourceError) as error:
        ingest()

    assert str(error.value) == f"CloudWatch at {url} " + problem.replace("{hour}", str(hour))
    assert Lake(load_config(path)).read_hot("metric_samples", hour) is None


def test_max_datapoints_exceeded_fails_the_hour_even_when_complete(
    cloudwatch: tuple[str, CloudWatchProxy], tmp_path: Path
) -> None:
    url, proxy = cloudwatch
    proxy.reset()
    cut = [{"Code": "MaxDatapointsExceeded", "Value": "Too many datapoints requested"}]
    proxy.faults.pages = lambda ids, number: {
        "MetricDataResults": [{**result(ids[0], [(0, 5.0)]), "Messages": cut}, result(ids[1], [])]
    }
    path, hour, ingest = scripted_hour(url, tmp_path)

    with pytest.raises(SourceError) as error:
        ingest()

    assert str(error.value) == (
        f"CloudWatch at {url} cut {REQUESTS} for {hour} (MaxDatapointsExceeded: Too many "
        "datapoints requested); lower sources.cloudwatch.queries_per_call, use a coarser period, "
        "or raise max_datapoints (at most 100800), then rerun"
    )
    assert Lake(load_config(path)).read_hot("metric_samples", hour) is None


def test_other_messages_are_warnings_and_the_hour_is_published(
    cloudwatch: tuple[str, CloudWatchProxy], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url, proxy = cloudwatch
    proxy.reset()
    note = [{"Code": "ArithmeticError", "Value": "division by zero in one period"}]
    proxy.faults.pages = lambda ids, number: {
        "MetricDataResults": [{**result(ids[0], [(0, 5.0)]), "Messages": note}, result(ids[1], [])],
        "Messages": [{"Code": "MaxQueryTimeRangeExceed", "Value": "range too long"}],
    }
    _, hour, ingest = scripted_hour(url, tmp_path)

    published = ingest()

    assert published.samples == 3  # the datapoint and its counter view's 0 and 5
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        f"CloudWatch at {url} said about the answer for {hour}: MaxQueryTimeRangeExceed: range too long",
        f"CloudWatch at {url} said about {REQUESTS} for {hour}: ArithmeticError: division by zero in one period",
    ]


def test_fresh_tokens_forever_fail_the_hour_at_the_timeout_in_one_line(
    cloudwatch: tuple[str, CloudWatchProxy], tmp_path: Path
) -> None:
    url, proxy = cloudwatch
    proxy.reset()
    proxy.faults.pages = lambda ids, number: {
        "MetricDataResults": [result(i, [], "PartialData") for i in ids],
        "NextToken": "more",
    }
    path, hour, ingest = scripted_hour(url, tmp_path, timeout="1s")

    with pytest.raises(SourceError) as error:
        ingest()

    pages = len(proxy.log.calls)
    assert pages > 1
    assert str(error.value) == (
        f"CloudWatch at {url} did not finish GetMetricData for {hour} within "
        f"sources.cloudwatch.timeout (1s; {pages} pages read); raise timeout or lower "
        "queries_per_call, then rerun"
    )
    assert Lake(load_config(path)).read_hot("metric_samples", hour) is None


# --- identity and config ----------------------------------------------------------------------


def test_series_names_follow_the_cloudwatch_exporter_and_never_equal_a_prometheus_series() -> None:
    assert (
        metric_name("AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", "Sum")
        == "aws_applicationelb_httpcode_target_5xx_count_sum"
    )
    assert metric_name("AWS/ApplicationELB", "RequestCount", "SampleCount") == (
        "aws_applicationelb_request_count_sample_count"
    )
    assert metric_name("Waardhaven/Checkout", "Queue.Depth", "p99.9") == (
        "aws_waardhaven_checkout_queue_depth_p99_9"
    )
    config = parse_config(
        {
            "sources": {
                "metrics": "cloudwatch",
                "cloudwatch": cloudwatch_section("http://127.0.0.1:1", discover=[]),
            }
        }
    )
    series = CloudWatchSource(config.sources.cloudwatch).series()
    labels = dict(series.exact.column("labels")[0].as_py())
    assert labels["source"] == "cloudwatch" and labels["dimension_LoadBalancer"] == LBS[0]
    # The same name and dimensions without the CloudWatch labels is another series.
    metric = series.exact.column("metric")[0].as_py()
    assert series.exact_ids[0] == series_id(metric, labels)
    assert series_id(metric, {"dimension_LoadBalancer": LBS[0]}) != series.exact_ids[0]
    assert len(set(series.exact_ids.tolist()) | set(series.counter_ids[series.counter_row >= 0].tolist())) == 2 * 4 + 2  # fmt: skip


def refusal(cloudwatch: dict[str, Any], metrics: Any = "cloudwatch") -> str:
    with pytest.raises(ConfigError) as error:
        parse_config({"sources": {"metrics": metrics, "cloudwatch": cloudwatch}})
    return str(error.value)


QUERY = {"namespace": ALB, "metric_name": "RequestCount", "statistic": "Sum"}


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            {"region": REGION, "queries": [QUERY], "aws_secret_access_key": "wJalrXUtnFEMI"},
            "config: sources.cloudwatch: aws_secret_access_key: AWS credentials never go in the "
            "config; remove it and provide them through the standard AWS chain "
            "(AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or an instance or task role)",
        ),
        (
            {"region": REGION, "queries": [{**QUERY, "period": 90}]},
            "config: sources.cloudwatch.queries[0].period: 90 is not a whole number of minutes "
            "that divides an hour; write 60 (1m), 300 (5m) or 3600 (1h), for example",
        ),
        (
            {"region": REGION, "queries": [{**QUERY, "period": "7m"}]},
            "config: sources.cloudwatch.queries[0].period: '7m' is not a whole number of minutes "
            "that divides an hour; write 60 (1m), 300 (5m) or 3600 (1h), for example",
        ),
        (
            {"region": REGION, "queries": [{**QUERY, "statistic": "Total"}]},
            "config: sources.cloudwatch.queries[0].statistic: 'Total' is not a statistic; use Sum, "
            "Average, Maximum, Minimum, SampleCount or a percentile such as p99",
        ),
        (
            {"region": REGION, "queries": [{**QUERY, "statistic": "Average", "counter": True}]},
            "config: sources.cloudwatch.queries[0]: counter: a counter view counts events, so it "
            "needs statistic Sum or SampleCount (got Average); remove counter",
        ),
        (
            {"region": REGION, "queries": [QUERY, QUERY]},
            "config: sources.cloudwatch: queries[1] repeats queries[0] (same namespace, "
            "metric_name, dimensions and statistic); remove one",
        ),
        (
            {"region": REGION},
            "config: sources.cloudwatch: give queries, discover or both: the metrics to read",
        ),
        (
            {"region": "Frankfurt", "queries": [QUERY]},
            "config: sources.cloudwatch.region: 'Frankfurt' is not an AWS region; write one such "
            "as eu-west-1",
        ),
    ],
)
def test_config_refusals_are_one_line(section: dict[str, Any], message: str) -> None:
    text = refusal(section)
    assert text == message
    assert "wJalrXUtnFEMI" not in text


def test_the_metrics_pillar_takes_one_backend_or_a_list_of_real_ones() -> None:
    section = {"region": REGION, "queries": [QUERY]}
    prometheus = {"url": "http://127.0.0.1:9090", "selectors": ["up"]}
    both = parse_config(
        {"sources": {"metrics": ["prometheus", "cloudwatch"], "cloudwatch": section, "prometheus": prometheus}}
    ).sources  # fmt: skip
    alone = parse_config({"sources": {"metrics": ["cloudwatch"], "cloudwatch": section}}).sources
    assert both.backends("metrics") == ("prometheus", "cloudwatch")
    assert both.backend("metrics") == "prometheus+cloudwatch" and both.backend("logs") == "none"
    assert alone.metrics == "cloudwatch" and alone.backends("metrics") == ("cloudwatch",)
    assert refusal(section, ["simulator", "cloudwatch"]) == (
        "config: sources.metrics: got ['simulator', 'cloudwatch']; a list names real backends "
        "only: 'prometheus', 'cloudwatch' or both"
    )
    assert refusal(section, ["cloudwatch", "prometheus"]) == (
        "config: sources: metrics come from 'prometheus' but there is no sources.prometheus "
        "section; add one with its url, or set sources.metrics: simulator"
    )
    with pytest.raises(ConfigError, match="add one with its region and queries"):
        parse_config({"sources": {"metrics": "cloudwatch"}})


def test_list_metrics_handing_back_a_token_it_gave_is_one_line_not_an_endless_listing(
    cloudwatch: tuple[str, CloudWatchProxy], tmp_path: Path
) -> None:
    url, proxy = cloudwatch
    proxy.reset()
    proxy.faults.list_page = {"Metrics": [], "NextToken": "the-same-token"}
    path, _, ingest = scripted_hour(url, tmp_path, discover=DISCOVER)

    with pytest.raises(SourceError) as caught:
        ingest()

    assert str(caught.value) == (
        f"CloudWatch at {url} returned the same NextToken twice listing AWS/EC2 (ListMetrics, "
        "after 1 pages); rerun the hour"
    )
    assert len(proxy.log.calls) == 2  # the first page and the one repeating its token
    assert not list(Path(load_config(path).lake_root).rglob("*.parquet"))


def test_list_metrics_handing_out_fresh_tokens_forever_fails_at_the_timeout_in_one_line(
    cloudwatch: tuple[str, CloudWatchProxy], tmp_path: Path
) -> None:
    url, proxy = cloudwatch
    proxy.reset()
    proxy.faults.list_page = lambda number: {"Metrics": [], "NextToken": f"token-{number}"}
    path, _, ingest = scripted_hour(url, tmp_path, discover=DISCOVER, timeout="1s")

    with pytest.raises(SourceError) as caught:
        ingest()

    pages = len(proxy.log.calls)
    assert pages > 2
    assert [call.get("NextToken") for call in proxy.log.calls[:3]] == [None, "token-0", "token-1"]
    assert str(caught.value) == (
        f"CloudWatch at {url} did not finish listing AWS/EC2 (ListMetrics) within "
        f"sources.cloudwatch.timeout (1s; {pages} pages read); raise timeout or narrow the "
        "discover rule with metric_name or dimensions, then rerun"
    )
    assert not list(Path(load_config(path).lake_root).rglob("*.parquet"))
