use super::*;
use crate::accounts::OverdraftLimit;
use crate::ledger::LockedAccount;
use crate::transfers::{IdempotencyKey, TransferInput};
use chrono::Utc;

fn msg(key: &str, src: &str, dst: &str, amount: &str) -> TransferMessage {
    let json = format!(
        r#"{{"source_account_id":"{src}","destination_account_id":"{dst}","amount":"{amount}","currency":"USD"}}"#
    );
    let input: TransferInput = serde_json::from_str(&json).unwrap();
    let t = input.validate(None, Decimal::from(1_000_000)).unwrap();
    TransferMessage::new("c1", &IdempotencyKey::parse(key, "k").unwrap(), t)
}

fn accounts() -> Book {
    let acct = |limit: OverdraftLimit, balance: i64| LockedAccount {
        owner_client_id: "c1".into(),
        currency: "USD".into(),
        overdraft_limit: limit,
        balance: Decimal::from(balance),
        pending: Decimal::ZERO,
    };
    let accounts = HashMap::from([
        ("world".into(), acct(OverdraftLimit::Unlimited, 0)),
        (
            "alice".into(),
            acct(OverdraftLimit::Limited(Decimal::ZERO), 100),
        ),
        (
            "bob".into(),
            acct(OverdraftLimit::Limited(Decimal::ZERO), 0),
        ),
    ]);
    Book::of_accounts(accounts, Utc::now())
}

fn recorded(m: &TransferMessage, hash: &str) -> RecordedKeys {
    HashMap::from([(
        (m.client_id.clone(), m.idempotency_key.clone()),
        Recorded {
            transaction_id: Uuid::nil(),
            status: TransferStatus::Failed,
            failure_code: Some("insufficient_funds".into()),
            request_hash: hash.into(),
        },
    )])
}

fn balance(account: &str, balance: i64, entries: i64) -> BalanceUpdate {
    BalanceUpdate {
        account_id: account.into(),
        balance: Decimal::from(balance),
        pending: Decimal::ZERO,
        entries,
    }
}

#[test]
fn a_recorded_key_is_replayed_and_writes_nothing() {
    let m = msg("k1", "alice", "bob", "10");
    for (hash, matches) in [(m.request_hash.clone(), true), ("other".into(), false)] {
        let batch = [m.clone()];
        let plan = plan_batch(&batch, accounts(), recorded(&m, &hash));
        assert_eq!(
            plan.outcomes,
            [Outcome::AlreadyRecorded {
                transaction_id: Uuid::nil(),
                status: TransferStatus::Failed,
                failure_code: Some("insufficient_funds".into()),
                request_matches: matches,
            }]
        );
        assert_eq!(
            plan.outcomes[0].status(),
            ("FAILED", Some("insufficient_funds"))
        );
        assert!(plan.transactions.is_empty() && plan.entries.is_empty());
        assert!(plan.balances.is_empty() && plan.settlements.is_empty());
    }
}

#[test]
fn a_second_copy_in_the_batch_replays_the_first() {
    let m = msg("k1", "alice", "bob", "10");
    let mut other_body = msg("k1", "alice", "bob", "20");
    other_body.transaction_id = m.transaction_id;
    let batch = [m.clone(), m.clone(), other_body];
    let plan = plan_batch(&batch, accounts(), RecordedKeys::new());
    let replay = |request_matches| Outcome::AlreadyRecorded {
        transaction_id: m.transaction_id,
        status: TransferStatus::Completed,
        failure_code: None,
        request_matches,
    };
    assert_eq!(
        plan.outcomes,
        [
            Outcome::Posted {
                transaction_id: m.transaction_id
            },
            replay(true),
            replay(false),
        ]
    );
    assert_eq!(plan.transactions.len(), 1);
    assert_eq!(plan.entries.len(), 2);
    assert_eq!(
        plan.balances,
        [balance("alice", 90, 1), balance("bob", 10, 1)]
    );
}

#[test]
fn balances_run_across_messages_and_rejections_leave_them_untouched() {
    let batch = [
        msg("k1", "alice", "bob", "60"),
        msg("k2", "alice", "bob", "40.01"),
        msg("k3", "bob", "alice", "10"),
        msg("k4", "world", "alice", "5"),
    ];
    let plan = plan_batch(&batch, accounts(), RecordedKeys::new());
    assert_eq!(
        plan.outcomes[1],
        Outcome::Rejected {
            transaction_id: batch[1].transaction_id,
            code: FailureCode::InsufficientFunds
        }
    );
    assert_eq!(
        plan.outcomes[1].status(),
        ("FAILED", Some("insufficient_funds"))
    );
    let statuses: Vec<_> = plan.transactions.iter().map(|t| t.status).collect();
    use TransferStatus::{Completed, Failed};
    assert_eq!(statuses, [Completed, Failed, Completed, Completed]);
    let afters: Vec<(&str, i64)> = plan
        .entries
        .iter()
        .map(|e| (e.account_id.as_str(), e.balance_after.try_into().unwrap()))
        .collect();
    assert_eq!(
        afters,
        [
            ("alice", 40),
            ("bob", 60),
            ("bob", 50),
            ("alice", 50),
            ("world", -5),
            ("alice", 55),
        ]
    );
    assert_eq!(plan.entries[0].amount, Decimal::from(-60));
    assert_eq!(plan.entries[1].amount, Decimal::from(60));
    // Touched-account counts: entries per account, sorted by account; the rejection counts none.
    assert_eq!(
        plan.balances,
        [
            balance("alice", 55, 3),
            balance("bob", 50, 2),
            balance("world", -5, 1)
        ]
    );
}

