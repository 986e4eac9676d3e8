use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::*;
use crate::accounts::OverdraftLimit;
use crate::ledger::{Book, HoldState, HoldStatus, LockedAccount, RefundableLeg};
use crate::transfers::{IdempotencyKey, Operation, TransferInput, TransferMessage};

fn d(n: &str) -> Decimal {
    n.parse().unwrap()
}

fn msg(client: &str, src: &str, dst: &str, amount: &str, currency: &str) -> TransferMessage {
    let json = format!(
        r#"{{"source_account_id":"{src}","destination_account_id":"{dst}","amount":"{amount}","currency":"{currency}"}}"#
    );
    let input: TransferInput = serde_json::from_str(&json).unwrap();
    let t = input.validate(None, Decimal::from(1_000_000)).unwrap();
    TransferMessage::new(client, &IdempotencyKey::parse("k", "k").unwrap(), t)
}

fn legs(client: &str, legs: &[(&str, &str, &str)]) -> TransferMessage {
    let legs: Vec<String> = legs
        .iter()
        .map(|(s, t, a)| {
            format!(
                r#"{{"source_account_id":"{s}","destination_account_id":"{t}","amount":"{a}"}}"#
            )
        })
        .collect();
    let json = format!(r#"{{"currency":"USD","legs":[{}]}}"#, legs.join(","));
    let input: TransferInput = serde_json::from_str(&json).unwrap();
    let t = input.validate(None, Decimal::from(1_000_000)).unwrap();
    TransferMessage::new(client, &IdempotencyKey::parse("k", "k").unwrap(), t)
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-04T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn book() -> Book {
    let acct = |currency: &str, limit: OverdraftLimit, balance: i64| LockedAccount {
        owner_client_id: "c1".into(),
        currency: currency.into(),
        overdraft_limit: limit,
        balance: Decimal::from(balance),
        pending: Decimal::ZERO,
    };
    let zero = OverdraftLimit::Limited(Decimal::ZERO);
    Book::of_accounts(
        HashMap::from([
            ("world".into(), acct("USD", OverdraftLimit::Unlimited, 0)),
            ("alice".into(), acct("USD", zero, 100)),
            (
                "bob".into(),
                acct("USD", OverdraftLimit::Limited(Decimal::from(50)), 0),
            ),
            ("fee".into(), acct("USD", zero, 0)),
            ("yen".into(), acct("JPY", zero, 0)),
        ]),
        now(),
    )
}

fn posted(d: Decision) -> Decided {
    match d {
        Decision::Post(p) => p,
        Decision::Reject(code) => panic!("rejected {code:?}"),
    }
}

#[test]
fn posts_and_carries_running_balances() {
    let mut b = book();
    let p = posted(decide(&msg("c1", "alice", "bob", "60", "USD"), &mut b));
    assert_eq!(
        (
            p.postings[0].source_balance_after,
            p.postings[0].destination_balance_after
        ),
        (Decimal::from(40), Decimal::from(60))
    );
    // The second transfer sees the first one's effect.
    assert_eq!(
        decide(&msg("c1", "alice", "bob", "40.01", "USD"), &mut b),
        Decision::Reject(FailureCode::InsufficientFunds)
    );
    // bob may go to -50 but not below.
    posted(decide(&msg("c1", "bob", "alice", "110", "USD"), &mut b));
    assert_eq!(b.accounts["bob"].balance, Decimal::from(-50));
    assert_eq!(
        decide(&msg("c1", "bob", "alice", "0.01", "USD"), &mut b),
        Decision::Reject(FailureCode::InsufficientFunds)
    );
    posted(decide(
        &msg("c1", "world", "alice", "1000000", "USD"),
        &mut b,
    ));
}

#[test]
fn business_rejections() {
    let mut b = book();
    let cases = [
        (
            msg("c1", "alice", "alice", "1", "USD"),
            FailureCode::SameAccount,
        ),
        (
            msg("c1", "alice", "nobody", "1", "USD"),
            FailureCode::AccountNotFound,
        ),
        (
            msg("c2", "alice", "bob", "1", "USD"),
            FailureCode::AccountNotFound,
        ),
        (
            msg("c1", "alice", "yen", "1", "USD"),
            FailureCode::CurrencyMismatch,
        ),
        (
            msg("c1", "alice", "bob", "1", "EUR"),
            FailureCode::CurrencyMismatch,
        ),
    ];
    for (m, code) in cases {
        assert_eq!(decide(&m, &mut b), Decision::Reject(code));
    }
    assert_eq!(b, book(), "rejections leave the book untouched");
}

#[test]
fn a_balance_that_would_overflow_is_refused_not_wrapped() {
    let mut b = book();
    b.accounts.get_mut("alice").unwrap().balance = Decimal::MAX;
    assert_eq!(
        decide(&msg("c1", "world", "alice", "1", "USD"), &mut b),
        Decision::Reject(FailureCode::BalanceOverflow)
    );
    b.accounts.get_mut("world").unwrap().balance = Decimal::MIN;
    b.accounts.get_mut("alice").unwrap().balance = Decimal::ZERO;
    assert_eq!(
        decide(&msg("c1", "world", "alice", "1", "USD"), &mut b),
        Decision::Reject(FailureCode::BalanceOverflow)
    );
    assert_eq!(b.accounts["alice"].balance, Decimal::ZERO);
}

#[test]
fn every_leg_posts_or_none_does() {
    let mut b = book();
    // alice pays bob 97, the fee 2.50 and the world 0.50: 100 in all, exactly her balance.
    let card = legs(
        "c1",
        &[
            ("alice", "bob", "97.00"),
            ("alice", "fee", "2.50"),
            ("alice", "world", "0.50"),
        ],
    );
    let p = posted(decide(&card, &mut b));
    let afters: Vec<_> = p
        .postings
        .iter()
        .map(|p| (p.leg, p.source_balance_after, p.destination_balance_after))
        .collect();
    assert_eq!(
        afters,
        [
            (0, d("3.00"), d("97.00")),
            (1, d("0.50"), d("2.50")),
            (2, d("0.00"), d("0.50"))
        ]
    );
    // One more cent on the last leg: the third leg fails, and the first two do not post either.
    let before = b.clone();
    b.accounts.get_mut("alice").unwrap().balance = Decimal::from(100);
    let before_alice = b.clone();
    let over = legs(
        "c1",
        &[
            ("alice", "bob", "97.00"),
            ("alice", "fee", "2.50"),
            ("alice", "world", "0.51"),
        ],
    );
    assert_eq!(
        decide(&over, &mut b),
        Decision::Reject(FailureCode::InsufficientFunds)
    );
    assert_eq!(b, before_alice);
    assert_ne!(b, before);
    // A leg naming another client's or no account rejects the whole transaction.
    let unknown = legs("c1", &[("world", "bob", "1"), ("world", "nobody", "1")]);
    assert_eq!(
        decide(&unknown, &mut b),
        Decision::Reject(FailureCode::AccountNotFound)
    );
    assert_eq!(b, before_alice);
}

fn hold_msg(
    key: &str,
    src: &str,
    dst: &str,
    amount: &str,
    expires: DateTime<Utc>,
) -> TransferMessage {
    let mut m = msg("c1", src, dst, amount, "USD");
    m.transfer = m.transfer.with_operation(Operation::Hold {
        expires_at: expires,
    });
    m.idempotency_key = key.into();
    m.transaction_id = crate::transfers::transaction_id("c1", key);
    m
}

fn op_msg(key: &str, src: &str, dst: &str, amount: &str, op: Operation) -> TransferMessage {
    let mut m = msg("c1", src, dst, amount, "USD");
    m.transfer = m.transfer.with_operation(op);
    m.idempotency_key = key.into();
    m.transaction_id = crate::transfers::transaction_id("c1", key);
    m
}

#[test]
fn a_hold_reserves_available_and_captures_post_it() {
    let mut b = book();
    let expires = now() + Duration::hours(1);
    let hold = hold_msg("h", "alice", "bob", "80", expires);
    let p = posted(decide(&hold, &mut b));
    assert!(p.postings.is_empty(), "a hold posts nothing");
    assert_eq!(p.hold, Some(HoldChange::Placed { amount: d("80.00") }));
    assert_eq!(
        (b.accounts["alice"].balance, b.accounts["alice"].pending),
        (d("100"), d("80.00"))
    );
    // Only 20 is available now: a transfer of 21 is refused, one of 20 posts.
    assert_eq!(
        decide(&msg("c1", "alice", "bob", "21", "USD"), &mut b),
        Decision::Reject(FailureCode::InsufficientFunds)
    );
    let hold_id = hold.transaction_id;
    let capture = |key: &str, amount: &str, remaining: bool| {
        op_msg(
            key,
            "alice",
            "bob",
            amount,
            Operation::Capture { hold_id, remaining },
        )
    };
    // A partial capture of 30, then more than remains (51 > 50), then the rest.
    let p = posted(decide(&capture("c1", "30", false), &mut b));
    assert_eq!(p.postings[0].source_balance_after, d("70.00"));
    assert_eq!(b.accounts["alice"].pending, d("50.00"));
    assert_eq!(
        decide(&capture("c2", "51", false), &mut b),
        Decision::Reject(FailureCode::CaptureExceedsHold)
    );
    let p = posted(decide(&capture("c3", "80", true), &mut b));
    assert_eq!(p.amount, d("50.00"), "what remained");
    assert_eq!(b.holds[&hold_id].status, HoldStatus::Captured);
    assert_eq!(
        (b.accounts["alice"].balance, b.accounts["alice"].pending),
        (d("20.00"), d("0.00"))
    );
    // Nothing remains: capture and void are both refused.
    assert_eq!(
        decide(&capture("c4", "1", false), &mut b),
        Decision::Reject(FailureCode::HoldCaptured)
    );
    let void = op_msg("v", "alice", "bob", "80", Operation::Void { hold_id });
    assert_eq!(
        decide(&void, &mut b),
        Decision::Reject(FailureCode::HoldCaptured)
    );
}

#[test]
fn voided_and_expired_holds_release_and_refuse_captures() {
    let mut b = book();
    let hold = hold_msg("h", "alice", "bob", "60", now() + Duration::hours(1));
    posted(decide(&hold, &mut b));
    let hold_id = hold.transaction_id;
    let void = op_msg("v", "alice", "bob", "60", Operation::Void { hold_id });
    let p = posted(decide(&void, &mut b));
    assert_eq!(
        p.hold,
        Some(HoldChange::Voided {
            hold_id,
            released: d("60.00")
        })
    );
    assert_eq!(b.accounts["alice"].pending, d("0.00"));
    let capture = op_msg(
        "c",
        "alice",
        "bob",
        "1",
        Operation::Capture {
            hold_id,
            remaining: false,
        },
    );
    assert_eq!(
        decide(&capture, &mut b),
        Decision::Reject(FailureCode::HoldVoided)
    );
    assert_eq!(
        decide(&void, &mut b),
        Decision::Reject(FailureCode::HoldVoided)
    );

    // An active hold past its expiry is expired for any decision, sweep or not.
    let expired = Uuid::from_u128(7);
    b.holds.insert(
        expired,
        HoldState {
            client_id: "c1".into(),
            source_account_id: "alice".into(),
            destination_account_id: "bob".into(),
            currency: "USD".into(),
            amount: d("5"),
            captured: Decimal::ZERO,
            status: HoldStatus::Active,
            expires_at: now(),
        },
    );
    let late = op_msg(
        "l",
        "alice",
        "bob",
        "1",
        Operation::Capture {
            hold_id: expired,
            remaining: false,
        },
    );
    assert_eq!(
        decide(&late, &mut b),
        Decision::Reject(FailureCode::HoldExpired)
    );
    // Another client's hold does not exist for this one.
    let mut theirs = late.clone();
    theirs.client_id = "c2".into();
    assert_eq!(
        decide(&theirs, &mut b),
        Decision::Reject(FailureCode::HoldNotFound)
    );
    let unknown = op_msg(
        "u",
        "alice",
        "bob",
        "1",
        Operation::Void {
            hold_id: Uuid::from_u128(9),
        },
    );
    assert_eq!(
        decide(&unknown, &mut b),
        Decision::Reject(FailureCode::HoldNotFound)
    );
}

#[test]
fn refunds_are_bounded_by_what_remains_of_each_leg() {
    let mut b = book();
    let original = Uuid::from_u128(1);
    b.refundable.insert(
        (original, 0),
        RefundableLeg {
            client_id: "c1".into(),
            source_account_id: "alice".into(),
            amount: d("40.00"),
            currency: "USD".into(),
            refunded: d("10.00"),
        },
    );
    b.accounts.get_mut("bob").unwrap().balance = d("100");
    let refund = |key: &str, amount: &str, remaining: bool| {
        op_msg(
            key,
            "bob",
            "alice",
            amount,
            Operation::Refund {
                of: original,
                of_legs: vec![0],
                remaining,
            },
        )
    };
    assert_eq!(
        decide(&refund("r1", "30.01", false), &mut b),
        Decision::Reject(FailureCode::RefundExceedsRemaining)
    );
    let p = posted(decide(&refund("r2", "20", false), &mut b));
    assert_eq!(p.refunds, [(0, original, 0, d("20.00"))]);
    assert_eq!(b.refundable[&(original, 0)].refunded, d("30.00"));
    let p = posted(decide(&refund("r3", "40", true), &mut b));
    assert_eq!(p.amount, d("10.00"), "what remained");
    assert_eq!(
        decide(&refund("r4", "40", true), &mut b),
        Decision::Reject(FailureCode::RefundExceedsRemaining)
    );
    // A refund must credit the original's source: anything else is not this original's refund.
    b.refundable.get_mut(&(original, 0)).unwrap().refunded = Decimal::ZERO;
    let elsewhere = op_msg(
        "r5",
        "bob",
        "fee",
        "1",
        Operation::Refund {
            of: original,
            of_legs: vec![0],
            remaining: false,
        },
    );
    assert_eq!(
        decide(&elsewhere, &mut b),
        Decision::Reject(FailureCode::TransactionNotRefundable)
    );
    // The refund obeys the debited account's limit (fee has nothing and may not go below zero).
    let unfunded = op_msg(
        "r6",
        "fee",
        "alice",
        "1",
        Operation::Refund {
            of: original,
            of_legs: vec![0],
            remaining: false,
        },
    );
    assert_eq!(
        decide(&unfunded, &mut b),
        Decision::Reject(FailureCode::InsufficientFunds)
    );
}

#[test]
fn a_refund_paid_by_the_legs_own_source_and_a_hold_expired_in_the_queue_are_refused() {
    let mut b = book();
    let original = Uuid::from_u128(1);
    b.refundable.insert(
        (original, 0),
        RefundableLeg {
            client_id: "c1".into(),
            source_account_id: "alice".into(),
            amount: d("40.00"),
            currency: "USD".into(),
            refunded: d("40.00"),
        },
    );
    // Nothing remains of the leg, but the accounts are wrong first: same_account, never a
    // transaction row with source = destination.
    let itself = op_msg(
        "r",
        "alice",
        "alice",
        "40",
        Operation::Refund {
            of: original,
            of_legs: vec![0],
            remaining: true,
        },
    );
    assert_eq!(
        decide(&itself, &mut b),
        Decision::Reject(FailureCode::SameAccount)
    );
    let late = hold_msg("h", "alice", "bob", "10", now() - Duration::seconds(1));
    assert_eq!(
        decide(&late, &mut b),
        Decision::Reject(FailureCode::HoldExpired)
    );
    assert_eq!(b.accounts["alice"].pending, Decimal::ZERO);
}
