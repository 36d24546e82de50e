"""Incident records: what happened, as the people who handled it wrote it down.

Two sources, either or both (``sources.incidents``):

- **postmortems**, a CSV or YAML file in UTF-8: one incident per row with ``service``,
  ``started_at``, ``detected_at``, ``resolved_at`` and optionally ``id``, ``title``,
  ``severity``. Times are ISO 8601 with a zone (``2026-11-10T11:00:00Z``); a time without one is
  refused, since a local time read as UTC would shift every number. A row without ``id`` gets
  ``service@started_at``. Give a PagerDuty incident's id to a postmortem and the postmortem's
  times replace PagerDuty's.
- **PagerDuty**, REST API v2 through the official ``pagerduty`` client: the mapped services'
  ids (``GET /services?query=`` by name, else ``GET /services/{id}``), then ``GET /incidents`` of
  those services only (``service_ids[]``), every status, created over ``since``..now, with
  classic pagination (offset, limit, more), then ``GET /incidents/{id}/log_entries`` (overview)
  of each. Classic pagination serves a query's first 10,000 results only: a span of ``since``
  holding more (``total``) is halved until each part fits, never truncated.

What a PagerDuty incident says, decided once here:

- ``started_at`` is ``created_at``: PagerDuty knows nothing earlier (a postmortem with the same
  id knows better, and wins in ``sql/incidents.sql``);
- ``detected_at`` is ``created_at`` when the first trigger came from an integration (its agent is
  an ``*_integration_reference``: a monitor saw it and paged at once, ``detection`` =
  'integration trigger'); otherwise (a person opened it by hand, or anything else) it is the first
  acknowledgement, when on-call knew ('first acknowledge'); NULL when nobody acknowledged;
- ``acknowledged_at`` is the first ``acknowledge_log_entry``, ``resolved_at`` the last
  ``resolve_log_entry`` of a resolved incident (the incident's ``resolved_at`` or
  ``last_status_change_at`` if the log has none).

A run reads everything before it returns anything: a failure on any page raises one line and
nothing is written, so the next run starts over and converges. Each request is done within
``timeout``, retries and their waits included: a failed connection, a 429 or a transient 5xx is
retried ``retries`` times, waiting ``retry_backoff_seconds`` doubling, or what ``Retry-After`` asks
(a wait past the deadline fails at once). An incident still open in the previous snapshot but
created before ``since`` (a long incident, or a lake that skipped runs) is read again by id,
``GET /incidents/{id}``, so each snapshot holds every incident that was open in the one before it
and a long incident is seen resolved, never left open forever.
"""

import csv
import io
import socket
import ssl
import weakref
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx2
import pagerduty
import pyarrow as pa
import pyarrow.compute as pc
import yaml

from obs_pipelines.config import IncidentsSourceConfig, ObsConfig, PagerDutySourceConfig, Tls
from obs_pipelines.errors import ConfigError, SourceError
from obs_pipelines.schemas import INCIDENT_RECORDS
from obs_pipelines.sources.http import (
    RETRY_ON_STATUS,
    Deadline,
    DeadlineExceeded,
    credential,
    current_deadline,
    failure_reason,
    scrub,
    server_words,
)
from obs_pipelines.windows import OutOfRange, TimeWindow, as_utc, utc

POSTMORTEM_COLUMNS = ("service", "started_at", "detected_at", "resolved_at")
POSTMORTEM_OPTIONAL = ("id", "title", "severity")
STATUSES = ("triggered", "acknowledged", "resolved")
# PagerDuty's classic pagination serves a query's results up to offset + limit = 10,000, no
# further ("Pagination", developer.pagerduty.com).
PAGINATION_CAP = 10_000
INTEGRATION_SUFFIX = "integration_reference"
_EXAMPLE_TIME = "2026-11-10T11:00:00Z"


def _utc_now() -> datetime:
    return datetime.now(UTC)


# --- postmortems -------------------------------------------------------------------------------


