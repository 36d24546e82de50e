"""Ingest assets for logs, traces and alerts: one hourly-partitioned asset per dataset, plus the
snapshot assets (alert rules, Alertmanager state) that record "now" under the current hour.

Metrics have their own module (two datasets from one read, and a row count against the source).
"""

import warnings
from collections.abc import Iterator
from datetime import UTC, datetime

from dagster import (
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    BetaWarning,
    MaterializeResult,
    MetadataValue,
    PartitionsDefinition,
    asset,
    multi_asset,
)

from assets.checks import expectations_result
from assets.partitions import BACKFILL_POLICY, group_of, partition_key
from assets.resources import ObsResource
from obs_pipelines.datasets import DATASETS, SOURCE_PILLARS, Dataset, names
from obs_pipelines.errors import ConfigError
from obs_pipelines.lake import Lake
from obs_pipelines.lake.catalog import refresh_catalog
from obs_pipelines.lake.ingest import (
    KEPT_METADATA,
    TableIngestResult,
    ingest_table_hour,
    ingest_table_hours,
    kept_warning,
)
from obs_pipelines.lake.quality import validate_partition, validate_partitions
from obs_pipelines.sources import table_source
from obs_pipelines.windows import TimeWindow, hour_window

# Datasets with an asset of their own here: every hourly one but metrics (assets/metrics.py reads
# series and samples in one pass), and every snapshot.
HOURLY_DATASETS = tuple(
    DATASETS[n] for n in names(cadence="hourly") if DATASETS[n].pillar != "metrics"
)
# Incident records have their own asset (assets/incidents.py).
SNAPSHOT_DATASETS = tuple(DATASETS[n] for n in names(pillar=SOURCE_PILLARS, cadence="snapshot"))


def build_hourly_ingest(spec: Dataset, partitions: PartitionsDefinition) -> AssetsDefinition:
    with warnings.catch_warnings():
        # backfill_policy on @asset is marked beta in Dagster 1.13; we depend on it deliberately.
        warnings.simplefilter("ignore", BetaWarning)
        return _hourly_ingest(spec, partitions)


def _hourly_ingest(spec: Dataset, partitions: PartitionsDefinition) -> AssetsDefinition:
    @asset(
        name=spec.name,
        group_name=group_of(spec),
        description=spec.description,
        kinds={"parquet", spec.origin},
        partitions_def=partitions,
        backfill_policy=BACKFILL_POLICY,
        check_specs=[
            AssetCheckSpec(
                "expectations",
                asset=spec.name,
                description="GX suite on each published partition: keys present, times inside the hour, no duplicate ids, known levels/kinds.",
            )
        ],
    )
    def ingest(
        context: AssetExecutionContext, obs: ObsResource
    ) -> Iterator[MaterializeResult | AssetCheckResult]:
        config = obs.config
        lake = Lake(config)
        source = table_source(config, spec.name)
        if source is None:  # only snapshots may lack a source, and they are not hourly
            raise ConfigError(f"no source configured for {spec.name}; configure its pillar")
        window = context.partition_time_window
        span = TimeWindow(window.start.astimezone(UTC), window.end.astimezone(UTC))
        results = ingest_table_hours(lake, source, list(span.hours()))
        context.log.info(
            f"{spec.name}: {len(results)} hours from {source.name}, "
            f"{sum(r.rows for r in results)} rows, {sum(r.bytes for r in results)} bytes"
        )
        kept = kept_warning(spec.name, [(r.window, r.rows) for r in results if r.kept])
        if kept:
            context.log.warning(kept)
        checks = validate_partitions(spec.name, lake.read_hours(spec.name, span))
        for r in results:  # each hour's partition gets its own numbers, not the run's totals
            context.add_asset_metadata(
                {"rows": r.rows, "bytes": r.bytes, **({"kept": True} if r.kept else {})},
                partition_key=partition_key(r.window),
            )
        yield MaterializeResult(
            metadata={
                "source": source.name,
                "run hours": len(results),
                **({KEPT_METADATA: kept} if kept else {}),
            }
        )
        yield expectations_result(spec.name, checks)

    return ingest


def build_snapshot_ingest(spec: Dataset) -> AssetsDefinition:
    """The snapshot asset of ``spec``. It may run with no source to read (Alertmanager state
    when no Alertmanager is configured): then nothing is written and its check is skipped, which
    Dagster shows as such when a run ends without the check's result (``can_subset``)."""
    check = AssetCheckKey(AssetKey(spec.name), "expectations")

    @multi_asset(
        name=spec.name,
        specs=[
            AssetSpec(
                spec.name,
                group_name=group_of(spec),
                description=spec.description,
                kinds={"parquet", spec.origin},
            )
        ],
        check_specs=[
            AssetCheckSpec("expectations", asset=spec.name, description="GX suite on the snapshot.")
        ],
        can_subset=True,
    )
    def snapshot(
        context: AssetExecutionContext, obs: ObsResource
    ) -> Iterator[MaterializeResult | AssetCheckResult]:
        config = obs.config
        source = table_source(config, spec.name)
        hour = hour_window(datetime.now(UTC))
        if source is None:
            context.log.info(f"no source configured for {spec.name}; nothing to snapshot")
            yield MaterializeResult(
                asset_key=spec.name, metadata={"rows": 0, "skipped": "no source configured"}
            )
            return
        lake = Lake(config)
        result = ingest_table_hour(lake, source, hour)
        checked = (hour, validate_partition(spec.name, lake.read_hot(spec.name, hour), hour))
        refresh_catalog(config)
        yield MaterializeResult(asset_key=spec.name, metadata=_metadata(source.name, [result]))
        if check in context.selected_asset_check_keys:
            yield expectations_result(spec.name, [checked])

    return snapshot


def _metadata(source: str, results: list[TableIngestResult]) -> dict[str, object]:
    rows = "\n".join(
        f"| {r.window.start:%Y-%m-%d %H:00} | {r.rows} | {r.bytes} |" for r in results[:48]
    )
    return {
        "source": source,
        "hours": len(results),
        "rows": sum(r.rows for r in results),
        "bytes": sum(r.bytes for r in results),
        "per hour": MetadataValue.md("| hour | rows | bytes |\n|---|---|---|\n" + rows),
    }
