"""An Elasticsearch stand-in that the official Python client talks to unmodified.

No Elasticsearch can run on this machine, so the source is tested against this threaded HTTP
server. It follows the documented REST wire protocol for the calls an export makes, with bodies
shaped like the captures in ``wire-fixtures/elasticsearch/``:

- ``GET /`` cluster info (version number per mode), ``POST /{index}/_pit?keep_alive=``,
  ``DELETE /_pit``, ``POST /_search`` (``pit``, ``sort`` with ``format``, ``search_after``,
  ``slice``, ``size``/``from`` capped at ``index.max_result_window``, ``track_total_hits``,
  ``query.range`` or ``bool.filter`` of ranges), ``GET|POST /{index}/_count``, ``POST /_bulk``
  (NDJSON) to load documents.
- ``_source`` is answered byte for byte as it was indexed, as Elasticsearch stores it: a lone
  UTF-16 surrogate escape or an integer past 64 bits comes back unchanged.
- ``X-Elastic-Product: Elasticsearch`` on every answer; the response media type echoes the
  ``compatible-with`` version asked for.
- Version modes: an 8.x server refuses ``compatible-with=9`` with the ``media_type_header_exception``
  an 8.x cluster sends; a 9.x server accepts 8 and 9.
- Index patterns with ``*`` over several indices; each index has shards, and ``_shard_doc`` is
  ``(shard ordinal in the PIT << 32) | doc number in the shard``, as Elasticsearch encodes it.
  A pattern that matches no index is no error (``allow_no_indices`` defaults to true for
  wildcards): a PIT opens on 0 shards and ``_count`` answers 0 over 0 shards; a missing concrete
  index is a 404 ``index_not_found_exception``.
- A PIT is a snapshot: documents bulk-loaded after it opened are not visible through it; it
  expires after its ``keep_alive`` unless a search extends it.
- Failure injection (:meth:`FakeElasticsearch.fail_next_searches`): 503, 429, partial shard
  failures (200 with ``_shards.failed`` and the failed shard's hits missing), ``timed_out``,
  expired PIT (the PIT is dropped and the search answers 404), and answers cut short on the way
  (the connection closed mid-body, or half a body with a Content-Length to match, as a proxy
  may send).
- Optional security: an API key or user/password; anything else gets the 401 a secured cluster
  sends.
"""

import base64
import fnmatch
import itertools
import json
import re
import socket
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

from tests.servers import serving_in_process

MAX_RESULT_WINDOW = 10_000
SEARCH_BODY_KEYS = {
    "size", "from", "query", "sort", "search_after", "pit", "slice", "track_total_hits",
    "_source", "timeout", "fields", "seq_no_primary_term", "version", "post_filter",
}  # fmt: skip
SHARDS_PER_INDEX = 2
_COMPAT_RE = re.compile(r"compatible-with\s*=\s*(\d+)")
_INTEGER_RE = re.compile(r"-?\d+")
_ISO_RE = re.compile(
    r"(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}(?::\d{2})?)(?:[.,](\d{1,9}))?)?(Z|[+-]\d{2}:?\d{2})?"
)

CLUSTER_VERSIONS = {
    8: {
        "number": "8.17.0",
        "build_flavor": "default",
        "build_type": "docker",
        "build_hash": "2b6a7fed44faa321997703718f07ee0420804b41",
        "build_date": "2024-12-11T12:08:05.663969764Z",
        "build_snapshot": False,
        "lucene_version": "9.12.0",
        "minimum_wire_compatibility_version": "7.17.0",
        "minimum_index_compatibility_version": "7.0.0",
    },
    9: {
        "number": "9.1.0",
        "build_flavor": "default",
        "build_type": "docker",
        "build_hash": "5bfa2f9bdb2a8ea6d0ac7b8d1b6c9a2c7e6fcd1e",
        "build_date": "2025-07-24T18:14:11.522305413Z",
        "build_snapshot": False,
        "lucene_version": "10.2.2",
        "minimum_wire_compatibility_version": "8.19.0",
        "minimum_index_compatibility_version": "8.0.0",
    },
}


