"""The lake as the rest of the engine sees it: datasets, partitions and tiers, not keys."""

import hashlib
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from obs_pipelines.config import TIERS, ObsConfig
from obs_pipelines.datasets import ALL
from obs_pipelines.datasets import dataset as dataset_of
from obs_pipelines.errors import LakeError
from obs_pipelines.lake import inventory, paths
from obs_pipelines.lake.paths import LakeFile
from obs_pipelines.lake.storage import LocalStorage, S3Storage, StoredObject, open_storage
from obs_pipelines.lake.writer import HOT, WrittenPartition, write_partition
from obs_pipelines.windows import TimeWindow

if TYPE_CHECKING:
    from obs_pipelines.lake.delta_tables import DeltaTables

# Every dataset with files in the lake (the registry: ingested, derived and made by tiering).
LAKE_DATASETS = ALL

# Raw samples: a dictionary pays off for series_id only; on timestamps and values it costs write
# time and bytes (measured in bench/: 2x faster writes, 18% smaller hot files).
HOT_SAMPLES = replace(HOT, use_dictionary=("series_id",))


@dataclass
class Survey:
    """A dataset's files as listed, sorted by what the inventory says of them."""

    published: list[LakeFile] = field(default_factory=list)
    # A file whose markers name another size: truncated, or replaced by hand.
    mismatched: list[tuple[StoredObject, list[inventory.Marker]]] = field(default_factory=list)
    strays: list[tuple[str, StoredObject]] = field(default_factory=list)  # (tier, object)
    missing: list[tuple[str, inventory.Marker]] = field(default_factory=list)  # published, gone


@dataclass(frozen=True)
class PartitionInfo:
    dataset: str
    tier: str
    window: TimeWindow
    key: str
    bytes: int
    written_at: datetime


