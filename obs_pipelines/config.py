"""Typed configuration (``obs.yaml``), validated at load.

Every refusal is one line naming the key and the fix. Secrets are never in the file: it names
the environment variables that hold them, and those are checked at load for every source in use.
"""

import math
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
    model_validator,
)

from obs_pipelines.datasets import DATASETS as REGISTERED
from obs_pipelines.datasets import INGESTED, PILLAR_DATASETS, SOURCE_PILLARS
from obs_pipelines.durations import format_duration, parse_duration
from obs_pipelines.errors import ConfigError, LakeError
from obs_pipelines.redact import redact_url
from obs_pipelines.selectors import parse_selector
from obs_pipelines.windows import as_utc

DEFAULT_CONFIG_PATH = "obs.yaml"
CONFIG_ENV_VAR = "OBS_CONFIG"

PILLARS = ("metrics", "logs", "traces", "alerts", "slo")
# Datasets ingest writes, which `freshness:` may name (obs_pipelines/datasets.py).
DATASETS = INGESTED


_MAX_SECONDS = 1000 * 365 * 86400


def _to_duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value) or abs(value) > _MAX_SECONDS:
            raise ValueError(f"{value!r} is not a duration; write one such as 90s, 15m, 2h or 7d")
        return timedelta(seconds=value)
    return parse_duration(value)


def _shown(value: Any) -> str:
    if isinstance(value, timedelta):
        return format_duration(value)
    return repr(value)


def _duration_at_least(minimum: timedelta, requirement: str) -> BeforeValidator:
    """A duration refused below ``minimum``, showing the value as the user wrote it."""

    def validate(value: Any) -> timedelta:
        negative = isinstance(value, str) and value.strip().startswith("-")  # '-1h'
        duration = timedelta(-1) if negative else _to_duration(value)
        if duration < minimum:
            raise ValueError(f"{requirement} (got {_shown(value)})")
        return duration

    return BeforeValidator(validate)


_SERIALIZED = PlainSerializer(format_duration, return_type=str)
# Zero is meaningful (e.g. lake.delete_delay: 0s deletes in the same run); negative never is.
Duration = Annotated[
    timedelta,
    _duration_at_least(
        timedelta(0), "must not be negative; write a duration such as 0s, 30s or 5m"
    ),
    _SERIALIZED,
]
# Timeouts, windows, ages, intervals: zero would hang, split forever or delete everything.
PositiveDuration = Annotated[
    timedelta,
    _duration_at_least(timedelta(milliseconds=1), "must be a positive duration such as 30s or 5m"),
    _SERIALIZED,
]
# The simulator sums every scrape since a target's last restart (up to a day of them): below 1s
# a window takes hours and all memory, and below 1ms the scrape grid divides by zero.
ScrapeInterval = Annotated[
    timedelta,
    _duration_at_least(timedelta(seconds=1), "must be at least 1s, such as 15s"),
    _SERIALIZED,
]
# Dagster refuses a freshness policy shorter than a minute, when the code location loads.
FreshnessLag = Annotated[
    timedelta,
    _duration_at_least(
        timedelta(minutes=1), "must be at least 1m (Dagster's freshness limit), such as 2h"
    ),
    _SERIALIZED,
]


def _to_utc(value: Any) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:  # its own message ("Invalid isoformat string") shows no example
            raise ValueError(
                f"{value!r} is not an ISO 8601 time; write one such as 2026-01-01T00:00:00Z"
            ) from None
    if isinstance(value, datetime):
        return as_utc(value)
    raise ValueError("expected an ISO 8601 time such as 2026-01-01T00:00:00Z")


UtcTime = Annotated[datetime, BeforeValidator(_to_utc)]


def _has_userinfo(root: str) -> bool:
    """Whether a lake root carries ``key:secret@`` (a secret may hold '/', an S3 key '@')."""
    rest = root.split("://", 1)[1] if "://" in root else root
    return "@" in re.split(r"[/?#]", rest, maxsplit=1)[0] or ":" in rest.rpartition("@")[0]


def _check_url(value: Any, fix: str) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a URL such as http://HOST:PORT")
    if "@" in value:  # a base URL has no other use for it; a password may hold '/' or '@'
        raise ValueError(
            "credentials in the URL are not allowed (they would be logged); "
            f"remove the user and password before '@' and {fix}"
        )
    parsed = urlparse(value)
    if "://" in value and parsed.scheme not in ("http", "https"):
        raise ValueError(f"'{value}': only http:// and https:// URLs are supported")
    if parsed.scheme not in ("http", "https"):
        raise ValueError(f"'{value}' has no http:// or https:// scheme; write it as http://{value}")
    if not parsed.hostname:
        raise ValueError(f"'{value}' has no host; write it as http://HOST:PORT")
    try:
        _ = parsed.port
    except ValueError:
        raise ValueError(f"'{value}' has a port that is not a number from 1 to 65535") from None
    if parsed.query or parsed.fragment:
        raise ValueError(f"'{value}' carries a query or fragment; give the base URL only")
    return value.rstrip("/")


def _url(fix: str) -> BeforeValidator:
    return BeforeValidator(lambda value: _check_url(value, fix))


_S3_CREDENTIALS_FIX = "set lake.s3.access_key_id_env and lake.s3.secret_access_key_env instead"
# A source URL: credentials go in the section's auth, by environment variable.
HttpUrl = Annotated[
    str, _url("set auth.basic.username_env and auth.basic.password_env in this section instead")
]
PushgatewayUrl = Annotated[str, _url("give the plain URL: reports are pushed without credentials")]
S3EndpointUrl = Annotated[str, _url(_S3_CREDENTIALS_FIX)]


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _env_name(value: Any) -> str | None:
    """A key ending in ``_env`` names the variable that holds a secret. Anything else is refused
    without being repeated: it is most likely the secret itself, pasted where its variable's name
    belongs (and "" would send requests without credentials)."""
    if value is None or (isinstance(value, str) and _ENV_NAME.fullmatch(value)):
        return value
    raise ValueError(
        "must name an environment variable (letters, digits, _), not hold the secret itself"
    )


# The name of the environment variable holding a secret; null where a key may be left unset.
EnvVarName = Annotated[str, BeforeValidator(_env_name)]
OptionalEnvVarName = Annotated[str | None, BeforeValidator(_env_name)]


class Strict(BaseModel):
    # No setting means anything at infinity or NaN (YAML's .inf, .nan): a backoff of .inf waits
    # forever and reports a timeout, a .nan bound judges every sample bad. Subclasses that set
    # model_config of their own keep this (pydantic merges it).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class BasicAuth(Strict):
    username_env: EnvVarName = Field(description="Environment variable holding the user name.")
    password_env: EnvVarName = Field(description="Environment variable holding the password.")


class HttpAuth(Strict):
    """Credentials by reference: each field names an environment variable."""

    bearer_token_env: OptionalEnvVarName = None
    basic: BasicAuth | None = None

    @model_validator(mode="after")
    def _one_scheme(self) -> "HttpAuth":
        if self.bearer_token_env and self.basic:
            raise ValueError("give either bearer_token_env or basic, not both")
        return self

    def env_vars(self) -> list[tuple[str, str]]:
        """(key, variable) pairs that must be set for this auth to work."""
        pairs = []
        if self.bearer_token_env:
            pairs.append(("bearer_token_env", self.bearer_token_env))
        if self.basic:
            pairs += [
                ("basic.username_env", self.basic.username_env),
                ("basic.password_env", self.basic.password_env),
            ]
        return pairs


class Tls(Strict):
    verify: bool = True
    ca_file: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None


