-- Reconciliation: imported statements, runs, matches, discrepancies and their workflow
-- (DESIGN.md section 9).

CREATE TABLE statements (
    id              bigserial PRIMARY KEY,
    client_id       text NOT NULL,
    account_id      text NOT NULL REFERENCES accounts (id),
    format          text NOT NULL CHECK (format IN ('csv', 'json', 'camt053')),
    content_sha256  text NOT NULL,
    source_account  text NULL,
    lines_imported  integer NOT NULL,
    lines_duplicate integer NOT NULL,
    lines_rejected  integer NOT NULL,
    imported_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX statements_account_idx ON statements (account_id, imported_at);

-- One row per external line; re-importing a statement finds its lines by external id.
CREATE TABLE statement_lines (
    id           bigserial PRIMARY KEY,
    statement_id bigint NOT NULL REFERENCES statements (id),
    account_id   text NOT NULL REFERENCES accounts (id),
    external_id  text NOT NULL,
    booked_on    date NOT NULL,
    -- signed: money into the account > 0
    amount       numeric NOT NULL CHECK (amount <> 0),
    currency     char(3) NOT NULL,
    reference    text NULL,
    description  text NULL,
    CONSTRAINT statement_lines_external UNIQUE (account_id, external_id)
);
CREATE INDEX statement_lines_booked_idx ON statement_lines (account_id, booked_on);

CREATE TRIGGER statement_lines_append_only
    BEFORE UPDATE OR DELETE ON statement_lines
    FOR EACH ROW EXECUTE FUNCTION refuse_change();

CREATE TABLE reconciliation_runs (
    id           uuid PRIMARY KEY,
    client_id    text NOT NULL,
    -- NULL for the scheduled run's ledger-wide internal checks
    account_id   text NULL REFERENCES accounts (id),
    trigger      text NOT NULL CHECK (trigger IN ('api', 'schedule')),
    window_start date NOT NULL,
    window_end   date NOT NULL,
    as_of        date NOT NULL,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz NOT NULL,
    report       jsonb NOT NULL
);
CREATE INDEX reconciliation_runs_account_idx ON reconciliation_runs (account_id, started_at);

-- Which statement line each run matched to which transfer(s): a history, never updated. A run's pairs
-- are stored packed, in chunks of up to 50,000 pairs of 25 bytes (statement line id: int8 big
-- endian, transaction id: 16 bytes, rule: 1 = REFERENCE, 2 = AMOUNT_AND_DATE, 3 = BATCH), so a
-- million-line run writes 25 MB in a few rows instead of a million rows and their WAL.
-- store::reconciliation::run_matches reads them back.
CREATE TABLE matches (
    run_id uuid NOT NULL REFERENCES reconciliation_runs (id),
    chunk  integer NOT NULL,
    pairs  bytea NOT NULL,
    PRIMARY KEY (run_id, chunk)
);
-- Transaction ids are random: compression would only cost time.
ALTER TABLE matches ALTER COLUMN pairs SET STORAGE EXTERNAL;

CREATE TABLE discrepancies (
    id                uuid PRIMARY KEY,
    client_id         text NOT NULL,
    account_id        text NULL,
    kind              text NOT NULL,
    -- what makes two runs' findings the same discrepancy
    fingerprint       text NOT NULL,
    status            text NOT NULL DEFAULT 'OPEN'
                      CHECK (status IN ('OPEN', 'INVESTIGATING', 'RESOLVED', 'IGNORED')),
    booked_on         date NULL,
    statement_line_id bigint NULL,
    transaction_ids   uuid[] NOT NULL DEFAULT '{}',
    expected          numeric NULL,
    actual            numeric NULL,
    currency          text NULL,
    detail            text NOT NULL,
    data              jsonb NOT NULL DEFAULT '{}'::jsonb,
    first_seen_run    uuid NOT NULL,
    last_seen_run     uuid NOT NULL,
    cleared_by_run    uuid NULL,
    resolution        jsonb NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT discrepancies_fingerprint UNIQUE (client_id, fingerprint)
);
CREATE INDEX discrepancies_list_idx ON discrepancies (client_id, created_at, id);
CREATE INDEX discrepancies_scope_idx ON discrepancies (client_id, account_id, status, booked_on);

-- Every step of the workflow: who, when, from which status to which, why, and what it did.
CREATE TABLE discrepancy_events (
    id             bigserial PRIMARY KEY,
    discrepancy_id uuid NOT NULL REFERENCES discrepancies (id),
    at             timestamptz NOT NULL DEFAULT now(),
    actor          text NOT NULL,
    from_status    text NULL,
    to_status      text NOT NULL,
    note           text NULL,
    action         jsonb NULL
);
CREATE INDEX discrepancy_events_idx ON discrepancy_events (discrepancy_id, id);

CREATE TRIGGER discrepancy_events_append_only
    BEFORE UPDATE OR DELETE ON discrepancy_events
    FOR EACH ROW EXECUTE FUNCTION refuse_change();

-- Which discrepancies each run found (new or seen again), for its report.
CREATE TABLE run_discrepancies (
    run_id         uuid NOT NULL REFERENCES reconciliation_runs (id),
    discrepancy_id uuid NOT NULL REFERENCES discrepancies (id),
    PRIMARY KEY (run_id, discrepancy_id)
);
