"""Freshness: is the lake keeping up, and are the pipelines it watches keeping up?

Two questions, both answered cheaply enough to ask every sensor tick:

* **Lake freshness** — per dataset, the newest complete hourly partition against now and the
  configured maximum lag (``freshness:`` in the config). It reads only the partition listing
  (:meth:`Lake.hot_partitions`), never a data file, so a tick over thousands of partitions costs
  one listing. Hours that should exist by now but do not are reported as *missing*, so the
  caller can request runs for exactly those partitions.
* **Source freshness** — lag gauges the monitored platform exports to Prometheus, such as the
  seed's ``data_pipeline_lag_seconds{pipeline="market-data"}``: a ``source_lag`` rule
  (:class:`~obs_pipelines.config.SourceLagRuleConfig`) reads like a Prometheus alert rule
  ("over 30 s for 1 minute"), and a :class:`LagObjective` is a
  threshold SLO ("99% of the time within 5 s over 24 h") evaluated live over its window.

Every result carries what it takes to raise or clear an alert (:meth:`alert`), so the notifier
and the Dagster sensors stay thin.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import requests
from prometheus_api_client import PrometheusApiClientException

from obs_pipelines.config import (
    DEFAULT_OPERATIONS,
    ObsConfig,
    PrometheusSourceConfig,
    SourceLagRuleConfig,
    ThresholdSli,
)
from obs_pipelines.durations import format_duration
from obs_pipelines.errors import SourceError
from obs_pipelines.lake import Lake
from obs_pipelines.lake.tiering import streams
from obs_pipelines.operations.notify import Alert
from obs_pipelines.redact import redact_url
from obs_pipelines.windows import HOUR, TimeWindow, floor_hour

LAKE_ALERTNAME = "ObsLakeDatasetStale"
CHECK_LABEL = "obs_check"  # every alert we raise carries it, so we resolve only our own
LAKE_LABEL = "obs_lake"  # ... and this one, so a deployment resolves only its own lake's
UNKNOWN_ALERTNAME = "ObsFreshnessUnknown"


@dataclass(frozen=True)
class DatasetFreshness:
    """Freshness of one dataset at ``evaluated_at``.

    An hour is due ``max_lag`` after it ends (its scheduled run had that long), and the dataset
    is stale once the hour after its newest partition is due and absent: the same rule that
    makes an hour *missing*, so the hour that makes a dataset stale is requested in that tick.
    """

    dataset: str
    max_lag: timedelta
    evaluated_at: datetime
    newest_end: datetime | None  # end of the newest published hourly partition
    partitions: int
    missing: tuple[TimeWindow, ...]  # hours due by now (within the look-back) with no partition
    earliest: datetime  # ingest.start: no hour before it is expected

    @property
    def lag(self) -> timedelta | None:
        return None if self.newest_end is None else self.evaluated_at - self.newest_end

    @property
    def next_hour(self) -> datetime:
        """Start of the first hour the lake should hold next: the one after the newest
        partition, or ``earliest`` when there is none yet (or only hours before it)."""
        return max(self.newest_end or self.earliest, self.earliest)

    @property
    def stale_since(self) -> datetime:
        """When :attr:`next_hour` is due, so the dataset stale if it is still absent."""
        return self.next_hour + HOUR + self.max_lag

    @property
    def breached(self) -> bool:
        return self.evaluated_at >= self.stale_since

    def describe(self) -> str:
        state = "STALE" if self.breached else "fresh"
        due = (
            f"the {self.next_hour:%Y-%m-%d %H:%M}Z hour {'was' if self.breached else 'is'} due by "
            f"{self.stale_since:%Y-%m-%d %H:%M}Z (max lag {format_duration(self.max_lag)} after "
            "an hour ends)"
        )
        gaps = f", {len(self.missing)} hours missing" if self.missing else ""
        if self.newest_end is None:
            return f"{self.dataset}: {state}, no partition in the lake; {due}{gaps}"
        lag = timedelta(seconds=int(self.lag.total_seconds()))  # type: ignore[union-attr]
        ahead = (
            f", {format_duration(-lag)} ahead of the sensor's clock (check the hosts' clocks)"
            if lag < timedelta(0)
            else ""
        )
        return (
            f"{self.dataset}: {state}, newest partition ends {self.newest_end:%Y-%m-%d %H:%M}Z, "
            f"lag {format_duration(lag)}{ahead}; {due}{gaps}"
        )

    def alert(self, runbook: str, repair: str, severity: str = "warning") -> Alert:
        """The stale alert; ``repair`` says what this tick did about it (:func:`repair_note`)."""
        summary = f"Lake dataset {self.dataset} is stale"
        return Alert(
            labels={
                "alertname": LAKE_ALERTNAME,
                "dataset": self.dataset,
                "severity": severity,
                "category": "infrastructure",
                CHECK_LABEL: "lake_freshness",
            },
            annotations={
                "summary": summary,
                "description": f"{self.describe()}. {repair}.",
                "runbook": runbook,
            },
            starts_at=self.stale_since,
        )


def lake_scope(config: ObsConfig, check: str) -> dict[str, str]:
    """The labels that make an alert this deployment's own: the check that raised it and the
    lake it watches (the resolved ``lake.root``, a folder or ``s3://bucket/prefix``).

    Every alert the sensors post carries them and reconciliation resolves only alerts that have
    both, so staging and prod sharing one Alertmanager never resolve each other's breaches. The
    config refuses credentials in a lake root; the value is redacted all the same, since labels
    are shown to everyone who can read Alertmanager."""
    return {CHECK_LABEL: check, LAKE_LABEL: redact_url(config.lake_root)}


def lake_freshness(
    lake: Lake,
    max_lag: Mapping[str, timedelta],
    now: datetime,
    *,
    earliest: datetime,
    gap_lookback: timedelta = DEFAULT_OPERATIONS.gap_lookback,
    kept_for: Mapping[str, timedelta] | None = None,
) -> list[DatasetFreshness]:
    """Freshness of every dataset in ``max_lag``, from each table's commit history.

    An hour is *due* once its end is at least ``max_lag`` in the past (the schedule had its
    chance); due hours inside the look-back without a commit are missing, whatever tier their
    day is in (the history lists hours of compacted days too, and a repaired hour is written
    into its compacted day). The look-back never reaches before ``earliest``, nor past the age
    at which retention deletes the dataset's rows (``kept_for``): those hours are gone on purpose.
    """
    results = []
    for dataset, allowed in max_lag.items():
        lookback = min(gap_lookback, (kept_for or {}).get(dataset, gap_lookback))
        first = max(floor_hour(now - lookback), earliest)
        # Written hours come from the table's commit history, read back to `first` only.
        listed = lake.hot_partitions(dataset, first)
        present = {p.window.start for p in listed}
        newest_end = max((p.window.end for p in listed), default=None)
        if newest_end is None:
            newest_end = lake.tables.newest_hour_end(dataset)
        last_due_end = floor_hour(now - allowed)
        missing = tuple(
            TimeWindow(start, start + HOUR)
            for start in _hour_starts(first, last_due_end)
            if start not in present
        )
        results.append(
            DatasetFreshness(dataset, allowed, now, newest_end, len(listed), missing, earliest)
        )
    return results


def lake_freshness_from_config(
    config: ObsConfig, now: datetime, gap_lookback: timedelta = DEFAULT_OPERATIONS.gap_lookback
) -> list[DatasetFreshness]:
    """:func:`lake_freshness` for the datasets under ``freshness:`` in the config that are
    ingested (a dataset whose source is ``none`` is never written, so it cannot be stale)."""
    watched = {d: lag for d, lag in config.freshness.items() if config.sources.ingests(d)}
    return lake_freshness(
        Lake(config),
        watched,
        now,
        earliest=config.ingest.start,
        gap_lookback=gap_lookback,
        kept_for=_deleted_at(config),
    )


def _deleted_at(config: ObsConfig) -> dict[str, timedelta]:
    """The age at which tiering deletes each dataset's rows: the last stage of its stream
    (raw samples at their resolution's age, series and derived datasets kept longest)."""
    found, _ = streams(config)
    return {s.dataset: s.stages[-1][1] for s in found if s.resolution is None}


def _hour_starts(first: datetime, end: datetime) -> Iterable[datetime]:
    cursor = first
    while cursor + HOUR <= end:
        yield cursor
        cursor += HOUR


# --- repairing gaps: which partitions to request, once ------------------------------------


@dataclass(frozen=True)
class PlannedRun:
    """One hourly partition of one ingest job to (re)run; ``attempt`` counts requests so far."""

    job: str
    hour: TimeWindow
    attempt: int
    datasets: tuple[str, ...]

    @property
    def run_key(self) -> str:
        """Unique per request: Dagster never launches a run key twice for a sensor, and a retry
        after ``retry_after`` is a new attempt with a new key."""
        return f"{self.job}:{self.hour.start:%Y-%m-%dT%H}:{self.attempt}"


@dataclass
class RequestLedger:
    """What was already requested (kept in the sensor cursor): ``job|hour`` -> (attempt, when)."""

    requested: dict[str, tuple[int, float]] = field(default_factory=dict)

    def to_json(self) -> str:
        return orjson.dumps({"requested": self.requested}).decode()

    @classmethod
    def from_json(cls, text: str | None) -> "RequestLedger":
        if not text:
            return cls()
        raw = orjson.loads(text).get("requested", {})
        return cls({k: (int(v[0]), float(v[1])) for k, v in raw.items()})


def plan_gap_runs(
    results: Sequence[DatasetFreshness],
    job_for_dataset: Mapping[str, str],
    ledger: RequestLedger,
    now: datetime,
    *,
    limit: int,
    retry_after: timedelta = timedelta(hours=1),
) -> tuple[list[PlannedRun], RequestLedger]:
    """Runs to request for missing partitions: newest first (freshness is restored soonest), one
    per (job, hour) even when a job writes several datasets, at most ``limit``, and never a
    partition requested less than ``retry_after`` ago. Returns the runs and the new ledger, which
    forgets partitions no longer missing so the cursor stays small."""
    missing: dict[tuple[str, datetime], list[str]] = {}
    for result in results:
        job = job_for_dataset.get(result.dataset)
        if job is None:
            continue
        for hour in result.missing:
            missing.setdefault((job, hour.start), []).append(result.dataset)
    kept: dict[str, tuple[int, float]] = {}
    planned: list[PlannedRun] = []
    for (job, start), datasets in sorted(
        missing.items(), key=lambda item: item[0][1], reverse=True
    ):
        key = _ledger_key(job, start)
        attempt, requested_at = ledger.requested.get(key, (0, 0.0))
        due = attempt == 0 or now.timestamp() - requested_at >= retry_after.total_seconds()
        if due and len(planned) < limit:
            attempt += 1
            planned.append(
                PlannedRun(job, TimeWindow(start, start + HOUR), attempt, tuple(datasets))
            )
            requested_at = now.timestamp()
        if attempt:
            kept[key] = (attempt, requested_at)
    return planned, RequestLedger(kept)


def repair_note(
    result: DatasetFreshness, job: str | None, planned: Sequence[PlannedRun], ledger: RequestLedger
) -> str:
    """What this tick did about ``result``'s missing hours, for its alert: the on-call decides
    from it whether repair runs are on their way, so it says only what was done, and why not.

    ``planned`` and ``ledger`` are what :func:`plan_gap_runs` returned in the same tick."""
    if job is None:
        return "No run was requested: the freshness sensor has no job that writes this dataset"
    if not result.missing:
        return (
            "No run was requested: the hours it lacks are older than the sensor's look-back or "
            "the dataset's retention; backfill them from the Dagster UI"
        )
    now = {run.hour.start for run in planned if run.job == job and result.dataset in run.datasets}
    earlier = [
        h
        for h in result.missing
        if h.start not in now and _ledger_key(job, h.start) in ledger.requested
    ]
    held = len(result.missing) - len(now) - len(earlier)
    parts = [
        f"The freshness sensor requested {_counted(len(now), 'run')} of {job} for its missing "
        "hours in this tick"
    ]
    if earlier:
        parts.append(
            f"{_counted(len(earlier), 'missing hour')} requested in earlier ticks "
            "(retried while missing)"
        )
    if held:
        parts.append(f"{_counted(held, 'missing hour')} past this tick's run limit (next ticks)")
    parts.append("check the ingest runs in the Dagster UI and the source they read")
    return "; ".join(parts)


def _ledger_key(job: str, start: datetime) -> str:
    """The ledger's key for one hourly partition of one job."""
    return f"{job}|{start:%Y-%m-%dT%H}"


def _counted(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


# --- source freshness -----------------------------------------------------------------------


def lag_rule_query(rule: SourceLagRuleConfig) -> str:
    """The instant query that is above ``max_seconds`` exactly when ``rule`` is breached: the
    gauge above the bound for all of ``hold`` (Prometheus's ``for:``) means its minimum over
    that window is above it."""
    if rule.hold <= timedelta(0):
        return f"max({rule.gauge})"
    return f"max(min_over_time({rule.gauge}[{_promql_duration(rule.hold)}]))"


@dataclass(frozen=True)
class LagObjective:
    """A threshold SLO on a lag gauge: the share of ``window`` it stays within bounds must reach
    ``objective`` (the seed's 99% of market data within 5 s over 24 h)."""

    name: str
    pipeline: str
    gauge: str
    objective: float
    window: timedelta
    max: float | None = None
    min: float | None = None
    step: timedelta = timedelta(seconds=15)
    severity: str = "warning"
    category: str = "business"
    runbook: str = ""

    @property
    def query(self) -> str:
        tests = []
        if self.max is not None:
            tests.append(f"({self.gauge} <= bool {self.max!r})")
        if self.min is not None:
            tests.append(f"({self.gauge} >= bool {self.min!r})")
        within = " * ".join(tests)
        window, step = _promql_duration(self.window), _promql_duration(self.step)
        return f"min(avg_over_time(({within})[{window}:{step}]))"

    @classmethod
    def from_slo(cls, slo: Any, runbook: str = "") -> "LagObjective":
        """From a config SLO with a ``threshold`` SLI (``slos:`` in the config)."""
        sli: ThresholdSli = slo.sli
        return cls(
            name=slo.name,
            pipeline=slo.service,
            gauge=sli.gauge,
            objective=slo.objective,
            window=slo.window,
            max=sli.max,
            min=sli.min,
            runbook=runbook,
        )


@dataclass(frozen=True)
class SourceFreshness:
    """One rule or objective evaluated at ``evaluated_at``; ``value`` is None without data."""

    rule: SourceLagRuleConfig | LagObjective
    evaluated_at: datetime
    value: float | None
    query: str = field(default="")

    @property
    def breached(self) -> bool:
        if self.value is None:
            return False
        if isinstance(self.rule, SourceLagRuleConfig):
            return self.value > self.rule.max_seconds
        return self.value < self.rule.objective

    def describe(self) -> str:
        rule = self.rule
        if self.value is None:
            return f"{rule.name} ({rule.pipeline}): no data for {rule.gauge}"
        state = "BREACHED" if self.breached else "ok"
        if isinstance(rule, SourceLagRuleConfig):
            return (
                f"{rule.name} ({rule.pipeline}): {state}, lag at least {self.value:g}s over the last "
                f"{format_duration(rule.hold)} (max {rule.max_seconds:g}s)"
            )
        return (
            f"{rule.name} ({rule.pipeline}): {state}, {self.value:.2%} of the last "
            f"{format_duration(rule.window)} within bounds (objective {rule.objective:.2%})"
        )

    def alert(self) -> Alert:
        rule = self.rule
        if isinstance(rule, SourceLagRuleConfig):
            alertname, summary = (
                rule.name,
                f"{rule.pipeline} pipeline lag above {rule.max_seconds:g}s",
            )
        else:
            alertname = "ObsLagObjectiveMissed"
            summary = f"{rule.pipeline} freshness SLO {rule.name} is below {rule.objective:.2%}"
        return Alert(
            labels={
                "alertname": alertname,
                "pipeline": rule.pipeline,
                "severity": rule.severity,
                "category": rule.category,
                CHECK_LABEL: "source_lag",
                **({"slo": rule.name} if isinstance(rule, LagObjective) else {}),
            },
            annotations={
                "summary": summary,
                "description": f"{self.describe()}. Query: {self.query}",
                "runbook": rule.runbook,
            },
            starts_at=self.evaluated_at,
        )


def lag_unknown_alert(source: str, reason: str, runbook: str) -> Alert:
    """The alert saying source lag cannot be measured, while ``source`` fails (``reason``: its
    one-line error, URLs already redacted).

    The reason is an annotation, not a label: a label is the alert's identity, so a reason
    changing from timeout to refused would raise a second alert instead of updating this one.
    It has an ``obs_check`` of its own so reconciling it never touches the lag alerts."""
    return Alert(
        labels={
            "alertname": UNKNOWN_ALERTNAME,
            "source": source,
            "severity": "warning",
            "category": "infrastructure",
            CHECK_LABEL: "source_unknown",
        },
        annotations={
            "summary": f"Source lag cannot be measured: the {source} query fails",
            "description": (
                f"{redact_url(reason)}. The lag alerts already open are kept as they were until "
                f"{source} answers again; none is raised or resolved meanwhile."
            ),
            "runbook": runbook,
        },
    )


class PrometheusQuery:
    """Instant queries through the same connection settings as the metrics source (auth, TLS,
    retries), with failures turned into one-sentence :class:`SourceError`."""

    def __init__(self, config: PrometheusSourceConfig) -> None:
        from obs_pipelines.sources.prometheus import PrometheusSource

        self.url = redact_url(str(config.url))  # it goes into error messages
        self._source = PrometheusSource(config)
        self._timeout = int(config.timeout.total_seconds())

    def scalar(self, query: str, at: datetime) -> float | None:
        """The single value of an aggregated instant query at ``at``; None if it has no series."""
        try:
            result = self._source.client.custom_query(
                query, params={"time": f"{at.timestamp():.3f}"}, timeout=self._timeout
            )
        except PrometheusApiClientException as exc:
            raise SourceError(
                f"Prometheus at {self.url} refused the freshness query {query} ({str(exc)[:200]}); "
                "fix the gauge selector in the config"
            ) from None
        except requests.exceptions.RequestException as exc:
            raise SourceError(
                f"Prometheus at {self.url} is unreachable ({type(exc).__name__}); "
                "check sources.prometheus.url and that the server is running"
            ) from None
        if not result:
            return None
        return float(result[0]["value"][1])


def source_freshness(
    prometheus: PrometheusQuery,
    rules: Sequence[SourceLagRuleConfig | LagObjective],
    at: datetime,
) -> list[SourceFreshness]:
    """Evaluate every rule and objective at ``at`` (one instant query each)."""
    queries = [
        lag_rule_query(rule) if isinstance(rule, SourceLagRuleConfig) else rule.query
        for rule in rules
    ]
    return [
        SourceFreshness(rule, at, prometheus.scalar(query, at), query)
        for rule, query in zip(rules, queries, strict=True)
    ]


def lag_objectives_from_config(config: ObsConfig, runbook: str = "") -> list[LagObjective]:
    """Every threshold SLO in the config (the seed's ``data_freshness``) as a live objective."""
    return [
        LagObjective.from_slo(slo, runbook) for slo in config.slos if slo.sli.type == "threshold"
    ]


def _promql_duration(delta: timedelta) -> str:
    return format_duration(delta)


def utc_now() -> datetime:
    return datetime.now(UTC)
