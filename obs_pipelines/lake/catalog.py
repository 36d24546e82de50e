"""The DuckDB catalog: one file of views over every dataset in the lake, for analysts and reports.

Each dataset's view is a ``delta_scan`` of its Delta table (:mod:`obs_pipelines.lake.delta_catalog`
gives the statements): it reads the table's newest version whenever it is queried, so new hours,
compactions and expiries show without a rebuild, and a query sees one version, never a move half
done. The build reads the tables' logs only (``lake_partitions``: every data file with its rows,
bytes and tier by age). The catalog is rebuilt when its definition changes (report SQL, config,
this package), by writing a fresh copy and renaming it over the old one: an analyst who has it
open read-only keeps a consistent catalog, and the pipeline never waits for their lock. A file
there that is not a DuckDB database (``lake.catalog`` pointed at someone's notes) is refused,
never replaced.
"""

import functools
import hashlib
import os
import shutil
import stat
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from obs_pipelines.config import ObsConfig
from obs_pipelines.datasets import ALL
from obs_pipelines.errors import LakeError
from obs_pipelines.lake import Lake, delta_catalog
from obs_pipelines.lake.attach import catalog_lake_root as catalog_lake_root
from obs_pipelines.lake.attach import connect as connect
from obs_pipelines.lake.attach import lake_identity
from obs_pipelines.lake.delta import attach_delta
from obs_pipelines.lake.delta_tables import DeltaTables
from obs_pipelines.reporting import reports

_BUILD_SUFFIX = ".tmp"
# Every DuckDB database file carries this at bytes 8..12 (after its header checksum).
DUCKDB_MAGIC = b"DUCK"
DUCKDB_MAGIC_START, DUCKDB_MAGIC_END = 8, 12
ABANDONED_BUILD_AGE = timedelta(hours=1)
# Samples with their series' labels; ``dt`` (the sample's UTC day) is what prunes files.
_METRICS_VIEW = """CREATE OR REPLACE VIEW metrics AS
           SELECT s.metric, s.labels, s.service, s.job, s.instance, x.series_id, x.ts, x.value,
                  x.dt
           FROM metric_samples x JOIN metric_series s USING (series_id)"""


# The views that read the lake itself; reports read only these and each other.
LAKE_VIEWS = (*ALL, "metrics", "lake_partition_sources", "incident_record_sources")


def build_catalog(config: ObsConfig) -> Path:
    """(Re)create the catalog file: a view per dataset, ``metrics``, ``lake_partitions``,
    ``lake_partition_sources``, reports. Every missing table is created empty first, so every
    view and engine finds every dataset."""
    lake = Lake(config)
    opened = lake.tables.ensure_tables()

    def fill(con: duckdb.DuckDBPyConnection) -> None:
        _create_dataset_views(con, config)
        delta_catalog.create_partitions_table(con, config, opened)
        con.execute(delta_catalog.partition_sources_view(config))
        # incidents.sql reads the snapshots that read the postmortems file (one table's commits).
        con.execute(
            delta_catalog.partition_sources_view(
                config, "incident_record_sources", ("incident_records",)
            )
        )
        con.execute(
            "CREATE TABLE catalog_info AS "
            "SELECT ? AS lake_root, now() AS built_at, ? AS definition",
            [lake_identity(lake), catalog_definition(config)],
        )
        reports.publish(con, config)

    return _replace_catalog(Path(config.catalog_path), fill, start_from_current=False)


def refresh_catalog(config: ObsConfig) -> Path:
    """What a run calls after writing. The views read each table's newest version whenever they
    are queried, so the catalog is rebuilt only when it is missing or its definition changed
    (report SQL, config, this package); ``obs catalog`` still rebuilds it, and the
    ``lake_catalog`` asset refreshes ``lake_partitions`` (:func:`refresh_partitions`)."""
    target = Path(config.catalog_path)
    if _built_definition(target) == catalog_definition(config):
        return target
    return build_catalog(config)


def refresh_partitions(config: ObsConfig) -> Path:
    """What the ``lake_catalog`` asset runs after each ingest run, and the ``lake_tiering`` asset
    after each tiering run: ``lake_partitions`` read again
    from the tables' logs into a copy of the catalog renamed over it (the views and reports are
    kept as they are: they read the tables live). A catalog that is missing or whose definition
    changed is built whole instead (:func:`build_catalog`)."""
    target = Path(config.catalog_path)
    if _built_definition(target) != catalog_definition(config):
        return build_catalog(config)
    opened = Lake(config).tables.ensure_tables()
    return _replace_catalog(
        target,
        lambda con: delta_catalog.create_partitions_table(con, config, opened),
        start_from_current=True,
    )


