"""Freshness sensors and policies: flag stale data, repair gaps, page the right people.

The logic lives in the engine (:mod:`obs_pipelines.operations.freshness`, :mod:`obs_pipelines.operations.notify`);
these sensors only read the config from the ``obs`` resource, call it, and turn the answer into
run requests, a cursor and a tick message.
"""

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from dagster import (
    AssetsDefinition,
    AssetSpec,
    DefaultSensorStatus,
    FreshnessPolicy,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    apply_freshness_policy,
    map_asset_specs,
    sensor,
)

from assets.partitions import PARTITION_KEY_FORMAT
from assets.resources import ObsResource
from obs_pipelines.config import DEFAULT_OPERATIONS, ObsConfig, SourceLagRuleConfig
from obs_pipelines.errors import ObsError, SourceError
from obs_pipelines.operations.freshness import (
    PrometheusQuery,
    RequestLedger,
    lag_objectives_from_config,
    lag_unknown_alert,
    lake_freshness_from_config,
    lake_scope,
    plan_gap_runs,
    repair_note,
    source_freshness,
    utc_now,
)
from obs_pipelines.operations.notify import Alert, Alertmanager
from sensors.schedules import AssetJob

RUNBOOK = "https://github.com/waardhaven/obs-pipelines/blob/main/deploy/README.md#freshness-alerts"
WARN_SHARE = 0.75  # Dagster's freshness policy warns at this share of the allowed lag

Clock = Callable[[], datetime]


def with_freshness(
    assets_defs: Iterable[AssetsDefinition | AssetSpec], max_lag: Mapping[str, timedelta]
) -> list[AssetsDefinition | AssetSpec]:
    """Attach Dagster's native freshness policy to every asset named under ``freshness:``.

    ``fail_window`` is the configured lag; the warning comes at 75% of it (Dagster needs >= 1
    minute). Dagster measures it from the asset's last materialization of any partition, so a
    backfill of old hours turns the UI green while the newest hour is late: the lake freshness
    sensor, which measures the newest partition, is the one that alerts and requests runs.
    """

    def attach(spec: AssetSpec) -> AssetSpec:
        allowed = max_lag.get(spec.key.to_user_string())
        if allowed is None:
            return spec
        warn = allowed * WARN_SHARE
        policy = FreshnessPolicy.time_window(
            fail_window=allowed, warn_window=warn if warn >= timedelta(minutes=1) else None
        )
        return apply_freshness_policy(spec, policy)

    return list(map_asset_specs(attach, list(assets_defs)))


def build_lake_freshness_sensor(
    jobs_by_dataset: Mapping[str, AssetJob],
    *,
    name: str = "lake_freshness_sensor",
    max_runs_per_tick: int = DEFAULT_OPERATIONS.max_repair_runs_per_tick,
    retry_after: timedelta = timedelta(hours=1),
    gap_lookback: timedelta = DEFAULT_OPERATIONS.gap_lookback,
    minimum_interval_seconds: int = 60,
    default_status: DefaultSensorStatus = DefaultSensorStatus.STOPPED,
    clock: Clock = utc_now,
    runbook: str = RUNBOOK,
) -> SensorDefinition:
    """Watch every dataset under ``freshness:``: request runs for missing hourly partitions
    (bounded per tick, once per partition thanks to the cursor and run keys) and raise or resolve
    an ``ObsLakeDatasetStale`` alert in ``sources.alertmanager`` when one is configured."""
    jobs = list({job.name: job for job in jobs_by_dataset.values()}.values())
    job_for_dataset = {dataset: job.name for dataset, job in jobs_by_dataset.items()}

    @sensor(
        name=name,
        jobs=jobs,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description=(
            "Newest complete partition of each dataset against freshness: in the config; requests "
            "runs for missing hours and posts breaches to Alertmanager."
        ),
    )
    def lake_freshness_sensor(context: SensorEvaluationContext, obs: ObsResource) -> SensorResult:
        config = obs.config
        now = clock()
        results = lake_freshness_from_config(config, now, gap_lookback)
        planned, ledger = plan_gap_runs(
            results,
            job_for_dataset,
            RequestLedger.from_json(context.cursor),
            now,
            limit=max_runs_per_tick,
            retry_after=retry_after,
        )
        for result in results:
            context.log.info(result.describe())
        breaches = [r for r in results if r.breached]
        alerts = [
            r.alert(runbook, repair_note(r, job_for_dataset.get(r.dataset), planned, ledger))
            for r in breaches
        ]
        _reconcile_alerts(context, config, alerts, "lake_freshness", now)
        run_requests = [
            RunRequest(
                run_key=run.run_key,
                job_name=run.job,
                partition_key=run.hour.start.strftime(PARTITION_KEY_FORMAT),
                tags={"obs/requested_by": name, "obs/attempt": str(run.attempt)},
            )
            for run in planned
        ]
        summary = (
            f"{len(breaches)} of {len(results)} datasets stale"
            + (f" ({', '.join(r.dataset for r in breaches)})" if breaches else "")
            + f"; {len(run_requests)} runs requested"
        )
        return SensorResult(
            run_requests=run_requests,
            cursor=ledger.to_json(),
            skip_reason=None if run_requests else summary,
        )

    return lake_freshness_sensor


