//! Money movement against the posting rules, over random sequences of multi-leg transfers, holds,
//! captures, voids and refunds split into batches: whatever the sequence, every batch's entries
//! sum to zero per currency, no account's available balance goes below its limit, pending never
//! goes negative and always equals what the active holds still reserve, no hold is captured
//! beyond its amount and no leg is refunded beyond its amount.

use std::collections::HashMap;

use chrono::{Duration, Utc};
use proptest::prelude::*;
use rust_decimal::Decimal;
use shared::accounts::OverdraftLimit;
use shared::events::EventType;
use shared::ledger::{
    Book, EventSubject, HoldStatus, LockedAccount, Outcome, RefundableLeg, plan_batch,
};
use shared::money::Currency;
use shared::monitors::{
    Condition, Monitor, MonitorField, MonitorState, MonitorStatus, initial_state,
};
use shared::transfers::{IdempotencyKey, Leg, Operation, TransferDraft, TransferMessage};
use uuid::Uuid;

const ACCOUNTS: [&str; 4] = ["a", "b", "c", "d"];

/// A leg as indexes into `ACCOUNTS` and an amount in cents.
type LegSpec = (usize, usize, i64);

#[derive(Clone, Debug)]
enum Step {
    Transfer(Vec<LegSpec>),
    Hold(usize, usize, i64, bool),
    Capture(usize, Option<i64>),
    Void(usize),
    Refund(usize, Option<i64>),
}

fn step() -> impl Strategy<Value = Step> {
    let leg = (0..4usize, 0..4usize, 1..5_000i64);
    prop_oneof![
        proptest::collection::vec(leg, 1..4).prop_map(Step::Transfer),
        (0..4usize, 0..4usize, 1..5_000i64, any::<bool>())
            .prop_map(|(s, d, a, e)| Step::Hold(s, d, a, e)),
        (0..8usize, proptest::option::of(1..5_000i64)).prop_map(|(h, a)| Step::Capture(h, a)),
        (0..8usize).prop_map(Step::Void),
        (0..8usize, proptest::option::of(1..5_000i64)).prop_map(|(t, a)| Step::Refund(t, a)),
    ]
}

fn id(i: usize) -> shared::accounts::AccountId {
    shared::accounts::AccountId::parse(ACCOUNTS[i], "a").unwrap()
}

fn money(cents: i64) -> Decimal {
    Decimal::new(cents, 2)
}

