"""The lake's Delta tables: an hour, or a run's hours, is one commit that replaces exactly those
hours, whatever kills the writer, fails midway or writes beside it, and the lake's hourly API
reads it back bit for bit."""

import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml

from obs_pipelines.config import ObsConfig, parse_config
from obs_pipelines.datasets import dataset
from obs_pipelines.errors import LakeError, SourceError
from obs_pipelines.lake import Lake, delta, delta_tables
from obs_pipelines.lake.catalog import (
    connect,
    refresh_catalog,
    refresh_partitions,
    source_digest,
)
from obs_pipelines.lake.migrate import migrate
from obs_pipelines.lake.snapshot import datasets_reached
from obs_pipelines.operations.freshness import lake_freshness
from obs_pipelines.reporting import query
from obs_pipelines.reporting.reports import report_connection
from obs_pipelines.schemas import METRIC_SAMPLES
from obs_pipelines.windows import TimeWindow, utc
from tests.tiering_data import log_hour, rules_snapshot

pytestmark = pytest.mark.integration

DAY = utc("2026-11-10T00:00:00Z")


def hour(n: int) -> TimeWindow:
    start = DAY + timedelta(hours=n)
    return TimeWindow(start, start + timedelta(hours=1))


def samples(window: TimeWindow, n: int, value: float, series: int = 7) -> pa.Table:
    """``n`` samples spread over ``window``; series ids include ones above 2**63."""
    step = 3_600_000 // max(n, 1)
    ids = pc.add(
        pa.array([i % series for i in range(n)], pa.uint64()), pa.scalar(2**63 - 3, pa.uint64())
    )
    return pa.table(
        {
            "series_id": ids,
            "ts": pa.array([window.start_ms + i * step for i in range(n)], pa.int64()).cast(
                pa.timestamp("ms")
            ),
            "value": pa.array([value + i for i in range(n)], pa.float64()),
        },
        schema=METRIC_SAMPLES,
    )


def delta_config(tmp_path: Path, **lake: Any) -> ObsConfig:
    return parse_config(
        {
            "lake": {
                "root": str(tmp_path / "lake"),
                "catalog": str(tmp_path / "obs.duckdb"),
                **lake,
            }
        }
    )


def sorted_rows(table: pa.Table) -> pa.Table:
    return table.sort_by([("series_id", "ascending"), ("ts", "ascending")])


def scanned(config: ObsConfig, sql: str) -> list[tuple[Any, ...]]:
    """What DuckDB's delta_scan (delta-kernel, another reader than the writer) returns."""
    con = delta.delta_connection(config)
    try:
        return con.execute(sql.format(t=delta.scan(config, "metric_samples"))).fetchall()
    finally:
        con.close()


@pytest.fixture
def config(tmp_path: Path) -> ObsConfig:
    return delta_config(tmp_path)


def test_an_hour_is_replaced_whole_and_read_back_bit_for_bit(config: ObsConfig) -> None:
    lake = Lake(config)
    first, second = samples(hour(5), 600, 1.0), samples(hour(6), 300, 2.0)
    lake.write_hot("metric_samples", hour(5), first, source="prometheus")
    lake.write_hot("metric_samples", hour(6), second, source="prometheus")
    replacement = samples(hour(5), 200, 9.0, series=3)

    written = lake.write_hot("metric_samples", hour(5), replacement, source="prometheus")
    lake.write_hot("metric_samples", hour(5), replacement, source="prometheus")  # a rerun

    assert written.rows == 200 and written.bytes > 0
    assert sorted_rows(lake.read_hot("metric_samples", hour(5))).equals(sorted_rows(replacement))
    assert sorted_rows(lake.read_hot("metric_samples", hour(6))).equals(sorted_rows(second))
    assert scanned(config, "SELECT count(*), count(DISTINCT ts), sum(value) FROM {t}") == [
        (500, 500, sum(replacement["value"].to_pylist()) + sum(second["value"].to_pylist()))
    ]
    assert [p.window for p in lake.hot_partitions("metric_samples")] == [hour(5), hour(6)]


