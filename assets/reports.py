"""The daily reliability report: HTML file plus the scorecard and top findings as metadata."""

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from dagster import (
    AssetExecutionContext,
    AssetKey,
    MaterializeResult,
    MetadataValue,
    PartitionsDefinition,
    asset,
)

from assets.partitions import REPORTS_GROUP
from assets.resources import ObsResource
from obs_pipelines.config import ObsConfig
from obs_pipelines.reporting.report_export import push_reports
from obs_pipelines.reporting.report_html import findings, scorecard_rows, write_report
from obs_pipelines.reporting.reports import pin_reports, report_connection

# The report reads the catalog (its views and report SQL), which ingest and tiering rebuild.
DEFAULT_DEPS = ("lake_catalog",)


def report_path(config: ObsConfig, end: datetime) -> Path:
    """Where the report for the period ending at ``end`` is written: beside the catalog."""
    return Path(config.catalog_path).parent / "reports" / f"reliability-{end:%Y-%m-%d}.html"


def build_report_assets(
    partitions: PartitionsDefinition, deps: Sequence[str] = DEFAULT_DEPS
) -> list[object]:
    """Assets of the reports group; ``partitions`` should be daily (each run reports the period
    ending at the end of its day)."""

    @asset(
        name="reliability_report",
        group_name=REPORTS_GROUP,
        partitions_def=partitions,
        deps=[AssetKey(d) for d in deps],
        kinds={"duckdb", "html"},
    )
    def reliability_report(context: AssetExecutionContext, obs: ObsResource) -> MaterializeResult:
        """The seed's Success Metrics scorecard, SLO error budgets, burn rates, alert noise and
        coverage over the report period ending with this day, as one self-contained HTML file."""
        config = obs.config
        end = context.partition_time_window.end.astimezone(UTC)
        con = report_connection(config, None, end)  # report_period chooses the start
        try:
            (start,) = con.execute("SELECT period_start FROM report_period").fetchone()
            pin_reports(con)
            path = write_report(con, config, report_path(config, end))
            rows = scorecard_rows(con)
            found = findings(con)
            pushed = push_reports(config, con)
        finally:
            con.close()
        table = "\n".join(
            f"| {r.metric} | {r.target} | {r.shown(r.current)} | {r.shown(r.previous)} | "
            f"{r.change} | {r.status} |"
            for r in rows
        )
        metadata: dict[str, object] = {
            "report": MetadataValue.path(str(path)),
            "period": f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC",
            "scorecard": MetadataValue.md(
                "| metric | target | current | previous | change | status |\n"
                "|---|---|---|---|---|---|\n" + table
            ),
            "targets met": sum(r.status == "pass" for r in rows),
            "targets missed": sum(r.status == "fail" for r in rows),
            "top findings": MetadataValue.md("\n".join(f"- {f}" for f in found) or "none"),
            "pushgateway samples": pushed if pushed is not None else "not configured",
        }
        for r in rows:
            if r.current is not None:
                metadata[r.metric] = MetadataValue.float(float(r.current))
        context.log.info(f"reliability report for {start:%Y-%m-%d} .. {end:%Y-%m-%d}: {path}")
        return MaterializeResult(metadata=metadata)

    return [reliability_report]
