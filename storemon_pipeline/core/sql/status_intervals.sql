-- Business-hours UTC intervals of every polled store, cut where the status changes and
-- labelled by the nearest in-hours poll at or before as_of.
-- Input: report_polls, the tables of localized_business_hours.sql. Needs the macros of
-- time_zone_macros.sql.
--
-- evidence_polls:   store_key, timestamp_utc, status: the polls inside business hours (the
--                   only evidence; store_incidents reads them too)
-- evidence_neighbours: each of them with the store's evidence poll before and after it:
--                   previous_poll, previous_status, next_poll, next_status (NULL: none);
--                   store_incidents and interval_evidence.sql read it too
-- status_intervals: store_key, start_utc, end_utc, status

-- A poll is in hours if one of its store's business intervals holds it (intervals are merged,
-- so at most one does). Its store's group's intervals are the store's, and a group's are
-- listed under each UTC date they touch, so a hash join on (group, date) finds the one or two
-- that can hold a poll without sorting the polls, as an ASOF join would, in a table small
-- enough to stay in the CPU's caches. An interval longer than a month (a store open round the
-- clock with older polls; a few per store at most) would list a date per day of history: it is
-- joined on its store alone.
CREATE OR REPLACE TABLE evidence_polls AS
WITH hours_by_date AS (
    SELECT group_date_key(group_key, utc_date) AS group_date, start_utc, end_utc
    FROM (SELECT group_key, start_utc, end_utc, unnest(utc_dates(start_utc, end_utc)) AS utc_date
          FROM group_business_hours WHERE end_utc - start_utc <= INTERVAL 31 DAY)
)
SELECT p.store_key, p.timestamp_utc, p.status
FROM report_polls p JOIN business_hours_groups g USING (store_key)
JOIN hours_by_date b ON b.group_date = group_date_key(g.group_key, p.timestamp_utc)
WHERE p.timestamp_utc >= b.start_utc AND p.timestamp_utc < b.end_utc
UNION ALL
SELECT p.store_key, p.timestamp_utc, p.status
FROM report_polls p
JOIN localized_business_hours b ON p.store_key = b.store_key
WHERE b.end_utc - b.start_utc > INTERVAL 31 DAY AND p.timestamp_utc >= b.start_utc AND p.timestamp_utc < b.end_utc;

-- (Two polls of a store at the same instant never reach this table: ingestion keeps one
-- per (store_id, timestamp_utc), inactive if they disagree; no_duplicate_poll_keys checks it.)
CREATE OR REPLACE TABLE evidence_neighbours AS
SELECT store_key, timestamp_utc, status,
       lag(timestamp_utc) OVER w AS previous_poll, lag(status) OVER w AS previous_status,
       lead(timestamp_utc) OVER w AS next_poll, lead(status) OVER w AS next_status
FROM evidence_polls WINDOW w AS (PARTITION BY store_key ORDER BY timestamp_utc);

CREATE OR REPLACE TABLE status_intervals AS
WITH
-- The nearest-poll status changes halfway between two polls of different status.
segment_starts AS (
    SELECT store_key, status,
           CASE WHEN previous_poll IS NULL THEN TIMESTAMP '-infinity'
                ELSE make_timestamp(epoch_us(previous_poll) + (epoch_us(timestamp_utc) - epoch_us(previous_poll)) // 2)
           END AS segment_start
    FROM evidence_neighbours
    WHERE previous_status IS NULL OR previous_status <> status
),
pieces AS (
    -- Each business interval opens with the status in force at its start
    -- (none: a store with no evidence at all is down).
    SELECT b.store_key, b.start_utc AS open_start, b.end_utc AS open_end, b.start_utc AS piece_start,
           coalesce(s.status, 'inactive') AS status
    FROM localized_business_hours b
    ASOF LEFT JOIN segment_starts s ON b.store_key = s.store_key AND b.start_utc >= s.segment_start
    UNION ALL
    -- ... and changes wherever a status segment starts inside it.
    SELECT b.store_key, b.start_utc, b.end_utc, s.segment_start, s.status
    FROM segment_starts s
    ASOF JOIN localized_business_hours b ON s.store_key = b.store_key AND s.segment_start >= b.start_utc
    WHERE s.segment_start > b.start_utc AND s.segment_start < b.end_utc
)
SELECT store_key,
       piece_start AS start_utc,
       coalesce(lead(piece_start) OVER (PARTITION BY store_key, open_start ORDER BY piece_start), open_end) AS end_utc,
       status
FROM pieces;
