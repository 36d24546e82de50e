"""One version of each table for a whole session: the datasets a session reads, pinned.

The catalog's dataset views are ``delta_scan`` calls, and DuckDB binds a ``delta_scan`` by
reading the table's log (its last checkpoint, a listing, every commit since) at every reference.
A report reaches the same datasets through many views: on S3, ``obs query 'SELECT * FROM
scorecard'`` of a 3-hour lake made 1,309 requests, nearly all of them log reads
(``bench/s3_session_bench.py``). Pinning attaches each table the session reaches (``ATTACH ...
(TYPE delta, PIN_SNAPSHOT)``, the delta extension's own mode) and shadows the dataset's view with
a temporary one of the same columns over it, so its log is read once per session (151 requests
for that scorecard), and every query of the session, and every reference within one, sees the
same version of each table.

Only sessions that read and end are pinned (``obs report``, the report asset, ``obs query``): a
pinned session does not see commits made after it read the log, and one held open longer than
``lake.delete_delay`` after a compaction may find its version's files vacuumed. The catalog file
keeps its ``delta_scan`` views, so a plain DuckDB client that opens it reads each table's newest
version at every query, as before.
"""

import re
import uuid
from collections.abc import Iterable

import duckdb

from obs_pipelines.config import ObsConfig
from obs_pipelines.datasets import ALL
from obs_pipelines.lake import delta
from obs_pipelines.lake.delta_catalog import dataset_view

_STRING = re.compile(r"'(?:[^']|'')*'")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def pin_datasets(
    con: duckdb.DuckDBPyConnection, config: ObsConfig, names: Iterable[str] = ALL
) -> None:
    """Read each dataset of ``names`` at one version for the rest of ``con``'s life (the lake
    attached first: :func:`obs_pipelines.lake.attach.connect`).

    Attached databases belong to the DuckDB instance, which the sessions of one process that
    open the same catalog share, so each session attaches under names of its own; they go when
    the instance closes with its last session."""
    session = uuid.uuid4().hex[:12]
    for name in names:
        table = f"pinned_{name}_{session}"
        quoted = delta.table_uri(config, name).replace("'", "''")
        with delta.delta_errors(f"read the {name} table", config):
            con.execute(f"ATTACH '{quoted}' AS {table} (TYPE delta, PIN_SNAPSHOT)")
            con.execute(dataset_view(delta.layout(name), table, "CREATE TEMP VIEW"))


def datasets_reached(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[str, ...]:
    """The datasets ``sql`` reads, by name or through the catalog's views (a word that only
    looks like a view's name costs a log read, never a wrong row), in registry order."""
    views = dict(
        con.execute(
            "SELECT view_name, sql FROM duckdb_views() WHERE NOT internal AND NOT temporary"
        ).fetchall()
    )
    seen: set[str] = set()
    pending = _names(sql)
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in views and name not in ALL:
            pending |= _names(views[name])
    return tuple(name for name in ALL if name in seen)


def _names(sql: str) -> set[str]:
    return {word.lower() for word in _WORD.findall(_STRING.sub("", sql))}