def test_delta_sessions_are_independent_and_outlive_their_shared_database(
    config: ObsConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """delta_connection's sessions share a database per process and storage (the extension is
    verified once): what one creates stays its own, and one still open keeps working after
    lakes on other storage pushed its database out."""
    Lake(config).write_hot("metric_samples", hour(0), samples(hour(0), 10, 1.0))
    first, second = delta.delta_connection(config), delta.delta_connection(config)
    first.execute("CREATE TEMP TABLE mine AS SELECT 1 AS x")
    assert second.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'mine'"
    ).fetchone() == (0,)
    second.close()
    for n in range(5):  # S3 lakes with other credentials: a database each (none contacted)
        monkeypatch.setenv("OBS_TEST_OTHER_KEY", f"key-{n}")
        other = parse_config(
            {
                "lake": {
                    "root": f"s3://bucket-{n}/obs",
                    "catalog": str(Path(config.catalog_path).with_name(f"{n}.duckdb")),
                    "s3": {
                        "region": "us-east-1",
                        "access_key_id_env": "OBS_TEST_OTHER_KEY",
                        "secret_access_key_env": "OBS_TEST_OTHER_KEY",
                    },
                }
            }
        )
        delta.delta_connection(other).close()

    assert first.execute(
        f"SELECT count(*) FROM {delta.scan(config, 'metric_samples')}"
    ).fetchone() == (10,)
    assert first.execute("SELECT x FROM mine").fetchone() == (1,)
    first.close()
    with delta.delta_connection(config) as again:
        assert again.execute(
            f"SELECT count(*) FROM {delta.scan(config, 'metric_samples')}"
        ).fetchone() == (10,)


def test_an_hour_of_rollups_partitioned_by_resolution_is_replaced_whole(config: ObsConfig) -> None:
    """Rollups are partitioned by resolution and day: their hours take the predicate overwrite
    (no file holds one hour alone), through the same hourly API."""
    lake = Lake(config)
    schema = dataset("metric_rollups").schema

    def buckets(window: TimeWindow, n: int, value: float) -> pa.Table:
        return pa.table(
            {
                "series_id": pa.array([2**63 + 5] * n, pa.uint64()),
                "ts": pa.array([window.start_ms + i * 300_000 for i in range(n)], pa.int64()).cast(
                    pa.timestamp("ms")
                ),
                "resolution": ["5m"] * n,
                "count": [1] * n,
                **{c: [value] * n for c in ("sum", "min", "max", "last", "counter_increase")},
            },
            schema=schema,
        )

    lake.write_hot("metric_rollups", hour(3), buckets(hour(3), 12, 1.0))
    lake.write_hot("metric_rollups", hour(4), buckets(hour(4), 12, 4.0))
    written = lake.write_hot("metric_rollups", hour(3), buckets(hour(3), 6, 2.0))

    assert written.rows == 6 and written.bytes > 0
    assert lake.read_hot("metric_rollups", hour(3)).equals(buckets(hour(3), 6, 2.0))
    assert lake.read_hot("metric_rollups", hour(4)).equals(buckets(hour(4), 12, 4.0))
    assert [p.window for p in lake.hot_partitions("metric_rollups")] == [hour(3), hour(4)]


def test_an_hour_without_rows_is_written_and_counts_for_freshness(config: ObsConfig) -> None:
    lake = Lake(config)
    lake.write_hot("log_records", hour(1), dataset("log_records").schema.empty_table())
    now = DAY + timedelta(hours=4)

    [fresh] = lake_freshness(
        lake,
        {"log_records": timedelta(minutes=30)},
        now,
        earliest=DAY,
        gap_lookback=timedelta(hours=4),
    )

    assert lake.read_hot("log_records", hour(1)).num_rows == 0
    assert lake.read_hot("log_records", hour(2)) is None
    assert [w.start.hour for w in fresh.missing] == [0, 2]
    assert fresh.newest_end == hour(1).end


