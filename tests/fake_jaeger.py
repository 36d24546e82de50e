"""A Jaeger query service on 127.0.0.1 that answers as Jaeger does (Jaeger cannot run here).

It holds OTLP-shaped spans and serves them over the wire formats in
``/work/shared/wire-fixtures/jaeger-v3`` and ``/work/shared/wire-fixtures/jaeger``:

- ``/api/v3`` as Jaeger v2 serves it: one compact OTLP/JSON object per answer, hex ids, integer
  enums, times and ints as decimal strings, zero fields left out, ``404 No traces found`` for an
  empty search, 400 for a missing or malformed time bound, the 500 of the memory store for an
  out-of-range search depth, ``text/plain`` error bodies with a trailing newline (Go http.Error);
- ``/api/v3`` as the grpc-gateway of Jaeger 1.25-1.52 served it (mode ``legacy``): a chunked
  stream of one ``{"result": ...}`` line per trace, base64 ids, enum names,
  ``instrumentationLibrarySpans``, and an empty 200 for an empty search;
- the v1 ``/api`` search (``structuredResponse`` envelope; 64-bit trace ids as 16 hex chars;
  OTLP translated to Jaeger tags the way Jaeger does: ``span.kind``, ``otel.status_code``,
  ``error``, ``otel.status_description``, ``otel.scope.*``, typed tags, processes ``p1..pN``).

A search returns the ``depth`` most recent traces (by trace start) having a span of the service
whose start lies in ``[min, max]``, both bounds inclusive, as Jaeger's stores do
(``internal/storage/v2/memory/tenant.go`` ``validSpan``; Elasticsearch orders trace ids by start
time, newest first). Modes: ``both`` (Jaeger <= v2.20), ``v3`` (v1 search removed, after v2.20),
``v1`` (before 1.25: no ``/api/v3``) and ``legacy`` (1.25-1.52: v1 plus the streaming v3).

Misbehaviour around it, for the tests of what is not Jaeger's answer: search answers cut short
(:meth:`FakeJaeger.cut_next_searches`), an auth proxy's login page on some paths
(``login_page_paths``), and v1 spans edited away from Jaeger's model (``rewrite_v1_span``).
"""

import base64
import calendar
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import orjson

from tests.servers import serving_in_process

Mode = Literal["both", "v3", "v1", "legacy"]

KIND_NAMES = {1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
LEGACY_KINDS = {1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
LEGACY_STATUSES = {1: "STATUS_CODE_OK", 2: "STATUS_CODE_ERROR"}
JS_SAFE_INT = 2**53 - 1
RFC3339_NANO = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$"
)
GO_LAYOUT = "2006-01-02T15:04:05.999999999Z07:00"
NOT_FOUND_PAGE = b"404 page not found\n"
LOGIN_PAGE = b"<!doctype html><html><head><title>Sign in</title></head><body>Sign in</body></html>"
DEFAULT_SEARCH_DEPTH = 100  # v2.19+ gateway default; v1 defaultQueryLimit is also 100
V1_LOOKBACK_NS = 2 * 24 * 3600 * 10**9


@dataclass
class FakeSpan:
    """One span as an OTLP store holds it. Attribute values are plain Python values: str, bool,
    int, float, bytes, list, dict (OTLP string/bool/int/double/bytes/array/kvlist)."""

    trace_id: str  # 32 lower-case hex
    span_id: str  # 16 lower-case hex
    service: str | None
    name: str
    start_ns: int
    end_ns: int
    parent_span_id: str | None = None
    kind: int = 0  # OTLP SpanKind: 0 unspecified, 1 internal, 2 server, 3 client, ...
    status_code: int = 0  # 0 unset, 1 ok, 2 error
    status_message: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)
    resource: dict[str, Any] = field(default_factory=dict)  # besides service.name
    scope_name: str = ""
    scope_version: str = ""
    links: list[tuple[str, str]] = field(default_factory=list)  # (trace_id, span_id)


