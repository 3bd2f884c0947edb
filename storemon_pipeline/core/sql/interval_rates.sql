-- The interval model's rates, fitted on the sample of stores in interval_model_stores (all
-- of a report's stores up to a few thousand: core/report.py, model_sample), so that every
-- shard of a report uses the same model. Input: interval_held_out, interval_model_stores.
--
-- interval_curve_points: side, status, bucket, distance, q
--   how often a hidden poll disagrees, per side, status and distance bucket: q at the
--   bucket's mean distance, shrunk toward the side's and status's overall rate by 5 polls;
--   bucket -1 is the point (0, 0): at a poll nothing is hidden.
-- interval_hour_factor: status, local_hour, f
--   how much likelier disagreement is at this local hour than the buckets' rates expect,
--   (disagreements + 5) / (expected + 5): 1 when the hour says nothing.
CREATE OR REPLACE TABLE interval_curve_points AS
WITH sample AS (SELECT h.* FROM interval_held_out h SEMI JOIN interval_model_stores USING (store_key)),
overall AS (SELECT side, status, (sum(disagrees) + 0.5) / (count(*) + 1) AS q FROM sample GROUP BY side, status)
SELECT side, status, -1 AS bucket, 0.0 AS distance, 0.0 AS q FROM overall
UNION ALL
SELECT h.side, h.status, h.bucket, round(avg(h.distance), 9),
       round((sum(h.disagrees) + 5 * any_value(o.q)) / (count(*) + 5), 12)
FROM sample h JOIN overall o USING (side, status)
GROUP BY h.side, h.status, h.bucket;

CREATE OR REPLACE TABLE interval_hour_factor AS
SELECT h.status, h.local_hour, round((sum(h.disagrees) + 5) / (sum(c.q) + 5), 12) AS f
FROM interval_held_out h SEMI JOIN interval_model_stores USING (store_key)
JOIN interval_curve_points c USING (side, status, bucket)
WHERE h.side = 'between'
GROUP BY h.status, h.local_hour;
