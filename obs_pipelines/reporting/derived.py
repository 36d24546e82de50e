"""Derived datasets: what the reports need from raw metric samples, made when an hour is ingested
and kept long after raw samples age out (retention: as long as the lake keeps anything).

* ``sli_minutes``: per SLO and UTC minute, the good, bad and total events of its SLI (and, from
  rollups, the uncertain ones), with the resolution they came from and the SLO's version.
* ``up_minutes``: per service and minute, the ``up`` samples and those equal to 1.
* ``series_inventory``: per series and hour, the samples, the first and the last timestamp.

From raw samples the numbers are exactly those :mod:`obs_pipelines.reporting.slo` defines, and a counter's
increase across the boundary of an hour is exact: each hour starts from every series' last
sample before it (the hour before the window is read for that, and within the window the last
sample and its time carry over from hour to hour).

A sample's predecessor, the sample its counter increase is measured from, is the previous sample
of its series only when that one lies in the same UTC hour or the hour just before; otherwise the
sample adds no increase, as a series' first sample does
(:func:`obs_pipelines.lake.rollups.counter_steps_count`). An hourly run can only see the hour
before its own, and a counter read again after a scrape gap of hours says how many events the
gap held but not when (Prometheus's ``rate()``/``increase()`` do not bridge a gap longer than
their range either); with this rule a backfill over many hours, the hourly schedule, rollups and
the SQL reference count the same events whatever the batching.

Where raw samples are gone, an hour is computed from the finest rollup kept (``resolution`` says
which, so a report knows how exact a window is):

* counters: the bucket's ``counter_increase`` (exact over the bucket) lands on its first minute;
* threshold SLIs: a bucket's samples are good when its min and max are both within the bounds,
  bad when both are outside, and otherwise ``uncertain_events`` (counted in the total);
* ``up``: the bucket's count and sum (``up`` is 0 or 1, so the sum counts the 1s);
* the inventory: bucket counts, first and last bucket start.

At the boundary where rollups give way to raw samples, the last value of the rollup bucket before
the first raw sample is that sample's predecessor, so no increase is lost or counted twice; its
time is the bucket's start, in the same hour as the sample it was, so the hour rule applies alike
(and the buckets' ``counter_increase`` was computed with it).

Cost: deriving must stay a small fraction of ingest (issue 10), so nothing here builds views over
the lake. Where an hour's samples come from is read from the tables' logs (file statistics), and
rows are read a day partition at a time with Arrow, so a window's hours share one read per day;
every
SLO selector is matched once against the hours' series (:func:`obs_pipelines.reporting.slo.match_roles`);
the hours are then reduced with numpy, one pass over each hour's samples for all SLOs at once.
"""

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from obs_pipelines.config import ObsConfig, RatioSli, SloConfig, ThresholdSli
from obs_pipelines.datasets import dataset as dataset_of
from obs_pipelines.datasets import names
from obs_pipelines.errors import ConfigError
from obs_pipelines.lake import Lake, delta
from obs_pipelines.lake.rollups import RESOLUTIONS, counter_steps_count
from obs_pipelines.reporting.slo import match_roles, series_roles, slo_version
from obs_pipelines.schemas import SERIES_INVENTORY, SLI_MINUTES, UP_MINUTES
from obs_pipelines.windows import HOUR, TimeWindow

DERIVED = names(cadence="derived")
RAW = "raw"
MINUTE_MS = 60_000
MINUTES = 60
COUNTER_ROLES = {"total": 0, "good": 1, "bad": 2}
SERIES_COLUMNS = ["series_id", "metric", "labels", "service"]


@dataclass
class DerivedResult:
    window: TimeWindow
    rows: dict[str, int] = field(default_factory=dict)
    hours_by_resolution: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    hours_without_data: int = 0  # neither raw samples nor rollups: their derived rows were kept


