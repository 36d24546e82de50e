"""The catalog on Delta tables: every view with the registry's columns and types then ``dt``,
the rows of the legacy lake fixture after ``obs lake migrate`` (tests/data/legacy_lake.json,
read by the last file-layout catalog), ``lake_partitions`` and ``lake_partition_sources`` from the tables' logs, one-day queries that
read one day's files, locally and on S3."""

import json
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
import yaml

from obs_pipelines import datasets as registry
from obs_pipelines.config import ObsConfig, load_config
from obs_pipelines.lake import Lake, delta
from obs_pipelines.lake.catalog import build_catalog, connect, lake_connection
from obs_pipelines.lake.checksum import Checksum, table_checksum
from obs_pipelines.lake.delta_catalog import tier_sql
from obs_pipelines.lake.migrate import migrate
from obs_pipelines.lake.tiering import run_tiering
from obs_pipelines.windows import TimeWindow, utc
from tests import legacy_fixture
from tests.test_reports_simulated import PERIOD, REPO, STRETCHES, simulate
from tests.tiering_data import log_hour, tiered_config

pytestmark = pytest.mark.integration  # migrates, simulates and catalogs whole lakes

SIMULATED_HOURS = sum(len(list(TimeWindow(utc(a), utc(b)).hours())) for a, b in STRETCHES)


def checksum(con: duckdb.DuckDBPyConnection, relation: str, columns: list[str]) -> Checksum:
    listed = ", ".join(f'"{c}"' for c in columns)
    return table_checksum(con.execute(f"SELECT {listed} FROM {relation}").to_arrow_table())


def legacy_checksum(con: duckdb.DuckDBPyConnection, name: str) -> Checksum:
    """The view's checksum over the columns the ground truth was taken over."""
    return checksum(con, f'"{name}"', list(delta.layout(name).columns))


def described(con: duckdb.DuckDBPyConnection, relation: str) -> list[tuple[str, str]]:
    return [(name, kind) for name, kind, *_ in con.execute(f'DESCRIBE "{relation}"').fetchall()]


def registry_columns(name: str) -> list[tuple[str, str]]:
    """The dataset's registry columns as DuckDB types (timestamps: microsecond TIMESTAMP)."""
    schema = registry.DATASETS[name].schema
    fields = [
        f.with_type(pa.timestamp("us")) if pa.types.is_timestamp(f.type) else f for f in schema
    ]
    con = duckdb.connect()
    con.register("empty", pa.schema(fields).empty_table())
    return described(con, "empty")


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> ObsConfig:
    """The legacy lake fixture migrated to Delta tables, its catalog built."""
    root = tmp_path_factory.mktemp("delta-catalog")
    legacy_fixture.extract(root)
    config = tiered_config(root)
    migrate(config)
    build_catalog(config)
    return config


def test_every_dataset_view_has_the_registry_columns_then_dt_and_the_legacy_lakes_rows(
    migrated: ObsConfig,
) -> None:
    con, engine = connect(migrated), lake_connection(migrated)
    try:
        for name in registry.ALL:
            extra = (
                [("first_seen_hour", "TIMESTAMP"), ("last_seen_hour", "TIMESTAMP")]
                if name == "metric_series"
                else [("dt", "VARCHAR")]
            )
            assert described(con, name) == registry_columns(name) + extra, name
            assert legacy_checksum(con, name) == legacy_fixture.expected()[name], name
            assert legacy_checksum(engine, name) == legacy_fixture.expected()[name], name
        ids = [i for (i,) in con.execute("SELECT series_id FROM metric_series").fetchall()]
        assert max(ids) >= 1 << 63  # unsigned ids with the top bit set come back unsigned
        assert con.execute(
            "SELECT count(*) FROM metric_samples WHERE dt <> strftime(ts, '%Y-%m-%d')"
        ).fetchone() == (0,)
        # `metrics` joins every sample to its series
        assert con.execute("SELECT count(*) FROM metrics").fetchone() == (
            legacy_fixture.expected()["metric_samples"].rows,
        )
    finally:
        con.close()
        engine.close()


