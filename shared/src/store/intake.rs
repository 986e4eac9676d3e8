//! The durable intake record: which request each (client, key) was accepted for, and with which
//! transaction id. Written before the message is sent, so Redis losing a reservation can never
//! turn a retry into a second transfer or a reused key into a silent drop.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{PgPool, StoreError};

/// A request already accepted (or already in the ledger) under a client's key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriorRequest {
    pub request_hash: String,
    pub transaction_id: Uuid,
    pub accepted_at: DateTime<Utc>,
    /// Whether the processor has recorded it (posted or failed).
    pub recorded: bool,
    /// Whether the last send's outcome was unknown.
    pub outcome_unknown: bool,
}

/// What recording a request found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// The key was free: this request now holds it.
    New,
    /// The key holds this earlier request (the ledger's own record wins over the intake's).
    Existing(PriorRequest),
    /// Another request took the key between the lookup and the insert (retryable).
    Concurrent,
}

// One round trip: the ledger's and the intake's record of the key, and the insert when neither has
// one. Transfers accepted before this table existed are found in `transactions`.
const RECORD: &str = "WITH prior AS (
         SELECT request_hash, id AS transaction_id, accepted_at, true AS recorded, 0 AS rank
         FROM transactions WHERE client_id = $1 AND idempotency_key = $2
         UNION ALL
         SELECT request_hash, transaction_id, accepted_at, false, 1
         FROM intake_requests WHERE client_id = $1 AND idempotency_key = $2
     ), ins AS (
         INSERT INTO intake_requests (client_id, idempotency_key, request_hash, transaction_id, accepted_at)
         SELECT $1, $2, $3, $4, $5 WHERE NOT EXISTS (SELECT 1 FROM prior)
         ON CONFLICT (client_id, idempotency_key) DO NOTHING
         RETURNING 1
     )
     SELECT (SELECT count(*) FROM ins) AS inserted, p.request_hash, p.transaction_id, p.accepted_at, p.recorded
     FROM (SELECT 1) AS one
     LEFT JOIN (SELECT * FROM prior ORDER BY rank LIMIT 1) AS p ON true";

/// Records that `(client_id, key)` is accepted for this request, unless the key already holds one.
#[tracing::instrument(name = "postgres.intake_record", level = "debug", skip_all)]
pub async fn record(
    pool: &PgPool,
    client_id: &str,
    key: &str,
    request_hash: &str,
    transaction_id: Uuid,
    accepted_at: DateTime<Utc>,
) -> Result<Recorded, StoreError> {
    let conn = pool.get().await?;
    let stmt = conn.prepare_cached(RECORD).await?;
    let row = conn
        .query_one(
            &stmt,
            &[
                &client_id,
                &key,
                &request_hash,
                &transaction_id,
                &accepted_at,
            ],
        )
        .await?;
    if row.get::<_, i64>(0) == 1 {
        return Ok(Recorded::New);
    }
    Ok(match row.get::<_, Option<String>>(1) {
        Some(request_hash) => Recorded::Existing(PriorRequest {
            request_hash,
            transaction_id: row.get(2),
            accepted_at: row.get(3),
            recorded: row.get(4),
            outcome_unknown: false,
        }),
        None => Recorded::Concurrent,
    })
}

/// Forgets a request that never reached the queue (SQS refused it outright), so the key is free.
pub async fn forget(
    pool: &PgPool,
    client_id: &str,
    key: &str,
    transaction_id: Uuid,
) -> Result<(), StoreError> {
    let conn = pool.get().await?;
    conn.execute(
        "DELETE FROM intake_requests
         WHERE client_id = $1 AND idempotency_key = $2 AND transaction_id = $3",
        &[&client_id, &key, &transaction_id],
    )
    .await?;
    Ok(())
}

/// Records whether the last send of a client's request had an unknown outcome (only called on the
/// rare paths: a send that timed out, and the retry that settles it).
pub async fn set_outcome_unknown(
    pool: &PgPool,
    client_id: &str,
    key: &str,
    unknown: bool,
) -> Result<(), StoreError> {
    let conn = pool.get().await?;
    conn.execute(
        "UPDATE intake_requests SET outcome_unknown = $3
         WHERE client_id = $1 AND idempotency_key = $2 AND outcome_unknown <> $3",
        &[&client_id, &key, &unknown],
    )
    .await?;
    Ok(())
}

