"""The partitions every asset family shares, defined once."""

from datetime import UTC, datetime

from dagster import BackfillPolicy, DailyPartitionsDefinition, HourlyPartitionsDefinition

from obs_pipelines.datasets import Dataset
from obs_pipelines.windows import TimeWindow

PARTITION_KEY_FORMAT = "%Y-%m-%d-%H:%M"

# Asset groups: the jobs select these, so a group holds exactly what its job materializes.
INGEST_GROUP = "ingest"  # hourly: every ingested dataset's partition and the catalog after them
DERIVED_GROUP = "derived"  # hourly, in ingest runs: what reports need from raw samples
SNAPSHOT_GROUP = "snapshots"  # unpartitioned: a source's state as of now
TIERING_GROUP = "tiering"  # daily
REPORTS_GROUP = "reports"  # daily, after tiering


def group_of(dataset: Dataset) -> str:
    """The asset group of a dataset's asset, from its cadence in the registry."""
    return {"hourly": INGEST_GROUP, "snapshot": SNAPSHOT_GROUP, "derived": DERIVED_GROUP}[
        dataset.cadence
    ]


# A backfill of many hours runs as one run per day of partitions, not one per hour.
BACKFILL_POLICY = BackfillPolicy.multi_run(max_partitions_per_run=24)


def hourly_partitions(start: datetime) -> HourlyPartitionsDefinition:
    """Hourly UTC partitions from the configured ``ingest.start``; the open hour is excluded."""
    return HourlyPartitionsDefinition(
        start_date=start.strftime(PARTITION_KEY_FORMAT), timezone="UTC"
    )


def partition_key(hour: TimeWindow) -> str:
    """The key of ``hour``'s hourly partition. A run over a range of hours attaches each hour's
    numbers to its own partition with it (``context.add_asset_metadata(..., partition_key=)``):
    metadata of the ``MaterializeResult`` goes on every partition of the run."""
    return hour.start.astimezone(UTC).strftime(PARTITION_KEY_FORMAT)


def daily_partitions(start: datetime) -> DailyPartitionsDefinition:
    """Daily UTC partitions for tiering and reports: each day runs once the day has closed."""
    return DailyPartitionsDefinition(start_date=start.strftime("%Y-%m-%d"), timezone="UTC")
