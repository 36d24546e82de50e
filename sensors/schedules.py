"""Schedules: each asset family materializes on its own clock, with no one watching."""

from dagster import (
    AssetSelection,
    ScheduleDefinition,
    build_schedule_from_partitioned_job,
    define_asset_job,
)

INGEST_MINUTE_OF_HOUR = 5  # give late scrapes and remote writes a few minutes to land

metrics_ingest_job = define_asset_job(
    "metrics_ingest_job",
    selection=AssetSelection.assets("metric_series", "metric_samples"),
    description="Ingest one hour of raw metrics into the hot tier.",
)


def hourly_ingest_schedule() -> ScheduleDefinition:
    """Materialize the hour that just closed, a few minutes past the hour."""
    return build_schedule_from_partitioned_job(
        metrics_ingest_job, minute_of_hour=INGEST_MINUTE_OF_HOUR
    )
