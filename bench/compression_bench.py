"""Bytes per metric sample in each tier, beside Prometheus's own TSDB on the same samples.

Why: the warm tier keeps a year of raw samples; it should cost no more than the Prometheus it
archives. Two histories, both with irregular counters, noisy gauges and scrape timestamps
jittered by a few milliseconds:

* ``simulator``: the built-in Waardhaven telemetry (obs_pipelines/sources/simulator.py), the
  data ``make demo`` ingests;
* ``ingest-bench``: the families of bench/ingest_bench.py (HTTP counters, histogram buckets,
  memory, CPU ratios, queue depths), the data the ingest benchmark backfills.

For each it writes the hot tier exactly as ingest does (one zstd-1 file per hour), plain Parquet
day files (defaults; tuned standard encodings), our warm encoding at several zstd levels (decoded
back through DuckDB and checked bit for bit), the cold tier's rollups, and a Prometheus TSDB
block backfilled with ``promtool tsdb create-blocks-from openmetrics --max-block-duration=48h``.
Run from the repo root (needs promtool, `make servers`):

    .venv/bin/python -m bench.compression_bench [--days 1 --bench-series 1000]
"""

import argparse
import io
import platform
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from obs_pipelines.config import SimulatorConfig, parse_config
from obs_pipelines.lake import Lake
from obs_pipelines.lake.metric_codec import decode_samples, encode_samples, warm_samples_encoding
from obs_pipelines.lake.rollups import RESOLUTIONS, compute_rollups
from obs_pipelines.lake.tiering import _encoding
from obs_pipelines.schemas import METRIC_SAMPLES
from obs_pipelines.sources.series import series_table
from obs_pipelines.sources.simulator import SimulatedMetrics
from obs_pipelines.windows import HOUR, TimeWindow

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "bench" / "work"
START = datetime(2026, 11, 2, tzinfo=UTC)
LEVELS = (3, 9, 12, 15, 19)


def simulator_history(days: int) -> tuple[pa.Table, pa.Table]:
    """(series, samples sorted by series_id, ts) of ``days`` of simulated Waardhaven metrics."""
    source = SimulatedMetrics(SimulatorConfig())
    series, samples = [], []
    for day in range(days):
        window = TimeWindow(START + timedelta(days=day), START + timedelta(days=day + 1))
        for chunk in source.read_metrics(window):
            series.append(chunk.series)
            samples.append(chunk.samples)
    all_series = pa.concat_tables(series)
    _, first = np.unique(np.asarray(all_series.column("series_id")), return_index=True)
    return all_series.take(pa.array(np.sort(first))), _sorted(pa.concat_tables(samples))


def ingest_bench_history(series: int, days: int) -> tuple[pa.Table, pa.Table]:
    """The ingest benchmark's families and value models, ``series`` series over ``days``."""
    from bench import ingest_bench as ib

    rng = np.random.default_rng(ib.SEED)
    per_series = days * 24 * 3600 // 15
    start_ms = int(START.timestamp() * 1000)
    label_sets, ids, ts, values = [], [], [], []
    for family, size in zip(ib.FAMILIES, ib.family_sizes(series), strict=True):
        labels = [{"__name__": family.metric, **ib.series_labels(family, i)} for i in range(size)]
        _, family_ids = series_table(labels)
        label_sets += labels
        stamps = ib.scrape_times(rng, size, per_series, start_ms)
        ids.append(np.repeat(np.array(family_ids, dtype=np.uint64), per_series))
        ts.append(stamps.ravel())
        values.append(ib.family_values(family.shape, rng, size, per_series).ravel())
    samples = pa.table(
        [
            pa.array(np.concatenate(ids), pa.uint64()),
            pa.array(np.concatenate(ts), pa.int64()).cast(pa.timestamp("ms")),
            pa.array(np.concatenate(values), pa.float64()),
        ],
        schema=METRIC_SAMPLES,
    )
    return series_table(label_sets)[0], _sorted(samples)


def _sorted(samples: pa.Table) -> pa.Table:
    return samples.sort_by([("series_id", "ascending"), ("ts", "ascending")])


