"""Where a partition lives: ``<tier>/<dataset>/<partition>/<file>.parquet`` (Hive style)."""

import re
from datetime import UTC, datetime

from obs_pipelines.windows import HOUR, TimeWindow

PART_FILE = "part-00000.parquet"
_HOT_PARTITION = re.compile(r"dt=(\d{4}-\d{2}-\d{2})/hour=(\d{2})$")


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
    start = datetime.strptime(f"{match.group(1)} {match.group(2)}", "%Y-%m-%d %H").replace(tzinfo=UTC)
    return TimeWindow(start, start + HOUR)
