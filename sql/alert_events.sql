-- alert_events: one row per firing interval of one alert, whole across partition boundaries.
--
-- Built on alert_intervals (fragments of one alert and state stitched across hourly windows):
-- the firing intervals, each with the pending stretch that led into it.
--
-- starts_at      the first firing sample (Prometheus's FiredAt, the startsAt Alertmanager gets).
-- ends_at        last firing sample + one evaluation interval: the evaluation at which the alert
--                was first seen resolved (Prometheus's ResolvedAt). NULL while still firing: the
--                last fragment reached the end of its window (window_end - last_sample <=
--                max_gap_ms) and no later window holds any alert data yet. (Windows with no
--                alert data at all cannot be told apart from windows not yet ingested; an alert
--                open at the end of the newest window with alert data stays NULL until a later
--                window holds some.)
-- pending_since  start of the pending stretch that led into this firing (Prometheus's activeAt),
--                NULL when the rule has no `for` or the pending phase is not in the lake.
-- duration_seconds  ends_at - starts_at; for an alert still firing, the time firing so far (to
--                its last sample plus one evaluation).
WITH intervals AS (
    SELECT * FROM alert_intervals
),
firing AS (
    SELECT *, ended_at AS resolved_at, still_open AS still_firing
    FROM intervals
    WHERE state = 'firing'
)
SELECT
    f.fingerprint,
    f.alertname,
    f.severity,
    f.category,
    f.service,
    f.labels,
    f.starts_at::TIMESTAMP                                        AS starts_at,
    CASE WHEN f.still_firing THEN NULL ELSE f.resolved_at END::TIMESTAMP AS ends_at,
    f.source,
    p.starts_at::TIMESTAMP                                        AS pending_since,
    (epoch_ms(f.resolved_at) - epoch_ms(f.starts_at)) / 1000.0    AS duration_seconds,
    f.samples::BIGINT                                             AS samples,
    f.last_sample::TIMESTAMP                                      AS last_sample,
    f.fragments
FROM firing AS f
LEFT JOIN intervals AS p
    ON  p.fingerprint = f.fingerprint
    AND p.state = 'pending'
    AND p.last_sample <= f.starts_at
    AND epoch_ms(f.starts_at) - epoch_ms(p.last_sample) <= f.max_gap_ms
ORDER BY f.starts_at, f.alertname, f.fingerprint
