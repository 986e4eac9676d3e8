//! Configuration from the environment: the same variable names locally (devstack, tests) and in
//! `template.yaml`. One loader, shared by every function.

use std::time::Duration;

use rust_decimal::Decimal;

use crate::money;
use crate::store::SessionTimeouts;
use crate::store::tls::SslMode;

#[derive(Clone, Debug)]
pub struct Config {
    /// `DATABASE_URL`, e.g. `postgres://postgres@127.0.0.1:5432/ledger`. In AWS leave it unset and
    /// give `DATABASE_SECRET_ARN` instead.
    pub database_url: String,
    /// `DATABASE_SECRET_ARN` (+ `DATABASE_HOST`, `DATABASE_PORT`, `DATABASE_NAME`): credentials from
    /// Secrets Manager, resolved once per container by `Clients::build`.
    pub database_secret: Option<DatabaseSecret>,
    /// `DATABASE_SSLMODE`: `disable` (default), `require` or `verify-full`.
    pub database_sslmode: SslMode,
    /// `DATABASE_CA_PEM`: extra CA certificates (PEM) trusted for `verify-full`, e.g. the RDS bundle.
    pub database_ca_pem: Option<String>,
    /// `DATABASE_STATEMENT_TIMEOUT_MS` (default 30000), `DATABASE_LOCK_TIMEOUT_MS` (default 5000),
    /// `DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS` (default 30000): set on every session.
    pub database_timeouts: SessionTimeouts,
    /// `DATABASE_POOL_SIZE` (default 2: a Lambda container serves one event at a time).
    pub database_pool_size: usize,
    /// `REDIS_URL`, e.g. `redis://127.0.0.1:6379`.
    pub redis_url: String,
    /// `REDIS_KEY_PREFIX` (default `ledger`): every key we write starts with `<prefix>:`.
    pub redis_key_prefix: String,
    /// `SQS_QUEUE_URL`: the FIFO queue transfers travel on.
    pub queue_url: String,
    /// `SQS_DLQ_URL`: its dead-letter queue (optional; reported by `/queue/stats`).
    pub dlq_url: Option<String>,
    /// `RETRY_BACKOFF_BASE_SECONDS` (default 60) and `RETRY_BACKOFF_MAX_SECONDS` (default 900): how
    /// long the processor keeps a batch that failed on a database error invisible, per receive.
    pub retry_backoff: crate::retry::Backoff,
    /// `IDEMPOTENCY_TTL_SECONDS` (default 86400): how long Redis keeps a reservation.
    pub idempotency_ttl: Duration,
    /// `MAX_TRANSFER_AMOUNT` (default 1000000000): largest amount of one transfer, in major units.
    pub max_transfer_amount: Decimal,
    /// `MAX_BODY_BYTES` (default 65536): larger request bodies get 413.
    pub max_body_bytes: usize,
    /// `MAX_BACKDATE_DAYS` (default 90): how far in the past a transaction's `effectiveAt` may be.
    pub max_backdate_days: u32,
    /// `MAX_HOLD_DAYS` (default 30): the longest a hold may last before it expires.
    pub max_hold_days: u32,
    /// `BULK_MAX_ITEMS` (default 500, at least 1): items one `POST /transactions/bulk` may carry.
    pub bulk_max_items: usize,
    /// `MAX_BULK_BODY_BYTES` (default 1 MiB): larger bulk request bodies get 413.
    pub max_bulk_body_bytes: usize,
    /// `EXPORT_MAX_ROWS` (default 2000, 1 to 100000): rows one `GET /transactions/export` holds;
    /// the response names the cursor of the rest. Lambda's response limit is 6 MB (base64 for
    /// JSON lines), about 4 KB per row at the default.
    pub export_max_rows: usize,
    /// `API_TOKENS`: `client_id:sha256hex[:role][,...]`, SHA-256 of each bearer token, and its role
    /// (`client`, the default, or `operator`). Checked at load (`crate::auth::Authenticator::parse`).
    pub api_tokens: String,
    /// Reconciliation settings (`RECONCILE_*`, `SUSPENSE_ACCOUNT_ID`, `MAX_STATEMENT_BYTES`).
    pub reconcile: ReconcileConfig,
    /// Webhook delivery and the dispatcher (`WEBHOOK_*`, `DISPATCH_RUN_SECONDS`, `EVENT_BUS_NAME`,
    /// `MAX_WEBHOOK_ENDPOINTS`).
    pub webhooks: WebhookConfig,
}

