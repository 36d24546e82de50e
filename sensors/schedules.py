"""Schedules: each asset family materializes on its own clock, with no one watching.

* ingest, hourly: the hour that just closed, a few minutes past the hour so late scrapes and
  remote writes have landed (``minute_of_hour``);
* tiering, daily: after the day closed and its last hour was ingested;
* reports, daily: after tiering, so they read the day in its final place;
* snapshots (alert rules, Alertmanager state), hourly at the ingest minute: each run records the
  source's state under the hour it runs in, a rerun within the hour replacing it, so one run an
  hour keeps one snapshot per hour, the finest the lake holds;
* late data, hourly: logs and spans of the hour that closed ``operations.reread_after`` ago are
  ingested again, so what their sources received after the first run reaches the lake.

The factories take the jobs (or the assets to build them from), so the composition root passes
each family as its assets appear.
"""

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol

from dagster import (
    AssetKey,
    AssetsDefinition,
    AssetSelection,
    DefaultScheduleStatus,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
    build_schedule_from_partitioned_job,
    define_asset_job,
    schedule,
)

from assets.partitions import PARTITION_KEY_FORMAT
from obs_pipelines.config import DEFAULT_OPERATIONS
from obs_pipelines.datasets import names
from obs_pipelines.durations import format_duration

AssetsLike = Iterable[AssetsDefinition | str | AssetKey]


class AssetJob(Protocol):
    """A job made by ``define_asset_job``, resolved when the ``Definitions`` load. Its class
    lives in Dagster's private modules, so this names what schedules and sensors use of it."""

    @property
    def name(self) -> str: ...


metrics_ingest_job: AssetJob = define_asset_job(
    "metrics_ingest_job",
    selection=AssetSelection.assets(*names(pillar="metrics", cadence="hourly")),
    description="Ingest one hour of raw metrics into the hot tier.",
)


def asset_job(name: str, assets: AssetsLike | AssetSelection, description: str) -> AssetJob:
    """A job materializing ``assets``: a selection (asset groups, say), or exactly the assets
    listed (asset definitions, keys or key strings)."""
    if isinstance(assets, AssetSelection):
        return define_asset_job(name, selection=assets, description=description)
    keys: list[AssetKey] = []
    for item in assets:
        if isinstance(item, AssetsDefinition):
            keys += sorted(item.keys, key=lambda k: k.to_user_string())
        else:
            keys.append(AssetKey.from_coercible(item))
    return define_asset_job(name, selection=AssetSelection.assets(*keys), description=description)


def hourly_ingest_schedule(
    job: AssetJob = metrics_ingest_job,
    minute_of_hour: int = DEFAULT_OPERATIONS.ingest_minute,
    default_status: DefaultScheduleStatus = DefaultScheduleStatus.STOPPED,
) -> ScheduleDefinition:
    """Materialize the hour that just closed, ``minute_of_hour`` minutes past the hour."""
    _check_minute(minute_of_hour)
    return build_schedule_from_partitioned_job(
        job,
        name=f"{job.name}_hourly" if job is not metrics_ingest_job else None,
        minute_of_hour=minute_of_hour,
        default_status=default_status,
    )


def hourly_ingest_schedules(
    jobs: Sequence[AssetJob],
    minute_of_hour: int = DEFAULT_OPERATIONS.ingest_minute,
    default_status: DefaultScheduleStatus = DefaultScheduleStatus.STOPPED,
) -> list[ScheduleDefinition]:
    """One hourly schedule per ingest job (metrics, logs, spans, alerts), all at the same offset."""
    return [hourly_ingest_schedule(job, minute_of_hour, default_status) for job in jobs]


def daily_schedule(
    job: AssetJob,
    *,
    hour: int,
    minute: int = 0,
    partitioned: bool,
    default_status: DefaultScheduleStatus = DefaultScheduleStatus.STOPPED,
) -> ScheduleDefinition:
    """Run ``job`` once a day at ``hour:minute`` UTC.

    A daily-partitioned job gets the day that just closed as its partition; an unpartitioned one
    (reports over the whole catalog) just runs.
    """
    _check_minute(minute)
    if not 0 <= hour <= 23:
        raise ValueError(f"hour {hour} is not an hour of the day (0-23)")
    if partitioned:
        return build_schedule_from_partitioned_job(
            job,
            name=f"{job.name}_daily",
            hour_of_day=hour,
            minute_of_hour=minute,
            default_status=default_status,
        )
    return ScheduleDefinition(
        name=f"{job.name}_daily",
        job=job,
        cron_schedule=f"{minute} {hour} * * *",
        execution_timezone="UTC",
        default_status=default_status,
    )


