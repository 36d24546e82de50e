"""Telemetry sources, one module per backend behind the same small interface.

Adding a backend is one new module and one line in :func:`metric_source`.
"""

from obs_pipelines.config import NO_SOURCE, ObsConfig, PrometheusSourceConfig
from obs_pipelines.errors import ConfigError
from obs_pipelines.sources.base import MetricChunk, MetricSource, TableSource


def metric_source(config: ObsConfig) -> MetricSource:
    """The metrics backend the config selects."""
    _refuse_none(config, "metric_samples")
    if config.sources.metrics == "prometheus":
        from obs_pipelines.sources.prometheus import PrometheusSource

        return PrometheusSource(_prometheus(config, "metrics"))
    from obs_pipelines.sources.simulator import SimulatedMetrics

    return SimulatedMetrics(config.sources.simulator)


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


__all__ = ["MetricChunk", "MetricSource", "TableSource", "metric_source", "table_source"]
