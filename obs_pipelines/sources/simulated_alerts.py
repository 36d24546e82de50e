"""Simulated alerts for the embedded default: what Prometheus and Alertmanager would have said.

The alerts follow the simulator's weekly incidents (``simulator.INCIDENTS``) the way the rules in
``rules/*.yml`` would react to them, plus the everyday noise a real rule set makes:

- HighAPIErrorRate fires a couple of minutes into "api-outage" (the 5-minute error ratio passes 5%
  within a minute, then ``for: 2m``) and resolves a few minutes after it, once the ratio decays;
- MarketDataLag fires about a minute into "market-data-lag", on each market-data instance;
- HighAPIResponseTime fires late in "api-latency" (p95 crosses 2 s only as slow requests pile up,
  then ``for: 5m``);
- nothing fires for "trades-silent-errors": its 4% error share stays under the 5% threshold, the
  incident nobody was paged for;
- HighCPUUsage on a batch node flaps on and off every few minutes for an hour every day (12:30 to
  13:30 UTC) and matches no incident; it has no ``service`` label, so it maps to no service;
- DatabaseConnectionPoolExhausted fires daily at 15:00 for about a minute and a half (transient);
- DiskSpaceLow fills a batch node's disk every Sunday night across midnight and the week boundary.

Each alert is a list of *episodes* (times its expression is true), a pure function of the seed and
the schedule. Evaluations sit on a fixed grid (``evaluation_interval``, a per-group phase); an
evaluation inside an episode is ``pending`` until ``for`` has passed since the episode's first
evaluation, then ``firing``, exactly as Prometheus's rule manager decides. The result is ALERTS
samples, turned into fragments by the same :func:`alerts.build_fragments` as real ones, so any
window can be produced on its own and hourly windows stitch into the same intervals as one long one.
"""

import importlib.resources
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from importlib.resources.abc import Traversable
from operator import attrgetter
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pyarrow as pa
import yaml

from obs_pipelines.config import AlertDerivationConfig, SimulatorConfig
from obs_pipelines.durations import parse_duration
from obs_pipelines.errors import SourceError
from obs_pipelines.fingerprint import fingerprint
from obs_pipelines.schemas import ALERTMANAGER_ALERTS, LABELS
from obs_pipelines.sources.alerts import AlertSamples, build_fragments, rules_table
from obs_pipelines.sources.simulator import DAY_MS, INCIDENTS, WEEK_MS, hash_int
from obs_pipelines.windows import TimeWindow

# The seed's rule files ship inside the package: the repository's top-level rules/ is installed as
# the package obs_pipelines.rules (pyproject's package-dir), so a wheel has them too.
RULES_PACKAGE = "obs_pipelines.rules"
# None: the installed package's rule files; tests may pass another folder instead.
RULES_DIR: Path | None = None
# 1970-01-01 was a Thursday; weekly schedules count from Monday 00:00 UTC (as the incidents do).
_MONDAY_MS = 4 * DAY_MS
MINUTE_MS = 60_000
# Prometheus re-sends firing alerts every minute (resend delay) with endsAt = now + 4 x that.
_RESEND_MS = 60_000
GENERATOR_HOST = "http://prometheus.simulated:9090"


# -- rules ----------------------------------------------------------------------------------------


def rule_files(rules_dir: Path | Traversable | None = RULES_DIR) -> list[Traversable]:
    """The ``*.yml`` rule files, in name order; none is an error (the simulated alerts, rules and
    Alertmanager snapshot are all built from them)."""
    folder = _installed_rules() if rules_dir is None else rules_dir
    files = sorted(
        (
            path
            for path in (folder.iterdir() if folder and folder.is_dir() else [])
            if path.name.endswith(".yml") and path.is_file()
        ),
        key=attrgetter("name"),
    )
    if files:
        return files
    if rules_dir is None:
        raise SourceError(
            f"no alert rule files (*.yml) found in the installed package ({RULES_PACKAGE}); "
            "reinstall obs-pipelines"
        )
    raise SourceError(
        f"no alert rule files (*.yml) in {rules_dir}; the simulated alerts are built from them"
    )


