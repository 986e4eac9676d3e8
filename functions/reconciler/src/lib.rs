//! The scheduled reconciliation (EventBridge Scheduler): every account with imported statements is
//! reconciled for the configured window up to yesterday, then the ledger-wide invariants and the
//! recorded dead letters are checked. Runs and discrepancies are stored; metrics go out as EMF.

use std::time::Instant;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Value, json};
use shared::clients::Clients;
use shared::metrics::Metrics;
use shared::services::reconciliation;
use tracing::Instrument;

/// The day the schedule fired for: the event's `time` (so a retried invocation reconciles the same
/// window), or now if the event has none.
pub fn scheduled_day(event: &Value) -> NaiveDate {
    event
        .get("time")
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map_or_else(
            || Utc::now().date_naive(),
            |t| t.with_timezone(&Utc).date_naive(),
        )
}

/// The `task` of the every-minute schedule's input: expire the holds past their expiry, then run
/// the reconciliations the API queued.
pub const QUEUED_TASK: &str = "queued-reconciliations";

/// How long one invocation keeps taking queued reconciliations (the function's timeout is 15
/// minutes; a run that starts just before this budget ends still has time to finish).
const QUEUED_BUDGET: std::time::Duration = std::time::Duration::from_secs(8 * 60);

/// Handles one scheduled event: the daily run, or (`{"task": "queued-reconciliations"}`) the
/// reconciliations the API queued because their windows were too large to answer at once.
pub async fn handle(clients: &Clients, event: Value) -> anyhow::Result<Value> {
    if event.get("task").and_then(Value::as_str) == Some(QUEUED_TASK) {
        return handle_queued(clients).await;
    }
    handle_daily(clients, event).await
}

async fn handle_queued(clients: &Clients) -> anyhow::Result<Value> {
    let started = Instant::now();
    // Holds past their expiry release what they reserve (posting also does, for the accounts it
    // touches; this frees the others' `available` within a minute).
    // A failure here must not stop the queued reconciliations: it is logged and counted, and the
    // next minute tries again.
    let (expired_holds, hold_errors) = match shared::services::movement::expire_holds(clients).await
    {
        Ok(n) => (n, 0),
        Err(e) => {
            tracing::error!(error = %e, "expiring holds failed; the next run retries");
            (0, 1)
        }
    };
    let done =
        reconciliation::run_queued(&clients.db, &clients.config.reconcile, QUEUED_BUDGET).await?;
    let mut metrics = Metrics::new("reconciler");
    metrics.count("QueuedRuns", done.len() as u64);
    metrics.count("HoldsExpired", expired_holds);
    metrics.count("HoldExpiryErrors", hold_errors);
    metrics.count(
        "QueuedRunsFailed",
        done.iter().filter(|d| d.error.is_some()).count() as u64,
    );
    metrics.millis("Duration", started.elapsed().as_secs_f64() * 1000.0);
    metrics.flush();
    Ok(json!({"task": QUEUED_TASK, "runs": done, "holdsExpired": expired_holds}))
}

/// The daily run: every account with statements, then the ledger-wide checks.
async fn handle_daily(clients: &Clients, event: Value) -> anyhow::Result<Value> {
    let started = Instant::now();
    let today = scheduled_day(&event);
    let settings = &clients.config.reconcile;
    let (start, end) = reconciliation::scheduled_window(today, settings);
    let scheduled = reconciliation::reconcile_all(&clients.db, settings, today)
        .instrument(tracing::info_span!("reconcile", %today, %start, %end))
        .await?;
    let results = &scheduled.runs;

    let mut metrics = Metrics::new("reconciler");
    let mut runs = Vec::new();
    metrics.count("FailedAccounts", scheduled.failures.len() as u64);
    for r in results {
        metrics.count("Runs", 1);
        metrics.count("MatchedLines", r.matched_lines as u64);
        metrics.count("NewDiscrepancies", r.stats.new as u64);
        metrics.count("ClearedDiscrepancies", r.stats.cleared as u64);
        for (kind, n) in &r.findings_by_kind {
            metrics.count_by("Discrepancies", "Kind", kind, *n as u64);
        }
        tracing::info!(run_id = %r.run_id, account_id = ?r.report.get("accountId"), new = r.stats.new, cleared = r.stats.cleared, "reconciliation run stored");
        runs.push(json!({
            "runId": r.run_id,
            "accountId": r.report.get("accountId"),
            "discrepancyChanges": r.report.get("discrepancyChanges"),
        }));
    }
    metrics.millis("Duration", started.elapsed().as_secs_f64() * 1000.0);
    metrics.flush();
    Ok(json!({
        "day": today,
        "window": {"startDate": start, "endDate": end},
        "runs": runs,
        "failedAccounts": scheduled.failures,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_day_comes_from_the_event() {
        let event = json!({"time": "2026-11-24T02:30:00Z"});
        assert_eq!(
            scheduled_day(&event),
            NaiveDate::from_ymd_opt(2026, 11, 24).unwrap()
        );
        assert_eq!(scheduled_day(&json!({})), Utc::now().date_naive());
    }
}
