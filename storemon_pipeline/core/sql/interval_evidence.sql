-- What the extended report's intervals are learned from and applied to, per store: the hidden
-- polls and the pieces of business time between polls (docs/report.md: How sure each number
-- is). Input: evidence_neighbours, the tables of localized_business_hours.sql, report_stores,
-- report_as_of, interval_model_stores (the stores a model is fitted on; empty when it is
-- given). Needs the macros of time_zone_macros.sql.
--
-- interval_segments: store_key, a, b, status_a, status_b, lo, hi
--   the gaps between consecutive in-hours polls at a and b (NULL: no poll before / after;
--   (store_key, b) names a gap), with their statuses, that reach into the week; [lo, hi) is
--   their part in the week.
-- interval_pieces: the segment's columns, rank, s, e, sole, local_hour
--   business time [s, e) of a segment, cut at the window edges: rank 1 in the last hour, 2 in
--   the rest of the last day, 3 in the rest of the week; sole: the segment's only piece (most
--   are: the segment lies inside one business interval and one window part); local_hour of
--   its middle.
-- interval_held_out: store_key, side, status, disagrees, distance, bucket, local_hour
--   the polls of the last 28 days (recent behaviour; the cost does not grow with history):
--   side 'between': each poll whose two neighbours agree (status: theirs), hidden: disagrees
--     = 1 if it showed the other status; distance = d1 d2 / (d1 + d2) minutes for its
--     distances d1, d2 to them (0 at either poll, as a point between them);
--   side 'after' (model stores only): each poll after another (status: the earlier one's):
--     disagrees = 1 if it differs; distance = minutes since it (the time after a last poll);
--   bucket: the distance's bucket (edges in minutes below); local_hour: of the hidden poll.
CREATE OR REPLACE TEMP MACRO hour_number(ts) AS epoch_us(ts) // 3600000000;
-- The number of edges at or below the distance: 10, 20, 30, 45, 60, 90, 120, 180, 240, 360,
-- 480, 720, 1440 minutes. (A CASE, not a list: building and filtering a list per row cost
-- several times as much.)
CREATE OR REPLACE TEMP MACRO distance_bucket(minutes) AS
    CASE WHEN minutes >= 1440 THEN 13 WHEN minutes >= 720 THEN 12 WHEN minutes >= 480 THEN 11
         WHEN minutes >= 360 THEN 10 WHEN minutes >= 240 THEN 9 WHEN minutes >= 180 THEN 8
         WHEN minutes >= 120 THEN 7 WHEN minutes >= 90 THEN 6 WHEN minutes >= 60 THEN 5
         WHEN minutes >= 45 THEN 4 WHEN minutes >= 30 THEN 3 WHEN minutes >= 20 THEN 2
         WHEN minutes >= 10 THEN 1 ELSE 0 END;

-- The local hour of every UTC hour of the last 29 days, per zone: each converted once.
CREATE OR REPLACE TABLE interval_local_hours AS
SELECT z.zone_key, h.hour_number, hour(timezone(z.tz, timezone('UTC', make_timestamp(h.hour_number * 3600000000)))) AS local_hour
FROM (SELECT DISTINCT zone_key, tz FROM report_stores) z,
     (SELECT range AS hour_number FROM report_as_of,
             range(hour_number(as_of - INTERVAL 29 DAY), hour_number(as_of) + 1)) h;

CREATE OR REPLACE TABLE interval_segments AS
WITH params AS (SELECT as_of, as_of - INTERVAL 168 HOUR AS week_start FROM report_as_of),
segments AS (
    -- the gap ending at each poll (the first poll's has no start), and the one after the last
    SELECT store_key, previous_poll AS a, timestamp_utc AS b, coalesce(previous_status, status) AS status_a,
           status AS status_b
    FROM evidence_neighbours
    UNION ALL SELECT store_key, timestamp_utc, NULL, status, status FROM evidence_neighbours WHERE next_poll IS NULL
)
SELECT g.*, greatest(coalesce(g.a, p.week_start), p.week_start) AS lo, least(coalesce(g.b, p.as_of), p.as_of) AS hi
FROM segments g, params p
WHERE coalesce(g.b, p.as_of) > p.week_start AND coalesce(g.a, p.week_start) < p.as_of;

CREATE OR REPLACE TABLE interval_pieces AS
WITH params AS (SELECT as_of, as_of - INTERVAL 168 HOUR AS week_start FROM report_as_of),
week_hours AS (
    SELECT h.store_key, h.start_utc, h.end_utc FROM localized_business_hours h, params p
    WHERE h.end_utc > p.week_start AND h.start_utc < p.as_of
),
-- The week's business intervals of each store's group (the store's), each under every UTC
-- date it touches in the week (a few, even for a store open round the clock for years).
hours_by_date AS (
    SELECT group_date_key(group_key, utc_date) AS group_date, start_utc, end_utc
    FROM (SELECT h.group_key, h.start_utc, h.end_utc,
                 unnest(utc_dates(greatest(h.start_utc, p.week_start), least(h.end_utc, p.as_of))) AS utc_date
          FROM group_business_hours h, params p
          WHERE h.end_utc > p.week_start AND h.start_utc < p.as_of)
),
-- Segments and business intervals are each sorted and disjoint per store: each overlap starts
-- either at a segment's start (inside a business interval: a hash join on the store's group
-- and the UTC date finds it, as for evidence_polls, without sorting the segments) or at a
-- business interval's start (inside a segment: an ASOF join).
-- whole: the overlap is the whole segment (then no other business interval starts inside it).
overlapping AS (
    SELECT g.store_key, g.a, g.b, g.status_a, g.status_b, g.lo AS s, least(g.hi, h.end_utc) AS e,
           h.end_utc >= g.hi AS whole
    FROM interval_segments g JOIN business_hours_groups k USING (store_key)
    JOIN hours_by_date h ON h.group_date = group_date_key(k.group_key, g.lo)
    WHERE g.lo >= h.start_utc AND g.lo < h.end_utc
    UNION ALL
    SELECT g.store_key, g.a, g.b, g.status_a, g.status_b, h.start_utc, least(g.hi, h.end_utc), false
    FROM week_hours h ASOF JOIN interval_segments g ON h.store_key = g.store_key AND h.start_utc >= g.lo
    WHERE h.start_utc > g.lo AND h.start_utc < g.hi
),
window_parts AS (
    SELECT 1 AS rank, as_of - INTERVAL 1 HOUR AS lo, as_of AS hi FROM params
    UNION ALL SELECT 2, as_of - INTERVAL 24 HOUR, as_of - INTERVAL 1 HOUR FROM params
    UNION ALL SELECT 3, week_start, as_of - INTERVAL 24 HOUR FROM params
),
cut AS (
    SELECT o.store_key, o.a, o.b, o.status_a, o.status_b, w.rank, greatest(o.s, w.lo) AS s, least(o.e, w.hi) AS e,
           o.whole AND o.s >= w.lo AND o.e <= w.hi AS sole
    FROM overlapping o, window_parts w WHERE o.e > w.lo AND o.s < w.hi
)
SELECT c.*, l.local_hour
FROM cut c JOIN report_stores r USING (store_key)
JOIN interval_local_hours l ON l.zone_key = r.zone_key AND l.hour_number = (epoch_us(c.s) + epoch_us(c.e)) // 7200000000;

CREATE OR REPLACE TABLE interval_held_out AS
WITH recent AS (
    SELECT n.store_key, n.timestamp_utc AS t, n.status, n.previous_poll AS prev_t, n.previous_status AS prev_status,
           n.next_poll AS next_t, n.next_status
    FROM evidence_neighbours n, report_as_of p WHERE n.timestamp_utc >= p.as_of - INTERVAL 28 DAY
),
held_out AS (
    SELECT store_key, 'between' AS side, prev_status AS status, CAST(status <> prev_status AS INTEGER) AS disagrees,
           epoch(t - prev_t) * epoch(next_t - t) / epoch(next_t - prev_t) / 60 AS distance, t
    FROM recent WHERE prev_status = next_status
    UNION ALL
    SELECT store_key, 'after', prev_status, CAST(status <> prev_status AS INTEGER), epoch(t - prev_t) / 60, t
    FROM recent SEMI JOIN interval_model_stores USING (store_key) WHERE prev_status IS NOT NULL
)
SELECT h.store_key, h.side, h.status, h.disagrees, h.distance, distance_bucket(h.distance) AS bucket, l.local_hour
FROM held_out h JOIN report_stores r USING (store_key)
JOIN interval_local_hours l ON l.zone_key = r.zone_key AND l.hour_number = hour_number(h.t);
