"""The partitions every asset family shares, defined once."""

from datetime import datetime

from dagster import HourlyPartitionsDefinition

PARTITION_KEY_FORMAT = "%Y-%m-%d-%H:%M"


def hourly_partitions(start: datetime) -> HourlyPartitionsDefinition:
    """Hourly UTC partitions from the configured ``ingest.start``; the open hour is excluded."""
    return HourlyPartitionsDefinition(
        start_date=start.strftime(PARTITION_KEY_FORMAT), timezone="UTC"
    )
