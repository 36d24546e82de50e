"""Raw samples from Prometheus, with their exact timestamps.

Each request is an instant query of a range selector (``sel[3600000ms]``), which returns stored
samples untouched; ``query_range`` would re-sample on a step grid and is never used. The connection
(auth, TLS incl. client certificates, retries with backoff) is :func:`http.http_session`'s, shared
with prometheus-api-client, and obeys a total deadline per request (``sources.prometheus.timeout``,
retries included); the body is read raw and decoded by :mod:`prometheus_decode`. A window that
would load more samples than the server's ``--query.max-samples`` is halved until each request
fits. A run of several hours reads them as one stream (:meth:`PrometheusSource.read_metrics_hours`),
so the next hour's requests wait on the server while the lake stores the previous hour.
"""

import threading
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta

import numpy as np
import pyarrow as pa
import requests
from prometheus_api_client import PrometheusConnect

from obs_pipelines.config import PrometheusSourceConfig
from obs_pipelines.errors import SourceError
from obs_pipelines.schemas import METRIC_SAMPLES
from obs_pipelines.sources.base import MetricChunk
from obs_pipelines.sources.http import (
    DeadlineExceeded,
    InFlight,
    failure_reason,
    http_session,
    retry_policy,
    scrub,
    server_words,
    tls_failed,
)
from obs_pipelines.sources.prometheus_decode import (
    DecodedMatrix,
    cut_short,
    decode_matrix,
    not_json_api,
)
from obs_pipelines.sources.series import series_table
from obs_pipelines.windows import TimeWindow

# One request waits on Prometheus while the previous answer is decoded (measured in bench/).
REQUESTS_IN_FLIGHT = 2


class _TooManySamples(Exception):
    pass


class EndpointNotFound(SourceError):
    """The server has no such API path: Prometheus-compatible servers (Thanos Query, Mimir,
    VictoriaMetrics) lack some of Prometheus's own, e.g. ``/api/v1/status/config``."""


