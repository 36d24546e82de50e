"""Issue 13's storage questions, measured on this machine before the lake becomes Delta tables.

Why: converting every dataset to Delta Lake (``deltalake``, the Rust writer) only pays if the
tables stay as small as the warm tier, read the same through DuckDB (delta-kernel) and polars
(delta-rs), locally and on S3, and an hour can be written and compacted as single commits at a
cost near ``Lake.write_hot``. This measures each of those on two one-day histories:

* ``simulator``: the built-in Waardhaven metrics (``SimulatedMetrics``, default config), as
  bench/compression_bench.py gets them;
* ``report-bench``: one day of bench/report_bench.py's ``History`` (``--services`` services).

1. bytes per sample: our warm codec written as tiering writes it (``tiering._write``) and with
   whole-row-group pages; the codec's columns in a Delta table; the plain ``metric_samples``
   schema as Delta with DELTA_BINARY_PACKED integers, BYTE_STREAM_SPLIT doubles and zstd at
   several levels and page sizes; Delta's and pyarrow's defaults with zstd. Every variant is read
   back and checked bit for bit against the source (rows and checksum).
2. read consistency: the candidate Delta table read by DuckDB ``delta_scan`` (extension loaded
   from its wheel, no network) and ``polars.scan_delta``, locally and on a ``moto_server`` S3.
3. hourly writes: 24 predicate overwrites (unpartitioned and partitioned by day) vs
   ``Lake.write_hot``; rewriting one hour twice; compacting the day into one file in one commit.
4. ``EXPLAIN ANALYZE`` of a one-day count over a multi-day table: how many files are read.
5. (``--catalog-only``, on its own) the catalog and the reports on Delta tables, on a copy of
   bench/report_bench.py's lake: ``obs lake migrate`` (time, rows, bytes against the hot files);
   a catalog of ``delta_scan`` views with the file catalog's columns and types, with
   ``lake_partitions`` from the Delta logs and the reports published (build time against
   ``build_catalog``); every report's rows compared between the two catalogs; the report suite
   in one session on each; the files a one-day query reads. Written as its own section of the
   results file, which a run of sections 1-4 keeps.

Writes ``bench/RESULTS-delta.md``; work files go to ``bench/work/delta/``. From the repo root
(about a minute on 2 cores):

    .venv/bin/python -m bench.delta_bench [--services 20 --days 7 --reps 3]
    .venv/bin/python -m bench.delta_bench --catalog-only --work /tmp/s17/b50 --services 50 --days 30

(the second about 6 minutes; its copy of the lake goes to ``bench/work/delta-catalog/``).
"""

import argparse
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import ColumnProperties, DeltaTable, WriterProperties, write_deltalake

from bench.compression_bench import simulator_history
from bench.report_bench import START as HISTORY_START
from bench.report_bench import History
from obs_pipelines.config import DEFAULT_ZSTD_LEVELS, ObsConfig, parse_config
from obs_pipelines.lake import Lake
from obs_pipelines.lake.checksum import Checksum, table_checksum
from obs_pipelines.lake.metric_codec import decode_samples, encode_samples, warm_samples_encoding
from obs_pipelines.lake.tiering import _Output, _write
from obs_pipelines.lake.writer import Encoding
from obs_pipelines.schemas import METRIC_SAMPLES
from obs_pipelines.windows import HOUR, TimeWindow

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "bench" / "work" / "delta"
RESULTS = REPO / "bench" / "RESULTS-delta.md"
WARM_LEVEL = DEFAULT_ZSTD_LEVELS["warm"]
HOT_LEVEL = DEFAULT_ZSTD_LEVELS["hot"]
WHOLE = 1 << 21  # rows per row group and per page: a day's column chunk in one page
CODEC_GOAL = 1.4  # B/sample of the warm codec on the simulator (issue 13)
STANDARD_MARGIN = 1.15  # standard encodings may cost up to 15% more than the codec to drop it
PLAIN_TUNED = {"series_id": "DELTA_BINARY_PACKED", "ts": "DELTA_BINARY_PACKED"}
PLAIN_TUNED["value"] = "BYTE_STREAM_SPLIT"
MOTO_KEY = "testing"  # moto accepts any key; a dummy, never a real credential


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- the data -------------------------------------------------------------------------------------


@dataclass
class Dataset:
    name: str
    samples: pa.Table  # METRIC_SAMPLES, one day, sorted by (series_id, ts)
    series: int
    checksum: Checksum

    @property
    def rows(self) -> int:
        return self.samples.num_rows

    @property
    def day(self) -> date:
        return self.samples.column("ts")[0].as_py().date()


def simulator_day() -> Dataset:
    series, samples = simulator_history(1)
    return Dataset("simulator", samples, series.num_rows, table_checksum(samples))


def report_bench_day(services: int, seed: int) -> Dataset:
    history = History(services, 1, seed)
    hours = pa.concat_tables(history.hour(i)[1] for i in range(24))
    samples = hours.sort_by([("series_id", "ascending"), ("ts", "ascending")])
    name = f"report-bench ({services} services)"
    return Dataset(name, samples, history.series_count, table_checksum(samples))


def _bits(column: pa.ChunkedArray, kind: pa.DataType) -> pa.ChunkedArray:
    """The same 64 bits as another integer type (Delta has no unsigned integers)."""
    return pa.chunked_array([c.view(kind) for c in column.chunks], kind)


def to_delta(samples: pa.Table, *, ts_ms: bool = False, day: bool = False) -> pa.Table:
    """Samples as Delta stores them: series_id's bits as BIGINT (a uint64 above 2**63 is refused),
    ts as a timestamp (delta-rs widens it to microseconds) or as BIGINT epoch milliseconds."""
    ts = samples.column("ts")
    table = pa.table(
        {
            "series_id": _bits(samples.column("series_id"), pa.int64()),
            "ts": ts.cast(pa.int64()) if ts_ms else ts,
            "value": samples.column("value"),
        }
    )
    if day:
        days = pc.cast(ts.cast(pa.timestamp("ms")), pa.date32())
        table = table.append_column("day", days)
    return table


def from_delta(table: pa.Table) -> pa.Table:
    """A reader's rows back in METRIC_SAMPLES form; a timestamp below the millisecond raises."""
    ts = table.column("ts")
    if pa.types.is_integer(ts.type):
        ts = ts.cast(pa.int64()).cast(pa.timestamp("ms"))
    return pa.table(
        [
            _bits(table.column("series_id").cast(pa.int64()), pa.uint64()),
            ts.cast(pa.timestamp("ms")),
            table.column("value"),
        ],
        schema=METRIC_SAMPLES,
    )


def encoded_for_delta(samples: pa.Table) -> pa.Table:
    encoded = encode_samples(samples)
    return encoded.set_column(0, "series_id", _bits(encoded.column("series_id"), pa.int64()))


def decoded_from_delta(table: pa.Table) -> pa.Table:
    encoded = table.set_column(0, "series_id", _bits(table.column("series_id"), pa.uint64()))
    return decode_samples(encoded)


# -- writing --------------------------------------------------------------------------------------


def delta_props(encoding: Encoding, *, whole_pages: bool) -> WriterProperties:
    """delta-rs writer properties carrying one of our Encodings (columns, dictionary, zstd)."""
    columns = {
        name: ColumnProperties(dictionary_enabled=False, encoding=kind)  # type: ignore[arg-type]
        for name, kind in encoding.column_encoding.items()
    }
    if not isinstance(encoding.use_dictionary, bool):
        columns |= {c: ColumnProperties(dictionary_enabled=True) for c in encoding.use_dictionary}
    pages: dict[str, Any] = {}
    if whole_pages:
        pages = {
            "max_row_group_size": WHOLE,
            "data_page_row_count_limit": WHOLE,
            "data_page_size_limit": 1 << 26,
        }
    return WriterProperties(
        compression="ZSTD",
        compression_level=encoding.compression_level,
        column_properties=columns,
        **pages,
    )


def plain_encoding(level: int, *, series_dictionary: bool = False) -> Encoding:
    tuned = dict(PLAIN_TUNED)
    if series_dictionary:
        del tuned["series_id"]
    return Encoding(
        compression_level=level,
        column_encoding=tuned,
        use_dictionary=("series_id",) if series_dictionary else (),
    )


def delta_bytes(uri: str, storage_options: dict[str, str] | None = None) -> tuple[int, int]:
    """(bytes, files) of the table's live data files, from its log."""
    actions = pa.table(
        DeltaTable(uri, storage_options=storage_options).get_add_actions(flatten=True)
    )
    return int(pc.sum(actions.column("size_bytes")).as_py() or 0), actions.num_rows


def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(wall s, CPU s of this process and all its threads, result)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def check(ds: Dataset, got: pa.Table, what: str) -> None:
    found = table_checksum(got)
    if found != ds.checksum:
        raise SystemExit(
            f"{ds.name}: {what} read back {found.rows} rows (or a different checksum) where "
            f"{ds.rows} were written; the figures would be meaningless, so the run stops"
        )


# -- 1. bytes per sample --------------------------------------------------------------------------


@dataclass
class Size:
    key: str
    label: str
    bytes: int
    seconds: float

    def per_sample(self, rows: int) -> float:
        return self.bytes / rows