def _installed_rules() -> Traversable | None:
    try:
        return importlib.resources.files(RULES_PACKAGE)
    except ModuleNotFoundError:  # installed without it
        return None


def load_rule_groups(
    rules_dir: Path | Traversable | None, interval: timedelta
) -> list[dict[str, Any]]:
    """The rule files as Prometheus's ``/api/v1/rules`` would list them (groups of rules)."""
    files = rule_files(rules_dir)
    groups = []
    for path in files:
        for group in (yaml.safe_load(path.read_text()) or {}).get("groups", []):
            rules = []
            for rule in group.get("rules", []):
                alerting = "alert" in rule
                rules.append(
                    {
                        "name": rule["alert"] if alerting else rule["record"],
                        # Prometheus prints the parsed expression on one line.
                        "query": " ".join(str(rule["expr"]).split()),
                        "duration": parse_duration(str(rule.get("for", "0s"))).total_seconds(),
                        "labels": {k: str(v) for k, v in (rule.get("labels") or {}).items()},
                        "annotations": {
                            k: str(v) for k, v in (rule.get("annotations") or {}).items()
                        },
                        "health": "ok",
                        "type": "alerting" if alerting else "recording",
                        "state": "inactive" if alerting else None,
                    }
                )
            groups.append(
                {
                    "name": group["name"],
                    "file": f"rules/{path.name}",
                    "interval": interval.total_seconds(),
                    "rules": rules,
                }
            )
    return groups


# -- the roster of simulated alerts ---------------------------------------------------------------

Episodes = Callable[[int, int], list[tuple[int, int]]]


def _recurring(origin_ms: int, period_ms: int, begin_ms: int, end_ms: int) -> Episodes:
    """Episodes ``[origin + k·period + begin, origin + k·period + end)`` for every period k."""

    def overlapping(a_ms: int, b_ms: int) -> list[tuple[int, int]]:
        first = (a_ms - origin_ms - end_ms) // period_ms
        last = (b_ms - origin_ms - begin_ms) // period_ms
        spans = []
        for k in range(first, last + 1):
            base = origin_ms + k * period_ms
            if base + end_ms > a_ms and base + begin_ms < b_ms:
                spans.append((base + begin_ms, base + end_ms))
        return spans

    return overlapping