class FakeJaeger:
    """The server's state: spans, mode, and knobs tests turn (failures, request log)."""

    def __init__(self, spans: list[FakeSpan], mode: Mode = "both", max_traces: int = 100_000):
        self.mode = mode
        self.max_traces = max_traces
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.fail_status: int | None = None  # answer every request with this status
        # A storage that cannot serve a search answers 400 with its reason (Jaeger HEAD does).
        self.storage_refuses: str | None = None
        # Paths an auth proxy in front answers with its login page (200, text/html).
        self.login_page_paths: set[str] = set()
        # Applied to every v1 span before it is sent (a server that is not quite Jaeger).
        self.rewrite_v1_span: Callable[[dict[str, Any]], None] | None = None
        self._cuts: list[str] = []
        self._lock = threading.Lock()
        self.traces: dict[str, list[FakeSpan]] = {}
        for span in spans:
            self.traces.setdefault(span.trace_id, []).append(span)
        self.url = ""

    def services(self) -> list[str]:
        return sorted({s.service for spans in self.traces.values() for s in spans if s.service})

    def find(self, service: str, min_ns: int, max_ns: int, depth: int) -> list[list[FakeSpan]]:
        """The ``depth`` most recent matching traces, newest trace start first."""
        matching = [
            spans
            for spans in self.traces.values()
            if any(
                (not service or s.service == service) and min_ns <= s.start_ns <= max_ns
                for s in spans
            )
        ]
        matching.sort(key=lambda spans: (min(s.start_ns for s in spans), spans[0].trace_id))
        matching.reverse()
        return matching[:depth]

    def trace(self, raw_id: str) -> list[FakeSpan] | None:
        if not raw_id or len(raw_id) > 32 or not re.fullmatch(r"[0-9a-fA-F]+", raw_id):
            return None
        return self.traces.get(raw_id.lower().rjust(32, "0"))

    def log(self, path: str, params: dict[str, str]) -> None:
        with self._lock:
            self.requests.append((path, params))

    def searches(self) -> list[dict[str, str]]:
        return [p for path, p in self.requests if path in ("/api/v3/traces", "/api/traces")]

    def cut_next_searches(self, how: str, times: int = 1) -> None:
        """Cut the next ``times`` search answers (v1, or v3 as Jaeger v2 sends it) short, as a
        network blip or a proxy does: "reset" sends the headers and half the body, then closes
        the connection; "truncated" sends half the body with a Content-Length to match."""
        with self._lock:
            self._cuts += [how] * times

    def take_cut(self) -> str | None:
        with self._lock:
            return self._cuts.pop(0) if self._cuts else None


