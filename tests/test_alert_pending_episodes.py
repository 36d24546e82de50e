"""Pending-only alert episodes: alerts whose condition cleared before their `for` ran out."""

from pathlib import Path

import pytest

from obs_pipelines.config import ObsConfig
from obs_pipelines.lake import Lake
from obs_pipelines.lake.catalog import build_catalog
from obs_pipelines.reporting.reports import report_connection
from obs_pipelines.windows import utc
from tests.report_fixtures import EVALUATION_MS, alert_fragments, hour_of, make_config, ms

pytestmark = pytest.mark.integration  # builds catalogs with every report: seconds per test

START, END = utc("2026-11-10T00:00:00Z"), utc("2026-11-11T00:00:00Z")
T0 = ms("2026-11-10T10:00:00Z")
FIVE_EVALUATIONS = 5 * EVALUATION_MS  # each fragment: 5 samples, the last 4 evaluations in


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> ObsConfig:
    root: Path = tmp_path_factory.mktemp("pending")
    config = make_config(root, services=[{"name": "api", "owner": "web"}])
    Lake(config).write_hot(
        "alert_fragments",
        hour_of(T0),
        alert_fragments(
            # Pending, then firing right after: a real firing, not a pending-only episode.
            ("ApiErrors", "pending", {"service": "api"}, T0),
            ("ApiErrors", "firing", {"service": "api"}, T0 + FIVE_EVALUATIONS),
            # Pending twice, never firing: two near misses.
            ("ApiSlow", "pending", {"service": "api"}, T0),
            ("ApiSlow", "pending", {"service": "api"}, T0 + 20 * EVALUATION_MS),
            # Pending until the end of the newest window with alert data: it may still fire.
            ("DbSlow", "pending", {"job": "db"}, T0 + 3_600_000 - FIVE_EVALUATIONS),
        ),
    )
    build_catalog(config)
    return config


def test_pending_stretches_that_never_fired_are_episodes_of_their_own(config: ObsConfig) -> None:
    con = report_connection(config, START, END)
    rows = con.execute(
        "SELECT alertname, service, epoch_ms(pending_since), epoch_ms(pending_until), "
        "pending_minutes, samples, still_pending FROM alert_pending_episodes"
    ).fetchall()
    fired = con.execute("SELECT alertname, epoch_ms(pending_since) FROM alert_events").fetchall()

    assert rows == [
        ("ApiSlow", "api", T0, T0 + FIVE_EVALUATIONS, 1.25, 5, False),
        (
            "ApiSlow",
            "api",
            T0 + 20 * EVALUATION_MS,
            T0 + 25 * EVALUATION_MS,
            1.25,
            5,
            False,
        ),
        ("DbSlow", "db", T0 + 3_600_000 - FIVE_EVALUATIONS, None, 1.25, 5, True),
    ]
    assert fired == [("ApiErrors", T0)]  # its pending stretch led into the firing
