"""Telemetry sources, one module per backend behind the same small interface.

Adding a backend is one new module and one line in :func:`metric_source`.
"""

from obs_pipelines.config import ObsConfig
from obs_pipelines.sources.base import MetricChunk, MetricSource


def metric_source(config: ObsConfig) -> MetricSource:
    """The metrics backend the config selects."""
    if config.sources.metrics == "prometheus":
        from obs_pipelines.sources.prometheus import PrometheusSource

        assert config.sources.prometheus is not None
        return PrometheusSource(config.sources.prometheus)
    from obs_pipelines.sources.simulator import SimulatedMetrics

    return SimulatedMetrics(config.sources.simulator)


__all__ = ["MetricChunk", "MetricSource", "metric_source"]
