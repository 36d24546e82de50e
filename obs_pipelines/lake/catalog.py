"""The DuckDB catalog: one file of views over every dataset in the lake, for analysts and reports.

Each dataset's view spans every tier (raw ``metric_samples`` from hot and warm, decoded exactly;
``metric_rollups`` from warm and cold; everything else from all three) and shows each row once,
whatever moves are under way. The views hold no data, only globs over the lake, so new partitions
show up without a rebuild and a query always reads what is published at that moment:

* every query lists the dataset's files and keeps those no other file supersedes (the rule of
  :func:`obs_pipelines.lake.paths.supersedes`, in SQL below): a warm day hides the hot hours it
  was compacted from, a cold file the warm days it holds, a newer generation an older one. A move
  publishes its new file before it deletes its sources, so at every instant of a move exactly
  one copy of each row is current;
* files in an archive storage class (GLACIER, DEEP_ARCHIVE) cannot be read without a restore:
  they still hide what they superseded, but their rows are left out; :func:`archived_partitions`
  names them and :func:`archive_notice` says so for a query that may need them.

A tier enters a view once it holds files, so the catalog is rebuilt after every tiering run (and
ingest run). The file is rebuilt by writing a fresh copy and renaming it over the old one: an
analyst who has it open read-only keeps a consistent catalog, and the pipeline never waits for
their lock. ``lake_partitions`` lists every file with its tier, rows, bytes and storage class, as
of the build.

With ``lake.format: delta`` the same views read the datasets' Delta tables instead, and the build
reads only their logs (:mod:`obs_pipelines.lake.delta_catalog`).
"""

import hashlib
import os
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from obs_pipelines.config import ARCHIVE_STORAGE_CLASSES, TIERS, ObsConfig
from obs_pipelines.datasets import ALL, names
from obs_pipelines.datasets import dataset as dataset_of
from obs_pipelines.lake import Lake, delta_catalog
from obs_pipelines.lake.attach import attach_lake, lake_identity
from obs_pipelines.lake.attach import catalog_lake_root as catalog_lake_root
from obs_pipelines.lake.attach import connect as connect
from obs_pipelines.lake.delta import attach_delta
from obs_pipelines.lake.delta_tables import DeltaTables, enabled
from obs_pipelines.lake.integrity import repair_listing_faults
from obs_pipelines.lake.inventory import INVENTORY
from obs_pipelines.lake.metric_codec import decode_sql
from obs_pipelines.lake.paths import (
    COLD_FILE_RE,
    HOT_FILE_RE,
    WARM_FILE_RE,
    LakeFile,
    split_visible,
)
from obs_pipelines.lake.tiering import SOURCE_KEY, stored_schema
from obs_pipelines.reporting import reports

_DUCKDB_TYPES = {
    pa.uint64(): "UBIGINT",
    pa.int64(): "BIGINT",
    pa.float64(): "DOUBLE",
    pa.string(): "VARCHAR",
    pa.timestamp("ms"): "TIMESTAMP",
    pa.map_(pa.string(), pa.string()): "MAP(VARCHAR, VARCHAR)",
    pa.timestamp("us"): "TIMESTAMP",
    pa.int32(): "INTEGER",
    pa.bool_(): "BOOLEAN",
    pa.list_(pa.string()): "VARCHAR[]",
}
_TIMESTAMPS = (pa.timestamp("ms"), pa.timestamp("us"))
# The names the lake gives files in each tier (paths.py); anything else is never read.
_FILE_GLOBS = {"hot": "part-00000.parquet", "warm": "part-g*.parquet", "cold": "part-*.parquet"}
_BUILD_SUFFIX = ".tmp"
ABANDONED_BUILD_AGE = timedelta(hours=1)
_DATASETS = ALL
# Which datasets a view name reads, for archive notices: `metrics` joins the hourly metric ones.
_VIEW_DATASETS = {"metrics": names(pillar="metrics", cadence="hourly")}
_METRICS_VIEW = """CREATE OR REPLACE VIEW metrics AS
           SELECT s.metric, s.labels, s.service, s.job, s.instance, x.series_id, x.ts, x.value
           FROM metric_samples x JOIN metric_series s USING (series_id)"""


