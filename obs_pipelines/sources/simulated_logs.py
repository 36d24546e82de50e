"""Simulated Waardhaven application logs: ECS-like documents as an Elasticsearch export would give.

Four kinds of lines, all pure functions of (seed, window) like the rest of the simulator:

- **access logs** of the API, one per request of :class:`ApiTraffic` (the same requests the traces
  sample), written when the request completes, carrying the trace and root span ids when the
  request was sampled: a logs-to-traces join finds the trace;
- **call logs** of the services the API calls (one line per call they served, inside their span,
  with its ids when sampled); recommendation-engine logs its calls too, but without trace ids:
  it is not instrumented for tracing;
- **chatter**: each service's own background lines (quote ingestion, logins, checkpoints...),
  Poisson per minute with the daily traffic shape, and surges that incidents switch on;
- **lifecycle** lines: nightly deploys (when the metrics' counters reset) and crashes.

The weekly incidents show as a real on-call engineer would see them: 5xx errors and
connection-pool errors during "api-outage", slow requests during "api-latency", lag warnings during
"market-data-lag", and errors on ``/api/trades`` during "trades-silent-errors" though no alert
fires. postgresql, redis and kafka log little; news-feed logs nothing (a coverage gap to find).
"""

import base64
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import orjson
import pyarrow as pa

from obs_pipelines.config import SimulatorConfig
from obs_pipelines.schemas import LOG_RECORDS
from obs_pipelines.sources.simulated_spans import (
    API_ERROR,
    CALLEE_ERROR,
    ERRORS_SCOPED_TO,
    UPSTREAM_TIMEOUT_US,
    ApiRequests,
    ApiTraffic,
    SpanGroup,
    main_callee,
    minute_events,
    minutes_covering,
    mix,
    window_us,
)
from obs_pipelines.sources.simulator import (
    _MONDAY_OFFSET_MS,
    DAY_MS,
    ENDPOINTS,
    INCIDENTS,
    NIGHTLY_DEPLOY_MS,
    SYMBOLS,
    WEEK_MS,
    Incident,
    _splitmix,
    _uniform,
    diurnal,
    hash_int,
)
from obs_pipelines.windows import HOUR, TimeWindow

APP_SERVICES = (
    "waardhaven-api",
    "trading-engine",
    "market-data",
    "recommendation-engine",
    "auth-service",
)
_KEY_DOC_A, _KEY_DOC_B = 0xD0C0_0001, 0xD0C0_0002
_KEY_DETAIL = 0xDE7A_0000
_SALT_DRAW = (0xB1, 0xB2, 0xB3)
# The API's access log is one logger; every line says which logger wrote it, as ECS's log.logger.
_ACCESS_LOGGER = "waardhaven.access"

Attributes = dict[str, object]
Render = Callable[[float, float, float], tuple[str, Attributes]]


def index_name(service: str, day: int) -> str:
    """The daily Elasticsearch index a service's line lands in, e.g. logs-waardhaven-api-2026.11.18."""
    date = datetime.fromtimestamp(day * 86_400, UTC)
    return f"logs-waardhaven-{service.removeprefix('waardhaven-')}-{date:%Y.%m.%d}"


def doc_ids(a: np.ndarray, b: np.ndarray) -> list[str]:
    """Elasticsearch-style 20-character URL-safe ids from 120 bits of two hashes per document."""
    pairs = np.stack(
        [np.asarray(a, np.uint64).astype(">u8"), np.asarray(b, np.uint64).astype(">u8")], axis=1
    )
    raw = pairs.view(np.uint8).reshape(-1, 16)[:, :15].tobytes()
    text = base64.urlsafe_b64encode(raw).decode()
    return [text[i : i + 20] for i in range(0, len(text), 20)]