def parquet_bytes(table: pa.Table, **options: object) -> tuple[int, float]:
    started = time.perf_counter()
    buffer = io.BytesIO()
    pq.write_table(table, buffer, **options)  # type: ignore[arg-type]
    return buffer.tell(), time.perf_counter() - started


def hot_bytes(samples: pa.Table, work: Path) -> int:
    """One file per hour, written by Lake.write_hot as ingest does."""
    lake_dir = work / "hot-lake"
    lake = Lake(
        parse_config({"lake": {"root": str(lake_dir), "catalog": str(lake_dir / "c.duckdb")}})
    )
    ts = np.asarray(samples.column("ts").cast(pa.int64()))
    hour_of = ts // 3_600_000
    total = 0
    for hour in np.unique(hour_of):
        start = datetime.fromtimestamp(int(hour) * 3600, UTC)
        part = samples.filter(pa.array(hour_of == hour))
        total += lake.write_hot("metric_samples", TimeWindow(start, start + HOUR), part).bytes
    shutil.rmtree(lake_dir)
    return total


def warm_bytes(samples: pa.Table, level: int) -> tuple[int, float]:
    started = time.perf_counter()
    encoded = encode_samples(samples)
    options = warm_samples_encoding(level).for_schema(encoded.schema).writer_options()
    buffer = io.BytesIO()
    pq.write_table(encoded, buffer, **options)  # type: ignore[arg-type]
    seconds = time.perf_counter() - started
    if level == LEVELS[0]:
        check_lossless(samples, pq.read_table(io.BytesIO(buffer.getvalue())))
    return buffer.tell(), seconds


def check_lossless(samples: pa.Table, stored: pa.Table) -> None:
    decoded = decode_samples(stored)
    same = (
        decoded.column("series_id").equals(samples.column("series_id"))
        and decoded.column("ts").equals(samples.column("ts"))
        and np.array_equal(
            np.asarray(decoded.column("value")).view(np.uint64),
            np.asarray(samples.column("value")).view(np.uint64),
        )
    )
    if not same:
        raise SystemExit("warm encoding did not round-trip bit for bit through DuckDB")


def prometheus_bytes(series: pa.Table, samples: pa.Table, work: Path) -> tuple[int, int, float]:
    """(block bytes, chunk bytes, seconds) of a promtool backfill of the same samples."""
    om = work / "history.om"
    write_openmetrics(series, samples, om)
    data_dir = work / "tsdb"
    started = time.perf_counter()
    subprocess.run(
        [
            "promtool",
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            "--max-block-duration=48h",
            str(om),
            str(data_dir),
        ],
        check=True,
        capture_output=True,
    )
    seconds = time.perf_counter() - started
    om.unlink()
    files = [p for p in data_dir.rglob("*") if p.is_file()]
    total = sum(p.stat().st_size for p in files)
    chunks = sum(p.stat().st_size for p in files if p.parent.name == "chunks")
    shutil.rmtree(data_dir)
    return total, chunks, seconds


