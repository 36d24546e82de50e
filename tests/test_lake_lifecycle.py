"""`obs lake lifecycle`: S3 lifecycle rules that move the Delta tables' files to the warm and cold
storage classes by age, applied to moto's S3 over HTTP next to the bucket's other rules."""

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pytest
import yaml

from obs_pipelines.cli import main
from obs_pipelines.config import ObsConfig, parse_config
from obs_pipelines.errors import LakeError
from obs_pipelines.lake import Lake, delta
from obs_pipelines.lake.lifecycle import lifecycle, plan

# Ages chosen so that every S3 rule shows: IA no earlier than 30 days, 30 days in IA before the
# next class, a null warm tier skipped, hours rounded up to days, equal days merged.
RETENTION = {
    "metrics": {"hot": "30d", "warm": "60d", "cold": "400d"},
    "metric_resolutions": {"5m": "100d", "1h": "400d"},
    "logs": {"hot": "45d", "cold": "365d"},  # no warm tier: straight to the cold class
    "traces": {"hot": "7d"},  # one tier: no rule
    "alerts": {"hot": "708h", "warm": "30d", "cold": "400d"},  # 29.5 days: leaves warm that day
}
IA, IR = "STANDARD_IA", "GLACIER_IR"
METRIC_TIERS = [(30, IA), (60, IR)]
ALERT_TIERS = [(30, IR)]
# table prefix under s3://bucket/obs/delta/ -> (Days, StorageClass) of its transitions
EXPECTED = {
    "metric_series/dt=": METRIC_TIERS,
    "metric_samples/dt=": [(30, IA)],
    "log_records/dt=": [(45, IR)],
    "alert_fragments/dt=": ALERT_TIERS,
    "alert_rules/dt=": ALERT_TIERS,
    "alertmanager_alerts/dt=": ALERT_TIERS,
    "incident_records/dt=": ALERT_TIERS,
    "sli_minutes/dt=": METRIC_TIERS,
    "up_minutes/dt=": METRIC_TIERS,
    "series_inventory/dt=": METRIC_TIERS,
    "metric_rollups/resolution=5m/": [(60, IR)],
    "metric_rollups/resolution=1h/": [(60, IR)],
}
FOREIGN = [
    {  # the bucket owner's own rule
        "ID": "expire-exports",
        "Filter": {"Prefix": "exports/"},
        "Status": "Enabled",
        "Expiration": {"Days": 14},
    },
    {  # another lake's rule in the same bucket: its prefix is not ours
        "ID": "obs-tiering:other-lake/delta/log_records/dt=",
        "Filter": {"Prefix": "other-lake/delta/log_records/dt="},
        "Status": "Enabled",
        "Transitions": [{"Days": 90, "StorageClass": "GLACIER_IR"}],
    },
]
STALE = {  # ours, from an earlier config that tiered spans: replaced away
    "ID": "obs-tiering:obs/delta/spans/dt=",
    "Filter": {"Prefix": "obs/delta/spans/dt="},
    "Status": "Enabled",
    "Transitions": [{"Days": 30, "StorageClass": "GLACIER_IR"}],
}


def lifecycle_config(
    s3_lake: dict[str, Any],
    warm: str | None = IA,
    cold: str | None = IR,
    retention: dict[str, Any] | None = None,
) -> ObsConfig:
    return parse_config(
        {
            "lake": {
                **s3_lake,
                "warm": {"storage_class": warm},
                "cold": {"storage_class": cold},
            },
            "retention": retention or RETENTION,
        }
    )


def client(s3_endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing-key",
        aws_secret_access_key="testing-secret",
    )


def bucket_rules(s3_endpoint: str, bucket: str) -> list[dict[str, Any]]:
    s3 = client(s3_endpoint)
    try:
        return s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    except s3.exceptions.ClientError as exc:
        assert exc.response["Error"]["Code"] == "NoSuchLifecycleConfiguration"
        return []


def put_rules(s3_endpoint: str, bucket: str, rules: list[dict[str, Any]]) -> None:
    client(s3_endpoint).put_bucket_lifecycle_configuration(
        Bucket=bucket, LifecycleConfiguration={"Rules": rules}
    )


def ours(rules: list[dict[str, Any]]) -> dict[str, list[tuple[int, str]]]:
    """Our tiering rules as prefix (after obs/delta/) -> transitions, checking their shape."""
    found = {}
    for rule in rules:
        if not rule["ID"].startswith("obs-tiering:obs/delta/"):
            continue
        prefix = rule["Filter"]["Prefix"]
        assert rule["ID"] == f"obs-tiering:{prefix}"
        assert rule["Status"] == "Enabled"
        assert "Expiration" not in rule  # a Delta table's log references its files
        found[prefix.removeprefix("obs/delta/")] = [
            (t["Days"], t["StorageClass"]) for t in rule["Transitions"]
        ]
    return found


