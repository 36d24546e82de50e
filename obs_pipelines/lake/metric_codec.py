"""Warm-tier encoding of raw metric samples: lossless, and smaller than Prometheus's own TSDB.

A warm file stores ``(series_id, ts, value)`` as columns Parquet compresses far better than the
raw triple, each chosen by measurement (bench/compression_bench.py):

* ``ts = ts_base + ts_index * ts_step + unzigzag(ts_jitter)``: each series' scrape grid (first
  timestamp, median interval, both constant per series and nearly free in a dictionary) plus the
  scrape number (DELTA_BINARY_PACKED: a run of +1 costs nothing) and the few milliseconds of
  jitter (zigzagged to a small non-negative number; a dictionary of the few values seen packs
  each in ~4 bits, near its entropy. BYTE_STREAM_SPLIT would do as well on integers, but DuckDB
  1.5 reads it on FLOAT and DOUBLE columns only).
* ``value = value_int * value_unit / 10**value_scale`` when that reproduces the double bit for
  bit (counters counting whole events, integral gauges, gauges rounded to a few decimals; the
  per-series scale is the smallest that fits most samples, the unit the greatest common divisor
  of the series' scaled values, e.g. 4096 for memory counted in pages). Parquet's
  DELTA_BINARY_PACKED stores the per-series deltas of ``value_int`` in a few bits. Every other sample (noise, NaN with its payload, -0.0,
  infinities, fractional counters) is kept verbatim in ``value_float`` as BYTE_STREAM_SPLIT
  doubles.

Decoding is plain SQL (:func:`decode_sql`), so the catalog's view and the verification of a move
use the same expression, and a file stays readable by any Parquet engine with a line of SQL.
"""

import numpy as np
import pyarrow as pa

from obs_pipelines.lake.checksum import duckdb_connection
from obs_pipelines.lake.writer import Encoding
from obs_pipelines.schemas import METRIC_SAMPLES

MAX_SCALE = 6  # decimal digits tried for fractional values
_POW10 = np.array([10.0**e for e in range(MAX_SCALE + 1)])
_INT_LIMIT = float(2**53)  # every integer below this converts to a double and back exactly

WARM_SAMPLES = pa.schema(
    [
        pa.field("series_id", pa.uint64(), nullable=False),
        pa.field("ts_base", pa.int64(), nullable=False),
        pa.field("ts_step", pa.int32(), nullable=False),
        pa.field("ts_index", pa.int64(), nullable=False),
        pa.field("ts_jitter", pa.int32(), nullable=False),
        pa.field("value_scale", pa.int8(), nullable=False),
        pa.field("value_unit", pa.int64(), nullable=False),
        pa.field("value_int", pa.int64()),
        pa.field("value_float", pa.float64()),
    ]
)


def warm_samples_encoding(zstd_level: int) -> Encoding:
    return Encoding(
        compression="zstd",
        compression_level=zstd_level,
        column_encoding={
            "ts_index": "DELTA_BINARY_PACKED",
            "value_int": "DELTA_BINARY_PACKED",
            "value_float": "BYTE_STREAM_SPLIT",
        },
        use_dictionary=(
            "series_id",
            "ts_base",
            "ts_step",
            "ts_jitter",
            "value_scale",
            "value_unit",
        ),
        whole_pages=True,
    )


def decode_sql(relation: str) -> str:
    """SELECT reconstructing ``series_id, ts, value`` from an encoded relation (a table name or a
    ``read_parquet(...)`` call). ``ts`` is a TIMESTAMP, as in the catalog."""
    return f"""SELECT series_id,
       epoch_ms(ts_base + ts_index * ts_step + xor(ts_jitter >> 1, -(ts_jitter & 1))) AS ts,
       CASE WHEN value_int IS NULL THEN value_float
            ELSE (value_int * value_unit)::DOUBLE / [{", ".join(repr(float(p)) for p in _POW10)}][value_scale + 1]
       END AS value
FROM {relation}"""


