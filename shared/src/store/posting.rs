//! Posting a batch of transfers: one database transaction, one sorted lock statement, decisions in
//! memory in message order, then one set-based write statement and one commit. A batch that holds
//! adjusting transfers also settles their discrepancies, with one more set-based statement in the
//! same transaction (pipelined with the write, so no extra round trip).

use std::collections::HashMap;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::Value;
use uuid::Uuid;

use super::account_locks;
use super::holds::{HOLD_STATE_COLUMNS, hold_state};
use super::monitors::{LOAD_MONITORS, MonitorRows, UPDATE_MONITORS, monitor};
use super::outbox::{self, EventRows, HoldOrigin, INSERT_EVENTS};
use super::{PgPool, StoreError};
use crate::accounts::OverdraftLimit;
use crate::events::{EventType, NewEvent};
use crate::ledger::{
    self, BatchPlan, Book, FailureCode, LockedAccount, Outcome, Recorded, RecordedKeys,
    RefundableLeg,
};
use crate::reconcile::workflow::DiscrepancyStatus;
use crate::transfers::{Operation, TransferMessage};

const LOCK_ACCOUNTS: &str =
    "SELECT b.account_id, a.client_id, a.currency::text, a.overdraft_limit, b.balance, b.pending
     FROM account_balances b JOIN accounts a ON a.id = b.account_id
     WHERE b.account_id = ANY($1::text[])
     ORDER BY b.account_id
     FOR UPDATE OF b";

// The holds the batch's captures and voids name, and the active holds of its accounts that have
// expired by the batch's time (released by this batch). Run only when the batch names a hold or
// one of its accounts has pending debits (no other account has an active hold), after the account
// locks. Every hold is changed only under the lock of its source account, which the batch already
// holds, so these row locks never wait on another batch.
static LOCK_HOLDS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT id, idempotency_key, created_at, {HOLD_STATE_COLUMNS}
         FROM holds
         WHERE id = ANY($1::uuid[])
            OR (source_account_id = ANY($2::text[]) AND status = 'ACTIVE' AND expires_at <= $3)
         ORDER BY id
         FOR UPDATE"
    )
});

// The legs the batch's refunds reverse (credits of posted transfers and captures) with what
// earlier refunds gave back. Read after the locks: every refund of a leg credits the leg's source,
// which this batch holds locked, so no other batch refunds the same leg meanwhile.
const LOAD_REFUNDABLE: &str =
    "SELECT c.transaction_id, c.leg, t.client_id, d.account_id, c.amount, c.currency::text,
            coalesce((SELECT sum(r.amount) FROM refunds r
                      WHERE r.original_id = c.transaction_id AND r.original_leg = c.leg), 0)
     FROM ledger_entries c
     JOIN transactions t ON t.id = c.transaction_id
     JOIN ledger_entries d ON d.transaction_id = c.transaction_id AND d.leg = c.leg AND d.amount < 0
     WHERE c.transaction_id = ANY($1::uuid[]) AND c.amount > 0
       AND t.status = 'COMPLETED' AND t.kind IN ('TRANSFER', 'CAPTURE')";

const FIND_RECORDED: &str =
    "SELECT t.client_id, t.idempotency_key, t.id, t.status, t.failure_code, t.request_hash
     FROM transactions t
     JOIN unnest($1::text[], $2::text[]) AS k(client_id, idempotency_key)
       ON t.client_id = k.client_id AND t.idempotency_key = k.idempotency_key";

// Transactions, entries and balances in one statement. Every CTE runs. $31 is the batch's time,
// taken by the database after the batch holds its locks (`BATCH_TIME`), so per account posted_at
// never goes backwards. An entry's value date is its transaction's `effectiveAt`, or when it
// posted.
const WRITE_BATCH: &str = "WITH tx AS (
         INSERT INTO transactions (id, client_id, idempotency_key, request_hash, source_account_id,
             destination_account_id, amount, currency, reference, description, metadata, status,
             failure_code, accepted_at, adjusts_discrepancy_id, kind, parent_id, effective_at, legs,
             posted_at)
         SELECT u.*, $31::timestamptz
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::numeric[], $8::text[], $9::text[], $10::text[], $11::jsonb[], $12::text[],
                     $13::text[], $14::timestamptz[], $23::uuid[], $24::text[], $25::uuid[],
                     $26::timestamptz[], $27::jsonb[]) AS u
         ON CONFLICT (client_id, idempotency_key) DO NOTHING
         RETURNING 1
     ), entries AS (
         INSERT INTO ledger_entries (transaction_id, account_id, amount, currency, balance_after,
             leg, effective_at, posted_at)
         SELECT e.transaction_id, e.account_id, e.amount, e.currency, e.balance_after, e.leg,
                coalesce(e.effective_at, $31::timestamptz), $31::timestamptz
         FROM unnest($15::uuid[], $16::text[], $17::numeric[], $18::text[], $19::numeric[],
                     $28::smallint[], $29::timestamptz[])
             AS e(transaction_id, account_id, amount, currency, balance_after, leg, effective_at)
     ), balances AS (
         UPDATE account_balances b
         SET balance = u.balance, pending = u.pending, version = b.version + u.n,
             updated_at = $31::timestamptz
         FROM unnest($20::text[], $21::numeric[], $22::bigint[], $30::numeric[])
             AS u(account_id, balance, n, pending)
         WHERE b.account_id = u.account_id
     )
     SELECT count(*) FROM tx";

