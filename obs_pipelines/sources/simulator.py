"""Simulated Waardhaven telemetry: the embedded default source, so the whole platform runs offline.

It models the seed's services as Prometheus would scrape them: every target is scraped every
``scrape_interval`` at its own phase, with a few milliseconds of jitter; counters count whole events
and reset when an instance restarts (a nightly deploy, or a crash); histograms are cumulative by
``le``; traffic follows the day. A weekly schedule of incidents gives the reports something true to
find. Every value is a pure function of (seed, series, scrape index), so any window can be produced
on its own, windows concatenate seamlessly, and a rerun returns the same bits.
"""

from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pyarrow as pa

from obs_pipelines.config import SimulatorConfig
from obs_pipelines.schemas import METRIC_SAMPLES
from obs_pipelines.sources.base import MetricChunk
from obs_pipelines.sources.series import series_id, series_table
from obs_pipelines.windows import TimeWindow

DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS
# 1970-01-01 was a Thursday; weekly incident offsets count from Monday 00:00 UTC.
_MONDAY_OFFSET_MS = 4 * DAY_MS
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, float("inf"))


@dataclass(frozen=True)
class Incident:
    """A weekly recurring incident: ``start`` is the offset from Monday 00:00 UTC."""

    name: str
    service: str
    start: timedelta
    duration: timedelta
    effect: str  # errors | latency | lag | down
    severity: float
    instance: int | None = None  # only this instance, or all

    def active(self, ts_ms: np.ndarray) -> np.ndarray:
        offset = (ts_ms - _MONDAY_OFFSET_MS) % WEEK_MS
        begin = int(self.start.total_seconds() * 1000)
        return (offset >= begin) & (offset < begin + int(self.duration.total_seconds() * 1000))


INCIDENTS = (
    Incident(
        "market-data-lag",
        "market-data",
        timedelta(days=0, hours=7),
        timedelta(minutes=20),
        "lag",
        60.0,
    ),
    Incident(
        "api-outage",
        "waardhaven-api",
        timedelta(days=2, hours=14),
        timedelta(minutes=25),
        "errors",
        0.30,
    ),
    Incident(
        "api-instance-crash",
        "waardhaven-api",
        timedelta(days=2, hours=14, minutes=5),
        timedelta(minutes=10),
        "down",
        1.0,
        instance=0,
    ),
    Incident(
        "api-latency",
        "waardhaven-api",
        timedelta(days=4, hours=9, minutes=30),
        timedelta(minutes=45),
        "latency",
        0.35,
    ),
    Incident(
        "trades-silent-errors",
        "waardhaven-api",
        timedelta(days=5, hours=3),
        timedelta(minutes=30),
        "errors",
        0.04,
    ),
)

ENDPOINTS = (
    ("GET", "/api/portfolio", 6.0),
    ("POST", "/api/trades", 2.0),
    ("GET", "/api/recommendations", 3.0),
    ("GET", "/api/market/quotes", 12.0),
)
SYMBOLS = ("AAPL", "MSFT", "NVDA", "SPY")
NIGHTLY_DEPLOY_MS = 4 * 3_600_000


@dataclass(frozen=True)
class Target:
    service: str
    index: int
    phase_ms: int

    @property
    def instance(self) -> str:
        return f"{self.service}-{self.index}:9100"

    @property
    def key(self) -> int:
        return series_id("target", {"job": self.service, "instance": self.instance})


@dataclass
class Scrapes:
    """The scrape timestamps of one target inside a window, with the rolling counter context."""

    target: Target
    k: np.ndarray  # scrape indexes
    ts_ms: np.ndarray
    up: np.ndarray  # bool: the scrape succeeded
    reset_k: np.ndarray  # index of the first scrape after the latest restart, per scrape


