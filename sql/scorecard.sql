-- scorecard: the seed's Success Metrics table, filled in from the lake.
-- One row per success metric (targets in `scorecard_targets`, from the seed by default): its
-- target, the value over the report period, the value over the previous period, the change, and
-- whether the target is met. Targets are strict: a value exactly at the target does not pass
-- ("> 99.9%" needs more than 99.9%). Value and target are rounded to 9 decimals before the comparison,
-- so floating-point dust cannot decide a boundary.
--
-- metric_order, metric   the row and its name, as in the seed
-- target                 the target as the seed writes it, e.g. '> 99.9%'
-- current_value          the value over the report period (ratio 0..1, or minutes)
-- previous_value         the value over the previous period; NULL when it has nothing to measure,
--                        as current_value (for coverage: a period holding no data at all, see
--                        coverage's period_has_data)
-- change                 current_value - previous_value
-- unit                   ratio or minutes
-- passed                 true / false; NULL when there is nothing to measure (e.g. no incidents)
-- status                 'pass', 'fail' or 'no data'
-- definition             how the value is measured:
--   System uptime            share of `up` scrapes equal to 1 over every target of the catalog's
--                            services whose tier is in report_settings.uptime_tiers (critical)
--   Alert noise ratio        alert_quality's, all alerts: firings that started in the period and
--                            matched no impact episode and no incident / firings that started in
--                            the period (counted from alert_firings, alert_impact_matches and
--                            incident_alert_matches, as there)
--   Mean time to detection   incident_summary, all services: mean time to detect
--   Mean time to resolution  incident_summary, all services: mean time to resolve
--   Monitoring coverage      coverage: share of catalog services with every required pillar present;
--                            no data in a period holding none (coverage.period_has_data)
-- period_start, period_end the report period
-- basis                  for MTTD and MTTR: the incidents they were measured on (incident_summary):
--                        'records' (postmortems, PagerDuty), 'impact episodes', or 'records and
--                        impact episodes'; NULL for other metrics and when there were no incidents
WITH period AS (
    SELECT * FROM report_period
),
incident_totals AS MATERIALIZED (
    SELECT * FROM incident_summary WHERE scope = 'all services'
),
uptime AS (
    -- From up_minutes (derived at ingest): the same share once raw samples have aged out.
    SELECT CASE WHEN u.minute >= p.period_start THEN 'current' ELSE 'previous' END AS period,
           sum(u.up_ok_samples)::DOUBLE / sum(u.up_samples) AS value
    FROM up_minutes AS u
    CROSS JOIN period AS p
    WHERE u.service IN (
          SELECT c.service FROM services AS c, report_settings AS s
          WHERE list_contains(s.uptime_tiers, c.tier)
      )
      AND u.minute >= p.previous_start AND u.minute < p.period_end
      -- dt, the row's UTC day, keeps the scan to the period's day partitions
      AND u.dt >= (SELECT strftime(previous_start, '%Y-%m-%d') FROM report_period)
      AND u.dt <= (SELECT strftime(period_end, '%Y-%m-%d') FROM report_period)
    GROUP BY 1
),
measured AS (
    SELECT 'uptime' AS metric_key, period, value FROM uptime
    UNION ALL
    -- alert_quality's noise_ratio on its 'all alerts' rows, counted from the same views:
    -- reading alert_quality would also compute its recall and flapping.
    SELECT 'alert_noise', p.period,
           CASE WHEN count(f.starts_at) > 0
                THEN 1 - count(f.starts_at) FILTER (WHERE f.firing_id IN (
                         SELECT firing_id FROM alert_impact_matches
                         UNION
                         SELECT firing_id FROM incident_alert_matches
                     )) / count(f.starts_at)
           END
    FROM report_periods AS p
    LEFT JOIN alert_firings AS f ON f.period = p.period
    GROUP BY p.period
    UNION ALL
    SELECT 'mttd', period, mttd_minutes FROM incident_totals
    UNION ALL
    SELECT 'mttr', period, mttr_minutes FROM incident_totals
    UNION ALL
    -- NULL (no data) for a period holding no data: coverage is unknown there, not 0%.
    SELECT DISTINCT 'coverage', period, overall_coverage FROM coverage
),
values_by_period AS (
    SELECT metric_key,
           max(value) FILTER (WHERE period = 'current') AS current_value,
           max(value) FILTER (WHERE period = 'previous') AS previous_value
    FROM measured
    GROUP BY metric_key
),
judged AS (
    SELECT t.*, v.current_value, v.previous_value,
           CASE
               WHEN v.current_value IS NULL THEN NULL
               WHEN t.comparator = '>' THEN round(v.current_value, 9) > round(t.target_value, 9)
               ELSE round(v.current_value, 9) < round(t.target_value, 9)
           END AS passed
    FROM scorecard_targets AS t
    LEFT JOIN values_by_period AS v USING (metric_key)
)
SELECT
    j.metric_order,
    j.metric,
    j.target,
    j.current_value,
    j.previous_value,
    j.current_value - j.previous_value                                   AS change,
    j.unit,
    j.passed,
    CASE WHEN j.passed THEN 'pass' WHEN NOT j.passed THEN 'fail' ELSE 'no data' END AS status,
    j.definition,
    p.period_start,
    p.period_end,
    CASE WHEN j.metric_key IN ('mttd', 'mttr') THEN (
        SELECT basis FROM incident_totals WHERE period = 'current'
    ) END                                                                AS basis
FROM judged AS j, period AS p
ORDER BY j.metric_order