class PrometheusSourceConfig(Strict):
    url: HttpUrl
    selectors: list[str] = Field(min_length=1)
    timeout: PositiveDuration = timedelta(seconds=120)
    retries: int = Field(default=3, ge=0, le=20)
    retry_backoff_seconds: float = Field(default=1.0, ge=0)
    # Largest window one request may span; longer windows are split before asking.
    max_request_window: PositiveDuration = timedelta(hours=1)
    # Prometheus refuses a query loading more than --query.max-samples; windows are halved until
    # they fit, down to this width.
    min_request_window: PositiveDuration = timedelta(seconds=30)
    # gzip shrinks answers ~5x, but Prometheus compresses at ~20 MB/s of JSON per request: a loss
    # on links faster than ~150 Mbit/s (bench/RESULTS.md). Turn on for slow or metered links.
    compress: bool = False
    auth: HttpAuth | None = None
    tls: Tls = Tls()

    @field_validator("selectors")
    @classmethod
    def _selectors_parse(cls, selectors: list[str]) -> list[str]:
        for selector in selectors:
            parse_selector(selector)
        if len(set(selectors)) != len(selectors):
            raise ValueError("a selector is listed twice; its series would be fetched twice")
        return selectors

    @model_validator(mode="after")
    def _windows_ordered(self) -> "PrometheusSourceConfig":
        if self.max_request_window < self.min_request_window:
            raise ValueError(
                f"max_request_window ({format_duration(self.max_request_window)}) is shorter than "
                f"min_request_window ({format_duration(self.min_request_window)}); raise it or "
                "lower min_request_window"
            )
        return self


class SimulatorConfig(Strict):
    """The built-in Waardhaven telemetry: deterministic, so reruns converge."""

    seed: int = 42
    scrape_interval: ScrapeInterval = timedelta(seconds=15)
    instances_per_service: int = Field(default=2, ge=1, le=50)


class EsAuth(Strict):
    """Elasticsearch credentials by reference: an API key, or a user and password."""

    api_key_env: OptionalEnvVarName = None
    basic: BasicAuth | None = None

    @model_validator(mode="after")
    def _one_scheme(self) -> "EsAuth":
        if bool(self.api_key_env) == bool(self.basic):
            raise ValueError("give exactly one of api_key_env or basic")
        return self

    def env_vars(self) -> list[tuple[str, str]]:
        if self.api_key_env:
            return [("api_key_env", self.api_key_env)]
        if self.basic is None:  # unreachable: _one_scheme requires one of the two
            raise ConfigError("auth: give exactly one of api_key_env or basic")
        return [
            ("basic.username_env", self.basic.username_env),
            ("basic.password_env", self.basic.password_env),
        ]


class EsFieldMapping(Strict):
    """Where each log_records column comes from in the documents (ECS names by default)."""

    timestamp: str = "@timestamp"
    service: str = "service.name"
    level: str = "log.level"
    message: str = "message"
    trace_id: str = "trace.id"
    span_id: str = "span.id"
    host: str = "host.name"


class ElasticsearchSourceConfig(Strict):
    url: HttpUrl
    index: str = "logs-*"
    fields: EsFieldMapping = EsFieldMapping()
    page_size: int = Field(default=5000, ge=1, le=10000)
    slices: int = Field(default=1, ge=1, le=64, description="Parallel sliced exports per window.")
    keep_alive: PositiveDuration = timedelta(minutes=2)
    timeout: PositiveDuration = timedelta(seconds=60)
    retries: int = Field(default=5, ge=0, le=20)
    retry_backoff_seconds: float = Field(default=1.0, ge=0)
    # Server major version: "auto" asks the cluster; 8 sends compatible-with=8 media types.
    server_version: Literal["auto", "8", "9"] = "auto"
    auth: EsAuth | None = None
    tls: Tls = Tls()


class JaegerSourceConfig(Strict):
    url: HttpUrl
    api: Literal["auto", "v3", "v1"] = "auto"
    services: list[str] | None = Field(
        default=None, description="Services to export; default: all discovered."
    )
    search_depth: int = Field(default=1000, ge=1, le=100_000)
    min_split_window: PositiveDuration = timedelta(seconds=1)
    timeout: PositiveDuration = timedelta(seconds=60)
    retries: int = Field(default=3, ge=0, le=20)
    retry_backoff_seconds: float = Field(default=1.0, ge=0)
    auth: HttpAuth | None = None
    tls: Tls = Tls()


class AlertmanagerSourceConfig(Strict):
    url: HttpUrl
    timeout: PositiveDuration = timedelta(seconds=30)
    retries: int = Field(default=3, ge=0, le=20)
    auth: HttpAuth | None = None
    tls: Tls = Tls()


def _https_only(value: Any) -> str:
    url = _check_url(value, "name the token's variable in token_env instead")
    if not url.startswith("https://"):
        raise ValueError(
            f"'{url}': the official PagerDuty client talks HTTPS only; write https://{url.split('://', 1)[1]}"
        )
    return url


class PagerDutySourceConfig(Strict):
    """PagerDuty's REST API v2 (``GET /incidents`` and each incident's log entries), read through
    the official ``pagerduty`` client. Only incidents of the mapped services are kept."""

    url: Annotated[str, BeforeValidator(_https_only)] = "https://api.pagerduty.com"
    token_env: EnvVarName = Field(description="Environment variable holding a REST API token.")
    services: dict[str, str] = Field(
        min_length=1,
        description="PagerDuty service id or name -> our service name; others are skipped.",
    )
    # Incidents created this far back are fetched again at every run, so one resolved days after
    # it started is updated; PagerDuty allows at most 6 months between since and until.
    since: PositiveDuration = timedelta(days=30)
    page_size: int = Field(default=100, ge=1, le=100)
    timeout: PositiveDuration = timedelta(seconds=60)
    retries: int = Field(default=2, ge=0, le=20)
    retry_backoff_seconds: float = Field(default=1.0, ge=0)
    tls: Tls = Tls()

    @field_validator("since")
    @classmethod
    def _within_six_months(cls, since: timedelta) -> timedelta:
        if since > timedelta(days=180):
            raise ValueError("PagerDuty searches at most 6 months at once; write 180d or less")
        return since


class IncidentsSourceConfig(Strict):
    """Incident records, the ground truth of MTTD, MTTR and alert recall where they exist:
    postmortems from a file, and/or PagerDuty incidents."""

    postmortems: str | None = Field(
        default=None,
        description="CSV or YAML file of postmortems, relative to the config file.",
    )
    pagerduty: PagerDutySourceConfig | None = None

    @model_validator(mode="after")
    def _something_to_read(self) -> "IncidentsSourceConfig":
        if self.postmortems is None and self.pagerduty is None:
            raise ValueError(
                "give postmortems (a CSV or YAML file), pagerduty, or both; or remove "
                "sources.incidents"
            )
        return self


class AlertDerivationConfig(Strict):
    """How firing intervals are derived from Prometheus's ALERTS series. Each alert follows its
    rule group's interval as Prometheus's /api/v1/rules lists it; ``evaluation_interval`` is for
    the alerts that no listed rule produces (and for every simulated alert)."""

    evaluation_interval: PositiveDuration = timedelta(seconds=15)
    missed_evaluations_tolerated: int = Field(default=1, ge=0, le=10)


CLOUDWATCH_STATISTICS = ("Sum", "Average", "Maximum", "Minimum", "SampleCount")
_PERCENTILE = re.compile(r"p(100|\d{1,2}(\.\d{1,3})?)")
# Statistics whose per-period values are event counts: they also get a counter view for SLOs.
CLOUDWATCH_COUNTS = ("Sum", "SampleCount")
_AWS_CREDENTIAL_KEYS = re.compile(r"(access_key|secret|session_token|password|credential)", re.I)


def _cloudwatch_statistic(value: Any) -> str:
    if not isinstance(value, str) or not (
        value in CLOUDWATCH_STATISTICS or _PERCENTILE.fullmatch(value)
    ):
        raise ValueError(
            f"{value!r} is not a statistic; use Sum, Average, Maximum, Minimum, SampleCount or a "
            "percentile such as p99"
        )
    return value


def _cloudwatch_period(value: Any) -> timedelta:
    """Each hour is read on its own, so a period must tile the hour: one crossing its end would
    be counted in both hours or split between them."""
    period = _to_duration(value)
    seconds = period.total_seconds()
    if seconds < 60 or seconds % 60 or 3600 % seconds:
        raise ValueError(
            f"{_shown(value)} is not a whole number of minutes that divides an hour; write 60 "
            "(1m), 300 (5m) or 3600 (1h), for example"
        )
    return period


