//! Webhook endpoints: a client's URLs, the event types each receives, and the secrets that sign
//! their deliveries. Secrets are read only by the dispatcher (`deliveries::claim`); nothing here
//! returns one.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use uuid::Uuid;

use super::{PgPool, StoreError};

#[derive(Clone, Debug, PartialEq)]
pub struct EndpointRecord {
    pub id: Uuid,
    pub client_id: String,
    pub url: String,
    pub description: Option<String>,
    pub event_types: Vec<String>,
    pub status: String,
    /// Until when the previous secret also signs (after a rotation).
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, client_id, url, description, event_types, status,
    CASE WHEN previous_secret_expires_at > now() THEN previous_secret_expires_at END,
    created_at, updated_at";

impl EndpointRecord {
    fn from_row(row: &Row) -> Self {
        Self {
            id: row.get(0),
            client_id: row.get(1),
            url: row.get(2),
            description: row.get(3),
            event_types: row.get(4),
            status: row.get(5),
            previous_secret_expires_at: row.get(6),
            created_at: row.get(7),
            updated_at: row.get(8),
        }
    }
}

pub struct NewEndpoint<'a> {
    pub url: &'a str,
    pub description: Option<&'a str>,
    pub event_types: &'a [String],
    pub secret: &'a str,
}

/// Creates an endpoint (ENABLED) unless the client already has `max` of them: `None` then. The
/// count and the insert run under a per-client advisory lock, so two concurrent creations cannot
/// both pass the limit.
pub async fn create(
    pool: &PgPool,
    client_id: &str,
    new: &NewEndpoint<'_>,
    max: usize,
) -> Result<Option<EndpointRecord>, StoreError> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('webhook_endpoints:' || $1))",
        &[&client_id],
    )
    .await?;
    let count: i64 = tx
        .query_one(
            "SELECT count(*) FROM webhook_endpoints WHERE client_id = $1",
            &[&client_id],
        )
        .await?
        .get(0);
    if count >= max as i64 {
        return Ok(None);
    }
    let row = tx
        .query_one(
            &format!(
                "INSERT INTO webhook_endpoints (id, client_id, url, description, event_types, status, secret)
                 VALUES ($1, $2, $3, $4, $5, 'ENABLED', $6) RETURNING {COLUMNS}"
            ),
            &[
                &Uuid::now_v7(),
                &client_id,
                &new.url,
                &new.description,
                &new.event_types,
                &new.secret,
            ],
        )
        .await?;
    tx.commit().await?;
    Ok(Some(EndpointRecord::from_row(&row)))
}

/// The client's endpoints, oldest first (at most `MAX_WEBHOOK_ENDPOINTS`: no pagination needed).
pub async fn list(pool: &PgPool, client_id: &str) -> Result<Vec<EndpointRecord>, StoreError> {
    let conn = pool.get().await?;
    let rows = conn
        .query(
            &format!(
                "SELECT {COLUMNS} FROM webhook_endpoints WHERE client_id = $1
                 ORDER BY created_at, id LIMIT 1000"
            ),
            &[&client_id],
        )
        .await?;
    Ok(rows.iter().map(EndpointRecord::from_row).collect())
}

pub async fn get(
    pool: &PgPool,
    client_id: &str,
    id: Uuid,
) -> Result<Option<EndpointRecord>, StoreError> {
    let conn = pool.get().await?;
    let row = conn
        .query_opt(
            &format!("SELECT {COLUMNS} FROM webhook_endpoints WHERE id = $1 AND client_id = $2"),
            &[&id, &client_id],
        )
        .await?;
    Ok(row.as_ref().map(EndpointRecord::from_row))
}

/// Enables or disables an endpoint. A disabled endpoint's pending deliveries wait (they are not
/// sent, and their retry period still runs); enabling it again resumes them in order.
pub async fn set_enabled(
    pool: &PgPool,
    client_id: &str,
    id: Uuid,
    enabled: bool,
) -> Result<Option<EndpointRecord>, StoreError> {
    let status = if enabled { "ENABLED" } else { "DISABLED" };
    let conn = pool.get().await?;
    let row = conn
        .query_opt(
            &format!(
                "UPDATE webhook_endpoints
                 SET status = $3, updated_at = CASE WHEN status = $3 THEN updated_at ELSE now() END
                 WHERE id = $1 AND client_id = $2 RETURNING {COLUMNS}"
            ),
            &[&id, &client_id, &status],
        )
        .await?;
    Ok(row.as_ref().map(EndpointRecord::from_row))
}

/// Replaces the secret; the one it replaces keeps signing (as a second `v1`) for `overlap` (none
/// when zero).
pub async fn rotate_secret(
    pool: &PgPool,
    client_id: &str,
    id: Uuid,
    new_secret: &str,
    overlap: Duration,
) -> Result<Option<EndpointRecord>, StoreError> {
    let conn = pool.get().await?;
    let secs = overlap.as_secs_f64();
    let row = conn
        .query_opt(
            &format!(
                "UPDATE webhook_endpoints
                 SET previous_secret = CASE WHEN $4::float8 > 0 THEN secret END,
                     previous_secret_expires_at = CASE WHEN $4::float8 > 0
                         THEN now() + $4::float8 * interval '1 second' END,
                     secret = $3, updated_at = now()
                 WHERE id = $1 AND client_id = $2 RETURNING {COLUMNS}"
            ),
            &[&id, &client_id, &new_secret, &secs],
        )
        .await?;
    Ok(row.as_ref().map(EndpointRecord::from_row))
}