/// How the dispatcher delivers events (issue 12).
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookConfig {
    /// `WEBHOOK_TIMEOUT_MS` (default 10000): one attempt, from connect to the response's head.
    pub timeout: Duration,
    /// `WEBHOOK_RETRY_PERIOD_SECONDS` (default 259200, 3 days): after this a failed attempt is the
    /// last one and the delivery is FAILED.
    pub retry_period: Duration,
    /// `WEBHOOK_BACKOFF_BASE_SECONDS` (default 10) and `WEBHOOK_BACKOFF_MAX_SECONDS` (default 3600):
    /// the delay after the n-th failed attempt is about base x 2^(n-1), capped, with jitter.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// `WEBHOOK_LEASE_SECONDS` (default 60, at least the timeout plus 5 s): how long a claimed
    /// delivery belongs to its dispatcher; a dispatcher killed mid-send leaves it to the next one
    /// after this.
    pub lease: Duration,
    /// `WEBHOOK_CONCURRENCY` (default 16): deliveries in flight at once per dispatcher, each to a
    /// different endpoint.
    pub concurrency: usize,
    /// `WEBHOOK_ALLOW_PRIVATE_URLS` (default false): devstack and tests only. Allows `http` URLs and
    /// private, loopback and link-local addresses. Never set in template.yaml.
    pub allow_private_urls: bool,
    /// `EVENT_BUS_NAME` (default empty: off): the EventBridge bus every event is also put on.
    pub event_bus_name: Option<String>,
    /// `DISPATCH_RUN_SECONDS` (default 45): how long one dispatcher invocation keeps claiming work
    /// (it then waits for its sends in flight, at most `WEBHOOK_TIMEOUT_MS`; the function's timeout
    /// is 60 s).
    pub run_for: Duration,
    /// `MAX_WEBHOOK_ENDPOINTS` (default 16): endpoints one client may have.
    pub max_endpoints: usize,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            retry_period: Duration::from_secs(259_200),
            backoff_base: Duration::from_secs(10),
            backoff_max: Duration::from_secs(3600),
            lease: Duration::from_secs(60),
            concurrency: 16,
            allow_private_urls: false,
            event_bus_name: None,
            run_for: Duration::from_secs(45),
            max_endpoints: 16,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReconcileConfig {
    /// `RECONCILE_DATE_DRIFT_DAYS` (default 2): how far apart a statement line and its posting may
    /// be booked and still match on amount and date.
    pub date_drift_days: u32,
    /// `RECONCILE_GRACE_DAYS` (default 3): how long a posting may be missing from the statement
    /// before it is `MISSING_IN_STATEMENT`.
    pub grace_days: u32,
    /// `RECONCILE_WINDOW_DAYS` (default 1): the scheduled run reconciles this many days up to
    /// yesterday, plus the grace period (so a missing posting is reported the day its grace ends).
    pub window_days: u32,
    /// `SUSPENSE_ACCOUNT_ID` (default `suspense-{client}`): the account adjusting transfers go
    /// against when a resolution names none. `{client}` stands for the calling client's id, so each
    /// client has its own default (account ids are global: one fixed id would belong to whichever
    /// client opened it first).
    pub suspense_account_id: String,
    /// `MAX_STATEMENT_BYTES` (default 5 MiB): the largest statement `POST /statements` accepts.
    pub max_statement_bytes: usize,
    /// `RECONCILE_SYNC_MAX_ITEMS` (default 200000): `POST /accounts/{id}/reconcile` runs a window
    /// with up to this many statement lines plus ledger entries at once; a larger one is queued
    /// (202) and run by the reconciler, so no run depends on the HTTP API's 29 s.
    pub sync_max_items: u64,
}

pub const DEFAULT_SUSPENSE_ACCOUNT_ID: &str = "suspense-{client}";

impl ReconcileConfig {
    /// The default suspense account of `client_id`.
    pub fn suspense_account_for(&self, client_id: &str) -> String {
        self.suspense_account_id.replace("{client}", client_id)
    }
}

impl Default for ReconcileConfig {
    fn default() -> Self {
        Self {
            date_drift_days: 2,
            grace_days: 3,
            window_days: 1,
            suspense_account_id: DEFAULT_SUSPENSE_ACCOUNT_ID.into(),
            max_statement_bytes: 5 * 1024 * 1024,
            sync_max_items: 200_000,
        }
    }
}

/// Where to find the database when its credentials live in Secrets Manager. The secret is JSON with
/// `username` and `password` (an RDS-managed secret); `host`, `port` and `dbname` in the secret
/// win over the variables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseSecret {
    pub arn: String,
    pub host: Option<String>,
    pub port: u16,
    pub dbname: String,
}