def _replace_catalog(
    target: Path, fill: Callable[[duckdb.DuckDBPyConnection], None], *, start_from_current: bool
) -> Path:
    """Write the catalog as ``fill`` makes it (in a new file, or a copy of the current one) and
    rename it over ``target``: a reader of the old file keeps it whole, and a build killed
    midway leaves only a staged file beside it, swept by a later build."""
    target.parent.mkdir(parents=True, exist_ok=True)
    _refuse_foreign_file(target)
    _sweep_abandoned_builds(target)
    staged = target.with_name(f".{target.name}.{uuid.uuid4().hex}{_BUILD_SUFFIX}")
    try:
        if start_from_current:
            shutil.copyfile(target, staged)
        con = duckdb.connect(str(staged))
        try:
            fill(con)
        finally:
            con.close()
        os.replace(staged, target)
    finally:
        staged.unlink(missing_ok=True)
        Path(f"{staged}.wal").unlink(missing_ok=True)
    return target


def _refuse_foreign_file(target: Path) -> None:
    """Refuse, in one line, to rename a catalog over anything but a DuckDB database (or an empty
    file, or nothing): ``lake.catalog`` pointed at someone's notes must not replace them."""
    try:
        header = b"?"  # anything but a regular file: a FIFO is not opened, that would block
        if stat.S_ISREG(target.stat().st_mode):
            with target.open("rb") as existing:
                header = existing.read(DUCKDB_MAGIC_END)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise LakeError(f"cannot read the catalog {target} ({exc.strerror}); check it") from None
    if header and header[DUCKDB_MAGIC_START:DUCKDB_MAGIC_END] != DUCKDB_MAGIC:
        raise LakeError(
            f"lake.catalog {target} is not a DuckDB database, and obs will not replace it; "
            "move it away or point lake.catalog at another file"
        )


def catalog_definition(config: ObsConfig) -> str:
    """A fingerprint of everything the catalog's SQL is made from (not of the lake's data)."""
    from importlib.metadata import version

    digest = hashlib.sha256()
    for text in (
        version("obs-pipelines"),
        source_digest(Path(__file__).resolve().parents[1]),
        config.model_dump_json(),
        *(f"{name}\n{sql}" for name, sql in sorted(reports.report_queries().items())),
    ):
        digest.update(text.encode())
    return digest.hexdigest()


@functools.cache
def source_digest(package: Path) -> str:
    """A fingerprint of the Python source under ``package``, as this process loaded it: a
    checkout that changed without a version bump (an editable install after ``git pull``) gets
    its catalog rebuilt, as an upgrade does."""
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _built_definition(target: Path) -> str | None:
    if not target.exists():
        return None
    try:
        with duckdb.connect(str(target), read_only=True) as con:
            row = con.execute("SELECT definition FROM catalog_info").fetchone()
    except duckdb.Error:  # an older catalog without the column, or one being replaced
        return None
    return row[0] if row else None


def _create_dataset_views(con: duckdb.DuckDBPyConnection, config: ObsConfig) -> None:
    attach_delta(con, config)
    for statement in [*delta_catalog.view_statements(config), _METRICS_VIEW]:
        con.execute(statement)


def _sweep_abandoned_builds(target: Path) -> None:
    """Remove what a build killed mid-way left beside the catalog (its staged copy and WAL);
    a build in progress elsewhere is younger than the horizon and left alone."""
    horizon = datetime.now(UTC) - ABANDONED_BUILD_AGE
    for leftover in target.parent.glob(f".{target.name}.*{_BUILD_SUFFIX}*"):
        try:
            if datetime.fromtimestamp(leftover.stat().st_mtime, UTC) < horizon:
                leftover.unlink()
        except FileNotFoundError:
            pass


def lake_connection(config: ObsConfig) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with a view per dataset (no reports, no catalog file): what the
    engine reads the lake through when it needs SQL over it."""
    DeltaTables(config).ensure_tables()
    con = duckdb.connect()
    _create_dataset_views(con, config)
    return con
