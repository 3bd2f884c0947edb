-- Per piece of business time between polls: the time of the other status expected there, by
-- the model's rates (interval_rates.sql) adjusted for the local hour and the store.
-- Input: interval_pieces, interval_held_out, interval_curve_points,
-- interval_hour_factor.
--
-- interval_curve: curve_key, q  the disagreement rate at x whole minutes from a poll, up to a
--   week, per side and status (curve_key(side, status, x)): linear between the curve's
--   points, flat past the last
-- interval_store_factor: store_key, status, m  how much more (or less) this store disagreed
--   than expected, (disagreements + 2) / (expected + 2): 1 with nothing to go on
-- interval_segment_model: store_key, b (the gap), agree (its polls' statuses), status_a, and
--   per window w (hour, day, week): open_<w> (business seconds), unobserved_<w> (further than
--   30 minutes from both polls), other_<w> (where the polls agree, the other status's expected
--   seconds: the rate's mean over each piece by 4-point quadrature, times the hour's and the
--   store's factors)
CREATE OR REPLACE TEMP MACRO curve_key(side, status, x) AS
    ((CASE side WHEN 'between' THEN 0 ELSE 2 END) + (CASE status WHEN 'active' THEN 0 ELSE 1 END)) * 10081 + x;

CREATE OR REPLACE TABLE interval_curve AS
WITH curve_segments AS (
    SELECT side, status, distance AS x0, q AS q0, lead(distance) OVER w AS x1, lead(q) OVER w AS q1
    FROM interval_curve_points WINDOW w AS (PARTITION BY side, status ORDER BY distance)
),
minutes AS (
    SELECT c.side, c.status, g.x,
           CASE WHEN c.x1 IS NULL THEN c.q0 ELSE c.q0 + (c.q1 - c.q0) * (g.x - c.x0) / (c.x1 - c.x0) END AS q
    FROM (SELECT DISTINCT side, status, x FROM interval_curve_points, range(0, 10081) r(x)) g
    ASOF JOIN curve_segments c ON g.side = c.side AND g.status = c.status AND g.x >= c.x0
)
SELECT curve_key(side, status, x) AS curve_key, q FROM minutes;

CREATE OR REPLACE TABLE interval_store_factor AS
SELECT h.store_key, h.status, (sum(h.disagrees) + 2) / (sum(c.q * coalesce(f.f, 1)) + 2) AS m
FROM interval_held_out h
JOIN interval_curve_points c USING (side, status, bucket)
LEFT JOIN interval_hour_factor f USING (status, local_hour)
WHERE h.side = 'between'
GROUP BY h.store_key, h.status;

-- Minutes from the poll(s) around a point at share u of the piece [s, e) of the gap (a, b),
-- all in epoch seconds: d1 d2 / (d1 + d2) between two polls, from the one poll otherwise.
CREATE OR REPLACE TEMP MACRO poll_distance(s, e, a, b, u) AS
    CAST(round(least(10080.0, CASE
        WHEN a IS NULL THEN (b - s - (e - s) * u) / 60
        WHEN b IS NULL THEN (s + (e - s) * u - a) / 60
        ELSE (s + (e - s) * u - a) * (b - s - (e - s) * u) / (b - a) / 60 END)) AS BIGINT);
-- The curve_key of the point at share u (NULL where the polls differ: no curve applies).
CREATE OR REPLACE TEMP MACRO piece_curve_key(status_a, status_b, s, e, a, b, u) AS
    CASE WHEN status_a = status_b THEN curve_key(CASE WHEN a IS NULL OR b IS NULL THEN 'after' ELSE 'between' END,
                                                 status_a, poll_distance(s, e, a, b, u)) END;

CREATE OR REPLACE TABLE interval_segment_model AS
WITH seconds AS (
    SELECT store_key, b, status_a, status_b, rank, sole, local_hour, epoch(s) AS s, epoch(e) AS e, epoch(a) AS a,
           epoch(b) AS b_seconds
    FROM interval_pieces
),
pieces AS (
    SELECT p.store_key, p.b, p.status_a, p.status_b, p.rank, p.sole,
           p.e - p.s AS open_seconds,
           greatest(0.0, least(p.e, coalesce(p.b_seconds - 1800, p.e)) - greatest(p.s, coalesce(p.a + 1800, p.s)))
               AS unobserved_seconds,
           -- (none where the polls differ)
           coalesce((p.e - p.s) * least(1.0, coalesce(f.f, 1) * coalesce(m.m, 1) * (q1.q + q2.q + q3.q + q4.q) / 4), 0)
               AS other_seconds
    FROM seconds p
    LEFT JOIN interval_curve q1 ON q1.curve_key = piece_curve_key(p.status_a, p.status_b, p.s, p.e, p.a, p.b_seconds, 0.125)
    LEFT JOIN interval_curve q2 ON q2.curve_key = piece_curve_key(p.status_a, p.status_b, p.s, p.e, p.a, p.b_seconds, 0.375)
    LEFT JOIN interval_curve q3 ON q3.curve_key = piece_curve_key(p.status_a, p.status_b, p.s, p.e, p.a, p.b_seconds, 0.625)
    LEFT JOIN interval_curve q4 ON q4.curve_key = piece_curve_key(p.status_a, p.status_b, p.s, p.e, p.a, p.b_seconds, 0.875)
    LEFT JOIN interval_hour_factor f ON f.status = p.status_a AND f.local_hour = p.local_hour
    LEFT JOIN interval_store_factor m ON m.store_key = p.store_key AND m.status = p.status_a
),
-- Each piece's seconds per window (hour: rank 1, day: ranks 1-2, week: all).
piece_windows AS (
    SELECT store_key, b, status_a, status_b, sole,
           CASE WHEN rank = 1 THEN open_seconds ELSE 0 END AS open_hour,
           CASE WHEN rank <= 2 THEN open_seconds ELSE 0 END AS open_day,
           open_seconds AS open_week,
           CASE WHEN rank = 1 THEN other_seconds ELSE 0 END AS other_hour,
           CASE WHEN rank <= 2 THEN other_seconds ELSE 0 END AS other_day,
           other_seconds AS other_week,
           CASE WHEN rank = 1 THEN unobserved_seconds ELSE 0 END AS unobserved_hour,
           CASE WHEN rank <= 2 THEN unobserved_seconds ELSE 0 END AS unobserved_day,
           unobserved_seconds AS unobserved_week
    FROM pieces
)
-- Per gap: a gap of one piece is that piece (most are: grouping them all cost most of this
-- table); the others' pieces are added up.
SELECT store_key, b, status_a = status_b AS agree, status_a, open_hour, open_day, open_week, other_hour, other_day,
       other_week, unobserved_hour, unobserved_day, unobserved_week
FROM piece_windows WHERE sole
UNION ALL
SELECT store_key, b, any_value(status_a) = any_value(status_b), any_value(status_a),
       sum(open_hour), sum(open_day), sum(open_week), sum(other_hour), sum(other_day), sum(other_week),
       sum(unobserved_hour), sum(unobserved_day), sum(unobserved_week)
FROM piece_windows WHERE NOT sole
GROUP BY store_key, b;
