"""Prometheus's alert relabelling, reproduced so alert fingerprints are Alertmanager's.

The relabel cases are Prometheus's own (``model/relabel/relabel_test.go``), written as the YAML
``/api/v1/status/config`` shows; the regex and ``$`` expansion cases pin Go's meaning where Python's
``re`` would differ, and a real Prometheus (Go's regexp) relabels the tricky ones next to us. The
end-to-end test runs a real Prometheus relabelling its alerts into a real Alertmanager and compares
fingerprints with the ones Alertmanager reports.
"""

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from obs_pipelines.config import (
    AlertDerivationConfig,
    AlertmanagerSourceConfig,
    PrometheusSourceConfig,
)
from obs_pipelines.errors import SourceError
from obs_pipelines.fingerprint import fingerprint
from obs_pipelines.sources.alertmanager import AlertmanagerAlerts
from obs_pipelines.sources.alerts import (
    AlertContext,
    AlertSamples,
    PrometheusAlertFragments,
    build_fragments,
)
from obs_pipelines.sources.relabel import (
    AlertRelabelling,
    Dialect,
    GoRegex,
    parse_rules,
    relabel,
)
from obs_pipelines.windows import TimeWindow
from tests import ops_servers, servers
from tests.test_alerts_source import read_window, until_rows

V2_42 = Dialect.of("2.42.0+ds")
V3 = Dialect.of("3.4.1")
SPLIT = {"source_labels": ["a"], "regex": "some-([^-]+)-([^,]+)", "action": "replace"}
PORTS = {"__tmp_port": "1234", "__port1": "1234", "__port2": "5678"}


def rules(*entries: dict[str, Any], dialect: Dialect = V2_42) -> Any:
    return parse_rules(list(entries), "alerting.alert_relabel_configs", dialect)