#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(String);

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Loads from any lookup (the environment in production, a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let required = |name: &str| {
            get(name)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| ConfigError(format!("{name} is required")))
        };
        let number = |name: &str, default: u64| -> Result<u64, ConfigError> {
            match get(name).filter(|v| !v.is_empty()) {
                None => Ok(default),
                Some(v) => v
                    .parse()
                    .map_err(|_| ConfigError(format!("{name} must be a whole number, got {v:?}"))),
            }
        };
        let millis = |name: &str, default: Duration| -> Result<Duration, ConfigError> {
            let default_ms = u64::try_from(default.as_millis()).unwrap_or(u64::MAX);
            Ok(Duration::from_millis(number(name, default_ms)?))
        };
        let defaults = SessionTimeouts::default();
        let database_timeouts = SessionTimeouts {
            statement: millis("DATABASE_STATEMENT_TIMEOUT_MS", defaults.statement)?,
            lock: millis("DATABASE_LOCK_TIMEOUT_MS", defaults.lock)?,
            idle_in_transaction: millis(
                "DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS",
                defaults.idle_in_transaction,
            )?,
        };
        let max_transfer_amount = match get("MAX_TRANSFER_AMOUNT").filter(|v| !v.is_empty()) {
            None => Decimal::from(1_000_000_000u64),
            Some(v) => money::parse_decimal_str(&v, "MAX_TRANSFER_AMOUNT")
                .ok()
                .filter(|d| *d > Decimal::ZERO && *d <= money::MAX_AMOUNT)
                .ok_or_else(|| {
                    ConfigError(format!(
                        "MAX_TRANSFER_AMOUNT must be a positive decimal up to {}, got {v:?}",
                        money::MAX_AMOUNT
                    ))
                })?,
        };
        let database_secret = get("DATABASE_SECRET_ARN")
            .filter(|v| !v.is_empty())
            .map(|arn| -> Result<DatabaseSecret, ConfigError> {
                Ok(DatabaseSecret {
                    arn,
                    host: get("DATABASE_HOST").filter(|v| !v.is_empty()),
                    port: number("DATABASE_PORT", 5432)?
                        .try_into()
                        .map_err(|_| ConfigError("DATABASE_PORT must be a port number".into()))?,
                    dbname: get("DATABASE_NAME")
                        .filter(|v| !v.is_empty())
                        .unwrap_or_else(|| "ledger".into()),
                })
            })
            .transpose()?;
        let database_url = match (
            &database_secret,
            get("DATABASE_URL").filter(|v| !v.is_empty()),
        ) {
            (_, Some(url)) => url,
            (Some(_), None) => String::new(),
            (None, None) => {
                return Err(ConfigError(
                    "DATABASE_URL (or DATABASE_SECRET_ARN) is required".into(),
                ));
            }
        };
        Ok(Self {
            database_url,
            database_secret,
            database_sslmode: SslMode::parse(&get("DATABASE_SSLMODE").unwrap_or_default())
                .map_err(ConfigError)?,
            database_ca_pem: get("DATABASE_CA_PEM").filter(|v| !v.is_empty()),
            database_timeouts,
            database_pool_size: number("DATABASE_POOL_SIZE", 2)?.max(1) as usize,
            redis_url: required("REDIS_URL")?,
            redis_key_prefix: get("REDIS_KEY_PREFIX")
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| "ledger".into()),
            queue_url: required("SQS_QUEUE_URL")?,
            dlq_url: get("SQS_DLQ_URL").filter(|v| !v.is_empty()),
            idempotency_ttl: Duration::from_secs(number("IDEMPOTENCY_TTL_SECONDS", 86_400)?.max(1)),
            retry_backoff: crate::retry::Backoff {
                base: Duration::from_secs(number("RETRY_BACKOFF_BASE_SECONDS", 60)?.max(1)),
                max: Duration::from_secs(number("RETRY_BACKOFF_MAX_SECONDS", 900)?.max(1)),
            },
            max_transfer_amount,
            max_body_bytes: number("MAX_BODY_BYTES", 65_536)? as usize,
            max_backdate_days: number("MAX_BACKDATE_DAYS", 90)?.min(36_500) as u32,
            max_hold_days: number("MAX_HOLD_DAYS", 30)?.clamp(1, 3_650) as u32,
            bulk_max_items: number("BULK_MAX_ITEMS", 500)?.clamp(1, 10_000) as usize,
            max_bulk_body_bytes: number("MAX_BULK_BODY_BYTES", 1024 * 1024)? as usize,
            export_max_rows: number("EXPORT_MAX_ROWS", 2000)?.clamp(1, 100_000) as usize,
            api_tokens: api_tokens(get("API_TOKENS").unwrap_or_default())?,
            reconcile: ReconcileConfig {
                date_drift_days: number("RECONCILE_DATE_DRIFT_DAYS", 2)?.min(366) as u32,
                grace_days: number("RECONCILE_GRACE_DAYS", 3)?.min(366) as u32,
                window_days: number("RECONCILE_WINDOW_DAYS", 1)?.clamp(1, 366) as u32,
                suspense_account_id: get("SUSPENSE_ACCOUNT_ID")
                    .filter(|v| !v.is_empty())
                    .unwrap_or_else(|| DEFAULT_SUSPENSE_ACCOUNT_ID.into()),
                max_statement_bytes: number("MAX_STATEMENT_BYTES", 5 * 1024 * 1024)? as usize,
                sync_max_items: number("RECONCILE_SYNC_MAX_ITEMS", 200_000)?,
            },
            webhooks: webhook_config(&get, &number)?,
        })
    }
}

