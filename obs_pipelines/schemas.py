"""The lake's public contract: the Arrow schema of every dataset (see DESIGN.md, Datasets).

Analysts query these names; keep them stable. Timestamps are UTC, stored without a zone. Which
datasets exist, and how each is sorted, partitioned and tiered, is :mod:`obs_pipelines.datasets`.
"""

import pyarrow as pa

LABELS = pa.map_(pa.string(), pa.string())

METRIC_SERIES = pa.schema(
    [
        pa.field("series_id", pa.uint64(), nullable=False),
        pa.field("metric", pa.string(), nullable=False),
        pa.field("labels", LABELS),
        pa.field("service", pa.string()),
        pa.field("job", pa.string()),
        pa.field("instance", pa.string()),
    ]
)

METRIC_SAMPLES = pa.schema(
    [
        pa.field("series_id", pa.uint64(), nullable=False),
        pa.field("ts", pa.timestamp("ms"), nullable=False),
        pa.field("value", pa.float64(), nullable=False),
    ]
)

LOG_RECORDS = pa.schema(
    [
        pa.field("ts", pa.timestamp("us"), nullable=False),
        pa.field("service", pa.string()),
        pa.field(
            "level", pa.string()
        ),  # lower-cased: trace, debug, info, warn, error, fatal (or as sent)
        pa.field("message", pa.string()),
        pa.field("trace_id", pa.string()),
        pa.field("span_id", pa.string()),
        pa.field("host", pa.string()),
        pa.field("index", pa.string(), nullable=False),
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("attributes", pa.string()),  # JSON object of every unmapped field
    ]
)

SPANS = pa.schema(
    [
        pa.field("trace_id", pa.string(), nullable=False),  # lower-case hex, 32 chars
        pa.field("span_id", pa.string(), nullable=False),  # lower-case hex, 16 chars
        pa.field("parent_span_id", pa.string()),
        pa.field("service", pa.string()),
        pa.field("operation", pa.string()),
        pa.field("start_ts", pa.timestamp("us"), nullable=False),
        pa.field("duration_us", pa.int64()),
        pa.field("kind", pa.string()),  # server, client, producer, consumer, internal, unspecified
        pa.field("status_code", pa.string()),  # unset, ok, error
        pa.field("is_error", pa.bool_()),
        pa.field("http_status", pa.int32()),
        pa.field("peer_service", pa.string()),
        pa.field("attributes", pa.string()),  # JSON object of the remaining tags/attributes
    ]
)

