//! PostgreSQL adapter: the pool, the migrations, and every SQL statement the ledger runs.

pub mod account_locks;
pub mod accounts;
pub mod dead_letters;
pub mod deliveries;
pub mod discrepancies;
pub mod events;
pub mod holds;
pub mod intake;
pub mod invariants;
pub mod monitors;
pub mod outbox;
pub mod posting;
pub mod reconcile_requests;
pub mod reconciliation;
pub mod roles;
pub mod runs;
pub mod search;
pub mod statements;
pub mod tls;
pub mod transactions;
pub mod webhooks;

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

pub use deadpool_postgres::Pool as PgPool;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// Errors from the store. Callers treat them as transient (retry) unless stated otherwise.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("database: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("{0}")]
    Conflict(String),
    /// A stored value this code cannot read (written by another version, or by hand).
    #[error("stored data not understood: {0}")]
    Decode(String),
}

impl StoreError {
    /// Whether PostgreSQL refused the data itself (SQLSTATE class 22, data exception, or 23,
    /// integrity constraint violation): retrying the same statement can never succeed. Anything
    /// else (a lost connection, a timeout, a serialization failure) is transient.
    pub fn is_refused_content(&self) -> bool {
        match self {
            Self::Db(e) => e
                .code()
                .is_some_and(|c| c.code().starts_with("22") || c.code().starts_with("23")),
            _ => false,
        }
    }
}

/// Limits every session sets at connect time, so that a stuck statement or an abandoned transaction
/// cannot hold account locks until the Lambda dies (`DATABASE_STATEMENT_TIMEOUT_MS`,
/// `DATABASE_LOCK_TIMEOUT_MS`, `DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS`; 0 turns one off).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionTimeouts {
    pub statement: Duration,
    pub lock: Duration,
    pub idle_in_transaction: Duration,
}

impl Default for SessionTimeouts {
    fn default() -> Self {
        Self {
            statement: Duration::from_secs(30),
            lock: Duration::from_secs(5),
            idle_in_transaction: Duration::from_secs(30),
        }
    }
}

impl SessionTimeouts {
    /// The startup `options` that set them (PostgreSQL's `-c name=value` form).
    pub fn startup_options(&self) -> String {
        format!(
            "-c statement_timeout={} -c lock_timeout={} -c idle_in_transaction_session_timeout={}",
            self.statement.as_millis(),
            self.lock.as_millis(),
            self.idle_in_transaction.as_millis()
        )
    }
}

/// Builds a lazy pool without TLS (local services, tests), with the default session timeouts.
pub fn pool(database_url: &str, max_size: usize) -> anyhow::Result<Pool> {
    pool_with_tls(
        database_url,
        max_size,
        tls::SslMode::Disable,
        None,
        &SessionTimeouts::default(),
    )
}

/// Builds a lazy pool: no connection is opened until the first query. `Verified` recycling checks a
/// connection before reuse, which survives a Lambda container that was frozen for a while.
pub fn pool_with_tls(
    database_url: &str,
    max_size: usize,
    ssl: tls::SslMode,
    extra_ca_pem: Option<&str>,
    timeouts: &SessionTimeouts,
) -> anyhow::Result<Pool> {
    let mut pg =
        tokio_postgres::Config::from_str(database_url).context("parsing the database URL")?;
    let options = match pg.get_options() {
        Some(own) if !own.is_empty() => format!("{own} {}", timeouts.startup_options()),
        _ => timeouts.startup_options(),
    };
    pg.options(options);
    let recycling = ManagerConfig {
        recycling_method: RecyclingMethod::Verified,
    };
    let manager = match tls::connector(ssl, extra_ca_pem)? {
        None => Manager::from_config(pg, NoTls, recycling),
        Some(tls) => {
            pg.ssl_mode(tokio_postgres::config::SslMode::Require);
            Manager::from_config(pg, tls, recycling)
        }
    };
    Pool::builder(manager)
        .max_size(max_size)
        .runtime(Runtime::Tokio1)
        .create_timeout(Some(Duration::from_secs(5)))
        .wait_timeout(Some(Duration::from_secs(10)))
        .build()
        .context("building the database pool")
}

/// Applies pending migrations, holding an advisory lock so concurrent runners (several containers,
/// parallel tests) take turns. Idempotent. Returns the migrations applied now (`V1__ledger`, ...).
pub async fn migrate(pool: &Pool) -> anyhow::Result<Vec<String>> {
    const LOCK: i64 = 0x6c65_6467_6572; // "ledger"
    let mut conn = pool.get().await.context("connecting to run migrations")?;
    conn.execute("SELECT pg_advisory_lock($1)", &[&LOCK])
        .await?;
    let client: &mut tokio_postgres::Client = &mut conn;
    // A rolled-back deploy runs older code against a newer schema: do not abort on migrations it
    // does not know (migrations are written to be backward compatible).
    let result = embedded::migrations::runner()
        .set_abort_missing(false)
        .run_async(client)
        .await;
    conn.execute("SELECT pg_advisory_unlock($1)", &[&LOCK])
        .await?;
    let report = result.context("running migrations")?;
    Ok(report
        .applied_migrations()
        .iter()
        .map(|m| format!("V{}__{}", m.version(), m.name()))
        .collect())
}

/// Cheap liveness probe for `/ready`.
/// A text column holding one of an enum's spellings, read with its `parse`; anything else is a
/// `Decode` error naming `what` and the column, never a guess.
pub(crate) fn decode_enum<T>(
    r: &tokio_postgres::Row,
    what: &str,
    column: &str,
    parse: fn(&str) -> Option<T>,
) -> Result<T, StoreError> {
    let s: &str = r.try_get(column)?;
    parse(s).ok_or_else(|| StoreError::Decode(format!("{what} {column} {s:?}")))
}

/// Cuts a keyset page read as `limit + 1` rows down to `limit`; when there was more, returns the
/// position to continue from (`position` of the last row kept).
pub fn cut_page<T, P>(
    rows: &mut Vec<T>,
    limit: usize,
    position: impl FnOnce(&T) -> P,
) -> Option<P> {
    if rows.len() <= limit {
        return None;
    }
    rows.truncate(limit);
    rows.last().map(position)
}

pub async fn ping(pool: &Pool) -> Result<(), StoreError> {
    let conn = pool.get().await?;
    conn.simple_query("SELECT 1").await?;
    Ok(())
}

/// Creates database `name` on the server of `admin_url` unless it exists (local stacks and tests).
pub async fn ensure_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    let (client, conn) = tokio_postgres::connect(admin_url, NoTls)
        .await
        .with_context(|| format!("connecting to {}", redact(admin_url)))?;
    let task = tokio::spawn(conn);
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await?
        .is_some();
    if !exists {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        if let Err(e) = client
            .batch_execute(&format!("CREATE DATABASE {quoted}"))
            .await
        {
            // Another runner may have created it in between.
            if e.code() != Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE) {
                return Err(e).context("creating the database");
            }
        }
    }
    drop(client);
    let _ = task.await;
    Ok(())
}

/// A connection string without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{}@{}", &url[..s + 3], user, &url[at + 1..])
        }
        _ => url.to_string(),
    }
}
