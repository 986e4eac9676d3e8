//! Posting a batch of transfers: one database transaction, one sorted lock statement, decisions in
//! memory in message order, then one set-based write statement and one commit. A batch that holds
//! adjusting transfers also settles their discrepancies, with one more set-based statement in the
//! same transaction (pipelined with the write, so no extra round trip).

use std::collections::HashMap;

use rust_decimal::Decimal;
use serde_json::Value;
use uuid::Uuid;

use super::{PgPool, StoreError};
use crate::accounts::OverdraftLimit;
use crate::ledger::{self, Decision, FailureCode, LockedAccount};
use crate::transfers::TransferMessage;

/// What happened to one message of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Posted now: two entries written.
    Posted { transaction_id: Uuid },
    /// Rejected by a posting rule now: recorded as FAILED with the code.
    Rejected {
        transaction_id: Uuid,
        code: FailureCode,
    },
    /// The client's key was already recorded (a redelivery, or a retry after Redis lost the key):
    /// nothing written. `request_matches` is false when the earlier request had another body.
    AlreadyRecorded {
        transaction_id: Uuid,
        status: String,
        failure_code: Option<String>,
        request_matches: bool,
    },
}

impl Outcome {
    pub fn transaction_id(&self) -> Uuid {
        match self {
            Self::Posted { transaction_id }
            | Self::Rejected { transaction_id, .. }
            | Self::AlreadyRecorded { transaction_id, .. } => *transaction_id,
        }
    }

    /// The status the transfer has in the ledger after this batch.
    pub fn status(&self) -> (&str, Option<&str>) {
        match self {
            Self::Posted { .. } => ("COMPLETED", None),
            Self::Rejected { code, .. } => ("FAILED", Some(code.as_str())),
            Self::AlreadyRecorded {
                status,
                failure_code,
                ..
            } => (status.as_str(), failure_code.as_deref()),
        }
    }
}

const LOCK_ACCOUNTS: &str =
    "SELECT b.account_id, a.client_id, a.currency::text, a.overdraft_limit, b.balance
     FROM account_balances b JOIN accounts a ON a.id = b.account_id
     WHERE b.account_id = ANY($1::text[])
     ORDER BY b.account_id
     FOR UPDATE OF b";

const FIND_RECORDED: &str =
    "SELECT t.client_id, t.idempotency_key, t.id, t.status, t.failure_code, t.request_hash
     FROM transactions t
     JOIN unnest($1::text[], $2::text[]) AS k(client_id, idempotency_key)
       ON t.client_id = k.client_id AND t.idempotency_key = k.idempotency_key";

// Transactions, entries and balances in one statement. Every CTE runs; statement_timestamp() is
// taken after the batch holds its locks, so per account posted_at never goes backwards.
const WRITE_BATCH: &str = "WITH tx AS (
         INSERT INTO transactions (id, client_id, idempotency_key, request_hash, source_account_id,
             destination_account_id, amount, currency, reference, description, metadata, status,
             failure_code, accepted_at, adjusts_discrepancy_id, posted_at)
         SELECT u.*, statement_timestamp()
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::numeric[], $8::text[], $9::text[], $10::text[], $11::jsonb[], $12::text[],
                     $13::text[], $14::timestamptz[], $23::uuid[]) AS u
         ON CONFLICT (client_id, idempotency_key) DO NOTHING
         RETURNING 1
     ), entries AS (
         INSERT INTO ledger_entries (transaction_id, account_id, amount, currency, balance_after, posted_at)
         SELECT e.*, statement_timestamp()
         FROM unnest($15::uuid[], $16::text[], $17::numeric[], $18::text[], $19::numeric[]) AS e
     ), balances AS (
         UPDATE account_balances b
         SET balance = u.balance, version = b.version + u.n, updated_at = statement_timestamp()
         FROM unnest($20::text[], $21::numeric[], $22::bigint[]) AS u(account_id, balance, n)
         WHERE b.account_id = u.account_id
     )
     SELECT count(*) FROM tx";

