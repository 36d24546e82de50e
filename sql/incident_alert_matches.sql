-- incident_alert_matches: which alert firings relate to which incidents (see incidents), whatever
-- the incident's basis: incident records where a service has them, SLO-impact episodes where it
-- does not. A firing and an incident are related when they are of the same service and their
-- intervals overlap once each is widened by `match_tolerance_seconds` (report_settings) on both
-- sides (the catalog macro overlaps_within), the rule of alert_impact_matches (which relates
-- firings to impact episodes only). One row per related (firing, incident) pair; alert recall
-- in alert_quality counts these, and its precision counts a firing related here or there.
--
-- firing_id, alertname, fingerprint, service   the firing (see alert_firings)
-- firing_period                                the period the firing started in; NULL when it
--                                              started before the previous period and was still
--                                              firing in it (see alert_firings)
-- incident_id, incident_period, basis          the incident (see incidents)
-- starts_at, effective_end                     the firing's interval
-- incident_started_at, incident_effective_end  the incident's interval (an open one ends at the
--                                              end of the report period)
-- detection_minutes   starts_at - incident_started_at, floored at 0
-- reset_minutes       effective_end - incident_effective_end: how long the alert kept firing after
--                     the incident ended (negative: it resolved before the incident did)
SELECT
    f.firing_id,
    f.alertname,
    f.fingerprint,
    f.service,
    f.period                                                           AS firing_period,
    i.incident_id,
    i.period                                                           AS incident_period,
    i.basis,
    f.starts_at,
    f.effective_end,
    i.started_at                                                       AS incident_started_at,
    i.effective_end                                                    AS incident_effective_end,
    greatest(epoch_us(f.starts_at) - epoch_us(i.started_at), 0) / 60e6 AS detection_minutes,
    (epoch_us(f.effective_end) - epoch_us(i.effective_end)) / 60e6     AS reset_minutes
FROM alert_firings AS f
JOIN incidents AS i ON i.service = f.service
CROSS JOIN report_settings AS s
WHERE overlaps_within(f.starts_at, f.effective_end, i.started_at, i.effective_end,
                      s.match_tolerance_seconds)
