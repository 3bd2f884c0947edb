-- Per store and local business date of the last 7 days: business hours, uptime and downtime,
-- from status_intervals (the report's own timeline). Input: status_intervals, report_stores,
-- report_as_of.
--
-- The dates are the store's local dates D-6 .. D, where D is the local date of as_of; a date
-- runs from local midnight to local midnight (fold=0 at a change of clocks), and D ends at
-- as_of. So the 7 dates add up to the week's figures minus the part of the week on the
-- local date D-7 (the week's first, partial date: [as_of - 168 h, local midnight of D-6)).
--
-- store_key, local_date
-- business_hours   business time on that date, in hours (2 decimals)
-- uptime, downtime hours up and down; downtime = business_hours - uptime, as in the report
CREATE OR REPLACE TABLE store_daily_uptime AS
WITH params AS (SELECT as_of FROM report_as_of),
-- Local midnights depend only on the zone: converted once per zone and date, not per store.
zone_days AS (
    SELECT z.zone_key, z.tz, CAST(timezone(z.tz, timezone('UTC', p.as_of)) AS DATE) - CAST(d.back AS INTEGER) AS local_date
    FROM (SELECT DISTINCT zone_key, tz FROM report_stores) AS z, params p, range(0, 7) AS d(back)
),
zone_bounds AS (
    SELECT z.zone_key, z.local_date,
           local_to_utc(z.tz, CAST(z.local_date AS TIMESTAMP)) AS day_start,
           least(local_to_utc(z.tz, CAST(z.local_date + 1 AS TIMESTAMP)), p.as_of) AS day_end
    FROM zone_days z, params p
),
bounds AS (
    SELECT s.store_key, b.local_date, b.day_start, b.day_end
    FROM report_stores s JOIN zone_bounds b USING (zone_key)
),
-- (An inner join: overlap_seconds of a missing interval would not be 0, as least() and
-- greatest() skip NULLs. Dates without business time get their zeros below.)
overlapping AS (
    SELECT b.store_key, b.local_date,
           sum(overlap_seconds(i.start_utc, i.end_utc, b.day_start, b.day_end)) AS open_seconds,
           sum(overlap_seconds(i.start_utc, i.end_utc, b.day_start, b.day_end))
               FILTER (WHERE i.status = 'active') AS up_seconds
    FROM bounds b
    JOIN status_intervals i ON i.store_key = b.store_key AND i.end_utc > b.day_start AND i.start_utc < b.day_end
    GROUP BY b.store_key, b.local_date
),
seconds AS (
    SELECT b.store_key, b.local_date, coalesce(o.open_seconds, 0) AS open_seconds, coalesce(o.up_seconds, 0) AS up_seconds
    FROM bounds b LEFT JOIN overlapping o USING (store_key, local_date)
)
SELECT store_key, local_date,
       CAST(round(open_seconds / 3600, 2) AS DECIMAL(18, 2)) AS business_hours,
       CAST(round(up_seconds / 3600, 2) AS DECIMAL(18, 2)) AS uptime,
       CAST(round(open_seconds / 3600, 2) AS DECIMAL(18, 2)) - CAST(round(up_seconds / 3600, 2) AS DECIMAL(18, 2))
           AS downtime
FROM seconds
ORDER BY store_key, local_date;