CloudWatchStatistic = Annotated[str, BeforeValidator(_cloudwatch_statistic)]
CloudWatchPeriod = Annotated[timedelta, BeforeValidator(_cloudwatch_period), _SERIALIZED]


class _CloudWatchSelection(Strict):
    """What every query and discovery rule shares: the statistic, its period, and the series'
    service and counter view."""

    statistic: CloudWatchStatistic
    period: CloudWatchPeriod = timedelta(minutes=1)
    service: str | None = Field(
        default=None, description="The `service` label of the series (for coverage and SLOs)."
    )
    counter: bool | None = Field(
        default=None,
        description="Also publish <metric>_total, a counter of the per-period values (default: "
        "on for Sum and SampleCount).",
    )

    @model_validator(mode="after")
    def _counter_of_counts(self) -> "_CloudWatchSelection":
        if self.counter and self.statistic not in CLOUDWATCH_COUNTS:
            raise ValueError(
                f"counter: a counter view counts events, so it needs statistic Sum or SampleCount "
                f"(got {self.statistic}); remove counter"
            )
        return self

    @property
    def counter_view(self) -> bool:
        return self.statistic in CLOUDWATCH_COUNTS if self.counter is None else self.counter


class CloudWatchQuery(_CloudWatchSelection):
    """One metric of one resource: namespace, metric name and its exact dimensions."""

    namespace: str = Field(min_length=1, max_length=255)
    metric_name: str = Field(min_length=1, max_length=255)
    dimensions: dict[str, str] = Field(default={}, max_length=30)


class CloudWatchDiscovery(_CloudWatchSelection):
    """Every metric ListMetrics finds under these filters (a dimension whose value is null
    matches any value of it)."""

    namespace: str = Field(min_length=1, max_length=255)
    metric_name: str | None = None
    dimensions: dict[str, str | None] = Field(default={}, max_length=10)


class CloudWatchSourceConfig(Strict):
    """Amazon CloudWatch metrics through GetMetricData. Credentials come from the standard AWS
    chain only (environment, shared files, SSO, container or instance role)."""

    region: str
    endpoint_url: (
        Annotated[str, _url("give AWS credentials through the standard AWS chain instead")] | None
    ) = Field(default=None, description="For VPC endpoints or a local emulator.")
    queries: list[CloudWatchQuery] = []
    discover: list[CloudWatchDiscovery] = []
    # GetMetricData takes at most 500 queries a call and pages at MaxDatapoints (100,800).
    queries_per_call: int = Field(default=500, ge=1, le=500)
    max_datapoints: int = Field(default=100_800, ge=1, le=100_800)
    # Bounds each GetMetricData call and each discover rule's listing, every page and retry.
    timeout: PositiveDuration = timedelta(seconds=60)
    # Throttling, 5xx answers and connection failures are retried with exponential backoff.
    retries: int = Field(default=5, ge=0, le=20)
    retry_backoff_seconds: float = Field(default=1.0, ge=0)

    @field_validator("region")
    @classmethod
    def _region_form(cls, region: str) -> str:
        if not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d+", region):
            raise ValueError(f"'{region}' is not an AWS region; write one such as eu-west-1")
        return region

    @model_validator(mode="before")
    @classmethod
    def _no_credentials(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in data:
                if isinstance(key, str) and _AWS_CREDENTIAL_KEYS.search(key):
                    raise ValueError(
                        f"{key}: AWS credentials never go in the config; remove it and provide "
                        "them through the standard AWS chain (AWS_ACCESS_KEY_ID and "
                        "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or an instance or task role)"
                    )
        return data

    @model_validator(mode="after")
    def _something_to_read(self) -> "CloudWatchSourceConfig":
        if not self.queries and not self.discover:
            raise ValueError("give queries, discover or both: the metrics to read")
        seen: dict[tuple[Any, ...], int] = {}
        for index, query in enumerate(self.queries):
            key = (
                query.namespace,
                query.metric_name,
                tuple(sorted(query.dimensions.items())),
                query.statistic,
            )
            if key in seen:
                raise ValueError(
                    f"queries[{index}] repeats queries[{seen[key]}] (same namespace, metric_name, "
                    "dimensions and statistic); remove one"
                )
            seen[key] = index
        return self


# Metrics backends that may be listed together under sources.metrics.
METRIC_BACKENDS = ("prometheus", "cloudwatch")
_METRICS_CHOICES = (
    "'simulator', 'prometheus', 'cloudwatch', 'none' or a list of 'prometheus' and 'cloudwatch'"
)


def _metric_backends(value: Any) -> str | tuple[str, ...]:
    """One backend name, or a list of real backends (a list of one is that name)."""
    if isinstance(value, list | tuple):
        names = list(value)
        if not names or any(n not in METRIC_BACKENDS for n in names):
            raise ValueError(
                f"got {names!r}; a list names real backends only: 'prometheus', 'cloudwatch' or both"
            )
        if len(set(names)) != len(names):
            raise ValueError(f"got {names!r}; a backend is listed twice, list it once")
        return names[0] if len(names) == 1 else tuple(names)
    if value not in ("simulator", *METRIC_BACKENDS, "none"):
        raise ValueError(f"got {value!r}; input should be {_METRICS_CHOICES}")
    return str(value)


MetricsBackends = Annotated[str | tuple[str, ...], BeforeValidator(_metric_backends)]


# Not ingested at all: the pillar's assets are not defined and nothing is written.
NO_SOURCE = "none"


class SourcesConfig(Strict):
    """Which backend feeds each pillar: a real server, the built-in ``simulator``, or ``none``.

    Simulated data never mixes with real data unless asked for: a pillar left unset is
    ``simulator`` only while no pillar names a real backend (the embedded demo, everything
    simulated). As soon as one pillar names a real backend, every pillar left unset is ``none``;
    ``simulator`` beside a real backend must be written explicitly.
    """

    # One backend, or a list of real ones read together (`[prometheus, cloudwatch]`).
    metrics: MetricsBackends = "simulator"
    logs: Literal["simulator", "elasticsearch", "none"] = "simulator"
    traces: Literal["simulator", "jaeger", "none"] = "simulator"
    alerts: Literal["simulator", "prometheus", "none"] = "simulator"
    simulator: SimulatorConfig = SimulatorConfig()
    prometheus: PrometheusSourceConfig | None = None
    elasticsearch: ElasticsearchSourceConfig | None = None
    jaeger: JaegerSourceConfig | None = None
    alertmanager: AlertmanagerSourceConfig | None = None
    cloudwatch: CloudWatchSourceConfig | None = None
    alert_derivation: AlertDerivationConfig = AlertDerivationConfig()
    # Prometheus rule files (globs allowed), relative to the config file: their alerting rules are
    # published as the catalog table configured_alert_rules and count for coverage's alerts pillar.
    alert_rule_files: list[str] = []
    # Incident records (postmortems, PagerDuty): absent means none, and reports use impact episodes.
    incidents: IncidentsSourceConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _unset_pillars_beside_a_real_backend_are_none(cls, data: Any) -> Any:
        """The keys present in the input are what the user set (``model_fields_set`` of the
        result); an unset pillar beside a real backend becomes ``none``, not ``simulator``."""
        if not isinstance(data, dict):
            return data
        real = [p for p in SOURCE_PILLARS if data.get(p) not in (None, "simulator", NO_SOURCE)]
        if not real:
            return data
        return {**{p: NO_SOURCE for p in SOURCE_PILLARS if p not in data}, **data}

    @model_validator(mode="after")
    def _selected_sources_configured(self) -> "SourcesConfig":
        for pillar in SOURCE_PILLARS:
            for backend in self.backends(pillar):
                if backend not in ("simulator", NO_SOURCE) and getattr(self, backend) is None:
                    what = "region and queries" if backend == "cloudwatch" else "url"
                    raise ValueError(
                        f"{pillar} come from '{backend}' but there is no sources.{backend} "
                        f"section; add one with its {what}, or set sources.{pillar}: simulator"
                    )
        return self

    def backend(self, pillar: str) -> str:
        """What feeds ``pillar``: a backend name, ``simulator`` or ``none``; several metrics
        backends read together are joined with ``+`` (``prometheus+cloudwatch``), the name
        their partitions are recorded under."""
        value = getattr(self, pillar)
        return "+".join(value) if isinstance(value, tuple) else str(value)

    def backends(self, pillar: str) -> tuple[str, ...]:
        """Every backend ``pillar`` names, in order (``("simulator",)``, ``("none",)``; only
        metrics may name several: ``("prometheus", "cloudwatch")``)."""
        value = getattr(self, pillar)
        return value if isinstance(value, tuple) else (str(value),)

    def pillar_of(self, dataset: str) -> str | None:
        """The pillar whose source writes ``dataset`` (None for derived datasets)."""
        return next((p for p, ds in PILLAR_DATASETS.items() if dataset in ds), None)

    def ingests(self, dataset: str) -> bool:
        """Whether ingest writes ``dataset`` (its pillar's source is not ``none``); derived
        datasets follow metrics, which they are computed from."""
        if dataset == "incident_records":
            return self.incidents is not None
        pillar = self.pillar_of(dataset) or "metrics"
        return self.backend(pillar) != NO_SOURCE


class S3Config(Strict):
    """How to reach S3 (shared by every tier that lives in a bucket); credentials by reference."""

    endpoint_url: S3EndpointUrl | None = None
    region: str = "us-east-1"
    access_key_id_env: OptionalEnvVarName = "AWS_ACCESS_KEY_ID"
    secret_access_key_env: OptionalEnvVarName = "AWS_SECRET_ACCESS_KEY"
    session_token_env: OptionalEnvVarName = None


TIERS = ("hot", "warm", "cold")
# S3 storage classes a tier may use. Objects in the archive classes cannot be read until they
# are restored, so the catalog lists them but leaves them out of query views.
STORAGE_CLASSES = (
    "STANDARD",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER_IR",
    "GLACIER",
    "DEEP_ARCHIVE",
    "REDUCED_REDUNDANCY",
)
ARCHIVE_STORAGE_CLASSES = ("GLACIER", "DEEP_ARCHIVE")
# zstd level of each tier unless configured: hot favours write speed, colder tiers size
# (chosen by measurement, see bench/RESULTS-tiering.md).
DEFAULT_ZSTD_LEVELS = {"hot": 1, "warm": 12, "cold": 19}


def _check_root(root: str) -> str:
    if not root.strip():
        raise ValueError(
            "must not be empty; give a local folder such as lake, or s3://bucket/prefix"
        )
    if "://" in root:
        scheme, _, rest = root.partition("://")
        if _has_userinfo(root):
            raise ValueError(
                "credentials in the lake root are not allowed (they would be logged); "
                f"remove the part before '@' and {_S3_CREDENTIALS_FIX}"
            )
        if scheme != "s3":
            raise ValueError(f"'{root}': the lake lives in a local folder or at s3://bucket/prefix")
        bucket = rest.split("/", 1)[0]
        if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket):
            raise ValueError(f"'{root}': '{bucket}' is not a valid S3 bucket name")
    return root.rstrip("/")