// A message whose content PostgreSQL refused, recorded FAILED without its free-form content
// (reference, description, metadata: what the database could not store) so the client reads why.
const RECORD_REFUSED: &str =
    "INSERT INTO transactions (id, client_id, idempotency_key, request_hash,
         source_account_id, destination_account_id, amount, currency, reference, description,
         metadata, status, failure_code, accepted_at, adjusts_discrepancy_id, posted_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, NULL, '{}'::jsonb, 'FAILED', $9, $10, $11,
             statement_timestamp())
     ON CONFLICT (client_id, idempotency_key) DO NOTHING";

/// Settling the discrepancies of adjusting transfers the ledger has just decided, from `input`
/// (rows of discrepancy_id, client_id, idempotency_key, transaction_id, failure_code; NULL code:
/// posted). A discrepancy still ADJUSTING for that very key becomes RESOLVED (posted) or OPEN
/// again (rejected: the code goes into its history and resolution); one in any other status, or
/// waiting for another attempt, keeps it (the money of an accepted transfer moves regardless) and,
/// when `$1` is true, the history still records the outcome. The discrepancies are locked in id
/// order, after the batch's accounts (the same order everywhere: no deadlock with another batch).
macro_rules! settle_adjustments_sql {
    ($input:literal) => {
        concat!(
            "WITH input AS (",
            $input,
            "), locked AS (
                 SELECT d.id, d.status, i.client_id, i.idempotency_key, i.transaction_id,
                        i.failure_code,
                        coalesce(d.status = 'ADJUSTING'
                                 AND d.resolution ->> 'idempotencyKey' = i.idempotency_key, false)
                            AS waiting
                 FROM discrepancies d
                 JOIN input i ON d.id = i.discrepancy_id AND d.client_id = i.client_id
                 ORDER BY d.id
                 FOR UPDATE OF d
             ), decided AS (
                 SELECT l.*,
                        CASE WHEN NOT l.waiting THEN l.status
                             WHEN l.failure_code IS NULL THEN 'RESOLVED' ELSE 'OPEN' END AS to_status,
                        jsonb_build_object('action', 'adjust', 'idempotencyKey', l.idempotency_key,
                            'transactionId', l.transaction_id,
                            'outcome', CASE WHEN l.failure_code IS NULL THEN 'posted' ELSE 'rejected' END,
                            'failureCode', l.failure_code) AS outcome
                 FROM locked l
             ), updated AS (
                 UPDATE discrepancies d
                 SET status = x.to_status, updated_at = now(),
                     resolution = jsonb_set(
                         coalesce(d.resolution, '{}'::jsonb)
                             || jsonb_build_object('outcome', x.outcome -> 'outcome',
                                                   'failureCode', x.failure_code),
                         '{transfer,transactionId}', to_jsonb(x.transaction_id))
                 FROM decided x WHERE d.id = x.id AND x.waiting
             )
             INSERT INTO discrepancy_events (discrepancy_id, actor, from_status, to_status, note, action)
             SELECT x.id, x.client_id, x.status, x.to_status,
                    'adjusting transfer ' || x.transaction_id
                        || CASE WHEN x.failure_code IS NULL THEN ' posted'
                                ELSE ' rejected: ' || x.failure_code END
                        || CASE WHEN x.waiting THEN ''
                                ELSE ' (the discrepancy was ' || x.status || ' and stays so)' END,
                    x.outcome
             FROM decided x
             WHERE x.waiting OR $1::bool"
        )
    };
}

const SETTLE_ADJUSTMENTS: &str = settle_adjustments_sql!(
    "SELECT * FROM unnest($2::uuid[], $3::text[], $4::text[], $5::uuid[], $6::text[])
         AS u(discrepancy_id, client_id, idempotency_key, transaction_id, failure_code)"
);

const SETTLE_RECORDED_ADJUSTMENT: &str = settle_adjustments_sql!(
    "SELECT adjusts_discrepancy_id AS discrepancy_id, client_id, idempotency_key,
            id AS transaction_id, failure_code
     FROM transactions
     WHERE client_id = $2 AND idempotency_key = $3 AND adjusts_discrepancy_id = $4"
);

/// A transfer already in the ledger under a client's key.
struct Recorded {
    transaction_id: Uuid,
    status: String,
    failure_code: Option<String>,
    request_hash: String,
}

