"""Launching runs from the command line: ``obs materialize``, ``slo recompute`` and ``demo``
execute jobs in this process on the persistent Dagster instance, so the UI shows them, and report
each run's outcome in one line (failed runs, failed asset checks, runs a killed ``obs`` left),
plus a warning line per dataset whose hours the source answered with nothing and the lake kept.
"""

import os
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from obs_pipelines.config import CONFIG_ENV_VAR
from obs_pipelines.errors import ObsError
from obs_pipelines.windows import HOUR, TimeWindow

if TYPE_CHECKING:
    from dagster import DagsterInstance

RUN_PARTITIONS = 24  # hours per ingest run, as the assets' backfill policy
# The run's events are in the instance (and the UI); the terminal gets one line per run.
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
DEFAULT_INSTANCE_YAML = "telemetry:\n  enabled: false\n"


@dataclass(frozen=True)
class Run:
    job: str
    what: str
    tags: dict[str, str] = field(default_factory=dict)
    config: dict[str, object] = field(default_factory=dict)


def ingest_runs(window: TimeWindow) -> list[Run]:
    """The ingest job over ``window``, a day of hourly partitions per run."""
    return [
        Run(
            "ingest_job",
            f"ingested {chunk}",
            {
                "dagster/asset_partition_range_start": f"{chunk.start:%Y-%m-%d-%H:%M}",
                "dagster/asset_partition_range_end": f"{chunk.end - HOUR:%Y-%m-%d-%H:%M}",
            },
        )
        for chunk in window.split(RUN_PARTITIONS * HOUR)
    ]


# Who runs a run: runs execute in the obs process, so one whose process is gone never ends.
OWNER_HOST_TAG = "obs/host"
OWNER_PID_TAG = "obs/pid"

# Jobs that exist only while a pillar has a source (obs_pipelines/definitions.py).
_JOB_PILLAR = {"snapshot_job": "alerts", "derive_job": "metrics", "slo_recompute_job": "metrics"}


def launch_runs(config_path: str, runs: list[Run]) -> list[str]:
    """Execute ``runs`` in order on the persistent Dagster instance (``$DAGSTER_HOME``, default
    ``.dagster_home``), so the UI shows them. Returns one line per failed run or failed asset
    check (already printed). Ingest ranges come checked (``cli.closed_hours``)."""
    os.environ[CONFIG_ENV_VAR] = config_path
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(Path(".dagster_home").resolve())))
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text(DEFAULT_INSTANCE_YAML)
    from dagster import DagsterInstance

    from obs_pipelines.definitions import build_definitions

    defs = build_definitions(config_path)
    defined = {job.name for job in defs.resolve_all_job_defs()}
    for run in runs:
        if run.job not in defined:
            pillar = _JOB_PILLAR.get(run.job, "metrics")
            raise ObsError(
                f"{run.job} is not defined: sources.{pillar} is none, so nothing feeds it; "
                f"set sources.{pillar} to a backend (or simulator) in the config"
            )
    failures = []
    with DagsterInstance.get() as instance:
        _fail_runs_of_ended_processes(instance)
        owner = {OWNER_HOST_TAG: socket.gethostname(), OWNER_PID_TAG: str(os.getpid())}
        for run in runs:
            result = defs.resolve_job_def(run.job).execute_in_process(
                instance=instance,
                tags={**run.tags, **owner},
                raise_on_error=False,
                run_config={**QUIET_RUN_CONFIG, **run.config},
            )
            failed_checks = _failed_checks(result)
            if result.success and not failed_checks:
                print(f"{run.what} (run {result.run_id[:8]})")
            elif result.success:  # written, but what a check found needs a look
                for check in failed_checks:
                    line = f"run {result.run_id[:8]} ({run.what}): check {check}"
                    print(f"obs: warning: {line}", file=sys.stderr)
                    failures.append(line)
            else:
                line = f"run {result.run_id[:8]} ({run.what}) failed: {_failure_reason(result)}"
                print(f"obs: error: {line}", file=sys.stderr)
                failures.append(line)
            for line in _kept_hours(result):  # what the run kept: a warning, not a failure
                print(f"obs: warning: {line}", file=sys.stderr)
    return failures


def _fail_runs_of_ended_processes(instance: "DagsterInstance") -> None:
    """Mark failed the runs an ``obs`` process on this host left unfinished when it was
    killed: a run executes in the process that launched it, so nothing else would ever end
    them, and the UI would show them started forever (and their hours neither done nor
    failed, so "re-execute failed" would not offer them)."""
    from dagster import DagsterRunStatus, RunsFilter

    unfinished = [DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]
    found = instance.get_runs(
        RunsFilter(statuses=unfinished, tags={OWNER_HOST_TAG: socket.gethostname()})
    )
    for run in found:
        pid = int(run.tags.get(OWNER_PID_TAG, "0"))
        if pid and pid != os.getpid() and not _running(pid):
            instance.report_run_failed(
                run,
                message=f"the obs process that ran it (pid {pid}) ended before the run did "
                "(killed or crashed); rerun the same command to finish its hours",
            )


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _failed_checks(result: object) -> list[str]:
    """'<asset>.<check> failed: <first finding>' for each asset check of the run that failed
    (the run succeeds: the data is written, and the UI shows the check red)."""
    found = []
    for check in result.get_asset_check_evaluations():  # type: ignore[attr-defined]
        if check.passed:
            continue
        texts = [str(v.value).strip() for v in check.metadata.values() if isinstance(v.value, str)]
        first = next((t.splitlines()[0] for t in texts if t and t != "none"), "")
        what = f"{check.asset_key.to_user_string()}.{check.check_name} failed"
        found.append(f"{what}: {first.lstrip('- ')}" if first else what)
    return found


def _kept_hours(result: object) -> list[str]:
    """The run's kept-hours warnings (:data:`KEPT_METADATA`), once per dataset: the run's
    metadata is repeated on every partition it materialized."""
    from obs_pipelines.lake.ingest import KEPT_METADATA

    found: dict[str, None] = {}
    for event in result.get_asset_materialization_events():  # type: ignore[attr-defined]
        kept = event.materialization.metadata.get(KEPT_METADATA)
        if kept is not None:
            found[str(kept.value)] = None
    return list(found)


def _failure_reason(result: object) -> str:
    for event in result.all_events:  # type: ignore[attr-defined]
        if event.is_step_failure and event.step_failure_data.error:
            error = event.step_failure_data.error
            while error.cause is not None:
                error = error.cause
            if "Interrupted" in (error.cls_name or ""):
                return "interrupted (terminated or Ctrl-C); rerun the same command to finish it"
            return error.message.strip().split(": ", 1)[-1].splitlines()[0]
    return "see the run in the Dagster UI"
