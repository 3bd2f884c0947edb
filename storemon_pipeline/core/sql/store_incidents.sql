-- The outages the polls show in the last week: one row per run of consecutive inactive
-- in-hours polls (the report's evidence) of a store, if its estimated span overlaps
-- [as_of - 168 h, as_of). Input: evidence_neighbours, localized_business_hours, report_stores.
--
-- store_key
-- start_utc, end_utc      the nearest-poll estimate, as the report counts it: halfway between
--                         the last active and the first inactive poll, and between the last
--                         inactive and the next active poll. start_utc is NULL when no active
--                         poll precedes the run (down since before the first poll); end_utc is
--                         NULL while the outage lasts (no active poll after it, up to as_of).
-- preceding_active_utc, following_active_utc  hard bounds: every outage an inactive poll of the
--                         run saw lay within this span (NULL: unbounded); tested against truth
-- first_inactive_utc, last_inactive_utc  the run's first and last inactive poll
-- min_minutes             last - first inactive poll: the least the outage lasted if the run saw
--                         one outage (two short ones with no poll between them look like one)
-- max_minutes             following - preceding active poll: the most (NULL when unbounded)
-- inactive_polls          how many polls saw it
-- start_local, end_local  start_utc and end_utc as the store's wall-clock time
-- business_minutes        business time in [start, end) within the week: what it cost in the
--                         report's downtime_last_week (the incidents of a store add up to it,
--                         unless the store has no evidence at all)
CREATE OR REPLACE TABLE store_incidents AS
WITH params AS (SELECT as_of, as_of - INTERVAL 168 HOUR AS week_start FROM report_as_of),
numbered AS (
    SELECT *, sum(CASE WHEN previous_status IS DISTINCT FROM 'inactive' THEN 1 ELSE 0 END)
                  OVER (PARTITION BY store_key ORDER BY timestamp_utc) AS run
    FROM evidence_neighbours WHERE status = 'inactive'
),
runs AS (
    SELECT store_key,
           min(timestamp_utc) AS first_inactive_utc,
           max(timestamp_utc) AS last_inactive_utc,
           count(*) AS inactive_polls,
           arg_min_null(previous_poll, timestamp_utc) AS preceding_active_utc,  -- (NULL: none)
           arg_max_null(next_poll, timestamp_utc) AS following_active_utc
    FROM numbered GROUP BY store_key, run
),
estimated AS (
    SELECT *,
           make_timestamp(epoch_us(preceding_active_utc)
                          + (epoch_us(first_inactive_utc) - epoch_us(preceding_active_utc)) // 2) AS start_utc,
           make_timestamp(epoch_us(last_inactive_utc)
                          + (epoch_us(following_active_utc) - epoch_us(last_inactive_utc)) // 2) AS end_utc
    FROM runs
),
in_week AS (
    SELECT e.*, greatest(coalesce(e.start_utc, p.week_start), p.week_start) AS cost_from,
           least(coalesce(e.end_utc, p.as_of), p.as_of) AS cost_to
    FROM estimated e, params p
    WHERE coalesce(e.end_utc, p.as_of) > p.week_start AND coalesce(e.start_utc, p.week_start) < p.as_of
),
cost AS (
    SELECT i.store_key, i.first_inactive_utc,
           sum(greatest(0, epoch(least(b.end_utc, i.cost_to)) - epoch(greatest(b.start_utc, i.cost_from)))) / 60
               AS business_minutes
    FROM in_week i
    JOIN localized_business_hours b ON b.store_key = i.store_key AND b.end_utc > i.cost_from AND b.start_utc < i.cost_to
    GROUP BY ALL
)
SELECT i.store_key, i.start_utc, i.end_utc, i.first_inactive_utc, i.last_inactive_utc,
       i.preceding_active_utc, i.following_active_utc,
       round(epoch(i.last_inactive_utc - i.first_inactive_utc) / 60, 2) AS min_minutes,
       round(epoch(i.following_active_utc - i.preceding_active_utc) / 60, 2) AS max_minutes,
       i.inactive_polls,
       timezone(s.tz, timezone('UTC', i.start_utc)) AS start_local,
       timezone(s.tz, timezone('UTC', i.end_utc)) AS end_local,
       round(coalesce(c.business_minutes, 0), 2) AS business_minutes
FROM in_week i JOIN report_stores s USING (store_key)
LEFT JOIN cost c USING (store_key, first_inactive_utc)
ORDER BY i.store_key, i.first_inactive_utc;
