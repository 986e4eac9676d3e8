//! The one place that builds the clients every function uses. Called once per container; nothing
//! here opens a connection (PostgreSQL and Redis connect on first use, SQS per request).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use aws_config::BehaviorVersion;
use aws_config::timeout::TimeoutConfig;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::idempotency::IdempotencyStore;
use crate::queue::Queue;
use crate::store::{self, PgPool};

#[derive(Clone)]
pub struct Clients {
    pub config: Arc<Config>,
    pub db: PgPool,
    pub cache: IdempotencyStore,
    pub queue: Queue,
    pub auth: Arc<Authenticator>,
}

/// Builds an SQS client from the standard AWS environment (`AWS_REGION`, credentials,
/// `AWS_ENDPOINT_URL_SQS` for a local server) with timeouts that fail fast.
pub async fn sqs_client() -> aws_sdk_sqs::Client {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(3))
        .operation_timeout(Duration::from_secs(10))
        .build();
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(timeouts)
        .load()
        .await;
    aws_sdk_sqs::Client::new(&sdk)
}

impl Clients {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let auth = Authenticator::parse(&config.api_tokens)
            .map_err(|e| anyhow::anyhow!(e))
            .context("API_TOKENS")?;
        Self::build_with(config, auth, sqs_client().await)
    }

    /// Builds from parts (tests and devstack add clients to the authenticator).
    pub fn build_with(
        config: Config,
        auth: Authenticator,
        sqs: aws_sdk_sqs::Client,
    ) -> anyhow::Result<Self> {
        let db = store::pool(&config.database_url, config.database_pool_size)?;
        let cache = IdempotencyStore::new(
            &config.redis_url,
            &config.redis_key_prefix,
            config.idempotency_ttl,
        )
        .context("REDIS_URL")?;
        let queue = Queue::new(sqs, config.queue_url.clone(), config.dlq_url.clone());
        Ok(Self {
            config: Arc::new(config),
            db,
            cache,
            queue,
            auth: Arc::new(auth),
        })
    }
}
