"""Tiering on a local lake: moves by age, exact rollups, crashes at every step, concurrent runs,
late re-ingest. The catalog must show the same rows, bit for bit, before and after every move."""

import itertools
import subprocess
import sys
import textwrap
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from obs_pipelines.config import ObsConfig
from obs_pipelines.lake import Lake
from obs_pipelines.lake.rollups import compute_rollups
from obs_pipelines.lake.storage import LockBusy
from obs_pipelines.lake.tiering import STEPS, Move, run_tiering
from obs_pipelines.schemas import METRIC_SAMPLES
from obs_pipelines.windows import HOUR, TimeWindow
from tests.tiering_data import (
    day,
    lake_listing,
    log_hour,
    metric_hour,
    snapshot,
    some_hours,
    tiered_config,
    write_hours,
)

pytestmark = pytest.mark.integration  # writes, tiers and catalogs whole lakes, seconds per test

DAYS = [day("2026-03-30"), day("2026-03-31"), day("2026-04-01"), day("2026-04-02")]


def files_on_disk(config: ObsConfig) -> list[str]:
    """Every data file and inventory marker (not the lock, the anchors or the inventory's
    version stamp, which a lake keeps while empty)."""
    root = Path(config.lake_root)
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file()
        and "_locks" not in p.parts
        and "_anchor" not in p.parts
        and p.relative_to(root).as_posix() != "_inventory/VERSION"
    )


def without_expired_raw(snap: dict[str, Any], first_ms: int) -> tuple[Any, ...]:
    ids, ts, bits = snap["samples"]
    keep = [i for i, t in enumerate(ts) if t >= first_ms]
    return tuple([x[i] for i in keep] for x in (ids, ts, bits))


def test_a_full_cycle_moves_data_hot_to_warm_to_cold_then_deletes_it_showing_the_same_rows(
    tmp_path: Path,
) -> None:
    config = tiered_config(tmp_path)
    write_hours(Lake(config), some_hours(DAYS))
    original = snapshot(config)

    first = run_tiering(config, DAYS[0] + timedelta(days=2))  # 03-30 leaves hot
    after_first = snapshot(config)
    assert {(m.dataset, m.tier, m.partition) for m in first.moves} >= {
        ("metric_samples", "warm", "dt=2026-03-30"),
        ("log_records", "warm", "dt=2026-03-30"),
        ("alert_rules", "warm", "dt=2026-03-30"),
        ("metric_series", "warm", "dt=2026-03-30"),
    }
    assert {k: v for k, v in after_first.items() if k != "rollups"} == {
        k: v for k, v in original.items() if k != "rollups"
    }
    assert after_first["rollups"], "the day that reached warm has rollups"

    second = run_tiering(config, DAYS[0] + timedelta(days=4, hours=12))  # 03-30 leaves warm
    after_second = snapshot(config)
    assert ("log_records", "cold", "month=2026-03 days 30-30") in {
        (m.dataset, m.tier, m.partition) for m in second.moves
    }
    # Raw samples leave with warm (retention: raw = warm age); everything else is unchanged.
    assert after_second["samples"] == without_expired_raw(original, int(DAYS[1].timestamp() * 1000))
    assert after_second["logs"] == original["logs"]
    assert after_second["rules"] == original["rules"]
    assert after_second["series"] == original["series"]
    assert set(after_first["rollups"]) <= set(after_second["rollups"])
    tiers = {(d, t) for d, t, _, current in lake_listing(config) if current}
    assert {("log_records", "hot"), ("log_records", "warm"), ("log_records", "cold")} <= tiers
    assert ("metric_rollups", "cold") in tiers and ("metric_samples", "warm") in tiers

    third = run_tiering(config, DAYS[0] + timedelta(days=8))  # April reaches cold
    after_third = snapshot(config)
    assert after_third["logs"] == original["logs"] and after_third["rules"] == original["rules"]
    assert after_third["series"] == original["series"]
    assert after_third["samples"] == ([], [], [])
    assert set(after_second["rollups"]) <= set(after_third["rollups"])
    assert {t for _, t, _, _ in lake_listing(config)} == {"cold"}
    assert not third.problems

    last = run_tiering(config, DAYS[-1] + timedelta(days=21))  # past every retention
    assert {d.reason for d in last.deletions} == {"expired"}
    assert files_on_disk(config) == []
    assert snapshot(config)["logs"] == []


def test_a_second_run_at_the_same_moment_does_nothing(tmp_path: Path) -> None:
    config = tiered_config(tmp_path)
    write_hours(Lake(config), some_hours(DAYS))
    run_tiering(config, DAYS[0] + timedelta(days=5))
    files = files_on_disk(config)

    again = run_tiering(config, DAYS[0] + timedelta(days=5))

    assert again.moves == [] and again.deletions == [] and files_on_disk(config) == files


