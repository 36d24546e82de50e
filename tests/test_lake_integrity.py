"""The lake under damage and with age: sub-millisecond times through compaction, re-ingest and
expiry, stray and hidden Parquet files in a table's folder, data files the log references gone
or truncated, a catalog held open across tiering, and what a killed catalog build leaves."""

import os
import shutil
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
import yaml

from obs_pipelines import cli
from obs_pipelines.config import ObsConfig, parse_config
from obs_pipelines.datasets import SCHEMAS
from obs_pipelines.errors import LakeError
from obs_pipelines.lake import Lake, delta
from obs_pipelines.lake.catalog import build_catalog, connect, refresh_catalog
from obs_pipelines.lake.delta_tiering import DeltaMove
from obs_pipelines.lake.tiering import run_tiering
from obs_pipelines.operations.doctor import run_checks
from obs_pipelines.reporting.reports import report_connection
from obs_pipelines.sources import metric_source, table_source
from obs_pipelines.windows import TimeWindow
from tests.tiering_data import day, some_hours, tiered_config, tiered_settings

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
    """Row count and an order-independent content hash of every dataset view (they read the
    tables live: the catalog is built once)."""
    own = con is None
    if own:
        refresh_catalog(config)
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
    now = DAYS[0] + timedelta(days=2, hours=1)

    def crash_after_commit(step: str, move: DeltaMove) -> None:
        if step == "commit":
            raise RuntimeError("killed after the first commit")

    # The first day is compacted; the run dies right after its first commit.
    with pytest.raises(RuntimeError):
        run_tiering(config, now, hook=crash_after_commit)
    assert view_contents(config) == original
    done = run_tiering(config, now)
    assert done.problems == [] and {"spans", "log_records"} <= {m.dataset for m in done.moves}
    assert view_contents(config) == original

    # An hour of the compacted day ingested again: unchanged, the views do not change (the
    # hour's series are compacted into the day again, rollups remade from the rewritten samples
    # file); with a row fewer, the view has one row fewer; whole again, the rows are back.
    ingest(config, hours[:1])
    same = run_tiering(config, now)
    assert same.problems == []
    assert {m.dataset for m in same.moves} <= {"metric_series", "metric_rollups"}
    assert view_contents(config) == original
    fewer = Lake(config).read_hot("spans", hours[0])
    assert fewer is not None and fewer.num_rows > 1
    Lake(config).write_hot("spans", hours[0], fewer.slice(1))
    late = run_tiering(config, now)
    assert late.problems == []
    assert view_contents(config)["spans"][0] == original["spans"][0] - 1
    ingest(config, hours[:1])
    run_tiering(config, now)
    assert view_contents(config) == original

    # Both days compacted, then raw samples expire (their rollups are the metrics from then
    # on): every other dataset keeps every row, sub-millisecond times included.
    run_tiering(config, DAYS[1] + timedelta(days=2))
    assert view_contents(config) == original
    expired = run_tiering(config, DAYS[1] + timedelta(days=4))
    assert expired.problems == [] and {d.dataset for d in expired.deletions} == {"metric_samples"}
    assert without_raw(view_contents(config)) == without_raw(original)
    assert view_contents(config)["metric_samples"] == (0, 0)


def table_folder(config: ObsConfig, dataset: str) -> Path:
    return Path(delta.table_uri(config, dataset))


def test_stray_and_hidden_parquet_files_are_never_read_or_compacted(tmp_path: Path) -> None:
    config = tiered_config(tmp_path, RETENTION)
    ingest(config, some_hours(DAYS[:1], (2, 5)))
    original = view_contents(config)
    partition = table_folder(config, "log_records") / "dt=2026-03-30"
    (published, *_) = sorted(partition.glob("part-h02-*.parquet"))
    strays = [
        partition / "part-00001.parquet",
        partition / ".part-h02-hidden.parquet",
        partition / "copy" / "part-00000.parquet",
        table_folder(config, "log_records") / "part-00000.parquet",
    ]
    for stray in strays:
        stray.parent.mkdir(exist_ok=True)
        shutil.copy(published, stray)

    # Delta readers read the files the log lists, never a listing of the folder.
    assert view_contents(config) == original
    held = Lake(config).tables.read_window("log_records", None)
    assert held.num_rows == original["log_records"][0]
    result = run_tiering(config, DAYS[0] + timedelta(days=2, hours=1))

    assert result.problems == []
    (compacted,) = [m for m in result.moves if m.dataset == "log_records"]
    assert compacted.rows == original["log_records"][0] and compacted.source_files == 2
    assert view_contents(config) == original
    assert all(stray.exists() for stray in strays), "files outside the log are not touched"


def break_file(config: ObsConfig, dataset: str, how: str) -> str:
    """Delete or truncate the data file of hour 05 of ``dataset``; its path in the table."""
    folder = table_folder(config, dataset)
    (target,) = sorted(folder.glob("dt=2026-03-30/part-h05-*.parquet"))
    if how == "deleted":
        target.unlink()
    else:
        target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    return target.relative_to(folder).as_posix()


