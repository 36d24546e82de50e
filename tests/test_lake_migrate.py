"""`obs lake migrate`: a lake in the file layout of earlier versions (a real one, written by the
last version that could write it) becomes Delta tables that DuckDB (delta-kernel), delta-rs and
polars read with exactly the rows that version's catalog showed, locally and on S3; reruns
converge, and the lake refuses to start Delta tables beside a layout it has not migrated."""

import os
import shutil
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import CommitProperties, DeltaTable

from obs_pipelines import datasets as registry
from obs_pipelines.cli import main
from obs_pipelines.config import ObsConfig
from obs_pipelines.errors import LakeError
from obs_pipelines.lake import Lake, delta
from obs_pipelines.lake.catalog import build_catalog, connect
from obs_pipelines.lake.checksum import Checksum, table_checksum
from obs_pipelines.lake.ingest import ingest_metrics_hour
from obs_pipelines.lake.legacy import current_files, legacy_connection
from obs_pipelines.lake.migrate import MigrationMismatch, format_footer, format_row, migrate
from obs_pipelines.operations.doctor import CheckResult, run_checks
from obs_pipelines.sources import metric_source
from obs_pipelines.windows import TimeWindow, utc
from tests import legacy_fixture
from tests.legacy_fixture import WRITTEN, expected, forget_day, legacy_config
from tests.tiering_data import log_hour

pytestmark = pytest.mark.integration  # converts whole lakes, some of them on S3

EXPECTED = expected()


def columns(dataset: str) -> str:
    return ", ".join(f'"{c}"' for c in delta.layout(dataset).columns)


def legacy_checksum(config: ObsConfig, dataset: str, where: str = "") -> Checksum:
    con = legacy_connection(config)
    try:
        return table_checksum(
            con.execute(f'SELECT {columns(dataset)} FROM "{dataset}" {where}').to_arrow_table()
        )
    finally:
        con.close()


def duckdb_checksum(config: ObsConfig, dataset: str, where: str = "") -> Checksum:
    con = delta.delta_connection(config)
    try:
        return table_checksum(
            con.execute(
                f"SELECT {columns(dataset)} FROM {delta.scan(config, dataset)} {where}"
            ).to_arrow_table()
        )
    finally:
        con.close()


def delta_rs_checksum(config: ObsConfig, dataset: str) -> Checksum:
    table = DeltaTable(
        delta.table_uri(config, dataset), storage_options=delta.storage_options(config)
    )
    return table_checksum(table.to_pyarrow_table().select(delta.layout(dataset).columns))


def polars_checksum(config: ObsConfig, dataset: str) -> Checksum:
    options = delta.storage_options(config)
    # polars takes the standard AWS_* keys (its retry options have types of their own)
    standard = {k: v for k, v in options.items() if k.startswith("AWS_")} if options else None
    frame = pl.scan_delta(delta.table_uri(config, dataset), storage_options=standard)
    return table_checksum(frame.select(delta.layout(dataset).columns).collect().to_arrow())


def delta_row(config: ObsConfig, sql: str) -> tuple[Any, ...]:
    con = delta.delta_connection(config)
    try:
        row = con.execute(sql).fetchone()
        assert row is not None
        return row
    finally:
        con.close()


def assert_reads_as_expected(config: ObsConfig, names: list[str] | None = None) -> None:
    """Every engine reads each table back as the file layout's own catalog read the lake."""
    for name in names or registry.ALL:
        assert duckdb_checksum(config, name) == EXPECTED[name], name
        assert delta_rs_checksum(config, name) == EXPECTED[name], name
        assert polars_checksum(config, name) == EXPECTED[name], name


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> ObsConfig:
    config = legacy_config(tmp_path_factory.mktemp("migrate"))
    migrate(config)
    return config


def test_the_fixture_is_the_lake_the_ground_truth_describes() -> None:
    assert set(EXPECTED) == set(registry.ALL)
    assert {name for name, c in EXPECTED.items() if c.rows} == WRITTEN


def test_the_legacy_reader_reads_what_the_file_layouts_catalog_read(tmp_path: Path) -> None:
    config = legacy_config(tmp_path)

    for name in registry.ALL:
        assert legacy_checksum(config, name) == EXPECTED[name], name
    assert not (tmp_path / "lake" / "delta").exists()  # reading wrote nothing


