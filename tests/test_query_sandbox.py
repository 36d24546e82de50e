"""`obs query` as an analyst runs it: it reads the lake and nothing else, writes only where it is
told, and prints results (or one line of error) the way a shell expects."""

import csv
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml
from deltalake import DeltaTable

from obs_pipelines.config import load_config
from obs_pipelines.errors import ObsError
from obs_pipelines.lake import Lake
from obs_pipelines.lake.catalog import build_catalog
from obs_pipelines.reporting import query
from obs_pipelines.windows import TimeWindow, utc
from tests.conftest import one_hour_lake
from tests.tiering_data import day, some_hours, write_hours

pytestmark = pytest.mark.integration  # runs obs or duckdb in a subprocess: seconds per test

REPO = Path(__file__).resolve().parent.parent
OBS = REPO / ".venv" / "bin" / "obs"
HOUR = TimeWindow(utc("2026-11-18T14:00:00Z"), utc("2026-11-18T15:00:00Z"))
READS_VIEWS_ONLY = (
    "is not allowed in obs query, which reads the lake only through the catalog's views"
)


def obs(
    config: Path, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "obs_pipelines.cli", "--config", str(config), "query", *args],
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def shell(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``command`` through bash, for redirections and pipes as a user types them."""
    return subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("obs: error: "), done.stderr
    assert "Traceback" not in done.stderr
    return done.stderr.strip()


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local lake with one hour of simulated metrics and its catalog, shared by the tests
    (none may change it: that is the point); returns the config path."""
    return one_hour_lake(tmp_path_factory.mktemp("query"), HOUR)


def lake_root(config_path: Path) -> Path:
    return Path(load_config(config_path).lake_root)


def table_folder(config_path: Path) -> Path:
    return lake_root(config_path) / "delta" / "metric_samples"


def data_file(config_path: Path) -> Path:
    """A data file the metric_samples table's log references (not one of its log's files)."""
    table = DeltaTable(str(table_folder(config_path)))
    [uri] = table.file_uris()  # one hour ingested: one file
    return Path(uri)


def table_state(config_path: Path) -> tuple[int, list[str], dict[str, bytes]]:
    """The table as a reader sees it: its version, its files and every byte under its folder."""
    folder = table_folder(config_path)
    table = DeltaTable(str(folder))
    files = {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    return table.version(), sorted(table.file_uris()), files


def test_copy_onto_a_file_of_a_delta_table_is_refused_and_the_table_is_unchanged(
    lake: Path, tmp_path: Path
) -> None:
    partition = data_file(lake)
    before = table_state(lake)
    exports = tmp_path / "exports"
    exports.mkdir()

    plain = obs(lake, f"COPY (SELECT 1 AS x) TO '{partition}' (FORMAT parquet)")
    allowed_elsewhere = obs(
        lake,
        f"COPY (SELECT 1 AS x) TO '{partition}' (FORMAT parquet)",
        "--allow-write-to",
        str(exports),
    )
    explained = obs(lake, f"EXPLAIN ANALYZE COPY (SELECT 1 AS x) TO '{partition}'")

    assert one_error_line(plain).startswith("obs: error: COPY is not allowed in obs query")
    assert "--allow-write-to DIR" in plain.stderr
    assert f"is outside {exports}" in one_error_line(allowed_elsewhere)
    assert one_error_line(explained).startswith("obs: error: COPY is not allowed")
    assert table_state(lake) == before


def test_the_session_itself_reads_only_the_lake_and_cannot_be_unlocked(
    lake: Path, tmp_path: Path
) -> None:
    """DuckDB's own wall, under the statement check: even SQL that got past the check could
    open nothing outside the lake, load nothing and change no setting."""
    config = load_config(lake)
    con = query.connect_sandboxed(config, query.sandbox(config))
    outside = tmp_path / "outside.csv"
    try:
        assert con.execute("SELECT count(*) FROM metrics").fetchone() == (49440,)
        with pytest.raises(duckdb.PermissionException):
            con.execute(f"COPY (SELECT 1) TO '{outside}'")
        with pytest.raises(duckdb.PermissionException):
            con.execute("SELECT * FROM read_text('/etc/passwd')")
        with pytest.raises(duckdb.InvalidInputException, match="locked"):
            con.execute("SET enable_external_access = true")
        with pytest.raises(duckdb.InvalidInputException, match="locked"):
            con.execute("SET allowed_directories = ['/']")
        with pytest.raises(duckdb.Error):
            con.execute("INSTALL spatial")
    finally:
        con.close()
    assert not outside.exists()


@pytest.mark.parametrize(
    ("sql", "error"),
    [
        ("SELECT * FROM read_text('/etc/passwd')", f"read_text() {READS_VIEWS_ONLY}"),
        ("SELECT * FROM glob('/root/**')", f"glob() {READS_VIEWS_ONLY}"),
        ("SELECT * FROM read_csv('https://example.com/x.csv')", f"read_csv() {READS_VIEWS_ONLY}"),
        ("SELECT * FROM '/etc/hosts.csv'", "FROM '/etc/hosts.csv' reads a file"),
        ("ATTACH '{tmp}/other.duckdb' AS other", "ATTACH is not allowed in obs query"),
        ("LOAD httpfs", "LOAD is not allowed in obs query"),
        ("INSTALL spatial", "INSTALL is not allowed in obs query"),
        ("SET threads = 1", "SET threads is not allowed in obs query"),
        ("RESET enable_external_access", "RESET enable_external_access is not allowed"),
        ("PRAGMA enable_profiling", "PRAGMA enable_profiling is not allowed"),
        ("EXPORT DATABASE '{tmp}/export'", "EXPORT DATABASE is not allowed in obs query"),
        ("CREATE TEMP TABLE t AS SELECT 1", "CREATE is not allowed in obs query"),
        (
            "SELECT * FROM enable_logging(storage = 'file', storage_path = '{lake}/delta/logs')",
            "enable_logging() is not allowed in obs query",
        ),
        (
            "SELECT * FROM enable_profiling(save_location = '{lake}/delta/profile.json')",
            "enable_profiling() is not allowed in obs query",
        ),
        (
            "SET VARIABLE q = 'SELECT 1'; SELECT * FROM query(getvariable('q'))",
            "query() is not allowed in obs query",
        ),
    ],
)
def test_what_could_touch_the_machine_or_the_lake_fails_in_one_line(
    lake: Path, tmp_path: Path, sql: str, error: str
) -> None:
    root = lake_root(lake)
    before = sorted(p for p in root.rglob("*") if p.name != "obs.duckdb")

    done = obs(lake, sql.format(tmp=tmp_path, lake=root))

    assert error in one_error_line(done)
    assert sorted(p for p in root.rglob("*") if p.name != "obs.duckdb") == before
    assert not (tmp_path / "other.duckdb").exists() and not (tmp_path / "export").exists()


@pytest.mark.parametrize(
    ("sql", "refused"),
    [
        (
            "SELECT * FROM enable_profiling--x\n"
            "(format := 'json', save_location := '{commit}'); SELECT 1",
            "enable_profiling()",
        ),
        (
            "SELECT * FROM enable_profiling/**/(format := 'json', save_location := '{commit}')",
            "enable_profiling()",
        ),
        (
            "SELECT * FROM enable_logging--x\n(storage = 'file', storage_path = '{tmp}/logs')",
            "enable_logging()",
        ),
        ("SELECT * FROM \"query\"('SELECT 42')", "query()"),
        ("SELECT * FROM system.main.QUERY\n  ('SELECT 42')", "query()"),
        ("WITH t AS (SELECT * FROM query--x\n('SELECT 42')) SELECT * FROM t", "query()"),
        ("SELECT (SELECT count(*) FROM query_table('pg_settings')) AS n", "query_table()"),
        (
            "SELECT list_transform(['{table}/part.parquet'], p -> write_blob(p, 'x'::BLOB))",
            "write_blob()",
        ),
        ("PIVOT (SELECT * FROM query--x\n('SELECT 1 AS k, 2 AS v')) ON k USING sum(v)", "query()"),
        ("SET VARIABLE n = (SELECT count(*) FROM query--x\n('SELECT 1'))", "query()"),
        ("SELECT write_blob('{table}/part.parquet', 'x'::BLOB)", "write_blob()"),
    ],
)
def test_a_refused_function_stays_refused_however_it_is_spelled(
    lake: Path, tmp_path: Path, sql: str, refused: str
) -> None:
    """A comment between a function's name and its '(', quotes, case, a schema, or a call
    nested in a CTE, subquery, lambda, PIVOT or variable: the function is what DuckDB parses,
    and the table's commits and files stay as they were."""
    commit = max((table_folder(lake) / "_delta_log").glob("*.json"))
    before = table_state(lake)

    done = obs(lake, sql.format(commit=commit, tmp=tmp_path, table=table_folder(lake)))

    assert one_error_line(done).startswith(f"obs: error: {refused} is not allowed in obs query")
    assert table_state(lake) == before
    assert list(tmp_path.iterdir()) == []


def test_delta_tables_outside_the_lake_are_neither_read_nor_probed(
    lake: Path, tmp_path: Path
) -> None:
    """delta_scan ignores the session's allowed folders: a copy of a table elsewhere would be
    read, and its errors would tell a folder that exists from one that does not."""
    elsewhere = tmp_path / "copy"
    shutil.copytree(table_folder(lake), elsewhere)

    copied = obs(lake, f"SELECT count(*) FROM delta_scan('{elsewhere}')")
    absent = obs(lake, f"SELECT count(*) FROM delta_scan('{tmp_path / 'absent'}')")
    existing = obs(lake, f"SELECT count(*) FROM delta_scan('{tmp_path}')")
    through_the_view = obs(lake, "SELECT count(*) AS n FROM metric_samples", "--format", "csv")

    assert one_error_line(copied) == (
        f"obs: error: delta_scan() {READS_VIEWS_ONLY} (not files, settings or logs); "
        "query the catalog's views instead (SHOW TABLES lists them)"
    )
    assert one_error_line(absent) == one_error_line(existing) == one_error_line(copied)
    assert through_the_view.stdout == '"n"\n49440\n'


def test_allow_write_to_lets_copy_write_inside_that_folder_only(lake: Path, tmp_path: Path) -> None:
    exports = tmp_path / "exports"
    exports.mkdir()

    inside = obs(
        lake,
        "COPY (SELECT service, count(*) AS n FROM metrics GROUP BY ALL ORDER BY 1) "
        "TO 'exports/by_service.csv'",
        "--allow-write-to",
        "exports",
        cwd=tmp_path,
    )
    escaping = obs(
        lake,
        "COPY (SELECT 1) TO 'exports/../escaped.csv'",
        "--allow-write-to",
        "exports",
        cwd=tmp_path,
    )
    partitioned = obs(
        lake,
        "COPY (SELECT service, count(*) AS n FROM metrics GROUP BY ALL) "
        "TO 'exports/by_service' (FORMAT parquet, PARTITION_BY (service))",
        "--allow-write-to",
        "exports",
        cwd=tmp_path,
    )
    named_into_the_lake = obs(
        lake,
        "COPY (SELECT 1 AS x) TO 'exports/p' "
        "(FORMAT csv, PER_THREAD_OUTPUT true, FILENAME_PATTERN "
        f"'{os.path.relpath(table_folder(lake), exports / 'p')}/x_{{i}}')",
        "--allow-write-to",
        "exports",
        cwd=tmp_path,
    )
    into_the_lake = obs(lake, "SELECT 1", "--allow-write-to", str(table_folder(lake)))
    holding_the_lake = obs(lake, "SELECT 1", "--allow-write-to", str(lake_root(lake).parent))

    assert inside.returncode == 0, inside.stderr
    rows = list(csv.DictReader(io.StringIO((exports / "by_service.csv").read_text())))
    assert len(rows) == 8 and rows[0] == {"service": "auth-service", "n": "1920"}
    assert "is outside" in one_error_line(escaping)
    assert not (tmp_path / "escaped.csv").exists()
    assert partitioned.returncode == 0, partitioned.stderr
    assert len(list((exports / "by_service").glob("service=*/*.parquet"))) == 8
    assert "COPY option FILENAME_PATTERN is not allowed" in one_error_line(named_into_the_lake)
    assert not list(table_folder(lake).glob("x_*"))
    assert "overlaps the lake" in one_error_line(into_the_lake)
    assert "overlaps the lake" in one_error_line(holding_the_lake)


def test_output_is_written_by_obs_and_never_into_the_lake(lake: Path, tmp_path: Path) -> None:
    partition = data_file(lake)
    before = table_state(lake)

    refused = obs(lake, "SELECT 1 AS x", "--format", "parquet", "-o", str(partition))
    beside = obs(lake, "SELECT 1 AS x", "-o", str(table_folder(lake) / "_delta_log" / "x.json"))
    written = obs(lake, "SELECT 1 AS x", "--format", "csv", "-o", str(tmp_path / "x.csv"))

    assert "would write into the lake" in one_error_line(refused)
    assert "would write into the lake" in one_error_line(beside)
    assert table_state(lake) == before
    assert written.returncode == 0, written.stderr
    assert (tmp_path / "x.csv").read_text() == '"x"\n1\n'


def test_results_appended_to_a_file_with_shell_redirection_keep_what_was_there(
    lake: Path, tmp_path: Path
) -> None:
    log = tmp_path / "results.txt"
    log.write_text("earlier content\n")
    run = f"{OBS} --config {shlex.quote(str(lake))} query"

    done = shell(
        f"{run} 'SELECT 1 AS a' --format csv >> results.txt && "
        f"{run} 'SELECT 2 AS b' --format json >> results.txt",
        tmp_path,
    )

    assert done.returncode == 0, done.stderr
    assert log.read_text() == 'earlier content\n"a"\n1\n[\n{"b":2}\n]\n'


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT 42 AS answer;", [{"answer": 42}]),
        ("SELECT 42 AS answer ; ; ", [{"answer": 42}]),
        ("SET VARIABLE x = 1; SELECT getvariable('x') AS x", [{"x": 1}]),
        (
            "DESCRIBE SELECT 1 AS one",
            [
                {
                    "column_name": "one",
                    "column_type": "INTEGER",
                    "null": "YES",
                    "key": None,
                    "default": None,
                    "extra": None,
                }
            ],
        ),
        (
            "SELECT name FROM pragma_table_info('metric_series') WHERE pk OR name = 'metric'",
            [{"name": "metric"}],
        ),
    ],
)
def test_statements_an_analyst_types_run(lake: Path, sql: str, expected: list[dict]) -> None:
    done = obs(lake, sql, "--format", "json")

    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert json.loads(done.stdout) == expected


