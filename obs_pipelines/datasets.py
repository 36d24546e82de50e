"""The registry of the lake's datasets: the one list of what the lake holds.

Config, ingest, the lake, tiering, the catalog, freshness, doctor and the Dagster assets and jobs
look datasets up here instead of keeping lists of their own, so a new dataset is one entry below
(plus its schema in :mod:`obs_pipelines.schemas`, its source and its quality suite). The order of
the entries is the order views, jobs and listings show them in.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

from obs_pipelines.schemas import (
    ALERT_FRAGMENTS,
    ALERT_RULES,
    ALERTMANAGER_ALERTS,
    INCIDENT_RECORDS,
    LOG_RECORDS,
    METRIC_ROLLUPS,
    METRIC_SAMPLES,
    METRIC_SERIES,
    SERIES_INVENTORY,
    SLI_MINUTES,
    SPANS,
    UP_MINUTES,
)

# The four source pillars (sources.metrics, .logs, .traces, .alerts), incident records
# (sources.incidents), and what is computed in the lake from them.
Pillar = Literal["metrics", "logs", "traces", "alerts", "incidents", "derived"]
SOURCE_PILLARS = ("metrics", "logs", "traces", "alerts")
# hourly: one partition per hour, read from the pillar's source; snapshot: the source's state as
# of now, filed under the current hour; derived: computed hourly from other datasets in the lake;
# tiering: made by tiering when a day moves to warm, never ingested.
Cadence = Literal["hourly", "snapshot", "derived", "tiering"]
# How a dataset's files are encoded beyond the generic Parquet settings: "samples" (hot files
# dictionary-encode series_id only, warm files hold the exact metric codec of lake/metric_codec.py),
# "rollups" (delta-packed timestamps and counts, byte-stream-split values).
Codec = Literal["samples", "rollups"]


@dataclass(frozen=True)
class Dataset:
    """One dataset of the lake: its contract (schema, keys, time column) and who makes it."""

    name: str
    schema: pa.Schema
    sort_keys: tuple[str, ...]  # order inside a file: compresses well, lets readers skip
    # The column that places a row in an hourly partition; None for snapshots and series, whose
    # rows are filed under the hour they were taken or seen in.
    time_column: str | None
    pillar: Pillar
    cadence: Cadence
    description: str
    origin: str  # the system the rows come from (a backend, or the lake itself)
    codec: Codec | None = None
    # Warm days of raw samples also make 5-minute and 1-hour rollups (metric_rollups), and raw
    # samples are kept for retention.metric_resolutions.raw only.
    rollups: bool = False
    # Warm and cold keep one row per series with the first and last hour it was seen in.
    collapse_series: bool = False
    # Kept until the lake's longest retention ends (unless retention.datasets names it): what
    # reports read outlives the raw data it was made from.
    kept_longest: bool = False

    @property
    def ingested(self) -> bool:
        """Written by ingest from the pillar's source (not computed in the lake)."""
        return self.cadence in ("hourly", "snapshot")

    @property
    def retention_pillar(self) -> str:
        """The ``retention`` section that sets its tier ages (derived data ages as metrics do,
        incident records as alerts do; both are then kept longest, see ``kept_longest``)."""
        return {"derived": "metrics", "incidents": "alerts"}.get(self.pillar, self.pillar)


