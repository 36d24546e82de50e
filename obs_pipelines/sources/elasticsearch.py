"""Log documents from Elasticsearch as ``log_records``, one window at a time, all or nothing.

A window is exported through a point in time (PIT) with ``search_after`` pages sorted on the
timestamp plus the ``_shard_doc`` tiebreaker: from/size stops at ``index.max_result_window``
(10,000), and a PIT keeps the view fixed while we page, so every document is seen exactly once.
With ``slices > 1`` the same PIT is read by parallel sliced searches. Every page of every slice
is accumulated before anything is yielded (on local disk, so memory holds a page, not the
window); a failure part-way raises ``SourceError`` and yields nothing, and an expired PIT restarts
the window on a fresh one. The PIT is closed in every case.

Timestamps come from the sort value, formatted by the server as ``strict_date_optional_time_nanos``
in UTC: that is the indexed value the range query matched, whatever form ``_source`` used
(ISO with an offset, nanoseconds, epoch millis).

An index pattern that matches no index is refused: Elasticsearch opens a point in time on it all
the same (``allow_no_indices`` defaults to true for wildcards) and it would read as a window
without logs.

Answers cut short (the connection closed mid-body, or JSON that ends early) are retried like shard
failures. Pages are decoded by orjson; a page it refuses or would alter (a lone UTF-16 surrogate,
which Elasticsearch keeps as sent; an integer past 64 bits, which it would turn into a float) is
decoded by Python's json instead, lone surrogates becoming U+FFFD. Attributes are written by orjson,
or by json for what orjson cannot write (those integers, nesting past its 255 levels).

Server versions: the 9.x client rewrites ``application/json`` to ``application/vnd.elasticsearch+json;
compatible-with=9``, which an 8.x cluster refuses. Headers that already name the vendor media type
are left alone, but the typed API methods (``search``, ``open_point_in_time``...) pass their own
``accept: application/json`` per call, which overrides any client-wide default. So every call goes
through ``Elasticsearch.perform_request`` with explicit ``compatible-with=<major>`` headers; with
``server_version: auto`` the major is read from ``GET /`` asked as ``compatible-with=8``, which
8.x and 9.x clusters both accept.
"""

import json
import logging
import re
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import IO, Any, TypeVar
from urllib.parse import quote

import orjson
import pyarrow as pa
import pyarrow.compute as pc
from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import (
    ConnectionTimeout,
    NodeConfig,
    SerializationError,
    TlsError,
    Urllib3HttpNode,
)
from elasticsearch import ApiError, Elasticsearch, UnsupportedProductError
from elasticsearch.serializer import OrjsonSerializer

from obs_pipelines.config import ElasticsearchSourceConfig, EsFieldMapping
from obs_pipelines.errors import SourceError
from obs_pipelines.schemas import LOG_RECORDS
from obs_pipelines.sources.http import (
    Deadline,
    DeadlineExceeded,
    InFlight,
    ScrubbedLogs,
    cut_mid_answer,
    elasticsearch_options,
    json_cut_short,
    scrub,
    with_deadline,
)
from obs_pipelines.windows import TimeWindow

log = logging.getLogger(__name__)
for _name in ("elastic_transport.node", "elastic_transport.transport", "elasticsearch"):
    logging.getLogger(_name).addFilter(ScrubbedLogs())  # they quote answers at DEBUG

DATE_FORMAT = "strict_date_optional_time_nanos"
SUPPORTED_MAJORS = (8, 9)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ABSENT = object()
_MAJOR_IN_REFUSAL = re.compile(r"must be either version (\d+)")
# A JSON integer of 20 digits or more may be past 64 bits, which orjson would read as a float (a
# false match inside a string only costs the slower, equally exact decode).
_LONG_INTEGER = re.compile(rb"[:,\[]\s*-?\d{20}")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_SPOOL_OPTIONS = pa.ipc.IpcWriteOptions(compression="lz4")
_CUT_SHORT_FIX = "check the cluster's health and any proxy in between, then rerun"
T = TypeVar("T")


