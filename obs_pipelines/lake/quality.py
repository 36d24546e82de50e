"""Great Expectations suites for lake partitions, run on what was actually published.

GX is imported lazily (it costs ~2 s) and run in an ephemeral context with no network and no
progress bars. Each dataset has one suite; the caller gets plain outcomes to report however it likes.
"""

import functools
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from obs_pipelines.windows import TimeWindow


@dataclass(frozen=True)
class ExpectationOutcome:
    expectation: str
    column: str
    success: bool
    unexpected: int


def validate_partition(
    dataset: str, table: pa.Table, window: TimeWindow
) -> list[ExpectationOutcome]:
    """Run the suite of ``dataset`` over one partition's rows."""
    return validate_partitions(dataset, [(window, table)])[0][1]


# Rows validated in one GX batch: bounded memory (pandas), few validations per run.
BATCH_ROWS = 2_000_000


def validate_partitions(
    dataset: str, partitions: Iterable[tuple[TimeWindow, pa.Table]]
) -> list[tuple[TimeWindow, list[ExpectationOutcome]]]:
    """Run the suite of ``dataset`` over partitions, each against its own window.

    Partitions are validated in batches of up to ``BATCH_ROWS`` rows (each row carries its
    window), which costs a few GX validations per run instead of one per hour; only a batch where
    something fails is validated again partition by partition, to name the hours at fault.
    ``partitions`` may be a generator: at most one batch is held at a time.
    """
    results: list[tuple[TimeWindow, list[ExpectationOutcome]]] = []
    batch: list[tuple[TimeWindow, pa.Table]] = []
    rows = 0
    for window, table in partitions:
        batch.append((window, table))
        rows += table.num_rows
        if rows >= BATCH_ROWS:
            results += _validate_batch(dataset, batch)
            batch, rows = [], 0
    if batch:
        results += _validate_batch(dataset, batch)
    return results


def _validate_batch(
    dataset: str, batch: list[tuple[TimeWindow, pa.Table]]
) -> list[tuple[TimeWindow, list[ExpectationOutcome]]]:
    outcomes = _validate(dataset, batch)
    if len(batch) == 1 or all(o.success for o in outcomes):
        return [(window, outcomes) for window, _ in batch]
    return [(window, _validate(dataset, [(window, table)])) for window, table in batch]


def _validate(
    dataset: str, partitions: list[tuple[TimeWindow, pa.Table]]
) -> list[ExpectationOutcome]:
    gx = _gx()
    context = _context()  # GX needs a context before a suite can be built
    suite = gx.ExpectationSuite(name=f"{dataset}_partitions")
    expectations = _SUITES[dataset](gx)
    for expectation in expectations:
        suite.add_expectation(expectation)
    frame = _frame(partitions, _columns(expectations))
    batch = _batch_definition(context, dataset).get_batch(batch_parameters={"dataframe": frame})
    outcomes = []
    for item in batch.validate(suite).results:
        kwargs: dict[str, Any] = item.expectation_config.kwargs
        column = kwargs.get("column") or ",".join(
            kwargs.get("column_list") or [kwargs.get("column_A", ""), kwargs.get("column_B", "")]
        )
        outcomes.append(
            ExpectationOutcome(
                expectation=item.expectation_config.type,
                column=column,
                success=bool(item.success),
                unexpected=int(item.result.get("unexpected_count") or 0),
            )
        )
    return outcomes


def _columns(expectations: list[Any]) -> list[str]:
    names: list[str] = []
    for expectation in expectations:
        kwargs = expectation.configuration.kwargs
        for name in [
            kwargs.get("column"),
            kwargs.get("column_A"),
            kwargs.get("column_B"),
            *(kwargs.get("column_list") or []),
        ]:
            if name and name not in names:
                names.append(name)
    return names


def _frame(partitions: list[tuple[TimeWindow, pa.Table]], columns: list[str]) -> Any:
    """One pandas frame of the columns the suite reads, each row with its partition's window."""
    tables = []
    for window, table in partitions:
        start = pa.scalar(window.start.replace(tzinfo=None), pa.timestamp("us"))
        end = pa.scalar(window.end.replace(tzinfo=None), pa.timestamp("us"))
        tables.append(
            table.append_column(WINDOW_START, pa.repeat(start, table.num_rows))
            .append_column(WINDOW_END, pa.repeat(end, table.num_rows))
            .select(columns)
        )
    combined = pa.concat_tables(tables, promote_options="permissive")
    converted = [
        combined.column(name).cast(pa.timestamp("us"))
        if pa.types.is_timestamp(combined.schema.field(name).type)
        else combined.column(name)
        for name in columns
    ]
    return pa.table(converted, names=columns).to_pandas()


