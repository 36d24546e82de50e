"""Alertmanager's alerts as a snapshot: ``GET /api/v2/alerts``, one row per alert.

What only Alertmanager knows: whether an alert is silenced or inhibited (and by what), and which
receivers it was routed to. It keeps no history, so a snapshot describes the moment it is taken:

- ``snapshot_at`` is that moment (the caller may fix it, e.g. a test or a replay);
- ``read(window)`` accepts a window only while ``now`` is inside it or at most ``max_lag`` past its
  end, which is when the hourly schedule runs. An older window is refused rather than filled with
  today's alerts: Alertmanager cannot say what was silenced last week. The firing history itself
  comes from Prometheus's ALERTS series (``alert_fragments``), which any hour can be rebuilt from.

Rows join ``alert_fragments``/``alert_events`` on ``fingerprint``: Alertmanager's own, which the
ALERTS side computes the same way (:mod:`obs_pipelines.fingerprint`) over the labels Alertmanager
received, Prometheus's external labels included (:mod:`obs_pipelines.sources.alerts`).
"""

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import requests

from obs_pipelines.config import AlertmanagerSourceConfig
from obs_pipelines.errors import SourceError
from obs_pipelines.schemas import ALERTMANAGER_ALERTS, LABELS
from obs_pipelines.sources.http import (
    DeadlineExceeded,
    bounded_request,
    http_session,
    retry_policy,
    scrub,
    server_words,
    tls_failed,
)
from obs_pipelines.sources.prometheus_decode import not_json_api
from obs_pipelines.windows import TimeWindow

KEY = "sources.alertmanager"
ALERTS_PATH = "/api/v2/alerts"


def _utc_now() -> datetime:
    return datetime.now(UTC)


