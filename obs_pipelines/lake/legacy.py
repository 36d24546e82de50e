"""The file layout lakes were written in before Delta tables, read only, for ``obs lake migrate``.

That layout kept each dataset as Parquet files under ``<tier>/<dataset>/``::

    hot   hot/<dataset>/dt=YYYY-MM-DD/hour=HH/part-00000.parquet
    warm  warm/<dataset>/dt=YYYY-MM-DD[/res=5m]/part-<gen>.parquet
    cold  cold/<dataset>/month=YYYY-MM[/res=1h]/part-<DD>-<DD>-<gen>.parquet

and three rules decided which rows a reader saw, all reproduced here and nowhere else:

* a file counts only if ``_inventory/<file key>/<rows>-<bytes>-<sha256>`` names its size (a lake
  without ``_inventory/VERSION`` predates the inventory: every well-named file counts), so
  strays, hidden files and truncated copies are never data;
* a file covering another's whole span supersedes it from a colder tier, or from the same tier
  with a later generation (a compacted day hides its hours);
* warm and cold raw samples are stored encoded (:data:`DECODE_SAMPLES`).

Nothing here writes: the lake is listed once and read through DuckDB views over the exact files
that are current, each tier under ``lake.root`` unless the old lake kept it elsewhere.
"""

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import duckdb
import pyarrow as pa

from obs_pipelines.config import TIERS, ObsConfig
from obs_pipelines.datasets import ALL
from obs_pipelines.datasets import dataset as dataset_of
from obs_pipelines.lake.storage import LocalStorage, S3Storage, StoredObject, open_storage

INVENTORY = "_inventory"
_VERSION_KEY = f"{INVENTORY}/VERSION"
_RANK = {"hot": 0, "warm": 1, "cold": 2}
_DAY = timedelta(days=1)
_FILE_RE = {
    "hot": r"^hot/{ds}/dt=(\d{{4}}-\d{{2}}-\d{{2}})/hour=(\d{{2}})/part-00000\.parquet$",
    "warm": r"^warm/{ds}/dt=(\d{{4}}-\d{{2}}-\d{{2}})/(?:res=([0-9a-z]+)/)?part-(g[0-9a-zA-Z]+)\.parquet$",
    "cold": r"^cold/{ds}/month=(\d{{4}}-\d{{2}})/(?:res=([0-9a-z]+)/)?part-(\d{{2}})-(\d{{2}})-(g[0-9a-zA-Z]+)\.parquet$",
}
_MARKER_RE = re.compile(r"^(\d+)-(\d+)-[0-9a-f]{64}$")
# Raw samples in warm and cold: ts = base + index * step + unzigzag(jitter); value an integer
# times a unit over a power of ten where that was exact, else the double as it was.
DECODE_SAMPLES = """SELECT series_id,
       epoch_ms(ts_base + ts_index * ts_step + xor(ts_jitter >> 1, -(ts_jitter & 1))) AS ts,
       CASE WHEN value_int IS NULL THEN value_float
            ELSE (value_int * value_unit)::DOUBLE / [1.0, 10.0, 100.0, 1000.0, 10000.0, 100000.0, 1000000.0][value_scale + 1]
       END AS value
FROM {relation}"""
_DUCKDB_TYPES = {
    pa.uint64(): "UBIGINT",
    pa.int64(): "BIGINT",
    pa.int32(): "INTEGER",
    pa.float64(): "DOUBLE",
    pa.string(): "VARCHAR",
    pa.bool_(): "BOOLEAN",
    pa.timestamp("ms"): "TIMESTAMP",
    pa.timestamp("us"): "TIMESTAMP",
    pa.map_(pa.string(), pa.string()): "MAP(VARCHAR, VARCHAR)",
    pa.list_(pa.string()): "VARCHAR[]",
}


@dataclass(frozen=True)
class LegacyFile:
    """A published file of the old layout and the span of time its name says it covers."""

    dataset: str
    tier: str
    url: str
    start: datetime
    end: datetime
    generation: str
    resolution: str | None
    size: int
    modified: datetime

    def supersedes(self, older: "LegacyFile") -> bool:
        if self.url == older.url or self.resolution != older.resolution:
            return False
        if not (self.start <= older.start and self.end >= older.end):
            return False
        return _RANK[self.tier] > _RANK[older.tier] or (
            self.tier == older.tier and self.generation > older.generation
        )


