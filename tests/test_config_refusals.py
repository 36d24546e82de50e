"""Values that would destroy data, crash a run or leak a password are refused at load, in one
line that names the key; nothing has run yet when they are."""

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from obs_pipelines.cli import main
from obs_pipelines.config import load_config, parse_config, require_writable
from obs_pipelines.errors import ConfigError, LakeError
from obs_pipelines.lake import Lake
from obs_pipelines.redact import redact_secrets, redact_url
from obs_pipelines.sources.http import elasticsearch_options, remember_secret, scrub
from tests.conftest import AS_ANY_USER
from tests.tiering_data import day, some_hours, write_hours

PROMETHEUS = {"url": "http://prom:9090", "selectors": ["up"]}
SLO = {
    "name": "a",
    "service": "api",
    "objective": 0.99,
    "sli": {"type": "ratio", "total": "x", "bad": "y"},
}
POLICY = {"long_window": "1h", "short_window": "5m", "burn_rate": 14.4}
# Sections a key needs beside it to validate at all.
CONTEXT: dict[str, dict[str, Any]] = {
    "sources.prometheus": {"sources": {"prometheus": PROMETHEUS}},
    "sources.elasticsearch": {"sources": {"elasticsearch": {"url": "http://es:9200"}}},
    "sources.jaeger": {"sources": {"jaeger": {"url": "http://jaeger:16686"}}},
    "sources.alertmanager": {"sources": {"alertmanager": {"url": "http://am:9093"}}},
    "operations.pushgateway": {"operations": {"pushgateway": {"url": "http://pg:9091"}}},
    "slos[0]": {"slos": [SLO]},
    "reports.burn_rate_policy[0]": {"reports": {"burn_rate_policy": [POLICY]}},
    "reports.impact_windows[0]": {"reports": {"impact_windows": [{"window": "5m"}]}},
}
POSITIVE = [
    "retention.logs.hot",
    "retention.metrics.warm",
    "retention.alerts.cold",
    "retention.datasets.spans.hot",
    "retention.metric_resolutions.5m",
    "sources.prometheus.timeout",
    "sources.prometheus.max_request_window",
    "sources.prometheus.min_request_window",
    "sources.elasticsearch.timeout",
    "sources.elasticsearch.keep_alive",
    "sources.jaeger.timeout",
    "sources.jaeger.min_split_window",
    "sources.alertmanager.timeout",
    "sources.alert_derivation.evaluation_interval",
    "operations.pushgateway.timeout",
    "operations.gap_lookback",
    "slos[0].window",
    "reports.period",
    "reports.impact_windows[0].window",
    "reports.burn_rate_policy[0].short_window",
]
ZERO_ALLOWED = [
    "lake.delete_delay",
    "reports.impact_merge_gap",
    "reports.match_tolerance",
    "reports.transient_alert",
]


def with_value(key: str, value: Any) -> dict[str, Any]:
    """A config holding ``value`` at the dotted ``key`` (``[0]`` picks a list item)."""
    raw: dict[str, Any] = {}
    for prefix, section in CONTEXT.items():
        if key.startswith(prefix + "."):
            raw = yaml.safe_load(yaml.safe_dump(section))
    if key.startswith("retention.") and key.endswith((".warm", ".cold")):
        pillar = key.split(".")[1]
        raw["retention"] = {pillar: {"hot": "1d", "warm": "30d", "cold": "365d"}}
    node: Any = raw
    parts = key.split(".")
    for part in parts[:-1]:
        name, _, index = part.partition("[")
        node = node.setdefault(name, {})
        if index:
            node = node[int(index[:-1])]
    node[parts[-1]] = value
    return raw


