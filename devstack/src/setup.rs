//! Local configuration and set-up: the same variables as in AWS, with local defaults, plus creating
//! the database, migrating it and creating the queues.

use std::collections::HashMap;

use anyhow::Context;
use shared::auth::{self, Authenticator, Role};
use shared::clients::Clients;
use shared::config::Config;
use shared::queue;
use shared::store;

pub const DEMO_CLIENT: &str = "demo";
pub const DEMO_TOKEN: &str = "demo-token-for-testing";
/// The local operator token (role `operator`: queue and cache stats, ledger-wide runs).
pub const OPERATOR_CLIENT: &str = "ops";
pub const OPERATOR_TOKEN: &str = "operator-token-for-testing";

/// Local defaults for every variable the functions read.
pub fn local_env() -> HashMap<&'static str, String> {
    let get = |k: &str, d: &str| {
        std::env::var(k)
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| d.into())
    };
    HashMap::from([
        // The functions connect as the app login (a member of ledger_app, least privilege); the
        // schema owner migrates and creates that login.
        (
            "DATABASE_URL",
            get(
                "DATABASE_URL",
                "postgres://ledger_app_local@127.0.0.1:5432/ledger",
            ),
        ),
        (
            "DATABASE_MIGRATION_URL",
            get(
                "DATABASE_MIGRATION_URL",
                "postgres://postgres@127.0.0.1:5432/ledger",
            ),
        ),
        ("REDIS_URL", get("REDIS_URL", "redis://127.0.0.1:6379")),
        ("REDIS_KEY_PREFIX", get("REDIS_KEY_PREFIX", "ledger")),
        (
            "AWS_ENDPOINT_URL_SQS",
            get("AWS_ENDPOINT_URL_SQS", "http://127.0.0.1:4566"),
        ),
        (
            "SQS_QUEUE_NAME",
            get("SQS_QUEUE_NAME", "payment-ledger-transfers"),
        ),
        ("SQS_MAX_RECEIVE_COUNT", get("SQS_MAX_RECEIVE_COUNT", "5")),
        (
            "SQS_VISIBILITY_TIMEOUT",
            get("SQS_VISIBILITY_TIMEOUT", "30"),
        ),
        // Local receivers (scripts/webhook-receiver.py on 127.0.0.1): the devstack-only allowance.
        (
            "WEBHOOK_ALLOW_PRIVATE_URLS",
            get("WEBHOOK_ALLOW_PRIVATE_URLS", "true"),
        ),
    ])
}

/// Creates the database and queues if missing, migrates, and returns the clients with the demo
/// client (plus any `API_TOKENS`) configured.
pub async fn prepare() -> anyhow::Result<Clients> {
    let env = local_env();
    let migration_url = env["DATABASE_MIGRATION_URL"].clone();
    let (server, db_name) = migration_url
        .split('?')
        .next()
        .and_then(|u| u.rsplit_once('/'))
        .context("DATABASE_MIGRATION_URL must name a database")?;
    store::ensure_database(&format!("{server}/postgres"), db_name).await?;
    // As the schema owner: the migrations, then the functions' login (DATABASE_URL's user).
    let owner = store::pool(&migration_url, 1)?;
    store::migrate(&owner).await?;
    let (app_user, app_password) = store::roles::url_login(&env["DATABASE_URL"])?;
    if app_user == store::roles::url_login(&migration_url)?.0 {
        tracing::warn!(user = %app_user, "DATABASE_URL connects as the schema owner: the functions run with every privilege");
    } else {
        store::roles::ensure_app_login(&owner, &app_user, app_password.as_deref()).await?;
    }

    let sqs = queue::local_client(&env["AWS_ENDPOINT_URL_SQS"]).await;
    let (queue_url, dlq_url) = queue::ensure_fifo_queue(
        &sqs,
        &env["SQS_QUEUE_NAME"],
        env["SQS_MAX_RECEIVE_COUNT"]
            .parse()
            .context("SQS_MAX_RECEIVE_COUNT")?,
        env["SQS_VISIBILITY_TIMEOUT"]
            .parse()
            .context("SQS_VISIBILITY_TIMEOUT")?,
    )
    .await
    .with_context(|| {
        format!(
            "creating queues at {} (is the SQS server running?)",
            env["AWS_ENDPOINT_URL_SQS"]
        )
    })?;

    let config = Config::from_lookup(|k| match k {
        "SQS_QUEUE_URL" => Some(queue_url.clone()),
        "SQS_DLQ_URL" => Some(dlq_url.clone()),
        _ => env.get(k).cloned().or_else(|| std::env::var(k).ok()),
    })?;
    let auth = Authenticator::parse(&config.api_tokens)
        .map_err(anyhow::Error::msg)?
        .with_client(DEMO_CLIENT, DEMO_TOKEN)
        .with_role(OPERATOR_CLIENT, OPERATOR_TOKEN, Role::Operator);
    let mut clients = Clients::build_with(config, auth, sqs)?;
    // A local SQS server that restarts comes back empty: recreate the queues rather than answer
    // 503 until devstack itself is restarted.
    clients.queue = clients.queue.recreating(queue::RecreateQueues {
        name: env["SQS_QUEUE_NAME"].clone(),
        max_receive_count: env["SQS_MAX_RECEIVE_COUNT"]
            .parse()
            .context("SQS_MAX_RECEIVE_COUNT")?,
        visibility_timeout_secs: env["SQS_VISIBILITY_TIMEOUT"]
            .parse()
            .context("SQS_VISIBILITY_TIMEOUT")?,
    });
    tracing::info!(
        database = %store::redact(&clients.config.database_url),
        queue = %queue_url,
        demo_token_sha256 = %auth::hash_token(DEMO_TOKEN),
        operator_token_sha256 = %auth::hash_token(OPERATOR_TOKEN),
        "local stack prepared"
    );
    Ok(clients)
}