def sizes(ds: Dataset, work: Path) -> dict[str, Size]:
    out: dict[str, Size] = {}
    warm = warm_samples_encoding(WARM_LEVEL)

    path = work / "codec-tiering.parquet"
    output = _Output("metric_samples", path.name, ds.samples, ds.checksum, warm, *_day(ds))
    wall, _, _ = timed(lambda: _write(path, output))
    check(ds, decode_samples(pq.read_table(path)), "the warm file")
    label = f"warm codec as tiering writes it (`tiering._write`), zstd {WARM_LEVEL}"
    out["codec"] = Size("codec", label, path.stat().st_size, wall)

    path = work / "codec-whole-pages.parquet"

    def codec_whole() -> None:
        encoded = encode_samples(ds.samples)
        options = warm.for_schema(encoded.schema).writer_options()
        options |= {"row_group_size": WHOLE, "max_rows_per_page": WHOLE}
        pq.write_table(encoded, path, **options)  # type: ignore[arg-type]

    wall, _, _ = timed(codec_whole)
    check(ds, decode_samples(pq.read_table(path)), "the whole-page warm file")
    label = f"warm codec, whole-row-group pages (pyarrow `max_rows_per_page`), zstd {WARM_LEVEL}"
    out["codec-whole"] = Size("codec-whole", label, path.stat().st_size, wall)

    uri = str(work / "codec-delta")
    props = delta_props(warm, whole_pages=True)
    wall, _, _ = timed(
        lambda: write_deltalake(uri, encoded_for_delta(ds.samples), writer_properties=props)
    )
    check(ds, decoded_from_delta(DeltaTable(uri).to_pyarrow_table()), "the codec Delta table")
    label = f"warm codec's columns in a Delta table (delta-rs), whole pages, zstd {WARM_LEVEL}"
    out["codec-delta"] = Size("codec-delta", label, delta_bytes(uri)[0], wall)

    plain = [
        ("delta-default-pages", WARM_LEVEL, False, False, False, "delta-rs default pages (20,000 rows)"),
        *[(f"delta-{lvl}", lvl, True, False, False, "whole pages") for lvl in (3, WARM_LEVEL, 19)],
        ("delta-series-dict", WARM_LEVEL, True, True, False, "whole pages, series_id dictionary instead of DELTA"),
        ("delta-ts-ms", WARM_LEVEL, True, False, True, "whole pages, ts as BIGINT epoch-ms instead of a timestamp"),
    ]  # fmt: skip
    for key, level, whole, series_dictionary, ts_ms, note in plain:
        uri = str(work / key)
        props = delta_props(
            plain_encoding(level, series_dictionary=series_dictionary), whole_pages=whole
        )
        data = to_delta(ds.samples, ts_ms=ts_ms)
        wall, _, _ = timed(lambda: write_deltalake(uri, data, writer_properties=props))  # noqa: B023
        check(ds, from_delta(DeltaTable(uri).to_pyarrow_table()), f"Delta table {key}")
        label = f"Delta, plain schema, DELTA ints + BYTE_STREAM_SPLIT value, {note}, zstd {level}"
        out[key] = Size(key, label, delta_bytes(uri)[0], wall)

    uri = str(work / "delta-defaults")
    props = WriterProperties(compression="ZSTD")
    wall, _, _ = timed(lambda: write_deltalake(uri, to_delta(ds.samples), writer_properties=props))
    check(ds, from_delta(DeltaTable(uri).to_pyarrow_table()), "Delta table with defaults")
    label = "Delta, plain schema, delta-rs defaults + zstd (its default level)"
    out["delta-defaults"] = Size("delta-defaults", label, delta_bytes(uri)[0], wall)

    path = work / "pyarrow-defaults.parquet"
    wall, _, _ = timed(lambda: pq.write_table(ds.samples, path, compression="zstd"))
    check(ds, pq.read_table(path), "the pyarrow file")
    label = "Parquet (pyarrow) defaults + zstd (its default level), plain schema, one file"
    out["pyarrow-defaults"] = Size("pyarrow-defaults", label, path.stat().st_size, wall)
    return out