impl Config {
    /// The limits intake checks requests against.
    pub fn intake_rules(&self) -> crate::transfers::IntakeRules {
        crate::transfers::IntakeRules {
            max_amount: self.max_transfer_amount,
            max_backdate: chrono::Duration::days(i64::from(self.max_backdate_days)),
            future_skew: chrono::Duration::seconds(crate::transfers::FUTURE_SKEW_SECONDS),
            max_hold: chrono::Duration::days(i64::from(self.max_hold_days)),
        }
    }
}

/// The `WEBHOOK_*` settings; see [`WebhookConfig`].
fn webhook_config(
    get: &impl Fn(&str) -> Option<String>,
    number: &impl Fn(&str, u64) -> Result<u64, ConfigError>,
) -> Result<WebhookConfig, ConfigError> {
    let d = WebhookConfig::default();
    let secs = |name: &str, default: Duration| -> Result<Duration, ConfigError> {
        Ok(Duration::from_secs(number(name, default.as_secs())?.max(1)))
    };
    let timeout = Duration::from_millis(
        number("WEBHOOK_TIMEOUT_MS", d.timeout.as_millis() as u64)?.clamp(100, 60_000),
    );
    let allow_private_urls = match get("WEBHOOK_ALLOW_PRIVATE_URLS").as_deref() {
        None | Some("") | Some("false") => false,
        Some("true") => true,
        Some(v) => {
            return Err(ConfigError(format!(
                "WEBHOOK_ALLOW_PRIVATE_URLS must be true or false, got {v:?}"
            )));
        }
    };
    Ok(WebhookConfig {
        timeout,
        retry_period: secs("WEBHOOK_RETRY_PERIOD_SECONDS", d.retry_period)?,
        backoff_base: secs("WEBHOOK_BACKOFF_BASE_SECONDS", d.backoff_base)?,
        backoff_max: secs("WEBHOOK_BACKOFF_MAX_SECONDS", d.backoff_max)?,
        lease: secs("WEBHOOK_LEASE_SECONDS", d.lease)?.max(timeout + Duration::from_secs(5)),
        concurrency: number("WEBHOOK_CONCURRENCY", d.concurrency as u64)?.clamp(1, 256) as usize,
        allow_private_urls,
        event_bus_name: get("EVENT_BUS_NAME").filter(|v| !v.is_empty()),
        run_for: Duration::from_secs(number("DISPATCH_RUN_SECONDS", d.run_for.as_secs())?),
        max_endpoints: number("MAX_WEBHOOK_ENDPOINTS", d.max_endpoints as u64)?.clamp(1, 1000)
            as usize,
    })
}