@contextmanager
def serve(
    spans: list[FakeSpan], mode: Mode = "both", max_traces: int = 100_000
) -> Iterator[FakeJaeger]:
    """Run a fake Jaeger on a free port for the duration of the block."""
    state = FakeJaeger(spans, mode, max_traces)
    handler = type("Handler", (_Handler,), {"state": state})
    with serving_in_process(handler) as url:
        state.url = url
        yield state


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes
    state: FakeJaeger

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        params = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        path = parts.path
        self.state.log(path, params)
        if self.state.fail_status is not None:
            self._error_text(self.state.fail_status, b"upstream unavailable\n")
            return
        if path in self.state.login_page_paths:
            self._send(200, "text/html; charset=utf-8", LOGIN_PAGE)
            return
        mode = self.state.mode
        has_v3 = mode in ("both", "v3", "legacy")
        has_v1 = mode in ("both", "v1", "legacy")
        if has_v3 and path == "/api/v3/services":
            self._json(200, {"services": self.state.services()})
        elif has_v3 and path == "/api/v3/operations":
            self._v3_operations(params)
        elif has_v3 and path == "/api/v3/traces":
            self._v3_search(params)
        elif has_v3 and path.startswith("/api/v3/traces/"):
            self._v3_get(path.removeprefix("/api/v3/traces/"))
        elif has_v1 and path == "/api/services":
            services = self.state.services() or None  # Go's nil slice: "data": null
            self._json(200, _envelope(services, total=len(services or [])))
        elif has_v1 and path == "/api/traces":
            self._v1_search(params)
        elif path.startswith("/api/traces/"):  # get-by-id survives in every v1-era server
            self._v1_get(path.removeprefix("/api/traces/"))
        else:
            self._error_text(404, NOT_FOUND_PAGE)

    # -- v3 ----------------------------------------------------------------------------------

    def _v3_operations(self, params: dict[str, str]) -> None:
        service = params.get("service", "")
        kinds = params.get("spanKind") or params.get("span_kind") or ""
        seen = {
            (s.name, KIND_NAMES.get(s.kind, "internal"))
            for spans in self.state.traces.values()
            for s in spans
            if s.service == service
        }
        operations = [
            {"name": n, "spanKind": k} for n, k in sorted(seen) if not kinds or k == kinds
        ]
        self._json(200, {"operations": operations})

    def _v3_search(self, params: dict[str, str]) -> None:
        legacy = self.state.mode == "legacy"
        service = _param(params, "query.serviceName", "query.service_name")[0]
        (min_text, min_name), (max_text, max_name) = (
            _param(params, "query.startTimeMin", "query.start_time_min"),
            _param(params, "query.startTimeMax", "query.start_time_max"),
        )
        if not min_text or not max_text:
            self._v3_error(400, "query.startTimeMin and query.startTimeMax are required")
            return
        try:
            min_ns = parse_rfc3339_nano(min_text, min_name)
            max_ns = parse_rfc3339_nano(max_text, max_name)
        except ValueError as exc:
            self._v3_error(400, str(exc))
            return
        if max_ns < min_ns:
            self._v3_error(400, "query.startTimeMin must be before query.startTimeMax")
            return
        depth_text, depth_name = _param(params, "query.searchDepth", "query.search_depth")
        if not depth_text:
            depth_text, depth_name = params.get("query.num_traces", ""), "query.num_traces"
        depth = DEFAULT_SEARCH_DEPTH
        if depth_text:
            if not depth_text.isdigit():
                self._v3_error(
                    400,
                    f"malformed parameter {depth_name}: strconv.ParseUint: parsing "
                    f'"{depth_text}": invalid syntax',
                )
                return
            depth = int(depth_text)
        if depth <= 0 or depth > self.state.max_traces:
            self._v3_error(500, "search depth must be greater than 0 and less than max traces")
            return
        if self.state.storage_refuses:
            self._v3_error(400, self.state.storage_refuses)
            return
        traces = self.state.find(service, min_ns, max_ns, depth)
        if legacy:
            self._chunked([_compact({"result": v3_traces_data([t], True)}) + b"\n" for t in traces])
        elif not traces:
            self._v3_error(404, "No traces found")
        else:
            self._json(200, {"result": v3_traces_data(traces, False)}, self.state.take_cut())

    def _v3_get(self, raw_id: str) -> None:
        spans = self.state.trace(raw_id)
        legacy = self.state.mode == "legacy"
        if spans is None and legacy:
            self._v3_error(500, "cannot retrieve trace: trace not found")
        elif spans is None:
            self._v3_error(404, "No traces found")
        elif legacy:
            self._chunked([_compact({"result": v3_traces_data([spans], True)}) + b"\n"])
        else:
            self._json(200, {"result": v3_traces_data([spans], False)})

    def _v3_error(self, status: int, message: str) -> None:
        error: dict[str, Any] = {"httpCode": status, "message": message}
        if self.state.mode == "legacy":  # grpc-gateway v1.16 StreamError
            grpc = {400: 3, 404: 5, 500: 2}.get(status, 2)
            reason = {400: "Bad Request", 404: "Not Found"}.get(status, "Internal Server Error")
            error = {"grpcCode": grpc, "httpCode": status, "message": message, "httpStatus": reason}
        self._error_text(status, _compact({"error": error}) + b"\n")

    # -- v1 ----------------------------------------------------------------------------------

    def _v1_search(self, params: dict[str, str]) -> None:
        service = params.get("service", "")
        now_ns = time.time_ns()
        bounds = []
        for name, default in (("start", now_ns - V1_LOOKBACK_NS), ("end", now_ns)):
            text = params.get(name, "")
            if text and not re.fullmatch(r"-?\d+", text):
                self._v1_error(
                    400,
                    f"unable to parse param '{name}': strconv.ParseInt: parsing "
                    f'"{text}": invalid syntax',
                )
                return
            bounds.append(int(text) * 1000 if text else default)
        limit_text = params.get("limit", "")
        if limit_text and not re.fullmatch(r"-?\d+", limit_text):
            self._v1_error(400, f'strconv.ParseInt: parsing "{limit_text}": invalid syntax')
            return
        limit = int(limit_text) if limit_text else DEFAULT_SEARCH_DEPTH
        if not service:
            self._v1_error(400, "parameter 'service' is required")
            return
        if limit <= 0 or limit > self.state.max_traces:
            self._v1_error(500, "search depth must be greater than 0 and less than max traces")
            return
        if self.state.storage_refuses:
            self._v1_error(400, self.state.storage_refuses)
            return
        traces = self.state.find(service, bounds[0], bounds[1], limit)
        data = [v1_trace(t, self.state.rewrite_v1_span) for t in traces]
        self._json(200, _envelope(data), self.state.take_cut())

    def _v1_get(self, raw_id: str) -> None:
        spans = self.state.trace(raw_id)
        if spans is None:
            self._v1_error(404, "trace not found")
        else:
            self._json(200, _envelope([v1_trace(spans)]))

    def _v1_error(self, status: int, message: str) -> None:
        body = _envelope(None, errors=[{"code": status, "msg": message}])
        self._error_text(status, _compact(body) + b"\n")

    # -- writing -----------------------------------------------------------------------------

    def _json(self, status: int, body: Any, cut: str | None = None) -> None:
        """``body`` as JSON, or half of it when ``cut`` says how (see ``cut_next_searches``)."""
        payload = _compact(body)
        if cut is None:
            self._send(status, "application/json", payload)
            return
        half = payload[: len(payload) // 2]
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload if cut == "reset" else half)))
        self.end_headers()
        self.wfile.write(half)
        self.wfile.flush()
        if cut == "reset":
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True

    def _send(self, status: int, content_type: str, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _error_text(self, status: int, payload: bytes) -> None:
        """Go's http.Error: text/plain, nosniff, the body as given (with its newline)."""
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _chunked(self, chunks: list[bytes]) -> None:
        """grpc-gateway's server stream: chunked, one message per chunk."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for chunk in chunks:
            self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")


# -- rendering: v3 (OTLP/JSON) ---------------------------------------------------------------


def v3_traces_data(traces: list[list[FakeSpan]], legacy: bool) -> dict[str, Any]:
    """``TracesData`` for the traces, in order: all resources of trace 1, then trace 2, ..."""
    resource_spans: list[dict[str, Any]] = []
    for spans in traces:
        by_resource: dict[bytes, dict[tuple[str, str], list[FakeSpan]]] = {}
        resources: dict[bytes, dict[str, Any]] = {}
        for span in spans:
            attrs = ({"service.name": span.service} if span.service else {}) | span.resource
            key = _compact(sorted(attrs.items(), key=lambda kv: kv[0]), default=_b64)
            resources.setdefault(key, attrs)
            by_resource.setdefault(key, {}).setdefault(
                (span.scope_name, span.scope_version), []
            ).append(span)
        for key, scopes in by_resource.items():
            resource = {"attributes": _otlp_attrs(resources[key])} if resources[key] else {}
            scope_list = []
            for (name, version), members in scopes.items():
                scope = {k: v for k, v in (("name", name), ("version", version)) if v}
                spans_json = [_otlp_span(s, legacy) for s in members]
                if legacy:
                    scope_list.append({"instrumentationLibrary": scope, "spans": spans_json})
                else:
                    scope_list.append({"scope": scope, "spans": spans_json})
            scope_key = "instrumentationLibrarySpans" if legacy else "scopeSpans"
            resource_spans.append({"resource": resource, scope_key: scope_list})
    return {"resourceSpans": resource_spans}


def _otlp_span(span: FakeSpan, legacy: bool) -> dict[str, Any]:
    """Proto field order, zero values left out (pdata's JSON marshaller)."""
    out: dict[str, Any] = {
        "traceId": _legacy_id(span.trace_id) if legacy else span.trace_id,
        "spanId": _legacy_id(span.span_id) if legacy else span.span_id,
    }
    if legacy:
        out["parentSpanId"] = _legacy_id(span.parent_span_id or "0" * 16)
    elif span.parent_span_id:
        out["parentSpanId"] = span.parent_span_id
    out["name"] = span.name
    if span.kind:
        out["kind"] = f"SPAN_KIND_{LEGACY_KINDS[span.kind]}" if legacy else span.kind
    if span.start_ns:
        out["startTimeUnixNano"] = str(span.start_ns)
    if span.end_ns:
        out["endTimeUnixNano"] = str(span.end_ns)
    if span.attributes:
        out["attributes"] = _otlp_attrs(span.attributes)
    if span.links:
        out["links"] = [{"traceId": t, "spanId": s} for t, s in span.links]
    status: dict[str, Any] = {}
    if span.status_message:
        status["message"] = span.status_message
    if span.status_code:
        status["code"] = LEGACY_STATUSES[span.status_code] if legacy else span.status_code
    if status or not legacy:
        out["status"] = status
    return out


def _otlp_attrs(attrs: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": _any_value(v)} for k, v in attrs.items()]


def _any_value(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, bytes):
        return {"bytesValue": base64.b64encode(value).decode()}
    if isinstance(value, list):
        return {"arrayValue": {"values": [_any_value(v) for v in value]}}
    if isinstance(value, dict):
        return {"kvlistValue": {"values": _otlp_attrs(value)}}
    raise TypeError(f"no OTLP AnyValue for {value!r}")


def _legacy_id(hex_id: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_id)).decode()


# -- rendering: v1 (Jaeger UI model) ---------------------------------------------------------


def v1_trace(
    spans: list[FakeSpan], rewrite: Callable[[dict[str, Any]], None] | None = None
) -> dict[str, Any]:
    """One ``data[]`` trace: spans with processIDs, processes p1..pN in order of first use;
    ``rewrite`` edits each span (for a server that is not quite Jaeger)."""
    processes: dict[bytes, tuple[str, dict[str, Any]]] = {}
    out_spans = []
    for span in spans:
        process = {"serviceName": span.service or "", "tags": _v1_tags(span.resource)}
        key = _compact(process)
        if key not in processes:
            processes[key] = (f"p{len(processes) + 1}", process)
        out_spans.append(_v1_span(span, processes[key][0]))
        if rewrite is not None:
            rewrite(out_spans[-1])
    return {
        "traceID": v1_trace_id(spans[0].trace_id),
        "spans": out_spans,
        "processes": dict(processes.values()),
        "warnings": None,
    }


def v1_trace_id(hex_id: str) -> str:
    """model.TraceID.String(): 16 hex chars when the high 64 bits are zero."""
    return hex_id[16:] if hex_id[:16] == "0" * 16 else hex_id


def _v1_span(span: FakeSpan, process_id: str) -> dict[str, Any]:
    references = []
    if span.parent_span_id:
        references.append(
            {
                "refType": "CHILD_OF",
                "traceID": v1_trace_id(span.trace_id),
                "spanID": span.parent_span_id,
            }
        )
    references += [
        {"refType": "FOLLOWS_FROM", "traceID": v1_trace_id(t), "spanID": s} for t, s in span.links
    ]
    return {
        "traceID": v1_trace_id(span.trace_id),
        "spanID": span.span_id,
        "operationName": span.name,
        "references": references,
        "startTime": span.start_ns // 1000,
        "duration": (span.end_ns - span.start_ns) // 1000,
        "tags": _v1_tags(_v1_span_tags(span)),
        "logs": [],
        "processID": process_id,
        "warnings": None,
    }


def _v1_span_tags(span: FakeSpan) -> dict[str, Any]:
    """OTLP to Jaeger tags, as Jaeger's translator adds them."""
    tags: dict[str, Any] = {}
    if span.scope_name:
        tags["otel.scope.name"] = span.scope_name
    if span.scope_version:
        tags["otel.scope.version"] = span.scope_version
    tags |= span.attributes
    if span.kind:
        tags["span.kind"] = KIND_NAMES[span.kind]
    if span.status_code:
        tags["otel.status_code"] = "ERROR" if span.status_code == 2 else "OK"
    if span.status_code == 2:
        tags["error"] = True
    if span.status_message:
        tags["otel.status_description"] = span.status_message
    return tags


def _v1_tags(values: dict[str, Any]) -> list[dict[str, Any]]:
    return [_v1_tag(k, v) for k, v in values.items()]


def _v1_tag(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        return {"key": key, "type": "string", "value": value}
    if isinstance(value, bool):
        return {"key": key, "type": "bool", "value": value}
    if isinstance(value, int):  # the UI model sends ints past JS's safe range as strings
        shown: int | str = value if abs(value) <= JS_SAFE_INT else str(value)
        return {"key": key, "type": "int64", "value": shown}
    if isinstance(value, float):
        return {"key": key, "type": "float64", "value": value}
    if isinstance(value, bytes):
        return {"key": key, "type": "binary", "value": base64.b64encode(value).decode()}
    # OTLP arrays and maps have no Jaeger tag type: the translator writes their JSON text.
    return {"key": key, "type": "string", "value": _compact(value, default=_b64).decode()}


def _envelope(data: Any, total: int = 0, errors: list[dict[str, Any]] | None = None) -> dict:
    """v1 ``structuredResponse``: total only for services/operations; limit, offset always 0."""
    return {"data": data, "total": total, "limit": 0, "offset": 0, "errors": errors}


# -- helpers ---------------------------------------------------------------------------------


def _param(params: dict[str, str], canonical: str, deprecated: str) -> tuple[str, str]:
    """Canonical camelCase name first, then the snake_case alias (query_parser.go)."""
    if params.get(canonical):
        return params[canonical], canonical
    return params.get(deprecated, ""), deprecated


def parse_rfc3339_nano(text: str, name: str) -> int:
    """Go ``time.Parse(time.RFC3339Nano, text)`` as unix nanoseconds."""
    match = RFC3339_NANO.match(text)
    if not match:
        raise ValueError(
            f'malformed parameter {name}: parsing time "{text}" as "{GO_LAYOUT}": cannot parse'
        )
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction = int((match.group(7) or "").ljust(9, "0") or 0)
    zone = match.group(8)
    offset = (
        0 if zone == "Z" else (int(zone[1:3]) * 60 + int(zone[4:6])) * (-1 if zone[0] == "-" else 1)
    )
    seconds = calendar.timegm((year, month, day, hour, minute, second)) - offset * 60
    return seconds * 1_000_000_000 + fraction


def _b64(value: Any) -> str:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError(value)


def _compact(value: Any, default: Any = None) -> bytes:
    return orjson.dumps(value, default=default)
