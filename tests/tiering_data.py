"""Synthetic lake content for the tiering tests: small, deterministic, and full of edge cases
(counter resets, decimal gauges, noise, NaN payloads, -0.0, infinities, jittered timestamps)."""

from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from obs_pipelines.config import ObsConfig, parse_config
from obs_pipelines.lake import Lake
from obs_pipelines.lake.catalog import connect, refresh_catalog
from obs_pipelines.schemas import ALERT_RULES, LOG_RECORDS, METRIC_SAMPLES, METRIC_SERIES
from obs_pipelines.windows import HOUR, TimeWindow

SERIES = 12
RETENTION = {
    "metrics": {"hot": "1d", "warm": "3d", "cold": "20d"},
    "logs": {"hot": "1d", "warm": "3d", "cold": "20d"},
    "alerts": {"hot": "1d", "warm": "3d", "cold": "20d"},
    "metric_resolutions": {"5m": "20d", "1h": "20d"},
}
PROMETHEUS_NAN = np.array([0x7FF8000000000001], dtype=np.uint64).view(np.float64)[0]


def series_ids() -> np.ndarray:
    return (np.arange(1, SERIES + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(
        1
    )


def metric_hour(hour: TimeWindow) -> tuple[pa.Table, pa.Table]:
    """``metric_series`` and ``metric_samples`` of one hour: 15 s scrapes, a few ms of jitter."""
    k0 = hour.start_ms // 15_000
    k = np.arange(k0, k0 + 240, dtype=np.int64)
    rng = np.random.default_rng(int(k0))
    ids, ts, values = [], [], []
    for i, sid in enumerate(series_ids()):
        phase = 1_000 + 700 * i
        stamps = k * 15_000 + phase + rng.integers(-5, 6, k.size)
        if i % 4 == 0:  # a counter of whole events that resets every 500 scrapes
            v = (k % 500) * 3.0 + (k // 7 % 5)
        elif i % 4 == 1:  # a gauge rounded to milliseconds
            v = np.round(1.2 + np.sin(k / 50.0), 3)
        elif i % 4 == 2:  # noise
            v = rng.normal(0.7, 0.05, k.size)
        else:  # a mostly integral gauge with oddities
            v = (k % 13).astype(np.float64)
            v[::61] = PROMETHEUS_NAN
            v[::67] = -0.0
            v[::71] = np.inf
        ids.append(np.full(k.size, sid, dtype=np.uint64))
        ts.append(stamps)
        values.append(v.astype(np.float64))
    samples = pa.table(
        [
            pa.array(np.concatenate(ids), pa.uint64()),
            pa.array(np.concatenate(ts), pa.int64()).cast(pa.timestamp("ms")),
            pa.array(np.concatenate(values), pa.float64()),
        ],
        schema=METRIC_SAMPLES,
    )
    series = pa.table(
        {
            "series_id": pa.array(series_ids(), pa.uint64()),
            "metric": [f"m{i}" for i in range(SERIES)],
            "labels": pa.array(
                [[("job", "j"), ("i", str(i))] for i in range(SERIES)],
                METRIC_SERIES.field("labels").type,
            ),
            "service": ["svc"] * SERIES,
            "job": ["j"] * SERIES,
            "instance": [f"host-{i}:9100" for i in range(SERIES)],
        },
        schema=METRIC_SERIES,
    )
    return series, samples


def log_hour(hour: TimeWindow) -> pa.Table:
    n = 50
    start_us = hour.start_ms * 1000
    return pa.table(
        {
            "ts": pa.array(start_us + np.arange(n) * 71_000_000, pa.int64()).cast(
                pa.timestamp("us")
            ),
            "service": [f"svc-{i % 3}" for i in range(n)],
            "level": ["info", "error"] * (n // 2),
            "message": [f"request {i} at {hour.start:%H}" for i in range(n)],
            "trace_id": [None] * n,
            "span_id": [None] * n,
            "host": ["h1"] * n,
            "index": ["logs-1"] * n,
            "doc_id": [f"{hour.start:%Y%m%d%H}-{i}" for i in range(n)],
            "attributes": ['{"k": 1}'] * n,
        },
        schema=LOG_RECORDS,
    )


def rules_snapshot(hour: TimeWindow) -> pa.Table:
    n = 3
    return pa.table(
        {
            "snapshot_at": pa.array([hour.end] * n, pa.timestamp("ms")),
            "group": ["g"] * n,
            "file": [None] * n,
            "name": [f"Rule{i}" for i in range(n)],
            "type": ["alerting"] * n,
            "expr": [f"up == {i}" for i in range(n)],
            "for_seconds": [60.0] * n,
            "labels": pa.array([[("severity", "page")]] * n, ALERT_RULES.field("labels").type),
            "annotations": pa.array([[]] * n, ALERT_RULES.field("annotations").type),
            "health": ["ok"] * n,
            "state": ["inactive"] * n,
            "last_error": [None] * n,
            "group_interval_seconds": [15.0] * n,
            "severity": ["page"] * n,
            "category": [None] * n,
            "service": ["svc"] * n,
        },
        schema=ALERT_RULES,
    )


def write_hours(lake: Lake, hours: list[TimeWindow]) -> None:
    for hour in hours:
        series, samples = metric_hour(hour)
        lake.write_hot("metric_series", hour, series)
        lake.write_hot("metric_samples", hour, samples, sort=False)
        lake.write_hot("log_records", hour, log_hour(hour))
        lake.write_hot("alert_rules", hour, rules_snapshot(hour))


def some_hours(
    days: list[datetime], hours_of_day: tuple[int, ...] = (0, 7, 23)
) -> list[TimeWindow]:
    return [TimeWindow(d + h * HOUR, d + (h + 1) * HOUR) for d in days for h in hours_of_day]


def day(text: str) -> datetime:
    return datetime.fromisoformat(text + "T00:00:00+00:00")


def snapshot(config: ObsConfig, since: datetime | None = None) -> dict[str, Any]:
    """Everything an analyst sees, bit for bit: samples (values as bits), series, logs, rules,
    rollups. The views read the tables live: the catalog is built once (again if the config
    changes)."""
    refresh_catalog(config)
    con = connect(config)
    where = f"WHERE ts >= '{since:%Y-%m-%d %H:%M:%S}'" if since else ""
    samples = con.execute(
        f"SELECT series_id, epoch_ms(ts) AS t, value FROM metric_samples {where} ORDER BY 1, 2"
    ).to_arrow_table()
    result = {
        "samples": (
            samples.column("series_id").to_pylist(),
            samples.column("t").to_pylist(),
            np.asarray(samples.column("value")).view(np.uint64).tolist(),
        ),
        "series": con.execute("SELECT * FROM metric_series ORDER BY series_id").fetchall(),
        "logs": con.execute(f"SELECT * FROM log_records {where} ORDER BY doc_id").fetchall(),
        "rules": con.execute('SELECT * FROM alert_rules ORDER BY snapshot_at, "name"').fetchall(),
        "rollups": con.execute(
            "SELECT series_id, ts, resolution, count, sum::VARCHAR, min::VARCHAR, max::VARCHAR, "
            "last::VARCHAR, counter_increase::VARCHAR FROM metric_rollups ORDER BY ALL"
        ).fetchall(),
    }
    con.close()
    return result


def tiered_config(root: Path, retention: dict[str, Any] | None = None, **lake: Any) -> ObsConfig:
    """A lake under ``root`` whose days are compacted after a day (warm) and kept three
    (raw samples) or twenty days (cold), vacuuming replaced files at once."""
    return parse_config(tiered_settings(root, retention, **lake))


def tiered_settings(
    root: Path, retention: dict[str, Any] | None = None, **lake: Any
) -> dict[str, Any]:
    """The obs.yaml of :func:`tiered_config`, for what reads a file (Dagster's resource)."""
    return {
        "lake": {
            "root": str(root / "lake"),
            "catalog": str(root / "obs.duckdb"),
            "delete_delay": "0s",
            **lake,
        },
        "retention": retention or RETENTION,
    }