class _Transient(Exception):
    """A failure worth retrying; ``problem`` and ``fix`` make the final message if retries run out."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix


class _PitExpired(Exception):
    """The point in time is gone (expired or closed); the window must restart on a new one."""


class _Cancelled(Exception):
    """Another slice failed; this one stops without finishing."""


class _Spool:
    """A slice's pages held on local disk until the window is whole (an anonymous temporary
    file, gone with the process; Arrow IPC, lz4): the window stays all or nothing and restarts
    on a fresh point in time, while memory holds one page, not the window."""

    def __init__(self, window: TimeWindow) -> None:
        self._window = window
        self._file: IO[bytes] | None = None
        self._writer: pa.ipc.RecordBatchStreamWriter | None = None

    def add(self, table: pa.Table) -> None:
        with self._disk_errors():
            if self._writer is None:
                self._file = tempfile.TemporaryFile(prefix="obs-es-")  # noqa: SIM115 (closed by close())
                self._writer = pa.ipc.new_stream(self._file, LOG_RECORDS, options=_SPOOL_OPTIONS)
            self._writer.write_table(table)

    def tables(self) -> Iterator[pa.Table]:
        """The pages held, in the order they came, one at a time."""
        if self._writer is None or self._file is None:
            return
        with self._disk_errors():
            self._writer.close()
            self._file.seek(0)
            reader = pa.ipc.open_stream(self._file)
        while True:
            with self._disk_errors():
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    return
            yield pa.Table.from_batches([batch])

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    @contextmanager
    def _disk_errors(self) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            raise SourceError(
                f"could not hold the documents of {self._window} on local disk while exporting "
                f"them ({exc.strerror or exc}); free space in {tempfile.gettempdir()} or point "
                "TMPDIR at a disk with room for an hour of logs"
            ) from None


@dataclass
class _SliceResult:
    spool: _Spool
    rows: int = 0
    expected: int | None = None  # hits.total of the first page (exact: track_total_hits)
    pit_id: str = ""


class ElasticsearchLogs:
    """``log_records`` from the indices matching ``config.index`` (a TableSource)."""

    name = "elasticsearch"
    dataset = "log_records"

    def __init__(self, config: ElasticsearchSourceConfig) -> None:
        self.config = config
        self.url = scrub(config.url)  # for messages; the client gets config.url
        self._in_flight = InFlight()
        self._major: int | None = (
            None if config.server_version == "auto" else int(config.server_version)
        )
        self._client = _client(config)

    def read(self, window: TimeWindow) -> Iterator[pa.Table]:
        """Every document whose timestamp is in ``[window.start, window.end)``, a table per
        page, yielded once the whole window is exported (held on local disk until then)."""
        spools = self._export(window)
        try:
            for spool in spools:
                yield from spool.tables()
        finally:
            for spool in spools:
                spool.close()

    # --- window export ---

    def _export(self, window: TimeWindow) -> list[_Spool]:
        major = self.server_major()
        restarts = self.config.retries
        for attempt in range(restarts + 1):
            pit_ids = [self._open_pit(major)]
            try:
                return self._export_on_pit(window, major, pit_ids)
            except _PitExpired:
                if attempt == restarts:
                    break
                log.warning(
                    "point in time expired while exporting %s from %s; restarting the window "
                    "(%d of %d)",
                    window,
                    self.url,
                    attempt + 1,
                    restarts,
                )
            finally:
                self._close_pits(pit_ids, major)
        raise SourceError(
            f"The point in time on {self.config.index} at {self.url} kept expiring before "
            f"{window} was exported ({restarts + 1} attempts); raise sources.elasticsearch.keep_alive"
        )

    def _export_on_pit(self, window: TimeWindow, major: int, pit_ids: list[str]) -> list[_Spool]:
        slices = self.config.slices
        cancel = threading.Event()
        results = [_SliceResult(_Spool(window), pit_id=pit_ids[0]) for _ in range(slices)]
        try:
            try:
                if slices == 1:
                    self._export_slice(window, major, None, results[0], cancel)
                else:
                    self._export_slices_in_parallel(window, major, results, cancel)
            finally:
                # The PIT id may change between answers; whatever was last seen must be closed.
                pit_ids += list(dict.fromkeys(r.pit_id for r in results if r.pit_id not in pit_ids))
            for number, result in enumerate(results):
                if result.expected is not None and result.rows != result.expected:
                    where = f" slice {number}" if slices > 1 else ""
                    raise SourceError(
                        f"Elasticsearch at {self.url} announced {result.expected} documents in "
                        f"{window}{where} but returned {result.rows}; rerun, and if it persists "
                        "set sources.elasticsearch.slices to 1"
                    )
        except BaseException:
            for result in results:
                result.spool.close()
            raise
        return [result.spool for result in results]

    def _export_slices_in_parallel(
        self,
        window: TimeWindow,
        major: int,
        results: list[_SliceResult],
        cancel: threading.Event,
    ) -> None:
        """One thread per slice of the same PIT; the first failure stops the others."""
        count = len(results)
        with ThreadPoolExecutor(max_workers=count, thread_name_prefix="es-slice") as pool:
            futures = [
                pool.submit(
                    self._export_slice,
                    window,
                    major,
                    {"id": number, "max": count},
                    results[number],
                    cancel,
                )
                for number in range(count)
            ]
            try:
                wait(futures, return_when=FIRST_EXCEPTION)
            except BaseException:  # a terminated run: end the slices' requests, not wait for them
                cancel.set()
                self._in_flight.abort()
                raise
            if any(f.done() and f.exception() is not None for f in futures):
                cancel.set()
                wait(futures)
                raise _first_real_failure(futures)

    def _export_slice(
        self,
        window: TimeWindow,
        major: int,
        slicing: dict[str, int] | None,
        result: _SliceResult,
        cancel: threading.Event,
    ) -> None:
        """All pages of one slice (or the whole window), accumulated into ``result``."""
        timestamp = self.config.fields.timestamp
        size = self.config.page_size
        keep_alive = _keep_alive(self.config.keep_alive)
        body: dict[str, Any] = {
            "size": size,
            "query": {
                "range": {
                    timestamp: {
                        "gte": _iso(window.start),
                        "lt": _iso(window.end),
                        "format": DATE_FORMAT,
                    }
                }
            },
            "sort": [
                {
                    timestamp: {
                        "order": "asc",
                        "format": DATE_FORMAT,
                        "numeric_type": "date_nanos",
                    }
                },
                {"_shard_doc": "asc"},
            ],
            "pit": {"id": result.pit_id, "keep_alive": keep_alive},
            "track_total_hits": True,
        }
        if slicing is not None:
            body["slice"] = slicing
        while True:
            if cancel.is_set():
                raise _Cancelled()
            answer = self._retrying(lambda b=body: self._search_page(b, major), "search", cancel)
            hits = answer["hits"]["hits"]
            if result.expected is None:
                total = answer["hits"].get("total") or {}
                if total.get("relation") == "eq":
                    result.expected = int(total["value"])
            result.pit_id = answer.get("pit_id") or result.pit_id
            if hits:
                result.spool.add(_inside(_page_table(hits, self.config.fields), window))
                result.rows += len(hits)
            if len(hits) < size:
                return
            body = {
                **body,
                "pit": {"id": result.pit_id, "keep_alive": keep_alive},
                "search_after": hits[-1]["sort"],
                "track_total_hits": False,
            }

    def _search_page(self, body: dict[str, Any], major: int) -> dict[str, Any]:
        """One search request; partial shard failures and timeouts count as transient."""
        answer = self._request("POST", "/_search", major, body=body, what="search")
        shards = answer.get("_shards") or {}
        if shards.get("failed"):
            failure = (shards.get("failures") or [{}])[0]
            reason = failure.get("reason") or {}
            raise _Transient(
                f"failed on {shards['failed']} of {shards.get('total')} shards "
                f"({_one_line(failure.get('index'))}: {_one_line(reason.get('type'))}: "
                f"{_one_line(reason.get('reason'))})",
                "rerun once every shard of sources.elasticsearch.index is available",
            )
        if answer.get("timed_out"):
            raise _Transient(
                "timed out searching and returned partial results",
                "lower sources.elasticsearch.page_size or rerun when the cluster is less busy",
            )
        if "hits" not in answer or "hits" not in answer["hits"]:
            raise SourceError(
                f"Elasticsearch at {self.url} answered a search without hits; "
                "check that sources.elasticsearch.url points at Elasticsearch itself"
            )
        return answer

    # --- point in time ---

    def _open_pit(self, major: int) -> str:
        def attempt() -> str:
            answer = self._request(
                "POST",
                f"/{quote(self.config.index, safe=',*')}/_pit",
                major,
                params={"keep_alive": _keep_alive(self.config.keep_alive)},
                what="open a point in time",
            )
            shards = answer.get("_shards") or {}
            if shards.get("total") == 0:
                self._close_pits([answer["id"]], major)
                raise self._no_index("the point in time opened on 0 shards")
            if shards.get("failed"):
                self._close_pits([answer["id"]], major)
                raise _Transient(
                    f"opened a point in time missing {shards['failed']} of "
                    f"{shards.get('total')} shards",
                    "rerun once every shard of sources.elasticsearch.index is available",
                )
            return str(answer["id"])

        return self._retrying(attempt, "open a point in time", None)

    def _close_pits(self, pit_ids: list[str], major: int) -> None:
        """Best effort: a PIT left open only holds resources until its keep_alive runs out."""
        for pit_id in pit_ids:
            try:
                with self._deadline():
                    self._client.perform_request(
                        "DELETE", "/_pit", headers=_headers(major, body=True), body={"id": pit_id}
                    )
            except ApiError as exc:
                if exc.meta.status != 404:  # 404: already expired or closed
                    log.warning("could not close point in time at %s: %s", self.url, _one_line(exc))
            except Exception as exc:  # never mask the export's own outcome
                log.warning("could not close point in time at %s: %s", self.url, _one_line(exc))

    # --- server version ---

    def server_major(self) -> int:
        """The cluster's major version: forced by config, or asked once with ``GET /``."""
        if self._major is None:
            self._major = self._retrying(self._detect_major, "read the cluster version", None)
        return self._major

    def _detect_major(self) -> int:
        # compatible-with=8 is accepted by 8.x (current) and 9.x (previous major) alike, and the
        # body names the real version.
        try:
            with self._deadline():
                response = self._client.perform_request("GET", "/", headers=_headers(8, body=False))
        except DeadlineExceeded as exc:
            raise self._translate(exc, "read the cluster version", 8) from None
        except ApiError as exc:
            refused = _MAJOR_IN_REFUSAL.search(_cause_reason(exc.body))
            if exc.meta.status == 400 and refused:
                return self._check_major(int(refused.group(1)), refused.group(1))
            raise self._translate(exc, "read the cluster version", 8) from None
        except (TransportConnectionError, ConnectionTimeout, SerializationError) as exc:
            raise self._translate(exc, "read the cluster version", 8) from None
        body = response.body if isinstance(response.body, dict) else {}
        number = str((body.get("version") or {}).get("number", ""))
        if not number.split(".")[0].isdigit():
            raise SourceError(
                f"The server at {self.url} did not say its Elasticsearch version on GET /; "
                'set sources.elasticsearch.server_version to "8" or "9"'
            )
        return self._check_major(int(number.split(".")[0]), number)

    def _check_major(self, major: int, version: str) -> int:
        if major not in SUPPORTED_MAJORS:
            raise SourceError(
                f"Elasticsearch at {self.url} runs version {version}, and only 8.x and 9.x "
                "clusters are supported; point sources.elasticsearch.url at an 8.x or 9.x cluster"
            )
        return major

    # --- requests, retries, errors ---

    def _request(
        self,
        method: str,
        path: str,
        major: int,
        *,
        what: str,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        try:
            with self._deadline():
                response = self._client.perform_request(
                    method,
                    path,
                    params=params,
                    headers=_headers(major, body=body is not None),
                    body=body,
                )
        except (
            DeadlineExceeded,
            ApiError,
            TransportConnectionError,
            ConnectionTimeout,
            SerializationError,
        ) as exc:
            raise self._translate(exc, what, major) from None
        if not isinstance(response.body, dict):
            raise SourceError(
                f"Elasticsearch at {self.url} answered the request to {what} with something other "
                "than a JSON object; check sources.elasticsearch.url"
            )
        return response.body

    def _deadline(self) -> Deadline:
        """Each request, body included, must be done within sources.elasticsearch.timeout (the
        client's request_timeout bounds each socket read only)."""
        return self._in_flight.deadline(self.config.timeout.total_seconds())

    def _retrying(self, attempt: Callable[[], T], what: str, cancel: threading.Event | None) -> T:
        """Run ``attempt``, retrying transient failures with exponential backoff."""
        retries = self.config.retries
        for number in range(retries + 1):
            try:
                return attempt()
            except _Transient as problem:
                if number == retries:
                    raise SourceError(
                        f"Elasticsearch at {self.url} {problem.problem} when asked to {what}, "
                        f"still after {retries} {'retry' if retries == 1 else 'retries'}; "
                        f"{problem.fix}"
                    ) from None
                delay = self.config.retry_backoff_seconds * 2**number
                log.warning(
                    "Elasticsearch at %s %s; retry %d of %d in %.2fs",
                    self.url,
                    problem.problem,
                    number + 1,
                    retries,
                    delay,
                )
                if cancel is not None:
                    if cancel.wait(delay):
                        raise _Cancelled() from None
                else:
                    time.sleep(delay)
        raise AssertionError("unreachable")

    def _no_index(self, reason: str) -> SourceError:
        """A pattern that matches nothing (a typo, a renamed data stream) would read as a window
        without logs: refused, as a missing concrete index is."""
        return SourceError(
            f"Elasticsearch at {self.url} has no index matching {self.config.index} "
            f"({reason}); fix sources.elasticsearch.index"
        )

    def _translate(self, exc: Exception, what: str, major: int) -> Exception:
        """Our exception for a client exception: transient, PIT expiry, or a one-line SourceError."""
        config = "sources.elasticsearch"
        if isinstance(exc, DeadlineExceeded | ConnectionTimeout):
            return _Transient(
                f"did not finish answering within {self.config.timeout.total_seconds():g}s "
                f"({config}.timeout)",
                f"check the cluster's health or raise the timeout (or lower {config}.page_size)",
            )
        if isinstance(exc, TlsError):
            return SourceError(
                f"TLS to Elasticsearch at {self.url} failed ({_one_line(exc.message)}); "
                f"check {config}.tls"
            )
        if isinstance(exc, _JsonCutShort):
            return _Transient(f"cut its answer short ({exc.message})", _CUT_SHORT_FIX)
        if isinstance(exc, TransportConnectionError) and cut_mid_answer(exc):
            return _Transient(
                "cut its answer short (the connection closed before the body was complete)",
                _CUT_SHORT_FIX,
            )
        if isinstance(exc, TransportConnectionError):
            return _Transient(
                f"was unreachable ({_one_line(exc.message)})",
                f"check {config}.url and that the cluster is running",
            )
        if isinstance(exc, UnsupportedProductError):
            return SourceError(
                f"The server at {self.url} is not Elasticsearch (no X-Elastic-Product header); "
                f"point {config}.url at an Elasticsearch cluster"
            )
        if isinstance(exc, SerializationError):
            return SourceError(
                f"Elasticsearch at {self.url} answered something that is not JSON "
                f"({_one_line(str(exc))}); check {config}.url"
            )
        if not isinstance(exc, ApiError):
            return exc  # none of the client's errors above: a bug, which keeps its own words
        status = exc.meta.status
        kind, reason = _error_type(exc.body), _error_reason(exc.body)
        if status == 404 and "search_context_missing_exception" in _root_types(exc.body):
            return _PitExpired()
        if status == 429 or status >= 500:
            return _Transient(
                f"answered HTTP {status} ({kind}: {reason})",
                f"lower {config}.slices or raise {config}.retry_backoff_seconds"
                if status == 429
                else "rerun once the cluster is healthy",
            )
        if status == 400 and kind == "media_type_header_exception":
            allowed = _MAJOR_IN_REFUSAL.search(_cause_reason(exc.body))
            cluster = f"an {allowed.group(1)}.x cluster" if allowed else "this cluster"
            return SourceError(
                f"Elasticsearch at {self.url} refuses compatible-with={major} requests, which "
                f"{cluster} does not speak; set {config}.server_version to "
                f'"auto" or the cluster\'s major version'
            )
        if status == 401:
            return SourceError(
                f"Elasticsearch at {self.url} refused the credentials (HTTP 401: {reason}); "
                f"check {config}.auth and the environment variables it names"
            )
        if status == 403:
            return SourceError(
                f"Elasticsearch at {self.url} denied the request to {what} (HTTP 403: {reason}); "
                f"grant the user of {config}.auth the read privilege on {self.config.index}"
            )
        if status == 404 and kind == "index_not_found_exception":
            return self._no_index(reason)
        return SourceError(
            f"Elasticsearch at {self.url} refused the request to {what} (HTTP {status}, "
            f"{kind}: {reason}); check {config}.index and {config}.fields.timestamp"
        )


# --- documents to Arrow ------------------------------------------------------------------


def _page_table(hits: list[dict[str, Any]], fields: EsFieldMapping) -> pa.Table:
    """One page of hits as a ``log_records`` table: Python lists first, one ``pa.array`` each."""
    ts_values: list[Any] = []
    service: list[str | None] = []
    level: list[str | None] = []
    message: list[str | None] = []
    trace_id: list[str | None] = []
    span_id: list[str | None] = []
    host: list[str | None] = []
    index: list[str] = []
    doc_id: list[str] = []
    attributes: list[str] = []
    for hit in hits:
        source = hit.get("_source") or {}
        ts_values.append(hit["sort"][0])
        _pop_field(source, fields.timestamp)
        service.append(_text(_pop_field(source, fields.service), hit))
        raw_level = _text(_pop_field(source, fields.level), hit)
        level.append(raw_level.lower() if raw_level is not None else None)
        message.append(_text(_pop_field(source, fields.message), hit))
        trace_id.append(_text(_pop_field(source, fields.trace_id), hit))
        span_id.append(_text(_pop_field(source, fields.span_id), hit))
        host.append(_text(_pop_field(source, fields.host), hit))
        index.append(hit["_index"])
        doc_id.append(hit["_id"])
        attributes.append(_json_text(source, hit))
    string = pa.string()
    return pa.table(
        [
            _timestamps(ts_values),
            pa.array(service, string),
            pa.array(level, string),
            pa.array(message, string),
            pa.array(trace_id, string),
            pa.array(span_id, string),
            pa.array(host, string),
            pa.array(index, string),
            pa.array(doc_id, string),
            pa.array(attributes, string),
        ],
        schema=LOG_RECORDS,
    )


def _inside(table: pa.Table, window: TimeWindow) -> pa.Table:
    """The rows of ``table`` whose time is in ``window``."""
    ts = table.column("ts")
    inside = pc.and_(
        pc.greater_equal(ts, pa.scalar(_micros(window.start), pa.timestamp("us"))),
        pc.less(ts, pa.scalar(_micros(window.end), pa.timestamp("us"))),
    )
    return table.filter(inside)


def _pop_field(source: dict[str, Any], path: str) -> Any:
    """Remove and return the value at ``path``, stored as nested objects, a literal dotted key or
    a mix of both (``{"log.level": ..}``, ``{"log": {"level": ..}}``); emptied parents go too."""
    if path in source:
        return source.pop(path)
    cut = path.find(".")
    while cut != -1:
        inner = source.get(path[:cut])
        if isinstance(inner, dict):
            value = _pop_field(inner, path[cut + 1 :])
            if value is not _ABSENT:
                if not inner:
                    del source[path[:cut]]
                return value
        cut = path.find(".", cut + 1)
    return _ABSENT


def _text(value: Any, hit: dict[str, Any]) -> str | None:
    """A mapped field as text: strings as they are, other values as JSON."""
    if value is _ABSENT or value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, list) and len(value) == 1:
        return _text(value[0], hit)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return _json_text(value, hit)