# (input labels, relabel configs, output labels or None when dropped): relabel_test.go's cases.
PROMETHEUS_CASES = [
    (
        {"a": "foo", "b": "bar", "c": "baz"},
        [{"source_labels": ["a"], "regex": "f(.*)", "target_label": "d",
          "replacement": "ch${1}-ch${1}"}],
        {"a": "foo", "b": "bar", "c": "baz", "d": "choo-choo"},
    ),
    (
        {"a": "foo", "b": "bar", "c": "baz"},
        [{"source_labels": ["a", "b"], "regex": "f(.*);(.*)r", "target_label": "a",
          "replacement": "b${1}${2}m"},
         {"source_labels": ["c", "a"], "regex": "(b).*b(.*)ba(.*)", "target_label": "d",
          "replacement": "$1$2$2$3"}],
        {"a": "boobam", "b": "bar", "c": "baz", "d": "boooom"},
    ),
    (
        {"a": "foo"},
        [{"source_labels": ["a"], "regex": ".*o.*", "action": "drop"},
         {"source_labels": ["a"], "regex": "f(.*)", "target_label": "d"}],
        None,
    ),
    ({"a": "abc"}, [{"source_labels": ["a"], "regex": ".*(b).*", "target_label": "d"}],
     {"a": "abc", "d": "b"}),
    ({"a": "foo"}, [{"source_labels": ["a"], "regex": "no-match", "action": "drop"}], {"a": "foo"}),
    ({"a": "foo"}, [{"source_labels": ["a"], "regex": "f|o", "action": "drop"}], {"a": "foo"}),
    ({"a": "foo"}, [{"source_labels": ["a"], "regex": "no-match", "action": "keep"}], None),
    ({"a": "foo"}, [{"source_labels": ["a"], "regex": "f.*", "action": "keep"}], {"a": "foo"}),
    ({"a": "boo"}, [{"source_labels": ["a"], "regex": "f", "target_label": "b",
                     "replacement": "bar"}], {"a": "boo"}),
    (
        {"a": "foo", "b": "bar", "c": "baz"},
        [{"source_labels": ["c"], "target_label": "d", "action": "hashmod", "modulus": 1000}],
        {"a": "foo", "b": "bar", "c": "baz", "d": "976"},
    ),
    (
        {"a": "foo\nbar"},
        [{"source_labels": ["a"], "target_label": "b", "action": "hashmod", "modulus": 1000}],
        {"a": "foo\nbar", "b": "734"},
    ),
    (
        {"a": "foo", "b1": "bar", "b2": "baz"},
        [{"regex": "(b.*)", "replacement": "bar_${1}", "action": "labelmap"}],
        {"a": "foo", "b1": "bar", "b2": "baz", "bar_b1": "bar", "bar_b2": "baz"},
    ),
    (
        {"a": "foo", "__meta_my_bar": "aaa", "__meta_my_baz": "bbb", "__meta_other": "ccc"},
        [{"regex": "__meta_(my.*)", "replacement": "${1}", "action": "labelmap"}],
        {"a": "foo", "__meta_my_bar": "aaa", "__meta_my_baz": "bbb", "__meta_other": "ccc",
         "my_bar": "aaa", "my_baz": "bbb"},
    ),
    ({"a": "some-name-value"}, [{**SPLIT, "replacement": "${2}", "target_label": "${1}"}],
     {"a": "some-name-value", "name": "value"}),
    ({"a": "some-name-value"}, [{**SPLIT, "replacement": "${3}", "target_label": "${1}"}],
     {"a": "some-name-value"}),
    (
        {"a": "some-name-value"},
        [{**SPLIT, "replacement": "${1}", "target_label": target}
         for target in ("${3}", "0${3}", "-${3}")],
        {"a": "some-name-value"},
    ),
    (
        {"__meta_sd_tags": "path:/secret,job:some-job,label:foo=bar"},
        [{"source_labels": ["__meta_sd_tags"], "regex": "(?:.+,|^)path:(/[^,]+).*",
          "replacement": "${1}", "target_label": "__metrics_path__"},
         {"source_labels": ["__meta_sd_tags"], "regex": "(?:.+,|^)job:([^,]+).*",
          "replacement": "${1}", "target_label": "job"},
         {"source_labels": ["__meta_sd_tags"], "regex": "(?:.+,|^)label:([^=]+)=([^,]+).*",
          "replacement": "${2}", "target_label": "${1}"}],
        {"__meta_sd_tags": "path:/secret,job:some-job,label:foo=bar",
         "__metrics_path__": "/secret", "job": "some-job", "foo": "bar"},
    ),
    ({"a": "foo", "b1": "bar", "b2": "baz"}, [{"regex": "(b.*)", "action": "labelkeep"}],
     {"b1": "bar", "b2": "baz"}),
    ({"a": "foo", "b1": "bar", "b2": "baz"}, [{"regex": "(b.*)", "action": "labeldrop"}],
     {"a": "foo"}),
    (
        {"foo": "bAr123Foo"},
        [{"source_labels": ["foo"], "action": "uppercase", "target_label": "foo_uppercase"},
         {"source_labels": ["foo"], "action": "lowercase", "target_label": "foo_lowercase"}],
        {"foo": "bAr123Foo", "foo_lowercase": "bar123foo", "foo_uppercase": "BAR123FOO"},
    ),
    (PORTS, [{"source_labels": ["__tmp_port"], "action": "keepequal",
              "target_label": "__port1"}], PORTS),
    (PORTS, [{"source_labels": ["__tmp_port"], "action": "dropequal",
              "target_label": "__port1"}], None),
    (PORTS, [{"source_labels": ["__tmp_port"], "action": "dropequal",
              "target_label": "__port2"}], PORTS),
    (PORTS, [{"source_labels": ["__tmp_port"], "action": "keepequal",
              "target_label": "__port2"}], None),
]  # fmt: skip


@pytest.mark.parametrize(("labels", "configs", "expected"), PROMETHEUS_CASES)
def test_relabelling_gives_what_prometheus_own_tests_expect(
    labels: dict[str, str], configs: list[dict[str, Any]], expected: dict[str, str] | None
) -> None:
    assert relabel(labels, rules(*configs)) == expected


