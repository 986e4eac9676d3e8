//! The dispatcher (EventBridge Scheduler, every minute): for `DISPATCH_RUN_SECONDS` it fans the
//! outbox out into webhook deliveries, sends them (signed, retried with backoff) and, when
//! `EVENT_BUS_NAME` is set, puts every event on the EventBridge bus. Invocations may overlap: the
//! fan-out locks its cursor and deliveries are leased. Metrics go out as EMF.

use std::time::Instant;

use serde_json::{Value, json};
use shared::metrics::Metrics;
use shared::services::dispatch::{Dispatcher, RunSummary};

/// One scheduled invocation: the loop for the configured duration, then its metrics. The event's
/// content is not used (any schedule payload runs the same loop).
pub async fn handle(dispatcher: &Dispatcher, _event: Value) -> anyhow::Result<Value> {
    let started = Instant::now();
    let summary = dispatcher.run(dispatcher.settings().run_for).await;
    emit(&summary, started.elapsed().as_secs_f64() * 1000.0);
    Ok(summary_json(&summary))
}

/// The metrics of one run (alarms: WebhookDeliveriesFailed > 0, OutboxLagSeconds high).
pub fn emit(summary: &RunSummary, duration_ms: f64) {
    let mut m = Metrics::new("dispatcher");
    m.count("EventsFannedOut", summary.events_fanned_out);
    m.count("WebhookDeliveriesCreated", summary.deliveries_created);
    m.count("WebhookDeliveriesSucceeded", summary.deliveries_succeeded);
    m.count("WebhookAttemptsFailed", summary.attempts_failed);
    m.count("WebhookDeliveriesFailed", summary.deliveries_failed);
    m.count("EventBridgeFailures", summary.eventbridge_failures);
    m.count("DispatchErrors", summary.errors);
    m.seconds("OutboxLagSeconds", summary.outbox_lag_seconds);
    m.millis("Duration", duration_ms);
    m.flush();
}

pub fn summary_json(s: &RunSummary) -> Value {
    json!({
        "eventsFannedOut": s.events_fanned_out,
        "deliveriesCreated": s.deliveries_created,
        "deliveriesSucceeded": s.deliveries_succeeded,
        "attemptsFailed": s.attempts_failed,
        "deliveriesFailed": s.deliveries_failed,
        "eventBridgePut": s.eventbridge_put,
        "eventBridgeFailures": s.eventbridge_failures,
        "outboxLagSeconds": s.outbox_lag_seconds,
        "errors": s.errors,
    })
}
