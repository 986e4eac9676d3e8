//! Reconciliation at scale: 1,000,000 statement lines against 1,000,000 ledger transfers on one
//! account and one window, end to end (read both sides from PostgreSQL, match, store the run with
//! its matches and discrepancies), against a naive baseline measured in the same run: one query per
//! ledger transfer looking for its statement line, on a sample, scaled up.

use std::pin::pin;
use std::time::Instant;

use anyhow::Context;
use chrono::{Days, NaiveDate, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use shared::config::ReconcileConfig;
use shared::reconcile::report::{AccountWindow, RunTrigger};
use shared::services::reconciliation as run;
use shared::store;
use shared::testkit;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use uuid::Uuid;

use crate::report::Report;

const DAYS: u32 = 30;
const CLIENT: &str = "bench";

struct Transfer {
    id: Uuid,
    amount: Decimal,
    day: u32,
    micros: i64,
    reference: Option<String>,
}

struct Line {
    external_id: String,
    day: u32,
    amount: Decimal,
    reference: Option<String>,
}

fn start_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 1, 1).expect("valid date")
}

fn date(day: u32) -> NaiveDate {
    start_date()
        .checked_add_days(Days::new(day.into()))
        .expect("in range")
}

/// Transfers into the bank account, and the bank's statement: one line per transfer, booked up to
/// two days off, with a few planted problems (0.1% each: a line missing, an extra line, an amount
/// off by a cent, a duplicated line).
fn generate(n: usize) -> (Vec<Transfer>, Vec<Line>, usize) {
    let mut rng = StdRng::seed_from_u64(7);
    let mut transfers = Vec::with_capacity(n);
    let mut lines = Vec::with_capacity(n + n / 500);
    let mut planted = 0;
    for i in 0..n {
        let day = (i as u64 * DAYS as u64 / n as u64) as u32;
        let amount = Decimal::new(rng.random_range(100..5_000_000), 2);
        let reference = (i % 3 == 0).then(|| format!("INV-{i}"));
        let micros = Utc
            .from_utc_datetime(&date(day).and_hms_opt(0, 0, 0).expect("midnight"))
            .timestamp_micros()
            + rng.random_range(0..86_400_000_000i64);
        transfers.push(Transfer {
            id: Uuid::now_v7(),
            amount,
            day,
            micros,
            reference: reference.clone(),
        });
        let shift: i64 = rng.random_range(-2..=2);
        let line_day = (day as i64 + shift).clamp(0, DAYS as i64 - 1) as u32;
        match i % 1000 {
            1 => planted += 1, // missing from the statement
            2 => {
                // Off by a cent: an AMOUNT_MISMATCH under its reference; without one, the line and
                // the transfer no longer pair: one MISSING_IN_LEDGER and one MISSING_IN_STATEMENT.
                planted += if reference.is_some() { 1 } else { 2 };
                lines.push(Line {
                    external_id: format!("L{i}"),
                    day: line_day,
                    amount: amount + Decimal::new(1, 2),
                    reference,
                });
            }
            3 => {
                planted += 1; // the bank listed it twice
                lines.push(Line {
                    external_id: format!("L{i}"),
                    day: line_day,
                    amount,
                    reference: reference.clone(),
                });
                lines.push(Line {
                    external_id: format!("L{i}-dup"),
                    day: line_day,
                    amount,
                    reference,
                });
            }
            _ => lines.push(Line {
                external_id: format!("L{i}"),
                day: line_day,
                amount,
                reference,
            }),
        }
        if i % 1000 == 4 {
            planted += 1; // a bank movement the ledger lacks
            lines.push(Line {
                external_id: format!("X{i}"),
                day: line_day,
                amount: Decimal::new(rng.random_range(100..5_000_000), 2)
                    + Decimal::new(1, 3) * Decimal::ZERO,
                reference: None,
            });
        }
    }
    (transfers, lines, planted)
}

async fn fresh_database(name: &str) -> anyhow::Result<String> {
    let admin = testkit::admin_database_url();
    let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls).await?;
    let task = tokio::spawn(conn);
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await?;
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await?;
    drop(client);
    let _ = task.await;
    Ok(testkit::with_database(&admin, name))
}

async fn copy_in(
    client: &tokio_postgres::Client,
    sql: &str,
    types: &[Type],
    rows: impl Iterator<Item = Vec<Box<dyn ToSql + Sync + Send>>>,
) -> anyhow::Result<()> {
    let sink = client.copy_in(sql).await?;
    let writer = BinaryCopyInWriter::new(sink, types);
    let mut writer = pin!(writer);
    for row in rows {
        let refs: Vec<&(dyn ToSql + Sync)> = row
            .iter()
            .map(|b| b.as_ref() as &(dyn ToSql + Sync))
            .collect();
        writer.as_mut().write(&refs).await?;
    }
    writer.finish().await?;
    Ok(())
}

