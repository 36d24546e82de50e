-- slo_compliance: is each SLO met, and how much of its error budget is left?
-- One row per SLO, per UTC day of the report period (scope 'day': that day alone) and per day-end
-- over the SLO's own window (scope 'rolling': the SLO window ending at that day's end, or at the
-- period end for the last day). The rolling row of the last day is the SLO's status at the end of
-- the report period; the rolling rows together are its error-budget burn-down.
-- Column names follow google/slo-generator's report where they fit.
--
-- slo_name                        the SLO (obs.yaml `slos`)
-- service, sli_type               its service and SLI type (ratio, latency, threshold)
-- scope                           'day' or 'rolling' (see above)
-- window_start, window_end        the measured window [start, end), UTC
-- window_minutes                  its length in minutes
-- good_events_count               good events in the window (exact; see slo_events)
-- bad_events_count                bad events in the window
-- events_count                    all events in the window
-- sli_measurement                 good_events_count / events_count
-- slo_target                      the objective, e.g. 0.999
-- gap                             sli_measurement - slo_target (negative: the SLO is missed)
-- error_budget_target             1 - slo_target: the share of events allowed to be bad
-- error_budget_measurement        1 - sli_measurement: the share that was bad
-- error_budget_burn_rate          error_budget_measurement / error_budget_target
-- error_budget_consumed           share of the window's error budget spent (= the burn rate over the window)
-- error_budget_remaining          1 - error_budget_consumed (negative once the SLO is breached)
-- error_budget_target_minutes     the window's budget in minutes (window_minutes x error_budget_target)
-- error_budget_minutes            budget minutes spent (window_minutes x error_budget_measurement)
-- error_budget_remaining_minutes  error_budget_target_minutes - error_budget_minutes
-- data_coverage                   share of the window's minutes that hold events (1 = no gaps)
-- uncertain_events_count          threshold SLIs whose raw samples aged out: samples of rollup
--                                 buckets partly within the bounds (counted in events_count,
--                                 not as good: the SLI is then a lower bound)
-- resolution                      where the window's events came from: 'raw', or the coarsest
--                                 rollup that any of its minutes came from ('5m', '1h')
-- status                          'breached' (SLI below target), 'critical' (>= 90% of the budget
--                                 consumed), 'warning' (>= 50%), 'ok', or 'no data'
WITH period AS (
    SELECT * FROM report_period
),
report_days AS (
    SELECT unnest(generate_series(
        date_trunc('day', period_start), period_end - INTERVAL 1 MICROSECOND, INTERVAL 1 DAY
    )) AS day
    FROM period
),
measured_windows AS (
    SELECT d.slo_name, 'day' AS scope,
           greatest(r.day, p.period_start) AS window_start,
           least(r.day + INTERVAL 1 DAY, p.period_end) AS window_end
    FROM slo_definitions AS d, report_days AS r, period AS p
    UNION ALL
    SELECT d.slo_name, 'rolling' AS scope,
           least(r.day + INTERVAL 1 DAY, p.period_end) - to_minutes(d.window_minutes) AS window_start,
           least(r.day + INTERVAL 1 DAY, p.period_end) AS window_end
    FROM slo_definitions AS d, report_days AS r, period AS p
),
day_events AS MATERIALIZED (
    -- Each SLO's events per UTC day, summed once: a window takes its whole days from here and
    -- only the minutes of its first and last day from report_slo_events (a quarter's 90 rolling
    -- 30-day windows per SLO would otherwise each read 43,200 minutes).
    SELECT slo_name, date_trunc('day', minute) AS day,
           sum(good_events) AS good_events,
           sum(bad_events) AS bad_events,
           sum(total_events) AS total_events,
           count(*) FILTER (WHERE total_events > 0) AS minutes_with_events,
           count(*) AS minutes,
           sum(uncertain_events) AS uncertain_events,
           bool_or(resolution = '1h') AS from_1h,
           bool_or(resolution = '5m') AS from_5m
    FROM report_slo_events
    GROUP BY ALL
),
window_days AS (
    SELECT *, date_trunc('day', window_start) AS first_day,
           date_trunc('day', window_end - INTERVAL 1 MICROSECOND) AS last_day
    FROM measured_windows
),
window_edges AS (
    -- A window's first and last day (one when they are the same): the days it may not cover whole.
    SELECT DISTINCT slo_name, scope, window_start, window_end, unnest([first_day, last_day]) AS day
    FROM window_days
),
window_parts AS (
    -- A window's events in disjoint parts: the minutes of its first and last day, one by one,
    -- and the whole days between them.
    SELECT w.slo_name, w.scope, w.window_start, w.window_end,
           e.good_events, e.bad_events, e.total_events,
           CASE WHEN e.total_events > 0 THEN 1 ELSE 0 END AS minutes_with_events,
           1 AS minutes, e.uncertain_events,
           e.resolution = '1h' AS from_1h, e.resolution = '5m' AS from_5m
    FROM window_edges AS w
    JOIN report_slo_events AS e
        ON e.slo_name = w.slo_name AND date_trunc('day', e.minute) = w.day
    WHERE e.minute >= w.window_start AND e.minute < w.window_end
    UNION ALL
    SELECT w.slo_name, w.scope, w.window_start, w.window_end,
           d.good_events, d.bad_events, d.total_events, d.minutes_with_events,
           d.minutes, d.uncertain_events, d.from_1h, d.from_5m
    FROM window_days AS w
    JOIN day_events AS d
        ON d.slo_name = w.slo_name AND d.day > w.first_day AND d.day < w.last_day
),
window_events AS (
    SELECT w.slo_name, w.scope, w.window_start, w.window_end,
           coalesce(sum(e.good_events), 0) AS good_events_count,
           coalesce(sum(e.bad_events), 0) AS bad_events_count,
           coalesce(sum(e.total_events), 0) AS events_count,
           coalesce(sum(e.minutes_with_events), 0) AS minutes_with_events,
           coalesce(sum(e.uncertain_events), 0) AS uncertain_events_count,
           CASE WHEN bool_or(e.from_1h) THEN '1h'
                WHEN bool_or(e.from_5m) THEN '5m'
                WHEN sum(e.minutes) > 0 THEN 'raw' END AS resolution
    FROM measured_windows AS w
    LEFT JOIN window_parts AS e USING (slo_name, scope, window_start, window_end)
    GROUP BY ALL
),
measured AS (
    SELECT e.*, d.service, d.sli_type, d.slo_target, d.error_budget_target,
           (epoch_us(e.window_end) - epoch_us(e.window_start)) / 60e6 AS window_minutes,
           CASE WHEN e.events_count > 0 THEN e.good_events_count / e.events_count END AS sli_measurement
    FROM window_events AS e
    JOIN slo_definitions AS d USING (slo_name)
),
budget AS (
    -- The share not good, from the counts (one rounding): 1 - sli_measurement rounds twice, and
    -- an SLI exactly at its objective came out a hair over budget, half the budget a hair under.
    SELECT m.*,
           CASE WHEN m.events_count > 0
                THEN (m.events_count - m.good_events_count) / m.events_count END
               AS error_budget_measurement,
           CASE WHEN m.events_count > 0
                THEN (m.events_count - m.good_events_count) / m.events_count / m.error_budget_target
           END AS error_budget_burn_rate
    FROM measured AS m
)
SELECT
    b.slo_name,
    b.service,
    b.sli_type,
    b.scope,
    b.window_start,
    b.window_end,
    b.window_minutes,
    b.good_events_count,
    b.bad_events_count,
    b.events_count,
    b.sli_measurement,
    b.slo_target,
    b.sli_measurement - b.slo_target                                AS gap,
    b.error_budget_target,
    b.error_budget_measurement,
    b.error_budget_burn_rate,
    b.error_budget_burn_rate                                        AS error_budget_consumed,
    1 - b.error_budget_burn_rate                                    AS error_budget_remaining,
    b.window_minutes * b.error_budget_target                        AS error_budget_target_minutes,
    b.window_minutes * b.error_budget_measurement                   AS error_budget_minutes,
    b.window_minutes * (b.error_budget_target - b.error_budget_measurement)
                                                                    AS error_budget_remaining_minutes,
    b.minutes_with_events / b.window_minutes                        AS data_coverage,
    b.uncertain_events_count,
    b.resolution,
    CASE
        WHEN b.events_count = 0 THEN 'no data'
        WHEN b.sli_measurement < b.slo_target THEN 'breached'
        WHEN b.error_budget_burn_rate >= s.budget_critical THEN 'critical'
        WHEN b.error_budget_burn_rate >= s.budget_warning THEN 'warning'
        ELSE 'ok'
    END                                                             AS status
FROM budget AS b, report_settings AS s
ORDER BY b.slo_name, b.scope, b.window_end