// Holds placed, holds changed (captured, voided, expired: closed at their expiry, or at the batch's
// time $19) and refund rows, pipelined behind WRITE_BATCH when the batch has any.
const WRITE_HOLDS_AND_REFUNDS: &str = "WITH placed AS (
         INSERT INTO holds (id, client_id, idempotency_key, source_account_id,
             destination_account_id, currency, amount, expires_at, captured, status, created_at,
             closed_at)
         SELECT u.*, $19::timestamptz,
                CASE WHEN u.status = 'ACTIVE' THEN NULL ELSE $19::timestamptz END
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::numeric[], $8::timestamptz[], $17::numeric[], $18::text[])
             AS u(id, client_id, idempotency_key, source_account_id, destination_account_id,
                  currency, amount, expires_at, captured, status)
     ), changed AS (
         UPDATE holds h
         SET captured = u.captured, status = u.status,
             closed_at = CASE WHEN u.status = 'ACTIVE' THEN NULL
                              WHEN u.status = 'EXPIRED' THEN h.expires_at
                              ELSE $19::timestamptz END
         FROM unnest($9::uuid[], $10::numeric[], $11::text[]) AS u(id, captured, status)
         WHERE h.id = u.id
     )
     INSERT INTO refunds (refund_id, leg, original_id, original_leg, amount)
     SELECT * FROM unnest($12::uuid[], $13::smallint[], $14::uuid[], $15::smallint[], $16::numeric[])";

// A message whose content PostgreSQL refused, recorded FAILED without its free-form content
// (reference, description, metadata: what the database could not store) so the client reads why.
const RECORD_REFUSED: &str =
    "INSERT INTO transactions (id, client_id, idempotency_key, request_hash,
         source_account_id, destination_account_id, amount, currency, reference, description,
         metadata, status, failure_code, accepted_at, adjusts_discrepancy_id, kind, parent_id,
         posted_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, NULL, '{}'::jsonb, 'FAILED', $9, $10, $11,
             $12, $13, statement_timestamp())
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
             WHERE x.waiting OR $1::bool
             RETURNING discrepancy_id, from_status, to_status"
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

/// The plan's transaction and entry rows as the columns `WRITE_BATCH` unnests.
#[derive(Default)]
struct Rows<'a> {
    tx_id: Vec<Uuid>,
    client: Vec<&'a str>,
    key: Vec<&'a str>,
    hash: Vec<&'a str>,
    src: Vec<&'a str>,
    dst: Vec<&'a str>,
    amount: Vec<Decimal>,
    currency: Vec<&'a str>,
    reference: Vec<Option<&'a str>>,
    description: Vec<Option<&'a str>>,
    metadata: Vec<&'a Value>,
    status: Vec<&'static str>,
    failure: Vec<Option<&'static str>>,
    accepted: Vec<DateTime<Utc>>,
    adjusts: Vec<Option<Uuid>>,
    kind: Vec<&'static str>,
    parent: Vec<Option<Uuid>>,
    effective: Vec<Option<DateTime<Utc>>>,
    legs: Vec<Option<&'a Value>>,
    e_tx: Vec<Uuid>,
    e_account: Vec<&'a str>,
    e_amount: Vec<Decimal>,
    e_currency: Vec<&'a str>,
    e_balance: Vec<Decimal>,
    e_leg: Vec<i16>,
    e_effective: Vec<Option<DateTime<Utc>>>,
    b_account: Vec<&'a str>,
    b_balance: Vec<Decimal>,
    b_count: Vec<i64>,
    b_pending: Vec<Decimal>,
}

