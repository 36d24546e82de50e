"""Dagster's own share of a backfill: the ingest job of ``bench.backfill_bench`` with every asset
body replaced by one that does nothing, run the same way (a day of hourly partitions per run,
``execute_in_process`` on a fresh SQLite instance, as ``obs materialize`` does).

The job keeps the real one's shape: the same assets, asset checks, hourly partitions, backfill
policy and dependencies, taken from the definitions ``obs materialize`` builds. What is left is
what Dagster costs whatever the assets do (the run, its planned events, an event per asset
partition and check, the step events), measured against the same wall clock as the backfill.

    .venv/bin/python -m bench.dagster_floor_bench [--days 10] [--work DIR]
"""

import argparse
import os
import shutil
import time
import warnings
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

from bench.backfill_bench import START, write_config

REPO = Path(__file__).resolve().parent.parent


def hollow_job(config_path: Path) -> object:
    """The ingest job's assets and checks, each body yielding its results and nothing else."""
    from dagster import AssetsDefinition, BetaWarning, Definitions, define_asset_job, multi_asset

    from obs_pipelines.definitions import build_definitions

    real = build_definitions(str(config_path))
    job = real.resolve_job_def("ingest_job")
    hollow = []
    for node in job.asset_layer.asset_graph.assets_defs:
        if not isinstance(node, AssetsDefinition) or not node.is_materializable:
            continue
        specs, checks = list(node.specs), list(node.check_specs)
        body = _nothing(specs, checks)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", BetaWarning)
            hollow.append(
                multi_asset(
                    name=node.node_def.name,
                    specs=specs,
                    check_specs=checks,
                    partitions_def=node.partitions_def,
                    backfill_policy=node.backfill_policy,
                )(body)
            )
    defs = Definitions(
        assets=hollow,
        jobs=[define_asset_job("ingest_job", selection=[k for a in hollow for k in a.keys])],
    )
    return defs.resolve_job_def("ingest_job")


def _nothing(specs: list, checks: list) -> object:
    """A body yielding a materialization per asset and a passed result per check."""
    from dagster import AssetCheckResult, MaterializeResult

    def body() -> Iterator[object]:
        for spec in specs:
            yield MaterializeResult(asset_key=spec.key)
        for check in checks:
            yield AssetCheckResult(asset_key=check.asset_key, check_name=check.name, passed=True)

    return body


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--work", type=Path, default=REPO / "bench" / "work" / "dagster_floor")
    args = parser.parse_args(argv)
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    os.environ["DAGSTER_HOME"] = str(args.work / "dagster_home")
    (args.work / "dagster_home").mkdir()
    (args.work / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    from dagster import DagsterInstance

    from obs_pipelines.launch import QUIET_RUN_CONFIG

    job = hollow_job(write_config(args.work))
    started = time.perf_counter()
    with DagsterInstance.get() as instance:
        for day in range(args.days):
            first = START + timedelta(days=day)
            last = first + timedelta(hours=23)
            result = job.execute_in_process(  # type: ignore[attr-defined]
                instance=instance,
                tags={
                    "dagster/asset_partition_range_start": f"{first:%Y-%m-%d-%H:%M}",
                    "dagster/asset_partition_range_end": f"{last:%Y-%m-%d-%H:%M}",
                },
                run_config=QUIET_RUN_CONFIG,
            )
            assert result.success
            events = len(instance.all_logs(result.run_id))
            print(f"  {first:%Y-%m-%d}: {events} events", flush=True)
    seconds = time.perf_counter() - started
    print(f"{seconds:.1f} s for {args.days} days ({seconds / args.days:.2f} s a day)")


if __name__ == "__main__":
    main()
