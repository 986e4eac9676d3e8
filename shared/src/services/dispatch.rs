//! The dispatcher's loop (issue 12): fan the outbox out into deliveries, claim each endpoint's head
//! delivery when it is due, send each as its own task (at most `WEBHOOK_CONCURRENCY` at once, each
//! bounded by `WEBHOOK_TIMEOUT_MS`), record the attempt and settle the delivery. One slow endpoint
//! occupies one task only: other endpoints and clients keep being served. Overlapping dispatchers
//! are safe: the fan-out locks its cursor and a claimed delivery is leased.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use tokio::task::JoinSet;

use crate::config::WebhookConfig;
use crate::eventbus::EventBus;
use crate::store::deliveries::{self, AttemptResult, Claimed, FanOut, WEBHOOKS_CURSOR};
use crate::store::{PgPool, StoreError, events};
use crate::webhooks::sender::{Outgoing, Sender};
use crate::webhooks::{backoff, signature};

/// Events per fan-out transaction.
pub const FAN_OUT_CHUNK: i64 = 500;
/// How long the loop waits when there was nothing to do.
pub const IDLE_POLL: Duration = Duration::from_millis(500);

/// What one run did (the dispatcher's metrics).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RunSummary {
    pub events_fanned_out: u64,
    pub deliveries_created: u64,
    pub deliveries_succeeded: u64,
    pub attempts_failed: u64,
    /// Deliveries that failed their last attempt (past their retry period): FAILED.
    pub deliveries_failed: u64,
    /// Age of the oldest event not yet fanned out, when the run ended.
    pub outbox_lag_seconds: f64,
    /// Events put on the EventBridge bus, and entries it refused (retried on the next loop).
    pub eventbridge_put: u64,
    pub eventbridge_failures: u64,
    pub errors: u64,
}

/// How one send ended, as recorded.
#[derive(Debug)]
enum Settled {
    Status(String),
    /// Another dispatcher took the delivery over after our lease ran out and recorded first.
    LostLease,
}

#[derive(Clone)]
pub struct Dispatcher {
    db: PgPool,
    settings: Arc<WebhookConfig>,
    sender: Sender,
    bus: Option<EventBus>,
}

/// Events one EventBridge round reads (then puts in calls of ten).
pub const EVENTBRIDGE_CHUNK: i64 = 100;

impl Dispatcher {
    pub fn new(db: PgPool, settings: WebhookConfig) -> anyhow::Result<Self> {
        let sender = Sender::new(settings.timeout, settings.allow_private_urls)?;
        Ok(Self {
            db,
            settings: Arc::new(settings),
            sender,
            bus: None,
        })
    }

    /// Also puts every event on this bus.
    pub fn with_event_bus(mut self, bus: EventBus) -> Self {
        self.bus = Some(bus);
        self
    }

    /// The dispatcher of a function's clients, with their database and `WEBHOOK_*` settings.
    pub async fn from_clients(clients: &crate::clients::Clients) -> anyhow::Result<Self> {
        let dispatcher = Self::new(clients.db.clone(), clients.config.webhooks.clone())?;
        Ok(match &clients.config.webhooks.event_bus_name {
            Some(bus) => dispatcher.with_event_bus(EventBus::from_env(bus).await),
            None => dispatcher,
        })
    }

    /// Puts the events past the 'eventbridge' cursor on the bus, ten per call, in order, and moves
    /// the cursor past those the bus accepted; the first refused one and everything after it wait
    /// for the next round. Returns (put, refused). Another dispatcher at work on it: (0, 0).
    pub async fn publish(&self) -> Result<(u64, u64), StoreError> {
        let Some(bus) = &self.bus else {
            return Ok((0, 0));
        };
        let mut conn = self.db.get().await?;
        let Some(read) =
            events::read_past_cursor(&mut conn, events::EVENTBRIDGE_CURSOR, EVENTBRIDGE_CHUNK)
                .await?
        else {
            return Ok((0, 0));
        };
        let mut put = 0;
        let mut refused = 0;
        for chunk in read.events.chunks(crate::eventbus::MAX_ENTRIES) {
            match bus.put(chunk).await {
                Ok(n) => {
                    put += n;
                    if n < chunk.len() {
                        refused += (chunk.len() - n) as u64;
                        tracing::warn!(
                            refused = chunk.len() - n,
                            "EventBridge refused events; retrying next round"
                        );
                        break;
                    }
                }
                Err(e) => {
                    refused += chunk.len() as u64;
                    tracing::warn!(error = %e, "EventBridge PutEvents failed; retrying next round");
                    break;
                }
            }
        }
        let last = put.checked_sub(1).map(|i| &read.events[i]);
        let last = last.cloned();
        read.advance(last.as_ref()).await?;
        Ok((put as u64, refused))
    }

    pub fn settings(&self) -> &WebhookConfig {
        &self.settings
    }

    /// Fans out every event the horizon allows, a chunk per transaction.
    pub async fn fan_out(&self) -> Result<FanOut, StoreError> {
        let mut total = FanOut::default();
        loop {
            let done =
                deliveries::fan_out(&self.db, FAN_OUT_CHUNK, self.settings.retry_period).await?;
            total.events += done.events;
            total.deliveries += done.deliveries;
            if (done.events as i64) < FAN_OUT_CHUNK {
                return Ok(total);
            }
        }
    }

