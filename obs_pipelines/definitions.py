"""The composition root: assets, checks, jobs, schedules, sensors and resources for one
``dagster.Definitions``.

``dagster dev -w workspace.yaml`` loads ``defs`` from here, reading the config named by
``$OBS_CONFIG`` (default ``obs.yaml``). ``OBS_EXECUTOR=celery`` spreads steps over Celery workers
(``deploy/README.md``); the default executes in process.
"""

import os
from pathlib import Path

import yaml
from dagster import AssetSelection, Definitions, ExecutorDefinition

from assets.catalog import build_catalog_asset
from assets.derived import build_metric_derivations
from assets.incidents import build_incident_records, incidents_job, incidents_schedule
from assets.ingest import (
    HOURLY_DATASETS,
    SNAPSHOT_DATASETS,
    build_hourly_ingest,
    build_snapshot_ingest,
)
from assets.metrics import build_metric_ingest
from assets.partitions import (
    DERIVED_GROUP,
    INGEST_GROUP,
    REPORTS_GROUP,
    SNAPSHOT_GROUP,
    TIERING_GROUP,
    daily_partitions,
    hourly_partitions,
)
from assets.reports import build_report_assets
from assets.resources import ObsResource
from assets.tiering import build_tiering_assets
from obs_pipelines.config import CONFIG_ENV_VAR, DEFAULT_CONFIG_PATH, load_config
from obs_pipelines.datasets import Dataset, names
from obs_pipelines.errors import ConfigError
from sensors.freshness import (
    build_lake_freshness_sensor,
    build_source_freshness_sensor,
    with_freshness,
)
from sensors.schedules import (
    AssetJob,
    asset_job,
    hourly_ingest_schedule,
    reports_schedule,
    reread_schedule,
    snapshot_schedule,
    tiering_schedule,
)

INGEST_JOB = "ingest_job"
SNAPSHOT_JOB = "snapshot_job"
TIERING_JOB = "tiering_job"
REPORTS_JOB = "reports_job"
DERIVE_JOB = "derive_job"
METRIC_ASSETS = names(pillar="metrics", cadence="hourly")
# Every ingest asset a config can define; a pillar whose source is `none` defines none of its own.
HOURLY_INGEST_ASSETS = (*METRIC_ASSETS, *(spec.name for spec in HOURLY_DATASETS))
SNAPSHOT_ASSETS = tuple(spec.name for spec in SNAPSHOT_DATASETS)
DERIVED_ASSETS = names(cadence="derived")
CATALOG = AssetSelection.assets("lake_catalog")
SLO_RECOMPUTE_JOB = "slo_recompute_job"
# Pillars whose sources take data late (shippers, collectors): their hours are ingested again.
LATE_PILLARS = ("logs", "traces")