/// Loads the generated ledger and statement with COPY (not timed).
async fn load(url: &str, transfers: &[Transfer], lines: &[Line]) -> anyhow::Result<()> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    client
        .batch_execute(&format!(
            "INSERT INTO accounts (id, client_id, currency, overdraft_limit) VALUES
               ('bank', '{CLIENT}', 'USD', NULL), ('world', '{CLIENT}', 'USD', NULL);
             INSERT INTO account_balances (account_id) VALUES ('bank'), ('world');"
        ))
        .await?;
    let ts = |micros: i64| Utc.timestamp_micros(micros).single().expect("valid time");
    copy_in(
        &client,
        "COPY transactions (id, client_id, idempotency_key, request_hash, source_account_id,
             destination_account_id, amount, currency, reference, status, accepted_at, posted_at)
         FROM STDIN (FORMAT binary)",
        &[
            Type::UUID,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::NUMERIC,
            Type::BPCHAR,
            Type::TEXT,
            Type::TEXT,
            Type::TIMESTAMPTZ,
            Type::TIMESTAMPTZ,
        ],
        transfers
            .iter()
            .enumerate()
            .map(|(i, t)| -> Vec<Box<dyn ToSql + Sync + Send>> {
                vec![
                    Box::new(t.id),
                    Box::new(CLIENT),
                    Box::new(format!("k{i}")),
                    Box::new("-"),
                    Box::new("world"),
                    Box::new("bank"),
                    Box::new(t.amount),
                    Box::new("USD"),
                    Box::new(t.reference.clone()),
                    Box::new("COMPLETED"),
                    Box::new(ts(t.micros)),
                    Box::new(ts(t.micros)),
                ]
            }),
    )
    .await
    .context("loading transactions")?;
    // Entries in posting order, with running balances for both accounts.
    let mut order: Vec<&Transfer> = transfers.iter().collect();
    order.sort_by_key(|t| t.micros);
    let (mut bank, mut world) = (Decimal::ZERO, Decimal::ZERO);
    let mut entries: Vec<(Uuid, &str, Decimal, Decimal, i64)> = Vec::with_capacity(order.len() * 2);
    for t in order {
        world -= t.amount;
        bank += t.amount;
        entries.push((t.id, "world", -t.amount, world, t.micros));
        entries.push((t.id, "bank", t.amount, bank, t.micros));
    }
    copy_in(
        &client,
        "COPY ledger_entries (transaction_id, account_id, amount, currency, balance_after, posted_at,
             effective_at)
         FROM STDIN (FORMAT binary)",
        &[Type::UUID, Type::TEXT, Type::NUMERIC, Type::BPCHAR, Type::NUMERIC, Type::TIMESTAMPTZ, Type::TIMESTAMPTZ],
        entries.into_iter().map(|(tx, account, amount, after, micros)| -> Vec<Box<dyn ToSql + Sync + Send>> {
            vec![Box::new(tx), Box::new(account), Box::new(amount), Box::new("USD"), Box::new(after), Box::new(ts(micros)), Box::new(ts(micros))]
        }),
    )
    .await
    .context("loading entries")?;
    client
        .execute(
            "UPDATE account_balances SET balance = CASE account_id WHEN 'bank' THEN $1::numeric ELSE $2::numeric END",
            &[&bank, &world],
        )
        .await?;
    let statement_id: i64 = client
        .query_one(
            &format!(
                "INSERT INTO statements (client_id, account_id, format, content_sha256, lines_imported, lines_duplicate, lines_rejected)
                 VALUES ('{CLIENT}', 'bank', 'csv', 'bench', {}, 0, 0) RETURNING id",
                lines.len()
            ),
            &[],
        )
        .await?
        .get(0);
    copy_in(
        &client,
        "COPY statement_lines (statement_id, account_id, external_id, booked_on, amount, currency, reference)
         FROM STDIN (FORMAT binary)",
        &[Type::INT8, Type::TEXT, Type::TEXT, Type::DATE, Type::NUMERIC, Type::BPCHAR, Type::TEXT],
        lines.iter().map(|l| -> Vec<Box<dyn ToSql + Sync + Send>> {
            vec![
                Box::new(statement_id),
                Box::new("bank"),
                Box::new(l.external_id.clone()),
                Box::new(date(l.day)),
                Box::new(l.amount),
                Box::new("USD"),
                Box::new(l.reference.clone()),
            ]
        }),
    )
    .await
    .context("loading statement lines")?;
    client.batch_execute("VACUUM ANALYZE").await?;
    Ok(())
}

