"""Deleting the data files no Delta table references any more (``obs lake vacuum``).

Two kinds of file are left behind on purpose and cost storage until they go:

* files a commit removed (days replaced, compacted, rolled up or expired): tiering already
  deletes those once ``lake.delete_delay`` has passed (:func:`obs_pipelines.lake.delta.vacuum`,
  delta-rs's "lite" mode, which only looks at the log);
* files of a run that never committed: a run writes each hour's file as soon as it has read the
  hour and commits them all at its end (:class:`obs_pipelines.lake.delta_tables.HourBatch`), so
  a run killed in between leaves files that no log names. Only a listing of the table's folder
  finds them (delta-rs's "full" mode);
* on a local lake, the partial files of writes killed mid-file: delta-rs's object store writes a
  file as ``<name>#<n>`` and renames it when complete, and its listings skip such names, so its
  vacuum never sees them (``obs doctor``, which lists the folder itself, counts them). They are
  listed here from the folder and deleted by their modification time like the rest.

A file no log names may also belong to a run that is still writing, so only files older than
``older_than`` go: it must exceed the longest run (the default is Delta's own week), and it is
never shorter than ``lake.delete_delay``, which protects readers of older table versions.
"""

import os
import re
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from obs_pipelines.config import ObsConfig
from obs_pipelines.durations import format_duration
from obs_pipelines.errors import ConfigError
from obs_pipelines.lake import delta

DEFAULT_AGE = timedelta(days=7)
OPERATION = "obs lake vacuum"
# object_store's name for a local file being written (renamed to <name> once complete).
_STAGING_NAME = re.compile(r".#\d+$")


@dataclass(frozen=True)
class Unreferenced:
    """A table's files that no version it keeps references, older than the vacuum's age."""

    dataset: str
    files: int
    bytes: int


def vacuum_unreferenced(
    config: ObsConfig,
    older_than: timedelta = DEFAULT_AGE,
    *,
    datasets: list[str] | None = None,
    apply: bool = False,
) -> list[Unreferenced]:
    """The files each Delta table no longer references and that are older than ``older_than``
    (every dataset, or those named); with ``apply`` they are deleted (one VACUUM commit per
    table that had any)."""
    _refuse_below_delay(config, older_than)
    found = []
    for dataset in delta.named_datasets(datasets):
        if not delta.table_exists(config, dataset):
            continue
        present = _present_files(config, dataset)
        # delta-rs also lists files a commit removed that are already gone: only present ones
        # are counted.
        listed = delta.vacuum_files(
            config, dataset, older_than, operation=OPERATION, full=True, dry_run=True
        )
        doomed = [p for p in (_relative(config, dataset, p) for p in listed) if p in present]
        partial = _partial_files(config, dataset, older_than)
        if apply and doomed:
            delta.vacuum_files(config, dataset, older_than, operation=OPERATION, full=True)
        if apply:
            for path in partial:
                path.unlink(missing_ok=True)
        if doomed or partial:
            size = sum(present[p] for p in doomed) + sum(partial.values())
            found.append(Unreferenced(dataset, len(doomed) + len(partial), size))
    return found


def describe(found: list[Unreferenced], older_than: timedelta, *, applied: bool) -> list[str]:
    """One line per table with unreferenced files and a total."""
    age = format_duration(older_than)
    verb = "deleted" if applied else "would delete"
    lines = [
        f"{u.dataset}: {verb} {u.files} unreferenced files ({u.bytes:,} bytes) older than {age}"
        for u in found
    ]
    files, size = sum(u.files for u in found), sum(u.bytes for u in found)
    total = f"{verb} {files} files, {size:,} bytes, in {len(found)} tables"
    if not applied and files:
        total += " (dry run: --apply deletes them)"
    return [*lines, total]


def _refuse_below_delay(config: ObsConfig, older_than: timedelta) -> None:
    """An age below the delay readers of older versions are promised is refused."""
    if older_than < config.lake.delete_delay:
        raise ConfigError(
            f"--older-than {format_duration(older_than)} is shorter than lake.delete_delay "
            f"({format_duration(config.lake.delete_delay)}): a reader of an older table version "
            "could lose its files; give at least the delay"
        )


def _present_files(config: ObsConfig, dataset: str) -> dict[str, int]:
    """Every file in the table's folder (hidden ones included), by path relative to it."""
    from pyarrow.fs import FileSelector, FileType

    with delta.delta_errors(f"list the files of {dataset}", config):
        infos = delta.table_filesystem(config, dataset).get_file_info(
            FileSelector("", recursive=True)
        )
    return {i.path: i.size or 0 for i in infos if i.type == FileType.File}


def _partial_files(config: ObsConfig, dataset: str, older_than: timedelta) -> dict[Path, int]:
    """The partial files of killed writes in a local table's data folders (``<name>#<n>``,
    which delta-rs cannot list) last modified more than ``older_than`` ago, with their sizes;
    none on S3, where an unfinished upload leaves no object (the lifecycle rule aborts it)."""
    if config.lake_root.startswith("s3://"):
        return {}
    folder = Path(delta.table_uri(config, dataset))
    cutoff = time.time() - older_than.total_seconds()
    found = {}
    for parent, folders, files in os.walk(folder):
        folders[:] = [f for f in folders if not f.startswith("_")]  # the log is not data
        for name in files:
            path = Path(parent, name)
            if _STAGING_NAME.search(name) and not name.startswith("_"):
                stat = path.stat()
                if stat.st_mtime < cutoff:
                    found[path] = stat.st_size
    return found


def _relative(config: ObsConfig, dataset: str, path: str) -> str:
    """delta-rs lists a local table's paths absolute on a rerun: relative to the table."""
    return path.removeprefix(delta.table_uri(config, dataset).rstrip("/") + "/")
