"""Dagster resources: the typed handle assets use to reach the engine."""

from functools import cached_property

from dagster import ConfigurableResource

from obs_pipelines.config import ObsConfig, load_config


class ObsResource(ConfigurableResource):
    """The obs-pipelines configuration (``obs.yaml``), loaded and validated once per process."""

    config_path: str

    @cached_property
    def config(self) -> ObsConfig:
        return load_config(self.config_path)