def test_a_report_window_set_in_a_variable_selects_like_a_literal(lake: Path) -> None:
    count = "SELECT count(*) AS samples FROM metrics WHERE ts >= {start}"
    literal = obs(lake, count.format(start="TIMESTAMP '2026-11-18 14:30:00'"), "--format", "csv")
    variable = obs(
        lake,
        "SET VARIABLE report_start = TIMESTAMP '2026-11-18 14:30:00';\n"
        + count.format(start="getvariable('report_start')"),
        "--format",
        "csv",
    )

    assert variable.returncode == 0, variable.stderr
    assert variable.stdout == literal.stdout
    assert 0 < int(variable.stdout.splitlines()[1]) < 49440


PERIOD = "SELECT period_start, period_end FROM report_period"
WEEK = ["2026-11-01 00:00:00.000000,2026-11-08 00:00:00.000000"]  # as CSV


def test_from_and_to_set_the_report_window_the_views_describe(lake: Path) -> None:
    chosen = obs(lake, PERIOD, "--from", "2026-11-01T00:00:00Z", "--to", "2026-11-08T00:00:00Z")
    as_csv = obs(lake, PERIOD, "--from", "2026-11-01", "--to", "2026-11-08", "--format", "csv")
    end_only = obs(lake, PERIOD, "--to", "2026-11-08T01:00:00+01:00", "--format", "csv")

    assert chosen.returncode == 0, chosen.stderr
    assert "2026-11-01 00:00:00" in chosen.stdout and "2026-11-08 00:00:00" in chosen.stdout
    assert as_csv.stdout.splitlines()[1:] == WEEK
    assert end_only.stdout.splitlines()[1:] == WEEK


