"""`obs lake migrate`: the tiered lake becomes Delta tables that DuckDB (delta-kernel), delta-rs
and polars read with the same rows as the catalog's views, locally and on S3; reruns converge."""

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from obs_pipelines import datasets as registry
from obs_pipelines.cli import main
from obs_pipelines.config import ObsConfig, parse_config
from obs_pipelines.errors import LakeError
from obs_pipelines.lake import Lake, delta
from obs_pipelines.lake.catalog import build_catalog, connect
from obs_pipelines.lake.checksum import Checksum, table_checksum
from obs_pipelines.lake.migrate import MigrationMismatch, migrate
from obs_pipelines.lake.tiering import run_tiering
from obs_pipelines.operations.doctor import CheckResult, run_checks
from obs_pipelines.schemas import ALERTMANAGER_ALERTS, UP_MINUTES
from obs_pipelines.windows import TimeWindow
from tests.tiering_data import (
    RETENTION,
    day,
    log_hour,
    metric_hour,
    some_hours,
    tiered_config,
    write_hours,
)

pytestmark = pytest.mark.integration  # writes, tiers, catalogs and converts whole lakes

DAYS = [day("2026-03-30"), day("2026-03-31"), day("2026-04-01"), day("2026-04-02")]
HOURS = some_hours(DAYS)
# What the lake below holds rows of; every other registered dataset is an empty table.
WRITTEN = {
    "metric_series",
    "metric_samples",
    "log_records",
    "alert_rules",
    "alertmanager_alerts",
    "up_minutes",
    "metric_rollups",
}


def up_hour(hour: TimeWindow) -> pa.Table:
    minutes = [hour.start + timedelta(minutes=m) for m in range(60)]
    return pa.table(
        {
            "service": ["svc-a"] * 60,
            "minute": pa.array(minutes, pa.timestamp("ms")),
            "up_samples": pa.array(np.full(60, 4), pa.int64()),
            "up_ok_samples": pa.array(np.arange(60) % 5, pa.int64()),
            "resolution": ["raw"] * 60,
        },
        schema=UP_MINUTES,
    )


def alertmanager_hour(hour: TimeWindow) -> pa.Table:
    """Two alerts, with list columns (silences, receivers) and a NULL end."""
    labels = ALERTMANAGER_ALERTS.field("labels").type
    return pa.table(
        {
            "snapshot_at": pa.array([hour.end] * 2, pa.timestamp("ms")),
            "fingerprint": ["a1b2", "c3d4"],
            "alertname": ["HighErrorRate", "HighCPUUsage"],
            "severity": ["page", "ticket"],
            "category": [None, "saturation"],
            "service": ["svc-a", "svc-b"],
            "labels": pa.array([[("severity", "page")], []], labels),
            "annotations": pa.array([[("summary", f"at {hour.start:%H}")], None], labels),
            "starts_at": pa.array([hour.start, hour.start], pa.timestamp("ms")),
            "ends_at": pa.array([hour.end, None], pa.timestamp("ms")),
            "updated_at": pa.array([hour.end, hour.end], pa.timestamp("ms")),
            "state": ["active", "suppressed"],
            "silenced_by": [[], ["silence-1"]],
            "inhibited_by": [[], []],
            "receivers": [["pager"], ["pager", "mail"]],
            "generator_url": [None, "http://prometheus/graph"],
        },
        schema=ALERTMANAGER_ALERTS,
    )


def build_lake(config: ObsConfig, hours: list[TimeWindow] = HOURS) -> ObsConfig:
    """Hours over four days tiered so that 03-30 is cold (raw samples expired, rollups kept),
    03-31 warm and April hot; then the catalog. The last hour's series have ids of 2**63 and
    more (Delta has no unsigned type)."""
    lake = Lake(config)
    write_hours(lake, hours)
    # One hour's series get ids with the top bit set: stored as negative BIGINTs in Delta.
    series, samples = metric_hour(hours[-1])
    top = pa.scalar(1 << 63, pa.uint64())
    lake.write_hot(
        "metric_series",
        hours[-1],
        series.set_column(0, "series_id", pc.bit_wise_or(series["series_id"], top)),
    )
    lake.write_hot(
        "metric_samples",
        hours[-1],
        samples.set_column(0, "series_id", pc.bit_wise_or(samples["series_id"], top)),
    )
    for hour in hours:
        lake.write_hot("up_minutes", hour, up_hour(hour))
        lake.write_hot("alertmanager_alerts", hour, alertmanager_hour(hour))
    run_tiering(config, DAYS[0] + timedelta(days=2))
    run_tiering(config, DAYS[0] + timedelta(days=4, hours=12))
    build_catalog(config)
    return config


def columns(dataset: str) -> str:
    return ", ".join(f'"{c}"' for c in delta.layout(dataset).columns)


def view_checksum(config: ObsConfig, dataset: str, where: str = "") -> Checksum:
    con = connect(config)
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


