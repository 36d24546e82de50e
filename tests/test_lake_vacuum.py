"""`obs lake vacuum`: the files of a run killed before its commit are found and deleted once old
enough, and nothing any table version references is touched (locally and on moto S3)."""

import os
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pyarrow.fs import FileSelector, FileType

from obs_pipelines.config import ObsConfig, parse_config
from obs_pipelines.errors import ConfigError
from obs_pipelines.lake import Lake, delta
from obs_pipelines.lake.vacuum import Unreferenced, vacuum_unreferenced
from obs_pipelines.operations.doctor import run_checks
from obs_pipelines.windows import TimeWindow
from tests.test_cli import obs
from tests.test_delta_lake import delta_config, hour, samples, sorted_rows

pytestmark = pytest.mark.integration

REPO = Path(__file__).parent.parent
DAY_SPAN = TimeWindow(hour(0).start, hour(24).start)


def data_files(config: ObsConfig) -> dict[str, int]:
    """The data files in metric_samples' folder, hidden ones included, with their sizes."""
    infos = delta.table_filesystem(config, "metric_samples").get_file_info(
        FileSelector("", recursive=True)
    )
    return {
        i.path: i.size
        for i in infos
        if i.type == FileType.File and not i.path.startswith("_delta_log/")
    }


def referenced(config: ObsConfig) -> list[str]:
    """The data files metric_samples' current version references."""
    table = Lake(config).tables.open("metric_samples")
    return delta.add_actions(table).column("path").to_pylist()


def removed(before: dict[str, int], config: ObsConfig) -> int:
    """Bytes of the files in ``before`` the current version no longer references."""
    current = set(referenced(config))
    return sum(size for path, size in before.items() if path not in current)


def doctor_line(config: ObsConfig) -> str:
    (tables,) = [r for r in run_checks(config, dagster_home=None) if r.check == "lake.tables"]
    assert tables.ok
    return tables.line()


