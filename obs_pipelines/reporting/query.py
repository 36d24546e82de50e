"""``obs query``: an analyst's SQL over the catalog, in a session that reads the lake and no more.

Two walls stand between the SQL and the lake or the machine:

* DuckDB's own. Once the lake is attached (httpfs loaded, S3 secret made), the session may open
  only the lake's tier roots (``allowed_directories``: local folders or ``s3://`` prefixes)
  and no other file or URL, loads and installs no extension, and its configuration is
  locked so SQL cannot undo any of it. The s3_* settings httpfs copied from AWS_* variables
  are blanked: the lake's secret holds the credentials (and shows them redacted).
* Ours. DuckDB lets a session write wherever it may read, and some functions go past its
  walls, so before anything runs every statement is inspected (``duckdb.extract_statements``
  and the tokenizer) and only reads pass: SELECT (and DESCRIBE, SHOW, SUMMARIZE, PIVOT, PRAGMAs
  that read), EXPLAIN of those, and ``SET VARIABLE`` / ``RESET VARIABLE``. In each, every
  function and table as DuckDB parses them (``json_serialize_sql``: whatever the case, quotes,
  schema or comments, in subqueries, CTEs and lambdas alike) must be one obs query runs: a table
  function from a short list that reads no file, setting or log (the lake is read through the
  catalog's views: ``delta_scan`` would read Delta tables anywhere), DuckDB's built-in functions
  and the catalog's macros but those that write files, show settings or run SQL from a string,
  and no file named as a table. ``COPY ... TO`` passes only with ``--allow-write-to DIR``, into
  DIR (a folder outside the lake that DuckDB is then also allowed to open), with options that
  cannot name files elsewhere.

Statements run once each, in order. The last one's result is written here, not by DuckDB's
COPY: streamed from Arrow batches to standard output (never reopened, so ``>>`` appends) or to
``--output``: a regular file is replaced only once the result is whole, and anything else that
exists there (a FIFO, a device, ``/dev/stdout``) is written in place, never replaced. A reader
that leaves early (``| head``) ends the command quietly with exit status 141, as it would any
Unix filter. JSON has no infinity or NaN: they are written as the strings ``"Infinity"``,
``"-Infinity"`` and ``"NaN"`` (as protobuf's JSON mapping and many JSON tools do), not as null.
"""

import base64
import contextlib
import functools
import io
import math
import os
import re
import stat
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import duckdb
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from obs_pipelines.config import ObsConfig
from obs_pipelines.errors import ObsError
from obs_pipelines.lake import Lake
from obs_pipelines.lake.catalog import connect
from obs_pipelines.lake.snapshot import datasets_reached, pin_datasets
from obs_pipelines.lake.storage import LocalStorage
from obs_pipelines.reporting.reports import OVERLAP_SQL, POISSON_TAIL_SQL, report_queries
from obs_pipelines.sql_literal import sql_literal

BATCH_ROWS = 100_000
BROKEN_PIPE_EXIT = 141  # 128 + SIGPIPE: what any Unix filter reports when its reader went away
TABLE_WIDTH = 200
STAGED_NAME_CHARS = 40  # of the output's name in its staged file's name

_LOCKDOWN = (
    "SET enable_external_access = false",
    "SET python_enable_replacements = false",  # FROM name reads no Python variable
    "SET autoinstall_known_extensions = false",
    "SET autoload_known_extensions = false",
    "SET allow_community_extensions = false",
    "SET lock_configuration = true",
)
# Functions refused wherever they are called, whatever the spelling (case, quotes, schema,
# comments): they write files or change the session despite the locked configuration, show its
# settings (credentials among them), or run SQL built from a string (which could name any of them).
_REFUSED_FUNCTIONS = {
    "enable_logging": "it writes a log wherever it is told",
    "disable_logging": "it changes the session's logging",
    "truncate_duckdb_logs": "it changes the session's logging",
    "write_log": "it writes to the session's log",
    "enable_profiling": "it writes profiles wherever it is told",
    "disable_profiling": "it changes the session's profiling",
    "checkpoint": "it writes the database file",
    "force_checkpoint": "it writes the database file",
    "write_blob": "it writes files",
    "current_setting": "it shows the session's settings, credentials among them",
    "duckdb_settings": "it shows the session's settings, credentials among them",
    "query": "it runs SQL from a string, which obs query cannot inspect",
    "query_table": "it reads tables named in a string, which obs query cannot inspect",
    "json_execute_serialized_sql": "it runs SQL from a string, which obs query cannot inspect",
    "json_serialize_plan": "it plans SQL from a string (opening what it names) unchecked",
}
# The only table functions (FROM f(...)) obs query runs: they make rows or describe the catalog.
# Every other one reads files (read_csv, glob, delta_scan, which also ignores the session's
# allowed folders), the session's settings or logs, or SQL of its own: the lake is read through
# the catalog's views.
_TABLE_FUNCTIONS = frozenset(
    {
        "range", "generate_series", "unnest", "repeat", "repeat_row", "json_each", "json_tree",
        "duckdb_columns", "duckdb_constraints", "duckdb_databases", "duckdb_dependencies",
        "duckdb_extensions", "duckdb_functions", "duckdb_indexes", "duckdb_keywords",
        "duckdb_optimizers", "duckdb_schemas", "duckdb_sequences", "duckdb_tables",
        "duckdb_types", "duckdb_variables", "duckdb_views", "pragma_collations",
        "pragma_database_size", "pragma_metadata_info", "pragma_platform", "pragma_show",
        "pragma_storage_info", "pragma_table_info", "pragma_user_agent", "pragma_version",
        "icu_calendar_names", "pg_timezone_names", "test_all_types",
    }
)  # fmt: skip
# DuckDB's own views over refused table functions.
_REFUSED_VIEWS = {
    "pg_settings": "it shows the session's settings, credentials among them",
    "duckdb_logs": "it shows the session's logs",
}
# What may follow a PIVOT's ON column (and end it).
_PIVOT_COLUMN_ENDS = frozenset(
    {"using", "group", "order", "limit", "offset", "union", "except", "intersect", ",", ";", ")"}
)
_VIEWS_HINT = "query the catalog's views instead (SHOW TABLES lists them)"
# COPY options that write nowhere but the target (a file, or a folder of partitions).
_COPY_OPTIONS = frozenset(
    {
        "format", "header", "delimiter", "delim", "sep", "quote", "escape", "null", "nullstr",
        "force_quote", "dateformat", "date_format", "timestampformat", "timestamp_format",
        "prefix", "suffix", "array", "compression", "codec", "compression_level",
        "row_group_size", "row_group_size_bytes", "row_groups_per_file", "parquet_version",
        "field_ids", "kv_metadata", "dictionary_size_limit", "string_dictionary_page_size_limit",
        "partition_by", "write_partition_columns", "per_thread_output", "file_size_bytes",
        "overwrite", "overwrite_or_ignore", "append", "preserve_order",
    }
)  # fmt: skip
_WRITE_RESULT = "write the result with --format csv|json|parquet --output FILE"
_HINTS = {
    duckdb.StatementType.COPY: (
        f"{_WRITE_RESULT}, or let COPY ... TO write into a folder with --allow-write-to DIR"
    ),
    duckdb.StatementType.EXPORT: _WRITE_RESULT,
    duckdb.StatementType.ATTACH: "open other databases with duckdb itself",
    duckdb.StatementType.DETACH: "open other databases with duckdb itself",
    duckdb.StatementType.LOAD: "use duckdb itself for other extensions",
    duckdb.StatementType.SET: (
        "keep values of your own with SET VARIABLE name = value and getvariable('name')"
    ),
    duckdb.StatementType.PRAGMA: "PRAGMAs that read (table_info, show_tables, version) work",
    duckdb.StatementType.CALL: "use SELECT * FROM function(...) instead",
    duckdb.StatementType.TRANSACTION: "leave it out: each obs query runs alone, read-only",
    duckdb.StatementType.PREPARE: "use SET VARIABLE name = value and getvariable('name')",
    duckdb.StatementType.EXECUTE: "use SET VARIABLE name = value and getvariable('name')",
}
_READ_ONLY_HINT = (
    "use a CTE (WITH name AS (...)) or SET VARIABLE instead of tables, and duckdb itself "
    "to change a database"
)
# str(Decimal) writes a value with more decimal places in exponent notation (0E-7, 1E-7).
_PLAIN_DECIMAL_SCALE = 6
_UTC_ZONES = frozenset({"UTC", "Etc/UTC", "+00:00"})
_FIRST_PRINTABLE = 0x20  # JSON strings escape the characters below it
_NAMED_ESCAPES = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
_ESCAPES = (
    ("\\", "\\\\"),  # first: the escapes below add backslashes
    ('"', '\\"'),
    *((chr(code), _NAMED_ESCAPES.get(chr(code), f"\\u{code:04x}")) for code in range(32)),
)
_PYTHON_YEARS = (datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59, 999999))
_DAY_MICROSECONDS = 86_400_000_000
_INTERVAL = np.dtype([("months", "<i4"), ("days", "<i4"), ("nanos", "<i8")])
_WORD = re.compile(r'"(?:[^"]|"")*"|[^\s"\'(),;.\[\]{}:]+')
_STRING = re.compile(r"'(?:[^']|'')*'")


