//! `devstack setup` prepares the local stack; `devstack` (or `devstack run`) also serves the API on
//! 127.0.0.1:3000 (`PORT`, `BIND`) and runs the SQS poller(s) that feed the processor and the
//! dead-letters function, and the webhook dispatcher's loop in the background (`DISPATCH_RUN_SECONDS`
//! per window, 0 = off). `devstack dispatch` runs only the dispatcher's loop, forever (tests kill it
//! mid-delivery).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use devstack::poller::Poller;
use devstack::setup::{self, DEMO_CLIENT, DEMO_TOKEN, OPERATOR_CLIENT, OPERATOR_TOKEN};
use shared::clients::Clients;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::telemetry::init();
    let command = std::env::args().nth(1).unwrap_or_else(|| "run".into());
    let clients = setup::prepare().await?;
    match command.as_str() {
        "setup" => return Ok(()),
        "run" => {}
        "dispatch" => {
            devstack::dispatch::run_forever(&clients).await?;
            return Ok(());
        }
        other => anyhow::bail!("unknown command {other:?}; use `setup`, `run` or `dispatch`"),
    }

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let pollers: usize = std::env::var("POLLERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let mut tasks = Vec::new();
    for _ in 0..pollers.max(1) {
        let poller = Poller::new(clients.clone(), Duration::from_secs(2)).await?;
        tasks.push(tokio::spawn(poller.run(stop_rx.clone())));
    }
    // The dead-letters function's event source: records every dead letter in PostgreSQL.
    let dead_letters = Poller::dead_letters(clients.clone(), Duration::from_secs(2)).await?;
    tasks.push(tokio::spawn(dead_letters.run(stop_rx.clone())));

    // The EventBridge schedules' stand-ins: the reconciler's own handler on two intervals, the daily
    // run (RECONCILE_INTERVAL_SECS, default 300) and the reconciliations the API queued because their
    // windows were too large to answer at once (RECONCILE_QUEUED_INTERVAL_SECS, default 5).
    let every = interval_secs("RECONCILE_INTERVAL_SECS", 300);
    if every > 0 {
        tasks.push(spawn_timer(
            &clients,
            &stop_rx,
            every,
            "scheduled reconciliation",
            || {
                serde_json::json!({
                    "version": "0", "detail-type": "Scheduled Event", "source": "devstack",
                    "time": chrono::Utc::now().to_rfc3339(), "detail": {}
                })
            },
        ));
    }
    let queued_every = interval_secs("RECONCILE_QUEUED_INTERVAL_SECS", 5);
    if queued_every > 0 {
        tasks.push(spawn_timer(
            &clients,
            &stop_rx,
            queued_every,
            "queued reconciliations",
            || serde_json::json!({"task": reconciler::QUEUED_TASK}),
        ));
    }

    // The dispatcher's schedule stand-in: its loop, window after window (DISPATCH_RUN_SECONDS = 0
    // turns it off, as the fuzz does: fuzzed endpoints must receive nothing).
    if !clients.config.webhooks.run_for.is_zero() {
        let clients = clients.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = devstack::dispatch::run_forever(&clients).await {
                tracing::error!(error = %e, "the webhook dispatcher stopped");
            }
        }));
    }

    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1".into());
    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".into());
    let addr: SocketAddr = format!("{bind}:{port}").parse().context("BIND/PORT")?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    println!(
        "\ndevstack: API on http://{addr}/api/v1 ({pollers} SQS poller(s) feeding the processor, one on the dead-letter queue recording dead letters; reconciler every {every} s, RECONCILE_INTERVAL_SECS)\n\
         devstack: local demo client {DEMO_CLIENT:?}, token {DEMO_TOKEN:?} (local only; nothing deployed accepts it)\n\
         devstack: local operator {OPERATOR_CLIENT:?}, token {OPERATOR_TOKEN:?} (role operator: /queue/stats, /cache/stats, ledger-wide runs; local only)\n\
         devstack: try  curl -s http://{addr}/api/v1/ready\n"
    );
    axum::serve(listener, api::router(clients))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    let _ = stop_tx.send(true);
    for t in &tasks {
        // The dispatcher's loop has no stop signal: a send cut short is sent again after its lease.
        if !t.is_finished() {
            t.abort();
        }
    }
    for t in tasks {
        let _ = t.await;
    }
    Ok(())
}

fn interval_secs(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs the reconciler's handler with `event()` every `secs` seconds until `stop` changes; logs a
/// summary only when it ran something (a run, or a queued reconciliation).
fn spawn_timer(
    clients: &Clients,
    stop: &tokio::sync::watch::Receiver<bool>,
    secs: u64,
    what: &'static str,
    event: impl Fn() -> serde_json::Value + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let clients = clients.clone();
    let mut stop = stop.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = tokio::time::sleep(Duration::from_secs(secs)) => {}
            }
            match reconciler::handle(&clients, event()).await {
                Ok(summary) if summary["runs"].as_array().is_some_and(|r| !r.is_empty()) => {
                    tracing::info!(%summary, "{what} done")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "{what} failed"),
            }
        }
    })
}