def test_defaults_are_prometheus_ones_and_a_rule_without_regex_copies_a_label() -> None:
    """No action, separator, regex or replacement: replace, ``;``, ``(.*)``, ``$1``; a null regex
    is the empty one, as Prometheus loads it."""
    copy = {"source_labels": ["job", "env"], "target_label": "where"}
    assert relabel({"job": "api", "env": "prod"}, rules(copy)) == {
        "job": "api",
        "env": "prod",
        "where": "api;prod",
    }
    static = {"regex": None, "replacement": "static", "target_label": "abc"}
    assert relabel({"abc": "def"}, rules(static)) == {"abc": "static"}
    assert relabel({"abc": "def", "x": "y"}, rules({**static, "source_labels": ["x"]})) == {
        "abc": "def",
        "x": "y",
    }


@pytest.mark.parametrize(
    ("regex", "text", "matches"),
    [
        ("foo", "foo\n", False),  # Python's $ and fullmatch would take a final newline
        ("foo$", "foo\n", False),
        ("(?m)foo$\n", "foo\n", True),
        (r"\d+", "١٢", False),  # Go's \d, \w, \s are ASCII
        (r"\w+", "é", False),
        (r"\s", "\v", False),
        (r"[[:alpha:]]+", "abc", True),
        (r"[[:^digit:]x]+", "ab", True),
        (r"[^\d]", "5", False),
        ("a{,2}", "a{,2}", True),  # not a repeat in Go
        ("a{2}", "aa", True),
        (r"\Q.*\E", ".*", True),
        (r"\Q.*\E", "ab", False),
        ("(?i)AbC", "aBc", True),
        ("a(?i)b|c", "C", True),  # flags run to the end of the group, across |
        ("(?i:a)b", "AB", False),
        (r"\x41\x{263a}\101", "A☺A", True),
        (r"a\z", "a", True),
        (r"\bfoo\b", "foo", True),
        (".", "\n", False),
        (r"\p{Greek}+", "αβγ", True),  # Unicode classes, which Python's re lacks
        (r"\p{Greek}+", "abc", False),
        (r"[\P{L}\d]+", "-1", True),
        (r"\pL{500}", "λ" * 500, True),  # too large for RE2's default memory, not for Go's
        ("a)|(b", "abc", True),  # Prometheus anchors by wrapping: ^(?:a)|(b)$ is ^a or b$
        ("a)|(b", "xxb", True),
        ("a)|(b", "xbx", False),
    ],
)
def test_regexes_match_as_go_does(regex: str, text: str, matches: bool) -> None:
    assert (GoRegex.compile(regex, dot_all=False).search(text) is not None) is matches


def test_ungreedy_flag_and_dot_all_follow_go() -> None:
    lazy = GoRegex.compile("(?U)(a+)(a*)", dot_all=False)
    match = lazy.search("aaa")
    assert match is not None and lazy.expand("$1|$2", match) == "a|aa"
    assert GoRegex.compile(".*", dot_all=True).search("a\nb") is not None


def test_a_name_given_to_two_groups_expands_to_the_one_that_took_part() -> None:
    """Go allows a group name twice, and its Expand takes the first such group that matched; re2
    reports only the leftmost group of a name, so the others are found apart."""
    regex = GoRegex.compile("(?P<a>x)|(?P<a>y)|(?P<b>z)", dot_all=False)
    match = regex.search("y")
    assert match is not None and regex.expand("<${a}|$b>", match) == "<y|>"


def test_unicode_classes_follow_re2s_tables_not_the_prometheus_go_ones() -> None:
    """The one difference from Go found (tests below run the same cases in a real Prometheus):
    Unicode classes and case folding use RE2's Unicode tables, newer than those of the Go that
    built Prometheus (Debian's 2.42: Go 1.19, Unicode 13), so a character assigned since (U+0870,
    Unicode 14) is a letter here and not there. Only such characters are affected."""
    letter = rules({"source_labels": ["a"], "regex": r"\pL", "action": "keep"})
    assert relabel({"a": "\u0870"}, letter) == {"a": "\u0870"}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("$1-${2}", "x-yz"),
        ("$1x", ""),  # the name is "1x": no such group
        ("${1}x", "xx"),
        ("$$1", "$1"),
        ("$", "$"),
        ("${1", "${1"),
        ("${first}.$second", "x.yz"),
        ("$01", ""),  # a leading zero makes it a name
        ("$9", ""),
        ("${missing}", ""),
    ],
)
def test_replacements_expand_as_gos_regexp_expand(template: str, expected: str) -> None:
    regex = GoRegex.compile("(?P<first>x)-(?P<second>.*)", dot_all=False)
    match = regex.search("x-yz")
    assert match is not None and regex.expand(template, match) == expected


