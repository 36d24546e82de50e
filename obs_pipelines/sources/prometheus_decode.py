"""Decoding Prometheus ``matrix`` responses into columns, without a Python object per sample.

The response body is the hot path of metrics ingest: a million samples arrive as ~40 MB of JSON.
Labels are parsed per series (orjson); the ``values`` arrays of all series are cut out of the body,
rewritten with bytes operations into two-column CSV text, and parsed by Arrow's multithreaded,
correctly rounded CSV reader. A body that does not have Prometheus's compact layout falls back to
a full (slower) orjson parse, so correctness never depends on the fast path.
"""

from dataclasses import dataclass

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.csv as pacsv

from obs_pipelines.errors import SourceError

# Prometheus decodes the text "NaN" to Go's math.NaN(); keep those exact bits.
PROMETHEUS_NAN_BITS = np.uint64(0x7FF8000000000001)

_METRIC = b'{"metric":'
_VALUES = b',"values":['
_VALUES_END = b'"]]'
_CLOSE_TO_NEWLINE = bytes.maketrans(b"]", b"\n")
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


def decode_matrix(body: bytes) -> DecodedMatrix:
    """Decode a successful ``/api/v1/query`` response whose result is a range vector."""
    _check_envelope(body)
    try:
        decoded = _decode_fast(body)
    except (pa.ArrowInvalid, ValueError, orjson.JSONDecodeError):
        decoded = None
    if decoded is None:
        decoded = _decode_slow(body)
    bits = decoded.values.view(np.uint64)
    bits[np.isnan(decoded.values)] = PROMETHEUS_NAN_BITS
    return decoded


def _check_envelope(body: bytes) -> None:
    head = body[:200]
    if b'"status":"success"' not in head and b'"status": "success"' not in head:
        raise SourceError(f"Prometheus answered an error: {body[:300].decode(errors='replace')}")
    if b'"resultType":"matrix"' not in head and b'"resultType": "matrix"' not in head:
        raise SourceError(
            "Prometheus did not return a range vector; the selector must be a plain series selector"
        )
    if b'"histograms":[' in body:
        raise SourceError(
            "Prometheus returned native histogram samples, which this ingest does not store yet; "
            "select classic histogram series (_bucket, _count, _sum) instead"
        )


def _decode_fast(body: bytes) -> DecodedMatrix | None:
    label_sets: list[dict[str, str]] = []
    regions: list[memoryview] = []
    counts: list[int] = []
    view = memoryview(body)
    pos = body.find(_METRIC)
    while pos != -1:
        values_at = body.find(_VALUES, pos)
        if values_at == -1:
            return None
        label_sets.append(orjson.loads(view[pos + len(_METRIC) : values_at]))
        start = values_at + len(_VALUES)
        end = body.find(_VALUES_END, start)
        if end == -1:
            return None
        regions.append(view[start : end + 2])
        counts.append(body.count(b"[", start, end))
        pos = body.find(_METRIC, end)
    if not label_sets and b'"metric"' in body:
        return None
    total = sum(counts)
    if total == 0:
        return _empty(label_sets)
    # `[t,"v"],[t,"v"]` of every series -> `,t,v\n,t,v\n` in one pass (a leading empty column).
    csv_text = b",".join([b"", *regions]).translate(_CLOSE_TO_NEWLINE, b'["')
    table = pacsv.read_csv(
        pa.py_buffer(csv_text),
        read_options=_CSV_READ,
        parse_options=_CSV_PARSE,
        convert_options=_CSV_CONVERT,
    )
    if table.num_rows != total:
        return None
    return DecodedMatrix(
        label_sets=label_sets,
        counts=np.asarray(counts, dtype=np.int64),
        ts_ms=_seconds_to_ms(table.column("t").to_numpy()),
        values=table.column("v").to_numpy().copy(),
    )


def _decode_slow(body: bytes) -> DecodedMatrix:
    try:
        result = orjson.loads(body)["data"]["result"]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise SourceError(
            f"Prometheus sent a response that is not valid query JSON ({exc})"
        ) from None
    label_sets = [series["metric"] for series in result]
    counts = np.asarray([len(series["values"]) for series in result], dtype=np.int64)
    pairs = [pair for series in result for pair in series["values"]]
    if not pairs:
        return _empty(label_sets)
    return DecodedMatrix(
        label_sets=label_sets,
        counts=counts,
        ts_ms=_seconds_to_ms(np.asarray([p[0] for p in pairs], dtype=np.float64)),
        values=pa.array([p[1] for p in pairs], pa.string()).cast(pa.float64()).to_numpy().copy(),
    )


def _seconds_to_ms(seconds: np.ndarray) -> np.ndarray:
    return np.rint(seconds * 1000.0).astype(np.int64)


def _empty(label_sets: list[dict[str, str]]) -> DecodedMatrix:
    return DecodedMatrix(
        label_sets=label_sets,
        counts=np.zeros(len(label_sets), dtype=np.int64),
        ts_ms=np.empty(0, dtype=np.int64),
        values=np.empty(0, dtype=np.float64),
    )
