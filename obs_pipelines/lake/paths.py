"""Where a partition lives: ``<tier>/<dataset>/<partition>/<file>.parquet`` (Hive style).

hot   ``hot/<dataset>/dt=YYYY-MM-DD/hour=HH/part-00000.parquet``        rewritten in place by ingest
warm  ``warm/<dataset>/dt=YYYY-MM-DD[/res=5m]/part-<gen>.parquet``       one file per day
cold  ``cold/<dataset>/month=YYYY-MM[/res=1h]/part-<DD>-<DD>-<gen>.parquet``  days first..last

Warm and cold files are immutable: a new version of a partition is a new file with a newer
generation (``g<UTC time><random>``, sortable), and the name alone says which span of time the
file covers. That is what lets a reader decide, from a listing only, which files are current (see
:func:`supersedes`): no file is ever half-replaced, and publishing is one atomic rename or PUT.
"""

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from obs_pipelines.windows import HOUR, TimeWindow

PART_FILE = "part-00000.parquet"
TIER_RANK = {"hot": 0, "warm": 1, "cold": 2}
DAY = timedelta(days=1)
_HOT_PARTITION = re.compile(r"dt=(\d{4}-\d{2}-\d{2})/hour=(\d{2})$")
# Parsers of a file key relative to its tier root; group names feed LakeFile. Kept in step with
# the SQL in obs_pipelines.lake.catalog (same patterns, written for DuckDB's RE2).
HOT_FILE_RE = r"hot/{ds}/dt=(\d{{4}}-\d{{2}}-\d{{2}})/hour=(\d{{2}})/[^/]+\.parquet$"
WARM_FILE_RE = (
    r"warm/{ds}/dt=(\d{{4}}-\d{{2}}-\d{{2}})/(?:res=([0-9a-z]+)/)?part-(g[0-9a-zA-Z]+)\.parquet$"
)
COLD_FILE_RE = r"cold/{ds}/month=(\d{{4}}-\d{{2}})/(?:res=([0-9a-z]+)/)?part-(\d{{2}})-(\d{{2}})-(g[0-9a-zA-Z]+)\.parquet$"


def hot_partition(dataset: str, hour: TimeWindow) -> str:
    """Folder of one hourly partition of ``dataset`` in the hot tier."""
    if hour.duration != HOUR:
        raise ValueError(f"hot partitions are hourly; got {hour}")
    return f"hot/{dataset}/dt={hour.start:%Y-%m-%d}/hour={hour.start:%H}"


def hot_file(dataset: str, hour: TimeWindow) -> str:
    return f"{hot_partition(dataset, hour)}/{PART_FILE}"


def parse_hot_partition(partition: str) -> TimeWindow:
    """Inverse of :func:`hot_partition` for the ``dt=.../hour=..`` tail."""
    match = _HOT_PARTITION.search(partition)
    if not match:
        raise ValueError(f"'{partition}' is not an hourly partition folder")
    start = datetime.strptime(f"{match.group(1)} {match.group(2)}", "%Y-%m-%d %H").replace(
        tzinfo=UTC
    )
    return TimeWindow(start, start + HOUR)


