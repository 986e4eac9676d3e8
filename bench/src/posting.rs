//! Posting throughput: the real processor handler fed real-shaped SqsEvent batches of 10, as the
//! event source mapping would deliver them, against the local PostgreSQL with default durability
//! (fsync and synchronous_commit on). Each concurrent invocation has its own clients and one
//! database connection, like separate Lambda containers.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_lambda_events::event::sqs::SqsEvent;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use shared::auth::Authenticator;
use shared::clients::Clients;
use shared::config::Config;
use shared::store::{self, invariants};
use shared::testkit;
use shared::transfers::{IdempotencyKey, TransferDraft, TransferMessage};

use crate::evidence::{self, WaitSampler};
use crate::naive;
use crate::report::{Report, quantile, sorted};

pub const CLIENT: &str = "bench";
pub const ACCOUNTS: usize = 10_000;
pub const BATCH: usize = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// Random pairs among 10,000 accounts.
    Uniform,
    /// Every transfer debits one funding account.
    HotDebit,
    /// Every transfer credits one merchant account.
    HotCredit,
}

impl Shape {
    fn label(self) -> &'static str {
        match self {
            Self::Uniform => "uniform",
            Self::HotDebit => "hot debit (1 funding account)",
            Self::HotCredit => "hot credit (1 merchant account)",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// The processor: one transaction per batch of 10.
    Batch,
    /// The baseline: one transaction per message, row by row.
    Naive,
}

pub struct Outcome {
    pub waits: String,
    pub cpu_busy: f64,
    pub transfers: usize,
    pub elapsed: Duration,
    pub batch_ms: Vec<f64>,
    pub invariants_hold: bool,
    pub completed: i64,
}

impl Outcome {
    pub fn per_second(&self) -> f64 {
        self.transfers as f64 / self.elapsed.as_secs_f64()
    }
}

pub fn account(i: usize) -> String {
    format!("acct-{i:05}")
}

/// Transfers for a scenario, deterministic per seed.
pub fn transfers(shape: Shape, n: usize, seed: u64) -> Vec<TransferMessage> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let a = rng.random_range(0..ACCOUNTS);
            let b = (a + rng.random_range(1..ACCOUNTS)) % ACCOUNTS;
            let (src, dst) = match shape {
                Shape::Uniform => (account(a), account(b)),
                Shape::HotDebit => ("funding".to_string(), account(a)),
                Shape::HotCredit => (account(a), "merchant".to_string()),
            };
            let cents: i64 = rng.random_range(1..10_000);
            let transfer = TransferDraft {
                source_account_id: src,
                destination_account_id: dst,
                amount: Decimal::new(cents, 2),
                currency: shared::money::Currency::parse("USD").expect("USD"),
                reference: Some(format!("bench-{seed}-{i}")),
                description: None,
                metadata: None,
            }
            .validate(Decimal::from(1_000_000))
            .expect("a valid transfer");
            let key = IdempotencyKey::parse(&format!("bench-{seed}-{i}"), "k").expect("valid key");
            TransferMessage::new(CLIENT, &key, transfer)
        })
        .collect()
}

/// The event the event source mapping would deliver for these messages.
pub fn sqs_event(batch: &[TransferMessage], first_seq: usize) -> SqsEvent {
    let messages = batch
        .iter()
        .enumerate()
        .map(|(i, m)| shared::queue::ReceivedMessage {
            message_id: Some(uuid::Uuid::now_v7().to_string()),
            receipt_handle: Some(format!("bench-rh-{}", first_seq + i)),
            body: Some(serde_json::to_string(m).expect("serializable")),
            attributes: [
                ("MessageGroupId", m.group_id()),
                ("MessageDeduplicationId", m.deduplication_id()),
                ("ApproximateReceiveCount", "1".to_string()),
                (
                    "SequenceNumber",
                    (18_000_000_000_000_000_000u128 + (first_seq + i) as u128).to_string(),
                ),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            ..Default::default()
        })
        .collect();
    devstack::poller::to_sqs_event(
        messages,
        "arn:aws:sqs:us-east-1:123456789012:bench-transfers.fifo",
    )
}

/// A fresh, migrated `ledger_bench` database with 10,000 accounts plus `funding` and `merchant`.
pub async fn fresh_database() -> anyhow::Result<String> {
    let admin = testkit::admin_database_url();
    let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls).await?;
    let task = tokio::spawn(conn);
    client
        .batch_execute("DROP DATABASE IF EXISTS ledger_bench WITH (FORCE)")
        .await?;
    client.batch_execute("CREATE DATABASE ledger_bench").await?;
    drop(client);
    let _ = task.await;
    let url = testkit::with_database(&admin, "ledger_bench");
    let pool = store::pool(&url, 1)?;
    store::migrate(&pool).await?;
    pool.get()
        .await?
        .batch_execute(&format!(
            "INSERT INTO accounts (id, client_id, currency, overdraft_limit)
               SELECT 'acct-' || lpad(g::text, 5, '0'), '{CLIENT}', 'USD', 1000000 FROM generate_series(0, {}) g;
             INSERT INTO accounts (id, client_id, currency, overdraft_limit) VALUES
               ('funding', '{CLIENT}', 'USD', NULL), ('merchant', '{CLIENT}', 'USD', 0);
             INSERT INTO account_balances (account_id) SELECT id FROM accounts;",
            ACCOUNTS - 1
        ))
        .await
        .context("creating bench accounts")?;
    pool.get().await?.batch_execute("VACUUM ANALYZE").await?;
    Ok(url)
}

