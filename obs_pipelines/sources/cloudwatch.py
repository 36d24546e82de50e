"""Metrics from Amazon CloudWatch, into the same ``metric_series`` / ``metric_samples`` as Prometheus.

What is read: every query of ``sources.cloudwatch.queries``, and every metric ListMetrics finds
for a rule of ``sources.cloudwatch.discover`` (paginated, all pages of a rule within ``timeout``;
the first rule that names a metric, dimensions and statistic decides its period and service).
ListMetrics only knows metrics that had data in the last two weeks, so an older backfill needs
explicit queries.

How: ``GetMetricData`` for the hour ``[start, end)``, up to ``queries_per_call`` (at most 500)
queries a call, ``ScanBy=TimestampAscending``; every ``NextToken`` is followed until each result
is ``Complete`` (``PartialData`` means more pages), all pages of a call within ``timeout``. Every
query sent must come back; an error status on any page, or ``MaxDatapointsExceeded`` in
``Messages``, fails the hour (other messages are warnings). Throttling (HTTP 429 too), 5xx answers
and connection failures are retried with exponential backoff (``retries``,
``retry_backoff_seconds``), then fail the hour in one line; nothing is written for an hour unless
every call answered. Credentials come from the standard AWS chain (boto3's default session), never
from the config. Each datapoint is one sample: its timestamp (the start of its period, in ms) and
value (float64), exactly as CloudWatch returned them, once each and in time order.

Series identity (the metric names of YACE, the CloudWatch exporter most Prometheus users know,
plus labels that make a collision with a Prometheus series impossible):

* ``metric`` = ``aws_<namespace>_<metric name>_<statistic>``, lower case, the namespace without
  its ``AWS/`` prefix, ``_`` between a lower-case letter and an upper-case one and for anything
  that is not a letter or digit: ``AWS/ApplicationELB`` ``HTTPCode_Target_5XX_Count`` ``Sum`` is
  ``aws_applicationelb_httpcode_target_5xx_count_sum``, ``RequestCount`` is ``request_count``,
  ``p99.9`` is ``p99_9``;
* ``labels``: ``source="cloudwatch"``, ``region``, ``namespace``, ``metric_name`` and ``statistic``
  exactly as in CloudWatch, one ``dimension_<Name>`` per dimension (``dimension_LoadBalancer``),
  and ``service`` when the query sets one;
* ``series_id`` is :func:`obs_pipelines.sources.series.series_id` of the two, as for Prometheus.

Counter view: SLO ratio SLIs count events as counter increases, while a ``Sum`` or ``SampleCount``
datapoint is the count of its own period. For those statistics (``counter`` on by default) the
source also publishes ``<metric>_total`` with the same labels: 0 at the start of the hour, then
the running sum at the last millisecond of each period. Its increase is exactly the period's
count (the hour's 0 reads as a counter reset), so ``ratio`` SLIs work on CloudWatch unchanged:
``total: aws_applicationelb_request_count_sum_total{...}``.
"""

import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import numpy as np
import pyarrow as pa
from botocore.config import Config as BotoConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ReadTimeoutError,
)

from obs_pipelines.config import (
    CloudWatchDiscovery,
    CloudWatchQuery,
    CloudWatchSourceConfig,
)
from obs_pipelines.errors import SourceError
from obs_pipelines.schemas import METRIC_SAMPLES
from obs_pipelines.sources.base import MetricChunk
from obs_pipelines.sources.http import Deadline, DeadlineExceeded, scrub, server_words
from obs_pipelines.sources.series import series_table
from obs_pipelines.windows import TimeWindow

SOURCE_LABEL = "cloudwatch"
COUNTER_SUFFIX = "_total"
_THROTTLED = {
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
}
_TRANSIENT = {
    "InternalFailure",
    "InternalServiceError",
    "InternalServiceFault",
    "ServiceUnavailable",
}
_BAD_CREDENTIALS = {
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "ExpiredToken",
    "ExpiredTokenException",
    "AuthFailure",
}
# A signature refused as expired or too far off: a skewed clock, or else the credentials.
_SIGNATURE_REFUSED = {"InvalidSignatureException", "RequestExpired", "RequestTimeTooSkewed"}
_NOT_ALLOWED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}
_CONNECTION_ERRORS = (EndpointConnectionError, ConnectionClosedError, ConnectTimeoutError)
_MAX_BACKOFF_SECONDS = 30.0

