"""The lake under damage and with age: sub-millisecond times through every tier path, stray and
damaged files, deleted files, a catalog held open across tiering, and what a killed catalog
build leaves."""

import os
import shutil
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from obs_pipelines.config import ObsConfig, parse_config
from obs_pipelines.datasets import SCHEMAS
from obs_pipelines.errors import LakeError
from obs_pipelines.lake import Lake
from obs_pipelines.lake.catalog import build_catalog, connect
from obs_pipelines.lake.tiering import Move, run_tiering
from obs_pipelines.operations.doctor import run_checks
from obs_pipelines.operations.freshness import lake_freshness
from obs_pipelines.sources import metric_source, table_source
from obs_pipelines.windows import TimeWindow
from tests.tiering_data import day, some_hours, tiered_config

pytestmark = pytest.mark.integration  # builds catalogs with every report: seconds per test

AGES = {"hot": "1d", "warm": "3d", "cold": "20d"}
RETENTION = {
    "metrics": AGES,
    "logs": AGES,
    "traces": AGES,
    "alerts": AGES,
    "metric_resolutions": {"5m": "20d", "1h": "20d"},
}
DAYS = [day("2026-03-30"), day("2026-03-31")]
TABLE_DATASETS = ("log_records", "spans", "alert_fragments", "alert_rules", "alertmanager_alerts")
VIEWS = ("metric_series", "metric_samples", *TABLE_DATASETS)
LONG_AGO = time.time() - 3 * 3600


def with_sub_millisecond_logs(table: pa.Table) -> pa.Table:
    """Simulated logs fall on whole milliseconds; move each by 1..999 µs (within its hour)."""
    offsets = pa.array([(i * 37) % 999 + 1 for i in range(table.num_rows)], pa.int64())
    shifted = pc.add(table["ts"].cast(pa.int64()), offsets).cast(pa.timestamp("us"))
    return table.set_column(table.schema.get_field_index("ts"), "ts", shifted)


def ingest(config: ObsConfig, hours: list[TimeWindow]) -> None:
    """Every dataset of ``hours`` from the simulator, written as ingest writes it."""
    lake = Lake(config)
    metrics = metric_source(config)
    for hour in hours:
        chunks = list(metrics.read_metrics(hour))
        series = pa.concat_tables([c.series for c in chunks])
        samples = pa.concat_tables([c.samples for c in chunks])
        lake.write_hot("metric_series", hour, _unique(series))
        lake.write_hot("metric_samples", hour, samples)
        for dataset in TABLE_DATASETS:
            source = table_source(config, dataset)
            assert source is not None
            parts = list(source.read(hour))
            table = pa.concat_tables(parts) if parts else SCHEMAS[dataset].empty_table()
            if dataset == "log_records":
                table = with_sub_millisecond_logs(table)
            lake.write_hot(dataset, hour, table)


def _unique(series: pa.Table) -> pa.Table:
    ids = series.column("series_id").to_pylist()
    first = sorted({sid: i for i, sid in reversed(list(enumerate(ids)))}.values())
    return series.take(pa.array(first))


def view_contents(config: ObsConfig, con: Any = None) -> dict[str, tuple[int, int]]:
    """Row count and an order-independent content hash of every dataset view."""
    own = con is None
    if own:
        build_catalog(config)
        con = connect(config)
    try:
        return {
            view: con.execute(
                f"SELECT count(*), coalesce(sum(hash(t))::HUGEINT, 0) FROM {view} t"
            ).fetchone()
            for view in VIEWS
        }
    finally:
        if own:
            con.close()