class SimulatedMetrics:
    """Deterministic Waardhaven metrics behind the same interface as :class:`PrometheusSource`."""

    name = "simulator"

    def __init__(
        self, config: SimulatorConfig, incidents: tuple[Incident, ...] = INCIDENTS
    ) -> None:
        self.seed = config.seed
        self.interval_ms = int(config.scrape_interval.total_seconds() * 1000)
        self.incidents = incidents
        self.targets = [
            Target(service, i, hash_int(self.seed, service, i) % self.interval_ms)
            for service in FAMILIES
            for i in range(config.instances_per_service)
        ]
        # Per counter series and restart: the last scrape summed and its value, so that a run
        # reading hour after hour sums each increment once instead of again from the restart.
        self._counter_ends: dict[tuple[int, Hashable, int], tuple[int, float]] = {}

    def read_metrics(self, window: TimeWindow) -> Iterator[MetricChunk]:
        label_sets: list[dict[str, str]] = []
        id_parts, ts_parts, value_parts = [], [], []
        for target in self.targets:
            scrapes = self._scrapes(target, window)
            if scrapes.k.size == 0:
                continue
            produced = [("up", {}, scrapes.up.astype(np.float64), np.ones_like(scrapes.up))]
            produced += [
                (m, labels, values, scrapes.up)
                for m, labels, values in FAMILIES[target.service](self, scrapes)
            ]
            for metric, extra, values, present in produced:
                labels = {
                    "__name__": metric,
                    "job": target.service,
                    "instance": target.instance,
                    **extra,
                }
                label_sets.append(labels)
                sid = series_id(metric, {k: v for k, v in labels.items() if k != "__name__"})
                id_parts.append(np.full(int(present.sum()), sid, dtype=np.uint64))
                ts_parts.append(scrapes.ts_ms[present])
                value_parts.append(values[present])
        series, _ = series_table(label_sets)
        samples = pa.table(
            [
                pa.array(
                    np.concatenate(id_parts) if id_parts else np.empty(0, np.uint64), pa.uint64()
                ),
                pa.array(
                    np.concatenate(ts_parts) if ts_parts else np.empty(0, np.int64), pa.int64()
                ).cast(pa.timestamp("ms")),
                pa.array(np.concatenate(value_parts) if value_parts else np.empty(0), pa.float64()),
            ],
            schema=METRIC_SAMPLES,
        )
        yield MetricChunk(series=series, samples=samples)

    # -- scrapes, resets, incidents -------------------------------------------------------------

    def _scrapes(self, target: Target, window: TimeWindow) -> Scrapes:
        interval = self.interval_ms
        first = (window.start_ms - target.phase_ms) // interval - 1
        last = (window.end_ms - target.phase_ms) // interval + 1
        k = np.arange(first, last + 1, dtype=np.int64)
        ts = k * interval + target.phase_ms + self._jitter(target, k)
        inside = (ts >= window.start_ms) & (ts < window.end_ms)
        k, ts = k[inside], ts[inside]
        down = np.zeros(k.size, dtype=bool)
        for incident in self._incidents(target.service, "down", target.index):
            down |= incident.active(ts)
        reset_k = self._last_reset_k(target, k * interval + target.phase_ms)
        return Scrapes(target, k, ts, ~down, reset_k)

    def _jitter(self, target: Target, k: np.ndarray) -> np.ndarray:
        return (np.floor(_uniform(self.seed, target.key, k) * 11) - 5).astype(np.int64)

    def _last_reset_k(self, target: Target, ts: np.ndarray) -> np.ndarray:
        """Index of the first scrape at or after the latest restart (nightly deploy or crash end).

        ``ts`` are nominal (unjittered) scrape times, so the result never exceeds the scrape's index.
        """
        deploy = NIGHTLY_DEPLOY_MS + target.index * 7 * 60_000
        day_start = (ts - deploy) // DAY_MS * DAY_MS + deploy
        restart = day_start
        for incident in self._incidents(target.service, "down", target.index):
            begin = int(incident.start.total_seconds() * 1000) + _MONDAY_OFFSET_MS
            end = begin + int(incident.duration.total_seconds() * 1000)
            week = (ts - end) // WEEK_MS * WEEK_MS + end
            restart = np.maximum(restart, week)
        return -((target.phase_ms - restart) // self.interval_ms)

    def _incidents(self, service: str, effect: str, index: int | None = None) -> list[Incident]:
        return [
            i
            for i in self.incidents
            if i.service == service
            and i.effect == effect
            and (i.instance is None or index is None or i.instance == index)
        ]

    def _effect(
        self, service: str, effect: str, ts: np.ndarray, index: int | None = None
    ) -> np.ndarray:
        level = np.zeros(ts.size)
        for incident in self._incidents(service, effect, index):
            level = np.where(incident.active(ts), np.maximum(level, incident.severity), level)
        return level

    # -- value models ---------------------------------------------------------------------------

    def counter(
        self,
        scrapes: Scrapes,
        series: Hashable,
        per_scrape: Callable[[np.ndarray, np.ndarray], np.ndarray],
    ) -> np.ndarray:
        """Whole-event counter: the sum of per-scrape increments since the last restart.
        ``series`` names the counter among its target's (its metric and labels, say).

        Each run of the counter is summed from its own restart, so the value at a scrape does not
        depend on which window asked for it (bit for bit, float sums included: a later window
        continues the sequential sum where the earlier one stopped, adding the same numbers in
        the same order).
        """
        values = np.empty(scrapes.k.size)
        for restart in np.unique(scrapes.reset_k):
            selected = scrapes.reset_k == restart
            k = scrapes.k[selected]
            first, run = self._counter_run(
                scrapes.target, series, int(restart), int(k.min()), int(k.max()), per_scrape
            )
            values[selected] = run[k - first]
        return values

    def _counter_run(
        self,
        target: Target,
        series: Hashable,
        restart: int,
        first: int,
        last: int,
        per_scrape: Callable[[np.ndarray, np.ndarray], np.ndarray],
    ) -> tuple[int, np.ndarray]:
        """(k0, sums): the counter run begun at ``restart`` at scrapes k0.. ``last``, k0 <= ``first``;
        continued from the last scrape an earlier window summed when that is before ``first``."""
        end = self._counter_ends.get((target.key, series, restart))
        resume = end is not None and restart <= end[0] < first
        k0 = end[0] + 1 if resume else restart
        k = np.arange(k0, last + 1, dtype=np.int64)
        increments = per_scrape(k, k * self.interval_ms + target.phase_ms)
        run = (
            np.cumsum(np.concatenate(([end[1]], increments)))[1:]
            if resume
            else np.cumsum(increments)
        )
        self._counter_ends[(target.key, series, restart)] = (last, float(run[-1]))
        return k0, run

    def poisson(self, key: int, k: np.ndarray, mean: np.ndarray) -> np.ndarray:
        """Deterministic event counts with the given mean (normal approximation, clipped at 0)."""
        z = _normal(self.seed, key, k)
        return np.maximum(np.rint(mean + z * np.sqrt(np.maximum(mean, 1e-9))), 0)

    def gauge(self, key: int, k: np.ndarray, center: np.ndarray, noise: float) -> np.ndarray:
        return center + noise * _normal(self.seed, key, k)


def _last_call(
    per_scrape: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """``per_scrape`` remembering its last answer: a request count is the base of its count, its
    sum and every bucket, asked for the same scrapes (a range of ``k``; ``ts`` follows from it)."""
    last: list[tuple[tuple[int, int], np.ndarray]] = []

    def remembered(k: np.ndarray, ts: np.ndarray) -> np.ndarray:
        scrapes = (int(k[0]), k.size) if k.size else (0, 0)
        if not last or last[0][0] != scrapes:
            last[:] = [(scrapes, per_scrape(k, ts))]
        return last[0][1]

    return remembered


def diurnal(ts_ms: np.ndarray, depth: float = 0.6) -> np.ndarray:
    """Traffic shape over the UTC day: trough near 03:00, peak near 15:00."""
    hours = (ts_ms % DAY_MS) / 3_600_000
    return 1.0 + depth * np.sin(2 * np.pi * (hours - 9) / 24)


def _api(sim: SimulatedMetrics, s: Scrapes) -> list[tuple[str, dict[str, str], np.ndarray]]:
    out = []
    interval_s = sim.interval_ms / 1000
    for method, endpoint, rate in ENDPOINTS:
        base_key = series_id("api", {"e": endpoint, "i": s.target.instance})

        def requests_at(
            k: np.ndarray, ts: np.ndarray, base_key: int = base_key, rate: float = rate
        ) -> np.ndarray:
            return sim.poisson(base_key, k, rate * interval_s * diurnal(ts))

        def error_share(ts: np.ndarray, endpoint: str = endpoint) -> np.ndarray:
            share = 0.0005 + sim._effect("waardhaven-api", "errors", ts)
            return share if endpoint != "/api/portfolio" else np.minimum(share, 0.002)

        def errors_at(
            k: np.ndarray,
            ts: np.ndarray,
            base_key: int = base_key,
            requests_at=requests_at,
            error_share=error_share,
        ) -> np.ndarray:
            total = requests_at(k, ts)
            return np.minimum(sim.poisson(base_key ^ 0xE, k, total * error_share(ts)), total)

        def slow_share(ts: np.ndarray, le: float) -> np.ndarray:
            degraded = sim._effect("waardhaven-api", "latency", ts)
            # Log-normal-ish latency: median 60 ms; the latency incident shifts mass above 500 ms.
            base = 1 - np.exp(-le / 0.09)
            return np.clip(base - np.where(le < 2.5, degraded, 0), 0, 1)

        for status, count_fn in (
            ("200", _last_call(lambda k, ts, r=requests_at, e=errors_at: r(k, ts) - e(k, ts))),
            ("500", _last_call(errors_at)),
        ):
            labels = {"method": method, "endpoint": endpoint, "status": status}
            count = sim.counter(s, ("count", method, endpoint, status), count_fn)
            out.append(("api_request_duration_seconds_count", labels, count))
            for le in LATENCY_BUCKETS:
                le_text = "+Inf" if le == float("inf") else repr(le)

                def bucket_fn(
                    k: np.ndarray, ts: np.ndarray, le: float = le, count_fn=count_fn
                ) -> np.ndarray:
                    n = count_fn(k, ts)
                    return n if le == float("inf") else np.floor(n * slow_share(ts, le))

                out.append(
                    (
                        "api_request_duration_seconds_bucket",
                        {**labels, "le": le_text},
                        sim.counter(s, ("bucket", method, endpoint, status, le), bucket_fn),
                    )
                )
            out.append(
                (
                    "api_request_duration_seconds_sum",
                    labels,
                    sim.counter(
                        s,
                        ("sum", method, endpoint, status),
                        lambda k, ts, c=count_fn: (
                            c(k, ts) * (0.07 + 0.5 * sim._effect("waardhaven-api", "latency", ts))
                        ),
                    ),
                )
            )
    return out


def _trading(sim: SimulatedMetrics, s: Scrapes) -> list[tuple[str, dict[str, str], np.ndarray]]:
    out = []
    for symbol in SYMBOLS:
        for side in ("buy", "sell"):
            for order_type in ("market", "limit"):
                key = series_id(
                    "trades", {"s": symbol, "d": side, "o": order_type, "i": s.target.instance}
                )
                counts = sim.counter(
                    s, key, lambda k, ts, key=key: sim.poisson(key, k, 0.8 * diurnal(ts, 0.9))
                )
                out.append(
                    (
                        "trades_executed_total",
                        {"symbol": symbol, "side": side, "order_type": order_type},
                        counts,
                    )
                )
    return out


def _market_data(sim: SimulatedMetrics, s: Scrapes) -> list[tuple[str, dict[str, str], np.ndarray]]:
    key = series_id("lag", {"i": s.target.instance})
    spike = sim._effect("market-data", "lag", s.ts_ms)
    base = np.abs(sim.gauge(key, s.k, np.full(s.k.size, 1.2), 0.6))
    # Rare short hiccups above 5 s keep the 99%-within-5s freshness SLO honest.
    hiccup = _uniform(sim.seed, key ^ 0x55, s.k) < 0.004
    lag = (
        base + np.where(hiccup, 6.0, 0.0) + spike * (1 + 0.3 * _uniform(sim.seed, key ^ 0x77, s.k))
    )
    return [
        (
            "data_pipeline_lag_seconds",
            {"pipeline": "market-data", "source": "polygon"},
            np.round(lag, 3),
        )
    ]


def _recommendations(
    sim: SimulatedMetrics, s: Scrapes
) -> list[tuple[str, dict[str, str], np.ndarray]]:
    out = []
    for kind in ("momentum", "value"):
        for horizon in ("1d", "1w"):
            key = series_id("acc", {"k": kind, "h": horizon, "i": s.target.instance})
            out.append(
                (
                    "recommendation_accuracy_ratio",
                    {"recommendation_type": kind, "time_horizon": horizon},
                    np.clip(sim.gauge(key, s.k, np.full(s.k.size, 0.72), 0.04), 0, 1),
                )
            )
    return out


def _postgresql(sim: SimulatedMetrics, s: Scrapes) -> list[tuple[str, dict[str, str], np.ndarray]]:
    key = series_id("pg", {"i": s.target.instance})
    active = np.clip(np.rint(sim.gauge(key, s.k, 40 * diurnal(s.ts_ms), 5)), 0, 100)
    return [
        ("database_connections_active", {}, active),
        ("database_connections_max", {}, np.full(s.k.size, 100.0)),
    ]


def _redis(sim: SimulatedMetrics, s: Scrapes) -> list[tuple[str, dict[str, str], np.ndarray]]:
    out = []
    for cache in ("quotes", "sessions"):
        key = series_id("redis", {"c": cache, "i": s.target.instance})
        out.append(
            (
                "cache_hit_ratio",
                {"cache_type": cache, "cache_key_prefix": cache[:5]},
                np.clip(sim.gauge(key, s.k, np.full(s.k.size, 0.93), 0.02), 0, 1),
            )
        )
    return out


def _kafka(sim: SimulatedMetrics, s: Scrapes) -> list[tuple[str, dict[str, str], np.ndarray]]:
    key = series_id("kafka", {"i": s.target.instance})
    return [
        (
            "kafka_consumergroup_lag",
            {"consumergroup": "market-data", "topic": "quotes"},
            np.maximum(np.rint(sim.gauge(key, s.k, 200 * diurnal(s.ts_ms), 50)), 0),
        )
    ]


def _auth(sim: SimulatedMetrics, s: Scrapes) -> list[tuple[str, dict[str, str], np.ndarray]]:
    out = []
    for status, rate in (("success", 1.5), ("failed", 0.05)):
        key = series_id("login", {"s": status, "i": s.target.instance})
        out.append(
            (
                "login_attempts_total",
                {"status": status},
                sim.counter(
                    s,
                    key,
                    lambda k, ts, key=key, rate=rate: sim.poisson(key, k, rate * diurnal(ts)),
                ),
            )
        )
    key = series_id("compliance", {"i": s.target.instance})
    violations = sim.counter(
        s, key, lambda k, ts: (_uniform(sim.seed, key, k) < 0.0005).astype(np.float64)
    )
    out.append(
        (
            "compliance_violations_total",
            {"violation_type": "trade_limit", "severity": "high"},
            violations,
        )
    )
    return out


FAMILIES: dict[
    str, Callable[[SimulatedMetrics, Scrapes], list[tuple[str, dict[str, str], np.ndarray]]]
] = {
    "waardhaven-api": _api,
    "trading-engine": _trading,
    "market-data": _market_data,
    "recommendation-engine": _recommendations,
    "postgresql": _postgresql,
    "redis": _redis,
    "kafka": _kafka,
    "auth-service": _auth,
}


def hash_int(seed: int, *parts: object) -> int:
    return series_id("seed", {str(i): str(p) for i, p in enumerate((seed, *parts))})


def _splitmix(seed: int, key: int, k: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = (
            k.astype(np.uint64) + np.uint64((seed * 0x9E3779B97F4A7C15 + key) & 0xFFFFFFFFFFFFFFFF)
        ) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _uniform(seed: int, key: int, k: np.ndarray) -> np.ndarray:
    return (_splitmix(seed, key, k) >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _normal(seed: int, key: int, k: np.ndarray) -> np.ndarray:
    u1 = np.maximum(_uniform(seed, key, k), 1e-12)
    u2 = _uniform(seed, key ^ 0x5BD1E995, k)
    return np.sqrt(-2 * np.log(u1)) * np.cos(2 * np.pi * u2)
