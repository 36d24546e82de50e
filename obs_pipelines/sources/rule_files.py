"""Prometheus rule files named in the config (``sources.alert_rule_files``).

The rules Prometheus evaluates live in files that Prometheus is configured with; whether a rule
exists for a service is known from those files alone, with no snapshot of ``/api/v1/rules``
(``obs materialize`` takes none). Each entry is a path or a glob, relative to the config file,
as in Prometheus's own ``rule_files``. They are checked when the config loads (each must exist,
or a glob match at least one file, and parse as Prometheus rule groups) and read again at every
catalog build into ``configured_alert_rules``: one row per alerting rule, which the coverage
report counts for the alerts pillar. Recording rules are not alerts and are left out.

A rule's service is its ``service`` label, else its ``job`` label: the same rule that gives an
alert its service (``sources/alerts.py``), so a rule and the alerts it fires name one service.
"""

import glob
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import yaml

from obs_pipelines.durations import parse_duration
from obs_pipelines.errors import ConfigError
from obs_pipelines.schemas import LABELS

if TYPE_CHECKING:
    import duckdb

    from obs_pipelines.config import ObsConfig

KEY = "sources.alert_rule_files"
TABLE = "configured_alert_rules"
SERVICE_LABELS = ("service", "job")

CONFIGURED_ALERT_RULES = pa.schema(
    [
        pa.field("file", pa.string(), nullable=False),  # absolute path of the rule file
        pa.field("group", pa.string(), nullable=False),
        pa.field("name", pa.string(), nullable=False),  # the rule's `alert`
        pa.field("expr", pa.string(), nullable=False),  # on one line, as Prometheus prints it
        pa.field("for_seconds", pa.float64(), nullable=False),
        pa.field("labels", LABELS),
        pa.field("severity", pa.string()),
        pa.field("service", pa.string()),  # label `service`, else `job`
    ]
)


def rule_file_paths(config: "ObsConfig") -> list[Path]:
    """Every file ``sources.alert_rule_files`` names, globs expanded, in the order given;
    a missing file or a glob matching nothing is refused, naming the entry."""
    found: dict[Path, None] = {}
    for index, entry in enumerate(config.sources.alert_rule_files):
        where = f"{KEY}[{index}]"
        resolved = config.resolve_path(entry)
        if "://" in resolved:
            raise ConfigError(f"{where}: '{entry}' is a URL; give a local path to the rule file")
        if glob.has_magic(resolved):
            matches = sorted(Path(m) for m in glob.glob(resolved, recursive=True))
            files = [m for m in matches if m.is_file()]
            if not files:
                raise ConfigError(
                    f"{where}: '{entry}' matches no file ({resolved}); fix the pattern "
                    "(relative to the config file)"
                )
        else:
            path = Path(resolved)
            if not path.is_file():
                what = "is a folder" if path.is_dir() else "not found"
                raise ConfigError(
                    f"{where}: {resolved} {what}; give the path of a Prometheus rule file "
                    "(relative to the config file)"
                )
            files = [path]
        for path in files:
            found.setdefault(path, None)
    return list(found)


def read_rule_file(path: Path) -> list[dict[str, Any]]:
    """The alerting rules of one Prometheus rule file, as rows of ``configured_alert_rules``;
    a file that is not Prometheus rule groups is refused with one line naming what is wrong."""
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(
            f"{KEY}: {path} cannot be read ({exc.strerror}); fix its permissions"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(
            f"{KEY}: {path} is not valid YAML{at}; fix it (promtool check rules)"
        ) from None

    def refuse(problem: str) -> ConfigError:
        return ConfigError(
            f"{KEY}: {path} is not a Prometheus rule file: {problem}; fix it (promtool check rules)"
        )

    if not isinstance(raw, dict) or not isinstance(raw.get("groups"), list):
        raise refuse("it has no `groups:` list")
    if set(raw) - {"groups"}:
        raise refuse(f"unknown top-level key {sorted(set(raw) - {'groups'})[0]!r}")
    rows: list[dict[str, Any]] = []
    names: set[str] = set()
    for g, group in enumerate(raw["groups"]):
        if (
            not isinstance(group, dict)
            or not isinstance(group.get("name"), str)
            or not group["name"]
        ):
            raise refuse(f"group {g + 1} has no name")
        name = group["name"]
        if name in names:
            raise refuse(f"group '{name}' is defined twice")
        names.add(name)
        rules = group.get("rules") or []
        if not isinstance(rules, list):
            raise refuse(f"group '{name}': `rules` is not a list")
        for r, rule in enumerate(rules):
            row = _rule_row(rule, f"group '{name}', rule {r + 1}", refuse)
            if row is not None:
                rows.append({"file": str(path), "group": name, **row})
    return rows


def _rule_row(rule: Any, where: str, refuse: Any) -> dict[str, Any] | None:
    if not isinstance(rule, dict):
        raise refuse(f"{where} is not a mapping")
    kinds = [k for k in ("alert", "record") if k in rule]
    if len(kinds) != 1:
        raise refuse(f"{where} must have exactly one of `alert` or `record`")
    title = rule[kinds[0]]
    if not isinstance(title, str) or not title:
        raise refuse(f"{where}: `{kinds[0]}` must be a non-empty name")
    if rule.get("expr") is None or isinstance(rule["expr"], dict | list) or not str(rule["expr"]):
        raise refuse(f"{where} ('{title}') has no `expr`")
    for key in ("labels", "annotations"):
        if rule.get(key) is not None and not isinstance(rule[key], dict):
            raise refuse(f"{where} ('{title}'): `{key}` is not a mapping")
    try:
        wait = parse_duration(str(rule.get("for", "0s"))).total_seconds()
    except ValueError:
        raise refuse(f"{where} ('{title}'): `for` is not a duration such as 5m") from None
    if kinds[0] == "record":
        return None
    labels = {str(k): str(v) for k, v in (rule.get("labels") or {}).items()}
    return {
        "name": title,
        "expr": " ".join(str(rule["expr"]).split()),
        "for_seconds": wait,
        "labels": sorted(labels.items()),
        "severity": labels.get("severity"),
        "service": next((labels[k] for k in SERVICE_LABELS if labels.get(k)), None),
    }


def check_rule_files(config: "ObsConfig") -> None:
    """Refuse, at load, rule files that are missing or are not Prometheus rule groups."""
    for path in rule_file_paths(config):
        read_rule_file(path)


def configured_rules_table(config: "ObsConfig") -> pa.Table:
    """``configured_alert_rules``: every alerting rule of the configured rule files."""
    rows = [row for path in rule_file_paths(config) for row in read_rule_file(path)]
    return pa.table(
        {f.name: pa.array([r[f.name] for r in rows], f.type) for f in CONFIGURED_ALERT_RULES},
        schema=CONFIGURED_ALERT_RULES,
    )


def create_configured_rules_table(con: "duckdb.DuckDBPyConnection", config: "ObsConfig") -> None:
    """(Re)create ``configured_alert_rules`` in the catalog from the config's rule files (an
    empty table when none are configured, so reports can always read it)."""
    con.register("_configured_rules", configured_rules_table(config))
    try:
        con.execute(f"CREATE OR REPLACE TABLE {TABLE} AS SELECT * FROM _configured_rules")
    finally:
        con.unregister("_configured_rules")