def test_the_newest_snapshot_is_the_latest_of_the_newest_hour(config: ObsConfig) -> None:
    lake = Lake(config)

    def rules(taken: datetime, names: list[str]) -> pa.Table:
        template = rules_snapshot(hour(0)).slice(0, len(names))
        return template.set_column(
            0,
            "snapshot_at",
            pa.array([taken.replace(tzinfo=None)] * len(names), pa.timestamp("ms")),
        ).set_column(3, "name", pa.array(names))

    # A snapshot filed under hour 3 may be stamped later (a rule evaluation's end plus lag).
    lake.write_hot("alert_rules", hour(3), rules(hour(4).start + timedelta(minutes=2), ["A", "B"]))
    lake.write_hot("alert_rules", hour(2), rules(hour(2).start, ["old"]))
    assert lake.newest_snapshot("alert_rules", "snapshot_at")["name"].to_pylist() == ["A", "B"]

    lake.write_hot("alert_rules", hour(3), rules(hour(3).start + timedelta(minutes=9), ["C"]))
    assert lake.newest_snapshot("alert_rules", "snapshot_at")["name"].to_pylist() == ["C"]
    assert lake.read_hot("alert_rules", hour(2))["name"].to_pylist() == ["old"]


def _writer_script(config: ObsConfig, window: TimeWindow, rows: int, value: float) -> str:
    return textwrap.dedent(
        f"""\
        import sys
        from obs_pipelines.config import parse_config
        from obs_pipelines.lake import Lake
        from tests.test_delta_lake import samples
        from obs_pipelines.windows import TimeWindow, utc
        config = parse_config({config.model_dump(mode="json", include={"lake"})!r})
        window = TimeWindow(utc({window.start.isoformat()!r}), utc({window.end.isoformat()!r}))
        table = samples(window, {rows}, {value})
        print("ready", flush=True)
        Lake(config).write_hot("metric_samples", window, table)
        """
    )


def kill_after(script: str, delay: float) -> None:
    """Run a writer ``script`` and SIGKILL it ``delay`` seconds after it says it is ready."""
    writer = subprocess.Popen(
        [sys.executable, "-c", script], cwd=Path(__file__).parent.parent, stdout=subprocess.PIPE
    )
    assert writer.stdout is not None and writer.stdout.readline().strip() == b"ready"
    time.sleep(delay)
    writer.kill()
    writer.wait()


def test_a_writer_killed_at_any_moment_leaves_the_hour_before_or_after(
    config: ObsConfig, tmp_path: Path
) -> None:
    lake = Lake(config)
    before = samples(hour(5), 1000, 1.0)
    lake.write_hot("metric_samples", hour(5), before)
    lake.write_hot("metric_samples", hour(6), samples(hour(6), 100, 5.0))
    after_rows = 400_000
    script = _writer_script(config, hour(5), after_rows, 2.0)
    seen = set()
    for delay in (0.0, 0.05, 0.15, 0.3, 0.5, 0.8, 1.2):
        kill_after(script, delay)
        counts = scanned(
            config,
            "SELECT count(*), count(DISTINCT (series_id, ts)) FROM {t} "
            f"WHERE ts < TIMESTAMPTZ '{hour(6).start.isoformat()}'",
        )
        assert counts in ([(1000, 1000)], [(after_rows, after_rows)]), delay
        seen.add(counts[0][0])
        assert lake.read_hot("metric_samples", hour(6)).num_rows == 100
    # The rerun converges, whichever state the kills left.
    done = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parent.parent)
    assert done.returncode == 0
    assert scanned(config, "SELECT count(*), count(DISTINCT (series_id, ts)) FROM {t}") == [
        (after_rows + 100, after_rows + 100)
    ]
    assert 1000 in seen  # at least one kill landed before the commit


