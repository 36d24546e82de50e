"""Prometheus's relabelling (``<relabel_config>``), reproduced to name alerts as Alertmanager does.

Prometheus applies ``alerting.alert_relabel_configs`` to every alert it sends (after adding its
external labels), so Alertmanager fingerprints the relabelled label set. This module follows
``model/relabel/relabel.go``: the eleven actions, the defaults (separator ``;``, regex ``(.*)``,
replacement ``$1``, action ``replace``), fully anchored regexes, and Go's ``regexp.Expand`` for
``$1``/``${1}``/``${name}``. The few behaviours that changed between Prometheus releases are a
:class:`Dialect` chosen from the running version.

Regexes are RE2 (Go) syntax; Python's ``re`` differs in places (``$`` before a final newline,
Unicode ``\\d``/``\\w``/``\\s``, POSIX classes, ``(?U)``, ``{,n}``...), so each one is translated
token by token into a Python pattern with Go's meaning. Constructs with no faithful translation
(``\\p{...}`` Unicode classes, ``\\C``) are refused in one line instead of guessed.
"""

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from obs_pipelines.errors import SourceError

ACTIONS = frozenset(
    {
        "replace", "keep", "drop", "keepequal", "dropequal", "hashmod",
        "labelmap", "labeldrop", "labelkeep", "lowercase", "uppercase",
    }
)  # fmt: skip
DEFAULT_REGEX = "(.*)"
_LEGACY_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# Go's ASCII-only Perl classes and POSIX classes (regexp/syntax perl_groups.go), as the body of
# a Python character class.
_WORD = "0-9A-Za-z_"
_PERL_CLASSES = {"d": "0-9", "s": r"\t\n\f\r ", "w": _WORD}
_POSIX_CLASSES = {
    "alnum": "0-9A-Za-z", "alpha": "A-Za-z", "ascii": r"\x00-\x7f", "blank": r"\t ",
    "cntrl": r"\x00-\x1f\x7f", "digit": "0-9", "graph": "!-~", "lower": "a-z", "print": " -~",
    "punct": r"!-/:-@\[-`{-~", "space": r"\t\n\v\f\r ", "upper": "A-Z", "word": _WORD,
    "xdigit": "0-9A-Fa-f",
}  # fmt: skip
_SIMPLE_ESCAPES = {"a": 7, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11}
_ANY = "(?s:.)"
_MAX_REPEAT = 1000


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
    """A regex construct Prometheus accepts that Python's ``re`` cannot be made to mean."""


@dataclass(frozen=True)
class GoRegex:
    """A relabel regex: fully anchored like Prometheus's, matched with Go's meaning."""

    source: str
    compiled: re.Pattern[str]
    group_names: tuple[str | None, ...]  # index 0 is the whole match

    @classmethod
    def compile(cls, source: str, dot_all: bool) -> "GoRegex":
        """Translate and compile ``source``; :class:`Unreproducible` says why it cannot be."""
        translator = _Translator(source, dot_all)
        pattern = translator.translate()
        try:
            compiled = re.compile(pattern)
        except (re.error, OverflowError, RecursionError) as exc:
            raise Unreproducible(f"Python cannot compile its translation ({exc})") from None
        return cls(source, compiled, tuple(translator.names))

    def fullmatch(self, text: str) -> re.Match[str] | None:
        return self.compiled.fullmatch(text)

    def expand(self, template: str, match: re.Match[str]) -> str:
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

    def _group(self, match: re.Match[str], name: str, number: int) -> str:
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


