"""What the HTTP clients share: a total deadline per request, and failure text fit to print.

A socket timeout (requests' ``timeout=``, urllib3's, elastic_transport's ``request_timeout``)
bounds each read, so a server trickling one byte a second never times out. A :class:`Deadline`
bounds the whole exchange instead (connect, retries and their waits, headers, body): connections
made by a :class:`DeadlineAdapter` (or a pool using :data:`POOL_CLASSES`) register their socket
with the deadline active in the calling thread, and one watchdog thread shuts those sockets down
when it passes, which ends any blocked read at once. The same shutdown lets a caller that stops
waiting (a run being terminated) end requests still running on worker threads
(:meth:`InFlight.abort`), so no thread keeps the process alive.

Every HTTP client of the project is made by :func:`http_session` (the Elasticsearch client gets
its options from :func:`elasticsearch_options`): the one place that reads a section's ``auth`` and
``tls``, so credentials, CA files and client certificates (mutual TLS) mean the same everywhere.

Secrets read through :func:`credential` are remembered, and :func:`scrub` masks them, and the
userinfo of any URL, in text about to go into an error message.

An answer cut short is worth a retry, but :func:`retry_policy` only covers failures before the
response headers: :func:`cut_mid_answer` and :func:`json_cut_short` tell the sources which
failures past them were a cut (the connection closed mid-body, or JSON that ends early), so they
retry those themselves instead of blaming the URL.
"""

import base64
import contextlib
import functools
import heapq
import http.client
import itertools
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import ProtocolError
from urllib3.util.retry import Retry

from obs_pipelines.config import EsAuth, HttpAuth, Tls, secret
from obs_pipelines.errors import ConfigError
from obs_pipelines.redact import redact_url, secret_forms

_MARKERS = (
    "Connection refused",
    "Name or service not known",
    "too many",
    "timed out",
    "certificate verify failed",
    "wrong version number",
)
# What a server says (or does) when it refuses the client certificate, or its absence.
_CLIENT_CERT_REFUSED = (
    "bad certificate",
    "certificate required",
    "unknown ca",
    "unsupported certificate",
)
_HANDSHAKE_CUT = "EOF occurred in violation of protocol"
_OPENSSL_PLACE = re.compile(r"\s*\(_ssl\.c:\d+\)")
_SHORTEST_MASKED = 4  # masking "a" or "ab" everywhere would garble messages beyond use
_secrets: tuple[str, ...] = ()  # longest first; replaced whole, so readers need no lock
_secrets_lock = threading.Lock()


class DeadlineExceeded(Exception):
    """A request was still running at its deadline (or was aborted); its sockets are shut."""


class Deadline:
    """The time by which everything inside ``with Deadline(seconds):`` must be done.

    Leaving the block after the deadline passed raises :class:`DeadlineExceeded`, whatever the
    request raised or returned meanwhile (a body cut short by the shutdown can look complete).
    """

    def __init__(self, seconds: float, group: "InFlight | None" = None) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self._group = group
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._expired = threading.Event()
        self._finished = False
        self._outer: Deadline | None = None

    @property
    def expired(self) -> bool:
        return self._expired.is_set()

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def __enter__(self) -> "Deadline":
        self._outer = getattr(_active, "deadline", None)
        _active.deadline = self
        if self._group is not None:
            self._group._add(self)
        _WATCHDOG.add(self)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> bool:
        _active.deadline = self._outer
        with self._lock:
            self._finished = True
            self._sockets.clear()
        if self._group is not None:
            self._group._discard(self)
        if kind is not None and not issubclass(kind, Exception):
            return False  # KeyboardInterrupt, SystemExit: let them through untouched
        if self.expired and kind is not DeadlineExceeded:
            raise DeadlineExceeded(f"not done within {self.seconds:g}s") from None
        return False

    def check(self) -> None:
        """Raise if the deadline has passed (before starting anything new)."""
        if self.expired or self.remaining() <= 0:
            self.expire()
            raise DeadlineExceeded(f"not done within {self.seconds:g}s")

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (a retry's backoff); raise at once if that would outlast the deadline."""
        if seconds <= 0:
            return self.check()
        if seconds >= self.remaining():
            self.expire()
        elif not self._expired.wait(seconds):
            return None
        raise DeadlineExceeded(f"not done within {self.seconds:g}s")

    def watch(self, sock: socket.socket) -> None:
        """Shut ``sock`` down when the deadline passes (at once if it already has)."""
        with self._lock:
            if self._finished:
                return
            if not any(s is sock for s in self._sockets):
                self._sockets.append(sock)
            expired = self.expired
        if expired:
            _shut(sock)

    def expire(self) -> None:
        """End the request now: blocked reads on its sockets return, waits are cut short."""
        with self._lock:
            if self._finished or self.expired:
                return
            self._expired.set()
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)