@pytest.mark.parametrize("how", ["deleted", "truncated"])
def test_a_file_the_log_references_gone_or_damaged_is_named_in_one_line(
    tmp_path: Path, how: str
) -> None:
    config = tiered_config(tmp_path, RETENTION)
    ingest(config, some_hours(DAYS[:1], (4, 5)))
    path = break_file(config, "spans", how)

    results = run_checks(config, dagster_home=str(tmp_path))

    (tables,) = [r for r in results if r.check == "lake.tables"]
    line = tables.line()
    assert not tables.ok and "\n" not in line
    assert f"spans/{path}" in line
    assert f"spans/{path}: " + ("missing" if how == "deleted" else "") in line
    if how == "truncated":
        assert "bytes where the log says" in line
    assert "obs materialize" in line
    if how == "deleted":
        build_catalog(config)
        con = connect(config)
        with pytest.raises(Exception, match=path.split("/")[-1]) as error:
            con.execute("SELECT count(*) FROM spans").fetchall()
        con.close()
        assert "\n" not in str(error.value)
        with pytest.raises(LakeError, match=path.split("/")[-1]) as error:
            Lake(config).tables.read_window("spans", None)
        assert "\n" not in str(error.value)


def test_a_report_over_a_data_file_gone_is_one_line_and_writes_no_html(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "obs.yaml"
    settings = tiered_settings(tmp_path, RETENTION)
    path.write_text(yaml.safe_dump({**settings, "ingest": {"start": "2026-03-01T00:00:00Z"}}))
    config = tiered_config(tmp_path, RETENTION)
    ingest(config, some_hours(DAYS[:1], (4, 5)))
    gone = break_file(config, "log_records", "deleted")
    html = tmp_path / "report.html"

    # A period holding the file's hour: reports read only the days of their period.
    period = ["--from", "2026-03-30", "--to", "2026-03-31"]
    code = cli.main(["--config", str(path), "report", *period, "-o", str(html)])

    (line,) = capsys.readouterr().err.splitlines()
    assert code == 2
    assert line.startswith("obs: error: could not read the lake for the report under ")
    assert gone.split("/")[-1] in line and "obs doctor" in line
    assert not html.exists()


def test_a_damaged_table_log_stops_report_and_query_sessions_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "obs.yaml"
    path.write_text(yaml.safe_dump(tiered_settings(tmp_path, RETENTION)))
    config = tiered_config(tmp_path, RETENTION)
    ingest(config, some_hours(DAYS[:1], (4,)))
    build_catalog(config)
    commit = sorted(Path(delta.table_uri(config, "spans"), "_delta_log").glob("*.json"))[-1]
    commit.write_text("garbage{")

    def obs_query(sql: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "obs_pipelines.cli", "--config", str(path), "query", sql],
            capture_output=True,
            text=True,
            env={**os.environ, "RUST_BACKTRACE": "1"},  # delta-rs then appends a stack trace
            timeout=120,
        )

    other = obs_query("SELECT count(*) AS n FROM metric_samples")
    reaching = obs_query("SELECT count(*) FROM service_dependencies")  # reads spans
    with pytest.raises(LakeError) as report:
        report_connection(config)
    (tables,) = [
        r for r in run_checks(config, dagster_home=str(tmp_path)) if r.check == "lake.tables"
    ]

    assert other.returncode == 0 and "n" in other.stdout  # a query that does not reach it runs
    assert reaching.returncode == 2 and reaching.stdout == ""
    (line,) = reaching.stderr.splitlines()
    assert line.startswith(
        f"obs: error: could not read the spans table under {Path(commit).parents[2]}: "
    )
    assert "obs doctor" in line
    assert str(report.value).startswith("could not read the spans table") and "\n" not in str(
        report.value
    )
    assert not tables.ok and "spans" in tables.line() and "<unknown>" not in tables.line()


def test_tiering_over_a_deleted_file_names_it_in_one_line_and_tiers_the_other_tables(
    tmp_path: Path,
) -> None:
    config = tiered_config(tmp_path, RETENTION)
    ingest(config, some_hours(DAYS[:1], (4, 5)))
    path = break_file(config, "log_records", "deleted")

    result = run_tiering(config, DAYS[0] + timedelta(days=2, hours=1))

    assert list(result.failed) == ["log_records"]
    line = result.failed["log_records"]
    assert path.split("/")[-1] in line and "\n" not in line and "obs lake repair" in line
    assert line in result.problems
    assert {"spans", "metric_samples"} <= {m.dataset for m in result.moves}


def test_a_catalog_held_open_keeps_every_row_across_every_tiering_run(tmp_path: Path) -> None:
    config = tiered_config(tmp_path, RETENTION)
    ingest(config, some_hours(DAYS, (0, 12, 23)))
    original = view_contents(config)
    con = connect(config)  # built before any tiering

    for now in (
        DAYS[0] + timedelta(days=2, hours=1),
        DAYS[1] + timedelta(days=2, hours=1),
        DAYS[0] + timedelta(days=4),
        DAYS[1] + timedelta(days=4),
    ):
        result = run_tiering(config, now)
        assert result.problems == []
        assert without_raw(view_contents(config, con)) == without_raw(original)
    assert view_contents(config, con)["metric_samples"] == (0, 0)
    con.close()


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
