"""CloudWatch for tests: moto's server over real HTTP, behind a small wire-faithful proxy.

moto answers GetMetricData completely in one response: it ignores ``MaxDatapoints`` and never
throttles. The proxy adds what the real service does on the wire (AWS JSON 1.0, which boto3 speaks
to CloudWatch): it pages each answer at the request's ``MaxDatapoints`` with ``NextToken`` and
``StatusCode: PartialData``, and it can answer with the documented throttling error
(HTTP 400, ``x-amzn-query-error: Throttling;Sender``) or refuse the credentials, a given number of
times before forwarding again. What moto cannot be made to do (pages that repeat, reorder or drop
datapoints, error statuses and messages, endless paging, raw HTTP errors) the test scripts:
``Faults.pages`` answers GetMetricData itself, ``Faults.answers`` sends raw HTTP answers. Everything
else goes to moto untouched.
"""

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import requests

from tests.servers import serving_in_process

GET_METRIC_DATA = "GraniteServiceVersion20100801.GetMetricData"
LIST_METRICS = "GraniteServiceVersion20100801.ListMetrics"
JSON_1_0 = "application/x-amz-json-1.0"


@dataclass
class ProxyLog:
    """What the proxy saw and did, for assertions."""

    calls: list[dict[str, Any]] = field(default_factory=list)  # GetMetricData request bodies
    pages_partial: int = 0  # answers that carried a NextToken
    throttled: int = 0
    refused: int = 0


@dataclass
class Faults:
    throttle: int = 0  # answer the next N GetMetricData calls with ThrottlingException
    refuse_credentials: int = 0  # answer the next N calls with UnrecognizedClientException
    # GetMetricData answered by the test: (the query Ids sent, the page number from 0) -> the
    # answer; a NextToken in it is the next page's. Timestamps are epoch seconds, as on the wire.
    pages: Callable[[list[str], int], dict[str, Any]] | None = None
    # Raw HTTP answers (status, headers, body) for the next GetMetricData calls, in order.
    answers: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)
    # ListMetrics answered by the test (no forwarding to moto): this page every time, or the
    # page a function of the page number from 0 returns.
    list_page: dict[str, Any] | Callable[[int], dict[str, Any]] | None = None


class CloudWatchProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.log = ProxyLog()
        self.faults = Faults()
        self._answers: dict[str, list[dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self.log, self.faults, self._answers = ProxyLog(), Faults(), {}

    def handle(self, target: str, headers: dict[str, str], body: bytes) -> tuple[int, dict, bytes]:
        with self._lock:
            if self.faults.refuse_credentials:
                self.faults.refuse_credentials -= 1
                self.log.refused += 1
                return _error(
                    400,
                    "UnrecognizedClientException",
                    "The security token included in the request is invalid.",
                    "InvalidClientTokenId;Sender",
                )
            if target == GET_METRIC_DATA and self.faults.throttle:
                self.faults.throttle -= 1
                self.log.throttled += 1
                return _error(
                    400,
                    "com.amazon.coral.availability#ThrottlingException",
                    "Rate exceeded",
                    "Throttling;Sender",
                )
        if target == LIST_METRICS and self.faults.list_page is not None:
            with self._lock:
                number = len(self.log.calls)
                self.log.calls.append(json.loads(body))
            page = self.faults.list_page
            page = page(number) if callable(page) else page
            return 200, {"Content-Type": JSON_1_0}, json.dumps(page).encode()
        if target != GET_METRIC_DATA:
            return self._forward(headers, body)
        request = json.loads(body)
        with self._lock:
            self.log.calls.append(dict(request))
            if self.faults.answers:
                return self.faults.answers.pop(0)
        if self.faults.pages is not None:
            return self._scripted(request)
        token = request.pop("NextToken", None)
        limit = int(request.pop("MaxDatapoints", 100_800))
        key = json.dumps(request, sort_keys=True)
        if token is None:
            status, head, answer = self._forward(headers, body)
            if status != 200:
                return status, head, answer
            with self._lock:
                self._answers[key] = json.loads(answer)["MetricDataResults"]
            offset = 0
        else:
            offset = int(token.split(":")[1])
        with self._lock:
            results = self._answers[key]
        page, more = _page(results, offset, limit)
        out: dict[str, Any] = {"MetricDataResults": page, "Messages": []}
        if more:
            out["NextToken"] = f"page:{offset + limit}:{uuid.uuid4().hex}"
            with self._lock:
                self.log.pages_partial += 1
        return 200, {"Content-Type": JSON_1_0}, json.dumps(out).encode()

    def _scripted(self, request: dict[str, Any]) -> tuple[int, dict, bytes]:
        """The test's answer to this page of the conversation."""
        token = request.get("NextToken")
        number = int(token.split(":")[1]) if token else 0
        ids = [q["Id"] for q in request["MetricDataQueries"]]
        assert self.faults.pages is not None
        out = self.faults.pages(ids, number)
        if "NextToken" in out:
            out = {**out, "NextToken": f"page:{number + 1}:{uuid.uuid4().hex}"}
            with self._lock:
                self.log.pages_partial += 1
        return 200, {"Content-Type": JSON_1_0}, json.dumps(out).encode()

    def _forward(self, headers: dict[str, str], body: bytes) -> tuple[int, dict, bytes]:
        response = requests.post(self.upstream + "/", data=body, headers=headers, timeout=60)
        keep = {
            k: v
            for k, v in response.headers.items()
            if k.lower() in ("content-type", "x-amzn-requestid", "x-amzn-query-error")
        }
        return response.status_code, keep, response.content


def _page(
    results: list[dict[str, Any]], offset: int, limit: int
) -> tuple[list[dict[str, Any]], bool]:
    """Datapoints ``[offset, offset + limit)`` of the answer, counted result after result; each
    result is on every page (empty when none of its datapoints are), PartialData while some of
    its datapoints come on a later page."""
    page, position, end = [], 0, offset + limit
    for result in results:
        n = len(result.get("Values", []))
        lo, hi = min(max(offset - position, 0), n), min(max(end - position, 0), n)
        page.append(
            {
                **result,
                "Timestamps": result.get("Timestamps", [])[lo:hi],
                "Values": result.get("Values", [])[lo:hi],
                "StatusCode": "PartialData" if hi < n else "Complete",
            }
        )
        position += n
    return page, end < position


def _error(status: int, kind: str, message: str, query_error: str) -> tuple[int, dict, bytes]:
    headers = {
        "Content-Type": JSON_1_0,
        "x-amzn-query-error": query_error,
        "x-amzn-RequestId": str(uuid.uuid4()),
    }
    return status, headers, json.dumps({"__type": kind, "message": message}).encode()


@contextmanager
def cloudwatch_proxy(upstream: str) -> Iterator[tuple[str, CloudWatchProxy]]:
    """The proxy on 127.0.0.1 in front of moto at ``upstream``; yields (its URL, the proxy)."""
    proxy = CloudWatchProxy(upstream)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            status, head, answer = proxy.handle(self.headers.get("X-Amz-Target", ""), headers, body)
            self.send_response(status)
            for name, value in head.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    with serving_in_process(Handler) as url:
        yield url, proxy
