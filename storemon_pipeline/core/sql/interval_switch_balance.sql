-- The interval model's last parameter, fitted on the sample of stores in
-- interval_model_stores (like interval_rates.sql). Input: interval_segment_model.
--
-- interval_switch_balance: up_share_shift  where two polls differ, the true up share of the
--   gap is 1/2 + this. A poll is a look at a random moment, so nearest-poll is right on
--   average: the up time expected to hide where polls agree (lost where they are active,
--   gained where they are inactive) is balanced, on average, where they differ; the same both
--   ways (a stationary process reversed in time). Clipped to +-0.45.
CREATE OR REPLACE TABLE interval_switch_balance AS
SELECT round(greatest(-0.45, least(0.45, coalesce(
           (coalesce(sum(other_week) FILTER (WHERE agree AND status_a = 'active'), 0)
            - coalesce(sum(other_week) FILTER (WHERE agree AND status_a = 'inactive'), 0))
           / nullif(sum(open_week) FILTER (WHERE NOT agree), 0), 0))), 12) AS up_share_shift
FROM interval_segment_model SEMI JOIN interval_model_stores USING (store_key);
