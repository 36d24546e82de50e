"""Prometheus's relabelling (``<relabel_config>``), reproduced to name alerts as Alertmanager does.

Prometheus applies ``alerting.alert_relabel_configs`` to every alert it sends (after adding its
external labels), so Alertmanager fingerprints the relabelled label set. This module follows
``model/relabel/relabel.go``: the eleven actions, the defaults (separator ``;``, regex ``(.*)``,
replacement ``$1``, action ``replace``), fully anchored regexes, and Go's ``regexp.Expand`` for
``$1``/``${1}``/``${name}``. The few behaviours that changed between Prometheus releases are a
:class:`Dialect` chosen from the running version.

Regexes are RE2 syntax, and Go's ``regexp`` is a port of RE2, so they run on RE2 itself
(``google-re2``) with the pattern Prometheus builds: Go's meaning without any translation.
"""

import hashlib
import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import re2

from obs_pipelines.errors import SourceError

ACTIONS = frozenset(
    {
        "replace", "keep", "drop", "keepequal", "dropequal", "hashmod",
        "labelmap", "labeldrop", "labelkeep", "lowercase", "uppercase",
    }
)  # fmt: skip
DEFAULT_REGEX = "(.*)"
_LEGACY_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_NAMED_GROUP = re.compile(r"\(\?P?<(\w+)>")
# RE2's defaults are Go's syntax (Perl classes, \b, non-greedy, one-line ^ $). Memory: Go bounds a
# compiled regexp at 128 MiB (regexp/syntax maxSize); RE2's default 8 MiB refuses \pL{500}, which
# Go compiles. RE2's UTF-8 byte programs outgrow Go's rune ones, so the very largest still fail.
_OPTIONS = re2.Options()
_OPTIONS.max_mem = 128 << 20
_OPTIONS.log_errors = False


@dataclass(frozen=True)
class Dialect:
    """What differs between Prometheus releases: ``dot_all`` (3.0 anchors regexes as
    ``^(?s:...)$``, so ``.`` matches a newline), ``blank_deletes_expanded`` (2.50 fixed a blank
    replacement to delete the expanded target label, not the literal ``target_label``) and
    ``utf8_names`` (3.0 accepts any UTF-8 label name unless the config says ``legacy``)."""

    dot_all: bool = True
    blank_deletes_expanded: bool = True
    utf8_names: bool = True

    @classmethod
    def of(cls, version: str, name_validation: str | None = None) -> "Dialect":
        """The dialect of a Prometheus ``version`` string (``2.42.0+ds``, ``3.1.0``); one that does
        not parse is taken as current."""
        found = re.match(r"v?(\d+)\.(\d+)", version.strip())
        major_minor = (int(found[1]), int(found[2])) if found else (99, 0)
        three = major_minor >= (3, 0)
        return cls(
            dot_all=three,
            blank_deletes_expanded=major_minor >= (2, 50),
            utf8_names=three and (name_validation or "").lower() != "legacy",
        )


class Unreproducible(ValueError):
    """A regex RE2 cannot compile (Prometheus, running Go's port of it, did)."""


@dataclass(frozen=True)
class GoRegex:
    """A relabel regex, anchored as Prometheus anchors it and matched by RE2."""

    source: str
    compiled: Any  # re2's compiled pattern (the package has no type hints)
    group_names: tuple[str | None, ...]  # index 0 is the whole match

    @classmethod
    def compile(cls, source: str, dot_all: bool) -> "GoRegex":
        """``source`` as Prometheus's ``NewRegexp`` builds it (``^(?:...)$``, ``^(?s:...)$`` since
        3.0); :class:`Unreproducible` gives RE2's reason when it cannot be compiled. The source
        is wrapped, not parsed: ``a)|(b`` gives ``^(?:a)|(b)$``, as in Prometheus."""
        anchored = f"^(?{'s' if dot_all else ''}:{source})$"
        try:
            compiled = re2.compile(anchored, _OPTIONS)
        except re2.error as exc:
            raise Unreproducible(f"RE2 cannot compile it ({_one_line(exc)})") from None
        return cls(source, compiled, _group_names(anchored, compiled))

    def search(self, text: str) -> Any:
        """The leftmost-first match in ``text`` (re2's match object) or None, as Go's
        ``MatchString``/``FindStringSubmatchIndex``: a search, which only differs from a full
        match when the source undoes the anchoring (``a)|(b``)."""
        return self.compiled.search(text)

    def expand(self, template: str, match: Any) -> str:
        """``template`` with ``$n``, ``${n}``, ``$name``, ``${name}`` replaced by the groups of
        ``match`` and ``$$`` by ``$``, exactly as Go's ``Regexp.ExpandString``: a reference to a
        group that does not exist or did not take part is empty, a malformed one stays as is."""
        out: list[str] = []
        rest = template
        while (dollar := rest.find("$")) >= 0:
            out.append(rest[:dollar])
            rest = rest[dollar + 1 :]
            if rest.startswith("$"):
                out.append("$")
                rest = rest[1:]
                continue
            reference = _reference(rest)
            if reference is None:
                out.append("$")
                continue
            name, number, rest = reference
            out.append(self._group(match, name, number))
        out.append(rest)
        return "".join(out)

    def _group(self, match: Any, name: str, number: int) -> str:
        """The text of group ``number`` (if >= 0), else of the first group called ``name`` that
        took part in ``match``; empty when there is none."""
        if number >= 0:
            if number < len(self.group_names) and match.start(number) >= 0:
                return match.group(number)
            return ""
        for index, group_name in enumerate(self.group_names):
            if group_name == name and match.start(index) >= 0:
                return match.group(index)
        return ""


