"""Ingest assets for logs, traces and alerts: one hourly-partitioned asset per dataset, plus the
snapshot assets (alert rules, Alertmanager state) that record "now" under the current hour.

Metrics have their own module (two datasets from one read, and a row count against the source).
"""

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetsDefinition,
    BetaWarning,
    MaterializeResult,
    MetadataValue,
    PartitionsDefinition,
    asset,
)

from assets.checks import expectations_result
from assets.partitions import BACKFILL_POLICY
from obs_pipelines.catalog import build_catalog
from obs_pipelines.ingest import TableIngestResult, ingest_table_hour
from obs_pipelines.lake import Lake
from obs_pipelines.quality import validate_partition, validate_partitions
from obs_pipelines.resources import ObsResource
from obs_pipelines.sources import table_source
from obs_pipelines.windows import TimeWindow, hour_window


@dataclass(frozen=True)
class IngestSpec:
    dataset: str
    description: str
    kinds: frozenset[str]


HOURLY_DATASETS = (
    IngestSpec(
        "log_records",
        "One row per log document exported from Elasticsearch (point in time + search_after), ECS fields mapped to columns.",
        frozenset({"parquet", "elasticsearch"}),
    ),
    IngestSpec(
        "spans",
        "One row per span from Jaeger's query API (v3 or v1), de-duplicated across services.",
        frozenset({"parquet", "jaeger"}),
    ),
    IngestSpec(
        "alert_fragments",
        "Firing and pending stretches of each alert within the hour, from Prometheus's ALERTS series; the catalog's alert_events view stitches them into whole intervals.",
        frozenset({"parquet", "prometheus"}),
    ),
)

SNAPSHOT_DATASETS = (
    IngestSpec(
        "alert_rules",
        "Every alerting and recording rule Prometheus has loaded, as of the snapshot.",
        frozenset({"parquet", "prometheus"}),
    ),
    IngestSpec(
        "alertmanager_alerts",
        "Alertmanager's alerts as of the snapshot: state, silences, inhibitions, receivers.",
        frozenset({"parquet", "alertmanager"}),
    ),
)


def build_hourly_ingest(spec: IngestSpec, partitions: PartitionsDefinition) -> AssetsDefinition:
    with warnings.catch_warnings():
        # backfill_policy on @asset is marked beta in Dagster 1.13; we depend on it deliberately.
        warnings.simplefilter("ignore", BetaWarning)
        return _hourly_ingest(spec, partitions)


def _hourly_ingest(spec: IngestSpec, partitions: PartitionsDefinition) -> AssetsDefinition:
    @asset(
        name=spec.dataset,
        group_name="ingest",
        description=spec.description,
        kinds=set(spec.kinds),
        partitions_def=partitions,
        backfill_policy=BACKFILL_POLICY,
        check_specs=[
            AssetCheckSpec(
                "expectations",
                asset=spec.dataset,
                description="GX suite on each published partition: keys present, times inside the hour, no duplicate ids, known levels/kinds.",
            )
        ],
    )
    def ingest(
        context: AssetExecutionContext, obs: ObsResource
    ) -> Iterator[MaterializeResult | AssetCheckResult]:
        config = obs.config
        lake = Lake(config)
        source = table_source(config, spec.dataset)
        assert source is not None
        window = context.partition_time_window
        hours = list(TimeWindow(window.start.astimezone(UTC), window.end.astimezone(UTC)).hours())
        results: list[TableIngestResult] = []
        for hour in hours:
            result = ingest_table_hour(lake, source, hour)
            results.append(result)
            context.log.info(f"{spec.dataset} {hour}: {result.rows} rows, {result.bytes} bytes")
        published = ((hour, lake.read_hot(spec.dataset, hour)) for hour in hours)
        checks = validate_partitions(spec.dataset, published)
        yield MaterializeResult(metadata=_metadata(source.name, results))
        yield expectations_result(spec.dataset, checks)

    return ingest


def build_snapshot_ingest(spec: IngestSpec) -> AssetsDefinition:
    @asset(
        name=spec.dataset,
        group_name="ingest",
        description=spec.description,
        kinds=set(spec.kinds),
        check_specs=[
            AssetCheckSpec(
                "expectations", asset=spec.dataset, description="GX suite on the snapshot."
            )
        ],
    )
    def snapshot(
        context: AssetExecutionContext, obs: ObsResource
    ) -> Iterator[MaterializeResult | AssetCheckResult]:
        config = obs.config
        source = table_source(config, spec.dataset)
        hour = hour_window(datetime.now(UTC))
        if source is None:
            context.log.info(f"no source configured for {spec.dataset}; nothing to snapshot")
            yield MaterializeResult(metadata={"rows": 0, "skipped": "no source configured"})
            yield AssetCheckResult(
                check_name="expectations", passed=True, metadata={"skipped": True}
            )
            return
        lake = Lake(config)
        result = ingest_table_hour(lake, source, hour)
        check = (hour, validate_partition(spec.dataset, lake.read_hot(spec.dataset, hour), hour))
        build_catalog(config)
        yield MaterializeResult(metadata=_metadata(source.name, [result]))
        yield expectations_result(spec.dataset, [check])

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