def _json_text(value: Any, hit: dict[str, Any]) -> str:
    """Compact JSON with sorted keys: orjson's, or json's for what orjson refuses to write
    (integers past 64 bits, nesting past 255 levels), so such a document is stored, not a crash.
    Only nesting past Python's recursion limit is refused, in one line naming the document."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except orjson.JSONEncodeError:
        pass
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except RecursionError:
        raise SourceError(
            f"Document {hit.get('_id')} of index {hit.get('_index')} nests too deep to store as "
            f"JSON (past Python's recursion limit of {sys.getrecursionlimit()}); delete it or "
            "reindex it flatter, then rerun"
        ) from None


def _timestamps(values: list[Any]) -> pa.Array:
    """Sort values to UTC microseconds: ISO strings (up to nanoseconds) or epoch millis."""
    if all(isinstance(v, str) for v in values):
        nanos = pa.array(values, pa.string()).cast(pa.timestamp("ns", "UTC"))
        return nanos.cast(pa.timestamp("us", "UTC"), safe=False).cast(pa.timestamp("us"))
    micros = [
        int(v) * 1000
        if isinstance(v, int | float)
        else pa.scalar(str(v)).cast(pa.timestamp("ns", "UTC")).value // 1000
        for v in values
    ]
    return pa.array(micros, pa.int64()).cast(pa.timestamp("us"))


# --- small helpers -------------------------------------------------------------------------


def _client(config: ElasticsearchSourceConfig) -> Elasticsearch:
    """The official client, with retries left to us (they span shard failures and PIT expiry)."""
    options: dict[str, Any] = {
        "node_class": _DeadlineNode,
        "request_timeout": config.timeout.total_seconds(),
        "max_retries": 0,
        "retry_on_status": (),
        "retry_on_timeout": False,
        "connections_per_node": max(10, config.slices),
        "serializer": _Serializer(),
    }
    # Auth and TLS are read where every other HTTP client's are (sources/http.py).
    options.update(
        elasticsearch_options("sources.elasticsearch", config.url, config.auth, config.tls)
    )
    return Elasticsearch(config.url, **options)


class _JsonCutShort(SerializationError):
    """An answer whose JSON ends early although its framing looked whole: retried, as a
    connection closed mid-body is."""


class _Serializer(OrjsonSerializer):
    """orjson for every answer it reads faithfully; Python's json for those it refuses or would
    alter (see the module docstring), so one odd document does not block its window forever."""

    def loads(self, data: bytes) -> Any:
        if data == b"":
            return None
        if _LONG_INTEGER.search(data) is None:
            try:
                return orjson.loads(data)
            except orjson.JSONDecodeError:
                pass  # Python's json reads it, or says what is wrong
        try:
            return json.loads(data, object_pairs_hook=_without_lone_surrogates)
        except (ValueError, RecursionError) as exc:
            if json_cut_short(data):
                raise _JsonCutShort(f"its JSON ends after {len(data)} bytes", (exc,)) from None
            raise SerializationError(
                f"Unable to deserialize as JSON: {data[:200]!r}", (exc,)
            ) from None


def _without_lone_surrogates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json's object hook: the lone surrogates it keeps (Arrow cannot store them) become U+FFFD,
    in keys and values; nested objects went through their own call."""
    return {_surrogate_free(key): _surrogate_free(value) for key, value in pairs}


