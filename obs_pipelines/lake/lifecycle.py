"""``obs lake lifecycle``: storage tiering of the Delta tables by S3's own lifecycle rules.

A Delta table is one unit whose log references its files, so its tiers cannot be prefixes that
files are copied between. S3 moves objects between storage classes by age instead, without a
copy and without changing a key, so the log stays valid. This module turns ``retention`` (the age
data leaves each tier, per dataset as :func:`obs_pipelines.lake.tiering.streams` maps it) and
the tier storage classes (``lake.warm|cold.storage_class``) into one lifecycle rule per table:

* at the age data leaves hot, its objects move to the warm tier's class; at the age it leaves
  warm, to the cold tier's class. A transition to ``null``/``STANDARD`` or to the class the
  objects are already in is left out; a table with no transition gets no rule. Ages round up to
  whole days (S3 counts days since an object's upload).
* a rule covers the table's data files only: ``<table>/dt=`` for tables partitioned by day
  (every table but the rollups) and ``metric_rollups/resolution=<r>/`` per resolution (each has
  its own retention); the ``_delta_log`` that every reader opens stays in STANDARD.
* one more rule aborts multipart uploads left incomplete for a day under ``<prefix>/delta/``
  (a writer killed mid-upload would otherwise be billed for its parts forever).
* **no rule expires anything.** A Delta table's log references its files: deleting by age would
  break the table. Retention stays Delta deletes plus ``VACUUM`` after ``lake.delete_delay``.

S3's rules are checked here, so a plan that S3 would refuse (or silently bill for) is refused in
one line naming the dataset, the tier and the limit: an object must spend 30 days in a class
before entering or leaving STANDARD_IA or ONEZONE_IA, and transitions only go down S3's
waterfall. Such ages are refused rather than clamped: a clamped transition would happen later
than the config says, and an IA object deleted or rewritten before 30 days is billed for 30.
Archive classes (GLACIER, DEEP_ARCHIVE) are refused: Delta readers cannot read those objects
without a restore. GLACIER_IR (instant retrieval) is the readable cold class.

Ages are object ages: a day written as it arrives ages with its data, a day rewritten later (a
late hour, compaction, ``obs lake migrate``) starts again in STANDARD, so data moves to a colder
class at the configured age or later, never earlier. S3 also leaves objects under 128 KB in
STANDARD by default (its minimum transition size).

Rules we own have IDs starting with ``obs-`` and filters under ``<prefix>/delta/``; ``--apply``
replaces exactly those and keeps every other rule of the bucket, so applying twice gives the
same configuration.

A kept rule can still break the tables: one whose filter reaches ``<prefix>/delta/`` (its prefix
is a start of it, the empty prefix included, or lies under it) and that expires current objects
(``Expiration`` by days or date) or moves them to an archive class deletes or hides files the
logs reference. Such a rule is a :class:`Hazard`: the dry run warns, ``--apply`` refuses while
it is kept, and ``obs doctor`` names it. Tag and size filters are not evaluated (a file may
carry any tag, and data files come in every size): the prefix alone decides. Rules that only act
on noncurrent versions, delete markers or incomplete uploads leave the current files readable
and are not hazards; disabled rules neither.
"""

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from obs_pipelines.config import ARCHIVE_STORAGE_CLASSES, ObsConfig
from obs_pipelines.errors import LakeError
from obs_pipelines.lake.delta import DAY_COLUMN, DELTA_FOLDER
from obs_pipelines.lake.storage import s3_location
from obs_pipelines.lake.tiering import ROLLUPS, Stream, streams

RULE_ID_PREFIX = "obs-"
ABORT_UPLOADS_AFTER_DAYS = 1
# Days an object must spend in its current class before S3 moves it into or out of these.
IA_CLASSES = ("STANDARD_IA", "ONEZONE_IA")
IA_MINIMUM_DAYS = 30
# S3's waterfall: the classes a lifecycle rule may move objects to from each class (archive
# classes left out: Delta readers cannot read them).
NEXT_CLASSES = {
    "STANDARD": ("STANDARD_IA", "INTELLIGENT_TIERING", "ONEZONE_IA", "GLACIER_IR"),
    "STANDARD_IA": ("INTELLIGENT_TIERING", "ONEZONE_IA", "GLACIER_IR"),
    "INTELLIGENT_TIERING": ("ONEZONE_IA", "GLACIER_IR"),
    "ONEZONE_IA": (),
    "GLACIER_IR": (),
}
_NO_MINIMUM = "INTELLIGENT_TIERING or GLACIER_IR"