def _flapping(seed: int, begin_ms: int, end_ms: int) -> Episodes:
    """Daily between ``begin`` and ``end``: true for 6 to 8 minutes, false for 1 to 3, repeating.

    With ``for: 5m`` each true stretch fires for one to three minutes: a page every few minutes.
    """

    def day_spans(day: int) -> list[tuple[int, int]]:
        spans, cursor, cycle = [], day * DAY_MS + begin_ms, 0
        while cursor < day * DAY_MS + end_ms:
            on = 6 * MINUTE_MS + hash_int(seed, "flap-on", day, cycle) % 8 * 15_000
            off = MINUTE_MS + hash_int(seed, "flap-off", day, cycle) % 8 * 15_000
            spans.append((cursor, min(cursor + on, day * DAY_MS + end_ms)))
            cursor += on + off
            cycle += 1
        return spans

    def overlapping(a_ms: int, b_ms: int) -> list[tuple[int, int]]:
        return [
            (s, e)
            for day in range((a_ms - end_ms) // DAY_MS, (b_ms - begin_ms) // DAY_MS + 1)
            for s, e in day_spans(day)
            if e > a_ms and s < b_ms
        ]

    return overlapping


def _incident(name: str, lead: timedelta, lag: timedelta) -> Episodes:
    """True from ``lead`` after the weekly incident starts until ``lag`` after it ends."""
    incident = next(i for i in INCIDENTS if i.name == name)
    begin = _ms(incident.start + lead)
    return _recurring(_MONDAY_MS, WEEK_MS, begin, _ms(incident.start + incident.duration + lag))


@dataclass(frozen=True)
class SimulatedAlert:
    alertname: str
    labels: dict[str, str]  # the expression's output labels; the rule's labels are added on top
    episodes: Episodes


def roster(config: SimulatorConfig) -> list[SimulatedAlert]:
    """Every simulated alert series, with the episodes in which its expression is true."""
    seed = config.seed
    alerts = [
        SimulatedAlert(
            "HighAPIErrorRate",
            {"endpoint": endpoint},
            _incident(
                "api-outage",
                lead=timedelta(seconds=50 + 10 * j),
                lag=timedelta(seconds=250 - 20 * j),
            ),
        )
        for j, endpoint in enumerate(("/api/trades", "/api/recommendations", "/api/market/quotes"))
    ]
    alerts += [
        SimulatedAlert(
            "MarketDataLag",
            {
                "instance": f"market-data-{i}:9100",
                "job": "market-data",
                "pipeline": "market-data",
                "source": "polygon",
            },
            _incident(
                "market-data-lag", lead=timedelta(seconds=15 + 5 * i), lag=timedelta(seconds=15)
            ),
        )
        for i in range(config.instances_per_service)
    ]
    alerts += [
        SimulatedAlert(
            "HighAPIResponseTime",
            {"endpoint": endpoint},
            _incident("api-latency", lead=timedelta(minutes=12 + j), lag=timedelta(minutes=3)),
        )
        for j, endpoint in enumerate(
            ("/api/market/quotes", "/api/portfolio", "/api/recommendations", "/api/trades")
        )
    ]
    alerts += [
        SimulatedAlert(
            "HighCPUUsage",
            {"instance": "batch-node-1:9100"},
            _flapping(
                seed, _ms(timedelta(hours=12, minutes=30)), _ms(timedelta(hours=13, minutes=30))
            ),
        ),
        SimulatedAlert(
            "DatabaseConnectionPoolExhausted",
            {"instance": "postgresql-0:9100", "job": "postgresql"},
            _recurring(
                0,
                DAY_MS,
                _ms(timedelta(hours=15, seconds=20)),
                _ms(timedelta(hours=15, minutes=3, seconds=50)),
            ),
        ),
        SimulatedAlert(
            "DiskSpaceLow",
            {
                "instance": "batch-node-1:9100",
                "job": "node",
                "device": "/dev/sdb1",
                "fstype": "ext4",
                "mountpoint": "/data",
            },
            _recurring(
                _MONDAY_MS,
                WEEK_MS,
                _ms(timedelta(days=6, hours=23, minutes=20)),
                _ms(timedelta(days=7, minutes=50)),
            ),
        ),
    ]
    return alerts


def _ms(delta: timedelta) -> int:
    return round(delta.total_seconds() * 1000)


# -- evaluation -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Rule:
    group: str
    expr: str
    for_ms: int
    labels: dict[str, str]
    annotations: dict[str, str]


@dataclass(frozen=True)
class _Activity:
    """One episode of one alert, evaluated: its evaluations in a range and their states."""

    alert: SimulatedAlert
    rule: _Rule
    ts_ms: np.ndarray
    firing: np.ndarray  # bool per evaluation
    fired_at_ms: int  # first firing evaluation of the episode (FiredAt)


class AlertSimulation:
    """The simulated rule manager: rules from ``rules_dir``, alerts from :func:`roster`."""

    def __init__(
        self,
        config: SimulatorConfig,
        derivation: AlertDerivationConfig | None = None,
        rules_dir: Path | Traversable | None = RULES_DIR,
    ) -> None:
        self.config = config
        self.derivation = derivation or AlertDerivationConfig()
        self.interval_ms = _ms(self.derivation.evaluation_interval)
        self.groups = load_rule_groups(rules_dir, self.derivation.evaluation_interval)
        self.rules = {
            rule["name"]: _Rule(
                group=group["name"],
                expr=rule["query"],
                for_ms=round(rule["duration"] * 1000),
                labels=rule["labels"],
                annotations=rule["annotations"],
            )
            for group in self.groups
            for rule in group["rules"]
            if rule["type"] == "alerting"
        }
        self.alerts = roster(config)
        missing = sorted({a.alertname for a in self.alerts} - set(self.rules))
        if missing:
            raise SourceError(
                f"the rule files in {rules_dir or RULES_PACKAGE} lack the alert rules {missing} "
                "the simulator uses; restore them from the repository's rules/ folder and "
                "reinstall obs-pipelines"
            )

    def phase_ms(self, group: str) -> int:
        """Each rule group evaluates on its own fixed phase of the interval grid."""
        return hash_int(self.config.seed, "rule-group", group) % self.interval_ms

    def alert_labels(self, alert: SimulatedAlert) -> dict[str, str]:
        return {**alert.labels, **self.rules[alert.alertname].labels, "alertname": alert.alertname}

    def activity(self, a_ms: int, b_ms: int) -> Iterator[_Activity]:
        """Every evaluation in ``[a, b)`` at which some alert is active (pending or firing)."""
        interval = self.interval_ms
        for alert in self.alerts:
            rule = self.rules[alert.alertname]
            phase = self.phase_ms(rule.group)
            for begin, end in alert.episodes(a_ms, b_ms):
                k_first = -((phase - begin) // interval)  # first evaluation at or after begin
                k_last = -((phase - end) // interval) - 1  # last evaluation before end
                k_from = max(k_first, -((phase - a_ms) // interval))
                k_to = min(k_last, -((phase - b_ms) // interval) - 1)
                first_eval = k_first * interval + phase
                fired_at = first_eval + math.ceil(rule.for_ms / interval) * interval
                if k_from > k_to:
                    continue
                ts = np.arange(k_from, k_to + 1, dtype=np.int64) * interval + phase
                yield _Activity(alert, rule, ts, ts - first_eval >= rule.for_ms, fired_at)

    def samples(self, window: TimeWindow) -> AlertSamples:
        """ALERTS samples in ``window``, as Prometheus would have stored them."""
        label_sets: list[dict[str, str]] = []
        slots: dict[tuple[int, str], int] = {}
        series_parts, ts_parts = [], []
        for act in self.activity(window.start_ms, window.end_ms):
            for state, mask in (("pending", ~act.firing), ("firing", act.firing)):
                if not mask.any():
                    continue
                slot = slots.setdefault((id(act.alert), state), len(label_sets))
                if slot == len(label_sets):
                    label_sets.append({**self.alert_labels(act.alert), "alertstate": state})
                series_parts.append(np.full(int(mask.sum()), slot, dtype=np.int64))
                ts_parts.append(act.ts_ms[mask])
        return AlertSamples(
            label_sets=label_sets,
            series=np.concatenate(series_parts) if series_parts else np.empty(0, np.int64),
            ts_ms=np.concatenate(ts_parts) if ts_parts else np.empty(0, np.int64),
        )

    def firing_at(self, moment_ms: int) -> list[_Activity]:
        """Alerts firing at the last evaluation of their group before ``moment``."""
        window = self.interval_ms
        return [
            act
            for act in self.activity(moment_ms - window, moment_ms)
            if act.ts_ms.size and bool(act.firing[-1])
        ]

    def rule_states(self, moment_ms: int) -> dict[str, str]:
        """Each alerting rule's state at ``moment`` (firing beats pending beats inactive)."""
        states = {name: "inactive" for name in self.rules}
        for act in self.activity(moment_ms - self.interval_ms, moment_ms):
            if act.ts_ms.size:
                state = "firing" if act.firing[-1] else "pending"
                if states[act.alert.alertname] != "firing":
                    states[act.alert.alertname] = state
        return states


# -- the three table sources ----------------------------------------------------------------------


class _SimulatedAlertSource:
    """What the three simulated alert datasets share: one simulated rule manager."""

    name = "simulator"

    def __init__(
        self,
        config: SimulatorConfig,
        derivation: AlertDerivationConfig | None = None,
        rules_dir: Path | Traversable | None = RULES_DIR,
    ) -> None:
        self.simulation = AlertSimulation(config, derivation, rules_dir)


class SimulatedAlertFragments(_SimulatedAlertSource):
    """``alert_fragments`` from the simulated rule manager (the embedded default)."""

    dataset = "alert_fragments"

    def read(self, window: TimeWindow) -> Iterator[pa.Table]:
        sim = self.simulation
        yield build_fragments(sim.samples(window), window, sim.derivation, self.name)


class SimulatedAlertRules(_SimulatedAlertSource):
    """``alert_rules``: the rule files as a Prometheus loaded with them would list them.

    Stamped like :class:`alerts.PrometheusAlertRules`: ``snapshot_at`` = the window's end, and each
    alerting rule's ``state`` is the simulated state at that moment.
    """

    dataset = "alert_rules"

    def read(self, window: TimeWindow) -> Iterator[pa.Table]:
        states = self.simulation.rule_states(window.end_ms)
        groups = [
            {
                **group,
                "rules": [
                    {**rule, "state": states.get(rule["name"], rule["state"])}
                    for rule in group["rules"]
                ],
            }
            for group in self.simulation.groups
        ]
        yield rules_table(groups, window.end)


class SimulatedAlertmanagerAlerts(_SimulatedAlertSource):
    """``alertmanager_alerts``: what Alertmanager would list at the window's end.

    The firing alerts at the last evaluation before ``window.end``, as Prometheus sends them
    (startsAt = FiredAt, endsAt = last evaluation + 4 resend delays), all active (no silences),
    routed to a receiver by severity. ``snapshot_at`` is the window's end.
    """

    dataset = "alertmanager_alerts"

    def read(self, window: TimeWindow) -> Iterator[pa.Table]:
        sim = self.simulation
        firing = sim.firing_at(window.end_ms)
        labels = [sim.alert_labels(act.alert) for act in firing]
        last_eval = [int(act.ts_ms[-1]) for act in firing]
        resend = max(sim.interval_ms, _RESEND_MS)
        columns: dict[str, Any] = {
            "snapshot_at": _ms_array([window.end_ms] * len(firing)),
            "fingerprint": pa.array([fingerprint(x) for x in labels], pa.string()),
            "alertname": pa.array([x["alertname"] for x in labels], pa.string()),
            "severity": pa.array([x.get("severity") for x in labels], pa.string()),
            "category": pa.array([x.get("category") for x in labels], pa.string()),
            "service": pa.array([x.get("service") or x.get("job") for x in labels], pa.string()),
            "labels": pa.array([sorted(x.items()) for x in labels], LABELS),
            "annotations": pa.array(
                [
                    sorted((k, _render(v, x)) for k, v in act.rule.annotations.items())
                    for act, x in zip(firing, labels, strict=True)
                ],
                LABELS,
            ),
            "starts_at": _ms_array([act.fired_at_ms for act in firing]),
            "ends_at": _ms_array([t + 4 * resend for t in last_eval]),
            "updated_at": _ms_array(last_eval),
            "state": pa.array(["active"] * len(firing), pa.string()),
            "silenced_by": pa.array([[] for _ in firing], pa.list_(pa.string())),
            "inhibited_by": pa.array([[] for _ in firing], pa.list_(pa.string())),
            "receivers": pa.array(
                [
                    ["oncall-pager" if x.get("severity") == "critical" else "team-chat"]
                    for x in labels
                ],
                pa.list_(pa.string()),
            ),
            "generator_url": pa.array(
                [
                    f"{GENERATOR_HOST}/graph?g0.expr={quote(act.rule.expr, safe='')}&g0.tab=1"
                    for act in firing
                ],
                pa.string(),
            ),
        }
        yield pa.table([columns[f.name] for f in ALERTMANAGER_ALERTS], schema=ALERTMANAGER_ALERTS)


def _ms_array(values: list[int]) -> pa.Array:
    return pa.array(values, pa.int64()).cast(pa.timestamp("ms"))


_LABEL_TEMPLATE = re.compile(r"\{\{\s*\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")


def _render(template: str, labels: dict[str, str]) -> str:
    """Fill ``{{ $labels.x }}`` as Prometheus would; ``{{ $value }}`` is left as written (the
    simulation models when an expression is true, not its value)."""
    return _LABEL_TEMPLATE.sub(lambda m: labels.get(m.group(1), ""), template)
