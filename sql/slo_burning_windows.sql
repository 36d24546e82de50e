-- slo_burning_windows: the windows of slo_burn_rates that burn fast enough for a report to test
-- them. Of the alert policy's window lengths, those burning faster than the policy's lowest
-- threshold (slo_burn_episodes' candidates); of the impact windows' lengths, those holding at
-- least the bad events the lowest impact threshold needs (impact_episodes' candidates). About
-- 7 % of all windows on the bench's history: a report session keeps these rather than every
-- window of every minute (155 M windows for a quarter's report of 150 SLOs).
--
-- Columns: as slo_burn_rates.
WITH floors AS (
    SELECT (SELECT min(burn_rate_threshold) FROM alert_policy) AS policy_floor,
           (SELECT min(burn_rate_threshold) FROM impact_windows) AS impact_floor
)
SELECT r.*
FROM slo_burn_rates AS r
JOIN slo_definitions AS d USING (slo_name)
CROSS JOIN floors AS f
WHERE (r.window_minutes IN (SELECT long_window_minutes FROM alert_policy
                            UNION SELECT short_window_minutes FROM alert_policy)
       AND r.burn_rate > f.policy_floor)
   OR (r.window_minutes IN (SELECT window_minutes FROM impact_windows)
       AND r.total_events > 0
       AND r.bad_events >= f.impact_floor * r.total_events * d.error_budget_target)