# One firing (or pending) stretch of one alert as seen inside one window (an hourly partition):
# consecutive ALERTS samples of one label set and state whose gaps stay within `max_gap_ms`. The
# catalog's `alert_events` view (sql/alert_events.sql) stitches fragments of consecutive windows
# into whole intervals, so the result depends only on which windows are in the lake, never on the
# order they were materialized in. The window and the derivation settings travel with each row so
# that the view needs nothing else: whether a fragment may continue past its window
# (`window_end - last_sample <= max_gap_ms`) and where an interval ends
# (`last_sample + evaluation_interval_ms`) are decided from the row alone.
ALERT_FRAGMENTS = pa.schema(
    [
        pa.field(
            "fingerprint", pa.string(), nullable=False
        ),  # Alertmanager's label-set fingerprint, hex
        pa.field("alertname", pa.string(), nullable=False),
        pa.field("state", pa.string(), nullable=False),  # firing | pending
        pa.field("severity", pa.string()),
        pa.field("category", pa.string()),
        pa.field("service", pa.string()),  # label `service`, else `job`
        pa.field("labels", LABELS),  # the alert's labels (ALERTS minus __name__ and alertstate)
        pa.field("first_sample", pa.timestamp("ms"), nullable=False),
        pa.field("last_sample", pa.timestamp("ms"), nullable=False),
        pa.field("samples", pa.int64(), nullable=False),
        pa.field("window_start", pa.timestamp("ms"), nullable=False),
        pa.field("window_end", pa.timestamp("ms"), nullable=False),
        pa.field("evaluation_interval_ms", pa.int64(), nullable=False),
        # Largest gap between samples of one stretch: evaluation_interval x (1 + missed tolerated).
        pa.field("max_gap_ms", pa.int64(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
    ]
)

# One rule per snapshot of Prometheus's /api/v1/rules (or of the rule files, simulated).
ALERT_RULES = pa.schema(
    [
        pa.field("snapshot_at", pa.timestamp("ms"), nullable=False),
        pa.field("group", pa.string(), nullable=False),
        pa.field("file", pa.string()),
        pa.field("name", pa.string(), nullable=False),
        pa.field("type", pa.string(), nullable=False),  # alerting | recording
        pa.field("expr", pa.string(), nullable=False),
        pa.field("for_seconds", pa.float64()),
        pa.field("labels", LABELS),
        pa.field("annotations", LABELS),
        pa.field("health", pa.string()),  # ok | err | unknown
        pa.field("state", pa.string()),  # alerting rules: inactive | pending | firing
        pa.field("last_error", pa.string()),
        pa.field("group_interval_seconds", pa.float64()),
        pa.field("severity", pa.string()),
        pa.field("category", pa.string()),
        pa.field("service", pa.string()),
    ]
)

# Alertmanager's view at one moment (GET /api/v2/alerts): Alertmanager keeps no history, so a
# snapshot describes the moment it was taken (`snapshot_at`), which the source stamps.
ALERTMANAGER_ALERTS = pa.schema(
    [
        pa.field("snapshot_at", pa.timestamp("ms"), nullable=False),
        pa.field("fingerprint", pa.string(), nullable=False),
        pa.field("alertname", pa.string()),
        pa.field("severity", pa.string()),
        pa.field("category", pa.string()),
        pa.field("service", pa.string()),
        pa.field("labels", LABELS),
        pa.field("annotations", LABELS),
        pa.field("starts_at", pa.timestamp("ms")),
        pa.field("ends_at", pa.timestamp("ms")),
        pa.field("updated_at", pa.timestamp("ms")),
        pa.field("state", pa.string()),  # active | suppressed | unprocessed
        pa.field("silenced_by", pa.list_(pa.string())),
        pa.field("inhibited_by", pa.list_(pa.string())),
        pa.field("receivers", pa.list_(pa.string())),
        pa.field("generator_url", pa.string()),
    ]
)

# Incident records (postmortems, PagerDuty), the ground truth of MTTD, MTTR and alert recall where
# they exist. A snapshot: each run writes every record it read (the whole postmortems file, the
# PagerDuty incidents created within `since`) stamped with `fetched_at`, filed under the hour of
# the run; readers keep the newest version of each incident_id (sql/incidents.sql).
INCIDENT_RECORDS = pa.schema(
    [
        pa.field("fetched_at", pa.timestamp("ms"), nullable=False),
        pa.field("source", pa.string(), nullable=False),  # postmortems | pagerduty
        pa.field("incident_id", pa.string(), nullable=False),  # PagerDuty id, or the postmortem's
        pa.field("incident_number", pa.int64()),  # PagerDuty's incident number
        pa.field("service", pa.string(), nullable=False),  # our service name
        pa.field("title", pa.string()),
        pa.field("severity", pa.string()),  # as written; PagerDuty: priority, else urgency
        pa.field("status", pa.string(), nullable=False),  # triggered | acknowledged | resolved
        pa.field("started_at", pa.timestamp("ms"), nullable=False),
        pa.field("detected_at", pa.timestamp("ms")),
        pa.field("acknowledged_at", pa.timestamp("ms")),
        pa.field("resolved_at", pa.timestamp("ms")),
        # How detected_at was set: postmortem | integration trigger | first acknowledge.
        pa.field("detection", pa.string()),
        pa.field("external_service", pa.string()),  # PagerDuty service name (id)
        pa.field("url", pa.string()),  # PagerDuty's html_url
    ]
)

# Derived datasets: what the reports need from raw samples, made at ingest and kept for as long
# as the lake keeps anything (raw samples age out long before). See obs_pipelines/reporting/derived.py.
RESOLUTION = pa.field("resolution", pa.string(), nullable=False)  # raw | 5m | 1h

SLI_MINUTES = pa.schema(
    [
        pa.field("slo_name", pa.string(), nullable=False),
        pa.field("minute", pa.timestamp("ms"), nullable=False),
        pa.field("good_events", pa.float64(), nullable=False),
        pa.field("bad_events", pa.float64(), nullable=False),
        pa.field("total_events", pa.float64(), nullable=False),
        # Threshold SLIs from rollups: samples of buckets neither wholly within nor outside bounds.
        pa.field("uncertain_events", pa.float64(), nullable=False),
        RESOLUTION,
        pa.field("slo_version", pa.string(), nullable=False),
    ]
)

UP_MINUTES = pa.schema(
    [
        pa.field("service", pa.string()),
        pa.field("minute", pa.timestamp("ms"), nullable=False),
        pa.field("up_samples", pa.int64(), nullable=False),
        pa.field("up_ok_samples", pa.int64(), nullable=False),
        RESOLUTION,
    ]
)

SERIES_INVENTORY = pa.schema(
    [
        pa.field("series_id", pa.uint64(), nullable=False),
        pa.field("hour", pa.timestamp("ms"), nullable=False),
        pa.field("samples", pa.int64(), nullable=False),
        pa.field("first_ts", pa.timestamp("ms"), nullable=False),
        pa.field("last_ts", pa.timestamp("ms"), nullable=False),
        RESOLUTION,
    ]
)

# Made by tiering from raw samples when a day moves to warm (see obs_pipelines/lake/rollups.py):
# one row per series and 5-minute or 1-hour bucket.
METRIC_ROLLUPS = pa.schema(
    [
        pa.field("series_id", pa.uint64(), nullable=False),
        pa.field("ts", pa.timestamp("ms"), nullable=False),
        pa.field("resolution", pa.string(), nullable=False),
        pa.field("count", pa.int64(), nullable=False),
        pa.field("sum", pa.float64(), nullable=False),
        pa.field("min", pa.float64(), nullable=False),
        pa.field("max", pa.float64(), nullable=False),
        pa.field("last", pa.float64(), nullable=False),
        pa.field("counter_increase", pa.float64(), nullable=False),
    ]
)
