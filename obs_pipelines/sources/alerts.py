"""Alerts from Prometheus: firing/pending fragments from the ``ALERTS`` series, and rule snapshots.

Prometheus writes one ``ALERTS`` sample per active alert per rule evaluation, labelled with the
alert's labels and ``alertstate`` (pending or firing). Those raw samples are the most faithful
record of when each alert was active: unlike Alertmanager, Prometheus keeps them for its whole
retention, so any past hour can be (re)derived. Within a window, consecutive samples of one alert
and state merge into one *fragment* while the gap between samples stays within
``evaluation_interval × (1 + missed_evaluations_tolerated)``; ``sql/alert_events.sql`` stitches
fragments of neighbouring windows into whole intervals with the same rule. Nothing is carried
from one window to the next, so a window can be materialized alone, twice, or out of order.

Rule groups may set their own ``interval:``, so each alert's evaluation interval is its rule
group's, from Prometheus's ``/api/v1/rules``; only alerts that no listed rule produces fall back to
``sources.alert_derivation.evaluation_interval``. An alert's fingerprint is Alertmanager's: over its
labels plus Prometheus's ``external_labels`` (``/api/v1/status/config``), which Prometheus adds to
the alerts it sends but not to the ALERTS series, then relabelled by its ``alert_relabel_configs``
(:mod:`obs_pipelines.sources.relabel`) as its notifier does; ``labels`` stay the ALERTS ones. An
alert the relabelling drops reaches no Alertmanager: it keeps the fingerprint of its labels plus
the external labels, so it is still counted, as one alert of its own. All of it is read once per
source, i.e. once per run.

The samples come through :class:`PrometheusSource` (same connection, retries, splitting and
errors as metrics ingest) with the ALERTS selector in place of the configured ones.
"""

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import numpy as np
import orjson
import pyarrow as pa
import yaml

from obs_pipelines.config import AlertDerivationConfig, PrometheusSourceConfig
from obs_pipelines.durations import format_duration
from obs_pipelines.errors import SourceError
from obs_pipelines.fingerprint import fingerprint
from obs_pipelines.schemas import ALERT_FRAGMENTS, ALERT_RULES, LABELS
from obs_pipelines.sources.base import MetricChunk
from obs_pipelines.sources.prometheus import EndpointNotFound, PrometheusSource
from obs_pipelines.sources.relabel import AlertRelabelling, Dialect, parse_rules
from obs_pipelines.windows import TimeWindow

T = TypeVar("T")
ALERTS_SELECTOR = 'ALERTS{alertstate=~"firing|pending"}'
# Labels of the ALERTS series that are not the alert's own: the metric name and the state.
_NOT_ALERT_LABELS = ("__name__", "alertstate")
# A fragment's service: the alert's `service` label, else the scrape `job` it came from.
SERVICE_LABELS = ("service", "job")
# Fewest consecutive-sample spacings that show an evaluation_interval is shorter than Prometheus's.
_SPACINGS_TO_JUDGE = 20


@dataclass(frozen=True)
class AlertSamples:
    """ALERTS samples as columns: the label sets (with ``alertstate``), and for every sample the
    index of its label set and its timestamp. The shape both Prometheus and the simulator give."""

    label_sets: Sequence[dict[str, str]]
    series: np.ndarray  # int64 index into label_sets, one per sample
    ts_ms: np.ndarray  # int64 epoch milliseconds, one per sample


@dataclass(frozen=True)
class RuleInterval:
    """One alerting rule, as far as telling which group's interval its alerts follow: its labels
    with a fixed value (a templated one differs per alert), and its group's interval."""

    fixed_labels: Mapping[str, str]
    interval_ms: int


