"""Derived datasets as hourly assets downstream of metrics ingest: SLI minutes, up minutes and the
series inventory (see obs_pipelines/reporting/derived.py), so reports never need raw samples."""

import warnings
from collections.abc import Iterator
from datetime import UTC, datetime

import pyarrow.compute as pc
from dagster import (
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    AssetKey,
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

from assets.partitions import BACKFILL_POLICY, partition_key
from assets.resources import ObsResource
from obs_pipelines.config import ObsConfig
from obs_pipelines.lake import Lake
from obs_pipelines.reporting.derived import DERIVED, DerivedResult, derive, hour_sources
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


EVENTS_ADD_UP = AssetCheckKey(AssetKey("sli_minutes"), "events_add_up")
SAMPLES_MATCH_LAKE = AssetCheckKey(AssetKey("series_inventory"), "samples_match_lake")


class SliConfig(Config):
    """Which SLOs to (re)compute in ``sli_minutes``; empty: every SLO in the config."""

    slos: list[str] = Field(default_factory=list)


def build_metric_derivations(partitions: PartitionsDefinition, config: ObsConfig) -> object:
    """The three derived datasets as one step that reads each day of samples once; a subset (the
    SLO recompute job selects ``sli_minutes`` alone) derives only what is selected."""

    @multi_asset(
        name="derive_metric_datasets",
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
                skippable=True,
            ),
            AssetSpec(
                "up_minutes",
                group_name="derived",
                deps=RAW_INPUTS,
                description="Per service and UTC minute: `up` samples and those equal to 1.",
                kinds={"parquet", "duckdb"},
                skippable=True,
            ),
            AssetSpec(
                "series_inventory",
                group_name="derived",
                deps=RAW_INPUTS,
                description="Per series and hour: samples, first and last timestamp.",
                kinds={"parquet", "duckdb"},
                skippable=True,
            ),
        ],
        check_specs=[
            AssetCheckSpec(
                EVENTS_ADD_UP.name,
                asset=EVENTS_ADD_UP.asset_key,
                description="No negative counts; good + bad + uncertain equals total in every minute.",
            ),
            AssetCheckSpec(
                SAMPLES_MATCH_LAKE.name,
                asset=SAMPLES_MATCH_LAKE.asset_key,
                description="Samples counted per hour equal the rows published in metric_samples.",
            ),
        ],
        can_subset=True,
        partitions_def=partitions,
        backfill_policy=BACKFILL_POLICY,
    )
    def derive_metric_datasets(
        context: AssetExecutionContext, obs: ObsResource, config: SliConfig
    ) -> Iterator[MaterializeResult | AssetCheckResult]:
        """Derive each hour's selected datasets from raw samples (rollups where raw samples are
        gone), then check them."""
        window = _window(context)
        selected = {key.to_user_string() for key in context.selected_asset_keys}
        datasets = tuple(d for d in DERIVED if d in selected)
        result = derive(obs.config, window, slo_names=config.slos or None, datasets=datasets)
        if result.hours_without_data:
            context.log.warning(
                f"{result.hours_without_data} hours of {window} have neither raw samples nor "
                "rollups left; their derived rows were kept as they are"
            )
        lake = Lake(obs.config)
        sources = hour_sources(lake, window)  # the window's hours and the one before
        for dataset in datasets:
            # Each hour's partition gets its own rows (from the commit just made) and source.
            written = {
                h.window.start: h.rows
                for h in lake.tables.written_hours(dataset, window.start, window.end)
            }
            for hour in window.hours():
                source = sources.get(hour.start)
                context.add_asset_metadata(
                    {"rows": written.get(hour.start, 0), "from": source or "none"}
                    if source
                    else {"kept": True, "from": "none"},  # nothing to derive from: rows kept
                    asset_key=dataset,
                    partition_key=partition_key(hour),
                )
            yield MaterializeResult(asset_key=dataset, metadata=_metadata(result, sources))
        checks = context.selected_asset_check_keys
        if EVENTS_ADD_UP in checks:
            yield _check(EVENTS_ADD_UP, _sli_faults(obs.config, window))
        if SAMPLES_MATCH_LAKE in checks:
            yield _check(SAMPLES_MATCH_LAKE, _inventory_mismatches(obs.config, window))

    return derive_metric_datasets


def _check(key: AssetCheckKey, faults: list[str]) -> AssetCheckResult:
    """A check that passes when ``faults`` is empty, listing the first 50 otherwise."""
    return AssetCheckResult(
        asset_key=key.asset_key,
        check_name=key.name,
        passed=not faults,
        severity=AssetCheckSeverity.ERROR,
        metadata={"faults": MetadataValue.md("\n".join(faults[:50]) or "none")},
    )


def _window(context: AssetExecutionContext) -> TimeWindow:
    window = context.partition_time_window
    return TimeWindow(window.start.astimezone(UTC), window.end.astimezone(UTC))


def _metadata(result: DerivedResult, sources: dict[datetime, str | None]) -> dict[str, object]:
    """What is true of every partition of the run: its hours with samples to derive from (the
    hour before the window read too, where it has any, is not one of them)."""
    return {
        "run hours": sum(1 for h in result.window.hours() if sources.get(h.start)),
        "run hours by resolution (and the hour before)": MetadataValue.json(
            result.hours_by_resolution
        ),
        "run hours kept (no raw samples nor rollups left)": result.hours_without_data,
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