def without_raw(contents: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
    return {k: v for k, v in contents.items() if k != "metric_samples"}


def test_every_dataset_takes_every_tier_path_with_sub_millisecond_times(tmp_path: Path) -> None:
    config = tiered_config(tmp_path, RETENTION)
    hours = some_hours(DAYS, (0, 7, 23))
    ingest(config, hours)
    spans = Lake(config).read_hot("spans", hours[0])
    assert spans is not None
    micros = pc.cast(spans["start_ts"], pa.int64())
    assert pc.any(pc.not_equal(pc.multiply(pc.divide(micros, 1000), 1000), micros)).as_py()
    original = view_contents(config)
    assert all(original[d][0] > 0 for d in ("metric_samples", "log_records", "spans"))

    def crash_after_publish(step: str, move: Move) -> None:
        if step == "publish":
            raise RuntimeError("killed between publish and delete")

    # Hot -> warm, killed between publishing each day and deleting its hours.
    with pytest.raises(RuntimeError):
        run_tiering(config, DAYS[0] + timedelta(days=2, hours=1), hook=crash_after_publish)
    assert view_contents(config) == original
    done = run_tiering(config, DAYS[0] + timedelta(days=2, hours=1))
    assert done.problems == []
    assert view_contents(config) == original

    # An hour of a day already in warm is ingested again: unchanged, it is found held by the
    # warm day and deleted; changed, the day is compacted again with it.
    ingest(config, hours[:1])
    same = run_tiering(config, DAYS[0] + timedelta(days=2, hours=1))
    assert same.problems == [] and same.moves == [] and same.deletions
    assert view_contents(config) == original
    spans = Lake(config).read_file(Lake(config).files("spans", ("warm",))[0])
    in_hour = pc.less(spans["start_ts"], pa.scalar(hours[1].start, pa.timestamp("us")))
    Lake(config).write_hot("spans", hours[0], spans.filter(in_hour).slice(1))
    late = run_tiering(config, DAYS[0] + timedelta(days=2, hours=1))
    assert late.problems == [] and {m.reason for m in late.moves} == {"late"}
    assert view_contents(config)["spans"][0] == original["spans"][0] - 1
    ingest(config, hours[:1])
    run_tiering(config, DAYS[0] + timedelta(days=2, hours=1))
    assert view_contents(config) == original

    # The first day reaches cold, then the second day joins the same cold month (raw samples
    # leave with warm: their rollups are the metrics from then on).
    run_tiering(config, DAYS[0] + timedelta(days=4))
    assert without_raw(view_contents(config)) == without_raw(original)
    joined = run_tiering(config, DAYS[1] + timedelta(days=4))
    assert joined.problems == []
    assert any(m.tier == "cold" and "cold" in m.from_tiers for m in joined.moves)
    assert without_raw(view_contents(config)) == without_raw(original)


def test_with_a_delete_delay_the_next_pass_deletes_what_a_move_replaced(tmp_path: Path) -> None:
    config = tiered_config(tmp_path, RETENTION, delete_delay="1ms")
    ingest(config, some_hours(DAYS[:1], (3, 21)))
    original = view_contents(config)

    first = run_tiering(config, DAYS[0] + timedelta(days=2, hours=1))
    time.sleep(0.01)
    second = run_tiering(config, DAYS[0] + timedelta(days=2, hours=1))

    assert first.problems == [] and second.problems == []
    deleted = {d.dataset for d in first.deletions + second.deletions if d.reason == "superseded"}
    assert {"spans", "log_records", "metric_samples"} <= deleted
    assert Lake(config).files("spans", ("hot",)) == []
    assert view_contents(config) == original


def test_stray_and_hidden_parquet_files_are_never_read_or_compacted(tmp_path: Path) -> None:
    config = tiered_config(tmp_path, RETENTION)
    hours = some_hours(DAYS[:1], (2, 5))
    ingest(config, hours)
    original = view_contents(config)
    partition = Path(config.lake_root) / "hot/log_records/dt=2026-03-30/hour=02"
    published = partition / "part-00000.parquet"
    strays = [
        partition / "part-00001.parquet",
        partition / ".part-00000.parquet",
        partition / "copy" / "part-00000.parquet",
    ]
    for stray in strays:
        stray.parent.mkdir(exist_ok=True)
        shutil.copy(published, stray)

    assert view_contents(config) == original
    assert len(Lake(config).files("log_records")) == 2
    run_tiering(config, DAYS[0] + timedelta(days=2, hours=1))
    assert view_contents(config) == original

    for stray in strays:
        if stray.exists():
            os.utime(stray, (LONG_AGO, LONG_AGO))
    swept = run_tiering(config, DAYS[0] + timedelta(days=2, hours=1))
    quarantined = Path(config.lake_root) / "_quarantine/stray"
    assert len([p for p in quarantined.rglob("*.parquet")]) >= 2
    assert any("was not published by the lake" in note for note in swept.notes)
    assert view_contents(config) == original


def hot_file(config: ObsConfig, dataset: str, hour: TimeWindow) -> Path:
    return (
        Path(config.lake_root)
        / f"hot/{dataset}/dt={hour.start:%Y-%m-%d}/hour={hour.start:%H}/part-00000.parquet"
    )


def rows_without(config: ObsConfig, dataset: str, hour: TimeWindow) -> int:
    con = connect(config)
    try:
        column = {"log_records": "ts", "spans": "start_ts"}[dataset]
        return con.execute(
            f"SELECT count(*) FROM {dataset} WHERE NOT ({column} >= ? AND {column} < ?)",
            [hour.start.replace(tzinfo=None), hour.end.replace(tzinfo=None)],
        ).fetchone()[0]
    finally:
        con.close()


def test_a_truncated_file_is_quarantined_named_and_the_rest_stays_queryable(tmp_path: Path) -> None:
    config = tiered_config(tmp_path, RETENTION)
    hours = some_hours(DAYS[:1], (1, 2, 3))
    ingest(config, hours)
    build_catalog(config)
    expected = rows_without(config, "log_records", hours[1])
    damaged = hot_file(config, "log_records", hours[1])
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])
    os.utime(damaged, (LONG_AGO, LONG_AGO))

    results = run_checks(config, dagster_home=str(tmp_path))
    lines = [r.line() for r in results if r.check.startswith("lake.")]

    failed = [line for line in lines if line.startswith("FAIL") and "lake.damaged" in line]
    assert len(failed) == 1
    assert "log_records hot dt=2026-03-30/hour=02" in failed[0]
    assert "obs materialize --from 2026-03-30T02:00Z --to 2026-03-30T03:00Z" in failed[0]
    assert not damaged.exists()
    assert (
        Path(config.lake_root)
        / "_quarantine/damaged/hot/log_records/dt=2026-03-30/hour=02/part-00000.parquet"
    ).exists()
    build_catalog(config)
    assert rows_without(config, "log_records", hours[1]) == expected
    con = connect(config)
    assert con.execute("SELECT count(*) FROM log_records").fetchone()[0] == expected
    con.close()
    assert [f.start for f in Lake(config).files("log_records")] == [hours[0].start, hours[2].start]
    assert run_tiering(config, DAYS[0] + timedelta(days=2, hours=1)).problems == []