def test_rollups_are_exact_against_the_raw_samples_with_counter_resets() -> None:
    hour = TimeWindow(day("2026-04-01"), day("2026-04-01") + HOUR)
    ts = hour.start_ms + np.array(
        [0, 15_000, 30_000, 290_000, 300_000, 310_000, 899_000, 900_000, 3_599_000]
    )
    values = np.array([5.0, 7.0, 12.0, 3.0, 4.0, 10.0, 10.0, 1.0, 2.5])  # resets at 3.0 and 1.0
    samples = pa.table(
        [
            pa.array(np.full(ts.size, 42, np.uint64)),
            pa.array(ts).cast(pa.timestamp("ms")),
            pa.array(values),
        ],
        schema=METRIC_SAMPLES,
    )
    previous = pa.table({"series_id": pa.array([42], pa.uint64()), "value": [4.0]})

    five = compute_rollups(samples, "5m", previous).to_pylist()
    hourly = compute_rollups(samples, "1h", previous).to_pylist()

    assert [(r["count"], r["sum"], r["min"], r["max"], r["last"]) for r in five] == [
        (4, 27.0, 3.0, 12.0, 3.0),
        (2, 14.0, 4.0, 10.0, 10.0),
        (1, 10.0, 10.0, 10.0, 10.0),
        (1, 1.0, 1.0, 1.0, 1.0),
        (1, 2.5, 2.5, 2.5, 2.5),
    ]
    # 4->5 (+1), 5->7 (+2), 7->12 (+5), 12->3 (reset: +3) | 3->4 (+1), 4->10 (+6) | 10->10 | reset +1 | +1.5
    assert [r["counter_increase"] for r in five] == [11.0, 7.0, 0.0, 1.0, 1.5]
    assert hourly[0]["counter_increase"] == sum(r["counter_increase"] for r in five) == 20.5
    assert (hourly[0]["count"], hourly[0]["min"], hourly[0]["max"], hourly[0]["last"]) == (
        9,
        1.0,
        12.0,
        2.5,
    )
    total = 0.0
    for v in values:
        total += v
    assert hourly[0]["sum"] == total


def test_rollups_in_the_lake_match_raw_samples_across_the_day_boundary(tmp_path: Path) -> None:
    config = tiered_config(tmp_path)
    hours = [TimeWindow(DAYS[0] + h * HOUR, DAYS[0] + (h + 1) * HOUR) for h in range(24)]
    hours += [TimeWindow(DAYS[1] + h * HOUR, DAYS[1] + (h + 1) * HOUR) for h in range(2)]
    lake = Lake(config)
    for hour in hours:
        lake.write_hot("metric_samples", hour, metric_hour(hour)[1], sort=False)
    run_tiering(config, DAYS[3])
    from obs_pipelines.lake.catalog import build_catalog, connect

    build_catalog(config)
    con = connect(config)
    counter = int(np.asarray(metric_hour(hours[0])[1].column("series_id"))[0])
    raw = con.execute(
        f"SELECT value FROM metric_samples WHERE series_id = {counter} ORDER BY ts"
    ).fetchall()
    increase = sum(b - a if b >= a else b for (a,), (b,) in itertools.pairwise(raw))
    rolled = con.execute(
        f"SELECT resolution, sum(counter_increase), sum(count) FROM metric_rollups "
        f"WHERE series_id = {counter} GROUP BY 1 ORDER BY 1"
    ).fetchall()
    exact = con.execute(
        """SELECT count(*) FILTER (WHERE r.count <> x.n OR r.min <> x.lo OR r.max <> x.hi OR r.last <> x.last_value)
           FROM metric_rollups r JOIN (
               SELECT series_id, time_bucket(INTERVAL 5 MINUTE, ts) AS b, count(*) AS n,
                      min(value) FILTER (WHERE NOT isnan(value)) AS lo,
                      max(value) FILTER (WHERE NOT isnan(value)) AS hi, arg_max(value, ts) AS last_value
               FROM metric_samples GROUP BY ALL) x
             ON r.series_id = x.series_id AND r.ts = x.b AND r.resolution = '5m'"""
    ).fetchone()
    con.close()

    # Both days' rollups chain through the day boundary: they add up to the raw increase.
    assert rolled == [("1h", increase, len(raw)), ("5m", increase, len(raw))]
    assert exact == (0,)


@pytest.mark.parametrize("step", STEPS)
def test_a_crash_after_any_step_of_a_move_loses_and_duplicates_nothing(
    tmp_path: Path, step: str
) -> None:
    config = tiered_config(tmp_path)
    write_hours(Lake(config), some_hours(DAYS[:2]))
    original = snapshot(config)
    crashed: list[str] = []

    def crash(at: str, move: Move) -> None:
        if at == step and move.stream.dataset == "metric_samples" and not crashed:
            crashed.append(move.describe())
            raise RuntimeError(f"crash after {at}")

    with pytest.raises(RuntimeError, match=f"crash after {step}"):
        run_tiering(config, DAYS[0] + timedelta(days=2), hook=crash)
    assert {k: v for k, v in snapshot(config).items() if k != "rollups"} == {
        k: v for k, v in original.items() if k != "rollups"
    }

    run_tiering(config, DAYS[0] + timedelta(days=2))

    after = snapshot(config)
    assert {k: v for k, v in after.items() if k != "rollups"} == {
        k: v for k, v in original.items() if k != "rollups"
    }
    reference = tiered_config(tmp_path / "reference")
    write_hours(Lake(reference), some_hours(DAYS[:2]))
    run_tiering(reference, DAYS[0] + timedelta(days=2))
    assert after["rollups"] == snapshot(reference)["rollups"]
    assert all(current for *_, current in lake_listing(config)), "a superseded file was left behind"
    leftovers = [f for f in files_on_disk(config) if Path(f).name.startswith(".")]
    assert leftovers == []
    assert not any(f.startswith("hot/") and "dt=2026-03-30" in f for f in files_on_disk(config))


