-- Dead letters, recorded as they arrive (DESIGN.md section 9). A FIFO dead-letter queue cannot be
-- scanned reliably (a receive returns at most the head of each message group, so the scheduled run
-- used to see one letter per group and clear the others as RESOLVED). The `dead-letters` function
-- (an SQS event source on the DLQ) writes each message here and SQS then deletes it; the scheduled
-- run reports every RECORDED letter whose transfer is not in the ledger as DEAD_LETTERED, and the
-- redrive action re-sends the recorded body to the transfers queue.
--
-- The body is kept exactly as received. PostgreSQL text cannot hold NUL (U+0000); SQS itself refuses
-- it, but the function must never fail on a body, so a body with NUL is stored escaped, with
-- `body_escaped` true: every backslash doubled and every NUL written as backslash-zero
-- (shared::store::dead_letters::decode_body reverses it). Such a body is never a valid transfer
-- message (raw control characters are not JSON), so it is never redriven.
CREATE TABLE dead_letters (
    -- The SQS message id: a redelivery of the same DLQ message records nothing new.
    message_id               text PRIMARY KEY,
    body                     text NOT NULL,
    body_escaped             boolean NOT NULL DEFAULT false,
    group_id                 text NULL,
    deduplication_id         text NULL,
    receive_count            integer NULL,
    -- SentTimestamp: when the transfer was first sent to the transfers queue.
    sent_at                  timestamptz NULL,
    -- From the body when it is a valid transfer message (v1); NULL otherwise.
    client_id                text NULL,
    idempotency_key          text NULL,
    transaction_id           uuid NULL,
    received_at              timestamptz NOT NULL DEFAULT now(),
    -- RECORDED: waiting (a DEAD_LETTERED discrepancy while its transfer is not in the ledger);
    -- REDRIVEN: re-sent to the transfers queue; POSTED: its transfer reached the ledger otherwise.
    status                   text NOT NULL DEFAULT 'RECORDED'
                             CHECK (status IN ('RECORDED', 'REDRIVEN', 'POSTED')),
    redriven_at              timestamptz NULL,
    -- The MessageDeduplicationId of the redrive (derived from the message id, so a retried redrive
    -- inside FIFO's 5-minute window is one message, and never the original send's id).
    redrive_deduplication_id text NULL,
    posted_at                timestamptz NULL,
    CHECK ((client_id IS NULL) = (idempotency_key IS NULL)),
    CHECK ((client_id IS NULL) = (transaction_id IS NULL)),
    CHECK ((status = 'REDRIVEN') = (redriven_at IS NOT NULL)),
    CHECK ((status = 'POSTED') = (posted_at IS NOT NULL)),
    CHECK (status <> 'REDRIVEN' OR client_id IS NOT NULL)
);
-- What the scheduled run reads: the letters still waiting.
CREATE INDEX dead_letters_recorded_idx ON dead_letters (received_at, message_id)
    WHERE status = 'RECORDED';

-- dead-letters function: INSERT ... ON CONFLICT (message_id) DO NOTHING; the run: SELECT and
-- UPDATE status/posted_at (RECORDED -> POSTED); the redrive: SELECT ... FOR UPDATE and UPDATE
-- status/redriven_at/redrive_deduplication_id (RECORDED -> REDRIVEN). Never DELETE.
GRANT SELECT, INSERT ON dead_letters TO ledger_app;
GRANT UPDATE (status, redriven_at, redrive_deduplication_id, posted_at) ON dead_letters TO ledger_app;

-- A record of what reached the DLQ is kept: no row is deleted, whoever asks.
CREATE TRIGGER dead_letters_no_delete
    BEFORE DELETE ON dead_letters
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER dead_letters_no_truncate
    BEFORE TRUNCATE ON dead_letters
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
