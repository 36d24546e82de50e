"""``obs lake repair``: take the data files a table's log references but storage lost out of the
log, so the table opens and its lost hours can be re-ingested.

A file deleted from under a Delta table (by hand, a bucket rule, a bad restore) breaks every
read of its day, and ingest too: rewriting an hour of a compacted day reads the day's files. No
rewrite can fix that, since the log itself names the file. delta-rs's FSCK
(``DeltaTable.repair``) commits a ``remove`` for each referenced file missing from storage; the
rows those files held are then gone from the table (as they already were from storage) and the
hours they covered can be ingested again.

The dry run lists, per table, the missing files and the hours their rows covered (from each add
action's partition day and time statistics; a file without statistics covers its whole day)
and changes nothing. ``--apply`` makes one FSCK commit per table, marked ``obs.operation =
repair`` like the lake's other commits, and prints the ``obs materialize`` that re-ingests the
lost hours. Files present with a wrong size (truncated) are not what FSCK removes: restore them.
"""

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pyarrow as pa

from obs_pipelines.config import ObsConfig
from obs_pipelines.lake import delta

OPERATION = "repair"
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class LostFile:
    """A file the table's log references that storage no longer has."""

    path: str
    rows: int | None
    start: datetime  # the first hour its rows covered
    end: datetime  # the end of the last (exclusive)


@dataclass(frozen=True)
class TableRepair:
    dataset: str
    lost: tuple[LostFile, ...]

    @property
    def rows(self) -> int:
        return sum(f.rows or 0 for f in self.lost)


def repair(
    config: ObsConfig, *, datasets: list[str] | None = None, apply: bool = False
) -> list[TableRepair]:
    """The tables (every dataset, or those named) with referenced files missing from storage,
    and what those files held; with ``apply`` each such table gets one FSCK commit."""
    from deltalake import CommitProperties, DeltaTable
    from deltalake.exceptions import TableNotFoundError

    found = []
    for dataset in delta.named_datasets(datasets):
        with delta.delta_errors(f"check the files of {dataset}", config):
            try:
                table = DeltaTable(
                    delta.table_uri(config, dataset), storage_options=delta.storage_options(config)
                )
            except TableNotFoundError:
                continue
            missing = [str(p) for p in table.repair(dry_run=True)["files_removed"]]
        if not missing:
            continue
        lost = _lost_files(dataset, delta.add_actions(table), missing)
        if apply:
            metadata = {"obs.operation": OPERATION, "obs.files": json.dumps(missing)}
            with delta.delta_errors(f"repair {dataset}", config):
                table.repair(
                    dry_run=False, commit_properties=CommitProperties(custom_metadata=metadata)
                )
        found.append(TableRepair(dataset, lost))
    return found


def describe(found: list[TableRepair], *, applied: bool) -> list[str]:
    """A line per lost file (its table, rows and hours), a line per table, and the re-ingest."""
    if not found:
        return ["every file the tables' logs reference is present: nothing to repair"]
    lines = []
    for table in found:
        for f in table.lost:
            rows = "? rows" if f.rows is None else f"{f.rows} rows"
            lines.append(f"{table.dataset}: missing {f.path} ({rows}, {_span(f.start, f.end)})")
        verb = "removed from the log" if applied else "would be removed from the log"
        files = f"{len(table.lost)} missing file" + ("" if len(table.lost) == 1 else "s")
        lines.append(f"{table.dataset}: {files} {verb} ({table.rows} rows)")
    start = min(f.start for t in found for f in t.lost)
    end = max(f.end for t in found for f in t.lost)
    command = f"obs materialize --from {_iso(start)} --to {_iso(end)}"
    if applied:
        lines.append(f"re-ingest the lost hours: {command}")
    else:
        lines.append(
            f"dry run: nothing was changed; `obs lake repair --apply`, then `{command}` "
            "re-ingests the lost hours"
        )
    return lines


def _lost_files(dataset: str, actions: pa.Table, missing: list[str]) -> tuple[LostFile, ...]:
    """What each missing file held, from its add action: rows, and the hours between the
    minimum and maximum of the columns that place a row in its hour (else its whole day)."""
    from obs_pipelines.lake.delta_tables import bound_columns

    first, last = bound_columns(delta.layout(dataset))
    by_path = {row["path"]: row for row in actions.to_pylist()}
    lost = []
    for path in missing:
        action = by_path.get(path, {})
        day = action.get(f"partition.{delta.DAY_COLUMN}")
        low, high = action.get(f"min.{first}"), action.get(f"max.{last}")
        if isinstance(low, datetime) and isinstance(high, datetime):
            start = _hour_floor(low)
            end = _hour_floor(high) + HOUR
        elif day:
            start = datetime.fromisoformat(day).replace(tzinfo=UTC)
            end = start + timedelta(days=1)
        else:  # no day, no statistics: nothing narrower than "unknown" to say
            continue
        rows = action.get("num_records")
        lost.append(LostFile(path, None if rows is None else int(rows), start, end))
    return tuple(lost)


def _hour_floor(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.replace(minute=0, second=0, microsecond=0)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _span(start: datetime, end: datetime) -> str:
    if end - start == timedelta(days=1) and start.hour == 0:
        return f"the day {start:%Y-%m-%d}"
    return f"hours {start:%Y-%m-%d %H:%M}Z to {end:%Y-%m-%d %H:%M}Z"
