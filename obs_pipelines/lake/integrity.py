"""Keeping the lake honest: files that are not what the inventory published are moved aside.

Two levels, both naming the partition and the fix:

* :func:`repair_listing_faults` works from listings only (cheap, run by every catalog build,
  tiering run and ``obs doctor``): a file whose size differs from its published size (truncated,
  or replaced by hand) and a file the lake never published (a stray copy) are quarantined; a
  published file that is gone is reported.
* :func:`verify_published` opens every published file (``obs doctor``): its footer must read and
  hold the published row count, and its bytes must hash to the published SHA-256. A damaged file
  is quarantined.

Quarantine moves a file under ``_quarantine/<reason>/`` with its markers: the rest of the dataset
stays readable, and for an hourly partition the hour becomes a gap that the freshness sensor (or
``obs materialize``) fills again from the source.
"""

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from obs_pipelines.lake import inventory
from obs_pipelines.lake.lake import LAKE_DATASETS, Lake
from obs_pipelines.lake.paths import LakeFile, parse_file

# A file whose size disagrees with its marker may be a rewrite caught between its data and its
# marker landing; it is called damaged only once it is this old.
MISMATCH_GRACE = timedelta(minutes=2)


@dataclass(frozen=True)
class Finding:
    """One file that is not what was published, and what was done about it."""

    kind: str  # damaged | stray | missing
    dataset: str
    tier: str
    key: str
    detail: str
    moved_to: str | None = None

    @property
    def partition(self) -> str:
        return self.key.split("/", 2)[2].rsplit("/", 1)[0]

    def describe(self, lake: Lake) -> str:
        where = f"{self.dataset} {self.tier} {self.partition}"
        if self.kind == "stray":
            return (
                f"{where}: {self.key.rsplit('/', 1)[-1]} was not published by the lake and is "
                f"never read; moved to {self.moved_to}"
            )
        return f"{where}: {self.detail}; {_fix(lake, self)}"


def repair_listing_faults(lake: Lake, datasets: tuple[str, ...] = LAKE_DATASETS) -> list[Finding]:
    """Quarantine size-mismatched and stray files of ``datasets``; report missing ones."""
    now = datetime.now(UTC)
    findings = []
    for dataset in datasets:
        survey = lake.survey(dataset)
        for obj, markers in survey.mismatched:
            if now - obj.modified < MISMATCH_GRACE:
                continue
            tier = obj.key.split("/", 1)[0]
            sizes = ", ".join(sorted({str(m.bytes) for m in markers}))
            moved = lake.quarantine(tier, obj.key, "damaged", tuple(m.key for m in markers))
            findings.append(
                Finding(
                    "damaged",
                    dataset,
                    tier,
                    obj.key,
                    f"{obj.size} bytes where {sizes} were published (truncated or replaced); "
                    f"moved to {moved}",
                    moved,
                )
            )
        for tier, obj in survey.strays:
            if inventory.stray_is_old(obj.modified, now):
                moved = lake.quarantine(tier, obj.key, "stray", ())
                findings.append(Finding("stray", dataset, tier, obj.key, "", moved))
        for tier, marker in survey.missing:
            findings.append(
                Finding(
                    "missing",
                    dataset,
                    tier,
                    marker.file_key,
                    f"published with {marker.rows} rows but the file is gone",
                )
            )
    return findings


def verify_published(
    lake: Lake, datasets: tuple[str, ...] = LAKE_DATASETS, *, checksum: bool = True
) -> tuple[int, list[Finding]]:
    """Open every published, readable file: (files verified, damaged files quarantined)."""
    files = [
        f
        for dataset in datasets
        for f in lake.files(dataset)
        if f.storage_class not in ("GLACIER", "DEEP_ARCHIVE")
    ]
    with ThreadPoolExecutor(max_workers=4) as pool:
        problems = list(pool.map(lambda f: lake.verify(f, checksum=checksum), files))
    findings = []
    for file, problem in zip(files, problems, strict=True):
        if problem is None:
            continue
        moved = lake.quarantine(file.tier, file.key, "damaged", file.markers)
        findings.append(
            Finding(
                "damaged", file.dataset, file.tier, file.key, f"{problem}; moved to {moved}", moved
            )
        )
    return len(files), findings


def quarantine_damaged(lake: Lake, file: LakeFile, problem: str) -> Finding:
    """Move a file found unreadable while it was being used (a tier move) aside."""
    moved = lake.quarantine(file.tier, file.key, "damaged", file.markers)
    return Finding(
        "damaged", file.dataset, file.tier, file.key, f"{problem}; moved to {moved}", moved
    )


def _fix(lake: Lake, finding: Finding) -> str:
    parsed = parse_file(finding.dataset, finding.tier, finding.key, 0, datetime.now(UTC))
    if finding.tier == "hot" and parsed is not None:
        return (
            "re-ingest the hour: obs materialize "
            f"--from {parsed.start:%Y-%m-%dT%H:%M}Z --to {parsed.end:%Y-%m-%dT%H:%M}Z"
        )
    span = f"{parsed.start:%Y-%m-%d} .. {parsed.end:%Y-%m-%d}" if parsed else "its span"
    return (
        f"restore it from a backup or an earlier object version of {lake.tiers[finding.tier].url(finding.key)} "
        f"(or re-ingest {span} while the sources still hold it)"
    )
