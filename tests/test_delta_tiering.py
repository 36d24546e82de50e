"""Tiering of a Delta lake (lake.format: delta) against the files layout on the same hot data:
raw samples bit-exact after compaction, rollups bit-identical, the same series, retention by
day, one commit per compacted day, nothing committed by a rerun, vacuum after the delay, and a
concurrent re-ingest or a crash losing nothing."""

from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from obs_pipelines.config import ObsConfig, parse_config
from obs_pipelines.lake import Lake, delta
from obs_pipelines.lake.catalog import build_catalog, connect
from obs_pipelines.lake.delta_tables import DeltaTables
from obs_pipelines.lake.delta_tiering import STEPS, DeltaMove
from obs_pipelines.lake.tiering import run_tiering
from obs_pipelines.windows import HOUR, TimeWindow
from tests.tiering_data import (
    RETENTION,
    day,
    log_hour,
    metric_hour,
    some_hours,
    tiered_config,
    write_hours,
)

pytestmark = pytest.mark.integration  # writes and tiers whole lakes, seconds per test

DAYS = [day("2026-03-30"), day("2026-03-31"), day("2026-04-01"), day("2026-04-02")]
TABLES = ("metric_series", "metric_samples", "log_records", "alert_rules", "metric_rollups")
EVERYTHING = TimeWindow(day("2026-01-01"), day("2027-01-01"))


def delta_config(root: Path, **lake: Any) -> ObsConfig:
    return tiered_config(root, format="delta", **lake)


def as_bits(table: pa.Table, order: list[str]) -> dict[str, list[Any]]:
    """Every column, sorted by ``order``, with doubles as their 64 bits (NaN payloads, -0.0)."""
    table = table.sort_by([(c, "ascending") for c in order])
    out = {}
    for name in sorted(table.column_names):
        column = table.column(name).combine_chunks()
        if pa.types.is_floating(column.type):
            out[name] = np.asarray(column).view(np.uint64).tolist()
        elif pa.types.is_timestamp(column.type):
            out[name] = column.cast(pa.timestamp("ms")).cast(pa.int64()).to_pylist()
        else:
            out[name] = column.to_pylist()
    return out


def files_view(config: ObsConfig, sql: str) -> pa.Table:
    build_catalog(config)
    con = connect(config)
    try:
        return con.execute(sql).to_arrow_table()
    finally:
        con.close()


def delta_rows(config: ObsConfig, dataset: str) -> pa.Table:
    return DeltaTables(config).read_window(dataset, EVERYTHING)


def delta_series(config: ObsConfig) -> list[tuple[Any, ...]]:
    """Series as the catalog's view collapses them: first and last hour seen, over all days."""
    con = delta.delta_connection(config)
    rows = con.execute(
        "SELECT (series_id::HUGEINT & 18446744073709551615)::UBIGINT AS series_id, metric, "
        "service, instance, make_timestamp(epoch_us(min(first_seen_hour))) AS f, "
        "make_timestamp(epoch_us(max(last_seen_hour))) AS l "
        f"FROM {delta.scan(config, 'metric_series')} GROUP BY ALL ORDER BY series_id"
    ).fetchall()
    con.close()
    return rows


def files_series(config: ObsConfig) -> list[tuple[Any, ...]]:
    rows = files_view(
        config,
        "SELECT series_id, metric, service, instance, first_seen_hour AS f, last_seen_hour AS l "
        "FROM metric_series ORDER BY series_id",
    )
    return [tuple(r.values()) for r in rows.to_pylist()]


def day_files(config: ObsConfig, dataset: str) -> dict[str, int]:
    """Files per partition (``dt=..`` or ``resolution=../dt=..``) in the newest version."""
    table = DeltaTables(config).open(dataset)
    actions = pa.table(table.get_add_actions(flatten=True)).to_pylist()
    found: dict[str, int] = {}
    for a in actions:
        key = f"dt={a['partition.dt']}"
        if a.get("partition.resolution"):
            key = f"resolution={a['partition.resolution']}/{key}"
        found[key] = found.get(key, 0) + 1
    return found


