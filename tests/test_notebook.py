"""The polars notebook API returns what the catalog's views return, over compacted days, hourly
files and expired raw samples, locally and on S3."""

from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pytest

from obs_pipelines import datasets as registry
from obs_pipelines import notebook
from obs_pipelines.config import ObsConfig, parse_config
from obs_pipelines.errors import LakeError, ObsError
from obs_pipelines.lake import Lake
from obs_pipelines.lake.catalog import build_catalog, connect
from obs_pipelines.lake.checksum import Checksum, table_checksum
from obs_pipelines.lake.tiering import run_tiering
from obs_pipelines.windows import HOUR, TimeWindow
from tests.tiering_data import RETENTION, day, metric_hour, some_hours, tiered_config, write_hours

pytestmark = pytest.mark.integration  # writes, tiers and catalogs whole lakes, seconds per test

DAYS = [day("2026-03-30"), day("2026-03-31"), day("2026-04-01"), day("2026-04-02")]
HOURS = some_hours(DAYS)


def view_checksum(config: ObsConfig, name: str) -> Checksum:
    con = connect(config)
    try:
        return table_checksum(con.execute(f'SELECT * FROM "{name}"').to_arrow_table())
    finally:
        con.close()


def frame_checksum(frame: pl.LazyFrame) -> Checksum:
    return table_checksum(frame.collect().to_arrow())


def files_per_day(config: ObsConfig, dataset: str) -> dict[str, int]:
    """Data files per day partition of the dataset's table, as ``lake_partitions`` lists them."""
    con = connect(config)
    try:
        rows = con.execute(
            """SELECT regexp_extract("partition", 'dt=(.+)$', 1), count(*) FROM lake_partitions
               WHERE dataset = ? GROUP BY ALL""",
            [dataset],
        ).fetchall()
    finally:
        con.close()
    return dict(rows)


@pytest.fixture(scope="module")
def tiered(tmp_path_factory: pytest.TempPathFactory) -> ObsConfig:
    """A lake tiered twice: 03-30 to 04-01 compacted (03-30's raw samples expired, their
    rollups kept), 04-02 in hourly files."""
    config = tiered_config(tmp_path_factory.mktemp("notebook"))
    write_hours(Lake(config), HOURS)
    run_tiering(config, DAYS[0] + timedelta(days=2))
    run_tiering(config, DAYS[0] + timedelta(days=4, hours=12))
    build_catalog(config)
    return config


def test_every_dataset_matches_its_catalog_view_in_rows_and_checksum_across_tiers(
    tiered: ObsConfig,
) -> None:
    compacted = {"2026-03-30": 1, "2026-03-31": 1, "2026-04-01": 1, "2026-04-02": 3}
    assert files_per_day(tiered, "log_records") == compacted
    assert files_per_day(tiered, "metric_samples") == {
        d: n for d, n in compacted.items() if d != "2026-03-30"
    }
    assert files_per_day(tiered, "metric_rollups") == {d: 2 for d in list(compacted)[:3]}

    frames = notebook.datasets(tiered)

    assert list(frames) == list(registry.ALL)
    for name, frame in frames.items():
        expected = view_checksum(tiered, name)
        assert frame_checksum(frame) == expected, name
        assert frame.select(pl.len()).collect().item() == expected.rows, name
    written = {"metric_series", "metric_samples", "log_records", "alert_rules", "metric_rollups"}
    assert {n for n, f in frames.items() if f.select(pl.len()).collect().item()} == written


def test_compacted_samples_come_back_bit_exact_as_written(tiered: ObsConfig) -> None:
    warm_day = TimeWindow(DAYS[1], DAYS[2])
    hours = [h for h in HOURS if warm_day.start <= h.start < warm_day.end]
    expected = sum((table_checksum(metric_hour(h)[1]) for h in hours), Checksum(0, 0))

    samples = notebook.scan("metric_samples", tiered, start=DAYS[1], end="2026-04-01T00:00:00Z")

    exact = (
        samples.select("series_id", "ts", "value")  # the view's ``dt`` was never written
        .with_columns(pl.col("ts").dt.cast_time_unit("ms"))
        .collect()
        .to_arrow()
    )
    assert table_checksum(exact) == expected
    assert exact.num_rows == len(hours) * 12 * 240