WINDOW_START = "_window_start"
WINDOW_END = "_window_end"


def _inside_window(gx: Any, column: str) -> list[Any]:
    """Each row's ``column`` lies in its partition's half-open window."""
    return [
        gx.expectations.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A=column, column_B=WINDOW_START, or_equal=True
        ),
        gx.expectations.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A=WINDOW_END, column_B=column
        ),
    ]


def _not_null(gx: Any, *columns: str) -> list[Any]:
    return [gx.expectations.ExpectColumnValuesToNotBeNull(column=c) for c in columns]


def _metric_samples_suite(gx: Any) -> list[Any]:
    return [
        *_not_null(gx, "series_id", "ts"),
        *_inside_window(gx, "ts"),
        gx.expectations.ExpectCompoundColumnsToBeUnique(column_list=["series_id", "ts"]),
    ]


def _metric_series_suite(gx: Any) -> list[Any]:
    return [
        *_not_null(gx, "series_id", "metric"),
        gx.expectations.ExpectCompoundColumnsToBeUnique(column_list=["series_id", WINDOW_START]),
    ]


LOG_LEVELS = [
    "trace",
    "debug",
    "info",
    "notice",
    "warn",
    "warning",
    "error",
    "critical",
    "fatal",
    "alert",
    "emergency",
]
SPAN_KINDS = ["server", "client", "producer", "consumer", "internal", "unspecified"]
SPAN_STATUSES = ["unset", "ok", "error"]


def _log_records_suite(gx: Any) -> list[Any]:
    return [
        *_not_null(gx, "ts", "index", "doc_id"),
        *_inside_window(gx, "ts"),
        gx.expectations.ExpectCompoundColumnsToBeUnique(column_list=["index", "doc_id"]),
        gx.expectations.ExpectColumnValuesToBeInSet(column="level", value_set=LOG_LEVELS),
    ]


def _spans_suite(gx: Any) -> list[Any]:
    return [
        *_not_null(gx, "trace_id", "span_id", "start_ts"),
        *_inside_window(gx, "start_ts"),
        gx.expectations.ExpectCompoundColumnsToBeUnique(column_list=["trace_id", "span_id"]),
        gx.expectations.ExpectColumnValuesToBeInSet(column="kind", value_set=SPAN_KINDS),
        gx.expectations.ExpectColumnValuesToBeInSet(column="status_code", value_set=SPAN_STATUSES),
    ]


def _alert_fragments_suite(gx: Any) -> list[Any]:
    return [
        *_not_null(gx, "fingerprint", "alertname", "state", "first_sample", "last_sample"),
        *_inside_window(gx, "first_sample"),
        *_inside_window(gx, "last_sample"),
        gx.expectations.ExpectCompoundColumnsToBeUnique(
            column_list=["fingerprint", "state", "first_sample"]
        ),
        gx.expectations.ExpectColumnValuesToBeInSet(
            column="state", value_set=["firing", "pending"]
        ),
    ]


def _alert_rules_suite(gx: Any) -> list[Any]:
    return [
        *_not_null(gx, "group", "name", "type", "expr"),
        gx.expectations.ExpectColumnValuesToBeInSet(
            column="type", value_set=["alerting", "recording"]
        ),
    ]


def _alertmanager_alerts_suite(gx: Any) -> list[Any]:
    return [
        *_not_null(gx, "fingerprint", "snapshot_at"),
        gx.expectations.ExpectColumnValuesToBeUnique(column="fingerprint"),
        gx.expectations.ExpectColumnValuesToBeInSet(
            column="state", value_set=["active", "suppressed", "unprocessed"]
        ),
    ]


_SUITES = {
    "metric_samples": _metric_samples_suite,
    "metric_series": _metric_series_suite,
    "log_records": _log_records_suite,
    "spans": _spans_suite,
    "alert_fragments": _alert_fragments_suite,
    "alert_rules": _alert_rules_suite,
    "alertmanager_alerts": _alertmanager_alerts_suite,
}


@functools.cache
def _context() -> Any:
    """One ephemeral context per process (each one creates a temporary docs folder)."""
    context = _gx().get_context(mode="ephemeral")
    context.variables.progress_bars = _no_progress_bars()
    return context


@functools.cache
def _batch_definition(context: Any, dataset: str) -> Any:
    source = context.data_sources.add_pandas(name=dataset)
    asset = source.add_dataframe_asset(name=dataset)
    return asset.add_batch_definition_whole_dataframe(name="partition")


def _gx() -> Any:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    return gx


def _no_progress_bars() -> Any:
    from great_expectations.data_context.types.base import ProgressBarsConfig

    return ProgressBarsConfig(globally=False, metric_calculations=False)
