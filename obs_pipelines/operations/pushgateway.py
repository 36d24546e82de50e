"""Publish report results to a Prometheus Pushgateway, so Grafana and alert rules see the
scorecard next to live metrics.

The pusher takes plain values (:class:`ReportMetric`), not report rows: mapping a report's
columns to metrics is the caller's business, and the SQL can change without touching this. Every
metric name is documented in :data:`REPORT_METRICS` (and in ``deploy/README.md``); an unknown
name is refused, so dashboards never meet an undocumented series.

One push replaces the whole group (``PUT /metrics/job/<job>[/<label>/<value>...]``): a metric
that disappears from a report disappears from the Pushgateway too, instead of lingering with a
stale value. ``obs_report_last_push_timestamp_seconds`` is added to every push, so an alert can
tell a stale scorecard (``time() - obs_report_last_push_timestamp_seconds > 2 * 86400``).
"""

import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

import requests

from obs_pipelines.config import PushgatewayConfig
from obs_pipelines.errors import ObsError
from obs_pipelines.sources.http import (
    DeadlineExceeded,
    bounded_request,
    http_session,
    scrub,
    server_words,
)

# The defaults of operations.pushgateway, for pushes made without a config.
DEFAULT_JOB: str = PushgatewayConfig.model_fields["job"].default
DEFAULT_TIMEOUT: float = PushgatewayConfig.model_fields["timeout"].default.total_seconds()
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


@dataclass(frozen=True)
class MetricDoc:
    help: str
    labels: tuple[str, ...]
    unit: str = ""


# The documented report metrics: name -> help text and the labels each sample carries.
REPORT_METRICS: dict[str, MetricDoc] = {
    "obs_slo_sli_ratio": MetricDoc(
        "Measured SLI over the SLO window (share of good events or of time within bounds).",
        ("slo", "service"),
    ),
    "obs_slo_objective_ratio": MetricDoc("Target SLI of the SLO.", ("slo", "service")),
    "obs_slo_error_budget_remaining_ratio": MetricDoc(
        "Share of the error budget left over the SLO window (1 = untouched, <0 = overspent).",
        ("slo", "service"),
    ),
    "obs_slo_error_budget_remaining_minutes": MetricDoc(
        "Error budget left over the SLO window, in minutes of full outage.", ("slo", "service")
    ),
    "obs_slo_burn_rate": MetricDoc(
        "Error budget burn rate over a look-back window (1 = spending exactly the budget).",
        ("slo", "service", "window"),
    ),
    "obs_alert_noise_ratio": MetricDoc(
        'Share of alert firings that matched no SLO impact (alertname="" for all alerts).',
        ("alertname",),
    ),
    "obs_alert_precision_ratio": MetricDoc(
        "Share of firings that matched an SLO-impact episode.", ("alertname",)
    ),
    "obs_alert_recall_ratio": MetricDoc(
        "Share of SLO-impact episodes that some alert detected.", ("alertname",)
    ),
    "obs_coverage_ratio": MetricDoc(
        'Share of catalog services with the pillar present (pillar="all" for every pillar).',
        ("pillar",),
    ),
    "obs_service_pillar_present": MetricDoc(
        "1 if the service has the pillar (metrics, logs, traces, alerts, slo), 0 if missing.",
        ("service", "pillar"),
    ),
    "obs_incident_mttd_seconds": MetricDoc(
        "Mean time to detect SLO-impact incidents over the report window.", ("service",)
    ),
    "obs_incident_mttr_seconds": MetricDoc(
        "Mean time to resolve SLO-impact incidents over the report window.", ("service",)
    ),
    "obs_incidents": MetricDoc("SLO-impact incidents in the report window.", ("service",)),
    "obs_scorecard_value": MetricDoc(
        "Current value of a scorecard row (the seed's Success Metrics).", ("metric",)
    ),
    "obs_scorecard_target": MetricDoc("Target of a scorecard row.", ("metric",)),
    "obs_scorecard_pass": MetricDoc(
        "1 if the scorecard row meets its target, else 0.", ("metric",)
    ),
    "obs_report_last_push_timestamp_seconds": MetricDoc(
        "Unix time of the last successful push of the reports.", ()
    ),
}


