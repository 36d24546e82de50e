-- incident_summary: mean time to detect (MTTD) and to resolve (MTTR), per service and overall.
-- One row per period and service with incidents, plus one row per period for all services together
-- (service NULL, scope 'all services'), which also exists when there were no incidents.
--
-- period                    'current' or 'previous'
-- scope                     'service' or 'all services'
-- service                   the service (NULL on the 'all services' row)
-- incidents                 impact episodes that started in the period
-- detected, undetected      of those, with and without a related alert
-- mttd_minutes              mean time to detect, over detected incidents
-- median_ttd_minutes        median time to detect
-- p90_ttd_minutes           90th percentile of time to detect (linear interpolation)
-- mttr_minutes              mean time to resolve (impact duration), over all incidents
-- median_ttr_minutes        median time to resolve
-- p90_ttr_minutes           90th percentile of time to resolve
WITH incident_rows AS MATERIALIZED (
    SELECT * FROM incidents
),
per_service AS (
    SELECT period, 'service' AS scope, service,
           count(*) AS incidents,
           count(*) FILTER (WHERE detected) AS detected,
           count(*) FILTER (WHERE NOT detected) AS undetected,
           avg(time_to_detect_minutes) AS mttd_minutes,
           median(time_to_detect_minutes) AS median_ttd_minutes,
           quantile_cont(time_to_detect_minutes, 0.9) AS p90_ttd_minutes,
           avg(time_to_resolve_minutes) AS mttr_minutes,
           median(time_to_resolve_minutes) AS median_ttr_minutes,
           quantile_cont(time_to_resolve_minutes, 0.9) AS p90_ttr_minutes
    FROM incident_rows
    GROUP BY period, service
),
overall AS (
    SELECT p.period, 'all services' AS scope, CAST(NULL AS VARCHAR) AS service,
           count(i.episode_id) AS incidents,
           count(i.episode_id) FILTER (WHERE i.detected) AS detected,
           count(i.episode_id) FILTER (WHERE NOT i.detected) AS undetected,
           avg(i.time_to_detect_minutes) AS mttd_minutes,
           median(i.time_to_detect_minutes) AS median_ttd_minutes,
           quantile_cont(i.time_to_detect_minutes, 0.9) AS p90_ttd_minutes,
           avg(i.time_to_resolve_minutes) AS mttr_minutes,
           median(i.time_to_resolve_minutes) AS median_ttr_minutes,
           quantile_cont(i.time_to_resolve_minutes, 0.9) AS p90_ttr_minutes
    FROM report_periods AS p
    LEFT JOIN incident_rows AS i ON i.period = p.period
    GROUP BY p.period
)
SELECT * FROM overall
UNION ALL
SELECT * FROM per_service
ORDER BY period, scope, service
