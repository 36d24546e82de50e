"""The legacy lake: a real lake in the file layout (hot/warm/cold Parquet folders with inventory
markers), written by the last version that could write it, and what that version's catalog read
from it. This code can no longer write the layout, so tests of ``obs lake migrate`` start here.

``tests/data/legacy_lake.tar.gz`` holds ``lake/`` (03-30 cold with raw samples expired and
rollups kept, 03-31 and 04-01 warm, 04-02 hot, series ids >= 2**63 in the last hour, a stray
well-named hot file without an inventory marker and a hidden ``.tmp`` file);
``tests/data/legacy_lake.json`` holds rows and checksums of every dataset as that version's
catalog views returned them: the ground truth a migrate must reproduce.
"""

import json
import shutil
import tarfile
from pathlib import Path
from typing import Any

from obs_pipelines.config import ObsConfig, parse_config
from obs_pipelines.lake.checksum import Checksum

DATA = Path(__file__).resolve().parent / "data"
ARCHIVE = DATA / "legacy_lake.tar.gz"
RETENTION = {
    "metrics": {"hot": "1d", "warm": "3d", "cold": "20d"},
    "logs": {"hot": "1d", "warm": "3d", "cold": "20d"},
    "alerts": {"hot": "1d", "warm": "3d", "cold": "20d"},
    "metric_resolutions": {"5m": "20d", "1h": "20d"},
}
# The datasets the legacy lake holds rows of; every other registered dataset is empty.
WRITTEN = frozenset(
    {
        "metric_series",
        "metric_samples",
        "log_records",
        "alert_rules",
        "alertmanager_alerts",
        "up_minutes",
        "metric_rollups",
    }
)


def expected() -> dict[str, Checksum]:
    """Rows and checksum of every dataset, as the file layout's own catalog read them."""
    views = json.loads((DATA / "legacy_lake.json").read_text())["views"]
    return {name: Checksum(v["rows"], v["digest"]) for name, v in views.items()}


def extract(folder: Path) -> Path:
    """Unpack the legacy lake under ``folder``; returns its root, ``folder / "lake"``."""
    with tarfile.open(ARCHIVE) as archive:
        archive.extractall(folder, filter="data")
    return folder / "lake"


def legacy_config(folder: Path, **lake: Any) -> ObsConfig:
    """A config whose lake.root is a copy of the legacy lake under ``folder``, extracted on
    first use (unless ``lake`` gives a root of its own), with no ``format`` (the default,
    delta) and replaced files deleted at once unless told otherwise."""
    if "root" not in lake and not (folder / "lake").exists():
        extract(folder)
    return parse_config(
        {
            "lake": {
                "root": str(folder / "lake"),
                "catalog": str(folder / "obs.duckdb"),
                "delete_delay": "0s",
                **lake,
            },
            "retention": RETENTION,
        }
    )


def forget_day(root: Path, tier: str, dataset: str, partition: str) -> None:
    """What retention did to a day: its files and their inventory markers gone. ``partition``
    is the path under ``<tier>/<dataset>``, e.g. ``month=2026-03`` or ``dt=2026-03-31``."""
    shutil.rmtree(root / tier / dataset / partition)
    shutil.rmtree(root / "_inventory" / tier / dataset / partition)


def upload(root: Path, client: Any, bucket: str, prefix: str) -> set[str]:
    """Copy every file of the extracted lake at ``root`` into ``bucket`` under ``prefix`` with
    the same relative keys (markers, the stray and the hidden temp file included); returns the
    keys."""
    keys = set()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        key = f"{prefix}/{path.relative_to(root).as_posix()}"
        client.upload_file(str(path), bucket, key)
        keys.add(key)
    return keys