@dataclass(frozen=True)
class Transition:
    days: int
    storage_class: str
    leaves: str  # the tier the data leaves at this age
    enters: str  # the tier whose storage class it moves to


@dataclass(frozen=True)
class TableRule:
    """The lifecycle rule of one table (or, for rollups, one resolution's prefix)."""

    name: str  # a dataset, or metric_rollups[5m]
    prefix: str  # the key prefix of its data files
    transitions: tuple[Transition, ...]

    @property
    def rule(self) -> dict[str, Any]:
        return {
            "ID": f"{RULE_ID_PREFIX}tiering:{self.prefix}",
            "Filter": {"Prefix": self.prefix},
            "Status": "Enabled",
            "Transitions": [
                {"Days": t.days, "StorageClass": t.storage_class} for t in self.transitions
            ],
        }


@dataclass(frozen=True)
class LifecyclePlan:
    bucket: str
    delta_prefix: str  # every key of the Delta tables starts with it
    tables: tuple[TableRule, ...]  # every table, those without a transition too
    notes: tuple[str, ...]

    @property
    def rules(self) -> list[dict[str, Any]]:
        """Our rules, in a fixed order: the tables' (those with a transition), then the abort."""
        rules = [t.rule for t in self.tables if t.transitions]
        rules.append(
            {
                "ID": f"{RULE_ID_PREFIX}abort-incomplete-uploads:{self.delta_prefix}",
                "Filter": {"Prefix": self.delta_prefix},
                "Status": "Enabled",
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": ABORT_UPLOADS_AFTER_DAYS},
            }
        )
        return rules

    def owns(self, rule: dict[str, Any]) -> bool:
        """Whether ``rule`` is one of ours (replaced by ``--apply``) rather than the bucket's."""
        return str(rule.get("ID", "")).startswith(RULE_ID_PREFIX) and _rule_prefix(rule).startswith(
            self.delta_prefix
        )


@dataclass(frozen=True)
class Hazard:
    """A kept rule of the bucket that deletes or archives files of the Delta tables."""

    rule_id: str
    does: str  # e.g. "expires (deletes) objects after 10 days"
    scope: str  # what of the lake its filter reaches, in words

    def line(self) -> str:
        return f"rule {self.rule_id} {self.does} {self.scope}"


@dataclass(frozen=True)
class LifecycleResult:
    plan: LifecyclePlan
    configuration: dict[str, Any]  # the bucket's whole configuration, as applied or to apply
    kept: int  # rules of the bucket that are not ours, kept as they are
    changed: bool  # whether it differs from what the bucket had
    applied: bool
    hazards: tuple[Hazard, ...] = ()  # kept rules that would break the tables


def plan(config: ObsConfig) -> LifecyclePlan:
    """Our rules for the lake's Delta tables, checked against S3's limits (refusals are one
    line); reads nothing from S3."""
    root = config.lake_root
    if not root.startswith("s3://"):
        raise LakeError(
            f"lifecycle applies to S3 lakes only: lake.root {root} is a local folder, which has "
            "no storage classes"
        )
    bucket, _ = s3_location(root)
    delta_prefix = delta_prefix_of(root)
    lake = config.lake
    for tier in ("warm", "cold"):
        storage_class = lake.tier(tier).storage_class
        if storage_class in ARCHIVE_STORAGE_CLASSES:
            raise LakeError(
                f"lake.{tier}.storage_class {storage_class}: Delta readers cannot read objects in "
                f"{' or '.join(ARCHIVE_STORAGE_CLASSES)} without a restore, so the tables would "
                "fail to scan; use GLACIER_IR (instant retrieval) for the Delta lake"
            )
        if storage_class == "REDUCED_REDUNDANCY":
            raise LakeError(
                f"lake.{tier}.storage_class REDUCED_REDUNDANCY: S3 lifecycle cannot move objects "
                "into it; choose STANDARD_IA, INTELLIGENT_TIERING, ONEZONE_IA or GLACIER_IR"
            )
    classes = {t: lake.tier(t).storage_class for t in ("hot", "warm", "cold")}
    found, skipped = streams(config)
    tables = tuple(
        TableRule(s.name, delta_prefix + _data_prefix(s), _transitions(s, classes)) for s in found
    )
    notes = list(skipped)
    if classes["hot"] not in (None, "STANDARD"):
        notes.append(
            f"lake.hot.storage_class {classes['hot']} is not applied to Delta tables: their "
            "files are uploaded in the bucket's default class and moved from there by age"
        )
    return LifecyclePlan(bucket, delta_prefix, tables, tuple(notes))