class PrometheusSource:
    name = "prometheus"

    def __init__(self, config: PrometheusSourceConfig) -> None:
        self.config = config
        self.url = scrub(config.url)  # for messages; requests go to config.url
        self.where = f"Prometheus at {self.url}"
        self.requests_made = 0
        self._count_lock = threading.Lock()
        self._in_flight = InFlight()
        # Every request here is a read, POST included, so every method is retried.
        retry = retry_policy(config.retries, config.retry_backoff_seconds)
        self._session = http_session(
            "sources.prometheus",
            config.auth,
            config.tls,
            retry=retry,
            headers={"Accept-Encoding": "gzip" if config.compress else "identity"},
        )
        ours = self._session.get_adapter(config.url)
        self.client = PrometheusConnect(
            url=config.url,
            retry=retry,
            session=self._session,
            timeout=config.timeout.total_seconds(),
            method="POST",
        )
        self._session.mount(config.url, ours)  # it mounts a plain adapter of its own on the URL

    def read_metrics(self, window: TimeWindow) -> Iterator[MetricChunk]:
        """Every raw sample of ``window``, a chunk per answer (see :meth:`read_metrics_hours`)."""
        for _, chunk in self.read_metrics_hours([window]):
            if chunk is not None:
                yield chunk

    def read_metrics_hours(
        self, windows: list[TimeWindow]
    ) -> Iterator[tuple[TimeWindow, MetricChunk | None]]:
        """Every (selector, piece) of every window, in order, with up to ``REQUESTS_IN_FLIGHT``
        requests waiting on the server while the caller decodes the previous answer; pieces over
        the sample limit are halved and queued again. After a window's last chunk comes
        ``(window, None)``: the next window's requests are already on the server while the
        caller stores that one (a run of many hours hides the server's time behind its own)."""
        pending = deque(
            (window, selector, piece)
            for window in windows
            for selector in self.config.selectors
            for piece in window.split(self.config.max_request_window)
        )
        left = Counter(window.start for window, _, _ in pending)  # answers still to come
        with ThreadPoolExecutor(
            max_workers=REQUESTS_IN_FLIGHT, thread_name_prefix="prometheus"
        ) as pool:
            in_flight: deque[tuple[TimeWindow, str, TimeWindow, Future[bytearray]]] = deque()
            try:
                while pending or in_flight:
                    while pending and len(in_flight) < REQUESTS_IN_FLIGHT:
                        window, selector, piece = pending.popleft()
                        in_flight.append(
                            (
                                window,
                                selector,
                                piece,
                                pool.submit(self._query_range_vector, selector, piece),
                            )
                        )
                    window, selector, piece, answer = in_flight.popleft()
                    try:
                        body = answer.result()
                    except _TooManySamples:
                        halves = self._halves(selector, piece)
                        pending.extendleft(reversed([(window, selector, h) for h in halves]))
                        left[window.start] += 1
                        continue
                    del answer  # the future holds the body too; neither outlives its decoding
                    chunk = _chunk(decode_matrix(body, self.where), piece)
                    del body
                    yield window, chunk
                    del chunk  # held by the caller as long as it needs it, not by this frame
                    left[window.start] -= 1
                    if not left[window.start]:
                        yield window, None
            finally:
                for *_, answer in in_flight:
                    answer.cancel()
                if in_flight:  # stopped early (an error, a terminated run): end them, not wait
                    self._in_flight.abort()

    def _halves(self, selector: str, piece: TimeWindow) -> tuple[TimeWindow, TimeWindow]:
        if piece.duration <= self.config.min_request_window:
            raise SourceError(
                f"Prometheus at {self.url} refuses even {piece.duration} of {selector} as too many samples; "
                "narrow the selector or raise Prometheus's --query.max-samples"
            )
        middle = piece.start + timedelta(milliseconds=(piece.end_ms - piece.start_ms) // 2)
        return TimeWindow(piece.start, middle), TimeWindow(middle, piece.end)

    def _query_range_vector(self, selector: str, piece: TimeWindow) -> bytearray:
        # Evaluate at end - 1 ms over the whole width, then keep [start, end) exactly: this is
        # right whether range selectors are closed at the left (Prometheus 2) or open (3).
        width_ms = piece.end_ms - piece.start_ms
        form = {"query": f"{selector}[{width_ms}ms]", "time": f"{(piece.end_ms - 1) / 1000:.3f}"}
        return self._post("/api/v1/query", form, selector)

    def get(self, path: str) -> bytes | bytearray:
        """GET an API path (e.g. ``/api/v1/rules``) with this source's auth, TLS and retries."""
        return self._request("GET", path, None, None)

    def _post(self, path: str, form: dict[str, str], selector: str) -> bytearray:
        return self._request("POST", path, form, selector)

    def _request(
        self, method: str, path: str, form: dict[str, str] | None, selector: str | None
    ) -> bytearray:
        with self._count_lock:
            self.requests_made += 1
        seconds = self.config.timeout.total_seconds()
        try:
            with self._in_flight.deadline(seconds):
                response = self._session.request(
                    method,
                    f"{self.config.url}{path}",
                    data=form,
                    timeout=seconds,
                    stream=True,
                )
                if response.status_code == 200:
                    body = _body(response)
                    kind = response.headers.get("Content-Type")
                    problem = not_json_api(
                        self.where, "Prometheus", "sources.prometheus", body, kind
                    )
                    if problem:
                        raise SourceError(problem)
                    return body
                error = _error_text(response)
        except DeadlineExceeded:
            raise self._too_slow() from None
        except requests.exceptions.ChunkedEncodingError:  # closed before Content-Length's end
            raise cut_short(self.where) from None
        except requests.exceptions.RetryError as exc:
            raise SourceError(
                f"Prometheus at {self.url} kept failing ({failure_reason(exc)}) after {self.config.retries} retries; "
                "check the server's health, then rerun"
            ) from None
        except requests.exceptions.SSLError as exc:
            raise SourceError(
                tls_failed("Prometheus", self.url, "sources.prometheus", exc)
            ) from None
        except requests.exceptions.RequestException as exc:
            if "timed out" in str(exc).lower():
                raise self._too_slow() from None
            raise SourceError(
                f"Prometheus at {self.url} is unreachable ({failure_reason(exc)}); "
                "check sources.prometheus.url and that the server is running"
            ) from None
        if response.status_code == 422 and "too many samples" in error and selector:
            raise _TooManySamples()
        if response.status_code in (401, 403):
            raise SourceError(
                f"Prometheus at {self.url} refused the credentials (HTTP {response.status_code}); "
                "check sources.prometheus.auth and the variables it names"
            )
        if response.status_code == 400 and selector:
            raise SourceError(
                f"Prometheus refused the selector {selector} ({error}); fix sources.prometheus.selectors"
            )
        if response.status_code == 404:
            raise EndpointNotFound(
                f"{self.url}{path} was not found (HTTP 404); sources.prometheus.url must be the Prometheus base URL"
            )
        raise SourceError(
            f"Prometheus at {self.url} answered HTTP {response.status_code} ({error}); rerun once it is healthy"
        )

    def _too_slow(self) -> SourceError:
        return SourceError(
            f"Prometheus at {self.url} did not finish answering within "
            f"{self.config.timeout.total_seconds():g}s (sources.prometheus.timeout); check the "
            "server's health or raise the timeout (or lower sources.prometheus.max_request_window)"
        )


def _body(response: requests.Response) -> bytearray:
    """The answer's body, read in 1 MiB pieces (requests' default 10 KiB costs more CPU than
    the decode) into one buffer that grows in place: joining the pieces would hold it twice."""
    body = bytearray()
    for piece in response.iter_content(1 << 20):
        body += piece
    return body


def _chunk(decoded: DecodedMatrix, window: TimeWindow) -> MetricChunk:
    """The decoded answer's samples in ``window`` (pieces are asked for closed at both ends),
    its columns used as they are when every sample is in it."""
    series, ids = series_table(decoded.label_sets)
    id_column = np.repeat(np.asarray(ids, dtype=np.uint64), decoded.counts)
    ts, values = decoded.ts_ms, decoded.values
    keep = (ts >= window.start_ms) & (ts < window.end_ms)
    if not keep.all():
        per_sample_series = np.repeat(np.arange(len(ids)), decoded.counts)[keep]
        series = series.filter(pa.array(np.bincount(per_sample_series, minlength=len(ids)) > 0))
        id_column, ts, values = id_column[keep], ts[keep], values[keep]
    samples = pa.table(
        [
            pa.array(id_column, pa.uint64()),
            pa.array(ts, pa.int64()).cast(pa.timestamp("ms")),
            pa.array(values, pa.float64()),
        ],
        schema=METRIC_SAMPLES,
    )
    return MetricChunk(series=series, samples=samples)


def _error_text(response: requests.Response) -> str:
    """The server's own words on a failure, on one line and without credentials."""
    try:
        text = str(response.json().get("error", "")) or response.reason
    except ValueError:
        text = response.text or response.reason
    return server_words(str(text or ""))
