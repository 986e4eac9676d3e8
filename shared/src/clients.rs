//! The one place that builds the clients every function uses. Called once per container; nothing
//! here opens a connection (PostgreSQL and Redis connect on first use, SQS per request).

use std::sync::Arc;

use anyhow::Context;
use aws_config::BehaviorVersion;

use crate::auth::Authenticator;
use crate::config::{Config, DatabaseSecret};
use crate::idempotency::IdempotencyStore;
use crate::queue::Queue;
use crate::store::{self, PgPool, tls};

#[derive(Clone)]
pub struct Clients {
    pub config: Arc<Config>,
    pub db: PgPool,
    pub cache: IdempotencyStore,
    pub queue: Queue,
    pub auth: Arc<Authenticator>,
}

/// The AWS SDK configuration from the standard environment (`AWS_REGION`, credentials,
/// `AWS_ENDPOINT_URL_SQS` for a local server) with timeouts that fail fast.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(crate::queue::timeouts())
        .load()
        .await
}

/// Builds `postgres://user:password@host:port/dbname` from a Secrets Manager secret (RDS format).
pub fn database_url_from_secret(
    secret_json: &str,
    target: &DatabaseSecret,
) -> anyhow::Result<String> {
    #[derive(serde::Deserialize)]
    struct Secret {
        username: String,
        password: String,
        host: Option<String>,
        port: Option<serde_json::Value>,
        dbname: Option<String>,
    }
    let s: Secret = serde_json::from_str(secret_json)
        .context("the database secret is not JSON with username and password")?;
    let host = s
        .host
        .or_else(|| target.host.clone())
        .context("DATABASE_HOST is required when the secret has no host")?;
    let port = match s.port {
        Some(serde_json::Value::Number(n)) => n.to_string(),
        Some(serde_json::Value::String(p)) => p,
        _ => target.port.to_string(),
    };
    let enc = |v: &str| {
        percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    Ok(format!(
        "postgres://{}:{}@{}:{}/{}",
        enc(&s.username),
        enc(&s.password),
        host,
        port,
        enc(s.dbname.as_deref().unwrap_or(&target.dbname))
    ))
}

impl Clients {
    /// Builds every client from the environment's configuration: resolves the database secret (one
    /// Secrets Manager call per container) and parses the token hashes. Opens no connection.
    pub async fn build(mut config: Config) -> anyhow::Result<Self> {
        tls::install_default_provider();
        let auth = Authenticator::parse(&config.api_tokens)
            .map_err(|e| anyhow::anyhow!(e))
            .context("API_TOKENS")?;
        let sdk = sdk_config().await;
        if let Some(secret) = &config.database_secret {
            let value = aws_sdk_secretsmanager::Client::new(&sdk)
                .get_secret_value()
                .secret_id(&secret.arn)
                .send()
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string()
                    )
                })
                .context("reading DATABASE_SECRET_ARN")?;
            let json = value
                .secret_string()
                .context("the database secret has no string value")?;
            config.database_url = database_url_from_secret(json, secret)?;
        }
        Self::build_with(config, auth, aws_sdk_sqs::Client::new(&sdk))
    }

    /// Builds from parts (tests and devstack add clients to the authenticator).
    pub fn build_with(
        config: Config,
        auth: Authenticator,
        sqs: aws_sdk_sqs::Client,
    ) -> anyhow::Result<Self> {
        let db = store::pool_with_tls(
            &config.database_url,
            config.database_pool_size,
            config.database_sslmode,
            config.database_ca_pem.as_deref(),
            &config.database_timeouts,
        )?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_from_an_rds_secret() {
        let target = DatabaseSecret {
            arn: "arn".into(),
            host: Some("proxy.internal".into()),
            port: 5432,
            dbname: "ledger".into(),
        };
        let url = database_url_from_secret(
            r#"{"username":"ledger_app","password":"p@ss:w/rd"}"#,
            &target,
        )
        .unwrap();
        assert_eq!(
            url,
            "postgres://ledger%5Fapp:p%40ss%3Aw%2Frd@proxy.internal:5432/ledger"
        );
        let parsed: tokio_postgres::Config = url.parse().unwrap();
        assert_eq!(parsed.get_password(), Some(&b"p@ss:w/rd"[..]));
        let own = database_url_from_secret(
            r#"{"username":"u","password":"p","host":"h","port":6543,"dbname":"d"}"#,
            &target,
        )
        .unwrap();
        assert_eq!(own, "postgres://u:p@h:6543/d");
        assert!(database_url_from_secret("{}", &target).is_err());
    }
}
