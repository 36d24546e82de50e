"""A PagerDuty REST API v2 on 127.0.0.1 that answers as PagerDuty documents it (it cannot run here).

Only what the incidents source reads, built from PagerDuty's API reference
(developer.pagerduty.com, "List incidents", "Get an incident", "List log entries for an
incident", "List services", "Get a service", "Pagination", "Authentication", "Errors"):

- HTTPS only (the official client refuses any other scheme), on a certificate the test makes;
- every request needs ``Authorization: Token token=<token>``: anything else is ``401`` with
  PagerDuty's error body ``{"error": {"message": "Authentication failed", "code": 2006}}``;
  an ``Accept`` other than ``application/vnd.pagerduty+json;version=2`` (or none) is ``406``;
- classic pagination: ``limit`` (at most 100, default 25) and ``offset``; the answer echoes
  them, says ``more`` (whether results follow this page) and ``total`` (how many match the
  query, whatever the cap below; null unless ``total=true``); ``offset + limit`` above 10,000
  is ``400`` code 2001, so results past the 10,000th cannot be reached but by a narrower query;
- ``GET /incidents``: ``since``/``until`` (ISO 8601, on ``created_at``, ``since`` inclusive and
  ``until`` exclusive; without them the last 30 days), ``statuses[]``, ``service_ids[]``, and
  the pagination; ``until - since`` above 6 months is ``400`` code 2001; the answer is
  ``{"incidents": [...], "limit", "offset", "more", "total"}`` in ``created_at`` order;
- ``GET /incidents/{id}``: ``{"incident": {...}}``, whatever its age or status; an unknown id is
  ``404``;
- ``GET /incidents/{id}/log_entries``: the same pagination, ``is_overview=true`` keeps the
  important changes only; an unknown id is ``404`` (code 2100, "Not Found");
- ``GET /services``: the services of the incidents, ``query`` keeping those whose name contains
  it (in any case), with the same pagination; ``GET /services/{id}``: ``{"service": {...}}``, an
  unknown id ``404``; service objects carry ``id``, ``type``, ``summary``, ``self``,
  ``html_url``, ``name``, ``status``;
- incident objects carry ``id``, ``type``, ``summary``, ``self``, ``html_url``,
  ``incident_number``, ``title``, ``status``, ``urgency``, ``priority``, ``service`` (a
  ``service_reference``), ``created_at``, ``updated_at``, ``last_status_change_at``,
  ``resolved_at``, ``first_trigger_log_entry`` (a ``trigger_log_entry_reference``); log entries
  ``id``, ``type``, ``summary``, ``created_at``, ``agent``, ``channel``, ``incident``, ``service``.

Knobs for tests: ``fail_at`` makes the n-th request (1-based) answer 500 (PagerDuty's
``{"error": {"message": "Internal Server Error", ...}}``); ``rate_limit_at`` holds the numbers
of the requests answered ``429`` (PagerDuty's ``{"error": {"message": "Rate Limit Exceeded",
"code": 2020}}``), with a ``Retry-After`` header when ``retry_after`` is set; ``trickle_at``
those whose answer is sent 100 bytes every 0.2 s, as a stalling server or proxy does; and
``requests`` records each path with its query.
"""

import threading
import time
from collections.abc import Callable, Container, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

from tests.servers import serving_in_process

ACCEPT = "application/vnd.pagerduty+json;version=2"
OVERVIEW_TYPES = {
    "trigger_log_entry",
    "acknowledge_log_entry",
    "unacknowledge_log_entry",
    "resolve_log_entry",
    "escalate_log_entry",
    "assign_log_entry",
    "reassign_log_entry",
    "urgency_change_log_entry",
    "priority_change_log_entry",
}
BASE = "https://acme.pagerduty.com"


@dataclass
class FakeLogEntry:
    type: str  # trigger_log_entry, acknowledge_log_entry, resolve_log_entry, notify_log_entry, ...
    created_at: str
    agent_type: str = "user_reference"  # or e.g. events_api_v2_inbound_integration_reference
    agent_summary: str = "Alex On-Call"


@dataclass
class FakeIncident:
    id: str
    incident_number: int
    title: str
    service_id: str
    service_name: str
    created_at: str
    status: str = "resolved"
    urgency: str = "high"
    priority: str | None = None
    log: list[FakeLogEntry] = field(default_factory=list)

    @property
    def resolved_at(self) -> str | None:
        resolves = [e.created_at for e in self.log if e.type == "resolve_log_entry"]
        return max(resolves) if self.status == "resolved" and resolves else None

    @property
    def last_status_change_at(self) -> str:
        changes = [
            e.created_at
            for e in self.log
            if e.type in ("trigger_log_entry", "acknowledge_log_entry", "resolve_log_entry")
        ]
        return max(changes, default=self.created_at)