impl<'a> Rows<'a> {
    fn of(plan: &'a BatchPlan<'a>) -> Self {
        let mut rows = Rows::default();
        for row in &plan.transactions {
            let (m, t) = (row.message, &row.message.transfer);
            rows.tx_id.push(m.transaction_id);
            rows.client.push(&m.client_id);
            rows.key.push(&m.idempotency_key);
            rows.hash.push(&m.request_hash);
            rows.src.push(&row.source_account_id);
            rows.dst.push(&row.destination_account_id);
            rows.amount.push(row.amount);
            rows.currency.push(t.currency.code());
            rows.reference.push(t.reference.as_deref());
            rows.description.push(t.description.as_deref());
            rows.metadata.push(&t.metadata);
            rows.status.push(row.status.as_str());
            rows.failure.push(row.failure_code.map(FailureCode::as_str));
            rows.accepted.push(m.accepted_at);
            rows.adjusts.push(t.adjusts());
            rows.kind.push(t.operation.kind().as_str());
            rows.parent.push(t.operation.parent());
            rows.effective.push(t.effective_at);
            rows.legs.push(row.legs.as_ref());
        }
        for e in &plan.entries {
            rows.e_tx.push(e.transaction_id);
            rows.e_account.push(&e.account_id);
            rows.e_amount.push(e.amount);
            rows.e_currency.push(&e.currency);
            rows.e_balance.push(e.balance_after);
            rows.e_leg.push(e.leg);
            rows.e_effective.push(e.effective_at);
        }
        for b in &plan.balances {
            rows.b_account.push(&b.account_id);
            rows.b_balance.push(b.balance);
            rows.b_count.push(b.entries);
            rows.b_pending.push(b.pending);
        }
        rows
    }
}

/// The plan's settlements as the columns `SETTLE_ADJUSTMENTS` unnests.
#[derive(Default)]
struct Settlements<'a> {
    discrepancy: Vec<Uuid>,
    client: Vec<&'a str>,
    key: Vec<&'a str>,
    tx_id: Vec<Uuid>,
    failure: Vec<Option<&'static str>>,
}

