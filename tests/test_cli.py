"""The `obs` command as a user runs it: queries in every format, runs launched on a Dagster instance."""

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from obs_pipelines.config import load_config
from obs_pipelines.lake import Lake
from obs_pipelines.lake.catalog import build_catalog
from obs_pipelines.lake.ingest import ingest_metrics_hour
from obs_pipelines.reporting.derived import derive
from obs_pipelines.sources import metric_source
from obs_pipelines.windows import TimeWindow, utc
from tests import servers

pytestmark = pytest.mark.integration  # runs obs or duckdb in a subprocess: seconds per test

REPO = Path(__file__).resolve().parent.parent
HOUR = TimeWindow(utc("2026-11-18T14:00:00Z"), utc("2026-11-18T15:00:00Z"))
UP_BY_SERVICE = "SELECT service, count(*) AS samples, sum(value) AS up FROM metrics WHERE metric = 'up' GROUP BY service ORDER BY service"


def obs(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "obs_pipelines.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd or REPO,
        timeout=300,
    )


@pytest.fixture
def one_hour_lake(write_config: Callable[..., Path]) -> Path:
    path = write_config()
    config = load_config(path)
    ingest_metrics_hour(Lake(config), metric_source(config), HOUR)
    build_catalog(config)
    return path


def test_query_prints_a_table(one_hour_lake: Path) -> None:
    done = obs("--config", str(one_hour_lake), "query", UP_BY_SERVICE)
    assert done.returncode == 0, done.stderr
    assert "waardhaven-api" in done.stdout and "│" in done.stdout
    body = [line for line in done.stdout.splitlines() if line.startswith("│")]
    assert len(body) == 2 + 8  # column names, types, then one line per service


def test_query_writes_csv_json_and_parquet_with_the_same_rows(
    one_hour_lake: Path, tmp_path: Path
) -> None:
    as_csv = obs("--config", str(one_hour_lake), "query", UP_BY_SERVICE, "--format", "csv")
    as_json = obs("--config", str(one_hour_lake), "query", UP_BY_SERVICE, "--format", "json")
    parquet_path = tmp_path / "up.parquet"
    as_parquet = obs(
        "--config",
        str(one_hour_lake),
        "query",
        UP_BY_SERVICE,
        "--format",
        "parquet",
        "-o",
        str(parquet_path),
    )

    assert (as_csv.returncode, as_json.returncode, as_parquet.returncode) == (0, 0, 0)
    csv_rows = [
        (r["service"], int(r["samples"]), float(r["up"]))
        for r in csv.DictReader(io.StringIO(as_csv.stdout))
    ]
    json_rows = [(r["service"], r["samples"], r["up"]) for r in json.loads(as_json.stdout)]
    table = pq.read_table(parquet_path)
    parquet_rows = list(
        zip(*(table.column(c).to_pylist() for c in ("service", "samples", "up")), strict=True)
    )
    assert csv_rows == json_rows == parquet_rows
    assert len(csv_rows) == 8
    api = dict((s, (n, up)) for s, n, up in csv_rows)["waardhaven-api"]
    assert api == (480, 440.0)  # instance 0 was down for 40 of its 240 scrapes during the outage


def test_a_bad_query_is_one_line(one_hour_lake: Path) -> None:
    done = obs("--config", str(one_hour_lake), "query", "SELECT nope FROM metrics")
    assert done.returncode == 2
    assert done.stderr.startswith(
        'obs: error: query failed: Binder Error: Referenced column "nope" not found'
    )
    assert done.stderr.count("\n") == 1


def test_a_malformed_duration_is_a_usage_error_not_a_traceback(tmp_path: Path) -> None:
    for command in (["materialize", "--last"], ["lake", "vacuum", "--older-than"]):
        done = obs("--config", str(tmp_path / "obs.yaml"), *command, "nope")
        assert done.returncode == 2, command
        assert "Traceback" not in done.stderr
        assert (
            done.stderr.strip()
            .splitlines()[-1]
            .endswith(
                "'nope' is not a duration; write a number and a unit such as 90s, 15m, 2h, 7d, 1w or 1y"
            )
        )