def versions(config: ObsConfig, datasets: tuple[str, ...] = TABLES) -> dict[str, int]:
    return {d: DeltaTables(config).open(d).version() for d in datasets}


def commits(config: ObsConfig, dataset: str, operation: str) -> list[dict[str, Any]]:
    history = DeltaTables(config).open(dataset).history()
    return [c for c in history if c.get("obs.operation") == operation]


def parquet_files(config: ObsConfig, dataset: str) -> set[str]:
    root = Path(delta.table_uri(config, dataset))
    found = {p.relative_to(root).as_posix() for p in root.rglob("*.parquet")}
    return {f for f in found if not f.startswith("_delta_log/")}


def assert_same_as_files(files: ObsConfig, config: ObsConfig) -> None:
    """Samples, rollups and series of the Delta lake equal the files lake's, bit for bit."""
    samples = files_view(files, "SELECT series_id, ts, value FROM metric_samples")
    assert as_bits(delta_rows(config, "metric_samples"), ["series_id", "ts"]) == as_bits(
        samples, ["series_id", "ts"]
    )
    rollups = files_view(files, "SELECT * FROM metric_rollups")
    key = ["series_id", "resolution", "ts"]
    mine = delta_rows(config, "metric_rollups")
    assert mine.num_rows and as_bits(mine, key) == as_bits(rollups, key)
    assert delta_series(config) == files_series(files)


def test_tiering_a_delta_lake_gives_the_files_layouts_rows_bit_for_bit(tmp_path: Path) -> None:
    files, config = tiered_config(tmp_path / "files"), delta_config(tmp_path / "delta")
    write_hours(Lake(files), some_hours(DAYS))
    write_hours(Lake(config), some_hours(DAYS))
    original = as_bits(delta_rows(config, "metric_samples"), ["series_id", "ts"])
    logs = as_bits(delta_rows(config, "log_records"), ["doc_id"])
    rules = as_bits(delta_rows(config, "alert_rules"), ["snapshot_at", "name"])

    # 03-30 leaves hot; then 03-31 and 04-01 do and raw 03-30 passes retention (3 days).
    for now, compacted, kept_raw, rolled in (
        (DAYS[0] + timedelta(days=2), ["2026-03-30"], DAYS, DAYS[:1]),
        (DAYS[0] + timedelta(days=4, hours=12), ["2026-03-31", "2026-04-01"], DAYS[1:], DAYS[:3]),
    ):
        assert not run_tiering(files, now).problems
        result = run_tiering(config, now)

        assert not result.problems
        assert sorted(m.partition for m in result.moves if m.dataset == "metric_samples") == [
            f"dt={d}" for d in compacted
        ]
        assert_same_as_files(files, config)
        assert sorted(day_files(config, "metric_samples")) == [f"dt={d:%Y-%m-%d}" for d in kept_raw]
        # Compacted days hold one file; the rest keep their three hourly files.
        for name in ("metric_samples", "log_records", "alert_rules", "metric_series"):
            held = day_files(config, name)
            assert all(held[f"dt={d}"] == 1 for d in compacted)
            assert held["dt=2026-04-02"] == 3
        assert day_files(config, "metric_rollups") == {
            f"resolution={r}/dt={d:%Y-%m-%d}": 1 for r in ("5m", "1h") for d in rolled
        }
        before = versions(config)
        again = run_tiering(config, now)
        assert (again.moves, again.deletions, again.problems) == ([], [], [])
        assert versions(config) == before, "a rerun on a tiered lake commits nothing"

    kept = [i for i, t in enumerate(original["ts"]) if t >= int(DAYS[1].timestamp() * 1000)]
    assert as_bits(delta_rows(config, "metric_samples"), ["series_id", "ts"]) == {
        k: [v[i] for i in kept] for k, v in original.items()
    }
    assert as_bits(delta_rows(config, "log_records"), ["doc_id"]) == logs
    assert as_bits(delta_rows(config, "alert_rules"), ["snapshot_at", "name"]) == rules
    # metric_series keeps one row per series per compacted day, first and last hour seen.
    con = delta.delta_connection(config)
    per_day = con.execute(
        "SELECT dt, count(*), count(DISTINCT series_id), min(epoch_ms(first_seen_hour)), "
        f"max(epoch_ms(last_seen_hour)) FROM {delta.scan(config, 'metric_series')} "
        "WHERE dt = '2026-03-30' GROUP BY dt"
    ).fetchall()
    con.close()
    start = int(DAYS[0].timestamp() * 1000)
    assert per_day == [("2026-03-30", 12, 12, start, start + 23 * 3_600_000)]
    # One compaction commit per table and day, made when the day left hot.
    compactions = commits(config, "metric_samples", "compact")
    assert sorted(c["obs.day"] for c in compactions) == ["2026-03-30", "2026-03-31", "2026-04-01"]
    rollup_commits = commits(config, "metric_rollups", "rollup")
    assert sorted((c["obs.resolution"], c["obs.day"]) for c in rollup_commits) == sorted(
        (r, d) for r in ("5m", "1h") for d in ("2026-03-30", "2026-03-31", "2026-04-01")
    )
    (expired,) = commits(config, "metric_samples", "expire")
    assert expired["obs.days"] == "2026-03-30" and expired["operation"] == "DELETE"

    last = run_tiering(config, DAYS[-1] + timedelta(days=21))  # past every retention
    assert {d.reason for d in last.deletions} == {"expired"}
    assert all(day_files(config, name) == {} for name in TABLES)
    assert all(parquet_files(config, name) == set() for name in TABLES), "vacuumed at 0s delay"