def test_a_set_variable_moves_the_window_past_the_pinned_default_end(lake: Path) -> None:
    moved = obs(
        lake, "SET VARIABLE report_end = TIMESTAMP '2026-11-08';\n" + PERIOD, "--format", "csv"
    )

    assert moved.returncode == 0, moved.stderr
    assert moved.stdout.splitlines()[1:] == WEEK


@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Asia/Kolkata"])
def test_a_window_of_absolute_instants_is_the_same_in_every_machine_time_zone(
    lake: Path, zone: str
) -> None:
    """The lake's times are UTC; the machine's zone must not move a period given with one."""
    week = (
        "SET VARIABLE report_start = TIMESTAMPTZ '2026-11-01 05:30:00+05:30';\n"
        "SET VARIABLE report_end = TIMESTAMPTZ '2026-11-07 19:00:00-05:00';\n"
    )
    done = obs(lake, week + PERIOD, "--format", "csv", env={"TZ": zone})

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1:] == WEEK


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--from", "last week"), "--from 'last week' is not an ISO 8601 time; write e.g."),
        (("--from", "2026-11-08", "--to", "2026-11-01"), "is not before --to 2026-11-01; swap"),
    ],
)
def test_an_unusable_window_is_one_line(lake: Path, args: tuple[str, ...], message: str) -> None:
    assert message in one_error_line(obs(lake, PERIOD, *args))