    /// Runs the loop for `budget`: claims work until then, then waits for the sends in flight.
    pub async fn run(&self, budget: Duration) -> RunSummary {
        let deadline = Instant::now() + budget;
        let mut summary = RunSummary::default();
        let mut in_flight: JoinSet<Result<Settled, StoreError>> = JoinSet::new();
        while Instant::now() < deadline {
            let mut worked = false;
            match self.fan_out().await {
                Ok(f) => {
                    worked |= f.events > 0;
                    summary.events_fanned_out += f.events as u64;
                    summary.deliveries_created += f.deliveries;
                }
                Err(e) => {
                    summary.errors += 1;
                    tracing::warn!(error = %e, "webhook fan-out failed; retrying");
                }
            }
            match self.publish().await {
                Ok((put, refused)) => {
                    worked |= put > 0;
                    summary.eventbridge_put += put;
                    summary.eventbridge_failures += refused;
                }
                Err(e) => {
                    summary.errors += 1;
                    tracing::warn!(error = %e, "publishing to EventBridge failed; retrying");
                }
            }
            let free = self.settings.concurrency.saturating_sub(in_flight.len());
            if free > 0 {
                // At most half the slots to one client (at least one), so a client's slow or
                // backlogged endpoints leave the other half to everyone else.
                let per_client = (self.settings.concurrency / 2).max(1) as i64;
                match deliveries::claim(&self.db, free as i64, per_client, self.settings.lease)
                    .await
                {
                    Ok(claimed) => {
                        worked |= !claimed.is_empty();
                        for c in claimed {
                            let me = self.clone();
                            in_flight.spawn(async move { me.deliver(c).await });
                        }
                    }
                    Err(e) => {
                        summary.errors += 1;
                        tracing::warn!(error = %e, "claiming webhook deliveries failed; retrying");
                    }
                }
            }
            while let Some(done) = in_flight.try_join_next() {
                tally(&mut summary, done);
            }
            if !worked || in_flight.len() >= self.settings.concurrency {
                let wait = IDLE_POLL.min(deadline.saturating_duration_since(Instant::now()));
                tokio::select! {
                    Some(done) = in_flight.join_next(), if !in_flight.is_empty() => tally(&mut summary, done),
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
        while let Some(done) = in_flight.join_next().await {
            tally(&mut summary, done);
        }
        match events::lag_seconds(&self.db, WEBHOOKS_CURSOR).await {
            Ok(lag) => summary.outbox_lag_seconds = lag,
            Err(e) => {
                summary.errors += 1;
                tracing::warn!(error = %e, "reading the outbox lag failed");
            }
        }
        summary
    }

    /// Sends one claimed delivery and records the attempt.
    async fn deliver(&self, c: Claimed) -> Result<Settled, StoreError> {
        let body = Bytes::from(c.event.envelope().to_string());
        let timestamp = Utc::now().timestamp();
        let mut secrets = vec![c.secret.as_str()];
        secrets.extend(c.previous_secret.as_deref());
        let signature = signature::header(timestamp, &body, &secrets);
        let at = Utc::now();
        let outcome = self
            .sender
            .send(Outgoing {
                url: &c.url,
                event_id: &c.event.id,
                event_type: &c.event.event_type,
                signature: &signature,
                body,
            })
            .await;
        let attempt = c.attempts.saturating_add(1);
        let s = &self.settings;
        let result = AttemptResult {
            at,
            status_code: outcome.status.map(i32::from),
            error: outcome.error.as_deref(),
            duration_ms: i32::try_from(outcome.duration.as_millis()).unwrap_or(i32::MAX),
            succeeded: outcome.succeeded(),
            retry_in: backoff(
                attempt.unsigned_abs(),
                s.backoff_base,
                s.backoff_max,
                rand::random::<f64>(),
            ),
        };
        let settled = deliveries::record_attempt(&self.db, &c, &result).await?;
        tracing::info!(
            delivery_id = c.delivery_id,
            endpoint_id = %c.endpoint_id,
            event_id = %c.event.id,
            attempt,
            status_code = ?outcome.status,
            error = ?outcome.error,
            settled = ?settled,
            "webhook attempt"
        );
        Ok(settled.map_or(Settled::LostLease, Settled::Status))
    }
}

fn tally(
    summary: &mut RunSummary,
    done: Result<Result<Settled, StoreError>, tokio::task::JoinError>,
) {
    match done {
        Ok(Ok(Settled::Status(status))) => match status.as_str() {
            "SUCCEEDED" => summary.deliveries_succeeded += 1,
            "FAILED" => {
                summary.attempts_failed += 1;
                summary.deliveries_failed += 1;
            }
            _ => summary.attempts_failed += 1,
        },
        Ok(Ok(Settled::LostLease)) => {
            tracing::warn!("a delivery's lease ran out before its attempt was recorded");
        }
        Ok(Err(e)) => {
            // The lease runs out and the delivery is sent again: at least once.
            summary.errors += 1;
            tracing::warn!(error = %e, "recording a webhook attempt failed");
        }
        Err(e) => {
            summary.errors += 1;
            tracing::error!(error = %e, "a webhook send task failed");
        }
    }
}