def test_every_dataset_reads_the_same_from_duckdb_delta_rs_and_polars(
    migrated: ObsConfig,
) -> None:
    assert_reads_as_expected(migrated)


def test_the_stray_and_the_hidden_temp_file_are_not_migrated(migrated: ObsConfig) -> None:
    """Both are copies of hour 00 of 04-02 (one well named at hour=05 without an inventory
    marker): read as data, they would add 50 or 100 duplicate log records."""
    logs = delta.scan(migrated, "log_records")

    assert delta_row(migrated, f"SELECT count(*), count(DISTINCT doc_id) FROM {logs}") == (
        600,
        600,
    )
    assert delta_row(
        migrated, f"SELECT count(*) FROM {logs} WHERE dt = '2026-04-02' AND hour(ts) = 5"
    ) == (0,)


def test_tables_are_partitioned_by_day_and_readable_by_any_delta_reader(
    migrated: ObsConfig,
) -> None:
    def table(name: str) -> DeltaTable:
        return DeltaTable(delta.table_uri(migrated, name))

    assert (
        Path(delta.table_uri(migrated, "metric_samples"))
        == Path(migrated.lake_root) / "delta" / "metric_samples"
    )
    assert table("metric_samples").metadata().partition_columns == ["dt"]
    assert table("alert_rules").metadata().partition_columns == ["dt"]
    assert table("metric_rollups").metadata().partition_columns == ["resolution", "dt"]
    assert table("metric_series").metadata().partition_columns == ["dt"]
    for name in registry.ALL:  # no table feature: every Delta reader opens them
        protocol = table(name).protocol()
        assert (protocol.min_reader_version, protocol.min_writer_version) == (1, 2), name
    # one commit per day: the three days of raw samples (03-30's expired) are versions 0 to 2
    assert table("metric_samples").version() == 2


def test_files_are_sorted_and_use_the_compact_encodings(migrated: ObsConfig) -> None:
    live = DeltaTable(delta.table_uri(migrated, "metric_samples")).file_uris()
    assert len(live) == 3  # one file per day
    for path in live:
        parquet = pq.ParquetFile(path)
        chunk = parquet.metadata.row_group(0)
        encodings = {chunk.column(i).path_in_schema: chunk.column(i).encodings for i in range(3)}
        assert "DELTA_BINARY_PACKED" in encodings["series_id"]
        assert "DELTA_BINARY_PACKED" in encodings["ts"]
        assert "BYTE_STREAM_SPLIT" in encodings["value"]
        assert chunk.column(0).compression == "ZSTD"
        rows = parquet.read()
        keys = list(zip(rows["series_id"].to_pylist(), rows["ts"].to_pylist(), strict=True))
        assert keys == sorted(keys)


def test_a_query_for_one_day_returns_exactly_that_days_rows(migrated: ObsConfig) -> None:
    uri = delta.scan(migrated, "metric_samples")
    rows, first, last = delta_row(
        migrated,
        f"SELECT count(*), min(timezone('UTC', ts)), max(timezone('UTC', ts)) FROM {uri} "
        "WHERE dt = '2026-03-31'",
    )
    day = legacy_checksum(
        migrated, "metric_samples", "WHERE ts >= '2026-03-31' AND ts < '2026-04-01'"
    )
    assert rows == day.rows == 3 * 12 * 240  # three hours of 12 series scraped every 15 s
    assert (first.date().isoformat(), last.date().isoformat()) == ("2026-03-31", "2026-03-31")
    assert duckdb_checksum(migrated, "metric_samples", "WHERE dt = '2026-03-31'") == day


def test_a_second_migrate_is_a_verified_no_op(migrated: ObsConfig) -> None:
    files = {name: referenced(migrated, name) for name in registry.ALL}

    again = migrate(migrated)

    assert all(r.verified for r in again)
    assert all(not r.written and not r.kept and not r.untouched for r in again)
    assert sum(len(r.unchanged) for r in again) == sum(r.days or 0 for r in again) > 0
    assert {name: referenced(migrated, name) for name in registry.ALL} == files
    assert [(r.dataset, r.rows) for r in again] == [(n, EXPECTED[n].rows) for n in registry.ALL]
    for name in WRITTEN:
        assert duckdb_checksum(migrated, name) == EXPECTED[name], name
    samples = delta.scan(migrated, "metric_samples")
    assert delta_row(
        migrated, f"SELECT count(*) - count(DISTINCT (series_id, ts)) FROM {samples}"
    ) == (0,)