def tiering_schedule(
    job: AssetJob,
    *,
    partitioned: bool = True,
    at: tuple[int, int] = DEFAULT_OPERATIONS.tiering_time,
    default_status: DefaultScheduleStatus = DefaultScheduleStatus.STOPPED,
) -> ScheduleDefinition:
    """Daily tiering (hot -> warm -> cold) after the day's last hour was ingested."""
    return daily_schedule(
        job, hour=at[0], minute=at[1], partitioned=partitioned, default_status=default_status
    )


def reports_schedule(
    job: AssetJob,
    *,
    partitioned: bool = False,
    at: tuple[int, int] = DEFAULT_OPERATIONS.reports_time,
    default_status: DefaultScheduleStatus = DefaultScheduleStatus.STOPPED,
) -> ScheduleDefinition:
    """Daily reports after tiering, so the day just closed is in its final tier."""
    return daily_schedule(
        job, hour=at[0], minute=at[1], partitioned=partitioned, default_status=default_status
    )


def snapshot_schedule(
    job: AssetJob,
    snapshots: Sequence[AssetsDefinition],
    *,
    minute_of_hour: int = DEFAULT_OPERATIONS.ingest_minute,
    default_status: DefaultScheduleStatus = DefaultScheduleStatus.STOPPED,
) -> ScheduleDefinition:
    """Hourly, ``minute_of_hour`` past the hour: a run of ``job`` materializing ``snapshots``
    (with their checks) and nothing else of it. The job may hold a snapshot that has a schedule
    of its own (``incident_records``, hourly at the same minute): two runs writing one hour of a
    dataset at once would race, so each schedule takes only its own assets."""
    _check_minute(minute_of_hour)
    keys = [key for snapshot in snapshots for key in snapshot.keys]
    checks = [key for snapshot in snapshots for key in snapshot.check_keys]

    @schedule(
        name=f"{job.name}_hourly",
        job=job,
        cron_schedule=f"{minute_of_hour} * * * *",
        execution_timezone="UTC",
        default_status=default_status,
        description="Snapshot " + ", ".join(k.to_user_string() for k in keys) + " as of now.",
    )
    def _snapshots(context: ScheduleEvaluationContext) -> RunRequest:
        return RunRequest(asset_selection=keys, asset_check_keys=checks)

    return _snapshots


def reread_schedule(
    job: AssetJob,
    dataset: str,
    *,
    after: timedelta,
    first_hour: datetime,
    minute_of_hour: int = DEFAULT_OPERATIONS.ingest_minute,
    default_status: DefaultScheduleStatus = DefaultScheduleStatus.STOPPED,
) -> ScheduleDefinition:
    """Hourly, ``minute_of_hour`` past the hour: ``job`` (the dataset's re-ingest) for the hour
    that closed ``after`` before the tick. The first run took what the source held minutes after
    the hour; this one takes what arrived since. It replaces the hour with what the source holds
    now, never with nothing (ingest keeps an hour the source answers empty), and each hour is
    requested once (run key)."""
    _check_minute(minute_of_hour)

    @schedule(
        name=f"reread_{dataset}_hourly",
        job=job,
        cron_schedule=f"{minute_of_hour} * * * *",
        execution_timezone="UTC",
        default_status=default_status,
        description=f"Ingest {dataset} again {format_duration(after)} after each hour closed, "
        "for what its source received late.",
    )
    def _reread(context: ScheduleEvaluationContext) -> RunRequest | SkipReason:
        end = (context.scheduled_execution_time.astimezone(UTC) - after).replace(
            minute=0, second=0, microsecond=0
        )
        start = end - timedelta(hours=1)
        if start < first_hour:
            return SkipReason(f"{start:%Y-%m-%d %H:%M} UTC is before ingest.start")
        key = start.strftime(PARTITION_KEY_FORMAT)
        return RunRequest(
            run_key=f"reread:{dataset}:{key}",
            partition_key=key,
            tags={"obs/reread": format_duration(after)},
        )

    return _reread


def _check_minute(minute: int) -> None:
    if not 0 <= minute <= 59:
        raise ValueError(f"minute {minute} is not a minute of the hour (0-59)")
