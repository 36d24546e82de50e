"""Raise and resolve alerts in Alertmanager, so freshness breaches follow the platform's routing
(the seed sends ``severity=critical`` to PagerDuty and Slack, categories to their teams' email).

Alertmanager's v2 API is stateless for a client: an alert is its label set; posting it again
extends it, posting it with ``endsAt`` in the past resolves it. :meth:`Alertmanager.reconcile`
makes one call per tick enough: post everything breached now, then resolve every alert of the
same scope (our ``obs_check`` and ``obs_lake`` labels: this check, this deployment's lake) that
Alertmanager still shows active but is no longer breached. Nothing is remembered between ticks, so a restarted sensor neither loses nor
duplicates an alert.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import orjson
import requests

from obs_pipelines.config import AlertmanagerSourceConfig, HttpAuth, Tls
from obs_pipelines.errors import ObsError
from obs_pipelines.sources.http import (
    DeadlineExceeded,
    bounded_request,
    http_session,
    scrub,
    server_words,
    tls_failed,
)

# An alert we stop re-posting (the sensor died) expires after this, as Prometheus's do (it uses
# four evaluation intervals); a sensor ticking every 30 s re-posts it long before.
DEFAULT_ALERT_TTL = timedelta(minutes=15)
# sources.alertmanager's default, for clients made without a config.
DEFAULT_TIMEOUT: float = AlertmanagerSourceConfig.model_fields["timeout"].default.total_seconds()
GENERATOR = "obs-pipelines"


class NotifyError(ObsError):
    """Alertmanager could not be reached or refused an alert."""


@dataclass(frozen=True)
class Alert:
    """One alert as Alertmanager's v2 API takes it. Labels identify it; annotations describe."""

    labels: Mapping[str, str]
    annotations: Mapping[str, str] = field(default_factory=dict)
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    generator_url: str = ""

    def payload(self) -> dict[str, object]:
        body: dict[str, object] = {
            "labels": {k: v for k, v in self.labels.items() if v != ""},
            "annotations": {k: v for k, v in self.annotations.items() if v},
        }
        if self.starts_at is not None:
            body["startsAt"] = _rfc3339(self.starts_at)
        if self.ends_at is not None:
            body["endsAt"] = _rfc3339(self.ends_at)
        if self.generator_url:
            body["generatorURL"] = self.generator_url
        return body


@dataclass(frozen=True)
class Reconciled:
    posted: tuple[Mapping[str, str], ...]
    resolved: tuple[Mapping[str, str], ...]


