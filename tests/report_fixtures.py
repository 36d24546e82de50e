"""Hand-built lake contents for the report tests: every count is known to the test."""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from obs_pipelines.config import ObsConfig, load_config
from obs_pipelines.datasets import SCHEMAS
from obs_pipelines.fingerprint import fingerprint
from obs_pipelines.lake import Lake
from obs_pipelines.reporting.derived import derive
from obs_pipelines.reporting.reports import pin_reports, report_queries
from obs_pipelines.schemas import ALERT_FRAGMENTS, LABELS, METRIC_SAMPLES
from obs_pipelines.sources.series import series_id, series_table
from obs_pipelines.windows import TimeWindow

HOUR_MS = 3_600_000
MINUTE_MS = 60_000
SCRAPE_MS = 15_000
EVALUATION_MS = 15_000


def ms(text: str) -> int:
    """Milliseconds since the epoch of an ISO time (UTC)."""
    return round(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def hour_of(ts_ms: int) -> TimeWindow:
    start = datetime.fromtimestamp(ts_ms // HOUR_MS * HOUR_MS / 1000, UTC)
    return TimeWindow(start, datetime.fromtimestamp((ts_ms // HOUR_MS + 1) * HOUR_MS / 1000, UTC))


@dataclass
class MetricSeries:
    metric: str
    labels: dict[str, str]
    samples: list[tuple[int, float]] = field(default_factory=list)


def write_metrics(lake: Lake, series: Iterable[MetricSeries]) -> None:
    """Publish hourly ``metric_series`` and ``metric_samples`` partitions holding ``series``."""
    by_hour: dict[TimeWindow, list[tuple[MetricSeries, list[tuple[int, float]]]]] = defaultdict(
        list
    )
    for s in series:
        hours: dict[TimeWindow, list[tuple[int, float]]] = defaultdict(list)
        for ts, value in s.samples:
            hours[hour_of(ts)].append((ts, value))
        for hour, samples in hours.items():
            by_hour[hour].append((s, samples))
    # One commit per dataset for all the hours, as an ingest run publishes its hours.
    with lake.batch("metric_series") as series_hours, lake.batch("metric_samples") as sample_hours:
        for hour, members in by_hour.items():
            table, _ = series_table([{"__name__": s.metric, **s.labels} for s, _ in members])
            ids, stamps, values = [], [], []
            for s, samples in members:
                sid = series_id(s.metric, s.labels)
                ids += [sid] * len(samples)
                stamps += [ts for ts, _ in samples]
                values += [v for _, v in samples]
            samples_table = pa.table(
                [
                    pa.array(ids, pa.uint64()),
                    pa.array(stamps, pa.int64()).cast(pa.timestamp("ms")),
                    pa.array(values, pa.float64()),
                ],
                schema=METRIC_SAMPLES,
            )
            series_hours.add(hour, table)
            sample_hours.add(hour, samples_table)
        series_hours.commit()
        sample_hours.commit()
    if by_hour:  # as the derived assets do after each ingest run
        derive(lake.config, TimeWindow(min(h.start for h in by_hour), max(h.end for h in by_hour)))


@dataclass(frozen=True)
class Firing:
    """One firing interval [start, end) of an alert, as Prometheus would have evaluated it."""

    alertname: str
    labels: dict[str, str]
    start_ms: int
    end_ms: int


def write_alerts(lake: Lake, firings: Iterable[Firing]) -> None:
    """Publish ``alert_fragments`` for ``firings`` (each must lie inside one hour and end before
    its last evaluation of the hour, so that it reads as resolved)."""
    by_hour: dict[TimeWindow, list[Firing]] = defaultdict(list)
    for f in firings:
        hour = hour_of(f.start_ms)
        assert f.end_ms + 2 * EVALUATION_MS < hour.end_ms, f"{f} must end inside its hour"
        by_hour[hour].append(f)
    for hour, members in by_hour.items():
        labels = [{**f.labels, "alertname": f.alertname} for f in members]
        columns: dict[str, Any] = {
            "fingerprint": [fingerprint(x) for x in labels],
            "alertname": [f.alertname for f in members],
            "state": ["firing"] * len(members),
            "severity": [x.get("severity") for x in labels],
            "category": [x.get("category") for x in labels],
            "service": [x.get("service") or x.get("job") for x in labels],
            "labels": pa.array([sorted(x.items()) for x in labels], LABELS),
            "first_sample": _stamps([f.start_ms for f in members]),
            "last_sample": _stamps([f.end_ms - EVALUATION_MS for f in members]),
            "samples": [(f.end_ms - f.start_ms) // EVALUATION_MS for f in members],
            "window_start": _stamps([hour.start_ms] * len(members)),
            "window_end": _stamps([hour.end_ms] * len(members)),
            "evaluation_interval_ms": [EVALUATION_MS] * len(members),
            "max_gap_ms": [2 * EVALUATION_MS] * len(members),
            "source": ["test"] * len(members),
        }
        lake.write_hot(
            "alert_fragments",
            hour,
            pa.table({f.name: columns[f.name] for f in ALERT_FRAGMENTS}, schema=ALERT_FRAGMENTS),
        )


def _stamps(values: list[int]) -> pa.Array:
    return pa.array(values, pa.int64()).cast(pa.timestamp("ms"))


def make_config(tmp_path: Path, **sections: Any) -> ObsConfig:
    """A config with its lake and catalog under ``tmp_path``."""
    body: dict[str, Any] = {
        "ingest": {"start": "2026-01-01T00:00:00Z"},
        "lake": {"root": str(tmp_path / "lake"), "catalog": str(tmp_path / "lake" / "obs.duckdb")},
        **sections,
    }
    path = tmp_path / "obs.yaml"
    path.write_text(yaml.safe_dump(body))
    return load_config(path)


def every_report(con: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every report view (and the generated ones), in a stable order, computed as
    ``obs report`` computes them: the reports others read pinned first, each once."""
    pin_reports(con)
    names = ["report_period", "slo_events", *report_queries()]
    return {name: con.execute(f"SELECT * FROM {name} ORDER BY ALL").fetchall() for name in names}


def dataset_table(dataset: str, **columns: list[Any]) -> pa.Table:
    """A table of ``dataset``'s schema with the given columns; every other column NULL."""
    schema = SCHEMAS[dataset]
    n = len(next(iter(columns.values())))
    return pa.table(
        {f.name: pa.array(columns.get(f.name, [None] * n), f.type) for f in schema}, schema=schema
    )


def stamps(*values: int) -> list[Any]:
    """Epoch milliseconds as the datetimes a timestamp column takes."""
    return [pa.scalar(v, pa.int64()).cast(pa.timestamp("ms")).as_py() for v in values]


def alert_fragments(*alerts: tuple[str, str, dict[str, str], int]) -> pa.Table:
    """ALERTS fragments: (alertname, state, labels, first sample) each, five evaluations long,
    all inside the hour of the first one's first sample."""
    labels = [{**x[2], "alertname": x[0]} for x in alerts]
    hour = hour_of(alerts[0][3])
    n = len(alerts)
    return dataset_table(
        "alert_fragments",
        fingerprint=[fingerprint(x) for x in labels],
        alertname=[x[0] for x in alerts],
        state=[x[1] for x in alerts],
        service=[x.get("service") or x.get("job") for x in labels],
        labels=[sorted(x.items()) for x in labels],
        first_sample=stamps(*(x[3] for x in alerts)),
        last_sample=stamps(*(x[3] + 4 * EVALUATION_MS for x in alerts)),
        samples=[5] * n,
        window_start=stamps(*[hour.start_ms] * n),
        window_end=stamps(*[hour.end_ms] * n),
        evaluation_interval_ms=[EVALUATION_MS] * n,
        max_gap_ms=[2 * EVALUATION_MS] * n,
        source=["prometheus"] * n,
    )
