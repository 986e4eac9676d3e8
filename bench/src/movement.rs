//! Money movement (issue 11), each against its baseline in the same run.
//!
//! Posting: what a multi-leg transaction (one payer, three payees), a hold and its capture, and a
//! full refund cost per money movement against a simple one-leg transfer. Same path as `bench
//! posting`: the real processor handler fed real-shaped SqsEvent batches of 10, 2 concurrent
//! invocations with a connection each, uniform random accounts among the 10,000 of a fresh bench
//! database warmed up with 5,000 transfers and 1,000 of each movement. Every scenario runs three
//! times, interleaved with the others; the fastest run is reported (all are shown, so the noise is
//! visible).
//!
//! Bulk intake: `POST /transactions/bulk` with 500 items a request against the same items sent one
//! by one to `POST /transactions`, through the API Router in-process with the real Redis,
//! PostgreSQL and a fresh moto queue for every 500 items in both modes. The time inside the SQS
//! calls (the `sqs.send` and `sqs.send_batch` spans) is shown apart from the rest: moto is far
//! slower than SQS.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_lambda_events::event::sqs::SqsEvent;
use axum::body::Body;
use chrono::{DateTime, Utc};
use http::{Request, StatusCode};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use shared::clients::Clients;
use shared::money::Currency;
use shared::store::{self, invariants};
use shared::testkit::{self, DEMO_TOKEN, TestEnv};
use shared::transfers::{IdempotencyKey, Operation, Transfer, TransferDraft, TransferMessage};
use tower::ServiceExt;

use crate::evidence::{self, WaitSampler};
use crate::intake::{reset_service_time, service_time_ms, time_service_spans};
use crate::posting::{
    ACCOUNTS, BATCH, CLIENT, Shape, account, fresh_database, join_spawned, sqs_event, transfers,
    warm_up, worker_clients,
};
use crate::report::{Report, quantile, sorted};

/// Concurrent processor invocations.
const INVOCATIONS: usize = 2;
/// Runs of every posting scenario (interleaved); the fastest is reported.
const ROUNDS: usize = 3;
/// Cost per money movement a scenario may have, relative to a simple transfer (issue 11).
const TARGET: f64 = 1.3;
/// Items in one bulk request (`BULK_MAX_ITEMS`' default).
const BULK_ITEMS: usize = 500;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Movement {
    Simple,
    MultiLeg,
    HoldCapture,
    Refund,
}

impl Movement {
    const ALL: [Self; 4] = [
        Self::Simple,
        Self::MultiLeg,
        Self::HoldCapture,
        Self::Refund,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Simple => "simple transfer (1 leg)",
            Self::MultiLeg => "multi-leg (1 payer, 3 payees)",
            Self::HoldCapture => "hold + capture (2 messages)",
            Self::Refund => "refund (full, remaining)",
        }
    }
}