def refusal(raw: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as error:
        parse_config(raw)
    message = str(error.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("key", POSITIVE)
@pytest.mark.parametrize("value", [-3600, "-1h", "0s", 0, 0.0001])
def test_a_negative_or_zero_window_timeout_or_age_is_refused(key: str, value: Any) -> None:
    assert refusal(with_value(key, value)) == (
        f"config: {key}: must be a positive duration such as 30s or 5m (got {value!r})"
    )


@pytest.mark.parametrize("key", ZERO_ALLOWED)
def test_zero_is_kept_where_it_means_something_but_negative_is_refused(key: str) -> None:
    parse_config(with_value(key, "0s"))
    assert refusal(with_value(key, -60)) == (
        f"config: {key}: must not be negative; write a duration such as 0s, 30s or 5m (got -60)"
    )


def test_negative_retention_is_refused_before_tiering_deletes_anything(
    write_config: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ages = {"hot": "1d", "warm": "3d", "cold": "20d"}
    path = write_config(retention={"metrics": ages, "logs": ages, "alerts": ages})
    write_hours(Lake(load_config(path)), some_hours([day("2026-03-30"), day("2026-03-31")]))
    before = sorted(p for p in (tmp_path / "lake").rglob("*") if p.is_file())
    assert any("log_records" in p.parts for p in before)

    path = write_config(retention={"logs": {"hot": -3600}})
    for command in (["check-config"], ["tier", "--now", "2026-04-02T00:00:00Z"]):
        assert main(["--config", str(path), *command]) == 2
        out, err = capsys.readouterr()
        assert (out, err) == (
            "",
            f"obs: error: {path}: retention.logs.hot: must be a positive duration such as 30s "
            "or 5m (got -3600)\n",
        )
    assert sorted(p for p in (tmp_path / "lake").rglob("*") if p.is_file()) == before


def test_a_scrape_interval_the_simulator_cannot_run_is_refused() -> None:
    assert refusal({"sources": {"simulator": {"scrape_interval": "500ms"}}}) == (
        "config: sources.simulator.scrape_interval: must be at least 1s, such as 15s (got '500ms')"
    )
    assert refusal({"sources": {"simulator": {"scrape_interval": 0}}}).endswith("(got 0)")
    assert parse_config({"sources": {"simulator": {"scrape_interval": "1s"}}})


def test_a_freshness_lag_dagster_would_refuse_is_refused_at_load() -> None:
    assert refusal({"freshness": {"log_records": "30s"}}) == (
        "config: freshness.log_records: must be at least 1m (Dagster's freshness limit), "
        "such as 2h (got '30s')"
    )


def test_a_max_request_window_below_the_min_is_refused() -> None:
    raw = {"sources": {"prometheus": {**PROMETHEUS, "max_request_window": "10s"}}}
    assert refusal(raw) == (
        "config: sources.prometheus: max_request_window (10s) is shorter than "
        "min_request_window (30s); raise it or lower min_request_window"
    )


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 1e300, "99999999999y"])
def test_an_impossible_duration_is_refused_not_a_traceback(value: Any) -> None:
    refused = refusal({"operations": {"gap_lookback": value}})
    assert refused.startswith("config: operations.gap_lookback: ")


def test_a_duplicate_key_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "obs.yaml"
    path.write_text("retention:\n  logs:\n    hot: 90d\n    warm: 365d\n    hot: 1h\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value) == f"{path}: duplicate key 'hot' at line 5; remove one of them"


def test_a_merge_key_may_still_be_overridden(tmp_path: Path) -> None:
    path = tmp_path / "obs.yaml"
    path.write_text(
        f"lake: {{root: {tmp_path / 'lake'}, catalog: {tmp_path / 'obs.duckdb'}}}\n"
        "retention:\n"
        "  logs: &ages {hot: 1d, warm: 3d}\n"
        "  alerts:\n    <<: *ages\n    hot: 2d\n"
    )
    assert load_config(path).retention.alerts.hot.days == 2


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n# and another\n", "---\n"])
def test_an_empty_config_file_is_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "obs.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value) == (
        f"{path}: the file is empty; start from the obs.yaml in the repository"
    )


@pytest.mark.parametrize(
    ("lake", "message"),
    [
        (
            {"root": ""},
            "config: lake.root: must not be empty; give a local folder such as lake, or "
            "s3://bucket/prefix",
        ),
        (
            {"root": "  "},
            "config: lake.root: must not be empty; give a local folder such as lake, or "
            "s3://bucket/prefix",
        ),
        (
            {"catalog": " "},
            "config: lake.catalog: must not be empty; give the catalog's file path, such as "
            "lake/obs.duckdb",
        ),
        (
            {"catalog": "s3://bucket/obs.duckdb"},
            "config: lake.catalog: the catalog is a local DuckDB file; give a local path such as "
            "lake/obs.duckdb",
        ),
    ],
)
def test_an_empty_lake_path_is_refused(lake: dict[str, Any], message: str) -> None:
    assert refusal({"lake": lake}) == message


def test_a_lake_root_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "lake").write_text("not a folder")
    raw = {"lake": {"root": str(tmp_path / "lake"), "catalog": str(tmp_path / "obs.duckdb")}}
    assert refusal(raw) == (
        f"config: lake.root: {tmp_path / 'lake'} is a file, not a folder; move the file away or "
        "choose another folder"
    )