/// The accepted request under a client's key, if intake recorded one.
pub async fn find(
    pool: &PgPool,
    client_id: &str,
    key: &str,
) -> Result<Option<PriorRequest>, StoreError> {
    let conn = pool.get().await?;
    let row = conn
        .query_opt(
            "SELECT request_hash, transaction_id, accepted_at, outcome_unknown FROM intake_requests
             WHERE client_id = $1 AND idempotency_key = $2",
            &[&client_id, &key],
        )
        .await?;
    Ok(row.map(|r| PriorRequest {
        request_hash: r.get(0),
        transaction_id: r.get(1),
        accepted_at: r.get(2),
        recorded: false,
        outcome_unknown: r.get(3),
    }))
}

/// Whether a request was ever accepted (or recorded by the ledger) under a client's key.
pub async fn key_in_use(pool: &PgPool, client_id: &str, key: &str) -> Result<bool, StoreError> {
    let conn = pool.get().await?;
    let stmt = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM transactions WHERE client_id = $1 AND idempotency_key = $2)
                 OR EXISTS (SELECT 1 FROM intake_requests WHERE client_id = $1 AND idempotency_key = $2)",
        )
        .await?;
    Ok(conn.query_one(&stmt, &[&client_id, &key]).await?.get(0))
}

// `RECORD` for many keys of one client in one statement: each key's earlier record (the ledger's
// first), and the insert of the others. The keys are distinct (the caller makes sure).
const RECORD_MANY: &str = "WITH input AS (
         SELECT * FROM unnest($2::text[], $3::text[], $4::uuid[], $5::timestamptz[])
             WITH ORDINALITY AS u(idempotency_key, request_hash, transaction_id, accepted_at, n)
     ), prior AS (
         SELECT DISTINCT ON (i.n) i.n, p.request_hash, p.transaction_id, p.accepted_at, p.recorded
         FROM input i
         JOIN LATERAL (
             SELECT request_hash, id AS transaction_id, accepted_at, true AS recorded, 0 AS rank
             FROM transactions WHERE client_id = $1 AND idempotency_key = i.idempotency_key
             UNION ALL
             SELECT request_hash, transaction_id, accepted_at, false, 1
             FROM intake_requests WHERE client_id = $1 AND idempotency_key = i.idempotency_key
         ) p ON true
         ORDER BY i.n, p.rank
     ), ins AS (
         INSERT INTO intake_requests (client_id, idempotency_key, request_hash, transaction_id, accepted_at)
         SELECT $1, i.idempotency_key, i.request_hash, i.transaction_id, i.accepted_at
         FROM input i WHERE NOT EXISTS (SELECT 1 FROM prior p WHERE p.n = i.n)
         ON CONFLICT (client_id, idempotency_key) DO NOTHING
         RETURNING idempotency_key
     )
     SELECT i.n, EXISTS (SELECT 1 FROM ins WHERE ins.idempotency_key = i.idempotency_key),
            p.request_hash, p.transaction_id, p.accepted_at, p.recorded
     FROM input i LEFT JOIN prior p ON p.n = i.n
     ORDER BY i.n";

/// A request to record: (key, request hash, transaction id, accepted at).
pub type NewRequest<'a> = (&'a str, &'a str, Uuid, DateTime<Utc>);

/// [`record`] for many distinct keys of one client, in one statement; one answer per request, in
/// order.
#[tracing::instrument(name = "postgres.intake_record_many", level = "debug", skip_all)]
pub async fn record_many(
    pool: &PgPool,
    client_id: &str,
    requests: &[NewRequest<'_>],
) -> Result<Vec<Recorded>, StoreError> {
    if requests.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<&str> = requests.iter().map(|r| r.0).collect();
    let hashes: Vec<&str> = requests.iter().map(|r| r.1).collect();
    let ids: Vec<Uuid> = requests.iter().map(|r| r.2).collect();
    let times: Vec<DateTime<Utc>> = requests.iter().map(|r| r.3).collect();
    let conn = pool.get().await?;
    let stmt = conn.prepare_cached(RECORD_MANY).await?;
    let rows = conn
        .query(&stmt, &[&client_id, &keys, &hashes, &ids, &times])
        .await?;
    Ok(rows
        .iter()
        .map(|row| {
            if row.get::<_, bool>(1) {
                return Recorded::New;
            }
            match row.get::<_, Option<String>>(2) {
                Some(request_hash) => Recorded::Existing(PriorRequest {
                    request_hash,
                    transaction_id: row.get(3),
                    accepted_at: row.get(4),
                    recorded: row.get(5),
                    outcome_unknown: false,
                }),
                None => Recorded::Concurrent,
            }
        })
        .collect())
}
