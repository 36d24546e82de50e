"""The published inventory: which files the lake itself wrote, with their rows, bytes and SHA-256.

Every file published under a tier gets a marker, an empty object whose key says everything:
``_inventory/<file key>/<rows>-<bytes>-<sha256>``. Markers are written after the file is in place
(publishing is the marker's arrival) and a file's older markers are removed after that, so a file
rewritten in place (an hourly partition re-ingested) is published under any of its markers for
the instant both exist. Readers, tiering and the catalog consider only files with a marker whose
size matches: a stray copy, a hidden file or a truncated file is never read as data, and a
published file that disappeared is known to be missing.

A store written before the inventory existed has no ``_inventory/VERSION``; until it is adopted
(:func:`adopt`, done by the first catalog build or tiering run) every parseable file counts as
published, as it always did.

Files that fail verification are moved aside to ``_quarantine/<reason>/<file key>`` with their
markers, so the rest of the dataset stays readable and the damage stays on record.
"""

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

INVENTORY = "_inventory"
QUARANTINE = "_quarantine"
VERSION_KEY = f"{INVENTORY}/VERSION"
ANCHOR_FOLDER = "_anchor"
DATA_TIERS = ("hot", "warm", "cold")
# A file without a marker may be a publish in flight (data lands before its marker): it is only
# called stray once it is this old.
STRAY_GRACE = timedelta(hours=1)
_MARKER_NAME = re.compile(r"^(\d+)-(\d+)-([0-9a-f]{64})$")


@dataclass(frozen=True)
class Marker:
    """One inventory entry of a published file."""

    key: str  # the marker's own key
    file_key: str
    rows: int
    bytes: int
    sha256: str


def is_data_key(key: str) -> bool:
    """Whether ``key`` is a data file of a tier (anchors are not data)."""
    return key.split("/", 1)[0] in DATA_TIERS and not is_anchor(key)


def marker_prefix(file_key: str) -> str:
    return f"{INVENTORY}/{file_key}/"


def marker_key(file_key: str, rows: int, size: int, sha256: str) -> str:
    return f"{marker_prefix(file_key)}{rows}-{size}-{sha256}"


def parse_marker(key: str) -> Marker | None:
    """The marker at ``key``, or None for anything else under ``_inventory/``."""
    if not key.startswith(f"{INVENTORY}/"):
        return None
    file_key, _, name = key[len(INVENTORY) + 1 :].rpartition("/")
    match = _MARKER_NAME.match(name)
    if not match or not file_key:
        return None
    return Marker(key, file_key, int(match.group(1)), int(match.group(2)), match.group(3))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def is_anchor(key: str) -> bool:
    """Anchors are empty files that keep each tier's glob non-empty for the catalog's views."""
    parts = key.split("/")
    return len(parts) == 4 and parts[2] == ANCHOR_FOLDER


def quarantine_key(reason: str, key: str) -> str:
    return f"{QUARANTINE}/{reason}/{key}"


def stray_is_old(modified: datetime, now: datetime | None = None) -> bool:
    return (now or datetime.now(UTC)) - modified > STRAY_GRACE