def _day(ds: Dataset) -> tuple[datetime, datetime]:
    start = datetime(ds.day.year, ds.day.month, ds.day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def size_verdict(ds: Dataset, found: dict[str, Size]) -> list[str]:
    """The issue's two questions: is the codec within its goal, and do standard encodings cost
    less than 15% more than it? Like for like: both in Delta, same writer, pages and level."""
    b = {k: s.per_sample(ds.rows) for k, s in found.items()}
    standard, codec = b[f"delta-{WARM_LEVEL}"], b["codec-delta"]
    lines = []
    codec_line = f"warm codec as tiering writes it today: {b['codec']:.3f} B/sample"
    if ds.name == "simulator":
        ok = b["codec"] <= CODEC_GOAL
        codec_line += f" (goal <= {CODEC_GOAL}: **{'met' if ok else 'missed'}**)"
    lines.append(codec_line)
    ratio = standard / codec
    word = "drop the codec" if ratio < STANDARD_MARGIN else "keep the codec"
    lines.append(
        f"**verdict: {word}**: plain schema in Delta ({standard:.3f}) costs {ratio:.2f}x "
        f"({(ratio - 1) * 100:+.0f}%) the codec's columns in Delta ({codec:.3f}), same writer, "
        f"whole pages, zstd {WARM_LEVEL}; the threshold is {STANDARD_MARGIN:.2f}x"
    )
    ratio = b["delta-ts-ms"] / codec
    lines.append(
        f"with ts as BIGINT epoch-ms instead of a timestamp ({b['delta-ts-ms']:.3f}): "
        f"{ratio:.2f}x ({(ratio - 1) * 100:+.0f}%)"
    )
    ratio = standard / b["codec"]
    lines.append(
        f"for reference, against today's warm files (default pages, {b['codec']:.3f}): "
        f"{ratio:.2f}x ({(ratio - 1) * 100:+.0f}%); whole pages alone take the codec from "
        f"{b['codec']:.3f} to {b['codec-whole']:.3f} "
        f"({(b['codec-whole'] / b['codec'] - 1) * 100:+.0f}%)"
    )
    return lines


# -- 2. read consistency --------------------------------------------------------------------------


def delta_extension() -> Path:
    import duckdb_extension_delta

    return (
        Path(duckdb_extension_delta.__file__).parent
        / "extensions"
        / f"v{duckdb.__version__}"
        / "delta.duckdb_extension"
    )


def httpfs_extension() -> Path:
    import duckdb_extension_httpfs

    return (
        Path(duckdb_extension_httpfs.__file__).parent
        / "extensions"
        / f"v{duckdb.__version__}"
        / "httpfs.duckdb_extension"
    )


def duckdb_reader(endpoint: str | None = None) -> duckdb.DuckDBPyConnection:
    """DuckDB with delta (and for S3 httpfs and a path-style secret), loaded from the wheels."""
    con = duckdb.connect()
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    if endpoint:
        con.execute(f"LOAD '{httpfs_extension()}'")
        host = endpoint.split("://", 1)[1]
        con.execute(
            f"CREATE TEMPORARY SECRET bench_s3 (TYPE s3, KEY_ID '{MOTO_KEY}', SECRET '{MOTO_KEY}', "
            f"REGION 'us-east-1', ENDPOINT '{host}', URL_STYLE 'path', USE_SSL false)"
        )
    con.execute(f"LOAD '{delta_extension()}'")
    return con


def read_duckdb(con: duckdb.DuckDBPyConnection, uri: str) -> tuple[int, Checksum]:
    (count,) = con.execute(f"SELECT count(*) FROM delta_scan('{uri}')").fetchone()  # type: ignore[misc]
    rows = con.execute(f"SELECT series_id, ts, value FROM delta_scan('{uri}')").to_arrow_table()
    return int(count), table_checksum(from_delta(rows))


def read_polars(uri: str, options: dict[str, str] | None) -> tuple[int, Checksum]:
    count = pl.scan_delta(uri, storage_options=options).select(pl.len()).collect().item()
    rows = pl.scan_delta(uri, storage_options=options).collect().to_arrow()
    return int(count), table_checksum(from_delta(rows))


def consistency(
    ds: Dataset, uri: str, where: str, options: dict[str, str] | None, endpoint: str | None
) -> tuple[list[str], bool]:
    con = duckdb_reader(endpoint)
    lines, same = [], True
    for reader, read in (
        ("DuckDB `delta_scan`", lambda: read_duckdb(con, uri)),
        ("polars `scan_delta`", lambda: read_polars(uri, options)),
    ):
        wall, _, (count, checksum) = timed(read)
        ok = count == ds.rows and checksum == ds.checksum
        same &= ok
        lines.append(
            f"| {ds.name} | {where} | {reader} | {count:,} | {checksum.digest:016x} | "
            f"{'yes' if ok else '**NO**'} | {wall:.2f} |"
        )
    con.close()
    return lines, same


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def moto_s3() -> Iterator[str]:
    """moto's S3 server as our own subprocess on a free port; stopped by its pid at the end."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    binary = Path(sys.executable).with_name("moto_server")
    process = subprocess.Popen(
        [str(binary), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise SystemExit(
                    f"moto_server exited with {process.returncode}; is moto[server] installed?"
                )
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("moto_server did not answer within 30 s") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def s3_options(endpoint: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ALLOW_HTTP": "true",
        "AWS_ACCESS_KEY_ID": MOTO_KEY,
        "AWS_SECRET_ACCESS_KEY": MOTO_KEY,
        "AWS_REGION": "us-east-1",
        "aws_conditional_put": "etag",
    }


def make_bucket(endpoint: str, bucket: str) -> None:
    import boto3

    boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=MOTO_KEY,
        aws_secret_access_key=MOTO_KEY,
        region_name="us-east-1",
    ).create_bucket(Bucket=bucket)


# -- 3. hourly writes, rewrite, compaction --------------------------------------------------------


def hours_of(ds: Dataset) -> list[tuple[TimeWindow, pa.Table]]:
    start, _ = _day(ds)
    hour_of = (
        np.asarray(ds.samples.column("ts").cast(pa.int64())) - int(start.timestamp() * 1000)
    ) // 3_600_000
    out = []
    for h in range(24):
        window = TimeWindow(start + h * HOUR, start + (h + 1) * HOUR)
        out.append((window, ds.samples.filter(pa.array(hour_of == h))))
    return out


def hour_predicate(window: TimeWindow, *, day: bool) -> str:
    fmt = "%Y-%m-%d %H:%M:%S"
    predicate = f"ts >= '{window.start:{fmt}}' AND ts < '{window.end:{fmt}}'"
    return f"day = '{window.start.date()}' AND {predicate}" if day else predicate


@dataclass
class WriteRun:
    label: str
    walls: list[float]
    cpu: float
    bytes: int
    files: int
    commits: int | None
    reps: int = 1

    def row(self) -> str:
        commits = "" if self.commits is None else f"{self.commits}"
        return (
            f"| {self.label} | {self.reps} | {len(self.walls)} | {sum(self.walls):.2f} | "
            f"{statistics.median(self.walls) * 1000:.0f} | {self.cpu:.2f} | {self.files} | "
            f"{self.bytes:,} | {commits} |"
        )


def write_hours_lake(
    hours: list[tuple[TimeWindow, pa.Table]], lake_section: dict[str, Any], where: str
) -> WriteRun:
    lake = Lake(parse_config({"lake": lake_section}))
    walls, cpu, size = [], 0.0, 0
    for window, part in hours:
        wall, cpu_s, written = timed(
            lambda: lake.write_hot("metric_samples", window, part, sort=False)  # noqa: B023
        )
        walls.append(wall)
        cpu += cpu_s
        size += written.bytes
    label = f"`Lake.write_hot` (as ingest: sorted hour, zstd {HOT_LEVEL}), {where}"
    return WriteRun(label, walls, cpu, size, len(hours), None)


def write_hours_delta(
    hours: list[tuple[TimeWindow, pa.Table]],
    uri: str,
    *,
    day: bool,
    where: str = "local",
    storage_options: dict[str, str] | None = None,
) -> WriteRun:
    props = delta_props(plain_encoding(HOT_LEVEL), whole_pages=True)
    walls, cpu = [], 0.0
    for window, part in hours:
        wall, cpu_s, _ = timed(
            lambda: write_deltalake(
                uri,
                to_delta(part, day=day),  # noqa: B023
                mode="overwrite",
                predicate=hour_predicate(window, day=day),  # noqa: B023
                partition_by=["day"] if day else None,
                writer_properties=props,
                storage_options=storage_options,
            )
        )
        walls.append(wall)
        cpu += cpu_s
    size, files = delta_bytes(uri, storage_options)
    layout = "partitioned by day" if day else "unpartitioned"
    label = f"Delta predicate overwrite per hour, {layout}, zstd {HOT_LEVEL}, {where}"
    version = DeltaTable(uri, storage_options=storage_options).version()
    return WriteRun(label, walls, cpu, size, files, version + 1)


def s3_hourly(ds: Dataset, endpoint: str, bucket: str, work: Path, reps: int) -> list[WriteRun]:
    """The same 24 hourly writes on moto S3: ``Lake.write_hot`` and Delta predicate overwrites."""
    hours = hours_of(ds)
    os.environ["BENCH_MOTO_KEY"] = MOTO_KEY  # the lake reads credentials from named variables

    def section(i: int) -> dict[str, Any]:
        return {
            "root": f"s3://{bucket}/hot-lake-{i}",
            "catalog": str(work / f"s3-catalog-{i}.duckdb"),
            "s3": {
                "endpoint_url": endpoint,
                "access_key_id_env": "BENCH_MOTO_KEY",
                "secret_access_key_env": "BENCH_MOTO_KEY",
            },
        }

    return [
        median_run(reps, lambda i: write_hours_lake(hours, section(i), "moto S3")),
        median_run(
            reps,
            lambda i: write_hours_delta(
                hours,
                f"s3://{bucket}/hourly-flat-{i}",
                day=False,
                where="moto S3",
                storage_options=s3_options(endpoint),
            ),
        ),
    ]


def median_run(reps: int, run: Callable[[int], WriteRun]) -> WriteRun:
    """``run`` repeated ``reps`` times on fresh targets; the run with the median total wall."""
    runs = sorted((run(i) for i in range(reps)), key=lambda r: sum(r.walls))
    chosen = runs[(len(runs) - 1) // 2]
    chosen.reps = reps
    return chosen


def series_runs(uri: str) -> str:
    """Runs of equal series_id per live file, in file order: the table's series count when each
    file holds its rows grouped by series, about 24x more when they stay in hourly blocks."""
    runs = []
    for file in DeltaTable(uri).file_uris():
        sid = np.asarray(pq.read_table(file, columns=["series_id"]).column(0))
        runs.append(int(np.count_nonzero(sid[1:] != sid[:-1])) + 1 if sid.size else 0)
    return ", ".join(f"{r:,}" for r in runs)


def hourly(ds: Dataset, work: Path, reps: int) -> dict[str, Any]:
    hours = hours_of(ds)

    def lake_section(i: int) -> dict[str, Any]:
        root = work / f"hot-lake-{i}"
        return {"root": str(root), "catalog": str(root / "c.duckdb")}

    runs = [
        median_run(reps, lambda i: write_hours_lake(hours, lake_section(i), "local")),
        median_run(
            reps, lambda i: write_hours_delta(hours, str(work / f"hourly-flat-{i}"), day=False)
        ),
        median_run(
            reps, lambda i: write_hours_delta(hours, str(work / f"hourly-day-{i}"), day=True)
        ),
    ]
    flat, parted = str(work / "hourly-flat-0"), str(work / "hourly-day-0")
    con = duckdb_reader()
    for uri in (flat, parted):
        count, checksum = read_duckdb(con, uri)
        if count != ds.rows or checksum != ds.checksum:
            raise SystemExit(
                f"{uri}: the 24 hourly writes read back {count} rows, expected {ds.rows}"
            )

    # Idempotence: the same hour written twice more changes nothing a reader sees.
    window, part = hours[5]
    props = delta_props(plain_encoding(HOT_LEVEL), whole_pages=True)
    before_version = DeltaTable(flat).version()
    rewrites = []
    for _ in range(2):
        wall, cpu_s, _ = timed(
            lambda: write_deltalake(
                flat,
                to_delta(part),
                mode="overwrite",
                predicate=hour_predicate(window, day=False),
                writer_properties=props,
            )
        )
        rewrites.append((wall, cpu_s))
    count, checksum = read_duckdb(con, flat)
    files_after = delta_bytes(flat)[1]
    idempotent = (count, checksum, files_after) == (ds.rows, ds.checksum, 24)
    rewrite = {
        "hour": window.start.strftime("%H:00"),
        "rows": part.num_rows,
        "walls": [w for w, _ in rewrites],
        "cpus": [c for _, c in rewrites],
        "commits": DeltaTable(flat).version() - before_version,
        "count": count,
        "files": files_after,
        "ok": idempotent,
    }

    # Compaction of the unpartitioned day: optimize.compact (one commit, hour-major rows).
    warm_props = delta_props(plain_encoding(WARM_LEVEL), whole_pages=True)
    compactions = []
    before = read_duckdb(con, flat), read_polars(flat, None)
    v0, (b0, f0) = DeltaTable(flat).version(), delta_bytes(flat)
    wall, cpu_s, _ = timed(
        lambda: DeltaTable(flat).optimize.compact(target_size=1 << 30, writer_properties=warm_props)
    )
    table = DeltaTable(flat)
    after = read_duckdb(con, flat), read_polars(flat, None)
    compactions.append(
        {
            "label": "`DeltaTable.optimize.compact()`, unpartitioned table",
            "wall": wall,
            "cpu": cpu_s,
            "commits": table.version() - v0,
            "operation": table.history(1)[0]["operation"],
            "files": f"{f0} -> {delta_bytes(flat)[1]}",
            "bytes": (b0, delta_bytes(flat)[0]),
            "runs": series_runs(flat),
            "before": before,
            "after": after,
        }
    )

    # The partitioned day rewritten sorted by (series_id, ts) as one predicate overwrite.
    before = read_duckdb(con, parted), read_polars(parted, None)
    v0, (b0, f0) = DeltaTable(parted).version(), delta_bytes(parted)

    def sorted_rewrite() -> None:
        day = DeltaTable(parted).to_pyarrow_table()
        ordered = day.sort_by([("series_id", "ascending"), ("ts", "ascending")])
        write_deltalake(
            parted,
            ordered,
            mode="overwrite",
            predicate=f"day = '{ds.day}'",
            writer_properties=warm_props,
        )

    wall, cpu_s, _ = timed(sorted_rewrite)
    table = DeltaTable(parted)
    after = read_duckdb(con, parted), read_polars(parted, None)
    compactions.append(
        {
            "label": "read the day, sort by (series_id, ts), predicate overwrite `day = ...`, "
            "partitioned table",
            "wall": wall,
            "cpu": cpu_s,
            "commits": table.version() - v0,
            "operation": table.history(1)[0]["operation"],
            "files": f"{f0} -> {delta_bytes(parted)[1]}",
            "bytes": (b0, delta_bytes(parted)[0]),
            "runs": series_runs(parted),
            "before": before,
            "after": after,
        }
    )
    con.close()
    return {"runs": runs, "rewrite": rewrite, "compactions": compactions}


# -- 4. file pruning ------------------------------------------------------------------------------


def multi_day(ds: Dataset, days: int, work: Path) -> list[dict[str, Any]]:
    """``days`` copies of the day (timestamps shifted), one commit per day, in three layouts;
    EXPLAIN ANALYZE of a count of the middle day on each."""
    props = delta_props(plain_encoding(HOT_LEVEL), whole_pages=True)
    one_day = 86_400_000
    ts = np.asarray(ds.samples.column("ts").cast(pa.int64()))
    layouts = {
        "partitioned by day, filter on day": ("multi-day", dict(day=True)),
        "partitioned by day, filter on ts only": ("multi-day", dict(day=True)),
        "unpartitioned, filter on ts (a timestamp)": ("multi-flat", dict()),
        "unpartitioned, ts as BIGINT epoch-ms, filter on ts": ("multi-ms", dict(ts_ms=True)),
    }
    for name, options in {v[0]: v[1] for v in layouts.values()}.items():
        uri = str(work / name)
        for d in range(days):
            shifted = ds.samples.set_column(
                1, "ts", pa.array(ts + d * one_day, pa.int64()).cast(pa.timestamp("ms"))
            )
            data = to_delta(shifted, **options)
            start = datetime.combine(ds.day + timedelta(days=d), datetime.min.time(), UTC)
            window = TimeWindow(start, start + timedelta(days=1))
            if options.get("ts_ms"):
                predicate = f"ts >= {window.start_ms} AND ts < {window.end_ms}"
            elif options.get("day"):
                predicate = f"day = '{window.start.date()}'"
            else:
                predicate = hour_predicate(window, day=False)
            write_deltalake(
                uri,
                data,
                mode="overwrite",
                predicate=predicate,
                partition_by=["day"] if options.get("day") else None,
                writer_properties=props,
            )
    middle = ds.day + timedelta(days=days // 2)
    start = datetime.combine(middle, datetime.min.time(), UTC)
    end = start + timedelta(days=1)
    ts_filter = f"ts >= TIMESTAMP '{start:%Y-%m-%d}' AND ts < TIMESTAMP '{end:%Y-%m-%d}'"
    filters = {
        "partitioned by day, filter on day": f"day = DATE '{middle}'",
        "partitioned by day, filter on ts only": ts_filter,
        "unpartitioned, filter on ts (a timestamp)": ts_filter,
        "unpartitioned, ts as BIGINT epoch-ms, filter on ts": (
            f"ts >= {int(start.timestamp() * 1000)} AND ts < {int(end.timestamp() * 1000)}"
        ),
    }
    con = duckdb_reader()
    out = []
    for label, (name, _) in layouts.items():
        path = work / name
        query = f"SELECT count(*) FROM delta_scan('{path}') WHERE {filters[label]}"
        (count,) = con.execute(query).fetchone()  # type: ignore[misc]
        plan = con.execute(f"EXPLAIN ANALYZE {query}").fetchall()[0][1]
        shown = query.replace(str(path), f"bench/work/delta/{name}")
        out.append(
            {
                "label": label,
                "query": shown,
                "count": count,
                "lines": scan_lines(plan),
                "files": days,
            }
        )
    con.close()
    return out


def scan_lines(plan: str) -> list[str]:
    """The TABLE_SCAN box's lines on files and rows, box drawing stripped."""
    lines = [line.strip("│└┘┌┐─┬┴ ").strip() for line in plan.splitlines()]
    start = next(i for i, line in enumerate(lines) if line == "TABLE_SCAN")
    keep = []
    for line in lines[start:]:
        if line.startswith(("Scanning Files", "Total Files Read")) or line.endswith(" rows"):
            keep.append(line)
        if line.endswith(" rows"):
            break
    return keep


# -- 5. the catalog and the reports on Delta tables (--catalog-only) ------------------------------

CATALOG_WORK = REPO / "bench" / "work" / "delta-catalog"
SECTION_START = "<!-- catalog-on-delta: written by --catalog-only -->"
SECTION_END = "<!-- /catalog-on-delta -->"
UNSIGNED = "18446744073709551615"  # 2**64 - 1: the BIGINT's 64 bits read back as UBIGINT


@dataclass
class Clock:
    """Wall and CPU seconds (this process, every thread: DuckDB's and delta-rs's included)."""

    wall: float = 0.0
    cpu: float = 0.0

    def __str__(self) -> str:
        return f"{self.wall:.2f} s ({self.cpu:.2f} s CPU)"


def clock(fn: Callable[[], Any]) -> tuple[Clock, Any]:
    wall, cpu, result = timed(fn)
    return Clock(wall, cpu), result


def median_clock(clocks: list[Clock]) -> Clock:
    """The run with the median wall time (its own CPU time with it)."""
    return sorted(clocks, key=lambda c: c.wall)[(len(clocks) - 1) // 2]


def copy_lake(source: Path, services: int, days: int) -> ObsConfig:
    """A scratch copy of report_bench's lake (the source is never touched), and its config."""
    import bench.report_bench as report_bench

    if not (source / "lake").is_dir() or not (source / "obs.duckdb").is_file():
        raise SystemExit(
            f"{source} holds no report-bench lake (lake/ and obs.duckdb); write one with "
            f"bench/report_bench.py --services {services} --days {days}, or pass its folder as --work"
        )
    shutil.rmtree(CATALOG_WORK, ignore_errors=True)
    CATALOG_WORK.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, CATALOG_WORK)
    report_bench.WORK = CATALOG_WORK
    return report_bench.bench_config(services, days)


def migrate_lake(config: ObsConfig) -> dict[str, Any]:
    """``obs lake migrate`` of the copy, timed, with each table's live bytes from its log."""
    from deltalake import DeltaTable

    from obs_pipelines.lake import delta
    from obs_pipelines.lake.migrate import migrate

    took, results = clock(lambda: migrate(config))
    tables = {}
    for result in results:
        uri = delta.table_uri(config, result.dataset)
        actions = pa.table(DeltaTable(uri).get_add_actions(flatten=True))
        log = Path(uri) / "_delta_log"
        tables[result.dataset] = {
            "rows": result.rows,
            "days": result.days,
            "seconds": result.seconds,
            "verified": result.verified,
            "source_bytes": result.source_bytes,
            "delta_bytes": int(pc.sum(actions.column("size_bytes")).as_py() or 0),
            "files": actions.num_rows,
            "log_bytes": sum(f.stat().st_size for f in log.iterdir() if f.is_file()),
            "commits": DeltaTable(uri).version() + 1,
        }
    return {"clock": took, "tables": tables}


def delta_view_sql(config: ObsConfig, table: Any, *, expose_dt: bool) -> str:
    """A dataset view over its Delta table with the file catalog's columns and types: the stored
    BIGINT ``series_id`` read back as UBIGINT and the UTC timestamps as naive TIMESTAMPs.
    ``make_timestamp(epoch_us(x))`` keeps the instant without a time-zone lookup (``timezone('UTC',
    x)`` costs ICU work per row: 1.8 s against 0.1 s over sli_minutes) and whatever the session's
    TimeZone (a plain cast would follow it). With ``expose_dt``, ``dt`` is added last."""
    from obs_pipelines.lake import delta

    columns = []
    for field in table.source:
        name = f'"{field.name}"'
        if pa.types.is_unsigned_integer(field.type):
            columns.append(f"({name}::HUGEINT & {UNSIGNED})::UBIGINT AS {name}")
        elif pa.types.is_timestamp(field.type):
            columns.append(f"make_timestamp(epoch_us({name})) AS {name}")
        else:
            columns.append(name)
    if expose_dt and table.day_of is not None:
        columns.append(delta.DAY_COLUMN)
    return (
        f'CREATE OR REPLACE VIEW "{table.dataset}" AS SELECT {", ".join(columns)} '
        f"FROM {delta.scan(config, table.dataset)}"
    )


METRICS_VIEW = """CREATE OR REPLACE VIEW metrics AS
SELECT s.metric, s.labels, s.service, s.job, s.instance, x.series_id, x.ts, x.value
FROM metric_samples x JOIN metric_series s USING (series_id)"""


def log_partitions(config: ObsConfig, table: Any) -> pa.Table:
    """One dataset's rows of ``lake_partitions``, from its Delta log alone (no Parquet footer):
    each live file with its partition, day span, rows and bytes."""
    from deltalake import DeltaTable

    from obs_pipelines.lake import delta

    uri = delta.table_uri(config, table.dataset)
    actions = pa.table(DeltaTable(uri).get_add_actions(flatten=True))
    rows = actions.num_rows

    def column(name: str, kind: pa.DataType) -> pa.Array:
        if name in actions.column_names:
            return actions.column(name).cast(kind)
        return pa.nulls(rows, kind)

    if table.day_of is not None:
        start = pc.strptime(column("partition.dt", pa.string()), "%Y-%m-%d", "ms")
        end = pc.add(start, pa.scalar(timedelta(days=1), pa.duration("ms")))
    else:  # metric_series: the hours its series were seen in, from the file statistics
        start = column("min.first_seen_hour", pa.timestamp("ms", "UTC")).cast(pa.timestamp("ms"))
        end = column("max.last_seen_hour", pa.timestamp("ms", "UTC")).cast(pa.timestamp("ms"))
        end = pc.add(end, pa.scalar(timedelta(hours=1), pa.duration("ms")))
    paths = column("path", pa.string())
    folders = pc.replace_substring_regex(paths, r"/?[^/]+$", "")
    return pa.table(
        {
            "dataset": pa.array([table.dataset] * rows, pa.string()),
            "tier": pa.array(["delta"] * rows, pa.string()),
            "partition": folders,
            "resolution": column("partition.resolution", pa.string()),
            "span_start": start,
            "span_end": end,
            "row_count": column("num_records", pa.int64()),
            "bytes": column("size_bytes", pa.int64()),
            "storage_class": pa.nulls(rows, pa.string()),
            "written_at": column("modification_time", pa.int64())
            .cast(pa.timestamp("ms"))
            .cast(pa.timestamp("us")),
            "current": pa.array([True] * rows, pa.bool_()),
            "archived": pa.array([False] * rows, pa.bool_()),
            "file": pc.binary_join_element_wise(uri, paths, "/"),
        }
    )


def build_delta_catalog(config: ObsConfig, target: Path, *, expose_dt: bool) -> dict[str, Clock]:
    """The catalog file with ``delta_scan`` views, ``lake_partitions`` from the logs,
    ``catalog_info`` and the published reports; each step's time."""
    from obs_pipelines.lake import delta
    from obs_pipelines.reporting import reports

    for leftover in (target, Path(f"{target}.wal")):
        leftover.unlink(missing_ok=True)
    steps: dict[str, Clock] = {}
    started = Clock(time.perf_counter(), time.process_time())
    con = duckdb.connect(str(target))
    try:
        steps["open + LOAD delta"], _ = clock(lambda: delta.attach_delta(con, config))
        layouts = delta.layouts()

        def views() -> None:
            for table in layouts:
                con.execute(delta_view_sql(config, table, expose_dt=expose_dt))
            con.execute(METRICS_VIEW)

        steps[f"{len(layouts)} dataset views + metrics"], _ = clock(views)

        def partitions() -> None:
            listing = pa.concat_tables(log_partitions(config, t) for t in layouts)
            con.register("partitions_listing", listing)
            con.execute(
                "CREATE TABLE lake_partitions AS SELECT * FROM partitions_listing "
                "ORDER BY dataset, span_start"
            )
            con.unregister("partitions_listing")
            con.execute(
                "CREATE TABLE catalog_info AS SELECT ? AS lake_root, now() AS built_at",
                [delta.delta_root(config)],
            )

        steps["lake_partitions (logs) + catalog_info"], _ = clock(partitions)
        steps["reports.publish"], _ = clock(lambda: reports.publish(con, config))
    finally:
        con.close()
    steps["total"] = Clock(time.perf_counter() - started.wall, time.process_time() - started.cpu)
    return steps


def build_runs(build: Callable[[], dict[str, Clock]], reps: int) -> dict[str, Clock]:
    """``reps`` builds; each step's median (the total's median run is the figure)."""
    runs = [build() for _ in range(reps)]
    return {step: median_clock([run[step] for run in runs]) for step in runs[0]}


def open_catalog(config: ObsConfig, path: Path, *, on_delta: bool) -> duckdb.DuckDBPyConnection:
    """A read-only session on a catalog file, as ``reports.report_connection`` opens one (the
    Delta catalog needs its extension loaded first; its views name ``delta_scan``)."""
    from obs_pipelines.lake import delta

    con = duckdb.connect(str(path), read_only=True)
    con.execute("SET enable_progress_bar = false")
    if on_delta:
        delta.attach_delta(con, config)
    return con


def describe(con: duckdb.DuckDBPyConnection, name: str) -> list[tuple[str, str]]:
    return [(column, kind) for column, kind, *_ in con.execute(f'DESCRIBE "{name}"').fetchall()]


def compare_columns(config: ObsConfig, file_path: Path, delta_path: Path) -> dict[str, Any]:
    """DESCRIBE of every dataset view, ``metrics``, ``lake_partitions`` and every report in both
    catalogs."""
    from obs_pipelines.datasets import ALL

    files = open_catalog(config, file_path, on_delta=False)
    deltas = open_catalog(config, delta_path, on_delta=True)
    names = [*ALL, "metrics", "lake_partitions", *report_names()]
    differ = {n: (describe(files, n), describe(deltas, n)) for n in names}
    differ = {n: pair for n, pair in differ.items() if pair[0] != pair[1]}
    views = "SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1"
    only_files = sorted(
        {v for (v,) in files.execute(views).fetchall()}
        - {v for (v,) in deltas.execute(views).fetchall()}
    )
    files.close()
    deltas.close()
    return {"checked": names, "differ": differ, "only_in_file_catalog": only_files}


def report_names() -> list[str]:
    from obs_pipelines.reporting.reports import PINNED_REPORTS, report_queries

    others = [n for n in report_queries() if n not in PINNED_REPORTS]
    return [*PINNED_REPORTS, *sorted(others)]


def suite(config: ObsConfig, path: Path, *, on_delta: bool, keep: str | None) -> dict[str, Any]:
    """The report suite in one session, as ``obs report`` runs it: open and fix ``report_end``,
    pin PINNED_REPORTS (each one a temp table), then ``SELECT *`` of every other report into a
    temp table; wall and CPU of each. With ``keep``, every result is then copied (untimed) into
    Parquet files for the equality check."""
    from obs_pipelines.reporting.reports import PINNED_REPORTS

    times: dict[str, Clock] = {}
    rows: dict[str, int] = {}
    started = Clock(time.perf_counter(), time.process_time())

    def opened() -> duckdb.DuckDBPyConnection:
        con = open_catalog(config, path, on_delta=on_delta)
        con.execute("SET VARIABLE report_end = (SELECT period_end FROM report_period)")
        return con

    times["open + report_end"], con = clock(opened)
    database = con.execute("SELECT current_database()").fetchone()[0]  # type: ignore[index]
    for name in report_names():
        if name in PINNED_REPORTS:
            sql = f'CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM "{database}".main.{name}'
        else:
            sql = f"CREATE TEMP TABLE bench_{name} AS SELECT * FROM {name}"
        times[name], _ = clock(lambda: con.execute(sql))  # noqa: B023
    total = Clock(time.perf_counter() - started.wall, time.process_time() - started.cpu)
    end = con.execute("SELECT getvariable('report_end')").fetchone()[0]  # type: ignore[index]
    for name in report_names():
        stored = name if name in PINNED_REPORTS else f"bench_{name}"
        rows[name] = con.execute(f"SELECT count(*) FROM temp.main.{stored}").fetchone()[0]  # type: ignore[index]
    if keep:  # Parquet keeps every value exactly (doubles bit for bit), maps and lists too
        (CATALOG_WORK / "results").mkdir(exist_ok=True)
        for name in report_names():
            stored = name if name in PINNED_REPORTS else f"bench_{name}"
            target = CATALOG_WORK / "results" / f"{keep}_{name}.parquet"
            con.execute(f"COPY temp.main.{stored} TO '{target}' (FORMAT parquet)")
    con.close()
    return {"times": times, "total": total, "rows": rows, "report_end": end}


def suites(
    config: ObsConfig, file_path: Path, delta_path: Path, runs: int
) -> dict[str, dict[str, Any]]:
    """``runs`` suites per catalog, alternating so load drifts hit both; the run with the median
    total wall time per catalog (the first run of each keeps its results, and the file
    catalog's second run too, to show run-to-run noise)."""
    found: dict[str, list[dict[str, Any]]] = {"files": [], "delta": []}
    for run in range(runs):
        for tag, path in (("files", file_path), ("delta", delta_path)):
            keep = tag if run == 0 else "files-again" if run == 1 and tag == "files" else None
            result = suite(config, path, on_delta=tag == "delta", keep=keep)
            result["load"] = load()
            say(f"  suite on the {tag} catalog, run {run + 1}: {result['total']}")
            found[tag].append(result)
    return {
        tag: sorted(results, key=lambda r: r["total"].wall)[(len(results) - 1) // 2]
        | {"totals": [r["total"] for r in results]}
        for tag, results in found.items()
    }


def _kept(tag: str, name: str) -> str:
    return f"read_parquet('{CATALOG_WORK / 'results' / f'{tag}_{name}.parquet'}')"


def _differing(con: duckdb.DuckDBPyConnection, a: str, b: str, columns: str = "*") -> int:
    """Rows of ``a`` not in ``b`` plus rows of ``b`` not in ``a`` (EXCEPT ALL: duplicates
    count, doubles compare bit for bit)."""
    row = con.execute(
        f"SELECT (SELECT count(*) FROM (SELECT {columns} FROM {a} EXCEPT ALL "
        f"SELECT {columns} FROM {b})), (SELECT count(*) FROM (SELECT {columns} FROM {b} "
        f"EXCEPT ALL SELECT {columns} FROM {a}))"
    ).fetchone()
    return int(row[0]) + int(row[1])  # type: ignore[index]


def equal_reports() -> dict[str, dict[str, Any]]:
    """Per report: rows of each catalog's result, rows missing from the other (bit for bit),
    and where they differ: which DOUBLE columns alone account for it, whether doubles rounded
    to 9 decimals agree, and how many rows the file catalog's own second run differs by (the
    noise of DuckDB's parallel floating-point sums, with no storage change at all)."""
    con = duckdb.connect()
    out: dict[str, dict[str, Any]] = {}
    again = (CATALOG_WORK / "results" / f"files-again_{report_names()[0]}.parquet").exists()
    for name in report_names():
        a, b = _kept("files", name), _kept("delta", name)
        (rows_a,) = con.execute(f"SELECT count(*) FROM {a}").fetchone()  # type: ignore[misc]
        (rows_b,) = con.execute(f"SELECT count(*) FROM {b}").fetchone()  # type: ignore[misc]
        entry: dict[str, Any] = {"files": rows_a, "delta": rows_b, "differ": _differing(con, a, b)}
        entry["noise"] = _differing(con, a, _kept("files-again", name)) if again else None
        if entry["differ"]:
            kinds = con.execute(f"DESCRIBE FROM {a}").fetchall()
            doubles = [c for c, kind, *_ in kinds if kind == "DOUBLE"]
            rounded = ", ".join(
                f'round("{c}", 9) AS "{c}"' if kind == "DOUBLE" else f'"{c}"'
                for c, kind, *_ in kinds
            )
            entry["rounded_differ"] = _differing(con, a, b, rounded)
            entry["columns"] = [
                c for c in doubles if not _differing(con, a, b, f'* EXCLUDE ("{c}")')
            ]
        out[name] = entry
    con.close()
    return out


def plan_scans(con: duckdb.DuckDBPyConnection, query: str, scan: str) -> dict[str, Any]:
    """The query's count, wall time and its scans (function, files read, rows), from
    ``EXPLAIN (ANALYZE, FORMAT json)``; ``scan`` names a scan whose plan gives no function."""
    import json

    (count,) = con.execute(query).fetchone()  # type: ignore[misc]
    wall = time.perf_counter()
    plan = json.loads(con.execute(f"EXPLAIN (ANALYZE, FORMAT json) {query}").fetchall()[0][1])
    wall = time.perf_counter() - wall
    scans: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        info = node.get("extra_info") or {}
        if "Total Files Read" in info or "Function" in info:
            what = info.get("Function", scan)
            parts = [f"{what}:"]
            if "Scanning Files" in info:
                parts.append(f"Scanning Files {info['Scanning Files']},")
            if "Total Files Read" in info:
                parts.append(f"Total Files Read {info['Total Files Read']},")
            if "Filters" in info:
                parts.append(f"Filters `{' '.join(str(info['Filters']).split())}`,")
            parts.append(f"{node.get('operator_cardinality', 0):,} rows")
            scans.append(" ".join(parts))
        for child in node.get("children", []):
            walk(child)

    for node in plan if isinstance(plan, list) else [plan]:
        walk(node)
    return {"query": query, "count": count, "wall": wall, "scans": scans}


def one_day(
    config: ObsConfig, file_path: Path, delta_path: Path, dt_path: Path, day: date
) -> list[dict[str, Any]]:
    """A one-day count of sli_minutes on each catalog, filtered on ``minute`` and on ``dt``, and
    on the table itself (do the file statistics prune a timestamp range without the view?)."""
    from obs_pipelines.lake import delta

    by_minute = (
        f"SELECT count(*) FROM sli_minutes WHERE minute >= TIMESTAMP '{day}' "
        f"AND minute < TIMESTAMP '{day + timedelta(days=1)}'"
    )
    by_dt = f"SELECT count(*) FROM sli_minutes WHERE dt = '{day}'"
    cases = [
        ("file catalog, filter on minute", file_path, False, by_minute),
        ("Delta catalog (same columns as the file catalog), filter on minute", delta_path, True,
         by_minute),
        ("Delta catalog exposing dt, filter on minute", dt_path, True, by_minute),
        ("Delta catalog exposing dt, filter on dt", dt_path, True, by_dt),
        ("Delta catalog exposing dt, filter on dt and minute", dt_path, True,
         by_minute + f" AND dt = '{day}'"),
    ]  # fmt: skip
    out = []
    for label, path, on_delta, query in cases:
        con = open_catalog(config, path, on_delta=on_delta)
        scan = "DELTA_SCAN" if on_delta else "READ_PARQUET"
        out.append({"label": label, **plan_scans(con, query, scan)})
        con.close()
    raw = (
        f"SELECT count(*) FROM {delta.scan(config, 'sli_minutes')} "
        f"WHERE minute >= TIMESTAMPTZ '{day} 00:00:00+00' "
        f"AND minute < TIMESTAMPTZ '{day + timedelta(days=1)} 00:00:00+00'"
    )
    con = delta.delta_connection(config)
    found = plan_scans(con, raw, "DELTA_SCAN")
    found["query"] = raw.replace(delta.delta_root(config), "<lake.root>/delta")
    out.append({"label": "bare delta_scan, filter on the stored TIMESTAMPTZ minute", **found})
    con.close()
    return out


def catalog_main(args: argparse.Namespace) -> None:
    from obs_pipelines.lake.catalog import build_catalog

    started = time.perf_counter()
    services, days = args.services or 50, args.days or 30
    source = Path(args.work)
    facts: dict[str, Any] = {
        "load_before": load(),
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": (
            f".venv/bin/python -m bench.delta_bench --catalog-only --work {source} "
            f"--services {services} --days {days} --reps {args.reps} "
            f"--suite-runs {args.suite_runs}"
        ),
        "reps": args.reps,
    }
    say(f"copying {source} to {CATALOG_WORK.relative_to(REPO)}")
    config = copy_lake(source, services, days)
    file_path = Path(config.catalog_path)
    delta_path = CATALOG_WORK / "obs_delta.duckdb"
    dt_path = CATALOG_WORK / "obs_delta_dt.duckdb"

    say(f"file catalog: build_catalog x {args.reps} (its views name the copy's paths)")
    facts["file_build"] = build_runs(
        lambda: {"total": clock(lambda: build_catalog(config))[0]}, args.reps
    )
    say(f"  median {facts['file_build']['total']}")

    say("obs lake migrate")
    facts["migrate"] = migrate_lake(config)
    say(f"  {facts['migrate']['clock']}")

    say(f"Delta catalog: build x {args.reps}")
    facts["delta_build"] = build_runs(
        lambda: build_delta_catalog(config, delta_path, expose_dt=False), args.reps
    )
    for step, took in facts["delta_build"].items():
        say(f"  {step}: {took}")
    facts["dt_build"] = build_runs(
        lambda: build_delta_catalog(config, dt_path, expose_dt=True), args.reps
    )
    say(f"  exposing dt: {facts['dt_build']['total']}")
    facts["columns"] = compare_columns(config, file_path, delta_path)
    facts["dt_columns"] = compare_columns(config, file_path, dt_path)["differ"]
    say(f"  DESCRIBE differs for: {sorted(facts['columns']['differ']) or 'none'}")
    facts["logs"] = log_replay(config)

    say(f"report suite x {args.suite_runs} per catalog")
    shutil.rmtree(CATALOG_WORK / "results", ignore_errors=True)
    facts["suites"] = suites(config, file_path, delta_path, args.suite_runs)
    facts["equal"] = equal_reports()
    unequal = [n for n, e in facts["equal"].items() if e["differ"]]
    say(f"  reports differing: {unequal or 'none'}")

    middle = HISTORY_START.date() + timedelta(days=days // 2)
    facts["one_day"] = one_day(config, file_path, delta_path, dt_path, middle)
    for case in facts["one_day"]:
        say(f"  {case['label']}: {case['count']:,} rows, {case['wall']:.3f} s; {case['scans']}")

    facts["load_after"] = load()
    facts["total"] = time.perf_counter() - started
    write_section(catalog_report(facts, services, days))
    say(f"wrote {RESULTS.relative_to(REPO)}, section 5 ({facts['total']:.0f} s)")
    same_end = facts["suites"]["files"]["report_end"] == facts["suites"]["delta"]["report_end"]
    wrong = [
        n for n, e in facts["equal"].items() if e.get("rounded_differ") or e["files"] != e["delta"]
    ]
    if wrong or facts["columns"]["differ"] or not same_end:
        raise SystemExit("the Delta catalog disagreed with the file catalog; see the results file")


def log_replay(config: ObsConfig) -> dict[str, Any]:
    """What opening each table costs a reader: binding ``delta_scan`` (DESCRIBE) replays its
    log; with its commits and checkpoints."""
    from obs_pipelines.lake import delta

    con = delta.delta_connection(config)
    tables = {}
    for table in delta.layouts():
        log = Path(delta.table_uri(config, table.dataset)) / "_delta_log"
        took, _ = clock(
            lambda: con.execute(f"DESCRIBE SELECT * FROM {delta.scan(config, table.dataset)}")  # noqa: B023
        )
        tables[table.dataset] = {
            "bind": took,
            "commits": len(list(log.glob("*.json"))),
            "checkpoints": len(list(log.glob("*.checkpoint*.parquet"))),
        }
    con.close()
    return tables


def _s(c: Clock) -> str:
    return f"{c.wall:.2f} | {c.cpu:.2f}"


def catalog_report(facts: dict[str, Any], services: int, days: int) -> str:
    tables = facts["migrate"]["tables"]
    held = {n: t for n, t in tables.items() if t["rows"]}
    lines = [
        SECTION_START,
        f"## 5. The catalog and the reports on Delta tables ({services} services x {days} days)",
        "",
        "Reproduce from the repo root (the lake is report_bench's, written by its `History` and "
        "`derive`; it is copied to `bench/work/delta-catalog/` first and never modified):",
        "",
        f"    {facts['command']}",
        "",
        f"Machine: {machine()}. Load average (1, 5, 15 min) before: {facts['load_before']}; "
        f"after: {facts['load_after']}. Run of {facts['when']}, {facts['total']:.0f} s in all. "
        "Another test run may have shared the 2 cores: CPU seconds (this process, all threads) "
        "are given beside wall seconds.",
        "",
        "### 5.1 `obs lake migrate` of the lake",
        "",
        f"`obs_pipelines.lake.migrate.migrate(config)`: {facts['migrate']['clock']}, every day "
        "verified (rows and checksum read back through `delta_scan`). Lake bytes are the "
        "dataset's current files as `lake_partitions` lists them (all hot here: nothing tiered; "
        "hot `metric_series` repeats every series in every hour, the table holds it once); "
        "Delta bytes are the live data files in the log, the log's own JSON beside them.",
        "",
        "| dataset | days | rows | lake bytes | Delta bytes | Delta / lake | Delta files "
        "| commits | `_delta_log` bytes | migrate s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, t in held.items():
        ratio = t["delta_bytes"] / t["source_bytes"] if t["source_bytes"] else float("nan")
        lines.append(
            f"| {name} | {t['days'] if t['days'] is not None else '-'} | {t['rows']:,} | "
            f"{t['source_bytes']:,} | {t['delta_bytes']:,} | {ratio:.2f} | {t['files']} | "
            f"{t['commits']} | {t['log_bytes']:,} | {t['seconds']:.1f} |"
        )
    lake_b = sum(t["source_bytes"] for t in held.values())
    delta_b = sum(t["delta_bytes"] for t in held.values())
    logs_b = sum(t["log_bytes"] for t in tables.values())
    empty = sorted(set(tables) - set(held))
    lines += [
        f"| **all** | | {sum(t['rows'] for t in held.values()):,} | {lake_b:,} | {delta_b:,} | "
        f"{delta_b / lake_b:.2f} | {sum(t['files'] for t in held.values())} | | {logs_b:,} | |",
        "",
        f"Empty datasets, each an empty table: {', '.join(empty)}.",
        "",
        "### 5.2 Building the catalog",
        "",
        "The Delta catalog is a DuckDB file whose dataset views are `delta_scan` of the tables "
        "(the `delta` extension loaded from its wheel, as `delta.attach_delta` does), `series_id` "
        f"read back as `(series_id::HUGEINT & {UNSIGNED})::UBIGINT`, timestamps as "
        "`make_timestamp(epoch_us(ts))` (naive UTC TIMESTAMP, whatever the session's TimeZone; "
        "`timezone('UTC', ts)` gives the same values with a time-zone conversion per row, "
        "several times the CPU), `metrics` as "
        "today, `lake_partitions` from `DeltaTable.get_add_actions()` (no Parquet footer read), "
        "`catalog_info`, then `reports.publish(con, config)`. The file catalog is "
        f"`build_catalog(config)` on the copy. Each figure is the run with the median wall time "
        f"of {facts['reps']} builds.",
        "",
        "| step | file catalog wall s | CPU s | Delta catalog wall s | CPU s | Delta, exposing dt "
        "wall s | CPU s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for step, took in facts["delta_build"].items():
        file_cell = _s(facts["file_build"]["total"]) if step == "total" else "|"
        dt_cell = _s(facts["dt_build"][step]) if step in facts["dt_build"] else "|"
        lines.append(f"| {step} | {file_cell} | {_s(took)} | {dt_cell} |")
    logs = facts["logs"]
    held_logs = {n: entry for n, entry in logs.items() if n in held}
    lines += [
        "",
        "What the Delta build depends on: one log replay per table for each bind (creating its "
        "view, `DESCRIBE` for publish's stand-ins, `check_latency_buckets`' scan of "
        "`metric_series`), one `get_add_actions` per table (grows with live files, not with "
        "history rewritten), and publishing the reports (config tables and binding "
        f"{len(report_names())} report views, independent of the data). Binding each table "
        "alone (`DESCRIBE SELECT * FROM delta_scan(...)`): "
        + "; ".join(
            f"{n} {e['bind'].wall * 1000:.0f} ms ({e['commits']} commits, "
            f"{e['checkpoints']} checkpoints)"
            for n, e in held_logs.items()
        )
        + f"; {len(logs) - len(held_logs)} empty tables "
        f"{sum(e['bind'].wall for n, e in logs.items() if n not in held) * 1000:.0f} ms together. "
        "Nothing lists files: the build does not grow with partitions, but each replay grows "
        "with the commits since the last checkpoint (delta-rs checkpoints every 100 commits by "
        "default; an hourly commit per table makes 24 a day).",
        "",
    ]
    columns = facts["columns"]
    if columns["differ"]:
        lines.append("`DESCRIBE` differs between the file catalog and the Delta catalog:")
        lines += [f"* {n}: {a} vs {b}" for n, (a, b) in columns["differ"].items()]
    else:
        lines.append(
            f"`DESCRIBE` gives the same columns and types in both catalogs for all "
            f"{len(columns['checked'])} views and tables: the {len(report_names())} reports and "
            f"{', '.join(columns['checked'][: -len(report_names())])}."
        )
    extra = {n: [c for c in b if c not in a] for n, (a, b) in facts["dt_columns"].items()}
    lines += [
        "",
        f"Exposing `dt` adds one trailing column `dt VARCHAR` to {len(extra)} views "
        f"({', '.join(sorted(extra))}); every other column, and every report's columns, are "
        "unchanged (no report passes it on)."
        if all(v == [("dt", "VARCHAR")] for v in extra.values())
        else f"Exposing `dt` changes: {extra}.",
        "",
        f"Only in the file catalog: {', '.join(columns['only_in_file_catalog']) or 'nothing'} "
        "(`lake_partition_sources` reads each file's Parquet footer for `obs.source`; a Delta "
        "commit's `commitInfo` is where that would go).",
        "",
    ]
    runs = {tag: s for tag, s in facts["suites"].items()}
    files, deltas = runs["files"], runs["delta"]
    equal = facts["equal"]
    same = [n for n, e in equal.items() if not e["differ"]]
    noisy = [n for n, e in equal.items() if e["noise"]]

    def where(e: dict[str, Any]) -> str:
        if not e["differ"]:
            return ""
        alone = ", ".join(f"`{c}`" for c in e["columns"]) or "no single DOUBLE column"
        rounded = "none" if not e["rounded_differ"] else f"**{e['rounded_differ']:,}**"
        return f"only in {alone}; rows differing with doubles rounded to 9 decimals: {rounded}"

    lines += [
        "### 5.3 The same numbers",
        "",
        f"Every report's rows from the first suite run on each catalog (`report_end` "
        f"{files['report_end']} on the file catalog, {deltas['report_end']} on the Delta "
        f"catalog: {'the same' if files['report_end'] == deltas['report_end'] else '**DIFFERENT**'}"
        "), compared with `EXCEPT ALL` both ways (duplicates count, doubles bit for bit): "
        f"**{len(same)} of {len(equal)} reports bit-identical**. For comparison, the file "
        "catalog's second run against its first (no storage change at all) differs in "
        f"{len(noisy)} reports: {', '.join(noisy) or 'none'}. Empty on this lake (report_bench "
        "writes metrics and derived datasets only, no alerts, incidents or spans): "
        f"{', '.join(n for n, e in equal.items() if not e['files']) or 'none'}.",
        "",
        "| report | rows (file catalog) | rows (Delta catalog) | rows differing (both ways) "
        "| file catalog run 2 vs run 1 | where they differ |",
        "|---|---:|---:|---:|---:|---|",
        *[
            f"| {n} | {e['files']:,} | {e['delta']:,} | {e['differ']:,} | "
            f"{'' if e['noise'] is None else format(e['noise'], ',')} | {where(e)} |"
            for n, e in equal.items()
        ],
        "",
        "### 5.4 The report suite in one session",
        "",
        "As `obs report` runs it: open the catalog, `SET VARIABLE report_end = (SELECT "
        "period_end FROM report_period)`, pin `PINNED_REPORTS` in order (`CREATE OR REPLACE TEMP "
        'TABLE name AS SELECT * FROM "<db>".main.name`), then every other report into a temp '
        f"table. {len(files['totals'])} runs per catalog, alternating; shown: each catalog's run "
        "with the median total wall time (totals of all runs: file "
        + ", ".join(f"{c.wall:.1f}" for c in files["totals"])
        + " s; Delta "
        + ", ".join(f"{c.wall:.1f}" for c in deltas["totals"])
        + " s).",
        "",
        "| step | rows | file catalog wall s | CPU s | Delta catalog wall s | CPU s | Delta / file "
        "wall |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for step, took in files["times"].items():
        other = deltas["times"][step]
        rows = f"{files['rows'][step]:,}" if step in files["rows"] else ""
        ratio = other.wall / took.wall if took.wall else float("nan")
        lines.append(f"| {step} | {rows} | {_s(took)} | {_s(other)} | {ratio:.2f} |")
    lines.append(
        f"| **total** | | {_s(files['total'])} | {_s(deltas['total'])} | "
        f"{deltas['total'].wall / files['total'].wall:.2f} |"
    )
    lines += [
        "",
        "### 5.5 One day of sli_minutes: files read (EXPLAIN ANALYZE)",
        "",
        "The count of one day in each catalog; the scans of `EXPLAIN (ANALYZE, FORMAT json)` "
        "(the file catalog's view also lists the inventory with `glob`), and the wall time of "
        "the analyzed query.",
        "",
    ]
    for case in facts["one_day"]:
        lines += [
            f"* **{case['label']}**: count {case['count']:,}, {case['wall'] * 1000:.0f} ms",
            "",
            f"      {case['query']}",
            *[f"      {scan}" for scan in case["scans"]],
            "",
        ]
    lines += catalog_reading(facts, lake_b, delta_b)
    return "\n".join([*lines, SECTION_END]) + "\n"


def catalog_reading(facts: dict[str, Any], lake_bytes: int, delta_bytes_: int) -> list[str]:
    """Plain sentences computed from the figures (none typed in by hand)."""
    files, deltas = facts["suites"]["files"], facts["suites"]["delta"]
    build_f, build_d = facts["file_build"]["total"], facts["delta_build"]["total"]
    equal = facts["equal"]
    same = sum(not e["differ"] for e in equal.values())
    rounded = sum(not e.get("rounded_differ") and e["files"] == e["delta"] for e in equal.values())
    noisy = sum(bool(e["noise"]) for e in equal.values())
    cases = {c["label"]: c for c in facts["one_day"]}

    def files_read(label: str) -> str:
        reads = [s for s in cases[label]["scans"] if "Total Files Read" in s]
        found = [s.split("Total Files Read ", 1)[1].split(",", 1)[0] for s in reads]
        return "+".join(found) or "?"

    best_f = min(c.wall for c in files["totals"])
    best_d = min(c.wall for c in deltas["totals"])
    spread = max(c.wall for c in files["totals"]) - best_f
    gap_word = "closer together" if abs(best_f - best_d) < spread else "further apart"
    heavy_f, heavy_d = (
        sum(s["times"][k].cpu for k in ("slo_burn_rates", "impact_episodes"))
        for s in (files, deltas)
    )
    saved = sorted(files["times"], key=lambda k: deltas["times"][k].cpu - files["times"][k].cpu)[:4]
    by_minute = "Delta catalog (same columns as the file catalog), filter on minute"
    by_dt = "Delta catalog exposing dt, filter on dt"
    return [
        "### Reading it (issues 10 and 13)",
        "",
        f"* **Numbers**: {same} of {len(equal)} reports give bit-identical rows on the Delta "
        f"tables with the same `report_end`, and {rounded} of {len(equal)} agree with doubles "
        "rounded to 9 decimals. The rest differ in the last bits of a DOUBLE, as the file "
        f"catalog does from one run to the next ({noisy} of {len(equal)} reports): the order "
        "DuckDB's threads "
        "add floating-point numbers in, not the storage. Issue 10's exactness holds across the "
        "conversion as long as the views keep the file catalog's types; an exactness test "
        "that compares such a column bit for bit between two runs can fail on its own.",
        f"* **Catalog build**: {build_d.wall:.2f} s ({build_d.cpu:.2f} s CPU) for the Delta "
        f"catalog against {build_f.wall:.2f} s ({build_f.cpu:.2f} s CPU) for `build_catalog` "
        "today, on 720 hourly partitions per dataset: issue 13's <= 1 s is "
        f"{'met' if build_d.wall <= 1 else 'missed'}, and the largest step is "
        f"`reports.publish` ({facts['delta_build']['reports.publish'].wall:.2f} s), which "
        "does not depend on the data. The Delta build lists no file, so it is needed only when "
        "tables or reports change, not after each ingest run; it grows only with log replay "
        "(commits since a checkpoint) and the count of live files.",
        f"* **Report suite** (issue 10's <= 5 s): {files['total'].wall:.1f} s "
        f"({files['total'].cpu:.1f} s CPU) on the file catalog, {deltas['total'].wall:.1f} s "
        f"({deltas['total'].cpu:.1f} s CPU) on the Delta catalog, the median runs; the fastest "
        f"runs, {best_f:.1f} s and {best_d:.1f} s, are {gap_word} than the spread of one "
        f"catalog's runs ({best_f:.1f}-{max(c.wall for c in files['totals']):.1f} s on the "
        "file catalog). The steps that gain most (CPU): "
        + ", ".join(
            f"`{step}` {files['times'][step].cpu:.2f} -> {deltas['times'][step].cpu:.2f} s CPU"
            for step in saved
        )
        + f"; `slo_burn_rates` and `impact_episodes`, computation over pinned tables, take "
        f"{heavy_f:.0f} s CPU of the file catalog's {files['total'].cpu:.0f} and "
        f"{heavy_d:.0f} of the Delta catalog's {deltas['total'].cpu:.0f}. Delta storage alone "
        f"{'brings' if deltas['total'].wall <= 5 else 'does not bring'} the suite within 5 s.",
        f"* **Bytes**: the Delta tables hold {delta_bytes_ / lake_bytes:.2f}x the bytes of the "
        f"lake's hot files ({delta_bytes_:,} vs {lake_bytes:,}): one file per day at the warm "
        "level and encodings instead of 24 hourly files at the hot level, and `metric_series` "
        "once per series. Migrating took "
        f"{facts['migrate']['clock'].wall:.0f} s for "
        f"{sum(t['rows'] for t in facts['migrate']['tables'].values()):,} rows, verification "
        "included.",
        f"* **One day**: with the file catalog's columns, a `minute` filter reads "
        f"{files_read(by_minute)} files of the Delta table (delta-kernel skips files only on "
        "partition values here, and the view's conversion of `minute` hides the column from "
        f"any pushdown); `dt = '<day>'` on a view that exposes `dt` reads {files_read(by_dt)}. "
        "So the views should expose `dt` as a trailing column (5.2: no other column and no "
        "report's columns change) and queries over a window of `sli_minutes`, `up_minutes` or "
        "`metric_samples` should add the matching `dt` range to their filter: that is issue "
        "13's one-day-reads-one-day figure. Even reading all 30 files, the Delta view's count "
        f"took {cases[by_minute]['wall'] * 1000:.0f} ms against "
        f"{cases['file catalog, filter on minute']['wall'] * 1000:.0f} ms for the file catalog, "
        "which opens 720 hourly files and lists the inventory first.",
    ]


def kept_section() -> str:
    """The catalog section already in the results file ('' if none), so a full run keeps it."""
    if not RESULTS.exists():
        return ""
    text = RESULTS.read_text()
    start, end = text.find(SECTION_START), text.find(SECTION_END)
    if start < 0 or end < start:
        return ""
    return text[start : end + len(SECTION_END)] + "\n"


def write_section(section: str) -> None:
    """Put the catalog section into the results file, in place of an earlier one or last."""
    text = RESULTS.read_text() if RESULTS.exists() else ""
    old = kept_section()
    if old:
        text = text.replace(old.rstrip("\n"), section.rstrip("\n"))
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text)


# -- the results file -----------------------------------------------------------------------------


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    return (
        f"{os.cpu_count()} CPUs ({model}), {ram:.0f} GiB RAM, {platform.system()} "
        f"{platform.release()}; Python {platform.python_version()}"
    )


def versions() -> str:
    names = (
        "deltalake",
        "duckdb-extension-delta",
        "duckdb",
        "duckdb-extension-httpfs",
        "polars",
        "pyarrow",
        "numpy",
        "moto",
    )
    return ", ".join(f"{n} {version(n)}" for n in names)


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def report(
    args: argparse.Namespace,
    datasets: list[Dataset],
    size_rows: dict[str, dict[str, Size]],
    reads: list[str],
    writes: dict[str, Any],
    pruning: list[dict[str, Any]],
    facts: dict[str, Any],
) -> str:
    lines = [
        "# Delta Lake for the lake: storage figures before the conversion (issue 13)",
        "",
        "Reproduce from the repo root (needs `deltalake` and `duckdb-extension-delta`, see below):",
        "",
        f"    .venv/bin/python -m bench.delta_bench --services {args.services} --days {args.days} "
        f"--reps {args.reps}",
        "",
        f"Machine: {machine()}.",
        f"Packages: {versions()}.",
        f"Load average (1, 5, 15 min) before: {facts['load_before']}; after: {facts['load_after']}. "
        f"Run of {facts['when']}, {facts['total']:.0f} s in all.",
        "",
        "Data (one day each, sorted by (series_id, ts)):",
        "",
    ]
    for ds in datasets:
        lines.append(f"* **{ds.name}**: {ds.series:,} series, {ds.rows:,} samples on {ds.day}.")
    lines += [
        "",
        "What Delta changes in the data itself (checked by this run):",
        "",
        f"* `series_id` is a BLAKE2b-64 `uint64`; Delta has no unsigned type and delta-rs casts "
        f"with overflow checks, so a raw `uint64` column is refused: `{facts['uint64']}`. Every "
        "table here stores the same 64 bits as BIGINT (`view`), and readers view them back.",
        f"* `ts` (`timestamp[ms]`, no zone) becomes Delta `timestamp_ntz` in microseconds "
        f"(protocol: {facts['protocol']}). Readers return `timestamp[us]`; every read here is "
        "cast back to milliseconds with a safe cast (it raises on a sub-millisecond value).",
        "",
        "## 1. Bytes per sample",
        "",
        "Every row was written, read back and compared with the source (rows and the lake's "
        "order-independent bit-exact checksum). Delta sizes are the live data files from the "
        "log (`get_add_actions`), without the `_delta_log` JSON.",
        "",
        "| data | storage | bytes/sample | write s |",
        "|---|---|---:|---:|",
    ]
    for ds in datasets:
        for size in size_rows[ds.name].values():
            lines.append(
                f"| {ds.name} | {size.label} | {size.per_sample(ds.rows):.3f} | "
                f"{size.seconds:.2f} |"
            )
    lines += ["", "Verdicts (the issue's criteria):", ""]
    for ds in datasets:
        lines.append(f"* **{ds.name}**:")
        lines += [f"  * {line}" for line in size_verdict(ds, size_rows[ds.name])]
    lines += [
        "",
        "## 2. Read consistency: DuckDB (delta-kernel) vs polars (delta-rs)",
        "",
        f"Table: plain schema, whole pages, zstd {WARM_LEVEL} (the `delta-{WARM_LEVEL}` row "
        "above). DuckDB loads `delta` (and for S3 `httpfs`) from the wheels' extension paths with "
        "auto-install and auto-load off; S3 is `moto_server` on 127.0.0.1 over HTTP, written by "
        "delta-rs with `aws_conditional_put: etag`, read by DuckDB through a `URL_STYLE 'path'`, "
        "`USE_SSL false` secret. Checksum: the lake's `table_checksum` of each reader's rows.",
        "",
        "| data | where | reader | rows | checksum | equals the source | read s |",
        "|---|---|---|---:|---|---|---:|",
        *reads,
        "",
        f"## 3. Writing a day hour by hour ({datasets[0].name})",
        "",
        "Wall and CPU (this process, all threads) of 24 hourly writes, the run with the median "
        "total wall of `runs` runs on fresh targets; each Delta write is one "
        "commit replacing exactly its hour (`mode='overwrite', predicate=...`). Same hourly "
        "tables, same sort; the Delta writes use the tuned encodings with whole pages.",
        "",
        "| method | runs | hours | wall s | median ms/hour | CPU s | files | bytes | commits |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        *[run.row() for run in writes["runs"]],
    ]
    r = writes["rewrite"]
    lines += [
        "",
        f"Idempotence: hour {r['hour']} ({r['rows']:,} rows) rewritten twice on the unpartitioned "
        f"table: {' and '.join(f'{w * 1000:.0f} ms' for w in r['walls'])} wall "
        f"({' and '.join(f'{c * 1000:.0f} ms' for c in r['cpus'])} CPU), {r['commits']} commits; "
        f"afterwards {r['count']:,} rows, {r['files']} live files, checksum equal to the source: "
        f"**{'yes' if r['ok'] else 'NO'}**.",
        "",
        f"Compaction of the day (warm settings: tuned encodings, whole pages, zstd {WARM_LEVEL}):",
        "",
        "| how | wall s | CPU s | commits | operation | live files | bytes before -> after "
        "| B/sample after | series runs in the file | rows before = after (DuckDB, polars) "
        "| checksums equal |",
        "|---|---:|---:|---:|---|---|---|---:|---:|---|---|",
    ]
    rows = datasets[0].rows
    for c in writes["compactions"]:
        (d0, p0), (d1, p1) = c["before"], c["after"]
        counts = f"{d0[0]:,} = {d1[0]:,}, {p0[0]:,} = {p1[0]:,}"
        same = d0 == d1 == p0 == p1
        lines.append(
            f"| {c['label']} | {c['wall']:.2f} | {c['cpu']:.2f} | {c['commits']} | "
            f"{c['operation']} | {c['files']} | {c['bytes'][0]:,} -> {c['bytes'][1]:,} | "
            f"{c['bytes'][1] / rows:.3f} | {c['runs']} | {counts} | {'yes' if same else '**NO**'} |"
        )
    lines += [
        "",
        f"## 4. One day out of {args.days}: files read by `delta_scan` (EXPLAIN ANALYZE)",
        "",
        f"{args.days} copies of the {datasets[0].name} day with shifted timestamps, one commit "
        "(one file) per day; the count of the middle day, and the TABLE_SCAN lines of its "
        "`EXPLAIN ANALYZE`.",
        "",
    ]
    for p in pruning:
        lines += [
            f"* **{p['label']}** (count {p['count']:,}):",
            "",
            f"      {p['query']}",
            *[f"      {line}" for line in p["lines"]],
            "",
        ]
    return "\n".join(lines + reading(writes, pruning, rows)) + "\n"


def reading(writes: dict[str, Any], pruning: list[dict[str, Any]], rows: int) -> list[str]:
    """A few sentences computed from the figures above (no figure is typed in by hand)."""
    runs = {run.label: run for run in writes["runs"]}
    out = ["## Reading it", ""]
    for where in ("local", "moto S3"):
        ours = next(
            (r for k, r in runs.items() if k.startswith("`Lake") and k.endswith(where)), None
        )
        delta = [r for k, r in runs.items() if k.startswith("Delta") and k.endswith(where)]
        if ours and delta:
            ratios = ", ".join(
                f"{statistics.median(d.walls) / statistics.median(ours.walls):.1f}x "
                f"({d.label.split(', ')[1]})"
                for d in delta
            )
            out.append(
                f"* Hourly write, {where}: a Delta predicate overwrite takes {ratios} the median "
                f"wall time of `Lake.write_hot` per hour."
            )
    flat, ordered = writes["compactions"]
    out.append(
        f"* Compaction: `optimize.compact()` leaves {flat['bytes'][1] / rows:.3f} B/sample "
        f"({flat['runs']} series runs: the hourly files are concatenated, not re-sorted); "
        f"rewriting the day sorted by (series_id, ts) leaves {ordered['bytes'][1] / rows:.3f} "
        f"({ordered['runs']} runs). Both were single commits and readers saw the same rows and "
        "checksum before and after."
    )
    one = [p["label"] for p in pruning if "Total Files Read: 1" in p["lines"]]
    every = [p["label"] for p in pruning if p["label"] not in one]
    out.append(
        f"* Pruning: `delta_scan` read one file of {len(pruning) and pruning[0]['files']} for: "
        f"{'; '.join(one) or 'none'}; more for: {'; '.join(every) or 'none'}."
    )
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--services", type=int, help="report-bench services (20; with --catalog-only: 50)"
    )
    parser.add_argument("--seed", type=int, default=10, help="report-bench history seed (10)")
    parser.add_argument(
        "--days",
        type=int,
        help="days of the pruning table (7; with --catalog-only: the lake's, 30)",
    )
    parser.add_argument(
        "--reps", type=int, default=3, help="runs of each hourly write and catalog build (3)"
    )
    parser.add_argument(
        "--catalog-only",
        action="store_true",
        help="only section 5: the catalog and the reports on Delta tables of report_bench's lake",
    )
    parser.add_argument(
        "--work",
        default="/tmp/s17/b50",
        help="with --catalog-only: report_bench's folder (lake/, obs.duckdb), copied, never changed",
    )
    parser.add_argument(
        "--suite-runs", type=int, default=3, help="with --catalog-only: suites per catalog (3)"
    )
    args = parser.parse_args(argv)
    if args.catalog_only:
        catalog_main(args)
        return
    args.services = args.services or 20
    args.days = args.days or 7
    started = time.perf_counter()
    facts: dict[str, Any] = {
        "load_before": load(),
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)

    datasets = [simulator_day(), report_bench_day(args.services, args.seed)]
    size_rows: dict[str, dict[str, Size]] = {}
    for i, ds in enumerate(datasets):
        say(f"{ds.name}: {ds.series} series, {ds.rows:,} samples; sizes")
        work = WORK / f"sizes-{i}"
        work.mkdir()
        size_rows[ds.name] = sizes(ds, work)
        for size in size_rows[ds.name].values():
            say(f"  {size.per_sample(ds.rows):6.3f} B/sample  {size.label}")
        for line in size_verdict(ds, size_rows[ds.name]):
            say(f"  {line}")

    try:
        largest = datasets[0].samples.slice(datasets[0].rows - 1000)  # ids above 2**63
        write_deltalake(str(WORK / "uint64"), largest)
        facts["uint64"] = "accepted"
    except Exception as exc:  # the refusal is the fact recorded
        facts["uint64"] = str(exc).splitlines()[0]
    protocol = DeltaTable(str(WORK / "sizes-0" / f"delta-{WARM_LEVEL}")).protocol()
    facts["protocol"] = (
        f"reader {protocol.min_reader_version}, writer {protocol.min_writer_version}, "
        f"features {', '.join(protocol.reader_features or [])}"
    )

    say("read consistency")
    reads, consistent = [], True
    for i, ds in enumerate(datasets):
        lines, same = consistency(
            ds, str(WORK / f"sizes-{i}" / f"delta-{WARM_LEVEL}"), "local", None, None
        )
        reads += lines
        consistent &= same
    with moto_s3() as endpoint:
        make_bucket(endpoint, "lake")
        options = s3_options(endpoint)
        props = delta_props(plain_encoding(WARM_LEVEL), whole_pages=True)
        for i, ds in enumerate(datasets):
            uri = f"s3://lake/metric_samples_{i}"
            data = to_delta(ds.samples)
            started_write = time.perf_counter()
            write_deltalake(uri, data, writer_properties=props, storage_options=options)
            wall = time.perf_counter() - started_write
            say(f"  {ds.name}: wrote {uri} on moto in {wall:.2f} s")
            lines, same = consistency(ds, uri, "moto S3", options, endpoint)
            reads += lines
            consistent &= same
        say(f"hourly writes on moto S3 ({datasets[0].name})")
        s3_runs = s3_hourly(datasets[0], endpoint, "lake", WORK, args.reps)
    for line in reads:
        say(f"  {line}")

    say(f"hourly writes ({datasets[0].name})")
    writes = hourly(datasets[0], WORK, args.reps)
    writes["runs"] += s3_runs
    for run in writes["runs"]:
        say(f"  {run.row()}")
    say(f"  rewrite: {writes['rewrite']}")

    say(f"pruning over {args.days} days")
    pruning = multi_day(datasets[0], args.days, WORK)
    for p in pruning:
        say(f"  {p['label']}: {p['count']:,} rows; {'; '.join(p['lines'])}")

    facts["load_after"] = load()
    facts["total"] = time.perf_counter() - started
    section = kept_section()  # section 5 comes from --catalog-only runs
    text = report(args, datasets, size_rows, reads, writes, pruning, facts)
    RESULTS.write_text(text + ("\n" + section if section else ""))
    say(f"wrote {RESULTS.relative_to(REPO)} ({facts['total']:.0f} s)")
    if not consistent or not writes["rewrite"]["ok"]:
        raise SystemExit("a reader disagreed with the source; see the results file")


if __name__ == "__main__":
    main()
