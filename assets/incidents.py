"""``incident_records``: postmortems and PagerDuty incidents, the reports' ground truth where
they exist (defined only when ``sources.incidents`` is configured).

**Why a snapshot, not hourly partitions by start.** An incident is written down as it unfolds:
PagerDuty resolves it hours or days after it was created, a postmortem is filed (and corrected)
later still. So each run reads *everything* the sources hold now (the whole postmortems file,
every PagerDuty incident created within ``since``) and publishes it as one snapshot under the
hour of the run, through the lake's ordinary one-commit write of an hour (like
``alert_rules``). Nothing is appended to an older partition, so nothing is duplicated;
``sql/incidents.sql`` keeps the newest version of each ``incident_id`` (``fetched_at``), so an
incident resolved days after it started reads resolved as soon as a run has seen it, and
incidents older than the look-back keep the last version fetched. A failed run (a 500 on any
page) publishes nothing and the next one converges; a rerun within the hour replaces the hour.
"""

from collections.abc import Iterator
from datetime import UTC, datetime

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetsDefinition,
    DefaultScheduleStatus,
    MaterializeResult,
    ScheduleDefinition,
    asset,
)

from assets.partitions import group_of
from assets.resources import ObsResource
from obs_pipelines.datasets import DATASETS
from obs_pipelines.lake import Lake
from obs_pipelines.lake.catalog import refresh_catalog
from obs_pipelines.lake.ingest import ingest_table_hour
from obs_pipelines.sources.incidents import incident_source, record_problems
from obs_pipelines.windows import hour_window
from sensors.schedules import AssetJob, asset_job

INCIDENTS_JOB = "incidents_job"
DATASET = "incident_records"


def build_incident_records() -> AssetsDefinition:
    @asset(
        name=DATASET,
        group_name=group_of(DATASETS[DATASET]),
        description="Incident records (postmortems file, PagerDuty incidents with their log "
        "entries) as one snapshot per run; reports keep the newest version of each incident.",
        kinds={"parquet", "pagerduty"},
        check_specs=[
            AssetCheckSpec(
                "records",
                asset=DATASET,
                description="Keys present, one row per (source, incident_id), resolved_at not "
                "before started_at, known statuses.",
            )
        ],
    )
    def incident_records(
        context: AssetExecutionContext, obs: ObsResource
    ) -> Iterator[MaterializeResult | AssetCheckResult]:
        config = obs.config
        lake = Lake(config)
        source = incident_source(config, previous=lake.newest_snapshot(DATASET, "fetched_at"))
        hour = hour_window(datetime.now(UTC))
        result = ingest_table_hour(lake, source, hour)
        published = lake.read_hot(DATASET, hour)
        context.log.info(f"{DATASET} {hour}: {result.rows} records from {source.name}")
        refresh_catalog(config)
        problems = record_problems(published)
        yield MaterializeResult(
            metadata={"source": source.name, "rows": result.rows, "bytes": result.bytes}
        )
        yield AssetCheckResult(
            check_name="records", passed=not any(problems.values()), metadata=problems
        )

    return incident_records


def incidents_job() -> AssetJob:
    return asset_job(
        INCIDENTS_JOB,
        [DATASET],
        "Snapshot the incident records (postmortems, PagerDuty) as of now.",
    )


def incidents_schedule(job: AssetJob, minute_of_hour: int) -> ScheduleDefinition:
    """Hourly, like ingest: an incident resolved since the last run reads resolved within the hour."""
    return ScheduleDefinition(
        name=f"{INCIDENTS_JOB}_hourly",
        job=job,
        cron_schedule=f"{minute_of_hour} * * * *",
        execution_timezone="UTC",
        default_status=DefaultScheduleStatus.STOPPED,
    )
