"""The lake as the rest of the engine sees it: datasets, partitions and tiers, not keys."""

from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa
import pyarrow.parquet as pq

from obs_pipelines.config import ObsConfig
from obs_pipelines.errors import LakeError
from obs_pipelines.lake import paths
from obs_pipelines.schemas import SCHEMAS, SORT_KEYS
from obs_pipelines.lake.storage import LocalStorage, S3Storage, open_storage
from obs_pipelines.lake.writer import HOT, WrittenPartition, write_partition
from obs_pipelines.windows import TimeWindow


@dataclass(frozen=True)
class PartitionInfo:
    dataset: str
    tier: str
    window: TimeWindow
    key: str
    bytes: int
    written_at: datetime


class Lake:
    def __init__(self, config: ObsConfig) -> None:
        self.config = config
        self.storage: LocalStorage | S3Storage = open_storage(config.lake, config.lake_root)

    def write_hot(
        self, dataset: str, hour: TimeWindow, table: pa.Table, *, sort: bool = True, **metadata: str
    ) -> WrittenPartition:
        """Replace the hourly partition of ``dataset`` with ``table`` (sorted by the dataset's keys
        unless the caller already did)."""
        schema = SCHEMAS[dataset]
        ordered = table.select(schema.names).cast(schema)
        if sort and ordered.num_rows > 1:
            ordered = ordered.sort_by([(k, "ascending") for k in SORT_KEYS[dataset]])
        return write_partition(
            self.storage,
            paths.hot_file(dataset, hour),
            schema,
            ordered,
            encoding=HOT,
            metadata={"dataset": dataset, "window_start": hour.start.isoformat(), "window_end": hour.end.isoformat(), **metadata},
        )

    def read_hot(self, dataset: str, hour: TimeWindow) -> pa.Table | None:
        """The published content of one hourly partition, or None if it was never written."""
        fs, base = self.storage.arrow_filesystem()
        path = f"{base}/{paths.hot_file(dataset, hour)}"
        try:
            return pq.read_table(path, filesystem=fs)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if "NoSuchKey" in str(exc) or "does not exist" in str(exc):
                return None
            raise LakeError(f"cannot read {path}: {exc}; check lake.root and lake.s3") from None

    def hot_partitions(self, dataset: str) -> list[PartitionInfo]:
        """Every published hourly partition of ``dataset``, from a listing (no file is opened)."""
        found = []
        for obj in self.storage.list_objects(f"hot/{dataset}/"):
            if not obj.key.endswith(".parquet"):
                continue
            folder = obj.key.rsplit("/", 1)[0]
            found.append(
                PartitionInfo(dataset, "hot", paths.parse_hot_partition(folder), obj.key, obj.size, obj.modified)
            )
        return found

    def glob_url(self, tier: str, dataset: str) -> str:
        """A glob over every file of ``dataset`` in ``tier``, for DuckDB."""
        return self.storage.url(f"{tier}/{dataset}/**/*.parquet")
