-- report_periods: the report period and the one just before it, one row each.
-- Answers "which stretch of time does `period` = 'current' / 'previous' mean in the reports?".
--
-- period     'current' (the report period) or 'previous' (same length, just before it)
-- starts_at  first instant of the period (inclusive, UTC)
-- ends_at    end of the period (exclusive, UTC)
SELECT 'current' AS period, period_start AS starts_at, period_end AS ends_at FROM report_period
UNION ALL
SELECT 'previous' AS period, previous_start AS starts_at, previous_end AS ends_at FROM report_period