def test_two_writers_of_the_same_day_lose_no_hour(config: ObsConfig, tmp_path: Path) -> None:
    Lake(config).write_hot("metric_samples", hour(0), samples(hour(0), 10, 0.0))  # the table
    script = textwrap.dedent(
        f"""
        import sys
        from obs_pipelines.config import parse_config
        from obs_pipelines.lake import Lake
        from tests.test_delta_lake import hour, samples
        config = parse_config({config.model_dump(mode="json", include={"lake"})!r})
        lake = Lake(config)
        for n in range(int(sys.argv[1]), 24, 2):
            lake.write_hot("metric_samples", hour(n), samples(hour(n), 50 + n, float(n)))
        """
    )
    writers = [
        subprocess.Popen([sys.executable, "-c", script, str(k)], cwd=Path(__file__).parent.parent)
        for k in (1, 2)
    ]
    assert [w.wait() for w in writers] == [0, 0]

    counts = scanned(config, "SELECT hour(ts) AS h, count(*) FROM {t} GROUP BY h ORDER BY h")
    assert counts == [(0, 10)] + [(n, 50 + n) for n in range(1, 24)]
    assert [p.window for p in Lake(config).hot_partitions("metric_samples")] == [
        hour(n) for n in range(24)
    ]


def _batch_script(config: ObsConfig, hours: list[int], rows: int, value: float) -> str:
    """A run publishing ``hours`` as one batch: every file written, then one commit."""
    return textwrap.dedent(
        f"""\
        from obs_pipelines.config import parse_config
        from obs_pipelines.lake import Lake
        from tests.test_delta_lake import hour, samples
        config = parse_config({config.model_dump(mode="json", include={"lake"})!r})
        tables = [(hour(n), samples(hour(n), {rows}, {value})) for n in {hours!r}]
        print("ready", flush=True)
        with Lake(config).batch("metric_samples", source="test") as batch:
            for window, table in tables:
                batch.add(window, table)
            batch.commit()
        """
    )


def _rows_per_hour(config: ObsConfig) -> dict[int, tuple[int, int]]:
    return {
        h: (rows, distinct)
        for h, rows, distinct in scanned(
            config,
            "SELECT hour(ts) AS h, count(*), count(DISTINCT (series_id, ts)) FROM {t} "
            "GROUP BY h ORDER BY h",
        )
    }


def test_a_run_killed_at_any_moment_leaves_all_its_hours_before_or_all_after(
    config: ObsConfig,
) -> None:
    lake = Lake(config)
    run = [2, 3, 4]
    with lake.batch("metric_samples", source="test") as batch:
        for n in run:
            batch.add(hour(n), samples(hour(n), 1000, 1.0))
        assert [w.rows for w in batch.commit()] == [1000, 1000, 1000]
    lake.write_hot("metric_samples", hour(6), samples(hour(6), 100, 5.0))
    after_rows = 150_000
    script = _batch_script(config, run, after_rows, 2.0)
    seen = set()
    for delay in (0.0, 0.1, 0.3, 0.6, 1.0, 1.5):
        kill_after(script, delay)
        found = _rows_per_hour(config)
        before = {n: (1000, 1000) for n in run}
        after = {n: (after_rows, after_rows) for n in run}
        assert found in ({**before, 6: (100, 100)}, {**after, 6: (100, 100)}), delay
        seen.add(found[2][0])
    done = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parent.parent)
    assert done.returncode == 0
    assert _rows_per_hour(config) == {
        **{n: (after_rows, after_rows) for n in run},
        6: (100, 100),
    }
    assert 1000 in seen  # at least one kill landed before the commit


@pytest.fixture(params=["local", "s3"])
def lake_and_files(
    request: pytest.FixtureRequest, tmp_path: Path
) -> tuple[Lake, Callable[[], list[str]]]:
    """A lake, locally and on moto S3, and what lists the data files under ``metric_samples``."""
    if request.param == "local":
        config = delta_config(tmp_path)
        folder = Path(delta.table_uri(config, "metric_samples"))
        return Lake(config), lambda: sorted(str(f) for f in folder.rglob("*.parquet"))
    lake = Lake(parse_config({"lake": request.getfixturevalue("s3_lake")}))
    client, bucket = request.getfixturevalue("s3_client"), request.getfixturevalue("s3_bucket")

    def listed() -> list[str]:
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix="obs/delta/metric_samples/"
        )
        keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
        return sorted(k for k in keys if k.endswith(".parquet"))

    return lake, listed


