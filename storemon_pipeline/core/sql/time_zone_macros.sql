-- Local wall-clock time -> UTC with Python zoneinfo's fold=0 rules: a local time in a
-- spring-forward gap moves forward by the gap, an ambiguous one takes its first occurrence.
-- (DuckDB's own timezone(tz, TIMESTAMP) takes the second occurrence of an ambiguous time.)
--
-- utc_offset(tz, instant): the zone's UTC offset at a UTC instant; unambiguous.
-- Around a local time L, at most one transition lies between L - 1 day and L + 1 day (offsets
-- are under 15 hours, transitions weeks apart): `before` and `after` are the offsets on
-- either side. L - before is right if that instant really has offset `before` (normal time
-- before the change, or the first of two), or if neither candidate is consistent (a gap:
-- fold=0 keeps the earlier offset); otherwise L - after.
CREATE OR REPLACE TEMP MACRO utc_offset(tz, instant) AS
    timezone(tz, timezone('UTC', instant)) - instant;
CREATE OR REPLACE TEMP MACRO local_to_utc_with(tz, local_ts, before, after) AS
    CASE
        WHEN before = after THEN local_ts - before
        WHEN utc_offset(tz, local_ts - before) = before OR utc_offset(tz, local_ts - after) <> after
            THEN local_ts - before
        ELSE local_ts - after
    END;
CREATE OR REPLACE TEMP MACRO local_to_utc(tz, local_ts) AS
    local_to_utc_with(tz, local_ts, utc_offset(tz, local_ts - INTERVAL 1 DAY), utc_offset(tz, local_ts + INTERVAL 1 DAY));

-- utc_dates(start_utc, end_utc): the UTC dates an interval [start_utc, end_utc) touches, as a
-- list (one ending at midnight does not touch the next date): what a hash join on (group,
-- date) lists a business interval under.
CREATE OR REPLACE TEMP MACRO utc_dates(start_utc, end_utc) AS
    range(CAST(start_utc AS DATE), CAST(end_utc - INTERVAL 1 MICROSECOND AS DATE) + 1, INTERVAL 1 DAY);

-- group_date_key(group_key, instant): a business-hours group (localized_business_hours.sql) and
-- a UTC date as one BIGINT, distinct for every pair: the key of the hash joins that find the
-- business interval holding an instant. One key, computed from both, so that no plan can join
-- on the date alone first (every instant with every group's intervals of its date).
CREATE OR REPLACE TEMP MACRO group_date_key(group_key, instant) AS
    (CAST(group_key AS BIGINT) << 32) + (CAST(CAST(instant AS DATE) - DATE '1970-01-01' AS BIGINT) + 2147483648);
