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
from assets.partitions import BACKFILL_POLICY, group_of
from assets.resources import ObsResource
from obs_pipelines.datasets import DATASETS, names
from obs_pipelines.lake import Lake
from obs_pipelines.lake.ingest import MetricsIngestResult, ingest_metrics_hours
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

        def published_samples() -> Iterator[tuple[TimeWindow, pa.Table]]:
            """Each hour as published, read once for both the row count and the GX suite."""
            expected = {r.window: r for r in results}
            for hour, table in lake.read_hours("metric_samples", span):
                result = expected[hour]
                if table.num_rows != result.source_distinct:
                    row_mismatches.append(
                        f"{hour}: published {table.num_rows}, the source returned "
                        f"{result.source_distinct} distinct of {result.source_samples}"
                    )
                yield hour, table

        samples_checks = validate_partitions("metric_samples", published_samples())
        series_checks = validate_partitions("metric_series", lake.read_hours("metric_series", span))

        yield MaterializeResult(
            asset_key="metric_samples",
            metadata={
                **_samples_metadata(source.name, results),
                **{f"samples from {name}": rows for name, rows in by_source.items()},
            },
        )
        yield MaterializeResult(
            asset_key="metric_series",
            metadata={
                "series (max per hour)": max(r.series for r in results),
                "hours": len(results),
            },
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


def _samples_metadata(source: str, results: list[MetricsIngestResult]) -> dict[str, object]:
    first = [r.first_ts_ms for r in results if r.first_ts_ms is not None]
    last = [r.last_ts_ms for r in results if r.last_ts_ms is not None]
    rows = "\n".join(
        f"| {r.window.start:%Y-%m-%d %H:00} | {r.series} | {r.samples} | {r.bytes} |"
        for r in results[:48]
    )
    return {
        "source": source,
        "hours": len(results),
        "samples": sum(r.samples for r in results),
        "bytes": sum(r.bytes for r in results),
        "bytes per sample": round(
            sum(r.bytes for r in results) / max(1, sum(r.samples for r in results)), 3
        ),
        "first sample": MetadataValue.timestamp(min(first) / 1000) if first else "none",
        "last sample": MetadataValue.timestamp(max(last) / 1000) if last else "none",
        "per hour": MetadataValue.md(
            "| hour | series | samples | bytes |\n|---|---|---|---|\n" + rows
        ),
    }


def _samples_by_source(source: object, results: list[MetricsIngestResult]) -> dict[str, int]:
    """Samples each backend returned for the run's hours (one backend: all of them)."""
    if isinstance(source, CombinedMetrics):
        return dict(source.samples_by_source)
    return {str(getattr(source, "name", "source")): sum(r.source_samples for r in results)}


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)
