-- One row per store of report_stores (a poll at or before as_of), in store_id order: business
-- time up and down over the sliding windows [as_of - 1 h, as_of), [as_of - 24 h, as_of), [as_of - 168 h, as_of).
-- Hours in minutes, day and week in hours, 2 decimals; downtime is the rounded business
-- time minus the rounded uptime, so the two always add up to the business time shown.
CREATE OR REPLACE TEMP MACRO overlap_seconds(s, e, lo, hi) AS
    greatest(0.0, epoch(least(e, hi)) - epoch(greatest(s, lo)));
-- store_window_seconds: store_key, up_<w> and open_<w> (w: hour, day, week), unrounded
-- seconds of the report's nearest-poll uptime and of business time in each window (NULL: none);
-- store_report_extended.sql reads them too.
CREATE OR REPLACE TABLE store_window_seconds AS
WITH params AS (SELECT as_of FROM report_as_of),
in_week AS (
    SELECT i.*, params.as_of FROM status_intervals i, params
    WHERE i.end_utc > params.as_of - INTERVAL 168 HOUR AND i.start_utc < params.as_of
)
SELECT store_key,
    sum(overlap_seconds(start_utc, end_utc, as_of - INTERVAL 1 HOUR, as_of)) FILTER (WHERE status = 'active') AS up_hour,
    sum(overlap_seconds(start_utc, end_utc, as_of - INTERVAL 24 HOUR, as_of)) FILTER (WHERE status = 'active') AS up_day,
    sum(overlap_seconds(start_utc, end_utc, as_of - INTERVAL 168 HOUR, as_of)) FILTER (WHERE status = 'active') AS up_week,
    sum(overlap_seconds(start_utc, end_utc, as_of - INTERVAL 1 HOUR, as_of)) AS open_hour,
    sum(overlap_seconds(start_utc, end_utc, as_of - INTERVAL 24 HOUR, as_of)) AS open_day,
    sum(overlap_seconds(start_utc, end_utc, as_of - INTERVAL 168 HOUR, as_of)) AS open_week
FROM in_week GROUP BY store_key;

CREATE OR REPLACE TABLE store_report AS
WITH rounded AS (
    SELECT stores.store_key, stores.store_id,
        round(coalesce(up_hour, 0) / 60, 2) AS uptime_last_hour,
        round(coalesce(up_day, 0) / 3600, 2) AS uptime_last_day,
        round(coalesce(up_week, 0) / 3600, 2) AS uptime_last_week,
        round(coalesce(open_hour, 0) / 60, 2) AS open_last_hour,
        round(coalesce(open_day, 0) / 3600, 2) AS open_last_day,
        round(coalesce(open_week, 0) / 3600, 2) AS open_last_week
    FROM report_stores stores LEFT JOIN store_window_seconds USING (store_key)
)
SELECT store_id,
    CAST(uptime_last_hour AS DECIMAL(18, 2)) AS uptime_last_hour,
    CAST(uptime_last_day AS DECIMAL(18, 2)) AS uptime_last_day,
    CAST(uptime_last_week AS DECIMAL(18, 2)) AS uptime_last_week,
    CAST(open_last_hour AS DECIMAL(18, 2)) - CAST(uptime_last_hour AS DECIMAL(18, 2)) AS downtime_last_hour,
    CAST(open_last_day AS DECIMAL(18, 2)) - CAST(uptime_last_day AS DECIMAL(18, 2)) AS downtime_last_day,
    CAST(open_last_week AS DECIMAL(18, 2)) - CAST(uptime_last_week AS DECIMAL(18, 2)) AS downtime_last_week
FROM rounded
ORDER BY store_id;
