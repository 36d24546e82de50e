"""The composition root: assets, checks, jobs, schedules and resources for one ``dagster.Definitions``.

``dagster dev -w workspace.yaml`` loads ``defs`` from here, reading the config named by
``$OBS_CONFIG`` (default ``obs.yaml``).
"""

import os

from dagster import (
    AssetSelection,
    Definitions,
    build_schedule_from_partitioned_job,
    define_asset_job,
)

from assets.ingest import (
    HOURLY_DATASETS,
    SNAPSHOT_DATASETS,
    build_hourly_ingest,
    build_snapshot_ingest,
)
from assets.metrics import build_metric_ingest
from assets.partitions import hourly_partitions
from obs_pipelines.config import CONFIG_ENV_VAR, DEFAULT_CONFIG_PATH, load_config
from obs_pipelines.resources import ObsResource

INGEST_JOB = "ingest_job"
SNAPSHOT_JOB = "snapshot_job"
HOURLY_INGEST_ASSETS = (
    "metric_series",
    "metric_samples",
    *(spec.dataset for spec in HOURLY_DATASETS),
)
INGEST_MINUTE_OF_HOUR = 5  # give late scrapes and remote writes a few minutes to land

ingest_job = define_asset_job(
    INGEST_JOB,
    selection=AssetSelection.assets(*HOURLY_INGEST_ASSETS),
    description="Ingest one hour (or a range of hours) of metrics, logs, spans and alerts into the hot tier.",
)
snapshot_job = define_asset_job(
    SNAPSHOT_JOB,
    selection=AssetSelection.assets(*(spec.dataset for spec in SNAPSHOT_DATASETS)),
    description="Snapshot Prometheus's rules and Alertmanager's alerts as of now.",
)


def build_definitions(config_path: str) -> Definitions:
    config = load_config(config_path)
    partitions = hourly_partitions(config.ingest.start)
    assets = [
        build_metric_ingest(partitions),
        *(build_hourly_ingest(spec, partitions) for spec in HOURLY_DATASETS),
        *(build_snapshot_ingest(spec) for spec in SNAPSHOT_DATASETS),
    ]
    return Definitions(
        assets=assets,
        jobs=[ingest_job, snapshot_job],
        schedules=[
            build_schedule_from_partitioned_job(ingest_job, minute_of_hour=INGEST_MINUTE_OF_HOUR)
        ],
        resources={"obs": ObsResource(config_path=os.path.abspath(config_path))},
    )


defs = build_definitions(os.environ.get(CONFIG_ENV_VAR, DEFAULT_CONFIG_PATH))
