-- alert_pending_episodes: alerts that went pending and never fired (the condition cleared before
-- the rule's `for` ran out): near misses, worth a look when tuning a threshold or a `for`, and
-- invisible in Alertmanager, which only ever sees firing alerts.
-- One row per pending stretch (alert_intervals) that started in the current or previous report
-- period and did not lead into a firing interval of the same alert (a firing that starts at most
-- max_gap_ms after the stretch's last sample, the rule alert_events uses for pending_since).
--
-- period            'current' or 'previous' (by pending_since)
-- fingerprint, alertname, severity, category, service, labels, source   as in alert_events
-- pending_since     the first pending sample (Prometheus's activeAt)
-- pending_until     last pending sample + one evaluation interval: when it was seen inactive;
--                   NULL while still pending (it reached the newest window with alert data)
-- pending_minutes   pending_until - pending_since; for one still pending, so far
-- samples           pending ALERTS samples
-- still_pending     true when it may yet fire: its last sample reached the newest alert window
WITH period AS (
    SELECT * FROM report_period
),
pending AS (
    SELECT i.*, i.ended_at AS inactive_at, i.still_open AS still_pending
    FROM alert_intervals AS i
    WHERE i.state = 'pending'
      AND NOT EXISTS (
          SELECT 1 FROM alert_intervals AS f
          WHERE f.fingerprint = i.fingerprint
            AND f.state = 'firing'
            AND i.last_sample <= f.starts_at
            AND epoch_ms(f.starts_at) - epoch_ms(i.last_sample) <= f.max_gap_ms
      )
)
SELECT
    CASE WHEN a.starts_at >= p.period_start THEN 'current' ELSE 'previous' END AS period,
    a.fingerprint,
    a.alertname,
    a.severity,
    a.category,
    a.service,
    a.labels,
    a.source,
    a.starts_at::TIMESTAMP                                                     AS pending_since,
    CASE WHEN a.still_pending THEN NULL ELSE a.inactive_at END::TIMESTAMP      AS pending_until,
    (epoch_ms(a.inactive_at) - epoch_ms(a.starts_at)) / 60000.0               AS pending_minutes,
    a.samples::BIGINT                                                          AS samples,
    a.still_pending
FROM pending AS a, period AS p
WHERE a.starts_at >= p.previous_start AND a.starts_at < p.period_end
ORDER BY a.starts_at, a.alertname, a.fingerprint