def test_vacuum_deletes_replaced_files_only_after_the_delete_delay(tmp_path: Path) -> None:
    config = delta_config(tmp_path, delete_delay="2h")
    write_hours(Lake(config), some_hours(DAYS[:2]))
    hourly = parquet_files(config, "log_records")
    old = DeltaTables(config).open("log_records").version()

    run_tiering(config, DAYS[0] + timedelta(days=2))

    assert (
        len(day_files(config, "log_records")) == 2 and parquet_files(config, "log_records") > hourly
    )
    reader = DeltaTables(config).open("log_records")
    reader.load_as_version(old)  # a reader that opened the table before the compaction
    assert reader.to_pyarrow_table().num_rows == 6 * 50
    before = versions(config)
    assert run_tiering(config, DAYS[0] + timedelta(days=2)).notes == []
    assert versions(config) == before, "nothing to vacuum yet, nothing committed"

    later = delta_config(tmp_path, delete_delay="0s")  # the delay has passed
    result = run_tiering(later, DAYS[0] + timedelta(days=2))

    assert any(n.startswith("log_records: vacuumed") for n in result.notes)
    replaced = {f for f in hourly if f.startswith("dt=2026-03-30/")}
    assert len(replaced) == 3 and not replaced & parquet_files(config, "log_records")
    assert {f for f in hourly if f.startswith("dt=2026-03-31/")} <= parquet_files(
        config, "log_records"
    )
    before = versions(later)
    run_tiering(later, DAYS[0] + timedelta(days=2))
    assert versions(later) == before


