"""The metrics ingest job on Dagster's Celery executor, as the Celery test and workers load it.

Workers import this module by name (``tests.celery_job``) from the run's code pointer, so it
builds its definitions at import from ``$OBS_CONFIG`` exactly as the test process does. The
production equivalent is the ``OBS_EXECUTOR=celery`` switch described in ``deploy/README.md``.
"""

import os

from dagster import (
    AssetSelection,
    Definitions,
    ExecutorDefinition,
    JobDefinition,
    define_asset_job,
)
from dagster_celery import celery_executor

from assets.metrics import build_metric_ingest
from assets.partitions import hourly_partitions
from assets.resources import ObsResource
from obs_pipelines.config import load_config

CELERY_JOB = "metrics_ingest_celery"


def celery_definitions(
    config_path: str | None = None, executor_def: ExecutorDefinition = celery_executor
) -> Definitions:
    """The metrics ingest asset in a job on ``executor_def`` (the in-process executor gives the
    reference run the Celery one is compared with)."""
    config_path = os.path.abspath(config_path or os.environ["OBS_CONFIG"])
    partitions = hourly_partitions(load_config(config_path).ingest.start)
    job = define_asset_job(
        CELERY_JOB,
        selection=AssetSelection.assets("metric_series", "metric_samples"),
        executor_def=executor_def,
    )
    return Definitions(
        assets=[build_metric_ingest(partitions)],
        jobs=[job],
        resources={"obs": ObsResource(config_path=config_path)},
    )


def celery_ingest_job() -> JobDefinition:
    """Module-level factory: what ``reconstructable`` records, and what workers call."""
    return celery_definitions().resolve_job_def(CELERY_JOB)


def main(argv: list[str]) -> int:
    """``python -m tests.celery_job PARTITION_KEY BROKER BACKEND``: one partition's run on the
    Celery executor, from its own process (Dagster's execute_job is not thread-safe)."""
    from dagster import DagsterInstance, execute_job, reconstructable

    partition_key, broker, backend = argv
    with (
        DagsterInstance.get() as instance,
        execute_job(
            reconstructable(celery_ingest_job),
            instance=instance,
            run_config={
                "execution": {"config": {"broker": broker, "backend": backend}},
                "loggers": {"console": {"config": {"log_level": "ERROR"}}},
            },
            tags={"dagster/partition": partition_key},
            raise_on_error=False,
        ) as result,
    ):
        print(result.run_id, result.success)
        return 0 if result.success else 1


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