class Alertmanager:
    """A small client of Alertmanager's v2 API (``/api/v2/alerts``)."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        auth: HttpAuth | None = None,
        tls: Tls | None = None,
    ) -> None:
        """``auth`` and ``tls`` as in ``sources.alertmanager``. No retries: posting is
        idempotent and the sensor posts everything again on its next tick, which keeps a tick
        short while Alertmanager is down."""
        self.url = url.rstrip("/")
        self.timeout = timeout  # a total deadline per request, not only per socket read
        self._where = scrub(self.url)
        self._session = http_session(
            "sources.alertmanager", auth, tls, headers={"Content-Type": "application/json"}
        )

    @classmethod
    def from_config(cls, config: AlertmanagerSourceConfig) -> "Alertmanager":
        """The Alertmanager of ``sources.alertmanager``: the one whose routing reaches people."""
        return cls(
            config.url, timeout=config.timeout.total_seconds(), auth=config.auth, tls=config.tls
        )

    def post(self, alerts: Sequence[Alert]) -> None:
        """Create, extend or resolve ``alerts`` (one request)."""
        if not alerts:
            return
        body = orjson.dumps([a.payload() for a in alerts])
        response = self._request("POST", "/api/v2/alerts", data=body)
        if response.status_code != 200:
            raise NotifyError(
                f"Alertmanager at {self._where} refused {len(alerts)} alerts (HTTP {response.status_code}: "
                f"{server_words(response.text, 200)}); check the labels and the Alertmanager version (API v2 needed)"
            )

    def active(self, matchers: Mapping[str, str]) -> list[dict[str, object]]:
        """Alerts Alertmanager considers active (not resolved) whose labels equal ``matchers``."""
        params = [("filter", f"{k}={_quoted(v)}") for k, v in matchers.items()]
        params += [("silenced", "true"), ("inhibited", "true"), ("active", "true")]
        response = self._request("GET", "/api/v2/alerts", params=params)
        if response.status_code != 200:
            raise NotifyError(
                f"Alertmanager at {self._where} refused to list alerts (HTTP {response.status_code}); "
                "check sources.alertmanager.url"
            )
        return orjson.loads(response.content)

    def reconcile(
        self,
        firing: Sequence[Alert],
        scope: Mapping[str, str],
        now: datetime,
        ttl: timedelta = DEFAULT_ALERT_TTL,
    ) -> Reconciled:
        """Make Alertmanager's active alerts within ``scope`` equal ``firing``.

        Firing alerts are (re)posted with ``endsAt = now + ttl``; active alerts of the scope
        that are no longer firing are posted again with ``endsAt = now``, which resolves them.
        """
        for alert in firing:
            missing = {k: v for k, v in scope.items() if alert.labels.get(k) != v}
            if missing:
                raise ValueError(f"alert {dict(alert.labels)} lacks the scope labels {missing}")
        keep = {_identity(a.labels) for a in firing}
        stale = [
            a
            for a in self.active(scope)
            if _identity(a["labels"]) not in keep  # type: ignore[arg-type]
        ]
        resolutions = [
            Alert(
                labels=a["labels"],  # type: ignore[arg-type]
                annotations=a.get("annotations", {}),  # type: ignore[arg-type]
                starts_at=_parse_time(str(a["startsAt"])),
                ends_at=now,
            )
            for a in stale
        ]
        extended = [
            Alert(a.labels, a.annotations, a.starts_at or now, now + ttl, a.generator_url)
            for a in firing
        ]
        self.post([*extended, *resolutions])
        return Reconciled(
            posted=tuple(a.labels for a in extended),
            resolved=tuple(a.labels for a in resolutions),
        )

    def hold(
        self, scope: Mapping[str, str], now: datetime, ttl: timedelta = DEFAULT_ALERT_TTL
    ) -> tuple[Mapping[str, str], ...]:
        """Re-post every active alert of ``scope`` as it is (labels, annotations, start), ending
        at ``now + ttl``: for a check that cannot tell right now whether they still hold, so they
        neither resolve nor expire on a guess. Returns their labels."""
        held = [
            Alert(
                labels=a["labels"],  # type: ignore[arg-type]
                annotations=a.get("annotations", {}),  # type: ignore[arg-type]
                starts_at=_parse_time(str(a["startsAt"])),
                ends_at=now + ttl,
                generator_url=str(a.get("generatorURL", "")),
            )
            for a in self.active(scope)
        ]
        self.post(held)
        return tuple(a.labels for a in held)

    def ready(self) -> str:
        """Version string of a reachable Alertmanager (``/api/v2/status``)."""
        response = self._request("GET", "/api/v2/status")
        if response.status_code != 200:
            raise NotifyError(
                f"Alertmanager at {self._where} answered HTTP {response.status_code} to /api/v2/status; "
                "check sources.alertmanager.url (the base URL, without /api)"
            )
        return str(orjson.loads(response.content).get("versionInfo", {}).get("version", "unknown"))

    def _request(self, method: str, path: str, **kwargs: object) -> requests.Response:
        try:
            return bounded_request(
                self._session,
                method,
                f"{self.url}{path}",
                self.timeout,
                **kwargs,
            )
        except (DeadlineExceeded, requests.exceptions.ReadTimeout):
            raise NotifyError(
                f"Alertmanager at {self._where} did not finish answering within {self.timeout:g}s "
                "(sources.alertmanager.timeout); check its health or raise the timeout"
            ) from None
        except requests.exceptions.SSLError as exc:
            raise NotifyError(
                tls_failed("Alertmanager", self._where, "sources.alertmanager", exc)
            ) from None
        except requests.exceptions.RequestException as exc:
            raise NotifyError(
                f"Alertmanager at {self._where} is unreachable ({type(exc).__name__}); "
                "check sources.alertmanager.url and that Alertmanager is running"
            ) from None


def _identity(labels: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in labels.items() if v != ""))


def _quoted(value: str) -> str:
    """A matcher value as Alertmanager parses it: a label such as a lake's folder may hold a
    quote or a backslash, which unescaped would end the value early or fail the filter."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