def test_a_lake_root_that_cannot_be_created_is_refused_and_nothing_is_made(
    tmp_path: Path,
) -> None:
    (tmp_path / "data").write_text("a file")
    raw = {
        "lake": {"root": str(tmp_path / "data" / "lake"), "catalog": str(tmp_path / "obs.duckdb")}
    }
    assert refusal(raw) == (
        f"config: lake.root: {tmp_path / 'data' / 'lake'} cannot be created: "
        f"{tmp_path / 'data'} is a file; choose another folder"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_a_catalog_that_is_a_folder_or_under_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "obs.duckdb").mkdir()
    lake = {"root": str(tmp_path / "lake"), "catalog": str(tmp_path / "obs.duckdb")}
    assert refusal({"lake": lake}) == (
        f"config: lake.catalog: {tmp_path / 'obs.duckdb'} is a folder; give a file path such as "
        f"{tmp_path / 'obs.duckdb' / 'obs.duckdb'}"
    )
    (tmp_path / "file").write_text("")
    lake["catalog"] = str(tmp_path / "file" / "obs.duckdb")
    assert refusal({"lake": lake}) == (
        f"config: lake.catalog: {tmp_path / 'file'} is a file, not a folder; move the file away "
        "or choose another folder"
    )


def test_a_relative_lake_root_is_checked_where_it_resolves(tmp_path: Path) -> None:
    (tmp_path / "lake").write_text("")
    path = tmp_path / "obs.yaml"
    path.write_text("lake: {root: lake, catalog: obs.duckdb}\n")
    with pytest.raises(ConfigError, match=r"lake.root: .*/lake is a file, not a folder"):
        load_config(path)


SOURCE_FIX = "set auth.basic.username_env and auth.basic.password_env in this section instead"
S3_FIX = "set lake.s3.access_key_id_env and lake.s3.secret_access_key_env instead"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"sources": {"prometheus": {**PROMETHEUS, "url": "http://alice:Hunter2@prom:9090"}}},
            f"config: sources.prometheus.url: credentials in the URL are not allowed (they would "
            f"be logged); remove the user and password before '@' and {SOURCE_FIX}",
        ),
        (
            {"sources": {"elasticsearch": {"url": "https://elastic:Hunter2@es:9200/"}}},
            f"config: sources.elasticsearch.url: credentials in the URL are not allowed (they "
            f"would be logged); remove the user and password before '@' and {SOURCE_FIX}",
        ),
        (
            {"sources": {"jaeger": {"url": "http://u:Hunter2@jaeger:16686"}}},
            f"config: sources.jaeger.url: credentials in the URL are not allowed (they would be "
            f"logged); remove the user and password before '@' and {SOURCE_FIX}",
        ),
        (
            {"sources": {"alertmanager": {"url": "alice:Hunter2@am:9093"}}},
            f"config: sources.alertmanager.url: credentials in the URL are not allowed (they "
            f"would be logged); remove the user and password before '@' and {SOURCE_FIX}",
        ),
        (
            {"operations": {"pushgateway": {"url": "http://u:Hun/ter2@pg:9091"}}},
            "config: operations.pushgateway.url: credentials in the URL are not allowed (they "
            "would be logged); remove the user and password before '@' and give the plain URL: "
            "reports are pushed without credentials",
        ),
        (
            {"lake": {"s3": {"endpoint_url": "http://minio:Hunter2@minio:9000"}}},
            f"config: lake.s3.endpoint_url: credentials in the URL are not allowed (they would "
            f"be logged); remove the user and password before '@' and {S3_FIX}",
        ),
        (
            {"lake": {"root": "s3://AKIAKEY:Hunter2/x+y@bucket/obs"}},
            f"config: lake.root: credentials in the lake root are not allowed (they would be "
            f"logged); remove the part before '@' and {S3_FIX}",
        ),
        (
            {"lake": {"hot": {"root": "s3://AKIAKEY:Hunter2@bucket"}}},
            "config: lake.hot: root: a tier no longer has a root of its own (every dataset is one "
            "Delta table under lake.root); remove it, and if an old lake kept this tier there, "
            "give it to `obs lake migrate --tier-root TIER=ROOT`",
        ),
    ],
)
def test_credentials_in_a_url_are_refused_without_echoing_them(
    raw: dict[str, Any], message: str
) -> None:
    assert refusal(raw) == message
    assert "Hunter2" not in message