def test_json_keeps_maps_as_objects_and_timestamps_in_iso_8601(lake: Path) -> None:
    done = obs(
        lake,
        "SELECT labels, ts, INTERVAL 90 MINUTE AS took FROM metrics "
        "WHERE metric = 'up' ORDER BY ts, series_id LIMIT 1",
        "--format",
        "json",
    )

    assert done.returncode == 0, done.stderr
    [row] = json.loads(done.stdout)
    assert isinstance(row["labels"], dict) and "instance" in row["labels"]
    assert row["ts"].startswith("2026-11-18T14:00:")
    assert row["took"] == "PT5400S"


def test_a_table_shows_the_last_result(lake: Path) -> None:
    done = obs(lake, "SET VARIABLE n = 3; SELECT range AS i FROM range(getvariable('n'))")

    assert done.returncode == 0, done.stderr
    assert [line for line in done.stdout.splitlines() if line.startswith("│")][2:] == [
        "│     0 │",
        "│     1 │",
        "│     2 │",
    ]


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_a_runtime_error_is_one_line(lake: Path, fmt: str) -> None:
    done = obs(lake, "SELECT CAST('x' AS INTEGER) AS n", "--format", fmt)

    assert one_error_line(done) == (
        "obs: error: query failed: Conversion Error: Could not convert string 'x' to INT32"
    )