class _Sink(Protocol):
    def write(self, data: bytes, /) -> int: ...


@dataclass(frozen=True)
class Sandbox:
    """What an analyst's session may open, and what nothing in ``obs query`` may write."""

    readable: tuple[str, ...]  # the lake's root, local or s3://, ending in /
    protected: tuple[Path, ...]  # a local lake root and the catalog file
    write_dir: Path | None = None  # where COPY ... TO may write (--allow-write-to)


def sandbox(config: ObsConfig, allow_write_to: str | None = None) -> Sandbox:
    """The sandbox for ``config``'s lake, refusing a ``--allow-write-to`` folder that is not a
    folder or overlaps the lake or holds the catalog."""
    lake = Lake(config)
    readable = (_folder(lake.storage.url("")),)
    roots = [Path(lake.storage.root)] if isinstance(lake.storage, LocalStorage) else []
    protected = (*roots, Path(config.catalog_path).resolve())
    if allow_write_to is None:
        return Sandbox(readable, protected)
    folder = Path(allow_write_to).expanduser().resolve()
    if not folder.is_dir():
        raise ObsError(
            f"--allow-write-to {allow_write_to} is not a folder; create it first, outside the lake"
        )
    for kept in protected:
        if kept.is_relative_to(folder) or folder.is_relative_to(kept):
            raise ObsError(
                f"--allow-write-to {folder} overlaps the lake at {kept}; "
                "pick a folder outside the lake that does not contain it or the catalog"
            )
    return Sandbox(readable, protected, folder)


def output_file(box: Sandbox, output: str) -> Path:
    """``--output`` as a path, refused if it is remote or would land in the lake."""
    if "://" in output:
        raise ObsError(
            f"--output {output}: obs query writes local files only; write a local file and "
            "upload it yourself"
        )
    return output_target(output, box.protected, "result.csv", "write the result outside the lake")


def output_target(output: str | Path, protected: Iterable[Path], example: str, hint: str) -> Path:
    """``--output`` as an absolute path, refused in one line if it is empty, resolves into a
    ``protected`` path (``hint`` says where to write instead), is a folder, lies under a file,
    or cannot be looked at (a name too long, a folder not searchable); ``example`` names a file
    to suggest inside a folder.

    The path keeps its symlinks (``/dev/stdout`` stays itself: resolved, it names
    ``/proc/<pid>/fd/pipe:[...]``, which cannot be opened); the checks follow them."""
    if output == "":  # Path("") would be the current folder
        raise ObsError(f"--output is empty; name the file to write, e.g. --output {example}")
    path = Path(output).expanduser().absolute()
    try:
        _check_target(path, output, protected, example, hint)
    except OSError as exc:
        raise ObsError(f"--output {output}: {exc.strerror}; write to another path") from None
    return path


def _check_target(
    path: Path, output: str | Path, protected: Iterable[Path], example: str, hint: str
) -> None:
    """The checks of :func:`output_target`, which turns the OSError of a path the system will
    not look at into its one line."""
    resolved = path.resolve()
    for kept in protected:
        if resolved.is_relative_to(kept):
            raise ObsError(
                f"--output {output} would write into the lake or its catalog ({kept}); {hint}"
            )
    if path.is_dir():
        raise ObsError(f"--output {output} is a folder; name a file in it, e.g. {path / example}")
    above = next((p for p in resolved.parents if p.exists()), None)
    if above is not None and not above.is_dir():
        raise ObsError(
            f"--output {output}: {above} is a file, not a folder; write to a path outside it"
        )