#[derive(Default)]
struct Rows {
    tx_id: Vec<Uuid>,
    client: Vec<String>,
    key: Vec<String>,
    hash: Vec<String>,
    src: Vec<String>,
    dst: Vec<String>,
    amount: Vec<Decimal>,
    currency: Vec<String>,
    reference: Vec<Option<String>>,
    description: Vec<Option<String>>,
    metadata: Vec<Value>,
    status: Vec<&'static str>,
    failure: Vec<Option<&'static str>>,
    accepted: Vec<chrono::DateTime<chrono::Utc>>,
    adjusts: Vec<Option<Uuid>>,
    e_tx: Vec<Uuid>,
    e_account: Vec<String>,
    e_amount: Vec<Decimal>,
    e_currency: Vec<String>,
    e_balance: Vec<Decimal>,
}

impl Rows {
    fn push_transaction(
        &mut self,
        m: &TransferMessage,
        status: &'static str,
        failure: Option<&'static str>,
    ) {
        let t = &m.transfer;
        self.tx_id.push(m.transaction_id);
        self.client.push(m.client_id.clone());
        self.key.push(m.idempotency_key.clone());
        self.hash.push(m.request_hash.clone());
        self.src.push(t.source_account_id.to_string());
        self.dst.push(t.destination_account_id.to_string());
        self.amount.push(t.amount);
        self.currency.push(t.currency.code().to_string());
        self.reference.push(t.reference.clone());
        self.description.push(t.description.clone());
        self.metadata.push(t.metadata.clone());
        self.status.push(status);
        self.failure.push(failure);
        self.accepted.push(m.accepted_at);
        self.adjusts.push(t.adjusts());
    }

    fn push_entry(
        &mut self,
        tx: Uuid,
        account: &str,
        amount: Decimal,
        currency: &str,
        after: Decimal,
    ) {
        self.e_tx.push(tx);
        self.e_account.push(account.to_string());
        self.e_amount.push(amount);
        self.e_currency.push(currency.to_string());
        self.e_balance.push(after);
    }
}

/// The adjusting transfers a batch decides now, for `SETTLE_ADJUSTMENTS`.
#[derive(Default)]
struct Settlements {
    discrepancy: Vec<Uuid>,
    client: Vec<String>,
    key: Vec<String>,
    tx_id: Vec<Uuid>,
    failure: Vec<Option<String>>,
}

impl Settlements {
    fn push(&mut self, m: &TransferMessage, discrepancy: Uuid, failure: Option<&str>) {
        self.discrepancy.push(discrepancy);
        self.client.push(m.client_id.clone());
        self.key.push(m.idempotency_key.clone());
        self.tx_id.push(m.transaction_id);
        self.failure.push(failure.map(str::to_string));
    }
}

/// Posts a batch in one database transaction and returns one outcome per message, in order.
/// Any error means nothing of the batch was written; the caller retries the whole batch.
pub async fn post_batch(
    pool: &PgPool,
    messages: &[TransferMessage],
) -> Result<Vec<Outcome>, StoreError> {
    if messages.is_empty() {
        return Ok(Vec::new());
    }
    let conn = pool.get().await?;
    let result = post_in_transaction(&conn, messages).await;
    if result.is_err() {
        // Whatever failed, leave the connection clean; if it is broken, the pool's check drops it.
        let _ = conn.batch_execute("ROLLBACK").await;
    }
    result
}

