-- coverage: is every service monitored the way the catalog says it must be?
-- One row per period, service and pillar. Services are the catalog's (obs.yaml `services`) plus
-- every service seen in the data but missing from the catalog (in_catalog = false). A pillar is
-- present when the period holds:
--   metrics  a metric sample of a series whose service (label service, app or job) is the service
--   up       a sample of an `up` series of the service (its targets are scraped)
--   logs     a log record of the service
--   traces   a span of the service's own
--   alerts   any of:
--            - an alerting rule naming the service: its `service` or `job` label is the service,
--              or its expression names it in quotes (job="postgresql"); rules come from the
--              period's latest rule snapshot (alert_rules, else the nearest later snapshot) and
--              from the rule files in `sources.alert_rule_files` (configured_alert_rules, as
--              they are now, for both periods);
--            - an alert of the service seen firing or pending in the period: an ALERTS fragment
--              (alert_fragments, the stretches alert_events stitches) or an Alertmanager
--              snapshot (alertmanager_alerts: from its startsAt to the snapshot). An alert's
--              service is its `service` label, else `job`.
--            So a lake with no rule snapshot (`obs materialize` takes none) still counts the
--            alerts it saw.
--   slo      an SLO of the service in obs.yaml
-- Required pillars are the service's `pillars` in the catalog (all by default), `up` wherever
-- metrics are required.
-- A period holds data when the lake has, inside it, a metric sample, a log record, a span, an
-- ALERTS sample, an Alertmanager snapshot or a rule snapshot, whatever service it names (or
-- none). The catalog, SLOs and rule files are config, not data, and neither is the later rule
-- snapshot standing in for a period or an Alertmanager alert's startsAt before its snapshot.
-- A period without data (an empty lake, a lake younger than the previous period, a period
-- before the data starts) has unknown coverage, not 0%: its shares are NULL, while `present`
-- and `status` still say what it holds.
--
-- period             'current' or 'previous'
-- service, tier      the service and its catalog tier (NULL when not in the catalog)
-- in_catalog         false for services seen in data only
-- pillar             metrics, up, logs, traces, alerts or slo
-- required           the catalog requires the pillar for this service
-- present            the period holds it (see above)
-- status             'present', 'missing' (required, absent) or 'not required' (absent, optional)
-- service_coverage   share of the service's required pillars that are present; NULL for a
--                    service seen in data only, and in a period without data
-- service_covered    every required pillar of this catalog service is present; NULL in a period
--                    without data
-- pillar_coverage    share of catalog services requiring this pillar that have it; NULL when no
--                    catalog service requires it, and in a period without data
-- overall_coverage   share of catalog services with every required pillar present (the seed's
--                    "monitoring coverage"); NULL without catalog services, and in a period
--                    without data
-- period_has_data    the period holds data (see above)
WITH period AS (
    SELECT * FROM report_period
),
rule_snapshots AS (
    -- The rules in force in a period: its latest rule snapshot, else the nearest later one.
    -- Prometheus keeps no history of its rules, and they change rarely: the nearest snapshot is
    -- the best evidence for a period that had none of its own.
    SELECT p.period,
           coalesce(
               (SELECT max(r.snapshot_at) FROM alert_rules AS r
                WHERE r.snapshot_at > p.starts_at AND r.snapshot_at <= p.ends_at),
               (SELECT min(r.snapshot_at) FROM alert_rules AS r WHERE r.snapshot_at > p.ends_at)
           ) AS snapshot_at
    FROM report_periods AS p
),
alerting_rules AS (
    -- Alerting rules in force per period: the period's rule snapshot, and the configured rule
    -- files (no history: the files as they are now stand for both periods, as the nearest later
    -- snapshot does for a period without one).
    SELECT s.period, r.service, r.labels, r.expr
    FROM rule_snapshots AS s
    JOIN alert_rules AS r ON r.snapshot_at = s.snapshot_at
    WHERE r.type = 'alerting'
    UNION ALL
    SELECT p.period, f.service, f.labels, f.expr
    FROM configured_alert_rules AS f, report_periods AS p
),
alerts_seen AS (
    -- Services with an alert firing or pending in the period, from ALERTS fragments (pending
    -- included, which alert_events leaves out) and Alertmanager snapshots (an alert there has
    -- been active from its startsAt until the snapshot, or its endsAt if that came first).
    SELECT DISTINCT p.period, f.service
    FROM alert_fragments AS f, report_periods AS p
    WHERE f.service IS NOT NULL
      AND f.first_sample < p.ends_at AND f.last_sample >= p.starts_at
    UNION
    SELECT DISTINCT p.period, a.service
    FROM alertmanager_alerts AS a, report_periods AS p
    WHERE a.service IS NOT NULL
      AND coalesce(a.starts_at, a.snapshot_at) < p.ends_at
      AND least(a.snapshot_at, coalesce(a.ends_at, a.snapshot_at)) >= p.starts_at
),
samples_by_period AS MATERIALIZED (
    -- From the series inventory (per series and hour, derived at ingest), so coverage holds
    -- after raw samples age out; exact for periods that start and end on the hour.
    SELECT DISTINCT
           CASE WHEN i.last_ts >= p.period_start THEN 'current' ELSE 'previous' END AS period,
           i.series_id
    FROM series_inventory AS i, period AS p
    WHERE i.last_ts >= p.previous_start AND i.first_ts < p.period_end
      -- dt, the UTC day of the row's hour, keeps the scan to the period's day partitions
      AND i.dt >= (SELECT strftime(previous_start - INTERVAL 1 HOUR, '%Y-%m-%d') FROM report_period)
      AND i.dt <= (SELECT strftime(period_end, '%Y-%m-%d') FROM report_period)
),
logs_by_period AS MATERIALIZED (
    -- Services with log records per period; NULL stands for records naming no service.
    SELECT DISTINCT CASE WHEN l.ts >= p.period_start THEN 'current' ELSE 'previous' END AS period,
           l.service
    FROM log_records AS l, period AS p
    WHERE l.ts >= p.previous_start AND l.ts < p.period_end
      AND l.dt >= (SELECT strftime(previous_start, '%Y-%m-%d') FROM report_period)
      AND l.dt <= (SELECT strftime(period_end, '%Y-%m-%d') FROM report_period)
),
spans_by_period AS MATERIALIZED (
    -- Services with spans per period; NULL stands for spans naming no service.
    SELECT DISTINCT CASE WHEN t.start_ts >= p.period_start THEN 'current' ELSE 'previous' END
               AS period,
           t.service
    FROM spans AS t, period AS p
    WHERE t.start_ts >= p.previous_start AND t.start_ts < p.period_end
      AND t.dt >= (SELECT strftime(previous_start, '%Y-%m-%d') FROM report_period)
      AND t.dt <= (SELECT strftime(period_end, '%Y-%m-%d') FROM report_period)
),
period_data AS (
    -- The periods that hold data (see the header): a period without any has unknown coverage.
    SELECT period FROM samples_by_period
    UNION SELECT period FROM logs_by_period
    UNION SELECT period FROM spans_by_period
    UNION
    SELECT p.period
    FROM alert_fragments AS f, report_periods AS p
    WHERE f.first_sample < p.ends_at AND f.last_sample >= p.starts_at
    UNION
    SELECT p.period
    FROM alertmanager_alerts AS a, report_periods AS p
    WHERE a.snapshot_at >= p.starts_at AND a.snapshot_at < p.ends_at
    UNION
    SELECT p.period
    FROM alert_rules AS r, report_periods AS p
    WHERE r.snapshot_at > p.starts_at AND r.snapshot_at <= p.ends_at
),
series_by_period AS MATERIALIZED (
    -- The period's series with their service and metric: metric_series collapses the whole
    -- table's rows per series, so it is read once for both pillars below.
    SELECT s.period, m.service, m.metric
    FROM samples_by_period AS s JOIN metric_series AS m USING (series_id)
    WHERE m.service IS NOT NULL
),
presence AS (
    SELECT DISTINCT period, service, 'metrics' AS pillar FROM series_by_period
    UNION
    SELECT DISTINCT period, service, 'up' FROM series_by_period WHERE metric = 'up'
    UNION
    SELECT period, service, 'logs' FROM logs_by_period WHERE service IS NOT NULL
    UNION
    SELECT period, service, 'traces' FROM spans_by_period WHERE service IS NOT NULL
    UNION
    SELECT DISTINCT r.period, c.service, 'alerts'
    FROM alerting_rules AS r,
         (SELECT service FROM services
          UNION SELECT DISTINCT coalesce(service, labels['service'], labels['job']) FROM alerting_rules) AS c
    WHERE c.service IS NOT NULL
      AND (r.service = c.service
           OR r.labels['service'] = c.service
           OR r.labels['job'] = c.service
           OR strpos(r.expr, '"' || c.service || '"') > 0)
    UNION
    SELECT period, service, 'alerts' FROM alerts_seen
    UNION
    SELECT p.period, d.service, 'slo'
    FROM slo_definitions AS d, report_periods AS p
),
known_services AS (
    SELECT service, true AS in_catalog, tier, required_pillars FROM services
    UNION ALL
    SELECT DISTINCT service, false, CAST(NULL AS VARCHAR), CAST([] AS VARCHAR[])
    FROM presence
    WHERE service NOT IN (SELECT service FROM services)
),
pillars AS (
    SELECT * FROM (VALUES (1, 'metrics'), (2, 'up'), (3, 'logs'), (4, 'traces'), (5, 'alerts'), (6, 'slo'))
        AS t(pillar_order, pillar)
),
cells AS (
    SELECT p.period, s.service, s.tier, s.in_catalog, l.pillar, l.pillar_order,
           list_contains(s.required_pillars, l.pillar) AS required,
           x.service IS NOT NULL AS present,
           p.period IN (SELECT period FROM period_data) AS period_has_data
    FROM report_periods AS p
    CROSS JOIN known_services AS s
    CROSS JOIN pillars AS l
    LEFT JOIN presence AS x ON x.period = p.period AND x.service = s.service AND x.pillar = l.pillar
),
per_service AS (
    SELECT period, service,
           count(*) FILTER (WHERE required) AS required_pillars,
           count(*) FILTER (WHERE required AND present) AS present_pillars
    FROM cells
    GROUP BY period, service
),
per_pillar AS (
    SELECT period, pillar,
           count(*) FILTER (WHERE in_catalog AND required AND present)
               / nullif(count(*) FILTER (WHERE in_catalog AND required), 0) AS pillar_coverage
    FROM cells
    GROUP BY period, pillar
),
overall AS (
    SELECT s.period,
           count(*) FILTER (WHERE s.present_pillars = s.required_pillars) / nullif(count(*), 0)
               AS overall_coverage
    FROM per_service AS s
    WHERE s.service IN (SELECT service FROM services)
    GROUP BY s.period
)
SELECT
    c.period,
    c.service,
    c.tier,
    c.in_catalog,
    c.pillar,
    c.required,
    c.present,
    CASE WHEN c.present THEN 'present' WHEN c.required THEN 'missing' ELSE 'not required' END
                                                                        AS status,
    CASE WHEN NOT c.period_has_data THEN NULL
         WHEN s.required_pillars > 0 THEN s.present_pillars / s.required_pillars
         WHEN c.in_catalog THEN 1.0 END                                 AS service_coverage,
    CASE WHEN c.period_has_data
         THEN c.in_catalog AND s.present_pillars = s.required_pillars END AS service_covered,
    CASE WHEN c.period_has_data THEN g.pillar_coverage END              AS pillar_coverage,
    CASE WHEN c.period_has_data THEN o.overall_coverage END             AS overall_coverage,
    c.period_has_data
FROM cells AS c
JOIN per_service AS s USING (period, service)
JOIN per_pillar AS g USING (period, pillar)
LEFT JOIN overall AS o USING (period)
ORDER BY c.period, NOT c.in_catalog, c.service, c.pillar_order
