"""Simulated Waardhaven traces, and the API traffic that both traces and request logs come from.

One model of API requests (:class:`ApiTraffic`) feeds two datasets: every request writes an access
log line (``simulated_logs``), a head-sampled quarter of them also leave a trace here. Sharing the
requests is what makes logs and traces agree: the same status, the same timing, the same trace id.

The trace shapes follow the seed's architecture: the API's server span calls auth-service,
trading-engine, market-data and recommendation-engine over HTTP; those call postgresql, redis and
kafka. Databases and brokers have no spans of their own (as in real life), only client spans with
``peer_service`` set, and recommendation-engine is not instrumented at all: the API's calls to it
are its only trace of existence. The dependency report has to derive those edges from
``peer_service``, exactly as it would on real data.

Like the metrics simulator, everything is a pure function of (seed, window): requests arrive per
absolute minute with counts and offsets drawn from hashes, so any window is produced on its own and
hour windows concatenate into longer ones row for row.
"""

from collections.abc import Iterator
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta

import numpy as np
import orjson
import pyarrow as pa

from obs_pipelines.config import SimulatorConfig
from obs_pipelines.schemas import SPANS
from obs_pipelines.sources.simulator import (
    ENDPOINTS,
    INCIDENTS,
    Incident,
    _normal,
    _splitmix,
    _uniform,
    diurnal,
    hash_int,
)
from obs_pipelines.windows import HOUR, TimeWindow

MINUTE_US = 60_000_000
# Event ``j`` of absolute minute ``m`` has index ``m * SLOTS_PER_MINUTE + j``: a stable identity
# that does not depend on the window that asked for it.
SLOTS_PER_MINUTE = 256
# No request lasts longer than this, so generating one minute before a window sees every request
# whose spans or logs land inside it.
LOOKBACK_US = MINUTE_US
MAX_REQUEST_US = 10_000_000
UPSTREAM_TIMEOUT_US = 2_000_000

# The logs-and-traces world is a scaled-down replica of the metrics one: per API instance, this
# many requests a minute at the daily mean, split over ENDPOINTS by their weights.
API_REQUESTS_PER_MINUTE = 10.0
TRACE_SAMPLE_RATE = 0.25
BASELINE_ERROR_SHARE = 0.0005  # as in the metrics: callee-side failures on a good day
CLIENT_ERROR_SHARE = 0.01  # 4xx: bad input or an expired token

TRACED_SERVICES = frozenset({"waardhaven-api", "trading-engine", "market-data", "auth-service"})
# Error incidents that hit one endpoint: the same number of failures as the incident's severity
# spread over all traffic, concentrated on that endpoint (small enough that no alert fires).
ERRORS_SCOPED_TO = {"trades-silent-errors": "/api/trades"}
_TOTAL_WEIGHT = sum(weight for _, _, weight in ENDPOINTS)
_MEDIAN_LATENCY_US = {
    "/api/portfolio": 70_000,
    "/api/trades": 90_000,
    "/api/recommendations": 110_000,
    "/api/market/quotes": 35_000,
}

# Hash salts: each names one independent draw per event.
_SALT_OUTCOME, _SALT_CODE, _SALT_LATENCY, _SALT_SLOW, _SALT_SLOWDOWN = 0xA1, 0xA2, 0xA3, 0xA4, 0xA5
_SALT_SAMPLED, _SALT_UID, _SALT_USER, _SALT_OFFSET, _SALT_COUNT = 0xA6, 0xA7, 0xA8, 0xA9, 0xAA
_KEY_TRACE_HI, _KEY_TRACE_LO = 0x7A11_0001, 0x7A11_0002
_KEY_SPAN = 0x5BA0_0000  # hashed with (request uid, span ordinal)
_KEY_LAYOUT = 0x1A70_0000  # + draw number
_LAYOUT_DRAWS = 32  # per trace; the largest plan takes 12


# -- shared event machinery (the log simulator uses it too) ------------------------------------


def epoch_us(moment: datetime) -> int:
    """Microseconds since the epoch, exactly (no float rounding)."""
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def window_us(window: TimeWindow) -> tuple[int, int]:
    return epoch_us(window.start), epoch_us(window.end)


