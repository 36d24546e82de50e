"""Decoding Prometheus ``matrix`` responses into columns, without a Python object per sample.

The response body is the hot path of metrics ingest: a million samples arrive as ~40 MB of JSON.
The ``values`` arrays of all series are cut out of the body, rewritten with bytes operations into
two-column CSV text, and parsed by Arrow's multithreaded, correctly rounded CSV reader; what is left
(the envelope and the label sets) is parsed by orjson in one go, which checks the answer's whole
shape to its last byte, so a body cut short never passes for a smaller answer. A body that does not
have Prometheus's compact layout falls back to a full (slower) orjson parse, so correctness never
depends on the fast path; that parse also finds what is wrong with a malformed answer (HTML, another
shape, a value that is no number), reported as one line naming the server and the series.
"""

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.csv as pacsv

from obs_pipelines.errors import SourceError
from obs_pipelines.sources.http import server_words

# Prometheus decodes the text "NaN" to Go's math.NaN(); keep those exact bits.
PROMETHEUS_NAN_BITS = np.uint64(0x7FF8000000000001)

_KEY = "sources.prometheus"
_URL_FIX = f"check {_KEY}.url points at the Prometheus server"
_OPENS_JSON = re.compile(rb"\s*[{\[]")
_METRIC = b'{"metric":'
_VALUES = b',"values":['
_VALUES_END = b'"]]'
_CLOSE_TO_NEWLINE = bytes.maketrans(b"]", b"\n")
# The values' text rewritten and parsed at a time (a body holds many such runs).
_GROUP_BYTES = 1 << 24
_CSV_READ = pacsv.ReadOptions(column_names=["_", "t", "v"], block_size=1 << 24)
_CSV_PARSE = pacsv.ParseOptions(delimiter=",", quote_char=False)
_CSV_CONVERT = pacsv.ConvertOptions(
    column_types={"t": pa.float64(), "v": pa.float64()},
    include_columns=["t", "v"],
    null_values=[],
    strings_can_be_null=False,
    quoted_strings_can_be_null=False,
)


@dataclass(frozen=True)
class DecodedMatrix:
    """Series label sets and, for all series back to back, sample timestamps and values."""

    label_sets: list[dict[str, str]]
    counts: np.ndarray  # samples per series, in label_sets order
    ts_ms: np.ndarray  # int64 milliseconds
    values: np.ndarray  # float64, NaN with Prometheus's bits

    @property
    def samples(self) -> int:
        return int(self.ts_ms.size)


def decode_matrix(body: bytes | bytearray, where: str = "Prometheus") -> DecodedMatrix:
    """Decode a successful ``/api/v1/query`` response whose result is a range vector; anything
    else (HTML, an error, another shape, a body cut short, a value that is no number) is one
    :class:`SourceError` naming ``where`` (e.g. ``Prometheus at <url>``)."""
    _check_envelope(body, where)
    try:
        decoded = _decode_fast(body, where)
    except (pa.ArrowInvalid, ValueError, KeyError, TypeError):  # JSONDecodeError is a ValueError
        decoded = None
    if decoded is None:
        decoded = _decode_slow(body, where)
    bits = decoded.values.view(np.uint64)
    bits[np.isnan(decoded.values)] = PROMETHEUS_NAN_BITS
    return decoded


def not_json_api(
    source: str, server: str, key: str, body: bytes | bytearray, content_type: str | None
) -> str | None:
    """The message for an answer that is not JSON at all (a proxy's login page, a UI path's
    HTML), with its content type and first characters; None for a body that opens a JSON
    object or list. ``source`` names the server in the message (``Prometheus at <url>``),
    ``server`` is its kind and ``key`` its config section."""
    if _OPENS_JSON.match(body):
        return None
    kind = (content_type or "").split(";")[0].strip() or "no content type"
    start = server_words(body[:1000].decode(errors="replace"), 60)
    return (
        f"{source} answered with something that is not its JSON API ({kind}: '{start}'); "
        f"check {key}.url points at the {server} server (not a proxy login page or UI path)"
    )


def malformed(where: str, detail: str) -> SourceError:
    """The error for JSON that is not a Prometheus API answer; ``detail`` says what is off."""
    return SourceError(
        f"{where} sent a malformed answer, not a Prometheus API response ({detail}); {_URL_FIX}"
    )


