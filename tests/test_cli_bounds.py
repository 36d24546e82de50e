"""Times and ranges the `obs` commands refuse before doing any work: each refusal is one line,
and nothing in the lake changes (a future `tier --now` used to age out and delete every row)."""

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from obs_pipelines import cli
from obs_pipelines.config import load_config
from obs_pipelines.lake import Lake
from obs_pipelines.lake.catalog import build_catalog, connect
from obs_pipelines.lake.ingest import ingest_metrics_hour
from obs_pipelines.reporting.derived import derive
from obs_pipelines.reporting.reports import report_connection
from obs_pipelines.sources import metric_source
from obs_pipelines.windows import TimeWindow, utc
from tests.test_config_refusals import read_only

HOUR = TimeWindow(utc("2026-11-18T14:00:00Z"), utc("2026-11-18T15:00:00Z"))


@pytest.fixture
def lake_with_an_hour(write_config: Callable[..., Path]) -> Path:
    path = write_config()
    config = load_config(path)
    ingest_metrics_hour(Lake(config), metric_source(config), HOUR)
    derive(config, HOUR)  # the newest data's end, which a report's default end is
    build_catalog(config)
    return path


def _samples(path: Path) -> int:
    con = connect(load_config(path), read_only=True)
    try:
        return con.execute("SELECT count(*) FROM metric_samples").fetchone()[0]
    finally:
        con.close()


