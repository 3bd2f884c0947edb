-- Business hours of every polled store as merged UTC intervals, over the local dates that
-- the polls up to as_of and the report's week cover (plus margins for zone offsets and
-- hours past midnight).
-- Input: table report_as_of(as_of). Needs the macros of time_zone_macros.sql.
CREATE OR REPLACE TABLE localized_business_hours AS
WITH params AS (SELECT as_of FROM report_as_of),
polled AS (
    SELECT store_id, min(timestamp_utc) AS first_poll
    FROM raw_store_polls, params
    WHERE timestamp_utc <= params.as_of
    GROUP BY store_id
),
bounds AS (
    -- From the earlier of the first poll (evidence) and the start of the week (the windows).
    SELECT CAST(least(min(first_poll), any_value(params.as_of) - INTERVAL 168 HOUR) AS DATE) - 2 AS first_date,
           CAST(any_value(params.as_of) AS DATE) + 2 AS last_date
    FROM polled, params
),
local_dates AS (
    SELECT CAST(d AS DATE) AS local_date, isodow(CAST(d AS DATE)) - 1 AS day_of_week
    FROM bounds, range(CAST(bounds.first_date AS TIMESTAMP), CAST(bounds.last_date AS TIMESTAMP) + INTERVAL 1 DAY, INTERVAL 1 DAY) AS t(d)
),
zones AS (
    SELECT polled.store_id, coalesce(z.timezone_str, 'America/Chicago') AS tz
    FROM polled LEFT JOIN raw_store_timezones z USING (store_id)
),
local_intervals AS (
    SELECT h.store_id, zones.tz,
        CASE WHEN h.start_time_local = h.end_time_local THEN CAST(d.local_date AS TIMESTAMP)  -- whole day
             ELSE d.local_date + h.start_time_local END AS local_start,
        CASE WHEN h.start_time_local = h.end_time_local THEN CAST(d.local_date + 1 AS TIMESTAMP)
             WHEN h.end_time_local = TIME '23:59:59' THEN CAST(d.local_date + 1 AS TIMESTAMP)  -- means midnight
             WHEN h.end_time_local < h.start_time_local THEN (d.local_date + 1) + h.end_time_local  -- next day
             ELSE d.local_date + h.end_time_local END AS local_end
    FROM raw_business_hours h
    JOIN zones USING (store_id)
    JOIN local_dates d ON d.day_of_week = h.day_of_week
),
-- Each distinct (zone, local time) is converted once: many stores share hours and zones.
conversions AS (
    SELECT tz, local_ts, local_to_utc(tz, local_ts) AS utc_ts
    FROM (SELECT tz, local_start AS local_ts FROM local_intervals
          UNION SELECT tz, local_end FROM local_intervals)
),
utc_intervals AS (
    SELECT i.store_id, s.utc_ts AS start_utc, e.utc_ts AS end_utc
    FROM local_intervals i
    JOIN conversions s ON s.tz = i.tz AND s.local_ts = i.local_start
    JOIN conversions e ON e.tz = i.tz AND e.local_ts = i.local_end
    UNION ALL
    -- No business-hours rows: open 24x7 over the whole range.
    SELECT zones.store_id, CAST(bounds.first_date AS TIMESTAMP), CAST(bounds.last_date AS TIMESTAMP) + INTERVAL 1 DAY
    FROM zones, bounds
    WHERE zones.store_id NOT IN (SELECT store_id FROM raw_business_hours)
),
non_empty AS (SELECT * FROM utc_intervals WHERE end_utc > start_utc),
-- Union overlapping or touching intervals (gaps and islands).
flagged AS (
    SELECT *, max(end_utc) OVER (PARTITION BY store_id ORDER BY start_utc, end_utc
                                  ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS previous_end
    FROM non_empty
),
islands AS (
    SELECT *, sum(CASE WHEN previous_end IS NULL OR start_utc > previous_end THEN 1 ELSE 0 END)
                  OVER (PARTITION BY store_id ORDER BY start_utc, end_utc ROWS UNBOUNDED PRECEDING) AS island
    FROM flagged
)
SELECT store_id, min(start_utc) AS start_utc, max(end_utc) AS end_utc
FROM islands
GROUP BY store_id, island
ORDER BY store_id, start_utc;