#[test]
fn a_batch_of_rejections_updates_no_balance() {
    let batch = [
        msg("k1", "alice", "nobody", "1"),
        msg("k2", "bob", "alice", "1"),
    ];
    let plan = plan_batch(&batch, accounts(), RecordedKeys::new());
    let codes: Vec<_> = plan.transactions.iter().map(|t| t.failure_code).collect();
    assert_eq!(
        codes,
        [
            Some(FailureCode::AccountNotFound),
            Some(FailureCode::InsufficientFunds)
        ]
    );
    assert!(plan.entries.is_empty() && plan.balances.is_empty());
}

#[test]
fn adjusting_transfers_settle_with_their_outcome() {
    let (d1, d2) = (Uuid::from_u128(1), Uuid::from_u128(2));
    let mut posted = msg("k1", "world", "alice", "1");
    posted.transfer = posted.transfer.adjusting(d1);
    let mut rejected = msg("k2", "bob", "alice", "1");
    rejected.transfer = rejected.transfer.adjusting(d2);
    let batch = [posted, rejected, msg("k3", "world", "bob", "1")];
    let plan = plan_batch(&batch, accounts(), RecordedKeys::new());
    let settled: Vec<_> = plan
        .settlements
        .iter()
        .map(|s| (s.discrepancy_id, s.message.transaction_id, s.failure_code))
        .collect();
    assert_eq!(
        settled,
        [
            (d1, batch[0].transaction_id, None),
            (
                d2,
                batch[1].transaction_id,
                Some(FailureCode::InsufficientFunds)
            ),
        ]
    );
}

#[test]
fn expired_holds_of_locked_accounts_are_released_first() {
    let mut book = accounts();
    book.accounts.get_mut("alice").unwrap().pending = Decimal::from(100);
    let hold = |status, expires_at| crate::ledger::HoldState {
        client_id: "c1".into(),
        source_account_id: "alice".into(),
        destination_account_id: "bob".into(),
        currency: "USD".into(),
        amount: Decimal::from(100),
        captured: Decimal::from(40),
        status,
        expires_at,
    };
    let past = book.now - chrono::Duration::seconds(1);
    book.holds
        .insert(Uuid::from_u128(1), hold(HoldStatus::Active, past));
    book.holds
        .insert(Uuid::from_u128(2), hold(HoldStatus::Voided, past));
    // alice's hold reserved 60 of her 100 (40 captured earlier; pending 100 in this made-up book):
    // once it expires, 60 is released and a transfer of 100 - 40 = 60 fits.
    let batch = [msg("k1", "alice", "bob", "60")];
    let plan = plan_batch(&batch, book, RecordedKeys::new());
    assert!(matches!(plan.outcomes[0], Outcome::Posted { .. }));
    assert_eq!(
        plan.hold_updates,
        [HoldUpdate {
            id: Uuid::from_u128(1),
            captured: Decimal::from(40),
            status: HoldStatus::Expired
        }]
    );
    assert_eq!(plan.balances[0].account_id, "alice");
    assert_eq!(plan.balances[0].pending, Decimal::from(40));
}

#[test]
fn a_multi_leg_transaction_writes_two_entries_a_leg() {
    let json = r#"{"currency":"USD","legs":[
        {"source_account_id":"alice","destination_account_id":"bob","amount":"97.00"},
        {"source_account_id":"alice","destination_account_id":"world","amount":"3.00"}]}"#;
    let input: TransferInput = serde_json::from_str(json).unwrap();
    let t = input.validate(None, Decimal::from(1_000_000)).unwrap();
    let m = TransferMessage::new("c1", &IdempotencyKey::parse("card", "k").unwrap(), t);
    let batch = [m];
    let plan = plan_batch(&batch, accounts(), RecordedKeys::new());
    let entries: Vec<_> = plan
        .entries
        .iter()
        .map(|e| (e.leg, e.account_id.as_str(), e.amount.to_string()))
        .collect();
    assert_eq!(
        entries,
        [
            (0, "alice", "-97.00".to_string()),
            (0, "bob", "97.00".to_string()),
            (1, "alice", "-3.00".to_string()),
            (1, "world", "3.00".to_string()),
        ]
    );
    assert_eq!(plan.balances[0], balance("alice", 0, 2));
    let legs = plan.transactions[0].legs.as_ref().unwrap();
    assert_eq!(legs[1]["amount"], "3.00");
}

