//! Where a batch's time goes (diagnostics; not part of `bench all`).

use std::time::Instant;

use shared::store::posting;

use crate::posting::{Shape, fresh_database, sqs_event, transfers, worker_clients};

pub async fn run() -> anyhow::Result<()> {
    let url = fresh_database().await?;
    let clients = worker_clients(&url).await?;
    let msgs = transfers(Shape::Uniform, 3000, 99);
    let mut batches = msgs.chunks(10);
    let t = |label: &str, start: Instant, n: usize| {
        println!(
            "{label:<30} {:>8.3} ms per batch",
            start.elapsed().as_secs_f64() * 1000.0 / n as f64
        );
    };
    let n = 100;
    let s = Instant::now();
    for _ in 0..n {
        let b = batches.next().unwrap();
        processor::handle_batch(&clients, sqs_event(b, 0)).await;
    }
    t("handle_batch", s, n);
    let s = Instant::now();
    for _ in 0..n {
        let b = batches.next().unwrap();
        posting::post_batch(&clients.db, b).await?;
    }
    t("post_batch", s, n);
    let s = Instant::now();
    for _ in 0..n {
        let _c = clients.db.get().await?;
    }
    t("pool.get", s, n);
    let s = Instant::now();
    for _ in 0..n {
        let c = clients.db.get().await?;
        c.simple_query("SELECT 1").await?;
    }
    t("pool.get + select 1", s, n);
    let s = Instant::now();
    for _ in 0..n {
        clients.cache.ping().await?;
    }
    t("redis ping", s, n);
    Ok(())
}