def _retired(data: Any, key: str, advice: str) -> Any:
    """Refuse a key of the file layout's settings with what to do instead (not "unknown key")."""
    if isinstance(data, dict) and key in data:
        raise ValueError(f"{key}: {advice}")
    return data


class TierStorage(Strict):
    """How one tier's data is stored: every tier lives in the same Delta tables under
    ``lake.root``; a file's tier is its age. ``storage_class`` is what S3 moves a tier's objects
    to by age (``obs lake lifecycle``; ``null`` leaves the bucket's default); ``zstd_level`` is the
    compression of the files written for the tier.
    """

    storage_class: Literal[STORAGE_CLASSES] | None = None  # type: ignore[valid-type]
    zstd_level: int | None = Field(default=None, ge=1, le=22)

    @model_validator(mode="before")
    @classmethod
    def _no_root_of_its_own(cls, data: Any) -> Any:
        return _retired(
            data,
            "root",
            "a tier no longer has a root of its own (every dataset is one Delta table under "
            "lake.root); remove it, and if an old lake kept this tier there, give it to "
            "`obs lake migrate --tier-root TIER=ROOT`",
        )

    @property
    def archived(self) -> bool:
        return self.storage_class in ARCHIVE_STORAGE_CLASSES


class LakeConfig(Strict):
    root: str = "lake"
    catalog: str = "lake/obs.duckdb"
    # Every dataset is one Delta Lake table under <root>/delta, which any engine reads. "delta"
    # is the only format; lakes of the earlier file layout are converted by `obs lake migrate`.
    format: Literal["delta"] = "delta"
    s3: S3Config = S3Config()
    hot: TierStorage = TierStorage()
    warm: TierStorage = TierStorage()
    cold: TierStorage = TierStorage()
    # A data file that a commit removed (hours compacted into a day, a re-ingested hour, expired
    # days) is vacuumed this long after, so a reader that opened an older version of the table
    # just before can still read it. 0s vacuums in the same run.
    delete_delay: Duration = timedelta(minutes=5)
    # DuckDB's memory limit in sessions over the catalog (obs query, obs report, the report
    # asset): past it DuckDB spills to <catalog>.tmp. None: DuckDB's own, 80% of the RAM.
    query_memory_limit: str | None = None

    @field_validator("query_memory_limit")
    @classmethod
    def _memory_size(cls, limit: str | None) -> str | None:
        if limit is None:
            return None
        if not re.fullmatch(r"\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)", limit.strip()):
            raise ValueError(
                f"{limit!r} is not a size DuckDB takes; write a number and a unit, such as 8GB "
                "or 512MiB"
            )
        return limit.strip()

    @model_validator(mode="before")
    @classmethod
    def _no_lock(cls, data: Any) -> Any:
        return _retired(
            data,
            "lock_ttl",
            "tiering commits to Delta tables and takes no lock any more; remove it",
        )

    @field_validator("format", mode="before")
    @classmethod
    def _only_delta(cls, value: Any) -> Any:
        if value == "files":
            raise ValueError(
                "the file layout is no longer written or read; remove lake.format and run "
                "`obs lake migrate` to convert the lake into Delta tables"
            )
        return value

    @field_validator("root")
    @classmethod
    def _root_form(cls, root: str) -> str:
        return _check_root(root)

    @field_validator("catalog")
    @classmethod
    def _catalog_form(cls, catalog: str) -> str:
        if not catalog.strip():
            raise ValueError(
                "must not be empty; give the catalog's file path, such as lake/obs.duckdb"
            )
        if "://" in catalog:
            raise ValueError(
                "the catalog is a local DuckDB file; give a local path such as lake/obs.duckdb"
            )
        return catalog

    @model_validator(mode="after")
    def _readable_until_cold(self) -> "LakeConfig":
        for tier in ("hot", "warm"):
            if getattr(self, tier).archived:
                raise ValueError(
                    f"{tier}.storage_class {getattr(self, tier).storage_class} cannot be read "
                    "without a restore, so data could never move on from it; use it for cold only"
                )
        return self

    @property
    def is_s3(self) -> bool:
        return self.root.startswith("s3://")

    def tier(self, name: str) -> TierStorage:
        return getattr(self, name)


class TierAges(Strict):
    """Age at which data leaves each tier; ``null`` skips the tier. The last one is deletion."""

    hot: PositiveDuration
    warm: PositiveDuration | None = None
    cold: PositiveDuration | None = None

    @model_validator(mode="after")
    def _ordered(self) -> "TierAges":
        ages = [a for a in (self.hot, self.warm, self.cold) if a is not None]
        if ages != sorted(ages):
            raise ValueError(
                "ages must grow from hot to warm to cold (each is the age data leaves that tier)"
            )
        return self

    def stages(self) -> list[tuple[str, timedelta]]:
        """(tier, age at which data leaves it) for each tier in use, hot first."""
        return [
            (t, a) for t, a in (("hot", self.hot), ("warm", self.warm), ("cold", self.cold)) if a
        ]


