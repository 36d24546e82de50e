"""``obs doctor``: is everything this deployment depends on reachable and usable, right now?

Each check makes one cheap real request (never a scan), so the command is safe to run against
production at any time. A result is one line: what was checked, what was found, and for a
failure, what to do about it. Checks never raise: an exception becomes a failed line.

Areas: every source in use (reachability plus a real API call), the lake (writable, tiers
listable, S3 storage classes), the catalog (exists, opens read-only, every view binds) and the
Dagster instance (``DAGSTER_HOME``, ``dagster.yaml``, its storage). Dagster itself is not
imported: the instance's storage is reached the way Dagster would (SQLite file or PostgreSQL).
"""

import os
import re
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import requests
import yaml

from obs_pipelines.config import (
    SOURCE_PILLARS,
    AlertmanagerSourceConfig,
    ElasticsearchSourceConfig,
    ObsConfig,
    PrometheusSourceConfig,
)
from obs_pipelines.errors import ConfigError, ObsError
from obs_pipelines.redact import redact_url
from obs_pipelines.sources.http import (
    DeadlineExceeded,
    bounded_request,
    http_session,
    scrub,
    tls_failed,
)
from obs_pipelines.sources.prometheus_decode import (
    api_data,
    cut_short,
    excerpt,
    malformed,
    not_json_api,
)

DEFAULT_TIMEOUT = 5.0


@dataclass(frozen=True)
class CheckResult:
    check: str  # e.g. "source.metrics", "lake.writable"
    ok: bool
    detail: str
    fix: str = ""
    skipped: bool = False
    warn: bool = False  # passed (not counted as failed), but worth a look: printed "warn"
    # what the check found failing (e.g. the datasets whose tables do not open), so later checks
    # that depend on them can point here instead of repeating the cause
    subjects: tuple[str, ...] = ()

    def line(self) -> str:
        status = (
            "skip" if self.skipped else ("warn" if self.warn else ("ok" if self.ok else "FAIL"))
        )
        text = f"{status:<5} {self.check:<22} {self.detail}"
        return f"{text} -> {self.fix}" if self.fix and (self.warn or not self.ok) else text


