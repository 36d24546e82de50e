-- metric_inventory: what the lake holds per metric and service.
-- One row per (service, metric): how many series, how many raw samples, and the time span
-- covered. Answers "which metrics does the lake keep for this service, and since when?".
SELECT
    s.service,
    s.metric,
    count(DISTINCT s.series_id)      AS series,
    count(*)                         AS samples,
    min(x.ts)                        AS first_sample,
    max(x.ts)                        AS last_sample,
    count(DISTINCT s.instance)       AS instances
FROM metric_samples AS x
JOIN metric_series  AS s USING (series_id)
GROUP BY s.service, s.metric
ORDER BY s.service, s.metric