class Lake:
    """The lake's tiers, each on its own storage (by default all under ``lake.root``).

    ``storage`` is the hot tier's storage, kept as the name ingest and older callers use.
    """

    def __init__(self, config: ObsConfig) -> None:
        self.config = config
        self.tiers: dict[str, LocalStorage | S3Storage] = {}
        by_root: dict[str, LocalStorage | S3Storage] = {}
        for tier, root in config.lake.tier_roots().items():
            resolved = config.resolve_path(root)
            if resolved not in by_root:
                by_root[resolved] = open_storage(config.lake, resolved)
            self.tiers[tier] = by_root[resolved]
        self.storage = self.tiers["hot"]
        self._inventoried: dict[str, bool] = {}
        # lake.format: delta: every dataset is a Delta table; the methods below that the engine
        # writes and reads hours through use it, the file methods find no files.
        self.tables: DeltaTables | None = None
        if config.lake.format == "delta":
            from obs_pipelines.lake import delta_tables

            self.tables = delta_tables.DeltaTables(config)

    def store(self, tier: str) -> LocalStorage | S3Storage:
        return self.tiers[tier]

    def storage_class(self, tier: str) -> str | None:
        """The S3 storage class new files of ``tier`` get (None for a folder or bucket default)."""
        store = self.tiers[tier]
        return self.config.lake.tier(tier).storage_class if isinstance(store, S3Storage) else None

    def write_hot(
        self, dataset: str, hour: TimeWindow, table: pa.Table, *, sort: bool = True, **metadata: str
    ) -> WrittenPartition:
        """Replace the hourly partition of ``dataset`` with ``table`` (sorted by the dataset's keys
        unless the caller already did).

        An hour whose day already moved to warm or cold is still written: the next tiering run
        finds it hidden under the compacted day and compacts that day again with it.
        """
        if self.tables is not None:
            written = self.tables.write_hour(dataset, hour, table, sort=sort, **metadata)
            return WrittenPartition(
                f"{self.tables.uri(dataset)}@{hour.start.isoformat()}", written.rows, written.bytes
            )
        registered = dataset_of(dataset)
        schema = registered.schema
        ordered = table.select(schema.names).cast(schema)
        if sort and ordered.num_rows > 1:
            ordered = ordered.sort_by([(k, "ascending") for k in registered.sort_keys])
        return write_partition(
            self.storage,
            paths.hot_file(dataset, hour),
            schema,
            ordered,
            encoding=HOT_SAMPLES if registered.codec == "samples" else HOT,
            metadata={
                "dataset": dataset,
                "window_start": hour.start.isoformat(),
                "window_end": hour.end.isoformat(),
                **metadata,
            },
            storage_class=self.storage_class("hot"),
        )

    def read_hot(self, dataset: str, hour: TimeWindow) -> pa.Table | None:
        """The published content of one hourly partition, or None if it was never written."""
        if self.tables is not None:
            return self.tables.read_hour(dataset, hour)
        return self._read(self.storage, paths.hot_file(dataset, hour), missing_ok=True)

    def hot_partitions(self, dataset: str, since: datetime | None = None) -> list[PartitionInfo]:
        """Every published hourly partition of ``dataset`` (starting at or after ``since``), from
        a listing or, for Delta tables, the log's commit records (no data file is opened)."""
        if self.tables is not None:
            return [
                PartitionInfo(
                    dataset, "hot", h.window, self.tables.uri(dataset), h.bytes, h.written_at
                )
                for h in self.tables.written_hours(
                    dataset, since or datetime.min.replace(tzinfo=UTC)
                )
            ]
        return [
            PartitionInfo(dataset, "hot", f.window, f.key, f.size, f.modified)
            for f in self.files(dataset, ("hot",))
            if since is None or f.window.start >= since
        ]

    def files(self, dataset: str, tiers: tuple[str, ...] = TIERS) -> list[LakeFile]:
        """Every published file of ``dataset`` in ``tiers``, visible or superseded, from listings:
        a file counts only if the inventory has a marker of its size (in a store that predates
        the inventory, every well-named file counts). Delta tables have no such files."""
        if self.tables is not None:
            return []
        return self.survey(dataset, tiers).published

    def survey(self, dataset: str, tiers: tuple[str, ...] = TIERS) -> "Survey":
        """Listings of ``dataset``'s files and inventory markers, matched against each other."""
        survey = Survey()
        for tier in tiers:
            store = self.tiers[tier]
            inventoried = self.has_inventory(store)
            markers: dict[str, list[inventory.Marker]] = {}
            if inventoried:
                for obj in store.list_objects(inventory.marker_prefix(f"{tier}/{dataset}")):
                    marker = inventory.parse_marker(obj.key)
                    if marker is not None:
                        markers.setdefault(marker.file_key, []).append(marker)
            for obj in store.list_objects(f"{tier}/{dataset}/"):
                if inventory.is_anchor(obj.key):
                    continue
                parsed = paths.parse_file(
                    dataset, tier, obj.key, obj.size, obj.modified, obj.storage_class, obj.etag
                )
                if not inventoried:
                    if parsed is not None:
                        survey.published.append(parsed)
                    continue
                own = markers.pop(obj.key, [])
                match = next((m for m in own if m.bytes == obj.size), None)
                if parsed is not None and match is not None:
                    survey.published.append(
                        replace(
                            parsed,
                            rows=match.rows,
                            sha256=match.sha256,
                            markers=tuple(m.key for m in own),
                        )
                    )
                elif own:
                    survey.mismatched.append((obj, own))
                else:
                    survey.strays.append((tier, obj))
            survey.missing += [(tier, m) for ms in markers.values() for m in ms]
        return survey

    def has_inventory(self, store: LocalStorage | S3Storage) -> bool:
        """Whether ``store`` keeps the published inventory (it was adopted or begun empty)."""
        known = self._inventoried.get(store.root)
        if known is None:
            known = self._inventoried[store.root] = bool(store.list_objects(inventory.VERSION_KEY))
        return known

    def adopt(self) -> list[str]:
        """Start the inventory in every store that has none: each well-named file already there
        is published as it is (the lake wrote it before markers existed). Returns one line per
        store adopted."""
        done = []
        for store in self._distinct_stores():
            if self.has_inventory(store):
                continue
            adopted = 0
            for tier in TIERS:
                if self.tiers[tier] is not store:
                    continue
                for dataset in LAKE_DATASETS:
                    for f in self.survey(dataset, (tier,)).published:
                        if not store.list_objects(inventory.marker_prefix(f.key)):
                            rows, size, sha = self._fingerprint(f)
                            store.put_empty(inventory.marker_key(f.key, rows, size, sha))
                            adopted += 1
            store.put_empty(inventory.VERSION_KEY)
            self._inventoried[store.root] = True
            if adopted:
                done.append(f"{store.root}: {adopted} existing files entered the inventory")
        return done

    def ensure_anchors(self) -> None:
        """An empty file per tier and dataset that each of the catalog's globs always matches,
        so a view never fails on a tier that holds no data yet (or any more)."""
        for tier in TIERS:
            store = self.tiers[tier]
            for dataset in LAKE_DATASETS:
                key = paths.anchor_file(tier, dataset)
                if not store.list_objects(key.rsplit("/", 1)[0] + "/"):
                    from obs_pipelines.lake.tiering import stored_schema

                    schema = stored_schema(dataset, tier)
                    if schema is not None:
                        with store.staging(key) as staged:
                            pq.write_table(schema.empty_table(), staged)
                            store.publish(staged, key)

    def quarantine(self, tier: str, key: str, reason: str, markers: tuple[str, ...]) -> str:
        """Move a file (and its markers) out of the dataset to ``_quarantine/<reason>/``; the
        rest of the dataset stays readable. Returns where it went."""
        store = self.tiers[tier]
        target = inventory.quarantine_key(reason, key)
        store.move(key, target)
        for marker in markers:
            store.move(marker, inventory.quarantine_key(reason, marker))
        return store.url(target)

    def quarantined(self) -> list[tuple[str, str, str]]:
        """(reason, tier root, original key) of every file or marker in quarantine."""
        found = []
        for store in self._distinct_stores():
            for obj in store.list_objects(f"{inventory.QUARANTINE}/"):
                _, reason, key = obj.key.split("/", 2)
                found.append((reason, store.root, key))
        return found

    def verify(self, file: LakeFile, *, checksum: bool = True) -> str | None:
        """What is wrong with a published file, or None: its footer must open and hold the
        published row count, and (``checksum``) its bytes must hash to the published SHA-256."""
        store = self.tiers[file.tier]
        fs, base = store.arrow_filesystem()
        try:
            rows = pq.read_metadata(f"{base}/{file.key}", filesystem=fs).num_rows
        except (OSError, pa.ArrowException) as exc:
            return f"unreadable footer ({str(exc).splitlines()[0][:120]})"
        if file.rows is not None and rows != file.rows:
            return f"{rows} rows where {file.rows} were published"
        if checksum and file.sha256 is not None and self._sha256(file) != file.sha256:
            return "content differs from what was published (checksum mismatch)"
        return None

    def _fingerprint(self, file: LakeFile) -> tuple[int, int, str]:
        fs, base = self.tiers[file.tier].arrow_filesystem()
        rows = pq.read_metadata(f"{base}/{file.key}", filesystem=fs).num_rows
        return rows, file.size, self._sha256(file)

    def _sha256(self, file: LakeFile) -> str:
        fs, base = self.tiers[file.tier].arrow_filesystem()
        digest = hashlib.sha256()
        with fs.open_input_stream(f"{base}/{file.key}") as stream:
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
        return digest.hexdigest()

    def _distinct_stores(self) -> list[LocalStorage | S3Storage]:
        return list({id(s): s for s in self.tiers.values()}.values())

    def read_file(self, file: LakeFile) -> pa.Table:
        """The stored table of one file (warm metric samples still encoded)."""
        table = self._read(self.tiers[file.tier], file.key, missing_ok=False)
        if table is None:  # unreachable: a missing file raises LakeError when not missing_ok
            raise LakeError(f"{self.file_url(file)} could not be read; rerun")
        return table

    def newest_snapshot(self, dataset: str, taken_at: str) -> pa.Table | None:
        """The rows of ``dataset``'s newest snapshot: those of its newest current file whose
        ``taken_at`` is that file's latest (None before the first snapshot)."""
        if self.tables is not None:
            return self.tables.newest_snapshot(dataset, taken_at)
        visible, _ = paths.split_visible(self.files(dataset))
        if not visible:
            return None
        table = self.read_file(max(visible, key=lambda f: (f.end, f.start)))
        if not table.num_rows:
            return table
        newest = pc.max(table[taken_at])
        return table.filter(pc.equal(table[taken_at], newest))

    def glob_url(self, tier: str, dataset: str) -> str:
        """A glob over every file of ``dataset`` in ``tier``, for DuckDB."""
        return self.tiers[tier].url(f"{tier}/{dataset}/**/*.parquet")

    def file_url(self, file: LakeFile) -> str:
        return self.tiers[file.tier].url(file.key)

    @staticmethod
    def _read(store: LocalStorage | S3Storage, key: str, *, missing_ok: bool) -> pa.Table | None:
        fs, base = store.arrow_filesystem()
        path = f"{base}/{key}"
        try:
            return pq.read_table(path, filesystem=fs)
        except FileNotFoundError:
            if missing_ok:
                return None
            raise LakeError(f"{path} disappeared while being read; rerun") from None
        except OSError as exc:
            if missing_ok and ("NoSuchKey" in str(exc) or "does not exist" in str(exc)):
                return None
            raise LakeError(f"cannot read {path}: {exc}; check lake.root and lake.s3") from None
