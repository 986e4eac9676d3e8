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
/// PutEvents takes at most this many bytes of entries per call (AWS's entry size: the time's 14
/// bytes, then the source, detail type and detail in UTF-8).
pub const MAX_REQUEST_BYTES: usize = 256 * 1024;

/// An entry's size as AWS counts it against [`MAX_REQUEST_BYTES`].
fn entry_size(detail_type: &str, detail: &str) -> usize {
    14 + SOURCE.len() + detail_type.len() + detail.len()
}

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

    /// Puts the first events that fit one call (at most [`MAX_ENTRIES`] and [`MAX_REQUEST_BYTES`]);
    /// returns how many, from the first, the bus accepted (the caller retries from the first
    /// refused one), or why the call failed as a whole. An event too large for any call (over
    /// 256 KB on its own) can never be put: it is logged as an error and counted as done, so it
    /// does not stop the bus for every event after it (its webhooks are not affected).
    pub async fn put(&self, events: &[EventRecord]) -> Result<usize, String> {
        let mut entries: Vec<PutEventsRequestEntry> = Vec::new();
        let mut bytes = 0;
        for e in events.iter().take(MAX_ENTRIES) {
            let detail = e.envelope().to_string();
            let size = entry_size(&e.event_type, &detail);
            if size > MAX_REQUEST_BYTES && entries.is_empty() {
                tracing::error!(event_id = %e.id, size, "event too large for EventBridge; not put on the bus");
                return Ok(1);
            }
            if bytes + size > MAX_REQUEST_BYTES {
                break;
            }
            bytes += size;
            entries.push(
                PutEventsRequestEntry::builder()
                    .event_bus_name(&self.bus)
                    .source(SOURCE)
                    .detail_type(&e.event_type)
                    .detail(detail)
                    .time(DateTime::from_millis(e.created_at.timestamp_millis()))
                    .build(),
            );
        }
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
