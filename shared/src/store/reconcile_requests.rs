//! Reconciliations run asynchronously: requests the API records when a window is too large to
//! finish within the HTTP API's time limit, claimed and completed by the reconciler.

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use super::{PgPool, StoreError};

/// Where an asynchronous reconciliation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
}

impl RequestStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "QUEUED",
            Self::Running => "RUNNING",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "RUNNING" => Self::Running,
            "SUCCEEDED" => Self::Succeeded,
            "FAILED" => Self::Failed,
            _ => Self::Queued,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReconcileRequest {
    pub id: Uuid,
    pub client_id: String,
    pub account_id: String,
    pub window_start: NaiveDate,
    pub window_end: NaiveDate,
    pub as_of: NaiveDate,
    pub status: RequestStatus,
    pub error: Option<String>,
    pub attempts: i32,
    pub requested_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, client_id, account_id, window_start, window_end, as_of, status, error,
    attempts, requested_at, finished_at";

fn from_row(r: &tokio_postgres::Row) -> ReconcileRequest {
    ReconcileRequest {
        id: r.get(0),
        client_id: r.get(1),
        account_id: r.get(2),
        window_start: r.get(3),
        window_end: r.get(4),
        as_of: r.get(5),
        status: RequestStatus::parse(r.get(6)),
        error: r.get(7),
        attempts: r.get(8),
        requested_at: r.get(9),
        finished_at: r.get(10),
    }
}

/// How many statement lines and ledger entries the account has between `from` and `to`
/// (inclusive, by booked day and posting day): the size a run over that window would load.
pub async fn window_size(
    pool: &PgPool,
    account_id: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<i64, StoreError> {
    let conn = pool.get().await?;
    let row = conn
        .query_one(
            "SELECT (SELECT count(*) FROM statement_lines
                     WHERE account_id = $1 AND booked_on BETWEEN $2 AND $3)
                  + (SELECT count(*) FROM ledger_entries
                     WHERE account_id = $1
                       AND ((posted_at >= $2::date::timestamptz
                             AND posted_at < ($3::date + 1)::timestamptz
                             AND effective_at = posted_at)
                            OR (effective_at <> posted_at
                                AND effective_at >= $2::date::timestamptz
                                AND effective_at < ($3::date + 1)::timestamptz)))",
            &[&account_id, &from, &to],
        )
        .await?;
    Ok(row.get(0))
}

/// Records a request to reconcile an account's window later.
pub async fn enqueue(pool: &PgPool, request: &ReconcileRequest) -> Result<(), StoreError> {
    let conn = pool.get().await?;
    conn.execute(
        "INSERT INTO reconciliation_requests (id, client_id, account_id, window_start, window_end,
             as_of, status)
         VALUES ($1, $2, $3, $4, $5, $6, 'QUEUED')",
        &[
            &request.id,
            &request.client_id,
            &request.account_id,
            &request.window_start,
            &request.window_end,
            &request.as_of,
        ],
    )
    .await?;
    Ok(())
}

/// The client's request with this id, if any.
pub async fn get(
    pool: &PgPool,
    client_id: &str,
    id: Uuid,
) -> Result<Option<ReconcileRequest>, StoreError> {
    let conn = pool.get().await?;
    let row = conn
        .query_opt(
            &format!(
                "SELECT {COLUMNS} FROM reconciliation_requests WHERE id = $1 AND client_id = $2"
            ),
            &[&id, &client_id],
        )
        .await?;
    Ok(row.as_ref().map(from_row))
}

/// Claims the oldest request that is queued, or that has been RUNNING for longer than
/// `stale_after` (its reconciler died), and marks it RUNNING. Concurrent reconcilers never claim
/// the same request.
pub async fn claim_next(
    pool: &PgPool,
    stale_after: std::time::Duration,
) -> Result<Option<ReconcileRequest>, StoreError> {
    let conn = pool.get().await?;
    let stale_secs = stale_after.as_secs_f64();
    let row = conn
        .query_opt(
            &format!(
                "UPDATE reconciliation_requests SET status = 'RUNNING', started_at = now(),
                     attempts = attempts + 1
                 WHERE id = (
                     SELECT id FROM reconciliation_requests
                     WHERE status = 'QUEUED'
                        OR (status = 'RUNNING' AND started_at < now() - make_interval(secs => $1))
                     ORDER BY requested_at
                     FOR UPDATE SKIP LOCKED
                     LIMIT 1)
                 RETURNING {COLUMNS}"
            ),
            &[&stale_secs],
        )
        .await?;
    Ok(row.as_ref().map(from_row))
}

/// Records how a claimed request ended.
pub async fn finish(pool: &PgPool, id: Uuid, error: Option<&str>) -> Result<(), StoreError> {
    let conn = pool.get().await?;
    let status = match error {
        None => RequestStatus::Succeeded,
        Some(_) => RequestStatus::Failed,
    };
    conn.execute(
        "UPDATE reconciliation_requests SET status = $2, error = $3, finished_at = now()
         WHERE id = $1",
        &[&id, &status.as_str(), &error],
    )
    .await?;
    Ok(())
}
