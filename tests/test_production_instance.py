"""The production instance profile (deploy/dagster.yaml) on a real PostgreSQL: it loads with its
run queue and concurrency limits, records a materialization, runs a sensor tick, and stores a
backfill's hourly materializations a step at a time."""

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
from obs_pipelines import cli
from obs_pipelines.config import CONFIG_ENV_VAR, load_config
from obs_pipelines.operations.doctor import run_checks
from obs_pipelines.windows import HOUR, floor_hour
from sensors.freshness import build_lake_freshness_sensor
from sensors.schedules import metrics_ingest_job
from tests import ops_servers

PROFILE = Path(__file__).resolve().parents[1] / "deploy" / "dagster.yaml"
EVENT_BATCH_SIZE_VAR = "DAGSTER_EVENT_BATCH_SIZE"  # Dagster's setting
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


def _materialization_writes(
    pg: ops_servers.Postgres, asset: str, day: str
) -> list[tuple[str, int, int]]:
    """Per run: the hours of ``day`` materialized for ``asset`` and the transactions that wrote
    them (rows a transaction inserts share its id, ``xmin``)."""
    con = psycopg2.connect(host=pg.host, port=pg.port, user=pg.user, dbname=pg.database)
    try:
        cursor = con.cursor()
        cursor.execute(
            "SELECT run_id, count(DISTINCT partition), count(DISTINCT xmin::text) FROM event_logs "
            "WHERE dagster_event_type = 'ASSET_MATERIALIZATION' AND asset_key = %s "
            "AND partition LIKE %s GROUP BY run_id ORDER BY min(id)",
            [f'["{asset}"]', f"{day}-%"],
        )
        return cursor.fetchall()
    finally:
        con.close()


@pytest.mark.integration
def test_a_backfill_writes_each_steps_hours_in_one_transaction(
    production_home: Path,
    pg: ops_servers.Postgres,
    write_config: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config_path = write_config(ingest={"start": "2026-11-01T00:00:00Z"})
    monkeypatch.setenv(CONFIG_ENV_VAR, str(config_path))
    monkeypatch.delenv(EVENT_BATCH_SIZE_VAR, raising=False)  # obs sets it, not this test

    def materialize(start: str, end: str) -> None:
        assert (
            cli.main(["--config", str(config_path), "materialize", "--from", start, "--to", end])
            == 0
        )

    materialize("2026-11-01T00:00:00Z", "2026-11-01T04:00:00Z")
    # An operator's own setting wins: 0 is Dagster's default, an event written at a time.
    monkeypatch.setenv(EVENT_BATCH_SIZE_VAR, "0")
    materialize("2026-11-01T04:00:00Z", "2026-11-01T06:00:00Z")

    for asset in ("metric_samples", "sli_minutes", "log_records", "lake_catalog"):
        writes = _materialization_writes(pg, asset, "2026-11-01")
        assert [(hours, transactions) for _, hours, transactions in writes] == [(4, 1), (2, 2)]
    with DagsterInstance.get() as instance:
        materialized = instance.get_materialized_partitions(AssetKey("sli_minutes"))
    assert materialized == {f"2026-11-01-{hour:02d}:00" for hour in range(6)}


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