class InFlight:
    """The deadlines of requests running on worker threads, so a caller that stops waiting for
    them (an error elsewhere, a terminated run) can end them instead of joining hung threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: set[Deadline] = set()

    def deadline(self, seconds: float) -> Deadline:
        return Deadline(seconds, group=self)

    def abort(self) -> None:
        with self._lock:
            live = list(self._live)
        for deadline in live:
            deadline.expire()

    def _add(self, deadline: Deadline) -> None:
        with self._lock:
            self._live.add(deadline)

    def _discard(self, deadline: Deadline) -> None:
        with self._lock:
            self._live.discard(deadline)


def current_deadline() -> Deadline | None:
    return getattr(_active, "deadline", None)


_active = threading.local()


def _shut(sock: socket.socket) -> None:
    # The plain socket's shutdown, also for TLS: SSLSocket.shutdown would drop its TLS state under
    # the feet of the thread reading it. OSError: already closed, or detached by a TLS wrap (the
    # wrapped socket is watched too).
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Watchdog:
    """One daemon thread expiring deadlines in time order (a thread per request would cost more
    than many requests)."""

    def __init__(self) -> None:
        self._wake = threading.Condition()
        self._heap: list[tuple[float, int, Deadline]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, deadline: Deadline) -> None:
        with self._wake:
            heapq.heappush(self._heap, (deadline.at, next(self._order), deadline))
            if self._thread is None or not self._thread.is_alive():  # also after a fork
                self._thread = threading.Thread(target=self._run, name="obs-deadlines", daemon=True)
                self._thread.start()
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while True:
                    while self._heap and self._heap[0][2]._finished:
                        heapq.heappop(self._heap)
                    if not self._heap:
                        self._wake.wait()
                        continue
                    wait = self._heap[0][0] - time.monotonic()
                    if wait <= 0:
                        due = heapq.heappop(self._heap)[2]
                        break
                    self._wake.wait(wait)
            due.expire()


_WATCHDOG = _Watchdog()


class _DeadlineConnectionMixin:
    """Registers its socket with the thread's deadline on connect and before each response, and
    keeps socket timeouts within what is left of it."""

    timeout: Any
    sock: socket.socket | None

    def _new_conn(self) -> socket.socket:
        deadline = current_deadline()
        if deadline is not None:
            deadline.check()
            self.timeout = _capped(self.timeout, deadline.remaining())
        sock: socket.socket = super()._new_conn()  # type: ignore[misc]
        if deadline is not None:
            deadline.watch(sock)
        return sock

    def getresponse(self) -> Any:
        deadline = current_deadline()
        if deadline is not None:
            deadline.check()
            self.timeout = _capped(self.timeout, deadline.remaining())
            if self.sock is not None:
                deadline.watch(self.sock)
        return super().getresponse()  # type: ignore[misc]


def _capped(timeout: Any, remaining: float) -> float:
    remaining = max(remaining, 0.001)
    return min(timeout, remaining) if isinstance(timeout, int | float) else remaining


@functools.cache
def with_deadline(connection_class: type[HTTPConnection]) -> type[HTTPConnection]:
    """``connection_class`` (a urllib3 connection, e.g. a client library's own subclass) made to
    obey the calling thread's :class:`Deadline`; set it as a pool's ``ConnectionCls``. It keeps
    the class name, which urllib3 puts in its error messages."""
    if issubclass(connection_class, _DeadlineConnectionMixin):
        return connection_class
    return type(connection_class.__name__, (_DeadlineConnectionMixin, connection_class), {})


DeadlineHTTPConnection = with_deadline(HTTPConnection)
DeadlineHTTPSConnection = with_deadline(HTTPSConnection)


class DeadlineHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = DeadlineHTTPConnection


class DeadlineHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = DeadlineHTTPSConnection


POOL_CLASSES = {"http": DeadlineHTTPConnectionPool, "https": DeadlineHTTPSConnectionPool}


class DeadlineAdapter(HTTPAdapter):
    """requests' adapter, with connections that obey the calling thread's :class:`Deadline`."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = POOL_CLASSES

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if set(manager.pool_classes_by_scheme.values()) <= {
            HTTPConnectionPool,
            HTTPSConnectionPool,
        }:  # not SOCKS, whose pools are its own
            manager.pool_classes_by_scheme = POOL_CLASSES
        return manager


class DeadlineRetry(Retry):
    """urllib3's Retry, whose waits (backoff, ``Retry-After``) end with the request's deadline."""

    def sleep(self, response: Any = None) -> None:
        deadline = current_deadline()
        if deadline is None:
            return super().sleep(response)
        wait = None
        if self.respect_retry_after_header and response:
            wait = self.get_retry_after(response)
        deadline.sleep(self.get_backoff_time() if wait is None else wait)
        return None


RETRY_ON_STATUS = (408, 429, 500, 502, 503, 504)


def retry_policy(
    retries: int,
    backoff_seconds: float = 0.5,
    *,
    methods: Iterable[str] | None = None,
    quote_last_answer: bool = False,
) -> DeadlineRetry:
    """Retries of connection failures and transient statuses (``RETRY_ON_STATUS``, honouring
    ``Retry-After``), with waits that end with the request's deadline.

    ``methods=None`` retries every method (for APIs whose POSTs are reads); ``quote_last_answer``
    hands back the last error answer instead of raising ``RetryError``, so its text can be
    quoted. TLS failures are not retried: a refused certificate stays refused."""
    return DeadlineRetry(
        total=retries,
        other=0,
        backoff_factor=backoff_seconds,
        status_forcelist=RETRY_ON_STATUS,
        allowed_methods=None if methods is None else frozenset(methods),
        respect_retry_after_header=True,
        raise_on_status=not quote_last_answer,
    )


class _Session(requests.Session):
    """requests' session, whose own ``verify`` (a configured ``tls.ca_file``) beats
    ``REQUESTS_CA_BUNDLE`` and ``CURL_CA_BUNDLE``: plain requests lets those variables replace
    it, so a CA file named in the config would be ignored wherever they are set."""

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> dict[str, Any]:
        chosen = self.verify if verify is None else verify
        return super().merge_environment_settings(url, proxies, stream, chosen, cert)


def deadline_session(retry: Retry | int = 0) -> requests.Session:
    """A session whose requests obey :class:`Deadline` (for http:// and https://), with no
    credentials and default TLS; :func:`http_session` adds a section's auth and TLS."""
    session = _Session()
    adapter = DeadlineAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


@dataclass(frozen=True)
class TlsFiles:
    """A section's ``tls`` checked and made concrete: what to verify the server with (False, True
    for the system CAs, or a CA bundle) and the client certificate for mutual TLS."""

    verify: bool | str
    client_cert: str | None
    client_key: str | None


def tls_files(tls: Tls | None, key: str) -> TlsFiles:
    """``tls`` of section ``key`` (e.g. ``sources.alertmanager``), every file checked now: a
    missing one is one line naming its key, not a traceback at the first request."""
    tls = tls or Tls()
    if tls.client_key is not None and tls.client_cert is None:
        raise ConfigError(
            f"{key}.tls.client_key is set without {key}.tls.client_cert; set both (or only "
            "client_cert, to a PEM file holding certificate and key)"
        )
    for field in ("ca_file", "client_cert", "client_key"):
        path = getattr(tls, field)
        if path is not None and not path.is_file():
            raise ConfigError(
                f"{key}.tls.{field}: {path} is not a readable file; fix the path (relative paths "
                "are read from the config file's folder)"
            )
    return TlsFiles(
        verify=str(tls.ca_file) if tls.ca_file else tls.verify,
        client_cert=str(tls.client_cert) if tls.client_cert else None,
        client_key=str(tls.client_key) if tls.client_key else None,
    )


def http_session(
    key: str,
    auth: HttpAuth | EsAuth | None = None,
    tls: Tls | None = None,
    *,
    retry: Retry | int = 0,
    headers: Mapping[str, str] | None = None,
) -> requests.Session:
    """The HTTP client for config section ``key``: its credentials (read from the environment
    variables ``auth`` names, remembered for :func:`scrub`), its TLS (CA file, verification,
    client certificate), ``retry`` and connections that obey :class:`Deadline`.

    Use with :func:`bounded_request` (or inside ``with Deadline(...)``) for the total deadline."""
    files = tls_files(tls, key)
    session = deadline_session(retry)
    session.verify = files.verify
    if files.client_cert is not None:
        session.cert = (
            (files.client_cert, files.client_key) if files.client_key else files.client_cert
        )
    session.headers.update(headers or {})
    if isinstance(auth, EsAuth) and auth.api_key_env:
        session.headers["Authorization"] = f"ApiKey {credential(auth.api_key_env)}"
    if isinstance(auth, HttpAuth) and auth.bearer_token_env:
        session.headers["Authorization"] = f"Bearer {credential(auth.bearer_token_env)}"
    if auth is not None and auth.basic is not None:
        session.auth = basic_credentials(auth.basic.username_env, auth.basic.password_env)
    return session


def elasticsearch_options(
    key: str, url: str, auth: EsAuth | None, tls: Tls | None
) -> dict[str, Any]:
    """The official Elasticsearch client's keyword arguments for ``auth`` and ``tls``, read the
    way :func:`http_session` reads them (TLS options only for https://: the client refuses them
    on plain HTTP)."""
    options: dict[str, Any] = {}
    if auth is not None and auth.api_key_env:
        options["api_key"] = credential(auth.api_key_env)
    elif auth is not None and auth.basic is not None:
        options["basic_auth"] = basic_credentials(auth.basic.username_env, auth.basic.password_env)
    files = tls_files(tls, key)
    if url.startswith("https://"):
        options["verify_certs"] = files.verify is not False
        if files.verify is False:
            options["ssl_show_warn"] = False
        if isinstance(files.verify, str):
            options["ca_certs"] = files.verify
        if files.client_cert is not None:
            options["client_cert"] = files.client_cert
        if files.client_key is not None:
            options["client_key"] = files.client_key
    return options


def bounded_request(
    session: requests.Session, method: str, url: str, timeout: float, **kwargs: Any
) -> requests.Response:
    """``session.request`` with its body read, all within ``timeout`` seconds in total (raises
    :class:`DeadlineExceeded`); the session must use a :class:`DeadlineAdapter`."""
    with Deadline(timeout):
        return session.request(method, url, timeout=timeout, **kwargs)


# --- answers cut short ----------------------------------------------------------------------


def cut_mid_answer(exc: BaseException) -> bool:
    """Whether ``exc`` (from requests, urllib3 or elastic_transport, which wrap each other) means
    the connection closed after the answer's headers, before its body was complete: urllib3's
    "Connection broken" (an IncompleteRead, a reset), not a server that could not be reached."""
    pending: list[BaseException] = [exc]
    seen: set[int] = set()
    while pending:
        error = pending.pop()
        if id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, requests.exceptions.ChunkedEncodingError | http.client.IncompleteRead):
            return True
        if isinstance(error, ProtocolError) and str(error).startswith("Connection broken"):
            return True
        linked = (error.__cause__, error.__context__, *getattr(error, "errors", ()), *error.args)
        pending += [e for e in linked if isinstance(e, BaseException)]
    return False