/// The straightforward way: for each ledger transfer, ask the database for its statement line (by
/// reference, else by amount within the date drift), one query per transfer.
async fn naive_sample(url: &str, transfers: &[Transfer], sample: usize) -> anyhow::Result<f64> {
    let pool = store::pool(url, 1)?;
    let conn = pool.get().await?;
    // The indexes such an implementation would add for its lookups (created after our run).
    conn.batch_execute(
        "CREATE INDEX IF NOT EXISTS naive_reference ON statement_lines (account_id, reference);
         CREATE INDEX IF NOT EXISTS naive_amount ON statement_lines (account_id, amount, booked_on);
         ANALYZE statement_lines;",
    )
    .await?;
    let by_ref = conn
        .prepare("SELECT id FROM statement_lines WHERE account_id = 'bank' AND reference = $1 AND amount = $2 LIMIT 1")
        .await?;
    let by_amount = conn
        .prepare(
            "SELECT id FROM statement_lines WHERE account_id = 'bank' AND amount = $1
               AND booked_on BETWEEN $2 AND $3 ORDER BY abs(booked_on - $4) LIMIT 1",
        )
        .await?;
    let step = (transfers.len() / sample).max(1);
    let started = Instant::now();
    let mut done = 0;
    for t in transfers.iter().step_by(step).take(sample) {
        let d = date(t.day);
        let found = match &t.reference {
            Some(r) => conn.query_opt(&by_ref, &[r, &t.amount]).await?,
            None => None,
        };
        if found.is_none() {
            let (from, to) = (d - Days::new(2), d + Days::new(2));
            conn.query_opt(&by_amount, &[&t.amount, &from, &to, &d])
                .await?;
        }
        done += 1;
    }
    Ok(started.elapsed().as_secs_f64() / done as f64)
}

pub async fn run(report: &mut Report, scale: f64) -> anyhow::Result<()> {
    let n = ((1_000_000.0 * scale) as usize).max(1000);
    eprintln!("bench reconcile: generating {n} transfers and their statement");
    let (transfers, lines, planted) = generate(n);
    let url = fresh_database("ledger_bench_recon").await?;
    let pool = store::pool(&url, 2)?;
    store::migrate(&pool).await?;
    let loading = Instant::now();
    load(&url, &transfers, &lines).await?;
    eprintln!(
        "bench reconcile: loaded in {:.1} s; reconciling",
        loading.elapsed().as_secs_f64()
    );

    let settings = ReconcileConfig::default();
    let window = AccountWindow {
        client_id: CLIENT.into(),
        account_id: "bank".into(),
        start: start_date(),
        end: date(DAYS - 1),
        as_of: date(DAYS + 10),
        trigger: RunTrigger::Api,
    };
    let started = Instant::now();
    let result = run::reconcile_account(&pool, &settings, &window).await?;
    let ours = started.elapsed().as_secs_f64();

    let sample = 2000.min(n);
    eprintln!("bench reconcile: naive baseline on {sample} transfers");
    let per_transfer = naive_sample(&url, &transfers, sample).await?;
    let naive = per_transfer * n as f64;

    let discrepancies: usize = result.findings_by_kind.values().sum();
    let section = report.section(
        &format!("reconciliation: {} statement lines vs {n} ledger transfers, one account, {DAYS}-day window", lines.len()),
        &["measure", "value"],
    );
    let steps: Vec<String> = result
        .timings_ms
        .iter()
        .map(|(k, v)| format!("{k} {:.0} ms", v))
        .collect();
    for (k, v) in [
        ("end to end (read, match, store)", format!("{ours:.2} s")),
        (
            "statement lines / s",
            format!("{:.0}", lines.len() as f64 / ours),
        ),
        ("steps", steps.join(", ")),
        ("matched lines", result.matched_lines.to_string()),
        (
            "discrepancies found / expected from the plants",
            format!("{discrepancies} / {planted}"),
        ),
        (
            "naive: one query per transfer",
            format!(
                "{:.3} ms per transfer on {sample} sampled -> {naive:.0} s for {n}",
                per_transfer * 1000.0
            ),
        ),
        ("naive / ours", format!("{:.0}x", naive / ours)),
    ] {
        section.row(vec![k.to_string(), v]);
    }
    section.note(
        "setup (generating and COPYing the ledger and the statement) is not timed; the naive baseline gets indexes on statement_lines (account_id, reference) and (account_id, amount, booked_on)",
    );
    section.note("planted: 0.1% each of lines missing, amounts off by a cent, duplicated lines, lines the ledger lacks");
    Ok(())
}
