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
-- There are no rows before the first minute with events of the report horizon (report_slo_events),
-- nor once every window is past the last one: those windows hold no events, and a period far wider
-- than the data would fill memory.
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
data_span AS (
    SELECT min(minute) AS first_minute, max(minute) AS last_minute FROM report_slo_events
),
bounds AS (
    -- The grid runs from a day before the previous period, less the longest window, to the period
    -- end; windows are evaluated from a day before the previous period. Minutes before the first
    -- event or after the last window holding one are left out (see the header).
    SELECT greatest(p.previous_start - INTERVAL 1 DAY
                      - to_minutes((SELECT max(window_minutes) FROM evaluation_windows)),
                    s.first_minute) AS grid_start,
           p.previous_start - INTERVAL 1 DAY AS evaluated_from,
           least(p.period_end,
                 s.last_minute + to_minutes(1 + (SELECT max(window_minutes) FROM evaluation_windows)))
               AS period_end
    FROM period AS p, data_span AS s
),
slos AS (
    SELECT *, row_number() OVER (ORDER BY slo_name) AS slo_number FROM slo_definitions
),
minute_grid AS (
    -- Minutes are numbered from the grid's start, so that a window's start is found by arithmetic.
    SELECT s.slo_number,
           unnest(range((epoch_us(b.period_end) - epoch_us(b.grid_start)) // 60000000))
               AS minute_number
    FROM slos AS s, bounds AS b
),
events AS (
    SELECT s.slo_number,
           (epoch_us(e.minute) - epoch_us(b.grid_start)) // 60000000 AS minute_number,
           e.good_events, e.bad_events, e.total_events
    FROM report_slo_events AS e
    JOIN slos AS s USING (slo_name)
    CROSS JOIN bounds AS b
    WHERE e.minute >= b.grid_start AND e.minute < b.period_end
),
running_totals AS MATERIALIZED (
    -- Events from the grid's start through the end of each minute.
    SELECT g.slo_number, g.minute_number,
           sum(coalesce(e.good_events, 0)) OVER through_minute AS good_through,
           sum(coalesce(e.bad_events, 0)) OVER through_minute AS bad_through,
           sum(coalesce(e.total_events, 0)) OVER through_minute AS total_through
    FROM minute_grid AS g
    LEFT JOIN events AS e USING (slo_number, minute_number)
    WINDOW through_minute AS (
        PARTITION BY g.slo_number ORDER BY g.minute_number ROWS UNBOUNDED PRECEDING
    )
),
windowed AS (
    -- Each window: events through its last minute less events through the minute before its first.
    SELECT now_.slo_number, now_.minute_number, w.window_minutes,
           now_.good_through - coalesce(before.good_through, 0) AS good_events,
           now_.bad_through - coalesce(before.bad_through, 0) AS bad_events,
           now_.total_through - coalesce(before.total_through, 0) AS total_events
    FROM running_totals AS now_
    CROSS JOIN evaluation_windows AS w
    LEFT JOIN running_totals AS before
        ON before.slo_number = now_.slo_number
       AND before.minute_number = now_.minute_number - w.window_minutes
    WHERE now_.minute_number
          >= (SELECT (epoch_us(evaluated_from) - epoch_us(grid_start)) // 60000000 FROM bounds)
)
SELECT s.slo_name, s.service,
       b.grid_start + to_minutes(w.minute_number + 1) AS evaluated_at,
       w.window_minutes, w.good_events, w.bad_events, w.total_events,
       CASE WHEN w.total_events > 0
            THEN w.bad_events / w.total_events / s.error_budget_target END AS burn_rate
FROM windowed AS w
JOIN slos AS s USING (slo_number)
CROSS JOIN bounds AS b