def current_files(
    config: ObsConfig, tier_roots: dict[str, str] | None = None
) -> dict[str, list[LegacyFile]]:
    """Every dataset's published files that no other file supersedes."""
    return _current(_stores(config, tier_roots))


def _current(stores: dict[str, LocalStorage | S3Storage]) -> dict[str, list[LegacyFile]]:
    found: dict[str, list[LegacyFile]] = {d: [] for d in ALL}
    for tier, store in stores.items():
        published = _published(store, tier)
        for obj in published:
            dataset = obj.key.split("/", 2)[1]
            if dataset in found:
                parsed = _parse(dataset, tier, obj, store)
                if parsed is not None:
                    found[dataset].append(parsed)
    return {d: _visible(files) for d, files in found.items()}


def legacy_connection(
    config: ObsConfig, tier_roots: dict[str, str] | None = None
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with one view per dataset over the old layout's current files (rows
    and columns as its catalog showed them) and ``legacy_files`` listing those files.
    ``tier_roots`` names tiers the old lake kept outside ``lake.root`` (its ``lake.<tier>.root``)."""
    stores = _stores(config, tier_roots)
    con = duckdb.connect()
    s3 = next((s for s in stores.values() if isinstance(s, S3Storage)), None)
    if s3 is not None:
        from obs_pipelines.lake.attach import load_packaged_extension

        load_packaged_extension(con, "duckdb_extension_httpfs", "httpfs")
        s3.create_duckdb_secret(con)
    files = _current(stores)
    for dataset in ALL:
        con.execute(_view(dataset, files[dataset]))
    listing = [f for fs in files.values() for f in fs]
    con.register(
        "listing",
        pa.table(
            {
                "dataset": pa.array([f.dataset for f in listing], pa.string()),
                "tier": pa.array([f.tier for f in listing], pa.string()),
                "file": pa.array([f.url for f in listing], pa.string()),
                "bytes": pa.array([f.size for f in listing], pa.int64()),
            }
        ),
    )
    con.execute("CREATE TABLE legacy_files AS SELECT * FROM listing")
    con.unregister("listing")
    return con


def _stores(
    config: ObsConfig, tier_roots: dict[str, str] | None = None
) -> dict[str, LocalStorage | S3Storage]:
    by_root: dict[str, LocalStorage | S3Storage] = {}
    stores = {}
    for tier in TIERS:
        resolved = config.resolve_path((tier_roots or {}).get(tier, config.lake.root))
        if resolved not in by_root:
            by_root[resolved] = open_storage(config.lake, resolved)
        stores[tier] = by_root[resolved]
    return stores


def _published(store: LocalStorage | S3Storage, tier: str) -> list[StoredObject]:
    """The tier's data files the inventory lists at their listed size (all of them in a store
    that predates the inventory)."""
    listed = store.list_objects(f"{tier}/")
    if not store.list_objects(_VERSION_KEY):
        return listed
    sizes: dict[str, set[int]] = {}
    for marker in store.list_objects(f"{INVENTORY}/{tier}/"):
        file_key, _, name = marker.key[len(INVENTORY) + 1 :].rpartition("/")
        match = _MARKER_RE.match(name)
        if match:
            sizes.setdefault(file_key, set()).add(int(match.group(2)))
    return [o for o in listed if o.size in sizes.get(o.key, ())]


def _parse(
    dataset: str, tier: str, obj: StoredObject, store: LocalStorage | S3Storage
) -> LegacyFile | None:
    match = re.match(_FILE_RE[tier].format(ds=re.escape(dataset)), obj.key)
    if match is None:
        return None
    groups = match.groups()
    if tier == "hot":
        start = datetime.strptime(f"{groups[0]} {groups[1]}", "%Y-%m-%d %H").replace(tzinfo=UTC)
        end, resolution, generation = start + timedelta(hours=1), None, ""
    elif tier == "warm":
        start = datetime.strptime(groups[0], "%Y-%m-%d").replace(tzinfo=UTC)
        end, resolution, generation = start + _DAY, groups[1], groups[2]
    else:
        month = datetime.strptime(groups[0], "%Y-%m").replace(tzinfo=UTC)
        start = month.replace(day=int(groups[2]))
        end = month.replace(day=int(groups[3])) + _DAY
        resolution, generation = groups[1], groups[4]
    return LegacyFile(
        dataset,
        tier,
        store.url(obj.key),
        start,
        end,
        generation,
        resolution,
        obj.size,
        obj.modified,
    )


def _visible(files: list[LegacyFile]) -> list[LegacyFile]:
    """The files no other supersedes; each is compared only with files spanning its first day."""
    by_day: dict[tuple[str | None, date], list[LegacyFile]] = {}
    for f in files:
        day = f.start.date()
        while datetime(day.year, day.month, day.day, tzinfo=UTC) < f.end:
            by_day.setdefault((f.resolution, day), []).append(f)
            day += _DAY
    return [
        f
        for f in files
        if not any(g.supersedes(f) for g in by_day.get((f.resolution, f.start.date()), ()))
    ]


def _view(dataset: str, files: list[LegacyFile]) -> str:
    registered = dataset_of(dataset)
    schema = registered.schema
    if registered.collapse_series:
        return _series_view(dataset, files)
    branches = []
    for tier in TIERS:
        relation = _relation([f for f in files if f.tier == tier])
        if relation is None:
            continue
        if registered.codec == "samples" and tier != "hot":
            branches.append(
                f"SELECT series_id, ts, value FROM ({DECODE_SAMPLES.format(relation=relation)})"
            )
        else:
            branches.append(f"SELECT {_columns(schema)} FROM {relation}")
    return _create(dataset, schema, branches)


def _series_view(dataset: str, files: list[LegacyFile]) -> str:
    """One row per series with the first and last hour it was seen (an hour's files say it by
    their name, compacted ones by their columns)."""
    attributes = "series_id, metric, labels, service, job, instance"
    branches = []
    for tier in TIERS:
        relation = _relation([f for f in files if f.tier == tier])
        if relation is None:
            continue
        if tier == "hot":
            hour = (
                "strptime(regexp_extract(filename, 'dt=([0-9-]+)/hour=([0-9]+)/', 1) || ' ' || "
                "regexp_extract(filename, 'dt=([0-9-]+)/hour=([0-9]+)/', 2), '%Y-%m-%d %H')"
            )
            branches.append(
                f"SELECT {attributes}, {hour} AS first_seen, {hour} AS last_seen FROM {relation}"
            )
        else:
            branches.append(
                f"SELECT {attributes}, first_seen_hour::TIMESTAMP AS first_seen, "
                f"last_seen_hour::TIMESTAMP AS last_seen FROM {relation}"
            )
    seen = {"first_seen_hour": "TIMESTAMP", "last_seen_hour": "TIMESTAMP"}
    if not branches:
        return _create(dataset, dataset_of(dataset).schema, [], seen)
    union = "\nUNION ALL\n".join(branches)
    return f"""CREATE VIEW {dataset} AS