def _group_names(anchored: str, compiled: Any) -> tuple[str | None, ...]:
    """Each group's name by index. re2 reports only the leftmost group of a name, and Go's Expand
    takes the first group of the name that took part, so when a name is written twice a copy of
    the pattern with a distinct name in each ``(?P<name>`` (real or in a literal) tells which
    index each real one has."""
    names: list[str | None] = [None] * (compiled.groups + 1)
    for name, index in compiled.groupindex.items():
        names[index] = name
    written = _NAMED_GROUP.findall(anchored)
    if len(set(written)) == len(written):
        return tuple(names)
    stem, counter = "_" * (max(map(len, written)) + 1), itertools.count()
    distinct = _NAMED_GROUP.sub(lambda _: f"(?P<{stem}{next(counter)}>", anchored)
    try:  # every stem+k is longer than any name written, so it is nobody's name
        probe = re2.compile(distinct, _OPTIONS)
    except re2.error:
        return tuple(names)
    for unique, index in probe.groupindex.items():
        if unique.startswith(stem):
            names[index] = written[int(unique[len(stem) :])]
    return tuple(names)


def _one_line(exc: Exception) -> str:
    """RE2's message (bytes, quoting the pattern, which may hold newlines) as one line of text."""
    message = exc.args[0] if exc.args else ""
    text = message.decode(errors="replace") if isinstance(message, bytes) else str(message)
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _reference(text: str) -> tuple[str, int, str] | None:
    """Go's ``extract``: the group name after a ``$`` (braced or not), its number (-1 when it is
    not a plain decimal without a leading zero), and the text after it; None when malformed."""
    braced = text.startswith("{")
    body = text[1:] if braced else text
    end = 0
    while end < len(body) and (body[end].isalpha() or body[end].isdecimal() or body[end] == "_"):
        end += 1
    if end == 0 or (braced and body[end : end + 1] != "}"):
        return None
    name = body[:end]
    number = 0
    for char in name:  # Go's loop, limits and all
        if not "0" <= char <= "9" or number >= 100_000_000:
            number = -1
            break
        number = number * 10 + ord(char) - ord("0")
    if name[0] == "0" and len(name) > 1:
        number = -1
    return name, number, body[end + braced :]


@dataclass(frozen=True)
class RelabelRule:
    """One ``<relabel_config>`` as Prometheus holds it after loading (defaults filled in)."""

    action: str
    source_labels: tuple[str, ...]
    separator: str
    regex: GoRegex
    modulus: int
    target_label: str
    replacement: str
    dialect: Dialect

    @classmethod
    def parse(cls, entry: Any, where: str, dialect: Dialect) -> "RelabelRule":
        """A rule from its YAML mapping (as ``/api/v1/status/config`` shows it); anything we
        cannot reproduce is one line naming ``where`` it is. Missing keys take Prometheus's
        defaults; a null regex is the empty one, as Prometheus reads it."""
        if not isinstance(entry, Mapping):
            raise SourceError(f"{where} is not a relabel configuration (a mapping); {_FIX}")
        action = str(entry.get("action") or "replace").lower()
        if action not in ACTIONS:
            raise SourceError(
                f"{where} has the relabel action {action!r}, which obs cannot reproduce "
                f"(it knows {', '.join(sorted(ACTIONS))}); {_FIX}"
            )
        modulus = int(entry.get("modulus") or 0)
        if action == "hashmod" and modulus <= 0:
            raise SourceError(f"{where} is a hashmod without a positive modulus; {_FIX}")
        regex = _text(entry, "regex", DEFAULT_REGEX)
        try:
            compiled = GoRegex.compile(regex, dialect.dot_all)
        except Unreproducible as exc:
            raise SourceError(f"{where} has a regex obs cannot reproduce: {exc}; {_FIX}") from None
        return cls(
            action=action,
            source_labels=tuple(str(n) for n in entry.get("source_labels") or ()),
            separator=_text(entry, "separator", ";"),
            regex=compiled,
            modulus=modulus,
            target_label=_text(entry, "target_label", ""),
            replacement=_text(entry, "replacement", "$1"),
            dialect=dialect,
        )

    def apply(self, labels: dict[str, str]) -> bool:
        """Relabel ``labels`` in place, as Prometheus's ``relabel``; False when the rule drops
        them. An empty value deletes its label (``labels.Builder.Set``)."""
        value = self.separator.join(labels.get(n, "") for n in self.source_labels)
        action = self.action
        if action in ("keep", "drop"):
            return (self.regex.search(value) is not None) == (action == "keep")
        if action in ("keepequal", "dropequal"):
            return (labels.get(self.target_label, "") == value) == (action == "keepequal")
        if action == "replace":
            self._replace(labels, value)
        elif action in ("lowercase", "uppercase"):
            _set(labels, self.target_label, _go_case(value, upper=action == "uppercase"))
        elif action == "hashmod":
            digest = hashlib.md5(value.encode(), usedforsecurity=False).digest()
            _set(labels, self.target_label, str(int.from_bytes(digest[8:]) % self.modulus))
        else:
            self._by_name(labels)
        return True

    def _replace(self, labels: dict[str, str], value: str) -> None:
        match = self.regex.search(value)
        if match is None:
            return
        target = self.regex.expand(self.target_label, match)
        if not _valid_name(target, self.dialect):
            return  # 2.42 deleted target_label itself here: never a label, as it holds a $
        result = self.regex.expand(self.replacement, match)
        if result:
            labels[target] = result
        else:
            labels.pop(target if self.dialect.blank_deletes_expanded else self.target_label, None)

    def _by_name(self, labels: dict[str, str]) -> None:
        """labelmap, labeldrop, labelkeep: over the label names as they were before this rule."""
        for name, value in sorted(labels.items()):
            match = self.regex.search(name)
            if self.action == "labelmap":
                if match is not None:
                    _set(labels, self.regex.expand(self.replacement, match), value)
            elif (self.action == "labeldrop") == (match is not None):
                labels.pop(name, None)