def test_duckdb_reads_series_ids_back_as_the_unsigned_ids_of_the_lake(
    migrated: ObsConfig,
) -> None:
    con = legacy_connection(migrated)
    ids = sorted(r[0] for r in con.execute("SELECT series_id FROM metric_series").fetchall())
    con.close()
    reader = delta.delta_connection(migrated)
    stored = reader.execute(
        "SELECT (series_id::HUGEINT & 18446744073709551615)::UBIGINT FROM "
        f"{delta.scan(migrated, 'metric_series')}"
    ).fetchall()
    reader.close()

    assert sorted(r[0] for r in stored) == ids
    assert max(ids) >= 1 << 63  # ids with the top bit set come back too
    assert len(ids) == EXPECTED["metric_series"].rows


def test_dry_run_writes_nothing_and_counts_what_migrate_then_converts(tmp_path: Path) -> None:
    config = legacy_config(tmp_path)

    planned = migrate(config, dry_run=True)

    assert not (tmp_path / "lake" / "delta").exists()
    assert all(not p.verified for p in planned)
    assert [(p.dataset, p.rows) for p in planned] == [(n, EXPECTED[n].rows) for n in registry.ALL]
    assert {p.dataset for p in planned if p.source_bytes} == WRITTEN
    done = migrate(config)
    assert [(d.dataset, d.days, d.rows) for d in done] == [
        (p.dataset, p.days, p.rows) for p in planned
    ]
    assert [p.source_bytes for p in planned] == [d.source_bytes for d in done]


def file_layout_check(config: ObsConfig) -> CheckResult:
    return next(r for r in run_checks(config) if r.check == "lake.file_layout")


def test_doctor_says_when_the_delta_tables_fall_behind_the_old_layout(tmp_path: Path) -> None:
    config = legacy_config(tmp_path)
    files = sum(len(fs) for fs in current_files(config).values())

    unmigrated = file_layout_check(config)
    migrate(config)
    migrated = file_layout_check(config)
    # an older version still writing the old layout after the migrate: a newer log_records file
    hot = next((tmp_path / "lake" / "hot" / "log_records").glob("dt=*/hour=23/part-00000.parquet"))
    later = time.time() + 3600
    os.utime(hot, (later, later))
    behind = file_layout_check(config)

    assert unmigrated.ok and unmigrated.warn and unmigrated.fix == "run `obs lake migrate`"
    assert unmigrated.detail == (
        f"{files} files of the old layout hold data the Delta tables lack "
        f"({', '.join(n for n in registry.ALL if n in WRITTEN)})"
    )
    assert migrated.ok and migrated.warn
    assert migrated.detail == f"{files} files of the old layout, all migrated into the Delta tables"
    assert "delete hot/, warm/, cold/ and _inventory/" in (migrated.fix or "")
    assert behind.ok and behind.warn and behind.fix == "run `obs lake migrate`"
    assert behind.detail.endswith("hold data the Delta tables lack (log_records)")


def test_an_interrupted_migrate_then_a_full_one_converges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = legacy_config(tmp_path)
    migrate(config, ["log_records"])  # one dataset only
    real_write = delta.write_day
    commits: list[str | None] = []

    def dies_after_three(*args: Any, **kwargs: Any) -> None:
        if len(commits) == 3:
            raise LakeError("killed")
        commits.append(args[2])
        real_write(*args, **kwargs)

    monkeypatch.setattr(delta, "write_day", dies_after_three)
    with pytest.raises(LakeError, match="killed"):
        migrate(config)
    monkeypatch.undo()
    assert len(commits) == 3  # some days were committed before the run died

    finished = migrate(config)

    # the rerun writes only what is missing: log_records' 4 days and the 3 committed are there
    assert sum(len(r.unchanged) for r in finished) == 4 + 3
    assert all(not r.kept for r in finished)
    for name in registry.ALL:
        assert duckdb_checksum(config, name) == EXPECTED[name], name


