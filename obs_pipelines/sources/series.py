"""Series identity: ``series_id`` is a stable 64-bit hash of the metric name and its sorted labels.

BLAKE2b over a canonical byte string gives the same id on every run, machine and Python version
(unlike ``hash()``), so partitions written years apart join on it.
"""

from collections.abc import Sequence
from hashlib import blake2b

import pyarrow as pa

from obs_pipelines.schemas import METRIC_SERIES

# A series' service is its `service` label, else `app`, else its scrape `job`.
SERVICE_LABELS = ("service", "app", "job")


def series_id(metric: str, labels: dict[str, str]) -> int:
    canonical = "\xff".join([metric, *(f"{k}\xfe{labels[k]}" for k in sorted(labels))])
    return int.from_bytes(blake2b(canonical.encode(), digest_size=8).digest(), "big")


def service_of(labels: dict[str, str]) -> str | None:
    return next((labels[key] for key in SERVICE_LABELS if labels.get(key)), None)


def series_table(label_sets: Sequence[dict[str, str]]) -> tuple[pa.Table, list[int]]:
    """Build ``metric_series`` rows from Prometheus label sets (``__name__`` included).

    Returns the table and the ids in input order. Work here is per series, never per sample.
    """
    ids, metrics, labels, services, jobs, instances = [], [], [], [], [], []
    for label_set in label_sets:
        rest = {k: v for k, v in label_set.items() if k != "__name__"}
        metric = label_set.get("__name__", "")
        ids.append(series_id(metric, rest))
        metrics.append(metric)
        labels.append(sorted(rest.items()))
        services.append(service_of(rest))
        jobs.append(rest.get("job"))
        instances.append(rest.get("instance"))
    table = pa.table(
        [
            pa.array(ids, pa.uint64()),
            pa.array(metrics, pa.string()),
            pa.array(labels, METRIC_SERIES.field("labels").type),
            pa.array(services, pa.string()),
            pa.array(jobs, pa.string()),
            pa.array(instances, pa.string()),
        ],
        schema=METRIC_SERIES,
    )
    return table, ids