class MetricResolutions(Strict):
    """Age at which each resolution of metric data is deleted (Thanos's retention.resolution-*).

    Raw samples live in hot and warm only; 5-minute and 1-hour rollups are made from them when a
    day moves to warm and follow the warm and cold tiers. ``null`` means: until the last tier of
    ``retention.metrics`` ends (raw: until it leaves warm).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    raw: PositiveDuration | None = None
    five_minutes: PositiveDuration | None = Field(default=None, alias="5m")
    one_hour: PositiveDuration | None = Field(default=None, alias="1h")


# Which retention section governs each dataset (others: by name prefix, or retention.datasets).
DATASET_PILLARS = {d.name: d.retention_pillar for d in REGISTERED.values()}
_PILLAR_PREFIXES = (
    ("metric", "metrics"),
    ("log", "logs"),
    ("span", "traces"),
    ("trace", "traces"),
    ("alert", "alerts"),
)


class RetentionConfig(Strict):
    metrics: TierAges = TierAges(
        hot=timedelta(days=2), warm=timedelta(days=30), cold=timedelta(days=365)
    )
    logs: TierAges = TierAges(
        hot=timedelta(days=90), warm=timedelta(days=365), cold=timedelta(days=7 * 365)
    )
    traces: TierAges = TierAges(hot=timedelta(days=7))
    alerts: TierAges = TierAges(
        hot=timedelta(days=7), warm=timedelta(days=365), cold=timedelta(days=7 * 365)
    )
    metric_resolutions: MetricResolutions = MetricResolutions()
    # Per-dataset ages that override the pillar's (any dataset name in the lake).
    datasets: dict[str, TierAges] = {}

    @model_validator(mode="after")
    def _raw_within_hot_and_warm(self) -> "RetentionConfig":
        raw = self.metric_resolutions.raw
        if raw is not None:
            last = self.metrics.warm or self.metrics.hot
            if raw < self.metrics.hot or raw > last:
                raise ValueError(
                    f"metric_resolutions.raw must lie between metrics.hot and metrics.warm "
                    f"({format_duration(self.metrics.hot)} .. {format_duration(last)}): raw "
                    "samples live in hot and warm only"
                )
        return self

    def for_dataset(self, dataset: str) -> TierAges | None:
        """The ages that govern ``dataset``, or None when nothing in the config names it."""
        if dataset in self.datasets:
            return self.datasets[dataset]
        pillar = DATASET_PILLARS.get(dataset) or next(
            (p for prefix, p in _PILLAR_PREFIXES if dataset.startswith(prefix)), None
        )
        return getattr(self, pillar) if pillar else None

    def resolution_age(self, resolution: str) -> timedelta:
        """Age at which metric data of ``resolution`` ('raw', '5m', '1h') is deleted."""
        stages = self.metrics.stages()
        if resolution == "raw":
            configured = self.metric_resolutions.raw
            return configured or next(a for t, a in reversed(stages) if t != "cold")
        configured = {
            "5m": self.metric_resolutions.five_minutes,
            "1h": self.metric_resolutions.one_hour,
        }[resolution]
        return configured or stages[-1][1]


class ServiceConfig(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    owner: str
    tier: Literal["critical", "high", "standard", "low"] = "standard"
    description: str = ""
    pillars: list[Literal["metrics", "logs", "traces", "alerts", "slo"]] = list(PILLARS)


class RatioSli(Strict):
    type: Literal["ratio"]
    total: str = Field(description="Counter selector counting every event.")
    good: str | None = None
    bad: str | None = None

    @model_validator(mode="after")
    def _good_or_bad(self) -> "RatioSli":
        if (self.good is None) == (self.bad is None):
            raise ValueError("give exactly one of good or bad next to total")
        for selector in (self.total, self.good, self.bad):
            if selector is not None:
                parse_selector(selector)
        return self


class LatencySli(Strict):
    type: Literal["latency"]
    histogram: str = Field(description="Selector of the histogram's _bucket series.")
    threshold_seconds: float = Field(gt=0)

    @field_validator("histogram")
    @classmethod
    def _bucket_series(cls, selector: str) -> str:
        parsed = parse_selector(selector)
        if not (parsed.metric or "").endswith("_bucket"):
            raise ValueError(f"'{selector}' must select a histogram's _bucket series")
        return selector


class ThresholdSli(Strict):
    type: Literal["threshold"]
    gauge: str
    max: float | None = None
    min: float | None = None

    @model_validator(mode="after")
    def _bound(self) -> "ThresholdSli":
        parse_selector(self.gauge)
        if self.max is None and self.min is None:
            raise ValueError("give max, min or both: the bound the gauge must stay within")
        if self.max is not None and self.min is not None and self.min > self.max:
            raise ValueError(
                f"min ({self.min:g}) is above max ({self.max:g}), so no sample could be good; "
                "swap them or fix one"
            )
        return self


Sli = Annotated[RatioSli | LatencySli | ThresholdSli, Field(discriminator="type")]


class SloConfig(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_]*$")
    service: str
    description: str = ""
    objective: float = Field(gt=0, lt=1, description="Target share of good events, e.g. 0.999.")
    window: PositiveDuration = timedelta(days=30)
    sli: Sli


class BurnRateWindowsConfig(Strict):
    """One multi-window burn-rate alert: fire when both windows burn faster than ``burn_rate``."""

    name: str | None = None
    severity: Literal["page", "ticket"] = "page"
    long_window: PositiveDuration
    short_window: PositiveDuration
    burn_rate: float = Field(gt=0)

    @model_validator(mode="after")
    def _short_inside_long(self) -> "BurnRateWindowsConfig":
        if self.short_window >= self.long_window:
            raise ValueError("short_window must be shorter than long_window")
        return self

    @property
    def policy_name(self) -> str:
        """``name``, or one made from the windows (``page_1h_5m``) so every line is named."""
        short, long = format_duration(self.short_window), format_duration(self.long_window)
        return self.name or f"{self.severity}_{long}_{short}"


# The SRE Workbook's four (ch. 5; Sloth's defaults): 2% of a 30-day budget in 1h, 5% in 6h, 10% in
# 1d and 10% in 3d.
DEFAULT_BURN_RATE_POLICY = (
    BurnRateWindowsConfig(
        name="page_1h_5m",
        severity="page",
        long_window=timedelta(hours=1),
        short_window=timedelta(minutes=5),
        burn_rate=14.4,
    ),
    BurnRateWindowsConfig(
        name="page_6h_30m",
        severity="page",
        long_window=timedelta(hours=6),
        short_window=timedelta(minutes=30),
        burn_rate=6.0,
    ),
    BurnRateWindowsConfig(
        name="ticket_1d_2h",
        severity="ticket",
        long_window=timedelta(days=1),
        short_window=timedelta(hours=2),
        burn_rate=3.0,
    ),
    BurnRateWindowsConfig(
        name="ticket_3d_6h",
        severity="ticket",
        long_window=timedelta(days=3),
        short_window=timedelta(hours=6),
        burn_rate=1.0,
    ),
)


class ImpactWindowConfig(Strict):
    """One window length the impact episodes test every minute (see ``sql/impact_episodes.sql``)."""

    window: PositiveDuration = Field(
        description="Window length, e.g. 5m or 6h; rounded to whole minutes, each length once."
    )
    burn_rate: float | None = Field(
        default=None,
        gt=1,
        description="Burn rate (bad events / those the objective allows) a window of this length "
        "must reach to be impact, above 1; unset: reports.impact_burn_rate.",
    )


# Short windows catch sharp failures with minute-exact bounds, long ones slow burns as one episode.
DEFAULT_IMPACT_WINDOWS = (
    ImpactWindowConfig(window=timedelta(minutes=5)),
    ImpactWindowConfig(window=timedelta(hours=1), burn_rate=2.0),
    ImpactWindowConfig(window=timedelta(hours=6), burn_rate=1.5),
    ImpactWindowConfig(window=timedelta(days=1), burn_rate=1.5),
)


class ScorecardTargetsConfig(Strict):
    """The seed's Success Metrics targets; a metric passes only strictly beyond its target."""

    uptime: float = Field(default=0.999, ge=0, le=1, description="System uptime above this share.")
    alert_noise: float = Field(
        default=0.05, ge=0, le=1, description="Alert noise ratio below this share."
    )
    mttd: float = Field(default=5.0, ge=0, description="Mean time to detection below, in minutes.")
    mttr: float = Field(
        default=30.0, ge=0, description="Mean time to resolution below, in minutes."
    )
    coverage: float = Field(
        default=0.95, ge=0, le=1, description="Monitoring coverage above this share."
    )