/// A ledger in use, not a brand-new one: 5,000 earlier transfers through the processor, then
/// ANALYZE, so the planner knows the tables' sizes (a freshly created, empty table makes it pick
/// sequential scans that stay cached in prepared statements until autovacuum analyzes the table).
pub async fn warm_up(url: &str, seed: u64) -> anyhow::Result<()> {
    let clients = worker_clients(url).await?;
    for (i, batch) in transfers(Shape::Uniform, 5_000, seed + 1_000_000)
        .chunks(BATCH)
        .enumerate()
    {
        let response = processor::handle_batch(&clients, sqs_event(batch, i * BATCH)).await;
        anyhow::ensure!(
            response.batch_item_failures.is_empty(),
            "warm-up batch failed"
        );
    }
    clients
        .db
        .get()
        .await?
        .batch_execute("VACUUM ANALYZE")
        .await?;
    Ok(())
}

pub async fn worker_clients(database_url: &str) -> anyhow::Result<Clients> {
    let config = Config::from_lookup(|k| match k {
        "DATABASE_URL" => Some(database_url.to_string()),
        "DATABASE_POOL_SIZE" => Some("1".into()),
        "REDIS_URL" => {
            Some(std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()))
        }
        "REDIS_KEY_PREFIX" => Some("bench".into()),
        "SQS_QUEUE_URL" => Some("http://127.0.0.1:4566/123456789012/unused.fifo".into()),
        _ => None,
    })?;
    let sqs = shared::queue::local_client(&testkit::sqs_endpoint()).await;
    Clients::build_with(config, Authenticator::default(), sqs)
}

/// Runs one scenario on a fresh database and checks the ledger invariants afterwards.
pub async fn scenario(
    shape: Shape,
    engine: Engine,
    concurrency: usize,
    n: usize,
    seed: u64,
) -> anyhow::Result<Outcome> {
    let url = fresh_database().await?;
    warm_up(&url, seed).await?;
    let batches: VecDeque<Vec<TransferMessage>> = transfers(shape, n, seed)
        .chunks(BATCH)
        .map(<[_]>::to_vec)
        .collect();
    let queue = Arc::new(Mutex::new(batches));
    let mut workers = Vec::new();
    for w in 0..concurrency {
        let queue = queue.clone();
        let url = url.clone();
        // Connect before the clock starts, as a warm Lambda container would be.
        let clients = worker_clients(&url).await?;
        let mut naive_conn = match engine {
            Engine::Naive => Some(naive::connect(&url).await?),
            Engine::Batch => {
                store::ping(&clients.db).await?;
                clients.cache.ping().await?;
                None
            }
        };
        workers.push(async move {
            let mut latencies = Vec::new();
            let mut seq = w * 1_000_000;
            loop {
                let Some(batch) = queue.lock().expect("queue lock").pop_front() else {
                    break;
                };
                let started = Instant::now();
                match &mut naive_conn {
                    Some(conn) => {
                        for m in &batch {
                            naive::post(conn, m).await?;
                        }
                    }
                    None => {
                        let response =
                            processor::handle_batch(&clients, sqs_event(&batch, seq)).await;
                        anyhow::ensure!(
                            response.batch_item_failures.is_empty(),
                            "batch reported {} failures",
                            response.batch_item_failures.len()
                        );
                    }
                }
                latencies.push(started.elapsed().as_secs_f64() * 1000.0);
                seq += batch.len();
            }
            anyhow::Ok(latencies)
        });
    }
    let sampler = WaitSampler::start(&url, "ledger_bench").await?;
    let cpu_before = evidence::cpu_times();
    let started = Instant::now();
    let results = join_spawned(workers).await;
    let elapsed = started.elapsed();
    let cpu_busy = evidence::busy_percent(cpu_before, evidence::cpu_times());
    let waits = sampler.finish().await?;
    let mut batch_ms = Vec::new();
    for r in results {
        batch_ms.extend(r?);
    }
    let pool = store::pool(&url, 1)?;
    let report = invariants::check(&pool).await?;
    let completed: i64 = pool
        .get()
        .await?
        .query_one(
            "SELECT count(*) FROM transactions WHERE status = 'COMPLETED' AND idempotency_key LIKE $1",
            &[&format!("bench-{seed}-%")],
        )
        .await?
        .get(0);
    Ok(Outcome {
        waits,
        cpu_busy,
        transfers: n,
        elapsed,
        batch_ms: sorted(batch_ms),
        invariants_hold: report.holds(),
        completed,
    })
}

