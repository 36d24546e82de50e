"""Writing one partition file: staged, then published whole, replacing whatever was there.

Batches stream into a staged Parquet file, so a failure at any point (the source raising mid-way,
the disk filling, the process dying) leaves the published partition exactly as it was.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
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
    # Per-column Parquet encodings (pyarrow's ``column_encoding``) and the columns that get a
    # dictionary (True: all but those with an explicit encoding).
    column_encoding: dict[str, str] = field(default_factory=dict)
    use_dictionary: bool | tuple[str, ...] = True
    # Colder tiers write pages as long as their row group (pyarrow cuts a page every 20,000 rows
    # by default): a third smaller warm metric samples (bench/RESULTS-delta.md).
    whole_pages: bool = False

    def writer_options(self) -> dict[str, object]:
        options: dict[str, object] = {
            "compression": self.compression,
            "compression_level": self.compression_level,
        }
        if self.whole_pages:
            options["max_rows_per_page"] = self.row_group_size
        if self.column_encoding:
            options["column_encoding"] = dict(self.column_encoding)
            options["use_dictionary"] = (
                list(self.use_dictionary)
                if not isinstance(self.use_dictionary, bool)
                else [c for c in self._names if c not in self.column_encoding]
            )
        elif not isinstance(self.use_dictionary, bool):
            options["use_dictionary"] = list(self.use_dictionary)
        return options

    _names: tuple[str, ...] = ()

    def for_schema(self, schema: pa.Schema) -> "Encoding":
        """This encoding with the column encodings that do not apply to ``schema`` dropped."""
        names = tuple(schema.names)
        return Encoding(
            self.compression,
            self.compression_level,
            self.row_group_size,
            {k: v for k, v in self.column_encoding.items() if k in names},
            self.use_dictionary
            if isinstance(self.use_dictionary, bool)
            else tuple(c for c in self.use_dictionary if c in names),
            self.whole_pages,
            names,
        )


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
    storage_class: str | None = None,
) -> WrittenPartition:
    """Write ``batches`` as the one file of a partition at ``key`` and publish it atomically."""
    encoding = encoding.for_schema(schema)
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
            write_statistics=True,
            **encoding.writer_options(),  # type: ignore[arg-type]
        ) as writer:
            for batch in batches:
                if batch.schema != schema:
                    batch = pa.RecordBatch.from_arrays(
                        [
                            batch.column(name).cast(field.type)
                            for name, field in zip(schema.names, schema, strict=True)
                        ],
                        schema=schema,
                    )
                writer.write_batch(batch, row_group_size=encoding.row_group_size)
                rows += batch.num_rows
        size = storage.publish(staged, key, storage_class=storage_class, rows=rows)
    return WrittenPartition(key=key, rows=rows, bytes=size)
