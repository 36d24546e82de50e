-- incidents: every incident of the current and previous periods, when it was detected and resolved.
-- The ground truth is the incident records (postmortems, PagerDuty: the incident_records dataset,
-- sources.incidents) where a service has records starting in the period, and the SLO-impact
-- episodes (impact_episodes) where it has none: each service and period uses one basis, never
-- both, and `basis` says which. Summaries (MTTD, MTTR, alert recall) are in incident_summary.
--
-- Records: each run of the incidents source stores a snapshot; an incident's current version is
-- the newest one fetched, a postmortem's before PagerDuty's when they share an id (a postmortem
-- names a PagerDuty incident by giving its id). Postmortems count from the newest snapshot that
-- read the file, known by its commit (incident_record_sources) even when it found no rows, so a
-- row deleted from the file is gone at the next run, the last one too.
--
-- period                'current' or 'previous' (by the start)
-- service               the service that was impacted
-- basis                 'records' or 'impact episodes'
-- incident_id           the record's id (PagerDuty's, or the postmortem's), or the episode_id
-- episode_id            service@start for an impact episode; NULL for a record
-- source                'postmortems', 'pagerduty', or 'impact episodes'
-- title, severity       as the record has them; NULL for episodes
-- slo_names             the SLOs that were burning (episodes; empty for records)
-- started_at            start of impact (PagerDuty: created_at)
-- detected_at           records: as recorded (postmortem: detected_at; PagerDuty: created_at when
--                       an integration triggered it, else the first acknowledgement), episodes: the
--                       start of the first related alert firing; NULL when not detected
-- detection             how detected_at was set: 'postmortem', 'integration trigger', 'first
--                       acknowledge', 'alert' (episodes), NULL when not detected
-- first_alert           name of the first related alert firing of the same service
-- alerts                names of every related alert (firings of the same service overlapping the
--                       incident widened by match_tolerance_seconds, as in alert_impact_matches)
-- resolved_at           end of impact; NULL for a record still open
-- effective_end         resolved_at, or the end of the report period for an incident still open
-- time_to_detect_minutes   detected_at - started_at (floored at 0); NULL when undetected
-- time_to_resolve_minutes  resolved_at - started_at; NULL for a record still open (an ongoing
--                          episode counts to the end of the period, as its impact is measured)
-- detected              true when detected_at is known
-- alert_detected        true when an alert of ours related (what alert recall counts)
-- peak_burn_rate        highest burn rate of a stretch impacting the episode; NULL for records
-- ongoing               true when not resolved by the end of the report period
WITH periods AS (
    SELECT * FROM report_periods
),
postmortems_read AS (
    -- The hour of the newest snapshot that read the postmortems file, from its commit: one that
    -- found the file empty wrote no row, but its commit names the source all the same.
    SELECT max(span_start) AS snapshot_hour
    FROM incident_record_sources
    WHERE list_contains(string_split(source, ','), 'postmortems')
),
record_versions AS (
    SELECT r.*
    FROM incident_records AS r
    CROSS JOIN postmortems_read AS pm
    WHERE r.source <> 'postmortems'
       OR (r.fetched_at = (SELECT max(fetched_at) FROM incident_records
                           WHERE source = 'postmortems')
           -- and no later snapshot read the file (one whose commit the log still holds)
           AND r.fetched_at >= coalesce(pm.snapshot_hour, r.fetched_at))
    QUALIFY row_number() OVER (
        PARTITION BY incident_id ORDER BY source = 'postmortems' DESC, fetched_at DESC
    ) = 1
),
records AS MATERIALIZED (
    SELECT p.period, r.*,
           coalesce(r.resolved_at, greatest(rp.period_end, r.started_at)) AS effective_end
    FROM record_versions AS r
    JOIN periods AS p ON r.started_at >= p.starts_at AND r.started_at < p.ends_at
    CROSS JOIN report_period AS rp
),
record_alerts AS (
    SELECT r.incident_id,
           arg_min(f.alertname, f.starts_at) AS first_alert,
           list_sort(list(DISTINCT f.alertname)) AS alerts
    FROM records AS r
    JOIN alert_firings AS f ON f.service = r.service
    CROSS JOIN report_settings AS s
    WHERE overlaps_within(f.starts_at, f.effective_end, r.started_at, r.effective_end,
                          s.match_tolerance_seconds)
    GROUP BY r.incident_id
),
record_rows AS (
    SELECT
        r.period,
        r.service,
        'records'                                                     AS basis,
        r.incident_id,
        CAST(NULL AS VARCHAR)                                         AS episode_id,
        r.source,
        r.title,
        r.severity,
        CAST([] AS VARCHAR[])                                         AS slo_names,
        r.started_at,
        r.detected_at,
        r.detection,
        a.first_alert,
        coalesce(a.alerts, [])                                        AS alerts,
        r.resolved_at,
        r.effective_end,
        CASE WHEN r.detected_at IS NOT NULL  -- greatest() would skip the NULL and give 0
             THEN greatest(epoch_us(r.detected_at) - epoch_us(r.started_at), 0) / 60e6
        END                                                           AS time_to_detect_minutes,
        (epoch_us(r.resolved_at) - epoch_us(r.started_at)) / 60e6     AS time_to_resolve_minutes,
        r.detected_at IS NOT NULL                                     AS detected,
        a.incident_id IS NOT NULL                                     AS alert_detected,
        CAST(NULL AS DOUBLE)                                          AS peak_burn_rate,
        r.resolved_at IS NULL OR r.resolved_at >= rp.period_end       AS ongoing
    FROM records AS r
    LEFT JOIN record_alerts AS a USING (incident_id)
    CROSS JOIN report_period AS rp
),
episodes AS MATERIALIZED (
    SELECT e.*
    FROM impact_episodes AS e
    WHERE NOT EXISTS (
        SELECT 1 FROM records AS r WHERE r.period = e.period AND r.service = e.service
    )
),
episode_detections AS (
    SELECT episode_id,
           min(starts_at) AS detected_at,
           arg_min(alertname, starts_at) AS first_alert,
           list_sort(list(DISTINCT alertname)) AS alerts,
           min(detection_minutes) AS time_to_detect_minutes
    FROM alert_impact_matches
    GROUP BY episode_id
),
episode_rows AS (
    SELECT
        e.period,
        e.service,
        'impact episodes'                                             AS basis,
        e.episode_id                                                  AS incident_id,
        e.episode_id,
        'impact episodes'                                             AS source,
        CAST(NULL AS VARCHAR)                                         AS title,
        CAST(NULL AS VARCHAR)                                         AS severity,
        e.slo_names,
        e.started_at,
        d.detected_at,
        CASE WHEN d.episode_id IS NOT NULL THEN 'alert' END           AS detection,
        d.first_alert,
        coalesce(d.alerts, [])                                        AS alerts,
        e.ended_at                                                    AS resolved_at,
        e.ended_at                                                    AS effective_end,
        d.time_to_detect_minutes,
        e.duration_minutes                                            AS time_to_resolve_minutes,
        d.episode_id IS NOT NULL                                      AS detected,
        d.episode_id IS NOT NULL                                      AS alert_detected,
        e.peak_burn_rate,
        e.ongoing
    FROM episodes AS e
    LEFT JOIN episode_detections AS d USING (episode_id)
)
SELECT * FROM record_rows
UNION ALL BY NAME
SELECT * FROM episode_rows
ORDER BY started_at, service, incident_id