def test_days_the_old_layout_no_longer_holds_are_kept_never_deleted(tmp_path: Path) -> None:
    """The old layout losing a day (its retention, a tier deleted early or not pointed at) is
    no reason to delete the table's copy: tiering's retention expires it in its own time."""
    config = legacy_config(tmp_path)
    migrate(config, ["log_records"])
    # retention passes 03-30, the only day of March's cold log file
    forget_day(tmp_path / "lake", "cold", "log_records", "month=2026-03")

    (planned,) = migrate(config, ["log_records"], dry_run=True)
    (result,) = migrate(config, ["log_records"])

    for done in (planned, result):
        assert done.untouched == ("2026-03-30",)
        assert done.written == () and done.kept == ()
        assert done.unchanged == ("2026-03-31", "2026-04-01", "2026-04-02")
        assert done.rows == EXPECTED["log_records"].rows - 150
    assert format_row(planned, dry_run=True).endswith(
        "not in the old layout, would be left as the table has them (migrate deletes "
        "nothing): 2026-03-30"
    )
    assert duckdb_checksum(config, "log_records") == EXPECTED["log_records"]


def test_a_day_that_does_not_read_back_the_same_is_an_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = legacy_config(tmp_path)
    real = delta.to_delta
    monkeypatch.setattr(delta, "to_delta", lambda batch, table: real(batch.slice(1), table))

    with pytest.raises(
        MigrationMismatch, match=r"metric_samples 2026-03-31: the Delta table holds"
    ) as refused:
        migrate(config, ["metric_samples"])
    assert "\n" not in str(refused.value)


def test_a_lake_on_s3_converts_and_reads_the_same_everywhere(
    s3_lake: dict[str, Any], s3_client: Any, s3_bucket: str, tmp_path: Path
) -> None:
    client = s3_client
    prefix = s3_lake["root"].removeprefix(f"s3://{s3_bucket}/")
    uploaded = legacy_fixture.upload(legacy_fixture.extract(tmp_path), client, s3_bucket, prefix)
    config = legacy_config(tmp_path, **s3_lake)

    def keys(under: str) -> set[str]:
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=s3_bucket, Prefix=f"{prefix}/{under}"
        )
        return {o["Key"] for page in pages for o in page.get("Contents", [])}

    planned = migrate(config, dry_run=True)
    assert not keys("delta/")
    assert [(p.dataset, p.rows) for p in planned] == [(n, EXPECTED[n].rows) for n in registry.ALL]
    migrate(config)
    migrate(config)  # a rerun on S3 converges too (conditional PUT commits)

    assert keys("delta/metric_samples/_delta_log/")
    assert keys("") - keys("delta/") == uploaded  # the legacy layout was only read
    assert_reads_as_expected(config)
    assert_an_hour_ingested_since_is_listed_on_s3(config)

    unreachable = {**s3_lake, "s3": {**s3_lake["s3"], "endpoint_url": "http://127.0.0.1:9"}}
    down = legacy_config(tmp_path, **unreachable)
    with pytest.raises(LakeError, match="could not") as refused:
        migrate(down, ["log_records"])
    assert "\n" not in str(refused.value)
    assert "testing-secret" not in str(refused.value)
    assert "testing-key" not in str(refused.value)


def assert_an_hour_ingested_since_is_listed_on_s3(config: ObsConfig) -> None:
    """An hour ingested into the migrated tables: its source, every file listed with its rows
    (all on S3), and the catalog's view holding the migrated rows and the new ones."""
    hour = TimeWindow(utc("2026-04-03T05:00:00Z"), utc("2026-04-03T06:00:00Z"))
    Lake(config).write_hot("log_records", hour, log_hour(hour), source="simulator")
    build_catalog(config)
    con = connect(config)
    try:
        assert con.execute(
            'SELECT dataset, source, "current", "partition" FROM lake_partition_sources'
        ).fetchall() == [("log_records", "simulator", True, "dt=2026-04-03")]
        listed = con.execute(
            "SELECT dataset, sum(row_count), bool_and(starts_with(file, 's3://')) "
            "FROM lake_partitions GROUP BY ALL"
        ).fetchall()
        assert {d for d, _, _ in listed} >= {"log_records", "metric_samples", "metric_rollups"}
        for dataset, rows, on_s3 in listed:
            held = con.execute(f"SELECT count(*) FROM {delta.scan(config, dataset)}").fetchone()
            assert on_s3 and (rows,) == held, dataset
        assert con.execute("SELECT count(*) FROM log_records").fetchone() == (
            EXPECTED["log_records"].rows + 50,
        )
    finally:
        con.close()