def build_source_freshness_sensor(
    lag_rules: Sequence[SourceLagRuleConfig] = (),
    *,
    name: str = "source_freshness_sensor",
    include_threshold_slos: bool = True,
    minimum_interval_seconds: int = 60,
    default_status: DefaultSensorStatus = DefaultSensorStatus.STOPPED,
    evaluate_at: Clock = utc_now,
    runbook: str = RUNBOOK,
) -> SensorDefinition:
    """Evaluate lag gauges in ``sources.prometheus`` (``lag_rules``, plus every threshold SLO of
    the config, such as the seed's market-data freshness) and raise or resolve their alerts.

    ``evaluate_at`` is the instant the gauges are read at (now; a replay passes another), while
    alerts are always stamped with the real time so Alertmanager keeps them active."""

    @sensor(
        name=name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description=(
            "Source-side lag (data_pipeline_lag_seconds and threshold SLOs) evaluated in "
            "Prometheus; breaches are posted to Alertmanager."
        ),
    )
    def source_freshness_sensor(context: SensorEvaluationContext, obs: ObsResource) -> SkipReason:
        config = obs.config
        backends = config.sources.backends("metrics")
        if config.sources.prometheus is None or "prometheus" not in backends:
            origin = (
                "are not ingested"
                if backends == ("none",)
                else f"come from {' and '.join(backends)}"
            )
            return SkipReason(
                f"metrics {origin}: no live Prometheus lag to watch "
                "(set sources.metrics: prometheus)"
            )
        rules = [*lag_rules]
        if include_threshold_slos:
            rules += lag_objectives_from_config(config, runbook)
        if not rules:
            return SkipReason("no source lag rules and no threshold SLO configured")
        try:
            prometheus = PrometheusQuery(config.sources.prometheus)
            results = source_freshness(prometheus, rules, evaluate_at())
        except SourceError as exc:
            reason = " ".join(str(exc).split())
            context.log.error(f"source lag unknown: {reason}")
            _hold_while_unknown(context, config, lag_unknown_alert("prometheus", reason, runbook))
            return SkipReason(f"source lag unknown, its alerts left as they were: {reason}")
        breaches = [r for r in results if r.breached]
        now = utc_now()
        _reconcile_alerts(context, config, [r.alert() for r in breaches], "source_lag", now)
        _reconcile_alerts(context, config, [], "source_unknown", now)
        return SkipReason("; ".join(r.describe() for r in results))

    return source_freshness_sensor


def _reconcile_alerts(
    context: SensorEvaluationContext,
    config: ObsConfig,
    alerts: Sequence[Alert],
    check: str,
    now: datetime,
) -> None:
    """Post breaches and resolve recovered ones, within this lake's scope only (see
    :func:`lake_scope`); an unreachable Alertmanager is logged, not fatal, so the tick still
    requests its repair runs."""
    target = config.sources.alertmanager
    if target is None:
        if alerts:
            context.log.warning(
                f"{len(alerts)} freshness breaches not posted: no sources.alertmanager configured"
            )
        return
    scope = lake_scope(config, check)
    ours = [replace(a, labels={**a.labels, **scope}) for a in alerts]
    try:
        done = Alertmanager.from_config(target).reconcile(ours, scope, now)
    except ObsError as exc:
        context.log.error(str(exc))
        return
    for labels in done.resolved:
        context.log.info(f"resolved {dict(labels)}")


def _hold_while_unknown(
    context: SensorEvaluationContext, config: ObsConfig, unknown: Alert
) -> None:
    """Post ``unknown`` (lag cannot be measured) and re-post this lake's open lag alerts as they
    were: what cannot be measured is not resolved, nor left to expire as if it had recovered.
    The next tick that measures the lag raises and resolves as usual, and resolves ``unknown``."""
    target = config.sources.alertmanager
    if target is None:
        return
    now = utc_now()
    try:
        held = Alertmanager.from_config(target).hold(lake_scope(config, "source_lag"), now)
        if held:
            context.log.info(f"kept {len(held)} lag alerts open while the lag is unknown")
        _reconcile_alerts(context, config, [unknown], "source_unknown", now)
    except ObsError as exc:
        context.log.error(str(exc))