def test_a_run_that_fails_midway_publishes_none_of_its_hours_and_leaves_no_file(
    lake_and_files: tuple[Lake, Callable[[], list[str]]],
) -> None:
    lake, data_files = lake_and_files
    lake.write_hot("metric_samples", hour(1), samples(hour(1), 10, 1.0))
    files_before = data_files()
    staged: list[str] = []

    with (
        pytest.raises(RuntimeError, match="source failed at hour 3"),
        lake.batch("metric_samples", source="test") as batch,
    ):
        batch.add(hour(1), samples(hour(1), 500, 2.0))
        batch.add(hour(2), samples(hour(2), 500, 2.0))
        deadline = time.monotonic() + 30  # the files are written by the batch's thread
        while len(staged := data_files()) < len(files_before) + 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        raise RuntimeError("source failed at hour 3")

    assert len(staged) == len(files_before) + 2  # the files were written, then deleted
    assert data_files() == files_before
    assert lake.read_hot("metric_samples", hour(1)).num_rows == 10
    assert lake.read_hot("metric_samples", hour(2)) is None
    assert [p.window for p in lake.hot_partitions("metric_samples")] == [hour(1)]


def test_every_hour_of_a_run_is_listed_as_written_with_its_rows_and_source(
    config: ObsConfig,
) -> None:
    lake = Lake(config)
    with lake.batch("log_records", source="elasticsearch") as batch:
        batch.add(hour(7), dataset("log_records").schema.empty_table())
        batch.add(hour(8), log_hour(hour(8)))
        written = batch.commit()
    assert [(w.window, w.rows) for w in written] == [(hour(7), 0), (hour(8), written[1].rows)]
    assert written[1].rows > 0 and written[1].bytes > 0
    refresh_catalog(config)
    con = connect(config)
    try:
        listed = con.execute(
            "SELECT span_start, source, current FROM lake_partition_sources "
            "WHERE dataset = 'log_records' ORDER BY span_start"
        ).fetchall()
    finally:
        con.close()

    assert [
        (h.window, h.rows, h.source) for h in lake.tables.written_hours("log_records", DAY)
    ] == [
        (hour(7), 0, "elasticsearch"),
        (hour(8), written[1].rows, "elasticsearch"),
    ]
    assert listed == [
        (hour(7).start.replace(tzinfo=None), "elasticsearch", True),
        (hour(8).start.replace(tzinfo=None), "elasticsearch", True),
    ]


def test_two_runs_of_the_same_day_at_once_lose_no_hour(config: ObsConfig) -> None:
    Lake(config).write_hot("metric_samples", hour(0), samples(hour(0), 10, 0.0))  # the table
    script = textwrap.dedent(
        f"""
        import sys
        from obs_pipelines.config import parse_config
        from obs_pipelines.lake import Lake
        from tests.test_delta_lake import hour, samples
        config = parse_config({config.model_dump(mode="json", include={"lake"})!r})
        lake = Lake(config)
        first = int(sys.argv[1])
        for rerun in range(3):  # a rerun replaces the run's hours: its commit removes files
            with lake.batch("metric_samples") as batch:
                for n in range(first, first + 6):
                    batch.add(hour(n), samples(hour(n), 50 + n, float(n)))
                batch.commit()
        """
    )
    writers = [
        subprocess.Popen([sys.executable, "-c", script, str(k)], cwd=Path(__file__).parent.parent)
        for k in (1, 7, 13)
    ]
    assert [w.wait() for w in writers] == [0, 0, 0]

    assert _rows_per_hour(config) == {0: (10, 10), **{n: (50 + n, 50 + n) for n in range(1, 19)}}


