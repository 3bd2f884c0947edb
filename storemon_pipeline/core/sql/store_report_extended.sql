-- The report with what the polls can and cannot tell: per store, the report's figures
-- unchanged and, per window w (hour, day, week), a 90 % interval for the true uptime, the
-- evidence and the business time no poll came near (docs/report.md: How sure each number is).
-- Input: interval_segment_model (interval_evidence.sql, interval_rates.sql,
-- interval_expectations.sql), interval_switch_balance, store_window_seconds, store_report,
-- report_stores, evidence_polls.
--
-- Per gap between two polls that agree, the other status's expected time E in its business
-- time B (interval_segment_model) has the variance of one hidden excursion of uniform length:
-- E (2/3 B - E). Where they differ there is one switch: the up share is
-- 1/2 + up_share_shift (interval_switch_balance.sql), with the variance of a switch placed
-- at random around it, (1/4 - shift^2) / 3 B^2. Per window the means and variances add up.
--
-- store_key, and the six figures of store_report (its store_id is report_stores')
-- uptime_last_<w>_lo, uptime_last_<w>_hi  the 90 % interval for the true uptime, in the
--                          window's unit (minutes for the hour, hours otherwise); downtime's
--                          interval is business time minus it
-- polls_last_<w>           in-hours polls in [as_of - w, as_of] (as_of itself included: by
--                          default it is the newest poll)
-- unobserved_last_<w>      business time in the window further than 30 minutes from every
--                          in-hours poll, in the window's unit
-- The interval's ends in the window's unit (seconds in): mean +- 1.645 sd, or 1.2816 sd (the
-- one-sided 90 % quantile) where the other end reaches a hard limit (0 or the business
-- time, which the truth cannot pass); clipped to [0, business time], widened to include the
-- point, rounded outward. No evidence at all: [0, business time].
CREATE OR REPLACE TEMP MACRO interval_lo(has_evidence, point, mean, sd, open, unit) AS
    CAST(floor(100 * CASE WHEN NOT has_evidence THEN 0
        ELSE least(point, greatest(0, mean - CASE WHEN mean + 1.645 * sd >= open THEN 1.2816 ELSE 1.645 END * sd)) END
        / unit) / 100 AS DECIMAL(18, 2));
CREATE OR REPLACE TEMP MACRO interval_hi(has_evidence, point, mean, sd, open, unit) AS
    CAST(ceil(100 * CASE WHEN NOT has_evidence THEN open
        ELSE greatest(point, least(open, mean + CASE WHEN mean - 1.645 * sd <= 0 THEN 1.2816 ELSE 1.645 END * sd)) END
        / unit) / 100 AS DECIMAL(18, 2));
-- A gap's uptime shift from the point and its variance, in seconds (the model above).
CREATE OR REPLACE TEMP MACRO uptime_shift(agree, status_a, open, other, up_share_shift) AS
    CASE WHEN NOT agree THEN up_share_shift * open WHEN status_a = 'active' THEN -other ELSE other END;
CREATE OR REPLACE TEMP MACRO uptime_variance(agree, open, other, up_share_shift) AS
    CASE WHEN NOT agree THEN (0.25 - up_share_shift ^ 2) / 3 * open ^ 2
         ELSE greatest(0.0, other * (2.0 / 3 * open - other)) END;
CREATE OR REPLACE TABLE store_report_extended AS
WITH params AS (SELECT as_of, as_of - INTERVAL 168 HOUR AS week_start FROM report_as_of),
store_model AS (
    SELECT g.store_key,
        sum(uptime_shift(g.agree, g.status_a, g.open_hour, g.other_hour, w.up_share_shift)) AS shift_hour,
        sum(uptime_shift(g.agree, g.status_a, g.open_day, g.other_day, w.up_share_shift)) AS shift_day,
        sum(uptime_shift(g.agree, g.status_a, g.open_week, g.other_week, w.up_share_shift)) AS shift_week,
        sum(uptime_variance(g.agree, g.open_hour, g.other_hour, w.up_share_shift)) AS var_hour,
        sum(uptime_variance(g.agree, g.open_day, g.other_day, w.up_share_shift)) AS var_day,
        sum(uptime_variance(g.agree, g.open_week, g.other_week, w.up_share_shift)) AS var_week,
        sum(g.unobserved_hour) AS unobserved_hour, sum(g.unobserved_day) AS unobserved_day,
        sum(g.unobserved_week) AS unobserved_week
    FROM interval_segment_model g, interval_switch_balance w GROUP BY g.store_key
),
polls AS (
    SELECT e.store_key,
        count(*) FILTER (WHERE e.timestamp_utc >= p.as_of - INTERVAL 1 HOUR) AS polls_hour,
        count(*) FILTER (WHERE e.timestamp_utc >= p.as_of - INTERVAL 24 HOUR) AS polls_day,
        count(*) AS polls_week
    FROM evidence_polls e, params p WHERE e.timestamp_utc >= p.week_start AND e.timestamp_utc <= p.as_of
    GROUP BY e.store_key
),
bounds AS (
    SELECT s.store_key, m.store_key IS NOT NULL AS has_evidence,
        coalesce(x.up_hour, 0) AS point_hour, coalesce(x.open_hour, 0) AS open_hour,
        coalesce(x.up_hour, 0) + coalesce(m.shift_hour, 0) AS mean_hour, sqrt(coalesce(m.var_hour, 0)) AS sd_hour,
        coalesce(x.up_day, 0) AS point_day, coalesce(x.open_day, 0) AS open_day,
        coalesce(x.up_day, 0) + coalesce(m.shift_day, 0) AS mean_day, sqrt(coalesce(m.var_day, 0)) AS sd_day,
        coalesce(x.up_week, 0) AS point_week, coalesce(x.open_week, 0) AS open_week,
        coalesce(x.up_week, 0) + coalesce(m.shift_week, 0) AS mean_week, sqrt(coalesce(m.var_week, 0)) AS sd_week,
        m.unobserved_hour, m.unobserved_day, m.unobserved_week
    FROM report_stores s LEFT JOIN store_window_seconds x USING (store_key) LEFT JOIN store_model m USING (store_key)
)
SELECT b.store_key, r.* EXCLUDE (store_id),
    interval_lo(b.has_evidence, b.point_hour, b.mean_hour, b.sd_hour, b.open_hour, 60) AS uptime_last_hour_lo,
    interval_hi(b.has_evidence, b.point_hour, b.mean_hour, b.sd_hour, b.open_hour, 60) AS uptime_last_hour_hi,
    interval_lo(b.has_evidence, b.point_day, b.mean_day, b.sd_day, b.open_day, 3600) AS uptime_last_day_lo,
    interval_hi(b.has_evidence, b.point_day, b.mean_day, b.sd_day, b.open_day, 3600) AS uptime_last_day_hi,
    interval_lo(b.has_evidence, b.point_week, b.mean_week, b.sd_week, b.open_week, 3600) AS uptime_last_week_lo,
    interval_hi(b.has_evidence, b.point_week, b.mean_week, b.sd_week, b.open_week, 3600) AS uptime_last_week_hi,
    coalesce(po.polls_hour, 0) AS polls_last_hour, coalesce(po.polls_day, 0) AS polls_last_day,
    coalesce(po.polls_week, 0) AS polls_last_week,
    -- (A store with no in-hours poll at all has observed none of its business time.)
    CAST(round(CASE WHEN b.has_evidence THEN coalesce(b.unobserved_hour, 0) ELSE b.open_hour END / 60, 2) AS DECIMAL(18, 2)) AS unobserved_last_hour,
    CAST(round(CASE WHEN b.has_evidence THEN coalesce(b.unobserved_day, 0) ELSE b.open_day END / 3600, 2) AS DECIMAL(18, 2)) AS unobserved_last_day,
    CAST(round(CASE WHEN b.has_evidence THEN coalesce(b.unobserved_week, 0) ELSE b.open_week END / 3600, 2) AS DECIMAL(18, 2)) AS unobserved_last_week
FROM bounds b JOIN report_stores s USING (store_key) JOIN store_report r USING (store_id)
LEFT JOIN polls po USING (store_key)
ORDER BY b.store_key;
