"""Telemetry sources, one module per backend behind the same small interface.

Adding a backend is one new module and one line in :func:`metric_source`.
"""

from collections.abc import Iterator, Sequence

from obs_pipelines.config import NO_SOURCE, ObsConfig, PrometheusSourceConfig
from obs_pipelines.errors import ConfigError
from obs_pipelines.sources.base import MetricChunk, MetricSource, TableSource
from obs_pipelines.windows import TimeWindow


def metric_source(config: ObsConfig) -> MetricSource:
    """The metrics backend the config selects; several (``metrics: [prometheus, cloudwatch]``)
    are read together as one :class:`CombinedMetrics`."""
    _refuse_none(config, "metric_samples")
    backends = [_metric_backend(config, name) for name in config.sources.backends("metrics")]
    return backends[0] if len(backends) == 1 else CombinedMetrics(backends)


def _metric_backend(config: ObsConfig, name: str) -> MetricSource:
    if name == "prometheus":
        from obs_pipelines.sources.prometheus import PrometheusSource

        return PrometheusSource(_prometheus(config, "metrics"))
    if name == "cloudwatch":
        from obs_pipelines.sources.cloudwatch import CloudWatchSource

        if config.sources.cloudwatch is None:
            raise ConfigError(
                "sources.metrics names cloudwatch but there is no sources.cloudwatch section; "
                "add one with its region and queries"
            )
        return CloudWatchSource(config.sources.cloudwatch)
    from obs_pipelines.sources.simulator import SimulatedMetrics

    return SimulatedMetrics(config.sources.simulator)


class CombinedMetrics:
    """Several metrics backends as one source: their chunks one after the other, so ingest
    publishes the union of an hour with one write per dataset, and a backend that fails fails
    the whole hour before anything is written. Series never collide across backends (each
    backend's labels say where a series comes from, see ``sources/cloudwatch.py``)."""

    def __init__(self, sources: Sequence[MetricSource]) -> None:
        self.sources = list(sources)
        self.name = "+".join(s.name for s in self.sources)
        # Samples each backend returned over every window read so far (the asset's metadata).
        self.samples_by_source: dict[str, int] = {s.name: 0 for s in self.sources}

    def read_metrics(self, window: TimeWindow) -> Iterator[MetricChunk]:
        for source in self.sources:
            for chunk in source.read_metrics(window):
                self.samples_by_source[source.name] += chunk.samples.num_rows
                yield chunk


def table_source(config: ObsConfig, dataset: str) -> TableSource | None:
    """The backend the config selects for ``dataset``; None where nothing provides it
    (Alertmanager snapshots when no Alertmanager is configured)."""
    _refuse_none(config, dataset)
    sources, simulator = config.sources, config.sources.simulator
    if dataset == "log_records":
        if sources.logs == "elasticsearch":
            from obs_pipelines.sources.elasticsearch import ElasticsearchLogs

            return ElasticsearchLogs(sources.elasticsearch)
        from obs_pipelines.sources.simulated_logs import SimulatedLogs

        return SimulatedLogs(simulator)
    if dataset == "spans":
        if sources.traces == "jaeger":
            from obs_pipelines.sources.jaeger import JaegerSpans

            return JaegerSpans(sources.jaeger)
        from obs_pipelines.sources.simulated_spans import SimulatedSpans

        return SimulatedSpans(simulator)
    if config.sources.pillar_of(dataset) == "alerts":
        return _alert_source(config, dataset)
    raise ConfigError(f"no source provides dataset '{dataset}'")


def _refuse_none(config: ObsConfig, dataset: str) -> None:
    """A pillar set to ``none`` is not ingested: its assets are not defined, and asking for its
    source is a mistake worth one clear line."""
    pillar = config.sources.pillar_of(dataset)
    if pillar is not None and config.sources.backend(pillar) == NO_SOURCE:
        raise ConfigError(
            f"sources.{pillar} is none, so {dataset} is not ingested; set sources.{pillar} to a "
            "backend (or simulator) to ingest it"
        )


def _prometheus(config: ObsConfig, pillar: str) -> PrometheusSourceConfig:
    """``sources.prometheus``, which config validation requires for a pillar it feeds."""
    if config.sources.prometheus is None:
        raise ConfigError(
            f"sources.{pillar} is prometheus but there is no sources.prometheus section; add one "
            "with its url"
        )
    return config.sources.prometheus


def _alert_source(config: ObsConfig, dataset: str) -> TableSource | None:
    sources = config.sources
    if sources.alerts == "simulator":
        from obs_pipelines.sources import simulated_alerts

        simulated = {
            "alert_fragments": simulated_alerts.SimulatedAlertFragments,
            "alert_rules": simulated_alerts.SimulatedAlertRules,
            "alertmanager_alerts": simulated_alerts.SimulatedAlertmanagerAlerts,
        }[dataset]
        return simulated(sources.simulator, sources.alert_derivation)
    from obs_pipelines.sources import alerts

    if dataset == "alert_fragments":
        return alerts.PrometheusAlertFragments(
            _prometheus(config, "alerts"), sources.alert_derivation
        )
    if dataset == "alert_rules":
        return alerts.PrometheusAlertRules(_prometheus(config, "alerts"))
    if sources.alertmanager is None:
        return None
    from obs_pipelines.sources.alertmanager import AlertmanagerAlerts

    return AlertmanagerAlerts(sources.alertmanager)


__all__ = [
    "CombinedMetrics",
    "MetricChunk",
    "MetricSource",
    "TableSource",
    "metric_source",
    "table_source",
]
