"""A multi-partition backfill executed by Dagster's Celery executor through a real Redis broker
and two worker processes produces the same lake as an in-process run."""

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from dagster import DagsterInstance, in_process_executor

from obs_pipelines.config import load_config
from obs_pipelines.lake import Lake
from obs_pipelines.windows import TimeWindow
from tests import ops_servers, servers
from tests.celery_job import CELERY_JOB, celery_definitions

REPO = Path(__file__).resolve().parents[1]
HOURS = list(
    TimeWindow(datetime(2026, 1, 2, 0, tzinfo=UTC), datetime(2026, 1, 2, 4, tzinfo=UTC)).hours()
)
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


@pytest.fixture
def celery_setup(
    tmp_path: Path, write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Path, dict, DagsterInstance]]:
    config_path = write_config()
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("OBS_CONFIG", str(config_path))
    with DagsterInstance.get() as instance, ops_servers.redis() as redis_url:
        # The instance's storage exists before any worker opens it (two processes creating the
        # same SQLite schema at once would race).
        executor = {"broker": f"{redis_url}/0", "backend": f"{redis_url}/1"}
        worker_yaml = tmp_path / "celery.yaml"
        worker_yaml.write_text(yaml.safe_dump({"execution": {"config": executor}}))
        env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(REPO),
            "DAGSTER_HOME": str(home),
            "OBS_CONFIG": str(config_path),
        }
        workers = [
            subprocess.Popen(
                [
                    str(Path(sys.executable).with_name("dagster-celery")),
                    "worker",
                    "start",
                    "-A",
                    "dagster_celery.app",
                    "-y",
                    str(worker_yaml),
                    "-n",
                    f"w{i}",
                    "-l",
                    "WARNING",
                    "--",
                    "--concurrency=1",
                ],
                cwd=REPO,
                env=env,
                start_new_session=True,
                stdout=subprocess.DEVNULL,
                stderr=(tmp_path / f"w{i}.log").open("w"),
            )
            for i in (1, 2)
        ]
        try:
            _wait_for_workers(executor["broker"], workers, count=2)
            yield config_path, executor, instance
        finally:
            for worker in workers:
                servers.stop(worker)


def _wait_for_workers(broker: str, workers: list[subprocess.Popen], count: int) -> None:
    """Both workers answer a Celery ping before any run is submitted (or the test fails fast)."""
    from celery import Celery

    app = Celery(broker=broker)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if any(w.poll() is not None for w in workers):
            raise RuntimeError("a Celery worker exited at start-up; see its log in tmp_path")
        if len(app.control.ping(timeout=0.5)) >= count:
            return
    raise RuntimeError(f"{count} Celery workers did not answer a ping within 60s")


def _partition_tags(hour: TimeWindow) -> dict[str, str]:
    return {"dagster/partition": f"{hour.start:%Y-%m-%d-%H:%M}"}


def test_celery_backfill_matches_in_process_run(
    celery_setup: tuple[Path, dict, DagsterInstance],
    write_config: Callable[..., Path],
    tmp_path: Path,
) -> None:
    config_path, executor, instance = celery_setup
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    started = time.monotonic()
    runs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.celery_job",
                f"{hour.start:%Y-%m-%d-%H:%M}",
                executor["broker"],
                executor["backend"],
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        for hour in HOURS
    ]
    outcomes = []
    try:
        for process in runs:
            out, err = process.communicate(timeout=180)
            run_id, _, success = out.strip().rpartition("\n")[-1].partition(" ")
            outcomes.append((success == "True", run_id or err[-500:]))
    finally:
        for process in runs:
            servers.stop(process)
    elapsed = time.monotonic() - started
    assert all(ok for ok, _ in outcomes), outcomes

    # Every step ran in a worker process, and both workers took a share.
    step_pids = set()
    for _, run_id in outcomes:
        for record in instance.all_logs(run_id):
            event = record.dagster_event
            if event is not None and event.event_type_value == "STEP_START":
                step_pids.add(event.pid)
    assert os.getpid() not in step_pids
    assert len(step_pids) >= 2, f"steps ran in {step_pids} ({elapsed:.1f}s)"

    # The same hours, in process, into a second lake.
    other_root = tmp_path / "lake-in-process"
    reference_path = tmp_path / "reference.yaml"
    raw = yaml.safe_load(config_path.read_text())
    raw["lake"] = {"root": str(other_root), "catalog": str(other_root / "obs.duckdb")}
    reference_path.write_text(yaml.safe_dump(raw))
    in_process = celery_definitions(str(reference_path), in_process_executor).resolve_job_def(
        CELERY_JOB
    )
    for hour in HOURS:
        assert in_process.execute_in_process(
            instance=instance, tags=_partition_tags(hour), run_config=QUIET
        ).success

    celery_lake, reference_lake = Lake(load_config(config_path)), Lake(load_config(reference_path))
    for dataset in ("metric_series", "metric_samples"):
        for hour in HOURS:
            distributed, local = (
                celery_lake.read_hot(dataset, hour),
                reference_lake.read_hot(dataset, hour),
            )
            assert local is not None and local.num_rows > 0
            assert distributed is not None and distributed.equals(local), (
                f"{dataset} {hour} differs"
            )