def test_a_window_reads_only_its_rows(tiered: ObsConfig) -> None:
    start, end = DAYS[2] + 7 * HOUR, DAYS[2] + 8 * HOUR
    con = connect(tiered)
    try:
        expected = con.execute(
            "SELECT * FROM log_records WHERE ts >= ? AND ts < ?",
            [start.replace(tzinfo=None), end.replace(tzinfo=None)],
        ).to_arrow_table()
    finally:
        con.close()

    logs = notebook.scan("log_records", tiered, start=start, end=end).collect()

    assert logs.height == 50
    assert table_checksum(logs.to_arrow()) == table_checksum(expected)
    assert logs["ts"].min() >= start.replace(tzinfo=None)
    assert logs["ts"].max() < end.replace(tzinfo=None)


def test_frames_can_be_joined_with_each_other_and_themselves(tiered: ObsConfig) -> None:
    frames = notebook.datasets(tiered)
    samples, series = frames["metric_samples"], frames["metric_series"]
    con = connect(tiered)
    try:
        metrics_rows = con.execute("SELECT count(*) FROM metrics").fetchone()[0]
    finally:
        con.close()

    joined = samples.join(series, on="series_id").select(pl.len()).collect().item()
    first = samples.filter(pl.col("ts") < DAYS[2].replace(tzinfo=None)).select("series_id", "ts")
    self_joined = samples.join(first, on=["series_id", "ts"]).select(pl.len()).collect().item()

    assert joined == metrics_rows > 0
    assert self_joined == first.select(pl.len()).collect().item() > 0


def test_projection_and_head_return_only_what_was_asked(tiered: ObsConfig) -> None:
    head = notebook.scan("log_records", tiered).select("doc_id", "level").head(7).collect()

    assert head.columns == ["doc_id", "level"]
    assert head.height == 7
    assert head.schema == pl.Schema({"doc_id": pl.String, "level": pl.String})


def test_bad_names_and_windows_are_one_clear_line(tiered: ObsConfig, tmp_path: Path) -> None:
    with pytest.raises(
        ObsError, match=r"^no dataset 'metric_sample'; choose one of: metric_series"
    ):
        notebook.scan("metric_sample", tiered)
    with pytest.raises(ObsError, match=r"^start .* is not before end"):
        notebook.scan("log_records", tiered, start="2026-04-02", end="2026-04-01")
    with pytest.raises(ObsError, match=r"^end 'yesterday' is not a time; give an ISO 8601"):
        notebook.scan("log_records", tiered, end="yesterday")
    with pytest.raises(LakeError, match=r"run `obs catalog`"):
        notebook.datasets(tiered_config(tmp_path))


def test_a_dataset_without_rows_is_an_empty_frame_of_its_schema(tiered: ObsConfig) -> None:
    spans = notebook.scan("spans", tiered, start=DAYS[0], end=DAYS[-1]).collect()

    assert spans.height == 0
    assert spans.schema["start_ts"] == pl.Datetime("us")
    assert spans.schema["is_error"] == pl.Boolean
    assert spans.schema["http_status"] == pl.Int32
    series = notebook.scan("metric_series", tiered).collect()
    assert series.schema["series_id"] == pl.UInt64
    assert pa.types.is_map(series.to_arrow().schema.field("labels").type)


def test_a_lake_on_s3_reads_the_same_as_its_views(s3_lake: dict[str, Any]) -> None:
    config = parse_config({"lake": {**s3_lake, "delete_delay": "0s"}, "retention": RETENTION})
    write_hours(Lake(config), HOURS[:6])
    run_tiering(config, DAYS[0] + timedelta(days=2))
    build_catalog(config)
    assert files_per_day(config, "metric_samples") == {"2026-03-30": 1, "2026-03-31": 3}

    frames = notebook.datasets(config)

    for name in ("metric_samples", "metric_series", "log_records", "metric_rollups"):
        expected = view_checksum(config, name)
        assert expected.rows > 0, name
        assert frame_checksum(frames[name]) == expected, name