_FIX = (
    "obs applies Prometheus's alert relabelling to name alerts as Alertmanager does; "
    "change that rule or report this"
)


def _text(entry: Mapping, key: str, default: str) -> str:
    """``entry[key]`` as text; ``default`` when absent, empty when null."""
    if key not in entry:
        return default
    value = entry[key]
    return "" if value is None else str(value)


def _set(labels: dict[str, str], name: str, value: str) -> None:
    if value:
        labels[name] = value
    else:
        labels.pop(name, None)


def _valid_name(name: str, dialect: Dialect) -> bool:
    return bool(name) if dialect.utf8_names else _LEGACY_NAME.fullmatch(name) is not None


def _go_case(text: str, upper: bool) -> str:
    """Go's ``strings.ToUpper``/``ToLower``: each character mapped on its own (no final-sigma
    rule), and one that Python would turn into several (``ß`` -> ``SS``) kept as it is."""
    mapped = (c.upper() if upper else c.lower() for c in text)
    return "".join(m if len(m) == 1 else c for c, m in zip(text, mapped, strict=True))


def parse_rules(entries: Any, where: str, dialect: Dialect) -> tuple[RelabelRule, ...]:
    """A list of ``<relabel_config>`` (``where`` names it in errors); null is none."""
    if entries is None:
        return ()
    if not isinstance(entries, list):
        raise SourceError(f"{where} is not a list of relabel configurations; {_FIX}")
    return tuple(RelabelRule.parse(e, f"{where}[{i}]", dialect) for i, e in enumerate(entries))


def relabel(labels: Mapping[str, str], rules: Sequence[RelabelRule]) -> dict[str, str] | None:
    """``labels`` after ``rules`` in order, or None when one of them drops the set."""
    result = dict(labels)
    for rule in rules:
        if not rule.apply(result):
            return None
    return result


@dataclass(frozen=True)
class AlertRelabelling:
    """What Prometheus's notifier does to an alert's labels (external labels already added):
    ``common`` (``alerting.alert_relabel_configs``), then each Alertmanager set's own
    ``alert_relabel_configs`` (Prometheus 2.51+), one tuple per ``alerting.alertmanagers`` entry.
    ``origin`` names the Prometheus in errors."""

    common: tuple[RelabelRule, ...] = ()
    per_alertmanager: tuple[tuple[RelabelRule, ...], ...] = ()
    origin: str = "Prometheus"

    def sent(self, labels: Mapping[str, str]) -> dict[str, str] | None:
        """The labels Alertmanager receives for ``labels``, None when no Alertmanager receives
        them. Sets that drop an alert do not count; sets that keep it with different labels
        leave it no single Alertmanager fingerprint, which is refused in one line."""
        kept = relabel(labels, self.common)
        if kept is None or not any(self.per_alertmanager):
            return kept
        received = {
            tuple(sorted(own.items()))
            for rules in self.per_alertmanager
            if (own := relabel(kept, rules)) is not None
        }
        if len(received) > 1:
            raise SourceError(
                f"{self.origin} sends alert {labels.get('alertname', '')} to Alertmanagers whose "
                "alert_relabel_configs give it different labels, so it has no single Alertmanager "
                "fingerprint; give every alerting.alertmanagers entry the same "
                "alert_relabel_configs (or move them to alerting.alert_relabel_configs)"
            )
        return dict(received.pop()) if received else None