def test_materialize_runs_on_the_dagster_instance_and_fills_the_lake(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    path = write_config()
    home = tmp_path / "dagster_home"

    done = obs(
        "--config",
        str(path),
        "materialize",
        "--from",
        "2026-11-18T22:00:00Z",
        "--to",
        "2026-11-19T02:00:00Z",
        env={"DAGSTER_HOME": str(home)},
    )

    assert done.returncode == 0, done.stderr
    assert (
        done.stdout.splitlines()
        == [line for line in done.stdout.splitlines() if line.startswith("ingested [2026-11-1")]
        and len(done.stdout.splitlines()) == 1
    ), "4 hours make one run"
    from dagster import DagsterInstance, DagsterRunStatus

    with DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
        assert [r.status for r in runs] == [DagsterRunStatus.SUCCESS]
        assert runs[0].tags["dagster/asset_partition_range_start"] == "2026-11-18-22:00"
    hours = sorted(
        p.window.start.hour for p in Lake(load_config(path)).hot_partitions("metric_samples")
    )
    assert hours == [0, 1, 22, 23]


def test_a_failed_run_is_reported_in_one_line(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{servers.free_port()}"
    path = write_config(
        sources={
            "metrics": "prometheus",
            "prometheus": {"url": url, "selectors": ["up"], "retries": 0},
        }
    )

    done = obs(
        "--config",
        str(path),
        "materialize",
        "--from",
        "2026-11-18T10:00:00Z",
        "--to",
        "2026-11-18T11:00:00Z",
        env={"DAGSTER_HOME": str(tmp_path / "home")},
    )

    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("obs: error: run ")
    assert lines[0].endswith(
        f"(ingested [2026-11-18T10:00:00Z, 2026-11-18T11:00:00Z)) failed: Prometheus at {url} is unreachable "
        "(Connection refused); check sources.prometheus.url and that the server is running"
    )
    metrics_hot = Path(load_config(path).lake_root) / "hot" / "metric_samples"
    assert not metrics_hot.exists() or not any(metrics_hot.rglob("*.parquet"))


def test_dagster_loads_the_definitions_without_deprecation_warnings_from_our_code() -> None:
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("dagster")),
            "definitions",
            "validate",
            "-w",
            "workspace.yaml",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONWARNINGS": "always::DeprecationWarning"},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "All code locations passed validation" in done.stderr + done.stdout
    ours = [
        line
        for line in done.stderr.splitlines()
        if ("Warning" in line)
        and any(part in line for part in ("/obs_pipelines/", "/assets/", "/sensors/"))
    ]
    assert ours == []


def test_report_prints_the_scorecard_and_writes_a_self_contained_html(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    path = write_config(extends=str(REPO / "obs.yaml"))
    config = load_config(path)
    lake = Lake(config)
    hours = TimeWindow(HOUR.start.replace(hour=12), HOUR.end.replace(hour=17))
    for hour in hours.hours():
        ingest_metrics_hour(lake, metric_source(config), hour)
    derive(config, hours)
    html = tmp_path / "report.html"

    done = obs("--config", str(path), "report", "--to", "2026-11-18T17:00:00Z", "-o", str(html))

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "Scorecard 2026-11-11 17:00 .. 2026-11-18 17:00 UTC"
    assert [line.split("  ")[0] for line in lines[3:8]] == [
        "System uptime",
        "Alert noise ratio",
        "Mean time to detection",
        "Mean time to resolution",
        "Monitoring coverage",
    ]
    page = html.read_text()
    assert page.count("<svg") >= 4 and "http://" not in page and "https://" not in page
    assert lines[-1] == f"report: {html}"

    later = TimeWindow(hours.end, hours.end + timedelta(hours=2))
    for hour in later.hours():
        ingest_metrics_hour(lake, metric_source(config), hour)
    derive(config, later)
    again = obs("--config", str(path), "report", "-o", str(html))
    path.write_text(path.read_text() + "reports:\n  period: 3d\n")
    changed = obs("--config", str(path), "report", "-o", str(html))

    assert again.stdout.splitlines()[0] == "Scorecard 2026-11-11 19:00 .. 2026-11-18 19:00 UTC"
    assert changed.stdout.splitlines()[0] == "Scorecard 2026-11-15 19:00 .. 2026-11-18 19:00 UTC"


def test_doctor_names_the_unreachable_source_and_exits_1(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{servers.free_port()}"
    path = write_config(
        sources={
            "metrics": "prometheus",
            "prometheus": {"url": url, "selectors": ["up"], "retries": 0},
        }
    )

    done = obs("--config", str(path), "doctor", env={"DAGSTER_HOME": str(tmp_path / "home")})

    assert done.returncode == 1
    failing = [line for line in done.stdout.splitlines() if "FAIL" in line]
    assert any("prometheus" in line and url in line for line in failing), done.stdout
    assert done.stdout.splitlines()[-1].endswith("checks failed")
