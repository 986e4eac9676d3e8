//! `bench`: reproducible figures for the ledger, each compared with a baseline measured in the
//! same run. Prints a table; `--json FILE` also writes it as JSON.
//!
//!   bench posting   processor throughput: uniform (1, 2, 4 invocations), hot accounts, naive baseline
//!   bench intake    API intake latency (Redis reservation + SQS send), each round trip measured
//!   bench movement  money movement: multi-leg, hold + capture and refund posting vs a simple
//!                   transfer; bulk intake (500-item requests) vs the same items one by one
//!   bench startup   release binary sizes and time from process start to ready-for-first-event
//!   bench reconcile 1,000,000 statement lines against 1,000,000 transfers, end to end, vs naive
//!   bench all       all of the above (default)
//!
//! `--scale X` multiplies every scenario's size (e.g. 0.1 for a quick look).
//!
//! Needs the local services (`make services`); creates its own database `ledger_bench`.

mod evidence;
mod intake;
mod movement;
mod naive;
mod posting;
mod probe;
mod reconcile;
mod report;
mod startup;

use anyhow::Context;
use report::Report;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut command = "all".to_string();
    let mut json = None;
    let mut scale = 1.0f64;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--json" => {
                json = Some(args.get(i + 1).context("--json needs a file")?.clone());
                i += 1;
            }
            "--scale" => {
                scale = args.get(i + 1).context("--scale needs a number")?.parse()?;
                i += 1;
            }
            other => command = other.to_string(),
        }
        i += 1;
    }
    shared::metrics::disable();
    if args.first().map(String::as_str) == Some("probe") {
        return probe::run().await;
    }
    let mut report = Report::new();
    if matches!(command.as_str(), "all" | "posting") {
        posting::run(&mut report, scale).await?;
    }
    if matches!(command.as_str(), "all" | "intake") {
        intake::run(&mut report, scale).await?;
    }
    if matches!(command.as_str(), "all" | "movement") {
        movement::run(&mut report, scale).await?;
    }
    if matches!(command.as_str(), "all" | "startup") {
        startup::run(&mut report).await?;
    }
    if matches!(command.as_str(), "all" | "reconcile") {
        reconcile::run(&mut report, scale).await?;
    }
    if !matches!(
        command.as_str(),
        "all" | "posting" | "intake" | "movement" | "startup" | "reconcile"
    ) {
        anyhow::bail!(
            "unknown command {command:?}: use posting, intake, movement, startup, reconcile or all"
        );
    }
    report.print();
    if let Some(path) = json {
        std::fs::write(&path, serde_json::to_string_pretty(&report.to_json())?)?;
        println!("\nwrote {path}");
    }
    Ok(())
}