def read_statements(sql: str, write_dir: Path | None = None) -> list[duckdb.Statement]:
    """The statements of ``sql`` in order, once each is known to only read (or to COPY into
    ``write_dir``); the first that would do more is refused with an ObsError naming it."""
    statements = []
    for text in _split(sql):
        statements += _checked(text, write_dir)
    if not statements:
        raise ObsError("no SQL to run; pass a statement, e.g. obs query 'SELECT 42'")
    return statements


def connect_sandboxed(config: ObsConfig, box: Sandbox, sql: str = "") -> duckdb.DuckDBPyConnection:
    """The catalog, read-only, with the lake attached and then everything else shut. The
    datasets ``sql`` reaches are read at one version each (:mod:`obs_pipelines.lake.snapshot`)."""
    con = connect(config)
    try:
        _blank_s3_credentials(con, config)
        pin_datasets(con, config, datasets_reached(con, sql))
        folders = [*box.readable, *([_folder(str(box.write_dir))] if box.write_dir else [])]
        con.execute(f"SET allowed_directories = [{', '.join(sql_literal(f) for f in folders)}]")
        for statement in _LOCKDOWN:
            con.execute(statement)
    except BaseException:
        con.close()
        raise
    return con


def _blank_s3_credentials(con: duckdb.DuckDBPyConnection, config: ObsConfig) -> None:
    """Blank the s3_* settings that httpfs copied from the AWS_* environment and the lake's S3
    secret now holds: SQL that read settings would show them, where the secret is redacted."""
    if not config.lake_root.startswith("s3://"):
        return
    s3 = config.lake.s3
    for setting, variable in (
        ("s3_access_key_id", s3.access_key_id_env),
        ("s3_secret_access_key", s3.secret_access_key_env),
        ("s3_session_token", s3.session_token_env),
    ):
        if variable:  # in the secret (storage.S3Storage.duckdb_secret_sql)
            con.execute(f"SET SESSION {setting} = ''")


def set_report_window(
    con: duckdb.DuckDBPyConnection, start: datetime | None, end: datetime | None, sql: str = ""
) -> None:
    """Set ``report_start``/``report_end``, which the report views (``report_period``) read,
    as ``obs report --from/--to`` does; a bound not given keeps its default.

    When ``sql`` reads a report and no end is given, the default end (the newest data) is found
    once and pinned, as ``report_connection`` does: each report reads ``report_period`` many
    times, and each read would scan the derived datasets. ``obs query`` passes the end
    ``reports.newest_data_end`` finds in the tables' logs instead, which reads no data file. A
    query of datasets alone does not pay for either."""
    for name, moment in (("report_start", start), ("report_end", end)):
        if moment is not None:
            naive = moment.astimezone(UTC).replace(tzinfo=None)  # the lake's timestamps are UTC
            con.execute(f"SET VARIABLE {name} = ?::TIMESTAMP", [naive])
    if end is None and reads_reports(sql):
        con.execute("SET VARIABLE report_end = (SELECT period_end FROM report_period)")


