"""Metrics ingest: ``metric_series`` and ``metric_samples``, hourly, with per-partition checks."""

from collections.abc import Iterator
from datetime import UTC, datetime

import pyarrow as pa
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetSpec,
    MaterializeResult,
    MetadataValue,
    PartitionsDefinition,
    multi_asset,
)

from assets.checks import expectations_result
from assets.partitions import BACKFILL_POLICY, group_of, partition_key
from assets.resources import ObsResource
from obs_pipelines.datasets import DATASETS, names
from obs_pipelines.lake import Lake
from obs_pipelines.lake.ingest import (
    KEPT_METADATA,
    MetricsIngestResult,
    ingest_metrics_hours,
    metrics_kept_warnings,
)
from obs_pipelines.lake.quality import validate_partitions
from obs_pipelines.sources import CombinedMetrics, metric_source
from obs_pipelines.windows import TimeWindow

# The datasets one read of the metrics source writes (series and samples).
METRIC_DATASETS = [DATASETS[n] for n in names(pillar="metrics", cadence="hourly")]


def build_metric_ingest(partitions: PartitionsDefinition) -> object:
    @multi_asset(
        name="ingest_metrics",
        specs=[
            AssetSpec(
                d.name,
                group_name=group_of(d),
                description=d.description,
                kinds={"parquet", d.origin},
            )
            for d in METRIC_DATASETS
        ],
        check_specs=[
            AssetCheckSpec(
                "expectations",
                asset="metric_samples",
                description="GX suite: keys present, timestamps inside the hour, no duplicate (series_id, ts).",
            ),
            AssetCheckSpec(
                "rows_match_source",
                asset="metric_samples",
                description=(
                    "Rows published equal the distinct samples the source returned (a sample "
                    "returned twice through overlapping selectors counts once)."
                ),
            ),
            AssetCheckSpec(
                "expectations",
                asset="metric_series",
                description="GX suite: series_id present and unique, metric named.",
            ),
        ],
        partitions_def=partitions,
        backfill_policy=BACKFILL_POLICY,
    )
    def ingest_metrics(
        context: AssetExecutionContext, obs: ObsResource
    ) -> Iterator[MaterializeResult | AssetCheckResult]:
        """Pull every configured selector's raw samples for each hour of the run into the hot tier."""
        config = obs.config
        lake = Lake(config)
        source = metric_source(config)
        window = context.partition_time_window
        span = TimeWindow(_utc(window.start), _utc(window.end))
        hours = list(span.hours())
        results = ingest_metrics_hours(lake, source, hours)
        by_source = _samples_by_source(source, results)
        row_mismatches: list[str] = []
        context.log.info(
            f"{len(results)} hours from {source.name}: {sum(r.series for r in results)} series-hours, "
            f"{sum(r.samples for r in results)} samples, {sum(r.bytes for r in results)} bytes"
        )
        kept = metrics_kept_warnings(results)
        for line in kept.values():
            context.log.warning(line)

        def published_samples() -> Iterator[tuple[TimeWindow, pa.Table]]:
            """Each hour as published, read once for both the row count and the GX suite."""
            expected = {r.window: r for r in results}
            for hour, table in lake.read_hours("metric_samples", span):
                result = expected[hour]
                if "metric_samples" not in result.kept and table.num_rows != result.source_distinct:
                    row_mismatches.append(
                        f"{hour}: published {table.num_rows}, the source returned "
                        f"{result.source_distinct} distinct of {result.source_samples}"
                    )
                yield hour, table

        samples_checks = validate_partitions("metric_samples", published_samples())
        series_checks = validate_partitions("metric_series", lake.read_hours("metric_series", span))

        # Each hour's partition gets its own numbers; the results' metadata goes on every
        # partition of the run, so it holds only what is true of each (the source, the run).
        for r in results:
            key = partition_key(r.window)
            context.add_asset_metadata(
                _samples_metadata(r), asset_key="metric_samples", partition_key=key
            )
            context.add_asset_metadata(
                {"series": r.series, **({"kept": True} if "metric_series" in r.kept else {})},
                asset_key="metric_series",
                partition_key=key,
            )
        yield MaterializeResult(
            asset_key="metric_samples",
            metadata={
                "source": source.name,
                "run hours": len(results),
                **{f"run samples from {name}": rows for name, rows in by_source.items()},
                **_kept_metadata(kept, "metric_samples"),
            },
        )
        yield MaterializeResult(
            asset_key="metric_series",
            metadata={"run hours": len(results), **_kept_metadata(kept, "metric_series")},
        )
        yield expectations_result("metric_samples", samples_checks)
        yield AssetCheckResult(
            asset_key="metric_samples",
            check_name="rows_match_source",
            passed=not row_mismatches,
            severity=AssetCheckSeverity.ERROR,
            metadata={
                "source samples": sum(r.source_samples for r in results),
                "distinct source samples": sum(r.source_distinct for r in results),
                "duplicates dropped": sum(r.duplicates_dropped for r in results),
                **{f"source samples from {name}": rows for name, rows in by_source.items()},
                "mismatches": MetadataValue.md(
                    "\n".join(f"- {m}" for m in row_mismatches) or "none"
                ),
            },
        )
        yield expectations_result("metric_series", series_checks)

    return ingest_metrics


def _kept_metadata(kept: dict[str, str], dataset: str) -> dict[str, object]:
    return {KEPT_METADATA: kept[dataset]} if dataset in kept else {}


def _samples_metadata(r: MetricsIngestResult) -> dict[str, object]:
    """One hour's samples, for its partition (of a kept hour: what the lake holds)."""
    if "metric_samples" in r.kept:
        return {"samples": r.samples, "series": r.series, "kept": True}
    return {
        "samples": r.samples,
        "series": r.series,
        "bytes": r.bytes,
        "bytes per sample": round(r.bytes / max(1, r.samples), 3),
        "first sample": (
            MetadataValue.timestamp(r.first_ts_ms / 1000) if r.first_ts_ms is not None else "none"
        ),
        "last sample": (
            MetadataValue.timestamp(r.last_ts_ms / 1000) if r.last_ts_ms is not None else "none"
        ),
    }


def _samples_by_source(source: object, results: list[MetricsIngestResult]) -> dict[str, int]:
    """Samples each backend returned for the run's hours (one backend: all of them)."""
    if isinstance(source, CombinedMetrics):
        return dict(source.samples_by_source)
    return {str(getattr(source, "name", "source")): sum(r.source_samples for r in results)}


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)