def delta_count(config: ObsConfig, sql: str) -> tuple[Any, ...]:
    con = delta.delta_connection(config)
    try:
        row = con.execute(sql).fetchone()
        assert row is not None
        return row
    finally:
        con.close()


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> ObsConfig:
    config = build_lake(tiered_config(tmp_path_factory.mktemp("migrate")))
    migrate(config)
    return config


def test_every_dataset_reads_the_same_from_the_views_duckdb_delta_rs_and_polars(
    migrated: ObsConfig,
) -> None:
    con = connect(migrated)
    tiers = set(
        con.execute('SELECT DISTINCT dataset, tier FROM lake_partitions WHERE "current"').fetchall()
    )
    con.close()
    assert {("log_records", t) for t in ("hot", "warm", "cold")} <= tiers
    assert {
        ("metric_samples", "hot"),
        ("metric_samples", "warm"),
        ("metric_rollups", "cold"),
    } <= tiers

    for name in registry.ALL:
        expected = view_checksum(migrated, name)
        assert (expected.rows > 0) == (name in WRITTEN), name
        assert duckdb_checksum(migrated, name) == expected, name
        assert delta_rs_checksum(migrated, name) == expected, name
        assert polars_checksum(migrated, name) == expected, name


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
    # one commit per day: the three days of raw samples are versions 0, 1 and 2
    assert table("metric_samples").version() == 2


def test_files_are_sorted_and_use_the_compact_encodings(migrated: ObsConfig) -> None:
    uri = delta.table_uri(migrated, "metric_samples")
    live = DeltaTable(uri).file_uris()
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
    rows, first, last = delta_count(
        migrated,
        f"SELECT count(*), min(timezone('UTC', ts)), max(timezone('UTC', ts)) FROM {uri} "
        "WHERE dt = '2026-03-31'",
    )
    expected = view_checksum(
        migrated, "metric_samples", "WHERE ts >= '2026-03-31' AND ts < '2026-04-01'"
    )
    assert rows == expected.rows > 0
    assert (first.date().isoformat(), last.date().isoformat()) == ("2026-03-31", "2026-03-31")
    assert duckdb_checksum(migrated, "metric_samples", "WHERE dt = '2026-03-31'") == expected


def test_a_second_migrate_adds_no_rows(migrated: ObsConfig) -> None:
    before = {name: duckdb_checksum(migrated, name) for name in WRITTEN}

    again = migrate(migrated)

    assert all(r.verified for r in again)
    assert {name: duckdb_checksum(migrated, name) for name in WRITTEN} == before
    samples = delta.scan(migrated, "metric_samples")
    logs = delta.scan(migrated, "log_records")
    assert delta_count(
        migrated, f"SELECT count(*) - count(DISTINCT (series_id, ts)) FROM {samples}"
    ) == (0,)
    assert delta_count(migrated, f"SELECT count(*) - count(DISTINCT doc_id) FROM {logs}") == (0,)


def test_dry_run_writes_nothing_and_counts_what_migrate_then_converts(tmp_path: Path) -> None:
    config = build_lake(tiered_config(tmp_path))

    planned = migrate(config, dry_run=True)

    assert not (Path(config.lake_root) / "delta").exists()
    assert sum(p.rows for p in planned) > 0
    assert all(not p.verified for p in planned)
    done = migrate(config)
    assert [(d.dataset, d.days, d.rows) for d in done] == [
        (p.dataset, p.days, p.rows) for p in planned
    ]
    assert [p.source_bytes for p in planned] == [d.source_bytes for d in done]
    assert {p.dataset for p in planned if p.source_bytes} == WRITTEN


def delta_check(config: ObsConfig) -> CheckResult:
    return next(r for r in run_checks(config, checksums=False) if r.check == "lake.delta")


def test_doctor_says_when_the_delta_tables_fall_behind_the_lake(tmp_path: Path) -> None:
    config = build_lake(tiered_config(tmp_path))

    migrate(config)
    current = delta_check(config)
    Lake(config).write_hot("log_records", HOURS[-1], log_hour(HOURS[-1]))
    behind = delta_check(config)

    assert (
        current.ok
        and not current.warn
        and "Delta tables hold what the lake holds" in current.detail
    )
    assert behind.ok and behind.warn
    assert "are behind the lake (log_records)" in behind.detail
    assert behind.fix == "rerun `obs lake migrate`"


def test_an_interrupted_migrate_then_a_full_one_converges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = build_lake(tiered_config(tmp_path))
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
    assert commits  # some days were committed before the run died

    migrate(config)

    for name in WRITTEN:
        assert duckdb_checksum(config, name) == view_checksum(config, name), name


def test_days_the_lake_no_longer_holds_are_removed_from_the_tables(tmp_path: Path) -> None:
    config = build_lake(tiered_config(tmp_path))
    migrate(config, ["log_records"])
    run_tiering(config, DAYS[0] + timedelta(days=21))  # 03-30 passes log retention (20 days)
    build_catalog(config)

    result = migrate(config, ["log_records"])

    assert result[0].stale_days_deleted == 1
    assert duckdb_checksum(config, "log_records") == view_checksum(config, "log_records")
    assert delta_count(config, f"SELECT min(dt) FROM {delta.scan(config, 'log_records')}") == (
        "2026-03-31",
    )