SELECT series_id, any_value(metric) AS metric, any_value(labels) AS labels,
       any_value(service) AS service, any_value(job) AS job, any_value(instance) AS instance,
       min(first_seen) AS first_seen_hour, max(last_seen) AS last_seen_hour
FROM ({union}) GROUP BY series_id"""


def _relation(files: list[LegacyFile]) -> str | None:
    if not files:
        return None
    urls = ", ".join("'" + f.url.replace("'", "''") + "'" for f in files)
    return (
        f"read_parquet([{urls}], filename = true, hive_partitioning = false, union_by_name = true)"
    )


def _columns(schema: pa.Schema) -> str:
    return ", ".join(
        f'"{f.name}"::TIMESTAMP AS "{f.name}"' if pa.types.is_timestamp(f.type) else f'"{f.name}"'
        for f in schema
    )


def _create(
    dataset: str, schema: pa.Schema, branches: list[str], extra: dict[str, str] | None = None
) -> str:
    if branches:
        return f"CREATE VIEW {dataset} AS " + "\nUNION ALL\n".join(branches)
    columns = [
        f'CAST(NULL AS {_DUCKDB_TYPES.get(f.type, "VARCHAR")}) AS "{f.name}"' for f in schema
    ]
    columns += [f"CAST(NULL AS {kind}) AS {name}" for name, kind in (extra or {}).items()]
    return f"CREATE VIEW {dataset} AS SELECT {', '.join(columns)} WHERE false"
