"""Content checksums of tables: order-independent, bit-exact, and additive.

A table's checksum is the sum (mod 2**64) of one 64-bit hash per row, with its row count. Sums
make it additive: the checksum of a compacted day equals the sum of its hourly files', so a move
is verified against its sources without ever holding them together. Numbers are hashed by their
bits (NaN payloads and -0.0 count), everything else (strings, maps, lists) by DuckDB's ``hash``.
"""

import threading
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa

_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)
_NULL = np.uint64(0x9E3779B97F4A7C15)


@dataclass(frozen=True)
class Checksum:
    rows: int
    digest: int

    def __add__(self, other: "Checksum") -> "Checksum":
        return Checksum(self.rows + other.rows, (self.digest + other.digest) % 2**64)

    def __sub__(self, other: "Checksum") -> "Checksum":
        return Checksum(self.rows - other.rows, (self.digest - other.digest) % 2**64)


EMPTY = Checksum(0, 0)


def table_checksum(table: pa.Table) -> Checksum:
    if table.num_rows == 0:
        return EMPTY
    hashed = _duckdb_hashes(table)
    row = np.zeros(table.num_rows, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for position, name in enumerate(table.column_names):
            column = hashed.get(name)
            if column is None:
                column = _numeric_hash(table.column(name).combine_chunks())
            row = _mix(row * np.uint64(0x100000001B3) + column + np.uint64(position + 1))
        digest = int(row.sum(dtype=np.uint64))
    return Checksum(table.num_rows, digest)


def _is_numeric(kind: pa.DataType) -> bool:
    return (
        pa.types.is_timestamp(kind)
        or pa.types.is_date(kind)
        or pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_boolean(kind)
    )


def _numeric_hash(array: pa.Array) -> np.ndarray:
    kind = array.type
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        array = array.cast(pa.int64())
        kind = array.type
    filled = array.fill_null(False if pa.types.is_boolean(kind) else 0)
    values = np.asarray(filled.cast(pa.int64()) if pa.types.is_boolean(kind) else filled)
    bits = _as_u64(values)
    if array.null_count:
        bits = np.where(np.asarray(array.is_null()), _NULL, bits)
    return _mix(bits)


def _duckdb_hashes(table: pa.Table) -> dict[str, np.ndarray]:
    """DuckDB's hash of every non-numeric column, in one query."""
    names = [f.name for f in table.schema if not _is_numeric(f.type)]
    if not names:
        return {}
    con = duckdb_connection()
    subset = table.select(names).rename_columns([f"c{i}" for i in range(len(names))])
    con.register("checksum_input", subset)
    try:
        result = con.execute(
            "SELECT "
            + ", ".join(f"hash(c{i}) AS h{i}" for i in range(len(names)))
            + " FROM checksum_input"
        ).to_arrow_table()
    finally:
        con.unregister("checksum_input")
    return {
        name: np.asarray(result.column(f"h{i}").combine_chunks()).astype(np.uint64, copy=False)
        for i, name in enumerate(names)
    }


_local = threading.local()


def duckdb_connection() -> duckdb.DuckDBPyConnection:
    """One in-memory DuckDB per thread (connecting costs ~10 ms; a connection is not shared
    between threads)."""
    con = getattr(_local, "con", None)
    if con is None:
        con = _local.con = duckdb.connect()
    return con


def _as_u64(values: np.ndarray) -> np.ndarray:
    if values.dtype.itemsize == 8:
        return values.view(np.uint64)
    if values.dtype.kind == "f":
        return values.astype(np.float64).view(np.uint64)
    return values.astype(np.int64).view(np.uint64)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: spreads every input bit over the whole word."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))
