"""Runs launched by `obs materialize` execute in the obs process: when it is killed, the next
`obs` that launches runs ends them as failed, instead of leaving them started forever."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

import assets.metrics
from obs_pipelines import cli
from obs_pipelines.lake.delta_tables import HourBatch
from obs_pipelines.launch import DEFAULT_INSTANCE_YAML
from obs_pipelines.windows import TimeWindow
from tests.test_ingest_checks import OverlappingSelectors

pytestmark = pytest.mark.integration  # runs obs in a subprocess and kills it


def _started_run(instance: DagsterInstance, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.STARTED]))
        if runs:
            return runs[0].run_id
        time.sleep(0.2)
    raise AssertionError("the run never started")


def test_a_run_left_started_by_a_killed_obs_is_marked_failed_by_the_next_one(
    write_config: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config()
    (tmp_path / "dagster_home").mkdir()
    (tmp_path / "dagster_home" / "dagster.yaml").write_text(DEFAULT_INSTANCE_YAML)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    day = ["--from", "2026-11-18T00:00:00Z", "--to", "2026-11-19T00:00:00Z"]
    killed = subprocess.Popen(
        [sys.executable, "-m", "obs_pipelines.cli", "--config", str(path), "materialize", *day],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with DagsterInstance.get() as instance:
            run_id = _started_run(instance, timeout=120)
            time.sleep(1.0)  # inside its steps
            os.kill(killed.pid, signal.SIGKILL)
            killed.wait(timeout=30)
            left = instance.get_run_by_id(run_id)
            assert left is not None and left.status == DagsterRunStatus.STARTED

            hour = ["--from", "2026-11-19T00:00:00Z", "--to", "2026-11-19T01:00:00Z"]
            code = cli.main(["--config", str(path), "materialize", *hour])

            ended = instance.get_run_by_id(run_id)
            failures = instance.all_logs(run_id, of_type=DagsterEventType.RUN_FAILURE)
    finally:
        if killed.poll() is None:
            killed.kill()
    assert code == 0
    assert ended is not None and ended.status == DagsterRunStatus.FAILURE
    (failure,) = failures
    assert f"the obs process that ran it (pid {killed.pid}) ended before the run did" in (
        failure.dagster_event.message or ""
    )
    newest = instance.get_runs(limit=1)[0]
    assert newest.run_id != run_id and newest.status == DagsterRunStatus.SUCCESS


def test_a_run_whose_asset_check_fails_exits_1_naming_the_check(
    write_config: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The run succeeds (the hour is written) but a check found fewer rows than the source
    returned: the command must not report plain success."""
    add = HourBatch.add

    def losing(self: HourBatch, hour: TimeWindow, table: pa.Table, **kw: Any) -> Any:
        if self.dataset == "metric_samples":
            table = table.slice(0, table.num_rows - 3)
        return add(self, hour, table, **kw)

    monkeypatch.setattr(assets.metrics, "metric_source", lambda config: OverlappingSelectors())
    monkeypatch.setattr(HourBatch, "add", losing)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    hour = ["--from", "2026-11-18T14:00:00Z", "--to", "2026-11-18T15:00:00Z"]

    code = cli.main(["--config", str(write_config()), "materialize", *hour])

    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    (line,) = err.splitlines()
    assert line.startswith("obs: warning: run ")
    assert line.endswith(
        "(ingested [2026-11-18T14:00:00Z, 2026-11-18T15:00:00Z)): check "
        "metric_samples.rows_match_source failed: [2026-11-18T14:00:00Z, 2026-11-18T15:00:00Z): "
        "published 5, the source returned 8 distinct of 12"
    )
