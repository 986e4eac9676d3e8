//! Integration-test support (feature `testkit`): each test gets a fresh database, a fresh FIFO
//! queue pair and its own Redis key prefix on the real local services, like zero2prod's spawn_app.
//!
//! Service locations: `TEST_DATABASE_ADMIN_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`),
//! `REDIS_URL` (default `redis://127.0.0.1:6379`), `AWS_ENDPOINT_URL_SQS` (default
//! `http://127.0.0.1:4566`, moto's server mode). The admin URL's user migrates each database (the
//! schema owner); the functions' clients connect as `TEST_DATABASE_APP_USER` (default
//! `ledger_app_local`, password `TEST_DATABASE_APP_PASSWORD` if the server needs one).

use std::time::Duration;

pub mod client;
pub mod proxy;

use uuid::Uuid;

use crate::auth::{Authenticator, Role};
use crate::clients::Clients;
use crate::config::Config;
use crate::queue;
use crate::store::{self, invariants};

/// The local demo client's token (devstack announces it at start-up; nothing deployed accepts it).
pub const DEMO_CLIENT: &str = "demo";
pub const DEMO_TOKEN: &str = "demo-token-for-testing";
/// A second client, to check that clients cannot see each other's data.
pub const OTHER_CLIENT: &str = "other";
pub const OTHER_TOKEN: &str = "other-token-for-testing";
/// The local operator (role `operator`: queue and cache stats, ledger-wide runs).
pub const OPERATOR_CLIENT: &str = "ops";
pub const OPERATOR_TOKEN: &str = "operator-token-for-testing";

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

pub fn admin_database_url() -> String {
    env_or(
        "TEST_DATABASE_ADMIN_URL",
        "postgres://postgres@127.0.0.1:5432/postgres",
    )
}

pub fn sqs_endpoint() -> String {
    env_or("AWS_ENDPOINT_URL_SQS", "http://127.0.0.1:4566")
}

/// Replaces the database name in a connection URL.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let server = base.rsplit_once('/').map_or(base, |(s, _)| s);
    match query {
        Some(q) => format!("{server}/{name}?{q}"),
        None => format!("{server}/{name}"),
    }
}

pub struct TestEnv {
    /// The functions' clients. Their database login is the app role (`TEST_DATABASE_APP_USER`,
    /// default `ledger_app_local`, a member of `ledger_app`), as in AWS: every test runs the
    /// functions' SQL under least privilege.
    pub clients: Clients,
    /// The schema owner (the admin URL's user, who migrated the database): for tests that tamper
    /// with the ledger on purpose, which the app role may not do.
    pub admin_db: store::PgPool,
    pub database_name: String,
    pub queue_url: String,
    pub dlq_url: String,
}

#[derive(Clone, Copy, Debug)]
pub struct TestOptions {
    pub max_receive_count: u32,
    pub visibility_timeout_secs: u32,
    pub pool_size: usize,
}

impl Default for TestOptions {
    fn default() -> Self {
        Self {
            max_receive_count: 3,
            visibility_timeout_secs: 30,
            pool_size: 8,
        }
    }
}

impl TestEnv {
    pub async fn new() -> Self {
        Self::with_options(TestOptions::default()).await
    }

    pub async fn with_options(opts: TestOptions) -> Self {
        let id = Uuid::now_v7().simple().to_string();
        let database_name = format!("ledger_test_{id}");
        let admin = admin_database_url();
        store::ensure_database(&admin, &database_name)
            .await
            .expect("PostgreSQL must be running (make services)");
        let sqs = queue::local_client(&sqs_endpoint()).await;
        let (queue_url, dlq_url) = queue::ensure_fifo_queue(
            &sqs,
            &format!("test-{id}"),
            opts.max_receive_count,
            opts.visibility_timeout_secs,
        )
        .await
        .expect("an SQS server must be listening at AWS_ENDPOINT_URL_SQS (make services)");
        let admin_db = store::pool(&with_database(&admin, &database_name), 2).expect("admin pool");
        store::migrate(&admin_db).await.expect("migrations");
        let app_user = env_or("TEST_DATABASE_APP_USER", store::roles::LOCAL_APP_LOGIN);
        let app_password = std::env::var("TEST_DATABASE_APP_PASSWORD")
            .ok()
            .filter(|v| !v.is_empty());
        store::roles::ensure_app_login(&admin_db, &app_user, app_password.as_deref())
            .await
            .expect("the app login role");
        let config = Config {
            database_url: store::roles::url_with_login(
                &with_database(&admin, &database_name),
                &app_user,
                app_password.as_deref(),
            )
            .expect("the app database URL"),
            database_secret: None,
            database_sslmode: crate::store::tls::SslMode::Disable,
            database_ca_pem: None,
            database_timeouts: Default::default(),
            database_pool_size: opts.pool_size,
            redis_url: env_or("REDIS_URL", "redis://127.0.0.1:6379"),
            redis_key_prefix: format!("test:{id}"),
            queue_url: queue_url.clone(),
            dlq_url: Some(dlq_url.clone()),
            idempotency_ttl: Duration::from_secs(600),
            retry_backoff: Default::default(),
            max_transfer_amount: rust_decimal::Decimal::from(1_000_000_000u64),
            max_body_bytes: 16 * 1024,
            max_backdate_days: 90,
            max_hold_days: 30,
            bulk_max_items: 500,
            max_bulk_body_bytes: 1024 * 1024,
            export_max_rows: 2000,
            api_tokens: String::new(),
            reconcile: Default::default(),
            // Local receivers on 127.0.0.1, short waits: the webhook tests drive their own timing.
            webhooks: crate::config::WebhookConfig {
                timeout: Duration::from_millis(1500),
                backoff_base: Duration::from_secs(1),
                backoff_max: Duration::from_secs(4),
                lease: Duration::from_secs(3),
                allow_private_urls: true,
                run_for: Duration::from_secs(5),
                ..Default::default()
            },
        };
        let auth = Authenticator::default()
            .with_client(DEMO_CLIENT, DEMO_TOKEN)
            .with_client(OTHER_CLIENT, OTHER_TOKEN)
            .with_role(OPERATOR_CLIENT, OPERATOR_TOKEN, Role::Operator);
        let clients = Clients::build_with(config, auth, sqs).expect("clients");
        Self {
            clients,
            admin_db,
            database_name,
            queue_url,
            dlq_url,
        }
    }

    /// Panics with the violations if any ledger invariant is broken.
    pub async fn assert_invariants(&self) {
        let report = invariants::check(&self.clients.db)
            .await
            .expect("invariant queries");
        assert!(report.holds(), "ledger invariants broken: {report:#?}");
    }
}