@dataclass(frozen=True)
class AlertContext:
    """What Prometheus knows of its alerts beyond the ALERTS series.

    ``rules``: the alerting rules by name, each with its group's evaluation interval.
    ``external_labels``: what Prometheus adds to every alert it sends to Alertmanager;
    ``relabelling``: what it then does to the alert's labels. All empty (the simulator's case):
    every alert follows the configured interval and its own labels.
    """

    rules: Mapping[str, Sequence[RuleInterval]] = field(default_factory=dict)
    external_labels: Mapping[str, str] = field(default_factory=dict)
    relabelling: AlertRelabelling = field(default_factory=AlertRelabelling)

    def interval_ms(self, alert: Mapping[str, str]) -> int | None:
        """The evaluation interval of the group whose rule produces ``alert``, None when no listed
        rule does. Rules of one name are told apart by their fixed labels; when several still
        match, the longest interval, so that none of them has its evaluations split."""
        rules = self.rules.get(alert.get("alertname", ""), ())
        matching = [
            r.interval_ms
            for r in rules
            if all(alert.get(k) == v for k, v in r.fixed_labels.items())
        ]
        return max(matching, default=None)

    def fingerprint(self, alert: Mapping[str, str]) -> str:
        """Alertmanager's fingerprint of ``alert``: over its labels plus the external labels it
        does not set itself, relabelled, as Prometheus's notifier sends it. One the relabelling
        drops is named by its labels before relabelling: no Alertmanager row can join it, and
        it stays apart from every other alert."""
        labels = {**self.external_labels, **alert}
        sent = self.relabelling.sent(labels)
        return fingerprint(labels if sent is None else sent)


NO_CONTEXT = AlertContext()


def max_gap_ms(derivation: AlertDerivationConfig, interval_ms: int | None = None) -> int:
    """Largest gap between two samples of one stretch: one evaluation (``interval_ms``, else the
    configured interval) plus the tolerated misses."""
    if interval_ms is None:
        interval_ms = _configured_ms(derivation)
    return interval_ms * (1 + derivation.missed_evaluations_tolerated)


def _configured_ms(derivation: AlertDerivationConfig) -> int:
    return round(derivation.evaluation_interval.total_seconds() * 1000)


def build_fragments(
    samples: AlertSamples,
    window: TimeWindow,
    derivation: AlertDerivationConfig,
    source: str,
    context: AlertContext = NO_CONTEXT,
) -> pa.Table:
    """Merge ALERTS samples inside ``window`` into fragments (rows of ``alert_fragments``).

    Work per label set is Python (fingerprints, promoted labels, the rule group's interval); work
    per sample is numpy: sort by (alert, state, time), cut where the alert changes or the gap
    exceeds that alert's tolerance, and read first/last/count off the cut points.
    """
    keys, key_of_series = _alert_keys(samples.label_sets, derivation, context)
    ts = np.asarray(samples.ts_ms, dtype=np.int64)
    key = key_of_series[np.asarray(samples.series, dtype=np.int64)] if ts.size else ts
    inside = (ts >= window.start_ms) & (ts < window.end_ms)
    ts, key = ts[inside], key[inside]
    order = np.lexsort((ts, key))
    ts, key = ts[order], key[order]
    if ts.size > 1:  # the same sample seen twice (overlapping requests) counts once
        repeated = np.zeros(ts.size, dtype=bool)
        repeated[1:] = (key[1:] == key[:-1]) & (ts[1:] == ts[:-1])
        ts, key = ts[~repeated], key[~repeated]
    spacing = np.diff(ts)
    same_alert = key[1:] == key[:-1]
    _check_evaluation_interval(keys, key[1:][same_alert], spacing[same_alert], derivation)
    cut = np.ones(ts.size, dtype=bool)
    cut[1:] = ~same_alert | (spacing > keys.column("max_gap_ms").to_numpy()[key[1:]])
    starts = np.flatnonzero(cut)
    ends = np.append(starts[1:], ts.size)[: starts.size] - 1
    attributes = keys.take(pa.array(key[starts], pa.int64()))
    n = starts.size
    columns = {
        **{name: attributes.column(name) for name in attributes.column_names},
        "first_sample": _timestamps(ts[starts]),
        "last_sample": _timestamps(ts[ends]),
        "samples": pa.array(ends - starts + 1, pa.int64()),
        "window_start": _timestamps(np.full(n, window.start_ms, dtype=np.int64)),
        "window_end": _timestamps(np.full(n, window.end_ms, dtype=np.int64)),
        "source": pa.array([source] * n, pa.string()),
    }
    return pa.table([columns[f.name] for f in ALERT_FRAGMENTS], schema=ALERT_FRAGMENTS)


