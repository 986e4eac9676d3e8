-- Events out (DESIGN.md section 13, issue 12): a transactional outbox, webhook endpoints and their
-- deliveries, and balance monitors evaluated inside posting.

-- 1. The outbox. Every change a client may care about writes its event in the same transaction as
--    the change (posting, the hold sweep, reconciliation runs, the discrepancy workflow), so no
--    event is lost and none describes a change that did not commit. Append-only.
--    Order: (xid, seq). `xid` is the writing transaction's id; a reader takes only the events of
--    transactions older than every transaction still running (pg_snapshot_xmin), so once it has
--    passed a position no event can appear before it: delivery follows this order without gaps,
--    whichever transaction committed first. The public id spells the position in hex, so ids
--    sort in delivery order.
CREATE TABLE events (
    seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    xid        xid8 NOT NULL DEFAULT pg_current_xact_id(),
    -- Unique because seq is: the id spells seq, and lookups by id go through seq (the primary key).
    id         text GENERATED ALWAYS AS
                   ('evt_' || lpad(to_hex(xid::text::bigint), 16, '0') || lpad(to_hex(seq), 16, '0'))
                   STORED NOT NULL,
    client_id  text NOT NULL,
    type       text NOT NULL CHECK (type IN (
                   'transfer.completed', 'transfer.failed',
                   'hold.created', 'hold.captured', 'hold.voided', 'hold.expired',
                   'refund.posted',
                   'discrepancy.opened', 'discrepancy.resolved',
                   'reconciliation.finished',
                   'monitor.triggered', 'monitor.cleared')),
    -- The id of the object the event is about (transaction, hold, discrepancy, run, monitor).
    subject_id text NOT NULL,
    -- The object as the API returns it, when the change committed. `json`, not `jsonb`: it is only
    -- ever handed out as it is, so posting pays for checking it, not for converting it.
    data       json NOT NULL,
    created_at timestamptz NOT NULL DEFAULT statement_timestamp()
);
CREATE INDEX events_position_idx ON events (xid, seq);
-- A client's events, newest first (GET /events). Every posted message writes an event, so each
-- index here is paid by posting: no index without a reader.
CREATE INDEX events_client_idx ON events (client_id, xid DESC, seq DESC);
GRANT SELECT, INSERT ON events TO ledger_app;
CREATE TRIGGER events_append_only
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- 2. How far each consumer of the outbox has read: 'webhooks' (fan-out into deliveries) and
--    'eventbridge' (the optional bus). One row each, locked while a reader advances it.
CREATE TABLE event_cursors (
    name       text PRIMARY KEY CHECK (name IN ('webhooks', 'eventbridge')),
    xid        xid8 NOT NULL DEFAULT '0',
    seq        bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO event_cursors (name) VALUES ('webhooks'), ('eventbridge');
GRANT SELECT ON event_cursors TO ledger_app;
GRANT UPDATE (xid, seq, updated_at) ON event_cursors TO ledger_app;

-- 3. A client's webhook endpoints. The secret signs every delivery; after a rotation the previous
--    secret also signs until `previous_secret_expires_at` (the overlap window).
CREATE TABLE webhook_endpoints (
    id                         uuid PRIMARY KEY,
    client_id                  text NOT NULL,
    url                        text NOT NULL CHECK (length(url) <= 2048),
    description                text NULL,
    -- Event types this endpoint receives; '*' receives every type.
    event_types                text[] NOT NULL CHECK (cardinality(event_types) > 0),
    status                     text NOT NULL CHECK (status IN ('ENABLED', 'DISABLED')),
    secret                     text NOT NULL,
    previous_secret            text NULL,
    previous_secret_expires_at timestamptz NULL,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    updated_at                 timestamptz NOT NULL DEFAULT now(),
    CHECK ((previous_secret IS NULL) = (previous_secret_expires_at IS NULL))
);
CREATE INDEX webhook_endpoints_client_idx ON webhook_endpoints (client_id, created_at, id);
GRANT SELECT, INSERT ON webhook_endpoints TO ledger_app;
GRANT UPDATE (status, secret, previous_secret, previous_secret_expires_at, updated_at)
    ON webhook_endpoints TO ledger_app;

-- 4. One delivery of one event to one endpoint (a redelivery on request is another row). Per
--    endpoint, deliveries are sent one at a time in id order (the fan-out creates them in event
--    order); a delivery waiting for its next attempt holds back the later ones of its endpoint
--    only. `leased_until`: a dispatcher is sending it; a dispatcher killed mid-delivery leaves a
--    lease that expires, and the delivery is sent again (the receiver deduplicates by event id).
CREATE TABLE webhook_deliveries (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint_id      uuid NOT NULL REFERENCES webhook_endpoints (id),
    client_id        text NOT NULL,
    event_seq        bigint NOT NULL REFERENCES events (seq),
    status           text NOT NULL CHECK (status IN ('PENDING', 'SUCCEEDED', 'FAILED')),
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  timestamptz NOT NULL,
    -- Past this time a failed attempt is the last one: the delivery is FAILED.
    give_up_at       timestamptz NOT NULL,
    leased_until     timestamptz NULL,
    last_attempt_at  timestamptz NULL,
    last_status_code integer NULL,
    last_error       text NULL,
    redelivery       boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz NULL,
    CHECK ((status = 'PENDING') = (completed_at IS NULL))
);
-- The head of each endpoint's queue.
CREATE INDEX webhook_deliveries_pending_idx ON webhook_deliveries (endpoint_id, id)
    WHERE status = 'PENDING';
-- What each client has in flight (leased), for fair claims: only the deliveries being sent.
CREATE INDEX webhook_deliveries_in_flight_idx ON webhook_deliveries (client_id)
    WHERE status = 'PENDING' AND leased_until IS NOT NULL;
-- An endpoint's delivery log, newest first; an event's deliveries.
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, id DESC);
CREATE INDEX webhook_deliveries_event_idx ON webhook_deliveries (event_seq);
GRANT SELECT, INSERT ON webhook_deliveries TO ledger_app;
GRANT UPDATE (status, attempts, next_attempt_at, leased_until, last_attempt_at, last_status_code,
              last_error, completed_at)
    ON webhook_deliveries TO ledger_app;