def cut_short(where: str, size: int | None = None) -> SourceError:
    """The error for an answer whose connection closed before its body was complete."""
    after = f" (the JSON ends after {size} bytes)" if size is not None else ""
    return SourceError(
        f"{where} closed the connection before its answer was complete{after}; check the "
        "server's health and any proxy in between, then rerun"
    )


def api_data(body: bytes, content_type: str | None, where: str) -> dict[str, Any]:
    """The ``data`` object of a (small) successful Prometheus API answer, e.g. of
    ``/api/v1/status/buildinfo`` or an instant query, after the checks :func:`decode_matrix`
    makes; ``where`` is ``Prometheus at <url>``."""
    problem = not_json_api(where, "Prometheus", _KEY, body, content_type)
    if problem:
        raise SourceError(problem)
    return _data(_parse(body, where), where)


def _parse(body: bytes | bytearray, where: str) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if exc.pos >= len(body.rstrip()) or "end of data" in exc.msg:
            raise cut_short(where, len(body)) from None
        raise malformed(where, f"invalid JSON: {exc.msg} at byte {exc.pos}") from None


def _data(envelope: Any, where: str) -> dict[str, Any]:
    if not isinstance(envelope, dict):
        raise malformed(where, f"a JSON {type(envelope).__name__}, not an object")
    status = envelope.get("status")
    if status == "error":
        words = server_words(str(envelope.get("error") or envelope), 200)
        raise SourceError(f"{where} answered an error ({words}); {_URL_FIX}")
    if status != "success":
        raise malformed(where, f'"status" is {excerpt(status)}, not "success"')
    data = envelope.get("data")
    if not isinstance(data, dict):
        raise malformed(where, 'no "data" object')
    return data


def _matrix_result(envelope: Any, where: str) -> list[Any]:
    """The ``result`` list of a range-vector answer, its envelope checked."""
    data = _data(envelope, where)
    kind = data.get("resultType")
    if kind != "matrix":
        raise malformed(where, f"a {excerpt(kind)} result where a range vector was asked for")
    result = data.get("result")
    if not isinstance(result, list):
        raise malformed(where, '"result" is not a list')
    return result


def _check_envelope(body: bytes | bytearray, where: str) -> None:
    problem = not_json_api(where, "Prometheus", _KEY, body, None)
    if problem:
        raise SourceError(problem)
    if b'"histograms":[' in body:
        raise SourceError(
            f"{where} returned native histogram samples, which this ingest does not store yet; "
            "select classic histogram series (_bucket, _count, _sum) instead"
        )


def _decode_fast(body: bytes | bytearray, where: str) -> DecodedMatrix | None:
    """Cut each series' ``values`` out of the body; what is left (envelope and label sets) is
    parsed as JSON in one go, which checks the answer's whole shape, end included."""
    regions: list[memoryview] = []
    rest: list[memoryview] = []  # the body without the regions
    counts: list[int] = []
    view = memoryview(body)
    done = 0
    pos = body.find(_METRIC)
    while pos != -1:
        values_at = body.find(_VALUES, pos)
        if values_at == -1:
            return None
        start = values_at + len(_VALUES)
        end = body.find(_VALUES_END, start)
        if end == -1:
            return None
        rest.append(view[done:start])
        regions.append(view[start : end + 2])
        done = end + 2
        counts.append(body.count(b"[", start, end))
        pos = body.find(_METRIC, end)
    rest.append(view[done:])
    skeleton = b"".join(rest)
    result = _matrix_result(orjson.loads(skeleton), where)
    # Each series is `{"metric":{...},"values":[]}` now: no `"` of a string follows a comma.
    if len(result) != len(regions) or skeleton.count(b',"values":[]}') != len(regions):
        return None
    label_sets = [series["metric"] for series in result]
    if not _label_sets(label_sets):
        return None
    total = sum(counts)
    if total == 0:
        return _empty(label_sets)
    ts_ms, values = np.empty(total, np.int64), np.empty(total, np.float64)
    done = 0
    for group in _region_groups(regions):
        # `[t,"v"],[t,"v"]` of each series -> `,t,v\n,t,v\n` in one pass (a leading empty column).
        csv_text = b",".join([b"", *group]).translate(_CLOSE_TO_NEWLINE, b'["')
        table = pacsv.read_csv(
            pa.py_buffer(csv_text),
            read_options=_CSV_READ,
            parse_options=_CSV_PARSE,
            convert_options=_CSV_CONVERT,
        )
        if done + table.num_rows > total:
            return None
        ts_ms[done : done + table.num_rows] = _seconds_to_ms(table.column("t").to_numpy())
        values[done : done + table.num_rows] = table.column("v").to_numpy()
        done += table.num_rows
    if done != total:
        return None
    return DecodedMatrix(
        label_sets=label_sets,
        counts=np.asarray(counts, dtype=np.int64),
        ts_ms=ts_ms,
        values=values,
    )