class _Translator:
    """One pass over a Go regex, writing a Python pattern with the same meaning. Go's flags
    (``i``, ``m``, ``s``, ``U``) are tracked here and applied to each atom as it is written, so
    the pattern needs no Python flags (which cannot change mid-pattern the way Go's can)."""

    def __init__(self, source: str, dot_all: bool) -> None:
        self.text = source
        self.pos = 0
        self.out: list[str] = []
        self.flags = frozenset("s") if dot_all else frozenset()
        self.saved: list[frozenset[str]] = []
        self.names: list[str | None] = [None]

    def translate(self) -> str:
        while self.pos < len(self.text):
            self._step()
        if self.saved:
            raise Unreproducible("it has a ( without its )")
        return "".join(self.out)

    def _step(self) -> None:
        char = self.text[self.pos]
        self.pos += 1
        if char == "(":
            self._open()
        elif char == ")":
            if not self.saved:
                raise Unreproducible("it has a ) without its (")
            self.flags = self.saved.pop()
            self.out.append(")")
        elif char == "|":
            self.out.append("|")
        elif char == "^":
            self.out.append(r"(?m:^)" if "m" in self.flags else r"(?:\A)")
        elif char == "$":
            self.out.append(r"(?m:$)" if "m" in self.flags else r"(?:\Z)")
        elif char == ".":
            self.out.append(_ANY if "s" in self.flags else r"[^\n]")
        elif char == "[":
            self.out.append(self._class())
        elif char in "*+?":
            self._quantifier(char)
        elif char == "{" and (repeat := self._repeat()) is not None:
            self._quantifier(repeat)
        elif char == "\\":
            self._escape()
        else:
            self._literal(ord(char))

    def _open(self) -> None:
        """A group: capturing, named (``(?P<n>``, ``(?<n>``), or flags (``(?i)``, ``(?i:``)."""
        self.saved.append(self.flags)
        if not self.text.startswith("?", self.pos):
            self.names.append(None)
            self.out.append("(")
            return
        self.pos += 1
        for opener in ("P<", "<"):
            if self.text.startswith(opener, self.pos):
                close = self.text.find(">", self.pos)
                if close < 0:
                    raise Unreproducible("it has an unterminated group name")
                self.names.append(self.text[self.pos + len(opener) : close])
                self.pos = close + 1
                self.out.append("(")
                return
        flags, negate = set(self.flags), False
        while self.pos < len(self.text) and self.text[self.pos] not in ":)":
            flag = self.text[self.pos]
            self.pos += 1
            if flag == "-":
                negate = True
            elif flag in "imsU":
                (flags.discard if negate else flags.add)(flag)
            else:
                raise Unreproducible(f"it has the group flag {flag!r}")
        if self.pos >= len(self.text):
            raise Unreproducible("it has an unterminated (? group")
        end = self.text[self.pos]
        self.pos += 1
        if end == ")":  # (?i): the flags hold until the enclosing group ends
            self.saved.pop()
            self.flags = frozenset(flags)
        else:
            self.flags = frozenset(flags)
            self.out.append("(?:")

    def _quantifier(self, quantifier: str) -> None:
        """``quantifier`` for the last atom, lazy when ``?`` follows it, the other way round under
        Go's ``U`` flag."""
        lazy = self.text.startswith("?", self.pos)
        self.pos += lazy
        self.out.append(quantifier + ("?" if lazy != ("U" in self.flags) else ""))

    def _repeat(self) -> str | None:
        """``{n}``, ``{n,}`` or ``{n,m}`` after a ``{``; None when it is not one (Go then reads
        the ``{`` as a literal, where Python would read ``{,m}`` as a repeat)."""
        found = re.match(r"(\d+)(,(\d*))?\}", self.text[self.pos :])
        if found is None:
            return None
        low, high = int(found[1]), found[3]
        if low > _MAX_REPEAT or (high and not low <= int(high) <= _MAX_REPEAT):
            raise Unreproducible("it has a repeat count above 1000 or out of order")
        self.pos += found.end()
        return "{" + found[0]

    def _escape(self) -> None:
        """An escape outside a class: assertions, ``\\Q...\\E``, classes, or one character."""
        code = self.text[self.pos : self.pos + 1]
        assertions = {"A": r"(?:\A)", "z": r"(?:\Z)", "b": _boundary(True), "B": _boundary(False)}
        if code in assertions:
            self.pos += 1
            self.out.append(assertions[code])
        elif code == "Q":
            end = self.text.find(r"\E", self.pos + 1)
            literal = self.text[self.pos + 1 :] if end < 0 else self.text[self.pos + 1 : end]
            self.pos = len(self.text) if end < 0 else end + 2
            for char in literal:
                self._literal(ord(char))
        elif (item := self._class_escape()) is not None:
            self.out.append(self._fold(_union([item], negated=False)))
        else:
            self._literal(self._char_escape())

    def _literal(self, code: int) -> None:
        self.out.append(self._fold(re.escape(chr(code))))

    def _fold(self, atom: str) -> str:
        return f"(?i:{atom})" if "i" in self.flags else atom

    def _class(self) -> str:
        """A bracketed class, as the union of its positive part and each negated item
        (``\\D``, ``[:^alpha:]``), or the complement of that union when it starts with ``^``."""
        negated = self.text.startswith("^", self.pos)
        self.pos += negated
        items: list[tuple[bool, str]] = []
        first = True
        while first or not self.text.startswith("]", self.pos):
            if self.pos >= len(self.text):
                raise Unreproducible("it has an unterminated [")
            first = False
            if (posix := re.match(r"\[:(\^?)([a-z]+):\]", self.text[self.pos :])) is not None:
                if posix[2] not in _POSIX_CLASSES:
                    raise Unreproducible(f"it has an unknown class [:{posix[2]}:]")
                items.append((bool(posix[1]), _POSIX_CLASSES[posix[2]]))
                self.pos += posix.end()
                continue
            if self.text.startswith("\\", self.pos):
                self.pos += 1
                if (item := self._class_escape()) is not None:
                    items.append(item)
                    continue
                self.pos -= 1
            low = high = self._class_member()
            if self.text.startswith("-", self.pos) and self.text[self.pos + 1 :][:1] not in "]":
                self.pos += 1
                high = self._class_member()
                if high < low:
                    raise Unreproducible("it has a class range out of order")
            body = _class_char(low) + (f"-{_class_char(high)}" if high != low else "")
            items.append((False, body))
        self.pos += 1
        return self._fold(_union(items, negated))

    def _class_member(self) -> int:
        """One character of a class: escaped or as it is."""
        if self.text.startswith("\\", self.pos):
            self.pos += 1
            return self._char_escape()
        self.pos += 1
        return ord(self.text[self.pos - 1])

    def _class_escape(self) -> tuple[bool, str] | None:
        """``\\d \\D \\s \\S \\w \\W`` as (negated, class body), consumed; None for any other
        escape, which is left unread. ``\\p``/``\\P`` Unicode classes are refused."""
        code = self.text[self.pos : self.pos + 1]
        if code.lower() in _PERL_CLASSES:
            self.pos += 1
            return code.isupper(), _PERL_CLASSES[code.lower()]
        if code in ("p", "P"):
            raise Unreproducible(r"Unicode classes (\p, \P) have no faithful Python translation")
        return None

    def _char_escape(self) -> int:
        """The character of an escape after its backslash (Go's ``parseEscape``): octal, ``\\x``
        hex, C escapes, or escaped punctuation."""
        if self.pos >= len(self.text):
            raise Unreproducible("it ends with a lone backslash")
        code = self.text[self.pos]
        self.pos += 1
        if code in "01234567":
            digits = re.match(r"[0-7]{0,2}", self.text[self.pos :])[0]  # type: ignore[index]
            if code != "0" and not digits:
                raise Unreproducible(r"it has a backreference (\1-\9), which RE2 refuses")
            self.pos += len(digits)
            return int(code + digits, 8)
        if code == "x":
            found = re.match(r"\{([0-9A-Fa-f]{1,8})\}|([0-9A-Fa-f]{2})", self.text[self.pos :])
            if found is None or int(found[1] or found[2], 16) > 0x10FFFF:
                raise Unreproducible(r"it has a malformed \x escape")
            self.pos += found.end()
            return int(found[1] or found[2], 16)
        if code in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[code]
        if code.isascii() and not (code.isalnum() or code == "_"):
            return ord(code)
        raise Unreproducible(f"it has the escape \\{code}")


