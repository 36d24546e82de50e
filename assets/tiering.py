"""Daily tiering: hot hours to warm days to cold months, rollups, retention; then the catalog."""

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    Failure,
    MaterializeResult,
    MetadataValue,
    PartitionsDefinition,
    asset,
)

from assets.partitions import TIERING_GROUP
from assets.resources import ObsResource
from obs_pipelines.datasets import dataset as dataset_of
from obs_pipelines.datasets import names
from obs_pipelines.lake.catalog import refresh_partitions
from obs_pipelines.lake.tiering import TieringResult, run_tiering

# Tiering moves what ingest wrote; by default, the hourly metric datasets.
DEFAULT_DEPS = names(pillar="metrics", cadence="hourly")


def build_tiering_assets(
    partitions: PartitionsDefinition | None = None, deps: Sequence[str] = DEFAULT_DEPS
) -> list[object]:
    """The ``lake_tiering`` asset. With daily ``partitions`` a run tiers the lake as of the end of
    its day (backfills replay history); without, as of the clock."""

    @asset(
        name="lake_tiering",
        group_name=TIERING_GROUP,
        partitions_def=partitions,
        deps=[AssetKey(d) for d in deps],
        kinds={"parquet", "duckdb"},
        check_specs=[
            AssetCheckSpec(
                "tiering_clean",
                asset="lake_tiering",
                description="The run met no partition it had to refuse or leave for later.",
            )
        ],
    )
    def lake_tiering(
        context: AssetExecutionContext, obs: ObsResource
    ) -> Iterator[MaterializeResult | AssetCheckResult]:
        """Move every dataset's data by age (retention in obs.yaml): hot hours compact into one
        sorted warm file per day (metric samples also get 5-minute and 1-hour rollups), warm days
        into cold month files, data past retention is deleted. Each move is verified row for row
        before its sources are deleted. Then ``lake_partitions`` is read again from the logs:
        the views read the tables live, the partition index does not."""
        now = (
            context.partition_time_window.end.astimezone(UTC)
            if context.has_partition_key
            else datetime.now(UTC)
        )
        try:
            result = run_tiering(obs.config, now)
        finally:  # what a run that failed midway committed is listed too
            refresh_partitions(obs.config)
        for problem in result.problems:
            context.log.warning(problem)
        metadata = tiering_metadata(result)
        if not result.failed:
            yield MaterializeResult(metadata=metadata)
        # After the materialization, which the check then targets; on failure there is none.
        yield AssetCheckResult(
            check_name="tiering_clean",
            passed=not result.problems,
            severity=AssetCheckSeverity.WARN,
            metadata={
                "problems": MetadataValue.md("\n".join(f"- {p}" for p in result.problems) or "none")
            },
        )
        if result.failed:  # the other tables were tiered; these need the fix their line names
            # No materialization: Dagster would record the partition materialized, and a failed
            # run must leave it failed ("re-execute failed" offers it). What was tiered rides
            # on the failure instead.
            raise Failure(
                description=f"tiering failed for {', '.join(result.failed)} (the other "
                "tables were tiered):\n" + "\n".join(result.failed.values()),
                metadata={"failed tables": MetadataValue.json(list(result.failed)), **metadata},
            )

    return [lake_tiering]


def tiering_metadata(result: TieringResult) -> dict[str, object]:
    """What moved, bytes before and after, the compression ratio: the UI answers "what happened"."""
    rows = "\n".join(
        f"| {m.dataset}{f' {m.resolution}' if m.resolution else ''} | {'+'.join(m.from_tiers)} -> {m.tier} "
        f"| {m.partition} | {m.rows:,} | {m.bytes_before:,} | {m.bytes_after:,} | "
        f"{(m.bytes_before / m.bytes_after if m.bytes_after else 0):.2f} | {m.storage_class or '-'} | {m.reason} |"
        for m in result.moves[:100]
    )
    samples = [m for m in result.moves if dataset_of(m.dataset).rollups and m.tier == "warm"]
    sample_rows = sum(m.rows for m in samples)
    ratio = result.compression_ratio
    return {
        "as of": MetadataValue.timestamp(result.now.timestamp()),
        "moves": len(result.moves),
        "files deleted": len(result.deletions),
        "expired files": sum(1 for d in result.deletions if d.reason == "expired"),
        "bytes before": MetadataValue.int(result.bytes_before),
        "bytes after": MetadataValue.int(result.bytes_after),
        "compression ratio": MetadataValue.float(round(ratio, 3)) if ratio else "n/a",
        "warm bytes per metric sample": (
            round(sum(m.bytes_after for m in samples) / sample_rows, 3) if sample_rows else "n/a"
        ),
        "problems": len(result.problems),
        "moved": MetadataValue.md(
            "| dataset | tiers | partition | rows | bytes before | bytes after | ratio | storage class | why |\n"
            "|---|---|---|---|---|---|---|---|---|\n" + (rows or "| none | | | | | | | | |")
        ),
        "skipped datasets": MetadataValue.md("\n".join(f"- {s}" for s in result.skipped) or "none"),
    }