def test_an_hour_re_ingested_while_its_day_is_compacted_is_kept(tmp_path: Path) -> None:
    config = delta_config(tmp_path)
    write_hours(Lake(config), some_hours(DAYS[:2]))
    late = TimeWindow(DAYS[0] + 7 * HOUR, DAYS[0] + 8 * HOUR)
    rewritten = log_hour(late).slice(0, 10)  # the source now has 10 rows for that hour
    done: list[str] = []

    def reingest(step: str, move: DeltaMove) -> None:
        if step == "verify" and move.stream.dataset == "log_records" and not done:
            done.append(move.describe())
            DeltaTables(config).write_hour("log_records", late, rewritten)

    result = run_tiering(config, DAYS[0] + timedelta(days=2), hook=reingest)

    assert done and not result.problems
    logs = delta_rows(config, "log_records")
    in_late = [d for d in logs.column("doc_id").to_pylist() if d.startswith("2026033007")]
    assert len(in_late) == 10 and logs.num_rows == 6 * 50 - 40
    assert day_files(config, "log_records")["dt=2026-03-30"] == 1
    history = DeltaTables(config).open("log_records").history()
    assert [c.get("obs.operation") for c in history[:4]][::-1] == [
        "ingest",
        "compact",
        "vacuum",
        "vacuum",
    ]
    assert len(parquet_files(config, "log_records")) == 4, "the refused file was deleted"

    # The same hour re-ingested after the compaction: delta-rs rewrites the day's file with it
    # in the same commit, so the day stays one file holding every row, and nothing is due.
    DeltaTables(config).write_hour("log_records", late, log_hour(late))
    assert day_files(config, "log_records")["dt=2026-03-30"] == 1
    assert run_tiering(config, DAYS[0] + timedelta(days=2)).moves == []
    assert delta_rows(config, "log_records").num_rows == 6 * 50


def test_rollups_are_remade_when_samples_of_a_compacted_day_are_re_ingested(
    tmp_path: Path,
) -> None:
    now = DAYS[0] + timedelta(days=2)
    late = TimeWindow(DAYS[0] + 7 * HOUR, DAYS[0] + 8 * HOUR)
    samples = metric_hour(late)[1]
    changed = samples.set_column(2, "value", pa.compute.multiply(samples.column("value"), 2.0))
    config, reference = delta_config(tmp_path / "late"), delta_config(tmp_path / "reference")
    for lake in (config, reference):
        write_hours(Lake(lake), some_hours(DAYS[:2]))
    run_tiering(config, now)
    DeltaTables(config).write_hour("metric_samples", late, changed, sort=False)
    DeltaTables(reference).write_hour("metric_samples", late, changed, sort=False)
    run_tiering(reference, now)

    result = run_tiering(config, now)

    assert sorted((m.dataset, m.resolution, m.partition) for m in result.moves) == [
        ("metric_rollups", "1h", "resolution=1h/dt=2026-03-30"),
        ("metric_rollups", "5m", "resolution=5m/dt=2026-03-30"),
    ]
    for name, key in (
        ("metric_samples", ["series_id", "ts"]),
        ("metric_rollups", ["series_id", "resolution", "ts"]),
    ):
        assert as_bits(delta_rows(config, name), key) == as_bits(delta_rows(reference, name), key)
    before = versions(config)
    assert run_tiering(config, now).moves == [] and versions(config) == before


