-- alert_policy_backtest: would the SLO burn-rate policy have paged when our alerts did?
-- Sets every replayed burn-rate episode (slo_burn_episodes) beside the alerts that actually fired
-- for the same service (alert_firings), and lists actual alerting of SLO-owning services that no
-- policy episode would have matched. Related = overlapping once widened by
-- `match_tolerance_seconds` (report_settings) on both sides.
--
-- row_kind              'policy and alerts' (both fired), 'policy only' (the policy would have
--                       fired, no alert did), 'alerts only' (alerts fired, the policy would not have)
-- period                'current' or 'previous' (by the start of the episode or alert span; a span
--                       of alerts already firing when the previous period began is 'previous')
-- service               the service
-- slo_name, policy_name, severity   the SLO and window pair (NULL on 'alerts only' rows)
-- policy_started_at, policy_ended_at   the replayed episode
-- peak_long_burn_rate   highest long-window burn rate in the episode
-- alert_started_at      start of the first related actual firing (or of the alert span)
-- alert_ended_at        end of the last related actual firing
-- alertnames            names of the related actual alerts
-- alert_overlap_minutes time both the policy and an actual alert were firing
-- lead_minutes          alert_started_at - policy_started_at: positive when the actual alerts
--                       fired after the policy would have (the policy leads), negative when before
-- end_lag_minutes       alert_ended_at - policy_ended_at: positive when actual alerts kept firing
--                       after the policy would have resolved
WITH settings AS (
    SELECT match_tolerance_seconds FROM report_settings
),
firings AS MATERIALIZED (
    SELECT * FROM alert_firings WHERE service IS NOT NULL
),
burn_episodes AS MATERIALIZED (
    SELECT * FROM slo_burn_episodes
),
span_starts AS (
    SELECT *,
           CASE WHEN starts_at <= max(effective_end) OVER (
                    PARTITION BY service ORDER BY starts_at, effective_end
                    ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
                THEN 0 ELSE 1 END AS new_span
    FROM firings
),
alert_spans AS (
    -- Actual alerting per service as disjoint spans (overlapping firings merged, across the
    -- period boundary too), each in the period it started in, or 'previous' when it was already
    -- alerting as that began.
    SELECT a.*,
           CASE WHEN a.span_start >= p.period_start THEN 'current' ELSE 'previous' END AS period
    FROM (
        SELECT service, span_number,
               min(starts_at) AS span_start, max(effective_end) AS span_end,
               list_sort(list(DISTINCT alertname)) AS alertnames
        FROM (
            SELECT *, sum(new_span) OVER (PARTITION BY service ORDER BY starts_at, effective_end) AS span_number
            FROM span_starts
        )
        GROUP BY service, span_number
    ) AS a
    CROSS JOIN report_period AS p
),
policy_vs_alerts AS (
    SELECT e.period, e.service, e.slo_name, e.policy_name, e.severity,
           e.started_at AS policy_started_at, e.ended_at AS policy_ended_at, e.peak_long_burn_rate,
           min(f.starts_at) AS alert_started_at,
           max(f.effective_end) AS alert_ended_at,
           list_sort(list(DISTINCT f.alertname) FILTER (WHERE f.alertname IS NOT NULL)) AS alertnames
    FROM burn_episodes AS e
    CROSS JOIN settings AS s
    LEFT JOIN firings AS f
        ON f.service = e.service
       AND overlaps_within(f.starts_at, f.effective_end, e.started_at, e.ended_at,
                           s.match_tolerance_seconds)
    GROUP BY ALL
),
policy_overlap AS (
    SELECT e.slo_name, e.policy_name, e.started_at,
           sum(greatest(
               epoch_us(least(a.span_end, e.ended_at))
               - epoch_us(greatest(a.span_start, e.started_at)), 0
           )) / 60e6 AS alert_overlap_minutes
    FROM burn_episodes AS e
    JOIN alert_spans AS a ON a.service = e.service
    GROUP BY ALL
),
alerts_without_policy AS (
    SELECT a.*
    FROM alert_spans AS a
    CROSS JOIN settings AS s
    WHERE a.service IN (SELECT service FROM slo_definitions)
      AND NOT EXISTS (
          SELECT 1 FROM burn_episodes AS e
          WHERE e.service = a.service
            AND overlaps_within(a.span_start, a.span_end, e.started_at, e.ended_at,
                                s.match_tolerance_seconds)
      )
)
SELECT
    CASE WHEN p.alert_started_at IS NULL THEN 'policy only' ELSE 'policy and alerts' END AS row_kind,
    p.period,
    p.service,
    p.slo_name,
    p.policy_name,
    p.severity,
    p.policy_started_at,
    p.policy_ended_at,
    p.peak_long_burn_rate,
    p.alert_started_at,
    p.alert_ended_at,
    coalesce(p.alertnames, [])                                               AS alertnames,
    coalesce(o.alert_overlap_minutes, 0)                                     AS alert_overlap_minutes,
    (epoch_us(p.alert_started_at) - epoch_us(p.policy_started_at)) / 60e6    AS lead_minutes,
    (epoch_us(p.alert_ended_at) - epoch_us(p.policy_ended_at)) / 60e6        AS end_lag_minutes
FROM policy_vs_alerts AS p
LEFT JOIN policy_overlap AS o
    ON o.slo_name = p.slo_name AND o.policy_name = p.policy_name AND o.started_at = p.policy_started_at
UNION ALL
SELECT
    'alerts only', a.period, a.service, NULL, NULL, NULL, NULL, NULL, NULL,
    a.span_start, a.span_end, a.alertnames, 0, NULL, NULL
FROM alerts_without_policy AS a
ORDER BY 2, 7 NULLS LAST, 10
