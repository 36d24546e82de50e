"""Spans from Jaeger's query API: ``/api/v3`` (Jaeger v2 and 1.25+) or the v1 ``/api`` search.

How a window is exported completely:

- Jaeger only searches *traces*: per service, "the traces with a span of this service starting in
  [min, max]", at most ``search depth`` of them. So every service is searched for the window;
  when a search returns as many traces as the depth allows, the answer may be cut short, and the
  window is halved and each half searched again, recursively, down to
  ``sources.jaeger.min_split_window`` (then it fails rather than drop traces silently).
- A search returns whole traces, including spans of other services and spans outside the window.
  Only spans whose own start lies in ``[window.start, window.end)`` are kept, so a trace that
  crosses a partition boundary is split across partitions by span start: each span lands in
  exactly one hourly partition, and a trace is reassembled by querying on ``trace_id``.
- The same trace comes back under every service it touches (and, after a split, in both halves),
  so spans are de-duplicated on ``(trace_id, span_id)`` within a window.
- With ``sources.jaeger.services`` set, only spans of those services are kept (spans of other
  services would be exported only when they share a trace with a listed one, i.e. partially).

Both wire formats map to the same rows (see ``obs_pipelines.schemas.SPANS``): v3 answers OTLP/JSON
(hex ids, integer enums; before Jaeger 1.53 a newline-delimited stream with base64 ids and enum
names), v1 answers Jaeger's UI model (tags with types, process per span, ``references``). Tags
that become columns (``span.kind``, ``otel.status_code``, ``error``, ``http.status_code`` or
``http.response.status_code``, ``peer.service``) are not repeated in ``attributes``; resource
attributes (v1: process tags) other than ``service.name`` are kept as ``resource.<key>``, and the
v3 scope and status message under the names Jaeger's v1 translation gives them
(``otel.scope.name``, ``otel.scope.version``, ``otel.status_description``), so both APIs agree.
``status_code`` is the span's status; when that is unset (always, in v1, where status travels as
tags) it follows Jaeger's translator: ``otel.status_code`` OK/ERROR, else ``error=true`` is an
error. ``is_error`` is also true for an ``error=true`` or ``otel.status_code=ERROR`` tag beside an
explicit status. Span events (v1 logs) and links are not exported.

What is not Jaeger's answer is one line, never a traceback: a page that is not JSON (an auth
proxy's login page), a v1 span without the ``traceID``, ``spanID`` or ``startTime`` Jaeger always
sends, or a tag without its ``key``. An answer cut short (the connection closed mid-body, or JSON
that ends early) is retried with backoff, as the session retries failures before the headers.
A Jaeger that lists no services (a new one, or not the one receiving the traces) exports nothing,
with a warning: ``obs doctor`` warns about it too.
"""

import base64
import binascii
import logging
import math
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, NoReturn, TypeVar

import orjson
import pyarrow as pa
import requests

from obs_pipelines.config import JaegerSourceConfig
from obs_pipelines.errors import SourceError
from obs_pipelines.schemas import SPANS
from obs_pipelines.sources.http import (
    DeadlineExceeded,
    bounded_request,
    cut_mid_answer,
    failure_reason,
    http_session,
    json_cut_short,
    retry_policy,
    scrub,
    server_words,
    tls_failed,
)
from obs_pipelines.sources.prometheus_decode import not_json_api
from obs_pipelines.windows import TimeWindow

log = logging.getLogger(__name__)
T = TypeVar("T")

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)

# OTLP SpanKind: integers since Jaeger 1.54, enum names in the old grpc-gateway stream.
OTLP_KINDS = {
    0: "unspecified",
    1: "internal",
    2: "server",
    3: "client",
    4: "producer",
    5: "consumer",
}
OTLP_STATUSES = {0: "unset", 1: "ok", 2: "error"}
V1_KINDS = frozenset(("server", "client", "producer", "consumer", "internal"))
V1_STATUSES = {"OK": "ok", "ERROR": "error", "UNSET": "unset"}
HEX = re.compile(r"[0-9a-fA-F]*")
HTTP_STATUS_KEYS = ("http.response.status_code", "http.status_code")