def reads_reports(sql: str) -> bool:
    """Whether ``sql`` names a report view (or the report period they all read)."""
    reports = {*report_queries(), "report_period", "report_periods"}
    return any(word.lower() in reports for word in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", sql))


def run(
    con: duckdb.DuckDBPyConnection,
    statements: list[duckdb.Statement],
    fmt: str,
    output: Path | None = None,
    max_rows: int = 40,
) -> None:
    """Execute ``statements`` once each, in order, and write the last one's result (if it has
    one) to ``output`` or standard output. A broken pipe on stdout propagates."""
    if fmt == "parquet" and output is None:
        raise ObsError("--format parquet needs --output FILE (Parquet is not for a terminal)")
    last = statements[-1]
    try:
        for statement in statements[:-1]:
            con.execute(statement)
        result = con.sql(last)
        if result is None:  # e.g. a SET VARIABLE: nothing to show
            return
        if fmt == "table":
            text = _table(result, max_rows, last.type == duckdb.StatementType.EXPLAIN)
            with output_sink(output) as sink:
                sink.write(text.encode())
            return
        reader = result.to_arrow_reader(BATCH_ROWS)
    except duckdb.Error as exc:
        raise _failed(exc) from None
    try:
        with output_sink(output) as sink:
            _WRITERS[fmt](_batches(reader), reader.schema, sink)
    except (pa.ArrowException, orjson.JSONEncodeError) as exc:
        raise ObsError(
            f"cannot write the result as {fmt}: {str(exc).strip().splitlines()[0]}; "
            "cast that column to another type (e.g. col::VARCHAR)"
        ) from None


def silence_stdout() -> None:
    """After the reader of stdout went away (``obs query ... | head``): point stdout at
    /dev/null, so Python's last flush has nothing to complain about."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


# Inspection ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    start: int
    kind: str  # word (identifier or keyword), string, numeric_const or operator
    text: str  # a word unquoted and lower-cased, a string as written, an operator's first char


def _tokens(sql: str) -> list[_Token]:
    raw = duckdb.tokenize(sql)
    found = []
    ends = [start for start, _ in raw[1:]] + [len(sql)]
    for (start, kind), end in zip(raw, ends, strict=False):
        piece = sql[start:end]
        if kind.name in ("identifier", "keyword"):
            match = _WORD.match(piece)
            word = match.group() if match else piece[:1]
            if word.startswith('"'):
                word = word[1:-1].replace('""', '"')
            found.append(_Token(start, "word", word.lower()))
        elif kind.name == "string_const":
            match = _STRING.match(piece)
            found.append(_Token(start, "string", match.group() if match else ""))
        else:
            found.append(_Token(start, kind.name, piece[:1]))
    return found


def _split(sql: str) -> list[str]:
    """The text of each statement, cut at the semicolons the tokenizer sees (not in strings or
    comments); blank pieces dropped."""
    pieces, begin = [], 0
    cuts = [t.start for t in _tokens(sql) if t.kind == "operator" and t.text == ";"]
    for cut in [*cuts, len(sql)]:
        piece = sql[begin:cut]
        begin = cut + 1
        if _tokens(piece):
            pieces.append(piece)
    return pieces


def _checked(text: str, write_dir: Path | None) -> list[duckdb.Statement]:
    """``text``'s statements (one, or a PIVOT with the enum types it makes), or an ObsError."""
    tokens = _tokens(text)
    try:
        statements = duckdb.extract_statements(text)
    except duckdb.Error as exc:
        raise _failed(exc) from None
    if not statements:
        return []
    *made, main = statements
    pivot_types = any(t.text in ("pivot", "unpivot") for t in tokens if t.kind == "word") and all(
        s.type == duckdb.StatementType.CREATE and not s.query.strip() for s in made
    )
    if made and not pivot_types:
        raise ObsError("cannot tell the statements of this SQL apart; end each one with ';'")
    kind = main.type
    if kind == duckdb.StatementType.SELECT:
        _refuse_calls(main.query if main.query.strip() else text)  # a PRAGMA: the SELECT it runs
        return statements
    if kind == duckdb.StatementType.EXPLAIN:
        _checked(_explained(text, tokens), write_dir)
        return statements
    if kind == duckdb.StatementType.SET and _is_variable(tokens):
        _refuse_calls(f"SELECT {_variable_value(text, tokens)}")
        return statements
    if kind == duckdb.StatementType.COPY and write_dir is not None:
        _check_copy(text, tokens, write_dir)
        return statements
    raise ObsError(_refusal(kind, tokens))


def _refuse_calls(sql: str) -> None:
    """Refuse ``sql`` if it calls a function or reads a table obs query does not run, however
    it is spelled (case, quotes, schema, comments) and wherever (subqueries, CTEs, lambdas,
    macros' arguments): decided on DuckDB's own parse tree of it."""
    tree = _parse_tree(sql)
    if tree["error"]:  # a PIVOT taking its values from the data: several statements to DuckDB
        tree = _parse_tree(_with_pivot_values(sql))
    if tree["error"] and tree.get("error_type") == "parser":
        raise ObsError(f"query failed: Parser Error: {tree['error_message']}")
    if tree["error"]:
        raise ObsError(
            "obs query cannot check this PIVOT; list the values each column pivots on, "
            "e.g. PIVOT metrics ON service IN ('api', 'web') USING count(*)"
        )
    for kind, name in _named(tree["statements"]):
        _refuse_named(kind, name)


def _parse_tree(sql: str) -> dict[str, Any]:
    """DuckDB's parse of ``sql`` (``json_serialize_sql``): its statements, or why there are
    none (a syntax error, or a statement other than a SELECT)."""
    # No bound parameter: DuckDB's Python binding imports pandas (0.25 s) to bind the first one.
    [(serialized,)] = (
        _parser().cursor().execute(f"SELECT json_serialize_sql({sql_literal(sql)})").fetchall()
    )
    return orjson.loads(serialized)


def _with_pivot_values(sql: str) -> str:
    """``sql`` with ``IN (NULL)`` after each PIVOT column named without its values: the same
    calls and tables (text is only added), in a form DuckDB parses as one SELECT, which a PIVOT
    that takes its values from the data is not (it becomes enum types made from the data)."""
    tokens = _tokens(sql)
    depths = [0]
    for token in tokens:
        depths.append(
            depths[-1] + {"(": 1, ")": -1}.get(token.text, 0) * (token.kind == "operator")
        )
    ends = []
    for at, token in enumerate(tokens):
        if token.kind == "word" and token.text in ("pivot", "pivot_wider"):
            ends += _columns_without_values(tokens, depths, at)
    for end in sorted(ends, reverse=True):
        position = tokens[end].start if end < len(tokens) else len(sql)
        sql = f"{sql[:position]}\nIN (NULL) {sql[position:]}"  # \n: ends a -- comment
    return sql


def _columns_without_values(tokens: list[_Token], depths: list[int], pivot: int) -> list[int]:
    """Where (the index of the token after it) each ON column of the PIVOT at ``pivot`` that
    lists no values ends; ``depths`` is each token's parenthesis depth."""
    level, start, valued, found = depths[pivot], None, False, []
    for at in range(pivot + 1, len(tokens) + 1):
        word = tokens[at].text if at < len(tokens) and depths[at] == level else None
        if start is None:
            start = at if word == "on" else None
        elif at == len(tokens) or word in _PIVOT_COLUMN_ENDS:
            if at > start + 1 and not valued:
                found.append(at)
            if word != ",":
                return found
            start, valued = at, False
        elif word == "in":
            valued = True
    return found


def _named(node: Any, kind: str = "function") -> Iterator[tuple[str, str]]:
    """(kind, name) of every function (``function`` or ``table function``) and every table or
    view (``table``) a serialized parse tree names, at any depth."""
    if isinstance(node, list):
        for item in node:
            yield from _named(item)
    elif isinstance(node, dict):
        if "function_name" in node:
            yield kind, node["function_name"]
        if node.get("type") in ("BASE_TABLE", "SHOW_REF") and node.get("table_name"):
            yield "table", node["table_name"]
        table_function = node.get("type") == "TABLE_FUNCTION"
        for key, value in node.items():
            yield from _named(
                value, "table function" if table_function and key == "function" else "function"
            )


def _refuse_named(kind: str, name: str) -> None:
    """Refuse a ``function``, ``table function`` or ``table`` (a table or view) ``name``, as
    DuckDB parsed it, that obs query does not run."""
    key = name.strip('"').replace('""', '"').lower()
    if kind == "table":
        if key in _REFUSED_VIEWS:
            raise ObsError(
                f"{key} is not allowed in obs query: {_REFUSED_VIEWS[key]}; {_VIEWS_HINT}"
            )
        if any(mark in key for mark in "/\\:."):
            raise ObsError(
                f"FROM '{name}' reads a file, and obs query reads the lake only through the "
                f"catalog's views; {_VIEWS_HINT}"
            )
        return
    if key in _REFUSED_FUNCTIONS:
        raise ObsError(
            f"{key}() is not allowed in obs query: {_REFUSED_FUNCTIONS[key]}; "
            "leave it out (or use duckdb itself)"
        )
    if key in _TABLE_FUNCTIONS or (kind == "function" and key in _scalar_functions()):
        return
    if kind == "table function":
        raise ObsError(
            f"{key}() is not allowed in obs query, which reads the lake only through the "
            f"catalog's views (not files, settings or logs); {_VIEWS_HINT}"
        )
    raise ObsError(
        f"{key}() is not allowed in obs query, which runs DuckDB's built-in functions and "
        "the catalog's macros only; check its name"
    )


@functools.cache
def _parser() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that parses SQL for the checks and knows the functions the catalog's
    sessions offer analysts: DuckDB's built-in ones and the catalog's macros. Functions that
    the lake's extensions add (delta's write_blob, say) are not for SQL typed into obs query."""
    con = duckdb.connect()
    for macro in (*POISSON_TAIL_SQL, OVERLAP_SQL):
        con.execute(macro)
    return con


@functools.cache
def _scalar_functions() -> frozenset[str]:
    """The scalar, aggregate and window functions and macros :func:`_parser` knows."""
    rows = (
        _parser()
        .cursor()
        .execute(
            "SELECT DISTINCT lower(function_name) FROM duckdb_functions() "
            "WHERE function_type NOT IN ('table', 'table_macro', 'pragma')"
        )
        .fetchall()
    )
    return frozenset(name for (name,) in rows)


def _is_variable(tokens: list[_Token]) -> bool:
    words = [t.text for t in tokens[:2] if t.kind == "word"]
    return len(words) == 2 and words[0] in ("set", "reset") and words[1] == "variable"


def _variable_value(text: str, tokens: list[_Token]) -> str:
    """The expression a SET VARIABLE assigns (NULL for a RESET VARIABLE, which assigns none)."""
    if tokens[0].text == "reset":
        return "NULL"
    at = next((i for i in range(3, len(tokens)) if tokens[i].text in ("=", "to")), len(tokens))
    if at + 1 >= len(tokens):
        raise ObsError("SET VARIABLE needs a value; write SET VARIABLE name = expression")
    return text[tokens[at + 1].start :]


def _explained(text: str, tokens: list[_Token]) -> str:
    """The statement an EXPLAIN [ANALYZE | (options)] shows (and, with ANALYZE, runs)."""
    at = 1
    if at < len(tokens) and tokens[at].text in ("analyze", "analyse"):
        at += 1
    elif at < len(tokens) and tokens[at].text == "(":
        at = _closing(tokens, at) + 1
    if at >= len(tokens):
        raise ObsError("EXPLAIN of nothing; write EXPLAIN SELECT ...")
    return text[tokens[at].start :]


def _check_copy(text: str, tokens: list[_Token], write_dir: Path) -> None:
    """COPY (query) | name TO 'path' [options], with the query (or the table or view) a read,
    the path in ``write_dir`` and the options ones that keep the files there."""
    at = 1
    if at < len(tokens) and tokens[at].text == "(":
        end = _closing(tokens, at)
        inner = text[tokens[at].start + 1 : tokens[end].start]
        if _checked(inner, None)[-1].type != duckdb.StatementType.SELECT:
            raise ObsError(f"COPY ({inner.strip()[:40]}...) copies no query; COPY a SELECT")
        at = end + 1
    elif at < len(tokens):
        at = next(
            (i for i in range(at, len(tokens)) if tokens[i].text in ("(", "to", "from")),
            len(tokens),
        )
        name_end = tokens[at].start if at < len(tokens) else len(text)
        _refuse_calls(f"SELECT * FROM {text[tokens[1].start : name_end]}")
    while at < len(tokens) and tokens[at].text not in ("to", "from"):
        at = _closing(tokens, at) + 1 if tokens[at].text == "(" else at + 1
    if at >= len(tokens) or tokens[at].text != "to":
        raise ObsError(
            "COPY ... FROM is not allowed in obs query, which only reads the lake; "
            "load files with duckdb itself"
        )
    target = tokens[at + 1] if at + 1 < len(tokens) else None
    if target is None or target.kind != "string" or not target.text:
        raise ObsError("COPY ... TO needs its target as a quoted path, e.g. TO 'out/result.csv'")
    path = target.text[1:-1].replace("''", "'")
    resolved = Path(os.path.expanduser(path)).resolve() if "://" not in path else None
    if resolved is None or not resolved.is_relative_to(write_dir):
        raise ObsError(
            f"COPY ... TO '{path}' is outside {write_dir}, the only folder --allow-write-to "
            f"lets COPY write to; copy into {write_dir}/ or pass another --allow-write-to"
        )
    _check_copy_options(text, tokens[at + 2 :], write_dir)


def _check_copy_options(text: str, tokens: list[_Token], write_dir: Path) -> None:
    """[WITH] (name value, ...), every name one that keeps the files under the target
    (FILENAME_PATTERN or FILE_EXTENSION, say, could point them anywhere), every value an
    expression that calls nothing obs query refuses (DuckDB evaluates them: KV_METADATA)."""
    at = 1 if tokens and tokens[0].text == "with" else 0
    if at == len(tokens):
        return
    if tokens[at].text != "(" or _closing(tokens, at) != len(tokens) - 1:
        raise ObsError("write COPY options in parentheses, e.g. TO 'out/x.csv' (FORMAT csv)")
    for name, value in _options(text, tokens[at:]):
        if name.kind != "word" or name.text not in _COPY_OPTIONS:
            raise ObsError(
                f"COPY option {name.text.upper()} is not allowed in obs query, which lets "
                f"COPY write only under {write_dir}; leave it out"
            )
        if value:
            _refuse_calls(f"SELECT {value}")


def _options(text: str, tokens: list[_Token]) -> Iterator[tuple[_Token, str]]:
    """Each item of a parenthesized option list (``tokens`` from its '(' to its ')'): its
    first token (the option's name) and the text of the rest (its value, '' if none)."""
    depth, first = 0, 1
    for index, token in enumerate(tokens):
        if token.kind != "operator":
            continue
        ends = depth == 1 and token.text in (",", ")")
        depth += {"(": 1, "[": 1, "{": 1, ")": -1, "]": -1, "}": -1}.get(token.text, 0)
        if ends:
            if index > first:
                rest = tokens[first + 1 : index]
                yield tokens[first], text[rest[0].start : token.start] if rest else ""
            first = index + 1


def _closing(tokens: list[_Token], at: int) -> int:
    depth = 0
    for index in range(at, len(tokens)):
        if tokens[index].kind == "operator" and tokens[index].text in ("(", ")"):
            depth += 1 if tokens[index].text == "(" else -1
            if depth == 0:
                return index
    raise ObsError("unbalanced parentheses; close every '(' with ')'")


def _refusal(kind: duckdb.StatementType, tokens: list[_Token]) -> str:
    words = [t.text for t in tokens[:2] if t.kind == "word"]
    what = words[0].upper() if words else kind.name
    if words and words[0] in ("set", "reset", "pragma") and len(words) > 1:
        what += f" {words[1]}"
    elif words and words[0] in ("export", "force") and len(words) > 1:
        what += f" {words[1].upper()}"
    hint = _HINTS.get(kind, _READ_ONLY_HINT)
    return f"{what} is not allowed in obs query, which only reads the lake; {hint}"


def _failed(exc: BaseException) -> ObsError:
    lines = str(exc).strip().splitlines()
    hint = "; raise lake.query_memory_limit" if isinstance(exc, duckdb.OutOfMemoryException) else ""
    return ObsError(f"query failed: {lines[0] if lines else type(exc).__name__}{hint}")


def _folder(path: str) -> str:
    return path.rstrip("/") + "/"


# Writing ---------------------------------------------------------------------------------------


def _table(result: duckdb.DuckDBPyRelation, max_rows: int, explain: bool) -> str:
    if explain:  # the plan as DuckDB drew it, not squeezed into a table cell
        return "".join(f"{row[-1].rstrip()}\n" for row in result.fetchall())
    shown = io.StringIO()
    with contextlib.redirect_stdout(shown):
        result.show(max_rows=max_rows, max_width=TABLE_WIDTH)
    return shown.getvalue()


def _batches(reader: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
    """The result's batches; an error DuckDB meets while producing one is a failed query."""
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except (duckdb.Error, pa.ArrowException, OSError) as exc:
            raise _failed(exc) from None
        yield batch


@contextlib.contextmanager
def output_sink(output: Path | None) -> Iterator[_Sink]:
    """Standard output as it is (a file opened for appending stays so); or for ``output``, a
    staged file that replaces the regular file there (or takes its absent place) once the
    result is whole; or, for anything else that exists there (a FIFO, a device such as
    /dev/null, /dev/stdout), that very thing written in place: renamed over, it would be
    replaced by a regular file and its reader would get nothing."""
    if output is None:
        sys.stdout.flush()
        yield _Stdout()
        sys.stdout.buffer.flush()
        return
    if not _replaceable(output):
        with _opened(output, output) as handle:
            yield handle
        return
    target = output.resolve()  # a symlink to a file keeps pointing at the new file
    # Beside the target, named after it, within the 255 bytes a file name may take.
    staged = target.with_name(f".{target.name[:STAGED_NAME_CHARS]}.{uuid.uuid4().hex}.tmp")
    try:
        with _opened(staged, output) as handle:
            yield handle
        os.replace(staged, target)
    finally:
        staged.unlink(missing_ok=True)


def _replaceable(output: Path) -> bool:
    """Whether ``output`` is a regular file or nothing (after symlinks): only those are staged
    and renamed over. Folders and paths under a file were refused by :func:`output_target`."""
    try:
        mode = output.stat().st_mode
    except FileNotFoundError:
        return True
    except OSError as exc:  # e.g. no permission
        raise ObsError(f"cannot write {output} ({exc.strerror}); write to another path") from None
    return stat.S_ISREG(mode)


@contextlib.contextmanager
def _opened(path: Path, output: Path) -> Iterator[io.BufferedWriter]:
    try:
        handle = open(path, "wb")  # noqa: SIM115 - closed by the with below
    except OSError as exc:
        raise ObsError(
            f"cannot write {output} ({exc.strerror}); check that its folder exists and is writable"
        ) from None
    with handle:
        yield handle


class _Stdout:
    """``sys.stdout.buffer`` writing every byte it is given: a buffered write into a pipe whose
    reader has gone can return short instead of raising, and then the next write raises."""

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        while view:
            written = sys.stdout.buffer.write(view)
            if not written:
                raise BrokenPipeError("standard output takes no more")
            view = view[written:]
        return len(data)


def _write_csv(batches: Iterator[pa.RecordBatch], schema: pa.Schema, sink: _Sink) -> None:
    header = True
    for batch in batches:
        if batch.num_rows:
            sink.write(_csv(batch, header))
            header = False
    if header:
        sink.write(_csv(pa.RecordBatch.from_pylist([], schema=schema), True))


def _csv(batch: pa.RecordBatch, header: bool) -> bytes:
    """One batch as CSV; lists, structs and maps as JSON text (infinities and NaN in them as
    JSON output writes them), intervals in ISO 8601. A float column itself keeps Arrow's
    ``inf``, ``-inf`` and ``nan``, which CSV readers parse back."""
    columns = [
        _interval_texts(column)
        if pa.types.is_interval(column.type)
        else _json_texts(column)
        if pa.types.is_nested(column.type)
        else column
        for column in batch.columns
    ]
    out = pa.BufferOutputStream()
    pacsv.write_csv(
        pa.RecordBatch.from_arrays(columns, names=batch.schema.names),
        out,
        pacsv.WriteOptions(include_header=header),
    )
    return out.getvalue().to_pybytes()


def _write_json(batches: Iterator[pa.RecordBatch], schema: pa.Schema, sink: _Sink) -> None:
    """A JSON array of one object per row, written a batch at a time: each row's text is
    preceded by ``,\\n`` (the very first by ``\\n`` alone)."""
    sink.write(b"[")
    first = True
    for batch in batches:
        if batch.num_rows:
            rows = _concatenated(pc.binary_join_element_wise(",\n", _json_rows(batch), ""))
            sink.write(rows[1:] if first else rows)
            first = False
    sink.write(b"]\n" if first else b"\n]\n")


def _json_rows(batch: pa.RecordBatch) -> pa.Array:
    """Each row of ``batch`` as the JSON object a dict of it would be: a name given to several
    columns keeps its first place and its last column's value."""
    last = {name: index for index, name in enumerate(batch.schema.names)}
    return _object_texts([(name, _json_texts(batch.column(i))) for name, i in last.items()])


def _object_texts(members: list[tuple[str, pa.Array]]) -> pa.Array:
    """A JSON object per row of ``members`` (at least one: each name with its values' JSON
    texts, a null written as ``null``), the members in the order given."""
    parts: list[pa.Array | str] = []
    for place, (name, texts) in enumerate(members):
        key = orjson.dumps(name).decode()
        parts += [f"{'{' if place == 0 else ','}{key}:", pc.fill_null(texts, "null")]
    return pc.binary_join_element_wise(*parts, "}", "")


def _concatenated(texts: pa.Array) -> bytes:
    """The bytes of every value of a string array, one after the other, read off its buffers."""
    offsets = np.frombuffer(texts.buffers()[1], np.int32)[
        texts.offset : texts.offset + len(texts) + 1
    ]
    return texts.buffers()[2].slice(offsets[0], offsets[-1] - offsets[0]).to_pybytes()


def _json_texts(column: pa.Array) -> pa.Array:
    """Each value of ``column`` as the JSON text orjson writes for it as Python (null where the
    value is null; "null" inside lists, structs and maps), with infinities and NaN as the
    strings JSON output uses: computed over whole arrays for the types DuckDB results hold,
    and value by value only for the rare others (blobs, durations, nanoseconds, unions...)."""
    if not _columnar(column.type):
        return pa.array([_dumped(v) for v in _json_values(column)], pa.string())
    return _rendered(column)


def _dumped(value: Any) -> str | None:
    if value is None:
        return None
    return orjson.dumps(value, default=_json_default, option=orjson.OPT_NON_STR_KEYS).decode()


def _columnar(kind: pa.DataType) -> bool:
    """Whether :func:`_rendered` writes ``kind`` byte for byte as orjson writes it as Python."""
    if pa.types.is_dictionary(kind):
        return _columnar(kind.value_type)
    if pa.types.is_map(kind):
        return _columnar_key(kind.key_type) and _columnar(kind.item_type)
    if _is_list(kind):
        return _columnar(kind.value_type)
    if pa.types.is_struct(kind):
        names = [field.name for field in kind]
        return len(set(names)) == len(names) and all(_columnar(field.type) for field in kind)
    return _columnar_key(kind) or (
        pa.types.is_null(kind)
        or (pa.types.is_decimal(kind) and kind.scale <= _PLAIN_DECIMAL_SCALE)
        or pa.types.is_time64(kind)
        or pa.types.is_interval(kind)
    )


def _columnar_key(kind: pa.DataType) -> bool:
    """Scalar types :func:`_rendered` writes, and a map's keys may have (orjson's
    OPT_NON_STR_KEYS writes them as strings)."""
    return (
        pa.types.is_boolean(kind)
        or pa.types.is_integer(kind)
        or pa.types.is_float32(kind)
        or pa.types.is_float64(kind)
        or pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_date32(kind)
        or (
            pa.types.is_timestamp(kind)
            and kind.unit != "ns"
            and (kind.tz is None or kind.tz in _UTC_ZONES)
        )
    )


def _is_list(kind: pa.DataType) -> bool:
    return (
        pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)
    )


def _rendered(array: pa.Array) -> pa.Array:
    """``array``'s values as JSON texts (a type :func:`_columnar` accepts), null where null."""
    kind = array.type
    if isinstance(array, pa.DictionaryArray):
        return _rendered(array.dictionary_decode())
    if pa.types.is_null(kind):
        return pa.nulls(len(array), pa.string())
    if pa.types.is_boolean(kind):
        return pc.if_else(array, "true", "false")
    if pa.types.is_integer(kind) or pa.types.is_decimal(kind):  # str(Decimal) up to 6 places
        return array.cast(pa.string())
    if pa.types.is_floating(kind):
        return _float_texts(array)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return _quoted(array.cast(pa.string()))
    if pa.types.is_date32(kind):
        return _quoted(_in_python_years(array, pa.date32()).cast(pa.string()))
    if pa.types.is_timestamp(kind):
        return _quoted(_timestamp_texts(array))
    if pa.types.is_time64(kind):  # 24:00:00, which DuckDB allows and Python does not
        array = array.cast(pa.time64("us"), safe=False)  # nanoseconds as Python held them
        day_end = pc.equal(array.cast(pa.int64()), _DAY_MICROSECONDS)
        return _quoted(
            pc.if_else(day_end, "24:00:00", _without_zero_fraction(array.cast(pa.string())))
        )
    if pa.types.is_interval(kind):
        return _quoted(_interval_texts(array))
    if pa.types.is_map(kind):
        keys = _rendered(array.keys)
        if not (pa.types.is_string(kind.key_type) or pa.types.is_large_string(kind.key_type)):
            keys = pc.if_else(pc.starts_with(keys, '"'), keys, _quoted(keys))
        pairs = pc.binary_join_element_wise(keys, pc.fill_null(_rendered(array.items), "null"), ":")
        return _enclosed(array, pairs, "{", "}")
    if _is_list(kind):
        return _enclosed(array, pc.fill_null(_rendered(_list_values(array)), "null"), "[", "]")
    texts = (
        _object_texts([(f.name, _rendered(array.field(i))) for i, f in enumerate(kind)])
        if kind.num_fields
        else "{}"
    )
    return pc.if_else(array.is_null(), pa.scalar(None, pa.string()), texts)


def _list_values(array: pa.Array) -> pa.Array:
    """The child values a list (or map) array's offsets index; a fixed-size list's, sliced."""
    if isinstance(array, pa.FixedSizeListArray):
        size = array.type.list_size
        return array.values.slice(array.offset * size, len(array) * size)
    return array.values


def _enclosed(array: pa.Array, items: pa.Array, opening: str, closing: str) -> pa.Array:
    """Each list (or map) of ``array`` as its ``items`` texts joined by commas, enclosed."""
    if isinstance(array, pa.FixedSizeListArray):
        offsets = pa.array(np.arange(len(array) + 1, dtype=np.int32) * array.type.list_size)
    else:
        offsets = array.offsets
    build = pa.LargeListArray if pa.types.is_large_list(array.type) else pa.ListArray
    lists = build.from_arrays(offsets, items, mask=array.is_null())
    return pc.binary_join_element_wise(opening, pc.binary_join(lists, ","), closing, "")


def _quoted(texts: pa.Array) -> pa.Array:
    """Each text as a JSON string, escaped as orjson escapes: quote, backslash and the control
    characters (\\b \\t \\n \\f \\r by name, the rest as \\u00XX)."""
    data = texts.buffers()[2]
    bytes_ = np.frombuffer(data, np.uint8) if data is not None else np.empty(0, np.uint8)
    if ((bytes_ < _FIRST_PRINTABLE) | (bytes_ == ord('"')) | (bytes_ == ord("\\"))).any():
        for char, escape in _ESCAPES:
            if pc.any(pc.match_substring(texts, char)).as_py():
                texts = pc.replace_substring(texts, char, escape)
    return pc.binary_join_element_wise('"', texts, '"', "")


def _float_texts(array: pa.Array) -> pa.Array:
    """Floats as orjson writes them: the shortest text that reads back (DuckDB's, which is
    Python's repr) with orjson's exponents (``1e-7``, not ``1e-07``; ``0.00001``, not
    ``1e-05``); infinities and NaN as the strings ``"Infinity"``, ``"-Infinity"``, ``"NaN"``."""
    values = array.cast(pa.float64())  # a FLOAT reads back in Python as this double
    texts = (
        _text_connection()
        .from_arrow(pa.table({"v": values}))
        .select("CAST(v AS VARCHAR)")
        .to_arrow_table()
        .column(0)
        .combine_chunks()
    )
    texts = pc.replace_substring_regex(texts, r"e-0(\d)$", r"e-\1")
    texts = pc.replace_substring_regex(texts, r"^(-?)(\d)\.?(\d*)e-5$", r"\10.0000\2\3")
    named = pc.if_else(
        pc.is_nan(values), '"NaN"', pc.if_else(pc.greater(values, 0), '"Infinity"', '"-Infinity"')
    )
    return pc.if_else(pc.is_finite(values), texts, named)


@functools.cache
def _text_connection() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB of our own (never the analyst's session), for text Arrow lacks."""
    return duckdb.connect(":memory:")


def _timestamp_texts(array: pa.Array) -> pa.Array:
    """Timestamps as Python's isoformat: microseconds only when not zero, UTC as +00:00."""
    naive = _in_python_years(array, pa.timestamp(array.type.unit)).cast(pa.timestamp("us"))
    texts = pc.strftime(naive, "%Y-%m-%dT%H:%M:%S")
    texts = _without_zero_fraction(texts)
    if array.type.tz is None:
        return texts
    return pc.binary_join_element_wise(texts, "+00:00", "")


def _in_python_years(array: pa.Array, kind: pa.DataType) -> pa.Array:
    """``array`` as ``kind`` (its zone dropped: only UTC comes here), refused with an Arrow error
    (one line from :func:`run`) if a value lies outside the years 1-9999 that JSON output has
    always written (DuckDB's infinity, say), rather than written as Arrow's placeholder."""
    values = array.cast(kind)
    first, last = (pa.scalar(moment, kind) for moment in _PYTHON_YEARS)
    bounds = pc.min_max(values)
    low, high = bounds["min"], bounds["max"]
    if low.is_valid and (pc.less(low, first).as_py() or pc.greater(high, last).as_py()):
        raise pa.ArrowInvalid("a date or timestamp lies outside the years 1-9999 (infinity?)")
    return values


def _without_zero_fraction(texts: pa.Array) -> pa.Array:
    return pc.replace_substring_regex(texts, r"\.000000$", "")


def _interval_texts(array: pa.Array) -> pa.Array:
    """Intervals in ISO 8601 as :func:`_duration` writes them (``P1M2DT3.5S``, ``PT0S``), read
    off the array's buffer of (months int32, days int32, nanoseconds int64)."""
    fields = np.frombuffer(array.buffers()[1], _INTERVAL, len(array) + array.offset)
    fields = fields[array.offset :]
    months, days, nanos = (pa.array(fields[name]) for name in ("months", "days", "nanos"))
    whole, fraction = np.divmod(np.abs(fields["nanos"]), 10**9)
    digits = pc.utf8_rtrim(pc.utf8_lpad(pa.array(fraction).cast(pa.string()), 9, "0"), "0")
    seconds = pc.binary_join_element_wise(
        pc.if_else(pc.less(nanos, 0), "-", ""),
        pa.array(whole).cast(pa.string()),
        pc.if_else(
            pc.equal(pa.array(fraction), 0), "", pc.binary_join_element_wise(".", digits, "")
        ),
        "",
    )
    bare = pc.and_(pc.equal(months, 0), pc.equal(days, 0))
    texts = pc.binary_join_element_wise(
        "P",
        _unit(months, "M"),
        _unit(days, "D"),
        pc.if_else(
            pc.or_(pc.not_equal(nanos, 0), bare),
            pc.binary_join_element_wise("T", seconds, "S", ""),
            "",
        ),
        "",
    )
    return pc.if_else(array.is_null(), pa.scalar(None, pa.string()), texts)


def _unit(counts: pa.Array, unit: str) -> pa.Array:
    """``<count><unit>`` where the count is not zero, else nothing."""
    written = pc.binary_join_element_wise(counts.cast(pa.string()), unit, "")
    return pc.if_else(pc.equal(counts, 0), "", written)


def _json_values(column: pa.Array) -> list[Any]:
    """``column``'s values as Python, with infinities and NaN as JSON output writes them."""
    values = column.to_pylist(maps_as_pydicts="lossy")
    return [_finite_json(v) for v in values] if _has_non_finite(column) else values


def _has_non_finite(column: pa.Array) -> bool:
    """Whether ``column`` may hold an infinity or NaN, at any depth: exact for floats and
    lists, structs or maps of them, True for any other type that holds floats (a union),
    False for types that hold none. A column without one is not walked value by value."""
    kind = column.type
    if pa.types.is_floating(kind):
        return bool(pc.any(pc.invert(pc.is_finite(column))).as_py())
    if isinstance(column, pa.MapArray):  # a list of key-value structs, but not to flatten()
        return _has_non_finite(column.keys) or _has_non_finite(column.items)
    if isinstance(column, pa.ListArray | pa.LargeListArray | pa.FixedSizeListArray):
        return _has_non_finite(column.flatten())
    if isinstance(column, pa.StructArray):
        return any(_has_non_finite(column.field(i)) for i in range(kind.num_fields))
    return _holds_floats(kind)


def _holds_floats(kind: pa.DataType) -> bool:
    if pa.types.is_floating(kind):
        return True
    return any(_holds_floats(kind.field(i).type) for i in range(kind.num_fields))


def _finite_json(value: Any) -> Any:
    """``value`` with every infinity and NaN in it as the string JSON tools write for it
    (``"Infinity"``, ``"-Infinity"``, ``"NaN"``): orjson, as JSON has no such numbers, would
    write null, and a reader could not tell them from a missing value."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {_finite_json(k): _finite_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_json(v) for v in value]
    return value


def _json_default(value: Any) -> Any:
    """What orjson cannot write itself: decimals as exact numbers, intervals and durations in
    ISO 8601, blobs in base64."""
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value))
    if isinstance(value, pa.MonthDayNano):
        return _duration(value.months, value.days, value.nanoseconds)
    if isinstance(value, timedelta):
        return _duration(0, 0, round(value / timedelta(microseconds=1)) * 1000)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return str(value)


def _duration(months: int, days: int, nanos: int) -> str:
    seconds = Decimal(nanos) / Decimal(10**9)
    text = "P" + (f"{months}M" if months else "") + (f"{days}D" if days else "")
    if seconds or text == "P":
        text += f"T{seconds.normalize():f}S"
    return text


def _write_parquet(batches: Iterator[pa.RecordBatch], schema: pa.Schema, sink: _Sink) -> None:
    with pq.ParquetWriter(sink, schema, compression="zstd") as writer:
        for batch in batches:
            writer.write_batch(batch)


_WRITERS: dict[str, Callable[[Iterator[pa.RecordBatch], pa.Schema, _Sink], None]] = {
    "csv": _write_csv,
    "json": _write_json,
    "parquet": _write_parquet,
}