impl<'a> Settlements<'a> {
    fn of(plan: &'a BatchPlan<'a>) -> Self {
        let mut s = Settlements::default();
        for x in &plan.settlements {
            s.discrepancy.push(x.discrepancy_id);
            s.client.push(&x.message.client_id);
            s.key.push(&x.message.idempotency_key);
            s.tx_id.push(x.message.transaction_id);
            s.failure.push(x.failure_code.map(FailureCode::as_str));
        }
        s
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
                &t.operation.kind().as_str(),
                &t.operation.parent(),
            ],
        )
        .await?;
    if inserted == 1 {
        // Its event, with the transaction as recorded (without what the database refused).
        if let Some(record) =
            super::transactions::find_by_key_on(&conn, &m.client_id, &m.idempotency_key).await?
        {
            let failed = NewEvent {
                client_id: m.client_id.clone(),
                event_type: EventType::TransferFailed,
                subject_id: record.id.to_string(),
                data: crate::views::transaction_json(&record),
            };
            outbox::write(&conn, std::slice::from_ref(&failed)).await?;
        }
        if let Some(discrepancy) = t.adjusts() {
            let settled = conn
                .query(
                    SETTLE_RECORDED_ADJUSTMENT,
                    &[&true, &m.client_id, &m.idempotency_key, &discrepancy],
                )
                .await?;
            write_settled_events(&conn, &settled).await?;
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
        status: row.try_get(1)?,
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
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    let settled = tx
        .query(
            SETTLE_RECORDED_ADJUSTMENT,
            &[&false, &client_id, &key, &discrepancy_id],
        )
        .await?;
    write_settled_events(&tx, &settled).await?;
    tx.commit().await?;
    Ok(!settled.is_empty())
}

async fn post_in_transaction(
    conn: &deadpool_postgres::Object,
    messages: &[TransferMessage],
) -> Result<Vec<Outcome>, StoreError> {
    let mut ids: Vec<&str> = messages
        .iter()
        .flat_map(|m| m.transfer.accounts())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let (book, recorded, origins) = lock_and_read(conn, true, &ids, messages).await?;
    let now = book.now;
    let plan = ledger::plan_batch(messages, book, recorded);
    write_plan(conn, &plan, &origins, now).await?;
    conn.batch_execute("COMMIT").await?;
    Ok(plan.outcomes)
}

/// Expires the due holds of `accounts` (whose advisory locks the caller's transaction holds) the way a
/// batch does before its messages: the same plan, so the sweep writes the same rows, events and
/// monitor changes posting would. Commits.
pub(super) async fn expire_in_transaction(
    conn: &deadpool_postgres::Object,
    accounts: &[&str],
) -> Result<usize, StoreError> {
    let (book, recorded, origins) = lock_and_read(conn, false, accounts, &[]).await?;
    let now = book.now;
    let plan = ledger::plan_batch(&[], book, recorded);
    write_plan(conn, &plan, &origins, now).await?;
    conn.batch_execute("COMMIT").await?;
    Ok(plan.hold_updates.len())
}

/// The batch's time: the database's clock once the batch holds its locks (pipelined behind the
/// lock statement, so it starts after the locks are granted). Every row the batch writes records
/// it, and holds expire at or before it.
const BATCH_TIME: &str = "SELECT statement_timestamp()";

/// Begins the transaction (unless the caller did), locks every account in `ids` (sorted), reads
/// the batch's time, the keys already recorded, the active monitors of the accounts and the legs
/// its refunds reverse (one round trip), then, only when the batch names a hold or one of its
/// accounts has pending debits, locks the holds it acts on and the expired ones of its accounts
/// (a second round trip). Returns the book the ledger decides against, and where the holds it
/// read came from (for their events).
async fn lock_and_read(
    conn: &deadpool_postgres::Object,
    begin: bool,
    ids: &[&str],
    messages: &[TransferMessage],
) -> Result<(Book, RecordedKeys, HashMap<Uuid, HoldOrigin>), StoreError> {
    let (advisory_stmt, lock_stmt, time_stmt, find_stmt, monitors_stmt) = tokio::try_join!(
        conn.prepare_cached(account_locks::LOCK),
        conn.prepare_cached(LOCK_ACCOUNTS),
        conn.prepare_cached(BATCH_TIME),
        conn.prepare_cached(FIND_RECORDED),
        conn.prepare_cached(&LOAD_MONITORS),
    )?;
    let clients: Vec<&str> = messages.iter().map(|m| m.client_id.as_str()).collect();
    let keys: Vec<&str> = messages
        .iter()
        .map(|m| m.idempotency_key.as_str())
        .collect();
    let hold_ids: Vec<Uuid> = messages
        .iter()
        .filter_map(|m| match m.transfer.operation {
            Operation::Capture { hold_id, .. } | Operation::Void { hold_id } => Some(hold_id),
            _ => None,
        })
        .collect();
    let originals: Vec<Uuid> = messages
        .iter()
        .filter_map(|m| match m.transfer.operation {
            Operation::Refund { of, .. } => Some(of),
            _ => None,
        })
        .collect();

    // One round trip: BEGIN, the accounts' advisory locks (see `account_locks`: the transaction's
    // id, which orders its events, is assigned only once it holds all of them), the sorted row
    // lock statement, the batch's time, the lookup of
    // already-recorded keys, the monitors (and the refunded legs) are pipelined in this order, so
    // the lookups run after the locks are held and see a concurrent delivery of the same message
    // that committed first. Biased: polled (so sent) in this order, and the first error in this
    // order is the one returned.
    let lock_keys = account_locks::keys(ids.iter().copied());
    let lock_keys_param: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&lock_keys];
    let ids_param: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&ids];
    let find_params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&clients, &keys];
    let begin = async {
        if begin {
            conn.batch_execute("BEGIN").await?;
        }
        Ok(())
    };
    let recorded = async {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        conn.query(&find_stmt, &find_params).await
    };
    let refundable = async {
        if originals.is_empty() {
            return Ok(Vec::new());
        }
        let stmt = conn.prepare_cached(LOAD_REFUNDABLE).await?;
        conn.query(&stmt, &[&originals]).await
    };
    let (_, _, locked, time, recorded, monitors, refundable) = tokio::try_join!(
        biased;
        begin,
        conn.query_one(&advisory_stmt, &lock_keys_param),
        conn.query(&lock_stmt, &ids_param),
        conn.query_one(&time_stmt, &[]),
        recorded,
        conn.query(&monitors_stmt, &ids_param),
        refundable
    )?;
    let mut book = Book::of_accounts(HashMap::new(), time.get(0));
    for r in &locked {
        let account = LockedAccount {
            owner_client_id: r.get(1),
            currency: r.get(2),
            overdraft_limit: OverdraftLimit::from_column(r.get(3)),
            balance: r.get(4),
            pending: r.get(5),
        };
        book.accounts.insert(r.get(0), account);
    }
    for r in &monitors {
        let m = monitor(r)?;
        book.monitors
            .entry(m.account_id.clone())
            .or_default()
            .push(m);
    }
    // Only an account with pending debits has active holds (pending is their sum).
    let holding: Vec<&str> = book
        .accounts
        .iter()
        .filter(|(_, a)| a.pending > Decimal::ZERO)
        .map(|(id, _)| id.as_str())
        .collect();
    let mut origins = HashMap::new();
    if !hold_ids.is_empty() || !holding.is_empty() {
        let holds_stmt = conn.prepare_cached(&LOCK_HOLDS).await?;
        let holds_params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
            [&hold_ids, &holding, &book.now];
        let holds = conn.query(&holds_stmt, &holds_params).await?;
        for r in &holds {
            let id: Uuid = r.try_get("id")?;
            book.holds.insert(id, hold_state(r)?);
            let origin = HoldOrigin {
                idempotency_key: r.try_get("idempotency_key")?,
                created_at: r.try_get("created_at")?,
            };
            origins.insert(id, origin);
        }
    }
    for r in &refundable {
        let leg = RefundableLeg {
            client_id: r.get(2),
            source_account_id: r.get(3),
            amount: r.get(4),
            currency: r.get(5),
            refunded: r.get(6),
        };
        book.refundable
            .insert((r.get(0), r.get::<_, i16>(1) as u16), leg);
    }
    let recorded = recorded
        .iter()
        .map(|r| {
            let recorded = Recorded {
                transaction_id: r.get(2),
                status: r.try_get(3)?,
                failure_code: r.get(4),
                request_hash: r.get(5),
            };
            Ok(((r.get(0), r.get(1)), recorded))
        })
        .collect::<Result<_, tokio_postgres::Error>>()?;
    Ok((book, recorded, origins))
}

