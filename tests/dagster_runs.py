"""Running the ingest job the way a backfill does: one run over a range of hourly partitions."""

from pathlib import Path
from typing import Any

from dagster import DagsterInstance

from obs_pipelines.definitions import INGEST_JOB, build_definitions


def run_ingest(config_path: Path, first_hour: str, last_hour: str) -> Any:
    """Execute ``ingest_job`` in process over partitions ``first_hour``..``last_hour`` (keys)."""
    job = build_definitions(str(config_path)).resolve_job_def(INGEST_JOB)
    return job.execute_in_process(
        instance=DagsterInstance.ephemeral(),
        tags={
            "dagster/asset_partition_range_start": first_hour,
            "dagster/asset_partition_range_end": last_hour,
        },
        raise_on_error=False,
    )
