-- impact_episodes: when was each service really hurting its users? (the ground truth that alert
-- quality, incidents, MTTD and MTTR are measured against)
-- A minute is impacted for an SLO when both its own burn rate and the burn rate of some
-- `impact_window_minutes` window containing it (report_settings) exceed `impact_burn_rate`: the
-- first keeps an episode's edges on the minutes that actually failed, the second keeps a lone bad
-- scrape from counting as impact. Impacted minutes of all the service's SLOs that lie within
-- `impact_merge_gap_minutes` of each other form one episode.
--
-- period            'current' or 'previous' (by the episode's start)
-- service           the service whose SLOs were burning
-- episode_id        service@start, stable across rebuilds
-- started_at        first impacted minute
-- ended_at          end of the last impacted minute
-- duration_minutes  ended_at - started_at
-- impacted_minutes  minutes inside the episode that were impacted (gaps merged over excluded)
-- slo_names         the SLOs that were burning
-- peak_burn_rate    highest impact-window burn rate seen during the episode
-- ongoing           true when the last minute of the report period was impacted
WITH period AS (
    SELECT * FROM report_period
),
settings AS (
    SELECT * FROM report_settings
),
burn AS MATERIALIZED (
    SELECT * FROM slo_burn_rates
    WHERE window_minutes IN (1, (SELECT impact_window_minutes FROM settings))
),
minute_burn AS (
    SELECT slo_name, service, evaluated_at - INTERVAL 1 MINUTE AS minute, burn_rate AS minute_burn_rate
    FROM burn
    WHERE window_minutes = 1
),
window_burn AS (
    SELECT slo_name, evaluated_at, burn_rate AS window_burn_rate
    FROM burn
    WHERE window_minutes = (SELECT impact_window_minutes FROM settings)
),
minute_context AS (
    -- The windows containing minute m are those evaluated at m + 1 .. m + impact window.
    SELECT m.slo_name, m.service, m.minute, m.minute_burn_rate,
           max(w.window_burn_rate) OVER (
               PARTITION BY m.slo_name ORDER BY m.minute
               ROWS BETWEEN CURRENT ROW AND (SELECT impact_window_minutes - 1 FROM settings) FOLLOWING
           ) AS worst_window_burn_rate
    FROM minute_burn AS m
    JOIN window_burn AS w ON w.slo_name = m.slo_name AND w.evaluated_at = m.minute + INTERVAL 1 MINUTE
),
impacted_minutes AS (
    SELECT c.service, c.minute,
           list_sort(list(DISTINCT c.slo_name)) AS slo_names,
           max(c.worst_window_burn_rate) AS worst_window_burn_rate
    FROM minute_context AS c, settings AS s
    WHERE c.minute_burn_rate > s.impact_burn_rate
      AND c.worst_window_burn_rate > s.impact_burn_rate
    GROUP BY c.service, c.minute
),
numbered AS (
    SELECT *,
           sum(CASE
                   WHEN previous_minute IS NULL
                     OR minute - previous_minute
                        > to_minutes((SELECT impact_merge_gap_minutes + 1 FROM settings))
                   THEN 1 ELSE 0
               END) OVER (PARTITION BY service ORDER BY minute) AS episode_number
    FROM (
        SELECT *, lag(minute) OVER (PARTITION BY service ORDER BY minute) AS previous_minute
        FROM impacted_minutes
    )
),
episodes AS (
    SELECT service,
           min(minute) AS started_at,
           max(minute) + INTERVAL 1 MINUTE AS ended_at,
           count(*) AS impacted_minutes,
           list_sort(list_distinct(flatten(list(slo_names)))) AS slo_names,
           max(worst_window_burn_rate) AS peak_burn_rate
    FROM numbered
    GROUP BY service, episode_number
)
SELECT
    CASE WHEN e.started_at >= p.period_start THEN 'current' ELSE 'previous' END AS period,
    e.service,
    e.service || '@' || strftime(e.started_at, '%Y-%m-%dT%H:%MZ')            AS episode_id,
    e.started_at,
    e.ended_at,
    (epoch(e.ended_at) - epoch(e.started_at)) / 60.0                           AS duration_minutes,
    e.impacted_minutes,
    e.slo_names,
    e.peak_burn_rate,
    e.ended_at >= p.period_end                                                 AS ongoing
FROM episodes AS e, period AS p
WHERE e.started_at >= p.previous_start AND e.started_at < p.period_end
ORDER BY e.started_at, e.service
