-- alert_impact_matches: which alert firings relate to which SLO-impact episodes.
-- A firing and an episode are related when they are of the same service and their intervals
-- overlap once each is widened by `match_tolerance_seconds` (report_settings) on both sides (the
-- catalog macro overlaps_within), so an alert that fires a little before the impact is
-- measurable, or resolves a little after it, still counts. One row per related (firing, episode)
-- pair.
--
-- firing_id, alertname, fingerprint, service       the firing (see alert_firings)
-- episode_id, episode_period                        the episode (see impact_episodes)
-- firing_period                                     the period the firing started in; NULL when it
--                                                   started before the previous period and was
--                                                   still firing in it (see alert_firings)
-- starts_at, effective_end                          the firing's interval
-- episode_started_at, episode_ended_at              the episode's interval
-- detection_minutes   starts_at - episode_started_at, floored at 0 (an alert already firing
--                     when impact starts detects it at once)
-- reset_minutes       effective_end - episode_ended_at: how long the alert kept firing after the
--                     impact ended (negative: it resolved before the impact did)
SELECT
    f.firing_id,
    f.alertname,
    f.fingerprint,
    f.service,
    f.period                                                           AS firing_period,
    e.episode_id,
    e.period                                                           AS episode_period,
    f.starts_at,
    f.effective_end,
    e.started_at                                                       AS episode_started_at,
    e.ended_at                                                         AS episode_ended_at,
    greatest(epoch_us(f.starts_at) - epoch_us(e.started_at), 0) / 60e6 AS detection_minutes,
    (epoch_us(f.effective_end) - epoch_us(e.ended_at)) / 60e6          AS reset_minutes
FROM alert_firings AS f
JOIN impact_episodes AS e ON e.service = f.service
CROSS JOIN report_settings AS s
WHERE overlaps_within(f.starts_at, f.effective_end, e.started_at, e.ended_at,
                      s.match_tolerance_seconds)