def test_lake_partitions_lists_the_logs_files_with_the_rows_the_tables_hold(
    migrated: ObsConfig,
) -> None:
    con = connect(migrated)
    try:
        for name in registry.ALL:
            listed = con.execute(
                """SELECT sum(row_count), list(DISTINCT day ORDER BY day)
                   FROM (SELECT row_count, regexp_extract("partition", 'dt=(.+)$', 1) AS day
                         FROM lake_partitions WHERE dataset = ?)""",
                [name],
            ).fetchone()
            held = con.execute(
                "SELECT nullif(count(*), 0), list(DISTINCT dt ORDER BY dt) "
                f"FROM {delta.scan(migrated, name)}"
            ).fetchone()
            assert listed == held, name
            if name != "metric_series":  # its view collapses the table's rows per series
                assert listed is not None and listed[0] == (
                    legacy_fixture.expected()[name].rows or None
                ), name
        rollups = con.execute(
            """SELECT DISTINCT "partition" FROM lake_partitions
               WHERE dataset = 'metric_rollups' AND resolution = '5m' ORDER BY 1"""
        ).fetchall()
        days = con.execute(
            "SELECT DISTINCT strftime(ts, '%Y-%m-%d') FROM metric_rollups ORDER BY 1"
        ).fetchall()
        assert rollups == [(f"resolution=5m/dt={d}",) for (d,) in days] and len(days) > 1
        listed_files = con.execute(
            """SELECT dataset, "partition", file, bytes, span_end - span_start, tier,
                      "current", archived, storage_class FROM lake_partitions"""
        ).fetchall()
    finally:
        con.close()
    assert {d for d, *_ in listed_files} == {
        n for n in registry.ALL if legacy_fixture.expected()[n].rows
    }
    for dataset, partition, file, size, span, tier, *flags in listed_files:
        assert file.startswith(f"{delta.table_uri(migrated, dataset)}/{partition}/part-")
        assert Path(file).stat().st_size == size
        assert span == timedelta(days=1)
        assert flags == [True, False, None]  # current, never archived, class unknown to the log
        # every file was written moments ago: the first tier of its dataset's retention
        assert tier == ("warm" if dataset == "metric_rollups" else "hot"), dataset


def test_tier_is_the_age_class_of_the_datasets_retention(tmp_path: Path) -> None:
    config = tiered_config(tmp_path)
    day = 86_400_000_000

    def tier(dataset: str, resolution: str | None, age_days: float) -> str:
        age = str(int(age_days * day))
        sql = tier_sql(config, "age", dataset="ds", resolution="res")
        row = duckdb.execute(
            f"SELECT {sql} FROM (SELECT ?::VARCHAR AS ds, ?::VARCHAR AS res, {age} AS age)",
            [dataset, resolution],
        ).fetchone()
        assert row is not None
        return row[0]

    # RETENTION: hot 1 day, warm until 3, cold until 20; raw samples only hot and warm
    assert [tier("log_records", None, a) for a in (0, 0.99, 1, 2.9, 3, 19, 25)] == (
        ["hot"] * 2 + ["warm"] * 2 + ["cold"] * 3
    )
    assert [tier("metric_samples", None, a) for a in (0.5, 2, 5)] == ["hot", "warm", "warm"]
    assert [tier("metric_rollups", "5m", a) for a in (0, 2, 4)] == ["warm", "warm", "cold"]
    assert tier("spans", None, 40) == "hot"  # traces keep one tier (by default): hot at any age


def scanned_files(con: duckdb.DuckDBPyConnection, sql: str, profile: Path) -> tuple[str, str]:
    """("Scanning Files", "Total Files Read") of the query's Delta scan, from DuckDB's profile."""
    (scan,) = delta_scans(con, sql, profile)
    return scan


def delta_scans(con: duckdb.DuckDBPyConnection, sql: str, profile: Path) -> list[tuple[str, str]]:
    """("Scanning Files", "Total Files Read") of each Delta scan of the query, in plan order."""
    con.execute("PRAGMA enable_profiling = 'json'")
    con.execute(f"PRAGMA profiling_output = '{profile}'")
    con.execute(sql).fetchall()
    con.execute("PRAGMA disable_profiling")

    def scans(node: dict[str, Any]) -> list[dict[str, Any]]:
        found = [node["extra_info"]] if "Scanning Files" in node.get("extra_info", {}) else []
        return found + [s for child in node.get("children", []) for s in scans(child)]

    return [
        (info["Scanning Files"], info["Total Files Read"])
        for info in scans(json.loads(profile.read_text()))
    ]


def test_a_one_day_query_on_dt_reads_only_that_days_files(
    migrated: ObsConfig, tmp_path: Path
) -> None:
    con = connect(migrated)
    try:
        day = "2026-03-31"
        sql = f"SELECT count(*), min(ts), max(ts) FROM metric_samples WHERE dt = '{day}'"
        total = con.execute(
            "SELECT count(*) FROM lake_partitions WHERE dataset = 'metric_samples'"
        ).fetchone()
        one = con.execute(
            "SELECT count(*) FROM lake_partitions WHERE dataset = 'metric_samples' "
            'AND "partition" = ?',
            [f"dt={day}"],
        ).fetchone()
        assert total is not None and one is not None and total[0] > one[0] > 0
        profile = tmp_path / "profile.json"
        assert scanned_files(con, sql, profile) == (
            f"{one[0]}/{total[0]}",
            str(one[0]),
        )
        by_time = con.execute(
            f"SELECT count(*), min(ts), max(ts) FROM metric_samples "
            f"WHERE ts >= '{day}' AND ts < TIMESTAMP '{day}' + INTERVAL 1 DAY"
        ).fetchone()
        assert con.execute(sql).fetchone() == by_time and by_time[0] > 0
        # `metrics` carries the sample's dt: a day of it reads that day's samples only
        joined = f"SELECT count(*), min(ts), max(ts) FROM metrics WHERE dt = '{day}'"
        assert f"{one[0]}/{total[0]}" in [read for read, _ in delta_scans(con, joined, profile)]
        assert con.execute(joined).fetchone() == by_time
    finally:
        con.close()