def _check_evaluation_interval(
    keys: pa.Table, pair_key: np.ndarray, spacing_ms: np.ndarray, derivation: AlertDerivationConfig
) -> None:
    """Refuse a configured interval shorter than Prometheus's: every sample of an alert it applies
    to would be its own interval. Only alerts of no listed rule use it; caught when no two
    consecutive samples of any of them are within the tolerance, or of any one of them alone (an
    alert of a slower group is not hidden by faster ones)."""
    configured = keys.column("configured").to_numpy(zero_copy_only=False)[pair_key]
    pair_key, spacing_ms = pair_key[configured], spacing_ms[configured]
    if spacing_ms.size < _SPACINGS_TO_JUDGE:
        return
    gap_ms = max_gap_ms(derivation)
    alerts, first, count = np.unique(pair_key, return_index=True, return_counts=True)
    closest = np.minimum.reduceat(spacing_ms, first)  # pairs are sorted by alert
    too_far = (count >= _SPACINGS_TO_JUDGE) & (closest > gap_ms)
    if not too_far.any():
        if int(closest.min()) <= gap_ms:
            return
        too_far = closest > gap_ms
    names = sorted(set(keys.column("alertname").take(pa.array(alerts[too_far])).to_pylist()))
    others = f" and {len(names) - 1} other alerts" if len(names) > 1 else ""
    raise SourceError(
        f"ALERTS samples of {names[0]}{others} are at least {int(closest[too_far].min()) / 1000:g}s "
        f"apart but sources.alert_derivation.evaluation_interval is {format_duration(derivation.evaluation_interval)}; "
        "set it to Prometheus's evaluation_interval (it applies to the alerts whose rule Prometheus does not list)"
    )


def _alert_keys(
    label_sets: Sequence[dict[str, str]], derivation: AlertDerivationConfig, context: AlertContext
) -> tuple[pa.Table, np.ndarray]:
    """One row per distinct (alert, state), with its evaluation interval and tolerance, and per
    input label set its row index."""
    index: dict[tuple[str, str], int] = {}
    key_of_series = np.empty(len(label_sets), dtype=np.int64)
    rows: dict[str, list] = {
        c: [] for c in ("fingerprint", "alertname", "state", "severity", "category", "service")
    }
    labels: list[list[tuple[str, str]]] = []
    intervals: list[int | None] = []
    for i, label_set in enumerate(label_sets):
        alert = {k: v for k, v in label_set.items() if k not in _NOT_ALERT_LABELS}
        state = label_set.get("alertstate", "firing")
        alert_print = context.fingerprint(alert)
        slot = index.setdefault((alert_print, state), len(index))
        key_of_series[i] = slot
        if slot < len(labels):
            continue
        for column, value in (
            ("fingerprint", alert_print),
            ("alertname", alert.get("alertname", "")),
            ("state", state),
            ("severity", alert.get("severity")),
            ("category", alert.get("category")),
            ("service", next((alert[k] for k in SERVICE_LABELS if alert.get(k)), None)),
        ):
            rows[column].append(value)
        labels.append(sorted(alert.items()))
        intervals.append(context.interval_ms(alert))
    interval_ms = [_configured_ms(derivation) if i is None else i for i in intervals]
    table = pa.table(
        {
            **{c: pa.array(v, pa.string()) for c, v in rows.items()},
            "labels": pa.array(labels, LABELS),
            "evaluation_interval_ms": pa.array(interval_ms, pa.int64()),
            "max_gap_ms": pa.array([max_gap_ms(derivation, i) for i in interval_ms], pa.int64()),
            "configured": pa.array([i is None for i in intervals], pa.bool_()),
        }
    )
    return table, key_of_series


def _timestamps(ms: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(ms, dtype=np.int64), pa.int64()).cast(pa.timestamp("ms"))


def samples_from_chunks(chunks: Sequence[MetricChunk]) -> AlertSamples:
    """Join metric chunks (series rows + samples by ``series_id``) into :class:`AlertSamples`."""
    if not chunks:
        return AlertSamples([], np.empty(0, np.int64), np.empty(0, np.int64))
    series = pa.concat_tables([c.series for c in chunks])
    ids = series.column("series_id").to_numpy()
    unique_ids, first = np.unique(ids, return_index=True)
    label_column = series.column("labels").take(pa.array(first))
    label_sets = [dict(entries) for entries in label_column.to_pylist()]
    samples = pa.concat_tables([c.samples for c in chunks])
    sample_ids = samples.column("series_id").to_numpy()
    return AlertSamples(
        label_sets=label_sets,
        series=np.searchsorted(unique_ids, sample_ids).astype(np.int64),
        ts_ms=samples.column("ts").cast(pa.int64()).to_numpy(),
    )