def json_cut_short(body: bytes) -> bool:
    """Whether ``body`` is JSON that ends early (the rest of it never came, though the framing
    looked whole), rather than something that is not JSON at all: it parses up to its very end,
    or ends inside a string. Python's json judges, as it reads what orjson refuses (lone UTF-16
    surrogates, integers past 64 bits)."""
    if not body.strip():
        return False
    try:
        json.loads(body)
    except json.JSONDecodeError as exc:
        return exc.msg.startswith("Unterminated string") or exc.pos >= len(exc.doc.rstrip())
    except (ValueError, RecursionError):  # not UTF-8, or nested too deep to judge
        return False
    return False


# --- text fit to print ---------------------------------------------------------------------


def credential(variable: str) -> str:
    """The secret in environment variable ``variable``, remembered so :func:`scrub` masks it."""
    value = secret(variable)
    remember_secret(value)
    return value


def basic_credentials(username_variable: str, password_variable: str) -> tuple[str, str]:
    """(user, password) for HTTP basic auth; the password, and the header that carries it, are
    remembered for :func:`scrub`."""
    user, password = secret(username_variable), secret(password_variable)
    remember_basic_auth(user, password)
    return user, password


def remember_secret(value: str) -> None:
    """Have :func:`scrub` mask ``value`` (a secret that did not come through :func:`credential`),
    in each of the spellings an error may quote it in (:func:`secret_forms`)."""
    global _secrets
    forms = {f for f in secret_forms(value) if len(f) >= _SHORTEST_MASKED}
    with _secrets_lock:
        if not forms <= set(_secrets):
            _secrets = tuple(sorted({*_secrets, *forms}, key=len, reverse=True))


