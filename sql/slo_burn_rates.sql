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
-- than the data would fill memory. Each window is the difference of two of slo_running_totals'
-- totals: the totals through its last minute less the totals through the minute before its first.
WITH windowed AS (
    SELECT now_.slo_number, now_.through AS evaluated_at, w.window_minutes,
           now_.good_through - coalesce(before.good_through, 0) AS good_events,
           now_.bad_through - coalesce(before.bad_through, 0) AS bad_events,
           now_.total_through - coalesce(before.total_through, 0) AS total_events
    FROM slo_running_totals AS now_
    CROSS JOIN burn_rate_windows AS w
    LEFT JOIN slo_running_totals AS before
        ON before.slo_number = now_.slo_number
       AND before.minute_number = now_.minute_number - w.window_minutes
    WHERE now_.evaluated
)
SELECT s.slo_name, s.service, w.evaluated_at, w.window_minutes,
       w.good_events, w.bad_events, w.total_events,
       CASE WHEN w.total_events > 0
            THEN w.bad_events / w.total_events / s.error_budget_target END AS burn_rate
FROM windowed AS w
JOIN slo_definitions AS s USING (slo_number)