/// Records one message FAILED `refused_by_database`, without its reference, description and
/// metadata, after PostgreSQL refused its content. Returns what the ledger then holds for its key
/// (an earlier record wins). A refused adjusting transfer returns its discrepancy to OPEN in the
/// same transaction.
pub async fn record_refused(pool: &PgPool, m: &TransferMessage) -> Result<Outcome, StoreError> {
    let mut conn = pool.get().await?;
    let conn = conn.transaction().await?;
    let t = &m.transfer;
    // A same-account message is FAILED `same_account` whatever else is wrong with it (the
    // ledger's CHECK allows source = destination only for that code).
    let code = if t.source_account_id == t.destination_account_id {
        FailureCode::SameAccount
    } else {
        FailureCode::RefusedByDatabase
    };
    let inserted = conn
        .execute(
            RECORD_REFUSED,
            &[
                &m.transaction_id,
                &m.client_id,
                &m.idempotency_key,
                &m.request_hash,
                &t.source_account_id.as_str(),
                &t.destination_account_id.as_str(),
                &t.amount,
                &t.currency.code(),
                &code.as_str(),
                &m.accepted_at,
                &t.adjusts(),
            ],
        )
        .await?;
    if inserted == 1 {
        if let Some(discrepancy) = t.adjusts() {
            conn.execute(
                SETTLE_RECORDED_ADJUSTMENT,
                &[&true, &m.client_id, &m.idempotency_key, &discrepancy],
            )
            .await?;
        }
        conn.commit().await?;
        return Ok(Outcome::Rejected {
            transaction_id: m.transaction_id,
            code,
        });
    }
    let row = conn
        .query_one(
            "SELECT id, status, failure_code, request_hash FROM transactions
             WHERE client_id = $1 AND idempotency_key = $2",
            &[&m.client_id, &m.idempotency_key],
        )
        .await?;
    conn.commit().await?;
    Ok(Outcome::AlreadyRecorded {
        transaction_id: row.get(0),
        status: row.get(1),
        failure_code: row.get(2),
        request_matches: row.get::<_, String>(3) == m.request_hash,
    })
}

/// Settles the discrepancy of the adjusting transfer the ledger holds under (`client_id`, `key`)
/// if it is still ADJUSTING for that key (the transfer was decided while the discrepancy was
/// elsewhere, e.g. a retried adjustment whose first send had an unknown outcome). Returns whether
/// it changed the discrepancy; records nothing otherwise.
pub async fn settle_recorded_adjustment(
    pool: &PgPool,
    client_id: &str,
    key: &str,
    discrepancy_id: Uuid,
) -> Result<bool, StoreError> {
    let conn = pool.get().await?;
    let changed = conn
        .execute(
            SETTLE_RECORDED_ADJUSTMENT,
            &[&false, &client_id, &key, &discrepancy_id],
        )
        .await?;
    Ok(changed > 0)
}