def write_openmetrics(series: pa.Table, samples: pa.Table, path: Path) -> None:
    """OpenMetrics text (seconds timestamps), samples grouped by metric name, built by Arrow."""
    names = series.column("metric").to_pylist()
    heads = []
    for name, labels in zip(names, series.column("labels").to_pylist(), strict=True):
        text = ",".join(f'{k}="{v}"' for k, v in sorted(labels) if k != "__name__")
        heads.append(f"{name}{{{text}}} " if text else f"{name} ")
    order = np.argsort(np.array(names, dtype=object), kind="stable")
    rank = np.empty(len(names), dtype=np.int64)
    rank[order] = np.arange(len(names))
    ids = np.asarray(series.column("series_id"))
    id_order = np.argsort(ids)
    position = id_order[np.searchsorted(ids[id_order], np.asarray(samples.column("series_id")))]
    ts = np.asarray(samples.column("ts").cast(pa.int64()))
    rows = np.lexsort((ts, rank[position]))
    position, ts = position[rows], ts[rows]
    values = samples.column("value").take(pa.array(rows))
    suffix = pa.array([f".{i:03d}\n" for i in range(1000)], pa.large_string())
    lines = pc.binary_join_element_wise(
        pa.array(heads, pa.large_string()).take(pa.array(position)),
        pc.replace_substring(
            pc.replace_substring(values.cast(pa.large_string()), "inf", "Inf"), "nan", "NaN"
        ),
        pa.scalar(" ", pa.large_string()),
        pa.array(ts // 1000).cast(pa.large_string()),
        suffix.take(pa.array(ts % 1000)),
        pa.scalar("", pa.large_string()),
    )
    with path.open("wb") as out:
        for chunk in lines.chunks if isinstance(lines, pa.ChunkedArray) else [lines]:
            out.write("".join(chunk.to_pylist()).encode())
        out.write(b"# EOF\n")


def measure(
    name: str, series: pa.Table, samples: pa.Table, work: Path, say: Callable[[str], None]
) -> list[str]:
    n = samples.num_rows
    say(f"{name}: {series.num_rows:,} series, {n:,} samples")
    rows: list[tuple[str, float, str]] = []
    rows.append(
        ("hot tier (as ingested: one zstd-1 file per hour)", hot_bytes(samples, work) / n, "")
    )
    size, secs = parquet_bytes(samples, compression="zstd")
    rows.append(("Parquet defaults, zstd, one file per day", size / n, f"{secs:.1f} s"))
    size, secs = parquet_bytes(
        samples,
        compression="zstd",
        compression_level=12,
        use_dictionary=["series_id"],
        column_encoding={"ts": "DELTA_BINARY_PACKED", "value": "BYTE_STREAM_SPLIT"},
    )
    rows.append(
        (
            "Parquet tuned standard encodings (DELTA ts, BYTE_STREAM_SPLIT value), zstd 12",
            size / n,
            f"{secs:.1f} s",
        )
    )
    for level in LEVELS:
        size, secs = warm_bytes(samples, level)
        label = f"**warm tier** (ours), zstd {level}" + (" (default)" if level == 12 else "")
        rows.append((label, size / n, f"encode + write {secs:.1f} s"))
    for resolution in RESOLUTIONS:
        rollups = compute_rollups(samples, resolution)
        options = _encoding("metric_rollups", 19).for_schema(rollups.schema).writer_options()
        size, secs = parquet_bytes(rollups, **options)
        rows.append(
            (
                f"cold tier: {resolution} rollups, zstd 19 (per raw sample covered)",
                size / n,
                f"{rollups.num_rows:,} rows, {size / rollups.num_rows:.1f} B/row",
            )
        )
    total, chunks, secs = prometheus_bytes(series, samples, work)
    rows.append(
        (
            "**Prometheus TSDB** block (promtool backfill; chunks + index)",
            total / n,
            f"backfill {secs:.1f} s",
        )
    )
    rows.append(("Prometheus TSDB chunks only", chunks / n, ""))
    for label, value, note in rows:
        say(f"  {value:6.3f} B/sample  {label}  {note}")
    return [f"| {name} | {label} | {value:.3f} | {note} |" for label, value, note in rows]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--days", type=int, default=1, help="days of history per dataset (default 1)"
    )
    parser.add_argument(
        "--bench-series", type=int, default=1000, help="series of the ingest-bench history"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    WORK.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    with tempfile.TemporaryDirectory(dir=WORK) as tmp:
        work = Path(tmp)
        series, samples = simulator_history(args.days)
        lines += measure("simulator", series, samples, work, print)
        series, samples = ingest_bench_history(args.bench_series, args.days)
        lines += measure(f"ingest-bench ({args.bench_series} series)", series, samples, work, print)
    prometheus = subprocess.run(
        ["promtool", "--version"], capture_output=True, text=True
    ).stdout.splitlines()
    report = "\n".join(
        [
            f"Machine: {platform.system()} {platform.release()}; Python {platform.python_version()}, "
            f"pyarrow {pa.__version__}; {prometheus[0] if prometheus else 'promtool ?'}",
            "",
            "| history | storage | bytes/sample | notes |",
            "|---|---|---:|---|",
            *lines,
            "",
            f"Command: .venv/bin/python -m bench.compression_bench --days {args.days} "
            f"--bench-series {args.bench_series}  (total {time.perf_counter() - started:.0f} s)",
        ]
    )
    (WORK / "compression-last-run.md").write_text(report + "\n")
    print("\n" + report)


if __name__ == "__main__":
    main()
