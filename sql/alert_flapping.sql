-- alert_flapping: Nagios-style flap detection on every alert, minute by minute.
-- Each alert (fingerprint) is checked every minute: firing or not. Its state-change percentage is
-- Nagios's: over the last 21 states (20 possible changes), each change weighted from 0.75 (oldest)
-- to 1.25 (newest), as a percentage of 20. An alert starts flapping when the percentage reaches
-- `flap_high_threshold` and stops when it falls to `flap_low_threshold` (report_settings). Only the
-- minutes of the two periods around firings are listed (from 20 minutes before each firing of
-- alert_firings, one already firing when the previous period began included, to 20 minutes after
-- it); every other minute has no state change in its history, so a percentage of 0.
--
-- fingerprint, alertname   the alert
-- period                   'current' or 'previous'
-- evaluated_at             the check (a minute boundary)
-- firing                   true when the alert was firing at evaluated_at
-- state_changed            true when the state differs from the check a minute before
-- state_change_pct         the weighted state-change percentage over the last 21 checks
-- flapping                 the flap state after this check (with the thresholds' hysteresis)
WITH period AS (
    SELECT * FROM report_period
),
bounds AS (
    -- Checks are listed from 40 minutes before the previous period to the period end, not over
    -- the whole of a firing that began long before: one cut here fires from 20 minutes later at
    -- the latest into the previous period, so from then on its 20-check history holds no change,
    -- cut or not, and its 0% resets the flap state (no low threshold is below 0). Checks after
    -- the period end change no earlier one.
    SELECT date_trunc('minute', previous_start) - INTERVAL 40 MINUTE AS first_check,
           period_end AS last_check
    FROM period
),
firing_checks AS (
    -- Checks at which a firing was active: starts_at <= check < effective_end.
    SELECT DISTINCT f.fingerprint,
           unnest(generate_series(
               greatest(date_trunc('minute', f.starts_at - INTERVAL 1 MICROSECOND) + INTERVAL 1 MINUTE,
                        b.first_check),
               least(date_trunc('minute', f.effective_end - INTERVAL 1 MICROSECOND), b.last_check),
               INTERVAL 1 MINUTE
           )) AS evaluated_at
    FROM alert_firings AS f, bounds AS b
),
checks AS (
    SELECT DISTINCT f.fingerprint, f.alertname,
           unnest(generate_series(
               greatest(date_trunc('minute', f.starts_at) - INTERVAL 20 MINUTE, b.first_check),
               least(date_trunc('minute', f.effective_end) + INTERVAL 21 MINUTE, b.last_check),
               INTERVAL 1 MINUTE
           )) AS evaluated_at
    FROM alert_firings AS f, bounds AS b
),
states AS (
    SELECT c.fingerprint, c.alertname, c.evaluated_at, f.evaluated_at IS NOT NULL AS firing
    FROM checks AS c
    LEFT JOIN firing_checks AS f USING (fingerprint, evaluated_at)
),
changes AS (
    -- A check with no check a minute before follows a quiet stretch: no change.
    SELECT *,
           coalesce(
               lag(evaluated_at) OVER by_time = evaluated_at - INTERVAL 1 MINUTE
               AND lag(firing) OVER by_time <> firing,
               false
           ) AS state_changed,
           epoch(evaluated_at) // 60 AS check_number
    FROM states
    WINDOW by_time AS (PARTITION BY fingerprint ORDER BY evaluated_at)
),
weighted AS (
    -- weight of a change k checks ago = 0.75 + 0.5 * (19 - k) / 19, for k = 0 .. 19
    SELECT *,
           100.0 / 20 * (
               0.75 * sum(state_changed::INTEGER) OVER last_20
               + 0.5 / 19 * (
                   sum(state_changed::INTEGER * check_number) OVER last_20
                   - (check_number - 19) * sum(state_changed::INTEGER) OVER last_20
               )
           ) AS state_change_pct
    FROM changes
    WINDOW last_20 AS (
        PARTITION BY fingerprint ORDER BY evaluated_at
        RANGE BETWEEN INTERVAL 19 MINUTE PRECEDING AND CURRENT ROW
    )
),
hysteresis AS (
    SELECT w.*,
           max(CASE WHEN w.state_change_pct >= s.flap_high_threshold THEN w.evaluated_at END)
               OVER by_time AS last_high,
           max(CASE WHEN w.state_change_pct <= s.flap_low_threshold THEN w.evaluated_at END)
               OVER by_time AS last_low
    FROM weighted AS w, report_settings AS s
    WINDOW by_time AS (PARTITION BY w.fingerprint ORDER BY w.evaluated_at ROWS UNBOUNDED PRECEDING)
)
SELECT
    h.fingerprint,
    h.alertname,
    CASE WHEN h.evaluated_at >= p.period_start THEN 'current' ELSE 'previous' END AS period,
    h.evaluated_at,
    h.firing,
    h.state_changed,
    round(h.state_change_pct, 6)                                                AS state_change_pct,
    coalesce(h.last_high > h.last_low OR (h.last_high IS NOT NULL AND h.last_low IS NULL), false)
                                                                                AS flapping
FROM hysteresis AS h, period AS p
WHERE h.evaluated_at >= p.previous_start AND h.evaluated_at < p.period_end
ORDER BY h.fingerprint, h.evaluated_at
