-- impact_episodes: when was each service really hurting its users? (the ground truth that alert
-- quality, incidents, MTTD and MTTR are measured against)
--
-- Impact is bad events that the objective makes improbable, not a bad minute: a service allowed
-- 0.1% errors that serves 2 requests a minute fails one now and then by chance, and a slow burn
-- of twice the budget at 100 requests a minute is one failed request every 5 minutes, in no
-- minute or hour remarkable. Per SLO, with `allowed` = total events x error budget (the bad
-- events the objective allows; burn rate = bad / allowed):
--
-- 1. Significant windows. Every minute, the window of each length of `impact_windows` (config
--    reports.impact_windows; by default 5m, 1h, 6h and 1d, like the burn-rate policy's windows)
--    ending then is significant when it passes three tests:
--    - bad >= `impact_min_bad_events` (report_settings);
--    - its burn rate reaches the window's `burn_rate_threshold` (impact_windows; by default 5 for
--      5m, 2 for 1h, 1.5 for 6h and 1d): a clearly real but negligible burn is no impact;
--    - p = P(X >= bad) < `impact_significance`, X ~ Poisson(allowed): that many bad events are
--      that unlikely from an SLI failing at exactly the budget rate. The catalog macro
--      poisson_upper_tail computes it (obs_pipelines/reporting/reports.py: the incomplete gamma series,
--      exact to rounding wherever a window can pass the burn-rate test, never smaller than the
--      true tail; poisson_upper_tail_below decides most windows by Chernoff's bound alone and
--      sums the series only for the rest). Poisson, not binomial: the same for budgets of a few percent or less, and
--      conservative (a larger tail) for larger ones; counts need not be whole numbers. Windows
--      are tested every minute and overlap, hence the small default (1e-5): a low-traffic
--      service failing at exactly its budget rate for 10 days rarely makes a false episode.
--    Short windows catch sharp failures; long windows catch slow burns.
-- 2. Stretches. Overlapping significant windows of one length form a region. In each region, a
--    CUSUM (Page's test) of the Poisson log-likelihood ratio of burning at rate r rather than at
--    the budget rate, per minute bad x ln(r) - (r - 1) x allowed, r being the region's burn rate
--    (at least the window's threshold), locates the impact: each excursion of the CUSUM above
--    zero, from its first minute to its peak, is a stretch. A stretch starts and ends on minutes
--    with bad events, leaves out the clean lead-in and tail of its windows (the hours of a 6-hour
--    window before a slow burn began), and keeps a sharp failure to its own minutes (a stray bad
--    event beside it is worth ln(r) but costs (r - 1) x allowed per minute). A stretch that
--    passes the three tests is significant.
-- 3. Impacted minutes. Every minute of a significant stretch of the shortest window length is
--    impacted. The minutes of a longer length's significant stretch that no significant stretch
--    of a shorter length covers form pieces, each judged on its own bad events:
--    - nothing in the stretch covered: the whole stretch is impacted (it passed the tests);
--    - a piece at an edge (before the first or after the last covered minute) is impacted when
--      it holds at least `impact_min_bad_events` and burns faster than the budget: a long window
--      extends an impact with bad events of its own, never with a stray one;
--    - a piece between covered minutes is impacted unless it is provably clean,
--      P(Y <= bad) < `impact_significance` for Y ~ Poisson(allowed) (macro poisson_lower_tail):
--      a lull inside a slow burn stays part of it, the clean hour between two separate failures
--      does not join them.
--    Covered minutes are impacted, or not, as part of the shorter length's stretch.
-- 4. Episodes. Impacted minutes of all the service's SLOs at most `impact_merge_gap_minutes`
--    apart form one episode.
-- Regions start at most a day before the previous period (as slo_burn_rates does), so episodes
-- crossing its start are whole unless their windows reach further back. The windows are
-- slo_burn_rates' (running totals over the gapless minute grid), through slo_burning_windows,
-- which a report session pins once for this report and slo_burn_episodes; only the minutes of
-- regions are read again, one by one.
-- Events are summed before they are multiplied by the error budget: sums of whole numbers do not
-- depend on the order rows reach them in, so a report gives the same last digits every time.
--
-- period            'current' or 'previous' (by the episode's start)
-- service           the service whose SLOs were burning
-- episode_id        service@start, stable across rebuilds
-- started_at        first impacted minute
-- ended_at          end of the last impacted minute
-- duration_minutes  ended_at - started_at
-- impacted_minutes  minutes inside the episode that were impacted (gaps merged over excluded)
-- slo_names         the SLOs that were burning
-- peak_burn_rate    highest burn rate of a significant stretch impacting the episode
-- window_minutes    lengths of the windows whose stretches impact the episode, ascending
-- p_value           smallest p of those stretches (0 when below the smallest double)
-- ongoing           true when the last minute of the report period was impacted
WITH period AS MATERIALIZED (
    SELECT * FROM report_period
),
settings AS (
    SELECT * FROM report_settings
),
windows AS (
    SELECT window_minutes, burn_rate_threshold,
           row_number() OVER (ORDER BY window_minutes) AS layer
    FROM impact_windows
),
burning_windows AS MATERIALIZED (
    -- The window of each impact length ending at every minute from a day before the previous
    -- period; the two cheap tests first: the Poisson tail is computed only for windows that pass.
    SELECT r.slo_name, r.service, r.evaluated_at, r.bad_events, r.total_events,
           d.error_budget_target, w.window_minutes, w.burn_rate_threshold, w.layer
    FROM slo_burning_windows AS r
    JOIN windows AS w USING (window_minutes)
    JOIN slo_definitions AS d USING (slo_name)
    CROSS JOIN settings AS s
    WHERE r.total_events > 0
      AND r.bad_events >= s.impact_min_bad_events
      AND r.bad_events >= w.burn_rate_threshold * r.total_events * d.error_budget_target
),
significant_windows AS (
    SELECT r.slo_name, r.service, r.evaluated_at, r.error_budget_target,
           r.window_minutes, r.burn_rate_threshold, r.layer
    FROM burning_windows AS r, settings AS s
    WHERE poisson_upper_tail_below(
        r.bad_events, r.total_events * r.error_budget_target, s.impact_significance
    )
),
regions AS (
    -- Windows of one length that overlap, chained: a window opens a new region when it starts
    -- after the previous one ended.
    SELECT slo_name, service, error_budget_target, window_minutes, burn_rate_threshold, layer,
           min(evaluated_at) - to_minutes(window_minutes) AS region_start,
           max(evaluated_at) AS region_end
    FROM (
        SELECT *,
               sum(CASE WHEN evaluated_at - to_minutes(window_minutes) > previous_end THEN 1 ELSE 0 END)
                   OVER (PARTITION BY slo_name, layer ORDER BY evaluated_at) AS region_number
        FROM (
            SELECT *, lag(evaluated_at) OVER (PARTITION BY slo_name, layer ORDER BY evaluated_at)
                          AS previous_end
            FROM significant_windows
        )
    )
    GROUP BY slo_name, service, error_budget_target, window_minutes, burn_rate_threshold, layer,
             region_number
),
minutes AS MATERIALIZED (
    -- Every minute of the regions (minutes without data count zero events), from a day before the
    -- previous period: bad events and the bad events the objective allows. Regions of one SLO
    -- overlap across window lengths, hence DISTINCT.
    SELECT DISTINCT g.slo_name, g.minute,
           coalesce(e.bad_events, 0) AS bad,
           coalesce(e.total_events, 0) AS total,
           coalesce(e.total_events, 0) * g.error_budget_target AS allowed
    FROM (
        SELECT r.slo_name, r.error_budget_target,
               unnest(generate_series(
                   greatest(r.region_start, p.previous_start - INTERVAL 1 DAY),
                   r.region_end - INTERVAL 1 MINUTE, INTERVAL 1 MINUTE)) AS minute
        FROM regions AS r, period AS p
    ) AS g
    LEFT JOIN report_slo_events AS e ON e.slo_name = g.slo_name AND e.minute = g.minute
),
region_minutes AS (
    SELECT g.slo_name, g.service, g.error_budget_target, g.window_minutes, g.burn_rate_threshold,
           g.layer, g.region_start, m.minute, m.bad, m.allowed,
           greatest(
               sum(m.bad) OVER whole_region
                   / nullif(sum(m.total) OVER whole_region * g.error_budget_target, 0),
               g.burn_rate_threshold
           ) AS rate
    FROM regions AS g
    JOIN minutes AS m
      ON m.slo_name = g.slo_name AND m.minute >= g.region_start AND m.minute < g.region_end
    WINDOW whole_region AS (PARTITION BY g.slo_name, g.layer, g.region_start)
),
cusum AS (
    -- Page's CUSUM, max(0, previous + llr), is the running llr sum less its running minimum (or 0).
    SELECT *, llr_through - least(0, min(llr_through) OVER through_minute) AS level
    FROM (
        SELECT *, sum(bad * ln(rate) - (rate - 1) * allowed) OVER through_minute AS llr_through
        FROM region_minutes
        WINDOW through_minute AS (
            PARTITION BY slo_name, layer, region_start ORDER BY minute ROWS UNBOUNDED PRECEDING
        )
    )
    WINDOW through_minute AS (
        PARTITION BY slo_name, layer, region_start ORDER BY minute ROWS UNBOUNDED PRECEDING
    )
),
stretch_bounds AS (
    -- Each excursion above zero, from its first minute to its (first) peak.
    SELECT slo_name, service, error_budget_target, window_minutes, burn_rate_threshold, layer,
           min(minute) AS started_at,
           arg_max(minute, [level, -epoch(minute)]) AS last_minute
    FROM (
        SELECT *,
               sum(CASE WHEN level = 0 THEN 1 ELSE 0 END) OVER (
                   PARTITION BY slo_name, layer, region_start ORDER BY minute
                   ROWS UNBOUNDED PRECEDING
               ) AS excursion
        FROM cusum
    )
    WHERE level > 0
    GROUP BY slo_name, service, error_budget_target, window_minutes, burn_rate_threshold, layer,
             region_start, excursion
),
significant_stretches AS MATERIALIZED (
    SELECT t.*, t.bad / t.allowed AS burn_rate
    FROM (
        SELECT c.*, poisson_upper_tail(c.bad, c.allowed) AS p_value
        FROM (
            SELECT b.*, sum(m.bad) AS bad,
                   sum(m.total) * any_value(b.error_budget_target) AS allowed
            FROM stretch_bounds AS b
            JOIN minutes AS m
              ON m.slo_name = b.slo_name AND m.minute >= b.started_at AND m.minute <= b.last_minute
            GROUP BY ALL
        ) AS c
    ) AS t, settings AS s
    WHERE t.allowed > 0
      AND t.bad >= s.impact_min_bad_events
      AND t.bad >= t.burn_rate_threshold * t.allowed
      AND t.p_value < s.impact_significance
),
stretch_minutes AS MATERIALIZED (
    SELECT t.slo_name, t.service, t.error_budget_target, t.layer, t.window_minutes,
           t.burn_rate_threshold, t.started_at, t.burn_rate, t.p_value,
           m.minute, m.bad, m.total, m.allowed
    FROM significant_stretches AS t
    JOIN minutes AS m
      ON m.slo_name = t.slo_name AND m.minute >= t.started_at AND m.minute <= t.last_minute
),
pieces AS (
    -- Each minute of a significant stretch, with whether a significant stretch of a shorter
    -- window length covers it; the uncovered minutes between two covered ones (or stretch ends)
    -- are one piece.
    SELECT *,
           min(minute) FILTER (WHERE covered) OVER stretch AS first_covered,
           max(minute) FILTER (WHERE covered) OVER stretch AS last_covered,
           sum(CASE WHEN covered THEN 1 ELSE 0 END) OVER (
               PARTITION BY slo_name, layer, started_at ORDER BY minute ROWS UNBOUNDED PRECEDING
           ) AS piece_number
    FROM (
        SELECT sm.*,
               EXISTS (
                   SELECT 1 FROM significant_stretches AS shorter
                   WHERE shorter.slo_name = sm.slo_name AND shorter.layer < sm.layer
                     AND sm.minute >= shorter.started_at AND sm.minute <= shorter.last_minute
               ) AS covered
        FROM stretch_minutes AS sm
    )
    WINDOW stretch AS (PARTITION BY slo_name, layer, started_at)
),
impacted AS (
    SELECT p.*
    FROM (
        SELECT *,
               sum(bad) OVER piece AS piece_bad,
               sum(total) OVER piece * error_budget_target AS piece_allowed,
               min(minute) OVER piece AS piece_start,
               max(minute) OVER piece AS piece_end
        FROM pieces
        WHERE NOT covered
        WINDOW piece AS (PARTITION BY slo_name, layer, started_at, piece_number)
    ) AS p, settings AS s
    WHERE CASE
              -- Nothing in the stretch covered: the stretch passed the three tests.
              WHEN p.first_covered IS NULL THEN true
              -- Between covered minutes: impacted unless provably clean.
              WHEN p.first_covered < p.piece_start AND p.last_covered > p.piece_end
              THEN poisson_lower_tail(p.piece_bad, p.piece_allowed) >= s.impact_significance
              -- At an edge: burning, with enough bad events that no stray one extends it.
              ELSE p.piece_bad >= s.impact_min_bad_events AND p.piece_bad > p.piece_allowed
          END
),
impacted_minutes AS (
    SELECT service, minute,
           list(DISTINCT slo_name) AS slo_names,
           max(burn_rate) AS burn_rate,
           list(DISTINCT window_minutes) AS window_minutes,
           min(p_value) AS p_value
    FROM impacted
    GROUP BY service, minute
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
           max(burn_rate) AS peak_burn_rate,
           list_sort(list_distinct(flatten(list(window_minutes)))) AS window_minutes,
           min(p_value) AS p_value
    FROM numbered
    GROUP BY service, episode_number
)
SELECT
    CASE WHEN e.started_at >= p.period_start THEN 'current' ELSE 'previous' END AS period,
    e.service,
    e.service || '@' || strftime(e.started_at, '%Y-%m-%dT%H:%MZ')            AS episode_id,
    e.started_at,
    e.ended_at,
    (epoch_us(e.ended_at) - epoch_us(e.started_at)) / 60e6                     AS duration_minutes,
    e.impacted_minutes,
    e.slo_names,
    e.peak_burn_rate,
    e.window_minutes,
    e.p_value,
    e.ended_at >= p.period_end                                                 AS ongoing
FROM episodes AS e, period AS p
WHERE e.started_at >= p.previous_start AND e.started_at < p.period_end
ORDER BY e.started_at, e.service
