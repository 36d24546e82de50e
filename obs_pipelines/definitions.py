"""The composition root: assets, checks, schedules and resources for one ``dagster.Definitions``.

``dagster dev -w workspace.yaml`` loads ``defs`` from here, reading the config named by
``$OBS_CONFIG`` (default ``obs.yaml``).
"""

import os

from dagster import Definitions

from assets.metrics import build_metric_ingest
from assets.partitions import hourly_partitions
from obs_pipelines.config import CONFIG_ENV_VAR, DEFAULT_CONFIG_PATH, load_config
from obs_pipelines.resources import ObsResource
from sensors.schedules import hourly_ingest_schedule, metrics_ingest_job


def build_definitions(config_path: str) -> Definitions:
    config = load_config(config_path)
    partitions = hourly_partitions(config.ingest.start)
    return Definitions(
        assets=[build_metric_ingest(partitions)],
        jobs=[metrics_ingest_job],
        schedules=[hourly_ingest_schedule()],
        resources={"obs": ObsResource(config_path=os.path.abspath(config_path))},
    )


defs = build_definitions(os.environ.get(CONFIG_ENV_VAR, DEFAULT_CONFIG_PATH))