def lifecycle(config: ObsConfig, *, apply: bool = False) -> LifecycleResult:
    """The bucket's lifecycle configuration with our rules in place of any earlier ones of ours
    and every other rule kept; written only with ``apply`` (and only when it changes), and
    refused while a kept rule is a :class:`Hazard`."""
    from obs_pipelines.lake.storage import S3Storage

    planned = plan(config)
    bucket = planned.bucket
    current = bucket_rules(config)
    others = [r for r in current if not planned.owns(r)]
    configuration = {"Rules": others + planned.rules}
    changed = configuration["Rules"] != current
    found = hazards(others, bucket, planned.delta_prefix)
    if apply and found:
        raise LakeError(
            f"not applied: bucket {bucket} keeps "
            + "; ".join(h.line() for h in found)
            + ": it would delete or make unreadable files the Delta logs reference, breaking "
            f"the tables; remove the rule or narrow its filter away from {planned.delta_prefix} "
            "(aws s3api put-bucket-lifecycle-configuration), then rerun"
        )
    if apply and changed:
        store = S3Storage(config.lake_root, config.lake)
        with store.errors(f"write the lifecycle configuration of bucket {bucket}"):
            store.client.put_bucket_lifecycle_configuration(
                Bucket=bucket, LifecycleConfiguration=configuration
            )
    return LifecycleResult(planned, configuration, len(others), changed, apply, found)