def test_a_process_killed_mid_move_leaves_nothing_a_rerun_does_not_clean(tmp_path: Path) -> None:
    config = tiered_config(tmp_path)
    write_hours(Lake(config), some_hours(DAYS[:2]))
    original = snapshot(config)
    script = textwrap.dedent(
        f"""
        import os
        from datetime import datetime
        from obs_pipelines.config import parse_config
        from obs_pipelines.lake.tiering import run_tiering
        config = parse_config({config.model_dump(mode="json", by_alias=True, exclude={"base_dir"})!r})
        def die(step, move):
            if step == "write":
                os._exit(9)  # staged files written, nothing published
        run_tiering(config, datetime.fromisoformat("2026-04-01T00:00:00+00:00"), hook=die)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path)
    assert done.returncode == 9
    assert any(Path(f).name.endswith(".tmp") for f in files_on_disk(config))

    run_tiering(config, DAYS[0] + timedelta(days=2))  # the lock died with the process

    assert [f for f in files_on_disk(config) if Path(f).name.startswith(".")] == []
    after = snapshot(config)
    assert {k: v for k, v in after.items() if k != "rollups"} == {
        k: v for k, v in original.items() if k != "rollups"
    }


def test_two_runs_at_once_leave_a_consistent_lake(tmp_path: Path) -> None:
    config = tiered_config(tmp_path)
    write_hours(Lake(config), some_hours(DAYS[:2]))
    original = snapshot(config)
    inside, release = threading.Event(), threading.Event()
    outcomes: dict[str, Any] = {}

    def slow(step: str, move: Move) -> None:
        if step == "verify":
            inside.set()
            release.wait(10)

    def first() -> None:
        outcomes["first"] = run_tiering(config, DAYS[0] + timedelta(days=2), hook=slow)

    thread = threading.Thread(target=first)
    thread.start()
    assert inside.wait(10)
    with pytest.raises(LockBusy, match="another tiering run holds"):
        run_tiering(config, DAYS[0] + timedelta(days=2))
    release.set()
    thread.join(30)

    assert outcomes["first"].moves
    after = snapshot(config)
    assert {k: v for k, v in after.items() if k != "rollups"} == {
        k: v for k, v in original.items() if k != "rollups"
    }
    assert run_tiering(config, DAYS[0] + timedelta(days=2)).moves == []


def test_an_hour_re_ingested_after_its_day_was_compacted_is_compacted_again(tmp_path: Path) -> None:
    config = tiered_config(tmp_path)
    lake = Lake(config)
    write_hours(lake, some_hours(DAYS[:2]))
    run_tiering(config, DAYS[0] + timedelta(days=2))
    late = TimeWindow(DAYS[0] + 7 * HOUR, DAYS[0] + 8 * HOUR)
    rewritten = log_hour(late).slice(0, 10)  # the source now has 10 rows for that hour, not 50
    lake.write_hot("log_records", late, rewritten)

    result = run_tiering(config, DAYS[0] + timedelta(days=2))

    assert [(m.dataset, m.partition, m.reason) for m in result.moves] == [
        ("log_records", "dt=2026-03-30", "late")
    ]
    logs = snapshot(config)["logs"]
    in_late_hour = [r for r in logs if r[7] == "logs-1" and r[8].startswith("2026033007")]
    assert len(in_late_hour) == 10
    assert len(logs) == 6 * 50 - 40
    assert not [f for f in files_on_disk(config) if f.startswith("hot/log_records/dt=2026-03-30")]


def test_warm_metric_samples_take_under_one_and_a_half_bytes_each(tmp_path: Path) -> None:
    from obs_pipelines.config import SimulatorConfig
    from obs_pipelines.lake.ingest import ingest_metrics_hour
    from obs_pipelines.sources.simulator import SimulatedMetrics

    config = tiered_config(tmp_path)
    lake = Lake(config)
    source = SimulatedMetrics(SimulatorConfig(instances_per_service=1))
    for hour in TimeWindow(DAYS[0], DAYS[1]).hours():
        ingest_metrics_hour(lake, source, hour)

    result = run_tiering(config, DAYS[0] + timedelta(days=2))

    (move,) = [m for m in result.moves if m.dataset == "metric_samples"]
    assert move.bytes_after / move.rows < 1.5
    assert move.bytes_before / move.rows > 1.7, "hot files favour write speed over size"
    assert move.bytes_before / move.bytes_after > 1.4
