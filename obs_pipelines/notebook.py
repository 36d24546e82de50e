"""The lake from a notebook: every dataset as a polars LazyFrame.

    from obs_pipelines import notebook
    lake = notebook.datasets("obs.demo.yaml")  # {name: LazyFrame}, nothing read yet
    samples = notebook.scan("metric_samples", "obs.demo.yaml", start="2026-11-18", end="2026-11-19")
    samples.join(lake["metric_series"], on="series_id").group_by("service").len().collect()

Each LazyFrame reads the catalog's view of the same name, so it sees exactly what ``obs query``
sees: one version of each Delta table, ``series_id`` as the unsigned id and timestamps as naive UTC
(``polars.scan_delta`` reads the same tables, with the stored signed ids and UTC-aware times).

Reading stays lazy and bounded: polars hands the scan the columns it needs (and a row limit), which
become the SQL's projection, and ``start``/``end`` become a WHERE on the dataset's time column, so
DuckDB reads only those columns of the matching row groups; rows arrive as Arrow batches, so a
streaming ``collect(engine="streaming")`` or ``sink_parquet`` never holds a whole dataset. Other
filters are applied by polars to each batch as it arrives. Each collection opens its own cursor on
the catalog, because one DuckDB connection streams one result at a time: a join of two datasets,
or of a dataset with itself, would otherwise cut one stream short.
"""

import os
from collections.abc import Iterator
from datetime import UTC, datetime

import duckdb
import polars as pl
from polars.io.plugins import register_io_source

from obs_pipelines import datasets as registry
from obs_pipelines.config import ObsConfig, load_config
from obs_pipelines.errors import ObsError
from obs_pipelines.lake import catalog
from obs_pipelines.windows import utc

BATCH_ROWS = 100_000

ConfigLike = ObsConfig | str | os.PathLike[str] | None
Moment = datetime | str | None


def datasets(config: ConfigLike = None) -> dict[str, pl.LazyFrame]:
    """Every dataset of the lake as a LazyFrame, by name (registry order). ``config`` is an
    ObsConfig, a path to a config file, or None for ``$OBS_CONFIG`` / ``./obs.yaml``."""
    con = catalog.connect(_config(config))
    return {name: _lazy(con, name, f'SELECT * FROM "{name}"') for name in registry.ALL}


def scan(
    name: str, config: ConfigLike = None, start: Moment = None, end: Moment = None
) -> pl.LazyFrame:
    """One dataset as a LazyFrame, optionally only the rows whose time column lies in
    [start, end) (UTC; datetimes or ISO 8601 strings). Datasets without a time column
    (``metric_series`` and the snapshots) ignore the window."""
    if name not in registry.DATASETS:
        raise ObsError(f"no dataset '{name}'; choose one of: {', '.join(registry.ALL)}")
    lower, upper = _moment(start, "start"), _moment(end, "end")
    if lower is not None and upper is not None and lower >= upper:
        raise ObsError(
            f"start {lower:%Y-%m-%dT%H:%M:%S} is not before end {upper:%Y-%m-%dT%H:%M:%S}"
        )
    query = f'SELECT * FROM "{name}"'
    column = registry.DATASETS[name].time_column
    bounds = [
        f"\"{column}\" {op} TIMESTAMP '{moment:%Y-%m-%d %H:%M:%S.%f}'"
        for op, moment in ((">=", lower), ("<", upper))
        if column is not None and moment is not None
    ]
    if bounds:
        query += " WHERE " + " AND ".join(bounds)
    return _lazy(catalog.connect(_config(config)), name, query)


def _config(config: ConfigLike) -> ObsConfig:
    return config if isinstance(config, ObsConfig) else load_config(config)


def _moment(value: Moment, what: str) -> datetime | None:
    """``value`` as a naive UTC datetime (the lake's timestamps carry no zone)."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = utc(value)
        except ValueError:
            raise ObsError(
                f"{what} '{value}' is not a time; give an ISO 8601 time such as 2026-11-18T00:00Z"
            ) from None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def _lazy(con: duckdb.DuckDBPyConnection, name: str, query: str) -> pl.LazyFrame:
    """A LazyFrame over ``query``, streamed from DuckDB with the projection pushed into it."""

    def schema() -> pl.Schema:
        return pl.from_arrow(con.cursor().sql(query).limit(0).to_arrow_table()).schema

    def source(
        with_columns: list[str] | None,
        predicate: pl.Expr | None,
        n_rows: int | None,
        batch_size: int | None,
    ) -> Iterator[pl.DataFrame]:
        relation = con.cursor().sql(query)
        if with_columns is not None:
            relation = relation.select(*(duckdb.ColumnExpression(c) for c in with_columns))
        if n_rows is not None and predicate is None:
            relation = relation.limit(n_rows)
        reader = relation.to_arrow_reader(batch_size or BATCH_ROWS)
        remaining = n_rows
        for batch in iter(reader.read_next_batch, None):
            frame = pl.from_arrow(batch)
            if predicate is not None:
                frame = frame.filter(predicate)
            if remaining is not None:
                frame = frame.head(remaining)
                remaining -= frame.height
            yield frame
            if remaining == 0:
                return

    return register_io_source(source, schema=schema, explain_name=f"obs catalog {name}")