class _HttpError(Exception):
    """An error answer: status and the JSON body Elasticsearch sends with it."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


def error_body(kind: str, reason: str, status: int, **extra: Any) -> dict[str, Any]:
    """The ``{"error": {root_cause, type, reason}, "status"}`` envelope of a simple error."""
    cause = {"type": kind, "reason": reason, **extra}
    return {"error": {"root_cause": [cause], **cause}, "status": status}


def shard_phase_error(kind: str, reason: str, status: int, index: str) -> dict[str, Any]:
    """A ``search_phase_execution_exception`` where every shard failed (as in the fixtures)."""
    cause = {"type": kind, "reason": reason}
    return {
        "error": {
            "root_cause": [cause],
            "type": "search_phase_execution_exception",
            "reason": "all shards failed",
            "phase": "query",
            "grouped": True,
            "failed_shards": [
                {"shard": 0, "index": index, "node": "b3HX8C96Q7q1zgfVLxEsPA", "reason": cause}
            ],
        },
        "status": status,
    }


REJECTED_REASON = (
    "rejected execution of TimedRunnable{original=org.elasticsearch.action.search."
    "FetchSearchPhase$1@3bcd2d6e} on TaskExecutionTimeTrackingEsThreadPoolExecutor[name = "
    "es-node-0/search, queue capacity = 1000, task execution EWMA = 333.3ms, org.elasticsearch."
    "common.util.concurrent.TaskExecutionTimeTrackingEsThreadPoolExecutor@6671ec3b[Running, "
    "pool size = 43, active threads = 43, queued tasks = 1000, completed tasks = 2316007]]"
)


# --- dates ---------------------------------------------------------------------------------


def parse_date_ns(value: Any) -> int | None:
    """A date as Elasticsearch reads it by default: ISO 8601 (any fraction) or epoch millis."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value * 1_000_000)
    text = str(value)
    if _INTEGER_RE.fullmatch(text):
        return int(text) * 1_000_000
    match = _ISO_RE.fullmatch(text)
    if not match:
        raise ValueError(f"failed to parse date field [{text}]")
    day, clock, fraction, zone = match.groups()
    moment = datetime.fromisoformat(f"{day}T{clock or '00:00'}")
    if zone and zone != "Z":
        moment = datetime.fromisoformat(f"{day}T{clock or '00:00'}{zone}")
    else:
        moment = moment.replace(tzinfo=UTC)
    seconds = int(moment.timestamp())
    return seconds * 1_000_000_000 + int((fraction or "0").ljust(9, "0"))


def format_date_nanos(ns: int) -> str:
    """``strict_date_optional_time_nanos`` output: 3 to 9 fraction digits, trailing zeros trimmed."""
    seconds, nanos = divmod(ns, 1_000_000_000)
    base = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{nanos:09d}".rstrip("0").ljust(3, "0")
    return f"{base}.{fraction}Z"


def lookup(source: dict[str, Any], path: str) -> Any:
    """A field by its full name, whether stored as nested objects or as a dotted key."""
    if path in source:
        return source[path]
    parts = path.split(".")
    for cut in range(1, len(parts)):
        head = ".".join(parts[:cut])
        inner = source.get(head)
        if isinstance(inner, dict):
            found = lookup(inner, ".".join(parts[cut:]))
            if found is not None:
                return found
    return None


def parse_keep_alive(text: str) -> float:
    match = re.fullmatch(r"(\d+)(nanos|micros|ms|s|m|h|d)", text or "")
    if not match:
        raise _HttpError(
            400,
            error_body(
                "illegal_argument_exception",
                f"failed to parse setting [keep_alive] with value [{text}] as a time value: "
                "unit is missing or unrecognized",
                400,
            ),
        )
    scale = {"nanos": 1e-9, "micros": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400}
    return int(match.group(1)) * scale[match.group(2)]


# --- state ---------------------------------------------------------------------------------


@dataclass
class StoredDoc:
    index: str
    doc_id: str
    source: dict[str, Any]
    shard: int  # shard number inside its index
    number: int  # document number inside its shard (Lucene doc id)
    raw: bytes = b""  # _source as indexed, answered as is
    dates: dict[str, int | None] = field(default_factory=dict)  # parsed once, as a doc value

    def date(self, name: str) -> int | None:
        if name not in self.dates:
            self.dates[name] = parse_date_ns(lookup(self.source, name))
        return self.dates[name]


@dataclass
class Pit:
    number: int
    shards: list[tuple[str, int, int]]  # (index, shard, docs visible in the snapshot)
    keep_alive: float
    expires_at: float
    cache: dict[bytes, list[tuple[tuple[int, ...], StoredDoc, int]]] = field(default_factory=dict)


