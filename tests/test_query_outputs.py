"""Where `obs query` and `obs report` write, and the catalog they open: a FIFO or device named by
--output is written in place (never replaced by a regular file), a folder or a path under a file
is one line, the catalog and tables are never overwritten, a file that is not a DuckDB database
is never replaced by a catalog build, and a catalog that cannot be opened is one line."""

import json
import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
import yaml

from obs_pipelines.config import load_config
from obs_pipelines.errors import LakeError
from obs_pipelines.lake.catalog import build_catalog
from obs_pipelines.reporting import query
from obs_pipelines.windows import TimeWindow, utc
from tests.conftest import one_hour_lake

pytestmark = pytest.mark.integration  # runs obs in a subprocess: seconds per test

REPO = Path(__file__).resolve().parent.parent
HOUR = TimeWindow(utc("2026-11-18T14:00:00Z"), utc("2026-11-18T15:00:00Z"))


def obs(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "obs_pipelines.cli", "--config", str(config), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("obs: error: "), done.stderr
    return done.stderr.strip()


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local lake with one hour of simulated metrics and its catalog, shared by the tests
    (none may change it); returns the config path."""
    return one_hour_lake(tmp_path_factory.mktemp("outputs"), HOUR)


def with_catalog(lake: Path, folder: Path, catalog: Path) -> Path:
    """A config for ``lake``'s lake whose catalog is ``catalog``."""
    body = yaml.safe_load(lake.read_text())
    body["lake"]["catalog"] = str(catalog)
    path = folder / "other.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def catalog_of(lake: Path) -> Path:
    return Path(load_config(lake).catalog_path)


def test_a_fifo_named_by_output_stays_a_fifo_and_its_reader_gets_the_result(
    lake: Path, tmp_path: Path
) -> None:
    fifo = tmp_path / "results"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    try:
        done = obs(lake, "query", "SELECT 42 AS answer", "--format", "csv", "-o", str(fifo))
        received, _ = reader.communicate(timeout=20)
    finally:
        reader.kill()

    assert done.returncode == 0, done.stderr
    assert received == b'"answer"\n42\n'
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert sorted(tmp_path.iterdir()) == [fifo]  # nothing staged beside it either


def test_only_a_regular_file_or_nothing_is_staged_and_renamed_over(tmp_path: Path) -> None:
    """A character device (/dev/null, seen through a link of ours: only its status is read)
    and a FIFO are written in place; renamed over, they would become regular files."""
    regular, fifo, device = tmp_path / "regular.csv", tmp_path / "fifo", tmp_path / "null"
    regular.write_text("old\n")
    os.mkfifo(fifo)
    device.symlink_to(os.devnull)
    assert stat.S_ISCHR(device.stat().st_mode)

    assert query._replaceable(regular) and query._replaceable(tmp_path / "absent.csv")
    assert not query._replaceable(fifo)
    assert not query._replaceable(device)


def test_output_to_dev_stdout_reaches_the_pipe(lake: Path) -> None:
    done = subprocess.run(
        f"{sys.executable} -m obs_pipelines.cli --config {shlex.quote(str(lake))} query 'SELECT 1 AS a' "
        "--format csv -o /dev/stdout | cat",
        shell=True,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout == '"a"\n1\n'


@pytest.mark.parametrize(
    ("command", "example"),
    [(("query", "SELECT 1 AS x"), "result.csv"), (("report",), "reliability.html")],
)
def test_output_naming_a_folder_or_a_path_under_a_file_is_one_line(
    lake: Path, tmp_path: Path, command: tuple[str, ...], example: str
) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "kept.txt").write_text("kept\n")
    notes = tmp_path / "notes.txt"
    notes.write_text("notes\n")

    into_folder = obs(lake, *command, "-o", str(folder))
    under_file = obs(lake, *command, "-o", str(notes / "x.html"))

    assert one_error_line(into_folder) == (
        f"obs: error: --output {folder} is a folder; name a file in it, e.g. {folder / example}"
    )
    assert one_error_line(under_file) == (
        f"obs: error: --output {notes}/x.html: {notes} is a file, not a folder; "
        "write to a path outside it"
    )
    assert into_folder.stdout == under_file.stdout == ""  # no scorecard above the error
    assert [p.name for p in folder.iterdir()] == ["kept.txt"]
    assert notes.read_text() == "notes\n"


@pytest.mark.parametrize(
    ("command", "suffix"), [(("query", "SELECT 1 AS x"), ".csv"), (("report",), ".html")]
)
def test_output_with_a_file_name_too_long_is_one_line(
    lake: Path, tmp_path: Path, command: tuple[str, ...], suffix: str
) -> None:
    too_long = tmp_path / ("r" * 300 + suffix)

    done = obs(lake, *command, "-o", str(too_long))

    assert one_error_line(done) == (
        f"obs: error: --output {too_long}: File name too long; write to another path"
    )
    assert done.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_output_with_a_long_but_valid_file_name_is_written(lake: Path, tmp_path: Path) -> None:
    """A name of 250 characters is one the system takes; the result is staged beside it under
    a shorter one."""
    long_name = tmp_path / ("r" * 246 + ".csv")

    done = obs(lake, "query", "SELECT 1 AS x", "--format", "csv", "-o", str(long_name))

    assert done.returncode == 0, done.stderr
    assert long_name.read_text() == '"x"\n1\n'
    assert list(tmp_path.iterdir()) == [long_name]


@pytest.mark.parametrize(
    ("command", "example"),
    [(("query", "SELECT 1 AS x"), "result.csv"), (("report",), "reliability.html")],
)
def test_an_empty_output_is_one_line(lake: Path, command: tuple[str, ...], example: str) -> None:
    done = obs(lake, *command, "-o", "")

    assert one_error_line(done) == (
        f"obs: error: --output is empty; name the file to write, e.g. --output {example}"
    )
    assert done.stdout == ""


def test_report_never_writes_over_the_catalog_or_into_a_table(lake: Path) -> None:
    catalog = catalog_of(lake)
    before = catalog.read_bytes()
    table = Path(load_config(lake).lake_root) / "delta" / "metric_samples"
    log = sorted((table / "_delta_log").iterdir())

    over_catalog = obs(lake, "report", "-o", str(catalog))
    into_table = obs(lake, "report", "-o", str(table / "report.html"))

    assert "would write into the lake or its catalog" in one_error_line(over_catalog)
    assert "would write into the lake or its catalog" in one_error_line(into_table)
    assert catalog.read_bytes() == before
    assert not (table / "report.html").exists()
    assert sorted((table / "_delta_log").iterdir()) == log


def test_a_catalog_build_never_replaces_a_file_that_is_not_a_duckdb_database(
    lake: Path, tmp_path: Path
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("notes\n")
    config = with_catalog(lake, tmp_path, victim)

    with pytest.raises(LakeError, match="is not a DuckDB database"):
        build_catalog(load_config(config))
    by_command = obs(config, "catalog")
    by_report = obs(config, "report", "-o", str(tmp_path / "report.html"))

    assert one_error_line(by_command) == (
        f"obs: error: lake.catalog {victim} is not a DuckDB database, and obs will not replace "
        "it; move it away or point lake.catalog at another file"
    )
    assert one_error_line(by_report) == one_error_line(by_command)
    assert victim.read_text() == "notes\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.yaml", "victim.txt"]

    victim.write_bytes(b"")  # an empty file holds nothing to lose: built as if absent
    built = obs(config, "catalog")
    assert built.returncode == 0, built.stderr
    assert obs(config, "query", "SELECT 1 AS x", "--format", "csv").stdout == '"x"\n1\n'


def test_a_catalog_that_is_not_a_duckdb_database_is_one_line_in_query(
    lake: Path, tmp_path: Path
) -> None:
    notes = tmp_path / "obs.duckdb"
    notes.write_text("not a database\n")

    done = obs(with_catalog(lake, tmp_path, notes), "query", "SELECT 1")

    assert one_error_line(done) == (
        f"obs: error: {notes} is not a DuckDB catalog; move it away and run `obs catalog`"
    )
    assert notes.read_text() == "not a database\n"


def test_a_catalog_another_process_holds_for_writing_is_one_line(
    lake: Path, tmp_path: Path
) -> None:
    catalog = tmp_path / "obs.duckdb"
    config = with_catalog(lake, tmp_path, catalog)
    build_catalog(load_config(config))

    with duckdb.connect(str(catalog)):  # a writer, as a running build or duckdb session is
        done = obs(config, "query", "SELECT 1")

    assert one_error_line(done) == (
        f"obs: error: another process (PID {os.getpid()}) holds the catalog {catalog} open "
        "for writing (a running obs, Dagster run or duckdb session?); retry when it ends"
    )


def test_infinities_and_nan_survive_json_as_the_strings_json_tools_use(lake: Path) -> None:
    sql = (
        "SELECT 'inf'::DOUBLE AS up, '-inf'::DOUBLE AS down, 'nan'::DOUBLE AS nan, "
        "1.5::DOUBLE AS finite, NULL::DOUBLE AS missing, ['nan'::DOUBLE, 2] AS list, "
        "{'a': 'inf'::FLOAT} AS struct, MAP {'k': '-inf'::DOUBLE} AS map"
    )

    as_json = obs(lake, "query", sql, "--format", "json")
    as_csv = obs(lake, "query", sql, "--format", "csv")

    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == [
        {
            "up": "Infinity",
            "down": "-Infinity",
            "nan": "NaN",
            "finite": 1.5,
            "missing": None,
            "list": ["NaN", 2.0],
            "struct": {"a": "Infinity"},
            "map": {"k": "-Infinity"},
        }
    ]
    assert as_csv.stdout.splitlines()[1] == (
        'inf,-inf,nan,1.5,,"[""NaN"",2.0]","{""a"":""Infinity""}","{""k"":""-Infinity""}"'
    )


def test_a_nested_date_outside_pythons_years_is_one_line_and_24_00_is_written(
    lake: Path,
) -> None:
    """DuckDB's infinity (or year 10000) in a list used to end in an OverflowError traceback,
    and TIME '24:00:00' in one was written as 00:00:00, the start of the day."""
    infinite = obs(lake, "query", "SELECT [DATE 'infinity'] AS d", "--format", "csv")
    late = obs(lake, "query", "SELECT {'t': TIMESTAMP '10000-01-01'} AS s", "--format", "json")
    day_end = obs(
        lake, "query", "SELECT [TIME '24:00:00', TIME '00:00:00'] AS t", "--format", "csv"
    )

    expected = (
        "obs: error: cannot write the result as {}: a date or timestamp lies outside the years "
        "1-9999 (infinity?); cast that column to another type (e.g. col::VARCHAR)"
    )
    assert one_error_line(infinite) == expected.format("csv")
    assert one_error_line(late) == expected.format("json")
    assert infinite.stdout == ""  # nothing of the batch that failed
    assert day_end.returncode == 0, day_end.stderr
    assert day_end.stdout == '"t"\n"[""24:00:00"",""00:00:00""]"\n'


def test_csv_and_json_of_every_kind_of_value_keep_their_bytes(lake: Path) -> None:
    """The texts lists, structs and maps are written as (built over whole columns) are those
    orjson wrote for each value: exponents, escapes, nulls, times, intervals, decimals."""
    sql = (
        "SELECT MAP {'k\"1': 'a,b\"c' || chr(10) || chr(1) || '\\é'} AS m, "
        "[1e-5, 1.5e-7, 1e16, 1e15, 0.0, 0.1::FLOAT, NULL] AS f, "
        "{'ts': TIMESTAMP '2026-11-18 14:00:00.25', 'd': DATE '0001-01-01', 'n': NULL, "
        "'z': TIMESTAMPTZ '2026-11-18 14:00:00+00', 't': TIME '01:02:03'} AS s, "
        "[INTERVAL 90 MINUTE, INTERVAL '1 month 2 days -1.5 seconds', INTERVAL 0 DAY] AS i, "
        "INTERVAL '3 days' AS top, [1.50, -0.05]::DECIMAL(9,2)[] AS dec, "
        "MAP {2.5::DOUBLE: true} AS fk, NULL::INT[] AS missing, 'x\"y' AS plain"
    )

    as_csv = obs(lake, "query", sql, "--format", "csv")
    as_json = obs(lake, "query", sql, "--format", "json")

    assert as_csv.returncode == 0, as_csv.stderr
    assert as_csv.stdout == (
        '"m","f","s","i","top","dec","fk","missing","plain"\n'
        '"{""k\\""1"":""a,b\\""c\\n\\u0001\\\\é""}",'
        '"[0.00001,1.5e-7,1e+16,1000000000000000.0,0.0,0.10000000149011612,null]",'
        '"{""ts"":""2026-11-18T14:00:00.250000"",""d"":""0001-01-01"",""n"":null,'
        '""z"":""2026-11-18T14:00:00+00:00"",""t"":""01:02:03""}",'
        '"[""PT5400S"",""P1M2DT-1.5S"",""PT0S""]","P3D","[1.50,-0.05]","{""2.5"":true}",,'
        '"x""y"\n'
    )
    assert as_json.returncode == 0, as_json.stderr
    assert as_json.stdout == (
        '[\n{"m":{"k\\"1":"a,b\\"c\\n\\u0001\\\\é"},'
        '"f":[0.00001,1.5e-7,1e+16,1000000000000000.0,0.0,0.10000000149011612,null],'
        '"s":{"ts":"2026-11-18T14:00:00.250000","d":"0001-01-01","n":null,'
        '"z":"2026-11-18T14:00:00+00:00","t":"01:02:03"},'
        '"i":["PT5400S","P1M2DT-1.5S","PT0S"],"top":"P3D","dec":[1.50,-0.05],'
        '"fk":{"2.5":true},"missing":null,"plain":"x\\"y"}\n]\n'
    )
