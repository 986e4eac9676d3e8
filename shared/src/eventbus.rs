//! The optional EventBridge bus (`EVENT_BUS_NAME`): every event is also put there, `Source`
//! `ledger`, `DetailType` the event type, `Detail` its envelope, so AWS-side consumers can route
//! them with rules instead of running a webhook receiver.

use aws_sdk_eventbridge::primitives::DateTime;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use crate::store::events::EventRecord;

/// The events' `Source` on the bus.
pub const SOURCE: &str = "ledger";
/// PutEvents takes at most this many entries per call.
pub const MAX_ENTRIES: usize = 10;

#[derive(Clone, Debug)]
pub struct EventBus {
    client: aws_sdk_eventbridge::Client,
    bus: String,
}

impl EventBus {
    pub fn new(client: aws_sdk_eventbridge::Client, bus: impl Into<String>) -> Self {
        Self {
            client,
            bus: bus.into(),
        }
    }

    /// A client from the standard AWS environment (`AWS_ENDPOINT_URL_EVENTBRIDGE` for a local
    /// server).
    pub async fn from_env(bus: impl Into<String>) -> Self {
        let sdk = crate::clients::sdk_config().await;
        Self::new(aws_sdk_eventbridge::Client::new(&sdk), bus)
    }

    /// A client for a local EventBridge-compatible server (moto), for tests.
    pub async fn local(endpoint: &str, bus: impl Into<String>) -> Self {
        use aws_sdk_eventbridge::config::{Credentials, Region};
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(Region::new(
                std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()),
            ))
            .credentials_provider(Credentials::new("test", "test", None, None, "local"))
            .endpoint_url(endpoint)
            .timeout_config(crate::queue::timeouts())
            .load()
            .await;
        Self::new(aws_sdk_eventbridge::Client::new(&sdk), bus)
    }

    pub fn client(&self) -> &aws_sdk_eventbridge::Client {
        &self.client
    }

    /// Puts up to [`MAX_ENTRIES`] events in one call; returns how many, from the first, the bus
    /// accepted (the caller retries from the first refused one), or why the call failed as a whole.
    pub async fn put(&self, events: &[EventRecord]) -> Result<usize, String> {
        let entries: Vec<PutEventsRequestEntry> = events
            .iter()
            .take(MAX_ENTRIES)
            .map(|e| {
                PutEventsRequestEntry::builder()
                    .event_bus_name(&self.bus)
                    .source(SOURCE)
                    .detail_type(&e.event_type)
                    .detail(e.envelope().to_string())
                    .time(DateTime::from_millis(e.created_at.timestamp_millis()))
                    .build()
            })
            .collect();
        let sent = entries.len();
        let output = self
            .client
            .put_events()
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| aws_sdk_eventbridge::error::DisplayErrorContext(e).to_string())?;
        let results = output.entries();
        let accepted = results
            .iter()
            .take_while(|r| r.error_code().is_none() && r.event_id().is_some())
            .count();
        if results.len() != sent && output.failed_entry_count() == 0 {
            // An answer without one result per entry: trust none of it beyond what it says.
            return Ok(accepted.min(results.len()));
        }
        Ok(accepted)
    }
}