def _refusal(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run ``obs`` in process; the one line it refused with (exit status 2, as argparse's)."""
    try:
        code = cli.main(list(argv))
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "command",
    [
        ["report", "--from"],
        ["report", "--to"],
        ["tier", "--now"],
        ["materialize", "--from"],
        ["slo", "recompute", "--from"],
    ],
)
def test_an_unreadable_time_is_a_usage_error(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = _refusal(capsys, "--config", str(tmp_path / "obs.yaml"), *command, "garbage")
    assert line.endswith(
        "'garbage' is not an ISO 8601 time; write e.g. 2026-11-01 or 2026-11-01T00:00:00Z (UTC)"
    )


def test_tiering_as_of_a_future_time_is_refused_and_keeps_every_row(
    lake_with_an_hour: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _samples(lake_with_an_hour)
    line = _refusal(capsys, "--config", str(lake_with_an_hour), "tier", "--now", "2099-01-01")
    assert line.startswith("obs: error: --now 2099-01-01 00:00Z is in the future")
    assert before > 0 and _samples(lake_with_an_hour) == before


@pytest.mark.parametrize(
    ("span", "message"),
    [
        (
            ["--from", "2026-12-02", "--to", "2026-12-01"],
            "[2026-12-02 00:00Z, 2026-12-01 00:00Z) holds no whole hour",
        ),
        (
            ["--from", "2026-12-01T10:00:00Z", "--to", "2026-12-01T10:30:00Z"],
            "[2026-12-01 10:00Z, 2026-12-01 10:00Z) holds no whole hour",
        ),
        (["--last", "0s"], "holds no whole hour"),
        (
            ["--from", "0001-01-01", "--to", "2026-12-01"],
            "0001-01-01 00:00Z is before ingest.start (2026-01-01 00:00Z)",
        ),
        (
            ["--from", "2026-12-01", "--to", "2099-01-01"],
            "--to 2099-01-01 00:00Z is past the last closed hour",
        ),
    ],
)
def test_materialize_takes_whole_closed_hours_from_ingest_start(
    span: list[str],
    message: str,
    write_config: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    line = _refusal(capsys, "--config", str(write_config()), "materialize", *span)
    assert message in line
    assert not (tmp_path / "lake").exists()  # refused before any run was launched
    assert not (tmp_path / "dagster_home").exists()


@pytest.mark.parametrize(
    ("window", "message"),
    [
        (
            ["--from", "2026-11-19", "--to", "2026-11-18"],
            "--from 2026-11-19 00:00Z is not before --to 2026-11-18 00:00Z",
        ),
        (["--from", "0001-01-01"], "--from 0001-01-01 00:00Z is before ingest.start"),
        (["--to", "9999-12-31"], "--to 9999-12-31 00:00Z is in the future"),
        (
            ["--from", "2026-11-20"],
            "the period from 2026-11-20 00:00Z ends at 2026-11-18 15:00Z (the end of the newest "
            "data) before it starts",
        ),
    ],
)
def test_a_report_period_outside_the_lake_is_refused_before_any_html(
    window: list[str],
    message: str,
    lake_with_an_hour: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    html = tmp_path / "report.html"
    line = _refusal(capsys, "--config", str(lake_with_an_hour), "report", *window, "-o", str(html))
    assert line.startswith(f"obs: error: {message}")
    assert not html.exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["demo", "--days", "0"], "argument --days: 0 is not between 1 and 365 days"),
        (["demo", "--days", "10000000"], "argument --days: 10000000 is not between 1 and 365"),
        (
            ["query", "--max-rows", "-1", "SELECT 1"],
            "argument --max-rows: '-1' is not a whole number of 0 or more",
        ),
    ],
)
def test_counts_out_of_range_are_usage_errors(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert message in _refusal(capsys, "--config", str(tmp_path / "obs.yaml"), *argv)


@pytest.mark.integration
def test_a_reader_that_goes_away_ends_any_command_quietly(
    write_config: Callable[..., Path],
) -> None:
    """``obs check-config | head -0``: Python's own exit-time flush would print a traceback."""
    done = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "obs_pipelines.cli",
            "--config",
            str(write_config()),
            "check-config",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    done.stdout.close()  # before the interpreter has even started: every write meets EPIPE
    err = done.stderr.read().decode()
    assert done.wait(timeout=120) == 141, err
    assert err == ""


@pytest.mark.parametrize(
    "command",
    [
        ["tier"],
        ["catalog"],
        ["materialize", "--last", "1h"],
        ["slo", "recompute"],
        ["demo", "--days", "1"],
    ],
)
def test_the_writing_commands_refuse_a_read_only_lake_before_they_start(
    command: list[str],
    write_config: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = write_config()
    (tmp_path / "lake").mkdir()
    read_only(
        monkeypatch, tmp_path / "lake"
    )  # as for a user without write access (tests run as root)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))

    line = _refusal(capsys, "--config", str(path), *command)

    assert line == (
        f"obs: error: lake.root: {tmp_path / 'lake'} is not writable; fix its permissions or "
        "choose another folder"
    )
    assert list((tmp_path / "lake").iterdir()) == []
    assert not (tmp_path / "dagster_home").exists()


def test_tier_tells_compacted_files_from_files_retention_deleted(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Compaction replaces files; only retention deletes data: the summary keeps them apart."""
    path = write_config(retention={"metrics": {"hot": "1d", "warm": "3d", "cold": "5d"}})
    config = load_config(path)
    ingest_metrics_hour(Lake(config), metric_source(config), HOUR)

    assert cli.main(["--config", str(path), "tier", "--now", "2026-11-20"]) == 0
    compacted = capsys.readouterr().out.strip()
    assert cli.main(["--config", str(path), "tier", "--now", "2026-11-30"]) == 0
    expired = capsys.readouterr().out.strip()

    assert compacted.startswith("tiering as of 2026-11-20 00:00Z: ")
    assert compacted.endswith("; 0 files deleted by retention")
    assert " 0 moves" not in compacted
    assert expired.startswith("tiering as of 2026-11-30 00:00Z: ")
    assert not expired.endswith("; 0 files deleted by retention")
    assert _samples(path) == 0


@pytest.mark.parametrize(
    "argv",
    [
        ["report", "--from", "0001-01-01T00:00:00+01:00"],
        ["query", "--to", "9999-12-31T23:59:59-01:00", "SELECT 1"],
    ],
)
def test_a_time_outside_utcs_years_is_one_line(
    lake_with_an_hour: Path, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Valid ISO 8601 that UTC cannot hold: said so, not called unreadable, no traceback."""
    line = _refusal(capsys, "--config", str(lake_with_an_hour), *argv)
    assert "falls outside the years 1-9999 in UTC; write a time within them" in line


@pytest.mark.parametrize(
    ("start", "message"),
    [
        ("0001-01-01T00:00:00+01:00", "falls outside the years 1-9999 in UTC"),
        ("2027-02-29T00:00:00Z", "a date or time that does not exist (day is out of range"),
    ],
)
def test_a_config_time_that_cannot_be_is_one_line(
    tmp_path: Path, start: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Unquoted, YAML itself builds the date; either way the config is refused in one line."""
    path = tmp_path / "obs.yaml"
    path.write_text(f"ingest:\n  start: {start}\n")
    line = _refusal(capsys, "--config", str(path), "check-config")
    assert message in line


def test_the_default_report_period_starts_no_earlier_than_ingest_start(
    write_config: Callable[..., Path],
) -> None:
    """A lake younger than one period: its default period is the lake's life, not days before
    it (which `--from` refuses), so the scorecard's label and daily shares hold no phantom days."""
    path = write_config(ingest={"start": "2026-11-18T10:00:00Z"})
    config = load_config(path)
    ingest_metrics_hour(Lake(config), metric_source(config), HOUR)
    derive(config, HOUR)
    build_catalog(config)
    periods = []
    for end in (None, utc("2026-11-18T15:00:00Z")):  # the default end; the daily asset's end
        con = report_connection(config, None, end)
        periods.append(con.execute("SELECT period_start, period_end FROM report_period").fetchone())
        con.close()

    for period in periods:
        assert [f"{t:%Y-%m-%d %H:%M}" for t in period] == ["2026-11-18 10:00", "2026-11-18 15:00"]


@pytest.mark.parametrize(
    ("argv", "times"),
    [
        (["report"], "--from 2026-11-19 00:00Z is not before --to 2026-11-18 00:00Z"),
        (["query", "SELECT 1"], "--from 2026-11-19 is not before --to 2026-11-18"),
    ],
)
def test_a_reversed_window_says_how_to_fix_it_in_report_and_query_alike(
    lake_with_an_hour: Path, argv: list[str], times: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """One check for both: each shows the times (the report to the minute, the query as
    typed) and the same way out."""
    command, rest = argv[0], argv[1:]
    line = _refusal(
        capsys,
        "--config",
        str(lake_with_an_hour),
        command,
        "--from",
        "2026-11-19",
        "--to",
        "2026-11-18",
        *rest,
    )
    assert line == f"obs: error: {times}; swap them or widen the window"
