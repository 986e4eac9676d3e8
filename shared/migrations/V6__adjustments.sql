-- Adjusting transfers (DESIGN.md section 9): marked in the ledger by what they are, not by a key
-- prefix, and a discrepancy resolved by one is RESOLVED only once it posts.
--
-- 1. transactions.adjusts_discrepancy_id: the discrepancy an adjusting transfer answers; NULL for
--    every client transfer. The processor writes it from the queue message (`transfer.adjusts`);
--    reconciliation leaves out the transfers where it is set. No foreign key and no index, on
--    purpose: the posting statement is the hot path (see V1 on ledger_entries), and nothing looks
--    transactions up by it (the discrepancy's resolution names its transfer's key). ledger_app's
--    table-level INSERT and SELECT on transactions (V4) cover the new column: no grant needed.
ALTER TABLE transactions ADD COLUMN adjusts_discrepancy_id uuid NULL;

-- 2. ADJUSTING: an adjusting transfer is queued and the discrepancy waits for its outcome (posted:
--    RESOLVED; rejected: back to OPEN with the failure code in its history). The API moves a
--    discrepancy there, the processor out of it, in the transaction that posts the transfer
--    (UPDATE (status, resolution, updated_at) on discrepancies and INSERT on discrepancy_events are
--    already granted to ledger_app by V4).
ALTER TABLE discrepancies DROP CONSTRAINT discrepancies_status_check;
ALTER TABLE discrepancies ADD CONSTRAINT discrepancies_status_check
    CHECK (status IN ('OPEN', 'INVESTIGATING', 'ADJUSTING', 'RESOLVED', 'IGNORED'));

-- 3. Adjusting transfers posted before this migration carry the key `adjust-<discrepancy id>` and
--    were told apart by that prefix. Mark them by the column: exactly the transfers under the key
--    of a discrepancy of the same client that was resolved with `adjust` and whose metadata names
--    that discrepancy (a client's own transfer under such a key is not one of them). One indexed
--    lookup per adjusted discrepancy; transactions is append-only, so its trigger is set aside for
--    this statement only, inside the migration's transaction (only the schema owner may).
ALTER TABLE transactions DISABLE TRIGGER transactions_append_only;
UPDATE transactions t
SET adjusts_discrepancy_id = d.id
FROM discrepancies d
WHERE d.resolution ->> 'action' = 'adjust'
  AND t.client_id = d.client_id
  AND t.idempotency_key = 'adjust-' || d.id::text
  AND t.metadata ->> 'discrepancyId' = d.id::text;
ALTER TABLE transactions ENABLE TRIGGER transactions_append_only;
