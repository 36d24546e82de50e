"""A run over a range of hours records a materialization per hour: each carries that hour's
numbers (what the lake holds for it), never the run's totals, which the UI would plot on every
hour of the run."""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from obs_pipelines.config import load_config
from obs_pipelines.lake import Lake
from obs_pipelines.windows import HOUR, TimeWindow
from tests.dagster_runs import run_ingest

pytestmark = pytest.mark.integration  # materializes assets through Dagster, seconds per test

# ingest.start: no hour before the first run; 14:00 is the simulator's weekly api-outage.
START = datetime(2026, 11, 18, 13, 0, tzinfo=UTC)
HOURS = [TimeWindow(START + h * HOUR, START + (h + 1) * HOUR) for h in range(3)]
KEYS = ["2026-11-18-13:00", "2026-11-18-14:00", "2026-11-18-15:00"]
REPO = Path(__file__).resolve().parent.parent
ROWS = {  # asset: its metadata key holding the hour's rows
    "log_records": "rows",
    "spans": "rows",
    "alert_fragments": "rows",
    "metric_samples": "samples",
    "sli_minutes": "rows",
    "up_minutes": "rows",
    "series_inventory": "rows",
}


def by_partition(result: Any, asset: str) -> dict[str, dict[str, Any]]:
    return {
        e.partition: {k: v.value for k, v in e.materialization.metadata.items()}
        for e in result.get_asset_materialization_events()
        if e.asset_key.to_user_string() == asset
    }


@pytest.fixture(scope="module")
def ranged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Lake, Any, Path]:
    """Three hours of every simulated pillar and the shipped SLOs, in one run from ingest.start."""
    folder = tmp_path_factory.mktemp("ranged")
    path = folder / "obs.yaml"
    shipped = yaml.safe_load((REPO / "obs.yaml").read_text())
    path.write_text(
        yaml.safe_dump(
            {
                "ingest": {"start": START.strftime("%Y-%m-%dT%H:%M:%SZ")},
                "lake": {"root": str(folder / "lake"), "catalog": str(folder / "obs.duckdb")},
                **{k: shipped[k] for k in ("services", "slos")},
            }
        )
    )
    result = run_ingest(path, KEYS[0], KEYS[-1])
    assert result.success
    return Lake(load_config(path)), result, path


@pytest.mark.parametrize("asset", sorted(ROWS))
def test_each_hour_records_its_own_rows(ranged: tuple[Lake, Any, Path], asset: str) -> None:
    lake, result, _ = ranged
    recorded = by_partition(result, asset)

    assert sorted(recorded) == KEYS
    held = [lake.read_hot(asset, hour).num_rows for hour in HOURS]
    assert [recorded[key][ROWS[asset]] for key in KEYS] == held
    assert all(held), "every hour has rows: a run total would differ from each"
    for key in KEYS:
        assert recorded[key]["run hours"] == 3
        assert "hours" not in recorded[key]


def test_each_hour_of_metrics_records_its_own_bytes_series_and_samples(
    ranged: tuple[Lake, Any, Path],
) -> None:
    _, result, _ = ranged
    samples, series = by_partition(result, "metric_samples"), by_partition(result, "metric_series")

    for key, hour in zip(KEYS, HOURS, strict=True):
        assert samples[key]["first sample"] >= hour.start.timestamp()
        assert samples[key]["last sample"] < hour.end.timestamp()
        assert samples[key]["series"] == series[key]["series"]
    assert len({samples[key]["bytes"] for key in KEYS}) == 3
    assert sum(samples[k]["samples"] for k in KEYS) == sum(
        v for k, v in samples[KEYS[0]].items() if k.startswith("run samples from")
    )


def test_derived_hours_count_the_run_hours_not_the_missing_hour_before(
    ranged: tuple[Lake, Any, Path],
) -> None:
    """The first run at ingest.start has no hour before to read: 3 hours derived, not 2."""
    _, result, _ = ranged
    for asset in ("sli_minutes", "up_minutes", "series_inventory"):
        recorded = by_partition(result, asset)
        for key in KEYS:
            assert recorded[key]["run hours"] == 3
            assert recorded[key]["run hours by resolution (and the hour before)"] == {"raw": 3}
            assert recorded[key]["from"] == "raw"


def test_a_next_hour_reads_the_hour_before_but_counts_only_its_own(
    ranged: tuple[Lake, Any, Path],
) -> None:
    """Runs last in this module: it adds 16:00 to the shared lake."""
    _, _, path = ranged
    result = run_ingest(path, "2026-11-18-16:00", "2026-11-18-16:00")

    (recorded,) = by_partition(result, "sli_minutes").values()
    assert recorded["run hours"] == 1
    assert recorded["run hours by resolution (and the hour before)"] == {"raw": 2}
