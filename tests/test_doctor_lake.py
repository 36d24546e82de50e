"""``obs doctor`` on a broken lake gives the fix for the cause, once: a stale checkpoint hint,
views that fail because their table does not open, an S3 endpoint that does not answer, and a
table folder the user cannot write."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

from obs_pipelines.config import parse_config
from obs_pipelines.errors import LakeError
from obs_pipelines.lake import Lake, delta
from obs_pipelines.lake.catalog import build_catalog
from obs_pipelines.operations.doctor import run_checks
from tests.conftest import AS_ANY_USER
from tests.servers import free_port
from tests.test_delta_lake import delta_config, hour, samples

pytestmark = pytest.mark.integration  # DuckDB's delta extension, a subprocess

REPO = Path(__file__).parent.parent


def by_check(results: list) -> dict:
    return {r.check: r for r in results}


def test_a_stale_last_checkpoint_is_named_with_its_fix_and_views_point_at_it(
    tmp_path: Path,
) -> None:
    config = delta_config(tmp_path)
    lake = Lake(config)
    for n in (1, 2, 3):
        lake.write_hot("metric_samples", hour(n), samples(hour(n), 50, float(n)))
    build_catalog(config)
    table = lake.tables.open("metric_samples")
    table.create_checkpoint()
    version = table.version()
    log = Path(delta.table_uri(config, "metric_samples")) / "_delta_log"
    (checkpoint,) = log.glob("*.checkpoint.parquet")
    checkpoint.unlink()

    with pytest.raises(LakeError) as error:
        Lake(config).tables.open("metric_samples")
    assert str(error.value).endswith(delta.STALE_CHECKPOINT_ADVICE)

    checks = by_check(run_checks(config, dagster_home=None))
    tables = checks["lake.tables"]
    assert not tables.ok and "\n" not in tables.line()
    assert tables.detail == (
        f"1 Delta tables do not open: metric_samples: _delta_log/_last_checkpoint names "
        f"checkpoint {version}, which is gone; every JSON commit 0..{version} is present"
    )
    assert tables.fix == (
        f"delete the stale hint {log}/_last_checkpoint (the table opens from its commits; the "
        "next checkpoint rewrites it), then rerun `obs doctor`"
    )
    catalog = checks["catalog"]
    assert not catalog.ok and "metric_samples (" in catalog.detail
    assert catalog.fix == (
        "their tables do not open (metric_samples): fix what lake.tables says first; "
        "`obs catalog` cannot bind them either"
    )
    # It reads every table's log: it points at the table instead of repeating DuckDB's error.
    assert checks["lake.sources"].line() == (
        "skip  lake.sources           not run: it reads every table's log, and 1 do not open "
        "(metric_samples); fix what lake.tables says first"
    )

    (log / "_last_checkpoint").unlink()  # the fix, as given
    checks = by_check(run_checks(config, dagster_home=None))
    assert checks["lake.tables"].ok and checks["catalog"].ok
    assert checks["lake.sources"].ok and not checks["lake.sources"].skipped
    assert Lake(config).tables.read_window("metric_samples", None).num_rows == 150


def test_a_checkpoint_hint_with_commits_gone_says_to_restore_the_checkpoint(
    tmp_path: Path,
) -> None:
    config = delta_config(tmp_path)
    lake = Lake(config)
    for n in (1, 2):
        lake.write_hot("metric_samples", hour(n), samples(hour(n), 50, float(n)))
    lake.tables.open("metric_samples").create_checkpoint()
    log = Path(delta.table_uri(config, "metric_samples")) / "_delta_log"
    next(log.glob("*.checkpoint.parquet")).unlink()
    (log / f"{0:020d}.json").unlink()

    tables = by_check(run_checks(config, dagster_home=None))["lake.tables"]
    assert not tables.ok
    assert "and 1 JSON commits up to it are gone too (first: 0)" in tables.detail
    assert tables.fix.startswith(f"restore {log}/")
    assert "checkpoint.parquet from a backup or a versioned bucket" in tables.fix


def test_an_unreachable_s3_endpoint_is_one_failure_and_the_lake_checks_are_not_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OBS_TEST_S3_KEY", "testing-key")
    monkeypatch.setenv("OBS_TEST_S3_SECRET", "testing-secret")
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    config = parse_config(
        {
            "lake": {
                "root": "s3://obsb/pfx",
                "catalog": str(tmp_path / "obs.duckdb"),
                "s3": {
                    "endpoint_url": endpoint,
                    "region": "us-east-1",
                    "access_key_id_env": "OBS_TEST_S3_KEY",
                    "secret_access_key_env": "OBS_TEST_S3_SECRET",
                },
            }
        }
    )
    started = time.monotonic()
    results = run_checks(config, dagster_home=str(tmp_path))
    took = time.monotonic() - started

    assert took < 15
    failed = [r for r in results if not r.ok and not r.check.startswith("dagster.")]
    assert [r.check for r in failed] == ["lake.reachable"]
    assert failed[0].line() == (
        f"FAIL  lake.reachable         the lake's S3 endpoint {endpoint} does not answer "
        "(could not connect); the checks that read the lake and the catalog were not run -> "
        "check lake.s3.endpoint_url and the network (is the S3 service up?), then rerun"
    )
    skipped = {r.check for r in results if r.skipped and "lake is unreachable" in r.detail}
    assert skipped == {
        "lake.writable",
        "lake.tables",
        "lake.file_layout",
        "lake.lifecycle",
        "catalog",
        "lake.sources",
    }


def test_a_read_only_table_folder_fails_lake_writable_by_name(tmp_path: Path) -> None:
    config = delta_config(tmp_path)
    Lake(config).write_hot("metric_samples", hour(1), samples(hour(1), 20, 1.0))
    table = Path(delta.table_uri(config, "metric_samples"))
    day = next(table.glob("dt=*"))
    script = (
        "from obs_pipelines.config import parse_config\n"
        "from obs_pipelines.lake import Lake\n"
        "from obs_pipelines.operations.doctor import _lake_writable\n"
        f"config = parse_config({config.model_dump(mode='json', include={'lake'})!r})\n"
        "print(_lake_writable(Lake(config)).line())\n"
    )

    def writable_line() -> str:
        done = subprocess.run(
            [*AS_ANY_USER, sys.executable, "-c", script],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    day.chmod(0o555)
    try:
        assert writable_line() == (
            f"FAIL  lake.writable          1 table folders are not writable: {day} -> give the "
            "user running obs write access to them (e.g. chmod -R u+w, or chown)"
        )
    finally:
        day.chmod(0o755)
    assert writable_line().startswith("ok    lake.writable")