async fn post_in_transaction(
    conn: &deadpool_postgres::Object,
    messages: &[TransferMessage],
) -> Result<Vec<Outcome>, StoreError> {
    let (lock_stmt, find_stmt, write_stmt) = tokio::try_join!(
        conn.prepare_cached(LOCK_ACCOUNTS),
        conn.prepare_cached(FIND_RECORDED),
        conn.prepare_cached(WRITE_BATCH)
    )?;

    let mut ids: Vec<&str> = messages
        .iter()
        .flat_map(|m| {
            [
                m.transfer.source_account_id.as_str(),
                m.transfer.destination_account_id.as_str(),
            ]
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let clients: Vec<&str> = messages.iter().map(|m| m.client_id.as_str()).collect();
    let keys: Vec<&str> = messages
        .iter()
        .map(|m| m.idempotency_key.as_str())
        .collect();

    // One round trip: BEGIN, the sorted lock statement and the lookup of already-recorded keys are
    // pipelined in this order, so the lookup runs after the locks are held and sees a concurrent
    // delivery of the same message that committed first.
    let lock_params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&ids];
    let find_params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&clients, &keys];
    let (_, locked, recorded) = tokio::try_join!(
        conn.batch_execute("BEGIN"),
        conn.query(&lock_stmt, &lock_params),
        conn.query(&find_stmt, &find_params)
    )?;

    let mut accounts: HashMap<String, LockedAccount> = locked
        .iter()
        .map(|r| {
            (
                r.get::<_, String>(0),
                LockedAccount {
                    owner_client_id: r.get(1),
                    currency: r.get(2),
                    overdraft_limit: OverdraftLimit::from_column(r.get(3)),
                    balance: r.get(4),
                },
            )
        })
        .collect();
    let mut known: HashMap<(String, String), Recorded> = recorded
        .iter()
        .map(|r| {
            let recorded = Recorded {
                transaction_id: r.get(2),
                status: r.get(3),
                failure_code: r.get(4),
                request_hash: r.get(5),
            };
            ((r.get(0), r.get(1)), recorded)
        })
        .collect();

    let mut rows = Rows::default();
    let mut settle = Settlements::default();
    let mut outcomes = Vec::with_capacity(messages.len());
    let mut touched: HashMap<String, i64> = HashMap::new();
    for m in messages {
        let k = (m.client_id.clone(), m.idempotency_key.clone());
        if let Some(r) = known.get(&k) {
            outcomes.push(Outcome::AlreadyRecorded {
                transaction_id: r.transaction_id,
                status: r.status.clone(),
                failure_code: r.failure_code.clone(),
                request_matches: r.request_hash == m.request_hash,
            });
            continue;
        }
        let t = &m.transfer;
        let outcome = match ledger::decide(m, &mut accounts) {
            Decision::Post(p) => {
                let currency = t.currency.code();
                rows.push_transaction(m, "COMPLETED", None);
                let (src, dst) = (
                    t.source_account_id.as_str(),
                    t.destination_account_id.as_str(),
                );
                rows.push_entry(
                    m.transaction_id,
                    src,
                    -t.amount,
                    currency,
                    p.source_balance_after,
                );
                rows.push_entry(
                    m.transaction_id,
                    dst,
                    t.amount,
                    currency,
                    p.destination_balance_after,
                );
                *touched.entry(src.to_string()).or_default() += 1;
                *touched.entry(dst.to_string()).or_default() += 1;
                Outcome::Posted {
                    transaction_id: m.transaction_id,
                }
            }
            Decision::Reject(code) => {
                rows.push_transaction(m, "FAILED", Some(code.as_str()));
                Outcome::Rejected {
                    transaction_id: m.transaction_id,
                    code,
                }
            }
        };
        let (status, failure) = outcome.status();
        if let Some(discrepancy) = t.adjusts() {
            settle.push(m, discrepancy, failure);
        }
        known.insert(
            k,
            Recorded {
                transaction_id: m.transaction_id,
                status: status.to_string(),
                failure_code: failure.map(str::to_string),
                request_hash: m.request_hash.clone(),
            },
        );
        outcomes.push(outcome);
    }

    if !rows.tx_id.is_empty() {
        let mut b_ids = Vec::with_capacity(touched.len());
        let mut b_balances = Vec::with_capacity(touched.len());
        let mut b_counts = Vec::with_capacity(touched.len());
        for (id, n) in &touched {
            let balance = accounts[id].balance;
            b_ids.push(id.as_str());
            b_balances.push(balance);
            b_counts.push(*n);
        }
        let write_params: [&(dyn tokio_postgres::types::ToSql + Sync); 23] = [
            &rows.tx_id,
            &rows.client,
            &rows.key,
            &rows.hash,
            &rows.src,
            &rows.dst,
            &rows.amount,
            &rows.currency,
            &rows.reference,
            &rows.description,
            &rows.metadata,
            &rows.status,
            &rows.failure,
            &rows.accepted,
            &rows.e_tx,
            &rows.e_account,
            &rows.e_amount,
            &rows.e_currency,
            &rows.e_balance,
            &b_ids,
            &b_balances,
            &b_counts,
            &rows.adjusts,
        ];
        let write = conn.query_one(&write_stmt, &write_params);
        let written: i64 = if settle.discrepancy.is_empty() {
            write.await?.get(0)
        } else {
            // Pipelined behind the write, in the same transaction: no extra round trip.
            let settle_params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] = [
                &true,
                &settle.discrepancy,
                &settle.client,
                &settle.key,
                &settle.tx_id,
                &settle.failure,
            ];
            let settle_adjustments = async {
                let stmt = conn.prepare_cached(SETTLE_ADJUSTMENTS).await?;
                conn.execute(&stmt, &settle_params).await
            };
            let (row, _) = tokio::try_join!(write, settle_adjustments)?;
            row.get(0)
        };
        if written != rows.tx_id.len() as i64 {
            // A concurrent delivery recorded one of these keys between our lookup and our write
            // (possible only for transfers touching no locked account). Roll back; the retry sees it.
            return Err(StoreError::Conflict(format!(
                "{} of {} transactions were recorded concurrently",
                rows.tx_id.len() as i64 - written,
                rows.tx_id.len()
            )));
        }
    }
    conn.batch_execute("COMMIT").await?;
    Ok(outcomes)
}