def _region_groups(regions: list[memoryview]) -> Iterator[list[memoryview]]:
    """``regions`` in runs of about ``_GROUP_BYTES``: each run's text is rewritten and parsed
    apart, so a large answer costs its body and its columns, not three copies of its text."""
    group: list[memoryview] = []
    size = 0
    for region in regions:
        group.append(region)
        size += len(region)
        if size >= _GROUP_BYTES:
            yield group
            group, size = [], 0
    if group:
        yield group


def _label_sets(label_sets: list[Any]) -> bool:
    """Every label set is an object of strings (one pass over all labels, no call per series)."""
    try:
        return all(type(v) is str for labels in label_sets for v in labels.values())
    except AttributeError:  # a label set that is not an object
        return False


def _decode_slow(body: bytes | bytearray, where: str) -> DecodedMatrix:
    result = _matrix_result(_parse(body, where), where)
    try:
        label_sets = [series["metric"] for series in result]
        counts = np.asarray([len(series["values"]) for series in result], dtype=np.int64)
        pairs = [pair for series in result for pair in series["values"]]
        if not _label_sets(label_sets):
            raise ValueError
        if not pairs:
            return _empty(label_sets)
        seconds = np.asarray([p[0] for p in pairs], dtype=np.float64)
        if not np.isfinite(seconds).all():
            raise ValueError
        values = pa.array([p[1] for p in pairs], pa.string()).cast(pa.float64())
    except (KeyError, IndexError, TypeError, ValueError, pa.ArrowException):
        raise malformed(where, _first_problem(result)) from None
    return DecodedMatrix(
        label_sets=label_sets,
        counts=counts,
        ts_ms=_seconds_to_ms(seconds),
        values=values.to_numpy().copy(),
    )


def _label_set(labels: Any) -> bool:
    return isinstance(labels, dict) and all(type(v) is str for v in labels.values())


def _first_problem(result: list[Any]) -> str:
    """What is wrong with the first bad series or sample of ``result`` (an error path: a loop)."""
    for series in result:
        if not isinstance(series, dict) or not _label_set(series.get("metric")):
            return f"a series without a label set: {excerpt(series)}"
        name = _series_name(series["metric"])
        values = series.get("values")
        if not isinstance(values, list):
            return f'series {name} has no "values" list'
        for pair in values:
            if not (
                isinstance(pair, list)
                and len(pair) == 2
                and type(pair[0]) in (int, float)
                and math.isfinite(pair[0])
                and isinstance(pair[1], str)
            ):
                return f'sample {excerpt(pair)} of {name} is not a [time, "value"] pair'
            if not _is_number(pair[1]):
                return f"sample value {excerpt(pair[1])} of {name} is not a number"
    return "its samples do not convert to numbers"


def _is_number(text: str) -> bool:
    try:
        pa.scalar(text, pa.string()).cast(pa.float64())
    except pa.ArrowInvalid:
        return False
    return True


def _series_name(labels: dict[str, str]) -> str:
    rest = ",".join(f'{k}="{v}"' for k, v in labels.items() if k != "__name__")
    return server_words(f"{labels.get('__name__', '')}{{{rest}}}", 120)


def excerpt(value: Any) -> str:
    """A bit of a malformed answer, quoted for a message: one line, scrubbed, short."""
    return server_words(orjson.dumps(value).decode() if value is not None else "null", 80)


def _seconds_to_ms(seconds: np.ndarray) -> np.ndarray:
    return np.rint(seconds * 1000.0).astype(np.int64)


def _empty(label_sets: list[dict[str, str]]) -> DecodedMatrix:
    return DecodedMatrix(
        label_sets=label_sets,
        counts=np.zeros(len(label_sets), dtype=np.int64),
        ts_ms=np.empty(0, dtype=np.int64),
        values=np.empty(0, dtype=np.float64),
    )