def build_definitions(config_path: str) -> Definitions:
    """Assets, jobs, schedules and sensors for the config at ``config_path``.

    A pillar whose source is ``none`` is not ingested: its assets are left out (no phantom
    assets in the UI, nothing written), and every job selects only assets that are defined.
    Derived datasets are computed from metrics, so they go with them."""
    config = load_config(config_path)
    _write_ranged_materializations_in_batches()
    operations = config.operations
    hourly = hourly_partitions(config.ingest.start)
    daily = daily_partitions(config.ingest.start)
    ingested = config.sources.ingests
    metrics = ingested("metric_samples")
    incidents = ingested("incident_records")
    hourly_specs = [spec for spec in HOURLY_DATASETS if ingested(spec.name)]
    snapshot_specs = [spec for spec in SNAPSHOT_DATASETS if ingested(spec.name)]
    raw = (*(METRIC_ASSETS if metrics else ()), *(spec.name for spec in hourly_specs))
    derived = DERIVED_ASSETS if metrics else ()
    snapshots = [build_snapshot_ingest(spec) for spec in snapshot_specs]
    assets = [
        *([build_metric_ingest(hourly)] if metrics else []),
        *(build_hourly_ingest(spec, hourly) for spec in hourly_specs),
        *snapshots,
        *([build_metric_derivations(hourly, config)] if metrics else []),
        build_catalog_asset(hourly, deps=(*raw, *derived)),
        *build_tiering_assets(daily, deps=raw),
        *build_report_assets(daily),
        *([build_incident_records()] if incidents else []),
    ]
    ingest_job = asset_job(
        INGEST_JOB,
        AssetSelection.groups(INGEST_GROUP, DERIVED_GROUP),
        "Ingest one hour (or a range of hours) of every pillar with a source (metrics, logs, "
        "spans, alerts) into the hot tier, and derive what the reports read from it.",
    )
    jobs = [ingest_job]
    extra_schedules = []
    if incidents:  # sources.incidents: a snapshot each hour (assets/incidents.py says why)
        jobs.append(incidents_job())
        extra_schedules.append(incidents_schedule(jobs[-1], operations.ingest_minute))
    if metrics:
        jobs += [
            asset_job(
                DERIVE_JOB,
                AssetSelection.groups(DERIVED_GROUP) | CATALOG,
                "Recompute every derived dataset (SLI minutes, up minutes, the series inventory) "
                "from raw samples where they exist and from rollups where they do not, e.g. for "
                "a lake written before they existed.",
            ),
            asset_job(
                SLO_RECOMPUTE_JOB,
                ["sli_minutes", "lake_catalog"],
                "Recompute SLI minutes (all SLOs, or those named in the run config) from raw "
                "samples where they exist and from rollups where they do not.",
            ),
        ]
    if snapshot_specs or incidents:
        jobs.append(
            asset_job(
                SNAPSHOT_JOB,
                AssetSelection.groups(SNAPSHOT_GROUP),
                "Snapshot Prometheus's rules, Alertmanager's alerts and the incident records "
                "(those configured) as of now.",
            )
        )
    if snapshots:  # sources.alerts: rules and Alertmanager state each hour (incidents have theirs)
        extra_schedules.append(
            snapshot_schedule(jobs[-1], snapshots, minute_of_hour=operations.ingest_minute)
        )
    tiering_job = asset_job(
        TIERING_JOB,
        AssetSelection.groups(TIERING_GROUP),
        "Move the lake's data between hot, warm and cold tiers by age.",
    )
    reports_job = asset_job(
        REPORTS_JOB,
        AssetSelection.groups(REPORTS_GROUP),
        "Compute the reliability reports and write the HTML scorecard.",
    )
    repair_jobs = _repair_jobs(metrics, hourly_specs)
    if operations.reread_after is not None:  # late logs and spans: each hour ingested again
        extra_schedules += [
            reread_schedule(
                repair_jobs[spec.name],
                spec.name,
                after=operations.reread_after,
                first_hour=config.ingest.start,
                minute_of_hour=operations.ingest_minute,
            )
            for spec in hourly_specs
            if spec.pillar in LATE_PILLARS
        ]
    return Definitions(
        assets=with_freshness(assets, config.freshness),
        jobs=[
            *jobs,
            tiering_job,
            reports_job,
            *{job.name: job for job in repair_jobs.values()}.values(),
        ],
        schedules=[
            hourly_ingest_schedule(ingest_job, minute_of_hour=operations.ingest_minute),
            tiering_schedule(tiering_job, partitioned=True, at=operations.tiering_time),
            reports_schedule(reports_job, partitioned=True, at=operations.reports_time),
            *extra_schedules,
        ],
        sensors=[
            build_lake_freshness_sensor(
                repair_jobs,
                max_runs_per_tick=operations.max_repair_runs_per_tick,
                gap_lookback=operations.gap_lookback,
            ),
            build_source_freshness_sensor(operations.source_lag),
        ],
        executor=_executor(),
        resources={"obs": ObsResource(config_path=os.path.abspath(config_path))},
    )


def _repair_jobs(metrics: bool, hourly_specs: list[Dataset]) -> dict[str, AssetJob]:
    """Repairs of one dataset's missing hours re-run only that dataset (and the catalog), not
    every one; datasets that are not ingested have no repair job."""
    jobs: dict[str, AssetJob] = {}
    if metrics:
        repair = asset_job(
            "repair_metrics_job",
            AssetSelection.assets(*METRIC_ASSETS) | AssetSelection.groups(DERIVED_GROUP) | CATALOG,
            "Re-ingest missing hours of metrics.",
        )
        jobs.update(dict.fromkeys(METRIC_ASSETS, repair))
    for spec in hourly_specs:
        jobs[spec.name] = asset_job(
            f"repair_{spec.name}_job",
            AssetSelection.assets(spec.name) | CATALOG,
            f"Re-ingest missing hours of {spec.name}.",
        )
    return jobs


# Dagster's own setting (an environment variable, read as events are written).
EVENT_BATCH_SIZE_VAR = "DAGSTER_EVENT_BATCH_SIZE"


def _write_ranged_materializations_in_batches() -> None:
    """A run over a day of hourly partitions records a materialization per asset and hour. With
    this setting Dagster hands a step's materializations to the event log as one batch, which
    PostgreSQL (the production profile) writes in one transaction instead of one per hour: a
    10-day backfill there took 157 s instead of 206 s (bench/RESULTS-delta.md, section 10).
    SQLite writes a batch event by event, as before. Set where the definitions load, so every
    process that runs our assets has it (code servers, their run workers, ``obs materialize``);
    a value already in the environment wins."""
    os.environ.setdefault(EVENT_BATCH_SIZE_VAR, "100")


def _executor() -> ExecutorDefinition | None:
    """``OBS_EXECUTOR=celery``: Dagster's Celery executor, configured by ``$OBS_CELERY_CONFIG``."""
    if os.environ.get("OBS_EXECUTOR") != "celery":
        return None
    from dagster_celery import celery_executor

    path = Path(os.environ.get("OBS_CELERY_CONFIG", "deploy/celery.yaml"))
    try:
        settings = yaml.safe_load(path.read_text())["execution"]["config"]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        problem = "cannot be read" if isinstance(exc, OSError) else "has no execution.config"
        raise ConfigError(
            f"OBS_EXECUTOR=celery: the Celery settings {path} {problem}; set OBS_CELERY_CONFIG to "
            "a file like deploy/celery.yaml (see deploy/README.md)"
        ) from None
    return celery_executor.configured(settings, name="celery")


defs = build_definitions(os.environ.get(CONFIG_ENV_VAR, DEFAULT_CONFIG_PATH))
