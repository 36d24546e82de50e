-- slo_running_totals: every SLO's events counted from the start of the burn-rate grid through
-- each minute, on a gapless minute grid. slo_burn_rates computes each of its windows as the
-- difference of two of these (the totals through its last minute, less the totals through the
-- minute before its first), so a report session keeps this table and computes the windows it
-- needs from it, instead of keeping every window of every minute.
--
-- slo_number       the SLO's number in slo_definitions (1, 2, ... by slo_name)
-- minute_number    minutes since the grid's start (0, 1, ...)
-- through          the end of the minute (its start + 1 minute)
-- evaluated        true from a day before the previous report period on: the minutes
--                  slo_burn_rates evaluates (the earlier ones only begin its windows)
-- good_through, bad_through, total_through   events from the grid's start through the minute
--
-- The grid runs from a day before the previous period, less the longest window
-- (burn_rate_windows), to the period end. Minutes before the first event of the report horizon
-- (report_slo_events), or after the last window holding one, are left out: those windows hold
-- no events, and a period far wider than the data would fill memory.
WITH period AS (
    SELECT * FROM report_period
),
data_span AS (
    SELECT min(minute) AS first_minute, max(minute) AS last_minute FROM report_slo_events
),
bounds AS (
    SELECT greatest(p.previous_start - INTERVAL 1 DAY
                      - to_minutes((SELECT max(window_minutes) FROM burn_rate_windows)),
                    s.first_minute) AS grid_start,
           p.previous_start - INTERVAL 1 DAY AS evaluated_from,
           least(p.period_end,
                 s.last_minute + to_minutes(1 + (SELECT max(window_minutes) FROM burn_rate_windows)))
               AS grid_end
    FROM period AS p, data_span AS s
),
minute_grid AS (
    -- Minutes are numbered from the grid's start, so that a window's start is found by arithmetic.
    SELECT s.slo_number,
           unnest(range((epoch_us(b.grid_end) - epoch_us(b.grid_start)) // 60000000))
               AS minute_number
    FROM slo_definitions AS s, bounds AS b
),
events AS (
    SELECT s.slo_number,
           (epoch_us(e.minute) - epoch_us(b.grid_start)) // 60000000 AS minute_number,
           e.good_events, e.bad_events, e.total_events
    FROM report_slo_events AS e
    JOIN slo_definitions AS s USING (slo_name)
    CROSS JOIN bounds AS b
    WHERE e.minute >= b.grid_start AND e.minute < b.grid_end
)
SELECT g.slo_number, g.minute_number,
       b.grid_start + to_minutes(g.minute_number + 1) AS through,
       g.minute_number >= (epoch_us(b.evaluated_from) - epoch_us(b.grid_start)) // 60000000
           AS evaluated,
       sum(coalesce(e.good_events, 0)) OVER through_minute AS good_through,
       sum(coalesce(e.bad_events, 0)) OVER through_minute AS bad_through,
       sum(coalesce(e.total_events, 0)) OVER through_minute AS total_through
FROM minute_grid AS g
LEFT JOIN events AS e USING (slo_number, minute_number)
CROSS JOIN bounds AS b
WINDOW through_minute AS (
    PARTITION BY g.slo_number ORDER BY g.minute_number ROWS UNBOUNDED PRECEDING
)
