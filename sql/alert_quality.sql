-- alert_quality: are our alerts worth waking up for? (the seed's "alert noise ratio")
-- Measured against real impact, with the SRE Workbook's "Alerting on SLOs" vocabulary: a firing
-- is useful when an SLO-impact episode (impact_episodes) or an incident record of its service
-- (incidents) overlaps it, so an outage the SLOs cannot see but a postmortem records is no noise;
-- recall counts incidents (see incidents): incident records where a service has them in the
-- period, impact episodes where it has none. One row per period and alert name that fired in the
-- period (see alert_firings), plus one row per period for all alerts together (alertname NULL,
-- scope 'all alerts').
--
-- period                 'current' or 'previous'
-- scope                  'alert' or 'all alerts'
-- alertname              the alert (NULL on the 'all alerts' row)
-- services               the services named by its firings that fired in the period (empty when
--                        unmapped)
-- firings                firings that started in the period (an alert has a row in every period
--                        it fired in: 0 when all its firings there had started before it; one
--                        started before the previous period is counted in neither)
-- unmapped_firings       of those, firings with no service label (reported, never dropped; they
--                        cannot match an episode, so they count as noise)
-- firing_minutes         total time firing inside the period, whatever period each firing
--                        started in: the sum of each firing's overlap with the period (a firing
--                        resolved after the period end, or still firing, counts to the period end;
--                        see alert_firings)
-- transient_firings      of the firings, those resolved within `transient_alert_seconds`
-- transient_share        transient_firings / firings
-- flapping               true when any of its alerts flapped in the period (see alert_flapping)
-- flapping_minutes       checks at which one of its alerts was in the flapping state
-- flap_starts            times one of its alerts entered the flapping state
-- max_state_change_pct   highest Nagios state-change percentage seen
-- matched_firings        of the firings, those related to an impact episode (alert_impact_matches)
--                        or an incident of their service (incident_alert_matches), in any period
-- precision              matched_firings / firings
-- noise_ratio            1 - precision: the share of firings that matched no impact episode and
--                        no incident (false positives)
-- impact_episodes        incidents in the period of the services named by this alert's firings
--                        that fired in the period (all incidents on the 'all alerts' row):
--                        records where the service has them, else episodes
-- detected_episodes      of those, incidents this alert (any alert) was related to
--                        (incident_alert_matches)
-- recall                 detected_episodes / impact_episodes
-- basis                  what those incidents are: 'records', 'impact episodes', or 'records and
--                        impact episodes' when mixed; NULL when there were none
-- mean_detection_minutes mean over detected episodes of the time from impact start to the alert's
--                        first related firing (floored at 0)
-- mean_reset_minutes     mean over detected episodes of the time from impact end to the end of the
--                        alert's last related firing (negative: resolved before the impact ended)
WITH matches AS MATERIALIZED (
    SELECT * FROM alert_impact_matches
),
episodes AS MATERIALIZED (
    SELECT period, service, incident_id AS episode_id, basis FROM incidents
),
incident_matches AS MATERIALIZED (
    SELECT * FROM incident_alert_matches
),
flap_checks AS MATERIALIZED (
    SELECT * FROM alert_flapping
),
firing_outcomes AS (
    SELECT f.*, m.firing_id IS NOT NULL AS matched
    FROM alert_firings AS f
    LEFT JOIN (
        SELECT firing_id FROM matches
        UNION
        SELECT firing_id FROM incident_matches
    ) AS m USING (firing_id)
),
flap_summary AS (
    SELECT period, alertname,
           bool_or(flapping) AS flapping,
           count(*) FILTER (WHERE flapping) AS flapping_minutes,
           max(state_change_pct) AS max_state_change_pct
    FROM flap_checks
    GROUP BY period, alertname
),
flap_starts AS (
    SELECT period, alertname, count(*) AS flap_starts
    FROM (
        SELECT *, lag(flapping) OVER (PARTITION BY fingerprint ORDER BY evaluated_at) AS was_flapping
        FROM flap_checks
    )
    WHERE flapping AND NOT coalesce(was_flapping, false)
    GROUP BY period, alertname
),
period_firings AS (
    -- Each firing in every period it started or fired in: it is one of the firings of the period
    -- it started in, and its time firing inside each period counts there.
    SELECT * FROM (
        SELECT r.period, f.* EXCLUDE (period),
               coalesce(f.period = r.period, false) AS started_in_period,
               CASE r.period WHEN 'current' THEN f.current_minutes ELSE f.previous_minutes END
                   AS minutes_in_period
        FROM firing_outcomes AS f
        CROSS JOIN report_periods AS r
    )
    WHERE started_in_period OR minutes_in_period > 0
),
firing_summary AS (
    SELECT period, alertname,
           coalesce(list_sort(list(DISTINCT service) FILTER (WHERE service IS NOT NULL)), []) AS services,
           count(*) FILTER (WHERE started_in_period) AS firings,
           count(*) FILTER (WHERE started_in_period AND NOT mapped) AS unmapped_firings,
           sum(minutes_in_period) AS firing_minutes,
           count(*) FILTER (WHERE started_in_period AND transient) AS transient_firings,
           count(*) FILTER (WHERE started_in_period AND matched) AS matched_firings
    FROM period_firings
    GROUP BY period, alertname
),
alert_episodes AS (
    -- Each alert is judged on the episodes of the services it names.
    SELECT s.period, s.alertname, e.episode_id, e.basis
    FROM firing_summary AS s
    JOIN episodes AS e ON e.period = s.period AND list_contains(s.services, e.service)
),
alert_detections AS (
    SELECT incident_period AS period, alertname, incident_id AS episode_id,
           min(detection_minutes) AS detection_minutes,
           max(reset_minutes) AS reset_minutes
    FROM incident_matches
    GROUP BY ALL
),
alert_recall AS (
    SELECT a.period, a.alertname,
           count(*) AS impact_episodes,
           count(d.episode_id) AS detected_episodes,
           avg(d.detection_minutes) AS mean_detection_minutes,
           avg(d.reset_minutes) AS mean_reset_minutes,
           CASE WHEN count(DISTINCT a.basis) > 1 THEN 'records and impact episodes'
                ELSE any_value(a.basis) END AS basis
    FROM alert_episodes AS a
    LEFT JOIN alert_detections AS d USING (period, alertname, episode_id)
    GROUP BY a.period, a.alertname
),
per_alert AS (
    SELECT
        s.period,
        'alert' AS scope,
        s.alertname,
        s.services,
        s.firings,
        s.unmapped_firings,
        s.firing_minutes,
        s.transient_firings,
        coalesce(f.flapping, false) AS flapping,
        coalesce(f.flapping_minutes, 0) AS flapping_minutes,
        coalesce(fs.flap_starts, 0) AS flap_starts,
        f.max_state_change_pct,
        s.matched_firings,
        coalesce(r.impact_episodes, 0) AS impact_episodes,
        coalesce(r.detected_episodes, 0) AS detected_episodes,
        r.mean_detection_minutes,
        r.mean_reset_minutes,
        r.basis
    FROM firing_summary AS s
    LEFT JOIN flap_summary AS f USING (period, alertname)
    LEFT JOIN flap_starts AS fs USING (period, alertname)
    LEFT JOIN alert_recall AS r USING (period, alertname)
),
episode_detections AS (
    SELECT incident_period AS period, incident_id AS episode_id,
           min(detection_minutes) AS detection_minutes,
           max(reset_minutes) AS reset_minutes
    FROM incident_matches
    GROUP BY ALL
),
overall_recall AS (
    SELECT p.period,
           count(e.episode_id) AS impact_episodes,
           count(d.episode_id) AS detected_episodes,
           avg(d.detection_minutes) AS mean_detection_minutes,
           avg(d.reset_minutes) AS mean_reset_minutes,
           CASE WHEN count(DISTINCT e.basis) > 1 THEN 'records and impact episodes'
                ELSE any_value(e.basis) END AS basis
    FROM report_periods AS p
    LEFT JOIN episodes AS e ON e.period = p.period
    LEFT JOIN episode_detections AS d ON d.period = e.period AND d.episode_id = e.episode_id
    GROUP BY p.period
),
overall AS (
    SELECT
        r.period,
        'all alerts' AS scope,
        CAST(NULL AS VARCHAR) AS alertname,
        coalesce(list_sort(list_distinct(flatten(list(a.services)))), []) AS services,
        coalesce(sum(a.firings), 0) AS firings,
        coalesce(sum(a.unmapped_firings), 0) AS unmapped_firings,
        coalesce(sum(a.firing_minutes), 0) AS firing_minutes,
        coalesce(sum(a.transient_firings), 0) AS transient_firings,
        coalesce(bool_or(a.flapping), false) AS flapping,
        coalesce(sum(a.flapping_minutes), 0) AS flapping_minutes,
        coalesce(sum(a.flap_starts), 0) AS flap_starts,
        max(a.max_state_change_pct) AS max_state_change_pct,
        coalesce(sum(a.matched_firings), 0) AS matched_firings,
        r.impact_episodes,
        r.detected_episodes,
        r.mean_detection_minutes,
        r.mean_reset_minutes,
        r.basis
    FROM overall_recall AS r
    LEFT JOIN per_alert AS a USING (period)
    GROUP BY r.period, r.impact_episodes, r.detected_episodes, r.mean_detection_minutes,
             r.mean_reset_minutes, r.basis
),
combined AS (
    SELECT * FROM per_alert
    UNION ALL BY NAME
    SELECT * FROM overall
)
SELECT
    period,
    scope,
    alertname,
    services,
    firings,
    unmapped_firings,
    firing_minutes,
    transient_firings,
    CASE WHEN firings > 0 THEN transient_firings / firings END            AS transient_share,
    flapping,
    flapping_minutes,
    flap_starts,
    max_state_change_pct,
    matched_firings,
    CASE WHEN firings > 0 THEN matched_firings / firings END              AS precision,
    CASE WHEN firings > 0 THEN 1 - matched_firings / firings END          AS noise_ratio,
    impact_episodes,
    detected_episodes,
    CASE WHEN impact_episodes > 0 THEN detected_episodes / impact_episodes END AS recall,
    mean_detection_minutes,
    mean_reset_minutes,
    basis
FROM combined
ORDER BY period, scope DESC, alertname