def test_the_build_reads_the_logs_only_never_a_data_file(
    migrated: ObsConfig, tmp_path: Path
) -> None:
    copy = tiered_config(tmp_path)
    shutil.copytree(Path(migrated.lake_root) / "delta", Path(copy.lake_root) / "delta")
    data = [
        p
        for p in (Path(copy.lake_root) / "delta").rglob("*.parquet")
        if "_delta_log" not in p.parts
    ]
    assert data
    for path in data:  # every data file gone: only the logs are left
        path.unlink()

    build_catalog(copy)

    con, original = connect(copy), connect(migrated)
    try:
        summary = 'SELECT dataset, "partition", row_count, bytes FROM lake_partitions ORDER BY ALL'
        assert con.execute(summary).fetchall() == original.execute(summary).fetchall()
        with pytest.raises(duckdb.IOException):  # the views do read the files, when queried
            con.execute("SELECT count(*) FROM log_records").fetchall()
    finally:
        con.close()
        original.close()


# --- the simulated lake, compacted -------------------------------------------------------------


def simulated_config(root: Path) -> ObsConfig:
    """The repository's obs.yaml (the simulator) with its lake under ``root``, every day
    compacted a day after it ends and nothing deleted for a year."""
    raw = yaml.safe_load((REPO / "obs.yaml").read_text())
    raw["lake"] = {"root": str(root / "lake"), "catalog": str(root / "obs.duckdb")}
    ages = {"hot": "1d", "warm": "400d"}
    raw["retention"] = {k: ages for k in ("logs", "metrics", "traces", "alerts")}
    path = root / "obs.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_config(path)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> ObsConfig:
    """The simulated lake as ingested (hourly files), then tiered: every simulated day
    compacted (and rolled up), nothing expired. (Every report is unchanged by tiering, raw
    samples deleted included: tests/test_sli_history.py.)"""
    config = simulated_config(tmp_path_factory.mktemp("simulated"))
    simulate(config)
    result = run_tiering(config, PERIOD[1] + timedelta(days=1))
    assert result.problems == []
    assert {m.dataset for m in result.moves} >= {"metric_samples", "log_records", "spans"}
    build_catalog(config)
    return config


def test_partition_sources_name_each_ingested_hours_source(simulated: ObsConfig) -> None:
    config = simulated
    con = connect(config)
    try:
        found = con.execute(
            """SELECT dataset, source, count(*), count(DISTINCT span_start),
                      count(*) FILTER (WHERE "current")
               FROM lake_partition_sources GROUP BY ALL ORDER BY ALL"""
        ).fetchall()
    finally:
        con.close()
    ingested = {"metric_series", "metric_samples", "alert_fragments", "alert_rules", "spans"}
    ingested |= {"log_records"}
    by_source = {(d, s): rest for d, s, *rest in found}
    for dataset in ingested:  # every simulated hour once, current after its day's compaction
        assert by_source[(dataset, "simulator")] == [SIMULATED_HOURS] * 3, dataset
    assert {s for _, s in by_source} == {"simulator", None}
    assert all(d not in ingested for d, s in by_source if s is None)  # derived: no source


def test_an_hour_rewritten_by_another_source_is_current_from_its_newest_commit(
    tmp_path: Path,
) -> None:
    config = tiered_config(tmp_path)
    lake = Lake(config)
    hours = [
        TimeWindow(utc(f"2026-04-01T0{h}:00:00Z"), utc(f"2026-04-01T0{h + 1}:00:00Z"))
        for h in (1, 2)
    ]
    for hour in hours:
        lake.write_hot("log_records", hour, log_hour(hour), source="simulator")
    lake.write_hot("log_records", hours[0], log_hour(hours[0]), source="elasticsearch")
    build_catalog(config)

    con = connect(config)
    try:
        rows = con.execute(
            """SELECT span_start, source, "current", "partition", tier, file
               FROM lake_partition_sources WHERE dataset = 'log_records'"""
        ).fetchall()
        log_lines = con.execute("SELECT sum(row_count) FROM lake_partitions").fetchone()
    finally:
        con.close()
    start = [h.start.replace(tzinfo=None) for h in hours]
    assert [r[:4] for r in rows] == [
        (start[0], "simulator", False, "dt=2026-04-01"),
        (start[0], "elasticsearch", True, "dt=2026-04-01"),
        (start[1], "simulator", True, "dt=2026-04-01"),
    ]
    assert {r[4] for r in rows} == {"hot"}
    assert all(Path(r[5]).parent.name == "_delta_log" and Path(r[5]).is_file() for r in rows)
    assert log_lines == (100,)  # the rewritten hour counts once