def bucket_rules(config: ObsConfig) -> list[dict[str, Any]]:
    """The lifecycle rules of the lake's bucket (one GetBucketLifecycleConfiguration; none is
    an empty list)."""
    from botocore.exceptions import ClientError

    from obs_pipelines.lake.storage import S3Storage

    store = S3Storage(config.lake_root, config.lake)
    bucket = store.bucket
    with store.errors(f"read the lifecycle configuration of bucket {bucket}"):
        try:
            return list(store.client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NoSuchLifecycleConfiguration":
                raise
            return []


def delta_prefix_of(root: str) -> str:
    """The key prefix every file of the Delta tables of an ``s3://`` root starts with."""
    _, prefix = s3_location(root)
    return "/".join(p for p in (prefix, DELTA_FOLDER) if p) + "/"


def hazards(rules: list[dict[str, Any]], bucket: str, delta_prefix: str) -> tuple[Hazard, ...]:
    """The enabled ``rules`` that expire current objects or move them to an archive class and
    whose prefix reaches ``delta_prefix`` (see the module docstring)."""
    found = []
    for rule in rules:
        if rule.get("Status", "Enabled") != "Enabled":
            continue
        prefix = _rule_prefix(rule)
        if not (delta_prefix.startswith(prefix) or prefix.startswith(delta_prefix)):
            continue
        scope = (
            f"under s3://{bucket}/{prefix}, which holds every Delta log and data file of the lake"
            if delta_prefix.startswith(prefix)
            else f"under s3://{bucket}/{prefix}, files of the Delta tables"
        )
        if _filtered(rule):
            scope += " (its tag/size filter may narrow it; not relied on)"
        does = []
        expiration = rule.get("Expiration") or {}
        if "Days" in expiration:
            does.append(f"expires (deletes) objects {_day_count(expiration['Days'])} after upload")
        elif "Date" in expiration:
            does.append(f"expires (deletes) objects from {expiration['Date']}")
        for t in rule.get("Transitions") or []:
            if t.get("StorageClass") in ARCHIVE_STORAGE_CLASSES:
                when = f"after {_day_count(t['Days'])}" if "Days" in t else f"from {t.get('Date')}"
                does.append(
                    f"moves objects to {t['StorageClass']} {when} (unreadable without a restore)"
                )
        if does:
            found.append(Hazard(str(rule.get("ID", "(no ID)")), " and ".join(does), scope))
    return tuple(found)


def describe(result: LifecycleResult) -> list[str]:
    """What the configuration does, in plain words, one line each."""
    planned = result.plan
    root = f"s3://{planned.bucket}/"
    lines = []
    for table in planned.tables:
        if not table.transitions:
            lines.append(f"{table.name}: stays in the bucket's default class (no colder class)")
            continue
        moves = ", then ".join(
            f"to {t.storage_class} at {_day_count(t.days)} (leaving {t.leaves})"
            for t in table.transitions
        )
        lines.append(f"{table.name}: {root}{table.prefix}* moves {moves}")
    lines.append(
        f"uploads under {root}{planned.delta_prefix} left incomplete for "
        f"{ABORT_UPLOADS_AFTER_DAYS} day are aborted"
    )
    lines.append(
        "no obs rule deletes anything: retention deletes days by Delta commits and VACUUM (a "
        "table's log references its files)"
    )
    lines += [
        f"warning: bucket {planned.bucket} {h.line()}: it would delete or make unreadable files "
        "the Delta logs reference, breaking the tables; remove it or narrow its filter away from "
        f"{planned.delta_prefix}"
        for h in result.hazards
    ]
    lines.append(
        "ages count from each file's upload: a day rewritten later starts again in STANDARD"
    )
    lines += [f"note: {note}" for note in planned.notes]
    lines.append(f"other rules of bucket {planned.bucket} kept as they are: {result.kept}")
    if not result.changed:
        lines.append(f"bucket {planned.bucket} already has this configuration: nothing to change")
    elif result.applied:
        lines.append(
            f"applied: bucket {planned.bucket} has {len(result.configuration['Rules'])} rules"
        )
    elif result.hazards:
        held = ", ".join(h.rule_id for h in result.hazards)
        lines.append(f"dry run: nothing was changed; --apply refuses while {held} is kept")
    else:
        lines.append("dry run: nothing was changed; rerun with --apply to apply it")
    return lines


def _transitions(stream: Stream, classes: dict[str, str | None]) -> tuple[Transition, ...]:
    """The stream's transitions: at the age each stage ends (but the last, which is deletion),
    to the next stage's class; checked against S3's waterfall and IA minimums."""
    planned: list[Transition] = []
    for (leaves, age), (enters, _) in zip(stream.stages, stream.stages[1:], strict=False):
        target = classes[enters]
        current = planned[-1].storage_class if planned else "STANDARD"
        if target in (None, "STANDARD") or target == current:
            continue
        days = _days(age)
        if planned and planned[-1].days == days:  # the data skips a tier: go straight on
            planned.pop()
        planned.append(Transition(days, target, leaves, enters))
    previous, since = "STANDARD", 0
    for t in planned:
        if t.storage_class not in NEXT_CLASSES[previous]:
            allowed = NEXT_CLASSES[previous]
            fix = (
                f"choose {', '.join(allowed)} for it"
                if allowed
                else f"S3 moves {previous} objects only to archive classes: set it to null"
            )
            raise LakeError(
                f"{stream.name}: S3 lifecycle cannot move objects from {previous} to "
                f"{t.storage_class} (lake.{t.enters}.storage_class); {fix}"
            )
        if (t.storage_class in IA_CLASSES or previous in IA_CLASSES) and (
            t.days - since < IA_MINIMUM_DAYS
        ):
            after = f", {_day_count(t.days - since)} after entering {previous}" if since else ""
            other = (
                f", or choose {_NO_MINIMUM} for lake.{t.enters}.storage_class"
                if previous not in IA_CLASSES
                else ""
            )
            raise LakeError(
                f"{stream.name}: S3 moves objects to {t.storage_class} only after "
                f"{IA_MINIMUM_DAYS} days in {previous} (its minimum), but {stream.name} leaves "
                f"{t.leaves} at {_day_count(t.days)}{after}; raise that age in retention to "
                f"{since + IA_MINIMUM_DAYS}d or more{other}"
            )
        previous, since = t.storage_class, t.days
    return tuple(planned)


def _data_prefix(stream: Stream) -> str:
    """The key prefix of a table's data files (its log, under ``_delta_log/``, is not in it)."""
    if stream.dataset == ROLLUPS:
        return f"{ROLLUPS}/resolution={stream.resolution}/"
    return f"{stream.dataset}/{DAY_COLUMN}="


def _days(age: timedelta) -> int:
    return math.ceil(age / timedelta(days=1))


def _filtered(rule: dict[str, Any]) -> bool:
    """Whether the rule's filter also has tag or object-size conditions."""
    filtered = rule.get("Filter") or {}
    conditions = {**filtered, **(filtered.get("And") or {})}
    return any(
        k in conditions for k in ("Tag", "Tags", "ObjectSizeGreaterThan", "ObjectSizeLessThan")
    )


def _rule_prefix(rule: dict[str, Any]) -> str:
    """A rule's key prefix, wherever S3 put it (Filter, Filter.And, or the legacy Prefix)."""
    filtered = rule.get("Filter") or {}
    return str(
        filtered.get("Prefix")
        or (filtered.get("And") or {}).get("Prefix")
        or rule.get("Prefix")
        or ""
    )


def _day_count(count: int) -> str:
    return f"{count} day" if count == 1 else f"{count} days"
