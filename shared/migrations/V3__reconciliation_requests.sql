-- Reconciliations too large to finish inside the HTTP API's 29 s: the API records the request and
-- answers 202 with the run's URL; the reconciler (a schedule every minute, and devstack's timer)
-- claims queued requests with SKIP LOCKED, runs them, and stores the run under the request's id.
CREATE TABLE reconciliation_requests (
    id           uuid PRIMARY KEY,
    client_id    text NOT NULL,
    account_id   text NOT NULL REFERENCES accounts (id),
    window_start date NOT NULL,
    window_end   date NOT NULL,
    as_of        date NOT NULL,
    status       text NOT NULL CHECK (status IN ('QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED')),
    error        text NULL,
    attempts     integer NOT NULL DEFAULT 0,
    requested_at timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz NULL,
    finished_at  timestamptz NULL,
    CHECK (window_start <= window_end)
);
CREATE INDEX reconciliation_requests_queued_idx ON reconciliation_requests (requested_at)
    WHERE status IN ('QUEUED', 'RUNNING');