def derive(
    config: ObsConfig,
    window: TimeWindow,
    *,
    slo_names: list[str] | None = None,
    datasets: tuple[str, ...] = DERIVED,
) -> DerivedResult:
    """Compute and publish the derived datasets of every hour of ``window``, from raw samples
    where they exist and from rollups where they do not; an hour with neither keeps the rows it
    has (derived datasets outlive both).

    ``slo_names`` recomputes those SLOs only: each hour's other SLOs keep the rows they have.
    """
    slos = _selected(config, slo_names)
    lake = Lake(config)
    hours = LakeHours(lake, window)
    result = DerivedResult(window)
    for resolution in hours.sources.values():
        if resolution:
            result.hours_by_resolution[resolution] = (
                result.hours_by_resolution.get(resolution, 0) + 1
            )
    kept = (
        _current_rows(hours, "sli_minutes", window)
        if slo_names is not None and "sli_minutes" in datasets
        else None
    )
    if kept is not None:
        recomputed = pa.array([s.name for s in slos], pa.string())
        kept = kept.filter(pc.invert(pc.is_in(kept.column("slo_name"), recomputed)))
    deriver = HourDeriver(hours, slos, datasets)
    with contextlib.ExitStack() as stack:
        batches = {d: stack.enter_context(lake.batch(d)) for d in datasets}
        for hour, tables in deriver.hours():
            if hours.sources[hour.start] is None:
                # Neither raw samples nor rollups left: the derived rows are all the lake
                # remembers of this hour, so they stay as they are (nothing to recompute from).
                result.hours_without_data += 1
                continue
            for dataset in datasets:
                table = tables[dataset]
                if dataset == "sli_minutes" and kept is not None:
                    table = pa.concat_tables([_within(kept, "minute", hour), table])
                result.rows[dataset] = result.rows.get(dataset, 0) + table.num_rows
                batches[dataset].add(
                    hour, table, sort=kept is not None and dataset == "sli_minutes"
                )
        for batch in batches.values():
            batch.commit()
    return result


def hour_sources(lake: Lake, window: TimeWindow) -> dict[datetime, str | None]:
    """For every hour of ``window`` and the one before it: ``raw`` where raw samples are in the
    lake, else the finest rollup resolution kept, else None."""
    return LakeHours(lake, window).sources


def _selected(config: ObsConfig, names: list[str] | None) -> list[SloConfig]:
    if names is None:
        return list(config.slos)
    known = {s.name: s for s in config.slos}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(
            f"no SLO named {', '.join(unknown)} in the config; choose from "
            f"{', '.join(sorted(known)) or '(none configured)'}"
        )
    return [known[n] for n in names]


# -- finding and reading the window's files --------------------------------------------------------


class LakeHours:
    """The hours a derivation of ``window`` reads (the window and the hour before it), where
    each hour's samples come from (from the tables' logs: file statistics), and their contents
    one hour at a time (read a day partition at a time, so a window's hours share one read)."""

    def __init__(self, lake: Lake, window: TimeWindow) -> None:
        self.lake, self.window = lake, window
        self.tables = lake.tables
        self.span = TimeWindow(window.start - HOUR, window.end)
        first, last = self.span.start.date(), (self.span.end - timedelta(milliseconds=1)).date()
        self.days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        raw = self._spans("metric_samples")
        rollups = self._spans("metric_rollups")
        self.sources = {}
        for hour in self.span.hours():
            if _overlaps(raw.get(None, []), hour):
                self.sources[hour.start] = RAW
            else:
                self.sources[hour.start] = next(
                    (r for r in RESOLUTIONS if _overlaps(rollups.get(r, []), hour)), None
                )
        self._days: dict[tuple[str, datetime], pa.Table] = {}

    def samples(self, hour: TimeWindow) -> pa.Table:
        """Raw samples of ``hour`` (series_id, ts, value), sorted by series and time."""
        return _sorted(self._rows("metric_samples", hour), ["series_id", "ts"])

    def buckets(self, hour: TimeWindow, resolution: str) -> pa.Table:
        """Rollup buckets of ``hour`` at ``resolution``, sorted by series and bucket."""
        table = self._rows("metric_rollups", hour)
        table = table.filter(pc.equal(table.column("resolution"), resolution))
        return _sorted(table, ["series_id", "ts"])

    def _spans(self, dataset: str) -> dict[str | None, list[tuple[datetime, datetime]]]:
        """(first, last) timestamp of every file of ``dataset`` in the span's days, by resolution."""
        found = self.tables.open(dataset)
        if found is None:
            return {}
        actions = delta.add_actions(found)
        if not actions.num_rows or "min.ts" not in actions.column_names:
            return {}
        days = [d.strftime("%Y-%m-%d") for d in self.days]
        actions = actions.filter(pc.is_in(actions["partition.dt"], pa.array(days)))
        firsts = actions["min.ts"].cast(pa.timestamp("us", tz="UTC")).to_pylist()
        lasts = actions["max.ts"].cast(pa.timestamp("us", tz="UTC")).to_pylist()
        resolutions = (
            actions["partition.resolution"].to_pylist()
            if "partition.resolution" in actions.column_names
            else [None] * actions.num_rows
        )
        spans: dict[str | None, list[tuple[datetime, datetime]]] = {}
        for resolution, first, last in zip(resolutions, firsts, lasts, strict=True):
            if first is not None and last is not None:
                spans.setdefault(resolution, []).append((first, last))
        return spans

    def _rows(self, dataset: str, hour: TimeWindow) -> pa.Table:
        day = hour.start.replace(hour=0)
        key = (dataset, day)
        if key not in self._days:
            self._days = {k: v for k, v in self._days.items() if k[0] != dataset}
            self._days[key] = self.tables.read_window(
                dataset, TimeWindow(day, day + timedelta(days=1))
            )
        return _within(self._days[key], "ts", hour)

    def series(self, hour: TimeWindow | None) -> pa.Table:
        return self.tables.read_window("metric_series", hour).select(SERIES_COLUMNS)