def minutes_covering(start_us: int, end_us: int) -> np.ndarray:
    """Absolute minute numbers that overlap ``[start_us, end_us)``."""
    return np.arange(start_us // MINUTE_US, -(-end_us // MINUTE_US), dtype=np.int64)


def poisson_counts(seed: int, key: int, k: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Exact Poisson counts by inverse CDF of one hashed uniform per ``k``.

    The metrics' normal approximation is fine for counts in the dozens but badly wrong for the
    rare events here (a mean of 0.02 a minute), so this inverts the CDF, vectorized over ``k``.
    """
    u = _uniform(seed, key, k)
    mean = np.broadcast_to(np.asarray(mean, dtype=np.float64), u.shape)
    term = np.exp(-mean)
    cdf = term.copy()
    counts = np.zeros(u.shape, dtype=np.int64)
    for n in range(1, int(mean.max(initial=0.0) * 3) + 30):
        more = u > cdf
        if not more.any():
            break
        counts += more
        term = term * mean / n
        cdf = cdf + term
    return counts


def minute_events(
    seed: int, key: int, minutes: np.ndarray, mean: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Poisson arrivals of one event stream: ``(event index, time in us)``, ordered by time.

    Counts are drawn per absolute minute and each event's offset inside its minute from its own
    index, so an event exists (at the same instant, with the same index) whatever window asks.
    """
    counts = np.minimum(
        poisson_counts(seed, key ^ _SALT_COUNT, minutes, mean), SLOTS_PER_MINUTE - 1
    )
    minute_of = np.repeat(minutes, counts)
    first_of_minute = np.repeat(np.cumsum(counts) - counts, counts)
    index = minute_of * SLOTS_PER_MINUTE + (np.arange(minute_of.size) - first_of_minute)
    offset = np.floor(_uniform(seed, key ^ _SALT_OFFSET, index) * MINUTE_US).astype(np.int64)
    ts_us = minute_of * MINUTE_US + offset
    order = np.argsort(ts_us, kind="stable")
    return index[order], ts_us[order]


def hex64(values: np.ndarray) -> list[str]:
    """Lower-case 16-digit hex of each uint64, in one pass over the bytes."""
    text = np.asarray(values, dtype=np.uint64).astype(">u8").tobytes().hex()
    return [text[i : i + 16] for i in range(0, len(text), 16)]


def mix(uid: np.ndarray, salt: np.ndarray | int) -> np.ndarray:
    """A per-row hash input from a request id and a small salt (a span ordinal, say)."""
    with np.errstate(over="ignore"):
        return np.asarray(uid, dtype=np.uint64) ^ (
            np.asarray(salt, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        )


def incident_level(
    incidents: tuple[Incident, ...],
    ts_ms: np.ndarray,
    *,
    service: str,
    effect: str,
    scoped: bool | None = None,
    endpoint: str | None = None,
) -> np.ndarray:
    """Largest severity of the matching incidents active at each time (0 when none is).

    ``scoped`` keeps only incidents that are (or are not) confined to one endpoint, ``endpoint``
    only those confined to that endpoint.
    """
    level = np.zeros(ts_ms.shape)
    for incident in incidents:
        if incident.service != service or incident.effect != effect:
            continue
        if scoped is not None and (incident.name in ERRORS_SCOPED_TO) != scoped:
            continue
        if endpoint is not None and ERRORS_SCOPED_TO.get(incident.name) != endpoint:
            continue
        level = np.where(incident.active(ts_ms), np.maximum(level, incident.severity), level)
    return level


# -- API traffic --------------------------------------------------------------------------------

# Where a failed request broke: nowhere, in the callee (it answered 500), or in the API itself
# (its connection pool to the callee was exhausted: the call never arrived, or timed out).
NO_ERROR, CALLEE_ERROR, API_ERROR = 0, 1, 2


@dataclass(frozen=True)
class ApiRequests:
    """Requests the API served, one array element per request."""

    uid: np.ndarray  # uint64, the request's identity (trace ids and doc ids derive from it)
    instance: np.ndarray  # API instance index
    endpoint: np.ndarray  # index into ENDPOINTS
    start_us: np.ndarray
    duration_us: np.ndarray
    status: np.ndarray  # HTTP status returned to the client
    error_origin: np.ndarray  # NO_ERROR | CALLEE_ERROR | API_ERROR
    sampled: np.ndarray  # bool: the head sampler kept this request's trace
    user: np.ndarray  # user number, shared by the access log and the spans

    def __len__(self) -> int:
        return int(self.uid.size)

    def take(self, selector: np.ndarray) -> "ApiRequests":
        return ApiRequests(**{f.name: getattr(self, f.name)[selector] for f in fields(self)})

    @staticmethod
    def concat(parts: list["ApiRequests"]) -> "ApiRequests":
        return ApiRequests(
            **{
                f.name: np.concatenate([getattr(p, f.name) for p in parts])
                for f in fields(ApiRequests)
            }
        )


@dataclass(frozen=True)
class Hop:
    """One downstream call in a trace plan: a client span, and a server span if ``peer`` is traced."""

    peer: str
    operation: str
    kind: str = "client"
    attributes: tuple[tuple[str, str], ...] = ()
    children: tuple["Hop", ...] = ()

    @property
    def is_http(self) -> bool:
        return " /" in self.operation  # "GET /quotes", not redis' "GET"


_REDIS_SESSION = Hop(
    "redis", "GET", attributes=(("db.system", "redis"), ("db.statement", "GET session:?"))
)
_REDIS_QUOTES = Hop(
    "redis", "MGET", attributes=(("db.system", "redis"), ("db.statement", "MGET quote:?"))
)
_AUTH = Hop("auth-service", "POST /auth/verify", children=(_REDIS_SESSION,))
_MARKET_DATA = Hop("market-data", "GET /quotes", children=(_REDIS_QUOTES,))
_PG = (("db.system", "postgresql"), ("db.name", "waardhaven"))

# Per endpoint: the calls it makes in order, and which one is the main call that can fail.
TRACE_PLANS: dict[str, tuple[tuple[Hop, ...], int]] = {
    "/api/portfolio": (
        (
            _AUTH,
            Hop(
                "trading-engine",
                "GET /positions",
                children=(
                    Hop(
                        "postgresql",
                        "SELECT waardhaven.positions",
                        attributes=(
                            *_PG,
                            ("db.statement", "SELECT * FROM positions WHERE account_id = $1"),
                        ),
                    ),
                ),
            ),
            _MARKET_DATA,
        ),
        1,
    ),
    "/api/trades": (
        (
            _AUTH,
            Hop(
                "trading-engine",
                "POST /orders",
                children=(
                    Hop(
                        "postgresql",
                        "INSERT waardhaven.orders",
                        attributes=(
                            *_PG,
                            ("db.statement", "INSERT INTO orders VALUES ($1, $2, $3, $4)"),
                        ),
                    ),
                    Hop(
                        "kafka",
                        "trades publish",
                        kind="producer",
                        attributes=(
                            ("messaging.system", "kafka"),
                            ("messaging.destination.name", "trades"),
                            ("messaging.operation", "publish"),
                        ),
                    ),
                ),
            ),
        ),
        1,
    ),
    "/api/recommendations": ((_AUTH, Hop("recommendation-engine", "GET /recommendations")), 1),
    "/api/market/quotes": ((_MARKET_DATA,), 0),
}


def main_callee(endpoint_path: str) -> str:
    """The service whose failure fails a request to this endpoint."""
    hops, main = TRACE_PLANS[endpoint_path]
    return hops[main].peer


@dataclass(frozen=True)
class SpanGroup:
    """The spans at one position of one trace plan: one array element per request that took it.

    Requests to one endpoint that ended the same way follow the same plan, so their traces have
    the same shape; laying out a whole group at once with numpy keeps an hour cheap.
    ``ordinal`` numbers the span within its trace (the root is 0) and ``parent`` its parent's.
    """

    ordinal: int
    parent: int  # -1 for the root
    service: str
    operation: str
    kind: str
    peer_service: str | None
    attributes: tuple[tuple[str, object], ...]  # the same for every span of the group
    request: np.ndarray  # index into the ApiRequests the group was built from
    start_us: np.ndarray
    duration_us: np.ndarray
    http_status: np.ndarray  # 0: no HTTP status
    failed: np.ndarray  # bool: status_code "error"
    instance: np.ndarray  # which instance of ``service`` emitted the span
    peer_instance: np.ndarray  # which instance of ``peer_service`` was called (-1: none)


class ApiTraffic:
    """The API's requests and the spans each would produce: the common cause of logs and traces."""

    def __init__(
        self, config: SimulatorConfig, incidents: tuple[Incident, ...] = INCIDENTS
    ) -> None:
        self.seed = config.seed
        self.instances = config.instances_per_service
        self.incidents = incidents

    # -- requests ------------------------------------------------------------------------------

    def requests(self, start_us: int, end_us: int) -> ApiRequests:
        """Every request that started in ``[start_us - LOOKBACK_US, end_us)``.

        The lookback catches requests that began before the window but whose later spans or
        completion log fall inside it.
        """
        lookback_start = start_us - LOOKBACK_US
        minutes = minutes_covering(lookback_start, end_us)
        mid_ms = minutes * 60_000 + 30_000
        parts = []
        for instance in range(self.instances):
            for endpoint, (_, path, weight) in enumerate(ENDPOINTS):
                key = hash_int(self.seed, "api-request", instance, path)
                mean = API_REQUESTS_PER_MINUTE * weight / _TOTAL_WEIGHT * diurnal(mid_ms)
                index, ts_us = minute_events(self.seed, key, minutes, mean)
                keep = (ts_us >= lookback_start) & (ts_us < end_us) & ~self._down(instance, ts_us)
                parts.append(self._outcomes(key, instance, endpoint, index[keep], ts_us[keep]))
        return ApiRequests.concat(parts)

    def _down(self, instance: int, ts_us: np.ndarray) -> np.ndarray:
        """A crashed instance serves nothing (the metrics show it as ``up == 0``)."""
        down = np.zeros(ts_us.shape, dtype=bool)
        for incident in self.incidents:
            if (
                incident.service == "waardhaven-api"
                and incident.effect == "down"
                and incident.instance in (None, instance)
            ):
                down |= incident.active(ts_us // 1000)
        return down

    def _outcomes(
        self, key: int, instance: int, endpoint: int, index: np.ndarray, ts_us: np.ndarray
    ) -> ApiRequests:
        seed, n = self.seed, index.size
        method, path, _ = ENDPOINTS[endpoint]
        ts_ms = ts_us // 1000
        callee_share, api_share = self._error_shares(path, ts_ms)
        u = _uniform(seed, key ^ _SALT_OUTCOME, index)
        code_draw = _uniform(seed, key ^ _SALT_CODE, index)
        callee_failed = u < callee_share
        api_failed = ~callee_failed & (u < callee_share + api_share)
        rejected = ~callee_failed & ~api_failed & (u >= 1 - CLIENT_ERROR_SHARE)

        status = np.full(n, 201 if method == "POST" else 200, dtype=np.int64)
        status[callee_failed] = 500
        status[api_failed] = np.where(code_draw[api_failed] < 0.6, 504, 503)
        has_auth = TRACE_PLANS[path][0][0].peer == "auth-service"
        invalid = 400 if method == "POST" else 404
        status[rejected] = np.where(has_auth & (code_draw[rejected] < 0.4), 401, invalid)

        latency = _MEDIAN_LATENCY_US[path] * np.exp(
            0.45 * _normal(seed, key ^ _SALT_LATENCY, index)
        )
        slow = _uniform(seed, key ^ _SALT_SLOW, index) < incident_level(
            self.incidents, ts_ms, service="waardhaven-api", effect="latency"
        )
        slowdown = 8 + 12 * _uniform(seed, key ^ _SALT_SLOWDOWN, index)
        latency = np.where(slow, latency * slowdown, latency)
        latency = np.where(
            api_failed,
            np.where(
                status == 504,
                UPSTREAM_TIMEOUT_US + 150_000 * code_draw,  # waited for the timeout
                1_000 + 4_000 * code_draw,  # failed fast: no free connection
            ),
            latency,
        )
        origin = np.where(callee_failed, CALLEE_ERROR, np.where(api_failed, API_ERROR, NO_ERROR))
        return ApiRequests(
            uid=_splitmix(seed, key ^ _SALT_UID, index),
            instance=np.full(n, instance, dtype=np.int64),
            endpoint=np.full(n, endpoint, dtype=np.int64),
            start_us=ts_us,
            duration_us=np.clip(np.rint(latency), 1_500, MAX_REQUEST_US).astype(np.int64),
            status=status,
            error_origin=origin.astype(np.int8),
            sampled=_uniform(seed, key ^ _SALT_SAMPLED, index) < TRACE_SAMPLE_RATE,
            user=np.floor(_uniform(seed, key ^ _SALT_USER, index) * 5000).astype(np.int64),
        )

    def _error_shares(self, path: str, ts_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Share of requests failing in the callee, and in the API itself, at each time."""
        api = incident_level(
            self.incidents, ts_ms, service="waardhaven-api", effect="errors", scoped=False
        )
        if path == "/api/portfolio":
            api = np.minimum(api, 0.002)  # as in the metrics: portfolio is served from a cache
        scoped = incident_level(
            self.incidents, ts_ms, service="waardhaven-api", effect="errors", endpoint=path
        )
        weight = next(w for _, p, w in ENDPOINTS if p == path)
        callee = BASELINE_ERROR_SHARE + np.minimum(scoped * _TOTAL_WEIGHT / weight, 0.9)
        return callee, api

    # -- ids -------------------------------------------------------------------------------------

    def trace_ids(self, uid: np.ndarray) -> list[str]:
        """32-hex trace id of each request uid: logs and spans derive it the same way."""
        high = hex64(_splitmix(self.seed, _KEY_TRACE_HI, uid))
        low = hex64(_splitmix(self.seed, _KEY_TRACE_LO, uid))
        return [h + lo for h, lo in zip(high, low, strict=True)]

    def span_ids(self, uid: np.ndarray, ordinal: np.ndarray | int) -> list[str]:
        """16-hex id of span ``ordinal`` of each request's trace."""
        return hex64(_splitmix(self.seed, _KEY_SPAN, mix(uid, ordinal)))

    # -- spans -----------------------------------------------------------------------------------

    def spans(self, requests: ApiRequests) -> list[SpanGroup]:
        """Every span of every request's trace (sampled or not: logs need the timings of all)."""
        draws = np.stack(
            [_uniform(self.seed, _KEY_LAYOUT + d, requests.uid) for d in range(_LAYOUT_DRAWS)],
            axis=1,
        )
        variant = _plan_variant(requests.status, requests.error_origin)
        plan_key = requests.endpoint * 8 + variant
        groups: list[SpanGroup] = []
        for key in np.unique(plan_key).tolist():
            chosen = np.flatnonzero(plan_key == key)
            endpoint, plan_variant = divmod(key, 8)
            layout = _Layout(chosen, draws[chosen], self.instances)
            method, path, _ = ENDPOINTS[endpoint]
            status = requests.status[chosen]
            instance = requests.instance[chosen]
            start, duration = requests.start_us[chosen], requests.duration_us[chosen]
            root = layout.add(
                parent=-1,
                service="waardhaven-api",
                operation=f"{method} {path}",
                kind="server",
                peer_service=None,
                attributes=(
                    ("http.request.method", method),
                    ("http.route", path),
                    ("url.path", path),
                ),
                start=start,
                duration=duration,
                http_status=status,
                failed=status >= 500,
                instance=instance,
                peer_instance=np.full(chosen.size, -1),
            )
            layout.calls(
                root, "waardhaven-api", instance, start, duration, _plan(path, plan_variant)
            )
            groups += layout.groups
        return groups


# Plan variants: how a request ended decides which calls it made.
_OK, _REJECTED, _UNAUTHORIZED, _CALLEE_FAILED, _API_FAILED = range(5)


def _plan_variant(status: np.ndarray, origin: np.ndarray) -> np.ndarray:
    variant = np.full(status.shape, _OK, dtype=np.int64)
    variant[(status >= 400) & (status < 500)] = _REJECTED
    variant[status == 401] = _UNAUTHORIZED
    variant[origin == CALLEE_ERROR] = _CALLEE_FAILED
    variant[origin == API_ERROR] = _API_FAILED
    return variant


def _plan(path: str, variant: int) -> list[tuple[Hop, str]]:
    """The calls a request made and how each ended: ok, unauthorized, failed or api_failed."""
    hops, main = TRACE_PLANS[path]
    before = [(hop, "ok") for hop in hops[:main]]
    if variant == _REJECTED:  # turned away before the main call: only the token check ran
        return before
    if variant == _UNAUTHORIZED:
        return [(hop, "unauthorized") for hop in hops[:main]]
    if variant == _CALLEE_FAILED:
        return [*before, (hops[main], "failed")]
    if variant == _API_FAILED:
        return [*before, (hops[main], "api_failed")]
    return [(hop, "ok") for hop in hops]


class _Layout:
    """Lays out the traces of one group: children run in sequence strictly inside their parent.

    Every request of the group takes the same draws in the same order, so the draw cursor and the
    span ordinals are plain integers shared by the whole group.
    """

    def __init__(self, request: np.ndarray, draws: np.ndarray, instances: int) -> None:
        self.request, self.draws, self.instances = request, draws, instances
        self.groups: list[SpanGroup] = []
        self.next_draw = 0

    def draw(self) -> np.ndarray:
        column = self.draws[:, self.next_draw]
        self.next_draw += 1
        return column

    def add(
        self,
        *,
        parent: int,
        service: str,
        operation: str,
        kind: str,
        peer_service: str | None,
        attributes: tuple[tuple[str, object], ...],
        start: np.ndarray,
        duration: np.ndarray,
        http_status: np.ndarray,
        failed: np.ndarray,
        instance: np.ndarray,
        peer_instance: np.ndarray,
    ) -> int:
        ordinal = len(self.groups)
        self.groups.append(
            SpanGroup(
                ordinal,
                parent,
                service,
                operation,
                kind,
                peer_service,
                attributes,
                self.request,
                start,
                duration,
                np.broadcast_to(http_status, self.request.shape),
                np.broadcast_to(failed, self.request.shape),
                instance,
                peer_instance,
            )
        )
        return ordinal

    def calls(
        self,
        parent: int,
        caller: str,
        caller_instance: np.ndarray,
        start: np.ndarray,
        duration: np.ndarray,
        calls: list[tuple[Hop, str]],
    ) -> None:
        if not calls:
            return
        # A call that waited for its timeout takes (almost) all of its parent's time.
        weights = [
            np.full(self.request.size, 20.0) if outcome == "api_failed" else 0.5 + self.draw()
            for _, outcome in calls
        ]
        busy, total = duration * 0.8, sum(weights)
        gap = duration // (10 * len(calls))
        cursor = start + duration // 20
        for (hop, outcome), weight in zip(calls, weights, strict=True):
            length = np.maximum(np.floor(busy * weight / total).astype(np.int64), 1)
            peer_instance = np.floor(self.draw() * self.instances).astype(np.int64)
            self._call(parent, caller, caller_instance, cursor, length, hop, outcome, peer_instance)
            cursor = cursor + length + gap

    def _call(
        self,
        parent: int,
        caller: str,
        caller_instance: np.ndarray,
        start: np.ndarray,
        length: np.ndarray,
        hop: Hop,
        outcome: str,
        peer_instance: np.ndarray,
    ) -> None:
        http_status = (
            {"ok": 200, "failed": 500, "unauthorized": 401}.get(outcome, 0) if hop.is_http else 0
        )
        attributes: tuple[tuple[str, object], ...] = (*hop.attributes, ("peer.service", hop.peer))
        if hop.is_http:
            method, route = hop.operation.split(" ", 1)
            attributes += (
                ("http.request.method", method),
                ("url.full", f"http://{hop.peer}:8080{route}"),
            )
        if outcome == "api_failed":
            attributes += (("error.type", "connection_pool_exhausted"),)
        client = self.add(
            parent=parent,
            service=caller,
            operation=hop.operation,
            kind=hop.kind,
            peer_service=hop.peer,
            attributes=attributes,
            start=start,
            duration=length,
            http_status=np.int64(http_status),
            # OpenTelemetry: any 4xx or 5xx fails a client span (and so does no answer at all).
            failed=np.bool_(outcome in {"failed", "api_failed"} or http_status >= 400),
            instance=caller_instance,
            peer_instance=peer_instance,
        )
        if hop.peer not in TRACED_SERVICES or outcome == "api_failed":
            return
        margin = np.minimum(300, length // 10)  # network time on either side of the server span
        method, route = hop.operation.split(" ", 1)
        server_start, server_length = start + margin, length - 2 * margin
        server = self.add(
            parent=client,
            service=hop.peer,
            operation=hop.operation,
            kind="server",
            peer_service=None,
            attributes=(("http.request.method", method), ("http.route", route)),
            start=server_start,
            duration=server_length,
            http_status=np.int64(http_status),
            failed=np.bool_(http_status >= 500),  # a 4xx answer is the client's fault
            instance=peer_instance,
            peer_instance=np.full(self.request.size, -1),
        )
        children = [(child, "ok") for child in hop.children]
        self.calls(server, hop.peer, peer_instance, server_start, server_length, children)


def span_attributes(group: SpanGroup, rows: np.ndarray, user: np.ndarray) -> list[str]:
    """JSON attributes of some spans of a group: its static ones plus host, peer and status."""
    static = dict(group.attributes)
    out = []
    for instance, peer, status, who in zip(
        group.instance[rows].tolist(),
        group.peer_instance[rows].tolist(),
        group.http_status[rows].tolist(),
        user[rows].tolist(),
        strict=True,
    ):
        attributes = {**static, "host.name": f"{group.service}-{instance}"}
        if peer >= 0:
            attributes["server.address"] = f"{group.peer_service}-{peer}"
        if status:
            attributes["http.response.status_code"] = status
        if group.ordinal == 0:
            attributes["user.id"] = f"u{who}"
        out.append(orjson.dumps(attributes).decode())
    return out


class SimulatedSpans:
    """Deterministic Waardhaven traces behind the same interface as the Jaeger source."""

    name = "simulator"
    dataset = "spans"

    def __init__(
        self, config: SimulatorConfig, incidents: tuple[Incident, ...] = INCIDENTS
    ) -> None:
        self.traffic = ApiTraffic(config, incidents)

    def read(self, window: TimeWindow) -> Iterator[pa.Table]:
        """One table per hour of the window, each produced on its own (so long windows stream)."""
        for piece in window.split(HOUR):
            yield self.spans_table(piece)

    def spans_table(self, window: TimeWindow) -> pa.Table:
        """Spans of sampled traces whose start is in the window, sorted by (start_ts, ids)."""
        start_us, end_us = window_us(window)
        requests = self.traffic.requests(start_us, end_us)
        requests = requests.take(requests.sampled)
        columns: dict[str, list] = {name: [] for name in SPANS.names}
        for group in self.traffic.spans(requests):
            rows = np.flatnonzero((group.start_us >= start_us) & (group.start_us < end_us))
            if rows.size == 0:
                continue
            n, uid = rows.size, requests.uid[group.request[rows]]
            columns["trace_id"] += self.traffic.trace_ids(uid)
            columns["span_id"] += self.traffic.span_ids(uid, group.ordinal)
            columns["parent_span_id"] += (
                self.traffic.span_ids(uid, group.parent) if group.parent >= 0 else [None] * n
            )
            columns["service"] += [group.service] * n
            columns["operation"] += [group.operation] * n
            columns["start_ts"].append(group.start_us[rows])
            columns["duration_us"].append(group.duration_us[rows])
            columns["kind"] += [group.kind] * n
            columns["status_code"] += np.where(group.failed[rows], "error", "unset").tolist()
            columns["is_error"].append(group.failed[rows])
            status = group.http_status[rows]
            columns["http_status"] += np.where(status > 0, status, None).tolist()
            columns["peer_service"] += [group.peer_service] * n
            columns["attributes"] += span_attributes(group, rows, requests.user[group.request])
        for name, dtype in (("start_ts", np.int64), ("duration_us", np.int64), ("is_error", bool)):
            parts = columns[name]
            columns[name] = np.concatenate(parts) if parts else np.empty(0, dtype)
        table = pa.table(
            [pa.array(columns[field.name], field.type) for field in SPANS], schema=SPANS
        )
        return table.sort_by(
            [("start_ts", "ascending"), ("trace_id", "ascending"), ("span_id", "ascending")]
        )