def test_migrate_without_a_lake_of_the_old_layout_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(LakeError) as refused:
        migrate(delta_config(tmp_path))
    assert str(refused.value) == (
        f"{tmp_path / 'lake'} holds no lake in the file layout (no hot/, warm/ or cold/ files); "
        "nothing to migrate: check lake.root"
    )


def test_a_hour_is_written_to_s3_and_read_back(s3_lake: dict[str, Any], tmp_path: Path) -> None:
    config = parse_config({"lake": s3_lake})
    lake = Lake(config)
    rows = samples(hour(3), 2000, 4.0)
    lake.write_hot("metric_samples", hour(3), rows)
    lake.write_hot("metric_samples", hour(3), rows)

    assert sorted_rows(lake.read_hot("metric_samples", hour(3))).equals(sorted_rows(rows))
    assert scanned(config, "SELECT count(*) FROM {t}") == [(2000,)]
    assert [p.window for p in lake.hot_partitions("metric_samples", hour(0).start)] == [hour(3)]


def test_a_secret_key_holding_a_quote_reads_the_s3_lake(
    s3_lake: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Credentials are values in DuckDB's S3 secret, never SQL (a quote used to break it and
    print the key in the parser's traceback)."""
    monkeypatch.setenv("OBS_TEST_S3_SECRET", "abc'TOPSECRET")
    config = parse_config({"lake": s3_lake})
    Lake(config).write_hot("metric_samples", hour(3), samples(hour(3), 50, 4.0))

    assert scanned(config, "SELECT count(*) FROM {t}") == [(50,)]


@pytest.mark.parametrize(
    ("refresh", "files_indexed"),
    [(refresh_catalog, 1), (refresh_partitions, 2)],
    ids=["after a write", "after an ingest run"],
)
def test_new_hours_show_in_the_catalog_without_a_rebuild(
    config: ObsConfig, refresh: Callable[[ObsConfig], Path], files_indexed: int
) -> None:
    lake = Lake(config)
    lake.write_hot("metric_samples", hour(1), samples(hour(1), 30, 1.0))
    refresh(config)  # no catalog yet: built whole
    built = _built_at(config)

    lake.write_hot("metric_samples", hour(2), samples(hour(2), 20, 1.0))
    refresh(config)
    con = connect(config)
    try:
        counts = con.execute(
            "SELECT dt, hour(ts) AS h, count(*) FROM metric_samples GROUP BY ALL ORDER BY h"
        ).fetchall()
        indexed = con.execute(
            "SELECT count(*) FROM lake_partitions WHERE dataset = 'metric_samples'"
        ).fetchone()
    finally:
        con.close()

    assert counts == [("2026-11-10", 1, 30), ("2026-11-10", 2, 20)]  # read live
    assert indexed == (files_indexed,)  # the index is read again only after an ingest run
    assert _built_at(config) == built  # the views kept, not rebuilt
    changed = config.model_copy(
        update={"reports": config.reports.model_copy(update={"period": timedelta(days=14)})}
    )
    refresh(changed)
    assert _built_at(config) > built  # another definition: rebuilt


def test_the_catalog_definition_follows_the_package_source_not_only_its_version(
    tmp_path: Path,
) -> None:
    package = tmp_path / "obs_pipelines"
    (package / "lake").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "lake" / "views.py").write_text("VIEW = 'SELECT 1'\n")
    digest = source_digest.__wrapped__  # the cached one keeps what this process loaded

    first = digest(package)
    (package / "lake" / "__pycache__").mkdir()
    (package / "lake" / "__pycache__" / "views.cpython-311.pyc").write_bytes(b"compiled")
    (package / "README.txt").write_text("not code")
    unchanged = digest(package)
    (package / "lake" / "views.py").write_text("VIEW = 'SELECT 2'\n")
    edited = digest(package)
    (package / "lake" / "views.py").rename(package / "lake" / "renamed.py")
    renamed = digest(package)

    assert unchanged == first
    assert len({first, edited, renamed}) == 3