def test_a_day_that_does_not_read_back_the_same_is_an_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = build_lake(tiered_config(tmp_path), some_hours(DAYS[2:], (0, 7)))
    real = delta.to_delta
    monkeypatch.setattr(delta, "to_delta", lambda batch, table: real(batch.slice(1), table))

    with pytest.raises(
        MigrationMismatch, match=r"metric_samples 2026-04-01: the Delta table holds"
    ):
        migrate(config, ["metric_samples"])


def test_a_lake_on_s3_converts_and_reads_the_same_everywhere(s3_lake: dict[str, Any]) -> None:
    config = build_lake(
        parse_config({"lake": {**s3_lake, "delete_delay": "0s"}, "retention": RETENTION}),
        HOURS[:6],
    )

    planned = migrate(config, dry_run=True)
    assert not [o for o in Lake(config).store("hot").list_objects("delta/")]
    migrate(config)
    migrate(config)  # a rerun on S3 converges too (conditional PUT commits)

    assert [
        o.key for o in Lake(config).store("hot").list_objects("delta/metric_samples/_delta_log/")
    ]
    for name in ("metric_samples", "metric_series", "log_records", "alert_rules", "metric_rollups"):
        expected = view_checksum(config, name)
        assert expected.rows == next(p.rows for p in planned if p.dataset == name) > 0, name
        assert duckdb_checksum(config, name) == expected, name
        assert delta_rs_checksum(config, name) == expected, name
        assert polars_checksum(config, name) == expected, name

    unreachable = {**s3_lake, "s3": {**s3_lake["s3"], "endpoint_url": "http://127.0.0.1:9"}}
    down = parse_config({"lake": unreachable, "retention": RETENTION})
    with pytest.raises(LakeError, match="could not migrate log_records") as refused:
        migrate(down, ["log_records"])
    assert "\n" not in str(refused.value) and "testing-secret" not in str(refused.value)


def test_cli_without_a_catalog_says_to_run_obs_catalog(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config()

    code = main(["--config", str(path), "lake", "migrate", "--dry-run"])

    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and "run `obs catalog`" in err


def test_cli_prints_a_line_per_dataset_and_refuses_unknown_names(
    migrated: ObsConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "obs.yaml"
    path.write_text(f"lake:\n  root: {migrated.lake_root}\n  catalog: {migrated.catalog_path}\n")

    code = main(["--config", str(path), "lake", "migrate", "--dataset", "log_records"])

    out, _ = capsys.readouterr()
    lines = out.splitlines()
    assert code == 0
    assert lines[0].split() == ["dataset", "days", "rows", "verified", "seconds"]
    assert lines[1].split()[:4] == ["log_records", "4", "600", "yes"]
    with pytest.raises(LakeError, match="no dataset nope"):
        migrate(migrated, ["nope"])


def test_duckdb_reads_series_ids_back_as_the_unsigned_ids_of_the_views(migrated: ObsConfig) -> None:
    con = connect(migrated)
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


def data_files(config: ObsConfig, dataset: str) -> set[Path]:
    """The Parquet files under a table's folder (its log's checkpoints excluded)."""
    root = Path(delta.table_uri(config, dataset))
    return {p.resolve() for p in root.rglob("*.parquet") if "_delta_log" not in p.parts}


def referenced(config: ObsConfig, dataset: str) -> set[Path]:
    return {Path(uri).resolve() for uri in DeltaTable(delta.table_uri(config, dataset)).file_uris()}


def test_vacuum_after_delete_delay_leaves_only_the_files_the_log_references(
    tmp_path: Path,
) -> None:
    prompt = build_lake(tiered_config(tmp_path))  # delete_delay 0s
    patient = tiered_config(tmp_path, delete_delay="1d")  # the same lake
    migrate(patient)
    first = {name: DeltaTable(delta.table_uri(patient, name)).version() for name in WRITTEN}

    again = migrate(patient)

    # replaced files younger than delete_delay stay: a reader of the first version still works
    assert sum(r.files_vacuumed for r in again) == 0
    for name in WRITTEN:
        assert data_files(patient, name) > referenced(patient, name), name
        old = DeltaTable(delta.table_uri(patient, name), version=first[name])
        assert table_checksum(
            old.to_pyarrow_table().select(delta.layout(name).columns)
        ) == view_checksum(patient, name), name
    before = {name: data_files(prompt, name) for name in registry.ALL}

    done = migrate(prompt)

    deleted = sum(len(before[name] - data_files(prompt, name)) for name in registry.ALL)
    assert sum(r.files_vacuumed for r in done) == deleted > 0
    for name in registry.ALL:
        assert data_files(prompt, name) == referenced(prompt, name), name
        assert duckdb_checksum(prompt, name) == view_checksum(prompt, name), name
        assert delta_rs_checksum(prompt, name) == view_checksum(prompt, name), name
