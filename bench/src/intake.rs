//! Intake latency: `POST /api/v1/transactions` through the API Router in-process, against the local
//! Redis and SQS server. The time spent inside the Redis and SQS calls is measured per request (from
//! the adapters' `redis.*` / `sqs.*` tracing spans), so what is left is our own overhead: routing,
//! auth, JSON, validation, hashing, serialization.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::body::Body;
use http::{Request, StatusCode};
use shared::testkit::{DEMO_TOKEN, TestEnv};
use tower::ServiceExt;
use tracing::span;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

use crate::report::{Report, quantile, sorted};

static REDIS_NS: AtomicU64 = AtomicU64::new(0);
static SQS_NS: AtomicU64 = AtomicU64::new(0);
static PG_NS: AtomicU64 = AtomicU64::new(0);

/// Adds the lifetime of every `redis.*` and `sqs.*` span to the counters above.
struct ServiceTime;

struct Opened(Instant);

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> Layer<S> for ServiceTime {
    fn on_new_span(&self, _attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Opened(Instant::now()));
        }
    }

    fn on_close(&self, id: span::Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(opened) = span.extensions().get::<Opened>().map(|o| o.0) else {
            return;
        };
        let ns = opened.elapsed().as_nanos() as u64;
        let name = span.name();
        if name.starts_with("redis.") {
            REDIS_NS.fetch_add(ns, Ordering::Relaxed);
        } else if name.starts_with("sqs.") {
            SQS_NS.fetch_add(ns, Ordering::Relaxed);
        } else if name.starts_with("postgres.") {
            PG_NS.fetch_add(ns, Ordering::Relaxed);
        }
    }
}

/// Installs the span timer as the process's subscriber (once; later calls change nothing).
pub fn time_service_spans() {
    let _ = tracing_subscriber::registry()
        .with(
            ServiceTime.with_filter(tracing_subscriber::filter::filter_fn(|m| {
                m.name().starts_with("redis.")
                    || m.name().starts_with("sqs.")
                    || m.name().starts_with("postgres.")
            })),
        )
        .try_init();
}

/// Starts counting the time inside `redis.*` and `sqs.*` spans from zero.
pub fn reset_service_time() {
    REDIS_NS.store(0, Ordering::Relaxed);
    SQS_NS.store(0, Ordering::Relaxed);
    PG_NS.store(0, Ordering::Relaxed);
}

/// Milliseconds inside `postgres.*` spans (the durable intake record) since the last reset.
pub fn postgres_time_ms() -> f64 {
    PG_NS.load(Ordering::Relaxed) as f64 / 1e6
}

/// Milliseconds inside (`redis.*`, `sqs.*`) spans since the last reset. Spans that overlap (a bulk
/// request's concurrent Redis calls) add up, so the Redis figure can exceed the wall time.
pub fn service_time_ms() -> (f64, f64) {
    (
        REDIS_NS.load(Ordering::Relaxed) as f64 / 1e6,
        SQS_NS.load(Ordering::Relaxed) as f64 / 1e6,
    )
}

pub async fn run(report: &mut Report, scale: f64) -> anyhow::Result<()> {
    time_service_spans();
    let n = ((300.0 * scale) as usize).max(20);
    eprintln!(
        "bench intake: {n} sequential requests (moto slows down as its queue grows, so n stays small)"
    );
    let env = TestEnv::new().await;
    let router = api::router(env.clients.clone());
    let (mut total, mut redis, mut sqs, mut pg, mut ours) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let warmup = 5;
    for i in 0..n + warmup {
        let body = serde_json::json!({
            "transaction": {"source_account_id": "acct-1", "destination_account_id": "acct-2",
                            "amount": "12.34", "currency": "USD", "reference": format!("intake-{i}")},
            "idempotencyKey": format!("intake-{i}")
        });
        let req = Request::builder()
            .method("POST")
            .uri("/api/v1/transactions")
            .header("authorization", format!("Bearer {DEMO_TOKEN}"))
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))?;
        reset_service_time();
        let started = Instant::now();
        let res = router.clone().oneshot(req).await?;
        let status = res.status();
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX).await?;
        let elapsed = started.elapsed().as_nanos() as f64 / 1e6;
        anyhow::ensure!(
            status == StatusCode::ACCEPTED,
            "intake answered {status}: {}",
            String::from_utf8_lossy(&bytes)
        );
        let (r, s) = service_time_ms();
        let p = postgres_time_ms();
        if i >= warmup {
            total.push(elapsed);
            redis.push(r);
            sqs.push(s);
            pg.push(p);
            ours.push(elapsed - r - s - p);
        }
    }
    let (total, redis, sqs, pg, ours) = (
        sorted(total),
        sorted(redis),
        sorted(sqs),
        sorted(pg),
        sorted(ours),
    );
    let section = report.section(
        "intake (POST /transactions in-process: Redis reservation + PostgreSQL intake record + SQS send + Redis confirm)",
        &["measure", "p50 ms", "p99 ms", "max ms"],
    );
    for (name, v) in [
        ("whole request", &total),
        ("Redis round trips (2 per request)", &redis),
        ("PostgreSQL intake record (1 statement)", &pg),
        ("SQS SendMessage (moto)", &sqs),
        ("our own overhead", &ours),
    ] {
        section.row(vec![
            name.into(),
            format!("{:.3}", quantile(v, 0.5)),
            format!("{:.3}", quantile(v, 0.99)),
            format!("{:.3}", v.last().copied().unwrap_or(0.0)),
        ]);
    }
    section.note(format!(
        "{n} sequential requests after {warmup} warm-up; overhead = whole request minus the time inside the redis.*, postgres.* and sqs.* spans of the same request"
    ));
    section.note("moto's SendMessage is far slower than SQS's (and grows with queue length); it dominates the whole-request figure here");
    Ok(())
}