class PrometheusAlertFragments:
    """``alert_fragments`` for a window, derived from Prometheus's ALERTS raw samples."""

    name = "prometheus"
    dataset = "alert_fragments"

    def __init__(
        self,
        config: PrometheusSourceConfig,
        derivation: AlertDerivationConfig | None = None,
    ) -> None:
        self.derivation = derivation or AlertDerivationConfig()
        self.prometheus = PrometheusSource(
            config.model_copy(update={"selectors": [ALERTS_SELECTOR]})
        )
        self._context: AlertContext | None = None

    def read(self, window: TimeWindow) -> Iterator[pa.Table]:
        context = self.context()
        chunks = list(self.prometheus.read_metrics(window))
        yield build_fragments(
            samples_from_chunks(chunks), window, self.derivation, self.name, context
        )

    def context(self) -> AlertContext:
        """Prometheus's rules, external labels and alert relabelling, read for the first window
        and kept: every window of a run is derived with the same ones, for two requests per run
        (three when there is relabelling: its meaning depends on the version)."""
        if self._context is None:
            settings = _if_served(fetch_config, self.prometheus, {})
            self._context = AlertContext(
                rules=rule_intervals(_if_served(fetch_rule_groups, self.prometheus, [])),
                external_labels=external_labels(settings, self.prometheus),
                relabelling=alert_relabelling(settings, self.prometheus),
            )
        return self._context


class PrometheusAlertRules:
    """``alert_rules``: one row per rule of Prometheus's ``/api/v1/rules``, as one snapshot.

    Prometheus keeps no history of its rules, so a snapshot describes the rules loaded when it is
    taken. It is stamped ``snapshot_at`` = the time given by the caller, else the window's end:
    the hourly partition then reads "the rules in force at the end of this hour", which is what
    the coverage report asks (which alerts exist for a service).
    """

    name = "prometheus"
    dataset = "alert_rules"

    def __init__(self, config: PrometheusSourceConfig, snapshot_at: datetime | None = None) -> None:
        self.prometheus = PrometheusSource(config)
        self.snapshot_at = snapshot_at

    def read(self, window: TimeWindow) -> Iterator[pa.Table]:
        moment = self.snapshot_at or window.end
        yield rules_table(fetch_rule_groups(self.prometheus), moment)


def _if_served(
    fetch: Callable[[PrometheusSource], T], prometheus: PrometheusSource, absent: T
) -> T:
    """``fetch(prometheus)``, or ``absent`` from a server without that API (Thanos Query has no
    ``/api/v1/status/config``; its series carry the external labels already): the alerts then
    follow the configured interval and their own labels, as before either was read."""
    try:
        return fetch(prometheus)
    except EndpointNotFound:
        return absent


def fetch_rule_groups(prometheus: PrometheusSource) -> list[dict]:
    """The rule groups of Prometheus's ``/api/v1/rules``."""
    return _api_data(prometheus, "/api/v1/rules", "groups", "rules JSON")


def fetch_config(prometheus: PrometheusSource) -> dict:
    """The configuration Prometheus runs (``/api/v1/status/config``), parsed. Only the keys
    about alerts are read from it: the rest is not repeated anywhere, even in an error."""
    text = _api_data(prometheus, "/api/v1/status/config", "yaml", "its configuration")
    try:
        settings = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        raise _unreadable(prometheus, "global.external_labels") from None
    if not isinstance(settings, dict):
        raise _unreadable(prometheus, "global.external_labels")
    return settings


def external_labels(settings: Mapping, prometheus: PrometheusSource) -> dict[str, str]:
    """``global.external_labels`` of Prometheus's configuration ``settings``."""
    try:
        labels = (settings.get("global") or {}).get("external_labels") or {}
        return {str(k): str(v) for k, v in labels.items() if v is not None and str(v)}
    except (AttributeError, TypeError):
        raise _unreadable(prometheus, "global.external_labels") from None


