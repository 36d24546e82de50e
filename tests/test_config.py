"""Config is refused at load with one line that names the key and the fix; nothing runs on a bad one."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from obs_pipelines.config import load_config, parse_config
from obs_pipelines.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent

BAD_CONFIGS = [
    ({"sourcs": {}}, "config: sourcs: unknown key; remove it or check its spelling"),
    (
        {"sources": {"metrics": "prometheus"}},
        "config: sources: metrics come from 'prometheus' but there is no sources.prometheus section; "
        "add one with its url, or set sources.metrics: simulator",
    ),
    (
        {"sources": {"prometheus": {"url": "localhost:9090", "selectors": ["up"]}}},
        "config: sources.prometheus.url: 'localhost:9090' has no http:// or https:// scheme; "
        "write it as http://localhost:9090",
    ),
    (
        {"sources": {"prometheus": {"url": "ftp://x", "selectors": ["up"]}}},
        "config: sources.prometheus.url: 'ftp://x': only http:// and https:// URLs are supported",
    ),
    (
        {"sources": {"prometheus": {"url": "http://prom:90x0", "selectors": ["up"]}}},
        "config: sources.prometheus.url: 'http://prom:90x0' has a port that is not a number from 1 to 65535",
    ),
    (
        {"sources": {"prometheus": {"url": "http://prom:9090", "selectors": ['{job=~".*"}']}}},
        "config: sources.prometheus.selectors: '{job=~\".*\"}' matches every series; "
        "name a metric or add a matcher that cannot match the empty string",
    ),
    (
        {
            "sources": {
                "prometheus": {"url": "http://prom:9090", "selectors": ["up"], "timeout": "soon"}
            }
        },
        "config: sources.prometheus.timeout: 'soon' is not a duration; "
        "write a number and a unit such as 90s, 15m, 2h, 7d, 1w or 1y",
    ),
    (
        {
            "sources": {
                "prometheus": {"url": "http://prom:9090", "selectors": ["up"], "retries": "many"}
            }
        },
        "config: sources.prometheus.retries: input should be a valid integer, unable to parse string as an "
        "integer (got 'many'); fix the value",
    ),
    (
        {"lake": {"root": "gs://bucket/obs"}},
        "config: lake.root: 'gs://bucket/obs': the lake lives in a local folder or at s3://bucket/prefix",
    ),
    (
        {"retention": {"logs": {"hot": "90d", "warm": "30d"}}},
        "config: retention.logs: ages must grow from hot to warm to cold (each is the age data leaves that tier)",
    ),
    (
        {
            "slos": [
                {
                    "name": "a",
                    "service": "api",
                    "objective": 1.5,
                    "sli": {"type": "ratio", "total": "x", "bad": "y"},
                }
            ]
        },
        "config: slos[0].objective: input should be less than 1 (got 1.5); fix the value",
    ),
    (
        {
            "services": [{"name": "api", "owner": "team"}],
            "slos": [
                {
                    "name": "a",
                    "service": "web",
                    "objective": 0.99,
                    "sli": {"type": "ratio", "total": "x", "bad": "y"},
                }
            ],
        },
        "config: slos: 'a' names service 'web', which is not under services; add it there or fix the name",
    ),
    (
        {"ingest": {"start": "yesterday"}},
        "config: ingest.start: 'yesterday' is not an ISO 8601 time; write one such as "
        "2026-01-01T00:00:00Z",
    ),
    (
        {"ingest": {"start": "2026-11-01T00:30:00Z"}},
        "config: ingest.start: 2026-11-01T00:30:00+00:00 is not on the hour; partitions are hourly",
    ),
    (
        {"lake": {"query_memory_limit": "lots"}},
        "config: lake.query_memory_limit: 'lots' is not a size DuckDB takes; write a number and "
        "a unit, such as 8GB or 512MiB",
    ),
]


@pytest.mark.parametrize(("raw", "message"), BAD_CONFIGS)
def test_bad_config_is_refused_with_one_line_naming_the_key(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(raw)
    assert str(error.value) == message
    assert "\n" not in str(error.value)


def test_a_missing_secret_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROM_TOKEN_FOR_TEST", raising=False)
    raw = {
        "sources": {
            "metrics": "prometheus",
            "prometheus": {
                "url": "http://prom:9090",
                "selectors": ["up"],
                "auth": {"bearer_token_env": "PROM_TOKEN_FOR_TEST"},
            },
        }
    }
    with pytest.raises(ConfigError) as error:
        parse_config(raw)
    assert str(error.value) == (
        "config: sources.prometheus.auth.bearer_token_env: environment variable PROM_TOKEN_FOR_TEST is not set; "
        "export it or change sources.prometheus.auth.bearer_token_env"
    )
    monkeypatch.setenv("PROM_TOKEN_FOR_TEST", "s3cr3t")
    assert parse_config(raw).sources.prometheus.auth.bearer_token_env == "PROM_TOKEN_FOR_TEST"


def test_a_secret_of_an_unused_source_is_not_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROM_TOKEN_FOR_TEST", raising=False)
    config = parse_config(
        {
            "sources": {
                "prometheus": {
                    "url": "http://prom:9090",
                    "selectors": ["up"],
                    "auth": {"bearer_token_env": "PROM_TOKEN_FOR_TEST"},
                }
            }
        }
    )
    assert config.sources.metrics == "simulator"


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "obs.yaml"
    path.write_text("sources:\n  metrics: [simulator\nlake: {}\n")
    with pytest.raises(
        ConfigError, match=r"obs.yaml: .* at line \d+, column \d+; fix the YAML syntax there$"
    ):
        load_config(path)


def test_the_shipped_example_config_has_the_seeds_services_slos_and_retention() -> None:
    config = load_config(REPO / "obs.yaml")
    assert {"waardhaven-api", "market-data", "trading-engine"} <= {s.name for s in config.services}
    slos = {s.name: s for s in config.slos}
    assert (slos["api_availability"].objective, slos["api_availability"].window.days) == (0.999, 30)
    assert (slos["api_latency"].objective, slos["api_latency"].sli.threshold_seconds) == (0.95, 0.5)
    assert (slos["data_freshness"].objective, slos["data_freshness"].sli.max) == (0.99, 5)
    assert [
        a.days
        for a in (config.retention.logs.hot, config.retention.logs.warm, config.retention.logs.cold)
    ] == [90, 365, 2555]
    assert config.retention.traces.hot.days == 7
    assert len(config.sources.prometheus.selectors) >= 10


def test_the_cli_prints_one_error_line_and_exits_2_on_a_bad_config(tmp_path: Path) -> None:
    path = tmp_path / "obs.yaml"
    path.write_text(yaml.safe_dump({"lake": {"root": "lake", "retention": "1y"}}))
    done = subprocess.run(
        [sys.executable, "-m", "obs_pipelines.cli", "--config", str(path), "check-config"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert (
        done.stderr
        == f"obs: error: {path}: lake.retention: unknown key; remove it or check its spelling\n"
    )
    assert not (tmp_path / "lake").exists()


def test_tls_files_are_read_from_the_config_files_folder_whatever_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "deploy"
    (folder / "certs").mkdir(parents=True)
    (folder / "obs.yaml").write_text(
        yaml.safe_dump(
            {
                "sources": {
                    "metrics": "prometheus",
                    "prometheus": {
                        "url": "https://prometheus:9090",
                        "selectors": ["up"],
                        "tls": {"ca_file": "certs/ca.pem", "client_cert": "/etc/obs/client.pem"},
                    },
                },
                "lake": {"root": "lake"},
            }
        )
    )
    monkeypatch.chdir(tmp_path)

    tls = load_config(folder / "obs.yaml").sources.prometheus.tls

    assert tls.ca_file == folder / "certs" / "ca.pem"
    assert tls.client_cert == Path("/etc/obs/client.pem")


def test_relative_paths_of_an_extended_file_resolve_against_that_files_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As docker-compose and ESLint read them: a path means what it meant where it was written."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "app.yml").write_text((REPO / "rules" / "application.yml").read_text())
    (tmp_path / "obs.yaml").write_text(
        yaml.safe_dump(
            {
                "lake": {"root": "lake", "catalog": "lake/obs.duckdb"},
                "sources": {
                    "alert_rule_files": ["rules/*.yml"],
                    "prometheus": {
                        "url": "https://prometheus:9090",
                        "selectors": ["up"],
                        "tls": {"ca_file": "certs/ca.pem"},
                    },
                },
            }
        )
    )
    top = tmp_path / "work" / "cfg" / "push.yaml"
    top.parent.mkdir(parents=True)
    top.write_text(
        "extends: ../../obs.yaml\n"
        "sources: {prometheus: {tls: {client_cert: client.pem}}}\n"  # this file's own folder
    )
    monkeypatch.chdir(tmp_path / "work")

    config = load_config(top)

    assert config.lake_root == str(tmp_path / "lake")
    assert config.catalog_path == str(tmp_path / "lake" / "obs.duckdb")
    assert config.sources.prometheus.tls.ca_file == tmp_path / "certs" / "ca.pem"
    assert config.sources.prometheus.tls.client_cert == top.parent / "client.pem"
    assert config.sources.alert_rule_files == [str(tmp_path / "rules" / "*.yml")]
    alone = load_config(tmp_path / "obs.yaml")  # read by itself, a file keeps what it wrote
    assert (alone.lake.root, alone.lake_root) == ("lake", str(tmp_path / "lake"))


def test_an_error_in_an_extended_file_names_the_file_that_holds_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OBS_TEST_UNSET_TOKEN", raising=False)
    base = tmp_path / "base_bad.yaml"
    top = tmp_path / "work" / "top.yaml"
    top.parent.mkdir()

    def refusal(base_text: str, top_text: str) -> str:
        base.write_text(base_text)
        top.write_text("extends: ../base_bad.yaml\n" + top_text)
        with pytest.raises(ConfigError) as error:
            load_config(top)
        return str(error.value)

    lake = f"lake: {{root: {tmp_path / 'lake'}}}\n"
    assert refusal("bogus_section: 1\n", lake) == (
        f"{base}: bogus_section: unknown key; remove it or check its spelling"
    )
    assert refusal(lake, "bogus_section: 1\n") == (
        f"{top}: bogus_section: unknown key; remove it or check its spelling"
    )
    prometheus = "sources: {prometheus: {url: 'http://p:9090', selectors: [up], timeout: soon}}\n"
    assert refusal(prometheus, lake + "sources: {prometheus: {url: 'http://q:9090'}}\n") == (
        f"{base}: sources.prometheus.timeout: 'soon' is not a duration; write a number and a unit "
        "such as 90s, 15m, 2h, 7d, 1w or 1y"
    )
    auth = (
        "sources: {prometheus: {url: 'http://p:9090', selectors: [up], "
        "auth: {bearer_token_env: OBS_TEST_UNSET_TOKEN}}}\n"
    )
    assert refusal(auth, lake + "sources: {metrics: prometheus}\n") == (
        f"{base}: sources.prometheus.auth.bearer_token_env: environment variable "
        "OBS_TEST_UNSET_TOKEN is not set; export it or change sources.prometheus.auth."
        "bearer_token_env"
    )
    (tmp_path / "lake").write_text("a file")
    assert refusal(lake, "") == (
        f"{base}: lake.root: {tmp_path / 'lake'} is a file, not a folder; move the file away or "
        "choose another folder"
    )