def encode_samples(samples: pa.Table) -> pa.Table:
    """Encode samples sorted by (series_id, ts); raises if a value would not round-trip."""
    n = samples.num_rows
    sid = np.asarray(samples.column("series_id").combine_chunks()).astype(np.uint64, copy=False)
    ts = np.asarray(samples.column("ts").cast(pa.int64()).combine_chunks())
    values = np.asarray(samples.column("value").combine_chunks())
    if n == 0:
        return WARM_SAMPLES.empty_table()
    starts = np.flatnonzero(np.r_[True, sid[1:] != sid[:-1]])
    lengths = np.diff(np.r_[starts, n])
    group = np.repeat(np.arange(starts.size), lengths)

    base, step = ts[starts], _median_steps(ts, starts, group)
    base_rows, step_rows = base[group], step[group]
    index = np.rint((ts - base_rows) / step_rows).astype(np.int64)
    jitter = ts - base_rows - index * step_rows
    zigzag = ((jitter << 1) ^ (jitter >> 63)).astype(np.int32)

    scale, integral = _decimal_scales(values, starts, group)
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = np.where(integral, np.rint(values * _POW10[scale]), 0.0).astype(np.int64)
    unit = _common_units(scaled, integral, starts, group)
    scaled //= unit
    _check_round_trip(values, scaled * unit, scale, integral)
    return pa.table(
        [
            pa.array(sid, pa.uint64()),
            pa.array(base_rows, pa.int64()),
            pa.array(step_rows.astype(np.int32), pa.int32()),
            pa.array(index, pa.int64()),
            pa.array(zigzag, pa.int32()),
            pa.array(scale.astype(np.int8), pa.int8()),
            pa.array(unit, pa.int64()),
            pa.array(scaled, pa.int64(), mask=~integral),
            pa.array(values, pa.float64(), mask=integral),
        ],
        schema=WARM_SAMPLES,
    )


def decode_samples(encoded: pa.Table) -> pa.Table:
    """The raw samples of an encoded table, through the same SQL the catalog uses."""
    con = duckdb_connection()
    con.register("encoded_samples", encoded)
    try:
        decoded = con.execute(decode_sql("encoded_samples")).to_arrow_table()
    finally:
        con.unregister("encoded_samples")
    return decoded.cast(METRIC_SAMPLES)


def _median_steps(ts: np.ndarray, starts: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Median interval between consecutive samples of each series (1 for a lone sample)."""
    diffs = np.diff(ts, prepend=ts[0])
    inner = np.ones(ts.size, dtype=bool)
    inner[starts] = False
    d, g = diffs[inner], group[inner]
    steps = np.ones(starts.size, dtype=np.int64)
    if d.size:
        order = np.lexsort((d, g))
        counts = np.bincount(g, minlength=starts.size)
        offsets = np.r_[0, np.cumsum(counts)[:-1]]
        has = counts > 0
        steps[has] = d[order][offsets[has] + (counts[has] - 1) // 2]
    return np.clip(steps, 1, 2**31 - 1)


def _decimal_scales(
    values: np.ndarray, starts: np.ndarray, group: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per sample: the series' decimal scale, and whether the sample round-trips at it.

    Scales above 0 are only tried on the samples that are not whole numbers (a whole number
    keeps fitting at every scale here), which keeps the common all-integer case to one pass.
    """
    fits = np.empty((MAX_SCALE + 1, values.size), dtype=bool)
    fits[0] = _fits(values, 0)
    rest = np.flatnonzero(~fits[0])
    for e in range(1, MAX_SCALE + 1):
        fits[e] = fits[0]
        if rest.size:
            fits[e][rest] = _fits(values[rest], e)
    counts = np.add.reduceat(fits.astype(np.int64), starts, axis=1)
    best = np.argmax(counts, axis=0)  # first maximum: the smallest scale that fits most samples
    scale = best[group]
    return scale, fits[scale, np.arange(values.size)]


def _fits(values: np.ndarray, e: int) -> np.ndarray:
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = np.rint(values * _POW10[e])
        return (
            (np.abs(scaled) < _INT_LIMIT)
            & (scaled / _POW10[e] == values)
            & ~((values == 0) & np.signbit(values))
        )


def _common_units(
    scaled: np.ndarray, integral: np.ndarray, starts: np.ndarray, group: np.ndarray
) -> np.ndarray:
    """Per sample: the greatest common divisor of its series' scaled values (memory in pages
    of 4096 bytes, say), which the stored integers are divided by."""
    with np.errstate(over="ignore"):
        magnitude = np.where(integral, np.abs(scaled), 0)
    unit = np.gcd.reduceat(magnitude, starts)
    unit[unit <= 0] = 1  # all zero, or a magnitude that overflowed
    return unit[group]


def _check_round_trip(
    values: np.ndarray, scaled: np.ndarray, scale: np.ndarray, integral: np.ndarray
) -> None:
    rebuilt = np.where(integral, scaled.astype(np.float64) / _POW10[scale], values)
    if not np.array_equal(rebuilt.view(np.uint64), values.view(np.uint64)):
        raise AssertionError("metric sample encoding would change a value; this is a bug")
