-- incident_summary: mean time to detect (MTTD) and to resolve (MTTR), and alert recall, per service
-- and overall. One row per period and service with incidents, plus one row per period for all
-- services together (service NULL, scope 'all services'), which also exists when there were none.
-- Incidents come from incident records where a service has them in the period and from SLO-impact
-- episodes where it has none (see incidents); `basis` says which.
--
-- period                    'current' or 'previous'
-- scope                     'service' or 'all services'
-- service                   the service (NULL on the 'all services' row)
-- basis                     'records', 'impact episodes', or 'records and impact episodes' on an
--                           'all services' row that mixes them; NULL when there were no incidents
-- incidents                 incidents that started in the period
-- detected, undetected      of those, with and without a known detection time (records: as
--                           recorded; episodes: a related alert)
-- mttd_minutes              mean time to detect, over detected incidents
-- median_ttd_minutes        median time to detect
-- p90_ttd_minutes           90th percentile of time to detect (linear interpolation)
-- mttr_minutes              mean time to resolve, over incidents with a known resolution (an
--                           ongoing episode counts to the period end; an open record not at all)
-- median_ttr_minutes        median time to resolve
-- p90_ttr_minutes           90th percentile of time to resolve
-- alert_detected            incidents an alert of ours was related to
-- alert_recall              alert_detected / incidents; NULL without incidents
WITH incident_rows AS MATERIALIZED (
    SELECT * FROM incidents
),
per_service AS (
    SELECT period, 'service' AS scope, service,
           CASE WHEN count(DISTINCT basis) > 1 THEN 'records and impact episodes'
                ELSE any_value(basis) END AS basis,
           count(*) AS incidents,
           count(*) FILTER (WHERE detected) AS detected,
           count(*) FILTER (WHERE NOT detected) AS undetected,
           avg(time_to_detect_minutes) AS mttd_minutes,
           median(time_to_detect_minutes) AS median_ttd_minutes,
           quantile_cont(time_to_detect_minutes, 0.9) AS p90_ttd_minutes,
           avg(time_to_resolve_minutes) AS mttr_minutes,
           median(time_to_resolve_minutes) AS median_ttr_minutes,
           quantile_cont(time_to_resolve_minutes, 0.9) AS p90_ttr_minutes,
           count(*) FILTER (WHERE alert_detected) AS alert_detected
    FROM incident_rows
    GROUP BY period, service
),
overall AS (
    SELECT p.period, 'all services' AS scope, CAST(NULL AS VARCHAR) AS service,
           CASE WHEN count(DISTINCT i.basis) > 1 THEN 'records and impact episodes'
                ELSE any_value(i.basis) END AS basis,
           count(i.incident_id) AS incidents,
           count(i.incident_id) FILTER (WHERE i.detected) AS detected,
           count(i.incident_id) FILTER (WHERE NOT i.detected) AS undetected,
           avg(i.time_to_detect_minutes) AS mttd_minutes,
           median(i.time_to_detect_minutes) AS median_ttd_minutes,
           quantile_cont(i.time_to_detect_minutes, 0.9) AS p90_ttd_minutes,
           avg(i.time_to_resolve_minutes) AS mttr_minutes,
           median(i.time_to_resolve_minutes) AS median_ttr_minutes,
           quantile_cont(i.time_to_resolve_minutes, 0.9) AS p90_ttr_minutes,
           count(i.incident_id) FILTER (WHERE i.alert_detected) AS alert_detected
    FROM report_periods AS p
    LEFT JOIN incident_rows AS i ON i.period = p.period
    GROUP BY p.period
),
combined AS (
    SELECT * FROM overall
    UNION ALL
    SELECT * FROM per_service
)
SELECT *, CASE WHEN incidents > 0 THEN alert_detected / incidents END AS alert_recall
FROM combined
ORDER BY period, scope, service