@pytest.mark.parametrize(
    "raw",
    [
        {"sources": {"metrics": "http://alice:Hunter2@prom:9090"}},
        {"sources": {"prometheus": {"url": "http://alice:Hunter2@prom:9090"}}},
        {"lake": {"root": "gs://key:Hunter2@bucket/obs"}},
        {"lake": {"s3": {"region": ["http://alice:Hunter2@x"]}}},
        {"ingest": {"start": "http://alice:Hunter2@x"}},
        {"services": [{"name": "http://alice:Hunter2@x", "owner": "team"}]},
    ],
)
def test_a_config_error_never_shows_a_urls_password(raw: dict[str, Any]) -> None:
    assert "Hunter2" not in refusal(raw)


def test_a_yaml_error_never_shows_a_urls_password(tmp_path: Path) -> None:
    path = tmp_path / "obs.yaml"
    path.write_text("sources:\n  prometheus: {url: http://alice:Hunter2@prom:9090\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert "Hunter2" not in str(error.value)


def test_a_plain_at_in_an_s3_prefix_is_still_a_valid_root(tmp_path: Path) -> None:
    raw = {
        "lake": {
            "root": "s3://bucket/team@ops/obs",
            "catalog": str(tmp_path / "c.duckdb"),
            "s3": {"access_key_id_env": None, "secret_access_key_env": None},
        }
    }
    assert parse_config(raw).lake.root == "s3://bucket/team@ops/obs"


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("GET http://alice:s3cret@prom:9090/api", "GET http://***@prom:9090/api"),
        ("https://token@es:9200", "https://***@es:9200"),
        ("a 'http://u:p@ss@h:1/x' b", "a 'http://***@h:1/x' b"),
        (
            "s3://K:S@bucket and http://u:p@h",
            "s3://***@bucket and http://***@h",
        ),
        ("http://prom:9090/api/v1/query?x=a@b", "http://prom:9090/api/v1/query?x=a@b"),
        ("mail alice@example.com at 10:30", "mail alice@example.com at 10:30"),
        ("", ""),
    ],
)
def test_redact_url_masks_only_userinfo(text: str, redacted: str) -> None:
    assert redact_url(text) == redacted


def test_redact_url_never_raises() -> None:
    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("boom")

    assert redact_url(Unprintable()) == "<unprintable>"  # type: ignore[arg-type]
    assert redact_url(b"http://u:p@h") == "b'http://***@h'"  # type: ignore[arg-type]


def test_redact_secrets_masks_known_values_and_urls() -> None:
    text = "token abc123 refused by http://u:pw@h (abc)"
    assert (
        redact_secrets(text, ["abc123", "", None, "abc"])
        == "token *** refused by http://***@h (***)"
    )


@pytest.mark.parametrize(
    ("lake", "message"),
    [
        (
            {"format": "files"},
            "config: lake.format: the file layout is no longer written or read; remove "
            "lake.format and run `obs lake migrate` to convert the lake into Delta tables",
        ),
        (
            {"lock_ttl": "2h"},
            "config: lake: lock_ttl: tiering commits to Delta tables and takes no lock any more; "
            "remove it",
        ),
    ],
)
def test_settings_of_the_old_file_layout_are_refused_with_what_to_do(
    lake: dict[str, Any], message: str
) -> None:
    assert refusal({"lake": lake}) == message


BEARER = {
    "metrics": "prometheus",
    "prometheus": {**PROMETHEUS, "auth": {"bearer_token_env": "OBS_TEST_TOKEN"}},
}
API_KEY = {
    "logs": "elasticsearch",
    "elasticsearch": {"url": "http://es:9200", "auth": {"api_key_env": "OBS_TEST_TOKEN"}},
}