/// The messages of one scenario: posted before the clock starts (a refund's originals), then on
/// the clock, phase after phase (every hold posted before the first capture).
struct Plan {
    movements: usize,
    setup: Vec<TransferMessage>,
    timed: Vec<(&'static str, Vec<TransferMessage>)>,
}

fn usd() -> Currency {
    Currency::parse("USD").expect("USD")
}

fn transfer(source: usize, destination: usize, cents: i64, reference: &str) -> Transfer {
    TransferDraft {
        source_account_id: account(source),
        destination_account_id: account(destination),
        amount: Decimal::new(cents, 2),
        currency: usd(),
        reference: Some(reference.to_string()),
        description: None,
        metadata: None,
    }
    .validate(Decimal::from(1_000_000))
    .expect("a valid transfer")
}

fn message(key: &str, transfer: Transfer) -> TransferMessage {
    let key = IdempotencyKey::parse(key, "k").expect("valid key");
    TransferMessage::new(CLIENT, &key, transfer)
}

/// `k` distinct accounts, uniformly.
fn distinct(rng: &mut StdRng, k: usize) -> Vec<usize> {
    let mut picked = Vec::with_capacity(k);
    while picked.len() < k {
        let a = rng.random_range(0..ACCOUNTS);
        if !picked.contains(&a) {
            picked.push(a);
        }
    }
    picked
}

/// A hold's expiry at the microsecond precision PostgreSQL keeps (as the API reads it).
fn expiry() -> DateTime<Utc> {
    let at = Utc::now() + chrono::Duration::days(1);
    DateTime::from_timestamp_micros(at.timestamp_micros()).expect("in range")
}

/// The scenario's messages, deterministic per seed (expiries aside).
fn plan(kind: Movement, n: usize, seed: u64) -> Plan {
    let mut rng = StdRng::seed_from_u64(seed);
    let key = |what: &str, i: usize| format!("mv-{seed}-{what}-{i}");
    match kind {
        // Exactly `bench posting`'s uniform transfers.
        Movement::Simple => Plan {
            movements: n,
            setup: Vec::new(),
            timed: vec![("transfers", transfers(Shape::Uniform, n, seed))],
        },
        // A card payment: 97% to the merchant, 2.5% fee, 0.5% tax.
        Movement::MultiLeg => {
            let messages = (0..n)
                .map(|i| {
                    let k = key("legs", i);
                    let [payer, merchant, fees, tax] = distinct(&mut rng, 4)[..] else {
                        unreachable!("four accounts")
                    };
                    let total: i64 = rng.random_range(1_000..100_000);
                    let fee = (total * 25 + 500) / 1_000;
                    let vat = ((total * 5 + 500) / 1_000).max(1);
                    let t = transfer(payer, merchant, total - fee - vat, &k).with_more_legs(vec![
                        transfer(payer, fees, fee, &k).first_leg(),
                        transfer(payer, tax, vat, &k).first_leg(),
                    ]);
                    message(&k, t)
                })
                .collect();
            Plan {
                movements: n,
                setup: Vec::new(),
                timed: vec![("3-leg transactions", messages)],
            }
        }
        // Holds captured in full: the capture names the hold's leg, its amount, `remaining`.
        Movement::HoldCapture => {
            let expires_at = expiry();
            let (holds, captures) = (0..n)
                .map(|i| {
                    let [payer, payee] = distinct(&mut rng, 2)[..] else {
                        unreachable!("two accounts")
                    };
                    let cents: i64 = rng.random_range(1..10_000);
                    let k = key("hold", i);
                    let hold = message(
                        &k,
                        transfer(payer, payee, cents, &k)
                            .with_operation(Operation::Hold { expires_at }),
                    );
                    let capture = message(
                        &key("capture", i),
                        transfer(payer, payee, cents, &k).with_operation(Operation::Capture {
                            hold_id: hold.transaction_id,
                            remaining: true,
                        }),
                    );
                    (hold, capture)
                })
                .unzip();
            Plan {
                movements: n,
                setup: Vec::new(),
                timed: vec![("holds", holds), ("captures", captures)],
            }
        }
        // Originals posted off the clock, then each refunded in full.
        Movement::Refund => {
            let (originals, refunds) = (0..n)
                .map(|i| {
                    let [payer, payee] = distinct(&mut rng, 2)[..] else {
                        unreachable!("two accounts")
                    };
                    let cents: i64 = rng.random_range(1..10_000);
                    let k = key("original", i);
                    let original = message(&k, transfer(payer, payee, cents, &k));
                    let refund = message(
                        &key("refund", i),
                        transfer(payee, payer, cents, &k).with_operation(Operation::Refund {
                            of: original.transaction_id,
                            of_legs: vec![0],
                            remaining: true,
                        }),
                    );
                    (original, refund)
                })
                .unzip();
            Plan {
                movements: n,
                setup: originals,
                timed: vec![("refunds", refunds)],
            }
        }
    }
}

/// How long one phase took and its batches' latencies.
struct Phase {
    label: &'static str,
    messages: usize,
    elapsed: Duration,
    batch_ms: Vec<f64>,
}

impl Phase {
    fn per_second(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64()
    }
}

struct Outcome {
    kind: Movement,
    movements: usize,
    phases: Vec<Phase>,
    elapsed: Duration,
    batch_ms: Vec<f64>,
    /// COMPLETED messages of the scenario (set-up included) and how many it sent.
    completed: i64,
    sent: usize,
    /// What the scenario's own tables say (holds captured, refunds in full).
    check: String,
    check_ok: bool,
    invariants_hold: bool,
    cpu_busy: f64,
    waits: String,
}

impl Outcome {
    fn per_second(&self) -> f64 {
        self.movements as f64 / self.elapsed.as_secs_f64()
    }

