"""The ingest asset checks can fail: the metrics row count is held to what the source returned,
and a snapshot with nothing to read skips its check instead of passing it."""

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from dagster import AssetCheckEvaluation, DagsterInstance, materialize

import assets.metrics
import obs_pipelines.lake.ingest
from assets.ingest import SNAPSHOT_DATASETS, build_snapshot_ingest
from assets.metrics import build_metric_ingest
from assets.partitions import hourly_partitions
from assets.resources import ObsResource
from obs_pipelines.config import load_config
from obs_pipelines.lake.delta_tables import HourBatch
from obs_pipelines.schemas import METRIC_SAMPLES, METRIC_SERIES
from obs_pipelines.sources.base import MetricChunk
from obs_pipelines.windows import TimeWindow

pytestmark = pytest.mark.integration  # materializes assets through Dagster, seconds per test

HOUR = "2026-11-18-14:00"
HOUR_MS = int(datetime(2026, 11, 18, 14, tzinfo=UTC).timestamp() * 1000)


def chunk(series_id: int, offsets_s: list[int]) -> MetricChunk:
    series = pa.table(
        {
            "series_id": pa.array([series_id], pa.uint64()),
            "metric": ["http_requests_total"],
            "labels": pa.array([[("job", "api")]], pa.map_(pa.string(), pa.string())),
            "service": ["api"],
            "job": ["api"],
            "instance": ["api:9090"],
        },
        schema=METRIC_SERIES,
    )
    samples = pa.table(
        {
            "series_id": pa.array([series_id] * len(offsets_s), pa.uint64()),
            "ts": pa.array([HOUR_MS + s * 1000 for s in offsets_s], pa.int64()).cast(
                pa.timestamp("ms")
            ),
            "value": pa.array([float(s) for s in offsets_s], pa.float64()),
        },
        schema=METRIC_SAMPLES,
    )
    return MetricChunk(series, samples)


class OverlappingSelectors:
    """Series 1 matched by two selectors: 4 of its samples come twice. 12 returned, 8 distinct."""

    name = "overlapping-selectors"

    def read_metrics(self, window: TimeWindow) -> Iterator[MetricChunk]:
        yield chunk(1, [0, 15, 30, 45])
        yield chunk(2, [5, 20, 35, 50])
        yield chunk(1, [0, 15, 30, 45])


def rows_check(config_path: Path, monkeypatch: pytest.MonkeyPatch) -> AssetCheckEvaluation:
    monkeypatch.setattr(assets.metrics, "metric_source", lambda config: OverlappingSelectors())
    partitions = hourly_partitions(load_config(config_path).ingest.start)
    result = materialize(
        [build_metric_ingest(partitions)],
        partition_key=HOUR,
        resources={"obs": ObsResource(config_path=str(config_path))},
        instance=DagsterInstance.ephemeral(),
    )
    assert result.success
    (check,) = [
        e for e in result.get_asset_check_evaluations() if e.check_name == "rows_match_source"
    ]
    return check


def test_a_sample_returned_twice_is_published_once_and_the_count_matches(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    check = rows_check(write_config(), monkeypatch)

    assert check.passed
    assert check.metadata["source samples"].value == 12
    assert check.metadata["distinct source samples"].value == 8
    assert check.metadata["duplicates dropped"].value == 4


def test_a_writer_that_publishes_fewer_rows_than_the_source_returned_fails_the_check(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    add = HourBatch.add

    def losing(self: HourBatch, hour: TimeWindow, table: pa.Table, **kw: Any) -> Any:
        if self.dataset == "metric_samples":
            table = table.slice(0, table.num_rows - 3)
        return add(self, hour, table, **kw)

    monkeypatch.setattr(HourBatch, "add", losing)

    check = rows_check(write_config(), monkeypatch)

    assert not check.passed
    assert "published 5, the source returned 8 distinct of 12" in check.metadata["mismatches"].value


def test_a_deduplication_that_drops_a_genuine_sample_fails_the_check(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # What the check compared before (rows read back against source - dropped) cannot see this:
    # the count of dropped rows comes from the same faulty step.
    first_of_each = obs_pipelines.lake.ingest._first_of_each_sample

    def drops_one_more(ids: np.ndarray, ts: np.ndarray) -> np.ndarray:
        keep = first_of_each(ids, ts)
        keep = np.ones(ids.size, dtype=bool) if keep is None else keep.copy()
        keep[np.flatnonzero(keep)[0]] = False
        return keep

    monkeypatch.setattr(obs_pipelines.lake.ingest, "_first_of_each_sample", drops_one_more)

    check = rows_check(write_config(), monkeypatch)

    assert not check.passed
    assert check.metadata["distinct source samples"].value == 8
    assert "published 7" in check.metadata["mismatches"].value


def snapshot_run(config_path: Path) -> Any:
    (spec,) = [s for s in SNAPSHOT_DATASETS if s.name == "alertmanager_alerts"]
    return materialize(
        [build_snapshot_ingest(spec)],
        resources={"obs": ObsResource(config_path=str(config_path))},
        instance=DagsterInstance.ephemeral(),
    )


def test_a_snapshot_with_no_source_configured_skips_its_check_instead_of_passing_it(
    write_config: Callable[..., Path],
) -> None:
    # Alerts from a Prometheus (never contacted here) and no sources.alertmanager section.
    config_path = write_config(
        sources={
            "alerts": "prometheus",
            "prometheus": {"url": "http://127.0.0.1:9", "selectors": ["up"]},
        }
    )

    result = snapshot_run(config_path)

    assert result.success
    (materialization,) = result.asset_materializations_for_node("alertmanager_alerts")
    assert materialization.metadata["skipped"].value == "no source configured"
    assert result.get_asset_check_evaluations() == []


def test_a_snapshot_with_a_source_evaluates_its_check(write_config: Callable[..., Path]) -> None:
    result = snapshot_run(write_config())

    assert result.success
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == "expectations" and check.passed