class PushError(ObsError):
    """The Pushgateway could not be reached or refused the metrics."""


@dataclass(frozen=True)
class ReportMetric:
    """One sample: a documented metric name, its labels, its value."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    value: float = 0.0


def exposition(metrics: Sequence[ReportMetric], pushed_at: float | None = None) -> str:
    """The Prometheus text exposition (format 0.0.4) of ``metrics``, with HELP and TYPE lines."""
    stamped = [
        *metrics,
        ReportMetric(
            "obs_report_last_push_timestamp_seconds",
            {},
            time.time() if pushed_at is None else pushed_at,
        ),
    ]
    by_name: dict[str, list[ReportMetric]] = {}
    for metric in stamped:
        _validate(metric)
        by_name.setdefault(metric.name, []).append(metric)
    lines: list[str] = []
    for name, members in by_name.items():
        lines.append(f"# HELP {name} {_escape_help(REPORT_METRICS[name].help)}")
        lines.append(f"# TYPE {name} gauge")
        seen: set[tuple[tuple[str, str], ...]] = set()
        for metric in members:
            key = tuple(sorted(metric.labels.items()))
            if key in seen:
                raise ValueError(f"{name}{dict(key)} is given twice; each label set once per push")
            seen.add(key)
            labels = ",".join(f'{k}="{_escape_label(v)}"' for k, v in key)
            head = f"{name}{{{labels}}}" if labels else name
            lines.append(f"{head} {_format_value(metric.value)}")
    return "\n".join(lines) + "\n"


def push(
    url: str,
    metrics: Sequence[ReportMetric],
    *,
    job: str = DEFAULT_JOB,
    grouping: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    session: requests.Session | None = None,
) -> int:
    """Replace the group ``job`` (+ ``grouping``) on the Pushgateway at ``url`` with ``metrics``.

    Returns the number of samples pushed (the timestamp included). ``timeout`` bounds the whole
    push, not each socket read; a ``session`` of your own must come from
    :func:`obs_pipelines.sources.http.http_session` for the bound to hold.
    """
    body = exposition(metrics)
    path = f"/metrics/job/{quote(job, safe='')}"
    for key, value in (grouping or {}).items():
        if not _LABEL_NAME.match(key):
            raise ValueError(f"grouping label {key!r} is not a valid Prometheus label name")
        path += f"/{key}/{quote(value, safe='')}"
    where = scrub(url)
    try:
        response = bounded_request(
            session or http_session("operations.pushgateway"),
            "PUT",
            f"{url.rstrip('/')}{path}",
            timeout,
            data=body.encode(),
            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
        )
    except (DeadlineExceeded, requests.exceptions.ReadTimeout):
        raise PushError(
            f"Pushgateway at {where} did not finish answering within {timeout:g}s; check its "
            "health or raise operations.pushgateway.timeout"
        ) from None
    except requests.exceptions.RequestException as exc:
        raise PushError(
            f"Pushgateway at {where} is unreachable ({type(exc).__name__}); check the pushgateway "
            "url in the config and that the Pushgateway is running"
        ) from None
    if response.status_code not in (200, 202):
        raise PushError(
            f"Pushgateway at {where} refused the report metrics (HTTP {response.status_code}: "
            f"{server_words(response.text, 200)}); a metric pushed by another job "
            "may clash in type"
        )
    return len(metrics) + 1


def _validate(metric: ReportMetric) -> None:
    doc = REPORT_METRICS.get(metric.name)
    if doc is None:
        raise ValueError(
            f"{metric.name} is not a documented report metric; add it to REPORT_METRICS "
            "(obs_pipelines/operations/pushgateway.py) and deploy/README.md"
        )
    if set(metric.labels) != set(doc.labels):
        raise ValueError(
            f"{metric.name} takes the labels {sorted(doc.labels)}, got {sorted(metric.labels)}"
        )


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _format_value(value: float) -> str:
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)
