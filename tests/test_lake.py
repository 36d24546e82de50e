"""The hot tier: a partition is replaced whole or not at all, locally and on S3."""

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from obs_pipelines.config import ObsConfig, parse_config
from obs_pipelines.lake import Lake
from obs_pipelines.lake.catalog import build_catalog, connect
from obs_pipelines.lake.paths import hot_file
from obs_pipelines.lake.writer import write_partition
from obs_pipelines.schemas import METRIC_SAMPLES
from obs_pipelines.windows import TimeWindow, utc

pytestmark = pytest.mark.integration  # writes, tiers and catalogs whole lakes, seconds per test

HOUR = TimeWindow(utc("2026-11-10T05:00:00Z"), utc("2026-11-10T06:00:00Z"))


def samples(n: int, value: float) -> pa.Table:
    start = HOUR.start_ms
    return pa.table(
        {
            "series_id": pa.array([i % 7 for i in range(n)], pa.uint64()),
            "ts": pa.array([start + i * 10 for i in range(n)], pa.int64()).cast(pa.timestamp("ms")),
            "value": pa.array([value] * n, pa.float64()),
        },
        schema=METRIC_SAMPLES,
    )


def failing_batches(table: pa.Table, fail_after: int) -> Iterator[pa.RecordBatch]:
    for i, batch in enumerate(table.to_batches(max_chunksize=100)):
        if i == fail_after:
            raise RuntimeError("source died mid-export")
        yield batch


def visible_rows(config: ObsConfig) -> list[tuple[Any, ...]]:
    build_catalog(config)
    return (
        connect(config)
        .execute("SELECT count(*), min(value), max(value) FROM metric_samples")
        .fetchall()
    )


@pytest.fixture
def local_config(tmp_path: Path) -> ObsConfig:
    return parse_config(
        {"lake": {"root": str(tmp_path / "lake"), "catalog": str(tmp_path / "obs.duckdb")}}
    )


@pytest.fixture
def s3_config(s3_lake: dict[str, Any]) -> ObsConfig:
    return parse_config({"lake": s3_lake})


@pytest.mark.parametrize("where", ["local_config", "s3_config"])
def test_a_rewrite_replaces_the_partition_and_never_appends(
    where: str, request: pytest.FixtureRequest
) -> None:
    config = request.getfixturevalue(where)
    lake = Lake(config)
    lake.write_hot("metric_samples", HOUR, samples(500, 1.0))

    lake.write_hot("metric_samples", HOUR, samples(300, 2.0))

    assert visible_rows(config) == [(300, 2.0, 2.0)]
    assert [p.key for p in lake.hot_partitions("metric_samples")] == [
        hot_file("metric_samples", HOUR)
    ]


@pytest.mark.parametrize("where", ["local_config", "s3_config"])
def test_a_failure_mid_write_leaves_the_previous_partition_intact(
    where: str, request: pytest.FixtureRequest
) -> None:
    config = request.getfixturevalue(where)
    lake = Lake(config)
    lake.write_hot("metric_samples", HOUR, samples(500, 1.0))
    replacement = samples(1000, 2.0)

    with pytest.raises(RuntimeError, match="mid-export"):
        write_partition(
            lake.storage,
            hot_file("metric_samples", HOUR),
            METRIC_SAMPLES,
            failing_batches(replacement, 4),
        )

    assert visible_rows(config) == [(500, 1.0, 1.0)]
    assert [p.key for p in lake.hot_partitions("metric_samples")] == [
        hot_file("metric_samples", HOUR)
    ]


def test_a_process_killed_mid_write_leaves_no_file_readers_can_see(
    local_config: ObsConfig, tmp_path: Path
) -> None:
    lake = Lake(local_config)
    lake.write_hot("metric_samples", HOUR, samples(500, 1.0))
    script = textwrap.dedent(
        f"""
        import os, pyarrow as pa
        from obs_pipelines.lake.storage import LocalStorage
        from obs_pipelines.lake.writer import write_partition
        from obs_pipelines.schemas import METRIC_SAMPLES
        def batches():
            for i in range(50):
                yield pa.RecordBatch.from_pydict(
                    {{"series_id": pa.array([i], pa.uint64()), "ts": pa.array([{HOUR.start_ms} + i], pa.timestamp("ms")),
                      "value": [9.0]}}, schema=METRIC_SAMPLES)
                if i == 25:
                    os._exit(9)  # the process dies with the staged file half written
        write_partition(LocalStorage({local_config.lake_root!r}), {hot_file("metric_samples", HOUR)!r}, METRIC_SAMPLES, batches())
        """
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path)

    assert done.returncode == 9
    partition = Path(local_config.lake_root) / hot_file("metric_samples", HOUR)
    leftovers = [p.name for p in partition.parent.iterdir() if p.name != "part-00000.parquet"]
    assert (
        len(leftovers) == 1
        and leftovers[0].startswith(".part-00000.parquet.")
        and leftovers[0].endswith(".tmp")
    )
    assert visible_rows(local_config) == [(500, 1.0, 1.0)]
    assert duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{local_config.lake_root}/**/*.parquet')"
    ).fetchone() == (500,)


def test_the_catalog_stays_open_for_an_analyst_while_it_is_rebuilt(local_config: ObsConfig) -> None:
    lake = Lake(local_config)
    lake.write_hot("metric_samples", HOUR, samples(100, 1.0))
    build_catalog(local_config)
    analyst = connect(local_config, read_only=True)
    next_hour = TimeWindow(HOUR.end, HOUR.end.replace(hour=7))

    lake.write_hot(
        "metric_samples",
        next_hour,
        samples(50, 3.0).set_column(
            1,
            "ts",
            pa.array([next_hour.start_ms + i for i in range(50)], pa.int64()).cast(
                pa.timestamp("ms")
            ),
        ),
    )
    build_catalog(local_config)

    assert analyst.execute("SELECT count(*) FROM metric_samples").fetchone() == (150,)
    assert connect(local_config).execute(
        "SELECT count(*), max(value) FROM metric_samples"
    ).fetchone() == (150, 3.0)


def test_an_empty_lake_still_has_every_view(local_config: ObsConfig) -> None:
    build_catalog(local_config)
    con = connect(local_config)
    assert con.execute("SELECT count(*) FROM metrics").fetchone() == (0,)
    columns = [row[0] for row in con.execute("DESCRIBE metric_series").fetchall()]
    assert columns[:6] == ["series_id", "metric", "labels", "service", "job", "instance"]


def test_an_unreachable_s3_endpoint_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from obs_pipelines.errors import LakeError
    from tests.servers import free_port

    monkeypatch.setenv("OBS_TEST_S3_KEY", "k")
    monkeypatch.setenv("OBS_TEST_S3_SECRET", "s")
    endpoint = f"http://127.0.0.1:{free_port()}"
    config = parse_config(
        {
            "lake": {
                "root": "s3://nowhere/obs",
                "s3": {
                    "endpoint_url": endpoint,
                    "access_key_id_env": "OBS_TEST_S3_KEY",
                    "secret_access_key_env": "OBS_TEST_S3_SECRET",
                },
            }
        }
    )
    with pytest.raises(LakeError) as error:
        Lake(config).write_hot("metric_samples", HOUR, samples(10, 1.0))
    message = str(error.value)
    assert message.startswith(
        "could not upload s3://nowhere/obs/hot/metric_samples/dt=2026-11-10/hour=05/part-00000.parquet: "
    )
    assert message.endswith("; check lake.s3.endpoint_url and the network")
    assert "\n" not in message
