-- The report's stores and their inputs, keyed by a dense integer: every store with a poll at
-- or before as_of, numbered in store_id order. Joins, sorts and windows on a 4-byte key are
-- about twice as fast as on the string ids, and numbering in id order keeps the report's
-- order (and any range of keys is a contiguous run of the report's rows).
-- Input: report_as_of and the snapshot's raw_store_polls, raw_business_hours, raw_store_timezones.
--
-- report_stores: store_key, store_id, tz (its zone; none given = America/Chicago),
--                zone_key (a dense integer per zone), has_hours (false: open 24x7)
-- report_polls:  store_key, timestamp_utc, status (polls at or before as_of)
-- report_hours:  store_key, day_of_week (0 = Monday), start_time_local, end_time_local
CREATE OR REPLACE TABLE report_stores AS
WITH polled AS (
    SELECT p.store_id, coalesce(z.timezone_str, 'America/Chicago') AS tz
    FROM (SELECT DISTINCT store_id FROM raw_store_polls, report_as_of WHERE timestamp_utc <= report_as_of.as_of) AS p
    LEFT JOIN raw_store_timezones z USING (store_id)
)
SELECT CAST(row_number() OVER (ORDER BY store_id) AS INTEGER) AS store_key,
       store_id,
       tz,
       CAST(dense_rank() OVER (ORDER BY tz) AS INTEGER) AS zone_key,
       store_id IN (SELECT store_id FROM raw_business_hours) AS has_hours
FROM polled;

CREATE OR REPLACE TABLE report_polls AS
SELECT s.store_key, p.timestamp_utc, p.status
FROM raw_store_polls p JOIN report_stores s USING (store_id), report_as_of
WHERE p.timestamp_utc <= report_as_of.as_of;

CREATE OR REPLACE TABLE report_hours AS
SELECT s.store_key, h.day_of_week, h.start_time_local, h.end_time_local
FROM raw_business_hours h JOIN report_stores s USING (store_id);
