"""The partitions every asset family shares, defined once."""

from datetime import datetime

from dagster import BackfillPolicy, DailyPartitionsDefinition, HourlyPartitionsDefinition

PARTITION_KEY_FORMAT = "%Y-%m-%d-%H:%M"

# A backfill of many hours runs as one run per day of partitions, not one per hour.
BACKFILL_POLICY = BackfillPolicy.multi_run(max_partitions_per_run=24)


def hourly_partitions(start: datetime) -> HourlyPartitionsDefinition:
    """Hourly UTC partitions from the configured ``ingest.start``; the open hour is excluded."""
    return HourlyPartitionsDefinition(
        start_date=start.strftime(PARTITION_KEY_FORMAT), timezone="UTC"
    )


def daily_partitions(start: datetime) -> DailyPartitionsDefinition:
    """Daily UTC partitions for tiering and reports: each day runs once the day has closed."""
    return DailyPartitionsDefinition(start_date=start.strftime("%Y-%m-%d"), timezone="UTC")