    fn messages(&self) -> usize {
        self.phases.iter().map(|p| p.messages).sum()
    }
}

/// Posts `messages` through the processor handler, batches of 10 shared among the invocations
/// (each with its own clients); returns the wall time and every batch's latency.
async fn post_phase(
    invocations: &[Clients],
    messages: &[TransferMessage],
    first_seq: usize,
) -> anyhow::Result<(Duration, Vec<f64>)> {
    // The events are built before the clock starts: only the handler is timed.
    let events: VecDeque<SqsEvent> = messages
        .chunks(BATCH)
        .enumerate()
        .map(|(i, batch)| sqs_event(batch, first_seq + i * BATCH))
        .collect();
    let queue = Arc::new(Mutex::new(events));
    let workers: Vec<_> = invocations
        .iter()
        .cloned()
        .map(|clients| {
            let queue = queue.clone();
            async move {
                let mut latencies = Vec::new();
                loop {
                    let Some(event) = queue.lock().expect("queue lock").pop_front() else {
                        break;
                    };
                    let started = Instant::now();
                    let response = processor::handle_batch(&clients, event).await;
                    anyhow::ensure!(
                        response.batch_item_failures.is_empty(),
                        "batch reported {} failures",
                        response.batch_item_failures.len()
                    );
                    latencies.push(started.elapsed().as_secs_f64() * 1000.0);
                }
                anyhow::Ok(latencies)
            }
        })
        .collect();
    let started = Instant::now();
    let results = join_spawned(workers).await;
    let elapsed = started.elapsed();
    let mut batch_ms = Vec::new();
    for r in results {
        batch_ms.extend(r?);
    }
    Ok((elapsed, batch_ms))
}

/// Movements of each kind in the warm-up.
const WARM_UP_MOVEMENTS: usize = 1_000;

/// A ledger in use by every kind of movement: `bench posting`'s warm-up (5,000 transfers), then
/// 1,000 multi-leg transactions, holds with their captures and originals with their refunds, then
/// ANALYZE. Analyzed while empty, the holds and refunds tables are scanned whole by every batch (a
/// capture's hold lookup, a refund's refunded-so-far sum), which grows with each row until
/// autovacuum analyzes them again.
async fn warm_up_movements(url: &str, seed: u64) -> anyhow::Result<()> {
    warm_up(url, seed).await?;
    let clients = worker_clients(url).await?;
    let kinds = [Movement::MultiLeg, Movement::HoldCapture, Movement::Refund];
    for (i, kind) in kinds.into_iter().enumerate() {
        let plan = plan(kind, WARM_UP_MOVEMENTS, seed + 1_000_000);
        let phases = std::iter::once(&plan.setup).chain(plan.timed.iter().map(|(_, m)| m));
        for (j, messages) in phases.enumerate() {
            let first_seq = 100_000_000 + (i * 10 + j) * 1_000_000;
            post_phase(std::slice::from_ref(&clients), messages, first_seq).await?;
        }
    }
    clients
        .db
        .get()
        .await?
        .batch_execute("VACUUM ANALYZE")
        .await?;
    Ok(())
}

/// One scenario on a fresh, warmed-up database, with the ledger invariants checked afterwards.
async fn scenario(kind: Movement, n: usize, seed: u64) -> anyhow::Result<Outcome> {
    let url = fresh_database().await?;
    warm_up_movements(&url, seed).await?;
    let plan = plan(kind, n, seed);
    let mut invocations = Vec::with_capacity(INVOCATIONS);
    for _ in 0..INVOCATIONS {
        // Connected before the clock starts, as a warm Lambda container would be.
        let clients = worker_clients(&url).await?;
        store::ping(&clients.db).await?;
        clients.cache.ping().await?;
        invocations.push(clients);
    }
    if !plan.setup.is_empty() {
        post_phase(&invocations, &plan.setup, 0).await?;
    }
    let sampler = WaitSampler::start(&url, "ledger_bench").await?;
    let cpu_before = evidence::cpu_times();
    let mut phases = Vec::new();
    for (i, (label, messages)) in plan.timed.iter().enumerate() {
        let (elapsed, batch_ms) = post_phase(&invocations, messages, (i + 1) * 10_000_000).await?;
        phases.push(Phase {
            label,
            messages: messages.len(),
            elapsed,
            batch_ms: sorted(batch_ms),
        });
    }
    let cpu_busy = evidence::busy_percent(cpu_before, evidence::cpu_times());
    let waits = sampler.finish().await?;
    drop(invocations);

    let pool = store::pool(&url, 1)?;
    let invariants_hold = invariants::check(&pool).await?.holds();
    let keys: Vec<&str> = plan
        .setup
        .iter()
        .chain(plan.timed.iter().flat_map(|(_, m)| m))
        .map(|m| m.idempotency_key.as_str())
        .collect();
    let timed: Vec<uuid::Uuid> = plan
        .timed
        .iter()
        .flat_map(|(_, m)| m)
        .map(|m| m.transaction_id)
        .collect();
    let conn = pool.get().await?;
    let completed: i64 = conn
        .query_one(
            "SELECT count(*) FROM transactions
             WHERE client_id = $1 AND idempotency_key = ANY($2) AND status = 'COMPLETED'",
            &[&CLIENT, &keys],
        )
        .await?
        .get(0);
    let (check, check_ok) = match kind {
        Movement::Simple | Movement::MultiLeg => {
            let entries: i64 = conn
                .query_one(
                    "SELECT count(*) FROM ledger_entries e JOIN transactions t ON t.id = e.transaction_id
                     WHERE t.client_id = $1 AND t.idempotency_key = ANY($2)",
                    &[&CLIENT, &keys],
                )
                .await?
                .get(0);
            let expected = n as i64 * if kind == Movement::MultiLeg { 6 } else { 2 };
            (format!("{entries} entries"), entries == expected)
        }
        Movement::HoldCapture => {
            let row = conn
                .query_one(
                    "SELECT count(*) FILTER (WHERE status = 'CAPTURED' AND captured = amount),
                            (SELECT coalesce(sum(pending), 0) FROM account_balances)
                     FROM holds WHERE id = ANY($1)",
                    &[&timed],
                )
                .await?;
            let (captured, pending): (i64, Decimal) = (row.get(0), row.get(1));
            (
                format!("{captured} holds captured, pending {pending}"),
                captured == n as i64 && pending.is_zero(),
            )
        }
        Movement::Refund => {
            let full: i64 = conn
                .query_one(
                    "SELECT count(*) FROM refunds r
                     JOIN ledger_entries c ON c.transaction_id = r.original_id
                      AND c.leg = r.original_leg AND c.amount > 0
                     WHERE r.refund_id = ANY($1) AND r.amount = c.amount",
                    &[&timed],
                )
                .await?
                .get(0);
            (format!("{full} refunded in full"), full == n as i64)
        }
    };
    let elapsed = phases.iter().map(|p| p.elapsed).sum();
    let batch_ms = sorted(phases.iter().flat_map(|p| p.batch_ms.clone()).collect());
    Ok(Outcome {
        kind,
        movements: plan.movements,
        sent: keys.len(),
        phases,
        elapsed,
        batch_ms,
        completed,
        check,
        check_ok,
        invariants_hold,
        cpu_busy,
        waits,
    })
}

pub async fn run(report: &mut Report, scale: f64) -> anyhow::Result<()> {
    posting(report, scale).await?;
    breakdown(report, scale).await?;
    bulk(report, scale).await
}

/// Nanoseconds a process (every thread of it) has spent on a CPU, from /proc/<pid>/task/*/schedstat.
fn cpu_ns(pid: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Where a batch's time goes, per kind of message: one invocation posting batches one after the
/// other on a warmed-up database, with the CPU time of its PostgreSQL backend and of this process
/// (the handler: parsing, deciding, encoding; and the driver) read from /proc around each kind.
async fn breakdown(report: &mut Report, scale: f64) -> anyhow::Result<()> {
    let n = ((2_000.0 * scale) as usize).max(BATCH);
    eprintln!("bench movement: where a batch's time goes, {n} messages of each kind, 1 invocation");
    let url = fresh_database().await?;
    let seed = 3_000;
    warm_up_movements(&url, seed).await?;
    let clients = worker_clients(&url).await?;
    let backend_pid = || async {
        let pid: i32 = clients
            .db
            .get()
            .await?
            .query_one("SELECT pg_backend_pid()", &[])
            .await?
            .get(0);
        anyhow::Ok(pid.to_string())
    };
    let backend = backend_pid().await?;
    let mut kinds: Vec<(&str, Vec<TransferMessage>)> = Vec::new();
    for kind in Movement::ALL {
        let plan = plan(kind, n, seed + 1);
        if !plan.setup.is_empty() {
            post_phase(std::slice::from_ref(&clients), &plan.setup, 0).await?;
        }
        for (label, messages) in plan.timed {
            kinds.push((label, messages));
        }
    }
    let mut rows = Vec::new();
    for (i, (label, messages)) in kinds.iter().enumerate() {
        let (pg_before, own_before) = (cpu_ns(&backend), cpu_ns("self"));
        let (elapsed, _) = post_phase(
            std::slice::from_ref(&clients),
            messages,
            (i + 1) * 10_000_000,
        )
        .await?;
        let (pg, own) = (
            cpu_ns(&backend) - pg_before,
            cpu_ns("self").saturating_sub(own_before),
        );
        let batches = messages.len().div_ceil(BATCH) as f64;
        let per_batch = |ns: f64| ns / 1e6 / batches;
        rows.push((
            *label,
            batches,
            per_batch(elapsed.as_nanos() as f64),
            per_batch(pg as f64),
            per_batch(own as f64),
        ));
    }
    anyhow::ensure!(
        backend_pid().await? == backend,
        "the worker's connection changed"
    );
    let section = report.section(
        "where a batch's time goes (1 invocation, batches of 10 one after the other, CPU from /proc)",
        &[
            "messages",
            "batches",
            "batch ms",
            "PostgreSQL backend CPU ms",
            "bench process CPU ms",
            "rest ms (commit fsync, round trips)",
            "vs transfers",
        ],
    );
    let base = rows[0].2;
    for (label, batches, wall, pg, own) in &rows {
        section.row(vec![
            label.to_string(),
            format!("{batches:.0}"),
            format!("{wall:.2}"),
            format!("{pg:.2}"),
            format!("{own:.2}"),
            format!("{:.2}", wall - pg - own),
            format!("{:.2}x", wall / base),
        ]);
    }
    section.note("per batch of 10 messages, means; bench process = the processor handler (parse, decide, encode) and the PostgreSQL driver, in this process; the rest is waiting: the commit's WAL fsync and the round trips");
    Ok(())
}

async fn posting(report: &mut Report, scale: f64) -> anyhow::Result<()> {
    let n = ((10_000.0 * scale) as usize).max(BATCH);
    let mut runs: Vec<Vec<Outcome>> = Movement::ALL.iter().map(|_| Vec::new()).collect();
    for round in 0..ROUNDS {
        for (j, kind) in Movement::ALL.into_iter().enumerate() {
            eprintln!(
                "bench movement: round {} / {} / {n} movements / {INVOCATIONS} invocations",
                round + 1,
                kind.label()
            );
            let seed = 2_000 + (round * 10 + j) as u64;
            runs[j].push(scenario(kind, n, seed).await?);
        }
    }
    let all_rates: Vec<String> = runs
        .iter()
        .map(|r| {
            r.iter()
                .map(|o| format!("{:.0}", o.per_second()))
                .collect::<Vec<_>>()
                .join(" / ")
        })
        .collect();
    let best: Vec<Outcome> = runs
        .into_iter()
        .map(|r| {
            r.into_iter()
                .max_by(|a, b| a.per_second().total_cmp(&b.per_second()))
                .expect("at least one round")
        })
        .collect();
    let simple = best[0].elapsed.as_secs_f64() / best[0].movements as f64;
    let section = report.section(
        "money movement posting (processor handler, SqsEvent batches of 10, 2 invocations, uniform among 10,000 accounts)",
        &[
            "movement",
            "movements",
            "messages",
            "seconds",
            "movements/s",
            "cost vs simple",
            "batch p50 ms",
            "batch p99 ms",
            "COMPLETED",
            "check",
            "invariants",
            "CPU busy",
            "PostgreSQL waits (sampled)",
            "movements/s by round",
        ],
    );
    for (o, rates) in best.iter().zip(&all_rates) {
        let cost = o.elapsed.as_secs_f64() / o.movements as f64 / simple;
        let verdict = match o.kind {
            Movement::Simple => "1.00x (baseline)".to_string(),
            _ if cost <= TARGET => format!("{cost:.2}x (<= {TARGET}x: met)"),
            _ => format!("{cost:.2}x (> {TARGET}x: MISSED)"),
        };
        section.row(vec![
            o.kind.label().into(),
            o.movements.to_string(),
            o.messages().to_string(),
            format!("{:.2}", o.elapsed.as_secs_f64()),
            format!("{:.0}", o.per_second()),
            verdict,
            format!("{:.2}", quantile(&o.batch_ms, 0.5)),
            format!("{:.2}", quantile(&o.batch_ms, 0.99)),
            format!("{}/{}", o.completed, o.sent),
            format!("{} ({})", o.check, if o.check_ok { "ok" } else { "WRONG" }),
            if o.invariants_hold {
                "hold".into()
            } else {
                "BROKEN".into()
            },
            format!("{:.0}%", o.cpu_busy),
            o.waits.clone(),
            rates.clone(),
        ]);
        if o.phases.len() > 1 {
            for p in &o.phases {
                section.row(vec![
                    format!("  of which {}", p.label),
                    "-".into(),
                    p.messages.to_string(),
                    format!("{:.2}", p.elapsed.as_secs_f64()),
                    format!("{:.0} msg/s", p.per_second()),
                    format!(
                        "{:.2}x",
                        p.elapsed.as_secs_f64() / o.movements as f64 / simple
                    ),
                    format!("{:.2}", quantile(&p.batch_ms, 0.5)),
                    format!("{:.2}", quantile(&p.batch_ms, 0.99)),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                ]);
            }
        }
    }
    section.note(format!(
        "cost vs simple = seconds per money movement / the simple transfer's, same run; target <= {TARGET}x (issue 11). A hold and its capture count as one movement (both messages timed: every hold posted, then every capture); a refund's original is posted before the clock starts"
    ));
    section.note(format!(
        "each scenario on a fresh database warmed up with 5,000 transfers and {WARM_UP_MOVEMENTS} of each movement (then ANALYZE: a ledger in use), run {ROUNDS} times interleaved with the others; the fastest run is shown (every run in the last column)"
    ));
    section.note("COMPLETED = the scenario's messages (a refund's originals included) the ledger holds as COMPLETED; check = entries written, holds CAPTURED with nothing pending, refunds equal to the refunded leg");
    section.note("CPU busy = both cores, bench process and PostgreSQL together; waits = pg_stat_activity of the active backends every 5 ms (CPU = running, no wait event)");
    Ok(())
}

/// One intake measurement: every request's latency and the time inside its SQS calls.
struct IntakeRun {
    label: &'static str,
    items: usize,
    request_ms: Vec<f64>,
    sqs_ms: Vec<f64>,
}

impl IntakeRun {
    fn seconds(&self) -> f64 {
        self.request_ms.iter().sum::<f64>() / 1000.0
    }

    fn sqs_seconds(&self) -> f64 {
        self.sqs_ms.iter().sum::<f64>() / 1000.0
    }

    fn rest_ms(&self) -> Vec<f64> {
        sorted(
            self.request_ms
                .iter()
                .zip(&self.sqs_ms)
                .map(|(t, s)| t - s)
                .collect(),
        )
    }
}

/// The bulk items, as `POST /transactions` bodies (a bulk request's items are the same objects).
fn intake_items(n: usize, seed: u64) -> Vec<Value> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let [a, b] = distinct(&mut rng, 2)[..] else {
                unreachable!("two accounts")
            };
            let cents: i64 = rng.random_range(1..10_000);
            let key = format!("bulk-{seed}-{i}");
            json!({
                "transaction": {"source_account_id": account(a), "destination_account_id": account(b),
                                "amount": Decimal::new(cents, 2).to_string(), "currency": "USD",
                                "reference": key},
                "idempotencyKey": key
            })
        })
        .collect()
}

