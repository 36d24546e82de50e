-- alert_intervals: one row per stretch of one alert in one state ('pending' or 'firing'), whole
-- across partition boundaries; alert_events (firings) and alert_pending_episodes (pending stretches
-- that never fired) are built on it.
--
-- Built from alert_fragments (one stretch of ALERTS samples of one alert and state inside one
-- hourly window). Fragments of the same alert (fingerprint) and state are put in time order, and
-- a new interval starts wherever the gap since the previous fragment's last sample exceeds
-- max_gap_ms (the evaluation interval times one plus the missed evaluations tolerated, the same
-- rule that cut the fragments inside a window). A missed evaluation on a partition boundary is
-- therefore tolerated exactly like one inside a window. The result depends only on which
-- fragments are in the lake, not on the order their partitions were materialized in.
--
-- fingerprint, state, interval_number   the alert, its state, and the stretch's number (1, 2, ...)
-- alertname, severity, category, service, labels, source   as of the stretch's last sample
-- starts_at              the stretch's first sample
-- last_sample            its last sample
-- samples, fragments     ALERTS samples, and fragments stitched
-- last_window_end        end of the window holding the last sample
-- max_gap_ms, evaluation_interval_ms   as the fragments recorded them
-- ended_at               last sample + one evaluation interval: the evaluation at which the alert
--                        was first seen out of this state
-- still_open             true when the stretch may go on: its last sample reached the end of its
--                        window (within max_gap_ms) and that window is the newest with alert data
WITH ordered AS (
    SELECT
        *,
        max(last_sample) OVER (
            PARTITION BY fingerprint, state
            ORDER BY first_sample, last_sample
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
        ) AS previous_last_sample
    FROM alert_fragments
),
numbered AS (
    SELECT
        *,
        sum(
            CASE
                WHEN previous_last_sample IS NULL
                  OR epoch_ms(first_sample) - epoch_ms(previous_last_sample) > max_gap_ms
                THEN 1 ELSE 0
            END
        ) OVER (
            PARTITION BY fingerprint, state
            ORDER BY first_sample, last_sample
            ROWS UNBOUNDED PRECEDING
        ) AS interval_number
    FROM ordered
),
intervals AS (
    SELECT
        fingerprint,
        state,
        interval_number,
        arg_max(alertname, last_sample)              AS alertname,
        arg_max(severity, last_sample)               AS severity,
        arg_max(category, last_sample)               AS category,
        arg_max(service, last_sample)                AS service,
        arg_max(labels, last_sample)                 AS labels,
        arg_max(source, last_sample)                 AS source,
        min(first_sample)                            AS starts_at,
        max(last_sample)                             AS last_sample,
        sum(samples)                                 AS samples,
        count(*)                                     AS fragments,
        arg_max(window_end, last_sample)             AS last_window_end,
        arg_max(max_gap_ms, last_sample)             AS max_gap_ms,
        arg_max(evaluation_interval_ms, last_sample) AS evaluation_interval_ms
    FROM numbered
    GROUP BY fingerprint, state, interval_number
),
newest AS (
    SELECT max(window_end) AS window_end FROM alert_fragments
)
SELECT
    i.*,
    i.last_sample + to_milliseconds(i.evaluation_interval_ms) AS ended_at,
    epoch_ms(i.last_window_end) - epoch_ms(i.last_sample) <= i.max_gap_ms
        AND i.last_window_end >= newest.window_end          AS still_open
FROM intervals AS i, newest
