-- slo_burn_rates: how fast each SLO burns its error budget, evaluated every minute.
-- Answers "what was the burn rate of this SLO over the last N minutes, at this moment?" for every
-- window length the burn-rate alert policy and the impact definition use (plus 1 minute), over the
-- current and previous report periods (from a day before the previous period, so that episodes
-- crossing its start are whole).
--
-- slo_name         the SLO (obs.yaml `slos`)
-- service          the service the SLO belongs to
-- evaluated_at     the evaluation moment; a minute boundary. The window is [evaluated_at - window, evaluated_at)
-- window_minutes   length of the window
-- good_events      good events in the window (exact, from slo_events)
-- bad_events       bad events in the window
-- total_events     all events in the window
-- burn_rate        (bad_events / total_events) / error_budget_target: 1 spends the budget exactly
--                  over the SLO window; NULL when the window holds no events
--
-- Evaluations run on a gapless minute grid (minutes without data count zero events), and the
-- windows near the start of the horizon are partial (they see only the data the horizon holds).
WITH period AS (
    SELECT * FROM report_period
),
evaluation_windows AS (
    SELECT long_window_minutes AS window_minutes FROM alert_policy
    UNION
    SELECT short_window_minutes FROM alert_policy
    UNION
    SELECT window_minutes FROM impact_windows
    UNION
    SELECT 1
),
minute_grid AS (
    -- From a day before the previous period, less the longest window, to the period end.
    SELECT d.slo_name, d.service, d.error_budget_target,
           unnest(generate_series(
               p.previous_start - INTERVAL 1 DAY
                 - to_minutes((SELECT max(window_minutes) FROM evaluation_windows)),
               p.period_end - INTERVAL 1 MINUTE,
               INTERVAL 1 MINUTE
           )) AS minute
    FROM slo_definitions AS d, period AS p
),
running_totals AS MATERIALIZED (
    -- Events from the grid's start through the end of each minute.
    SELECT g.slo_name, g.service, g.error_budget_target, g.minute,
           sum(coalesce(e.good_events, 0)) OVER through_minute AS good_through,
           sum(coalesce(e.bad_events, 0)) OVER through_minute AS bad_through,
           sum(coalesce(e.total_events, 0)) OVER through_minute AS total_through
    FROM minute_grid AS g
    LEFT JOIN slo_events AS e ON e.slo_name = g.slo_name AND e.minute = g.minute
    WINDOW through_minute AS (PARTITION BY g.slo_name ORDER BY g.minute ROWS UNBOUNDED PRECEDING)
),
windowed AS (
    SELECT now_.slo_name, now_.service, now_.error_budget_target,
           now_.minute + INTERVAL 1 MINUTE AS evaluated_at,
           w.window_minutes,
           now_.good_through - coalesce(before.good_through, 0) AS good_events,
           now_.bad_through - coalesce(before.bad_through, 0) AS bad_events,
           now_.total_through - coalesce(before.total_through, 0) AS total_events
    FROM running_totals AS now_
    CROSS JOIN evaluation_windows AS w
    LEFT JOIN running_totals AS before
        ON before.slo_name = now_.slo_name
       AND before.minute = now_.minute - to_minutes(w.window_minutes)
    WHERE now_.minute >= (SELECT previous_start FROM period) - INTERVAL 1 DAY
)
SELECT slo_name, service, evaluated_at, window_minutes, good_events, bad_events, total_events,
       CASE WHEN total_events > 0
            THEN bad_events / total_events / error_budget_target END AS burn_rate
FROM windowed
