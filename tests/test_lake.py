"""Hourly writes to the lake's Delta tables: an hour is replaced whole or not at all, locally and
on S3; the catalog stays usable while it is rebuilt; storage that cannot be reached is one line.
(A writer killed at any moment: tests/test_delta_lake.py.)"""

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from obs_pipelines.config import ObsConfig, parse_config
from obs_pipelines.errors import LakeError
from obs_pipelines.lake import Lake, delta
from obs_pipelines.lake.catalog import build_catalog, connect
from obs_pipelines.schemas import METRIC_SAMPLES
from obs_pipelines.windows import TimeWindow, utc

pytestmark = pytest.mark.integration  # writes and catalogs whole lakes, seconds per test

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


def visible_rows(config: ObsConfig) -> list[tuple[Any, ...]]:
    build_catalog(config)
    con = connect(config)
    try:
        return con.execute("SELECT count(*), min(value), max(value) FROM metric_samples").fetchall()
    finally:
        con.close()


def data_files(config: ObsConfig) -> set[str]:
    """Every Parquet file in the metric_samples table's folder, listed by the log or not."""
    fs = delta.table_filesystem(config, "metric_samples")
    return {
        f.path
        for f in fs.get_file_info(pafs.FileSelector("", recursive=True))
        if f.path.endswith(".parquet") and not f.path.startswith("_delta_log/")
    }


def logged_files(config: ObsConfig) -> dict[str, int]:
    """The files the log references now, with their row counts."""
    table = Lake(config).tables.open("metric_samples")
    actions = delta.add_actions(table)
    return dict(zip(actions["path"].to_pylist(), actions["num_records"].to_pylist(), strict=True))


@pytest.fixture
def local_config(tmp_path: Path) -> ObsConfig:
    return parse_config(
        {"lake": {"root": str(tmp_path / "lake"), "catalog": str(tmp_path / "obs.duckdb")}}
    )


@pytest.fixture
def s3_config(s3_lake: dict[str, Any]) -> ObsConfig:
    return parse_config({"lake": s3_lake})


@pytest.mark.parametrize("where", ["local_config", "s3_config"])
def test_a_rewrite_replaces_the_hour_and_never_appends(
    where: str, request: pytest.FixtureRequest
) -> None:
    config = request.getfixturevalue(where)
    lake = Lake(config)
    lake.write_hot("metric_samples", HOUR, samples(500, 1.0))

    lake.write_hot("metric_samples", HOUR, samples(300, 2.0))

    assert visible_rows(config) == [(300, 2.0, 2.0)]
    assert list(logged_files(config).values()) == [300]
    assert [p.window for p in lake.hot_partitions("metric_samples")] == [HOUR]
    assert lake.read_hot("metric_samples", HOUR).num_rows == 300


@pytest.mark.parametrize("fails", ["file", "commit"])
@pytest.mark.parametrize("where", ["local_config", "s3_config"])
def test_a_failure_mid_write_leaves_the_previous_hour_intact(
    where: str, fails: str, request: pytest.FixtureRequest
) -> None:
    config = request.getfixturevalue(where)
    Lake(config).write_hot("metric_samples", HOUR, samples(500, 1.0))
    before = logged_files(config)

    write_row_group = pq.ParquetWriter.write_table

    def half_written(writer: pq.ParquetWriter, table: pa.Table, *args: Any, **kw: Any) -> None:
        write_row_group(writer, table.slice(0, table.num_rows // 2), *args, **kw)
        raise OSError("No space left on device")  # half the rows out, then the disk is full

    def refused(*_: Any, **__: Any) -> None:
        raise OSError("connection reset by peer")

    with pytest.MonkeyPatch.context() as patch, pytest.raises(LakeError) as error:
        if fails == "file":  # the storage gives out with the new file half written
            patch.setattr(pq.ParquetWriter, "write_table", half_written)
        else:  # the file is written, the commit that would publish it fails
            patch.setattr(DeltaTable, "create_write_transaction", refused)
        Lake(config).write_hot("metric_samples", HOUR, samples(1000, 2.0))

    message = str(error.value)
    assert message.startswith("could not ") and "\n" not in message
    assert ("No space left" if fails == "file" else "connection reset") in message
    assert visible_rows(config) == [(500, 1.0, 1.0)]
    assert logged_files(config) == before
    assert Lake(config).read_hot("metric_samples", HOUR).num_rows == 500
    if fails == "commit":  # the unpublished file is deleted at once
        assert data_files(config) == set(before)


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
    analyst.close()
    con = connect(local_config)
    assert con.execute("SELECT count(*), max(value) FROM metric_samples").fetchone() == (150, 3.0)
    con.close()


def test_an_empty_lake_still_has_every_view(local_config: ObsConfig) -> None:
    from obs_pipelines import datasets as registry

    build_catalog(local_config)
    con = connect(local_config)
    assert con.execute("SELECT count(*) FROM metrics").fetchone() == (0,)
    for name in registry.ALL:
        assert con.execute(f'SELECT count(*) FROM "{name}"').fetchone() == (0,), name
    columns = [row[0] for row in con.execute("DESCRIBE metric_series").fetchall()]
    assert columns[:6] == ["series_id", "metric", "labels", "service", "job", "instance"]
    con.close()


def test_an_unreachable_s3_endpoint_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.servers import free_port

    monkeypatch.setenv("OBS_TEST_S3_KEY", "AKIA-OBS-TEST-KEY")
    monkeypatch.setenv("OBS_TEST_S3_SECRET", "obs-test-secret-value")
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
    assert message.startswith("could not open metric_samples under s3://nowhere/obs/delta: ")
    assert "Connection refused" in message
    assert "check lake.root, lake.s3 and the network" in message
    assert "\n" not in message
    assert "obs-test-secret-value" not in message and "AKIA-OBS-TEST-KEY" not in message