-- 5. Every attempt of a delivery: when, what the endpoint answered, how long it took. Append-only.
CREATE TABLE webhook_attempts (
    delivery_id bigint NOT NULL REFERENCES webhook_deliveries (id),
    attempt     integer NOT NULL CHECK (attempt > 0),
    at          timestamptz NOT NULL,
    status_code integer NULL,
    error       text NULL,
    duration_ms integer NOT NULL CHECK (duration_ms >= 0),
    PRIMARY KEY (delivery_id, attempt)
);
GRANT SELECT, INSERT ON webhook_attempts TO ledger_app;
CREATE TRIGGER webhook_attempts_append_only
    BEFORE UPDATE OR DELETE ON webhook_attempts
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER webhook_attempts_no_truncate
    BEFORE TRUNCATE ON webhook_attempts
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- 6. Balance monitors: a condition on an account's posted or available balance, evaluated by
--    posting (and the hold sweep) under the account's lock after every transaction that changes
--    it. BELOW / ABOVE fire once when the condition becomes true (state TRIGGERED) and again only
--    after it has been false by at least `hysteresis` (state CLEAR). CROSSING fires on every
--    crossing of the threshold, either way; its state is the side the balance is on (ABOVE:
--    at or above the threshold, BELOW), and it changes side only beyond the hysteresis band.
CREATE TABLE balance_monitors (
    id                uuid PRIMARY KEY,
    client_id         text NOT NULL,
    account_id        text NOT NULL REFERENCES accounts (id),
    currency          char(3) NOT NULL,
    field             text NOT NULL CHECK (field IN ('POSTED', 'AVAILABLE')),
    condition         text NOT NULL CHECK (condition IN ('BELOW', 'ABOVE', 'CROSSING')),
    threshold         numeric NOT NULL,
    hysteresis        numeric NOT NULL DEFAULT 0 CHECK (hysteresis >= 0),
    description       text NULL,
    status            text NOT NULL CHECK (status IN ('ACTIVE', 'DISABLED')),
    state             text NOT NULL CHECK (state IN ('CLEAR', 'TRIGGERED', 'ABOVE', 'BELOW')),
    -- The value last evaluated, and when.
    value             numeric NOT NULL,
    evaluated_at      timestamptz NOT NULL,
    triggered_count   integer NOT NULL DEFAULT 0,
    last_triggered_at timestamptz NULL,
    last_cleared_at   timestamptz NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CHECK ((condition = 'CROSSING') = (state IN ('ABOVE', 'BELOW')))
);
-- Posting reads the active monitors of the accounts it locks, in every batch.
CREATE INDEX balance_monitors_account_idx ON balance_monitors (account_id) WHERE status = 'ACTIVE';
CREATE INDEX balance_monitors_client_idx ON balance_monitors (client_id, created_at, id);
GRANT SELECT, INSERT ON balance_monitors TO ledger_app;
GRANT UPDATE (status, state, value, evaluated_at, triggered_count, last_triggered_at,
              last_cleared_at, updated_at)
    ON balance_monitors TO ledger_app;