def new_generation(now: datetime | None = None) -> str:
    """A sortable, unique generation token: later publications sort after earlier ones."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"g{moment:%Y%m%dT%H%M%S%f}{secrets.token_hex(3)}"


def warm_file(dataset: str, day: date, generation: str, resolution: str | None = None) -> str:
    res = f"res={resolution}/" if resolution else ""
    return f"warm/{dataset}/dt={day:%Y-%m-%d}/{res}part-{generation}.parquet"


def cold_file(
    dataset: str, first: date, last: date, generation: str, resolution: str | None = None
) -> str:
    """A cold file holding the days ``first`` .. ``last`` (inclusive) of one month."""
    if (first.year, first.month) != (last.year, last.month) or last < first:
        raise ValueError(f"a cold file spans days of one month; got {first} .. {last}")
    res = f"res={resolution}/" if resolution else ""
    return f"cold/{dataset}/month={first:%Y-%m}/{res}part-{first:%d}-{last:%d}-{generation}.parquet"


@dataclass(frozen=True)
class LakeFile:
    """One published file of a dataset, with the span of time it covers (from its name)."""

    dataset: str
    tier: str
    key: str  # relative to the tier's root
    start: datetime
    end: datetime
    generation: str  # "" for hot files (rewritten in place)
    resolution: str | None  # metric_rollups only: '5m' or '1h'
    size: int
    modified: datetime
    storage_class: str | None = None
    etag: str | None = None
    # From the published inventory (None in a store that predates it).
    rows: int | None = None
    sha256: str | None = None
    markers: tuple[str, ...] = ()

    @property
    def rank(self) -> int:
        return TIER_RANK[self.tier]

    @property
    def window(self) -> TimeWindow:
        return TimeWindow(self.start, self.end)

    @property
    def partition(self) -> str:
        """The partition folder, as analysts see it in ``lake_partitions``."""
        return self.key.split("/", 2)[2].rsplit("/", 1)[0]

    def covers(self, other: "LakeFile") -> bool:
        return (
            self.resolution == other.resolution
            and self.start <= other.start
            and self.end >= other.end
        )


def supersedes(newer: "LakeFile", older: "LakeFile") -> bool:
    """Whether ``newer`` hides ``older`` from readers: it covers its whole span and sits in a
    colder tier, or in the same tier with a later generation. The catalog applies the same rule
    in SQL."""
    if newer.key == older.key or not newer.covers(older):
        return False
    return newer.rank > older.rank or (
        newer.rank == older.rank and newer.generation > older.generation
    )


def split_visible(files: list[LakeFile]) -> tuple[list[LakeFile], list[LakeFile]]:
    """(visible, superseded) under :func:`supersedes`.

    A file that covers another covers its first day, so each file is compared only with the
    files spanning that day: linear in the lake's size, not quadratic."""
    by_day: dict[tuple[str | None, date], list[LakeFile]] = {}
    for g in files:
        day = day_of(g.start)
        while day_start(day) < g.end:
            by_day.setdefault((g.resolution, day), []).append(g)
            day += DAY
    visible, hidden = [], []
    for f in files:
        candidates = by_day.get((f.resolution, day_of(f.start)), ())
        (hidden if any(supersedes(g, f) for g in candidates) else visible).append(f)
    return visible, hidden


def parse_file(
    dataset: str,
    tier: str,
    key: str,
    size: int,
    modified: datetime,
    storage_class: str | None = None,
    etag: str | None = None,
) -> LakeFile | None:
    """A :class:`LakeFile` for ``key``, or None for anything that is not a published file."""
    pattern = {"hot": HOT_FILE_RE, "warm": WARM_FILE_RE, "cold": COLD_FILE_RE}[tier]
    match = re.search(pattern.format(ds=re.escape(dataset)), key)
    if not match or not key.startswith(f"{tier}/"):
        return None
    groups = match.groups()
    resolution, generation = None, ""
    if tier == "hot":
        start = datetime.strptime(f"{groups[0]} {groups[1]}", "%Y-%m-%d %H").replace(tzinfo=UTC)
        end = start + HOUR
    elif tier == "warm":
        start = datetime.strptime(groups[0], "%Y-%m-%d").replace(tzinfo=UTC)
        end, resolution, generation = start + DAY, groups[1], groups[2]
    else:
        month = datetime.strptime(groups[0], "%Y-%m").replace(tzinfo=UTC)
        start = month.replace(day=int(groups[2]))
        end = month.replace(day=int(groups[3])) + DAY
        resolution, generation = groups[1], groups[4]
    return LakeFile(
        dataset, tier, key, start, end, generation, resolution, size, modified, storage_class, etag
    )


def anchor_file(tier: str, dataset: str) -> str:
    """The empty file that keeps ``tier``'s glob of ``dataset`` non-empty (see the catalog)."""
    name = {"hot": PART_FILE, "warm": "part-g0.parquet", "cold": "part-00-00-g0.parquet"}[tier]
    return f"{tier}/{dataset}/_anchor/{name}"


def day_of(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)
