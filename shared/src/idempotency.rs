//! Redis adapter: idempotency reservations for intake and the best-effort status cache the processor
//! fills. Redis keeps nothing on disk; losing it may cost a replay's messageId, never a double
//! posting (the ledger's unique key is the final guard).

use std::time::Duration;

use chrono::Utc;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;
use uuid::Uuid;

// The domain values this adapter stores (they live with the transfers); re-exported for callers.
use crate::transfers::deduplication_id;
pub use crate::transfers::{Accepted, CachedStatus};

#[derive(Debug, thiserror::Error)]
#[error("redis: {0}")]
pub struct CacheError(#[from] redis::RedisError);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "SCREAMING_SNAKE_CASE")]
enum Record {
    /// Reserved, message not yet on the queue. Short-lived, so a crashed intake frees the key.
    InProgress {
        #[serde(rename = "requestHash")]
        request_hash: String,
        token: Uuid,
    },
    Enqueued {
        #[serde(rename = "requestHash")]
        request_hash: String,
        accepted: Accepted,
    },
    /// The send's outcome is unknown (the message may be queued): kept for the full TTL, so the
    /// same request resumes it and another one under this key is refused.
    SendUnknown {
        #[serde(rename = "requestHash")]
        request_hash: String,
        token: Uuid,
    },
}

/// Outcome of trying to reserve a key.
#[derive(Debug, PartialEq)]
pub enum Reservation {
    /// The key is ours: enqueue, then `confirm` (or `release` if the enqueue failed).
    Reserved(ReservationToken),
    /// Same key, same request, already accepted: replay this.
    Replay(Accepted),
    /// Same key, same request, reserved but never confirmed: an earlier attempt is still sending,
    /// or died, or its send's outcome is unknown (a timeout). Send again under this token: the same
    /// deduplication id and transaction id make a second send harmless.
    Resume(ReservationToken),
    /// Same key, a request still being enqueued (another one, or this one reserved less than
    /// `RESUME_AFTER` ago): retryable.
    InProgress,
    /// Same key, different request.
    KeyReused,
}

#[derive(Debug, PartialEq)]
pub struct ReservationToken {
    key: String,
    value: String,
    request_hash: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheStats {
    pub key_prefix: String,
    /// Approximate: accepted requests' reservations written in the last `count_window_seconds`.
    pub reservations: u64,
    /// Approximate: final statuses cached in the last `count_window_seconds`.
    pub cached_statuses: u64,
    /// The idempotency TTL, over which the two counts are taken.
    pub count_window_seconds: u64,
    /// The counts' resolution: how far past its expiry a key may still be counted.
    pub count_bucket_seconds: u64,
    /// DBSIZE: every key in the Redis database, any prefix.
    pub database_keys: u64,
    pub used_memory_bytes: u64,
    pub used_memory_human: String,
}

/// How old an unconfirmed reservation of the same request must be before a retry resumes it (an
/// intake normally confirms within milliseconds; a stalled one has answered its client by then).
pub const RESUME_AFTER: Duration = Duration::from_secs(3);

/// The age of a reservation, from its token's UUIDv7 timestamp.
fn reservation_age(token: Uuid) -> Duration {
    let Some((secs, nanos)) = token.get_timestamp().map(|t| t.to_unix()) else {
        return Duration::MAX;
    };
    let made = std::time::UNIX_EPOCH + Duration::new(secs, nanos);
    std::time::SystemTime::now()
        .duration_since(made)
        .unwrap_or_default()
}

/// How long an in-progress reservation lives if its request never finishes.
const IN_PROGRESS_TTL: Duration = Duration::from_secs(30);

const RESERVE: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return false end
return redis.call('GET', KEYS[1])";

const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0";

/// Redis client shared by intake, the status route and the processor. The connection is opened on
/// first use, not at start-up.
#[derive(Clone)]
pub struct IdempotencyStore {
    client: redis::Client,
    conn: std::sync::Arc<OnceCell<ConnectionManager>>,
    prefix: String,
    ttl: Duration,
}

impl IdempotencyStore {
    pub fn new(redis_url: &str, prefix: &str, ttl: Duration) -> Result<Self, CacheError> {
        Ok(Self {
            client: redis::Client::open(redis_url)?,
            conn: Default::default(),
            prefix: prefix.to_string(),
            ttl,
        })
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    async fn conn(&self) -> Result<ConnectionManager, CacheError> {
        let conn = self
            .conn
            .get_or_try_init(|| {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(1)))
                    .set_response_timeout(Some(Duration::from_secs(1)))
                    .set_number_of_retries(1);
                ConnectionManager::new_with_config(self.client.clone(), config)
            })
            .await?;
        Ok(conn.clone())
    }

    fn reservation_key(&self, client_id: &str, key: &str) -> String {
        format!("{}:idem:{}", self.prefix, deduplication_id(client_id, key))
    }

    fn status_key(&self, client_id: &str, key: &str) -> String {
        format!(
            "{}:status:{}",
            self.prefix,
            deduplication_id(client_id, key)
        )
    }

    /// Atomically reserves `key` for this request, or reports what already holds it.
    #[tracing::instrument(name = "redis.reserve", level = "debug", skip_all)]
    pub async fn reserve(
        &self,
        client_id: &str,
        key: &str,
        request_hash: &str,
    ) -> Result<Reservation, CacheError> {
        let redis_key = self.reservation_key(client_id, key);
        let value = serde_json::to_string(&Record::InProgress {
            request_hash: request_hash.to_string(),
            token: Uuid::now_v7(),
        })
        .expect("serializable");
        let mut conn = self.conn().await?;
        let existing: Option<String> = redis::Script::new(RESERVE)
            .key(&redis_key)
            .arg(&value)
            .arg(IN_PROGRESS_TTL.as_secs())
            .invoke_async(&mut conn)
            .await?;
        let Some(existing) = existing else {
            return Ok(Reservation::Reserved(ReservationToken {
                key: redis_key,
                value,
                request_hash: request_hash.to_string(),
            }));
        };
        Ok(match serde_json::from_str::<Record>(&existing) {
            // The same request, reserved a while ago and never confirmed: its intake died or never
            // heard Redis answer (a stall). Recognise it as this request rather than make the client
            // wait out the reservation; a younger one is most likely still being sent.
            Ok(Record::InProgress {
                request_hash: h,
                token,
            }) if h == request_hash && reservation_age(token) >= RESUME_AFTER => {
                Reservation::Resume(ReservationToken {
                    key: redis_key,
                    value: existing,
                    request_hash: request_hash.to_string(),
                })
            }
            Ok(Record::InProgress {
                request_hash: h, ..
            }) if h == request_hash => Reservation::InProgress,
            Ok(Record::SendUnknown {
                request_hash: h, ..
            }) if h == request_hash => Reservation::Resume(ReservationToken {
                key: redis_key,
                value: existing,
                request_hash: request_hash.to_string(),
            }),
            Ok(Record::InProgress { .. }) => Reservation::InProgress,
            Ok(Record::Enqueued {
                request_hash: h,
                accepted,
            }) if h == request_hash => Reservation::Replay(accepted),
            // A record we cannot read is treated as another request's: never enqueue over it.
            _ => Reservation::KeyReused,
        })
    }

    /// Records the accepted response under the reservation, for the full TTL.
    #[tracing::instrument(name = "redis.confirm", level = "debug", skip_all)]
    pub async fn confirm(
        &self,
        token: ReservationToken,
        accepted: &Accepted,
    ) -> Result<(), CacheError> {
        let value = serde_json::to_string(&Record::Enqueued {
            request_hash: token.request_hash,
            accepted: accepted.clone(),
        })
        .expect("serializable");
        let mut conn = self.conn().await?;
        let opts = redis::SetOptions::default()
            .conditional_set(redis::ExistenceCheck::XX)
            .with_expiration(redis::SetExpiry::EX(self.ttl.as_secs()));
        let mut pipe = redis::pipe();
        pipe.set_options(&token.key, value, opts).ignore();
        self.count_writes(&mut pipe, COUNT_RESERVATIONS, 1);
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    /// Keeps a reservation whose send's outcome is unknown for the full TTL: the same request may
    /// resume it, another request under the key is refused (the first may be on the queue).
    pub async fn keep_unknown(&self, token: ReservationToken) -> Result<(), CacheError> {
        let value = serde_json::to_string(&Record::SendUnknown {
            request_hash: token.request_hash,
            token: Uuid::now_v7(),
        })
        .expect("serializable");
        let mut conn = self.conn().await?;
        let opts = redis::SetOptions::default()
            .conditional_set(redis::ExistenceCheck::XX)
            .with_expiration(redis::SetExpiry::EX(self.ttl.as_secs()));
        conn.set_options::<_, _, ()>(&token.key, value, opts)
            .await?;
        Ok(())
    }

    /// Frees a reservation whose message never reached the queue, so the client's retry can proceed.
    pub async fn release(&self, token: ReservationToken) -> Result<(), CacheError> {
        let mut conn = self.conn().await?;
        let _: i64 = redis::Script::new(RELEASE)
            .key(&token.key)
            .arg(&token.value)
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }

    /// The accepted response for a key that is queued (or being queued), if Redis still has it.
    /// `Ok(Some(None))` means the key is reserved but not yet confirmed.
    pub async fn pending(
        &self,
        client_id: &str,
        key: &str,
    ) -> Result<Option<Option<Accepted>>, CacheError> {
        let mut conn = self.conn().await?;
        let raw: Option<String> = conn.get(self.reservation_key(client_id, key)).await?;
        Ok(raw
            .and_then(|r| serde_json::from_str::<Record>(&r).ok())
            .map(|r| match r {
                Record::InProgress { .. } | Record::SendUnknown { .. } => None,
                Record::Enqueued { accepted, .. } => Some(accepted),
            }))
    }

    /// Caches final statuses after a commit, in one round trip.
    pub async fn cache_statuses(
        &self,
        items: &[(&str, &str, CachedStatus)],
    ) -> Result<(), CacheError> {
        if items.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (client_id, key, status) in items {
            let value = serde_json::to_string(status).expect("serializable");
            pipe.set_ex(self.status_key(client_id, key), value, self.ttl.as_secs())
                .ignore();
        }
        self.count_writes(&mut pipe, COUNT_STATUSES, items.len() as u64);
        let mut conn = self.conn().await?;
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    pub async fn cached_status(
        &self,
        client_id: &str,
        key: &str,
    ) -> Result<Option<CachedStatus>, CacheError> {
        let mut conn = self.conn().await?;
        let raw: Option<String> = conn.get(self.status_key(client_id, key)).await?;
        Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
    }

    pub async fn ping(&self) -> Result<(), CacheError> {
        let mut conn = self.conn().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await?;
        Ok(())
    }

    /// Cheap statistics: a constant number of Redis commands in one round trip, whatever the
    /// keyspace holds (no SCAN). `reservations` and `cached_statuses` are approximate: each write
    /// counts into a time bucket (`TTL / 24` wide) and the buckets of the last TTL are summed, so a
    /// key counts from its write until up to one bucket after it expired; a reservation released
    /// early or a status written twice still counts. `database_keys` (DBSIZE) is exact but covers
    /// every key in the Redis database, whatever its prefix (our counters included).
    pub async fn stats(&self) -> Result<CacheStats, CacheError> {
        let now = Utc::now().timestamp().max(0) as u64;
        let counts = WriteCounts::new(self.ttl);
        let mut pipe = redis::pipe();
        pipe.cmd("DBSIZE").cmd("INFO").arg("memory");
        for kind in [COUNT_RESERVATIONS, COUNT_STATUSES] {
            pipe.cmd("MGET")
                .arg(counts.window_keys(&self.prefix, kind, now));
        }
        let mut conn = self.conn().await?;
        let (database_keys, info, reservations, statuses): (
            u64,
            String,
            Vec<Option<u64>>,
            Vec<Option<u64>>,
        ) = pipe.query_async(&mut conn).await?;
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        let sum = |v: Vec<Option<u64>>| v.into_iter().flatten().sum();
        Ok(CacheStats {
            key_prefix: self.prefix.clone(),
            reservations: sum(reservations),
            cached_statuses: sum(statuses),
            count_window_seconds: self.ttl.as_secs(),
            count_bucket_seconds: counts.bucket_secs,
            database_keys,
            used_memory_bytes: field("used_memory").parse().unwrap_or(0),
            used_memory_human: field("used_memory_human"),
        })
    }

    /// Adds `n` writes of `kind` to the current bucket (in the caller's pipeline: no extra round
    /// trip). The bucket expires once no window that `stats` reads can include it.
    fn count_writes(&self, pipe: &mut redis::Pipeline, kind: &str, n: u64) {
        let counts = WriteCounts::new(self.ttl);
        let now = Utc::now().timestamp().max(0) as u64;
        let key = counts.key(&self.prefix, kind, now / counts.bucket_secs);
        pipe.incr(&key, n)
            .ignore()
            .expire(&key, counts.keep_secs() as i64)
            .ignore();
    }
}

const COUNT_RESERVATIONS: &str = "idem";
const COUNT_STATUSES: &str = "status";

/// Time-bucketed write counters: what `stats` sums instead of scanning the keyspace.
#[derive(Clone, Copy, Debug, PartialEq)]
struct WriteCounts {
    window_secs: u64,
    bucket_secs: u64,
}

impl WriteCounts {
    /// The TTL in at most 24 buckets (plus the partial ones at the edges), at least 1 s each.
    fn new(ttl: Duration) -> Self {
        let window_secs = ttl.as_secs().max(1);
        Self {
            window_secs,
            bucket_secs: window_secs.div_ceil(24),
        }
    }

    /// The bucket width is part of the key, so a changed TTL never mixes two bucket sizes.
    fn key(&self, prefix: &str, kind: &str, bucket: u64) -> String {
        format!("{prefix}:stats:{kind}:{}:{bucket}", self.bucket_secs)
    }

    /// Every bucket that may hold a write younger than the window, oldest first.
    fn window_keys(&self, prefix: &str, kind: &str, now: u64) -> Vec<String> {
        let last = now / self.bucket_secs;
        let first = now.saturating_sub(self.window_secs) / self.bucket_secs;
        (first..=last).map(|b| self.key(prefix, kind, b)).collect()
    }

    fn keep_secs(&self) -> u64 {
        self.window_secs + 2 * self.bucket_secs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_counts_read_a_bounded_number_of_buckets() {
        for ttl in [1, 7, 60, 600, 86_400, 7 * 86_400] {
            let c = WriteCounts::new(Duration::from_secs(ttl));
            let keys = c.window_keys("p", "idem", 1_700_000_123);
            assert!(keys.len() <= 26, "ttl {ttl}: {} buckets", keys.len());
            // The current bucket is read, and a bucket lives at least as long as it is read.
            let now = 1_700_000_123;
            assert_eq!(
                keys.last().unwrap(),
                &c.key("p", "idem", now / c.bucket_secs)
            );
            assert!(c.keep_secs() >= c.window_secs + c.bucket_secs);
        }
        let c = WriteCounts::new(Duration::from_secs(86_400));
        assert_eq!(c.bucket_secs, 3600);
        assert_eq!(c.key("ledger", "status", 5), "ledger:stats:status:3600:5");
        // A write 25 h ago is outside the window; one 23 h ago inside.
        let now = 100 * 86_400;
        let keys = c.window_keys("p", "idem", now);
        assert!(!keys.contains(&c.key("p", "idem", (now - 25 * 3600) / 3600)));
        assert!(keys.contains(&c.key("p", "idem", (now - 23 * 3600) / 3600)));
    }
}
