-- Money movement beyond one transfer (DESIGN.md section 12, issue 11): multi-leg transactions,
-- two-phase holds, refunds and value dates. Every change goes through the same posting batch.

-- 1. What a transaction is, what it answers and when it takes effect.
--    kind: TRANSFER (one or more legs), HOLD (reserves, writes no entry), CAPTURE (posts part or all
--    of a hold), VOID (releases what remains of a hold, no entry), REFUND (moves money back).
--    parent_id: the hold of a CAPTURE / VOID, the original of a REFUND.
--    effective_at: the value date the client asked for; NULL means "when it posted".
--    legs: every leg, as JSON, when there is more than one (the source / destination / amount /
--    currency columns always describe the first leg, so one-leg rows are what they always were).
--    Adding columns with constant defaults rewrites nothing.
ALTER TABLE transactions
    ADD COLUMN kind text NOT NULL DEFAULT 'TRANSFER'
        CHECK (kind IN ('TRANSFER', 'HOLD', 'CAPTURE', 'VOID', 'REFUND')),
    ADD COLUMN parent_id uuid NULL,
    ADD COLUMN effective_at timestamptz NULL,
    ADD COLUMN legs jsonb NULL;
ALTER TABLE transactions ADD CONSTRAINT transactions_parent_kind
    CHECK ((parent_id IS NOT NULL) = (kind IN ('CAPTURE', 'VOID', 'REFUND')));
-- A hold's captures and voids, an original's refunds (only those rows have a parent).
CREATE INDEX transactions_parent_idx ON transactions (parent_id) WHERE parent_id IS NOT NULL;

-- 2. Entries know their leg and their value date. One debit and one credit per leg replaces "one
--    per account and side" (an account may pay several legs of one transaction: the card payment's
--    customer pays the merchant, the fee and the tax).
ALTER TABLE ledger_entries
    ADD COLUMN leg smallint NOT NULL DEFAULT 0 CHECK (leg >= 0),
    ADD COLUMN effective_at timestamptz NULL;
-- Entries posted before this migration took effect when they posted. ledger_entries is append-only:
-- its trigger is set aside for this statement only, inside the migration's transaction.
ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_append_only;
UPDATE ledger_entries SET effective_at = posted_at WHERE effective_at IS NULL;
ALTER TABLE ledger_entries ENABLE TRIGGER ledger_entries_append_only;
ALTER TABLE ledger_entries ALTER COLUMN effective_at SET NOT NULL;
-- Posting always names the value date; a writer that does not (none of ours) gets its insert time.
ALTER TABLE ledger_entries ALTER COLUMN effective_at SET DEFAULT now();
CREATE UNIQUE INDEX ledger_entries_one_per_leg_side
    ON ledger_entries (transaction_id, leg, (amount > 0));
DROP INDEX ledger_entries_one_per_side;
-- Entries with a value date other than when they posted (a request's effectiveAt), by account and
-- value date. Only those: every other entry takes effect when it posts (effective_at = posted_at
-- exactly, the same statement_timestamp()), and ledger_entries_account_idx already finds those by
-- time, so the posting of an ordinary entry maintains no extra index. Balance as of a value date
-- is the running balance by posting time corrected by these entries; the reconciliation's window
-- is the ordinary entries by posting time plus these by value date.
CREATE INDEX ledger_entries_dated_idx ON ledger_entries (account_id, effective_at)
    INCLUDE (amount, posted_at) WHERE effective_at <> posted_at;

-- 3. Pending debits: the sum of what the account's active holds still reserve. available =
--    balance - pending; overdraft limits apply to available. Updated by posting, in the batch.
ALTER TABLE account_balances ADD COLUMN pending numeric NOT NULL DEFAULT 0 CHECK (pending >= 0);
GRANT UPDATE (pending) ON account_balances TO ledger_app;

-- 4. Holds: the current state of each hold placed (the HOLD transaction is its creation; CAPTURE
--    and VOID transactions are its events; expiry is recorded here). Written only by posting (under
--    the lock of the hold's source account) and by the expiry sweep (which takes the same lock).
CREATE TABLE holds (
    id                     uuid PRIMARY KEY,          -- the HOLD transaction's id
    client_id              text NOT NULL,
    idempotency_key        text NOT NULL,
    source_account_id      text NOT NULL,
    destination_account_id text NOT NULL,
    currency               char(3) NOT NULL,
    amount                 numeric NOT NULL CHECK (amount > 0),
    captured               numeric NOT NULL DEFAULT 0 CHECK (captured >= 0 AND captured <= amount),
    status                 text NOT NULL CHECK (status IN ('ACTIVE', 'CAPTURED', 'VOIDED', 'EXPIRED')),
    expires_at             timestamptz NOT NULL,
    created_at             timestamptz NOT NULL,
    closed_at              timestamptz NULL,
    CHECK ((status = 'ACTIVE') = (closed_at IS NULL)),
    CHECK (status <> 'CAPTURED' OR captured = amount)
);
-- Posting's "active holds of the accounts I hold that have expired" and the sweep.
CREATE INDEX holds_active_idx ON holds (source_account_id, expires_at) WHERE status = 'ACTIVE';
CREATE INDEX holds_expiry_idx ON holds (expires_at) WHERE status = 'ACTIVE';
-- An account's holds, newest first (GET /accounts/{id}/holds, keyset on (created_at, id)).
CREATE INDEX holds_account_idx ON holds (source_account_id, created_at, id);
GRANT SELECT, INSERT ON holds TO ledger_app;
-- Posting reads holds and refunds by index in every batch that names one. Statistics taken while
-- a table was empty make the planner scan it instead (measured: 10,000 refunds read 50M rows of a
-- new refunds table); analyze these two after every 500 changed rows, whatever their size.
ALTER TABLE holds SET (autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 500);
GRANT UPDATE (captured, status, closed_at) ON holds TO ledger_app;

-- 5. Refunds: how much of each leg of an original each refund gave back. The bound (refunded <=
--    the leg's amount) is checked by posting under the lock of the original's source account, which
--    every refund of it credits, so two refunds of one original never decide at the same time.
CREATE TABLE refunds (
    refund_id    uuid NOT NULL,
    leg          smallint NOT NULL,
    original_id  uuid NOT NULL,
    original_leg smallint NOT NULL,
    amount       numeric NOT NULL CHECK (amount > 0),
    PRIMARY KEY (refund_id, leg)
);
CREATE INDEX refunds_original_idx ON refunds (original_id, original_leg);
GRANT SELECT, INSERT ON refunds TO ledger_app;
ALTER TABLE refunds SET (autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 500);
CREATE TRIGGER refunds_append_only
    BEFORE UPDATE OR DELETE ON refunds
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER refunds_no_truncate
    BEFORE TRUNCATE ON refunds
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