def test_an_error_met_while_streaming_is_one_line(lake: Path) -> None:
    done = obs(
        lake,
        "SELECT CASE WHEN i < 250000 THEN i ELSE CAST('x' || i AS INTEGER) END AS i "
        "FROM range(300000) t(i)",
        "--format",
        "csv",
    )

    assert one_error_line(done).startswith("obs: error: query failed: Conversion Error")


@pytest.mark.parametrize("fmt", ["csv", "json", "table"])
def test_a_reader_that_stops_early_ends_the_query_quietly(
    lake: Path, tmp_path: Path, fmt: str
) -> None:
    done = shell(
        f"{OBS} --config {shlex.quote(str(lake))} query 'SELECT * FROM range(300000)' "
        f"--format {fmt} --max-rows 300000 2>stderr.txt | head -1; "
        'echo "exit ${PIPESTATUS[0]}" >&2',
        tmp_path,
    )

    assert done.stdout.count("\n") == 1
    assert done.stdout.startswith({"csv": '"range"', "json": "[", "table": "┌"}[fmt])
    assert done.stderr == f"exit {query.BROKEN_PIPE_EXIT}\n"
    assert (tmp_path / "stderr.txt").read_text() == ""


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_the_sql_runs_once(lake: Path, fmt: str) -> None:
    """Each statement runs once, the last one included: a counter kept in a variable counts
    one run, and the random draw shown is the first after the seed."""
    first_draw = duckdb.sql("SELECT setseed(0.25); SELECT random()").fetchone()
    assert first_draw is not None

    done = obs(
        lake,
        "SET VARIABLE runs = coalesce(getvariable('runs'), 0) + 1; SELECT setseed(0.25); "
        "SELECT getvariable('runs') AS runs, random() AS draw",
        "--format",
        fmt,
    )

    assert done.returncode == 0, done.stderr
    assert str(first_draw[0]) in done.stdout
    if fmt == "csv":
        assert list(csv.DictReader(io.StringIO(done.stdout))) == [
            {"runs": "1", "draw": str(first_draw[0])}
        ]
    elif fmt == "json":
        assert json.loads(done.stdout) == [{"runs": 1, "draw": first_draw[0]}]


