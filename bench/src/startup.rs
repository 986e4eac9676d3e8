//! Binary size and start-up: each function's stripped release binary, and the time from process
//! start to its first request for an event (clients built, no connection opened), measured against
//! a stand-in for the Lambda Runtime API on loopback.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use tokio::sync::Notify;

use crate::report::{Report, quantile, sorted};

pub const FUNCTIONS: [&str; 5] = ["api", "processor", "reconciler", "dispatcher", "migrator"];

fn release_dir() -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| format!("{}/../target", env!("CARGO_MANIFEST_DIR")));
    PathBuf::from(target).join("release")
}

/// A Runtime API that records when `/invocation/next` is first asked for, and never answers it.
async fn fake_runtime() -> anyhow::Result<(String, Arc<Mutex<Option<Instant>>>, Arc<Notify>)> {
    let first = Arc::new(Mutex::new(None));
    let notify = Arc::new(Notify::new());
    let (f, n) = (first.clone(), notify.clone());
    let app = Router::new().route(
        "/2018-06-01/runtime/invocation/next",
        get(move || {
            let (f, n) = (f.clone(), n.clone());
            async move {
                f.lock().expect("lock").get_or_insert_with(Instant::now);
                n.notify_one();
                std::future::pending::<()>().await;
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((addr.to_string(), first, notify))
}

async fn time_to_ready(binary: &PathBuf, name: &str) -> anyhow::Result<Duration> {
    let (addr, first, notify) = fake_runtime().await?;
    let started = Instant::now();
    let mut child = tokio::process::Command::new(binary)
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", &addr)
        .env("AWS_LAMBDA_FUNCTION_NAME", name)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "bench")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ledger")
        .env("REDIS_URL", "redis://127.0.0.1:6379")
        .env(
            "SQS_QUEUE_URL",
            "http://127.0.0.1:4566/123456789012/payment-ledger-transfers.fifo",
        )
        .env("AWS_ENDPOINT_URL_SQS", "http://127.0.0.1:4566")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    tokio::time::timeout(Duration::from_secs(10), notify.notified()).await?;
    let ready = first
        .lock()
        .expect("lock")
        .expect("notified after recording")
        - started;
    child.kill().await?;
    Ok(ready)
}

pub async fn run(report: &mut Report) -> anyhow::Result<()> {
    let dir = release_dir();
    let mut rows = Vec::new();
    for name in FUNCTIONS {
        let binary = dir.join(name);
        let size = std::fs::metadata(&binary)
            .map_err(|e| {
                anyhow::anyhow!(
                    "{}: {e}; build with `cargo build --release --bins` first (make bench does)",
                    binary.display()
                )
            })?
            .len();
        let mut samples = Vec::new();
        for _ in 0..15 {
            samples.push(time_to_ready(&binary, name).await?.as_secs_f64() * 1000.0);
        }
        let samples = sorted(samples);
        rows.push((name, size, samples));
    }
    let section = report.section(
        "functions (release, stripped; native build of this machine)",
        &["function", "binary MiB", "ready p50 ms", "ready max ms"],
    );
    for (name, size, samples) in rows {
        section.row(vec![
            name.into(),
            format!("{:.2}", size as f64 / 1_048_576.0),
            format!("{:.1}", quantile(&samples, 0.5)),
            format!("{:.1}", samples.last().copied().unwrap_or(0.0)),
        ]);
    }
    section.note("ready = process start to its first GET /runtime/invocation/next on a loopback stand-in for the Runtime API; 15 starts each, warm page cache");
    section.note("arm64 sizes from `sam build` (cargo lambda --arm64) are in the README");
    Ok(())
}