GROUPS = "<$1|$2|$3|${a}>"
# (regex, label value, replacement) where engines part ways: empty loops, captures in repeats,
# nested alternations, Unicode case folding, ASCII \b \d \s, NUL, Prometheus's wrapping...
GO_CASES = [
    ("(a*)*", "b", GROUPS), ("(a|ab)(c|bcd)(d*)", "abcd", GROUPS), ("(|a)*", "aa", GROUPS),
    ("(|a)+", "aa", GROUPS), ("(a*?)*", "aa", GROUPS), ("(a+|b+)*", "ab", GROUPS),
    ("((a)|b)+", "ab", GROUPS), ("(a)|b", "b", GROUPS), ("(?U)(a+)(a*)", "aaa", GROUPS),
    ("(a?)*?b", "aab", GROUPS), ("(a{2,3}?)(a*)", "aaaa", GROUPS), ("(a|b)*?(b)", "abab", GROUPS),
    ("(?i)(k)", "\u212a", GROUPS), ("(?i)(ß)", "ẞ", GROUPS), ("(?i)(σ)", "ς", GROUPS),
    ("(?i)([a-z]+)", "ſK", GROUPS), ("(?i)(\U0001e922)", "\U0001e900", GROUPS),
    (r"(\p{Greek}+)", "αβγ", GROUPS), (r"(\pN+)", "١٢", GROUPS), (r"(\d)", "٣", GROUPS),
    (r"(\bé)", "é", GROUPS), (r"(\s)", "\v", GROUPS), ("([[:space:]])", "\v", GROUPS),
    ("(.)", "\n", GROUPS), ("([^a])", "\n", GROUPS), ("a(.)b", "a\x00b", GROUPS),
    ("(foo)", "foo\n", GROUPS), ("(?m)(a)$\nb", "a\nb", GROUPS), ("(.)(.)", "é☺", GROUPS),
    ("a)|(b", "abc", GROUPS), ("a)|(b", "xxb", GROUPS), ("a)|(b", "xbx", GROUPS),
    ("(?P<a>x)|(?P<a>y)", "y", GROUPS), ("(?P<a>a)(?P<a>b)?", "a", GROUPS),
    ("(x)-(?P<second>.*)", "x-yz", "$1x|${1}x|$$1|$|${1|${second}.$second|$01|$9"),
]  # fmt: skip


