-- metric_inventory: what the lake holds per metric and service.
-- One row per (service, metric): how many series, how many samples were scraped, and the time
-- span covered. Answers "which metrics does the lake keep for this service, and since when?".
-- Read from series_inventory (per series and hour, derived at ingest), so it still answers once
-- raw samples have aged out into rollups. The inventory is summed per series before the join:
-- it holds a row per series and hour of the whole history.
WITH per_series AS (
    SELECT series_id, sum(samples) AS samples, min(first_ts) AS first_ts, max(last_ts) AS last_ts
    FROM series_inventory
    GROUP BY series_id
)
SELECT
    s.service,
    s.metric,
    count(DISTINCT s.series_id)      AS series,
    sum(i.samples)                   AS samples,
    min(i.first_ts)                  AS first_sample,
    max(i.last_ts)                   AS last_sample,
    count(DISTINCT s.instance)       AS instances
FROM per_series AS i
JOIN metric_series    AS s USING (series_id)
GROUP BY s.service, s.metric
ORDER BY s.service, s.metric
