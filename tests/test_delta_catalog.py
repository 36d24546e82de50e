"""The catalog on Delta tables (``lake.format: delta``): the same views, types and rows as the
files-format catalog of the same lake, every report identical, ``lake_partitions`` and
``lake_partition_sources`` from the tables' logs, one-day queries that read one day's files."""

import json
import math
import shutil
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from obs_pipelines import datasets as registry
from obs_pipelines.config import ObsConfig, load_config, parse_config
from obs_pipelines.errors import LakeError
from obs_pipelines.lake import Lake, delta
from obs_pipelines.lake.catalog import (
    archive_notice,
    archived_partitions,
    build_catalog,
    connect,
    lake_connection,
)
from obs_pipelines.lake.checksum import Checksum, table_checksum
from obs_pipelines.lake.delta_catalog import tier_sql
from obs_pipelines.lake.migrate import migrate
from obs_pipelines.reporting.reports import report_connection
from obs_pipelines.windows import TimeWindow, utc
from tests.test_lake_migrate import HOURS, WRITTEN, build_lake
from tests.test_reports_simulated import PERIOD, REPO, simulate
from tests.tiering_data import RETENTION, log_hour, tiered_config

pytestmark = pytest.mark.integration  # builds, migrates and catalogs whole lakes

REPORTS = sorted(p.stem for p in (REPO / "sql").glob("*.sql") if p.stem != "__init__")
# Float columns whose last bits depend on the order DuckDB sums rows in (the same SQL over the
# same rows read in another order): compared to a relative 1e-12, every other column exactly.
ROUNDING = {"peak_burn_rate"}


def checksum(con: duckdb.DuckDBPyConnection, relation: str, columns: list[str]) -> Checksum:
    listed = ", ".join(f'"{c}"' for c in columns)
    return table_checksum(con.execute(f"SELECT {listed} FROM {relation}").to_arrow_table())


def described(con: duckdb.DuckDBPyConnection, relation: str) -> list[tuple[str, str]]:
    return [(name, kind) for name, kind, *_ in con.execute(f'DESCRIBE "{relation}"').fetchall()]


@pytest.fixture(scope="module")
def tiered(tmp_path_factory: pytest.TempPathFactory) -> tuple[ObsConfig, ObsConfig]:
    """A lake with hot, warm and cold files (tests/test_lake_migrate.py), migrated; its files
    config and its Delta config (another catalog), both catalogs built."""
    root = tmp_path_factory.mktemp("delta-catalog")
    files = build_lake(tiered_config(root))
    migrate(files)
    tables = tiered_config(root, format="delta", catalog=str(root / "delta.duckdb"))
    build_catalog(tables)
    return files, tables


def test_every_dataset_view_has_the_files_columns_and_types_then_dt_and_the_same_rows(
    tiered: tuple[ObsConfig, ObsConfig],
) -> None:
    files, tables = tiered
    old, new = connect(files), connect(tables)
    engine = lake_connection(tables)
    try:
        for name in [*registry.ALL, "metrics"]:
            columns = described(old, name)
            extra = [] if name in ("metric_series", "metrics") else [("dt", "VARCHAR")]
            assert described(new, name) == columns + extra, name
            names = [c for c, _ in columns]
            expected = checksum(old, name, names)
            assert (expected.rows > 0) == (name in WRITTEN | {"metrics"}), name
            assert checksum(new, name, names) == expected, name
            assert checksum(engine, name, names) == expected, name
        ids = [i for (i,) in new.execute("SELECT series_id FROM metric_series").fetchall()]
        assert max(ids) >= 1 << 63  # unsigned ids with the top bit set come back unsigned
        assert new.execute(
            "SELECT count(*) FROM metric_samples WHERE dt <> strftime(ts, '%Y-%m-%d')"
        ).fetchone() == (0,)
    finally:
        for con in (old, new, engine):
            con.close()
    # the catalog records the format it reads: the files config does not open it silently
    with pytest.raises(LakeError, match="run `obs catalog`"):
        connect(tiered_config(Path(files.lake_root).parent, catalog=tables.catalog_path))