def test_a_corrupt_page_is_caught_by_the_checksum_and_tiering_survives_it(tmp_path: Path) -> None:
    config = tiered_config(tmp_path, RETENTION)
    hours = some_hours(DAYS[:1], (1, 2))
    ingest(config, hours)
    build_catalog(config)
    expected = rows_without(config, "spans", hours[0])
    corrupt = hot_file(config, "spans", hours[0])
    data = bytearray(corrupt.read_bytes())
    for i in range(100, 400):
        data[i] ^= 0x5A
    corrupt.write_bytes(bytes(data))

    tiering = run_tiering(config, DAYS[0] + timedelta(days=2, hours=1))

    assert len(tiering.problems) == 1
    assert "spans hot dt=2026-03-30/hour=01" in tiering.problems[0]
    assert "obs materialize --from 2026-03-30T01:00Z" in tiering.problems[0]
    assert {m.dataset for m in tiering.moves} >= {"log_records", "metric_samples", "spans"}
    assert rows_without(config, "spans", hours[0]) == expected

    ingest(config, hours[1:])
    again = hot_file(config, "log_records", hours[1])
    data = bytearray(again.read_bytes())
    data[len(data) // 2] ^= 0xFF
    again.write_bytes(bytes(data))
    results = run_checks(config, dagster_home=str(tmp_path))
    assert any(
        not r.ok and "checksum" in r.detail and "dt=2026-03-30/hour=02" in r.detail for r in results
    )
    assert not again.exists()


def test_a_deleted_file_is_reported_with_its_fix_and_becomes_a_gap(tmp_path: Path) -> None:
    config = tiered_config(tmp_path, RETENTION)
    hours = some_hours(DAYS[:1], (4, 5))
    ingest(config, hours)
    hot_file(config, "spans", hours[1]).unlink()

    results = run_checks(config, dagster_home=str(tmp_path))

    missing = [r for r in results if r.check == "lake.missing"]
    assert len(missing) == 1 and not missing[0].ok
    assert "spans hot dt=2026-03-30/hour=05" in missing[0].detail
    assert "published with" in missing[0].detail and "the file is gone" in missing[0].detail
    assert "obs materialize --from 2026-03-30T05:00Z --to 2026-03-30T06:00Z" in missing[0].detail
    assert [p.window for p in Lake(config).hot_partitions("spans")] == [hours[0]]
    sensed = lake_freshness(
        Lake(config),
        {"spans": timedelta(minutes=30)},
        hours[1].end + timedelta(hours=1),
        earliest=hours[0].start,
    )
    assert hours[1] in sensed[0].missing  # the freshness sensor asks for the hour again

    ingest(config, hours[1:])
    assert not [
        r for r in run_checks(config, dagster_home=str(tmp_path)) if r.check == "lake.missing"
    ]


def test_a_catalog_held_open_keeps_every_row_across_every_tiering_run(tmp_path: Path) -> None:
    config = tiered_config(tmp_path, RETENTION)
    ingest(config, some_hours(DAYS, (0, 12, 23)))
    original = view_contents(config)
    con = connect(config)  # built while everything was hot

    for now in (
        DAYS[0] + timedelta(days=2, hours=1),
        DAYS[1] + timedelta(days=2, hours=1),
        DAYS[0] + timedelta(days=4),
        DAYS[1] + timedelta(days=4),
    ):
        run_tiering(config, now)
        assert without_raw(view_contents(config, con)) == without_raw(original)
    con.close()


def test_a_lake_written_before_the_inventory_is_adopted_as_it_is(tmp_path: Path) -> None:
    config = tiered_config(tmp_path, RETENTION)
    ingest(config, some_hours(DAYS[:1], (6, 7)))
    original = view_contents(config)
    shutil.rmtree(Path(config.lake_root) / "_inventory")

    assert len(Lake(config).files("log_records")) == 2  # read as before until adopted
    assert view_contents(config) == original
    markers = (Path(config.lake_root) / "_inventory/hot/log_records").rglob("*")
    assert len([m for m in markers if m.is_file()]) == 2


def test_what_a_killed_catalog_build_left_is_swept(tmp_path: Path) -> None:
    config = tiered_config(tmp_path, RETENTION)
    ingest(config, some_hours(DAYS[:1], (1,)))
    catalog = Path(config.catalog_path)
    old = [catalog.with_name(f".{catalog.name}.{uuid.uuid4().hex}.tmp{s}") for s in ("", ".wal")]
    young = catalog.with_name(f".{catalog.name}.{uuid.uuid4().hex}.tmp")
    for leftover in [*old, young]:
        leftover.write_bytes(b"partial")
    for leftover in old:
        os.utime(leftover, (LONG_AGO, LONG_AGO))

    build_catalog(config)

    assert [p.exists() for p in old] == [False, False]
    assert young.exists()


def test_a_catalog_of_a_lake_that_moved_says_to_rebuild_it(tmp_path: Path) -> None:
    config = tiered_config(tmp_path, RETENTION)
    ingest(config, some_hours(DAYS[:1], (1,)))
    build_catalog(config)
    moved_root = tmp_path / "restored"
    shutil.copytree(config.lake_root, moved_root)
    moved = parse_config(
        {
            "lake": {"root": str(moved_root), "catalog": config.catalog_path},
            "retention": RETENTION,
        }
    )

    with pytest.raises(LakeError, match=r"reads the lake at .*; run `obs catalog`"):
        connect(moved)
    doctor = [r for r in run_checks(moved, dagster_home=str(tmp_path)) if r.check == "catalog"]
    assert not doctor[0].ok and "obs catalog" in doctor[0].line()
    build_catalog(moved)
    con = connect(moved)
    assert con.execute("SELECT count(*) FROM log_records").fetchone()[0] > 0
    con.close()