/// Sends one request; returns its latency, the time inside its SQS spans, and its body.
async fn post(router: &axum::Router, uri: &str, body: String) -> anyhow::Result<(f64, f64, Value)> {
    let req = Request::builder()
        .method("POST")
        .uri(uri)
        .header("authorization", format!("Bearer {DEMO_TOKEN}"))
        .header("content-type", "application/json")
        .body(Body::from(body))?;
    reset_service_time();
    let started = Instant::now();
    let res = router.clone().oneshot(req).await?;
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX).await?;
    let elapsed = started.elapsed().as_secs_f64() * 1000.0;
    let (_, sqs) = service_time_ms();
    anyhow::ensure!(
        status == StatusCode::ACCEPTED,
        "{uri} answered {status}: {}",
        String::from_utf8_lossy(&bytes)
    );
    Ok((elapsed, sqs, serde_json::from_slice(&bytes)?))
}

/// An SQS client for moto with the adapter's timeouts raised: moto's every send scans every message
/// its queue holds, several times, so its sends slow down with each message queued, and a 500-item
/// bulk request's eight concurrent SendMessageBatch calls (each waiting for the others inside moto)
/// end past the adapter's 3 s attempt timeout, answered `outcome_unknown`.
async fn patient_sqs() -> aws_sdk_sqs::Client {
    let local = shared::queue::local_client(&testkit::sqs_endpoint()).await;
    let timeouts = aws_sdk_sqs::config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(SQS_TIMEOUT_SECS))
        .operation_timeout(Duration::from_secs(SQS_TIMEOUT_SECS))
        .build();
    aws_sdk_sqs::Client::from_conf(local.config().to_builder().timeout_config(timeouts).build())
}