@pytest.mark.parametrize("step", STEPS)
def test_a_crash_after_any_step_loses_and_duplicates_nothing(tmp_path: Path, step: str) -> None:
    config = delta_config(tmp_path)
    write_hours(Lake(config), some_hours(DAYS[:2]))
    original = as_bits(delta_rows(config, "metric_samples"), ["series_id", "ts"])

    def crash(at: str, move: DeltaMove) -> None:
        if at == step and move.stream.dataset == "metric_samples":
            raise RuntimeError(f"crash after {at}")

    with pytest.raises(RuntimeError, match=f"crash after {step}"):
        run_tiering(config, DAYS[0] + timedelta(days=2), hook=crash)
    assert as_bits(delta_rows(config, "metric_samples"), ["series_id", "ts"]) == original
    if step != "commit":
        assert day_files(config, "metric_samples")["dt=2026-03-30"] == 3

    result = run_tiering(config, DAYS[0] + timedelta(days=2))

    assert not result.problems
    assert as_bits(delta_rows(config, "metric_samples"), ["series_id", "ts"]) == original
    assert day_files(config, "metric_samples") == {"dt=2026-03-30": 1, "dt=2026-03-31": 3}
    reference = delta_config(tmp_path / "reference")
    write_hours(Lake(reference), some_hours(DAYS[:2]))
    run_tiering(reference, DAYS[0] + timedelta(days=2))
    key = ["series_id", "resolution", "ts"]
    assert as_bits(delta_rows(config, "metric_rollups"), key) == as_bits(
        delta_rows(reference, "metric_rollups"), key
    )
    assert day_files(config, "metric_rollups") == {
        "resolution=5m/dt=2026-03-30": 1,
        "resolution=1h/dt=2026-03-30": 1,
    }
    for name in ("metric_samples", "metric_rollups"):
        actions = DeltaTables(config).open(name).get_add_actions(flatten=True)
        listed = set(pa.table(actions).column("path").to_pylist())
        assert parquet_files(config, name) == listed, "no file outside the log is left behind"


def test_raw_days_past_retention_get_their_rollups_before_they_go(tmp_path: Path) -> None:
    files, config = tiered_config(tmp_path / "files"), delta_config(tmp_path / "delta")
    hours = [TimeWindow(DAYS[0] + h * HOUR, DAYS[0] + (h + 1) * HOUR) for h in range(24)]
    hours += [TimeWindow(DAYS[1] + h * HOUR, DAYS[1] + (h + 1) * HOUR) for h in (0, 1)]
    lake, tables = Lake(files), DeltaTables(config)
    for hour in hours:
        lake.write_hot("metric_samples", hour, metric_hour(hour)[1], sort=False)
        tables.write_hour("metric_samples", hour, metric_hour(hour)[1], sort=False)
    now = DAYS[0] + timedelta(days=6)  # tiering ran last before either day was written

    run_tiering(files, now)
    result = run_tiering(config, now)

    assert not result.problems
    assert day_files(config, "metric_samples") == {}
    assert sorted(day_files(config, "metric_rollups")) == [
        f"resolution={r}/dt={d}" for r in ("1h", "5m") for d in ("2026-03-30", "2026-03-31")
    ]
    key = ["series_id", "resolution", "ts"]
    rollups = files_view(files, "SELECT * FROM metric_rollups")
    assert as_bits(delta_rows(config, "metric_rollups"), key) == as_bits(rollups, key)
    before = versions(config, ("metric_samples", "metric_rollups"))
    run_tiering(config, now)
    assert versions(config, ("metric_samples", "metric_rollups")) == before


def test_tiering_a_delta_lake_on_s3_gives_the_local_lakes_rows(
    tmp_path: Path, s3_lake: dict[str, Any]
) -> None:
    s3 = parse_config(
        {"lake": {**s3_lake, "format": "delta", "delete_delay": "0s"}, "retention": RETENTION}
    )
    local = delta_config(tmp_path / "local")
    for lake in (s3, local):
        write_hours(Lake(lake), some_hours(DAYS[:2]))
        result = run_tiering(lake, DAYS[0] + timedelta(days=2))
        assert not result.problems and len(result.moves) == 4

    for name, key in (
        ("metric_samples", ["series_id", "ts"]),
        ("metric_rollups", ["series_id", "resolution", "ts"]),
        ("log_records", ["doc_id"]),
    ):
        assert as_bits(delta_rows(s3, name), key) == as_bits(delta_rows(local, name), key)
    assert day_files(s3, "metric_samples") == {"dt=2026-03-30": 1, "dt=2026-03-31": 3}
    before = versions(s3)
    assert run_tiering(s3, DAYS[0] + timedelta(days=2)).moves == []
    assert versions(s3) == before
