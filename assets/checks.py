"""Asset check results shared by every ingest asset: one result per run, naming failed hours."""

from dagster import AssetCheckResult, AssetCheckSeverity, MetadataValue

from obs_pipelines.lake.quality import ExpectationOutcome
from obs_pipelines.windows import TimeWindow


def expectations_result(
    dataset: str, checks: list[tuple[TimeWindow, list[ExpectationOutcome]]]
) -> AssetCheckResult:
    """One check result for all partitions of a run; failures name the hour and expectation."""
    failures = [
        f"- {hour}: {o.expectation}({o.column}) unexpected={o.unexpected}"
        for hour, outcomes in checks
        for o in outcomes
        if not o.success
    ]
    return AssetCheckResult(
        asset_key=dataset,
        check_name="expectations",
        passed=not failures,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "partitions validated": len(checks),
            "expectations per partition": len(checks[0][1]) if checks else 0,
            "failures": MetadataValue.md("\n".join(failures[:50]) or "none"),
        },
    )
