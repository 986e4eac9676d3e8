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
        }
    }
}

pub async fn run(report: &mut Report, scale: f64) -> anyhow::Result<()> {
    let _ = tracing_subscriber::registry()
        .with(
            ServiceTime.with_filter(tracing_subscriber::filter::filter_fn(|m| {
                m.name().starts_with("redis.") || m.name().starts_with("sqs.")
            })),
        )
        .try_init();
    let n = ((300.0 * scale) as usize).max(20);
    eprintln!(
        "bench intake: {n} sequential requests (moto slows down as its queue grows, so n stays small)"
    );
    let env = TestEnv::new().await;
    let router = api::router(env.clients.clone());
    let (mut total, mut redis, mut sqs, mut ours) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
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
        REDIS_NS.store(0, Ordering::Relaxed);
        SQS_NS.store(0, Ordering::Relaxed);
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
        let r = REDIS_NS.load(Ordering::Relaxed) as f64 / 1e6;
        let s = SQS_NS.load(Ordering::Relaxed) as f64 / 1e6;
        if i >= warmup {
            total.push(elapsed);
            redis.push(r);
            sqs.push(s);
            ours.push(elapsed - r - s);
        }
    }
    let (total, redis, sqs, ours) = (sorted(total), sorted(redis), sorted(sqs), sorted(ours));
    let section = report.section(
        "intake (POST /transactions in-process: Redis reservation + SQS send + Redis confirm)",
        &["measure", "p50 ms", "p99 ms", "max ms"],
    );
    for (name, v) in [
        ("whole request", &total),
        ("Redis round trips (2 per request)", &redis),
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
        "{n} sequential requests after {warmup} warm-up; overhead = whole request minus the time inside the redis.* and sqs.* spans of the same request"
    ));
    section.note("moto's SendMessage is far slower than SQS's (and grows with queue length); it dominates the whole-request figure here");
    Ok(())
}
