"""Writing one partition file: staged, then published whole, replacing whatever was there.

Batches stream into a staged Parquet file, so a failure at any point (the source raising mid-way,
the disk filling, the process dying) leaves the published partition exactly as it was.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq

from obs_pipelines.lake.storage import LocalStorage, S3Storage


@dataclass(frozen=True)
class Encoding:
    """How a tier encodes its files: hot favours write speed, colder tiers favour size."""

    compression: str = "zstd"
    compression_level: int = 1
    row_group_size: int = 1_000_000


HOT = Encoding()


@dataclass(frozen=True)
class WrittenPartition:
    key: str
    rows: int
    bytes: int


def write_partition(
    storage: LocalStorage | S3Storage,
    key: str,
    schema: pa.Schema,
    batches: Iterable[pa.RecordBatch] | pa.Table,
    *,
    encoding: Encoding = HOT,
    metadata: dict[str, str] | None = None,
) -> WrittenPartition:
    """Write ``batches`` as the one file of a partition at ``key`` and publish it atomically."""
    if isinstance(batches, pa.Table):
        batches = batches.to_batches(max_chunksize=encoding.row_group_size)
    file_metadata = {
        **(schema.metadata or {}),
        b"obs.written_at": datetime.now(UTC).isoformat().encode(),
        **{f"obs.{k}".encode(): v.encode() for k, v in (metadata or {}).items()},
    }
    rows = 0
    with storage.staging(key) as staged:
        with pq.ParquetWriter(
            staged,
            schema.with_metadata(file_metadata),
            compression=encoding.compression,
            compression_level=encoding.compression_level,
            write_statistics=True,
        ) as writer:
            for batch in batches:
                if batch.schema != schema:
                    batch = pa.RecordBatch.from_arrays(
                        [batch.column(name).cast(field.type) for name, field in zip(schema.names, schema, strict=True)],
                        schema=schema,
                    )
                writer.write_batch(batch, row_group_size=encoding.row_group_size)
                rows += batch.num_rows
        size = storage.publish(staged, key)
    return WrittenPartition(key=key, rows=rows, bytes=size)