@pytest.mark.parametrize(
    ("sources", "key"),
    [
        (BEARER, "sources.prometheus.auth.bearer_token_env"),
        (API_KEY, "sources.elasticsearch.auth.api_key_env"),
    ],
)
@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("supersecret-123\n", "holds a newline or other control character"),
        ("supersecret-123\r", "holds a newline or other control character"),
        ("super\tsecret-123", "holds a newline or other control character"),
        ("supersecret-123€", "holds a character an HTTP header cannot carry (outside Latin-1)"),
        ("", "is empty; set it to the secret"),
    ],
)
def test_a_secret_unfit_for_a_header_is_refused_at_load_naming_only_its_variable(
    sources: dict[str, Any],
    key: str,
    value: str,
    problem: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("OBS_TEST_TOKEN", value)
    path = tmp_path / "obs.yaml"
    path.write_text(yaml.safe_dump({"sources": sources, "lake": {"root": str(tmp_path)}}))

    assert main(["--config", str(path), "check-config"]) == 2

    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(
        f"obs: error: {path}: {key}: environment variable OBS_TEST_TOKEN {problem}"
    )
    assert err.count("\n") == 1
    if value:
        assert "supersecret" not in err and "super" not in err


def test_a_secret_changed_after_load_is_refused_where_it_is_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The run's process reads the variable again: a header built from it would quote it."""
    monkeypatch.setenv("OBS_TEST_TOKEN", "eskey-secret-789")
    config = parse_config({"sources": API_KEY})
    monkeypatch.setenv("OBS_TEST_TOKEN", "eskey-secret-789\n")
    es = config.sources.elasticsearch
    with pytest.raises(ConfigError) as error:
        elasticsearch_options("sources.elasticsearch", es.url, es.auth, es.tls)
    assert str(error.value) == (
        "environment variable OBS_TEST_TOKEN holds a newline or other control character; set it "
        "to the secret alone"
    )


@pytest.mark.parametrize(
    ("value", "encoding"),
    [
        ("supersecret-123\n", "latin-1"),
        (" supersecret-123 ", "latin-1"),
        ("supersecret-é-123", "latin-1"),
        ("supersecret-€-123", "utf-8"),
    ],
)
def test_scrub_masks_a_secret_in_every_spelling_an_error_quotes(value: str, encoding: str) -> None:
    remember_secret(value)
    quoted = [
        f"unreachable ({'Bearer ' + value!r})",
        f"Invalid header value {('ApiKey ' + value).encode(encoding)!r}",
        f"refused {value!a}",
        f"token '{value.strip()}' refused",
    ]
    for text in quoted:
        assert "secret" not in scrub(text), text
        assert "secret" not in redact_secrets(text, [value]), text


def env_key_config(key: str, value: Any) -> dict[str, Any]:
    """A config whose ``key`` (one of the ``*_env`` keys) holds ``value``, all else valid."""
    basic = {"username_env": "OBS_USER", "password_env": "OBS_PASSWORD"}
    pagerduty = {"token_env": "OBS_PD_TOKEN", "services": {"P1": "api"}}
    raw = with_value(key, value)
    if key.startswith("sources.incidents"):
        raw["sources"]["incidents"]["pagerduty"] = {**pagerduty, "token_env": value}
    if ".basic." in key:
        section = key.split(".")[1]
        raw["sources"][section]["auth"]["basic"] = {**basic, key.rsplit(".", 1)[1]: value}
    return raw


@pytest.mark.parametrize(
    "key",
    [
        "sources.prometheus.auth.bearer_token_env",
        "sources.prometheus.auth.basic.password_env",
        "sources.elasticsearch.auth.api_key_env",
        "sources.jaeger.auth.basic.username_env",
        "sources.incidents.pagerduty.token_env",
        "lake.s3.secret_access_key_env",
    ],
)
@pytest.mark.parametrize("value", ["glpat-REALTOKEN-abc123", "wJalr/XUtn+FEMI=", "", "9LIVES", 42])
def test_an_env_key_holding_anything_but_a_variable_name_is_refused_without_echoing_it(
    key: str, value: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    message = refusal(env_key_config(key, value))

    assert message == (
        f"config: {key}: must name an environment variable (letters, digits, _), not hold the "
        "secret itself"
    )
    assert "REALTOKEN" not in message and "FEMI" not in message and "LIVES" not in message
    monkeypatch.setenv("_Obs_VAR_2", "secret")
    assert parse_config(env_key_config(key, "_Obs_VAR_2"))  # any variable name is fine


THRESHOLD_SLO = {**SLO, "sli": {"type": "threshold", "gauge": "queue_depth"}}


@pytest.mark.parametrize(
    ("bounds", "message"),
    [
        (
            {"max": 1, "min": 5},
            "config: slos[0].sli: min (5) is above max (1), so no sample could be good; swap them "
            "or fix one",
        ),
        (
            {"max": float("nan")},
            "config: slos[0].sli.max: input should be a finite number (got nan); fix the value",
        ),
        (
            {"min": 0, "max": float("inf")},
            "config: slos[0].sli.max: input should be a finite number (got inf); fix the value",
        ),
    ],
)
def test_threshold_bounds_no_sample_could_meet_are_refused(
    bounds: dict[str, float], message: str
) -> None:
    slo = {**THRESHOLD_SLO, "sli": {**THRESHOLD_SLO["sli"], **bounds}}
    assert refusal({"slos": [slo]}) == message


@pytest.mark.parametrize(
    "key",
    [
        "sources.prometheus.retry_backoff_seconds",
        "sources.elasticsearch.retry_backoff_seconds",
        "sources.jaeger.retry_backoff_seconds",
        "reports.burn_rate_policy[0].burn_rate",
        "reports.impact_burn_rate",
        "reports.targets.mttr",
    ],
)
@pytest.mark.parametrize("text", [".inf", ".nan"])
def test_an_infinite_or_nan_number_is_refused_naming_the_key(
    key: str, text: str, tmp_path: Path
) -> None:
    raw = with_value(key, yaml.safe_load(text))
    path = tmp_path / "obs.yaml"
    path.write_text(yaml.safe_dump({**raw, "lake": {"root": str(tmp_path)}}))
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value) == (
        f"{path}: {key}: input should be a finite number (got {yaml.safe_load(text)}); "
        "fix the value"
    )


def test_a_config_file_that_is_not_utf8_is_refused_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(b"lake: {root: lake}\n# caf\xe9\n")

    assert main(["--config", str(path), "check-config"]) == 2

    assert capsys.readouterr() == (
        "",
        f"obs: error: {path}: line 2 holds a byte that is not UTF-8 (0xe9); save the file as "
        "UTF-8\n",
    )


def test_an_unreadable_config_file_is_refused_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """As root (the test machine) permissions are not enforced: the read itself is made to fail."""
    path = tmp_path / "obs.yaml"
    path.write_text("lake: {root: lake}\n")

    def denied(self: Path, *args: Any, **kwargs: Any) -> str:
        raise PermissionError(13, "Permission denied", str(self))

    for method in ("read_text", "is_file"):  # the file, or a folder on its way
        with monkeypatch.context() as patch:
            patch.setattr(Path, method, denied)
            assert main(["--config", str(path), "check-config"]) == 2

        assert capsys.readouterr() == (
            "",
            f"obs: error: {path}: cannot be read (Permission denied); fix its permissions or give "
            "the path of a readable copy\n",
        )


def read_only(monkeypatch: pytest.MonkeyPatch, *folders: Path) -> None:
    """Make ``folders`` (and what is under them) read-only as os.access sees them: the tests run
    as root, which permissions do not stop."""
    real = os.access

    def access(path: Any, mode: int, *args: Any, **kwargs: Any) -> bool:
        inside = any(Path(path) == f or f in Path(path).parents for f in folders)
        return False if inside and mode & os.W_OK else real(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)


def test_a_read_only_lake_loads_for_readers_and_is_refused_for_writers(
    write_config: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """obs query, report and doctor only read: an analyst with read access must get past
    loading the config; ingest, tiering and the catalog build call require_writable."""
    path = write_config()
    (tmp_path / "lake").mkdir()
    read_only(monkeypatch, tmp_path / "lake")

    config = load_config(path)

    with pytest.raises(LakeError) as error:
        require_writable(config)
    assert str(error.value) == (
        f"lake.root: {tmp_path / 'lake'} is not writable; fix its permissions or choose another "
        "folder"
    )


def test_a_read_only_catalog_loads_and_is_refused_for_writers(
    write_config: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = tmp_path / "catalog" / "obs.duckdb"
    path = write_config(lake={"catalog": str(catalog)})
    catalog.parent.mkdir()
    catalog.write_bytes(b"")
    read_only(monkeypatch, catalog)

    config = load_config(path)

    with pytest.raises(LakeError) as error:
        require_writable(config)
    assert str(error.value) == (
        f"lake.catalog: {catalog} is not writable; fix its permissions or choose another path"
    )


def test_a_lake_without_write_permission_loads_and_is_refused_for_writers(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    """Real permissions, as a user without write access meets them (root's override dropped)."""
    path = write_config()
    (tmp_path / "lake").mkdir(mode=0o555)

    def obs(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*AS_ANY_USER, sys.executable, "-m", "obs_pipelines.cli", "--config", str(path), *args],
            capture_output=True,
            text=True,
            timeout=120,
        )

    try:
        reading, writing = obs("check-config"), obs("catalog")
    finally:
        (tmp_path / "lake").chmod(0o755)
    assert reading.returncode == 0, reading.stderr
    assert writing.returncode == 2
    assert writing.stderr == (
        f"obs: error: lake.root: {tmp_path / 'lake'} is not writable; fix its permissions or "
        "choose another folder\n"
    )