def test_an_s3_lake_is_read_and_fenced(
    write_config: Callable[..., Path],
    s3_lake: dict[str, Any],
    s3_client: Any,
    s3_bucket: str,
    tmp_path: Path,
) -> None:
    path = write_config(lake=s3_lake)
    exports = tmp_path / "exports"
    exports.mkdir()
    config = load_config(path)
    write_hours(Lake(config), some_hours([day("2026-03-30"), day("2026-03-31")], (0, 23)))
    build_catalog(config)
    bucket_root = s3_lake["root"]
    client = s3_client

    def keys() -> set[str]:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=s3_bucket)
        return {o["Key"] for page in pages for o in page.get("Contents", [])}

    before = keys()

    files = obs(
        path,
        "SELECT count(*) AS files, count(DISTINCT file[:length("
        f"'{bucket_root}/delta/log_records/')]) AS prefixes "
        "FROM lake_partitions WHERE dataset = 'log_records'",
        "--format",
        "json",
    )
    logs = obs(
        path,
        "SELECT count(*) AS n, count(DISTINCT ts::DATE) AS days FROM log_records",
        "--format",
        "csv",
    )
    outside_the_prefix = obs(path, f"SELECT * FROM glob('{bucket_root.rsplit('/', 1)[0]}/**')")
    onto_a_table = obs(path, f"COPY (SELECT 1) TO '{bucket_root}/delta/log_records/x.parquet'")
    onto_its_log = obs(
        path,
        f"COPY (SELECT 1) TO '{bucket_root}/delta/log_records/_delta_log/00000000000000000099.json'"
        " (FORMAT json)",
        "--allow-write-to",
        str(exports),
    )

    assert files.returncode == 0, files.stderr
    assert json.loads(files.stdout) == [{"files": 4, "prefixes": 1}]  # an hour, a file
    assert logs.returncode == 0, logs.stderr
    assert list(csv.DictReader(io.StringIO(logs.stdout))) == [{"n": "200", "days": "2"}]
    assert f"glob() {READS_VIEWS_ONLY}" in one_error_line(outside_the_prefix)
    assert "COPY is not allowed" in one_error_line(onto_a_table)
    assert f"is outside {exports}" in one_error_line(onto_its_log)
    assert keys() == before


