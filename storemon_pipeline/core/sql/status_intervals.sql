-- Business-hours UTC intervals of every polled store, cut where the status changes and
-- labelled by the nearest in-hours poll at or before as_of.
-- Input: report_as_of, raw_store_polls, localized_business_hours.
CREATE OR REPLACE TABLE status_intervals AS
WITH params AS (SELECT as_of FROM report_as_of),
known_polls AS (
    SELECT store_id, timestamp_utc, status FROM raw_store_polls, params WHERE timestamp_utc <= params.as_of
),
-- Evidence: polls inside business hours (intervals are merged, so the latest interval
-- starting at or before a poll is the only one that can hold it).
-- The ASOF joins match on hash(store_id), then check store_id: sorting 18M rows by a 64-bit
-- key instead of a string took the 10x benchmark's join from 7.3 s to 5.1 s. (Only if two
-- ids shared a hash, odds ~1e-9 for 140k stores, could a poll be matched to the wrong
-- store's interval and then dropped.)
evidence_polls AS (
    SELECT p.store_id, p.timestamp_utc, p.status
    FROM (SELECT *, hash(store_id) AS store_hash FROM known_polls) p
    ASOF JOIN (SELECT *, hash(store_id) AS store_hash FROM localized_business_hours) b
        ON p.store_hash = b.store_hash AND p.timestamp_utc >= b.start_utc
    WHERE p.store_id = b.store_id AND p.timestamp_utc < b.end_utc
),
-- (Two polls of a store at the same instant never reach this table: ingestion keeps one
-- per (store_id, timestamp_utc), inactive if they disagree; no_duplicate_poll_keys checks it.)
neighbours AS (
    SELECT *, lag(status) OVER w AS previous_status, lag(timestamp_utc) OVER w AS previous_poll
    FROM evidence_polls WINDOW w AS (PARTITION BY store_id ORDER BY timestamp_utc)
),
-- The nearest-poll status changes halfway between two polls of different status.
segment_starts AS (
    SELECT store_id, status,
           CASE WHEN previous_poll IS NULL THEN TIMESTAMP '-infinity'
                ELSE make_timestamp(epoch_us(previous_poll) + (epoch_us(timestamp_utc) - epoch_us(previous_poll)) // 2)
           END AS segment_start
    FROM neighbours
    WHERE previous_status IS NULL OR previous_status <> status
),
pieces AS (
    -- Each business interval opens with the status in force at its start
    -- (none: a store with no evidence at all is down).
    SELECT b.store_id, b.start_utc AS open_start, b.end_utc AS open_end, b.start_utc AS piece_start,
           coalesce(s.status, 'inactive') AS status
    FROM (SELECT *, hash(store_id) AS store_hash FROM localized_business_hours) b
    ASOF LEFT JOIN (SELECT *, hash(store_id) AS store_hash FROM segment_starts) s
        ON b.store_hash = s.store_hash AND b.start_utc >= s.segment_start AND b.store_id = s.store_id
    UNION ALL
    -- ... and changes wherever a status segment starts inside it.
    SELECT b.store_id, b.start_utc, b.end_utc, s.segment_start, s.status
    FROM (SELECT *, hash(store_id) AS store_hash FROM segment_starts) s
    ASOF JOIN (SELECT *, hash(store_id) AS store_hash FROM localized_business_hours) b
        ON s.store_hash = b.store_hash AND s.segment_start >= b.start_utc
    WHERE s.store_id = b.store_id AND s.segment_start > b.start_utc AND s.segment_start < b.end_utc
)
SELECT store_id,
       piece_start AS start_utc,
       coalesce(lead(piece_start) OVER (PARTITION BY store_id, open_start ORDER BY piece_start), open_end) AS end_utc,
       status
FROM pieces;