def _overlaps(spans: list[tuple[datetime, datetime]], hour: TimeWindow) -> bool:
    return any(first < hour.end and last >= hour.start for first, last in spans)


def _sorted(table: pa.Table, keys: list[str]) -> pa.Table:
    """``table`` sorted by ``keys`` (series_id, ts): as written it already is, checked in one
    vectorized pass."""
    if table.num_rows < 2:
        return table
    sid = _ids(table)
    ts = _millis(table.column(keys[1]))
    same = sid[1:] == sid[:-1]
    if np.all((sid[1:] > sid[:-1]) | (same & (ts[1:] >= ts[:-1]))):
        return table
    return table.sort_by([(k, "ascending") for k in keys])


def _empty_series() -> pa.Table:
    return dataset_of("metric_series").schema.empty_table().select(SERIES_COLUMNS)


def _current_rows(hours: LakeHours, dataset: str, window: TimeWindow) -> pa.Table:
    """The rows ``dataset`` holds for ``window`` now."""
    return hours.tables.read_window(dataset, window)


def _within(table: pa.Table, column: str, hour: TimeWindow) -> pa.Table:
    times = table.column(column)
    start = pa.scalar(hour.start, times.type)
    end = pa.scalar(hour.end, times.type)
    return table.filter(pc.and_(pc.greater_equal(times, start), pc.less(times, end)))


def _ids(table: pa.Table) -> np.ndarray:
    return np.asarray(table.column("series_id").combine_chunks().cast(pa.uint64()).to_numpy())


def _millis(column: pa.ChunkedArray) -> np.ndarray:
    return np.asarray(column.combine_chunks().cast(pa.int64()).to_numpy())


def _floats(table: pa.Table, column: str) -> np.ndarray:
    return np.asarray(table.column(column).combine_chunks().to_numpy(zero_copy_only=False))


# -- computing the hours ----------------------------------------------------------------------------