class AlertmanagerAlerts:
    """``alertmanager_alerts``: the alerts Alertmanager holds when the window is materialized."""

    name = "alertmanager"
    dataset = "alertmanager_alerts"

    def __init__(
        self,
        config: AlertmanagerSourceConfig,
        snapshot_at: datetime | None = None,
        max_lag: timedelta = timedelta(hours=2),
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.config = config
        self.url = scrub(config.url)  # for messages; requests go to config.url
        self.snapshot_at = snapshot_at
        self.max_lag = max_lag
        self.clock = clock
        # Retries back off 0.5 s, 1 s, ...; every request here is a read.
        self._session = http_session(
            KEY, config.auth, config.tls, retry=retry_policy(config.retries, 0.5)
        )

    def read(self, window: TimeWindow) -> Iterator[pa.Table]:
        now = self.clock()
        if self.snapshot_at is None and not (window.start <= now <= window.end + self.max_lag):
            raise SourceError(
                f"Alertmanager keeps no history, so a snapshot taken at {now:%Y-%m-%dT%H:%M:%SZ} "
                f"cannot describe {window}; materialize alertmanager_alerts only for the hour just "
                "ended (past alerts come from Prometheus's ALERTS via sources.alerts: prometheus)"
            )
        alerts = self._get_alerts()
        yield alerts_table(alerts, self.snapshot_at or now)

    def _get_alerts(self) -> list[dict[str, Any]]:
        key = KEY
        seconds = self.config.timeout.total_seconds()
        try:
            response = bounded_request(
                self._session, "GET", f"{self.config.url}{ALERTS_PATH}", seconds
            )
        except DeadlineExceeded:
            raise self._too_slow() from None
        except requests.exceptions.RetryError:
            raise SourceError(
                f"Alertmanager at {self.url} kept failing after {self.config.retries} retries; "
                "check the server's health, then rerun"
            ) from None
        except requests.exceptions.SSLError as exc:
            raise SourceError(tls_failed("Alertmanager", self.url, key, exc)) from None
        except requests.exceptions.Timeout:
            raise self._too_slow() from None
        except requests.exceptions.RequestException:
            raise SourceError(
                f"Alertmanager at {self.url} is unreachable; check {key}.url and that the server is running"
            ) from None
        status = response.status_code
        if status in (401, 403):
            raise SourceError(
                f"Alertmanager at {self.url} refused the credentials (HTTP {status}); "
                f"check {key}.auth and the variables it names"
            )
        if status == 404:
            raise SourceError(
                f"{self.url}{ALERTS_PATH} was not found (HTTP 404); {key}.url must be the "
                "Alertmanager base URL (Alertmanager 0.16 or later, API v2)"
            )
        if status != 200:
            raise SourceError(
                f"Alertmanager at {self.url} answered HTTP {status} "
                f"({server_words(response.text, 200)}); rerun once it is healthy"
            )
        problem = not_json_api(
            f"Alertmanager at {self.url}",
            "Alertmanager",
            key,
            response.content,
            response.headers.get("Content-Type"),
        )
        if problem:
            raise SourceError(problem)
        try:
            alerts = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            alerts = None
        if not isinstance(alerts, list):
            raise SourceError(
                f"{self.url}{ALERTS_PATH} did not answer a JSON list of alerts; "
                f"check that {key}.url points at Alertmanager itself"
            )
        return alerts

    def _too_slow(self) -> SourceError:
        return SourceError(
            f"Alertmanager at {self.url} did not finish answering within "
            f"{self.config.timeout.total_seconds():g}s (sources.alertmanager.timeout); check the "
            "server's health or raise the timeout"
        )


def alerts_table(alerts: Sequence[dict[str, Any]], snapshot_at: datetime) -> pa.Table:
    """``alertmanager_alerts`` rows from the ``/api/v2/alerts`` list (gettableAlerts)."""
    labels = [a.get("labels") or {} for a in alerts]
    status = [a.get("status") or {} for a in alerts]
    stamp = round(snapshot_at.timestamp() * 1000)
    columns: dict[str, pa.Array] = {
        "snapshot_at": pa.array([stamp] * len(alerts), pa.int64()).cast(pa.timestamp("ms")),
        "fingerprint": pa.array([a.get("fingerprint", "") for a in alerts], pa.string()),
        "alertname": pa.array([x.get("alertname") for x in labels], pa.string()),
        "severity": pa.array([x.get("severity") for x in labels], pa.string()),
        "category": pa.array([x.get("category") for x in labels], pa.string()),
        "service": pa.array([x.get("service") or x.get("job") for x in labels], pa.string()),
        "labels": pa.array([sorted(x.items()) for x in labels], LABELS),
        "annotations": pa.array(
            [sorted((a.get("annotations") or {}).items()) for a in alerts], LABELS
        ),
        "starts_at": _iso_times([a.get("startsAt") for a in alerts]),
        "ends_at": _iso_times([a.get("endsAt") for a in alerts]),
        "updated_at": _iso_times([a.get("updatedAt") for a in alerts]),
        "state": pa.array([s.get("state") for s in status], pa.string()),
        "silenced_by": pa.array([s.get("silencedBy") or [] for s in status], pa.list_(pa.string())),
        "inhibited_by": pa.array(
            [s.get("inhibitedBy") or [] for s in status], pa.list_(pa.string())
        ),
        "receivers": pa.array(
            [[r.get("name") for r in a.get("receivers") or []] for a in alerts],
            pa.list_(pa.string()),
        ),
        "generator_url": pa.array([a.get("generatorURL") or None for a in alerts], pa.string()),
    }
    return pa.table([columns[f.name] for f in ALERTMANAGER_ALERTS], schema=ALERTMANAGER_ALERTS)


def _iso_times(values: list[str | None]) -> pa.Array:
    """RFC 3339 times (Alertmanager prints up to nanoseconds) as UTC milliseconds."""
    text = pa.array(values, pa.string())
    to_ms = pc.replace_substring_regex(text, r"(\.\d{3})\d+", r"\1")
    try:
        return to_ms.cast(pa.timestamp("ms", "UTC")).cast(pa.timestamp("ms"))
    except pa.ArrowInvalid as exc:
        raise SourceError(
            f"Alertmanager sent a time that is not RFC 3339 ({exc}); check sources.alertmanager.url "
            "points at Alertmanager"
        ) from None
