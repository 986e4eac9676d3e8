//! `devstack setup` prepares the local stack; `devstack` (or `devstack run`) also serves the API on
//! 127.0.0.1:3000 (`PORT`, `BIND`) and runs the SQS poller(s) that feed the processor and the
//! dead-letters function.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use devstack::poller::Poller;
use devstack::setup::{self, DEMO_CLIENT, DEMO_TOKEN, OPERATOR_CLIENT, OPERATOR_TOKEN};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::telemetry::init();
    let command = std::env::args().nth(1).unwrap_or_else(|| "run".into());
    let clients = setup::prepare().await?;
    match command.as_str() {
        "setup" => return Ok(()),
        "run" => {}
        other => anyhow::bail!("unknown command {other:?}; use `setup` or `run`"),
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

    // The EventBridge schedule's stand-in: the reconciler's own handler on an interval.
    let every: u64 = std::env::var("RECONCILE_INTERVAL_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    if every > 0 {
        let clients = clients.clone();
        let mut stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.changed() => return,
                    _ = tokio::time::sleep(Duration::from_secs(every)) => {}
                }
                let event = serde_json::json!({
                    "version": "0", "detail-type": "Scheduled Event", "source": "devstack",
                    "time": chrono::Utc::now().to_rfc3339(), "detail": {}
                });
                match reconciler::handle(&clients, event).await {
                    Ok(summary) => tracing::info!(%summary, "scheduled reconciliation done"),
                    Err(e) => tracing::warn!(error = %e, "scheduled reconciliation failed"),
                }
            }
        }));
    }

    // The every-minute schedule's stand-in: reconciliations queued by the API (windows too large to
    // answer at once), every RECONCILE_QUEUED_INTERVAL_SECS (default 5).
    let queued_every: u64 = std::env::var("RECONCILE_QUEUED_INTERVAL_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    if queued_every > 0 {
        let clients = clients.clone();
        let mut stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.changed() => return,
                    _ = tokio::time::sleep(Duration::from_secs(queued_every)) => {}
                }
                let event = serde_json::json!({"task": reconciler::QUEUED_TASK});
                match reconciler::handle(&clients, event).await {
                    Ok(summary) if summary["runs"].as_array().is_some_and(|r| !r.is_empty()) => {
                        tracing::info!(%summary, "queued reconciliations done")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "queued reconciliations failed"),
                }
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
    for t in tasks {
        let _ = t.await;
    }
    Ok(())
}