class ReportsConfig(Strict):
    """How the reliability reports judge the data (defaults: SRE Workbook, the seed's targets).

    Code and tests pass a ``ReportsConfig(...)`` of their own where a report should judge
    differently; it validates exactly as the file's ``reports:`` section does.
    """

    period: PositiveDuration = timedelta(days=7)
    # SLO-impact episodes, the ground truth of alert quality and incidents (sql/impact_episodes.sql).
    impact_windows: list[ImpactWindowConfig] = Field(
        default=list(DEFAULT_IMPACT_WINDOWS),
        min_length=1,
        description="Windows tested every minute for bad events the objective makes "
        "improbable: short ones bound sharp failures to the minute, long ones catch slow burns.",
    )
    impact_burn_rate: float = Field(
        default=5.0,
        gt=1,
        description="Burn-rate floor of every impact window that sets no burn_rate of its own.",
    )
    impact_significance: float = Field(
        default=1e-5,
        gt=0,
        lt=1,
        description="A window (or stretch) is impact only when at least as many bad events as "
        "it holds would happen with a probability below this if the SLI failed at exactly the "
        "budget rate (one-sided Poisson test); also how clean a gap must provably be to split "
        "an impact.",
    )
    impact_min_bad_events: int = Field(
        default=5,
        ge=0,
        description="Fewest bad events a window, a stretch, or a stretch's extension beyond "
        "shorter windows' impact needs to be impact.",
    )
    impact_merge_gap: Duration = Field(
        default=timedelta(minutes=5),
        description="Impacted minutes of a service at most this far apart form one episode.",
    )
    match_tolerance: Duration = Field(
        default=timedelta(minutes=5),
        description="An alert and an episode of the same service are related when their "
        "intervals overlap once each is widened by this much on both sides.",
    )
    transient_alert: Duration = timedelta(minutes=5)
    # Nagios flap detection: weighted state-change percentage over the last 21 states.
    flap_high_threshold: float = Field(default=20.0, ge=0, le=100)
    flap_low_threshold: float = Field(default=5.0, ge=0, le=100)
    budget_warning: float = Field(default=0.5, gt=0, lt=1)
    budget_critical: float = Field(default=0.9, gt=0, le=1)
    uptime_tiers: list[Literal["critical", "high", "standard", "low"]] = ["critical"]
    burn_rate_policy: list[BurnRateWindowsConfig] | None = None  # None: the SRE Workbook four
    targets: ScorecardTargetsConfig = ScorecardTargetsConfig()

    @model_validator(mode="before")
    @classmethod
    def _impact_window_was_replaced(cls, data: Any) -> Any:
        if isinstance(data, dict) and "impact_window" in data:
            raise ValueError(
                "impact_window was replaced by impact_windows, a list of windows with their burn "
                "rate; write impact_windows: [{window: 5m}, {window: 6h, burn_rate: 1.5}]"
            )
        return data

    @model_validator(mode="after")
    def _ordered_thresholds(self) -> "ReportsConfig":
        if self.flap_low_threshold > self.flap_high_threshold:
            raise ValueError("flap_low_threshold must not exceed flap_high_threshold")
        if self.budget_warning >= self.budget_critical:
            raise ValueError("budget_warning must be below budget_critical")
        minutes = [round(w.window.total_seconds() / 60) for w in self.impact_windows]
        if min(minutes) < 1 or len(set(minutes)) < len(minutes):
            raise ValueError(
                "impact_windows must be at least a minute long and differ in whole minutes"
            )
        return self

    @property
    def resolved_burn_rate_policy(self) -> tuple[BurnRateWindowsConfig, ...]:
        """The multi-window burn-rate policy in force: ``burn_rate_policy``, or the SRE Workbook
        four when it is unset."""
        if self.burn_rate_policy is None:
            return DEFAULT_BURN_RATE_POLICY
        return tuple(self.burn_rate_policy)

    @property
    def impact_burn_rates(self) -> tuple[float, ...]:
        """The burn-rate floor of each of ``impact_windows`` (its own, or ``impact_burn_rate``)."""
        return tuple(
            self.impact_burn_rate if w.burn_rate is None else w.burn_rate
            for w in self.impact_windows
        )


class SourceLagRuleConfig(Strict):
    """A lag gauge in Prometheus that must stay under a bound, like a Prometheus alert rule."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="alertname of the breach")
    pipeline: str
    gauge: str = Field(description="Selector of the lag gauge, in seconds.")
    max_seconds: float = Field(gt=0)
    hold: Duration = Field(default=timedelta(minutes=1), alias="for")
    severity: Literal["critical", "warning", "info"] = "critical"
    category: str = "business"
    runbook: str = ""

    @field_validator("gauge")
    @classmethod
    def _gauge_parses(cls, gauge: str) -> str:
        parse_selector(gauge)
        return gauge


class PushgatewayConfig(Strict):
    url: PushgatewayUrl
    job: str = Field(default="obs_pipelines_reports", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    timeout: PositiveDuration = timedelta(seconds=30)


class OperationsConfig(Strict):
    """When things run unattended, and where breaches and report metrics go."""

    ingest_minute: int = Field(
        default=5,
        ge=0,
        le=59,
        description="Minute past the hour the hourly ingest runs, so late scrapes and remote "
        "writes have landed.",
    )
    tiering_at: str = Field(
        default="01:15",
        pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$",
        description="UTC time of the daily tiering: yesterday's hours are all ingested by then.",
    )
    reports_at: str = Field(
        default="02:30",
        pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$",
        description="UTC time of the daily reports: after tiering settled yesterday.",
    )
    max_repair_runs_per_tick: int = Field(default=24, ge=1, le=500)
    gap_lookback: PositiveDuration = timedelta(hours=48)
    reread_after: PositiveDuration | None = Field(
        default=timedelta(hours=6),
        description="Ingest each hour of logs and spans again this long after it closed, for "
        "what their sources received late (log shippers catching up, spans queued in a "
        "collector); null: never.",
    )
    source_lag: list[SourceLagRuleConfig] = []
    pushgateway: PushgatewayConfig | None = None

    @property
    def tiering_time(self) -> tuple[int, int]:
        """``tiering_at`` as (hour, minute)."""
        return _hour_minute(self.tiering_at)

    @property
    def reports_time(self) -> tuple[int, int]:
        """``reports_at`` as (hour, minute)."""
        return _hour_minute(self.reports_at)


def _hour_minute(text: str) -> tuple[int, int]:
    hour, minute = text.split(":")
    return int(hour), int(minute)


# The defaults of the operations section, for code that runs without a config (schedules and
# sensors built directly): read from here so they are written once.
DEFAULT_OPERATIONS = OperationsConfig()


class IngestConfig(Strict):
    start: UtcTime = Field(
        default=datetime(2026, 11, 1, tzinfo=UTC), description="First hourly partition."
    )

    @field_validator("start")
    @classmethod
    def _on_the_hour(cls, start: datetime) -> datetime:
        if start.minute or start.second or start.microsecond:
            raise ValueError(f"{start.isoformat()} is not on the hour; partitions are hourly")
        return start


class ObsConfig(Strict):
    ingest: IngestConfig = IngestConfig()
    sources: SourcesConfig = SourcesConfig()
    lake: LakeConfig = LakeConfig()
    retention: RetentionConfig = RetentionConfig()
    services: list[ServiceConfig] = []
    slos: list[SloConfig] = []
    reports: ReportsConfig = ReportsConfig()
    operations: OperationsConfig = OperationsConfig()
    freshness: dict[Literal[DATASETS], FreshnessLag] = {}  # type: ignore[valid-type]

    # Where the file was read from; relative lake paths resolve against its folder.
    base_dir: Path = Field(default=Path("."), exclude=True)

    @model_validator(mode="after")
    def _references(self) -> "ObsConfig":
        names = [s.name for s in self.services]
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            raise ValueError(f"services: {sorted(duplicates)} listed more than once")
        for slo in self.slos:
            if names and slo.service not in names:
                raise ValueError(
                    f"slos: '{slo.name}' names service '{slo.service}', which is not under services; "
                    "add it there or fix the name"
                )
        slo_names = [s.name for s in self.slos]
        if len(set(slo_names)) != len(slo_names):
            raise ValueError("slos: two SLOs share a name; names must be unique")
        return self

    def resolve_path(self, path: str) -> str:
        """A local path from the config, made absolute against the config file's folder."""
        if "://" in path:
            return path
        candidate = Path(path)
        return str(candidate if candidate.is_absolute() else (self.base_dir / candidate).resolve())

    @property
    def lake_root(self) -> str:
        return self.resolve_path(self.lake.root)

    @property
    def catalog_path(self) -> str:
        return self.resolve_path(self.lake.catalog)

    def required_env_vars(self) -> list[tuple[str, str]]:
        """(config key, variable name) for every secret the sources in use need."""
        required: list[tuple[str, str]] = []
        used = {*self.sources.backends("metrics"), self.sources.logs, self.sources.traces}
        used.add(self.sources.alerts)
        if self.sources.alerts == "prometheus":
            used.add("alertmanager")
        for backend in ("prometheus", "elasticsearch", "jaeger", "alertmanager"):
            section = getattr(self.sources, backend)
            if backend in used and section is not None and section.auth is not None:
                required += [(f"sources.{backend}.auth.{k}", v) for k, v in section.auth.env_vars()]
        incidents = self.sources.incidents
        if incidents is not None and incidents.pagerduty is not None:
            required.append(
                ("sources.incidents.pagerduty.token_env", incidents.pagerduty.token_env)
            )
        if self.lake.is_s3:
            s3 = self.lake.s3
            for key in ("access_key_id_env", "secret_access_key_env", "session_token_env"):
                if getattr(s3, key):
                    required.append((f"lake.s3.{key}", getattr(s3, key)))
        return required