fn below(account: &str, threshold: i64) -> crate::monitors::Monitor {
    use crate::monitors::*;
    let (state, _) = initial_state(
        Condition::Below,
        Decimal::from(threshold),
        Decimal::from(100),
    );
    Monitor {
        id: Uuid::from_u128(7),
        client_id: "c1".into(),
        account_id: account.into(),
        currency: "USD".into(),
        field: MonitorField::Available,
        condition: Condition::Below,
        threshold: Decimal::from(threshold),
        hysteresis: Decimal::ZERO,
        description: None,
        status: MonitorStatus::Active,
        state,
        value: Decimal::from(100),
        evaluated_at: chrono::DateTime::UNIX_EPOCH,
        triggered_count: 0,
        last_triggered_at: None,
        last_cleared_at: None,
        created_at: chrono::DateTime::UNIX_EPOCH,
    }
}

fn event_types(plan: &BatchPlan) -> Vec<&'static str> {
    plan.events.iter().map(|e| e.event_type.as_str()).collect()
}

#[test]
fn every_decided_message_has_its_event_and_a_replay_has_none() {
    let batch = [
        msg("k1", "alice", "bob", "10"),
        msg("k2", "alice", "bob", "1000"),
        msg("k1", "alice", "bob", "10"),
    ];
    let plan = plan_batch(&batch, accounts(), RecordedKeys::new());
    assert_eq!(
        event_types(&plan),
        ["transfer.completed", "transfer.failed"]
    );
    assert_eq!(
        plan.events[1].subject,
        EventSubject::Transaction(batch[1].transaction_id)
    );
    assert!(plan.events.iter().all(|e| e.client_id == "c1"));
}

#[test]
fn a_monitor_fires_once_when_its_condition_becomes_true_and_again_after_it_cleared() {
    let mut book = accounts();
    book.monitors
        .insert("alice".into(), vec![below("alice", 50)]);
    // alice 100 -> 70 -> 40 (fires) -> 30 (still below: quiet) -> 80 (clears) -> 20 (fires).
    let batch = [
        msg("k1", "alice", "bob", "30"),
        msg("k2", "alice", "bob", "30"),
        msg("k3", "alice", "bob", "10"),
        msg("k4", "bob", "alice", "50"),
        msg("k5", "alice", "bob", "60"),
    ];
    let plan = plan_batch(&batch, book, RecordedKeys::new());
    assert_eq!(
        event_types(&plan),
        [
            "transfer.completed",
            "transfer.completed",
            "monitor.triggered",
            "transfer.completed",
            "transfer.completed",
            "monitor.cleared",
            "transfer.completed",
            "monitor.triggered",
        ]
    );
    // Each event carries the monitor as it was then; the plan writes its final state once.
    let EventSubject::Monitor(first) = &plan.events[2].subject else {
        panic!("a monitor event");
    };
    assert_eq!(first.value, Decimal::from(40));
    assert_eq!(first.triggered_count, 1);
    assert_eq!(plan.monitor_updates.len(), 1);
    assert_eq!(plan.monitor_updates[0].triggered_count, 2);
    assert_eq!(plan.monitor_updates[0].value, Decimal::from(20));
}

#[test]
fn an_expiry_has_its_event_and_moves_available_monitors() {
    let mut book = accounts();
    book.accounts.get_mut("alice").unwrap().pending = Decimal::from(90);
    let mut monitor = below("alice", 50);
    monitor.state = crate::monitors::MonitorState::Triggered; // available was 10
    book.monitors.insert("alice".into(), vec![monitor]);
    book.holds.insert(
        Uuid::from_u128(1),
        crate::ledger::HoldState {
            client_id: "c1".into(),
            source_account_id: "alice".into(),
            destination_account_id: "bob".into(),
            currency: "USD".into(),
            amount: Decimal::from(90),
            captured: Decimal::ZERO,
            status: HoldStatus::Active,
            expires_at: book.now - chrono::Duration::seconds(1),
        },
    );
    let plan = plan_batch(&[], book, RecordedKeys::new());
    assert_eq!(event_types(&plan), ["hold.expired", "monitor.cleared"]);
    let EventSubject::Hold { state, .. } = &plan.events[0].subject else {
        panic!("a hold event");
    };
    assert_eq!(state.status, HoldStatus::Expired);
    assert_eq!(plan.balances[0].pending, Decimal::ZERO);
}
