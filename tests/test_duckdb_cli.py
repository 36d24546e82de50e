"""The `duckdb` shell the demo points analysts at (`.venv/bin/duckdb -readonly lake/obs.duckdb`):
installed by `make env` (the duckdb-cli dependency), the DuckDB release that writes the catalog,
and able to open a catalog read-only and read the lake through its views."""

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from obs_pipelines.config import load_config
from obs_pipelines.lake import Lake
from obs_pipelines.lake.catalog import build_catalog
from obs_pipelines.lake.ingest import ingest_metrics_hour
from obs_pipelines.sources import metric_source
from obs_pipelines.windows import TimeWindow, utc

pytestmark = pytest.mark.integration  # runs obs or duckdb in a subprocess: seconds per test

SHELL = Path(sys.executable).with_name("duckdb")
HOUR = TimeWindow(utc("2026-11-18T14:00:00Z"), utc("2026-11-18T15:00:00Z"))


def shell(*args: str) -> subprocess.CompletedProcess[str]:
    assert SHELL.exists(), f"{SHELL} is missing; run `make env` (it installs duckdb-cli)"
    return subprocess.run(
        [str(SHELL), *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_the_duckdb_shell_is_the_release_that_writes_the_catalog() -> None:
    done = shell("-csv", "-noheader", "-c", "SELECT version()")

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"v{duckdb.__version__}"


def test_the_duckdb_shell_opens_a_catalog_read_only_and_reads_the_lake(
    write_config: Callable[..., Path],
) -> None:
    config = load_config(write_config())
    ingest_metrics_hour(Lake(config), metric_source(config), HOUR)
    catalog = build_catalog(config)
    before = Path(catalog).read_bytes()

    partitions = shell(
        "-readonly", "-csv", str(catalog), "-c", "SELECT count(*) FROM lake_partitions"
    )
    samples = shell(
        "-readonly", "-csv", "-noheader", str(catalog), "-c", "SELECT count(*) FROM metric_samples"
    )
    written = shell("-readonly", str(catalog), "-c", "CREATE TABLE t AS SELECT 1")

    assert partitions.returncode == 0, partitions.stderr
    assert partitions.stdout.splitlines() == ["count_star()", "2"]  # series and samples
    assert samples.returncode == 0, samples.stderr
    assert int(samples.stdout) > 0
    assert written.returncode != 0 and "read-only" in written.stderr
    assert Path(catalog).read_bytes() == before