class SpanRow(NamedTuple):
    """One ``spans`` row, in schema column order (times in microseconds)."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    service: str | None
    operation: str | None
    start_us: int
    duration_us: int | None
    kind: str
    status_code: str
    is_error: bool
    http_status: int | None
    peer_service: str | None
    attributes: str


class SearchResult(NamedTuple):
    """What one search answered: how many traces (to compare with the depth) and their spans."""

    trace_count: int
    spans: list[SpanRow]


class JaegerSpans:
    """``spans`` for a window from a Jaeger query service (see the module docstring)."""

    name = "jaeger"
    dataset = "spans"

    def __init__(self, config: JaegerSourceConfig) -> None:
        self.config = config
        self.url = scrub(config.url)  # for messages; requests go to config.url
        self.requests_made = 0
        self.api: str | None = None if config.api == "auto" else config.api
        self._session = _session(config)

    def read(self, window: TimeWindow) -> Iterator[pa.Table]:
        """Every span starting in ``[window.start, window.end)``, once; no table if there is none."""
        discovered = self._discover_services()
        if not discovered and not self.config.services:
            # A new Jaeger lists none until its first trace: not refused, but not silent either.
            log.warning(
                "Jaeger at %s lists no services, so %s has no spans; if it should, check that "
                "sources.jaeger.url is the Jaeger that receives the traces",
                self.url,
                window,
            )
        services = sorted(self.config.services or discovered)
        keep_services = set(self.config.services) if self.config.services else None
        start_us, end_us = _micros(window.start), _micros(window.end)
        seen: set[tuple[str, str]] = set()
        for service in services:
            for result in self._search_all(service, start_us, end_us):
                rows = []
                for row in result.spans:
                    if not start_us <= row.start_us < end_us:
                        continue
                    if keep_services is not None and row.service not in keep_services:
                        continue
                    key = (row.trace_id, row.span_id)
                    if key in seen:
                        continue
                    seen.add(key)
                    rows.append(row)
                if rows:
                    yield spans_table(rows)

    # -- discovery -------------------------------------------------------------------------

    def probe(self) -> list[str]:
        """The services Jaeger lists, asked as :meth:`read` asks (settling ``api: auto``), so
        ``obs doctor`` passes exactly the servers ingest can read."""
        return self._discover_services()

    def _discover_services(self) -> list[str]:
        """The services Jaeger knows, settling ``api: auto`` on the way (one request or two)."""
        if self.api in (None, "v3"):
            # Jaeger before 1.25 answers an unknown path 404, or with its UI's page when it
            # serves the UI: either way, auto then tries the v1 API.
            response, body = self._get("/api/v3/services", {}, _with_json)
            if response.status_code == 200 and isinstance(body, dict):
                self.api = "v3"
                return [str(s) for s in body.get("services") or []]
            if self.api == "v3":
                if response.status_code == 404 or response.status_code == 200:
                    raise SourceError(
                        f"Jaeger at {self.url} does not serve /api/v3 (HTTP {response.status_code}"
                        " on /api/v3/services; it needs Jaeger 1.25 or later); set"
                        " sources.jaeger.api to v1 or auto, or check sources.jaeger.url"
                    )
                self._raise_for(response, "/api/v3/services")
            elif response.status_code not in (200, 404):
                self._raise_for(response, "/api/v3/services")
        response, body = self._get("/api/services", {}, _with_json)
        if response.status_code == 200 and isinstance(body, dict) and "data" in body:
            self.api = "v1"
            return [str(s) for s in body.get("data") or []]
        if response.status_code == 200 and self.api != "v1":
            raise self._not_json(response, "/api/services")
        if response.status_code in (200, 404):
            if self.api == "v1":
                raise SourceError(
                    f"Jaeger at {self.url} has no v1 search API (HTTP {response.status_code} on"
                    " /api/services; Jaeger removed it after v2.20); set sources.jaeger.api to"
                    " v3 or auto"
                )
            raise SourceError(
                f"{self.url} serves neither Jaeger's /api/v3 nor its v1 /api search (HTTP 404 on"
                " /api/v3/services and /api/services); sources.jaeger.url must be the Jaeger"
                " query base URL (port 16686)"
            )
        self._raise_for(response, "/api/services")

    # -- searching -------------------------------------------------------------------------

    def _search_all(self, service: str, start_us: int, end_us: int) -> Iterator[SearchResult]:
        """Search ``[start, end)``, halving any piece whose answer reached the search depth."""
        depth = self.config.search_depth
        min_split_us = self.config.min_split_window // MICROSECOND
        pending = [(start_us, end_us)]
        while pending:
            piece_start, piece_end = pending.pop(0)
            result = self._search(service, piece_start, piece_end)
            if result.trace_count < depth:
                yield result
                continue
            width = piece_end - piece_start
            if width <= min_split_us or width < 2:
                raise SourceError(
                    f"Jaeger returned the full search depth ({depth} traces) for service"
                    f" '{service}' in only {timedelta(microseconds=width)} from"
                    f" {_from_micros(piece_start).isoformat()}, so traces would be lost; raise"
                    " sources.jaeger.search_depth or lower sources.jaeger.min_split_window"
                )
            middle = piece_start + width // 2
            pending[0:0] = [(piece_start, middle), (middle, piece_end)]

    def _search(self, service: str, start_us: int, end_us: int) -> SearchResult:
        if self.api == "v3":
            return self._search_v3(service, start_us, end_us)
        return self._search_v1(service, start_us, end_us)

    def _search_v3(self, service: str, start_us: int, end_us: int) -> SearchResult:
        # The bounds are inclusive; end - 1 ns asks for exactly [start, end) at any precision.
        # Depth goes under both names: query.num_traces (<= v2.18) and query.search_depth (v2.19+).
        params = {
            "query.service_name": service,
            "query.start_time_min": _rfc3339_nano(start_us * 1000),
            "query.start_time_max": _rfc3339_nano(end_us * 1000 - 1),
            "query.num_traces": str(self.config.search_depth),
            "query.search_depth": str(self.config.search_depth),
        }
        return self._get("/api/v3/traces", params, lambda answer: self._v3_result(answer, service))

    def _v3_result(self, response: requests.Response, service: str) -> SearchResult:
        if response.status_code == 404:
            body = _json_or_none(response)
            if isinstance(body, dict) and isinstance(body.get("error"), dict):
                return SearchResult(0, [])  # "No traces found" (v2.2+, 1.65+)
            raise SourceError(
                f"Jaeger at {self.url} has no /api/v3/traces route (HTTP 404); set"
                " sources.jaeger.api to v1 or auto, or check sources.jaeger.url"
            )
        if response.status_code != 200:
            self._raise_for(response, "/api/v3/traces", service)
        try:
            return decode_v3(response.content)
        except _StreamError as exc:
            raise SourceError(
                f"Jaeger at {self.url} failed the search for service '{service}' ({server_words(str(exc))});"
                " rerun once it is healthy"
            ) from None
        except _NotJaegersModel as exc:
            raise self._not_jaegers_model(service, exc) from None
        except _NotJaeger:
            raise self._not_json(response, "/api/v3/traces") from None

    def _search_v1(self, service: str, start_us: int, end_us: int) -> SearchResult:
        # v1 takes microseconds, inclusive; asking to `end` itself (rows at `end` are dropped
        # afterwards) keeps spans a nanosecond-precise store holds just before `end`.
        params = {
            "service": service,
            "start": str(start_us),
            "end": str(end_us),
            "limit": str(self.config.search_depth),
        }
        return self._get("/api/traces", params, lambda answer: self._v1_result(answer, service))

    def _v1_result(self, response: requests.Response, service: str) -> SearchResult:
        if response.status_code == 404:
            raise SourceError(
                f"Jaeger at {self.url} has no v1 search API (HTTP 404 on /api/traces; Jaeger"
                " removed it after v2.20); set sources.jaeger.api to v3 or auto"
            )
        if response.status_code != 200:
            self._raise_for(response, "/api/traces", service)
        body = _json_of(response)
        if not isinstance(body, dict):
            raise self._not_json(response, "/api/traces")
        if body.get("errors"):
            raise SourceError(
                f"Jaeger at {self.url} reported an error searching service '{service}'"
                f" ({_v1_error_text(body)}); rerun once it is healthy"
            )
        try:
            return decode_v1(body)
        except _NotJaeger as exc:
            raise self._not_jaegers_model(service, exc) from None

    def _not_jaegers_model(self, service: str, exc: Exception) -> SourceError:
        return SourceError(
            f"Jaeger at {self.url} answered the search for service '{service}' with what"
            f" Jaeger never sends ({exc}); check sources.jaeger.url points at the Jaeger"
            " query service itself, not at something that rewrites its answers"
        )

    # -- HTTP ------------------------------------------------------------------------------

    def _get(self, path: str, params: dict[str, str], read: Callable[[requests.Response], T]) -> T:
        """GET ``path`` and ``read`` the answer. The session retries failures before the
        headers; an answer cut short after them (the connection closed mid-body, or a 200 whose
        JSON ends early) is retried here with the same backoff, then is one line."""
        retries = self.config.retries
        for attempt in range(retries + 1):
            try:
                return read(self._request(path, params))
            except _CutShort as cut:
                if attempt == retries:
                    raise SourceError(
                        f"Jaeger at {self.url} cut its answer to {path} short ({cut}), still"
                        f" after {retries} {'retry' if retries == 1 else 'retries'}; check the"
                        " query service's health and any proxy in between, then rerun"
                    ) from None
                time.sleep(self.config.retry_backoff_seconds * 2**attempt)
        raise AssertionError("unreachable")

    def _request(self, path: str, params: dict[str, str]) -> requests.Response:
        self.requests_made += 1
        seconds = self.config.timeout.total_seconds()
        try:
            return bounded_request(
                self._session, "GET", f"{self.config.url}{path}", seconds, params=params
            )
        except DeadlineExceeded:
            raise self._too_slow(path) from None
        except requests.exceptions.SSLError as exc:
            raise SourceError(tls_failed("Jaeger", self.url, "sources.jaeger", exc)) from None
        except requests.exceptions.RetryError as exc:
            raise SourceError(
                f"Jaeger at {self.url} kept failing ({failure_reason(exc)}) after"
                f" {self.config.retries} retries; check the server's health, then rerun"
            ) from None
        except requests.exceptions.RequestException as exc:
            if cut_mid_answer(exc):
                raise _CutShort("the connection closed before the body was complete") from None
            if "timed out" in str(exc).lower():
                raise self._too_slow(path) from None
            raise SourceError(
                f"Jaeger at {self.url} is unreachable ({failure_reason(exc)}); check"
                " sources.jaeger.url and that the query service is running"
            ) from None

    def _not_json(self, response: requests.Response, path: str) -> SourceError:
        """A 200 that is not Jaeger's JSON: an auth proxy's login page, or another server."""
        kind = response.headers.get("Content-Type")
        where = f"Jaeger at {self.url}{path}"
        return SourceError(
            not_json_api(where, "Jaeger query", "sources.jaeger", response.content, kind)
            or f"{where} answered JSON that is not a Jaeger answer; check sources.jaeger.url"
            " points at the Jaeger query service"
        )

    def _too_slow(self, path: str) -> SourceError:
        return SourceError(
            f"Jaeger at {self.url} did not finish answering {path} within"
            f" {self.config.timeout.total_seconds():g}s (sources.jaeger.timeout); check the"
            " server's health or raise the timeout (or lower sources.jaeger.search_depth)"
        )

    def _raise_for(self, response: requests.Response, path: str, service: str = "") -> NoReturn:
        status, message = response.status_code, _server_message(response)
        subject = f" for service '{service}'" if service else ""
        if status in (401, 403):
            raise SourceError(
                f"Jaeger at {self.url} refused the credentials (HTTP {status}); check"
                " sources.jaeger.auth and the variables it names"
            )
        if status == 400:
            raise SourceError(
                f"Jaeger refused {path}{subject} (HTTP 400: {message}); check sources.jaeger.api"
                " and sources.jaeger.services"
            )
        if status >= 500 and "search depth" in message:
            raise SourceError(
                f"Jaeger at {self.url} refused the search depth (HTTP {status}: {message});"
                " lower sources.jaeger.search_depth to what its storage allows"
            )
        if status >= 500:
            raise SourceError(
                f"Jaeger at {self.url} answered {path}{subject} with HTTP {status} ({message})"
                f" after {self.config.retries} retries; check the server's health, then rerun"
            )
        raise SourceError(
            f"Jaeger at {self.url} answered {path} with HTTP {status} ({message});"
            " check sources.jaeger.url"
        )


# -- decoding: v3 (OTLP/JSON) ----------------------------------------------------------------


class _StreamError(Exception):
    """An ``{"error": ...}`` object inside a 200 answer (the old grpc-gateway stream)."""


class _CutShort(Exception):
    """An answer that ended before its body was complete; the request is retried."""


class _NotJaeger(Exception):
    """An answer that is not what Jaeger sends; the message says what is off."""


class _NotJaegersModel(_NotJaeger):
    """JSON of the right shape holding a span Jaeger's model never has (no id, no start)."""