REGISTRY: tuple[Dataset, ...] = (
    Dataset(
        "metric_series",
        METRIC_SERIES,
        ("series_id",),
        None,
        "metrics",
        "hourly",
        "One row per Prometheus series seen in the hour: series_id, metric, labels, service, "
        "job, instance.",
        "prometheus",
        collapse_series=True,
    ),
    Dataset(
        "metric_samples",
        METRIC_SAMPLES,
        ("series_id", "ts"),
        "ts",
        "metrics",
        "hourly",
        "Raw samples with their exact timestamps (series_id, ts, value), sorted by series and "
        "time.",
        "prometheus",
        codec="samples",
        rollups=True,
    ),
    Dataset(
        "log_records",
        LOG_RECORDS,
        ("service", "ts", "doc_id"),
        "ts",
        "logs",
        "hourly",
        "One row per log document exported from Elasticsearch (point in time + search_after), "
        "ECS fields mapped to columns.",
        "elasticsearch",
    ),
    Dataset(
        "spans",
        SPANS,
        ("trace_id", "start_ts", "span_id"),
        "start_ts",
        "traces",
        "hourly",
        "One row per span from Jaeger's query API (v3 or v1), de-duplicated across services.",
        "jaeger",
    ),
    Dataset(
        "alert_fragments",
        ALERT_FRAGMENTS,
        ("alertname", "fingerprint", "state", "first_sample"),
        "first_sample",
        "alerts",
        "hourly",
        "Firing and pending stretches of each alert within the hour, from Prometheus's ALERTS "
        "series; the catalog's alert_events view stitches them into whole intervals.",
        "prometheus",
    ),
    Dataset(
        "alert_rules",
        ALERT_RULES,
        ("group", "name"),
        None,
        "alerts",
        "snapshot",
        "Every alerting and recording rule Prometheus has loaded, as of the snapshot.",
        "prometheus",
    ),
    Dataset(
        "alertmanager_alerts",
        ALERTMANAGER_ALERTS,
        ("alertname", "fingerprint"),
        None,
        "alerts",
        "snapshot",
        "Alertmanager's alerts as of the snapshot: state, silences, inhibitions, receivers.",
        "alertmanager",
    ),
    Dataset(
        "incident_records",
        INCIDENT_RECORDS,
        ("service", "started_at", "incident_id"),
        None,
        "incidents",
        "snapshot",
        "Incident records from postmortems and PagerDuty, stamped with fetched_at; the newest "
        "version of each incident_id is current.",
        "pagerduty",
        kept_longest=True,
    ),
    Dataset(
        "sli_minutes",
        SLI_MINUTES,
        ("slo_name", "minute"),
        "minute",
        "derived",
        "derived",
        "Per SLO and UTC minute: good, bad, total (and, from rollups, uncertain) events, the "
        "resolution they came from and the SLO's version.",
        "duckdb",
        kept_longest=True,
    ),
    Dataset(
        "up_minutes",
        UP_MINUTES,
        ("service", "minute"),
        "minute",
        "derived",
        "derived",
        "Per service and UTC minute: `up` samples and those equal to 1.",
        "duckdb",
        kept_longest=True,
    ),
    Dataset(
        "series_inventory",
        SERIES_INVENTORY,
        ("series_id", "hour"),
        "hour",
        "derived",
        "derived",
        "Per series and hour: samples, first and last timestamp.",
        "duckdb",
        kept_longest=True,
    ),
    Dataset(
        "metric_rollups",
        METRIC_ROLLUPS,
        ("series_id", "ts", "resolution"),
        "ts",
        "metrics",
        "tiering",
        "Per series and 5-minute or 1-hour bucket: count, sum, min, max, last and counter "
        "increase of the raw samples, made when a day moves to warm.",
        "lake",
        codec="rollups",
    ),
)

DATASETS: dict[str, Dataset] = {d.name: d for d in REGISTRY}
ALL: tuple[str, ...] = tuple(DATASETS)
# Schemas by name: a convenience for code and tests that only need the schema.
SCHEMAS: dict[str, pa.Schema] = {d.name: d.schema for d in REGISTRY}


def dataset(name: str) -> Dataset:
    """The registered dataset ``name``; an unknown name is one line listing the known ones."""
    try:
        return DATASETS[name]
    except KeyError:
        raise KeyError(
            f"no dataset '{name}'; known: {', '.join(ALL)} (obs_pipelines/datasets.py)"
        ) from None


def names(
    *,
    pillar: Pillar | Iterable[Pillar] | None = None,
    cadence: Cadence | Iterable[Cadence] | None = None,
) -> tuple[str, ...]:
    """Names of the datasets of ``pillar`` and ``cadence`` (each one value or several), in
    registry order."""
    pillars = {pillar} if isinstance(pillar, str) else set(pillar or ())
    cadences = {cadence} if isinstance(cadence, str) else set(cadence or ())
    return tuple(
        d.name
        for d in REGISTRY
        if (not pillars or d.pillar in pillars) and (not cadences or d.cadence in cadences)
    )


# Datasets ingest writes (what `freshness:` may name), and those each source pillar writes.
INGESTED: tuple[str, ...] = names(cadence=("hourly", "snapshot"))
PILLAR_DATASETS: dict[str, tuple[str, ...]] = {
    p: names(pillar=p, cadence=("hourly", "snapshot")) for p in SOURCE_PILLARS
}
