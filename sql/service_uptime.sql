-- service_uptime: per service and period, the share of `up` scrapes that were 1: the scorecard's
-- System uptime broken down by service. From up_minutes (derived at ingest), so the numbers stay
-- the same once raw samples have aged out.
-- One row per period and service: every catalog service (with NULLs when it has no `up` samples,
-- an unmonitored service), and any other service seen in `up` samples.
--
-- period                'current' or 'previous'
-- service               the service (the `up` series' service label, else its job)
-- tier                  its catalog tier; NULL when not in the catalog
-- in_scorecard          true when its tier is in report_settings.uptime_tiers: the scorecard's
--                       uptime is sum(up_ok_samples) / sum(up_samples) over these rows
-- up_samples            `up` samples in the period
-- up_ok_samples         of those, equal to 1
-- uptime                up_ok_samples / up_samples; NULL without samples
-- down_minutes          minutes with at least one `up` sample that was not 1
-- first_seen, last_seen first and last minute with `up` samples in the period
WITH period AS (
    SELECT * FROM report_period
),
measured AS (
    SELECT CASE WHEN u.minute >= p.period_start THEN 'current' ELSE 'previous' END AS period,
           u.service,
           sum(u.up_samples)                                           AS up_samples,
           sum(u.up_ok_samples)                                        AS up_ok_samples,
           count(*) FILTER (WHERE u.up_ok_samples < u.up_samples)      AS down_minutes,
           min(u.minute)                                               AS first_seen,
           max(u.minute)                                               AS last_seen
    FROM up_minutes AS u
    CROSS JOIN period AS p
    WHERE u.minute >= p.previous_start AND u.minute < p.period_end
      -- dt, the row's UTC day, keeps the scan to the period's day partitions
      AND u.dt >= (SELECT strftime(previous_start, '%Y-%m-%d') FROM report_period)
      AND u.dt <= (SELECT strftime(period_end, '%Y-%m-%d') FROM report_period)
    GROUP BY ALL
),
catalog_rows AS (
    SELECT periods.period, c.service
    FROM services AS c
    CROSS JOIN (VALUES ('current'), ('previous')) AS periods(period)
)
SELECT
    coalesce(m.period, c.period)                                               AS period,
    coalesce(m.service, c.service)                                             AS service,
    s.tier,
    coalesce(list_contains(r.uptime_tiers, s.tier), false)                     AS in_scorecard,
    coalesce(m.up_samples, 0)::BIGINT                                          AS up_samples,
    coalesce(m.up_ok_samples, 0)::BIGINT                                       AS up_ok_samples,
    m.up_ok_samples::DOUBLE / nullif(m.up_samples, 0)                          AS uptime,
    coalesce(m.down_minutes, 0)::BIGINT                                        AS down_minutes,
    m.first_seen,
    m.last_seen
FROM measured AS m
FULL OUTER JOIN catalog_rows AS c ON c.period = m.period AND c.service = m.service
LEFT JOIN services AS s ON s.service = coalesce(m.service, c.service)
CROSS JOIN report_settings AS r
ORDER BY period, service