def decode_v3(body: bytes) -> SearchResult:
    """A v3 search answer: one ``{"result": ...}`` object, or (before 1.53) one per line."""
    messages = _v3_messages(body)
    trace_ids: set[str] = set()
    rows: list[SpanRow] = []
    for message in messages:
        if not isinstance(message, dict):
            raise _NotJaeger(f"a JSON {type(message).__name__} where a result object belongs")
        if isinstance(message.get("error"), dict):
            raise _StreamError(str(message["error"].get("message", message["error"]))[:300])
        for resource_spans in (message.get("result") or {}).get("resourceSpans") or []:
            rows.extend(_v3_resource_rows(resource_spans))
    trace_ids.update(row.trace_id for row in rows)
    return SearchResult(len(trace_ids), rows)


def _v3_messages(body: bytes) -> list[Any]:
    """The JSON values of a v3 answer: one, or one per line of the old stream. Only the last can
    end early (``_CutShort``); any other that does not parse is not Jaeger's (``_NotJaeger``)."""
    if not body.strip():
        return []  # an empty search on the old grpc-gateway
    try:
        return [orjson.loads(body)]
    except orjson.JSONDecodeError:
        pass
    lines = [line for line in body.splitlines() if line.strip()]
    messages = []
    for number, line in enumerate(lines, 1):
        try:
            messages.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            if number == len(lines) and json_cut_short(line):
                raise _CutShort(f"its JSON ends after {len(body)} bytes") from None
            raise _NotJaeger("something that is not JSON") from None
    return messages


