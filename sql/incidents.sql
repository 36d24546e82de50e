-- incidents: every SLO-impact episode, when it was detected and when it was resolved.
-- One row per impact episode (see impact_episodes) in the current or previous period. Detection is
-- the first related alert firing of the same service (alert_impact_matches); resolution is the end
-- of the impact. Summaries (MTTD, MTTR) are in incident_summary.
--
-- period                'current' or 'previous' (by the start)
-- service               the service whose SLOs were burning
-- episode_id            service@start
-- slo_names             the SLOs that were burning
-- started_at            start of impact
-- detected_at           start of the first related alert firing; NULL when no alert related
-- first_alert           name of that alert
-- alerts                names of every related alert
-- resolved_at           end of impact
-- time_to_detect_minutes   detected_at - started_at (floored at 0); NULL when undetected
-- time_to_resolve_minutes  resolved_at - started_at
-- detected              true when an alert related
-- peak_burn_rate        highest burn rate of a stretch impacting the episode (impact_episodes)
-- ongoing               true when impact continued to the end of the report period
WITH episodes AS MATERIALIZED (
    SELECT * FROM impact_episodes
),
detections AS (
    SELECT episode_id,
           min(starts_at) AS detected_at,
           arg_min(alertname, starts_at) AS first_alert,
           list_sort(list(DISTINCT alertname)) AS alerts,
           min(detection_minutes) AS time_to_detect_minutes
    FROM alert_impact_matches
    GROUP BY episode_id
)
SELECT
    e.period,
    e.service,
    e.episode_id,
    e.slo_names,
    e.started_at,
    d.detected_at,
    d.first_alert,
    coalesce(d.alerts, [])            AS alerts,
    e.ended_at                        AS resolved_at,
    d.time_to_detect_minutes,
    e.duration_minutes                AS time_to_resolve_minutes,
    d.episode_id IS NOT NULL          AS detected,
    e.peak_burn_rate,
    e.ongoing
FROM episodes AS e
LEFT JOIN detections AS d USING (episode_id)
ORDER BY e.started_at, e.service