def remember_basic_auth(user: str, password: str) -> None:
    """Have :func:`scrub` mask ``password`` and the basic auth header value that carries it."""
    remember_secret(password)
    remember_secret(base64.b64encode(f"{user}:{password}".encode()).decode())


def scrub(text: str) -> str:
    """``text`` without credentials: URL userinfo and every remembered secret become ``***``."""
    for value in _secrets:
        if value in text:
            text = text.replace(value, "***")
    return redact_url(text)


class ScrubbedLogs(logging.Filter):
    """For a library's logger that may quote what a server sent back (elastic_transport logs
    whole answers at DEBUG): each record is scrubbed before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def server_words(text: str, limit: int = 300) -> str:
    """A server's own text for a message: on one line, scrubbed, and only then shortened (a
    secret cut in half would escape the scrub)."""
    flat = " ".join(scrub(text[: 30 * limit]).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def failure_reason(exc: BaseException) -> str:
    """The telling part of a requests/urllib3 error ("Connection refused", "too many 503 error
    responses"), not its nested repr; scrubbed of credentials."""
    text = _OPENSSL_PLACE.sub("", scrub(str(exc)))
    refusal = next((m for m in _CLIENT_CERT_REFUSED if m in text), None)
    if refusal is not None:
        return f"the server wants a client certificate it trusts: TLS alert {refusal}"
    if _HANDSHAKE_CUT in text:
        return "the server cut the TLS handshake short; it may want a client certificate it trusts"
    for marker in _MARKERS:
        if marker in text:
            start = text.find(marker)
            end = text.find(")", start)
            return text[start : end if end != -1 else None].strip("'\" ")
    return text.split(": ", 1)[-1][:160]


def tls_failed(what: str, where: str, key: str, exc: BaseException) -> str:
    """The one message for a failed TLS handshake with ``what`` at ``where`` (section ``key``)."""
    return (
        f"TLS to {what} at {where} failed ({failure_reason(exc)}); check {key}.tls: ca_file must "
        "have signed the server's certificate, and a server requiring mutual TLS needs "
        "client_cert and client_key"
    )
