-- The write cost of the search indexes (V10__transaction_search.sql) on the transactions row
-- alone: two copies of `transactions`, one with the indexes main had before V10 (primary key,
-- unique (client_id, idempotency_key), parent_id) and one with all of them, each preloaded with
-- 200,000 rows, then 50,000 rows more in statements of 10 rows (a posting batch), interleaved, in
-- microseconds per row. `bench` rows are like the posting benchmark's transfers (one leg, a reference,
-- no metadata); `mixed` rows have a reference on 1 in 3, metadata on 1 in 5, two legs on 1 in 25.
-- Run it in a scratch database migrated to V10 (it creates tables tm and ts and function fill):
--   psql -d ledger_bench -f bench/sql/search_index_cost.sql
\set QUIET on
DROP TABLE IF EXISTS tm, ts;
CREATE TABLE tm (LIKE transactions INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
ALTER TABLE tm ADD PRIMARY KEY (id);
ALTER TABLE tm ADD UNIQUE (client_id, idempotency_key);
CREATE INDEX ON tm (parent_id) WHERE parent_id IS NOT NULL;
CREATE TABLE ts (LIKE transactions INCLUDING ALL);
CREATE OR REPLACE FUNCTION fill(tbl text, start int, n int, rich bool) RETURNS double precision LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz := clock_timestamp(); b int;
BEGIN
  FOR b IN 0 .. (n / 10) - 1 LOOP
    EXECUTE format($q$
      INSERT INTO %I (id, client_id, idempotency_key, request_hash, source_account_id, destination_account_id,
        amount, currency, reference, metadata, status, failure_code, accepted_at, posted_at, kind, legs)
      SELECT gen_random_uuid(), 'c' || (i %% 3), 'k-' || i, 'h', 'acct-' || (i * 7919 %% 10000),
             'acct-' || ((i * 7919 + 1) %% 10000 + 10000), (i %% 5000) / 100.0 + 1, 'USD',
             CASE WHEN NOT $1 OR i %% 3 = 0 THEN 'inv-' || i END,
             CASE WHEN $1 AND i %% 5 = 0 THEN jsonb_build_object('order', 'o-' || i) ELSE '{}'::jsonb END,
             'COMPLETED', NULL, statement_timestamp(), statement_timestamp(), 'TRANSFER',
             CASE WHEN $1 AND i %% 25 = 4 THEN jsonb_build_array(
               jsonb_build_object('leg', 0, 'source_account_id', 'acct-' || (i %% 10000), 'destination_account_id', 'x'),
               jsonb_build_object('leg', 1, 'source_account_id', 'acct-' || (i %% 10000), 'destination_account_id', 'fees')) END
      FROM generate_series($2::bigint, $2::bigint + 9) i$q$, tbl) USING rich, start + b * 10;
  END LOOP;
  RETURN extract(epoch FROM clock_timestamp() - t0) * 1e6 / n;
END $$;
-- preload 200k rows each, then measured rounds of 50k rows (5,000 statements of 10 rows), interleaved
SELECT fill('tm', 0, 200000, true) AS preload_main_us, fill('ts', 0, 200000, true) AS preload_search_us;
VACUUM ANALYZE tm; VACUUM ANALYZE ts;
\set QUIET off
SELECT 'bench' AS rows, fill('tm', 1000000, 50000, false) AS main_us_per_row, fill('ts', 1000000, 50000, false) AS search_us_per_row;
SELECT 'bench' AS rows, fill('tm', 2000000, 50000, false) AS main_us_per_row, fill('ts', 2000000, 50000, false) AS search_us_per_row;
SELECT 'mixed' AS rows, fill('tm', 3000000, 50000, true) AS main_us_per_row, fill('ts', 3000000, 50000, true) AS search_us_per_row;
SELECT 'mixed' AS rows, fill('ts', 4000000, 50000, true) AS search_us_per_row, fill('tm', 4000000, 50000, true) AS main_us_per_row;
SELECT 'bench' AS rows, fill('ts', 5000000, 50000, false) AS search_us_per_row, fill('tm', 5000000, 50000, false) AS main_us_per_row;
SELECT relname, pg_size_pretty(pg_relation_size(oid)) FROM pg_class WHERE relname LIKE 'ts_%' OR relname LIKE 'tm_%' ORDER BY 1;
DROP TABLE tm, ts; DROP FUNCTION fill;