def abort_rule(rules: list[dict[str, Any]]) -> dict[str, Any]:
    (rule,) = [r for r in rules if r["ID"].startswith("obs-abort-incomplete-uploads")]
    return rule


def test_rules_follow_retention_and_the_tier_classes(s3_lake: dict[str, Any]) -> None:
    planned = plan(lifecycle_config(s3_lake))

    assert ours(planned.rules) == EXPECTED
    abort = abort_rule(planned.rules)
    assert abort["Filter"] == {"Prefix": "obs/delta/"}
    assert abort["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    assert len(planned.rules) == len(EXPECTED) + 1  # spans: one tier, no rule
    assert not any("Expiration" in r for r in planned.rules)


def test_apply_keeps_other_rules_replaces_ours_and_is_idempotent(
    s3_lake: dict[str, Any], s3_endpoint: str, s3_bucket: str
) -> None:
    put_rules(s3_endpoint, s3_bucket, [*FOREIGN, STALE])
    config = lifecycle_config(s3_lake)

    first = lifecycle(config, apply=True)

    rules = bucket_rules(s3_endpoint, s3_bucket)
    assert ours(rules) == EXPECTED  # the stale spans rule is gone
    assert [r for r in rules if r["ID"] in {f["ID"] for f in FOREIGN}] == FOREIGN
    assert len(rules) == len(FOREIGN) + len(EXPECTED) + 1
    assert abort_rule(rules)["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    assert (first.changed, first.kept) == (True, len(FOREIGN))

    second = lifecycle(config, apply=True)

    assert bucket_rules(s3_endpoint, s3_bucket) == rules
    assert second.changed is False
    assert second.configuration == first.configuration


def test_a_changed_config_replaces_our_rules_only(
    s3_lake: dict[str, Any], s3_endpoint: str, s3_bucket: str
) -> None:
    put_rules(s3_endpoint, s3_bucket, FOREIGN)
    lifecycle(lifecycle_config(s3_lake), apply=True)

    lifecycle(lifecycle_config(s3_lake, warm=None), apply=True)  # no warm class any more

    rules = bucket_rules(s3_endpoint, s3_bucket)
    assert ours(rules)["metric_series/dt="] == [(60, IR)]
    assert "metric_samples/dt=" not in ours(rules)  # raw samples never reach cold
    assert rules[: len(FOREIGN)] == FOREIGN


def table_rows(table: delta.TableLayout) -> pa.RecordBatchReader:
    """One row of any table's schema (its partition columns set), enough to lay out its keys."""
    values = {"dt": "2026-04-01", "resolution": "5m"}
    row = {}
    for field in table.schema:
        if field.name in values:
            row[field.name] = values[field.name]
        elif pa.types.is_timestamp(field.type):
            row[field.name] = datetime.fromisoformat("2026-04-01T00:00:00+00:00")
        elif pa.types.is_integer(field.type):
            row[field.name] = 1
        elif pa.types.is_floating(field.type):
            row[field.name] = 1.0
        elif pa.types.is_string(field.type):
            row[field.name] = "x"
        else:
            row[field.name] = None
    batch = pa.RecordBatch.from_pylist([row], schema=table.schema)
    return pa.RecordBatchReader.from_batches(table.schema, [batch])


def test_rule_prefixes_cover_every_data_file_and_no_log_file(
    s3_lake: dict[str, Any], s3_endpoint: str, s3_bucket: str
) -> None:
    config = lifecycle_config(s3_lake)
    for name in ("log_records", "metric_rollups", "metric_series"):
        table = delta.layout(name)
        delta.write_day(
            config, table, "2026-04-01" if table.partition_by else None, table_rows(table)
        )
    prefixes = [r["Filter"]["Prefix"] for r in plan(config).rules if "Transitions" in r]

    keys = [o.key for o in Lake(config).storage.list_objects("delta/")]

    data = [k for k in keys if "/_delta_log/" not in k]
    logs = [k for k in keys if "/_delta_log/" in k]
    assert len(data) == 3 and logs
    for key in data:
        assert sum(f"obs/{key}".startswith(p) for p in prefixes) == 1, key
    for key in logs:  # read at every table open: kept in STANDARD
        assert not any(f"obs/{key}".startswith(p) for p in prefixes), key
    assert all(
        f"obs/{key}".startswith(abort_rule(plan(config).rules)["Filter"]["Prefix"]) for key in keys
    )


@pytest.mark.parametrize(
    ("warm", "cold", "retention", "message"),
    [
        (
            IA,
            IR,
            {"metrics": {"hot": "2d", "warm": "60d", "cold": "400d"}},
            "metric_series: S3 moves objects to STANDARD_IA only after 30 days in STANDARD (its "
            "minimum), but metric_series leaves hot at 2 days; raise that age in retention to "
            "30d or more, or choose INTELLIGENT_TIERING or GLACIER_IR for "
            "lake.warm.storage_class",
        ),
        (
            IA,
            IR,
            {"metrics": {"hot": "30d", "warm": "45d", "cold": "400d"}},
            "metric_series: S3 moves objects to GLACIER_IR only after 30 days in STANDARD_IA (its "
            "minimum), but metric_series leaves warm at 45 days, 15 days after entering "
            "STANDARD_IA; raise that age in retention to 60d or more",
        ),
        (
            IA,
            "GLACIER",
            RETENTION,
            "lake.cold.storage_class GLACIER: Delta readers cannot read objects in GLACIER or "
            "DEEP_ARCHIVE without a restore, so the tables would fail to scan; use GLACIER_IR "
            "(instant retrieval) for the Delta lake",
        ),
        (
            IA,
            "DEEP_ARCHIVE",
            RETENTION,
            "lake.cold.storage_class DEEP_ARCHIVE: Delta readers cannot read objects in GLACIER "
            "or DEEP_ARCHIVE without a restore, so the tables would fail to scan; use GLACIER_IR "
            "(instant retrieval) for the Delta lake",
        ),
        (
            IR,
            IA,
            RETENTION,
            "metric_series: S3 lifecycle cannot move objects from GLACIER_IR to STANDARD_IA "
            "(lake.cold.storage_class); S3 moves GLACIER_IR objects only to archive classes: set "
            "it to null",
        ),
    ],
)
def test_what_s3_or_delta_readers_cannot_take_is_refused_in_one_line(
    s3_lake: dict[str, Any],
    s3_endpoint: str,
    s3_bucket: str,
    warm: str,
    cold: str,
    retention: dict[str, Any],
    message: str,
) -> None:
    config = lifecycle_config(s3_lake, warm, cold, retention)

    with pytest.raises(LakeError) as refused:
        lifecycle(config, apply=True)

    assert str(refused.value) == message
    assert bucket_rules(s3_endpoint, s3_bucket) == []  # nothing written


def test_a_local_lake_is_refused(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config()

    code = main(["--config", str(path), "lake", "lifecycle", "--apply"])

    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.startswith("obs: error: lifecycle applies to S3 lakes only: lake.root ")
    assert err.count("\n") == 1


def test_cli_dry_run_prints_the_json_and_changes_nothing(
    s3_lake: dict[str, Any],
    s3_endpoint: str,
    s3_bucket: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    put_rules(s3_endpoint, s3_bucket, FOREIGN)
    path = tmp_path / "obs.yaml"
    lake = {**s3_lake, "warm": {"storage_class": IA}, "cold": {"storage_class": IR}}
    path.write_text(yaml.safe_dump({"lake": lake, "retention": RETENTION}))

    code = main(["--config", str(path), "lake", "lifecycle"])

    out, err = capsys.readouterr()
    assert code == 0
    printed = json.loads(out)  # standard output is the JSON alone
    assert printed["Rules"][: len(FOREIGN)] == FOREIGN
    assert ours(printed["Rules"]) == EXPECTED
    assert bucket_rules(s3_endpoint, s3_bucket) == FOREIGN
    assert "log_records: s3://" in err and "to GLACIER_IR at 45 days (leaving hot)" in err
    assert "dry run: nothing was changed" in err
    assert "testing-secret" not in out + err

    assert main(["--config", str(path), "lake", "lifecycle", "--apply"]) == 0
    applied, _ = capsys.readouterr()
    assert f"applied: bucket {s3_bucket} has {len(printed['Rules'])} rules" in applied
    assert bucket_rules(s3_endpoint, s3_bucket) == printed["Rules"]


HAZARDS = [
    {
        "ID": "expire-everything",
        "Filter": {"Prefix": ""},
        "Status": "Enabled",
        "Expiration": {"Days": 10},
    },
    {
        "ID": "glacier-all",
        "Filter": {"Prefix": "obs/"},
        "Status": "Enabled",
        "Transitions": [{"Days": 1, "StorageClass": "DEEP_ARCHIVE"}],
    },
]
HARMLESS = [
    {  # only old versions go: the current files stay readable
        "ID": "old-versions",
        "Filter": {"Prefix": "obs/"},
        "Status": "Enabled",
        "NoncurrentVersionExpiration": {"NoncurrentDays": 30},
    },
    {  # readable at once
        "ID": "instant-retrieval",
        "Filter": {"Prefix": "obs/delta/"},
        "Status": "Enabled",
        "Transitions": [{"Days": 90, "StorageClass": "GLACIER_IR"}],
    },
    {
        "ID": "disabled-expiry",
        "Filter": {"Prefix": "obs/delta/"},
        "Status": "Disabled",
        "Expiration": {"Days": 1},
    },
]


def test_kept_rules_that_expire_or_archive_the_tables_are_named_refused_and_doctored(
    s3_lake: dict[str, Any],
    s3_endpoint: str,
    s3_bucket: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from obs_pipelines.operations.doctor import run_checks

    kept = FOREIGN + HARMLESS + HAZARDS
    put_rules(s3_endpoint, s3_bucket, kept)
    path = tmp_path / "obs.yaml"
    lake = {**s3_lake, "warm": {"storage_class": IA}, "cold": {"storage_class": IR}}
    path.write_text(yaml.safe_dump({"lake": lake, "retention": RETENTION}))

    assert main(["--config", str(path), "lake", "lifecycle"]) == 0
    _, err = capsys.readouterr()
    warnings = [line for line in err.splitlines() if line.startswith("obs: warning:")]
    assert warnings == [
        f"obs: warning: bucket {s3_bucket} rule expire-everything expires (deletes) objects 10 "
        f"days after upload under s3://{s3_bucket}/, which holds every Delta log and data file "
        "of the lake: it would delete or make unreadable files the Delta logs reference, "
        "breaking the tables; remove it or narrow its filter away from obs/delta/",
        f"obs: warning: bucket {s3_bucket} rule glacier-all moves objects to DEEP_ARCHIVE after "
        f"1 day (unreadable without a restore) under s3://{s3_bucket}/obs/, which holds every "
        "Delta log and data file of the lake: it would delete or make unreadable files the Delta "
        "logs reference, breaking the tables; remove it or narrow its filter away from obs/delta/",
    ]
    assert "--apply refuses while expire-everything, glacier-all is kept" in err
    assert "no rule deletes anything" not in err

    assert main(["--config", str(path), "lake", "lifecycle", "--apply"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith(
        f"obs: error: not applied: bucket {s3_bucket} keeps rule expire-everything expires "
        "(deletes) objects 10 days after upload"
    )
    assert "; rule glacier-all moves objects to DEEP_ARCHIVE after 1 day" in err
    assert "breaking the tables; remove the rule or narrow its filter away from obs/delta/" in err
    assert bucket_rules(s3_endpoint, s3_bucket) == kept  # nothing written

    config = lifecycle_config(s3_lake)
    (check,) = [r for r in run_checks(config) if r.check == "lake.lifecycle"]
    assert not check.ok
    assert "rule expire-everything expires (deletes) objects 10 days" in check.line()
    assert "rule glacier-all moves objects to DEEP_ARCHIVE" in check.line()
    assert check.line().endswith(
        "-> remove those rules or narrow the filter away from obs/delta/ "
        "(`obs lake lifecycle` prints the rules the lake needs)"
    )

    # A rule under one table, with a tag filter, still counts: tags are not relied on.
    spans = {
        "ID": "expire-tagged-spans",
        "Filter": {"And": {"Prefix": "obs/delta/spans/", "Tags": [{"Key": "k", "Value": "v"}]}},
        "Status": "Enabled",
        "Expiration": {"Days": 3},
    }
    put_rules(s3_endpoint, s3_bucket, [*FOREIGN, *HARMLESS, spans])
    with pytest.raises(
        LakeError,
        match=r"^not applied: .* rule expire-tagged-spans expires .*"
        r"under s3://[^/]+/obs/delta/spans/, files of the Delta tables \(its "
        r"tag/size filter may narrow it; not relied on\)",
    ):
        lifecycle(config, apply=True)

    put_rules(s3_endpoint, s3_bucket, FOREIGN + HARMLESS)
    result = lifecycle(config, apply=True)
    assert result.hazards == () and result.applied
    (check,) = [r for r in run_checks(config) if r.check == "lake.lifecycle"]
    assert check.ok and "none expires or archives the Delta files" in check.detail


def test_a_bucket_without_lifecycle_configuration_passes_the_doctor(
    s3_lake: dict[str, Any],
) -> None:
    from obs_pipelines.operations.doctor import run_checks

    (check,) = [r for r in run_checks(lifecycle_config(s3_lake)) if r.check == "lake.lifecycle"]
    assert check.ok and check.detail.endswith(
        ": 0 lifecycle rules, none expires or archives the Delta files"
    )
