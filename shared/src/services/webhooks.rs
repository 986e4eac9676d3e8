//! Webhook endpoints and redelivery, as the API asks for them: generating a secret and storing the
//! endpoint, enabling or disabling it, rotating its secret, queueing a redelivery. The rules (URL,
//! event types) are checked by the caller with `webhooks::address` and `events::EventType`.

use std::time::Duration;

use uuid::Uuid;

use crate::store::deliveries::{self, Redelivery};
use crate::store::webhooks::{self, EndpointRecord, NewEndpoint};
use crate::store::{PgPool, StoreError};
use crate::webhooks::signature;

/// A new endpoint and its secret (to show once), or `None` when the client has `max` already.
pub async fn create_endpoint(
    db: &PgPool,
    client_id: &str,
    url: &str,
    description: Option<&str>,
    event_types: &[String],
    max: usize,
) -> Result<Option<(EndpointRecord, String)>, StoreError> {
    let secret = signature::generate_secret();
    let new = NewEndpoint {
        url,
        description,
        event_types,
        secret: &secret,
    };
    Ok(webhooks::create(db, client_id, &new, max)
        .await?
        .map(|e| (e, secret)))
}

pub async fn set_enabled(
    db: &PgPool,
    client_id: &str,
    id: Uuid,
    enabled: bool,
) -> Result<Option<EndpointRecord>, StoreError> {
    webhooks::set_enabled(db, client_id, id, enabled).await
}

/// A new secret for the endpoint (to show once); the previous one signs too for `overlap`.
pub async fn rotate_secret(
    db: &PgPool,
    client_id: &str,
    id: Uuid,
    overlap: Duration,
) -> Result<Option<(EndpointRecord, String)>, StoreError> {
    let secret = signature::generate_secret();
    Ok(webhooks::rotate_secret(db, client_id, id, &secret, overlap)
        .await?
        .map(|e| (e, secret)))
}

pub async fn redeliver(
    db: &PgPool,
    client_id: &str,
    event_id: &str,
    endpoint: Option<Uuid>,
    retry_period: Duration,
) -> Result<Redelivery, StoreError> {
    deliveries::redeliver(db, client_id, event_id, endpoint, retry_period).await
}