def _class_char(code: int) -> str:
    """One character inside a Python class, escaped so no character can mean anything else."""
    char = chr(code)
    return char if char.isascii() and char.isalnum() else f"\\U{code:08x}"


def _union(items: Sequence[tuple[bool, str]], negated: bool) -> str:
    """One character from the union of class ``items`` (negated, body), or from its complement."""
    positive = "".join(body for is_negated, body in items if not is_negated)
    parts = ([f"[{positive}]"] if positive else []) + [
        f"[^{body}]" for is_negated, body in items if is_negated
    ]
    if negated:
        return f"(?:(?!{'|'.join(parts)}){_ANY})" if parts else _ANY
    return f"(?:{'|'.join(parts)})" if parts else "(?!)"


def _boundary(at: bool) -> str:
    """Go's ASCII word boundary ``\\b`` (or its negation ``\\B``)."""
    word, other = f"(?<=[{_WORD}])", f"(?<![{_WORD}])"
    ahead, not_ahead = f"(?=[{_WORD}])", f"(?![{_WORD}])"
    if at:
        return f"(?:{word}{not_ahead}|{other}{ahead})"
    return f"(?:{word}{ahead}|{other}{not_ahead})"


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
            return (self.regex.fullmatch(value) is not None) == (action == "keep")
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
        match = self.regex.fullmatch(value)
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
            match = self.regex.fullmatch(name)
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
