-- service_dependencies: who calls whom, how often, how often it fails and how slowly.
-- Caller -> callee edges derived from spans as Jaeger's spark-dependencies job does: a span whose
-- parent span belongs to another service is one call from the parent's service to the span's
-- service; and a client (or producer) span with `peer_service` set and no child span in another
-- service is one call to that peer (databases, brokers and uninstrumented services have no spans
-- of their own). One row per period, caller and callee.
--
-- period           'current' or 'previous' (by the calling span's start)
-- caller, callee   the two services
-- derived_from     how the edge was found: parent_child, peer_service, or both
-- calls            calls seen in sampled traces
-- errors           calls whose span (the callee's, or the client span for peer edges) is an error
-- error_rate       errors / calls
-- p50_ms, p95_ms, p99_ms   latency percentiles of those spans, in milliseconds
WITH period AS (
    SELECT * FROM report_period
),
horizon_spans AS (
    SELECT s.*
    FROM spans AS s, period AS p
    WHERE s.start_ts >= p.previous_start AND s.start_ts < p.period_end
      -- dt, the row's UTC day, keeps the scan to the period's day partitions
      AND s.dt >= (SELECT strftime(previous_start, '%Y-%m-%d') FROM report_period)
      AND s.dt <= (SELECT strftime(period_end, '%Y-%m-%d') FROM report_period)
),
parent_child_calls AS (
    SELECT parent.service AS caller, child.service AS callee, child.start_ts,
           child.duration_us, coalesce(child.is_error, false) AS is_error,
           'parent_child' AS derived_from
    FROM horizon_spans AS child
    JOIN horizon_spans AS parent
        ON parent.trace_id = child.trace_id AND parent.span_id = child.parent_span_id
    WHERE parent.service IS NOT NULL AND child.service IS NOT NULL
      AND parent.service <> child.service
),
peer_calls AS (
    SELECT client.service AS caller, client.peer_service AS callee, client.start_ts,
           client.duration_us, coalesce(client.is_error, false) AS is_error,
           'peer_service' AS derived_from
    FROM horizon_spans AS client
    WHERE client.peer_service IS NOT NULL
      AND client.service IS NOT NULL
      AND client.peer_service <> client.service
      AND client.kind IN ('client', 'producer')
      AND NOT EXISTS (
          SELECT 1 FROM horizon_spans AS child
          WHERE child.trace_id = client.trace_id
            AND child.parent_span_id = client.span_id
            AND child.service IS DISTINCT FROM client.service
      )
),
calls AS (
    SELECT * FROM parent_child_calls
    UNION ALL
    SELECT * FROM peer_calls
)
SELECT
    CASE WHEN c.start_ts >= p.period_start THEN 'current' ELSE 'previous' END AS period,
    c.caller,
    c.callee,
    CASE WHEN count(DISTINCT c.derived_from) > 1 THEN 'both' ELSE any_value(c.derived_from) END
                                                                       AS derived_from,
    count(*)                                                           AS calls,
    count(*) FILTER (WHERE c.is_error)                                 AS errors,
    count(*) FILTER (WHERE c.is_error) / count(*)                      AS error_rate,
    quantile_cont(c.duration_us / 1000.0, 0.5)                         AS p50_ms,
    quantile_cont(c.duration_us / 1000.0, 0.95)                        AS p95_ms,
    quantile_cont(c.duration_us / 1000.0, 0.99)                        AS p99_ms
FROM calls AS c, period AS p
GROUP BY 1, 2, 3
ORDER BY 1, calls DESC, 2, 3