/// The plan's holds and refunds as the columns `WRITE_HOLDS_AND_REFUNDS` unnests.
#[derive(Default)]
struct HoldRows<'a> {
    id: Vec<Uuid>,
    client: Vec<&'a str>,
    key: Vec<&'a str>,
    src: Vec<&'a str>,
    dst: Vec<&'a str>,
    currency: Vec<&'a str>,
    amount: Vec<Decimal>,
    expires: Vec<DateTime<Utc>>,
    captured: Vec<Decimal>,
    status: Vec<&'static str>,
    u_id: Vec<Uuid>,
    u_captured: Vec<Decimal>,
    u_status: Vec<&'static str>,
    r_id: Vec<Uuid>,
    r_leg: Vec<i16>,
    r_original: Vec<Uuid>,
    r_original_leg: Vec<i16>,
    r_amount: Vec<Decimal>,
}

impl<'a> HoldRows<'a> {
    fn of(plan: &'a BatchPlan<'a>) -> Self {
        let mut rows = Self::default();
        for h in &plan.new_holds {
            rows.id.push(h.id);
            rows.client.push(&h.client_id);
            rows.key.push(&h.idempotency_key);
            rows.src.push(&h.source_account_id);
            rows.dst.push(&h.destination_account_id);
            rows.currency.push(&h.currency);
            rows.amount.push(h.amount);
            rows.expires.push(h.expires_at);
            rows.captured.push(h.captured);
            rows.status.push(h.status.as_str());
        }
        for u in &plan.hold_updates {
            rows.u_id.push(u.id);
            rows.u_captured.push(u.captured);
            rows.u_status.push(u.status.as_str());
        }
        for r in &plan.refunds {
            rows.r_id.push(r.refund_id);
            rows.r_leg.push(r.leg);
            rows.r_original.push(r.original_id);
            rows.r_original_leg.push(r.original_leg);
            rows.r_amount.push(r.amount);
        }
        rows
    }

    fn is_empty(&self) -> bool {
        self.id.is_empty() && self.u_id.is_empty() && self.r_id.is_empty()
    }
}