def build_catalog(config: ObsConfig) -> Path:
    """(Re)create the catalog file: a view per dataset, ``metrics``, ``lake_partitions``, reports.

    With ``lake.format: delta`` the views read the Delta tables and the build reads their logs
    only (:mod:`obs_pipelines.lake.delta_catalog`)."""
    lake = Lake(config)
    opened = {}
    if enabled(config):
        opened = DeltaTables(config).ensure_tables()
    else:
        lake.adopt()
        lake.ensure_anchors()
        repair_listing_faults(lake)
    target = Path(config.catalog_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _sweep_abandoned_builds(target)
    staged = target.with_name(f".{target.name}.{uuid.uuid4().hex}{_BUILD_SUFFIX}")
    try:
        con = duckdb.connect(str(staged))
        try:
            if enabled(config):
                _create_delta_views(con, config, opened)
            else:
                attach_lake(con, lake)
                listed = {d: lake.files(d) for d in _DATASETS}
                for statement in _view_statements(lake, listed):
                    con.execute(statement)
                _create_partitions_table(con, lake, listed)
                con.execute(_partition_sources_view(lake, listed))
            con.execute(
                "CREATE TABLE catalog_info AS "
                "SELECT ? AS lake_root, now() AS built_at, ? AS definition",
                [lake_identity(lake), catalog_definition(config)],
            )
            reports.publish(con, config)
        finally:
            con.close()
        os.replace(staged, target)
    finally:
        staged.unlink(missing_ok=True)
        Path(f"{staged}.wal").unlink(missing_ok=True)
    return target


def refresh_catalog(config: ObsConfig) -> Path:
    """What a run calls after writing: the catalog as current as its format needs.

    Files: rebuilt, since a tier enters a view only once it holds files. Delta tables: the views
    read each table's newest version whenever they are queried, so the catalog is rebuilt only
    when it is missing or its definition changed (report SQL, config, this package); the
    ``lake_catalog`` asset and ``obs catalog`` still rebuild it, refreshing ``lake_partitions``.
    """
    target = Path(config.catalog_path)
    if enabled(config) and _built_definition(target) == catalog_definition(config):
        return target
    return build_catalog(config)


def catalog_definition(config: ObsConfig) -> str:
    """A fingerprint of everything the catalog's SQL is made from (not of the lake's data)."""
    from importlib.metadata import version

    digest = hashlib.sha256()
    for text in (
        version("obs-pipelines"),
        config.model_dump_json(),
        *(f"{name}\n{sql}" for name, sql in sorted(reports.report_queries().items())),
    ):
        digest.update(text.encode())
    return digest.hexdigest()


def _built_definition(target: Path) -> str | None:
    if not target.exists():
        return None
    try:
        with duckdb.connect(str(target), read_only=True) as con:
            row = con.execute("SELECT definition FROM catalog_info").fetchone()
    except duckdb.Error:  # an older catalog without the column, or one being replaced
        return None
    return row[0] if row else None


def _create_delta_views(
    con: duckdb.DuckDBPyConnection, config: ObsConfig, opened: dict[str, Any]
) -> None:
    """The dataset views, ``lake_partitions`` and ``lake_partition_sources`` over the Delta
    tables, from their logs alone (``opened``: the tables, already open)."""
    _create_delta_dataset_views(con, config)
    delta_catalog.create_partitions_table(con, config, opened)
    con.execute(delta_catalog.partition_sources_view(config))


def _create_delta_dataset_views(con: duckdb.DuckDBPyConnection, config: ObsConfig) -> None:
    attach_delta(con, config)
    for statement in [*delta_catalog.view_statements(config), _METRICS_VIEW]:
        con.execute(statement)


def _sweep_abandoned_builds(target: Path) -> None:
    """Remove what a build killed mid-way left beside the catalog (its staged copy and WAL);
    a build in progress elsewhere is younger than the horizon and left alone."""
    horizon = datetime.now(UTC) - ABANDONED_BUILD_AGE
    for leftover in target.parent.glob(f".{target.name}.*{_BUILD_SUFFIX}*"):
        try:
            if datetime.fromtimestamp(leftover.stat().st_mtime, UTC) < horizon:
                leftover.unlink()
        except FileNotFoundError:
            pass


def lake_connection(config: ObsConfig) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with a view per dataset (no reports, no catalog file): what the
    engine reads the lake through when it needs SQL over partitions of several tiers."""
    if enabled(config):
        DeltaTables(config).ensure_tables()
        con = duckdb.connect()
        _create_delta_dataset_views(con, config)
        return con
    lake = Lake(config)
    lake.adopt()
    lake.ensure_anchors()
    con = duckdb.connect()
    attach_lake(con, lake)
    listed = {d: lake.files(d) for d in _DATASETS}
    for statement in _view_statements(lake, listed):
        con.execute(statement)
    return con


def archived_partitions(
    config: ObsConfig,
    datasets: list[str] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[LakeFile]:
    """Current files of ``datasets`` overlapping [start, end) that sit in an archive storage
    class, so the views leave their rows out until they are restored. Delta tables have none:
    their files never enter an archive class (``obs lake lifecycle`` refuses those)."""
    if enabled(config):
        return []
    lake = Lake(config)
    found = []
    for dataset in datasets or _DATASETS:
        visible, _ = split_visible(lake.files(dataset))
        found += [
            f
            for f in visible
            if f.storage_class in ARCHIVE_STORAGE_CLASSES
            and (start is None or f.end > start)
            and (end is None or f.start < end)
        ]
    return sorted(found, key=lambda f: (f.dataset, f.start))


def archive_notice(config: ObsConfig, sql: str) -> str | None:
    """One sentence for a query that reads datasets with archived partitions, else None.

    The CLI prints it (to stderr) after a query's result, so an analyst knows rows may be
    missing and how to bring them back.
    """
    words = set(re.findall(r"[a-z_]+", sql.lower()))
    datasets = [d for d in _DATASETS if d in words]
    datasets += [d for view, ds in _VIEW_DATASETS.items() if view in words for d in ds]
    archived = archived_partitions(config, sorted(set(datasets))) if datasets else []
    if not archived:
        return None
    lake = Lake(config)
    shown = ", ".join(f"{f.dataset} {f.partition} ({f.storage_class})" for f in archived[:5])
    more = f" and {len(archived) - 5} more" if len(archived) > 5 else ""
    first = lake.file_url(archived[0])
    return (
        f"{len(archived)} archived partition(s) are left out of this query: {shown}{more}; "
        f"restore them (e.g. aws s3api restore-object --restore-request Days=7 for {first}), "
        "copy them to a readable storage class and run `obs catalog` to include them"
    )


def _view_statements(lake: Lake, listed: dict[str, list[LakeFile]]) -> list[str]:
    """Dataset views first (one per lake dataset), then the ``metrics`` join."""
    statements = [
        _series_view(lake, listed[name])
        if dataset_of(name).collapse_series
        else _dataset_view(lake, name, listed[name])
        for name in _DATASETS
    ]
    statements.append(_METRICS_VIEW)
    return statements


def _columns(schema: pa.Schema) -> str:
    return ", ".join(
        f'"{f.name}"::{_DUCKDB_TYPES[f.type]} AS "{f.name}"'
        if f.type in _TIMESTAMPS
        else f'"{f.name}"'
        for f in schema
    )


def _dataset_view(lake: Lake, name: str, files: list[LakeFile]) -> str:
    registered = dataset_of(name)
    schema = registered.schema
    branches = []
    for tier, relation in _tier_relations(lake, name, files):
        if registered.codec == "samples" and tier != "hot":
            branches.append(f"SELECT series_id, ts, value FROM ({decode_sql(relation)})")
        else:
            branches.append(f"SELECT {_columns(schema)} FROM {relation}")
    if not branches:
        return _empty_view(name, schema)
    return _with_listing(lake, name, files, "\nUNION ALL\n".join(branches))


def _series_view(lake: Lake, files: list[LakeFile]) -> str:
    """Series, with the first and last hour each was seen in, over every tier."""
    attributes = "series_id, metric, labels, service, job, instance"
    branches = []
    for tier, relation in _tier_relations(lake, "metric_series", files):
        if tier == "hot":
            seen = (
                "strptime(regexp_extract(filename, 'dt=([0-9-]+)/hour=([0-9]+)/', 1) || ' ' || "
                "regexp_extract(filename, 'dt=([0-9-]+)/hour=([0-9]+)/', 2), '%Y-%m-%d %H')"
            )
            branches.append(
                f"SELECT {attributes}, {seen} AS first_seen, {seen} AS last_seen FROM {relation}"
            )
        else:
            branches.append(
                f"SELECT {attributes}, first_seen_hour::TIMESTAMP AS first_seen, "
                f"last_seen_hour::TIMESTAMP AS last_seen FROM {relation}"
            )
    if not branches:
        return _empty_view(
            "metric_series",
            dataset_of("metric_series").schema,
            {"first_seen_hour": "TIMESTAMP", "last_seen_hour": "TIMESTAMP"},
        )
    union = "\nUNION ALL\n".join(branches)
    body = f"""SELECT series_id, any_value(metric) AS metric, any_value(labels) AS labels,
       any_value(service) AS service, any_value(job) AS job, any_value(instance) AS instance,
       min(first_seen) AS first_seen_hour, max(last_seen) AS last_seen_hour
FROM ({union}) GROUP BY series_id"""
    return _with_listing(lake, "metric_series", files, body)


def _tier_relations(lake: Lake, dataset: str, files: list[LakeFile]) -> list[tuple[str, str]]:
    """(tier, relation) for every tier ``dataset`` can live in, whether or not it holds files
    now: a view built before data reached a tier must still read it there (an analyst may hold
    this catalog open across tiering runs). Each glob matches only the names the lake writes and
    always matches the tier's anchor, so it is never empty; each relation keeps only current,
    published files. Archive tiers are read from an explicit list of their readable files."""
    return [
        (
            tier,
            f"(SELECT * FROM read_parquet({source}, filename = true, hive_partitioning = false) "
            "WHERE filename IN (SELECT file FROM current_files))",
        )
        for tier, source in _tier_sources(lake, dataset, files)
    ]


def _with_listing(lake: Lake, dataset: str, files: list[LakeFile], body: str) -> str:
    """``CREATE VIEW`` of ``body`` preceded by ``current_files``: the dataset's files that the
    inventory lists as published when the query runs, less those another file supersedes."""
    ds = re.escape(dataset)
    listing = "\n    UNION ALL ".join(
        f"SELECT regexp_replace(file, '/{INVENTORY}/(.+)/[^/]+$', '/\\1') AS file, '{t}' AS tier "
        f"FROM glob({_quote(lake.tiers[t].url(f'{INVENTORY}/{t}/{dataset}/**'))})"
        for t in TIERS
        if stored_schema(dataset, t) is not None
    )
    hot_re, warm_re, cold_re = (
        _quote(p.format(ds=ds)) for p in (HOT_FILE_RE, WARM_FILE_RE, COLD_FILE_RE)
    )
    return f"""CREATE OR REPLACE VIEW {dataset} AS
WITH listed AS MATERIALIZED (
    SELECT DISTINCT file, tier,
           regexp_extract(file, {hot_re}, ['dt', 'hour']) AS h,
           regexp_extract(file, {warm_re}, ['dt', 'res', 'gen']) AS w,
           regexp_extract(file, {cold_re}, ['month', 'res', 'first', 'last', 'gen']) AS c
    FROM ({listing})
),
spans AS MATERIALIZED (
    SELECT file,
           CASE tier WHEN 'hot' THEN 0 WHEN 'warm' THEN 1 ELSE 2 END AS rank,
           CASE tier WHEN 'hot' THEN '' WHEN 'warm' THEN w.gen ELSE c.gen END AS gen,
           CASE tier WHEN 'hot' THEN '' WHEN 'warm' THEN w.res ELSE c.res END AS res,
           CASE tier
               WHEN 'hot' THEN try_strptime(h.dt || ' ' || h.hour, '%Y-%m-%d %H')
               WHEN 'warm' THEN try_strptime(w.dt, '%Y-%m-%d')
               ELSE try_strptime(c.month || '-' || c.first, '%Y-%m-%d')
           END AS span_start,
           CASE tier
               WHEN 'hot' THEN try_strptime(h.dt || ' ' || h.hour, '%Y-%m-%d %H') + INTERVAL 1 HOUR
               WHEN 'warm' THEN try_strptime(w.dt, '%Y-%m-%d') + INTERVAL 1 DAY
               ELSE try_strptime(c.month || '-' || c.last, '%Y-%m-%d') + INTERVAL 1 DAY
           END AS span_end
    FROM listed
),
current_files AS MATERIALIZED (
    SELECT f.file FROM spans AS f
    WHERE f.span_start IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM spans AS g
        WHERE g.span_start IS NOT NULL AND g.file <> f.file AND g.res = f.res
          AND g.span_start <= f.span_start AND g.span_end >= f.span_end
          AND (g.rank > f.rank OR (g.rank = f.rank AND g.gen > f.gen))
    )
)
{body}"""


def _empty_view(
    dataset: str, schema: pa.Schema, extra_columns: dict[str, str] | None = None
) -> str:
    columns = [
        f'CAST(NULL AS {_DUCKDB_TYPES.get(f.type, "VARCHAR")}) AS "{f.name}"' for f in schema
    ]
    columns += [f"CAST(NULL AS {kind}) AS {name}" for name, kind in (extra_columns or {}).items()]
    return f"CREATE OR REPLACE VIEW {dataset} AS SELECT {', '.join(columns)} WHERE false"


def _create_partitions_table(
    con: duckdb.DuckDBPyConnection, lake: Lake, listed: dict[str, list[LakeFile]]
) -> None:
    """``lake_partitions``: every file of every dataset, with where and how it is stored."""
    files = [f for fs in listed.values() for f in fs]
    current = {f.key for fs in listed.values() for f in split_visible(fs)[0]}
    row_counts = [f.rows for f in files]  # from the inventory: no file is opened
    table = pa.table(
        {
            "dataset": pa.array([f.dataset for f in files], pa.string()),
            "tier": pa.array([f.tier for f in files], pa.string()),
            "partition": pa.array([f.partition for f in files], pa.string()),
            "resolution": pa.array([f.resolution for f in files], pa.string()),
            "span_start": pa.array([f.start for f in files], pa.timestamp("ms")),
            "span_end": pa.array([f.end for f in files], pa.timestamp("ms")),
            "row_count": pa.array(row_counts, pa.int64()),
            "bytes": pa.array([f.size for f in files], pa.int64()),
            "storage_class": pa.array([f.storage_class for f in files], pa.string()),
            "written_at": pa.array([f.modified for f in files], pa.timestamp("ms", tz="UTC")),
            "current": pa.array([f.key in current for f in files], pa.bool_()),
            "file": pa.array([lake.file_url(f) for f in files], pa.string()),
        }
    )
    con.register("partitions_listing", table)
    con.execute(
        """CREATE OR REPLACE TABLE lake_partitions AS
           SELECT dataset, tier, "partition", resolution, span_start, span_end, row_count, bytes,
                  storage_class, written_at::TIMESTAMP AS written_at, "current",
                  storage_class IN ('GLACIER', 'DEEP_ARCHIVE') AS archived, file
           FROM partitions_listing ORDER BY dataset, span_start, tier"""
    )
    con.unregister("partitions_listing")


def _partition_sources_view(lake: Lake, listed: dict[str, list[LakeFile]]) -> str:
    """``lake_partition_sources``: each file of ``lake_partitions`` with the source that wrote
    it, as recorded in its Parquet footer (``obs.source``: ingest writes the source's name into
    every hot partition; a warm or cold file records the sources of the files it was made from,
    comma-separated). A view, so the build opens no file: the footers are read when it is
    queried (one small read per file, through DuckDB's ``parquet_kv_metadata``)."""
    branches = []
    for dataset in _DATASETS:
        for tier, source in _tier_sources(lake, dataset, listed[dataset]):
            branches.append(
                f"SELECT '{dataset}' AS dataset, '{tier}' AS tier, file_name AS file, "
                f"decode(value) AS source FROM parquet_kv_metadata({source}) "
                f"WHERE decode(key) = '{SOURCE_KEY.decode()}'"
            )
    recorded = "\n    UNION ALL ".join(branches) or (
        "SELECT NULL::VARCHAR AS dataset, NULL::VARCHAR AS tier, NULL::VARCHAR AS file, "
        "NULL::VARCHAR AS source WHERE false"
    )
    return f"""CREATE OR REPLACE VIEW lake_partition_sources AS
SELECT p.dataset, p.tier, p."partition", p.resolution, p.span_start, p.span_end, p."current",
       r.source, p.file
FROM lake_partitions AS p
LEFT JOIN (
    {recorded}
) AS r ON r.dataset = p.dataset AND r.tier = p.tier AND r.file = p.file
ORDER BY p.dataset, p.span_start, p.tier"""


def _tier_sources(lake: Lake, dataset: str, files: list[LakeFile]) -> list[tuple[str, str]]:
    """(tier, file list or glob) to read ``dataset``'s footers from: the globs of
    :func:`_tier_relations` (each matches at least the tier's anchor), or for an archive tier
    the files still readable."""
    found = []
    for tier in TIERS:
        if stored_schema(dataset, tier) is None:
            continue
        if lake.config.lake.tier(tier).archived:
            readable = [
                lake.file_url(f)
                for f in files
                if f.tier == tier and f.storage_class not in ARCHIVE_STORAGE_CLASSES
            ]
            if readable:
                found.append((tier, "[" + ", ".join(_quote(u) for u in readable) + "]"))
            continue
        found.append(
            (tier, _quote(lake.tiers[tier].url(f"{tier}/{dataset}/**/{_FILE_GLOBS[tier]}")))
        )
    return found


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