def _ref(kind: str, ident: str, summary: str, path: str) -> dict[str, Any]:
    return {
        "id": ident,
        "type": f"{kind}_reference",
        "summary": summary,
        "self": f"https://api.pagerduty.com/{path}/{ident}",
        "html_url": f"{BASE}/{path}/{ident}",
    }


class FakePagerDuty:
    """The server's state: incidents with their logs, the valid token, and test knobs."""

    def __init__(self, incidents: list[FakeIncident], token: str) -> None:
        self.incidents = incidents
        self.token = token
        self.fail_at: int | None = None
        self.rate_limit_at: Container[int] = ()
        self.retry_after: str | None = None
        self.trickle_at: Container[int] = ()
        self.requests: list[str] = []
        self.url = ""
        self._lock = threading.Lock()

    @property
    def incidents(self) -> list[FakeIncident]:
        return self._incidents

    @incidents.setter
    def incidents(self, incidents: list[FakeIncident]) -> None:
        self._incidents = sorted(incidents, key=lambda i: i.created_at)
        self._by_id = {i.id: i for i in self._incidents}

    def services(self) -> dict[str, str]:
        """The services of the incidents: id -> name."""
        return {i.service_id: i.service_name for i in self.incidents}

    # -- objects as the API renders them ----------------------------------------------------------

    def incident_json(self, i: FakeIncident) -> dict[str, Any]:
        trigger = next((n for n, e in enumerate(i.log) if e.type == "trigger_log_entry"), 0)
        return {
            "id": i.id,
            "type": "incident",
            "summary": f"[#{i.incident_number}] {i.title}",
            "self": f"https://api.pagerduty.com/incidents/{i.id}",
            "html_url": f"{BASE}/incidents/{i.id}",
            "incident_number": i.incident_number,
            "title": i.title,
            "description": i.title,
            "created_at": i.created_at,
            "updated_at": i.last_status_change_at,
            "status": i.status,
            "incident_key": f"key-{i.id}",
            "service": _ref("service", i.service_id, i.service_name, "services"),
            "assignments": [],
            "acknowledgements": [],
            "last_status_change_at": i.last_status_change_at,
            "last_status_change_by": _ref("service", i.service_id, i.service_name, "services"),
            "first_trigger_log_entry": _ref(
                "trigger_log_entry", f"{i.id}L{trigger}", "Triggered", "log_entries"
            ),
            "escalation_policy": _ref(
                "escalation_policy", "PEP0001", "Default", "escalation_policies"
            ),
            "teams": [],
            "urgency": i.urgency,
            "priority": (
                {"id": "PPRI01", "type": "priority", "summary": i.priority, "name": i.priority}
                if i.priority
                else None
            ),
            "resolved_at": i.resolved_at,
            "alert_counts": {"all": 1, "triggered": 0, "resolved": 1},
            "is_mergeable": True,
        }

    def service_json(self, ident: str, name: str) -> dict[str, Any]:
        return {**_ref("service", ident, name, "services"), "type": "service", "name": name,
                "status": "active"}  # fmt: skip

    def log_entry_json(self, i: FakeIncident, n: int, e: FakeLogEntry) -> dict[str, Any]:
        channel = "api" if e.agent_type.endswith("integration_reference") else "web_ui"
        return {
            "id": f"{i.id}L{n}",
            "type": e.type,
            "summary": e.type.removesuffix("_log_entry").replace("_", " ").capitalize(),
            "self": f"https://api.pagerduty.com/log_entries/{i.id}L{n}",
            "html_url": f"{BASE}/incidents/{i.id}/log_entries/{i.id}L{n}",
            "created_at": e.created_at,
            "agent": _ref(
                e.agent_type.removesuffix("_reference"), f"PAG{n:04d}", e.agent_summary, "users"
            ),
            "channel": {"type": channel},
            "service": _ref("service", i.service_id, i.service_name, "services"),
            "incident": _ref("incident", i.id, i.title, "incidents"),
            "teams": [],
            "contexts": [],
        }

    # -- endpoints ----------------------------------------------------------------------------

    def list_incidents(self, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        until = _time(query["until"][0]) if "until" in query else datetime.now(UTC)
        since = _time(query["since"][0]) if "since" in query else until - timedelta(days=30)
        if until - since > timedelta(days=180):
            return 400, _error("Invalid Input Provided", 2001, ["Date range exceeds 6 months"])
        statuses = set(query.get("statuses[]", [])) or {"triggered", "acknowledged", "resolved"}
        services = set(query.get("service_ids[]", []))
        found = [
            i
            for i in self.incidents
            if since <= _time(i.created_at) < until
            and i.status in statuses
            and (not services or i.service_id in services)
        ]
        return self._page("incidents", found, query, self.incident_json)

    def list_log_entries(
        self, incident_id: str, query: dict[str, list[str]]
    ) -> tuple[int, dict[str, Any]]:
        incident = self._by_id.get(incident_id)
        if incident is None:
            return 404, _error("Not Found", 2100)
        overview = query.get("is_overview", ["false"])[0] == "true"
        entries = [
            self.log_entry_json(incident, n, e)
            for n, e in enumerate(incident.log)
            if not overview or e.type in OVERVIEW_TYPES
        ]
        entries.sort(key=lambda e: e["created_at"], reverse=True)  # newest first, as PagerDuty
        return self._page("log_entries", entries, query, lambda e: e)

    def get_incident(self, incident_id: str) -> tuple[int, dict[str, Any]]:
        incident = self._by_id.get(incident_id)
        if incident is None:
            return 404, _error("Not Found", 2100)
        return 200, {"incident": self.incident_json(incident)}

    def list_services(self, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        words = query.get("query", [""])[0].lower()
        found = [(k, v) for k, v in sorted(self.services().items()) if words in v.lower()]
        return self._page("services", found, query, lambda s: self.service_json(*s))

    def get_service(self, service_id: str) -> tuple[int, dict[str, Any]]:
        name = self.services().get(service_id)
        if name is None:
            return 404, _error("Not Found", 2100)
        return 200, {"service": self.service_json(service_id, name)}

    def _page(
        self,
        name: str,
        items: list[Any],
        query: dict[str, list[str]],
        render: Callable[[Any], dict[str, Any]],
    ) -> tuple[int, dict[str, Any]]:
        """Classic pagination of ``items``, those on the page rendered as the API does."""
        try:
            limit = int(query.get("limit", ["25"])[0])
            offset = int(query.get("offset", ["0"])[0])
        except ValueError:
            return 400, _error("Invalid Input Provided", 2001, ["limit and offset are integers"])
        limit = max(1, min(limit, 100))
        if offset + limit > 10_000:
            return 400, _error("Invalid Input Provided", 2001, ["Offset must be less than 10000"])
        page = [render(item) for item in items[offset : offset + limit]]
        total = len(items) if query.get("total", ["false"])[0] == "true" else None
        return 200, {
            name: page,
            "limit": limit,
            "offset": offset,
            "more": offset + len(page) < len(items),
            "total": total,
        }

    def handle(self, method: str, target: str, headers: Any) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.requests.append(target)
            number = len(self.requests)
        if headers.get("Authorization") != f"Token token={self.token}":
            return 401, _error("Authentication failed", 2006)
        if headers.get("Accept") != ACCEPT:
            return 406, _error("Not Acceptable", 2001, [f"Accept must be {ACCEPT}"])
        if self.fail_at is not None and number == self.fail_at:
            return 500, _error("Internal Server Error", 2000)
        if number in self.rate_limit_at:
            return 429, _error("Rate Limit Exceeded", 2020)
        if method != "GET":
            return 405, _error("Method Not Allowed", 2001)
        parts = urlsplit(target)
        query = parse_qs(parts.query)
        nodes = parts.path.strip("/").split("/")
        if nodes == ["incidents"]:
            return self.list_incidents(query)
        if len(nodes) == 3 and nodes[0] == "incidents" and nodes[2] == "log_entries":
            return self.list_log_entries(nodes[1], query)
        if len(nodes) == 2 and nodes[0] == "incidents":
            return self.get_incident(nodes[1])
        if nodes == ["services"]:
            return self.list_services(query)
        if len(nodes) == 2 and nodes[0] == "services":
            return self.get_service(unquote(nodes[1]))
        return 404, _error("Not Found", 2100)


def _error(message: str, code: int, errors: list[str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"message": message, "code": code}
    if errors:
        body["errors"] = errors
    return {"error": body}


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _handler(api: FakePagerDuty) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body in two writes must not wait 40 ms

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            status, body = api.handle(self.command, self.path, self.headers)
            number = len(api.requests)
            payload = orjson.dumps(body)
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("X-Request-Id", f"req-{number}")
            if status == 429 and api.retry_after is not None:
                self.send_header("Retry-After", api.retry_after)
            self.end_headers()
            if number in api.trickle_at:
                self._trickle(payload)
            else:
                self.wfile.write(payload)

        def _trickle(self, payload: bytes) -> None:
            try:
                for start in range(0, len(payload), 100):
                    self.wfile.write(payload[start : start + 100])
                    time.sleep(0.2)
            except OSError:  # the client gave up and shut the connection
                self.close_connection = True

        do_GET = do_POST = do_PUT = do_DELETE = _serve

    return Handler


@contextmanager
def serve(api: FakePagerDuty, tls: tuple[str, str]) -> Iterator[FakePagerDuty]:
    """Run ``api`` over HTTPS (``tls``: certificate file, key file) on a free 127.0.0.1 port
    until the block ends; sets ``api.url``."""
    with serving_in_process(_handler(api), tls) as url:
        api.url = url
        yield api