fn message(n: usize, first: LegSpec, more: Vec<Leg>, op: Operation) -> TransferMessage {
    let t = TransferDraft {
        source_account_id: ACCOUNTS[first.0].into(),
        destination_account_id: ACCOUNTS[first.1].into(),
        amount: money(first.2),
        currency: Currency::parse("USD").unwrap(),
        reference: None,
        description: None,
        metadata: None,
    }
    .validate(Decimal::from(1_000_000))
    .unwrap()
    .with_more_legs(more)
    .with_operation(op);
    TransferMessage::new(
        "c",
        &IdempotencyKey::parse(&format!("k{n}"), "k").unwrap(),
        t,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn movements_keep_the_books_whole(steps in proptest::collection::vec(step(), 1..40), batch in 1..10usize) {
        let now = Utc::now();
        let limit = |i: usize| if i == 0 { OverdraftLimit::Unlimited } else { OverdraftLimit::Limited(Decimal::from(10)) };
        let mut book = Book::of_accounts(
            (0..4).map(|i| (ACCOUNTS[i].to_string(), LockedAccount {
                owner_client_id: "c".into(),
                currency: "USD".into(),
                overdraft_limit: limit(i),
                balance: Decimal::ZERO,
                pending: Decimal::ZERO,
            })).collect::<HashMap<_, _>>(),
            now,
        );
        // A BELOW monitor (available < 0, no hysteresis) and a CROSSING one (posted around 5, band
        // 1) on every limited account: carried from batch to batch as the store would.
        for (i, account) in ACCOUNTS.iter().enumerate().take(4).skip(1) {
            let monitor = |n: u128, condition, field, threshold: Decimal, hysteresis| {
                let (state, _) = initial_state(condition, threshold, Decimal::ZERO);
                Monitor {
                    id: Uuid::from_u128(n), client_id: "c".into(), account_id: account.to_string(),
                    currency: "USD".into(), field, condition, threshold, hysteresis, description: None,
                    status: MonitorStatus::Active, state, value: Decimal::ZERO, evaluated_at: now,
                    triggered_count: 0, last_triggered_at: None, last_cleared_at: None, created_at: now,
                }
            };
            book.monitors.insert(account.to_string(), vec![
                monitor(i as u128 * 10, Condition::Below, MonitorField::Available, Decimal::ZERO, Decimal::ZERO),
                monitor(i as u128 * 10 + 1, Condition::Crossing, MonitorField::Posted, money(500), money(100)),
            ]);
        }
        let mut fired: HashMap<Uuid, Vec<EventType>> = HashMap::new();
        // What earlier batches placed and posted, for later steps to name.
        let mut holds: Vec<(Uuid, LegSpec)> = Vec::new();
        let mut posted: Vec<(Uuid, Vec<LegSpec>)> = Vec::new();
        let mut n = 0;
        for chunk in steps.chunks(batch) {
            let mut messages = Vec::new();
            let mut transfers = Vec::new();
            for s in chunk {
                n += 1;
                let m = match s.clone() {
                    Step::Transfer(legs) => {
                        let more = legs[1..].iter().map(|&(s, d, a)| Leg {
                            source_account_id: id(s), destination_account_id: id(d),
                            amount: money(a), currency: Currency::parse("USD").unwrap(),
                        }).collect();
                        let m = message(n, legs[0], more, Operation::Transfer);
                        transfers.push((m.transaction_id, legs));
                        m
                    }
                    Step::Hold(s, d, a, expired) => {
                        let expires_at = if expired { now - Duration::seconds(1) } else { now + Duration::hours(1) };
                        let m = message(n, (s, d, a), vec![], Operation::Hold { expires_at });
                        holds.push((m.transaction_id, (s, d, a)));
                        m
                    }
                    Step::Capture(h, amount) => {
                        let Some(&(hold_id, (s, d, a))) = holds.get(h) else { continue };
                        message(n, (s, d, amount.unwrap_or(a)), vec![], Operation::Capture { hold_id, remaining: amount.is_none() })
                    }
                    Step::Void(h) => {
                        let Some(&(hold_id, leg)) = holds.get(h) else { continue };
                        message(n, leg, vec![], Operation::Void { hold_id })
                    }
                    Step::Refund(t, amount) => {
                        let Some((of, legs)) = posted.get(t).cloned() else { continue };
                        let (s, d, a) = legs[0];
                        message(n, (d, s, amount.unwrap_or(a)), vec![], Operation::Refund { of, of_legs: vec![0], remaining: amount.is_none() })
                    }
                };
                messages.push(m);
            }
            let plan = plan_batch(&messages, book.clone(), Default::default());
            // Carry the plan into the book, as the store would write it.
            for b in &plan.balances {
                let a = book.accounts.get_mut(&b.account_id).unwrap();
                a.balance = b.balance;
                a.pending = b.pending;
                prop_assert!(b.pending >= Decimal::ZERO, "pending below zero");
                prop_assert!(a.overdraft_limit.allows(b.balance - b.pending), "available below the limit");
            }
            for h in &plan.new_holds {
                book.holds.insert(h.id, shared::ledger::HoldState {
                    client_id: h.client_id.clone(), source_account_id: h.source_account_id.clone(),
                    destination_account_id: h.destination_account_id.clone(), currency: h.currency.clone(),
                    amount: h.amount, captured: h.captured, status: h.status, expires_at: h.expires_at,
                });
            }
            for u in &plan.hold_updates {
                let h = book.holds.get_mut(&u.id).unwrap();
                prop_assert!(u.captured <= h.amount, "captured beyond the hold");
                h.captured = u.captured;
                h.status = u.status;
            }
            for r in &plan.refunds {
                let leg = book.refundable.get_mut(&(r.original_id, r.original_leg as u16)).unwrap();
                leg.refunded += r.amount;
                prop_assert!(leg.refunded <= leg.amount, "refunded beyond the leg");
            }
            for (m, o) in messages.iter().zip(&plan.outcomes) {
                if let (Outcome::Posted { .. }, Some((_, legs))) = (o, transfers.iter().find(|(id, _)| *id == m.transaction_id)) {
                    for (i, &(s, d, a)) in legs.iter().enumerate() {
                        book.refundable.insert((m.transaction_id, i as u16), RefundableLeg {
                            client_id: "c".into(), source_account_id: ACCOUNTS[s].into(),
                            amount: money(a), currency: "USD".into(), refunded: Decimal::ZERO,
                        });
                        let _ = d;
                    }
                    posted.push((m.transaction_id, legs.clone()));
                }
            }
            // Pending is exactly what the active holds still reserve (expired ones at the batch's
            // time were released by it).
            for (name, account) in &book.accounts {
                let held: Decimal = book.holds.values()
                    .filter(|h| &h.source_account_id == name && h.status == HoldStatus::Active)
                    .map(|h| h.amount - h.captured)
                    .sum();
                prop_assert_eq!(account.pending, held, "pending of {}", name);
            }
            let total: Decimal = book.accounts.values().map(|a| a.balance).sum();
            prop_assert_eq!(total, Decimal::ZERO);
            // One event per decided message, and monitors' events alternate (a BELOW monitor
            // never fires twice without clearing in between) and end in the state the final
            // balance puts them in.
            let decided = plan.outcomes.iter().filter(|o| !matches!(o, Outcome::AlreadyRecorded { .. })).count();
            let about_messages = plan.events.iter().filter(|e| !matches!(e.subject, EventSubject::Monitor(_)) && e.event_type != EventType::HoldExpired).count();
            prop_assert_eq!(about_messages, decided);
            for e in &plan.events {
                if let EventSubject::Monitor(m) = &e.subject {
                    fired.entry(m.id).or_default().push(e.event_type);
                }
            }
            for m in &plan.monitor_updates {
                let list = book.monitors.get_mut(&m.account_id).unwrap();
                *list.iter_mut().find(|x| x.id == m.id).unwrap() = m.clone();
            }
            for (name, monitors) in &book.monitors {
                let a = &book.accounts[name];
                for m in monitors {
                    let value = m.watched(a.balance, a.pending);
                    match m.condition {
                        Condition::Below => prop_assert_eq!(m.state == MonitorState::Triggered, value < Decimal::ZERO),
                        _ => prop_assert!(
                            (value < money(400) && m.state == MonitorState::Below)
                                || (value >= money(600) && m.state == MonitorState::Above)
                                || (value >= money(400) && value < money(600)),
                            "crossing monitor on the wrong side"),
                    }
                    let events = fired.get(&m.id).map(Vec::as_slice).unwrap_or(&[]);
                    if m.condition == Condition::Below {
                        prop_assert!(events.windows(2).all(|w| w[0] != w[1]), "a BELOW monitor fired twice in a row");
                    }
                    let triggered = events.iter().filter(|e| **e == EventType::MonitorTriggered).count();
                    prop_assert_eq!(triggered as i32, m.triggered_count);
                }
            }
        }
    }
}
