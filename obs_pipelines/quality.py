"""Great Expectations suites for lake partitions, run on what was actually published.

GX is imported lazily (it costs ~2 s) and run in an ephemeral context with no network and no
progress bars. Each dataset has one suite; the caller gets plain outcomes to report however it likes.
"""

import functools
import logging
import os
from dataclasses import dataclass
from datetime import timedelta
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
    gx = _gx()
    context = _context()
    suite = gx.ExpectationSuite(name=f"{dataset}_partition")
    for expectation in _SUITES[dataset](gx, window):
        suite.add_expectation(expectation)
    batch_definition = _batch_definition(context, dataset)
    frame = (
        table.to_pandas(timestamp_as_object=False, maps_as_pydicts="strict")
        if table.num_rows
        else table.to_pandas()
    )
    batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
    result = batch.validate(suite)
    outcomes = []
    for item in result.results:
        config = item.expectation_config
        kwargs: dict[str, Any] = config.kwargs
        column = kwargs.get("column") or ",".join(kwargs.get("column_list", []))
        outcomes.append(
            ExpectationOutcome(
                expectation=config.type,
                column=column,
                success=bool(item.success),
                unexpected=int(item.result.get("unexpected_count") or 0),
            )
        )
    return outcomes


def _metric_samples_suite(gx: Any, window: TimeWindow) -> list[Any]:
    last = (window.end - timedelta(milliseconds=1)).replace(tzinfo=None)
    return [
        gx.expectations.ExpectColumnValuesToNotBeNull(column="series_id"),
        gx.expectations.ExpectColumnValuesToNotBeNull(column="ts"),
        gx.expectations.ExpectColumnValuesToBeBetween(
            column="ts", min_value=window.start.replace(tzinfo=None), max_value=last
        ),
        gx.expectations.ExpectCompoundColumnsToBeUnique(column_list=["series_id", "ts"]),
    ]


def _metric_series_suite(gx: Any, window: TimeWindow) -> list[Any]:
    return [
        gx.expectations.ExpectColumnValuesToNotBeNull(column="series_id"),
        gx.expectations.ExpectColumnValuesToBeUnique(column="series_id"),
        gx.expectations.ExpectColumnValuesToNotBeNull(column="metric"),
    ]


LOG_LEVELS = ["trace", "debug", "info", "notice", "warn", "warning", "error", "critical", "fatal", "alert", "emergency"]
SPAN_KINDS = ["server", "client", "producer", "consumer", "internal", "unspecified"]
SPAN_STATUSES = ["unset", "ok", "error"]


def _time_between(gx: Any, column: str, window: TimeWindow) -> Any:
    last = (window.end - timedelta(microseconds=1)).replace(tzinfo=None)
    return gx.expectations.ExpectColumnValuesToBeBetween(column=column, min_value=window.start.replace(tzinfo=None), max_value=last)


def _not_null(gx: Any, *columns: str) -> list[Any]:
    return [gx.expectations.ExpectColumnValuesToNotBeNull(column=c) for c in columns]


def _log_records_suite(gx: Any, window: TimeWindow) -> list[Any]:
    return [
        *_not_null(gx, "ts", "index", "doc_id"),
        _time_between(gx, "ts", window),
        gx.expectations.ExpectCompoundColumnsToBeUnique(column_list=["index", "doc_id"]),
        gx.expectations.ExpectColumnValuesToBeInSet(column="level", value_set=LOG_LEVELS),
    ]


def _spans_suite(gx: Any, window: TimeWindow) -> list[Any]:
    return [
        *_not_null(gx, "trace_id", "span_id", "start_ts"),
        _time_between(gx, "start_ts", window),
        gx.expectations.ExpectCompoundColumnsToBeUnique(column_list=["trace_id", "span_id"]),
        gx.expectations.ExpectColumnValuesToBeInSet(column="kind", value_set=SPAN_KINDS),
        gx.expectations.ExpectColumnValuesToBeInSet(column="status_code", value_set=SPAN_STATUSES),
    ]


def _alert_fragments_suite(gx: Any, window: TimeWindow) -> list[Any]:
    return [
        *_not_null(gx, "fingerprint", "alertname", "state", "first_sample", "last_sample"),
        _time_between(gx, "first_sample", window),
        _time_between(gx, "last_sample", window),
        gx.expectations.ExpectCompoundColumnsToBeUnique(column_list=["fingerprint", "state", "first_sample"]),
        gx.expectations.ExpectColumnValuesToBeInSet(column="state", value_set=["firing", "pending"]),
    ]


def _alert_rules_suite(gx: Any, window: TimeWindow) -> list[Any]:
    return [
        *_not_null(gx, "group", "name", "type", "expr"),
        gx.expectations.ExpectColumnValuesToBeInSet(column="type", value_set=["alerting", "recording"]),
    ]


def _alertmanager_alerts_suite(gx: Any, window: TimeWindow) -> list[Any]:
    return [
        *_not_null(gx, "fingerprint", "snapshot_at"),
        gx.expectations.ExpectColumnValuesToBeUnique(column="fingerprint"),
        gx.expectations.ExpectColumnValuesToBeInSet(column="state", value_set=["active", "suppressed", "unprocessed"]),
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