/// `API_TOKENS` as given, once it parses (an unknown role or a malformed entry stops the load).
fn api_tokens(spec: String) -> Result<String, ConfigError> {
    crate::auth::Authenticator::parse(&spec).map_err(ConfigError)?;
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    const BASE: [(&str, &str); 3] = [
        ("DATABASE_URL", "postgres://x"),
        ("REDIS_URL", "redis://x"),
        ("SQS_QUEUE_URL", "http://q"),
    ];

    #[test]
    fn defaults() {
        let c = load(&BASE).unwrap();
        assert_eq!(c.redis_key_prefix, "ledger");
        assert_eq!(c.idempotency_ttl, Duration::from_secs(86_400));
        assert_eq!(c.max_transfer_amount, Decimal::from(1_000_000_000));
        assert_eq!(c.max_body_bytes, 65_536);
        assert_eq!(c.export_max_rows, 2000);
        assert_eq!(c.database_timeouts, SessionTimeouts::default());
        let c = load(&[BASE.as_slice(), &[("DATABASE_LOCK_TIMEOUT_MS", "250")]].concat()).unwrap();
        assert_eq!(c.database_timeouts.lock, Duration::from_millis(250));
        let mut bad = BASE.to_vec();
        bad.push(("MAX_TRANSFER_AMOUNT", "10000000000000000"));
        assert!(load(&bad).is_err(), "above the ledger's ceiling");
    }

    #[test]
    fn webhook_settings() {
        let c = load(&BASE).unwrap();
        assert_eq!(c.webhooks, WebhookConfig::default());
        assert!(!c.webhooks.allow_private_urls);
        let c = load(
            &[
                BASE.as_slice(),
                &[
                    ("WEBHOOK_ALLOW_PRIVATE_URLS", "true"),
                    ("WEBHOOK_TIMEOUT_MS", "500"),
                    ("WEBHOOK_LEASE_SECONDS", "1"),
                    ("EVENT_BUS_NAME", "ledger-events"),
                ],
            ]
            .concat(),
        )
        .unwrap();
        assert!(c.webhooks.allow_private_urls);
        assert_eq!(c.webhooks.timeout, Duration::from_millis(500));
        assert_eq!(
            c.webhooks.lease,
            Duration::from_millis(5500),
            "lease outlives the timeout"
        );
        assert_eq!(c.webhooks.event_bus_name.as_deref(), Some("ledger-events"));
        let bad = [BASE.as_slice(), &[("WEBHOOK_ALLOW_PRIVATE_URLS", "yes")]].concat();
        assert!(
            load(&bad)
                .unwrap_err()
                .to_string()
                .contains("WEBHOOK_ALLOW_PRIVATE_URLS")
        );
    }

    #[test]
    fn database_credentials_may_come_from_a_secret() {
        let c = load(&[
            (
                "DATABASE_SECRET_ARN",
                "arn:aws:secretsmanager:us-east-1:1:secret:db",
            ),
            ("DATABASE_HOST", "db.internal"),
            ("DATABASE_SSLMODE", "verify-full"),
            ("REDIS_URL", "rediss://x"),
            ("SQS_QUEUE_URL", "http://q"),
        ])
        .unwrap();
        assert_eq!(c.database_url, "");
        let secret = c.database_secret.unwrap();
        assert_eq!(
            (secret.host.as_deref(), secret.port, secret.dbname.as_str()),
            (Some("db.internal"), 5432, "ledger")
        );
        assert_eq!(c.database_sslmode, SslMode::VerifyFull);
    }

    #[test]
    fn api_tokens_carry_roles_and_unknown_roles_stop_the_load() {
        let hash = crate::auth::hash_token("t");
        let mut ok = BASE.to_vec();
        let spec = format!("demo:{hash},ops:{hash}:operator,b:{hash}:client");
        ok.push(("API_TOKENS", &spec));
        assert_eq!(load(&ok).unwrap().api_tokens, spec);
        let mut bad = BASE.to_vec();
        let spec = format!("ops:{hash}:root");
        bad.push(("API_TOKENS", &spec));
        let err = load(&bad).unwrap_err().to_string();
        assert!(
            err.contains("API_TOKENS") && err.contains("unknown role \"root\""),
            "{err}"
        );
    }

    #[test]
    fn errors_name_the_variable() {
        let err = load(&BASE[1..]).unwrap_err().to_string();
        assert!(err.contains("DATABASE_URL"), "{err}");
        let mut bad = BASE.to_vec();
        bad.push(("MAX_TRANSFER_AMOUNT", "-5"));
        assert!(
            load(&bad)
                .unwrap_err()
                .to_string()
                .contains("MAX_TRANSFER_AMOUNT")
        );
        let mut bad = BASE.to_vec();
        bad.push(("DATABASE_SSLMODE", "prefer"));
        assert!(
            load(&bad)
                .unwrap_err()
                .to_string()
                .contains("DATABASE_SSLMODE")
        );
        let mut bad = BASE.to_vec();
        bad.push(("IDEMPOTENCY_TTL_SECONDS", "soon"));
        assert!(
            load(&bad)
                .unwrap_err()
                .to_string()
                .contains("IDEMPOTENCY_TTL_SECONDS")
        );
    }
}