def test_an_s3_lakes_credentials_cannot_be_read_from_sql(
    write_config: Callable[..., Path],
    s3_lake: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With credentials in AWS_* (the default lake.s3 variables), httpfs also copies them into
    the session's s3_* settings: SQL that reads settings is refused, and those copies are
    blanked (the lake's secret holds them, shown redacted), while the lake stays readable."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret")
    s3 = {k: v for k, v in s3_lake["s3"].items() if not k.endswith("_env")}  # default: AWS_*
    path = write_config(lake={**s3_lake, "s3": s3})
    config = load_config(path)
    write_hours(Lake(config), some_hours([day("2026-03-30")], (0,)))
    build_catalog(config)

    attempts = [
        obs(path, sql)
        for sql in (
            "SELECT current_setting('s3_secret_access_key')",
            "SELECT name, value FROM duckdb_settings()",
            "SELECT * FROM pg_catalog.pg_settings",
            "SET VARIABLE k = current_setting--x\n('s3_secret_access_key'); SELECT getvariable('k')",
        )
    ]
    con = query.connect_sandboxed(config, query.sandbox(config))
    try:
        settings = dict(
            con.execute(
                "SELECT name, value FROM duckdb_settings() WHERE name LIKE 's3_%'"
            ).fetchall()
        )
        logs = con.execute("SELECT count(*) FROM log_records").fetchone()
    finally:
        con.close()

    for done in attempts:
        assert "shows the session's settings, credentials among them" in one_error_line(done)
        assert "testing-secret" not in done.stdout + done.stderr
    assert settings["s3_secret_access_key"] == settings["s3_access_key_id"] == ""
    assert logs == (50,)


def test_statements_are_checked_before_anything_runs() -> None:
    """The statement check alone: refusals name the statement and never need a lake."""
    with pytest.raises(ObsError, match=r"^COPY is not allowed"):
        query.read_statements("SELECT 1; COPY (SELECT 1) TO '/tmp/x.csv'")
    with pytest.raises(ObsError, match=r"^checkpoint\(\) is not allowed"):
        query.read_statements('SELECT * FROM main."CHECKPOINT" /* */ ()')
    with pytest.raises(ObsError, match="no SQL to run"):
        query.read_statements(" ; -- nothing\n")
    pivot = query.read_statements("PIVOT (SELECT 'a' AS k, 1 AS v) ON k USING sum(v)")
    assert pivot[-1].type == duckdb.StatementType.SELECT
    assert [s.type for s in query.read_statements("SET VARIABLE a = 1; RESET VARIABLE a")] == [
        duckdb.StatementType.SET,
        duckdb.StatementType.SET,
    ]


@pytest.mark.parametrize(
    ("sql", "reads"),
    [
        ("SELECT * FROM scorecard", True),
        ("select period_end from REPORT_PERIOD", True),
        ("SELECT count(*) FROM metric_samples WHERE ts > now() - INTERVAL 1 DAY", False),
        ("SELECT * FROM slo_events", False),  # a dataset-level view: no report period
    ],
)
def test_only_sql_that_reads_a_report_pins_the_default_report_end(sql: str, reads: bool) -> None:
    from obs_pipelines.reporting.query import reads_reports

    assert reads_reports(sql) is reads


def test_a_query_past_the_memory_limit_fails_in_one_line_naming_it(tmp_path: Path) -> None:
    config_path = one_hour_lake(tmp_path, HOUR)
    raw = yaml.safe_load(config_path.read_text())
    raw["lake"]["query_memory_limit"] = "8MB"
    config_path.write_text(yaml.safe_dump(raw))
    build_catalog(load_config(config_path))

    done = obs(config_path, "SELECT list(i ORDER BY i DESC) FROM range(20000000) AS t(i)")

    line = one_error_line(done)
    assert line.startswith("obs: error: query failed: Out of Memory Error")
    assert line.endswith("; raise lake.query_memory_limit")