@dataclass
class LogColumns:
    """Columns of log lines under construction; streams append whole arrays or lists at once."""

    ts_us: list[np.ndarray]
    service: list[str]
    level: list[str]
    message: list[str]
    trace_id: list[str | None]
    span_id: list[str | None]
    host: list[str]
    doc_id: list[str]
    attributes: list[str]

    @staticmethod
    def empty() -> "LogColumns":
        return LogColumns([], [], [], [], [], [], [], [], [])

    def add(
        self,
        ts_us: np.ndarray,
        service: str | list[str],
        level: str | list[str],
        messages: list[str],
        hosts: str | list[str],
        ids: list[str],
        attributes: list[Attributes],
        trace_ids: list[str | None] | None = None,
        span_ids: list[str | None] | None = None,
    ) -> None:
        n = len(messages)
        # Elasticsearch's date type keeps milliseconds.
        self.ts_us.append(np.asarray(ts_us, dtype=np.int64) // 1000 * 1000)
        self.service.extend([service] * n if isinstance(service, str) else service)
        self.level.extend([level] * n if isinstance(level, str) else level)
        self.message.extend(messages)
        self.host.extend([hosts] * n if isinstance(hosts, str) else hosts)
        self.doc_id.extend(ids)
        self.attributes.extend(orjson.dumps(a).decode() for a in attributes)
        self.trace_id.extend(trace_ids if trace_ids is not None else [None] * n)
        self.span_id.extend(span_ids if span_ids is not None else [None] * n)

    def table(self, start_us: int, end_us: int) -> pa.Table:
        """The lines whose time is in ``[start_us, end_us)``, sorted by (ts, doc_id)."""
        ts = np.concatenate(self.ts_us) if self.ts_us else np.empty(0, np.int64)
        inside = (ts >= start_us) & (ts < end_us)
        keep = np.flatnonzero(inside).tolist()
        days = (ts // 86_400_000_000).tolist()
        names: dict[tuple[str, int], str] = {}
        indexes = []
        for i in keep:
            key = (self.service[i], days[i])
            if key not in names:
                names[key] = index_name(*key)
            indexes.append(names[key])

        def pick(values: list) -> list:
            return [values[i] for i in keep]

        table = pa.table(
            [
                pa.array(ts[inside], pa.timestamp("us")),
                pa.array(pick(self.service), pa.string()),
                pa.array(pick(self.level), pa.string()),
                pa.array(pick(self.message), pa.string()),
                pa.array(pick(self.trace_id), pa.string()),
                pa.array(pick(self.span_id), pa.string()),
                pa.array(pick(self.host), pa.string()),
                pa.array(indexes, pa.string()),
                pa.array(pick(self.doc_id), pa.string()),
                pa.array(pick(self.attributes), pa.string()),
            ],
            schema=LOG_RECORDS,
        )
        return table.sort_by([("ts", "ascending"), ("doc_id", "ascending")])


# -- chatter: each service's own lines -----------------------------------------------------------


@dataclass(frozen=True)
class Chatter:
    """A stream of background lines of one service, per instance.

    ``per_minute`` is the rate at the daily mean (shaped by ``diurnal``); while an incident
    matching ``surge`` is active, ``surge_per_minute`` more lines a minute arrive.
    """

    service: str
    name: str
    level: str
    logger: str
    per_minute: float
    render: Render
    surge: str | None = None
    surge_per_minute: float = 0.0


def _symbol(u: float) -> str:
    return SYMBOLS[int(u * len(SYMBOLS))]


CHATTER = (
    Chatter(
        "waardhaven-api",
        "cache",
        "debug",
        "waardhaven.cache",
        0.5,
        lambda a, b, c: (
            f"Cache {'hit' if b < 0.9 else 'miss'} for portfolio:u{int(a * 5000)}",
            {"cache.hit": b < 0.9},
        ),
    ),
    Chatter(
        "waardhaven-api",
        "flags",
        "info",
        "waardhaven.config",
        0.1,
        lambda a, b, c: (f"Refreshed feature flags ({12 + int(a * 3)} flags)", {}),
    ),
    Chatter(
        "waardhaven-api",
        "pool",
        "error",
        "waardhaven.upstream",
        0.0,
        lambda a, b, c: (
            f"Connection pool to {('trading-engine', 'market-data')[int(a * 2)]} exhausted "
            f"(50/50 in use, {20 + int(b * 180)} waiting); failing request fast",
            {"pool.size": 50, "pool.waiting": 20 + int(b * 180)},
        ),
        surge="api-outage",
        surge_per_minute=6.0,
    ),
    Chatter(
        "waardhaven-api",
        "loop-lag",
        "warn",
        "waardhaven.runtime",
        0.0,
        lambda a, b, c: (
            f"Event loop blocked for {150 + int(a * 650)} ms",
            {"event_loop.lag_ms": 150 + int(a * 650)},
        ),
        surge="api-latency",
        surge_per_minute=3.0,
    ),
    Chatter(
        "trading-engine",
        "executions",
        "info",
        "trading.execution",
        2.5,
        lambda a, b, c: (
            f"Executed {'buy' if b < 0.55 else 'sell'} {1 + int(c * 200)} {_symbol(a)} "
            f"@ {50 + a * 400:.2f} ({'market' if c < 0.7 else 'limit'})",
            {"trade.symbol": _symbol(a), "trade.quantity": 1 + int(c * 200)},
        ),
    ),
    Chatter(
        "trading-engine",
        "risk",
        "debug",
        "trading.risk",
        1.0,
        lambda a, b, c: (f"Risk check passed for account a{int(a * 5000)}", {}),
    ),
    Chatter(
        "trading-engine",
        "settlement",
        "error",
        "trading.settlement",
        0.0,
        lambda a, b, c: (
            f"Settlement retry exhausted for order o{int(a * 10**8):08d}: ledger write "
            "conflict; order left pending",
            {"error.type": "LedgerWriteConflict"},
        ),
        surge="trades-silent-errors",
        surge_per_minute=1.0,
    ),
    Chatter(
        "market-data",
        "ingest",
        "info",
        "marketdata.ingest",
        2.0,
        lambda a, b, c: (
            f"Ingested {200 + int(a * 300)} quotes from polygon in {20 + int(b * 80)} ms",
            {"quotes.count": 200 + int(a * 300), "source": "polygon"},
        ),
    ),
    Chatter(
        "market-data",
        "offsets",
        "debug",
        "marketdata.kafka",
        0.5,
        lambda a, b, c: (
            f"Committed offset {int(a * 10**7)} for quotes-{int(b * 6)}",
            {"kafka.partition": int(b * 6)},
        ),
    ),
    Chatter(
        "market-data",
        "hiccup",
        "warn",
        "marketdata.freshness",
        0.016,
        lambda a, b, c: (
            f"Market data lag {6 + a * 2:.1f} s exceeds the 5 s freshness threshold "
            "(pipeline=market-data, source=polygon)",
            {"pipeline.lag_seconds": round(6 + a * 2, 1)},
        ),
    ),
    Chatter(
        "market-data",
        "lag",
        "warn",
        "marketdata.freshness",
        0.0,
        lambda a, b, c: (
            f"Market data lag {61 + a * 18:.1f} s exceeds the 5 s freshness threshold "
            "(pipeline=market-data, source=polygon)",
            {"pipeline.lag_seconds": round(61 + a * 18, 1)},
        ),
        surge="market-data-lag",
        surge_per_minute=6.0,
    ),
    Chatter(
        "market-data",
        "reconnect",
        "error",
        "marketdata.polygon",
        0.0,
        lambda a, b, c: (
            f"Polygon websocket stalled for {20 + int(a * 40)} s; reconnecting "
            f"(attempt {1 + int(b * 5)})",
            {"error.type": "StreamStalled"},
        ),
        surge="market-data-lag",
        surge_per_minute=1.0,
    ),
    Chatter(
        "recommendation-engine",
        "batch",
        "info",
        "reco.batch",
        1.0,
        lambda a, b, c: (
            f"Generated {100 + int(a * 900)} {'momentum' if b < 0.5 else 'value'} "
            f"recommendations (horizon {'1d' if c < 0.5 else '1w'}) in {200 + int(a * 800)} ms",
            {},
        ),
    ),
    Chatter(
        "recommendation-engine",
        "features",
        "debug",
        "reco.features",
        0.5,
        lambda a, b, c: (f"Feature store read {1000 + int(a * 9000)} rows", {}),
    ),
    Chatter(
        "auth-service",
        "login",
        "info",
        "auth.login",
        1.5,
        lambda a, b, c: (
            f"Login succeeded for user u{int(a * 5000)}",
            {"user.id": f"u{int(a * 5000)}"},
        ),
    ),
    Chatter(
        "auth-service",
        "login-failed",
        "warn",
        "auth.login",
        0.05,
        lambda a, b, c: (
            f"Login failed for user u{int(a * 5000)}: invalid credentials",
            {"user.id": f"u{int(a * 5000)}", "event.outcome": "failure"},
        ),
    ),
    Chatter(
        "postgresql",
        "checkpoint",
        "info",
        "postgres",
        0.2,
        lambda a, b, c: (
            f"checkpoint complete: wrote {100 + int(a * 4000)} buffers "
            f"({a * 5:.1f}%); write={b * 30:.3f} s, sync={c:.3f} s",
            {},
        ),
    ),
    Chatter(
        "postgresql",
        "slow-query",
        "warn",
        "postgres",
        0.3,
        lambda a, b, c: (
            f"duration: {1000 + a * 4000:.3f} ms  statement: SELECT * FROM positions "
            "WHERE account_id = $1",
            {"db.duration_ms": round(1000 + a * 4000, 3)},
        ),
    ),
    Chatter(
        "redis",
        "save",
        "info",
        "redis",
        0.05,
        lambda a, b, c: (f"Background saving started by pid {1000 + int(a * 30000)}", {}),
    ),
    Chatter(
        "kafka",
        "segment",
        "info",
        "kafka.log",
        0.2,
        lambda a, b, c: (
            f"[Log partition=quotes-{int(a * 6)}, dir=/var/lib/kafka] Rolled new log segment "
            f"at offset {int(b * 10**8)}",
            {},
        ),
    ),
    Chatter(
        "kafka",
        "rebalance",
        "info",
        "kafka.coordinator",
        0.05,
        lambda a, b, c: (
            f"[GroupCoordinator 1]: Stabilized group market-data generation {int(a * 1000)}",
            {},
        ),
    ),
)

# Which incidents switch a chatter surge on.
SURGES: dict[str, Callable[[Incident], bool]] = {
    "api-outage": lambda i: (
        i.service == "waardhaven-api" and i.effect == "errors" and i.name not in ERRORS_SCOPED_TO
    ),
    "api-latency": lambda i: i.service == "waardhaven-api" and i.effect == "latency",
    "market-data-lag": lambda i: i.service == "market-data" and i.effect == "lag",
    "trades-silent-errors": lambda i: i.name in ERRORS_SCOPED_TO,
}

# Call logs: what each called service says about one call it served, ok and failed.
_CALL_LINES: dict[str, tuple[str, Callable[[int, float], str], Callable[[int, float], str]]] = {
    "POST /auth/verify": (
        "auth.token",
        lambda user, u: f"Token verified for user u{user}",
        lambda user, u: f"Token rejected for user u{user}: expired",
    ),
    "GET /positions": (
        "trading.positions",
        lambda user, u: f"Loaded {1 + int(u * 40)} positions for account a{user}",
        lambda user, u: f"Failed to load positions for account a{user}: statement timeout",
    ),
    "POST /orders": (
        "trading.orders",
        lambda user, u: (
            f"Order accepted for account a{user}: {'buy' if u < 0.55 else 'sell'} "
            f"{1 + int(u * 200)} {_symbol(u)}"
        ),
        lambda user, u: (
            f"Order settlement failed for account a{user}: ledger write conflict; "
            "order left pending"
        ),
    ),
    "GET /quotes": (
        "marketdata.api",
        lambda user, u: f"Served {1 + int(u * 8)} quotes ({int(u * 100)}% from cache)",
        lambda user, u: "Quote lookup failed: upstream feed unavailable",
    ),
    "GET /recommendations": (
        "reco.api",
        lambda user, u: f"Served {3 + int(u * 7)} recommendations for user u{user}",
        lambda user, u: f"Scoring failed for user u{user}: feature store read timed out",
    ),
}
_CALLEE_REASON = {
    "trading-engine": "ledger write conflict",
    "market-data": "upstream feed unavailable",
    "recommendation-engine": "feature store read timed out",
}
_REJECTION = {
    400: "order rejected: insufficient buying power",
    401: "missing or expired token",
    404: "account not found",
}


class SimulatedLogs:
    """Deterministic Waardhaven logs behind the same interface as the Elasticsearch source."""

    name = "simulator"
    dataset = "log_records"

    def __init__(
        self, config: SimulatorConfig, incidents: tuple[Incident, ...] = INCIDENTS
    ) -> None:
        self.seed = config.seed
        self.instances = config.instances_per_service
        self.incidents = incidents
        self.traffic = ApiTraffic(config, incidents)

    def read(self, window: TimeWindow) -> Iterator[pa.Table]:
        """One table per hour of the window, each produced on its own (so long windows stream)."""
        for piece in window.split(HOUR):
            yield self.logs_table(piece)

    def logs_table(self, window: TimeWindow) -> pa.Table:
        """Every line whose time is in the window, sorted by (ts, doc_id)."""
        start_us, end_us = window_us(window)
        columns = LogColumns.empty()
        requests = self.traffic.requests(start_us, end_us)
        spans = self.traffic.spans(requests)
        trace_ids = self.traffic.trace_ids(requests.uid)
        self._access_logs(columns, requests, trace_ids)
        self._call_logs(columns, requests, spans, trace_ids)
        self._chatter(columns, start_us, end_us)
        self._lifecycle(columns, start_us, end_us)
        return columns.table(start_us, end_us)

    # -- access logs ---------------------------------------------------------------------------

    def _access_logs(
        self, columns: LogColumns, requests: ApiRequests, trace_ids: list[str]
    ) -> None:
        """One line per API request, at its completion, linked to its trace when sampled."""
        root_span_ids = self.traffic.span_ids(requests.uid, 0)
        levels, messages, attributes, traces, spans = [], [], [], [], []
        for i, (endpoint, duration, status, origin, user, sampled) in enumerate(
            zip(
                requests.endpoint.tolist(),
                requests.duration_us.tolist(),
                requests.status.tolist(),
                requests.error_origin.tolist(),
                requests.user.tolist(),
                requests.sampled.tolist(),
                strict=True,
            )
        ):
            method, path, _ = ENDPOINTS[endpoint]
            millis = duration / 1000
            line = f"{method} {path} {status} in {millis:.0f} ms"
            attrs: Attributes = {
                "log.logger": _ACCESS_LOGGER,
                "http.request.method": method,
                "url.path": path,
                "http.response.status_code": status,
                "event.duration": duration * 1000,  # ECS: nanoseconds
                "user.id": f"u{user}",
            }
            if status >= 500:
                level = "error"
                callee = main_callee(path)
                if origin == CALLEE_ERROR:
                    reason = (
                        f"{callee} returned 500 ({_CALLEE_REASON.get(callee, 'internal error')})"
                    )
                    attrs["error.type"] = "UpstreamError"
                elif origin == API_ERROR and status == 504:
                    reason = f"upstream {callee} timed out after {UPSTREAM_TIMEOUT_US // 1000} ms"
                    attrs["error.type"] = "UpstreamTimeout"
                else:
                    reason = f"connection pool to {callee} exhausted"
                    attrs["error.type"] = "ConnectionPoolExhausted"
                attrs["error.message"] = reason
                line = f"{line}: {reason}"
            elif status >= 400:
                level = "warn"
                line = f"{line}: {_REJECTION.get(status, 'rejected')}"
            elif duration >= 1_000_000:
                level = "warn"
                line = f"{line} (slow request)"
            else:
                level = "info"
            levels.append(level)
            messages.append(line)
            attributes.append(attrs)
            traces.append(trace_ids[i] if sampled else None)
            spans.append(root_span_ids[i] if sampled else None)
        uid = requests.uid
        columns.add(
            requests.start_us + requests.duration_us,
            "waardhaven-api",
            levels,
            messages,
            [f"waardhaven-api-{i}" for i in requests.instance.tolist()],
            doc_ids(_splitmix(self.seed, _KEY_DOC_A, uid), _splitmix(self.seed, _KEY_DOC_B, uid)),
            attributes,
            traces,
            spans,
        )

    # -- call logs -----------------------------------------------------------------------------

    def _call_logs(
        self,
        columns: LogColumns,
        requests: ApiRequests,
        groups: list[SpanGroup],
        trace_ids: list[str],
    ) -> None:
        """One line per call a downstream service served, halfway through it.

        Traced services log inside their server span (with its ids when sampled);
        recommendation-engine, untraced, logs in the middle of the API's client span to it.
        """
        for group in groups:
            traced = group.kind == "server" and group.service != "waardhaven-api"
            untraced = group.peer_service == "recommendation-engine" and (
                ("error.type", "connection_pool_exhausted") not in group.attributes  # never arrived
            )
            if traced or untraced:
                self._served(columns, requests, group, trace_ids, traced)

    def _served(
        self,
        columns: LogColumns,
        requests: ApiRequests,
        group: SpanGroup,
        trace_ids: list[str],
        traced: bool,
    ) -> None:
        service = group.service if traced else str(group.peer_service)
        logger, ok_line, failed_line = _CALL_LINES[group.operation]
        request_uid = requests.uid[group.request]
        uid = mix(request_uid, group.ordinal + 1)
        rejected = group.http_status == 401
        lines = [
            (failed_line if failed or refused else ok_line)(user, u)
            for failed, refused, user, u in zip(
                group.failed.tolist(),
                rejected.tolist(),
                requests.user[group.request].tolist(),
                _uniform(self.seed, _KEY_DETAIL, uid).tolist(),
                strict=True,
            )
        ]
        levels = np.where(group.failed, "error", np.where(rejected, "warn", "info")).tolist()
        attributes: list[Attributes] = [
            {"log.logger": logger, "user.id": f"u{user}"}
            for user in requests.user[group.request].tolist()
        ]
        linked = (requests.sampled[group.request] if traced else np.zeros(uid.size, bool)).tolist()
        span_ids = self.traffic.span_ids(request_uid, group.ordinal)
        instance = group.instance if traced else group.peer_instance
        columns.add(
            group.start_us + group.duration_us // 2,
            service,
            levels,
            lines,
            [f"{service}-{i}" for i in instance.tolist()],
            doc_ids(_splitmix(self.seed, _KEY_DOC_A, uid), _splitmix(self.seed, _KEY_DOC_B, uid)),
            attributes,
            [
                trace_ids[r] if keep else None
                for r, keep in zip(group.request.tolist(), linked, strict=True)
            ],
            [sid if keep else None for sid, keep in zip(span_ids, linked, strict=True)],
        )

    # -- chatter -------------------------------------------------------------------------------

    def _chatter(self, columns: LogColumns, start_us: int, end_us: int) -> None:
        minutes = minutes_covering(start_us, end_us)
        minute_ms = minutes * 60_000
        surges = {name: self._surge(match, minute_ms) for name, match in SURGES.items()}
        for stream in CHATTER:
            mean = stream.per_minute * diurnal(minute_ms + 30_000)
            if stream.surge is not None:
                mean = mean + stream.surge_per_minute * surges[stream.surge]
            for instance in range(self.instances):
                key = hash_int(self.seed, "chatter", stream.service, stream.name, instance)
                index, ts_us = minute_events(self.seed, key, minutes, mean)
                if index.size == 0:
                    continue
                draws = [_uniform(self.seed, key ^ salt, index).tolist() for salt in _SALT_DRAW]
                lines = [stream.render(a, b, c) for a, b, c in zip(*draws, strict=True)]
                columns.add(
                    ts_us,
                    stream.service,
                    stream.level,
                    [message for message, _ in lines],
                    f"{stream.service}-{instance}",
                    doc_ids(
                        _splitmix(self.seed, key ^ _KEY_DOC_A, index),
                        _splitmix(self.seed, key ^ _KEY_DOC_B, index),
                    ),
                    [{"log.logger": stream.logger, **attrs} for _, attrs in lines],
                )

    def _surge(self, match: Callable[[Incident], bool], ts_ms: np.ndarray) -> np.ndarray:
        """1.0 while a matching incident is active at each time, else 0.0."""
        active = np.zeros(ts_ms.shape, dtype=bool)
        for incident in self.incidents:
            if match(incident):
                active |= incident.active(ts_ms)
        return active.astype(np.float64)

    # -- lifecycle -----------------------------------------------------------------------------

    def _lifecycle(self, columns: LogColumns, start_us: int, end_us: int) -> None:
        """Nightly deploy restarts (when the metrics' counters reset) and crashes with restarts."""
        for service in APP_SERVICES:
            for instance in range(self.instances):
                host = f"{service}-{instance}"
                events = self._deploys(service, instance, start_us, end_us)
                events += self._crashes(service, instance, start_us, end_us)
                if not events:
                    continue
                ts = np.array([t for t, *_ in events], dtype=np.int64)
                keys = np.array([k for *_, k in events], dtype=np.uint64)
                columns.add(
                    ts,
                    service,
                    [level for _, level, _, _ in events],
                    [message for _, _, message, _ in events],
                    host,
                    doc_ids(
                        _splitmix(self.seed, _KEY_DOC_A, keys),
                        _splitmix(self.seed, _KEY_DOC_B, keys),
                    ),
                    [{"log.logger": "lifecycle", "host.name": host}] * len(events),
                )

    def _deploys(
        self, service: str, instance: int, start_us: int, end_us: int
    ) -> list[tuple[int, str, str, int]]:
        at_ms = NIGHTLY_DEPLOY_MS + instance * 7 * 60_000  # as the metrics simulator restarts
        events = []
        for day in range(start_us // 86_400_000_000 - 1, end_us // 86_400_000_000 + 1):
            deploy_us = (day * DAY_MS + at_ms) * 1000
            build = f"{datetime.fromtimestamp(day * 86_400, UTC):%Y.%m.%d}"
            key = hash_int(self.seed, "deploy", service, instance, day)
            events += [
                (deploy_us - 2_000_000, "info", "Received SIGTERM; draining connections", key),
                (
                    deploy_us + 2_500_000,
                    "info",
                    f"Started {service} build {build} on {service}-{instance}",
                    key ^ 1,
                ),
            ]
        return [e for e in events if start_us <= e[0] < end_us]

    def _crashes(
        self, service: str, instance: int, start_us: int, end_us: int
    ) -> list[tuple[int, str, str, int]]:
        events = []
        for incident in self.incidents:
            if incident.service != service or incident.effect != "down":
                continue
            if incident.instance not in (None, instance):
                continue
            begin_ms = _MONDAY_OFFSET_MS + int(incident.start.total_seconds() * 1000)
            end_ms = begin_ms + int(incident.duration.total_seconds() * 1000)
            first_week = (start_us // 1000 - end_ms) // WEEK_MS - 1
            for week in range(first_week, end_us // 1000 // WEEK_MS + 1):
                key = hash_int(self.seed, "crash", incident.name, instance, week)
                crash_us = (week * WEEK_MS + begin_ms) * 1000
                events += [
                    (
                        crash_us - 1_000,
                        "error",
                        "Out of memory: heap 1.9 GiB exceeds the 1.5 GiB limit; aborting",
                        key,
                    ),
                    (
                        (week * WEEK_MS + end_ms) * 1000 + 2_500_000,
                        "info",
                        f"Started {service} after crash on {service}-{instance}",
                        key ^ 1,
                    ),
                ]
        return [e for e in events if start_us <= e[0] < end_us]