/// Writes the plan's rows with one statement, and pipelined behind it (same transaction, no extra
/// round trip) its holds and refunds, its adjustments' settlements, its monitors' changes and its
/// events, each only when the plan has some. Writes nothing for a plan with nothing to write.
async fn write_plan(
    conn: &deadpool_postgres::Object,
    plan: &BatchPlan<'_>,
    origins: &HashMap<Uuid, HoldOrigin>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    if plan.transactions.is_empty() && plan.hold_updates.is_empty() && plan.events.is_empty() {
        return Ok(());
    }
    let write_stmt = conn.prepare_cached(WRITE_BATCH).await?;
    let rows = Rows::of(plan);
    let write_params: [&(dyn tokio_postgres::types::ToSql + Sync); 31] = [
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
        &rows.b_account,
        &rows.b_balance,
        &rows.b_count,
        &rows.adjusts,
        &rows.kind,
        &rows.parent,
        &rows.effective,
        &rows.legs,
        &rows.e_leg,
        &rows.e_effective,
        &rows.b_pending,
        &now,
    ];
    let write = conn.query_one(&write_stmt, &write_params);
    let holds = HoldRows::of(plan);
    let holds_params: [&(dyn tokio_postgres::types::ToSql + Sync); 19] = [
        &holds.id,
        &holds.client,
        &holds.key,
        &holds.src,
        &holds.dst,
        &holds.currency,
        &holds.amount,
        &holds.expires,
        &holds.u_id,
        &holds.u_captured,
        &holds.u_status,
        &holds.r_id,
        &holds.r_leg,
        &holds.r_original,
        &holds.r_original_leg,
        &holds.r_amount,
        &holds.captured,
        &holds.status,
        &now,
    ];
    // Pipelined behind the write, in the same transaction (no extra round trip), and only when
    // the batch has holds, refunds or adjustments.
    let write_holds = async {
        if holds.is_empty() {
            return Ok(0);
        }
        let stmt = conn.prepare_cached(WRITE_HOLDS_AND_REFUNDS).await?;
        conn.execute(&stmt, &holds_params).await
    };
    let settle = Settlements::of(plan);
    let settle_params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] = [
        &true,
        &settle.discrepancy,
        &settle.client,
        &settle.key,
        &settle.tx_id,
        &settle.failure,
    ];
    let settle_adjustments = async {
        if plan.settlements.is_empty() {
            return Ok(Vec::new());
        }
        let stmt = conn.prepare_cached(SETTLE_ADJUSTMENTS).await?;
        conn.query(&stmt, &settle_params).await
    };
    let monitor_rows = MonitorRows::of(&plan.monitor_updates);
    let monitor_params = monitor_rows.params();
    let update_monitors = async {
        if plan.monitor_updates.is_empty() {
            return Ok(0);
        }
        let stmt = conn.prepare_cached(UPDATE_MONITORS).await?;
        conn.execute(&stmt, &monitor_params).await
    };
    let events = outbox::render(plan, origins, now);
    let event_rows = EventRows::of(&events);
    let event_params = event_rows.params();
    let write_events = async {
        if events.is_empty() {
            return Ok(0);
        }
        let stmt = conn.prepare_cached(INSERT_EVENTS).await?;
        conn.execute(&stmt, &event_params).await
    };
    // Biased: the write's own error wins over the "transaction aborted" (25P02) of the
    // statements pipelined behind it, so a refused content (22/23) is seen as such.
    let (row, _, settled, _, _) = tokio::try_join!(
        biased;
        write,
        write_holds,
        settle_adjustments,
        update_monitors,
        write_events
    )?;
    // The discrepancies the batch settled are announced in its transaction (a round trip more,
    // only for a batch with adjusting transfers).
    write_settled_events(conn, &settled).await?;
    let written: i64 = row.get(0);
    if written != rows.tx_id.len() as i64 {
        // A concurrent delivery recorded one of these keys between our lookup and our write
        // (possible only for transfers touching no locked account). Roll back; the retry sees it.
        return Err(StoreError::Conflict(format!(
            "{} of {} transactions were recorded concurrently",
            rows.tx_id.len() as i64 - written,
            rows.tx_id.len()
        )));
    }
    Ok(())
}

/// The events of the discrepancies a settlement statement changed (its rows: id, from, to).
async fn write_settled_events(
    conn: &impl deadpool_postgres::GenericClient,
    settled: &[tokio_postgres::Row],
) -> Result<(), StoreError> {
    let changed: Vec<_> = settled
        .iter()
        .filter_map(|r| {
            let to = DiscrepancyStatus::parse(r.get(2))?;
            Some((
                r.get(0),
                r.get::<_, Option<&str>>(1)
                    .and_then(DiscrepancyStatus::parse),
                to,
            ))
        })
        .collect();
    super::discrepancies::write_events(conn, &changed).await
}
