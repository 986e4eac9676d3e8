-- The durable record of every accepted transfer request, written at intake before the message is
-- sent. Redis keeps nothing on disk: when it loses a reservation, this row still says which request
-- a client's key belongs to (another body -> 422 idempotency_key_reused; the same body -> the same
-- transactionId) and that an accepted transfer is PENDING until the processor records it.
-- (V5 and V6 are other changes of the same release.)
CREATE TABLE intake_requests (
    client_id       text NOT NULL,
    idempotency_key text NOT NULL,
    request_hash    text NOT NULL,
    transaction_id  uuid NOT NULL,
    accepted_at     timestamptz NOT NULL,
    -- The last send's outcome was unknown (a timeout, a lost reply): the status route says so
    -- instead of PENDING, until a retry's send is answered.
    outcome_unknown boolean NOT NULL DEFAULT false,
    PRIMARY KEY (client_id, idempotency_key)
);

-- The api writes it, forgets a request whose send SQS refused outright, and reads it for status.
GRANT SELECT, INSERT, DELETE ON intake_requests TO ledger_app;
GRANT UPDATE (outcome_unknown) ON intake_requests TO ledger_app;
