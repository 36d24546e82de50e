-- alert_firings: every alert firing that fired during the current or previous report period (it
-- started in one of them, or started earlier and was still firing when the previous period
-- began), with what the quality reports need to judge it.
-- Built on alert_events (one row per firing interval, stitched across partitions).
--
-- period            the period the firing started in: 'current' or 'previous'; NULL for a firing
--                   that started before the previous period (it counts in no period's `firings`
--                   in alert_quality, but its firing time inside each period counts, and it is
--                   related to impact episodes and incidents like any other firing)
-- firing_id         fingerprint@starts_at: one firing of one alert (label set)
-- fingerprint, alertname, severity, category   as in alert_events
-- service           the alert's `service` label, else its `job`; NULL when it has neither
-- mapped            true when the alert names a service at all; unmapped alerts are kept, never dropped
-- in_catalog        true when that service is in the service catalog (obs.yaml `services`)
-- starts_at         when it started firing
-- ends_at           when it resolved; NULL while still firing
-- effective_end     ends_at, or the end of the report period for an alert still firing
-- previous_minutes  time firing inside the previous period: the overlap of [starts_at,
--                   effective_end) with it, whatever period the firing started in
-- current_minutes   time firing inside the report period, likewise: a firing resolved after the
--                   period end counts to the end, as one still firing does, so a past period's
--                   figure does not change as later data arrives
-- firing_minutes    previous_minutes + current_minutes: time firing inside the two periods
-- transient         resolved within `transient_alert_seconds` (report_settings)
WITH period AS (
    SELECT * FROM report_period
)
SELECT
    CASE WHEN a.starts_at >= p.period_start THEN 'current'
         WHEN a.starts_at >= p.previous_start THEN 'previous' END              AS period,
    a.fingerprint || '@' || strftime(a.starts_at, '%Y-%m-%dT%H:%M:%S.%gZ')     AS firing_id,
    a.fingerprint,
    a.alertname,
    a.severity,
    a.category,
    a.service,
    a.service IS NOT NULL                                                      AS mapped,
    coalesce(a.service IN (SELECT service FROM services), false)               AS in_catalog,
    a.starts_at,
    a.ends_at,
    coalesce(a.ends_at, greatest(p.period_end, a.starts_at))                   AS effective_end,
    greatest(epoch_us(least(effective_end, p.previous_end))
             - epoch_us(greatest(a.starts_at, p.previous_start)), 0) / 60e6    AS previous_minutes,
    greatest(epoch_us(least(effective_end, p.period_end))
             - epoch_us(greatest(a.starts_at, p.period_start)), 0) / 60e6      AS current_minutes,
    previous_minutes + current_minutes                                         AS firing_minutes,
    coalesce(epoch_us(a.ends_at) - epoch_us(a.starts_at) < s.transient_alert_seconds * 1e6, false)
                                                                               AS transient
FROM alert_events AS a, period AS p, report_settings AS s
WHERE a.starts_at < p.period_end AND coalesce(a.ends_at > p.previous_start, true)
ORDER BY a.starts_at, a.alertname, a.fingerprint