pub async fn join_spawned<F>(futures: Vec<F>) -> Vec<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("worker panicked"));
    }
    out
}

pub async fn run(report: &mut Report, scale: f64) -> anyhow::Result<()> {
    let n = |base: usize| ((base as f64 * scale) as usize).max(BATCH);
    let plan: Vec<(Shape, Engine, usize, usize)> = vec![
        (Shape::Uniform, Engine::Batch, 1, n(10_000)),
        (Shape::Uniform, Engine::Batch, 2, n(20_000)),
        (Shape::Uniform, Engine::Batch, 4, n(30_000)),
        (Shape::Uniform, Engine::Naive, 4, n(10_000)),
        (Shape::HotDebit, Engine::Batch, 4, n(20_000)),
        (Shape::HotDebit, Engine::Naive, 4, n(5_000)),
        (Shape::HotCredit, Engine::Batch, 4, n(20_000)),
        (Shape::HotCredit, Engine::Naive, 4, n(5_000)),
    ];
    let mut rows = Vec::new();
    for (i, (shape, engine, concurrency, count)) in plan.into_iter().enumerate() {
        eprintln!(
            "bench posting: {} / {:?} / {concurrency} concurrent / {count} transfers",
            shape.label(),
            engine
        );
        let o = scenario(shape, engine, concurrency, count, 1000 + i as u64).await?;
        rows.push((shape, engine, concurrency, o));
    }
    let baseline = |shape: Shape| {
        rows.iter()
            .find(|(s, e, c, _)| *s == shape && *e == Engine::Naive && *c == 4)
            .map(|(_, _, _, o)| o.per_second())
    };
    let section = report.section(
        "posting (processor handler, SqsEvent batches of 10, PostgreSQL with fsync + synchronous_commit on)",
        &["scenario", "engine", "invocations", "transfers", "seconds", "transfers/s", "vs naive", "batch p50 ms", "batch p99 ms", "posted", "invariants", "CPU busy", "PostgreSQL waits (sampled)"],
    );
    for (shape, engine, concurrency, o) in &rows {
        let ratio = match (engine, baseline(*shape)) {
            (Engine::Batch, Some(b)) => format!("{:.1}x", o.per_second() / b),
            _ => "-".into(),
        };
        section.row(vec![
            shape.label().into(),
            match engine {
                Engine::Batch => "batch".into(),
                Engine::Naive => "naive (1 tx/message)".into(),
            },
            concurrency.to_string(),
            o.transfers.to_string(),
            format!("{:.2}", o.elapsed.as_secs_f64()),
            format!("{:.0}", o.per_second()),
            ratio,
            format!("{:.2}", quantile(&o.batch_ms, 0.5)),
            format!("{:.2}", quantile(&o.batch_ms, 0.99)),
            o.completed.to_string(),
            if o.invariants_hold {
                "hold".into()
            } else {
                "BROKEN".into()
            },
            format!("{:.0}%", o.cpu_busy),
            o.waits.clone(),
        ]);
    }
    section.note("CPU busy = both cores, bench process and PostgreSQL together; waits = pg_stat_activity of the active backends every 5 ms (CPU = running, no wait event)");
    section.note("naive = the same transfers, one database transaction per message with row-by-row statements (its 'batch' latency is 10 messages in a row)");
    section.note(
        "each invocation has its own connection; the database is recreated for every scenario",
    );
    Ok(())
}