const SQS_TIMEOUT_SECS: u64 = 120;

/// A new FIFO queue pair on moto.
async fn fresh_queue(sqs: &aws_sdk_sqs::Client) -> anyhow::Result<(String, String)> {
    let name = format!("bench-intake-{}", uuid::Uuid::now_v7().simple());
    Ok(shared::queue::ensure_fifo_queue(sqs, &name, 3, 30).await?)
}

async fn delete_queues(sqs: &aws_sdk_sqs::Client, urls: &[&str]) -> anyhow::Result<()> {
    for url in urls {
        sqs.delete_queue()
            .queue_url(*url)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("DeleteQueue: {e:?}"))?;
    }
    Ok(())
}

/// Drops a test environment's queues and database.
async fn discard(env: TestEnv, sqs: &aws_sdk_sqs::Client) -> anyhow::Result<()> {
    delete_queues(sqs, &[&env.queue_url, &env.dlq_url]).await?;
    let name = env.database_name.clone();
    drop(env);
    let (client, conn) =
        tokio_postgres::connect(&testkit::admin_database_url(), tokio_postgres::NoTls).await?;
    let task = tokio::spawn(conn);
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await
        .context("dropping the intake database")?;
    drop(client);
    let _ = task.await;
    Ok(())
}

/// Sends `items` in one mode: a fresh environment (database, Redis prefix), warmed up with 16
/// requests' worth of items of its own (connections opened, first-use costs paid), then for every
/// 500 items a fresh moto queue, so both modes send into the same queue lengths.
async fn intake_run(
    label: &'static str,
    bulk: bool,
    items: &[Value],
    sqs: &aws_sdk_sqs::Client,
) -> anyhow::Result<IntakeRun> {
    let env = TestEnv::new().await;
    let warm = intake_items(16, 7);
    let router = api::router(env.clients.clone());
    if bulk {
        let body = json!({ "items": warm }).to_string();
        post(&router, "/api/v1/transactions/bulk", body).await?;
    } else {
        for item in &warm {
            post(&router, "/api/v1/transactions", item.to_string()).await?;
        }
    }
    let mut run = IntakeRun {
        label,
        items: items.len(),
        request_ms: Vec::new(),
        sqs_ms: Vec::new(),
    };
    for segment in items.chunks(BULK_ITEMS) {
        let (url, dlq) = fresh_queue(sqs).await?;
        let mut clients = env.clients.clone();
        clients.queue = shared::queue::Queue::new(sqs.clone(), url.clone(), Some(dlq.clone()));
        let router = api::router(clients);
        if bulk {
            let body = json!({ "items": segment }).to_string();
            let (ms, sqs, answer) = post(&router, "/api/v1/transactions/bulk", body).await?;
            anyhow::ensure!(
                answer["accepted"].as_u64() == Some(segment.len() as u64),
                "bulk accepted {} of {}: {}",
                answer["accepted"],
                segment.len(),
                answer["results"]
                    .as_array()
                    .and_then(|r| r.iter().find(|x| x["status"] != "ACCEPTED"))
                    .unwrap_or(&Value::Null)
            );
            run.request_ms.push(ms);
            run.sqs_ms.push(sqs);
        } else {
            for item in segment {
                let (ms, sqs, _) = post(&router, "/api/v1/transactions", item.to_string()).await?;
                run.request_ms.push(ms);
                run.sqs_ms.push(sqs);
            }
        }
        delete_queues(sqs, &[&url, &dlq]).await?;
    }
    discard(env, sqs).await?;
    Ok(run)
}

