//! Reconciliation against the real services: generated ledgers and statements with planted
//! discrepancies of every kind, re-runs, clearing, the scheduled run and the dead-letter queue.

use std::collections::BTreeSet;

use chrono::{Days, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use shared::reconcile::discrepancies::{DiscrepancyFilter, StoredDiscrepancy};
use shared::reconcile::report::{AccountWindow, RunTrigger};
use shared::reconcile::statements::{ParseOptions, StatementFormat};
use shared::reconcile::workflow::DiscrepancyStatus;
use shared::services::reconciliation as run;
use shared::services::statements as import;
use shared::store::discrepancies as store;
use shared::testkit::{DEMO_CLIENT, TestEnv};
use shared::transfers::{IdempotencyKey, TransferInput, TransferMessage};
use uuid::Uuid;

use crate::helpers::Stack;

pub fn today() -> NaiveDate {
    Utc::now().date_naive()
}

pub fn day(offset: i64) -> NaiveDate {
    if offset >= 0 {
        today().checked_add_days(Days::new(offset as u64)).unwrap()
    } else {
        today()
            .checked_sub_days(Days::new((-offset) as u64))
            .unwrap()
    }
}

pub fn transfer(
    key: &str,
    src: &str,
    dst: &str,
    amount: &str,
    reference: Option<&str>,
) -> TransferMessage {
    let input: TransferInput = serde_json::from_value(json!({
        "source_account_id": src, "destination_account_id": dst, "amount": amount, "currency": "USD",
        "reference": reference,
    }))
    .unwrap();
    let t = input.validate(None, Decimal::from(1_000_000_000)).unwrap();
    TransferMessage::new(DEMO_CLIENT, &IdempotencyKey::parse(key, "k").unwrap(), t)
}

/// Posts through the processor's handler, as the event source mapping would.
pub async fn post(env: &TestEnv, messages: &[TransferMessage]) {
    for chunk in messages.chunks(10) {
        let records: Vec<shared::queue::ReceivedMessage> = chunk
            .iter()
            .map(|m| shared::queue::ReceivedMessage {
                message_id: Some(Uuid::now_v7().to_string()),
                receipt_handle: Some("rh".into()),
                body: Some(serde_json::to_string(m).unwrap()),
                ..Default::default()
            })
            .collect();
        let event =
            devstack::poller::to_sqs_event(records, "arn:aws:sqs:us-east-1:123456789012:q.fifo");
        let response = processor::handle_batch(&env.clients, event).await;
        assert!(response.batch_item_failures.is_empty());
    }
}

/// Imports lines `(external id, booked, amount, currency, reference)` as a JSON statement.
pub async fn import_lines(
    env: &TestEnv,
    account: &str,
    lines: &[(String, NaiveDate, String, &str, Option<String>)],
) {
    let json: Vec<Value> = lines
        .iter()
        .map(|(id, booked, amount, currency, reference)| {
            json!({"id": id, "bookedDate": booked, "amount": amount, "currency": currency, "reference": reference})
        })
        .collect();
    let bytes = serde_json::to_vec(&json!({ "lines": json })).unwrap();
    let report = import::import_statement(
        &env.clients.db,
        DEMO_CLIENT,
        account,
        &bytes,
        StatementFormat::Json,
        &ParseOptions::default(),
        false,
    )
    .await
    .unwrap();
    assert_eq!(report.rejected, 0);
}

pub async fn open(s: &Stack, ids: &[&str]) {
    for id in ids {
        s.open(id, "unlimited").await;
    }
}

/// What a discrepancy is about, for comparing with what was planted. Of two identical lines either
/// may be the one reported as the duplicate, so a pair is named by both.
fn subject(d: &StoredDiscrepancy) -> (String, String) {
    if d.kind.as_str() == "DUPLICATE_IN_STATEMENT" {
        let line = d.external_id.clone().unwrap_or_default();
        return (d.kind.to_string(), pair(&line));
    }
    let about = match (&d.external_id, d.transaction_ids.first()) {
        (Some(line), _) => line.clone(),
        (None, Some(tx)) => tx.to_string(),
        (None, None) => d.account_id.clone().unwrap_or_default(),
    };
    (d.kind.to_string(), about)
}

fn pair(line: &str) -> String {
    let n = line.trim_start_matches(['D', 'L']);
    format!("L{n}|D{n}")
}

async fn open_discrepancies(env: &TestEnv) -> BTreeSet<(String, String)> {
    let filter = DiscrepancyFilter {
        status: Some(DiscrepancyStatus::Open),
        ..Default::default()
    };
    let (rows, _) = store::list_discrepancies(&env.clients.db, DEMO_CLIENT, &filter, 500, None)
        .await
        .unwrap();
    rows.iter().map(subject).collect()
}

#[tokio::test]
async fn planted_discrepancies_are_found_exactly_and_reruns_do_not_duplicate_them() {
    let s = Stack::start().await;
    open(&s, &["bank", "world", "suspense-demo"]).await;
    let env = &s.env;
    let mut ledger = Vec::new();
    let mut lines: Vec<(String, NaiveDate, String, &str, Option<String>)> = Vec::new();
    let mut planted: BTreeSet<(String, String)> = BTreeSet::new();
    let line =
        |id: &str, offset: i64, amount: &str, currency: &'static str, reference: Option<&str>| {
            (
                id.to_string(),
                day(offset),
                amount.to_string(),
                currency,
                reference.map(str::to_string),
            )
        };

    // 40 clean transfers into the bank account (every second one with a reference) and 10 out of
    // it, each with a line booked up to a day away.
    for i in 0..50 {
        let amount = format!("{}.{:02}", 100 + i * 7, (i * 13) % 100);
        let reference = (i % 2 == 0).then(|| format!("REF-{i}"));
        let (src, dst, signed) = if i < 40 {
            ("world", "bank", amount.clone())
        } else {
            ("bank", "world", format!("-{amount}"))
        };
        ledger.push(transfer(
            &format!("t{i}"),
            src,
            dst,
            &amount,
            reference.as_deref(),
        ));
        lines.push(line(
            &format!("L{i}"),
            [-1, 0, 1][i % 3],
            &signed,
            "USD",
            reference.as_deref(),
        ));
    }
    // Near-misses: two identical amounts the same day; a payout batch of three transfers that one
    // line sums; the same amount on adjacent days where only one transfer exists.
    ledger.push(transfer("same-1", "world", "bank", "77.77", None));
    ledger.push(transfer("same-2", "world", "bank", "77.77", None));
    lines.push(line("S1", 0, "77.77", "USD", None));
    lines.push(line("S2", 0, "77.77", "USD", None));
    for (k, a) in [("pb-1", "10.00"), ("pb-2", "20.00"), ("pb-3", "30.05")] {
        ledger.push(transfer(k, "bank", "world", a, Some("PAYOUT-7")));
    }
    lines.push(line("PB", 1, "-60.05", "USD", Some("PAYOUT-7")));
    ledger.push(transfer("adjacent", "world", "bank", "55.55", None));
    lines.push(line("A0", 0, "55.55", "USD", None));
    lines.push(line("A1", 1, "55.55", "USD", None));
    planted.insert(("MISSING_IN_LEDGER".into(), "A1".into()));

    // Plants: postings the bank never made, bank lines the ledger lacks, amounts and a currency
    // that disagree with the referenced transfer, duplicated lines.
    for i in 0..3 {
        ledger.push(transfer(
            &format!("unbooked-{i}"),
            "world",
            "bank",
            &format!("{}.11", 900 + i),
            None,
        ));
    }
    for (i, a) in ["12.34", "-8.00", "4321.00"].iter().enumerate() {
        lines.push(line(&format!("X{i}"), 0, a, "USD", None));
        planted.insert(("MISSING_IN_LEDGER".into(), format!("X{i}")));
    }
    ledger.push(transfer("fee-1", "world", "bank", "250.00", Some("INV-A")));
    lines.push(line("M1", 0, "249.00", "USD", Some("INV-A")));
    planted.insert(("AMOUNT_MISMATCH".into(), "M1".into()));
    ledger.push(transfer("fee-2", "bank", "world", "80.00", Some("INV-B")));
    lines.push(line("M2", 0, "-80.50", "USD", Some("INV-B")));
    planted.insert(("AMOUNT_MISMATCH".into(), "M2".into()));
    ledger.push(transfer("fx-1", "world", "bank", "300.00", Some("INV-C")));
    lines.push(line("C1", 0, "300.00", "EUR", Some("INV-C")));
    planted.insert(("CURRENCY_MISMATCH".into(), "C1".into()));
    lines.push(line(
        "D0",
        [-1, 0, 1][0],
        &lines[0].2.clone(),
        "USD",
        lines[0].4.as_deref(),
    ));
    planted.insert(("DUPLICATE_IN_STATEMENT".into(), pair("D0")));
    let l3 = lines[3].clone();
    lines.push(("D3".into(), l3.1, l3.2, l3.3, l3.4));
    planted.insert(("DUPLICATE_IN_STATEMENT".into(), pair("D3")));

    post(env, &ledger).await;
    for i in 0..3 {
        let key = format!("unbooked-{i}");
        let id = ledger
            .iter()
            .find(|m| m.idempotency_key == key)
            .unwrap()
            .transaction_id;
        planted.insert(("MISSING_IN_STATEMENT".into(), id.to_string()));
    }
    // The order lines arrive in must not matter.
    lines.reverse();
    import_lines(env, "bank", &lines).await;

    let settings = env.clients.config.reconcile.clone();
    let window = AccountWindow {
        client_id: DEMO_CLIENT.into(),
        account_id: "bank".into(),
        start: day(-1),
        end: day(1),
        as_of: day(10),
        trigger: RunTrigger::Api,
    };
    // Before the grace period ends, the unbooked postings are pending, not missing (a run on the
    // day after the window).
    let early = AccountWindow {
        as_of: day(1),
        ..window.clone()
    };
    let run = run::reconcile_account(&env.clients.db, &settings, &early)
        .await
        .unwrap();
    assert_eq!(run.report["counts"]["pendingLedgerItems"], 3);
    assert_eq!(
        run.report["discrepancies"].get("MISSING_IN_STATEMENT"),
        None
    );

    assert_eq!(run.stats.new, planted.len() - 3);
    let first = run::reconcile_account(&env.clients.db, &settings, &window)
        .await
        .unwrap();
    assert_eq!(
        open_discrepancies(env).await,
        planted,
        "exactly the planted discrepancies"
    );
    let report = &first.report;
    assert_eq!(report["counts"]["statementLines"], lines.len());
    assert_eq!(report["matchesByRule"]["BATCH"], 1);
    assert_eq!(
        report["discrepancies"]["AMOUNT_MISMATCH"]["totals"]["USD"],
        "-1.50"
    );
    assert_eq!(report["discrepancies"]["MISSING_IN_STATEMENT"]["count"], 3);
    assert_eq!(report["internalChecks"]["balanceDrift"], 0);
    assert_eq!(
        (first.stats.new, first.stats.seen_again),
        (3, planted.len() - 3)
    );

    // Running the same window again finds the same discrepancies, not new ones...
    let again = run::reconcile_account(&env.clients.db, &settings, &window)
        .await
        .unwrap();
    assert_eq!(
        (again.stats.new, again.stats.seen_again),
        (0, planted.len())
    );
    let total: i64 = env
        .clients
        .db
        .get()
        .await
        .unwrap()
        .query_one("SELECT count(*) FROM discrepancies", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(total as usize, planted.len());

    // ...and once the missing transfer is posted, the next run clears that discrepancy.
    post(env, &[transfer("late", "world", "bank", "12.34", None)]).await;
    let third = run::reconcile_account(&env.clients.db, &settings, &window)
        .await
        .unwrap();
    assert_eq!(third.stats.cleared, 1);
    let mut expected = planted.clone();
    expected.remove(&("MISSING_IN_LEDGER".into(), "X0".into()));
    assert_eq!(open_discrepancies(env).await, expected);
    let cleared = store::list_discrepancies(
        &env.clients.db,
        DEMO_CLIENT,
        &DiscrepancyFilter {
            status: Some(DiscrepancyStatus::Resolved),
            ..Default::default()
        },
        10,
        None,
    )
    .await
    .unwrap()
    .0;
    assert_eq!(cleared.len(), 1);
    assert_eq!(cleared[0].cleared_by_run, Some(third.run_id));
    s.env.assert_invariants().await;
}
