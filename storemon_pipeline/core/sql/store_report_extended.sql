-- The report with what the polls can and cannot tell: per store, the seven report columns
-- unchanged and, per window w (hour, day, week), a 90 % interval for the true uptime, the
-- evidence and the business time no poll came near. Input: evidence_polls,
-- localized_business_hours, store_window_seconds, store_report, report_stores.
-- docs/report.md explains the model to owners; in short:
--
--  * The point stays nearest-poll. Its error is learned from the data of this very snapshot:
--    hide each in-hours poll whose two neighbours agree and count how often it disagrees with
--    them, as a function of its distance from the nearer one (a piecewise-linear curve from
--    0 at the poll through each distance bucket's rate, shrunk toward the status's overall
--    rate); and, for the time after a store's last poll (or before its first), how often a
--    poll disagrees with the one before it, by the distance between them.
--  * Those rates are scaled by the local hour of day (outages can be likelier at busy hours)
--    and per store (a flaky store disagrees more), each factor shrunk toward 1:
--    (disagreements + k) / (expected + k).
--  * Between two polls that agree, the business time at each point can be of the other status
--    with that rate: the expected hidden time is its integral (4-point quadrature per piece of
--    business time) and its variance that of one hidden excursion of uniform length,
--    E (2/3 B - E) for expected time E in business time B.
--  * Between two polls that differ there is one switch: the share of the gap in the earlier
--    status is how often a hidden poll between differing neighbours still shows it (r), with
--    the variance of a switch placed at random around that share, r (1 - r) / 3 B^2.
--  * Per window, the means and variances of its pieces add up; the interval is the mean
--    +- 1.645 standard deviations, clipped to [0, business time] and widened to include the
--    nearest-poll point (never centred away from the number shown), bounds rounded outward.
--    A store with no in-hours poll at all gets [0, business time].
--
-- store_key, and the six figures of store_report (its store_id is report_stores')
-- uptime_last_<w>_lo, uptime_last_<w>_hi  the 90 % interval for the true uptime, in the
--                          window's unit (minutes for the hour, hours otherwise); downtime's
--                          interval is business time minus it
-- polls_last_<w>           in-hours polls in [as_of - w, as_of] (as_of itself included: by
--                          default it is the newest poll)
-- unobserved_last_<w>      business time in the window further than 30 minutes from every
--                          in-hours poll, in the window's unit
-- The interval's ends in the window's unit (seconds in): mean +- 1.645 sd, or 1.2816 sd (the
-- one-sided 90 % quantile) where the other end reaches a hard limit (0 or the business
-- time, which the truth cannot pass); clipped to [0, business time], widened to include the
-- point, rounded outward. No evidence at all: [0, business time].
CREATE OR REPLACE TEMP MACRO interval_lo(has_evidence, point, mean, sd, open, unit) AS
    CAST(floor(100 * CASE WHEN NOT has_evidence THEN 0
        ELSE least(point, greatest(0, mean - CASE WHEN mean + 1.645 * sd >= open THEN 1.2816 ELSE 1.645 END * sd)) END
        / unit) / 100 AS DECIMAL(18, 2));
CREATE OR REPLACE TEMP MACRO interval_hi(has_evidence, point, mean, sd, open, unit) AS
    CAST(ceil(100 * CASE WHEN NOT has_evidence THEN open
        ELSE greatest(point, least(open, mean + CASE WHEN mean - 1.645 * sd <= 0 THEN 1.2816 ELSE 1.645 END * sd)) END
        / unit) / 100 AS DECIMAL(18, 2));
CREATE OR REPLACE TABLE store_report_extended AS
WITH params AS (SELECT as_of, as_of - INTERVAL 168 HOUR AS week_start FROM report_as_of),
neighbours AS (
    SELECT store_key, timestamp_utc AS t, status,
           lag(timestamp_utc) OVER w AS prev_t, lag(status) OVER w AS prev_status,
           lead(timestamp_utc) OVER w AS next_t, lead(status) OVER w AS next_status
    FROM evidence_polls WINDOW w AS (PARTITION BY store_key ORDER BY timestamp_utc)
),
held_out AS (
    SELECT store_key, 'between' AS side, prev_status AS status, CAST(status <> prev_status AS INTEGER) AS disagrees,
           epoch(t - prev_t) * epoch(next_t - t) / epoch(next_t - prev_t) / 60 AS distance,
           date_trunc('hour', t) AS utc_hour
    FROM neighbours WHERE prev_status = next_status
    UNION ALL
    SELECT store_key, 'after', prev_status, CAST(status <> prev_status AS INTEGER), epoch(t - prev_t) / 60,
           date_trunc('hour', t)
    FROM neighbours WHERE prev_status IS NOT NULL
),
segments AS (
    SELECT store_key, prev_t AS a, t AS b, prev_status AS status_a, status AS status_b
    FROM neighbours, params WHERE prev_t IS NOT NULL AND t > week_start AND prev_t < as_of
    UNION ALL
    SELECT store_key, NULL, t, status, status FROM neighbours, params WHERE prev_t IS NULL AND t > week_start
    UNION ALL
    SELECT store_key, t, NULL, status, status FROM neighbours, params WHERE next_t IS NULL AND t < as_of
),
pieces AS (
    SELECT g.*, w.rank,
           greatest(coalesce(g.a, w.lo), h.start_utc, w.lo) AS s,
           least(coalesce(g.b, w.hi), h.end_utc, w.hi) AS e
    FROM segments g JOIN localized_business_hours h USING (store_key),
         (SELECT 1 AS rank, as_of - INTERVAL 1 HOUR AS lo, as_of AS hi FROM params
          UNION ALL SELECT 2, as_of - INTERVAL 24 HOUR, as_of - INTERVAL 1 HOUR FROM params
          UNION ALL SELECT 3, week_start, as_of - INTERVAL 24 HOUR FROM params) w
    WHERE h.end_utc > greatest(coalesce(g.a, w.lo), w.lo) AND h.start_utc < least(coalesce(g.b, w.hi), w.hi)
      AND coalesce(g.b, w.hi) > w.lo AND coalesce(g.a, w.lo) < w.hi
),
local_hours AS (
    SELECT zone_key, utc_hour, hour(timezone(tz, timezone('UTC', utc_hour))) AS local_hour
    FROM (SELECT DISTINCT s.zone_key, s.tz, x.utc_hour
          FROM (SELECT store_key, utc_hour FROM held_out
                UNION ALL SELECT store_key, date_trunc('hour', s + (e - s) / 2) FROM pieces) x
          JOIN report_stores s USING (store_key))
),
held_out_local AS (
    SELECT h.*, l.local_hour,
           len(list_filter([10, 20, 30, 45, 60, 90, 120, 180, 240, 360, 480, 720, 1440], lambda edge: h.distance >= edge)) AS bucket
    FROM held_out h JOIN report_stores s USING (store_key)
    JOIN local_hours l ON l.zone_key = s.zone_key AND l.utc_hour = h.utc_hour
),
by_status AS (SELECT side, status, (sum(disagrees) + 0.5) / (count(*) + 1) AS q FROM held_out_local GROUP BY side, status),
curve_points AS (
    SELECT side, status, 0.0 AS distance, 0.0 AS q FROM by_status
    UNION ALL
    SELECT h.side, h.status, avg(h.distance), (sum(h.disagrees) + 5 * any_value(b.q)) / (count(*) + 5)
    FROM held_out_local h JOIN by_status b USING (side, status) GROUP BY h.side, h.status, h.bucket
),
curve_segments AS (
    SELECT side, status, distance AS x0, q AS q0, lead(distance) OVER w AS x1, lead(q) OVER w AS q1
    FROM curve_points WINDOW w AS (PARTITION BY side, status ORDER BY distance)
),
curve AS (
    SELECT c.side, c.status, g.x,
           CASE WHEN c.x1 IS NULL THEN c.q0 ELSE c.q0 + (c.q1 - c.q0) * (g.x - c.x0) / (c.x1 - c.x0) END AS q
    FROM (SELECT side, status, x FROM by_status, range(0, 10081) r(x)) g
    ASOF JOIN curve_segments c ON g.side = c.side AND g.status = c.status AND g.x >= c.x0
),
held_out_expected AS (
    SELECT h.*, c.q AS expected
    FROM held_out_local h JOIN curve c ON c.side = h.side AND c.status = h.status AND c.x = least(10080, CAST(round(h.distance) AS BIGINT))
),
hour_factor AS (
    SELECT status, local_hour, (sum(disagrees) + 5) / (sum(expected) + 5) AS f FROM held_out_expected WHERE side = 'between' GROUP BY ALL
),
store_multiplier AS (
    SELECT h.store_key, h.status, (sum(h.disagrees) + 2) / (sum(h.expected * f.f) + 2) AS m
    FROM held_out_expected h JOIN hour_factor f USING (status, local_hour) WHERE h.side = 'between' GROUP BY ALL
),
piece_points AS (
    SELECT p.store_key, p.a, p.b, p.rank, p.status_a, p.s, p.e, u,
           epoch(p.s + (p.e - p.s) * u - p.a) / 60 AS from_a,
           epoch(p.b - (p.s + (p.e - p.s) * u)) / 60 AS to_b
    FROM pieces p, (VALUES (0.125), (0.375), (0.625), (0.875)) q(u)
    WHERE p.status_a = p.status_b
),
piece_expected AS (
    SELECT pp.store_key, pp.a, pp.b, pp.rank, pp.s, pp.e, avg(c.q) AS mean_q
    FROM piece_points pp JOIN curve c ON c.side = CASE WHEN pp.a IS NULL OR pp.b IS NULL THEN 'after' ELSE 'between' END
        AND c.status = pp.status_a AND c.x = least(10080, CAST(round(
        CASE WHEN pp.a IS NULL THEN pp.to_b WHEN pp.b IS NULL THEN pp.from_a
             ELSE pp.from_a * pp.to_b / (pp.from_a + pp.to_b) END) AS BIGINT))
    GROUP BY ALL
),
piece_model AS (
    SELECT p.store_key, p.a, p.b, p.rank, p.status_a, p.status_b,
           epoch(p.e - p.s) AS open_seconds,
           greatest(0.0, epoch(least(p.e, coalesce(p.b - INTERVAL 30 MINUTE, p.e)) - greatest(p.s, coalesce(p.a + INTERVAL 30 MINUTE, p.s)))) AS unobserved_seconds,
           epoch(p.e - p.s) * least(1.0, x.mean_q * coalesce(f.f, 1) * coalesce(m.m, 1)) AS other_seconds
    FROM pieces p JOIN report_stores s USING (store_key)
    JOIN local_hours l ON l.zone_key = s.zone_key AND l.utc_hour = date_trunc('hour', p.s + (p.e - p.s) / 2)
    LEFT JOIN piece_expected x ON x.store_key = p.store_key AND x.a IS NOT DISTINCT FROM p.a AND x.b IS NOT DISTINCT FROM p.b AND x.rank = p.rank AND x.s = p.s
    LEFT JOIN hour_factor f ON f.status = p.status_a AND f.local_hour = l.local_hour
    LEFT JOIN store_multiplier m ON m.store_key = p.store_key AND m.status = p.status_a
),
switch_balance AS (
    -- A poll is a look at a random moment, so nearest-poll is right on average: the hidden
    -- time expected where polls agree (up time lost where they are active, gained where they
    -- are inactive) is balanced, on average, where they differ. The up share of a differing
    -- gap is therefore 1/2 + this (the same both ways: a stationary process reversed in time).
    SELECT greatest(-0.45, least(0.45, coalesce(
               (coalesce(sum(other_seconds) FILTER (WHERE status_a = status_b AND status_a = 'active'), 0)
                - coalesce(sum(other_seconds) FILTER (WHERE status_a = status_b AND status_a = 'inactive'), 0))
               / nullif(sum(open_seconds) FILTER (WHERE status_a <> status_b), 0), 0))) AS up_share_shift
    FROM piece_model
),
segment_windows AS (
    SELECT g.store_key, g.a, g.b, any_value(g.status_a) AS status_a, any_value(g.status_b) AS status_b, w.window_rank,
           sum(g.open_seconds) AS open_seconds, sum(g.unobserved_seconds) AS unobserved_seconds,
           sum(g.other_seconds) AS other_seconds
    FROM piece_model g JOIN (VALUES (1), (2), (3)) w(window_rank) ON g.rank <= w.window_rank
    GROUP BY g.store_key, g.a, g.b, w.window_rank
),
segment_model AS (
    SELECT g.*,
           CASE WHEN g.status_a <> g.status_b THEN w.up_share_shift * g.open_seconds
                ELSE CASE g.status_a WHEN 'active' THEN -1 ELSE 1 END * g.other_seconds END AS uptime_shift,
           CASE WHEN g.status_a <> g.status_b THEN (0.25 - w.up_share_shift ^ 2) / 3 * g.open_seconds ^ 2
                ELSE greatest(0.0, g.other_seconds * (2.0 / 3 * g.open_seconds - g.other_seconds)) END AS uptime_variance
    FROM segment_windows g, switch_balance w
),
store_model AS (
    SELECT store_key,
        sum(uptime_shift) FILTER (WHERE window_rank = 1) AS shift_hour,
        sum(uptime_shift) FILTER (WHERE window_rank = 2) AS shift_day,
        sum(uptime_shift) FILTER (WHERE window_rank = 3) AS shift_week,
        sum(uptime_variance) FILTER (WHERE window_rank = 1) AS var_hour,
        sum(uptime_variance) FILTER (WHERE window_rank = 2) AS var_day,
        sum(uptime_variance) FILTER (WHERE window_rank = 3) AS var_week,
        sum(unobserved_seconds) FILTER (WHERE window_rank = 1) AS unobserved_hour,
        sum(unobserved_seconds) FILTER (WHERE window_rank = 2) AS unobserved_day,
        sum(unobserved_seconds) FILTER (WHERE window_rank = 3) AS unobserved_week
    FROM segment_model GROUP BY store_key
),
polls AS (
    SELECT e.store_key,
        count(*) FILTER (WHERE e.timestamp_utc >= p.as_of - INTERVAL 1 HOUR) AS polls_hour,
        count(*) FILTER (WHERE e.timestamp_utc >= p.as_of - INTERVAL 24 HOUR) AS polls_day,
        count(*) AS polls_week
    FROM evidence_polls e, params p WHERE e.timestamp_utc >= p.week_start AND e.timestamp_utc <= p.as_of
    GROUP BY e.store_key
),
bounds AS (
    SELECT s.store_key, m.store_key IS NOT NULL AS has_evidence,
        coalesce(x.up_hour, 0) AS point_hour, coalesce(x.open_hour, 0) AS open_hour,
        coalesce(x.up_hour, 0) + coalesce(m.shift_hour, 0) AS mean_hour, sqrt(coalesce(m.var_hour, 0)) AS sd_hour,
        coalesce(x.up_day, 0) AS point_day, coalesce(x.open_day, 0) AS open_day,
        coalesce(x.up_day, 0) + coalesce(m.shift_day, 0) AS mean_day, sqrt(coalesce(m.var_day, 0)) AS sd_day,
        coalesce(x.up_week, 0) AS point_week, coalesce(x.open_week, 0) AS open_week,
        coalesce(x.up_week, 0) + coalesce(m.shift_week, 0) AS mean_week, sqrt(coalesce(m.var_week, 0)) AS sd_week,
        m.unobserved_hour, m.unobserved_day, m.unobserved_week
    FROM report_stores s LEFT JOIN store_window_seconds x USING (store_key) LEFT JOIN store_model m USING (store_key)
)
SELECT b.store_key, r.* EXCLUDE (store_id),
    interval_lo(b.has_evidence, b.point_hour, b.mean_hour, b.sd_hour, b.open_hour, 60) AS uptime_last_hour_lo,
    interval_hi(b.has_evidence, b.point_hour, b.mean_hour, b.sd_hour, b.open_hour, 60) AS uptime_last_hour_hi,
    interval_lo(b.has_evidence, b.point_day, b.mean_day, b.sd_day, b.open_day, 3600) AS uptime_last_day_lo,
    interval_hi(b.has_evidence, b.point_day, b.mean_day, b.sd_day, b.open_day, 3600) AS uptime_last_day_hi,
    interval_lo(b.has_evidence, b.point_week, b.mean_week, b.sd_week, b.open_week, 3600) AS uptime_last_week_lo,
    interval_hi(b.has_evidence, b.point_week, b.mean_week, b.sd_week, b.open_week, 3600) AS uptime_last_week_hi,
    coalesce(po.polls_hour, 0) AS polls_last_hour, coalesce(po.polls_day, 0) AS polls_last_day,
    coalesce(po.polls_week, 0) AS polls_last_week,
    -- (A store with no in-hours poll at all has observed none of its business time.)
    CAST(round(CASE WHEN b.has_evidence THEN coalesce(b.unobserved_hour, 0) ELSE b.open_hour END / 60, 2) AS DECIMAL(18, 2)) AS unobserved_last_hour,
    CAST(round(CASE WHEN b.has_evidence THEN coalesce(b.unobserved_day, 0) ELSE b.open_day END / 3600, 2) AS DECIMAL(18, 2)) AS unobserved_last_day,
    CAST(round(CASE WHEN b.has_evidence THEN coalesce(b.unobserved_week, 0) ELSE b.open_week END / 3600, 2) AS DECIMAL(18, 2)) AS unobserved_last_week
FROM bounds b JOIN report_stores s USING (store_key) JOIN store_report r USING (store_id)
LEFT JOIN polls po USING (store_key)
ORDER BY b.store_key;