def run_checks(
    config: ObsConfig,
    *,
    dagster_home: str | None = None,
    pushgateway_url: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> list[CheckResult]:
    """Every check, in the order a person would fix things: sources, lake, catalog, Dagster."""
    results: list[CheckResult] = []
    results += _source_checks(config, timeout)
    if pushgateway_url:
        results.append(_guard("pushgateway", lambda: _pushgateway(pushgateway_url, timeout)))
    lake = _lake_checks(config)
    results += lake
    if any(r.check == "lake.reachable" and not r.ok for r in lake):
        results += [_not_run(c) for c in ("catalog", "lake.sources")]
    else:
        broken = {d for r in lake if r.check == "lake.tables" and not r.ok for d in r.subjects}
        results += _catalog_checks(config, broken)
    results += _dagster_checks(dagster_home or os.environ.get("DAGSTER_HOME"))
    return results


def format_report(results: list[CheckResult]) -> str:
    failed = sum(1 for r in results if not r.ok)
    warned = sum(1 for r in results if r.ok and r.warn)
    tail = (
        f"{failed} of {len(results)} checks failed"
        if failed
        else f"all {len(results)} checks passed"
    )
    if warned:
        tail += f" ({warned} with a warning)"
    return "\n".join([*(r.line() for r in results), tail])


def _guard(check: str, run: Callable[[], CheckResult]) -> CheckResult:
    """Run one check; an unexpected error is a failed line, never a traceback."""
    try:
        return run()
    except ObsError as exc:
        return CheckResult(check, False, scrub(str(exc)))
    except Exception as exc:  # a doctor reports everything it finds
        text = (scrub(str(exc)).splitlines() or [""])[0][:200]
        return CheckResult(check, False, f"{type(exc).__name__}: {text}")


# --- sources ---------------------------------------------------------------------------------


def _source_checks(config: ObsConfig, timeout: float) -> list[CheckResult]:
    sources = config.sources
    results = []
    pairs = [(pillar, backend) for pillar in SOURCE_PILLARS for backend in sources.backends(pillar)]
    for pillar, backend in pairs:
        several = len(sources.backends(pillar)) > 1
        check = f"source.{pillar}.{backend}" if several else f"source.{pillar}"
        if backend == "simulator":
            results.append(CheckResult(check, True, "built-in simulator (no server needed)"))
            continue
        if backend == "none":
            hint = (
                "; set sources.alerts: prometheus to ingest the ALERTS of sources.prometheus"
                if pillar == "alerts" and sources.prometheus is not None
                else ""
            )
            results.append(CheckResult(check, True, f"none (not ingested){hint}", skipped=True))
            continue
        probe = _PROBES[(pillar, backend)]
        results.append(_guard(check, lambda c=check, p=probe: p(c, config, timeout)))
    if sources.alertmanager is not None:
        results.append(
            _guard(
                "source.alertmanager", lambda: _alertmanager("source.alertmanager", config, timeout)
            )
        )
    used = {backend for _, backend in pairs}
    for backend in ("prometheus", "elasticsearch", "jaeger", "cloudwatch"):
        if getattr(sources, backend) is not None and backend not in used:
            results.append(
                CheckResult(
                    f"source.{backend}",
                    True,
                    f"configured but not used by any pillar (sources.{backend} is not selected)",
                    skipped=True,
                )
            )
    return results


def _session(
    key: str,
    section: PrometheusSourceConfig | ElasticsearchSourceConfig | AlertmanagerSourceConfig,
) -> requests.Session:
    """The section's HTTP client (credentials, TLS incl. client certificates), as its source
    makes it, but without retries: the doctor answers fast."""
    return http_session(key, section.auth, section.tls)


def _get(
    session: requests.Session, url: str, what: str, key: str, timeout: float, **kwargs: Any
) -> requests.Response:
    """GET with failures turned into one sentence naming the config key to fix; ``timeout``
    bounds the whole request, body included."""
    where = scrub(url)
    try:
        response = bounded_request(session, kwargs.pop("method", "GET"), url, timeout, **kwargs)
    except requests.exceptions.SSLError as exc:
        raise ObsError(tls_failed(what, where, key, exc)) from None
    except (DeadlineExceeded, requests.exceptions.Timeout):
        raise ObsError(
            f"{what} at {where} did not finish answering within {timeout:g}s; check the server's health"
        ) from None
    except requests.exceptions.ChunkedEncodingError:  # closed before Content-Length's end
        raise cut_short(f"{what} at {where}") from None
    except requests.exceptions.RequestException as exc:
        reason = "connection refused" if "refused" in str(exc).lower() else type(exc).__name__
        raise ObsError(
            f"{what} at {where} is unreachable ({reason}); start it or fix {key}.url"
        ) from None
    if response.status_code in (401, 403):
        raise ObsError(
            f"{what} at {where} refused the credentials (HTTP {response.status_code}); check {key}.auth "
            "and the variables it names"
        )
    if response.status_code >= 400:
        raise ObsError(
            f"{what} answered HTTP {response.status_code} at {where}; check {key}.url is the base URL"
        )
    return response


def _json(response: requests.Response, what: str, key: str, url: str) -> Any:
    """The JSON an API answered; a page that is not JSON (a proxy's login page, a UI path) or
    JSON that does not parse is one line naming ``key``. ``url`` is the section's base URL."""
    where = scrub(url)
    kind = response.headers.get("Content-Type")
    problem = not_json_api(f"{what} at {where}", what, key, response.content, kind)
    if problem:
        raise ObsError(problem)
    try:
        return response.json()
    except ValueError as exc:
        reason = (str(exc).splitlines() or [""])[0][:120]
        raise ObsError(
            f"{what} at {where} sent an answer that is not valid JSON ({reason}); check {key}.url "
            f"points at the {what} server"
        ) from None


def _prometheus_data(response: requests.Response, url: str) -> dict[str, Any]:
    """The ``data`` of a Prometheus API answer, checked as ingest checks it."""
    kind = response.headers.get("Content-Type")
    return api_data(response.content, kind, f"Prometheus at {scrub(url)}")


Section = TypeVar("Section")


def _required(section: Section | None, key: str) -> Section:
    """The config section a probe reads; the probe runs only for a selected backend, which
    config validation requires to be configured, so None is a bug worth one clear line."""
    if section is None:
        raise ConfigError(
            f"{key} is not configured; add it with its url, or select another backend"
        )
    return section


def _prometheus(check: str, config: ObsConfig, timeout: float) -> CheckResult:
    """Series of the first selector in the last hour; when there are none, whether the server
    is live (then the selector is wrong) or holds only older data (historical or backfilled:
    a warning that says how old, not a failure)."""
    section = _required(config.sources.prometheus, "sources.prometheus")
    session = _session("sources.prometheus", section)
    key = "sources.prometheus"
    info = _get(session, f"{section.url}/api/v1/status/buildinfo", "Prometheus", key, timeout)
    version = _prometheus_data(info, section.url).get("version", "?")
    where = f"Prometheus {version} at {scrub(section.url)}"
    selector = section.selectors[0]
    count = _series_in_hour(session, section.url, selector, timeout)
    if count:
        return CheckResult(check, True, f"{where}; {count} series of {selector} in the last hour")
    live_but_unmatched = CheckResult(
        check,
        False,
        f"{where}; 0 series of {selector} in the last hour",
        f"check {key}.selectors against the server's metrics",
    )
    try:
        newest = _newest_sample(session, section.url, timeout)
    except (ObsError, KeyError, TypeError, ValueError):  # no TSDB status: not Prometheus itself
        return live_but_unmatched
    if newest is None:
        return CheckResult(
            check,
            False,
            f"{where} holds no samples at all",
            f"check {key}.url is the server with the data",
        )
    now = datetime.now(UTC)
    if now - newest <= timedelta(hours=1):
        return live_but_unmatched
    age = f"newest sample {newest:%Y-%m-%d %H:%M}Z ({_age(now - newest)} ago: a historical or backfilled server?)"
    then = _series_in_hour(session, section.url, selector, timeout, at=newest)
    detail = f"{where}; {age}; {then} series of {selector} in the hour before it"
    if not then:
        return CheckResult(check, False, detail, live_but_unmatched.fix)
    end = (newest + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    return CheckResult(
        check,
        True,
        detail,
        f"if it should be live, check what it scrapes; else ingest its history with "
        f"obs materialize --from <start> --to {end:%Y-%m-%dT%H:%M:%SZ}",
        warn=True,
    )


def _series_in_hour(
    session: requests.Session, url: str, selector: str, timeout: float, at: datetime | None = None
) -> int:
    """How many series of ``selector`` have a sample in the hour up to ``at`` (default: now)."""
    query = f"count(last_over_time({selector}[1h]))"
    form = {"query": query}
    if at is not None:
        form["time"] = f"{at.timestamp():.3f}"
    answer = _get(
        session,
        f"{url}/api/v1/query",
        "Prometheus",
        "sources.prometheus",
        timeout,
        method="POST",
        data=form,
    )
    data = _prometheus_data(answer, url)
    where = f"Prometheus at {scrub(url)}"
    result = data.get("result")
    if data.get("resultType") != "vector" or not isinstance(result, list):
        kind = excerpt(data.get("resultType"))
        raise malformed(where, f"a {kind} result to the instant query {query}")
    if not result:
        return 0
    try:
        value = result[0]["value"][1]
    except (KeyError, IndexError, TypeError):
        raise malformed(where, f"{excerpt(result[0])} answering {query} is no sample") from None
    try:
        return int(float(value))
    except (TypeError, ValueError):
        raise malformed(
            where, f"sample value {excerpt(value)} of {query} is not a number"
        ) from None


def _newest_sample(session: requests.Session, url: str, timeout: float) -> datetime | None:
    """The time of the newest sample the server holds, from its TSDB status (one cheap call, no
    scan): the head block's ``maxTime``. With an empty head (only persisted blocks, as after a
    promtool backfill) Prometheus sets it to the newest block's end. None if it holds nothing
    (the head's bounds are then the int64 extremes, max below min)."""
    status = _get(session, f"{url}/api/v1/status/tsdb", "Prometheus", "sources.prometheus", timeout)
    head = _prometheus_data(status, url)["headStats"]
    low, high = int(head["minTime"]), int(head["maxTime"])
    if high < low:
        return None
    return datetime.fromtimestamp(high / 1000, UTC)


def _age(delta: timedelta) -> str:
    hours = delta / timedelta(hours=1)
    count, unit = (round(hours), "hour") if hours < 47.5 else (round(hours / 24), "day")
    return f"{count} {unit}{'' if count == 1 else 's'}"


def _prometheus_rules(check: str, config: ObsConfig, timeout: float) -> CheckResult:
    section = _required(config.sources.prometheus, "sources.prometheus")
    session = _session("sources.prometheus", section)
    response = _get(
        session, f"{section.url}/api/v1/rules", "Prometheus", "sources.prometheus", timeout
    )
    groups = _prometheus_data(response, section.url).get("groups")
    if not isinstance(groups, list) or not all(
        isinstance(g, dict) and isinstance(g.get("rules", []), list) for g in groups
    ):
        raise malformed(f"Prometheus at {scrub(section.url)}", 'no "groups" list of rule groups')
    rules = sum(len(g.get("rules", [])) for g in groups)
    return CheckResult(
        check,
        True,
        f"Prometheus at {scrub(section.url)} serves {rules} rules in {len(groups)} groups",
    )


def _elasticsearch(check: str, config: ObsConfig, timeout: float) -> CheckResult:
    section = _required(config.sources.elasticsearch, "sources.elasticsearch")
    key = "sources.elasticsearch"
    session = _session(key, section)
    info = _json(
        _get(session, f"{section.url}/", "Elasticsearch", key, timeout),
        "Elasticsearch",
        key,
        section.url,
    )
    version = info.get("version", {}).get("number", "?")
    counted = _get(session, f"{section.url}/{section.index}/_count", "Elasticsearch", key, timeout)
    answer = _json(counted, "Elasticsearch", key, section.url)
    where = f"Elasticsearch {version} at {scrub(section.url)}"
    if (answer.get("_shards") or {}).get("total") == 0:  # a pattern matching nothing: 200, 0
        return CheckResult(
            check,
            False,
            f"{where}; no index matches {section.index} (0 shards), so ingest refuses it",
            f"fix {key}.index",
        )
    documents = answer.get("count", 0)
    return CheckResult(check, True, f"{where}; {documents} documents in {section.index}")


def _jaeger(check: str, config: ObsConfig, timeout: float) -> CheckResult:
    """The services Jaeger lists, asked by the source itself, so ``api: auto`` settles as ingest
    settles it (a Jaeger before 1.25 serves only the v1 API)."""
    from obs_pipelines.sources.jaeger import JaegerSpans

    section = _required(config.sources.jaeger, "sources.jaeger")
    quick = {"retries": 0, "timeout": timedelta(seconds=timeout)}
    source = JaegerSpans(section.model_copy(update=quick))
    services = source.probe()
    where = f"Jaeger at {source.url} ({source.api} API)"
    if not services:
        return CheckResult(
            check,
            True,
            f"{where}; 0 services, so ingest finds no spans",
            "a new Jaeger lists none until its first trace; otherwise check sources.jaeger.url "
            "is the Jaeger that receives the traces",
            warn=True,
        )
    return CheckResult(check, True, f"{where}; {len(services)} services")


def _alertmanager(check: str, config: ObsConfig, timeout: float) -> CheckResult:
    section = _required(config.sources.alertmanager, "sources.alertmanager")
    key = "sources.alertmanager"
    session = _session(key, section)
    status = _get(session, f"{section.url}/api/v2/status", "Alertmanager", key, timeout)
    version = (
        _json(status, "Alertmanager", key, section.url).get("versionInfo", {}).get("version", "?")
    )
    alerts = _get(session, f"{section.url}/api/v2/alerts", "Alertmanager", key, timeout)
    alerts = _json(alerts, "Alertmanager", key, section.url)
    return CheckResult(
        check,
        True,
        f"Alertmanager {version} at {scrub(section.url)}; {len(alerts)} active alerts",
    )


def _cloudwatch(check: str, config: ObsConfig, timeout: float) -> CheckResult:
    from obs_pipelines.sources.cloudwatch import CloudWatchSource

    section = config.sources.cloudwatch
    if section is None:  # unreachable: config validation requires the section
        return CheckResult(check, False, "no sources.cloudwatch section", "add one")
    source = CloudWatchSource(section.model_copy(update={"retries": 0}))
    listed = source.probe()
    return CheckResult(
        check,
        True,
        f"CloudWatch at {source.where} answers ListMetrics ({listed} metrics on the first page "
        f"of {(section.queries or section.discover)[0].namespace})",
    )


_PROBES: dict[tuple[str, str], Callable[[str, ObsConfig, float], CheckResult]] = {
    ("metrics", "prometheus"): _prometheus,
    ("metrics", "cloudwatch"): _cloudwatch,
    ("alerts", "prometheus"): _prometheus_rules,
    ("logs", "elasticsearch"): _elasticsearch,
    ("traces", "jaeger"): _jaeger,
}


def _pushgateway(url: str, timeout: float) -> CheckResult:
    session = http_session("operations.pushgateway")
    _get(session, f"{url}/-/ready", "Pushgateway", "the pushgateway", timeout)
    return CheckResult("pushgateway", True, f"Pushgateway at {scrub(url)} is ready")


# --- lake ------------------------------------------------------------------------------------


# The checks that read the lake, hence are not run when its S3 endpoint does not answer.
_LAKE_DEPENDENT = ("lake.writable", "lake.tables", "lake.file_layout", "lake.lifecycle")
# One quick attempt: an endpoint that answers at all answers within this.
_REACH_TIMEOUT_SECONDS = 5.0


def _not_run(check: str, why: str = "the lake is unreachable (lake.reachable)") -> CheckResult:
    return CheckResult(check, True, f"not run: {why}", skipped=True)


def _lake_checks(config: ObsConfig) -> list[CheckResult]:
    from obs_pipelines.lake import Lake

    try:
        lake = Lake(config)
    except ObsError as exc:
        return [CheckResult("lake", False, str(exc), "fix lake.root and lake.s3")]
    if config.lake_root.startswith("s3://"):
        reachable = _guard("lake.reachable", lambda: _lake_reachable(config))
        if not reachable.ok:
            return [reachable, *(_not_run(c) for c in _LAKE_DEPENDENT)]
    return [
        _guard("lake.writable", lambda: _lake_writable(lake)),
        _guard("lake.tables", lambda: _lake_tables(lake)),
        _guard("lake.file_layout", lambda: _file_layout(config)),
        *(
            [_guard("lake.lifecycle", lambda: _lake_lifecycle(config))]
            if config.lake_root.startswith("s3://")
            else []
        ),
    ]


def _lake_reachable(config: ObsConfig) -> CheckResult:
    """One HeadBucket with a short timeout and no retry: whether the S3 endpoint answers at all.
    The other lake checks retry with long timeouts (as runs must), so against an endpoint that
    is down they would take minutes to fail, each with the same cause."""
    from botocore.exceptions import (
        ClientError,
        ConnectionError,
        ConnectTimeoutError,
        ReadTimeoutError,
    )

    from obs_pipelines.lake.storage import S3Storage

    s3 = config.lake.s3
    store = S3Storage(
        config.lake_root,
        config.lake,
        connect_timeout=_REACH_TIMEOUT_SECONDS,
        read_timeout=_REACH_TIMEOUT_SECONDS,
        retries={"total_max_attempts": 1},
    )
    bucket = store.bucket
    where = s3.endpoint_url or f"S3 ({s3.region})"
    try:
        store.client.head_bucket(Bucket=bucket)
    except ClientError:  # it answered (a refusal is for lake.writable to explain)
        pass
    except (ConnectionError, ConnectTimeoutError, ReadTimeoutError) as exc:
        reason = "could not connect" if isinstance(exc, ConnectionError) else "timed out"
        return CheckResult(
            "lake.reachable",
            False,
            f"the lake's S3 endpoint {redact_url(where)} does not answer ({reason}); the checks "
            "that read the lake and the catalog were not run",
            "check lake.s3.endpoint_url and the network (is the S3 service up?), then rerun",
        )
    return CheckResult("lake.reachable", True, f"{redact_url(where)} answers for bucket {bucket}")


def _lake_lifecycle(config: ObsConfig) -> CheckResult:
    """No lifecycle rule of the bucket expires the Delta tables' files or archives them (one
    GetBucketLifecycleConfiguration): S3 would delete or hide files the logs reference."""
    from obs_pipelines.lake import lifecycle
    from obs_pipelines.lake.storage import s3_location

    rules = lifecycle.bucket_rules(config)
    bucket, _ = s3_location(config.lake_root)
    prefix = lifecycle.delta_prefix_of(config.lake_root)
    found = lifecycle.hazards(rules, bucket, prefix)
    if found:
        return CheckResult(
            "lake.lifecycle",
            False,
            f"bucket {bucket}: " + "; ".join(h.line() for h in found) + ": S3 would delete or "
            "make unreadable files the Delta logs reference, breaking the tables",
            f"remove {'those rules' if len(found) > 1 else 'the rule'} or narrow the filter away "
            f"from {prefix} (`obs lake lifecycle` prints the rules the lake needs)",
        )
    return CheckResult(
        "lake.lifecycle",
        True,
        f"bucket {bucket}: {len(rules)} lifecycle rules, none expires or archives the Delta files",
    )


def _lake_tables(lake: Any) -> CheckResult:
    """Every file each table's log references is present with the size the log gives (one
    listing per table; no data file is opened)."""
    from obs_pipelines.datasets import ALL
    from obs_pipelines.errors import LakeError
    from obs_pipelines.lake.delta import DELTA_FOLDER
    from obs_pipelines.lake.delta_tables import summarize

    listing = {}
    for dataset in ALL:
        prefix = f"{DELTA_FOLDER}/{dataset}/"
        listing[dataset] = {
            o.key.removeprefix(prefix): o.size for o in lake.storage.list_objects(prefix)
        }
    opened, unopened = {}, {}
    for dataset in ALL:
        try:
            opened[dataset] = lake.tables.open(dataset)
        except LakeError as exc:
            unopened[dataset] = _why_unopened(lake.config, dataset, listing[dataset], exc)
    if unopened:
        return CheckResult(
            "lake.tables",
            False,
            f"{len(unopened)} Delta tables do not open: "
            + "; ".join(f"{d}: {why}" for d, (why, _) in unopened.items()),
            "; ".join(dict.fromkeys(fix for _, fix in unopened.values())),
            subjects=tuple(unopened),
        )
    tables = summarize(_Opened(opened), listing)
    problems = [p for t in tables for p in t.problems]
    if problems:
        return CheckResult(
            "lake.tables",
            False,
            f"{len(problems)} files the Delta logs reference are missing or damaged (first: "
            f"{problems[0]})",
            "restore them from a backup or versioned bucket, or take the missing ones out of "
            "the log with `obs lake repair --apply` (its dry run lists the hours they held) and "
            "re-ingest those hours with the obs materialize it prints",
        )
    files = sum(t.files for t in tables)
    rows = sum(t.rows for t in tables)
    unreferenced = sum(t.unreferenced_files for t in tables)
    detail = (
        f"; {unreferenced} files ({sum(t.unreferenced_bytes for t in tables):,} bytes) no "
        "version references yet (removed by commits awaiting vacuum, or left by killed runs: "
        "`obs lake vacuum` lists those old enough to delete)"
        if unreferenced
        else ""
    )
    return CheckResult(
        "lake.tables",
        True,
        f"{len(tables)} Delta tables, {files} files, {rows} rows; every file the logs reference "
        f"is present with its logged size{detail}",
    )


class _Opened:
    """Tables already opened, in the shape :func:`summarize` reads them."""

    def __init__(self, tables: dict[str, Any]) -> None:
        self.tables = tables

    def open(self, dataset: str) -> Any | None:
        return self.tables.get(dataset)


def _why_unopened(
    config: ObsConfig, dataset: str, listed: dict[str, int], exc: Exception
) -> tuple[str, str]:
    """Why a table's log does not open, and the fix. A ``_last_checkpoint`` naming a checkpoint
    that is gone makes delta-rs refuse the table although its JSON commits may all be there:
    the hint alone is stale, and deleting it is the fix (when a commit is missing too, only the
    checkpoint can restore the table)."""
    import json

    from obs_pipelines.lake import delta

    log = f"{delta.table_uri(config, dataset)}/_delta_log"
    if "_delta_log/_last_checkpoint" in listed:
        with delta.delta_errors(f"read {dataset}'s _last_checkpoint", config):
            hint = delta.table_filesystem(config, dataset).open_input_stream(
                "_delta_log/_last_checkpoint"
            )
            version = int(json.loads(hint.readall())["version"])
        named = f"_delta_log/{version:020d}.checkpoint."
        if not any(path.startswith(named) for path in listed):
            commits = sorted(
                int(p.removeprefix("_delta_log/").removesuffix(".json"))
                for p in listed
                if re.fullmatch(r"_delta_log/\d{20}\.json", p)
            )
            newest = commits[-1] if commits else -1
            stale = f"_delta_log/_last_checkpoint names checkpoint {version}, which is gone"
            if newest >= version and commits == list(range(newest + 1)):
                return (
                    f"{stale}; every JSON commit 0..{newest} is present",
                    f"delete the stale hint {log}/_last_checkpoint (the table opens from its "
                    "commits; the next checkpoint rewrites it), then rerun `obs doctor`",
                )
            missing = sorted(set(range(version + 1)) - set(commits))
            return (
                f"{stale}, and {len(missing)} JSON commits up to it are gone too (first: "
                f"{missing[0] if missing else '?'})",
                f"restore {log}/{version:020d}.checkpoint.parquet from a backup or a versioned "
                "bucket: without it the table's commits cannot be replayed",
            )
    why = delta.without_advice(exc)
    return why, f"check lake.root, lake.s3 and the network; if {log} is damaged, restore it"


def _file_layout(config: ObsConfig) -> CheckResult:
    """Files of the layout of earlier versions left under the lake root: not read by anything
    but ``obs lake migrate``; a warning while the Delta tables lack some of them."""
    from obs_pipelines.lake import delta, legacy

    files = legacy.current_files(config)
    held = {d: fs for d, fs in files.items() if fs}
    if not held:
        return CheckResult("lake.file_layout", True, "no files of the old layout", skipped=True)
    behind = [
        d
        for d, fs in held.items()
        if (committed := delta.last_commit(config, d)) is None
        or any(f.modified > committed for f in fs)
    ]
    count = sum(len(fs) for fs in held.values())
    if behind:
        return CheckResult(
            "lake.file_layout",
            True,
            f"{count} files of the old layout hold data the Delta tables lack ({', '.join(behind)})",
            "run `obs lake migrate`",
            warn=True,
        )
    return CheckResult(
        "lake.file_layout",
        True,
        f"{count} files of the old layout, all migrated into the Delta tables",
        "delete hot/, warm/, cold/ and _inventory/ under lake.root to stop paying for them",
        warn=True,
    )


def _lake_writable(lake: Any) -> CheckResult:
    """A probe file written and deleted at the root; on a local lake, each table's folder and
    log folder must be writable too (writers add files and commits there, not at the root)."""
    fs, base = lake.storage.arrow_filesystem()
    probe = f"{base}/_doctor/probe-{uuid.uuid4().hex}"
    try:
        fs.create_dir(probe.rsplit("/", 1)[0], recursive=True)
        with fs.open_output_stream(probe) as stream:
            stream.write(b"obs doctor probe\n")
        fs.delete_file(probe)
    except (OSError, ObsError) as exc:
        return CheckResult(
            "lake.writable",
            False,
            f"cannot write under {lake.storage.root} ({str(exc).splitlines()[0][:160]})",
            "check lake.root, its permissions or the S3 credentials named under lake.s3",
        )
    unwritable = _unwritable_table_folders(lake.config)
    if unwritable:
        return CheckResult(
            "lake.writable",
            False,
            f"{len(unwritable)} table folders are not writable: {', '.join(unwritable[:4])}",
            "give the user running obs write access to them (e.g. chmod -R u+w, or chown)",
        )
    return CheckResult("lake.writable", True, f"wrote and deleted a probe at {lake.storage.root}")


def _unwritable_table_folders(config: ObsConfig) -> list[str]:
    """The folders of a local lake's tables (and of their partitions and logs) this process
    cannot create files in: the root's probe says nothing about them. S3 has no folders."""
    from obs_pipelines.lake.delta import delta_root

    root = Path(delta_root(config))
    if config.lake_root.startswith("s3://") or not root.is_dir():
        return []
    found = []
    for table in sorted(p for p in root.iterdir() if p.is_dir()):
        for folder in [table, *sorted(p for p in table.rglob("*") if p.is_dir())]:
            if not os.access(folder, os.W_OK | os.X_OK):
                found.append(str(folder))
    return found


# --- catalog ---------------------------------------------------------------------------------


def _catalog_checks(config: ObsConfig, broken_tables: set[str] | None = None) -> list[CheckResult]:
    path = Path(config.catalog_path)
    if not path.exists():
        return [
            CheckResult(
                "catalog",
                False,
                f"no catalog at {path}",
                "run `obs catalog` or materialize an asset",
            )
        ]
    return [
        _guard("catalog", lambda: _catalog_views(config, broken_tables or set())),
        _guard("lake.sources", lambda: _lake_sources(config, broken_tables or set())),
    ]


# DuckDB reads files in parallel up to its thread count; at a 20 ms round trip, 16 read 150
# commit files of a moto lake in 1.6 s against 4.5 s with 2 (more gained nothing).
_S3_READ_THREADS = 16

# What each backend records as the source of the partitions it writes (sources/*.py ``name``).
_RECORDED_AS = {"alertmanager_alerts": {"prometheus": "alertmanager"}}


def _lake_sources(config: ObsConfig, broken_tables: set[str]) -> CheckResult:
    """Whether the lake holds data from sources the config does not use (simulated data in a
    lake fed by real servers, or any data of a pillar set to ``none``): such partitions count in
    the reports. Reads each file's recorded source (``lake_partition_sources``), that is every
    table's commits, so a table whose log does not open (``broken_tables``) leaves it unread."""
    import duckdb

    from obs_pipelines.lake.catalog import connect

    if broken_tables:
        return _not_run(
            "lake.sources",
            f"it reads every table's log, and {len(broken_tables)} do not open "
            f"({', '.join(sorted(broken_tables))}); fix what lake.tables says first",
        )
    con = connect(config, read_only=True)
    try:
        if config.lake_root.startswith("s3://"):
            # It reads every commit file of every table: small requests waiting on the network.
            con.execute(f"SET threads = {_S3_READ_THREADS}")
        rows = con.execute(
            """SELECT dataset, source, count(*) FROM lake_partition_sources
               WHERE "current" AND source IS NOT NULL GROUP BY ALL ORDER BY ALL"""
        ).fetchall()
    except duckdb.CatalogException:
        return CheckResult(
            "lake.sources",
            True,
            "the catalog predates lake_partition_sources",
            "run `obs catalog`",
            warn=True,
        )
    finally:
        con.close()
    sources = config.sources
    foreign = []
    for dataset, recorded, count in rows:
        pillar = sources.pillar_of(dataset) or "metrics"
        if pillar not in SOURCE_PILLARS:  # incident records: whichever of their sources is set
            continue
        backend = sources.backend(pillar)
        expected = _RECORDED_AS.get(dataset, {}).get(backend, backend)
        others = sorted(set(recorded.split(",")) - {expected, "unknown"})
        if others:
            foreign.append(
                f"{count} of {dataset} from {'+'.join(others)} (sources.{pillar}: {backend})"
            )
    if not foreign:
        written = sorted({r[1] for r in rows} - {None})
        return CheckResult(
            "lake.sources",
            True,
            f"every partition comes from a configured source ({', '.join(written) or 'none yet'})",
        )
    return CheckResult(
        "lake.sources",
        True,
        "files written by sources not in use count in the reports: " + "; ".join(foreign[:4]),
        "delete those partitions (SELECT file FROM lake_partition_sources) if they do not "
        "belong in this lake, then run `obs catalog`",
        warn=True,
    )


def _catalog_views(config: ObsConfig, broken_tables: set[str]) -> CheckResult:
    """Every view of the catalog binds. The views of the lake are bound against the tables
    (reading each table's log once); the reports against empty stand-ins of those views, with
    the columns the build gave them, as the build creates them: binding a report against the
    lake would read the logs once per reference (seconds a report on S3), and a broken table
    would be named under every report above it instead of once. Views that fail because their
    table does not open (``broken_tables``, from ``lake.tables``) point at that check: rebuilding
    the catalog cannot fix them."""
    import duckdb

    from obs_pipelines.lake.catalog import LAKE_VIEWS, connect
    from obs_pipelines.reporting.reports import stand_in_views

    try:
        con = connect(config, read_only=True)
    except duckdb.Error as exc:
        return CheckResult(
            "catalog",
            False,
            f"{config.catalog_path} does not open read-only ({str(exc).splitlines()[0][:160]})",
            "rebuild it with `obs catalog`",
        )
    try:
        views = [
            r[0]
            for r in con.execute(
                "SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY view_name"
            ).fetchall()
        ]
        lake_views = [v for v in views if v in LAKE_VIEWS]
        broken = _unbound(con, lake_views)
        stand_in_views(con, lake_views)
        broken += _unbound(con, [v for v in views if v not in LAKE_VIEWS])
    finally:
        con.close()
    if broken:
        detail = f"{len(broken)} of {len(views)} views do not bind: " + "; ".join(
            f"{view} ({why})" for view, why in broken[:3]
        )
        # the lake's other views (metrics, lake_partition_sources) read the datasets' tables too
        of_tables = [
            v for v, _ in broken if v in broken_tables or (broken_tables and v in LAKE_VIEWS)
        ]
        if len(of_tables) == len(broken):
            fix = (
                f"their tables do not open ({', '.join(sorted(broken_tables))}): fix what "
                "lake.tables says first; `obs catalog` cannot bind them either"
            )
        else:
            fix = "rebuild the catalog with `obs catalog`; if it persists, fix the report SQL named"
            if of_tables:
                fix += f" ({', '.join(of_tables)}: fix what lake.tables says first)"
        return CheckResult("catalog", False, detail, fix)
    return CheckResult(
        "catalog", True, f"{config.catalog_path} opens read-only; {len(views)} views bind"
    )


def _unbound(con: Any, views: list[str]) -> list[tuple[str, str]]:
    """Each of ``views`` that does not bind, with the first line of why."""
    import duckdb

    broken = []
    for view in views:
        try:
            con.execute(f'SELECT * FROM "{view}" LIMIT 0')
        except duckdb.Error as exc:
            broken.append((view, str(exc).splitlines()[0][:80]))
    return broken


# --- Dagster instance ------------------------------------------------------------------------


def _dagster_checks(home: str | None) -> list[CheckResult]:
    if not home:
        return [
            CheckResult(
                "dagster.home",
                False,
                "DAGSTER_HOME is not set",
                "export DAGSTER_HOME=$PWD/.dagster_home (the Makefile does) and link dagster.yaml there",
            )
        ]
    folder = Path(home)
    if not folder.is_dir():
        return [
            CheckResult(
                "dagster.home", False, f"DAGSTER_HOME={home} is not a folder", f"mkdir -p {home}"
            )
        ]
    if not os.access(folder, os.W_OK):
        return [
            CheckResult(
                "dagster.home", False, f"DAGSTER_HOME={home} is not writable", "fix its permissions"
            )
        ]
    results = [CheckResult("dagster.home", True, f"DAGSTER_HOME={home}")]
    settings_file = folder / "dagster.yaml"
    if not settings_file.exists():
        results.append(
            CheckResult(
                "dagster.yaml",
                False,
                f"no dagster.yaml in {home}",
                "link the repository's dagster.yaml (or deploy/dagster.yaml in production) there",
            )
        )
        return results
    try:
        settings = yaml.safe_load(settings_file.read_text()) or {}
    except yaml.YAMLError as exc:
        results.append(
            CheckResult(
                "dagster.yaml", False, f"{settings_file} is not valid YAML ({exc})", "fix it"
            )
        )
        return results
    results.append(CheckResult("dagster.yaml", True, f"{settings_file} parses"))
    results.append(_guard("dagster.storage", lambda: _dagster_storage(settings, folder)))
    return results


def _dagster_storage(settings: dict[str, Any], home: Path) -> CheckResult:
    storage = settings.get("storage") or {}
    postgres = storage.get("postgres") if isinstance(storage, dict) else None
    if postgres is None and isinstance(settings.get("run_storage"), dict):
        run_storage = settings["run_storage"]
        if "Postgres" in str(run_storage.get("class", "")):
            postgres = run_storage.get("config", {})
    if postgres is not None:
        return _postgres_storage(postgres)
    runs = home / "history" / "runs.db"
    if not runs.exists():
        return CheckResult(
            "dagster.storage", True, f"SQLite under {home} (created on the first run)"
        )
    with sqlite3.connect(f"file:{runs}?mode=ro", uri=True) as con:
        count = con.execute("SELECT count(*) FROM runs").fetchone()[0]
    return CheckResult("dagster.storage", True, f"SQLite {runs}: {count} runs")


def _postgres_storage(section: dict[str, Any]) -> CheckResult:
    import psycopg2

    url = _resolve(section.get("postgres_url"))
    db = {k: _resolve(v) for k, v in (section.get("postgres_db") or {}).items()}
    where = (
        url.split("@")[-1]
        if url
        else f"{db.get('hostname')}:{db.get('port', 5432)}/{db.get('db_name')}"
    )
    try:
        con = psycopg2.connect(
            url
            or f"host={db.get('hostname')} port={db.get('port', 5432)} dbname={db.get('db_name')} "
            f"user={db.get('username')} password={db.get('password') or ''}",
            connect_timeout=5,
        )
    except psycopg2.Error as exc:
        return CheckResult(
            "dagster.storage",
            False,
            f"PostgreSQL {where} refused the connection "
            f"({redact_url(str(exc)).strip().splitlines()[0][:160]})",
            "check storage.postgres in dagster.yaml and the DAGSTER_PG_* variables",
        )
    try:
        with con.cursor() as cursor:
            cursor.execute("SELECT to_regclass('runs') IS NOT NULL")
            initialized = cursor.fetchone()[0]
            runs = 0
            if initialized:
                cursor.execute("SELECT count(*) FROM runs")
                runs = cursor.fetchone()[0]
    finally:
        con.close()
    state = f"{runs} runs" if initialized else "empty (Dagster creates its tables on first use)"
    return CheckResult("dagster.storage", True, f"PostgreSQL {where}: {state}")


def _resolve(value: Any) -> Any:
    """Dagster's ``{env: NAME}`` indirection, as the instance would resolve it."""
    if isinstance(value, dict) and "env" in value:
        name = value["env"]
        if name not in os.environ:
            raise ObsError(
                f"dagster.yaml reads {name} from the environment, but it is not set; export it"
            )
        return os.environ[name]
    return value