def test_lake_partitions_lists_the_logs_files_with_the_rows_the_tables_hold(
    tiered: tuple[ObsConfig, ObsConfig],
) -> None:
    files, tables = tiered
    old, new = connect(files), connect(tables)
    try:
        assert described(new, "lake_partitions") == described(old, "lake_partitions")
        for name in registry.ALL:
            listed = new.execute(
                """SELECT sum(row_count), list(DISTINCT day ORDER BY day)
                   FROM (SELECT row_count, regexp_extract("partition", 'dt=(.+)$', 1) AS day
                         FROM lake_partitions WHERE dataset = ?)""",
                [name],
            ).fetchone()
            held = new.execute(
                "SELECT nullif(count(*), 0), list(DISTINCT dt ORDER BY dt) "
                f"FROM {delta.scan(tables, name)}"
            ).fetchone()
            assert listed == held, name
            view = new.execute(f"SELECT nullif(count(*), 0) FROM {name}").fetchone()
            if name != "metric_series":  # its view collapses the table's rows per series
                assert listed is not None and view == listed[:1], name
        rollups = new.execute(
            """SELECT DISTINCT "partition" FROM lake_partitions
               WHERE dataset = 'metric_rollups' AND resolution = '5m' ORDER BY 1"""
        ).fetchall()
        days = old.execute(
            "SELECT DISTINCT strftime(ts, '%Y-%m-%d') FROM metric_rollups ORDER BY 1"
        ).fetchall()
        assert rollups == [(f"resolution=5m/dt={d}",) for (d,) in days] and len(days) > 1
        listed_files = new.execute(
            """SELECT dataset, "partition", file, bytes, span_end - span_start, tier,
                      "current", archived, storage_class FROM lake_partitions"""
        ).fetchall()
    finally:
        old.close()
        new.close()
    assert len(listed_files) > len(WRITTEN)
    for dataset, partition, file, size, span, tier, *flags in listed_files:
        assert file.startswith(f"{delta.table_uri(tables, dataset)}/{partition}/part-")
        assert Path(file).stat().st_size == size
        assert span == timedelta(days=1)
        assert flags == [True, False, None]  # current, never archived, class unknown to the log
        # every file was written moments ago: the first tier of its dataset's retention
        assert tier == ("warm" if dataset == "metric_rollups" else "hot"), dataset
    assert archived_partitions(tables) == []
    assert archive_notice(tables, "SELECT * FROM metric_samples") is None


def test_tier_is_the_age_class_of_the_datasets_retention(tmp_path: Path) -> None:
    config = tiered_config(tmp_path, format="delta")
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
    con.execute("PRAGMA enable_profiling = 'json'")
    con.execute(f"PRAGMA profiling_output = '{profile}'")
    con.execute(sql).fetchall()
    con.execute("PRAGMA disable_profiling")

    def scans(node: dict[str, Any]) -> list[dict[str, Any]]:
        found = [node["extra_info"]] if "Scanning Files" in node.get("extra_info", {}) else []
        return found + [s for child in node.get("children", []) for s in scans(child)]

    (info,) = scans(json.loads(profile.read_text()))
    return info["Scanning Files"], info["Total Files Read"]


def test_a_one_day_query_on_dt_reads_only_that_days_files(
    tiered: tuple[ObsConfig, ObsConfig], tmp_path: Path
) -> None:
    files, tables = tiered
    con = connect(tables)
    old = connect(files)
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
        assert scanned_files(con, sql, tmp_path / "profile.json") == (
            f"{one[0]}/{total[0]}",
            str(one[0]),
        )
        assert (
            con.execute(sql).fetchone()
            == old.execute(
                f"SELECT count(*), min(ts), max(ts) FROM metric_samples "
                f"WHERE ts >= '{day}' AND ts < TIMESTAMP '{day}' + INTERVAL 1 DAY"
            ).fetchone()
        )
    finally:
        con.close()
        old.close()


def test_the_build_reads_the_logs_only_never_a_data_file(
    tiered: tuple[ObsConfig, ObsConfig], tmp_path: Path
) -> None:
    files, tables = tiered
    copy = tiered_config(tmp_path, format="delta")
    shutil.copytree(Path(files.lake_root) / "delta", Path(copy.lake_root) / "delta")
    data = [
        p
        for p in (Path(copy.lake_root) / "delta").rglob("*.parquet")
        if "_delta_log" not in p.parts
    ]
    assert data
    for path in data:  # every data file gone: only the logs are left
        path.unlink()

    build_catalog(copy)

    con, original = connect(copy), connect(tables)
    try:
        summary = 'SELECT dataset, "partition", row_count, bytes FROM lake_partitions ORDER BY ALL'
        assert con.execute(summary).fetchall() == original.execute(summary).fetchall()
        with pytest.raises(duckdb.IOException):  # the views do read the files, when queried
            con.execute("SELECT count(*) FROM log_records").fetchall()
    finally:
        con.close()
        original.close()


# --- every report, on the simulated lake ------------------------------------------------------


def simulated_config(root: Path, name: str = "obs", **lake: str) -> ObsConfig:
    """The repository's obs.yaml (the simulator) with its lake under ``root``."""
    raw = yaml.safe_load((REPO / "obs.yaml").read_text())
    raw["lake"] = {"root": str(root / "lake"), "catalog": str(root / f"{name}.duckdb"), **lake}
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_config(path)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ObsConfig]:
    """The simulated lake in files, the same migrated to Delta, and the same simulation
    ingested straight into Delta tables."""
    root = tmp_path_factory.mktemp("files")
    files = simulated_config(root)
    simulate(files)
    migrate(files)
    migrated = simulated_config(root, "migrated", format="delta")
    build_catalog(migrated)
    ingested = simulated_config(tmp_path_factory.mktemp("ingested"), format="delta")
    simulate(ingested)
    return {"files": files, "migrated": migrated, "ingested": ingested}


def report_rows(con: duckdb.DuckDBPyConnection, view: str, columns: list[str]) -> list[tuple]:
    order = ", ".join(f'"{c}"' for c in columns)
    return con.execute(f'SELECT {order} FROM "{view}" ORDER BY ALL').fetchall()


