"""Tiering on S3 (moto): each tier in its own storage class, archive classes kept out of queries,
the lock taken with a conditional PUT, and a crash mid-move repaired by a rerun."""

from datetime import timedelta
from typing import Any

import boto3
import pytest

from obs_pipelines.config import ObsConfig, parse_config
from obs_pipelines.lake import Lake
from obs_pipelines.lake.catalog import archive_notice, archived_partitions, build_catalog, connect
from obs_pipelines.lake.storage import LockBusy, S3Storage
from obs_pipelines.lake.tiering import LOCK_NAME, Move, run_tiering
from tests.tiering_data import day, snapshot, some_hours, write_hours

RETENTION = {
    "metrics": {"hot": "1d", "warm": "3d", "cold": "20d"},
    "logs": {"hot": "1d", "warm": "3d", "cold": "20d"},
    "alerts": {"hot": "1d", "warm": "3d", "cold": "20d"},
}
DAYS = [day("2026-03-30"), day("2026-03-31"), day("2026-04-01")]


def s3_config(s3_lake: dict[str, Any], cold_class: str = "GLACIER_IR") -> ObsConfig:
    return parse_config(
        {
            "lake": {
                **s3_lake,
                "warm": {"storage_class": "STANDARD_IA"},
                "cold": {"storage_class": cold_class},
                "delete_delay": "0s",
            },
            "retention": RETENTION,
        }
    )


def storage_classes(config: ObsConfig, s3_endpoint: str) -> dict[str, set[str]]:
    """Tier -> storage classes of its data objects, from head_object (anchors, the empty files
    that keep each view's glob non-empty, stay readable in STANDARD)."""
    store = Lake(config).store("hot")
    assert isinstance(store, S3Storage)
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing-key",
        aws_secret_access_key="testing-secret",
    )
    found: dict[str, set[str]] = {}
    for obj in store.list_objects(""):
        tier = obj.key.split("/", 1)[0]
        if tier in ("hot", "warm", "cold") and "/_anchor/" not in obj.key:  # anchors: readable
            head = client.head_object(Bucket=store.bucket, Key=store._key(obj.key))
            found.setdefault(tier, set()).add(head.get("StorageClass", "STANDARD"))
    return found


def test_tiers_on_s3_keep_their_storage_classes_and_show_the_same_rows(
    s3_lake: dict[str, Any], s3_endpoint: str
) -> None:
    config = s3_config(s3_lake)
    write_hours(Lake(config), some_hours(DAYS, (0, 23)))
    original = snapshot(config)

    run_tiering(config, DAYS[0] + timedelta(days=2))
    after_warm = snapshot(config)
    classes_after_warm = storage_classes(config, s3_endpoint)
    run_tiering(config, DAYS[0] + timedelta(days=4))
    after_cold = snapshot(config)

    assert {k: after_warm[k] for k in ("samples", "series", "logs", "rules")} == {
        k: original[k] for k in ("samples", "series", "logs", "rules")
    }
    assert {k: after_cold[k] for k in ("series", "logs", "rules")} == {
        k: original[k] for k in ("series", "logs", "rules")
    }
    assert set(after_warm["rollups"]) <= set(after_cold["rollups"])
    assert classes_after_warm == {"hot": {"STANDARD"}, "warm": {"STANDARD_IA"}}
    assert storage_classes(config, s3_endpoint) == {"warm": {"STANDARD_IA"}, "cold": {"GLACIER_IR"}}


def test_archived_cold_partitions_are_listed_but_left_out_of_queries_with_a_notice(
    s3_lake: dict[str, Any],
) -> None:
    config = s3_config(s3_lake, cold_class="GLACIER")
    write_hours(Lake(config), some_hours(DAYS, (0, 23)))
    original = snapshot(config)

    run_tiering(config, DAYS[0] + timedelta(days=4))  # 03-30 reaches cold, in GLACIER

    after = snapshot(config)
    kept = [r for r in original["logs"] if not r[8].startswith("20260330")]
    assert after["logs"] == kept
    archived = archived_partitions(config, ["log_records"])
    assert [(f.tier, f.partition, f.storage_class) for f in archived] == [
        ("cold", "month=2026-03", "GLACIER")
    ]
    notice = archive_notice(config, "SELECT count(*) FROM log_records")
    assert notice is not None and "log_records month=2026-03 (GLACIER)" in notice
    assert "restore-object" in notice and "\n" not in notice
    assert archive_notice(config, "SELECT 1") is None
    build_catalog(config)
    con = connect(config)
    assert con.execute(
        "SELECT row_count, archived FROM lake_partitions WHERE dataset = 'log_records' AND tier = 'cold'"
    ).fetchall() == [(100, True)]
    con.close()


def test_a_crash_after_publishing_on_s3_is_repaired_by_the_next_run(
    s3_lake: dict[str, Any],
) -> None:
    config = s3_config(s3_lake)
    write_hours(Lake(config), some_hours(DAYS[:1], (0, 23)))
    original = snapshot(config)

    def crash(step: str, move: Move) -> None:
        if step == "publish" and move.stream.dataset == "log_records":
            raise RuntimeError("crash after publish")

    with pytest.raises(RuntimeError):
        run_tiering(config, DAYS[0] + timedelta(days=2), hook=crash)
    assert snapshot(config)["logs"] == original["logs"]
    run_tiering(config, DAYS[0] + timedelta(days=2))

    assert snapshot(config)["logs"] == original["logs"]
    assert [f.key for f in Lake(config).files("log_records", ("hot",))] == []


def test_the_s3_lock_refuses_a_second_run_and_is_taken_over_once_expired(
    s3_lake: dict[str, Any],
) -> None:
    config = s3_config(s3_lake)
    store = Lake(config).store("hot")
    held = store.acquire_lock(LOCK_NAME, "someone else", ttl_seconds=3600)

    with pytest.raises(LockBusy, match="someone else"):
        run_tiering(config, DAYS[0])
    store.release_lock(held)
    store.acquire_lock(LOCK_NAME, "a run that died", ttl_seconds=-1)  # already expired

    assert run_tiering(config, DAYS[0]).problems == []
