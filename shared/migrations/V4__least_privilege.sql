-- Least privilege (DESIGN.md section 14): the migrator owns the schema; the api, processor and
-- reconciler connect as a login role that is a member of `ledger_app`, which may only do what their
-- SQL does. Append-only tables refuse UPDATE, DELETE and TRUNCATE (for the owner too); two
-- constraints the posting code already respected are now enforced by the database.
--
-- RULE FOR EVERY LATER MIGRATION (no default privileges on purpose):
--   1. A new table or sequence gets explicit grants to ledger_app, next to its CREATE, for exactly
--      the statements the code runs on it: SELECT / INSERT / UPDATE (column list) / DELETE, and
--      USAGE on its sequence (bigserial). Never TRUNCATE, REFERENCES, TRIGGER, ALL or ownership.
--      A table the functions never touch gets no grant at all.
--   2. An append-only table (no code path updates or deletes it) gets both triggers below:
--      BEFORE UPDATE OR DELETE ... FOR EACH ROW and BEFORE TRUNCATE ... FOR EACH STATEMENT,
--      EXECUTE FUNCTION refuse_change().
--   3. Update the expected privilege matrix in functions/migrator/tests/privileges.rs in the same
--      change (it fails for a table whose grants nobody decided).
-- Why not ALTER DEFAULT PRIVILEGES: default privileges belong to the role that creates the objects
-- (postgres locally, the RDS master user in AWS) and would silently give every future table the
-- same set, needed or not, where no reviewer sees it. Explicit grants are reviewed with the table,
-- and a missing one fails loudly: the whole test suite runs the functions' code as ledger_app.
--
-- Roles are cluster-wide and `ledger_app` is shared by every database of the cluster (tests migrate
-- many databases in parallel); its grants are per database. Login roles are not created here (they
-- need a password): the migrator creates or updates one from APP_DATABASE_SECRET_ARN, devstack and
-- the test kit a local one (shared::store::roles::ensure_app_login).

DO $$
BEGIN
    CREATE ROLE ledger_app NOLOGIN;
EXCEPTION
    -- Another database's migration created it first (unique_violation when both inserted at once).
    WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;

-- Nothing for PUBLIC: no CONNECT or TEMP on the database, no CREATE or USAGE on the schema, no
-- EXECUTE on our functions (triggers run their function without that privilege check).
DO $$
BEGIN
    EXECUTE format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO ledger_app', current_database());
END
$$;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO ledger_app;

-- What the api, processor and reconciler run (shared/src/store/*.rs, shared/src/reconcile/run.rs).
-- UPDATE is column-level: the key and identity columns of a row never change.
GRANT SELECT, INSERT ON accounts TO ledger_app;
GRANT SELECT, INSERT ON account_balances TO ledger_app;
-- posting: UPDATE ... SET balance, version, updated_at (and SELECT ... FOR UPDATE OF b)
GRANT UPDATE (balance, version, updated_at) ON account_balances TO ledger_app;
GRANT SELECT, INSERT ON transactions TO ledger_app;
GRANT SELECT, INSERT ON ledger_entries TO ledger_app;
-- written by account creation and the discrepancy workflow, read by nothing the functions do
GRANT INSERT ON audit_log TO ledger_app;
GRANT SELECT, INSERT ON statements TO ledger_app;
-- statement import: the line counts, set in the transaction that inserted the statement
GRANT UPDATE (lines_imported, lines_duplicate) ON statements TO ledger_app;
GRANT SELECT, INSERT ON statement_lines TO ledger_app;
GRANT SELECT, INSERT ON reconciliation_runs TO ledger_app;
GRANT SELECT, INSERT ON matches TO ledger_app;
GRANT SELECT, INSERT ON discrepancies TO ledger_app;
-- runs (seen again, reopened, cleared) and the workflow (status changes, resolutions)
GRANT UPDATE (status, detail, last_seen_run, cleared_by_run, resolution, updated_at)
    ON discrepancies TO ledger_app;
GRANT SELECT, INSERT ON discrepancy_events TO ledger_app;
GRANT SELECT, INSERT ON run_discrepancies TO ledger_app;
-- reconciliations the API queues (V3) and the reconciler claims and finishes
GRANT SELECT, INSERT ON reconciliation_requests TO ledger_app;
GRANT UPDATE (status, error, attempts, started_at, finished_at)
    ON reconciliation_requests TO ledger_app;
GRANT USAGE ON SEQUENCE ledger_entries_id_seq, audit_log_id_seq, statements_id_seq,
    statement_lines_id_seq, discrepancy_events_id_seq TO ledger_app;

-- Append-only tables: every one refuses UPDATE, DELETE and TRUNCATE, whoever asks (a role that may
-- disable triggers owns the schema, and only the migrator has those credentials).
CREATE TRIGGER transactions_no_truncate
    BEFORE TRUNCATE ON transactions
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER statement_lines_no_truncate
    BEFORE TRUNCATE ON statement_lines
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER discrepancy_events_no_truncate
    BEFORE TRUNCATE ON discrepancy_events
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
-- Runs, their matches and the discrepancies they found are a history: written once by save_run.
CREATE TRIGGER reconciliation_runs_append_only
    BEFORE UPDATE OR DELETE ON reconciliation_runs
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER reconciliation_runs_no_truncate
    BEFORE TRUNCATE ON reconciliation_runs
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER matches_append_only
    BEFORE UPDATE OR DELETE ON matches
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER matches_no_truncate
    BEFORE TRUNCATE ON matches
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER run_discrepancies_append_only
    BEFORE UPDATE OR DELETE ON run_discrepancies
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER run_discrepancies_no_truncate
    BEFORE TRUNCATE ON run_discrepancies
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- A transfer moves money between two accounts. The one exception is the record of its rejection:
-- the processor stores a same-account request as FAILED `same_account` (decided before any other
-- rule, so no other code can carry source = destination).
ALTER TABLE transactions ADD CONSTRAINT transactions_distinct_accounts
    CHECK (source_account_id <> destination_account_id
           OR (status = 'FAILED' AND failure_code = 'same_account'));

-- At most one entry per transaction, account and side (debit: amount < 0, credit: amount > 0;
-- amount <> 0 is checked already). It leads with transaction_id, so it also serves every lookup
-- by transaction and replaces ledger_entries_transaction_idx: posting still maintains two indexes
-- on ledger_entries, one of them now unique and wider (README "Database roles" has the cost).
-- Built in the migration's transaction: on a large ledger this holds a SHARE lock on
-- ledger_entries (posting waits) while it builds.
CREATE UNIQUE INDEX ledger_entries_one_per_side
    ON ledger_entries (transaction_id, account_id, (amount > 0));
DROP INDEX ledger_entries_transaction_idx;