def active_targets(url: str, count: int, timeout: float = 60.0) -> list[dict[str, Any]]:
    """Prometheus's active targets once all ``count`` are discovered (it batches for seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        answer = requests.get(f"{url}/api/v1/targets", params={"state": "active"}, timeout=10)
        targets = answer.json()["data"]["activeTargets"]
        if len(targets) >= count or time.monotonic() > deadline:
            return targets
        time.sleep(0.5)


@pytest.mark.prometheus
def test_regexes_and_replacements_give_what_a_real_prometheus_gives(tmp_path: Path) -> None:
    """Each case is a scrape job whose relabelling writes ``out`` from its one target's ``v``;
    Prometheus (Go's regexp) shows the result in /api/v1/targets."""
    jobs = [
        {"job_name": f"case{i}", "scrape_interval": "1h",
         "static_configs": [{"targets": [f"127.0.0.1:{i + 1}"], "labels": {"v": value}}],
         "relabel_configs": [{"source_labels": ["v"], "regex": regex, "target_label": "out",
                              "replacement": template}]}
        for i, (regex, value, template) in enumerate(GO_CASES)
    ]  # fmt: skip
    with servers.prometheus(tmp_path / "data", scrape_configs=jobs) as url:
        targets = active_targets(url, len(jobs))
        build = requests.get(f"{url}/api/v1/status/buildinfo", timeout=10).json()["data"]
    dialect = Dialect.of(build["version"])
    by_job = {t["scrapePool"]: t["labels"].get("out") for t in targets}
    theirs = {case[:2]: by_job.get(f"case{i}", "?") for i, case in enumerate(GO_CASES)}
    ours = {
        case[:2]: relabel({"v": case[1]}, parse_rules(job["relabel_configs"], "x", dialect))
        for case, job in zip(GO_CASES, jobs, strict=True)
    }
    assert {key: (labels or {}).get("out") for key, labels in ours.items()} == theirs


def test_details_that_changed_between_releases_follow_the_running_version() -> None:
    """A blank replacement deletes the expanded target since 2.50 (the literal target_label
    before), and 3.0's regexes let ``.`` match a newline."""
    blank = {"source_labels": ["a"], "regex": "(.*)", "target_label": "${1}", "replacement": ""}
    assert relabel({"a": "b", "b": "x"}, rules(blank)) == {"a": "b", "b": "x"}
    assert relabel({"a": "b", "b": "x"}, rules(blank, dialect=V3)) == {"a": "b"}
    keep = {"source_labels": ["a"], "regex": "x.y", "action": "keep"}
    assert relabel({"a": "x\ny"}, rules(keep)) is None
    assert relabel({"a": "x\ny"}, rules(keep, dialect=V3)) == {"a": "x\ny"}


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {"action": "labelswap", "regex": "x"},
            "alerting.alert_relabel_configs[0] has the relabel action 'labelswap', which obs "
            "cannot reproduce",
        ),
        (
            {"source_labels": ["a"], "regex": "a\n(b", "action": "keep"},
            "alerting.alert_relabel_configs[0] has a regex obs cannot reproduce: RE2 cannot "
            r"compile it (missing ): ^(?:a\n(b)$)",
        ),
    ],
)
def test_a_rule_obs_cannot_reproduce_is_one_line_naming_it(
    entry: dict[str, Any], message: str
) -> None:
    with pytest.raises(SourceError) as raised:
        rules(entry)
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)


def test_alertmanagers_with_their_own_relabelling_must_agree_on_an_alerts_labels() -> None:
    """Per-Alertmanager rules (2.51+) that only choose which alerts an Alertmanager gets leave
    one fingerprint; rules that give an alert different labels in different Alertmanagers are
    refused in one line."""
    critical_only = rules({"source_labels": ["severity"], "regex": "critical", "action": "keep"})
    choosing = AlertRelabelling(per_alertmanager=(critical_only, ()))
    assert choosing.sent({"alertname": "A", "severity": "warning"}) == {
        "alertname": "A",
        "severity": "warning",
    }
    renaming = AlertRelabelling(
        per_alertmanager=((), rules({"target_label": "team", "replacement": "sre"})),
        origin="Prometheus at http://p:9090",
    )
    with pytest.raises(SourceError, match=r"^Prometheus at http://p:9090 sends alert A to "):
        renaming.sent({"alertname": "A"})
    everywhere = AlertRelabelling(per_alertmanager=(critical_only,))
    assert everywhere.sent({"alertname": "A", "severity": "warning"}) is None


