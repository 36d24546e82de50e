"""``obs query``'s JSON texts of values (the JSON output, and the CSV cells of lists, structs and
maps) are built over whole Arrow columns, and must be the bytes orjson writes for each value as
Python, which is how they were built before (and still are for the rare types left to it)."""

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from obs_pipelines.reporting import query

ALL_TYPES = duckdb.sql("SELECT * FROM test_all_types()").to_arrow_table()


def value_by_value(column: pa.Array) -> list[str | None]:
    """The texts as orjson writes each value (the writer's own fallback for rare types)."""
    return [query._dumped(v) for v in query._json_values(column)]


def alone_and_nested(name: str) -> tuple[pa.Array, pa.Array]:
    column = ALL_TYPES.column(name).combine_chunks()
    nested = pa.StructArray.from_arrays(
        [column, pa.ListArray.from_arrays(pa.array([0, 1, 2, 3]), column)], names=["v", "l"]
    )
    return column, nested


def python_holds(name: str) -> bool:
    """Whether the old value-by-value way could write the column at all."""
    try:
        for values in alone_and_nested(name):
            value_by_value(values)
    except (OverflowError, ValueError):
        return False
    return True


# Dates and times Python cannot hold (infinity, year 0) made the old way fail, and it wrote
# 24:00:00 as 00:00:00: those columns are checked by tests/test_query_outputs.py instead.
COMPARABLE = [
    name
    for name in ALL_TYPES.column_names
    if name not in ("time", "time_ns", "time_tz") and python_holds(name)
]


@pytest.mark.parametrize("name", COMPARABLE)
def test_every_duckdb_type_is_written_as_orjson_writes_its_python_value(name: str) -> None:
    """test_all_types() holds each type's smallest, largest and null value, alone and in a list,
    a struct and a map."""
    for values in alone_and_nested(name):
        assert query._json_texts(values).to_pylist() == value_by_value(values)


def test_the_comparison_leaves_out_only_what_python_cannot_hold() -> None:
    left_out = set(ALL_TYPES.column_names) - set(COMPARABLE)
    assert left_out and all(
        "date" in n or "time" in n or n.startswith("timestamp") for n in left_out
    ), left_out


def test_doubles_are_written_with_orjsons_digits_and_exponents() -> None:
    rng = np.random.default_rng(7)
    bits = rng.integers(0, 2**64, 200_000, dtype=np.uint64).view(np.float64)
    scaled = rng.standard_normal(200_000) * 10.0 ** rng.integers(-30, 30, 200_000)
    edges = [0.0, -0.0, 1e-5, -1e-5, 1e-6, 1e15, 1e16, 5e-324, float("inf"), float("nan"), None]
    column = pa.array([*bits.tolist(), *scaled.tolist(), *edges], pa.float64())

    assert query._json_texts(column).to_pylist() == value_by_value(column)


def test_strings_escape_what_json_escapes_and_nothing_else() -> None:
    texts = ["".join(map(chr, range(0, 0x80))), 'a "quoted", \\ back', "é \u2028 😀", "", None]
    column = pa.array([texts], pa.list_(pa.string()))

    assert query._json_texts(column).to_pylist() == value_by_value(column)


def test_dates_and_times_python_holds_are_written_as_orjson_writes_them() -> None:
    rng = np.random.default_rng(3)
    us = rng.integers(-62_135_596_800_000_000, 253_402_300_799_000_000, 20_000)
    arrays = [
        pa.array(us, pa.int64()).cast(pa.timestamp("us")),
        pa.array(us // 1000, pa.int64()).cast(pa.timestamp("ms")),
        pa.array(us // 1_000_000, pa.int64()).cast(pa.timestamp("s")),
        pa.array(us, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        pa.array(us // 86_400_000_000, pa.int32()).cast(pa.date32()),
        pa.array(rng.integers(0, 86_400_000_000, us.size), pa.int64()).cast(pa.time64("us")),
    ]
    for column in arrays[:-1]:
        nested = pa.ListArray.from_arrays(pa.array([0, 2, 2, len(column)]), column)
        for values in (column, nested):
            assert query._json_texts(values).to_pylist() == value_by_value(values), column.type
    # orjson 3.13 writes time(19, 16, 23, 40437) as "19:16:23.40437": times are ISO 8601's.
    times = arrays[-1]
    in_nanoseconds = pa.array(pc.multiply(times.cast(pa.int64()), 1000)).cast(pa.time64("ns"))
    for column in (times, in_nanoseconds):
        expected = [f'"{t.isoformat()}"' for t in times.to_pylist()]
        assert query._json_texts(column).to_pylist() == expected, column.type