@dataclass
class Fault:
    kind: str  # "503", "429", "partial", "timed_out", "pit_expired", "reset", "truncated"
    remaining: int
    after: int  # searches still answered normally before this fault starts


class _CutAnswer(Exception):
    """A search answer to send cut short: ``how`` is "reset" or "truncated"."""

    def __init__(self, how: str, answer: dict[str, Any], media_type: str) -> None:
        super().__init__(how)
        self.how = how
        self.answer = answer
        self.media_type = media_type


class FakeElasticsearch:
    """State and behaviour of the fake cluster; :func:`serve` puts it on a port."""

    def __init__(
        self,
        major: int = 9,
        api_key: str | None = None,
        basic: tuple[str, str] | None = None,
    ) -> None:
        self.major = major
        self.api_key = api_key
        self.basic = basic
        self.lock = threading.RLock()
        self.indices: dict[str, list[list[StoredDoc]]] = {}  # index -> shard -> docs
        self.ids: dict[tuple[str, str], StoredDoc] = {}
        self.pits: dict[str, Pit] = {}
        self.faults: list[Fault] = []
        self.pit_numbers = itertools.count(42)
        self.searches = 0
        self.slices_seen: set[tuple[int, int]] = set()  # (id, max) of sliced searches
        self.pits_opened = 0
        self.pits_closed = 0
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # method, path, headers
        self.url = ""

    # --- test hooks ---

    def fail_next_searches(self, kind: str, times: int = 1, after: int = 0) -> None:
        """After ``after`` normal PIT searches, the next ``times`` answer with fault ``kind``:
        "503", "429", "partial" (one shard fails, its hits are missing), "timed_out" (the
        same hits missing, ``timed_out: true``),
        "pit_expired" (the PIT is dropped), "reset" (the headers and half the body, then the
        connection closes) or "truncated" (half the body, its Content-Length to match). Faults
        queue up in the order they are added."""
        with self.lock:
            self.faults.append(Fault(kind, times, after))

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    @property
    def faults_pending(self) -> int:
        """Injected failures not served yet (so a test can tell they really happened)."""
        with self.lock:
            return sum(f.remaining for f in self.faults)

    @property
    def open_pits(self) -> int:
        with self.lock:
            now = time.monotonic()
            return sum(1 for pit in self.pits.values() if pit.expires_at > now)

    # --- dispatch ---

    def handle(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, Any] | None, str]:
        """Answer one request: (status, JSON body or None, response media type)."""
        with self.lock:
            self.requests.append((method, target, headers))
        version = self._check_media_types(headers, has_body=bool(body))
        media_type = (
            f"application/vnd.elasticsearch+json;compatible-with={version}"
            if version
            else "application/json"
        )
        self._authenticate(headers, target)
        url = urlsplit(target)
        path = unquote(url.path)
        params = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        parts = [p for p in path.split("/") if p]
        if method in ("GET", "HEAD") and not parts:
            return 200, self._info(), media_type
        if method in ("POST", "PUT") and parts and parts[-1] == "_bulk":
            return 200, self._bulk(body, parts[0] if len(parts) == 2 else None), media_type
        if method == "POST" and len(parts) == 2 and parts[1] == "_pit":
            return 200, self._open_pit(parts[0], params), media_type
        if method == "DELETE" and parts == ["_pit"]:
            status, answer = self._close_pit(self._json(body))
            return status, answer, media_type
        if method in ("GET", "POST") and parts and parts[-1] == "_search":
            index = parts[0] if len(parts) == 2 else None
            answer, cut = self._search(index, self._json(body), params)
            if cut is not None:
                raise _CutAnswer(cut, answer, media_type)
            return 200, answer, media_type
        if method in ("GET", "POST") and len(parts) == 2 and parts[1] == "_count":
            return 200, self._count(parts[0], self._json(body)), media_type
        raise _HttpError(
            400 if method != "GET" else 405,
            {
                "error": f"Incorrect HTTP method for uri [{target}] and method [{method}]",
                "status": 405,
            },
        )

    def _check_media_types(self, headers: dict[str, str], has_body: bool) -> int | None:
        """Elasticsearch's RestCompatibleVersionHelper: refuse versions this server cannot speak."""
        accept = headers.get("accept", "")
        content_type = headers.get("content-type", "") if has_body else ""
        accept_match = _COMPAT_RE.search(accept)
        content_match = _COMPAT_RE.search(content_type)
        accept_version = int(accept_match.group(1)) if accept_match else self.major
        content_version = int(content_match.group(1)) if content_match else self.major
        problem = None
        if not self.major - 1 <= accept_version <= self.major:
            problem = (
                f"Accept version must be either version {self.major} or {self.major - 1}, "
                f"but found {accept_version}. Accept={accept}"
            )
        elif has_body and not self.major - 1 <= content_version <= self.major:
            problem = (
                f"Content-Type version must be either version {self.major} or {self.major - 1}, "
                f"but found {content_version}. Content-Type={content_type}"
            )
        elif has_body and (accept_match or content_match) and accept_version != content_version:
            problem = (
                "A compatible version is required on both Content-Type and Accept headers if "
                "either one has requested a compatible version and the compatible versions must "
                f"match. Accept={accept}, Content-Type={content_type}"
            )
        if problem:
            reason = "Invalid media-type value on headers [Accept, Content-Type]"
            body = error_body("media_type_header_exception", reason, 400)
            body["error"]["caused_by"] = {"type": "status_exception", "reason": problem}
            raise _HttpError(400, body)
        return accept_version if accept_match else None

    def _authenticate(self, headers: dict[str, str], target: str) -> None:
        if self.api_key is None and self.basic is None:
            return
        given = headers.get("authorization", "")
        wanted = []
        if self.api_key is not None:
            wanted.append(f"ApiKey {self.api_key}")
        if self.basic is not None:
            token = base64.b64encode(f"{self.basic[0]}:{self.basic[1]}".encode()).decode()
            wanted.append(f"Basic {token}")
        if given in wanted:
            return
        challenge = {
            "WWW-Authenticate": [
                'Basic realm="security", charset="UTF-8"',
                'Bearer realm="security"',
                "ApiKey",
            ]
        }
        if not given:
            reason = f"missing authentication credentials for REST request [{target}]"
            body = error_body("security_exception", reason, 401, header=challenge)
        else:
            reason = (
                "unable to authenticate with provided credentials and anonymous access is not "
                "allowed for this request"
            )
            body = error_body(
                "security_exception",
                reason,
                401,
                additional_unsuccessful_credentials="API key: api key is expired or invalid",
                header=challenge,
            )
        raise _HttpError(401, body, {"WWW-Authenticate": 'ApiKey, Basic realm="security"'})

    @staticmethod
    def _json(body: bytes) -> dict[str, Any]:
        if not body:
            return {}
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise _HttpError(
                400, error_body("x_content_parse_exception", f"Failed to parse: {exc}", 400)
            ) from None

    # --- endpoints ---

    def _info(self) -> dict[str, Any]:
        return {
            "name": "es-node-0",
            "cluster_name": "obs-test",
            "cluster_uuid": "Xq7bT0dbQ3S3xYqzXJ2J1A",
            "version": CLUSTER_VERSIONS[self.major],
            "tagline": "You Know, for Search",
        }

    def _bulk(self, body: bytes, default_index: str | None) -> dict[str, Any]:
        lines = [line for line in body.split(b"\n") if line.strip()]
        items = []
        started = time.monotonic()
        with self.lock:
            cursor = iter(lines)
            for raw_action in cursor:
                action = orjson.loads(raw_action)
                (op, meta), *_ = action.items()
                index = meta.get("_index", default_index)
                if op == "delete" or index is None:
                    raise _HttpError(
                        400,
                        error_body(
                            "action_request_validation_exception",
                            "Validation Failed: 1: index is missing;",
                            400,
                        ),
                    )
                raw = next(cursor)
                doc_id = str(meta.get("_id") or f"auto-{len(self.ids)}")
                items.append({op: self._index_doc(index, doc_id, raw)})
        return {
            "errors": any(
                item_result["status"] >= 300 for i in items for item_result in i.values()
            ),
            "took": int((time.monotonic() - started) * 1000),
            "items": items,
        }

    def _index_doc(self, index: str, doc_id: str, raw: bytes) -> dict[str, Any]:
        try:
            source = orjson.loads(raw)
        except orjson.JSONDecodeError:  # what orjson refuses and Elasticsearch (Jackson) takes
            source = json.loads(raw)
        shards = self.indices.setdefault(index, [[] for _ in range(SHARDS_PER_INDEX)])
        if (index, doc_id) in self.ids:
            return {
                "_index": index,
                "_id": doc_id,
                "status": 409,
                "error": {
                    "type": "version_conflict_engine_exception",
                    "reason": f"[{doc_id}]: version conflict, document already exists",
                },
            }
        shard = zlib.crc32(doc_id.encode()) % SHARDS_PER_INDEX
        doc = StoredDoc(index, doc_id, source, shard, len(shards[shard]), raw.strip())
        shards[shard].append(doc)
        self.ids[(index, doc_id)] = doc
        return {
            "_index": index,
            "_id": doc_id,
            "_version": 1,
            "result": "created",
            "_shards": {"total": 2, "successful": 1, "failed": 0},
            "_seq_no": doc.number,
            "_primary_term": 1,
            "status": 201,
        }

    def _matching_indices(self, expression: str) -> list[str]:
        names: list[str] = []
        for pattern in expression.split(","):
            if "*" in pattern:
                names += [n for n in sorted(self.indices) if fnmatch.fnmatchcase(n, pattern)]
            elif pattern in self.indices:
                names.append(pattern)
            else:
                raise _HttpError(
                    404,
                    error_body(
                        "index_not_found_exception",
                        f"no such index [{pattern}]",
                        404,
                        **{"resource.type": "index_or_alias", "resource.id": pattern},
                        index_uuid="_na_",
                        index=pattern,
                    ),
                )
        return list(dict.fromkeys(names))

    def _open_pit(self, expression: str, params: dict[str, str]) -> dict[str, Any]:
        if "keep_alive" not in params:
            raise _HttpError(
                400,
                error_body(
                    "action_request_validation_exception",
                    "Validation Failed: 1: [keep_alive] is not specified;",
                    400,
                ),
            )
        keep_alive = parse_keep_alive(params["keep_alive"])
        with self.lock:
            shards = [
                (name, shard, len(self.indices[name][shard]))
                for name in self._matching_indices(expression)
                for shard in range(SHARDS_PER_INDEX)
            ]
            number = next(self.pit_numbers)
            pit_id = base64.urlsafe_b64encode(f"46ToAwMD-pit-{number}".encode()).decode()
            self.pits[pit_id] = Pit(number, shards, keep_alive, time.monotonic() + keep_alive)
            self.pits_opened += 1
        total = len(shards)
        return {
            "id": pit_id,
            "_shards": {"total": total, "successful": total, "skipped": 0, "failed": 0},
        }

    def _count(self, expression: str, body: dict[str, Any]) -> dict[str, Any]:
        """``_count``: the documents of the matching indices in the query's ranges."""
        ranges = [_range_bounds(clause) for clause in _ranges(body.get("query"))]
        with self.lock:
            names = self._matching_indices(expression)
            count = sum(
                1
                for name in names
                for shard in self.indices[name]
                for doc in shard
                if all(_in_range(doc, clause) for clause in ranges)
            )
        total = len(names) * SHARDS_PER_INDEX
        return {
            "count": count,
            "_shards": {"total": total, "successful": total, "skipped": 0, "failed": 0},
        }

    def _close_pit(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            pit = self.pits.pop(str(body.get("id")), None)
            if pit is None or pit.expires_at <= time.monotonic():
                return 404, {"succeeded": True, "num_freed": 0}
            self.pits_closed += 1
            return 200, {"succeeded": True, "num_freed": len(pit.shards)}

    # --- search ---

    def _search(
        self, index: str | None, body: dict[str, Any], params: dict[str, str]
    ) -> tuple[dict[str, Any], str | None]:
        """The answer, and how to cut it short ("reset", "truncated") if a fault says so."""
        started = time.monotonic()
        pit_spec = body.get("pit")
        if pit_spec is None:
            raise _HttpError(
                400,
                error_body(
                    "illegal_argument_exception",
                    "this test server only answers point-in-time searches",
                    400,
                ),
            )
        if index is not None:
            raise _HttpError(
                400,
                error_body(
                    "action_request_validation_exception",
                    "Validation Failed: 1: [indices] cannot be used with point in time. Do not "
                    "specify any index with point in time.;",
                    400,
                ),
            )
        unknown = sorted(set(body) - SEARCH_BODY_KEYS)
        if unknown:
            token = _token_name(body[unknown[0]])
            raise _HttpError(
                400,
                error_body(
                    "parsing_exception",
                    f"Unknown key for a {token} in [{unknown[0]}].",
                    400,
                    line=1,
                    col=2,
                ),
            )
        size = int(body.get("size", params.get("size", 10)))
        offset = int(body.get("from", params.get("from", 0)))
        if offset + size > MAX_RESULT_WINDOW:
            reason = (
                f"Result window is too large, from + size must be less than or equal to: "
                f"[{MAX_RESULT_WINDOW}] but was [{offset + size}]. See the scroll api for a more "
                "efficient way to request large data sets. This limit can be set by changing the "
                "[index.max_result_window] index level setting."
            )
            raise _HttpError(
                400, shard_phase_error("illegal_argument_exception", reason, 400, "_all")
            )
        with self.lock:
            self.searches += 1
            if body.get("slice"):
                self.slices_seen.add((int(body["slice"]["id"]), int(body["slice"]["max"])))
            fault = self._take_fault()
            pit_id = str(pit_spec.get("id"))
            if fault == "pit_expired":
                self.pits.pop(pit_id, None)
            pit = self.pits.get(pit_id)
            if pit is None or pit.expires_at <= time.monotonic():
                self.pits.pop(pit_id, None)
                number = pit.number if pit else 0
                raise _HttpError(
                    404,
                    shard_phase_error(
                        "search_context_missing_exception",
                        f"No search context found for id [{number}]",
                        404,
                        pit.shards[0][0] if pit and pit.shards else "my-index-000001",
                    ),
                )
            if "keep_alive" in pit_spec:
                pit.keep_alive = parse_keep_alive(pit_spec["keep_alive"])
            pit.expires_at = time.monotonic() + pit.keep_alive
            first_index = pit.shards[0][0] if pit.shards else "_all"
            if fault == "503":
                raise _HttpError(
                    503,
                    shard_phase_error(
                        "no_shard_available_action_exception",
                        "[es-node-0][127.0.0.1:9300][indices:data/read/search[phase/query]]",
                        503,
                        first_index,
                    ),
                )
            if fault == "429":
                raise _HttpError(
                    429,
                    shard_phase_error(
                        "es_rejected_execution_exception", REJECTED_REASON, 429, first_index
                    ),
                )
            sort_spec = self._sort_spec(body.get("sort"))
            ranked = self._ranked(pit, body, sort_spec)
        failed_shard = 0 if fault == "partial" else None
        if fault in ("partial", "timed_out"):
            # A failed shard contributes no hits; a timed-out one returns what it had so far
            # (here: nothing). Either way the page silently lacks documents.
            ranked = [entry for entry in ranked if entry[2] != 0]
        start = 0
        if body.get("search_after") is not None:
            after = self._after_key(body["search_after"], sort_spec)
            start = _bisect_right(ranked, after)
        page = ranked[start + offset : start + offset + size]
        hits = [
            {
                "_index": doc.index,
                "_id": doc.doc_id,
                "_score": None,
                "_source": orjson.Fragment(doc.raw),
                "sort": self._sort_values(key, sort_spec),
            }
            for key, doc, _ in page
        ]
        total_shards = len(pit.shards)
        shards_info: dict[str, Any] = {
            "total": total_shards,
            "successful": total_shards,
            "skipped": 0,
            "failed": 0,
        }
        if failed_shard is not None and total_shards:
            shards_info["successful"] = total_shards - 1
            shards_info["failed"] = 1
            shards_info["failures"] = [
                {
                    "shard": pit.shards[0][1],
                    "index": pit.shards[0][0],
                    "node": "itsmeyournode",
                    "reason": {
                        "type": "node_not_connected_exception",
                        "reason": "[es-node-1][127.0.0.1:9301] Node not connected",
                    },
                }
            ]
        answer: dict[str, Any] = {
            "pit_id": pit_id,
            "took": int((time.monotonic() - started) * 1000),
            "timed_out": fault == "timed_out",
            "_shards": shards_info,
            "hits": {"max_score": None, "hits": hits},
        }
        tracked = body.get("track_total_hits", True)
        if tracked is not False:
            limit = None if tracked is True else int(tracked) if tracked is not None else 10_000
            if "track_total_hits" not in body:
                limit = 10_000
            value = len(ranked) if limit is None else min(len(ranked), limit)
            relation = "gte" if limit is not None and len(ranked) > limit else "eq"
            answer["hits"] = {"total": {"value": value, "relation": relation}, **answer["hits"]}
        return answer, fault if fault in ("reset", "truncated") else None

    def _take_fault(self) -> str | None:
        while self.faults:
            fault = self.faults[0]
            if fault.remaining <= 0:
                self.faults.pop(0)
                continue
            if fault.after > 0:
                fault.after -= 1
                return None
            fault.remaining -= 1
            return fault.kind
        return None

    @staticmethod
    def _sort_spec(sort: Any) -> list[tuple[str, bool, str | None]]:
        """(field, descending, format) per sort key, with the implicit ``_shard_doc`` tiebreaker."""
        entries = sort if isinstance(sort, list) else [sort] if sort else []
        spec: list[tuple[str, bool, str | None]] = []
        for entry in entries:
            if isinstance(entry, str):
                spec.append((entry, False, None))
                continue
            (name, options), *_ = entry.items()
            if isinstance(options, str):
                spec.append((name, options == "desc", None))
            else:
                spec.append((name, options.get("order", "asc") == "desc", options.get("format")))
        if not any(name == "_shard_doc" for name, _, _ in spec):
            spec.append(("_shard_doc", False, None))
        return spec

    def _ranked(
        self, pit: Pit, body: dict[str, Any], sort_spec: list[tuple[str, bool, str | None]]
    ) -> list[tuple[tuple[int, ...], StoredDoc, int]]:
        """Every document the PIT sees that matches query and slice, in sort order (cached)."""
        cache_key = orjson.dumps(
            [body.get("query"), sort_spec, body.get("slice")], option=orjson.OPT_SORT_KEYS
        )
        if cache_key in pit.cache:
            return pit.cache[cache_key]
        ranges = [_range_bounds(clause) for clause in _ranges(body.get("query"))]
        slicing = body.get("slice")
        ranked = []
        for ordinal, (name, shard, visible) in enumerate(pit.shards):
            for doc in self.indices[name][shard][:visible]:
                if slicing and not _in_slice(ordinal, doc.number, len(pit.shards), slicing):
                    continue
                if not all(_in_range(doc, clause) for clause in ranges):
                    continue
                shard_doc = (ordinal << 32) | doc.number
                key = tuple(_key_part(doc, name_, desc, shard_doc) for name_, desc, _ in sort_spec)
                ranked.append((key, doc, ordinal))
        ranked.sort(key=lambda entry: entry[0])
        pit.cache[cache_key] = ranked
        return ranked

    @staticmethod
    def _sort_values(key: tuple[int, ...], sort_spec: list[tuple[str, bool, str | None]]) -> list:
        values: list[Any] = []
        for part, (name, desc, fmt) in zip(key, sort_spec, strict=True):
            raw = -part if desc else part
            if name in ("_shard_doc", "_doc"):
                values.append(raw)
            elif abs(raw) >= _MISSING:
                values.append(None)
            elif fmt:
                values.append(format_date_nanos(raw))
            else:
                values.append(raw // 1_000_000)
        return values

    @staticmethod
    def _after_key(values: list[Any], sort_spec: list[tuple[str, bool, str | None]]) -> tuple:
        if len(values) != len(sort_spec):
            raise _HttpError(
                400,
                error_body(
                    "illegal_argument_exception",
                    f"search_after has {len(values)} value(s) but sort has {len(sort_spec)}.",
                    400,
                ),
            )
        key = []
        for value, (name, desc, fmt) in zip(values, sort_spec, strict=True):
            if name in ("_shard_doc", "_doc"):
                raw = int(value)
            elif fmt or isinstance(value, str):
                raw = parse_date_ns(value) or 0
            else:
                raw = int(value) * 1_000_000
            key.append(-raw if desc else raw)
        return tuple(key)


_MISSING = 1 << 62


def _token_name(value: Any) -> str:
    """The JSON token type Elasticsearch's parser names in its errors."""
    if isinstance(value, dict):
        return "START_OBJECT"
    if isinstance(value, list):
        return "START_ARRAY"
    if isinstance(value, bool):
        return "VALUE_BOOLEAN"
    if isinstance(value, int | float):
        return "VALUE_NUMBER"
    return "VALUE_NULL" if value is None else "VALUE_STRING"


def _in_slice(ordinal: int, number: int, shards: int, slicing: dict[str, Any]) -> bool:
    """Sliced PIT searches split by shard first, then by document inside a shard."""
    count, wanted = int(slicing["max"]), int(slicing["id"])
    if count <= shards:
        return ordinal % count == wanted
    return (ordinal + number * shards) % count == wanted


def _key_part(doc: StoredDoc, name: str, desc: bool, shard_doc: int) -> int:
    if name in ("_shard_doc", "_doc"):
        value = shard_doc
    else:
        parsed = doc.date(name)
        if parsed is None:
            return _MISSING  # missing values sort last either way
        value = parsed
    return -value if desc else value


def _bisect_right(ranked: list[tuple[tuple[int, ...], StoredDoc, int]], after: tuple) -> int:
    low, high = 0, len(ranked)
    while low < high:
        middle = (low + high) // 2
        if ranked[middle][0] <= after:
            low = middle + 1
        else:
            high = middle
    return low


def _ranges(query: Any) -> list[tuple[str, dict[str, Any]]]:
    """The range clauses of a query: ``range`` itself, or inside ``bool.filter``/``bool.must``."""
    if not query or "match_all" in query:
        return []
    if "range" in query:
        return list(query["range"].items())
    if "bool" in query:
        clauses: list[tuple[str, dict[str, Any]]] = []
        for occur in ("filter", "must"):
            inner = query["bool"].get(occur, [])
            for clause in inner if isinstance(inner, list) else [inner]:
                clauses += _ranges(clause)
        return clauses
    raise _HttpError(
        400,
        error_body(
            "parsing_exception",
            f"unknown query [{next(iter(query))}] for this test server",
            400,
            line=1,
            col=10,
        ),
    )


def _range_bounds(clause: tuple[str, dict[str, Any]]) -> tuple[str, int, int]:
    """A range clause as (field, lowest included ns, highest included ns)."""
    name, bounds = clause
    fmt = bounds.get("format", "")

    def ns(bound: Any) -> int:
        if fmt == "epoch_millis" or (isinstance(bound, int) and "epoch" in fmt):
            return int(bound) * 1_000_000
        parsed = parse_date_ns(bound)
        if parsed is None:
            raise _HttpError(
                400, error_body("parse_exception", f"failed to parse date field [{bound}]", 400)
            )
        return parsed

    low, high = -_MISSING, _MISSING
    if "gte" in bounds:
        low = max(low, ns(bounds["gte"]))
    if "gt" in bounds:
        low = max(low, ns(bounds["gt"]) + 1)
    if "lte" in bounds:
        high = min(high, ns(bounds["lte"]))
    if "lt" in bounds:
        high = min(high, ns(bounds["lt"]) - 1)
    return name, low, high


def _in_range(doc: StoredDoc, bounds: tuple[str, int, int]) -> bool:
    name, low, high = bounds
    value = doc.date(name)
    return value is not None and low <= value <= high


# --- HTTP ----------------------------------------------------------------------------------


def _handler(cluster: FakeElasticsearch) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            extra: dict[str, str] = {}
            try:
                status, answer, media_type = cluster.handle(self.command, self.path, headers, body)
            except _HttpError as exc:
                status, answer, extra = exc.status, exc.body, exc.headers
                media_type = "application/json"
            except _CutAnswer as cut:
                self._cut_short(cut)
                return
            payload = b"" if answer is None or self.command == "HEAD" else orjson.dumps(answer)
            self.send_response(status)
            self.send_header("X-Elastic-Product", "Elasticsearch")
            self.send_header("Content-Type", media_type)
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _cut_short(self, cut: _CutAnswer) -> None:
            """Half the answer: after headers promising all of it, then the connection closes
            ("reset"), or with a Content-Length to match ("truncated")."""
            payload = orjson.dumps(cut.answer)
            half = payload[: len(payload) // 2]
            self.send_response(200)
            self.send_header("X-Elastic-Product", "Elasticsearch")
            self.send_header("Content-Type", cut.media_type)
            self.send_header("Content-Length", str(len(payload if cut.how == "reset" else half)))
            self.end_headers()
            self.wfile.write(half)
            self.wfile.flush()
            if cut.how == "reset":
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve

    return Handler


@contextmanager
def serve(
    cluster: FakeElasticsearch, tls: tuple[str, str] | None = None
) -> Iterator[FakeElasticsearch]:
    """Run ``cluster`` on a free 127.0.0.1 port until the block ends; sets ``cluster.url``.

    ``tls`` is (certificate file, key file): the server then speaks HTTPS only."""
    with serving_in_process(_handler(cluster), tls) as url:
        cluster.url = url
        yield cluster
