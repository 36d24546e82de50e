"""The DuckDB catalog as an asset, once per ingest run, after every dataset of the run.

The catalog's views read each Delta table's newest version when queried, so a new hour is
queryable the moment it is committed; the asset refreshes what is computed at build time (the
partition index, ``lake_partitions``, from the tables' logs) and rebuilds the whole catalog only
when its definition changed (report SQL, config, this package).
"""

import warnings
from collections.abc import Sequence

import duckdb
from dagster import (
    AssetExecutionContext,
    AssetKey,
    BetaWarning,
    MaterializeResult,
    MetadataValue,
    PartitionsDefinition,
    asset,
)

from assets.partitions import BACKFILL_POLICY
from assets.resources import ObsResource
from obs_pipelines.lake.catalog import refresh_partitions


def build_catalog_asset(partitions: PartitionsDefinition, deps: Sequence[str]) -> object:
    with warnings.catch_warnings():
        # backfill_policy on @asset is marked beta in Dagster 1.13; we depend on it deliberately.
        warnings.simplefilter("ignore", BetaWarning)
        return _catalog_asset(partitions, deps)


def _catalog_asset(partitions: PartitionsDefinition, deps: Sequence[str]) -> object:
    @asset(
        name="lake_catalog",
        group_name="ingest",
        partitions_def=partitions,
        backfill_policy=BACKFILL_POLICY,
        deps=[AssetKey(d) for d in deps],
        kinds={"duckdb"},
    )
    def lake_catalog(context: AssetExecutionContext, obs: ObsResource) -> MaterializeResult:
        """The DuckDB catalog (lake/obs.duckdb): one view per dataset across every tier, and every
        report in sql/. Analysts open it read-only, or run `obs query`."""
        config = obs.config
        path = refresh_partitions(config)
        con = duckdb.connect(str(path), read_only=True)  # the counts need no extension
        try:
            views = con.execute(
                "SELECT count(*) FROM duckdb_views() WHERE NOT internal"
            ).fetchone()[0]
            partitions = con.execute(
                "SELECT tier, count(*) AS files, sum(bytes) AS bytes FROM lake_partitions GROUP BY tier ORDER BY tier"
            ).fetchall()
        finally:
            con.close()
        return MaterializeResult(
            metadata={
                "catalog": MetadataValue.path(str(path)),
                "views": views,
                "files per tier": MetadataValue.md(
                    "| tier | files | bytes |\n|---|---|---|\n"
                    + "\n".join(
                        f"| {tier} | {files} | {size} |" for tier, files, size in partitions
                    )
                ),
            }
        )

    return lake_catalog
