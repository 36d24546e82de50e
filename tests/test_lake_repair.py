"""``obs lake repair``: a compacted day's file lost from storage is taken out of the log by one
marked FSCK commit, named with the hours it held, and re-ingesting them restores every row."""

import json
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from obs_pipelines import cli
from obs_pipelines.errors import LakeError
from obs_pipelines.lake import Lake
from obs_pipelines.lake.repair import describe, repair
from obs_pipelines.lake.tiering import run_tiering
from obs_pipelines.operations.doctor import run_checks
from tests.test_lake_integrity import DAYS, RETENTION, ingest, table_folder, view_contents
from tests.tiering_data import some_hours, tiered_config, tiered_settings

pytestmark = pytest.mark.integration  # builds catalogs with every report

HOURS = (2, 5)


def test_a_lost_compacted_file_is_repaired_and_its_hours_reingested(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tiered_config(tmp_path, RETENTION)
    ingest(config, some_hours(DAYS[:1], HOURS))
    run_tiering(config, DAYS[0] + timedelta(days=2, hours=1))  # compacts the day
    original = view_contents(config)
    (compacted,) = (table_folder(config, "log_records") / "dt=2026-03-30").glob("*.parquet")
    assert "compacted" in compacted.name
    lost = compacted.relative_to(table_folder(config, "log_records")).as_posix()
    compacted.unlink()

    # ingest cannot rewrite an hour of the day: it reads the lost file
    with pytest.raises(LakeError, match=compacted.name):
        ingest(config, some_hours(DAYS[:1], HOURS[:1]))
    (tables,) = [r for r in run_checks(config, dagster_home=None) if r.check == "lake.tables"]
    assert f"log_records/{lost}: missing" in tables.detail
    assert "`obs lake repair --apply`" in tables.fix
    version = Lake(config).tables.open("log_records").version()

    found = repair(config)
    (table,) = found
    assert table.dataset == "log_records" and table.rows == original["log_records"][0]
    assert describe(found, applied=False) == [
        f"log_records: missing {lost} ({table.rows} rows, hours 2026-03-30 02:00Z to "
        "2026-03-30 06:00Z)",
        f"log_records: 1 missing file would be removed from the log ({table.rows} rows)",
        "dry run: nothing was changed; `obs lake repair --apply`, then `obs materialize --from "
        "2026-03-30T02:00:00Z --to 2026-03-30T06:00:00Z` re-ingests the lost hours",
    ]
    assert Lake(config).tables.open("log_records").version() == version  # a dry run

    path = tmp_path / "obs.yaml"
    path.write_text(yaml.safe_dump(tiered_settings(tmp_path, RETENTION)))
    command = ["--config", str(path), "lake", "repair", "--dataset", "log_records", "--apply"]
    assert cli.main(command) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[-1] == (
        "re-ingest the lost hours: obs materialize --from 2026-03-30T02:00:00Z "
        "--to 2026-03-30T06:00:00Z"
    )
    assert printed[-2].endswith(f"1 missing file removed from the log ({table.rows} rows)")
    repaired = Lake(config).tables.open("log_records")
    assert repaired.version() == version + 1  # one commit
    (commit,) = repaired.history(1)
    assert commit["obs.operation"] == "repair"
    assert json.loads(commit["obs.files"]) == [lost]
    assert repair(config) == []
    (tables,) = [r for r in run_checks(config, dagster_home=None) if r.check == "lake.tables"]
    assert tables.ok

    ingest(config, some_hours(DAYS[:1], HOURS))  # what the printed obs materialize does
    assert view_contents(config) == original