def killed_run(config: ObsConfig, hours: list[int]) -> None:
    """A run that writes its hours' files and is killed (SIGKILL) before its one commit."""
    script = textwrap.dedent(
        f"""\
        import os, signal, time
        from obs_pipelines.config import parse_config
        from obs_pipelines.lake import Lake
        from tests.test_delta_lake import hour, samples
        from tests.test_lake_vacuum import data_files
        config = parse_config({config.model_dump(mode="json", include={"lake"})!r})
        before = len(data_files(config))
        batch = Lake(config).batch("metric_samples", source="test").__enter__()
        for n in {hours!r}:
            batch.add(hour(n), samples(hour(n), 400, 9.0))
        while len(data_files(config)) < before + {len(hours)}:
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, timeout=120)
    assert done.returncode == -9


@pytest.fixture(params=["local", "s3"])
def lake_config(request: pytest.FixtureRequest, tmp_path: Path) -> ObsConfig:
    """Local: the default delay (5m). S3: no delay, so that fresh files can be vacuumed (moto
    dates objects by the clock)."""
    if request.param == "local":
        return delta_config(tmp_path)
    s3: dict[str, Any] = request.getfixturevalue("s3_lake")
    return parse_config({"lake": {**s3, "delete_delay": "0s"}})


def test_the_files_of_a_run_killed_before_its_commit_are_vacuumed_and_nothing_else(
    lake_config: ObsConfig,
) -> None:
    config = lake_config
    lake = Lake(config)
    lake.write_hot("metric_samples", hour(1), samples(hour(1), 300, 1.0))
    lake.write_hot("metric_samples", hour(1), samples(hour(1), 200, 2.0))  # replaces hour 1
    lake.write_hot("metric_samples", hour(2), samples(hour(2), 100, 3.0))
    published = sorted_rows(lake.tables.read_window("metric_samples", DAY_SPAN))
    before = data_files(config)

    killed_run(config, [1, 2, 3])

    staged = {p: s for p, s in data_files(config).items() if p not in before}
    assert len(staged) == 3
    assert (
        f"{len(staged) + 1} files ({sum(staged.values()) + removed(before, config):,} bytes) "
        "no version references yet" in doctor_line(config)
    )
    assert sorted_rows(lake.tables.read_window("metric_samples", DAY_SPAN)) == published
    local = not config.lake_root.startswith("s3://")
    if local:
        # Fresh files may belong to a run still writing: the default age (7d) keeps them.
        assert vacuum_unreferenced(config) == []
        folder = Path(delta.table_uri(config, "metric_samples"))
        eight_days_ago = time.time() - 8 * 86400
        for path in staged:
            os.utime(folder / path, (eight_days_ago, eight_days_ago))
        older_than = timedelta(days=7)
    else:
        older_than = timedelta(0)

    listed = vacuum_unreferenced(config, older_than)
    assert set(data_files(config)) == set(before) | set(staged)  # a dry run deletes nothing
    if local:
        # The file hour 1's rewrite removed is younger than the delay: only the run's files.
        assert listed == [Unreferenced("metric_samples", 3, sum(staged.values()))]
    else:
        # No delay on S3 here: the removed file of hour 1 goes too.
        assert listed[0].dataset == "metric_samples" and listed[0].files == 4

    deleted = vacuum_unreferenced(config, older_than, apply=True)

    assert deleted == listed
    remaining = data_files(config)
    assert not set(staged) & set(remaining)
    assert set(referenced(config)) <= set(remaining)
    assert sorted_rows(lake.tables.read_window("metric_samples", DAY_SPAN)) == published
    assert vacuum_unreferenced(config, older_than, apply=True) == []
    if local:  # the file hour 1's rewrite removed waits for the delay
        assert f"; 1 files ({removed(before, config):,} bytes) no version" in doctor_line(config)
    else:
        assert "no version references" not in doctor_line(config)


def test_obs_lake_vacuum_is_a_dry_run_and_refuses_an_age_below_the_delay(
    tmp_path: Path,
) -> None:
    config = delta_config(tmp_path)
    Lake(config).write_hot("metric_samples", hour(1), samples(hour(1), 50, 1.0))
    killed_run(config, [4])
    config_file = tmp_path / "obs.yaml"
    config_file.write_text(
        f"lake:\n  root: {config.lake_root}\n  catalog: {tmp_path / 'obs.duckdb'}\n"
    )
    folder = Path(delta.table_uri(config, "metric_samples"))
    files = data_files(config)
    (staged,) = set(files) - set(referenced(config))
    os.utime(folder / staged, (time.time() - 2 * 86400,) * 2)

    dry = obs("--config", str(config_file), "lake", "vacuum", "--older-than", "1d")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines() == [
        f"metric_samples: would delete 1 unreferenced files ({files[staged]:,} bytes) older than 1d",
        f"would delete 1 files, {files[staged]:,} bytes, in 1 tables (dry run: --apply deletes them)",
    ]
    assert data_files(config) == files
    short = obs("--config", str(config_file), "lake", "vacuum", "--older-than", "1m")
    assert short.returncode == 2
    assert short.stderr.strip().splitlines() == [
        "obs: error: --older-than 1m is shorter than lake.delete_delay (5m): a reader of an "
        "older table version could lose its files; give at least the delay"
    ]
    with pytest.raises(ConfigError, match="no dataset named nope"):
        vacuum_unreferenced(config, datasets=["nope"])
    applied = obs("--config", str(config_file), "lake", "vacuum", "--older-than", "1d", "--apply")
    assert applied.returncode == 0, applied.stderr
    assert (
        applied.stdout.splitlines()[-1] == f"deleted 1 files, {files[staged]:,} bytes, in 1 tables"
    )
    assert staged not in data_files(config)


def test_the_partial_file_of_a_write_killed_mid_file_is_vacuumed_as_doctor_counts_it(
    tmp_path: Path,
) -> None:
    """delta-rs's local object store writes ``<name>#<n>`` and renames it when complete; its
    listings skip such names, so only our own listing of the folder finds what a kill left."""
    config = delta_config(tmp_path)
    Lake(config).write_hot("metric_samples", hour(1), samples(hour(1), 50, 1.0))
    before = data_files(config)
    script = textwrap.dedent(
        f"""\
        import os, signal
        import pyarrow as pa, pyarrow.parquet as pq
        from obs_pipelines.config import parse_config
        from obs_pipelines.lake import delta
        config = parse_config({config.model_dump(mode="json", include={"lake"})!r})
        fs = delta.table_filesystem(config, "metric_samples")
        sink = fs.open_output_stream("dt=2026-11-10/part-h02-killed.parquet")
        pq.write_table(pa.table({{"value": [1.0]}}), sink)  # written, never closed
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, timeout=120)
    assert done.returncode == -9
    folder = Path(delta.table_uri(config, "metric_samples"))
    (partial,) = [p for p in (folder / "dt=2026-11-10").iterdir() if "#" in p.name]
    assert partial.name.startswith("part-h02-killed.parquet#")
    assert data_files(config) == before  # invisible to delta-rs's listings
    assert "; 1 files (" in doctor_line(config)

    assert vacuum_unreferenced(config, timedelta(days=1)) == []  # too young: a write under way?
    os.utime(partial, (time.time() - 2 * 86400,) * 2)
    size = partial.stat().st_size
    listed = vacuum_unreferenced(config, timedelta(days=1))
    assert listed == [Unreferenced("metric_samples", 1, size)]
    assert partial.exists()  # a dry run deletes nothing
    assert vacuum_unreferenced(config, timedelta(days=1), apply=True) == listed
    assert not partial.exists()
    assert data_files(config) == before
    assert "no version references" not in doctor_line(config)