def test_an_edited_checkout_gets_another_catalog_definition(
    config: ObsConfig, tmp_path: Path
) -> None:
    checkout = tmp_path / "checkout"
    shutil.copytree(
        Path(delta.__file__).resolve().parents[1],
        checkout / "obs_pipelines",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    settings = tmp_path / "obs.yaml"
    settings.write_text(yaml.safe_dump({"lake": {"root": config.lake_root}}))
    script = (
        "from obs_pipelines.config import load_config; "
        "from obs_pipelines.lake.catalog import catalog_definition; "
        f"print(catalog_definition(load_config({str(settings)!r})))"
    )

    def definition() -> str:
        done = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            cwd=checkout,
            env={**os.environ, "PYTHONPATH": str(checkout)},
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    before, again = definition(), definition()
    views = checkout / "obs_pipelines" / "lake" / "delta_catalog.py"
    views.write_text(views.read_text() + "\n# a change with no version bump\n")
    edited = definition()

    assert before == again and edited != before


def _built_at(config: ObsConfig) -> datetime:
    con = connect(config)
    try:
        return con.execute("SELECT built_at FROM catalog_info").fetchone()[0]
    finally:
        con.close()


def test_report_and_query_sessions_read_one_version_of_each_table_while_commits_land(
    config: ObsConfig,
) -> None:
    lake = Lake(config)
    lake.write_hot("metric_samples", hour(1), samples(hour(1), 30, 1.0))
    refresh_catalog(config)
    sql = "SELECT count(*) FROM metric_samples"
    live = connect(config)
    reporting = report_connection(config, hour(0).start, hour(4).start)
    querying = query.connect_sandboxed(config, query.sandbox(config), sql)  # locks DuckDB last
    try:
        lake.write_hot("metric_samples", hour(2), samples(hour(2), 20, 1.0))
        counts = [con.execute(sql).fetchone()[0] for con in (reporting, querying, live)]
        reached = {
            text: datasets_reached(live, text)
            for text in (
                "SELECT 'spans' AS dataset",
                "SELECT * FROM metrics",
                "SELECT * FROM scorecard",
            )
        }
    finally:
        for con in (reporting, querying, live):
            con.close()
    fresh = report_connection(config, hour(0).start, hour(4).start)
    try:
        after = fresh.execute(sql).fetchone()[0]
    finally:
        fresh.close()

    assert counts == [30, 30, 50]  # pinned at open; the catalog's views read the newest version
    assert after == 50
    assert reached["SELECT 'spans' AS dataset"] == ()
    assert reached["SELECT * FROM metrics"] == ("metric_series", "metric_samples")
    assert {"sli_minutes", "up_minutes", "series_inventory", "alert_fragments"} <= set(
        reached["SELECT * FROM scorecard"]
    )


def test_an_hour_streamed_in_parts_is_written_group_by_group_and_a_failure_leaves_no_file(
    config: ObsConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(delta_tables, "GROUP_BYTES", 1)  # every part is a row group of its own
    lake = Lake(config)
    folder = Path(delta.table_uri(config, "log_records"))
    rows = log_hour(hour(1))
    parts = [rows.slice(i, 10) for i in range(0, rows.num_rows, 10)]

    with lake.batch("log_records", source="test") as batch:
        assert batch.add_parts(hour(1), iter(parts), keep_held=True) == rows.num_rows
        batch.commit()
    (path,) = folder.rglob("*.parquet")
    assert pq.ParquetFile(path).metadata.num_row_groups == len(parts)
    back = lake.read_hot("log_records", hour(1))
    assert back is not None
    assert back.sort_by("ts").equals(rows.sort_by("ts"))

    def failing() -> Iterator[pa.Table]:
        yield from parts[:3]
        raise SourceError("the source failed part-way through the hour")

    with (
        pytest.raises(SourceError, match="part-way"),
        lake.batch("log_records", source="test") as batch,
    ):
        batch.add_parts(hour(1), failing(), keep_held=True)
    assert list(folder.rglob("*.parquet")) == [path]  # the half-written file was deleted
    again = lake.read_hot("log_records", hour(1))
    assert again is not None and again.sort_by("ts").equals(back.sort_by("ts"))
