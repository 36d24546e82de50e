"""The lake as the rest of the engine sees it: datasets and hours, not tables and files.

Every dataset is a Delta table (:mod:`obs_pipelines.lake.delta_tables`); this is the small surface
ingest, derivation, snapshots, freshness and the CLI write and read hours through.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pyarrow as pa

from obs_pipelines.config import ObsConfig
from obs_pipelines.lake.storage import LocalStorage, S3Storage, open_storage
from obs_pipelines.windows import TimeWindow

if TYPE_CHECKING:
    from obs_pipelines.lake.delta_tables import HourBatch


@dataclass(frozen=True)
class WrittenPartition:
    """One hour as committed: where (``<table uri>@<hour start>``), its rows and its bytes."""

    key: str
    rows: int
    bytes: int


@dataclass(frozen=True)
class PartitionInfo:
    dataset: str
    tier: str
    window: TimeWindow
    key: str
    bytes: int
    written_at: datetime


class Lake:
    """The lake under ``lake.root``: its Delta tables, and the storage they live on."""

    def __init__(self, config: ObsConfig) -> None:
        self.config = config
        self.storage: LocalStorage | S3Storage = open_storage(
            config.lake, config.resolve_path(config.lake.root)
        )
        from obs_pipelines.lake.delta_tables import DeltaTables  # it reads through this package

        self.tables: DeltaTables = DeltaTables(config)

    def write_hot(
        self, dataset: str, hour: TimeWindow, table: pa.Table, *, sort: bool = True, **metadata: str
    ) -> WrittenPartition:
        """Replace the hour of ``dataset`` with ``table`` in one commit (sorted by the dataset's
        keys unless the caller already did). An hour of a day already compacted is replaced
        inside it, and the next tiering run compacts that day again."""
        written = self.tables.write_hour(dataset, hour, table, sort=sort, **metadata)
        return WrittenPartition(
            f"{self.tables.uri(dataset)}@{hour.start.isoformat()}", written.rows, written.bytes
        )

    def batch(self, dataset: str, *, source: str | None = None) -> "HourBatch":
        """Hours of ``dataset`` published together in one commit, as a run publishes its hours:
        each hour is written to a file when added, and nothing is visible before ``commit()``."""
        return self.tables.batch(dataset, source=source)

    def read_hours(self, dataset: str, window: TimeWindow) -> Iterator[tuple[TimeWindow, pa.Table]]:
        """Every hour of ``window`` as committed (empty where it holds no rows), an hour at a
        time: what a run's checks read back after publishing."""
        return self.tables.read_hours(dataset, window)

    def read_hot(self, dataset: str, hour: TimeWindow) -> pa.Table | None:
        """The committed content of one hour, or None if it was never written."""
        return self.tables.read_hour(dataset, hour)

    def hot_partitions(self, dataset: str, since: datetime | None = None) -> list[PartitionInfo]:
        """Every hour of ``dataset`` written at or after ``since``, from the log's commit records
        (no data file is opened)."""
        return [
            PartitionInfo(dataset, "hot", h.window, self.tables.uri(dataset), h.bytes, h.written_at)
            for h in self.tables.written_hours(dataset, since or datetime.min.replace(tzinfo=UTC))
        ]

    def newest_snapshot(self, dataset: str, taken_at: str) -> pa.Table | None:
        """The rows of ``dataset``'s newest snapshot (None before the first)."""
        return self.tables.newest_snapshot(dataset, taken_at)