def secret(variable: str) -> str:
    """Read a secret named by the config; load_config has already checked it is set and fit to
    send, but the environment of a run may differ from the one that loaded the config."""
    value = os.environ.get(variable)
    if value is None:
        raise ConfigError(f"environment variable {variable} is not set; export it before running")
    problem = secret_problem(variable, value)
    if problem:
        raise ConfigError(problem)
    return value


def secret_problem(variable: str, value: str) -> str | None:
    """Why ``value``, read from ``variable``, cannot be sent as a credential, or None.

    Credentials travel in HTTP headers, which cannot carry control characters (the newline of
    ``$(cat token.txt)``, the CR of a file saved on Windows) or characters outside Latin-1; the
    HTTP library's own error would quote the header, secret included, so the refusal names the
    variable only, never its value."""
    if not value:
        return f"environment variable {variable} is empty; set it to the secret"
    if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in value):
        return (
            f"environment variable {variable} holds a newline or other control character; "
            "set it to the secret alone"
        )
    if any(ord(c) > 255 for c in value):
        return (
            f"environment variable {variable} holds a character an HTTP header cannot carry "
            "(outside Latin-1); set it to the secret alone"
        )
    return None


def load_config(path: str | os.PathLike[str] | None = None) -> ObsConfig:
    """Read and validate the config from ``path``, ``$OBS_CONFIG`` or ``./obs.yaml``."""
    config_path = Path(path or os.environ.get(CONFIG_ENV_VAR) or DEFAULT_CONFIG_PATH)
    if not _is_file(config_path):
        raise ConfigError(
            f"{config_path}: config file not found; set {CONFIG_ENV_VAR} to its path or copy obs.yaml"
        )
    raw, origins = _read_yaml(config_path, seen=())
    return parse_config(
        raw, source=str(config_path), base_dir=config_path.resolve().parent, origins=origins
    )


# Which file each key came from: the key's path (("lake", "root")) -> the file, as shown.
Origins = dict[tuple[Any, ...], str]