@dataclass(frozen=True)
class ReportRows:
    """What one view returns, exactly (a checksum) and, for ``ROUNDING`` columns, row by row."""

    columns: list[tuple[str, str]]
    exact: Checksum
    rounded: list[tuple]


def read_reports(config: ObsConfig) -> dict[str, ReportRows]:
    """Every report and dataset view of the catalog over the simulated period."""
    con = report_connection(config, *PERIOD)
    try:
        found = {}
        for view in [*REPORTS, *registry.ALL]:
            columns = described(con, view)
            exact = [c for c, _ in columns if c not in ROUNDING and c != "dt"]
            rounded = [c for c, _ in columns if c in ROUNDING]
            found[view] = ReportRows(
                columns,
                checksum(con, f'"{view}"', exact),
                report_rows(con, view, exact + rounded) if rounded else [],
            )
        return found
    finally:
        con.close()


@pytest.fixture(scope="module")
def files_reports(simulated: dict[str, ObsConfig]) -> dict[str, ReportRows]:
    return read_reports(simulated["files"])


@pytest.mark.parametrize("lake", ["migrated", "ingested"])
def test_every_report_reads_the_same_rows_from_delta_tables_as_from_files(
    simulated: dict[str, ObsConfig], files_reports: dict[str, ReportRows], lake: str
) -> None:
    found = read_reports(simulated[lake])

    assert REPORTS and set(found) == set(files_reports)
    for view, expected in files_reports.items():
        dt = [("dt", "VARCHAR")] if view in registry.ALL and view != "metric_series" else []
        assert found[view].columns == expected.columns + dt, view
        assert found[view].exact == expected.exact, view
        assert len(found[view].rounded) == len(expected.rounded), view
        for a, b in zip(found[view].rounded, expected.rounded, strict=True):
            exact = len(a) - 1  # the ROUNDING column is last, the rows sorted by the others first
            assert a[:exact] == b[:exact], view
            assert math.isclose(a[exact], b[exact], rel_tol=1e-12) or a[exact] is b[exact] is None
    shown = [v for v in REPORTS if files_reports[v].exact.rows]
    assert len(shown) >= len(REPORTS) - 2  # the simulator stages what nearly every report shows
    assert sum(len(r.rounded) for r in files_reports.values()) > 0


def test_partition_sources_name_each_ingested_hours_source_as_the_files_catalog_does(
    simulated: dict[str, ObsConfig],
) -> None:
    query = """SELECT dataset, tier, source, count(*), count(*) FILTER (WHERE "current")
               FROM lake_partition_sources GROUP BY ALL ORDER BY ALL"""
    old, new = connect(simulated["files"]), connect(simulated["ingested"])
    try:
        expected = old.execute(query).fetchall()
        assert {r[2] for r in expected} == {"simulator", None}
        assert new.execute(query).fetchall() == expected
        assert described(new, "lake_partition_sources") == described(old, "lake_partition_sources")
    finally:
        old.close()
        new.close()


def test_an_hour_rewritten_by_another_source_is_current_from_its_newest_commit(
    tmp_path: Path,
) -> None:
    config = tiered_config(tmp_path, format="delta")
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


def test_a_lake_on_s3_reads_the_same_through_the_delta_catalog(s3_lake: dict[str, Any]) -> None:
    files = build_lake(
        parse_config({"lake": {**s3_lake, "delete_delay": "0s"}, "retention": RETENTION}),
        HOURS[:6],
    )
    migrate(files)
    catalog = str(Path(s3_lake["catalog"]).with_name("delta.duckdb"))
    tables = parse_config(
        {
            "lake": {**s3_lake, "delete_delay": "0s", "format": "delta", "catalog": catalog},
            "retention": RETENTION,
        }
    )
    build_catalog(tables)

    old, new = connect(files), connect(tables)
    try:
        for name in ("metric_samples", "metric_series", "log_records", "metric_rollups"):
            names = [c for c, _ in described(old, name)]
            expected = checksum(old, name, names)
            assert expected.rows > 0, name
            assert checksum(new, name, names) == expected, name
    finally:
        old.close()
        new.close()
    # an hour ingested into the tables: its source, and every file listed with its rows
    Lake(tables).write_hot("log_records", HOURS[6], log_hour(HOURS[6]), source="simulator")
    build_catalog(tables)
    new = connect(tables)
    try:
        assert new.execute(
            'SELECT dataset, source, "current", "partition" FROM lake_partition_sources'
        ).fetchall() == [("log_records", "simulator", True, f"dt={HOURS[6].start:%Y-%m-%d}")]
        listed = new.execute(
            "SELECT dataset, sum(row_count), bool_and(starts_with(file, 's3://')) "
            "FROM lake_partitions GROUP BY ALL"
        ).fetchall()
        assert {d for d, _, _ in listed} >= {"log_records", "metric_samples", "metric_rollups"}
        for dataset, rows, on_s3 in listed:
            held = new.execute(f"SELECT count(*) FROM {delta.scan(tables, dataset)}").fetchone()
            assert on_s3 and (rows,) == held, dataset
    finally:
        new.close()
