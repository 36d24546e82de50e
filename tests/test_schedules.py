"""Schedules: with every schedule on, every asset the definitions hold is materialized, and a
snapshot schedule takes only its own assets."""

from collections.abc import Callable
from datetime import UTC, datetime
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
        request = _request(schedule, job.partitions_def is not None)
        if request is not None and request.asset_selection is not None:
            assert set(request.asset_selection) <= selected
            selected = set(request.asset_selection)
        found |= selected
    return found


def _request(schedule: ScheduleDefinition, partitioned: bool = False) -> RunRequest | None:
    """The run request of an unpartitioned schedule's tick (partitioned ones run their whole job)."""
    if partitioned or schedule.job.partitions_def is not None:
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


def test_logs_and_spans_are_ingested_again_after_reread_after_for_what_arrived_late(
    write_config: Callable[..., Path],
) -> None:
    """At 12:07 with reread_after 6h, the hour 05:00-06:00 (closed 6 h 7 min ago) is requested
    again, once; metrics, whose scrapes do not arrive late, are not."""
    defs = build_definitions(
        str(write_config(operations={"ingest_minute": 7, "reread_after": "6h"}))
    )
    rereads = {n: s for n, s in schedules(defs).items() if n.startswith("reread_")}
    assert sorted(rereads) == ["reread_log_records_hourly", "reread_spans_hourly"]

    logs = rereads["reread_log_records_hourly"]
    assert (logs.job_name, logs.cron_schedule) == ("repair_log_records_job", "7 * * * *")
    with DagsterInstance.ephemeral() as instance:
        tick = datetime(2026, 11, 18, 12, 7, tzinfo=UTC)
        repository = defs.get_repository_def()
        (request,) = logs.evaluate_tick(
            build_schedule_context(
                instance=instance, scheduled_execution_time=tick, repository_def=repository
            )
        ).run_requests
        early = logs.evaluate_tick(
            build_schedule_context(
                instance=instance,
                scheduled_execution_time=datetime(2026, 1, 1, 5, 7, tzinfo=UTC),
                repository_def=repository,
            )
        )
    assert (request.partition_key, request.run_key) == (
        "2026-11-18-05:00",
        "reread:log_records:2026-11-18-05:00",
    )
    assert not early.run_requests and "before ingest.start" in (early.skip_message or "")


def test_no_reread_when_reread_after_is_null(write_config: Callable[..., Path]) -> None:
    defs = build_definitions(str(write_config(operations={"reread_after": None})))

    assert not [n for n in schedules(defs) if n.startswith("reread_")]