def alert_relabelling(settings: Mapping, prometheus: PrometheusSource) -> AlertRelabelling:
    """``alerting.alert_relabel_configs`` and each ``alerting.alertmanagers`` entry's own, of
    Prometheus's configuration ``settings``. Only when there are some is the version read
    (``/api/v1/status/buildinfo``): a few details of relabelling changed between releases."""
    try:
        alerting = settings.get("alerting") or {}
        common = alerting.get("alert_relabel_configs")
        own = [m.get("alert_relabel_configs") for m in alerting.get("alertmanagers") or []]
        scheme = (settings.get("global") or {}).get("metric_name_validation_scheme")
    except (AttributeError, TypeError):
        raise _unreadable(prometheus, "alerting") from None
    if not common and not any(own):
        return AlertRelabelling()
    dialect = Dialect.of(str(_if_served(fetch_version, prometheus, "")), scheme)
    origin = f"Prometheus at {prometheus.url}"
    where = f"{origin}: alerting.alertmanagers"
    return AlertRelabelling(
        common=parse_rules(common, f"{origin}: alerting.alert_relabel_configs", dialect),
        per_alertmanager=tuple(
            parse_rules(rules, f"{where}[{i}].alert_relabel_configs", dialect)
            for i, rules in enumerate(own)
        ),
        origin=origin,
    )


def fetch_version(prometheus: PrometheusSource) -> str:
    """The version Prometheus runs (``/api/v1/status/buildinfo``)."""
    return _api_data(prometheus, "/api/v1/status/buildinfo", "version", "its build information")


def _unreadable(prometheus: PrometheusSource, key: str) -> SourceError:
    return SourceError(
        f"Prometheus at {prometheus.url} sent a /api/v1/status/config answer whose "
        f"configuration is not YAML with a readable {key}; check that "
        "sources.prometheus.url points at Prometheus itself"
    )


def _api_data(prometheus: PrometheusSource, path: str, key: str, what: str) -> Any:
    """``data[key]`` of Prometheus's answer to ``path``; an answer without it is one line."""
    body = prometheus.get(path)
    try:
        return orjson.loads(body)["data"][key]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise SourceError(
            f"Prometheus at {prometheus.url} sent a {path} answer that is not {what} ({exc}); "
            "check that sources.prometheus.url points at Prometheus itself"
        ) from None


def rule_intervals(groups: Sequence[dict]) -> dict[str, list[RuleInterval]]:
    """The alerting rules of ``/api/v1/rules`` groups by name, each with its group's interval (as
    Prometheus applies it: the group's own ``interval:``, else the global one). A group that does
    not state it leaves its alerts on the configured interval."""
    by_name: dict[str, list[RuleInterval]] = {}
    for group in groups:
        seconds = group.get("interval")
        if not isinstance(seconds, int | float) or seconds <= 0:
            continue
        for rule in group.get("rules") or []:
            if rule.get("type") == "alerting":
                labels = {k: str(v) for k, v in (rule.get("labels") or {}).items()}
                fixed = {k: v for k, v in labels.items() if "{{" not in v}
                interval = RuleInterval(fixed, round(seconds * 1000))
                by_name.setdefault(rule.get("name", ""), []).append(interval)
    return by_name


def rules_table(groups: Sequence[dict], snapshot_at: datetime) -> pa.Table:
    """``alert_rules`` rows from ``/api/v1/rules`` groups (the simulator builds the same shape)."""
    rows: dict[str, list] = {f.name: [] for f in ALERT_RULES if f.name != "snapshot_at"}
    for group in groups:
        for rule in group.get("rules") or []:
            labels = rule.get("labels") or {}
            alerting = rule.get("type") == "alerting"
            values = {
                "group": group.get("name", ""),
                "file": group.get("file"),
                "name": rule.get("name", ""),
                "type": rule.get("type", ""),
                "expr": rule.get("query", ""),
                "for_seconds": float(rule.get("duration", 0)) if alerting else None,
                "labels": sorted(labels.items()),
                "annotations": sorted((rule.get("annotations") or {}).items()),
                "health": rule.get("health"),
                "state": rule.get("state") if alerting else None,
                "last_error": rule.get("lastError") or None,
                "group_interval_seconds": group.get("interval"),
                "severity": labels.get("severity"),
                "category": labels.get("category"),
                "service": labels.get("service"),
            }
            for column, value in values.items():
                rows[column].append(value)
    arrays = {name: pa.array(values, ALERT_RULES.field(name).type) for name, values in rows.items()}
    stamp = round(snapshot_at.timestamp() * 1000)
    arrays["snapshot_at"] = _timestamps(np.full(len(rows["name"]), stamp, dtype=np.int64))
    return pa.table([arrays[f.name] for f in ALERT_RULES], schema=ALERT_RULES)