def _v3_resource_rows(resource_spans: dict[str, Any]) -> Iterator[SpanRow]:
    resource = _otlp_attributes((resource_spans.get("resource") or {}).get("attributes"))
    service = resource.pop("service.name", None)
    scopes = resource_spans.get("scopeSpans") or resource_spans.get("instrumentationLibrarySpans")
    for scope_spans in scopes or []:
        scope = scope_spans.get("scope") or scope_spans.get("instrumentationLibrary") or {}
        for span in scope_spans.get("spans") or []:
            yield _v3_row(span, service, resource, scope)


def _v3_row(
    span: dict[str, Any], service: Any, resource: dict[str, Any], scope: dict[str, Any]
) -> SpanRow:
    attributes = _otlp_attributes(span.get("attributes"))
    if scope.get("name"):
        attributes["otel.scope.name"] = scope["name"]
    if scope.get("version"):
        attributes["otel.scope.version"] = scope["version"]
    status = span.get("status") or {}
    if status.get("message"):
        attributes["otel.status_description"] = status["message"]
    named = f"span {span.get('spanId') or '(no id)'} of trace {span.get('traceId') or '(no id)'}"
    for field in ("traceId", "spanId", "startTimeUnixNano"):
        # OTLP requires them (JSON leaves a zero out): a span without one cannot be kept or placed
        # in an hour (a missing start used to drop the span unseen, a missing trace id to merge
        # traces under id 0).
        if not str(span.get(field) or "").strip("0" if field == "startTimeUnixNano" else ""):
            raise _NotJaegersModel(f'{named} without a "{field}"')
    start_ns = int(span["startTimeUnixNano"])
    end_ns = int(span.get("endTimeUnixNano") or 0)
    return _row(
        trace_id=_hex_id(span.get("traceId"), 32),
        span_id=_hex_id(span.get("spanId"), 16),
        parent_span_id=_parent_id(span.get("parentSpanId")),
        service=service,
        operation=span.get("name"),
        start_us=start_ns // 1000,
        duration_us=(end_ns - start_ns) // 1000 if end_ns else None,
        kind=_otlp_enum(span.get("kind", 0), OTLP_KINDS, "SPAN_KIND_"),
        status=_otlp_enum(status.get("code", 0), OTLP_STATUSES, "STATUS_CODE_"),
        attributes=attributes,
        resource=resource,
    )


