"""The DuckDB catalog: one file of views over every dataset in the lake, for analysts and reports.

The views hold no data, only globs over the lake, so new partitions show up without a rebuild and
a query always reads what is published at that moment. The file is rebuilt by writing a fresh copy
and renaming it over the old one: an analyst who has it open read-only keeps a consistent catalog,
and the pipeline never waits for their lock.
"""

import os
import uuid
from pathlib import Path

import duckdb
import pyarrow as pa

from obs_pipelines.config import ObsConfig
from obs_pipelines.errors import LakeError
from obs_pipelines.lake import Lake
from obs_pipelines.lake.storage import S3Storage
from obs_pipelines.reports import report_queries
from obs_pipelines.schemas import SCHEMAS

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


def build_catalog(config: ObsConfig) -> Path:
    """(Re)create the catalog file with a view per dataset and the ``metrics`` join."""
    lake = Lake(config)
    target = Path(config.catalog_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        con = duckdb.connect(str(staged))
        try:
            _attach_lake(con, lake)
            for statement in _view_statements(lake):
                con.execute(statement)
            _create_report_views(con)
        finally:
            con.close()
        os.replace(staged, target)
    finally:
        staged.unlink(missing_ok=True)
        Path(f"{staged}.wal").unlink(missing_ok=True)
    return target


def connect(config: ObsConfig, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """Open the catalog, ready to query the lake wherever it lives (S3 credentials from the env)."""
    path = Path(config.catalog_path)
    if not path.exists():
        raise LakeError(f"no catalog at {path}; run `obs catalog` (or materialize an asset) first")
    con = duckdb.connect(str(path), read_only=read_only)
    _attach_lake(con, Lake(config))
    return con


def _attach_lake(con: duckdb.DuckDBPyConnection, lake: Lake) -> None:
    if isinstance(lake.storage, S3Storage):
        import duckdb_extension_httpfs

        extension = (
            Path(duckdb_extension_httpfs.__file__).parent
            / "extensions"
            / f"v{duckdb.__version__}"
            / "httpfs.duckdb_extension"
        )
        con.execute(f"LOAD '{extension}'")
        con.execute(lake.storage.duckdb_secret_sql())


def _view_statements(lake: Lake) -> list[str]:
    """Dataset views first (one per lake dataset), then the ``metrics`` join."""
    statements = [
        _dataset_view(
            lake,
            "metric_series",
            """SELECT series_id, any_value(metric) AS metric, any_value(labels) AS labels,
                   any_value(service) AS service, any_value(job) AS job, any_value(instance) AS instance,
                   min(dt::TIMESTAMP + hour * INTERVAL 1 HOUR) AS first_seen_hour,
                   max(dt::TIMESTAMP + hour * INTERVAL 1 HOUR) AS last_seen_hour
               FROM {source} GROUP BY series_id""",
            extra_columns={"first_seen_hour": "TIMESTAMP", "last_seen_hour": "TIMESTAMP"},
        ),
    ]
    for dataset, schema in SCHEMAS.items():
        if dataset != "metric_series":
            columns = ", ".join(
                f"{f.name}::{_DUCKDB_TYPES[f.type]} AS {f.name}"
                if f.type in _TIMESTAMPS
                else f'"{f.name}"'
                for f in schema
            )
            statements.append(_dataset_view(lake, dataset, f"SELECT {columns} FROM {{source}}"))
    statements.append(
        """CREATE OR REPLACE VIEW metrics AS
           SELECT s.metric, s.labels, s.service, s.job, s.instance, x.series_id, x.ts, x.value
           FROM metric_samples x JOIN metric_series s USING (series_id)"""
    )
    return statements


def _create_report_views(con: duckdb.DuckDBPyConnection) -> None:
    """Publish every ``sql/*.sql`` report as a view, dependencies first (whatever their names)."""
    pending = report_queries()
    while pending:
        failed: dict[str, str] = {}
        errors: dict[str, str] = {}
        for name, sql in pending.items():
            try:
                con.execute(f"CREATE OR REPLACE VIEW {name} AS\n{sql}")
            except duckdb.CatalogException as exc:
                failed[name], errors[name] = sql, str(exc).splitlines()[0]
        if len(failed) == len(pending):
            name = next(iter(failed))
            raise LakeError(
                f"report sql/{name}.sql cannot be published: {errors[name]}; fix the query"
            )
        pending = failed


def _dataset_view(
    lake: Lake, dataset: str, select: str, extra_columns: dict[str, str] | None = None
) -> str:
    if lake.hot_partitions(dataset):
        source = f"read_parquet('{lake.glob_url('hot', dataset)}', hive_partitioning = true, hive_types = {{'dt': DATE, 'hour': INTEGER}})"
        return f"CREATE OR REPLACE VIEW {dataset} AS {select.format(source=source)}"
    columns = [f'CAST(NULL AS {_DUCKDB_TYPES[f.type]}) AS "{f.name}"' for f in SCHEMAS[dataset]]
    columns += [f"CAST(NULL AS {kind}) AS {name}" for name, kind in (extra_columns or {}).items()]
    return f"CREATE OR REPLACE VIEW {dataset} AS SELECT {', '.join(columns)} WHERE false"
