-- slo_burn_episodes: when would the multi-window multi-burn-rate policy have fired?
-- Replays the policy in `alert_policy` (SRE Workbook: 1h/5m at 14.4x, 6h/30m at 6x, 1d/2h at 3x,
-- 3d/6h at 1x by default) over history, every minute, for every SLO. One row per episode: a run of
-- consecutive evaluations at which one window pair fired (its burn rate over both the long and
-- the short window above the threshold).
--
-- period                 'current' or 'previous' (by the episode's start)
-- slo_name, service      the SLO and its service
-- policy_name            which window pair, e.g. page_1h_5m
-- severity               the pair's severity (page or ticket)
-- long_window_minutes, short_window_minutes, burn_rate_threshold   the pair itself
-- started_at             first evaluation at which the pair fired
-- ended_at               first evaluation after that at which it no longer fired
-- duration_minutes       ended_at - started_at
-- evaluations            firing evaluations in the episode
-- peak_long_burn_rate    highest long-window burn rate during the episode
-- peak_short_burn_rate   highest short-window burn rate during the episode
-- ongoing                true when the pair still fired at the end of the report period
WITH period AS (
    SELECT * FROM report_period
),
burn AS MATERIALIZED (
    -- Only windows burning faster than the lowest threshold can fire: a few percent of them.
    SELECT * FROM slo_burning_windows
    WHERE window_minutes IN (SELECT long_window_minutes FROM alert_policy
                             UNION SELECT short_window_minutes FROM alert_policy)
      AND burn_rate > (SELECT min(burn_rate_threshold) FROM alert_policy)
),
firing_evaluations AS (
    SELECT long_.slo_name, long_.service, a.policy_name, a.severity,
           a.long_window_minutes, a.short_window_minutes, a.burn_rate_threshold,
           long_.evaluated_at,
           long_.burn_rate AS long_burn_rate,
           short_.burn_rate AS short_burn_rate
    FROM alert_policy AS a
    JOIN burn AS long_ ON long_.window_minutes = a.long_window_minutes
    JOIN burn AS short_
        ON short_.slo_name = long_.slo_name
       AND short_.evaluated_at = long_.evaluated_at
       AND short_.window_minutes = a.short_window_minutes
    WHERE long_.burn_rate > a.burn_rate_threshold
      AND short_.burn_rate > a.burn_rate_threshold
),
numbered AS (
    -- A new episode starts wherever the previous firing evaluation is not the minute before.
    SELECT *,
           sum(CASE WHEN previous_at = evaluated_at - INTERVAL 1 MINUTE THEN 0 ELSE 1 END)
               OVER (PARTITION BY slo_name, policy_name ORDER BY evaluated_at) AS episode_number
    FROM (
        SELECT *, lag(evaluated_at) OVER (PARTITION BY slo_name, policy_name ORDER BY evaluated_at) AS previous_at
        FROM firing_evaluations
    )
),
episodes AS (
    SELECT slo_name, service, policy_name, severity,
           long_window_minutes, short_window_minutes, burn_rate_threshold,
           min(evaluated_at) AS started_at,
           max(evaluated_at) + INTERVAL 1 MINUTE AS ended_at,
           count(*) AS evaluations,
           max(long_burn_rate) AS peak_long_burn_rate,
           max(short_burn_rate) AS peak_short_burn_rate
    FROM numbered
    GROUP BY slo_name, service, policy_name, severity,
             long_window_minutes, short_window_minutes, burn_rate_threshold, episode_number
)
SELECT
    CASE WHEN e.started_at >= p.period_start THEN 'current' ELSE 'previous' END AS period,
    e.slo_name,
    e.service,
    e.policy_name,
    e.severity,
    e.long_window_minutes,
    e.short_window_minutes,
    e.burn_rate_threshold,
    e.started_at,
    e.ended_at,
    (epoch_us(e.ended_at) - epoch_us(e.started_at)) / 60e6 AS duration_minutes,
    e.evaluations,
    e.peak_long_burn_rate,
    e.peak_short_burn_rate,
    e.ended_at > p.period_end AS ongoing
FROM episodes AS e, period AS p
WHERE e.started_at >= p.previous_start AND e.started_at < p.period_end
ORDER BY e.started_at, e.slo_name, e.policy_name