def _otlp_enum(value: Any, names: dict[int, str], prefix: str) -> str:
    if isinstance(value, str) and not value.isdigit():
        return value.removeprefix(prefix).lower()  # SPAN_KIND_SERVER, STATUS_CODE_ERROR
    return names.get(int(value), "unspecified")


def _otlp_attributes(pairs: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {pair["key"]: _any_value(pair.get("value") or {}) for pair in pairs or []}


def _any_value(value: dict[str, Any]) -> Any:
    """An OTLP AnyValue as a plain JSON value (ints arrive as strings; bytes stay base64)."""
    if "stringValue" in value:
        return value["stringValue"]
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return _float(value["doubleValue"])
    if "arrayValue" in value:
        return [_any_value(v) for v in (value["arrayValue"] or {}).get("values") or []]
    if "kvlistValue" in value:
        return _otlp_attributes((value["kvlistValue"] or {}).get("values"))
    if "bytesValue" in value:
        return value["bytesValue"]
    return None


def _float(value: Any) -> float | str:
    number = float(value)
    return number if math.isfinite(number) else str(value)  # JSON has no NaN or Infinity


# -- decoding: v1 (Jaeger UI model) ---------------------------------------------------------


def decode_v1(body: dict[str, Any]) -> SearchResult:
    """A v1 ``/api/traces`` answer: ``data`` is a list of traces with their processes."""
    traces = body.get("data") or []
    rows: list[SpanRow] = []
    for trace in traces:
        processes = trace.get("processes") or {}
        for span in trace.get("spans") or []:
            process = processes.get(span.get("processID")) or span.get("process") or {}
            rows.append(_v1_row(span, process))
    return SearchResult(len({_hex_id(t.get("traceID"), 32) for t in traces}), rows)


def _v1_row(span: dict[str, Any], process: dict[str, Any]) -> SpanRow:
    named = f"span {span.get('spanID', '(no id)')} of trace {span.get('traceID', '(no id)')}"
    trace_id = _hex_id(_v1_field(span, "traceID", named), 32)
    span_id = _hex_id(_v1_field(span, "spanID", named), 16)
    start = _v1_field(span, "startTime", named)
    if isinstance(start, bool) or not str(start).isdigit():  # microseconds, a uint64
        raise _NotJaegersModel(f'{named} with the "startTime" {server_words(repr(start), 40)}')
    tags = _v1_tags(span.get("tags"), named)
    resource = _v1_tags(process.get("tags"), f"the process of {named}")
    kind = str(tags.pop("span.kind", "")).lower()
    return _row(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=_v1_parent(span.get("references") or [], trace_id),
        service=process.get("serviceName"),
        operation=span.get("operationName"),
        start_us=int(start),
        duration_us=int(span["duration"]) if span.get("duration") is not None else None,
        kind=kind if kind in V1_KINDS else "unspecified",
        status="unset",  # v1 carries status in tags only
        attributes=tags,
        resource=resource,
    )


def _v1_parent(references: list[dict[str, Any]], trace_id: str) -> str | None:
    """The CHILD_OF reference in the same trace, else FOLLOWS_FROM (Jaeger's ParentSpanID)."""
    follows_from = None
    for reference in references:
        if _hex_id(reference.get("traceID"), 32) != trace_id:
            continue
        if reference.get("refType") == "CHILD_OF":
            return _parent_id(reference.get("spanID"))
        if follows_from is None and reference.get("refType") == "FOLLOWS_FROM":
            follows_from = _parent_id(reference.get("spanID"))
    return follows_from


def _v1_field(span: dict[str, Any], field: str, named: str) -> Any:
    """A field Jaeger's v1 model always sends (no ``omitempty``): a span without it cannot be
    placed (no start) or told apart (no id), and skipping it would hide a server that is not
    Jaeger, so the answer is refused."""
    value = span.get(field)
    if value is None:
        raise _NotJaegersModel(f'{named} without a "{field}"')
    return value


def _v1_tags(tags: list[dict[str, Any]] | None, named: str) -> dict[str, Any]:
    """Typed v1 tags as plain values; a tag without its key has no name to be kept under."""
    pairs = {}
    for tag in tags or []:
        if tag.get("key") is None:
            raise _NotJaegersModel(f'a tag without a "key" on {named}')
        pairs[tag["key"]] = _v1_value(tag.get("type"), tag.get("value"))
    return pairs


def _v1_value(kind: Any, value: Any) -> Any:
    """A typed v1 tag as a plain JSON value (large int64s arrive as strings; binary as base64)."""
    if value is None:
        return None
    if kind == "int64":
        return int(value)
    if kind == "float64":
        return _float(value)
    if kind == "bool":
        return value if isinstance(value, bool) else str(value).lower() == "true"
    return value


# -- shared mapping --------------------------------------------------------------------------


def _row(
    *,
    trace_id: str,
    span_id: str,
    parent_span_id: str | None,
    service: Any,
    operation: Any,
    start_us: int,
    duration_us: int | None,
    kind: str,
    status: str,
    attributes: dict[str, Any],
    resource: dict[str, Any],
) -> SpanRow:
    """Promote the tags that have columns, fold resource attributes in, and freeze the JSON."""
    otel_status = attributes.pop("otel.status_code", None)
    error_tag = attributes.get("error")
    if isinstance(error_tag, bool) or str(error_tag).lower() in ("true", "false"):
        attributes.pop("error")
    if status == "unset":  # Jaeger's own order: otel.status_code, then the error tag
        tagged = V1_STATUSES.get(otel_status.upper()) if isinstance(otel_status, str) else None
        status = tagged if tagged in ("ok", "error") else "error" if _truthy(error_tag) else "unset"
    is_error = (
        status == "error"
        or _truthy(error_tag)
        or (isinstance(otel_status, str) and otel_status.upper() == "ERROR")
    )
    http_status = None
    for key in HTTP_STATUS_KEYS:
        if key in attributes and (code := _http_status(attributes[key])) is not None:
            http_status = code
            attributes.pop(key)
            break
    peer_service = attributes.pop("peer.service", None)
    for key, value in resource.items():
        if key != "service.name":
            attributes[f"resource.{key}"] = value
    return SpanRow(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent_span_id,
        service=None if service is None else str(service),
        operation=None if operation is None else str(operation),
        start_us=start_us,
        duration_us=duration_us,
        kind=kind if kind in OTLP_KINDS.values() else "unspecified",
        status_code=status if status in OTLP_STATUSES.values() else "unset",
        is_error=is_error,
        http_status=http_status,
        peer_service=None if peer_service is None else str(peer_service),
        attributes=orjson.dumps(attributes, option=orjson.OPT_SORT_KEYS).decode(),
    )


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _http_status(value: Any) -> int | None:
    try:
        code = int(value)
    except (TypeError, ValueError):
        return None
    return code if 0 <= code < 2**31 and not isinstance(value, bool) else None


def _hex_id(raw: Any, width: int) -> str:
    """Lower-case hex, left-padded (64-bit v1 trace ids are 16 chars); base64 ids decoded."""
    text = str(raw or "")
    if not HEX.fullmatch(text):
        try:
            text = base64.b64decode(text, validate=True).hex()
        except (binascii.Error, ValueError):
            raise SourceError(
                f"Jaeger sent the id '{text[:64]}', which is neither hex nor base64; "
                "report it with the Jaeger version"
            ) from None
    return text.lower().rjust(width, "0")


def _parent_id(raw: Any) -> str | None:
    """A parent span id, or None for a root (absent, empty, or all zeros on the wire)."""
    if not raw:
        return None
    parent = _hex_id(raw, 16)
    return None if parent.strip("0") == "" else parent


def spans_table(rows: list[SpanRow]) -> pa.Table:
    """Rows to an Arrow table in the SPANS schema, one column at a time."""
    columns = list(zip(*rows, strict=True)) if rows else [[] for _ in SPANS]
    arrays = [
        pa.array(column, type=field.type) for column, field in zip(columns, SPANS, strict=True)
    ]
    return pa.Table.from_arrays(arrays, schema=SPANS)


# -- helpers ---------------------------------------------------------------------------------


def _session(config: JaegerSourceConfig) -> requests.Session:
    """A session that retries connection failures and transient statuses of its GETs with
    backoff, handing back the last answer after the retries, so its message can be quoted."""
    retry = retry_policy(
        config.retries, config.retry_backoff_seconds, methods=("GET",), quote_last_answer=True
    )
    return http_session(
        "sources.jaeger",
        config.auth,
        config.tls,
        retry=retry,
        headers={"Accept": "application/json"},
    )


def _micros(moment: datetime) -> int:
    return (moment - EPOCH) // MICROSECOND


def _from_micros(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


def _rfc3339_nano(nanos: int) -> str:
    """RFC3339Nano in UTC, as Go's time.Parse(time.RFC3339Nano) reads it."""
    seconds, fraction = divmod(nanos, 1_000_000_000)
    stamp = (EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{fraction:09d}Z"


def _json_or_none(response: requests.Response) -> Any:
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None


def _json_of(response: requests.Response) -> Any:
    """The answer's JSON, None when it is not JSON; a 200 whose JSON ends early is an answer
    cut short, to be retried."""
    body = _json_or_none(response)
    if body is None and response.status_code == 200 and json_cut_short(response.content):
        raise _CutShort(f"its JSON ends after {len(response.content)} bytes")
    return body


def _with_json(response: requests.Response) -> tuple[requests.Response, Any]:
    """The answer and its JSON, for discovery, which judges both together."""
    return response, _json_of(response)


def _server_message(response: requests.Response) -> str:
    """The server's own words: v3 ``error.message``, v1 ``errors[].msg``, else the text (one
    line, without credentials)."""
    body = _json_or_none(response)
    if isinstance(body, dict):
        if isinstance(body.get("error"), dict) and body["error"].get("message"):
            return server_words(str(body["error"]["message"]))
        if body.get("errors"):
            return _v1_error_text(body)
    text = response.text.strip().splitlines()
    return server_words(text[0] if text else "") or response.reason or "no message"


def _v1_error_text(body: dict[str, Any]) -> str:
    errors = body.get("errors") or []
    first = errors[0] if isinstance(errors[0], dict) else {"msg": errors[0]}
    return server_words(str(first.get("msg", first)))
