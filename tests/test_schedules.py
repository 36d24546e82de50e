"""Schedules: with every schedule on, every asset the definitions hold is materialized, and a
snapshot schedule takes only its own assets."""

from collections.abc import Callable
from pathlib import Path

from dagster import (
    AssetCheckKey,
    AssetKey,
    DagsterInstance,
    Definitions,
    RunRequest,
    ScheduleDefinition,
    build_schedule_context,
)

from obs_pipelines.definitions import SNAPSHOT_JOB, build_definitions

SNAPSHOTS = {AssetKey("alert_rules"), AssetKey("alertmanager_alerts")}


def schedules(defs: Definitions) -> dict[str, ScheduleDefinition]:
    return {s.name: s for s in defs.get_repository_def().schedule_defs}


def scheduled_assets(defs: Definitions) -> set[AssetKey]:
    """The assets the schedules' runs materialize: a run request's selection, else its job's."""
    found: set[AssetKey] = set()
    for schedule in schedules(defs).values():
        job = defs.resolve_job_def(schedule.job_name)
        selected = set(job.asset_layer.selected_asset_keys)
        request = _request(schedule)
        if request is not None and request.asset_selection is not None:
            assert set(request.asset_selection) <= selected
            selected = set(request.asset_selection)
        found |= selected
    return found


def _request(schedule: ScheduleDefinition) -> RunRequest | None:
    """The run request of an unpartitioned schedule's tick (partitioned ones run their whole job)."""
    if schedule.job.partitions_def is not None:
        return None
    with DagsterInstance.ephemeral() as instance:
        data = schedule.evaluate_tick(build_schedule_context(instance=instance))
    (request,) = data.run_requests or [None]
    return request


def incidents_config(write_config: Callable[..., Path], tmp_path: Path) -> Path:
    postmortems = tmp_path / "postmortems.yaml"
    postmortems.write_text("[]\n")
    return write_config(sources={"incidents": {"postmortems": str(postmortems)}})


def test_the_alert_snapshots_are_scheduled_hourly_at_the_ingest_minute(
    write_config: Callable[..., Path],
) -> None:
    defs = build_definitions(str(write_config(operations={"ingest_minute": 7})))

    snapshot = schedules(defs)[f"{SNAPSHOT_JOB}_hourly"]
    assert (snapshot.job_name, snapshot.cron_schedule) == (SNAPSHOT_JOB, "7 * * * *")
    assert snapshot.execution_timezone == "UTC"
    request = _request(snapshot)
    assert request is not None
    assert set(request.asset_selection) == SNAPSHOTS
    assert set(request.asset_check_keys) == {AssetCheckKey(k, "expectations") for k in SNAPSHOTS}


def test_with_every_schedule_on_every_asset_is_materialized(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    for path in (write_config(), incidents_config(write_config, tmp_path)):
        defs = build_definitions(str(path))
        every = set(defs.resolve_asset_graph().get_all_asset_keys())

        assert scheduled_assets(defs) == every, path.read_text()


def test_the_snapshot_schedule_leaves_incident_records_to_their_own(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    """incident_records is in snapshot_job too; its own hourly schedule runs it at the same
    minute, and two runs writing its hour at once would race."""
    defs = build_definitions(str(incidents_config(write_config, tmp_path)))
    found = schedules(defs)

    request = _request(found[f"{SNAPSHOT_JOB}_hourly"])
    assert request is not None and set(request.asset_selection) == SNAPSHOTS
    assert (
        found["incidents_job_hourly"].cron_schedule == found[f"{SNAPSHOT_JOB}_hourly"].cron_schedule
    )


def test_no_snapshot_schedule_without_an_alerts_source(write_config: Callable[..., Path]) -> None:
    defs = build_definitions(str(write_config(sources={"alerts": "none"})))

    assert f"{SNAPSHOT_JOB}_hourly" not in schedules(defs)


def test_a_scheduled_snapshot_run_materializes_both_snapshots(
    write_config: Callable[..., Path],
) -> None:
    defs = build_definitions(str(write_config()))
    request = _request(schedules(defs)[f"{SNAPSHOT_JOB}_hourly"])
    assert request is not None

    ran = defs.resolve_job_def(SNAPSHOT_JOB).execute_in_process(
        instance=DagsterInstance.ephemeral(), asset_selection=list(request.asset_selection)
    )

    assert ran.success
    assert {m.asset_key for m in ran.get_asset_materialization_events()} == SNAPSHOTS