log = logging.getLogger(__name__)


def metric_name(namespace: str, name: str, statistic: str) -> str:
    """``aws_applicationelb_httpcode_target_5xx_count_sum``: the Prometheus-style name."""
    space = re.sub(r"^aws/", "", namespace.lower())
    return _safe(f"aws_{space}_{_snake(name)}_{_snake(statistic)}")


def _snake(text: str) -> str:
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", text).lower()


def _safe(text: str) -> str:
    return re.sub(r"_+", "_", re.sub(r"[^a-zA-Z0-9_]", "_", text))


@dataclass(frozen=True)
class MetricQuery:
    """One CloudWatch metric and statistic, resolved from a query or a discovery rule."""

    namespace: str
    metric_name: str
    dimensions: tuple[tuple[str, str], ...]  # sorted by name
    statistic: str
    period_s: int
    service: str | None
    counter: bool

    def __str__(self) -> str:
        """How messages name the query: ``AWS/ELB RequestCount{LoadBalancer=lb} Sum``."""
        dimensions = ",".join(f"{n}={v}" for n, v in self.dimensions)
        return f"{self.namespace} {self.metric_name}{{{dimensions}}} {self.statistic}"

    @property
    def key(self) -> tuple[str, str, tuple[tuple[str, str], ...], str]:
        return (self.namespace, self.metric_name, self.dimensions, self.statistic)

    def labels(self, region: str) -> dict[str, str]:
        labels = {
            "source": SOURCE_LABEL,
            "region": region,
            "namespace": self.namespace,
            "metric_name": self.metric_name,
            "statistic": self.statistic,
        }
        for name, value in self.dimensions:
            label = _safe(f"dimension_{name}")
            if label in labels:
                raise SourceError(
                    f"CloudWatch metric {self.namespace}/{self.metric_name} has dimensions that "
                    f"both become the label {label}; query one of them only"
                )
            labels[label] = value
        if self.service:
            labels["service"] = self.service
        return labels

    def request(self, query_id: str) -> dict[str, Any]:
        metric = {
            "Namespace": self.namespace,
            "MetricName": self.metric_name,
            "Dimensions": [{"Name": n, "Value": v} for n, v in self.dimensions],
        }
        return {
            "Id": query_id,
            "MetricStat": {"Metric": metric, "Period": self.period_s, "Stat": self.statistic},
            "ReturnData": True,
        }


def _resolved(
    rule: CloudWatchQuery | CloudWatchDiscovery, name: str, dimensions: dict[str, str]
) -> MetricQuery:
    return MetricQuery(
        namespace=rule.namespace,
        metric_name=name,
        dimensions=tuple(sorted(dimensions.items())),
        statistic=rule.statistic,
        period_s=int(rule.period.total_seconds()),
        service=rule.service,
        counter=rule.counter_view,
    )


@dataclass
class _Series:
    """The series of the resolved queries: exact and counter view, ids computed once."""

    queries: list[MetricQuery]
    exact: pa.Table  # metric_series row i describes queries[i]
    exact_ids: np.ndarray
    counters: pa.Table  # rows for the queries with a counter view, in query order
    counter_ids: np.ndarray  # per query; 0 where it has none
    counter_row: np.ndarray  # per query: its row in ``counters`` (-1: none)


