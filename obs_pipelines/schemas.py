"""The lake's public contract: the Arrow schema of every dataset (see DESIGN.md, Datasets).

Analysts query these names; keep them stable. Timestamps are UTC, stored without a zone.
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

SCHEMAS: dict[str, pa.Schema] = {
    "metric_series": METRIC_SERIES,
    "metric_samples": METRIC_SAMPLES,
}

# Sort order inside a partition file: makes files compress well and lets readers skip row groups.
SORT_KEYS: dict[str, list[str]] = {
    "metric_series": ["series_id"],
    "metric_samples": ["series_id", "ts"],
}
