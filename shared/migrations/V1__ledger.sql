-- Accounts, balances, transactions and the append-only ledger (DESIGN.md section 4).

CREATE TABLE accounts (
    id              text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9._:-]{1,64}$'),
    client_id       text NOT NULL,
    currency        char(3) NOT NULL,
    -- NULL means unlimited (an external funding account).
    overdraft_limit numeric NULL CHECK (overdraft_limit IS NULL OR overdraft_limit >= 0),
    metadata        jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX accounts_client_idx ON accounts (client_id, id);

CREATE TABLE account_balances (
    account_id text PRIMARY KEY REFERENCES accounts (id),
    balance    numeric NOT NULL DEFAULT 0,
    version    bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE transactions (
    id                     uuid PRIMARY KEY,
    client_id              text NOT NULL,
    idempotency_key        text NOT NULL,
    request_hash           text NOT NULL,
    source_account_id      text NOT NULL,
    destination_account_id text NOT NULL,
    amount                 numeric NOT NULL CHECK (amount > 0),
    currency               char(3) NOT NULL,
    reference              text NULL,
    description            text NULL,
    metadata               jsonb NOT NULL DEFAULT '{}'::jsonb,
    status                 text NOT NULL CHECK (status IN ('COMPLETED', 'FAILED')),
    failure_code           text NULL,
    accepted_at            timestamptz NOT NULL,
    posted_at              timestamptz NOT NULL,
    CONSTRAINT transactions_idempotency UNIQUE (client_id, idempotency_key),
    CHECK ((status = 'FAILED') = (failure_code IS NOT NULL))
);

-- No foreign keys here, on purpose (they cost a third of a batch's write): entries are written only
-- by the posting statement, in the same statement as their transaction (a batch whose transactions
-- are not all inserted is rolled back) and only for accounts whose account_balances row (which
-- references accounts) the batch holds locked. A foreign key check would also take a KEY SHARE lock
-- on the accounts row, turning every posting on a hot account into MultiXact traffic on one tuple.
-- The invariant checks (store::invariants) report entries without a transaction.
CREATE TABLE ledger_entries (
    id             bigserial PRIMARY KEY,
    transaction_id uuid NOT NULL,
    account_id     text NOT NULL,
    -- signed: debit < 0 < credit
    amount         numeric NOT NULL CHECK (amount <> 0),
    currency       char(3) NOT NULL,
    balance_after  numeric NOT NULL,
    posted_at      timestamptz NOT NULL
);
-- Serves both the ledger page (newest first, keyset on (posted_at, id)) and balance as of a time.
CREATE INDEX ledger_entries_account_idx ON ledger_entries (account_id, posted_at, id);
CREATE INDEX ledger_entries_transaction_idx ON ledger_entries (transaction_id);

CREATE TABLE audit_log (
    id        bigserial PRIMARY KEY,
    client_id text NOT NULL,
    action    text NOT NULL,
    entity    text NOT NULL,
    entity_id text NOT NULL,
    before    jsonb NULL,
    after     jsonb NULL,
    at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_entity_idx ON audit_log (entity, entity_id, id);

-- Append-only tables: no code path updates or deletes them, and the database refuses it too.
CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER ledger_entries_append_only
    BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER ledger_entries_no_truncate
    BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
-- A posted transfer is final.
CREATE TRIGGER transactions_append_only
    BEFORE UPDATE OR DELETE ON transactions
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