def _read_yaml(path: Path, seen: tuple[Path, ...]) -> tuple[Any, Origins]:
    """Parse ``path``, and say which file each key came from; a top-level ``extends:
    other.yaml`` is read first and overlaid (mappings merge key by key, anything else is
    replaced), so a demo or staging file states only what differs from the main config.

    Relative paths mean what they meant where they were written, as in docker-compose: those of
    a base file are made absolute against its folder here, those of ``path`` resolve against
    ``path``'s folder later, as they would without ``extends``."""
    if path.resolve() in seen:
        raise ConfigError(f"{path}: extends loops back to itself; remove the cycle")
    try:
        raw = yaml.load(_read_text(path), Loader=_UniqueKeyLoader)
    except _DuplicateKey as exc:
        raise ConfigError(
            redact_url(f"{path}: duplicate key {exc.key!r} at line {exc.line}; remove one of them")
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(
            redact_url(f"{path}: {problem}{where}; fix the YAML syntax there")
        ) from None
    except (ValueError, OverflowError) as exc:  # YAML reads an unquoted date as a date
        raise ConfigError(
            f"{path}: a date or time that does not exist ({exc}); fix it (e.g. 2027-02-28)"
        ) from None
    if raw is None:
        raise ConfigError(f"{path}: the file is empty; start from the obs.yaml in the repository")
    if not isinstance(raw, dict) or "extends" not in raw:
        return raw, _origins(raw, str(path), {})
    base_path = path.parent / str(raw.pop("extends"))
    if not _is_file(base_path):
        raise ConfigError(
            f"{path}: extends: {base_path} not found; fix the path (relative to this file)"
        )
    base, base_origins = _read_yaml(base_path, (*seen, path.resolve()))
    base = _anchored(base, base_path.resolve().parent)
    shown = {name: os.path.normpath(name) for name in set(base_origins.values())}
    base_origins = {key: shown[name] for key, name in base_origins.items()}
    return _overlay(base, raw), _origins(raw, str(path), base_origins)


def _origins(raw: Any, name: str, base: Origins, prefix: tuple[Any, ...] = ()) -> Origins:
    """``base`` with every key of ``raw`` (under ``prefix``) now coming from file ``name``; keys
    of ``base`` under one that ``raw`` replaces by a non-mapping are gone."""
    origins = dict(base)
    for key, value in raw.items() if isinstance(raw, dict) else ():
        path = (*prefix, key)
        if not isinstance(value, dict):
            origins = {k: v for k, v in origins.items() if k[: len(path)] != path}
        origins[path] = name
        origins = _origins(value, name, origins, path)
    return origins


# Keys holding local paths, relative to the file that holds them (besides every tls section's
# files): (section path, key).
_PATH_KEYS = (
    (("lake",), "root"),
    (("lake",), "catalog"),
    (("sources",), "alert_rule_files"),
    (("sources", "incidents"), "postmortems"),
)
_TLS_FILES = ("ca_file", "client_cert", "client_key")


def _anchored(raw: Any, folder: Path) -> Any:
    """``raw`` (a base file's mapping) with its relative local paths made absolute against
    ``folder``, the base file's; URLs, absolute paths and values of the wrong type are kept
    for validation to judge."""

    def absolute(value: Any) -> Any:
        if isinstance(value, list):
            return [absolute(item) for item in value]
        if not isinstance(value, str) or "://" in value or Path(value).is_absolute():
            return value
        return str((folder / value).resolve())

    def walk(node: Any, path: tuple[Any, ...]) -> Any:
        if not isinstance(node, dict):
            return node
        keys = {k for section, k in _PATH_KEYS if section == path}
        if path[-1:] == ("tls",):
            keys |= set(_TLS_FILES)
        return {k: absolute(v) if k in keys else walk(v, (*path, k)) for k, v in node.items()}

    return walk(raw, ())


def _is_file(path: Path) -> bool:
    """Whether config file ``path`` exists (a folder on the way that may not be searched raises,
    as Path.is_file does not hide that)."""
    try:
        return path.is_file()
    except OSError as exc:
        raise _unreadable(path, exc) from None


def _read_text(path: Path) -> str:
    """The text of config file ``path``, or one line saying why it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}: line {line} holds a byte that is not UTF-8 (0x{exc.object[exc.start]:02x}); "
            "save the file as UTF-8"
        ) from None
    except OSError as exc:
        raise _unreadable(path, exc) from None


def _unreadable(path: Path, exc: OSError) -> ConfigError:
    return ConfigError(
        f"{path}: cannot be read ({exc.strerror or exc}); fix its permissions or give the path "
        "of a readable copy"
    )


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, line: int) -> None:
        super().__init__(f"duplicate key {key!r} at line {line}")
        self.key, self.line = key, line


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that refuses a key given twice in one mapping (PyYAML keeps the last silently,
    so the first, perhaps the one reviewed, would be ignored). Keys from ``<<`` merges may be
    overridden, as YAML intends."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value if isinstance(node, yaml.MappingNode) else ():
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # unhashable: the base class names that problem
                continue
            if duplicate:
                raise _DuplicateKey(key, key_node.start_mark.line + 1)
        return super().construct_mapping(node, deep=deep)


def _overlay(base: Any, top: Any) -> Any:
    if isinstance(base, dict) and isinstance(top, dict):
        return {**base, **{k: _overlay(base.get(k), v) for k, v in top.items()}}
    return top


def parse_config(
    raw: Any,
    source: str = "config",
    base_dir: Path | None = None,
    origins: Origins | None = None,
) -> ObsConfig:
    """Validate an already-parsed mapping; errors name the key and the file that holds it
    (from ``origins``, see :func:`_read_yaml`; ``source`` for keys it does not know)."""
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source}: the top level must be a mapping of sections (sources, lake, ...)"
        )

    def holder(*key: Any) -> str:
        """The file holding ``key``, or else the nearest mapping around it (``source`` for
        keys no file set, such as the root of the config)."""
        known = origins or {}
        return next((known[key[:n]] for n in range(len(key), 0, -1) if key[:n] in known), source)

    try:
        config = ObsConfig.model_validate({**raw, "base_dir": base_dir or Path(".")})
    except ValidationError as exc:
        error = exc.errors()[0]
        raise ConfigError(f"{holder(*error['loc'])}: {_describe(error)}") from None
    for key, variable in config.required_env_vars():
        where = holder(*key.split("."))
        if variable not in os.environ:
            raise ConfigError(
                f"{where}: {key}: environment variable {variable} is not set; export it or change {key}"
            )
        problem = secret_problem(variable, os.environ[variable])
        if problem:
            raise ConfigError(f"{where}: {key}: {problem}")
    _resolve_tls_paths(config, config.base_dir)
    _check_local_paths(config, holder("lake", "root"), holder("lake", "catalog"))
    _check_rule_files(config, holder("sources", "alert_rule_files"))
    _check_incident_files(config, holder("sources", "incidents"))
    return config


def _resolve_tls_paths(model: BaseModel, base_dir: Path) -> None:
    """Make every ``tls`` file path absolute against the config file's folder, as lake paths
    are: a config must mean the same files whichever directory ``obs`` runs from."""
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, Tls):
            for field in ("ca_file", "client_cert", "client_key"):
                path = getattr(value, field)
                if path is not None and not path.is_absolute():
                    object.__setattr__(value, field, (base_dir / path).resolve())
        elif isinstance(value, BaseModel):
            _resolve_tls_paths(value, base_dir)
        elif isinstance(value, list | tuple):
            for item in value:
                if isinstance(item, BaseModel):
                    _resolve_tls_paths(item, base_dir)


def _check_incident_files(config: ObsConfig, source: str) -> None:
    """The postmortems file parses, row by row, and every service named exists in the catalog."""
    if config.sources.incidents is None:
        return
    from obs_pipelines.sources.incidents import check_incident_config

    try:
        check_incident_config(config)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def _check_rule_files(config: ObsConfig, source: str) -> None:
    """Each of ``sources.alert_rule_files`` exists and parses as Prometheus rule groups."""
    if not config.sources.alert_rule_files:
        return
    from obs_pipelines.sources.rule_files import check_rule_files

    try:
        check_rule_files(config)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def _check_local_paths(config: ObsConfig, root_source: str, catalog_source: str) -> None:
    """Refuse at load a lake folder or catalog that no command could use (a file where a folder
    belongs, or the reverse), not as a traceback in the middle of a run (S3 roots are reached at
    run time; ``obs doctor`` checks them). Permissions are not checked here: an analyst with
    read access must be able to query, report and run ``obs doctor``; writers call
    :func:`require_writable`."""
    found = _path_problem(config, writing=False)
    if found:
        key, problem = found
        raise ConfigError(
            f"{root_source if key == 'lake.root' else catalog_source}: {key}: {problem}"
        )


def require_writable(config: ObsConfig) -> None:
    """Refuse in one line a local lake folder or catalog this process cannot write (or create):
    for the commands that write (ingest, tiering, the catalog build), before they start, so a
    read-only lake is a clear message and not a PermissionError from deep inside delta-rs or
    DuckDB. Loading the config no longer checks this."""
    found = _path_problem(config, writing=True)
    if found:
        raise LakeError(f"{found[0]}: {found[1]}")


def _path_problem(config: ObsConfig, writing: bool) -> tuple[str, str] | None:
    """(key, why) for the first of lake.root and lake.catalog that cannot be used, or written
    when ``writing``; None when both can."""
    if "://" not in config.lake.root:
        problem = _folder_problem(Path(config.lake_root), writing)
        if problem:
            return "lake.root", problem
    catalog = Path(config.catalog_path)
    if catalog.is_dir():
        return "lake.catalog", (
            f"{catalog} is a folder; give a file path such as {catalog / 'obs.duckdb'}"
        )
    if writing and catalog.exists() and not os.access(catalog, os.W_OK):
        return "lake.catalog", (
            f"{catalog} is not writable; fix its permissions or choose another path"
        )
    problem = _folder_problem(catalog.parent, writing)
    return ("lake.catalog", problem) if problem else None


def _folder_problem(folder: Path, writing: bool) -> str | None:
    """Why ``folder`` cannot hold lake files (or, when ``writing``, cannot be written or made
    now), or None."""
    try:
        if folder.exists():
            if not folder.is_dir():
                return (
                    f"{folder} is a file, not a folder; move the file away or choose another folder"
                )
            if writing and not os.access(folder, os.W_OK | os.X_OK):
                return f"{folder} is not writable; fix its permissions or choose another folder"
            return None
        ancestor = next((p for p in folder.parents if p.exists()), Path(folder.anchor))
    except OSError as exc:
        return f"{folder} cannot be reached ({exc.strerror}); fix its permissions or choose another folder"
    if not ancestor.is_dir():
        return f"{folder} cannot be created: {ancestor} is a file; choose another folder"
    if writing and not os.access(ancestor, os.W_OK | os.X_OK):
        return (
            f"{folder} cannot be created: {ancestor} is not writable; fix its permissions or "
            "choose another folder"
        )
    return None


def _describe(error: dict[str, Any]) -> str:
    """One line for one pydantic error; every URL's userinfo is masked in what it echoes."""
    return redact_url(_describe_unredacted(error))


def _describe_unredacted(error: dict[str, Any]) -> str:
    key = _dotted(error["loc"])
    kind, message = error["type"], error["msg"]
    if kind == "extra_forbidden":
        return f"{key}: unknown key; remove it or check its spelling"
    if kind == "missing":
        return f"{key}: required key is missing; add it"
    if kind == "value_error":
        message = str(error.get("ctx", {}).get("error", message))
        return f"{key}: {message}" if key else message
    if kind == "literal_error":
        return f"{key}: got {error.get('input')!r}; {message[0].lower()}{message[1:]}"
    got = error.get("input")
    shown = f" (got {got!r})" if not isinstance(got, dict | list) else ""
    return f"{key}: {message[0].lower()}{message[1:]}{shown}; fix the value"


def _dotted(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts[-1:] = [f"{parts[-1] if parts else ''}[{item}]"]
        elif item in ("ratio", "latency", "threshold", "function-after[_ordered(), TierAges]"):
            continue
        else:
            parts.append(str(item))
    return ".".join(parts)