class SeriesBook:
    """Every series the window's hours name, with the part each plays in every SLO: counter
    roles as (series, slot = SLO x role) pairs, gauges as (series, SLO) pairs, and the service
    of each ``up`` series. Grows when an hour names a series not seen before."""

    def __init__(self, slos: list[SloConfig]) -> None:
        self.slos = slos
        self.roles = [r for slo in slos for r in series_roles(slo)]
        self.slo_index = {s.name: i for i, s in enumerate(slos)}
        self.table = _empty_series()
        self.ids = np.zeros(0, np.uint64)
        self._match()

    def cover(self, ids: np.ndarray, hour: TimeWindow, hours: LakeHours) -> None:
        """Know every id in ``ids`` (sorted, distinct): from the series of ``hour``, else (never
        for what ingest writes) from every series of the lake."""
        for where in (hour, None):
            missing = ids[~np.isin(ids, self.ids, assume_unique=True)]
            if not missing.size:
                return
            found = hours.series(where)
            found = found.filter(pc.is_in(found.column("series_id"), pa.array(missing)))
            if found.num_rows:
                table = pa.concat_tables([self.table, found.cast(self.table.schema)])
                first = np.unique(_ids(table), return_index=True)[1]
                self.table = table.take(pa.array(first))
                self.ids = _ids(self.table)
                self._match()

    def _match(self) -> None:
        masks = match_roles(self.table, self.roles)
        counter_rows, counter_slots, gauge_rows, gauge_slos = [], [], [], []
        for role, mask in zip(self.roles, masks, strict=True):
            rows = np.flatnonzero(mask)
            index = self.slo_index[role.slo]
            if role.role == "gauge":
                gauge_rows.append(rows)
                gauge_slos.append(np.full(rows.size, index))
            else:
                counter_rows.append(rows)
                counter_slots.append(np.full(rows.size, index * 3 + COUNTER_ROLES[role.role]))
        self.counter_rows = np.concatenate(counter_rows or [np.zeros(0, np.int64)])
        self.counter_slots = np.concatenate(counter_slots or [np.zeros(0, np.int64)])
        self.gauge_rows = np.concatenate(gauge_rows or [np.zeros(0, np.int64)])
        self.gauge_slos = np.concatenate(gauge_slos or [np.zeros(0, np.int64)])
        up = pc.equal(self.table.column("metric"), "up").to_numpy(zero_copy_only=False)
        self.up_rows = np.flatnonzero(np.asarray(up, dtype=bool))
        services = self.table.column("service").take(pa.array(self.up_rows)).to_pylist()
        names_ = sorted({s for s in services if s is not None})
        # Arrow sorts nulls last: the order write_hot would give, so files need no re-sort.
        self.services: list[str | None] = [*names_, *([None] if None in services else [])]
        code = {s: i for i, s in enumerate(self.services)}
        self.up_services = np.array([code[s] for s in services], dtype=np.int64)

    def runs_by_row(self, run_ids: np.ndarray) -> np.ndarray:
        """For each row of ``table``, the run of ``run_ids`` (sorted) holding its series, or -1."""
        out = np.full(self.ids.size, -1)
        if self.ids.size and run_ids.size:
            at = np.minimum(np.searchsorted(self.ids, run_ids), self.ids.size - 1)
            known = self.ids[at] == run_ids
            out[at[known]] = np.flatnonzero(known)
        return out