def test_cli_prints_a_line_per_dataset_and_refuses_unknown_names(
    migrated: ObsConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "obs.yaml"
    path.write_text(f"lake:\n  root: {migrated.lake_root}\n  catalog: {migrated.catalog_path}\n")

    code = main(["--config", str(path), "lake", "migrate", "--dataset", "log_records"])
    out, _ = capsys.readouterr()
    unknown = main(["--config", str(path), "lake", "migrate", "--dataset", "nope"])
    _, err = capsys.readouterr()

    lines = out.splitlines()
    assert code == 0
    assert lines[0].split() == ["dataset", "days", "rows", "verified", "seconds"]
    assert lines[1].split()[:4] == ["log_records", "4", "600", "yes"]
    assert unknown == 2
    assert err.count("\n") == 1 and "no dataset nope" in err
    with pytest.raises(LakeError, match="no dataset nope"):
        migrate(migrated, ["nope"])


def test_cli_on_a_folder_without_a_legacy_layout_says_so_in_one_line(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config()

    code = main(["--config", str(path), "lake", "migrate"])

    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and "file layout" in err
    assert not (path.parent / "lake" / "delta").exists()


def data_files(config: ObsConfig, dataset: str) -> set[Path]:
    """The Parquet files under a table's folder (its log's checkpoints excluded)."""
    root = Path(delta.table_uri(config, dataset))
    return {p.resolve() for p in root.rglob("*.parquet") if "_delta_log" not in p.parts}


def referenced(config: ObsConfig, dataset: str) -> set[Path]:
    return {Path(uri).resolve() for uri in DeltaTable(delta.table_uri(config, dataset)).file_uris()}


def test_vacuum_after_delete_delay_leaves_only_the_files_the_log_references(
    tmp_path: Path,
) -> None:
    patient = legacy_config(tmp_path, delete_delay="1d")
    prompt = legacy_config(tmp_path)  # the same lake, replaced files deleted at once
    # datasets with a day of their own in 04-02 hour 23 (not so the snapshots and series, whose
    # rows there belong to 04-03 and to the day each series was first seen)
    late = ["log_records", "metric_samples", "up_minutes"]
    put_back = [late_hour(Path(patient.lake_root), name) for name in late]
    migrate(patient)
    first = {name: DeltaTable(delta.table_uri(patient, name)).version() for name in late}
    without = {name: legacy_checksum(patient, name) for name in late}
    for undo in put_back:
        undo()

    again = migrate(patient)  # replaces 04-02 of each, which gained its hour 23

    assert {r.dataset: r.written for r in again if r.written} == dict.fromkeys(
        late, ("2026-04-02",)
    )
    # replaced files younger than delete_delay stay: a reader of the first version still works
    assert sum(r.files_vacuumed for r in again) == 0
    for name in late:
        assert data_files(patient, name) > referenced(patient, name), name
        old = DeltaTable(delta.table_uri(patient, name), version=first[name])
        assert (
            table_checksum(old.to_pyarrow_table().select(delta.layout(name).columns))
            == without[name]
            != EXPECTED[name]
        ), name
    before = {name: data_files(prompt, name) for name in registry.ALL}

    done = migrate(prompt)

    deleted = sum(len(before[name] - data_files(prompt, name)) for name in registry.ALL)
    assert sum(r.files_vacuumed for r in done) == deleted > 0
    for name in registry.ALL:
        assert data_files(prompt, name) == referenced(prompt, name), name
    assert_reads_as_expected(prompt)


HOUR = TimeWindow(utc("2026-04-03T10:00:00Z"), utc("2026-04-03T11:00:00Z"))


def test_delta_tables_are_not_started_beside_an_unmigrated_layout(tmp_path: Path) -> None:
    """``lake.format`` defaults to delta: an upgrade must not read an unmigrated lake as empty
    and start writing new tables beside it."""
    config = legacy_config(tmp_path)

    with pytest.raises(LakeError, match="obs lake migrate") as refused:
        ingest_metrics_hour(Lake(config), metric_source(config), HOUR)
    assert "\n" not in str(refused.value)
    assert not list((tmp_path / "lake" / "delta").glob("*/_delta_log/*.json"))

    migrate(config)
    ingest_metrics_hour(Lake(config), metric_source(config), HOUR)

    samples = delta.scan(config, "metric_samples")
    rows, added = delta_row(
        config, f"SELECT count(*), count(*) FILTER (WHERE dt = '2026-04-03') FROM {samples}"
    )
    assert added > 0
    assert rows == EXPECTED["metric_samples"].rows + added
    assert (
        duckdb_checksum(config, "metric_samples", "WHERE dt < '2026-04-03'")
        == EXPECTED["metric_samples"]
    )


def test_a_tier_the_old_lake_kept_elsewhere_is_migrated_with_tier_root(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = legacy_config(tmp_path)
    root = Path(config.lake_root)
    elsewhere = tmp_path / "warm-tier"
    (elsewhere / "_inventory").mkdir(parents=True)
    shutil.move(root / "warm", elsewhere / "warm")
    shutil.move(root / "_inventory" / "warm", elsewhere / "_inventory" / "warm")
    shutil.copy(root / "_inventory" / "VERSION", elsewhere / "_inventory" / "VERSION")
    path = tmp_path / "obs.yaml"
    path.write_text(f"lake:\n  root: {root}\n  catalog: {config.catalog_path}\n")

    refused = main(["--config", str(path), "lake", "migrate", "--tier-root", "tepid=/x"])
    _, err = capsys.readouterr()
    code = main(["--config", str(path), "lake", "migrate", "--tier-root", f"warm={elsewhere}"])

    assert refused == 2 and "--tier-root tepid=/x: write TIER=ROOT" in err
    assert code == 0
    for name, truth in expected().items():
        assert duckdb_checksum(config, name) == truth, name


def late_hour(root: Path, dataset: str) -> Callable[[], None]:
    """Hide hour 23 of 04-02 of ``dataset`` in the old layout, as if an older version still
    writing it had not written that hour yet; returns what writes it back."""
    hot = root / "hot" / dataset / "dt=2026-04-02" / "hour=23" / "part-00000.parquet"
    aside = root.parent / f"{dataset}-late.parquet"
    shutil.move(hot, aside)
    return lambda: shutil.move(aside, hot)


def some_samples(hour: TimeWindow, count: int = 7) -> pa.Table:
    """``count`` samples of one series in ``hour``, as an ingest run would write them."""
    return pa.table(
        {
            "series_id": pa.array([42] * count, pa.uint64()),
            "ts": pa.array(
                [hour.start + timedelta(minutes=i) for i in range(count)], pa.timestamp("ms")
            ),
            "value": pa.array([float(i) for i in range(count)], pa.float64()),
        }
    )


def table_state(config: ObsConfig) -> dict[str, Checksum]:
    return {name: duckdb_checksum(config, name) for name in registry.ALL}


def partitions_listed(config: ObsConfig, dataset: str) -> set[tuple[str, int]]:
    con = duckdb.connect(config.catalog_path, read_only=True)
    try:
        found = con.execute(
            "SELECT file, row_count FROM lake_partitions WHERE dataset = ?", [dataset]
        ).fetchall()
    finally:
        con.close()
    return {(str(Path(file).resolve()), rows) for file, rows in found}


def partitions_logged(config: ObsConfig, dataset: str) -> set[tuple[str, int]]:
    table = DeltaTable(delta.table_uri(config, dataset))
    actions = table.get_add_actions(flatten=True)
    rows = actions.column("num_records").to_pylist()
    return {
        (str(Path(uri).resolve()), count)
        for uri, count in zip(table.file_uris(), rows, strict=True)
    }


def test_a_rerun_after_ingest_keeps_every_day_written_since_and_says_so(
    tmp_path: Path,
) -> None:
    """The outside tester's defect: a rerun deleted every day ingested after the migration
    (03-04's hours), and would overwrite an ingested hour of a day the old layout also holds."""
    config = legacy_config(tmp_path)
    migrate(config)
    ingest_metrics_hour(Lake(config), metric_source(config), HOUR)  # 04-03, a new day
    also = TimeWindow(utc("2026-04-02T10:00:00Z"), utc("2026-04-02T11:00:00Z"))
    Lake(config).tables.write_hour("metric_samples", also, some_samples(also), source="test")
    build_catalog(config)  # as the lake_catalog asset does after an ingest run
    before = table_state(config)
    files = {name: referenced(config, name) for name in registry.ALL}

    planned = {r.dataset: r for r in migrate(config, dry_run=True)}
    done = {r.dataset: r for r in migrate(config)}

    assert table_state(config) == before  # nothing of any table changed
    assert {name: referenced(config, name) for name in registry.ALL} == files
    for result in (planned["metric_samples"], done["metric_samples"]):
        assert result.written == ()
        assert result.unchanged == ("2026-03-31", "2026-04-01")
        ((day, why),) = result.kept
        assert day == "2026-04-02"
        assert why.startswith("written since the migration by ingest (table version ")
        assert why.endswith("; kept")
        assert result.untouched == ("2026-04-03",)
        assert result.rows == EXPECTED["metric_samples"].rows - 8640
    assert all(not r.written for r in done.values())
    assert "2026-04-03" in done["metric_series"].untouched
    dry = format_row(planned["metric_samples"], dry_run=True)
    assert "would keep 2026-04-02: written since the migration by ingest" in dry
    assert "would be left as the table has them (migrate deletes nothing): 2026-04-03" in dry
    assert "nothing would be deleted" in format_footer(list(planned.values()), dry_run=True)
    samples = delta.scan(config, "metric_samples")
    assert delta_row(config, f"SELECT count(*) FROM {samples} WHERE dt = '2026-04-02'") == (
        8640 + 7,
    )
    assert partitions_listed(config, "metric_samples") == partitions_logged(
        config, "metric_samples"
    )


def test_a_day_the_old_layout_gained_since_is_rewritten_and_lake_partitions_follows(
    tmp_path: Path,
) -> None:
    """A day whose newest commit is migrate's is the old layout's copy: when the old layout
    holds more of it (an older version still wrote it), the rerun replaces it, and the
    catalog's lake_partitions lists the new file instead of the replaced one."""
    config = legacy_config(tmp_path)
    put_back = late_hour(Path(config.lake_root), "log_records")
    migrate(config)
    build_catalog(config)
    replaced = partitions_listed(config, "log_records")
    put_back()

    done = {r.dataset: r for r in migrate(config)}

    listed = partitions_listed(config, "log_records")
    assert listed == partitions_logged(config, "log_records") != replaced
    assert done["log_records"].written == ("2026-04-02",)
    assert done["log_records"].unchanged == ("2026-03-30", "2026-03-31", "2026-04-01")
    assert done["log_records"].rows == EXPECTED["log_records"].rows
    assert all(not r.written for name, r in done.items() if name != "log_records")
    assert_reads_as_expected(config, ["log_records"])


def test_a_day_expired_by_tiering_is_not_brought_back(tmp_path: Path) -> None:
    config = legacy_config(tmp_path)
    migrate(config, ["log_records"])
    DeltaTable(delta.table_uri(config, "log_records")).delete(
        "dt = '2026-03-30'",
        commit_properties=CommitProperties(
            custom_metadata={"obs.operation": "expire", "obs.days": "2026-03-30"}
        ),
    )

    (result,) = migrate(config, ["log_records"])

    assert result.written == ()
    ((day, why),) = result.kept
    assert day == "2026-03-30" and "written since the migration by expire" in why
    logs = delta.scan(config, "log_records")
    assert delta_row(config, f"SELECT min(dt), count(*) FROM {logs}") == ("2026-03-31", 450)


def test_a_day_ingest_writes_while_migrate_runs_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plan is read again before each day is written: an ingest commit made since keeps
    its day from being replaced."""
    config = legacy_config(tmp_path)
    real_write = delta.write_day
    commits: list[str | None] = []

    def dies_after_one(*args: Any, **kwargs: Any) -> None:
        if commits:
            raise LakeError("killed")
        commits.append(args[2])
        real_write(*args, **kwargs)

    monkeypatch.setattr(delta, "write_day", dies_after_one)
    with pytest.raises(LakeError, match="killed"):
        migrate(config, ["metric_samples"])
    hour = TimeWindow(utc("2026-04-02T10:00:00Z"), utc("2026-04-02T11:00:00Z"))

    def ingest_meanwhile(*args: Any, **kwargs: Any) -> None:
        if args[2] == "2026-04-01":
            Lake(config).tables.write_hour("metric_samples", hour, some_samples(hour))
        real_write(*args, **kwargs)

    monkeypatch.setattr(delta, "write_day", ingest_meanwhile)
    (result,) = migrate(config, ["metric_samples"])

    assert commits == ["2026-03-31"]
    assert result.unchanged == ("2026-03-31",)
    assert result.written == ("2026-04-01",)
    assert [day for day, _ in result.kept] == ["2026-04-02"]
    assert "by ingest" in result.kept[0][1]
    samples = delta.scan(config, "metric_samples")
    assert delta_row(config, f"SELECT count(*) FROM {samples} WHERE dt = '2026-04-02'") == (7,)
