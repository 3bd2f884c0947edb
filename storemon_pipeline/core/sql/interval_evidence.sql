-- What the extended report's intervals are learned from and applied to, per store: the hidden
-- polls and the pieces of business time between polls (docs/report.md: How sure each number
-- is). Input: evidence_polls, localized_business_hours, report_stores, report_as_of.
--
-- interval_held_out: store_key, side, status, disagrees, distance, bucket, local_hour
--   side 'between': each in-hours poll whose two neighbours agree (status: theirs), hidden:
--     disagrees = 1 if it showed the other status; distance = d1 d2 / (d1 + d2) minutes for
--     its distances d1, d2 to them (0 at either poll, as a point between them);
--   side 'after': each poll after another (status: the earlier one's): disagrees = 1 if it
--     differs from it; distance = minutes since it (what the time after a last poll is like);
--   bucket: the distance's bucket (edges in minutes below); local_hour: of the hidden poll.
-- interval_pieces: store_key, a, b, status_a, status_b, rank, s, e, local_hour
--   business time [s, e) of the week between consecutive in-hours polls at a and b (NULL: no
--   poll before / after) with their statuses, cut at the window edges: rank 1 in the last
--   hour, 2 in the rest of the last day, 3 in the rest of the week; local_hour: of its middle.
CREATE OR REPLACE TEMP MACRO distance_bucket(minutes) AS
    len(list_filter([10, 20, 30, 45, 60, 90, 120, 180, 240, 360, 480, 720, 1440], lambda edge: minutes >= edge));

CREATE OR REPLACE TABLE interval_neighbours AS
SELECT store_key, timestamp_utc AS t, status,
       lag(timestamp_utc) OVER w AS prev_t, lag(status) OVER w AS prev_status,
       lead(timestamp_utc) OVER w AS next_t, lead(status) OVER w AS next_status
FROM evidence_polls WINDOW w AS (PARTITION BY store_key ORDER BY timestamp_utc);

CREATE OR REPLACE TABLE interval_pieces AS
WITH params AS (SELECT as_of, as_of - INTERVAL 168 HOUR AS week_start FROM report_as_of),
segments AS (
    SELECT store_key, prev_t AS a, t AS b, prev_status AS status_a, status AS status_b
    FROM interval_neighbours, params WHERE prev_t IS NOT NULL AND t > week_start AND prev_t < as_of
    UNION ALL
    SELECT store_key, NULL, t, status, status FROM interval_neighbours, params WHERE prev_t IS NULL AND t > week_start
    UNION ALL
    SELECT store_key, t, NULL, status, status FROM interval_neighbours, params WHERE next_t IS NULL AND t < as_of
),
window_parts AS (
    SELECT 1 AS rank, as_of - INTERVAL 1 HOUR AS lo, as_of AS hi FROM params
    UNION ALL SELECT 2, as_of - INTERVAL 24 HOUR, as_of - INTERVAL 1 HOUR FROM params
    UNION ALL SELECT 3, week_start, as_of - INTERVAL 24 HOUR FROM params
)
SELECT g.store_key, g.a, g.b, g.status_a, g.status_b, w.rank,
       greatest(coalesce(g.a, w.lo), h.start_utc, w.lo) AS s,
       least(coalesce(g.b, w.hi), h.end_utc, w.hi) AS e
FROM segments g JOIN localized_business_hours h USING (store_key), window_parts w
WHERE h.end_utc > greatest(coalesce(g.a, w.lo), w.lo) AND h.start_utc < least(coalesce(g.b, w.hi), w.hi)
  AND coalesce(g.b, w.hi) > w.lo AND coalesce(g.a, w.lo) < w.hi;

CREATE OR REPLACE TABLE interval_held_out AS
WITH held_out AS (
    SELECT store_key, 'between' AS side, prev_status AS status, CAST(status <> prev_status AS INTEGER) AS disagrees,
           epoch(t - prev_t) * epoch(next_t - t) / epoch(next_t - prev_t) / 60 AS distance, t
    FROM interval_neighbours WHERE prev_status = next_status
    UNION ALL
    SELECT store_key, 'after', prev_status, CAST(status <> prev_status AS INTEGER), epoch(t - prev_t) / 60, t
    FROM interval_neighbours WHERE prev_status IS NOT NULL
)
SELECT store_key, side, status, disagrees, distance, distance_bucket(distance) AS bucket, date_trunc('hour', t) AS utc_hour
FROM held_out;

-- Local hours: each distinct (zone, UTC hour) converted once.
CREATE OR REPLACE TABLE interval_local_hours AS
SELECT zone_key, utc_hour, hour(timezone(tz, timezone('UTC', utc_hour))) AS local_hour
FROM (SELECT DISTINCT s.zone_key, s.tz, x.utc_hour
      FROM (SELECT store_key, utc_hour FROM interval_held_out
            UNION ALL SELECT store_key, date_trunc('hour', s + (e - s) / 2) FROM interval_pieces) x
      JOIN report_stores s USING (store_key));

CREATE OR REPLACE TABLE interval_held_out AS
SELECT h.store_key, h.side, h.status, h.disagrees, h.distance, h.bucket, l.local_hour
FROM interval_held_out h JOIN report_stores s USING (store_key)
JOIN interval_local_hours l ON l.zone_key = s.zone_key AND l.utc_hour = h.utc_hour;

CREATE OR REPLACE TABLE interval_pieces AS
SELECT p.*, l.local_hour
FROM interval_pieces p JOIN report_stores s USING (store_key)
JOIN interval_local_hours l ON l.zone_key = s.zone_key AND l.utc_hour = date_trunc('hour', p.s + (p.e - p.s) / 2);
