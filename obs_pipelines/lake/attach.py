"""DuckDB sessions on the lake: attaching its storage, and opening the catalog built for it.

Below both the catalog (which builds the file) and the reports (which read it), so neither
imports the other to open it.
"""

import contextlib
import re
from pathlib import Path

import duckdb

from obs_pipelines.config import TIERS, ObsConfig
from obs_pipelines.errors import LakeError
from obs_pipelines.lake.lake import Lake


def connect(config: ObsConfig, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """Open the catalog, ready to query the lake wherever it lives (S3 credentials from the env)."""
    path = Path(config.catalog_path)
    if not path.exists():
        raise LakeError(f"no catalog at {path}; run `obs catalog` (or materialize an asset) first")
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.Error as exc:
        raise LakeError(_unopenable(path, exc)) from None
    # The lake's times are naive UTC; a time with a zone converts through the session's zone,
    # which is the machine's unless set: a report period must not move with the machine.
    con.execute("SET TimeZone = 'UTC'")
    if config.lake.query_memory_limit is not None:
        con.execute("SET memory_limit = ?", [config.lake.query_memory_limit])
    lake = Lake(config)
    built_for = catalog_lake_root(con)
    if built_for is not None and built_for != lake_identity(lake):
        con.close()
        raise LakeError(
            f"the catalog {path} reads the lake at {built_for}, not at the configured "
            f"{lake_identity(lake)} (was the lake moved or restored elsewhere?); run `obs catalog`"
        )
    attach_lake(con, lake)
    return con


def _unopenable(path: Path, exc: duckdb.Error) -> str:
    """Why DuckDB would not open the catalog at ``path``, and what to do, in one line."""
    text = str(exc)
    if "Could not set lock" in text:
        holder = re.search(r"\(PID (\d+)\)", text)
        who = f" (PID {holder.group(1)})" if holder else ""
        return (
            f"another process{who} holds the catalog {path} open for writing (a running obs, "
            "Dagster run or duckdb session?); retry when it ends"
        )
    if "not a valid DuckDB database" in text:
        return f"{path} is not a DuckDB catalog; move it away and run `obs catalog`"
    first = (text.strip().splitlines() or [type(exc).__name__])[0]
    return f"cannot open the catalog {path} ({first}); fix that, or rebuild it with `obs catalog`"


def lake_identity(lake: Lake) -> str:
    """Where the views read from (they hold absolute paths), written as catalogs always have
    recorded it: each tier's root, all of them ``lake.root`` now, and the format."""
    return " ".join(f"{tier}={lake.storage.root}" for tier in TIERS) + " format=delta"


def catalog_lake_root(con: duckdb.DuckDBPyConnection) -> str | None:
    """The tier roots an open catalog was built to read (None for a catalog built before
    this was recorded)."""
    try:
        row = con.execute("SELECT lake_root FROM catalog_info").fetchone()
    except duckdb.CatalogException:
        return None
    return row[0] if row else None


def attach_lake(con: duckdb.DuckDBPyConnection, lake: Lake) -> None:
    """Make the lake's Delta tables readable in ``con`` (the catalog's views call
    ``delta_scan``; on S3 with httpfs and a secret)."""
    from obs_pipelines.lake.delta import attach_delta  # delta imports this module

    attach_delta(con, lake.config)


def load_packaged_extension(con: duckdb.DuckDBPyConnection, module: str, name: str) -> None:
    """Load DuckDB's ``name`` extension from the wheel ``module`` that ships it for this DuckDB
    release: no network, no extension repository. It is also installed from that file into
    DuckDB's extension folder, so a plain DuckDB of the same release (the ``duckdb`` shell, a
    notebook) that opens the catalog autoloads it offline when a view needs it."""
    import importlib

    package = importlib.import_module(module)
    extension = (
        Path(package.__file__ or "").parent
        / "extensions"
        / f"v{duckdb.__version__}"
        / f"{name}.duckdb_extension"
    )
    if not extension.exists():
        raise LakeError(
            f"the DuckDB {name} extension for duckdb {duckdb.__version__} is missing at "
            f"{extension}; install the {module.replace('_', '-')}=={duckdb.__version__} package"
        )
    con.execute(f"LOAD '{extension}'")
    # No bound parameter: DuckDB's Python binding imports pandas (0.25 s) to bind the first one.
    installed = con.execute(
        f"SELECT installed FROM duckdb_extensions() WHERE extension_name = '{name}'"
    ).fetchone()
    if not (installed and installed[0]):
        with contextlib.suppress(duckdb.Error):  # a read-only home: plain sessions LOAD it
            con.execute(f"INSTALL '{extension}'")
