"""The production instance profile (deploy/dagster.yaml) on a real PostgreSQL: it loads with its
run queue and concurrency limits, records a materialization, and runs a sensor tick."""

import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg2
import pytest
from dagster import AssetKey, DagsterInstance, Definitions, build_sensor_context

from assets.metrics import build_metric_ingest
from assets.partitions import hourly_partitions
from assets.resources import ObsResource
from obs_pipelines.config import load_config
from obs_pipelines.operations.doctor import run_checks
from obs_pipelines.windows import HOUR, floor_hour
from sensors.freshness import build_lake_freshness_sensor
from sensors.schedules import metrics_ingest_job
from tests import ops_servers

PROFILE = Path(__file__).resolve().parents[1] / "deploy" / "dagster.yaml"
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


@pytest.fixture(scope="module")
def pg() -> Iterator[ops_servers.Postgres]:
    with ops_servers.postgres() as server:
        yield server


@pytest.fixture
def production_home(
    tmp_path: Path, pg: ops_servers.Postgres, monkeypatch: pytest.MonkeyPatch
) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROFILE, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    for name, value in {
        "DAGSTER_PG_HOST": pg.host,
        "DAGSTER_PG_PORT": str(pg.port),
        "DAGSTER_PG_USER": pg.user,
        "DAGSTER_PG_PASSWORD": "",
        "DAGSTER_PG_DB": pg.database,
    }.items():
        monkeypatch.setenv(name, value)
    return home


def _runs_in_postgres(pg: ops_servers.Postgres) -> list[tuple[str, str]]:
    con = psycopg2.connect(host=pg.host, port=pg.port, user=pg.user, dbname=pg.database)
    try:
        cursor = con.cursor()
        cursor.execute("SELECT pipeline_name, status FROM runs ORDER BY create_timestamp")
        return cursor.fetchall()
    finally:
        con.close()


def test_profile_loads_postgres_storage_and_run_queue(production_home: Path) -> None:
    with DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        queue = instance.get_concurrency_config().run_queue_config
        assert queue.max_concurrent_runs == 8
        limits = {limit["key"]: limit["limit"] for limit in queue.tag_concurrency_limits}
        assert limits == {"dagster/backfill": 4, "obs/requested_by": 2, "obs/pillar": 2}
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 4


def test_materialization_and_sensor_tick_on_postgres(
    production_home: Path, pg: ops_servers.Postgres, write_config: Callable[..., Path]
) -> None:
    current = floor_hour(datetime.now(UTC))
    config_path = write_config(
        ingest={"start": (current - timedelta(hours=6)).isoformat()},
        freshness={"metric_samples": "2h", "metric_series": "2h"},
    )
    partitions = hourly_partitions(load_config(config_path).ingest.start)
    obs = ObsResource(config_path=str(config_path))
    sensor = build_lake_freshness_sensor(
        {"metric_samples": metrics_ingest_job, "metric_series": metrics_ingest_job}
    )
    defs = Definitions(
        assets=[build_metric_ingest(partitions)],
        jobs=[metrics_ingest_job],
        sensors=[sensor],
        resources={"obs": obs},
    )
    newest = current - 3 * HOUR
    key = f"{newest:%Y-%m-%d-%H:%M}"

    with DagsterInstance.get() as instance:
        result = defs.resolve_job_def("metrics_ingest_job").execute_in_process(
            instance=instance, partition_key=key, run_config=QUIET
        )
        assert result.success
        event = instance.get_latest_materialization_event(AssetKey("metric_samples"))
        assert event is not None and event.dagster_event.partition == key

        tick = sensor(
            build_sensor_context(instance=instance, resources={"obs": obs}, definitions=defs)
        )

    assert _runs_in_postgres(pg)[-1] == ("metrics_ingest_job", "SUCCESS")
    requested = [r.partition_key for r in tick.run_requests]
    # Hours since ingest.start that are due (ended 2h ago) except the one just materialized.
    due = [current - h * HOUR for h in range(3, 7)]
    assert requested == [f"{h:%Y-%m-%d-%H:%M}" for h in due if h != newest]
    storage = next(r for r in run_checks(load_config(config_path)) if r.check == "dagster.storage")
    assert storage.ok and storage.detail.startswith(f"PostgreSQL {pg.host}:{pg.port}/dagster")


@pytest.mark.parametrize(
    ("settings", "problem"),
    [(None, "cannot be read"), ("execution: {}\n", "has no execution.config")],
)
def test_a_missing_or_empty_celery_settings_file_is_one_line(
    write_config: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    settings: str | None,
    problem: str,
) -> None:
    from obs_pipelines.definitions import build_definitions
    from obs_pipelines.errors import ConfigError

    path = tmp_path / "celery.yaml"
    if settings is not None:
        path.write_text(settings)
    monkeypatch.setenv("OBS_EXECUTOR", "celery")
    monkeypatch.setenv("OBS_CELERY_CONFIG", str(path))

    with pytest.raises(ConfigError) as refused:
        build_definitions(str(write_config()))

    assert str(refused.value) == (
        f"OBS_EXECUTOR=celery: the Celery settings {path} {problem}; set OBS_CELERY_CONFIG to a "
        "file like deploy/celery.yaml (see deploy/README.md)"
    )
