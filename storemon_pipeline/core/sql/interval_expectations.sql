-- Per piece of business time between polls: the time of the other status expected there, by
-- the model's rates (interval_rates.sql) adjusted for the local hour and the store.
-- Input: interval_pieces, interval_held_out, interval_curve_points, interval_hour_factor.
--
-- interval_curve: side, status, x, q  the disagreement rate at each whole minute x from a
--   poll, up to a week: linear between the curve's points, flat past the last
-- interval_store_factor: store_key, status, m  how much more (or less) this store disagreed
--   than expected, (disagreements + 2) / (expected + 2): 1 with nothing to go on
-- interval_piece_model: store_key, a, b, status_a, status_b, rank, open_seconds,
--   unobserved_seconds (further than 30 min from both polls), other_seconds (expected time of
--   the other status, where the polls agree: the rate's mean over the piece, 4-point
--   quadrature, times the hour's and the store's factors)
CREATE OR REPLACE TABLE interval_curve AS
WITH curve_segments AS (
    SELECT side, status, distance AS x0, q AS q0, lead(distance) OVER w AS x1, lead(q) OVER w AS q1
    FROM interval_curve_points WINDOW w AS (PARTITION BY side, status ORDER BY distance)
)
SELECT c.side, c.status, g.x,
       CASE WHEN c.x1 IS NULL THEN c.q0 ELSE c.q0 + (c.q1 - c.q0) * (g.x - c.x0) / (c.x1 - c.x0) END AS q
FROM (SELECT DISTINCT side, status, x FROM interval_curve_points, range(0, 10081) r(x)) g
ASOF JOIN curve_segments c ON g.side = c.side AND g.status = c.status AND g.x >= c.x0;

CREATE OR REPLACE TABLE interval_store_factor AS
SELECT h.store_key, h.status, (sum(h.disagrees) + 2) / (sum(c.q * coalesce(f.f, 1)) + 2) AS m
FROM interval_held_out h
JOIN interval_curve_points c USING (side, status, bucket)
LEFT JOIN interval_hour_factor f USING (status, local_hour)
WHERE h.side = 'between'
GROUP BY h.store_key, h.status;

CREATE OR REPLACE TABLE interval_piece_model AS
WITH points AS (
    SELECT p.store_key, p.a, p.b, p.rank, p.s, p.status_a, u,
           epoch(p.s + (p.e - p.s) * u - p.a) / 60 AS from_a,
           epoch(p.b - (p.s + (p.e - p.s) * u)) / 60 AS to_b
    FROM interval_pieces p, (VALUES (0.125), (0.375), (0.625), (0.875)) q(u)
    WHERE p.status_a = p.status_b
),
mean_rate AS (
    SELECT pt.store_key, pt.a, pt.b, pt.rank, pt.s, avg(c.q) AS q
    FROM points pt JOIN interval_curve c
        ON c.side = CASE WHEN pt.a IS NULL OR pt.b IS NULL THEN 'after' ELSE 'between' END
       AND c.status = pt.status_a
       AND c.x = least(10080, CAST(round(CASE WHEN pt.a IS NULL THEN pt.to_b WHEN pt.b IS NULL THEN pt.from_a
                                              ELSE pt.from_a * pt.to_b / (pt.from_a + pt.to_b) END) AS BIGINT))
    GROUP BY ALL
)
SELECT p.store_key, p.a, p.b, p.status_a, p.status_b, p.rank,
       epoch(p.e - p.s) AS open_seconds,
       greatest(0.0, epoch(least(p.e, coalesce(p.b - INTERVAL 30 MINUTE, p.e))
                           - greatest(p.s, coalesce(p.a + INTERVAL 30 MINUTE, p.s)))) AS unobserved_seconds,
       epoch(p.e - p.s) * least(1.0, r.q * coalesce(f.f, 1) * coalesce(m.m, 1)) AS other_seconds
FROM interval_pieces p
LEFT JOIN mean_rate r ON r.store_key = p.store_key AND r.a IS NOT DISTINCT FROM p.a AND r.b IS NOT DISTINCT FROM p.b
                     AND r.rank = p.rank AND r.s = p.s
LEFT JOIN interval_hour_factor f ON f.status = p.status_a AND f.local_hour = p.local_hour
LEFT JOIN interval_store_factor m ON m.store_key = p.store_key AND m.status = p.status_a;