class CloudWatchSource:
    name = "cloudwatch"

    def __init__(
        self, config: CloudWatchSourceConfig, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.config = config
        self.where = scrub(config.endpoint_url or f"monitoring.{config.region}.amazonaws.com")
        self.requests_made: dict[str, int] = {"GetMetricData": 0, "ListMetrics": 0}
        self.retried = 0
        self._sleep = sleep
        seconds = config.timeout.total_seconds()
        self._client = boto3.session.Session(region_name=config.region).client(
            "cloudwatch",
            endpoint_url=config.endpoint_url,
            # Retries are ours: bounded, with our backoff, and ending in one clear line.
            config=BotoConfig(
                retries={"total_max_attempts": 1, "mode": "standard"},
                connect_timeout=seconds,
                read_timeout=seconds,
            ),
        )
        self._series: _Series | None = None

    def read_metrics(self, window: TimeWindow) -> Iterator[MetricChunk]:
        """One chunk per GetMetricData batch (every page of it followed), samples in
        ``[window.start, window.end)``."""
        series = self.series()
        step = self.config.queries_per_call
        for first in range(0, len(series.queries), step):
            rows = np.arange(first, min(first + step, len(series.queries)))
            timestamps, values = self._fetch([series.queries[i] for i in rows], window)
            yield _chunk(series, rows, timestamps, values, window)

    def probe(self) -> int:
        """One ListMetrics call on the first configured namespace (credentials, endpoint and
        permission in one request): the number of metrics on its first page."""
        first = (self.config.queries or self.config.discover)[0]
        page = self._call("list_metrics", "ListMetrics", {"Namespace": first.namespace})
        return len(page.get("Metrics", []))

    def series(self) -> _Series:
        """The queries of the config and of discovery, resolved once per source."""
        if self._series is None:
            queries: dict[tuple[Any, ...], MetricQuery] = {}
            for query in self.config.queries:
                resolved = _resolved(query, query.metric_name, query.dimensions)
                queries.setdefault(resolved.key, resolved)
            for rule in self.config.discover:
                for found in self._discover(rule):
                    queries.setdefault(found.key, found)
            self._series = _series_of(list(queries.values()), self.config.region)
        return self._series

    def _discover(self, rule: CloudWatchDiscovery) -> Iterator[MetricQuery]:
        params: dict[str, Any] = {"Namespace": rule.namespace}
        if rule.metric_name:
            params["MetricName"] = rule.metric_name
        if rule.dimensions:
            params["Dimensions"] = [
                {"Name": n} if v is None else {"Name": n, "Value": v}
                for n, v in rule.dimensions.items()
            ]
        listing = self._followed(
            "list_metrics",
            "ListMetrics",
            params,
            lambda pages: f"listing {rule.namespace} (ListMetrics, after {pages} pages)",
            f"listing {rule.namespace} (ListMetrics)",
            "raise timeout or narrow the discover rule with metric_name or dimensions",
        )
        for page in listing:
            for metric in page.get("Metrics", []):
                dimensions = {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}
                yield _resolved(rule, metric["MetricName"], dimensions)

    def _fetch(
        self, queries: list[MetricQuery], window: TimeWindow
    ) -> tuple[list[list[Any]], list[list[float]]]:
        """Every page of one GetMetricData call: per query, its timestamps and values. Each query
        sent must come back, with no error status on any page and Complete on the last one, or
        the hour would be published without it."""
        timestamps: list[list[Any]] = [[] for _ in queries]
        values: list[list[float]] = [[] for _ in queries]
        status: list[str | None] = [None] * len(queries)
        notes: dict[tuple[str, str], str] = {}  # (code, words) -> what it was said about
        sent = {f"q{i}": i for i in range(len(queries))}
        params: dict[str, Any] = {
            "MetricDataQueries": [q.request(f"q{i}") for i, q in enumerate(queries)],
            "StartTime": window.start,
            "EndTime": window.end,
            "ScanBy": "TimestampAscending",
            "MaxDatapoints": self.config.max_datapoints,
        }
        for page in self._pages(params, window):
            self._heed(page.get("Messages") or [], "the answer", window, notes)
            for result in page.get("MetricDataResults", []):
                index = sent.get(str(result.get("Id")))
                if index is None:
                    raise SourceError(
                        f"CloudWatch at {self.where} answered query Id "
                        f"'{server_words(str(result.get('Id')), 40)}', which was never sent, for "
                        f"{window}; rerun the hour"
                    )
                query = queries[index]
                code = str(result.get("StatusCode", "Complete"))
                self._heed(result.get("Messages") or [], str(query), window, notes)
                if code not in ("Complete", "PartialData"):
                    raise SourceError(
                        f"CloudWatch at {self.where} answered {code} for {query} for {window} "
                        f"({_said(result.get('Messages') or [], code)}); rerun the hour, and if it "
                        "persists check that query in sources.cloudwatch"
                    )
                timestamps[index] += result.get("Timestamps", [])
                values[index] += result.get("Values", [])
                status[index] = code
        for (code, words), about in notes.items():
            log.warning(
                "CloudWatch at %s said about %s for %s: %s",
                self.where,
                about,
                window,
                words or code,
            )
        for query, code in zip(queries, status, strict=True):
            if code is None:
                raise SourceError(
                    f"CloudWatch at {self.where} never answered {query} for {window}; rerun the hour"
                )
            if code != "Complete":
                raise SourceError(
                    f"CloudWatch left {query} {code} for {window} with no page left to read; "
                    "rerun the hour"
                )
        return timestamps, values

    def _pages(self, params: dict[str, Any], window: TimeWindow) -> Iterator[dict[str, Any]]:
        """The pages of one GetMetricData call, every NextToken followed."""
        return self._followed(
            "get_metric_data",
            "GetMetricData",
            params,
            lambda _: f"for {window}",
            f"GetMetricData for {window}",
            "raise timeout or lower queries_per_call",
        )

    def _followed(
        self,
        method: str,
        operation: str,
        params: dict[str, Any],
        about: Callable[[int], str],
        doing: str,
        fix: str,
    ) -> Iterator[dict[str, Any]]:
        """The pages of one ``operation`` call, every NextToken followed. The whole conversation,
        retries and their waits included, must end within ``timeout``: a server handing out
        fresh tokens forever would otherwise hang the hour (``doing`` and ``fix`` name it). A
        token handed back a second time is one line at once, ``about`` the pages read so far."""
        seconds = self.config.timeout.total_seconds()
        deadline = Deadline(seconds)
        tokens: set[str] = set()
        read = 0
        try:
            while True:
                deadline.check()
                page = self._call(method, operation, params, deadline)
                yield page
                read += 1
                token = page.get("NextToken")
                if not token:
                    return
                if token in tokens:
                    raise SourceError(
                        f"CloudWatch at {self.where} returned the same NextToken twice "
                        f"{about(len(tokens))}; rerun the hour"
                    )
                tokens.add(token)
                params = {**params, "NextToken": token}
        except DeadlineExceeded:
            raise SourceError(
                f"CloudWatch at {self.where} did not finish {doing} within "
                f"sources.cloudwatch.timeout ({seconds:g}s; {read} pages read); {fix}, then rerun"
            ) from None

    def _heed(
        self,
        messages: list[dict[str, Any]],
        about: str,
        window: TimeWindow,
        notes: dict[tuple[str, str], str],
    ) -> None:
        """Messages come with Complete answers too: MaxDatapointsExceeded means datapoints were
        cut, so it fails the hour; any other is noted once, to be logged as a warning."""
        for message in messages:
            code = str(message.get("Code", ""))
            words = server_words(f"{code}: {message.get('Value', '')}".strip(": "))
            if code == "MaxDatapointsExceeded":
                raise SourceError(
                    f"CloudWatch at {self.where} cut {about} for {window} ({words}); lower "
                    "sources.cloudwatch.queries_per_call, use a coarser period, or raise "
                    "max_datapoints (at most 100800), then rerun"
                )
            notes.setdefault((code, words), about)

    def _call(
        self,
        method: str,
        operation: str,
        params: dict[str, Any],
        deadline: Deadline | None = None,
    ) -> dict[str, Any]:
        """One API call, retried with exponential backoff while it is throttled or fails on
        the AWS side or on the way there; anything else is one line naming the fix. A wait that
        would outlast ``deadline`` raises :class:`DeadlineExceeded` instead of sleeping."""
        reason = ""
        for attempt in range(self.config.retries + 1):
            if attempt:
                self.retried += 1
                backoff = min(
                    self.config.retry_backoff_seconds * 2 ** (attempt - 1), _MAX_BACKOFF_SECONDS
                )
                if deadline is not None and backoff >= deadline.remaining():
                    raise DeadlineExceeded(f"not done within {deadline.seconds:g}s")
                self._sleep(backoff)
            self.requests_made[operation] += 1
            try:
                return dict(getattr(self._client, method)(**params))
            except ClientError as exc:
                error = exc.response.get("Error", {})
                code = str(error.get("Code", ""))
                status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
                if code in _THROTTLED or status == 429:  # 429: a proxy or VPC endpoint's limit
                    reason = f"throttled: {code if code in _THROTTLED else 'HTTP 429'}"
                    continue
                if status >= 500 or code in _TRANSIENT:
                    reason = f"{code or 'HTTP ' + str(status)}"
                    continue
                raise self._refused(operation, code, str(error.get("Message", ""))) from None
            except ReadTimeoutError:
                reason = f"no answer within {self.config.timeout.total_seconds():g}s"
            except _CONNECTION_ERRORS as exc:
                reason = type(exc).__name__
            except NoCredentialsError:
                raise SourceError(
                    "no AWS credentials found for CloudWatch; provide them through the standard "
                    "AWS chain (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or an "
                    "instance or task role), never in the config"
                ) from None
            except NoRegionError:  # unreachable: the config requires a region
                raise SourceError("sources.cloudwatch.region is missing; set it") from None
            except BotoCoreError as exc:
                raise SourceError(
                    f"CloudWatch {operation} at {self.where} failed ({server_words(str(exc))}); "
                    "check sources.cloudwatch.region and endpoint_url"
                ) from None
        if reason.startswith("throttled"):
            raise SourceError(
                f"CloudWatch at {self.where} kept throttling {operation} ({reason}) after "
                f"{self.config.retries} retries; lower sources.cloudwatch.queries_per_call, raise "
                "its retries or retry_backoff_seconds, or raise the account's API quota, then rerun"
            )
        raise SourceError(
            f"CloudWatch at {self.where} is unreachable or failing ({reason}) after "
            f"{self.config.retries} retries; check sources.cloudwatch.region and endpoint_url and "
            "the network, then rerun"
        )

    def _refused(self, operation: str, code: str, message: str) -> SourceError:
        words = server_words(message) or code
        if code in _BAD_CREDENTIALS:
            return SourceError(
                f"CloudWatch at {self.where} refused the AWS credentials ({code}); check the "
                "credentials of the standard AWS chain (AWS_ACCESS_KEY_ID, AWS_PROFILE or the "
                "role) are valid, not expired, and for this account"
            )
        if code in _SIGNATURE_REFUSED:
            return SourceError(
                f"CloudWatch at {self.where} refused the request's signature ({code}: {words}); "
                "check this machine's clock (AWS refuses a signature more than 5 minutes off: "
                "sync it with NTP), then the AWS credentials of the standard AWS chain"
            )
        if code in _NOT_ALLOWED:
            return SourceError(
                f"the AWS credentials may not call {operation} ({code}: {words}); allow "
                "cloudwatch:GetMetricData and cloudwatch:ListMetrics for them"
            )
        return SourceError(
            f"CloudWatch at {self.where} refused {operation} ({code}: {words}); check "
            "sources.cloudwatch.queries and discover"
        )


def _said(messages: list[dict[str, Any]], code: str) -> str:
    """What the service said with a status, for a message: its own words, else the status."""
    return server_words("; ".join(str(m.get("Value", m)) for m in messages) or code)


def _series_of(queries: list[MetricQuery], region: str) -> _Series:
    label_sets = []
    for query in queries:
        labels = query.labels(region)
        label_sets.append(
            {"__name__": metric_name(query.namespace, query.metric_name, query.statistic), **labels}
        )
    exact, exact_ids = series_table(label_sets)
    with_counter = [i for i, q in enumerate(queries) if q.counter]
    counters, ids = series_table(
        [
            {**label_sets[i], "__name__": label_sets[i]["__name__"] + COUNTER_SUFFIX}
            for i in with_counter
        ]
    )
    counter_ids = np.zeros(len(queries), np.uint64)
    counter_row = np.full(len(queries), -1, np.int64)
    counter_ids[with_counter] = ids
    counter_row[with_counter] = np.arange(len(with_counter))
    return _Series(
        queries=queries,
        exact=exact,
        exact_ids=np.asarray(exact_ids, np.uint64),
        counters=counters,
        counter_ids=counter_ids,
        counter_row=counter_row,
    )


def _chunk(
    series: _Series,
    rows: np.ndarray,
    timestamps: list[list[Any]],
    values: list[list[float]],
    window: TimeWindow,
) -> MetricChunk:
    """The samples of one batch: per query, its datapoints in the window and, for a counter
    view, 0 at the window's start then the running sum at the end of each period."""
    ids: list[np.ndarray] = []
    ts: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    present, counted = [], []
    for row, stamps, numbers in zip(rows, timestamps, values, strict=True):
        if not stamps:
            continue
        t = pa.array(stamps, pa.timestamp("ms", tz="UTC")).cast(pa.int64()).to_numpy()
        v = np.asarray(numbers, np.float64)
        keep = (t >= window.start_ms) & (t < window.end_ms)
        t, v = _in_order(series.queries[row], t[keep], v[keep], window)
        if not t.size:
            continue
        present.append(row)
        ids.append(np.full(t.size, series.exact_ids[row], np.uint64))
        ts.append(t)
        vals.append(v)
        if series.counter_row[row] >= 0:
            counted.append(series.counter_row[row])
            period_ms = series.queries[row].period_s * 1000
            ids.append(np.full(t.size + 1, series.counter_ids[row], np.uint64))
            ts.append(np.r_[window.start_ms, np.minimum(t + period_ms, window.end_ms) - 1])
            vals.append(np.r_[0.0, np.cumsum(v)])
    samples = pa.table(
        [
            pa.array(np.concatenate(ids) if ids else np.zeros(0, np.uint64), pa.uint64()),
            pa.array(np.concatenate(ts) if ts else np.zeros(0, np.int64), pa.int64()).cast(
                pa.timestamp("ms")
            ),
            pa.array(np.concatenate(vals) if vals else np.zeros(0), pa.float64()),
        ],
        schema=METRIC_SAMPLES,
    )
    described = pa.concat_tables(
        [
            series.exact.take(pa.array(present, pa.int64())),
            series.counters.take(pa.array(counted, pa.int64())),
        ]
    )
    return MetricChunk(series=described, samples=samples)


def _in_order(
    query: MetricQuery, t: np.ndarray, v: np.ndarray, window: TimeWindow
) -> tuple[np.ndarray, np.ndarray]:
    """The datapoints of one series by timestamp, each once: pages may repeat a datapoint or
    answer out of order, and the counter view's running sum must count each period once and
    never decrease. The same timestamp with two values is a contradiction, not a repeat."""
    order = np.argsort(t, kind="stable")
    t, v = t[order], v[order]
    repeat = np.flatnonzero(t[1:] == t[:-1])
    before, after = v[repeat], v[repeat + 1]
    differs = (before != after) & ~(np.isnan(before) & np.isnan(after))
    if differs.any():
        at = repeat[np.argmax(differs)]
        when = pa.scalar(int(t[at]), pa.timestamp("ms", tz="UTC")).as_py().isoformat()
        raise SourceError(
            f"CloudWatch returned two values for {query} at {when} ({v[at]:g} and "
            f"{v[at + 1]:g}) for {window}; rerun the hour"
        )
    unique = np.r_[True, t[1:] != t[:-1]]
    return t[unique], v[unique]
