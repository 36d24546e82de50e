"""Tiering: when data changes tier, and what a tiering run reports.

What moves when comes from ``retention`` (per dataset, see :class:`Stream`): a day leaves its
tier once it is older than that tier's age. Metric samples are special: raw samples live in hot
and warm only; the day they reach warm, 5-minute and 1-hour rollups are computed from them
(``metric_rollups``), and those follow warm and cold with their own retention. Data past its last
tier is deleted.

Every dataset is a Delta table, so a tier is a file's age, not a place: compaction, rollups and
expiry are each one Delta commit that adds and removes files together
(:mod:`obs_pipelines.lake.delta_tiering`), and S3 moves files to colder storage classes by age
(:mod:`obs_pipelines.lake.lifecycle`).
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from obs_pipelines.config import ObsConfig
from obs_pipelines.datasets import REGISTRY
from obs_pipelines.lake.rollups import RESOLUTIONS

ROLLUPS = "metric_rollups"
_RANK = {"hot": 0, "warm": 1, "cold": 2}


@dataclass(frozen=True)
class Stream:
    """One dataset (and, for rollups, one resolution) with its tiers and the age it leaves each."""

    dataset: str
    resolution: str | None
    stages: tuple[tuple[str, timedelta], ...]

    @property
    def name(self) -> str:
        return f"{self.dataset}[{self.resolution}]" if self.resolution else self.dataset

    @property
    def tiers(self) -> tuple[str, ...]:
        return tuple(t for t, _ in self.stages)

    def next_tier(self, tier: str) -> str | None:
        later = [t for t in self.tiers if _RANK[t] > _RANK[tier]]
        return later[0] if later else None

    def leaves_at(self, tier: str) -> timedelta:
        """Age at which files of ``tier`` move on (or, in the last tier, are deleted)."""
        for t, age in self.stages:
            if _RANK[t] >= _RANK[tier]:
                return age
        return self.stages[-1][1]


def streams(config: ObsConfig) -> tuple[list[Stream], list[str]]:
    """Every stream tiering manages, and a note for each dataset that no retention names."""
    retention = config.retention
    found, skipped = [], []
    metrics = retention.metrics
    for registered in REGISTRY:
        name = registered.name
        if registered.cadence == "tiering":  # made by tiering in warm, never written to hot
            continue
        ages = retention.for_dataset(name)
        if ages is None:
            skipped.append(
                f"{name}: no retention applies; add retention.datasets.{name} to tier it"
            )
            continue
        stages = ages.stages()
        if registered.rollups:  # raw samples live until their resolution's age, in hot and warm
            raw = retention.resolution_age("raw")
            stages = [("hot", min(metrics.hot, raw))]
            if metrics.warm and raw > metrics.hot:
                stages.append(("warm", raw))
        elif registered.collapse_series:  # series outlive every sample and rollup naming them
            last = max([stages[-1][1]] + [retention.resolution_age(r) for r in RESOLUTIONS])
            stages = [*stages[:-1], (stages[-1][0], last)]
        elif registered.kept_longest and name not in retention.datasets:
            stages = [*stages[:-1], (stages[-1][0], longest_retention(config))]
        found.append(Stream(name, None, tuple(stages)))
    if metrics.warm and retention.resolution_age("raw") > metrics.hot:
        for resolution in RESOLUTIONS:
            age = retention.resolution_age(resolution)
            stages = [("warm", min(metrics.warm, age))]
            if metrics.cold and age > metrics.warm:
                stages.append(("cold", age))
            found.append(Stream(ROLLUPS, resolution, tuple(stages)))
    return found, skipped


def longest_retention(config: ObsConfig) -> timedelta:
    """The age at which the lake's longest-kept data is deleted: derived datasets (SLI minutes,
    up minutes, the series inventory) are kept that long, so reports outlive raw data."""
    retention = config.retention
    ages = [
        ages.stages()[-1][1]
        for ages in (retention.metrics, retention.logs, retention.traces, retention.alerts)
    ]
    ages += [a.stages()[-1][1] for a in retention.datasets.values()]
    ages += [retention.resolution_age(r) for r in RESOLUTIONS]
    return max(ages)


@dataclass(frozen=True)
class MoveReport:
    dataset: str
    resolution: str | None
    from_tiers: tuple[str, ...]
    tier: str
    partition: str
    key: str
    storage_class: str | None
    rows: int
    source_files: int
    bytes_before: int
    bytes_after: int
    reason: str
    rollup_bytes: int = 0


@dataclass(frozen=True)
class Deletion:
    dataset: str
    tier: str
    key: str
    bytes: int
    reason: str  # expired | superseded


@dataclass
class TieringResult:
    now: datetime
    moves: list[MoveReport] = field(default_factory=list)
    deletions: list[Deletion] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. stray files moved aside
    # Tables a read or write failed on, each with its line of ``problems`` (what was left, the
    # fix): the run tiered the others, but these need that fix, so the run failed.
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def bytes_before(self) -> int:
        return sum(m.bytes_before for m in self.moves)

    @property
    def bytes_after(self) -> int:
        return sum(m.bytes_after for m in self.moves)

    @property
    def compression_ratio(self) -> float | None:
        return self.bytes_before / self.bytes_after if self.bytes_after else None


def run_tiering(
    config: ObsConfig,
    now: datetime | None = None,
    *,
    hook: Callable[[str, Any], None] | None = None,
) -> TieringResult:
    """Bring the lake in line with the retention config as of ``now`` (default: the clock).

    Idempotent: a second run with the same ``now`` commits nothing. ``hook(step, move)`` is
    called after each step of each move (:data:`obs_pipelines.lake.delta_tiering.STEPS`); tests
    raise from it to crash a move at that point.
    """
    from obs_pipelines.lake.delta_tiering import run_delta_tiering

    return run_delta_tiering(config, (now or datetime.now(UTC)).astimezone(UTC), hook=hook)