def test_an_alert_the_relabelling_drops_is_still_counted_under_its_own_fingerprint() -> None:
    """It reaches no Alertmanager, but it fired: its fragments keep the fingerprint of its labels
    plus the external labels, apart from the alert that is sent."""
    drop_quiet = rules({"source_labels": ["alertname"], "regex": "Quiet.*", "action": "drop"})
    external = {"cluster": "prod"}
    context = AlertContext(external_labels=external, relabelling=AlertRelabelling(drop_quiet))
    quiet, loud = {"alertname": "QuietOne"}, {"alertname": "Loud"}
    samples = AlertSamples(
        label_sets=[{**quiet, "alertstate": "firing"}, {**loud, "alertstate": "firing"}],
        series=np.array([0, 1, 0, 1]),
        ts_ms=np.array([60_000, 60_000, 120_000, 120_000]),
    )
    window = TimeWindow(datetime(1970, 1, 1, tzinfo=UTC), datetime(1970, 1, 1, 1, tzinfo=UTC))
    derivation = AlertDerivationConfig(evaluation_interval="1m")
    table = build_fragments(samples, window, derivation, "prometheus", context)
    rows = sorted((r["alertname"], r["fingerprint"], r["samples"]) for r in table.to_pylist())
    assert rows == [
        ("Loud", fingerprint({**loud, **external}), 2),
        ("QuietOne", fingerprint({**quiet, **external}), 2),
    ]


ALERT_RULES = """
groups:
  - name: ha
    rules:
      - alert: CheckoutDown
        expr: vector(1)
        labels: {service: checkout, severity: crit}
      - alert: QuietDiskFull
        expr: vector(1)
        labels: {service: disk}
"""
RELABEL = [
    {"regex": "replica", "action": "labeldrop"},  # HA pairs deduplicated in Alertmanager
    {"source_labels": ["severity"], "regex": "crit(.*)", "target_label": "severity",
     "replacement": "critical${1}"},
    {"source_labels": ["cluster", "service"], "regex": "(.+);(.+)", "target_label": "team",
     "replacement": "$1-$2"},
    {"source_labels": ["alertname"], "regex": "Quiet.*", "action": "drop"},
]  # fmt: skip


@pytest.fixture
def relabelling_prometheus(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A real Prometheus with external labels (``replica`` among them) and alert relabelling,
    evaluating ALERT_RULES every second into a real Alertmanager: (its URL, Alertmanager's)."""
    rule_file = tmp_path / "rules.yml"
    rule_file.write_text(ALERT_RULES)
    with ops_servers.alertmanager(tmp_path / "alertmanager") as alertmanager_url:
        config = {
            "global": {"external_labels": {"cluster": "prod", "replica": "a"}},
            "alerting": {
                "alert_relabel_configs": RELABEL,
                "alertmanagers": [
                    {"static_configs": [{"targets": [alertmanager_url.removeprefix("http://")]}]}
                ],
            },
        }
        with servers.prometheus(
            tmp_path / "data",
            # A first send made before Alertmanager is discovered is dropped; resend soon.
            "--rules.alert.resend-delay=1s",
            evaluation_interval="1s",
            rule_files=[rule_file],
            config=config,
        ) as prometheus_url:
            yield prometheus_url, alertmanager_url


@pytest.mark.prometheus
def test_fragments_have_the_fingerprints_alertmanager_reports_after_relabelling(
    relabelling_prometheus: tuple[str, str],
) -> None:
    prometheus_url, alertmanager_url = relabelling_prometheus
    now = datetime.now(UTC)
    window = TimeWindow(now - timedelta(minutes=5), now + timedelta(minutes=5))
    alertmanager = AlertmanagerAlerts(AlertmanagerSourceConfig(url=alertmanager_url))
    fragments = PrometheusAlertFragments(
        PrometheusSourceConfig(url=prometheus_url, selectors=["up"], retries=0),
        AlertDerivationConfig(evaluation_interval="1s"),
    )

    (held,) = until_rows(lambda: read_window(alertmanager, window)).to_pylist()
    rows = until_rows(lambda: read_window(fragments, window)).to_pylist()

    assert dict(held["labels"]) == {
        "alertname": "CheckoutDown",
        "service": "checkout",
        "severity": "critical",
        "cluster": "prod",
        "team": "prod-checkout",
    }
    by_alert = {r["alertname"]: r["fingerprint"] for r in rows}
    assert by_alert["CheckoutDown"] == held["fingerprint"]
    # Dropped before Alertmanager, still firing here, under its labels before relabelling.
    quiet = {"alertname": "QuietDiskFull", "service": "disk", "cluster": "prod", "replica": "a"}
    assert by_alert["QuietDiskFull"] == fingerprint(quiet)