def read_postmortems(path: Path, services: set[str] | None = None) -> list[dict[str, Any]]:
    """The postmortems in ``path`` (CSV or YAML) as incident records without ``fetched_at``.

    ``services``: the catalog's names, when it has any; a row naming another is refused.
    Every problem is one ``ConfigError`` line naming the file, the row and the fix."""
    if not path.is_file():
        raise ConfigError(
            f"sources.incidents.postmortems: {path} not found; fix the path (relative to the "
            "config file) or remove the key"
        )
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows = _csv_rows(path)
    elif suffix in (".yaml", ".yml"):
        rows = _yaml_rows(path)
    else:
        raise ConfigError(
            f"sources.incidents.postmortems: {path} is neither .csv nor .yaml/.yml; "
            "give a CSV or YAML file of postmortems"
        )
    records, seen = [], {}
    for where, row in rows:
        record = _postmortem(path, where, row, services)
        if record["incident_id"] in seen:
            raise ConfigError(
                f"{path}: {where}: id {record['incident_id']!r} was already used at "
                f"{seen[record['incident_id']]}; give each postmortem its own id"
            )
        seen[record["incident_id"]] = where
        records.append(record)
    return records


def _text(path: Path) -> str:
    """The file's text, as UTF-8 with or without the byte order mark that Excel's "CSV UTF-8"
    writes (else the first column would be named '\\ufeffid'). Another encoding is one line
    naming the line of its first byte that is not UTF-8, not a decoding traceback."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = exc.object.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{path}: line {line}: byte 0x{exc.object[exc.start]:02x} is not UTF-8; save the "
            "file as UTF-8"
        ) from None


def _csv_rows(path: Path) -> list[tuple[str, dict[str, Any]]]:
    reader = csv.DictReader(io.StringIO(_text(path), newline=""))
    header = reader.fieldnames or []
    _check_keys(path, "line 1 (header)", header)
    rows = []
    for row in reader:
        if None in row:
            raise ConfigError(
                f"{path}: line {reader.line_num}: more values than columns; quote values "
                "holding commas"
            )
        rows.append((f"line {reader.line_num}", row))
    return rows


def _yaml_rows(path: Path) -> list[tuple[str, dict[str, Any]]]:
    # BaseLoader keeps every value a string, so times are parsed (and refused) here, one way.
    loader = yaml.BaseLoader(_text(path))
    try:
        root = loader.get_single_node()
        if root is not None and isinstance(root, yaml.MappingNode):
            found = [v for k, v in root.value if k.value == "postmortems"]
            root = found[0] if found else root
        if not isinstance(root, yaml.SequenceNode):
            raise ConfigError(
                f"{path}: expected a list of postmortems (or postmortems: [...]); write one "
                "mapping per incident with service, started_at, detected_at, resolved_at"
            )
        rows = []
        for index, node in enumerate(root.value, start=1):
            where = f"entry {index} (line {node.start_mark.line + 1})"
            row = loader.construct_object(node, deep=True)
            if not isinstance(row, dict):
                raise ConfigError(
                    f"{path}: {where}: expected a mapping with service, started_at, detected_at, "
                    "resolved_at"
                )
            _check_keys(path, where, list(row))
            rows.append((where, row))
        return rows
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: invalid YAML{line}; fix the YAML syntax there") from None
    finally:
        loader.dispose()


def _check_keys(path: Path, where: str, keys: list[str]) -> None:
    missing = [k for k in POSTMORTEM_COLUMNS if k not in keys]
    if missing:
        raise ConfigError(
            f"{path}: {where}: {', '.join(missing)} missing; every postmortem has "
            f"{', '.join(POSTMORTEM_COLUMNS)} (optional: {', '.join(POSTMORTEM_OPTIONAL)})"
        )
    unknown = [k for k in keys if k not in (*POSTMORTEM_COLUMNS, *POSTMORTEM_OPTIONAL)]
    if unknown:
        raise ConfigError(
            f"{path}: {where}: unknown {', '.join(map(repr, unknown))}; the fields are "
            f"{', '.join((*POSTMORTEM_COLUMNS, *POSTMORTEM_OPTIONAL))}"
        )


def _postmortem(
    path: Path, where: str, row: dict[str, Any], services: set[str] | None
) -> dict[str, Any]:
    def text(key: str) -> str | None:
        value = row.get(key)
        value = None if value is None else str(value).strip()
        return value or None

    service = text("service")
    if service is None:
        raise ConfigError(f"{path}: {where}: service is empty; name the affected service")
    if services and service not in services:
        raise ConfigError(
            f"{path}: {where}: service {service!r} is not under services in the config; "
            "fix the name or add the service"
        )
    started = _time(path, where, "started_at", text("started_at"))
    if started is None:
        raise ConfigError(f"{path}: {where}: started_at is empty; give when impact began")
    detected = _time(path, where, "detected_at", text("detected_at"))
    resolved = _time(path, where, "resolved_at", text("resolved_at"))
    for key, moment in (("detected_at", detected), ("resolved_at", resolved)):
        if moment is not None and moment < started:
            raise ConfigError(
                f"{path}: {where}: {key} {moment:%Y-%m-%dT%H:%M:%SZ} is before started_at "
                f"{started:%Y-%m-%dT%H:%M:%SZ}; fix one of them"
            )
    return {
        "source": "postmortems",
        "incident_id": text("id") or f"{service}@{started:%Y-%m-%dT%H:%M:%SZ}",
        "incident_number": None,
        "service": service,
        "title": text("title"),
        "severity": text("severity"),
        "status": "resolved" if resolved is not None else "triggered",
        "started_at": started,
        "detected_at": detected,
        "acknowledged_at": None,
        "resolved_at": resolved,
        "detection": "postmortem" if detected is not None else None,
        "external_service": None,
        "url": None,
    }


def _time(path: Path, where: str, key: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"{path}: {where}: {key} {value!r} is not an ISO 8601 time; write it as {_EXAMPLE_TIME}"
        ) from None
    if moment.tzinfo is None:
        raise ConfigError(
            f"{path}: {where}: {key} {value!r} has no time zone; write it in UTC as "
            f"{moment:%Y-%m-%dT%H:%M:%S}Z or with its offset (+02:00)"
        )
    try:
        return as_utc(moment, value)
    except OutOfRange as exc:
        raise ConfigError(f"{path}: {where}: {key} {exc}") from None


def check_incident_config(config: ObsConfig) -> None:
    """At load: the postmortems file parses and every service named (in it, or as a target of
    the PagerDuty mapping) is in the catalog, when the config has one."""
    incidents = config.sources.incidents
    if incidents is None:
        return
    services = {s.name for s in config.services}
    if incidents.postmortems is not None:
        read_postmortems(Path(config.resolve_path(incidents.postmortems)), services)
    if incidents.pagerduty is not None and services:
        for theirs, ours in incidents.pagerduty.services.items():
            if ours not in services:
                raise ConfigError(
                    f"sources.incidents.pagerduty.services: {theirs!r} maps to {ours!r}, which "
                    "is not under services; fix the name or add the service"
                )


# --- PagerDuty ---------------------------------------------------------------------------------


class PagerDutyIncidents:
    """Incidents of the mapped services created within ``since`` of now, with their log."""

    def __init__(self, config: PagerDutySourceConfig) -> None:
        self.config = config
        self.url = scrub(config.url)

    def fetch(
        self, now: datetime, still_open: frozenset[str] = frozenset()
    ) -> list[dict[str, Any]]:
        """Every incident of a mapped service created within ``since``, and those of
        ``still_open`` (ids open in the previous snapshot) wherever they were created."""
        client = _BoundedClient(self.config)
        try:
            ours = self._services(client)
            end = now.astimezone(UTC).replace(microsecond=0)
            start = (end - self.config.since).replace(microsecond=0)
            listed = self._listing(client, sorted(ours), start, end)
            listed += self._read_again(client, still_open - {i["id"] for i in listed})
            return [
                incident_record(incident, self._log(client, incident), ours[service])
                for incident in listed
                if (service := (incident.get("service") or {}).get("id")) in ours
            ]
        except _Unanswered as exc:
            raise SourceError(
                f"PagerDuty at {self.url} {exc.problem}; nothing was written; {exc.fix}"
            ) from None
        except pagerduty.HttpError as exc:
            raise self._http_error(exc) from None
        finally:
            client.close()

    def _services(self, client: "_BoundedClient") -> dict[str, str]:
        """PagerDuty's id of each mapped service -> our name. The listing asks for these ids
        only (``service_ids[]``): other services' incidents would cost requests, and count
        toward classic pagination's cap."""
        ours: dict[str, str] = {}
        for key, name in self.config.services.items():
            ours.setdefault(self._service_id(client, key), name)
        return ours

    def _service_id(self, client: "_BoundedClient", key: str) -> str:
        """The id of the service named ``key`` (``GET /services?query=``, any case: PagerDuty's
        names are unique so), else of the service whose id it is (``GET /services/{id}``)."""
        found = client.find("services", key)
        if found is not None:
            return str(found["id"])
        try:
            return str(client.rget(f"/services/{quote(key, safe='')}")["id"])
        except pagerduty.HttpError as exc:
            if exc.response.status_code != 404:
                raise
        raise SourceError(
            f"PagerDuty at {self.url} has no service named {key!r} or with that id; nothing was "
            "written; fix the key under sources.incidents.pagerduty.services"
        )

    def _listing(
        self, client: "_BoundedClient", services: list[str], start: datetime, end: datetime
    ) -> list[dict[str, Any]]:
        """The incidents of ``services`` created in [start, end), oldest first. Classic
        pagination serves a query's first ``PAGINATION_CAP`` results only, so a span holding
        more is halved until each half fits; a span of one second still holding more fails in
        one line, never truncated."""
        spans, listed = [(start, end)], []
        while spans:
            since, until = spans.pop()
            found = self._span(client, services, since, until)
            if found is not None:
                listed += found
            elif until - since <= timedelta(seconds=1):
                raise SourceError(
                    f"PagerDuty at {self.url} holds more than {PAGINATION_CAP:,} incidents of "
                    f"the mapped services created in the second from {_iso(since)}, more than "
                    "its API lists; nothing was written; map fewer services under "
                    "sources.incidents.pagerduty.services"
                )
            else:
                middle = since + timedelta(seconds=(until - since).total_seconds() // 2)
                spans += [(middle, until), (since, middle)]
        return listed

    def _span(
        self, client: "_BoundedClient", services: list[str], start: datetime, end: datetime
    ) -> list[dict[str, Any]] | None:
        """The incidents of ``services`` created in [start, end), page by page; None when they
        are more than classic pagination serves (``total`` says so on the first page, or a
        page at the cap still has ``more``: incidents created meanwhile)."""
        query = {
            "since": _iso(start),
            "until": _iso(end),
            "service_ids": services,
            "statuses": list(STATUSES),
            "time_zone": "UTC",
        }
        found: list[dict[str, Any]] = []
        while True:
            page = client.jget(
                "/incidents",
                params={
                    **query,
                    "offset": len(found),
                    "limit": min(self.config.page_size, PAGINATION_CAP - len(found)),
                    "total": "false" if found else "true",
                },
            )
            if (page.get("total") or 0) > PAGINATION_CAP:
                return None
            found += page["incidents"]
            if not page["incidents"] or not page.get("more"):
                return found
            if len(found) >= PAGINATION_CAP:
                return None

    def _read_again(self, client: "_BoundedClient", ids: frozenset[str]) -> list[dict[str, Any]]:
        """The incidents ``ids``, open in the previous snapshot and created before ``since``,
        read by id; one PagerDuty no longer knows (deleted, or merged into another) is left
        out."""
        found = []
        for incident_id in sorted(ids):
            try:
                found.append(client.rget(f"/incidents/{incident_id}", params={"time_zone": "UTC"}))
            except pagerduty.HttpError as exc:
                if exc.response.status_code != 404:
                    raise
        return found

    def _log(self, client: "_BoundedClient", incident: dict[str, Any]) -> list[dict[str, Any]]:
        """The incident's overview log entries (triggers, acknowledgements, resolutions)."""
        return list(
            client.iter_all(
                f"/incidents/{incident['id']}/log_entries",
                params={"time_zone": "UTC", "is_overview": "true"},
                page_size=self.config.page_size,
            )
        )

    def _http_error(self, exc: Any) -> SourceError:
        response = exc.response
        status, path = response.status_code, response.request.url.path
        try:
            message = response.json()["error"]["message"]
        except Exception:
            message = server_words(response.text)
        message = scrub(str(message))
        if status in (401, 403):
            return SourceError(
                f"PagerDuty at {self.url} refused the token in {self.config.token_env} "
                f"({status} {message}); set {self.config.token_env} to a valid REST API token, "
                "or fix sources.incidents.pagerduty.url for your service region"
            )
        return SourceError(
            f"PagerDuty at {self.url} answered {status} to GET {path} ({message}); nothing was "
            "written; the next run fetches every page again"
        )


class _Unanswered(Exception):
    """A request to PagerDuty left without a usable answer by its retries and deadline; its
    one line is ``PagerDuty at <url> <problem>; nothing was written; <fix>``."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.problem, self.fix = problem, fix


class _BoundedClient(pagerduty.RestApiV2Client):
    """PagerDuty's official client, each of whose requests is done within ``timeout``, its
    retries, their waits and its body included. On its own the client retries 429 without end,
    each wait twice the last, and its timeout bounds each socket read only; here the retries
    (``retries``, waits doubling from ``retry_backoff_seconds``, or what ``Retry-After`` asks)
    are made below it, under a :class:`Deadline`, as the other sources' are."""

    def __init__(self, config: PagerDutySourceConfig) -> None:
        super().__init__(
            credential(config.token_env), base_url=config.url, verify=_ssl_context(config.tls)
        )
        self.max_network_attempts = 0  # its own retries would sleep past the deadline
        self.bounds = config
        self._sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()

    def send(self, request: httpx2.Request, **kwargs: Any) -> httpx2.Response:
        """``request`` until an answer that is not transient, all within the deadline."""
        timeout = self.bounds.timeout.total_seconds()
        try:
            with Deadline(timeout) as deadline:
                return self._retrying(request, deadline, **kwargs)
        except DeadlineExceeded:
            raise _Unanswered(
                f"did not answer GET {request.url.path} within {timeout:g}s "
                "(sources.incidents.pagerduty.timeout: retries and their waits included)",
                "check PagerDuty's status, or raise the timeout",
            ) from None

    def _retrying(
        self, request: httpx2.Request, deadline: Deadline, **kwargs: Any
    ) -> httpx2.Response:
        """Tries of ``request`` until one is answered with a status not in ``RETRY_ON_STATUS``,
        or the retries are spent (the last answer returned, but a 429 raised)."""
        retries = self.bounds.retries
        for attempt in range(retries + 1):
            backoff = self.bounds.retry_backoff_seconds * 2**attempt
            try:
                response = self._attempt(request, deadline, **kwargs)
            except httpx2.TransportError as exc:
                if attempt == retries:
                    raise _Unanswered(
                        f"could not be reached for GET {request.url.path} ({failure_reason(exc)})",
                        "check sources.incidents.pagerduty.url and tls",
                    ) from None
                deadline.sleep(backoff)
                continue
            if response.status_code not in RETRY_ON_STATUS:
                return response
            asked = _retry_after(response)
            wait = backoff if asked is None else asked
            if response.status_code == 429 and attempt == retries:
                raise _rate_limited(request.url.path, attempt + 1)
            if response.status_code == 429 and wait >= deadline.remaining():
                raise _rate_limited(request.url.path, attempt + 1, wait, deadline.seconds)
            if attempt == retries:
                return response
            deadline.sleep(wait)
        raise AssertionError("unreachable")

    def _attempt(
        self, request: httpx2.Request, deadline: Deadline, **kwargs: Any
    ) -> httpx2.Response:
        """One try of ``request``, its body read. Each socket wait ends by the deadline, and
        the deadline shuts the connection's socket when it passes (a trickled answer too)."""
        left = max(deadline.remaining(), 0.001)
        request.extensions["timeout"] = dict.fromkeys(("connect", "read", "write", "pool"), left)
        request.extensions["trace"] = self._trace
        for sock in list(self._sockets):  # kept-alive connections, made by earlier requests
            deadline.watch(sock)
        return super().send(request, **kwargs)

    def _trace(self, event: str, info: dict[str, Any]) -> None:
        """httpcore's trace hook: a new connection's socket (plain, then TLS) is watched by the
        running request's deadline, and remembered for the requests that reuse it."""
        if event.endswith(("connect_tcp.complete", "start_tls.complete")):
            sock = info["return_value"].get_extra_info("socket")
            self._sockets.add(sock)
            deadline = current_deadline()
            if deadline is not None:
                deadline.watch(sock)


def _retry_after(response: httpx2.Response) -> float | None:
    """The seconds ``Retry-After`` asks to wait (a number, or an HTTP date); None without
    one, or with one that is neither."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max((parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds(), 0.0)
    except (TypeError, ValueError):
        return None


def _rate_limited(
    path: str, attempts: int, wait: float | None = None, timeout: float | None = None
) -> _Unanswered:
    """The one line for a request that PagerDuty answered 429 ``attempts`` times: the retries
    are spent, or the next would come ``wait`` seconds on, past the ``timeout``."""
    said = f"429 Too Many Requests {attempts} time{'' if attempts == 1 else 's'}"
    if wait is not None:
        said += (
            f", the next try due in {wait:g}s, past sources.incidents.pagerduty.timeout "
            f"({timeout:g}s)"
        )
    return _Unanswered(
        f"kept rate-limiting GET {path} ({said})",
        "the next run starts over; if other tools share the account's rate limit, run them at "
        "other times, or raise sources.incidents.pagerduty.retries and timeout",
    )


def incident_record(
    incident: dict[str, Any], entries: list[dict[str, Any]], service: str
) -> dict[str, Any]:
    """One incident record from a PagerDuty incident and its log entries (see the module doc)."""

    def first(kind: str) -> dict[str, Any] | None:
        found = [e for e in entries if e.get("type") == kind]
        return min(found, key=lambda e: utc(e["created_at"])) if found else None

    created = utc(incident["created_at"])
    trigger = first("trigger_log_entry")
    acknowledge = first("acknowledge_log_entry")
    acknowledged = utc(acknowledge["created_at"]) if acknowledge else None
    agent = str(((trigger or {}).get("agent") or {}).get("type", ""))
    if agent.endswith(INTEGRATION_SUFFIX):
        detected, detection = created, "integration trigger"
    else:
        detected, detection = acknowledged, "first acknowledge" if acknowledged else None
    resolved = None
    if incident.get("status") == "resolved":
        resolves = [utc(e["created_at"]) for e in entries if e.get("type") == "resolve_log_entry"]
        fallback = incident.get("resolved_at") or incident.get("last_status_change_at")
        resolved = max(resolves) if resolves else (utc(fallback) if fallback else None)
    theirs = incident.get("service") or {}
    return {
        "source": "pagerduty",
        "incident_id": str(incident["id"]),
        "incident_number": incident.get("incident_number"),
        "service": service,
        "title": incident.get("title") or incident.get("summary"),
        "severity": (incident.get("priority") or {}).get("summary") or incident.get("urgency"),
        "status": str(incident.get("status")),
        "started_at": created,
        "detected_at": detected,
        "acknowledged_at": acknowledged,
        "resolved_at": resolved,
        "detection": detection,
        "external_service": f"{theirs.get('summary')} ({theirs.get('id')})",
        "url": incident.get("html_url"),
    }


def _ssl_context(tls: Tls) -> ssl.SSLContext | bool:
    if not tls.verify:
        return False
    return ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the lake dataset ----------------------------------------------------------------------------


class IncidentRecords:
    """``incident_records``: every record the configured sources hold now, as one snapshot."""

    dataset = "incident_records"

    def __init__(
        self,
        incidents: IncidentsSourceConfig,
        base_dir: Path,
        services: set[str] | None = None,
        clock: Callable[[], datetime] = _utc_now,
        still_open: frozenset[str] = frozenset(),
    ) -> None:
        self.incidents = incidents
        self.base_dir = base_dir
        self.services = services
        self.clock = clock
        self.still_open = still_open
        parts = [("postmortems", incidents.postmortems), ("pagerduty", incidents.pagerduty)]
        self.name = ",".join(name for name, section in parts if section is not None)

    def read(self, window: TimeWindow) -> Iterator[pa.Table]:
        """The snapshot taken now (filed under ``window``, the hour of the run)."""
        now = self.clock()
        records: list[dict[str, Any]] = []
        if self.incidents.postmortems is not None:
            path = Path(self.incidents.postmortems)
            records += read_postmortems(
                path if path.is_absolute() else self.base_dir / path, self.services
            )
        if self.incidents.pagerduty is not None:
            records += PagerDutyIncidents(self.incidents.pagerduty).fetch(now, self.still_open)
        yield records_table(records, now)


def incident_source(
    config: ObsConfig,
    clock: Callable[[], datetime] = _utc_now,
    previous: pa.Table | None = None,
) -> IncidentRecords:
    """The ``incident_records`` source of ``config`` (which must configure sources.incidents);
    ``previous`` is the lake's newest snapshot, whose open PagerDuty incidents are read again."""
    if config.sources.incidents is None:
        raise ConfigError(
            "sources.incidents is not configured, so incident_records is not ingested; add "
            "sources.incidents with postmortems or pagerduty"
        )
    return IncidentRecords(
        config.sources.incidents,
        config.base_dir.resolve(),
        {s.name for s in config.services},
        clock,
        open_pagerduty_incidents(previous),
    )


def open_pagerduty_incidents(snapshot: pa.Table | None) -> frozenset[str]:
    """Ids of the PagerDuty incidents not resolved in ``snapshot``."""
    if snapshot is None or not snapshot.num_rows:
        return frozenset()
    still_open = snapshot.filter(
        pc.and_(
            pc.equal(snapshot["source"], "pagerduty"),
            pc.not_equal(snapshot["status"], "resolved"),
        )
    )
    return frozenset(still_open["incident_id"].to_pylist())


def records_table(records: list[dict[str, Any]], fetched_at: datetime) -> pa.Table:
    """Records as an ``incident_records`` table, times as naive UTC milliseconds."""
    stamp = fetched_at.astimezone(UTC).replace(tzinfo=None, microsecond=0)
    rows = [
        {
            **{k: _naive(v) for k, v in r.items()},
            "fetched_at": stamp,
        }
        for r in records
    ]
    return pa.Table.from_pylist(rows, schema=INCIDENT_RECORDS)


def _naive(value: Any) -> Any:
    return value.astimezone(UTC).replace(tzinfo=None) if isinstance(value, datetime) else value


def record_problems(table: pa.Table) -> dict[str, int]:
    """What the published snapshot must satisfy, as counts of offending rows (all zero: fine)."""
    keys = pc.binary_join_element_wise(table["source"], table["incident_id"], "\x00")
    started = table["started_at"]
    return {
        "missing keys": sum(
            table[c].null_count for c in ("incident_id", "service", "started_at", "status")
        ),
        "duplicate ids": table.num_rows - len(pc.unique(keys)),
        "resolved before start": pc.sum(
            pc.less(table["resolved_at"], started).fill_null(False).cast(pa.int64())
        ).as_py()
        or 0,
        "unknown status": pc.sum(
            pc.invert(pc.is_in(table["status"], pa.array(STATUSES))).cast(pa.int64())
        ).as_py()
        or 0,
    }