def _surrogate_free(value: Any) -> Any:
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)  # json joined every valid pair already
    if isinstance(value, list):
        return [_surrogate_free(item) for item in value]
    return value


class _DeadlineNode(Urllib3HttpNode):
    """elastic_transport's urllib3 node, with connections that obey the request's deadline."""

    def __init__(self, config: NodeConfig) -> None:
        super().__init__(config)
        self.pool.ConnectionCls = with_deadline(self.pool.ConnectionCls)


def _headers(major: int, *, body: bool) -> dict[str, str]:
    """Vendor media types for ``major``; the client leaves these untouched."""
    media_type = f"application/vnd.elasticsearch+json; compatible-with={major}"
    headers = {"accept": media_type}
    if body:
        headers["content-type"] = media_type
    return headers


def _first_real_failure(futures: list[Any]) -> BaseException:
    """The exception to report from failed slices: anything but the cancellations it caused."""
    errors = [f.exception() for f in futures if f.exception() is not None]
    for error in errors:
        if not isinstance(error, _Cancelled | _PitExpired):
            return error
    return next((e for e in errors if isinstance(e, _PitExpired)), errors[0])


def _keep_alive(duration: timedelta) -> str:
    return f"{max(1, round(duration.total_seconds() * 1000))}ms"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _one_line(text: Any, limit: int = 160) -> str:
    """Server or client text for a message: one line, short, without credentials."""
    flat = " ".join(scrub(str(text)).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _error_type(body: Any) -> str:
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return _one_line(error.get("type", "error"))
    return "error"


def _error_reason(body: Any) -> str:
    error = body.get("error") if isinstance(body, dict) else body
    if isinstance(error, dict):
        causes = error.get("root_cause") or []
        reason = causes[0].get("reason") if causes else None
        return _one_line(reason or error.get("reason") or error.get("type", ""))
    return _one_line(error or "no reason given")


def _root_types(body: Any) -> set[str]:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return set()
    return {str(c.get("type")) for c in error.get("root_cause") or []} | {str(error.get("type"))}


def _cause_reason(body: Any) -> str:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return ""
    cause = error.get("caused_by") or {}
    return str(cause.get("reason", "")) if isinstance(cause, dict) else ""
