"""Derived datasets as hourly assets downstream of metrics ingest: SLI minutes, up minutes and the
series inventory (see obs_pipelines/reporting/derived.py), so reports never need raw samples."""

import warnings
from collections.abc import Iterator
from datetime import UTC

import pyarrow.compute as pc
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    AssetSpec,
    BetaWarning,
    Config,
    MaterializeResult,
    MetadataValue,
    PartitionsDefinition,
    TimeWindowPartitionMapping,
    multi_asset,
)
from pydantic import Field

from assets.partitions import BACKFILL_POLICY
from assets.resources import ObsResource
from obs_pipelines.config import ObsConfig
from obs_pipelines.lake import Lake
from obs_pipelines.reporting.derived import DerivedResult, derive
from obs_pipelines.reporting.slo import slos_version
from obs_pipelines.windows import TimeWindow

# Each hour reads the hour before it (every counter's last sample before the hour); the first
# partition has none. allow_nonexistent_upstream_partitions is beta in Dagster 1.13.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", BetaWarning)
    RAW_INPUTS = [
        AssetDep(
            "metric_samples",
            partition_mapping=TimeWindowPartitionMapping(
                start_offset=-1, allow_nonexistent_upstream_partitions=True
            ),
        ),
        AssetDep("metric_series"),
    ]


class SliConfig(Config):
    """Which SLOs to (re)compute; empty: every SLO in the config."""

    slos: list[str] = Field(default_factory=list)


def build_sli_minutes(partitions: PartitionsDefinition, config: ObsConfig) -> object:
    @multi_asset(
        name="derive_sli_minutes",
        specs=[
            AssetSpec(
                "sli_minutes",
                group_name="derived",
                deps=RAW_INPUTS,
                description=(
                    "Per SLO and UTC minute: good, bad, total (and, from rollups, uncertain) "
                    "events, the resolution they came from and the SLO's version."
                ),
                # A changed SLO changes this version: Dagster shows every partition as stale.
                code_version=slos_version(config.slos),
                kinds={"parquet", "duckdb"},
            )
        ],
        check_specs=[
            AssetCheckSpec(
                "events_add_up",
                asset="sli_minutes",
                description="No negative counts; good + bad + uncertain equals total in every minute.",
            )
        ],
        partitions_def=partitions,
        backfill_policy=BACKFILL_POLICY,
    )
    def derive_sli_minutes(
        context: AssetExecutionContext, obs: ObsResource, config: SliConfig
    ) -> Iterator[MaterializeResult | AssetCheckResult]:
        """Compute each hour's SLI minutes from raw samples (rollups where raw samples are gone)."""
        window = _window(context)
        result = derive(
            obs.config, window, slo_names=config.slos or None, datasets=("sli_minutes",)
        )
        yield MaterializeResult(asset_key="sli_minutes", metadata=_metadata(result))
        yield _check("sli_minutes", "events_add_up", _sli_faults(obs.config, window))

    return derive_sli_minutes


def build_metric_inventory(partitions: PartitionsDefinition) -> object:
    @multi_asset(
        name="derive_metric_inventory",
        specs=[
            AssetSpec(
                "up_minutes",
                group_name="derived",
                deps=RAW_INPUTS,
                description="Per service and UTC minute: `up` samples and those equal to 1.",
                kinds={"parquet", "duckdb"},
            ),
            AssetSpec(
                "series_inventory",
                group_name="derived",
                deps=RAW_INPUTS,
                description="Per series and hour: samples, first and last timestamp.",
                kinds={"parquet", "duckdb"},
            ),
        ],
        check_specs=[
            AssetCheckSpec(
                "samples_match_lake",
                asset="series_inventory",
                description="Samples counted per hour equal the rows published in metric_samples.",
            )
        ],
        partitions_def=partitions,
        backfill_policy=BACKFILL_POLICY,
    )
    def derive_metric_inventory(
        context: AssetExecutionContext, obs: ObsResource
    ) -> Iterator[MaterializeResult | AssetCheckResult]:
        """Count each hour's samples per series and `up` samples per service and minute."""
        window = _window(context)
        result = derive(obs.config, window, datasets=("up_minutes", "series_inventory"))
        yield MaterializeResult(asset_key="up_minutes", metadata=_metadata(result))
        yield MaterializeResult(asset_key="series_inventory", metadata=_metadata(result))
        yield _check(
            "series_inventory", "samples_match_lake", _inventory_mismatches(obs.config, window)
        )

    return derive_metric_inventory


def _check(asset: str, name: str, faults: list[str]) -> AssetCheckResult:
    """A check that passes when ``faults`` is empty, listing the first 50 otherwise."""
    return AssetCheckResult(
        asset_key=asset,
        check_name=name,
        passed=not faults,
        severity=AssetCheckSeverity.ERROR,
        metadata={"faults": MetadataValue.md("\n".join(faults[:50]) or "none")},
    )


def _window(context: AssetExecutionContext) -> TimeWindow:
    window = context.partition_time_window
    return TimeWindow(window.start.astimezone(UTC), window.end.astimezone(UTC))


def _metadata(result: DerivedResult) -> dict[str, object]:
    return {
        "hours": sum(result.hours_by_resolution.values()) - 1,
        "rows": MetadataValue.json(result.rows),
        "hours by resolution (and the hour before)": MetadataValue.json(result.hours_by_resolution),
    }


def _sli_faults(config: ObsConfig, window: TimeWindow) -> list[str]:
    lake = Lake(config)
    faults: list[str] = []
    for _, table in lake.read_hours("sli_minutes", window):
        if not table.num_rows:
            continue
        good, bad, total, uncertain = (
            table[c] for c in ("good_events", "bad_events", "total_events", "uncertain_events")
        )
        negative = pc.less(pc.min_element_wise(good, bad, total, uncertain), 0)
        sums = pc.add(pc.add(good, bad), uncertain)
        apart = pc.greater(pc.abs(pc.subtract(sums, total)), 1e-6)
        wrong = table.filter(pc.or_(negative, apart)).slice(0, 50).to_pylist()
        faults += [
            f"- {r['slo_name']} {r['minute']}: good {r['good_events']}, bad {r['bad_events']}, "
            f"uncertain {r['uncertain_events']}, total {r['total_events']}"
            for r in wrong
        ]
    return faults


def _inventory_mismatches(config: ObsConfig, window: TimeWindow) -> list[str]:
    lake = Lake(config)
    written = lake.tables.written_hours("metric_samples", window.start, window.end)
    published = {h.window.start: h.rows for h in written}
    mismatches = []
    for hour, inventory in lake.read_hours("series_inventory", window):
        counted = pc.sum(inventory.column("samples")).as_py() or 0
        expected = published.get(hour.start)
        if expected is not None and counted != expected:
            mismatches.append(
                f"- {hour}: inventory counts {counted}, metric_samples holds {expected}"
            )
    return mismatches