async fn bulk(report: &mut Report, scale: f64) -> anyhow::Result<()> {
    time_service_spans();
    let requests = ((3.0 * scale).round() as usize).max(1);
    let items = intake_items(requests * BULK_ITEMS, 11);
    eprintln!(
        "bench movement: bulk intake, {requests} requests of {BULK_ITEMS} items, then the same {} items one by one (moto: slow)",
        items.len()
    );
    let sqs = patient_sqs().await;
    let bulk = intake_run("bulk (POST /transactions/bulk)", true, &items, &sqs).await?;
    let single = intake_run("one by one (POST /transactions)", false, &items, &sqs).await?;

    let section = report.section(
        "bulk intake (in-process Router: Redis reservation, PostgreSQL record, SQS send; 500-item requests vs the same items one by one)",
        &[
            "mode",
            "requests",
            "items",
            "seconds",
            "requests/s",
            "items/s",
            "request p50 ms",
            "request p99 ms",
            "SQS ms/request (mean)",
            "rest ms/request p50 / p99",
            "items/s without SQS",
            "vs one by one",
        ],
    );
    let own_rate = |r: &IntakeRun| r.items as f64 / (r.seconds() - r.sqs_seconds());
    let baseline = own_rate(&single);
    for r in [&bulk, &single] {
        let latency = sorted(r.request_ms.clone());
        let rest = r.rest_ms();
        section.row(vec![
            r.label.into(),
            r.request_ms.len().to_string(),
            r.items.to_string(),
            format!("{:.2}", r.seconds()),
            format!("{:.2}", r.request_ms.len() as f64 / r.seconds()),
            format!("{:.0}", r.items as f64 / r.seconds()),
            format!("{:.1}", quantile(&latency, 0.5)),
            format!("{:.1}", quantile(&latency, 0.99)),
            format!(
                "{:.1}",
                r.sqs_seconds() * 1000.0 / r.request_ms.len() as f64
            ),
            format!("{:.1} / {:.1}", quantile(&rest, 0.5), quantile(&rest, 0.99)),
            format!("{:.0}", own_rate(r)),
            format!("{:.1}x", own_rate(r) / baseline),
        ]);
    }
    section.note(format!(
        "sequential requests; each mode on a fresh database and Redis prefix, warmed up first, with a fresh moto queue for every {BULK_ITEMS} items (so both send into the same queue lengths); with {requests} bulk requests their p99 is their slowest"
    ));
    section.note("SQS = time inside the adapter's sqs.send (one SendMessage) and sqs.send_batch (a bulk call's SendMessageBatch calls, ten messages each, eight at a time) spans; rest = the request minus that: routing, auth, JSON, validation, Redis, the PostgreSQL intake record");
    section.note(format!(
        "moto's SQS is far slower than AWS's (every send scans its whole queue several times: tens to hundreds of ms a call, growing with the queue), so SQS time here is not representative of AWS and is shown apart; items/s without SQS compares the rest. The SQS client's timeouts are raised to {SQS_TIMEOUT_SECS} s here: with the adapter's 3 s, moto answers a 500-item request's last SendMessageBatch calls too late (outcome_unknown)"
    ));
    Ok(())
}
