-- Transaction search and exports (issue 12, GET /transactions and /transactions/export): served
-- from PostgreSQL by these indexes, no second store. Every search is scoped to the client and
-- ordered newest first by (posted_at, id); store::search writes the statements and says which
-- index each filter uses. The posting cost of these indexes is measured by `bench posting`
-- (README "Searching and exporting transactions").
--
-- Built without CONCURRENTLY (the migration runs in a transaction): on a large table, writes to
-- transactions wait while each index builds. Plain indexes need no new grant: ledger_app's SELECT
-- and INSERT on transactions (V4) cover them.

-- 1. The order of every search, and its keyset: one backward range scan per page from the cursor,
--    never from the start. Filters with no index of their own (status, kind, amount, effective
--    dates) are checked along this scan; postedFrom / postedTo bound it.
CREATE INDEX transactions_search_idx ON transactions (client_id, posted_at, id);

-- 2. accountId: the first leg's accounts (every one-leg transaction, holds, captures, voids,
--    refunds, FAILED ones too, which have no ledger entries), each in posting order, so a page of a
--    busy account reads from the cursor too. Account ids are unique across clients: no client_id
--    column (the query still checks it).
CREATE INDEX transactions_source_idx ON transactions (source_account_id, posted_at, id);
CREATE INDEX transactions_destination_idx ON transactions (destination_account_id, posted_at, id);
--    ... and every leg of a multi-leg transaction (`legs` is set only when there is more than one):
--    containment `legs @> '[{"source_account_id": "a"}]'`. One-leg rows are not in this index.
CREATE INDEX transactions_legs_idx ON transactions USING gin (legs jsonb_path_ops)
    WHERE legs IS NOT NULL;

-- 3. reference (exact) and referencePrefix (a byte-order range, text_pattern_ops, whatever the
--    database's collation). Rows without a reference are not in it.
CREATE INDEX transactions_reference_idx ON transactions (client_id, reference text_pattern_ops)
    WHERE reference IS NOT NULL;

-- 4. metadata[key]=value: containment `metadata @> '{"k": "v"}'`. Rows without metadata (the
--    default '{}') are not in it; the query repeats the predicate so the planner may use it.
CREATE INDEX transactions_metadata_idx ON transactions USING gin (metadata jsonb_path_ops)
    WHERE metadata <> '{}'::jsonb;
