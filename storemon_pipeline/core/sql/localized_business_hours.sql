-- Business hours of every polled store as merged UTC intervals, over the local dates around
-- the report's week (plus margins for zone offsets and hours past midnight) and, before the
-- week, only the local dates of the store's own earlier polls and the day before each.
-- Before the week only the nearest in-hours poll can matter, and whether a poll is in hours
-- needs only the hours of its own local date and of the day before (rows past midnight), not
-- a calendar of every date since the oldest poll: one poll from 1970 adds two dates to one
-- store, not fifty years to all of them.
-- Stores in the same zone with the same business-hours rows and the same dates before the
-- week's have the same intervals: they are computed once per such group and given to each of
-- its stores. (Chains share hours: the public dataset's 13,822 polled stores form 2,091 groups.)
-- Input: report_as_of, report_stores, report_polls, report_hours (report_stores.sql).
-- Needs the macros of time_zone_macros.sql.
--
-- week_local_dates:         local_date: the dates every store's hours are built for
-- store_earlier_dates:      store_key, local_date: a store's dates before those (its earlier
--                           polls' local dates and the day before each)
-- business_hours_groups:    store_key, group_key (the group's first store)
-- group_business_hours:     group_key, start_utc, end_utc: each group's merged intervals
-- localized_business_hours: store_key, start_utc, end_utc: each store's (its group's)
CREATE OR REPLACE TABLE week_local_dates AS
SELECT CAST(d AS DATE) AS local_date
FROM report_as_of, range(CAST(CAST(as_of - INTERVAL 168 HOUR AS DATE) - 2 AS TIMESTAMP),
                         CAST(CAST(as_of AS DATE) + 3 AS TIMESTAMP), INTERVAL 1 DAY) AS t(d);

-- A poll's local date, from its zone's local dates at the start and the end of the quarter
-- hour it falls in: one pair of conversions per zone and quarter, not one per poll. (Today's
-- offsets are multiples of 15 minutes, so both are the poll's own date; for an old odd
-- offset, a quarter across local midnight gives both dates.) An earlier poll's dates from the
-- week's first on are among the week's own.
CREATE OR REPLACE TABLE store_earlier_dates AS
WITH earlier_polls AS (
    SELECT p.store_key, s.zone_key, s.tz, time_bucket(INTERVAL 15 MINUTE, p.timestamp_utc) AS quarter
    FROM report_polls p JOIN report_stores s USING (store_key), report_as_of
    WHERE p.timestamp_utc < report_as_of.as_of - INTERVAL 168 HOUR
),
quarter_dates AS (
    SELECT DISTINCT zone_key, quarter, CAST(timezone(tz, timezone('UTC', instant)) AS DATE) AS local_date
    FROM (SELECT DISTINCT zone_key, tz, quarter FROM earlier_polls),
         LATERAL (VALUES (quarter), (quarter + INTERVAL 15 MINUTE - INTERVAL 1 MICROSECOND)) AS t(instant)
)
SELECT DISTINCT e.store_key, q.local_date - t.k AS local_date
FROM earlier_polls e JOIN quarter_dates q USING (zone_key, quarter), (VALUES (0), (1)) AS t(k)
WHERE q.local_date - t.k < (SELECT min(local_date) FROM week_local_dates);

-- (Lists sorted, so that equal sets of rows or dates compare equal.)
CREATE OR REPLACE TABLE business_hours_groups AS
SELECT unnest(members) AS store_key, group_key
FROM (
    SELECT min(s.store_key) AS group_key, list(s.store_key) AS members
    FROM report_stores s
    LEFT JOIN (SELECT store_key, list_sort(list((day_of_week, start_time_local, end_time_local))) AS hours
               FROM report_hours GROUP BY store_key) h USING (store_key)
    LEFT JOIN (SELECT store_key, list_sort(list(local_date)) AS dates FROM store_earlier_dates GROUP BY store_key) e
        USING (store_key)
    GROUP BY s.zone_key, s.has_hours, h.hours, e.dates
);

-- Each group's intervals, computed for its first store.
CREATE OR REPLACE TABLE group_business_hours AS
WITH group_stores AS (SELECT * FROM report_stores WHERE store_key IN (SELECT group_key FROM business_hours_groups)),
store_dates AS (
    SELECT s.store_key, s.zone_key, s.tz, s.has_hours, d.local_date FROM group_stores s, week_local_dates d
    UNION ALL
    SELECT s.store_key, s.zone_key, s.tz, s.has_hours, e.local_date
    FROM store_earlier_dates e JOIN group_stores s USING (store_key)
),
local_intervals AS (
    SELECT h.store_key, d.zone_key, d.tz,
        CASE WHEN h.start_time_local = h.end_time_local THEN CAST(d.local_date AS TIMESTAMP)  -- whole day
             ELSE d.local_date + h.start_time_local END AS local_start,
        CASE WHEN h.start_time_local = h.end_time_local THEN CAST(d.local_date + 1 AS TIMESTAMP)
             WHEN h.end_time_local = TIME '23:59:59' THEN CAST(d.local_date + 1 AS TIMESTAMP)  -- means midnight
             WHEN h.end_time_local < h.start_time_local THEN (d.local_date + 1) + h.end_time_local  -- next day
             ELSE d.local_date + h.end_time_local END AS local_end
    FROM report_hours h
    JOIN store_dates d ON d.store_key = h.store_key AND isodow(d.local_date) - 1 = h.day_of_week
),
-- Each distinct (zone, local time) is converted once: many stores share hours and zones
-- (joined back on the zone's integer key, not its name).
conversions AS (
    SELECT zone_key, local_ts, local_to_utc(tz, local_ts) AS utc_ts
    FROM (SELECT zone_key, tz, local_start AS local_ts FROM local_intervals
          UNION SELECT zone_key, tz, local_end FROM local_intervals)
),
utc_intervals AS (
    SELECT i.store_key, s.utc_ts AS start_utc, e.utc_ts AS end_utc
    FROM local_intervals i
    JOIN conversions s ON s.zone_key = i.zone_key AND s.local_ts = i.local_start
    JOIN conversions e ON e.zone_key = i.zone_key AND e.local_ts = i.local_end
    UNION ALL
    -- No business-hours rows: open 24x7, from the store's earliest date to the end of the range
    -- (dates as UTC midnights: the margins above cover every zone's offset).
    SELECT store_key, CAST(min(local_date) AS TIMESTAMP), CAST(max(local_date) AS TIMESTAMP) + INTERVAL 1 DAY
    FROM store_dates
    WHERE NOT has_hours
    GROUP BY store_key
),
non_empty AS (SELECT * FROM utc_intervals WHERE end_utc > start_utc),
-- Union overlapping or touching intervals (gaps and islands).
flagged AS (
    SELECT *, max(end_utc) OVER (PARTITION BY store_key ORDER BY start_utc, end_utc
                                  ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS previous_end
    FROM non_empty
),
islands AS (
    SELECT *, sum(CASE WHEN previous_end IS NULL OR start_utc > previous_end THEN 1 ELSE 0 END)
                  OVER (PARTITION BY store_key ORDER BY start_utc, end_utc ROWS UNBOUNDED PRECEDING) AS island
    FROM flagged
)
SELECT store_key AS group_key, min(start_utc) AS start_utc, max(end_utc) AS end_utc
FROM islands
GROUP BY store_key, island;

CREATE OR REPLACE TABLE localized_business_hours AS
SELECT g.store_key, h.start_utc, h.end_utc
FROM business_hours_groups g JOIN group_business_hours h USING (group_key)
ORDER BY g.store_key, h.start_utc;
