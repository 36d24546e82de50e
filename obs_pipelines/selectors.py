"""PromQL instant-vector selectors (``name{label=~"re"}``), parsed so config can be checked at load.

Prometheus is the authority on what it accepts; this parser exists so that a typo in ``obs.yaml``
is reported with its key before any server is asked, and so SLI definitions can later be
translated to SQL over the lake.
"""

import json
import re
from dataclasses import dataclass

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_OPERATORS = ("=~", "!~", "!=", "=")


@dataclass(frozen=True)
class LabelMatcher:
    label: str
    op: str
    value: str

    def matches(self, actual: str) -> bool:
        """Evaluate like Prometheus: regexes are fully anchored, a missing label is ''."""
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        hit = re.fullmatch(self.value, actual) is not None
        return hit if self.op == "=~" else not hit


@dataclass(frozen=True)
class Selector:
    metric: str | None
    matchers: tuple[LabelMatcher, ...]

    def __str__(self) -> str:
        inner = ",".join(f"{m.label}{m.op}{json.dumps(m.value)}" for m in self.matchers)
        return f"{self.metric or ''}{{{inner}}}"


def parse_selector(text: str) -> Selector:
    """Parse one selector; raise ValueError that quotes the offending part."""
    src = text.strip()
    pos = 0
    metric = None
    match = _NAME.match(src)
    if match:
        metric, pos = match.group(0), match.end()
    matchers: list[LabelMatcher] = []
    if pos < len(src):
        if src[pos] != "{" or not src.endswith("}"):
            raise ValueError(f"'{text}' is not a selector; write metric_name{{label=\"value\"}}")
        pos += 1
        while pos < len(src) - 1:
            pos = _skip_space(src, pos)
            if src[pos] == "}":
                break
            label_match = _LABEL.match(src, pos)
            if not label_match:
                raise ValueError(f"'{text}': expected a label name at '{src[pos:]}'")
            pos = _skip_space(src, label_match.end())
            op = next((o for o in _OPERATORS if src.startswith(o, pos)), None)
            if op is None:
                raise ValueError(
                    f"'{text}': expected =, !=, =~ or !~ after '{label_match.group(0)}'"
                )
            pos = _skip_space(src, pos + len(op))
            value, pos = _read_string(text, src, pos)
            if op in ("=~", "!~"):
                try:
                    re.compile(value)
                except re.error as exc:
                    raise ValueError(
                        f"'{text}': bad regular expression '{value}' ({exc})"
                    ) from None
            matchers.append(LabelMatcher(label_match.group(0), op, value))
            pos = _skip_space(src, pos)
            if src[pos] == ",":
                pos += 1
            elif src[pos] != "}":
                raise ValueError(f"'{text}': expected ',' or '}}' at '{src[pos:]}'")
    if metric is None and not any(_matches_nonempty(m) for m in matchers):
        raise ValueError(
            f"'{text}' matches every series; name a metric or add a matcher that cannot match the empty string"
        )
    return Selector(metric, tuple(matchers))


def _matches_nonempty(matcher: LabelMatcher) -> bool:
    return not matcher.matches("")


def _skip_space(src: str, pos: int) -> int:
    while pos < len(src) and src[pos].isspace():
        pos += 1
    return pos


def _read_string(text: str, src: str, pos: int) -> tuple[str, int]:
    quote = src[pos] if pos < len(src) else ""
    if quote not in ('"', "'", "`"):
        raise ValueError(f"'{text}': label values must be quoted at '{src[pos:]}'")
    end = pos + 1
    while end < len(src) and src[end] != quote:
        end += 2 if src[end] == "\\" and quote != "`" else 1
    if end >= len(src):
        raise ValueError(f"'{text}': unterminated string at '{src[pos:]}'")
    raw = src[pos + 1 : end]
    if quote == "`":
        return raw, end + 1
    if quote == "'":
        return raw.replace("\\'", "'").replace("\\\\", "\\"), end + 1
    try:
        return json.loads(src[pos : end + 1]), end + 1
    except json.JSONDecodeError:
        raise ValueError(
            f"'{text}': bad escape in {src[pos : end + 1]} (write a backslash as \\\\)"
        ) from None