class HourDeriver:
    """The derived rows of each hour of a window, hour after hour, carrying every series' last
    value and its time from one hour to the next (the predecessor of a counter's first sample in
    an hour, when that time lies in the hour just before: :meth:`_previous`)."""

    def __init__(
        self, hours: LakeHours, slos: list[SloConfig], datasets: tuple[str, ...] = DERIVED
    ) -> None:
        self.lake_hours = hours
        self.datasets = datasets
        self.book = SeriesBook(slos)
        self.slos = slos
        order = sorted(range(len(slos)), key=lambda i: slos[i].name)
        self.order = np.array(order, dtype=np.int64)
        self.names = pa.array([slos[i].name for i in order], pa.string())
        self.versions = pa.array([slo_version(slos[i]) for i in order], pa.string())
        self.is_gauge = np.array([isinstance(s.sli, ThresholdSli) for s in slos], dtype=bool)
        self.bad_given = np.array(
            [isinstance(s.sli, RatioSli) and s.sli.bad is not None for s in slos], dtype=bool
        )
        self.low = np.array(
            [
                s.sli.min if isinstance(s.sli, ThresholdSli) and s.sli.min is not None else np.nan
                for s in slos
            ]
        )
        self.high = np.array(
            [
                s.sli.max if isinstance(s.sli, ThresholdSli) and s.sli.max is not None else np.nan
                for s in slos
            ]
        )
        self.last_ids = np.zeros(0, np.uint64)
        self.last_ts = np.zeros(0, np.int64)
        self.last_values = np.zeros(0)

    def hours(self) -> Iterator[tuple[TimeWindow, dict[str, pa.Table]]]:
        for hour in self.lake_hours.span.hours():
            resolution = self.lake_hours.sources[hour.start]
            inside = hour.start >= self.lake_hours.window.start
            if not inside and "sli_minutes" not in self.datasets:
                continue  # the hour before gives counters their predecessors only
            if resolution == RAW:
                samples = self.lake_hours.samples(hour)
                if inside:
                    yield hour, self._raw_hour(hour, samples)
                self._carry(_ids(samples), _millis(samples.column("ts")), _floats(samples, "value"))
            elif resolution is not None:
                buckets = self.lake_hours.buckets(hour, resolution)
                if inside:
                    yield hour, self._rollup_hour(hour, buckets, resolution)
                # A bucket's ``last`` at its start: the same hour as the sample it was.
                self._carry(_ids(buckets), _millis(buckets.column("ts")), _floats(buckets, "last"))
            elif inside:
                yield hour, self._tables(hour, RAW, *self._nothing())

    def _carry(self, sid: np.ndarray, ts: np.ndarray, values: np.ndarray) -> None:
        """Remember each series' last value of the hour and its time (rows sorted by series and
        time)."""
        if not sid.size:
            return
        last = np.flatnonzero(np.r_[sid[1:] != sid[:-1], True])
        ids = np.concatenate([self.last_ids, sid[last]])
        stamps = np.concatenate([self.last_ts, ts[last]])
        values = np.concatenate([self.last_values, values[last]])
        order = np.argsort(ids, kind="stable")
        ids, stamps, values = ids[order], stamps[order], values[order]
        keep = np.r_[ids[1:] != ids[:-1], True]  # the newest of each id
        self.last_ids, self.last_ts, self.last_values = ids[keep], stamps[keep], values[keep]

    def _previous(self, ids: np.ndarray, hour: TimeWindow) -> np.ndarray:
        """The carried last value of each id, the predecessor of its first sample in ``hour``
        (NaN: none, or carried from before the hour just before ``hour``, so older than any
        predecessor: :func:`~obs_pipelines.lake.rollups.counter_steps_count`)."""
        out = np.full(ids.size, np.nan)
        if self.last_ids.size:
            at = np.minimum(np.searchsorted(self.last_ids, ids), self.last_ids.size - 1)
            hit = self.last_ids[at] == ids
            hit[hit] = counter_steps_count(self.last_ts[at[hit]], np.int64(hour.start_ms))
            out[hit] = self.last_values[at[hit]]
        return out

    def _raw_hour(self, hour: TimeWindow, samples: pa.Table) -> dict[str, pa.Table]:
        sid = _ids(samples)
        ts = _millis(samples.column("ts"))
        value = _floats(samples, "value")
        starts, ends = _runs(sid)
        run_ids = sid[starts]
        inventory = (run_ids, ends - starts, ts[starts], ts[ends - 1])
        if self.datasets == ("series_inventory",):
            return self._tables(hour, RAW, {}, np.zeros(0), np.zeros(0), inventory)
        self.book.cover(run_ids, hour, self.lake_hours)
        run_of_row = self.book.runs_by_row(run_ids)
        minute = (ts - hour.start_ms) // MINUTE_MS
        cell = np.repeat(np.arange(starts.size), ends - starts) * MINUTES + minute
        cells = starts.size * MINUTES
        events: dict[str, np.ndarray] = {}
        if "sli_minutes" in self.datasets:
            # Each sample's increase over the one before it in its series (a drop is a reset);
            # within the hour the one before is always in the same hour, so it counts.
            before = np.r_[np.nan, value[:-1]]
            before[starts] = self._previous(run_ids, hour)
            with np.errstate(invalid="ignore"):
                increase = np.where(value >= before, value - before, value)
            increase[np.isnan(value) | np.isnan(before)] = 0.0
            per_run = np.bincount(cell, weights=increase, minlength=cells).reshape(-1, MINUTES)
            good, total = self._gauge_events(run_of_row, starts, ends, value, minute)
            events = {
                "counter": self._counter_events(run_of_row, per_run),
                "good": good,
                "bad": total - good,
                "total": total,
                "uncertain": np.zeros_like(total),
            }
        up = up_ok = np.zeros(0)
        if "up_minutes" in self.datasets:
            counted = np.bincount(cell, minlength=cells).reshape(-1, MINUTES)
            is_one = (value == 1).astype(np.float64)
            ok = np.bincount(cell, weights=is_one, minlength=cells).reshape(-1, MINUTES)
            up, up_ok = self._up(run_of_row, counted, ok)
        return self._tables(hour, RAW, events, up, up_ok, inventory)

    def _rollup_hour(
        self, hour: TimeWindow, buckets: pa.Table, resolution: str
    ) -> dict[str, pa.Table]:
        sid = _ids(buckets)
        ts = _millis(buckets.column("ts"))
        count = np.asarray(buckets.column("count").combine_chunks().to_numpy(), dtype=np.int64)
        starts, ends = _runs(sid)
        run_ids = sid[starts]
        self.book.cover(run_ids, hour, self.lake_hours)
        minute = (ts - hour.start_ms) // MINUTE_MS
        run = np.repeat(np.arange(starts.size), ends - starts)
        cell = run * MINUTES + minute
        cells = starts.size * MINUTES

        def per_run(weights: np.ndarray) -> np.ndarray:
            return np.bincount(cell, weights=weights, minlength=cells).reshape(-1, MINUTES)

        run_of_row = self.book.runs_by_row(run_ids)
        counters = self._counter_events(run_of_row, per_run(_floats(buckets, "counter_increase")))
        low_, high_ = _floats(buckets, "min"), _floats(buckets, "max")
        pairs, picks = self._gauge_rows(run_of_row, starts, ends)
        slo = self.book.gauge_slos[pairs]
        lo, hi = self.low[slo], self.high[slo]
        bmin, bmax = low_[picks], high_[picks]
        with np.errstate(invalid="ignore"):
            # DuckDB's order: NaN is above every number.
            within = ~np.isnan(bmin) & ~np.isnan(bmax)
            within &= np.isnan(lo) | (bmin >= lo)
            within &= np.isnan(hi) | (bmax <= hi)
            outside = (~np.isnan(lo) & ~np.isnan(bmax) & (bmax < lo)) | (
                ~np.isnan(hi) & (np.isnan(bmin) | (bmin > hi))
            )
        where = slo * MINUTES + minute[picks]
        size = len(self.slos) * MINUTES
        n = count[picks].astype(np.float64)

        def dense(weights: np.ndarray) -> np.ndarray:
            return np.bincount(where, weights=weights, minlength=size).reshape(-1, MINUTES)

        total = dense(n)
        good, bad = dense(np.where(within, n, 0.0)), dense(np.where(outside, n, 0.0))
        events = {
            "counter": counters,
            "good": good,
            "bad": bad,
            "total": total,
            "uncertain": total - good - bad,
        }
        up, up_ok = self._up(
            run_of_row,
            per_run(count.astype(np.float64)),
            per_run(_floats(buckets, "sum")),
        )
        inventory = (
            run_ids,
            np.add.reduceat(count, starts) if starts.size else np.zeros(0, np.int64),
            ts[starts],
            ts[ends - 1],
        )
        return self._tables(hour, resolution, events, up, up_ok, inventory)

    def _counter_events(self, run_of_row: np.ndarray, per_run: np.ndarray) -> np.ndarray:
        """Events per (SLO x role slot, minute): each role's series' increases summed."""
        out = np.zeros((len(self.slos) * 3, MINUTES))
        runs = run_of_row[self.book.counter_rows]
        present = runs >= 0
        np.add.at(out, self.book.counter_slots[present], per_run[runs[present]])
        return out

    def _gauge_rows(
        self, run_of_row: np.ndarray, starts: np.ndarray, ends: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(gauge pair, row) for every row of every gauge series of an SLO, once per SLO."""
        runs = run_of_row[self.book.gauge_rows]
        pairs = np.flatnonzero(runs >= 0)
        first, lengths = starts[runs[pairs]], ends[runs[pairs]] - starts[runs[pairs]]
        pair_of = np.repeat(pairs, lengths)
        offsets = np.repeat(first - np.r_[0, np.cumsum(lengths)[:-1]], lengths)
        return pair_of, offsets + np.arange(int(lengths.sum()))

    def _gauge_events(
        self,
        run_of_row: np.ndarray,
        starts: np.ndarray,
        ends: np.ndarray,
        value: np.ndarray,
        minute: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(good, total) per (SLO, minute) of threshold SLIs: every raw sample is one event."""
        pairs, picks = self._gauge_rows(run_of_row, starts, ends)
        slo = self.book.gauge_slos[pairs]
        v, lo, hi = value[picks], self.low[slo], self.high[slo]
        with np.errstate(invalid="ignore"):
            good = ~np.isnan(v) & (np.isnan(lo) | (v >= lo)) & (np.isnan(hi) | (v <= hi))
        where = slo * MINUTES + minute[picks]
        size = len(self.slos) * MINUTES
        total = np.bincount(where, minlength=size).reshape(-1, MINUTES).astype(np.float64)
        good_events = np.bincount(where, weights=good.astype(np.float64), minlength=size)
        return good_events.reshape(-1, MINUTES), total

    def _up(
        self, run_of_row: np.ndarray, samples: np.ndarray, ok: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``up`` samples and those equal to 1 per (service, minute)."""
        runs = run_of_row[self.book.up_rows]
        present = runs >= 0
        shape = (len(self.book.services), MINUTES)
        up, up_ok = np.zeros(shape), np.zeros(shape)
        np.add.at(up, self.book.up_services[present], samples[runs[present]])
        np.add.at(up_ok, self.book.up_services[present], ok[runs[present]])
        return up, up_ok

    def _nothing(self) -> tuple:
        zeros = np.zeros((len(self.slos), MINUTES))
        events = {
            "counter": np.zeros((len(self.slos) * 3, MINUTES)),
            "good": zeros,
            "bad": zeros,
            "total": zeros,
            "uncertain": zeros,
        }
        up = np.zeros((len(self.book.services), MINUTES))
        empty = np.zeros(0, np.int64)
        return events, up, up, (np.zeros(0, np.uint64), empty, empty, empty)

    def _tables(
        self,
        hour: TimeWindow,
        resolution: str,
        events: dict[str, np.ndarray],
        up: np.ndarray,
        up_ok: np.ndarray,
        inventory: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    ) -> dict[str, pa.Table]:
        make = {
            "sli_minutes": lambda: self._sli_table(hour, resolution, events),
            "up_minutes": lambda: self._up_table(hour, resolution, up, up_ok),
            "series_inventory": lambda: _inventory_table(hour, resolution, *inventory),
        }
        return {d: make[d]() for d in self.datasets}

    def _sli_table(
        self, hour: TimeWindow, resolution: str, events: dict[str, np.ndarray]
    ) -> pa.Table:
        n = len(self.slos)
        counter = events["counter"].reshape(n, 3, MINUTES)
        total_c, good_c, bad_c = counter[:, 0], counter[:, 1], counter[:, 2]
        given = self.bad_given[:, None]
        gauge = self.is_gauge[:, None]
        good = np.where(gauge, events["good"], np.where(given, total_c - bad_c, good_c))
        bad = np.where(gauge, events["bad"], np.where(given, bad_c, total_c - good_c))
        total = np.where(gauge, events["total"], total_c)
        uncertain = np.where(gauge, events["uncertain"], 0.0)
        keep = (total > 0) | (good > 0) | (bad > 0)
        keep = keep[self.order]
        slo_at, minute = np.nonzero(keep)
        picked = (self.order[slo_at], minute)
        return pa.table(
            [
                self.names.take(pa.array(slo_at)),
                _stamps(hour.start_ms + minute * MINUTE_MS),
                pa.array(good[picked], pa.float64()),
                pa.array(bad[picked], pa.float64()),
                pa.array(total[picked], pa.float64()),
                pa.array(uncertain[picked], pa.float64()),
                _repeat(resolution, slo_at.size),
                self.versions.take(pa.array(slo_at)),
            ],
            schema=SLI_MINUTES,
        )

    def _up_table(
        self, hour: TimeWindow, resolution: str, up: np.ndarray, up_ok: np.ndarray
    ) -> pa.Table:
        service_at, minute = np.nonzero(up > 0)
        services = pa.array(self.book.services, pa.string())
        return pa.table(
            [
                services.take(pa.array(service_at, pa.int64())),
                _stamps(hour.start_ms + minute * MINUTE_MS),
                pa.array(np.rint(up[service_at, minute]).astype(np.int64), pa.int64()),
                pa.array(np.rint(up_ok[service_at, minute]).astype(np.int64), pa.int64()),
                _repeat(resolution, service_at.size),
            ],
            schema=UP_MINUTES,
        )


def _inventory_table(
    hour: TimeWindow,
    resolution: str,
    ids: np.ndarray,
    samples: np.ndarray,
    first: np.ndarray,
    last: np.ndarray,
) -> pa.Table:
    return pa.table(
        [
            pa.array(ids, pa.uint64()),
            _stamps(np.full(ids.size, hour.start_ms)),
            pa.array(samples, pa.int64()),
            _stamps(first),
            _stamps(last),
            _repeat(resolution, ids.size),
        ],
        schema=SERIES_INVENTORY,
    )


def _runs(sid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) of each series' rows in rows sorted by series."""
    if not sid.size:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    starts = np.flatnonzero(np.r_[True, sid[1:] != sid[:-1]])
    return starts, np.r_[starts[1:], sid.size].astype(np.int64)


def _repeat(text: str, n: int) -> pa.Array:
    return pa.array([text], pa.string()).take(pa.array(np.zeros(n, np.int64)))


def _stamps(ms: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(ms, dtype=np.int64), pa.int64()).cast(pa.timestamp("ms"))
