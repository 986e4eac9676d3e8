//! The whole batch, TigerBeetle style: [`plan_batch`] walks the messages in order, [`decide`] rules
//! on each new one, and the result is everything the store writes plus one [`Outcome`] per message.
//! Pure: the store reads the locked rows and recorded keys in, and writes the plan out.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use uuid::Uuid;

use super::book::{Book, HoldState, HoldStatus};
use super::decide::{Decided, HoldChange};
use super::{Decision, FailureCode, TransferStatus, decide};
use crate::events::EventType;
use crate::monitors::Monitor;
use crate::transfers::{Operation, TransferMessage};

/// What happened to one message of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Posted now: two entries written.
    Posted { transaction_id: Uuid },
    /// Rejected by a posting rule now: recorded as FAILED with the code.
    Rejected {
        transaction_id: Uuid,
        code: FailureCode,
    },
    /// The client's key was already recorded (a redelivery, or a retry after Redis lost the key):
    /// nothing written. `request_matches` is false when the earlier request had another body.
    AlreadyRecorded {
        transaction_id: Uuid,
        status: TransferStatus,
        failure_code: Option<String>,
        request_matches: bool,
    },
}

impl Outcome {
    pub fn transaction_id(&self) -> Uuid {
        match self {
            Self::Posted { transaction_id }
            | Self::Rejected { transaction_id, .. }
            | Self::AlreadyRecorded { transaction_id, .. } => *transaction_id,
        }
    }

    /// The status the transfer has in the ledger after this batch, as the status route spells it.
    pub fn status(&self) -> (&str, Option<&str>) {
        match self {
            Self::Posted { .. } => (TransferStatus::Completed.as_str(), None),
            Self::Rejected { code, .. } => (TransferStatus::Failed.as_str(), Some(code.as_str())),
            Self::AlreadyRecorded {
                status,
                failure_code,
                ..
            } => (status.as_str(), failure_code.as_deref()),
        }
    }
}

/// A transfer already in the ledger under a client's key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    pub transaction_id: Uuid,
    pub status: TransferStatus,
    pub failure_code: Option<String>,
    pub request_hash: String,
}

/// Recorded transfers by (client id, idempotency key).
pub type RecordedKeys = HashMap<(String, String), Recorded>;

/// A transaction row to insert: the message, and how the ledger decided it.
#[derive(Clone, Debug, PartialEq)]
pub struct TransactionRow<'a> {
    pub message: &'a TransferMessage,
    pub status: TransferStatus,
    pub failure_code: Option<FailureCode>,
    /// The source, destination and amount columns: the first leg as decided (a refund of "what
    /// remains" skips legs with nothing left; a capture of it is decided at posting), or what a
    /// void released.
    pub source_account_id: String,
    pub destination_account_id: String,
    pub amount: Decimal,
    /// The `legs` column: every leg (as decided, when posted) when there is more than one.
    pub legs: Option<Value>,
}

/// One side of a posted leg: debit (amount < 0) on the source, credit on the destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryRow {
    pub transaction_id: Uuid,
    pub leg: i16,
    pub account_id: String,
    pub amount: Decimal,
    pub currency: String,
    pub balance_after: Decimal,
    /// The transaction's value date; `None`: when it posts.
    pub effective_at: Option<DateTime<Utc>>,
}

/// An account's balance and pending debits after the batch, and how many entries the batch wrote
/// to it (its version moves by that many).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BalanceUpdate {
    pub account_id: String,
    pub balance: Decimal,
    pub pending: Decimal,
    pub entries: i64,
}

/// A hold placed by this batch, in its state after the batch (a later message of the same batch
/// may already have captured or voided it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewHold {
    pub id: Uuid,
    pub client_id: String,
    pub idempotency_key: String,
    pub source_account_id: String,
    pub destination_account_id: String,
    pub currency: String,
    pub amount: Decimal,
    pub captured: Decimal,
    pub status: HoldStatus,
    pub expires_at: DateTime<Utc>,
}

/// An existing hold's state after the batch (captured, voided, expired).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HoldUpdate {
    pub id: Uuid,
    pub captured: Decimal,
    pub status: HoldStatus,
}

/// How much of an original's leg a refund's leg gave back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefundRow {
    pub refund_id: Uuid,
    pub leg: i16,
    pub original_id: Uuid,
    pub original_leg: i16,
    pub amount: Decimal,
}

/// An adjusting transfer decided now: its discrepancy settles with it (no code: posted).
#[derive(Clone, Debug, PartialEq)]
pub struct Settlement<'a> {
    pub discrepancy_id: Uuid,
    pub message: &'a TransferMessage,
    pub failure_code: Option<FailureCode>,
}

/// An event the batch writes into the outbox, in the order things happened.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedEvent {
    pub event_type: EventType,
    pub client_id: String,
    pub subject: EventSubject,
}

/// What an event is about, as it was at that point of the batch (a hold captured twice in one
/// batch has two events, each with the state after its capture).
#[derive(Clone, Debug, PartialEq)]
pub enum EventSubject {
    /// A transaction of this batch, as recorded.
    Transaction(Uuid),
    Hold {
        id: Uuid,
        state: HoldState,
    },
    Monitor(Box<Monitor>),
}

/// What one batch writes, in message order, and what each message's sender is told.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BatchPlan<'a> {
    pub transactions: Vec<TransactionRow<'a>>,
    pub entries: Vec<EntryRow>,
    /// Only accounts whose balance or pending changed; sorted by account id.
    pub balances: Vec<BalanceUpdate>,
    pub settlements: Vec<Settlement<'a>>,
    pub new_holds: Vec<NewHold>,
    /// Sorted by hold id.
    pub hold_updates: Vec<HoldUpdate>,
    pub refunds: Vec<RefundRow>,
    /// The monitors whose state changed, as the batch left them; sorted by id.
    pub monitor_updates: Vec<Monitor>,
    pub events: Vec<PlannedEvent>,
    /// One per message, in order.
    pub outcomes: Vec<Outcome>,
}

/// Plans a batch against what it locked and the keys already recorded, in message order: first
/// the holds of its accounts that expired by the batch's time are released; then a recorded key
/// (earlier, or by a copy earlier in this batch) is replayed, compared by request hash, and writes
/// nothing; a new one is decided against the running book.
pub fn plan_batch<'a>(
    messages: &'a [TransferMessage],
    book: Book,
    recorded: RecordedKeys,
) -> BatchPlan<'a> {
    let mut batch = Batch {
        book,
        recorded,
        touched: BTreeMap::new(),
        pending_touched: BTreeSet::new(),
        placed: BTreeMap::new(),
        changed_holds: BTreeSet::new(),
        changed_monitors: BTreeSet::new(),
        plan: BatchPlan::default(),
    };
    batch.expire_holds();
    for m in messages {
        let outcome = batch.execute(m);
        batch.plan.outcomes.push(outcome);
    }
    let plan = batch.finish();
    assert_eq!(plan.outcomes.len(), messages.len(), "one outcome a message");
    assert!(plan.balanced(), "every currency's entries sum to zero");
    plan
}

impl BatchPlan<'_> {
    /// Two entries a leg, and per currency the entries sum to zero.
    fn balanced(&self) -> bool {
        let mut sums: HashMap<&str, Decimal> = HashMap::new();
        for e in &self.entries {
            *sums.entry(&e.currency).or_default() += e.amount;
        }
        self.entries.len().is_multiple_of(2) && sums.values().all(|s| s.is_zero())
    }
}

/// The state a batch carries from one message to the next.
struct Batch<'a> {
    book: Book,
    recorded: RecordedKeys,
    /// Entries written per account so far.
    touched: BTreeMap<String, i64>,
    /// Accounts whose pending debits changed.
    pending_touched: BTreeSet<String>,
    /// Holds placed by this batch, with their keys.
    placed: BTreeMap<Uuid, String>,
    /// Existing holds this batch changed.
    changed_holds: BTreeSet<Uuid>,
    /// Monitors whose state changed, by (account, index in the book's list).
    changed_monitors: BTreeSet<(String, usize)>,
    plan: BatchPlan<'a>,
}

impl<'a> Batch<'a> {
    /// Releases every hold the book holds that expired by the batch's time: an expired hold
    /// reserves nothing, whether or not the scheduled sweep has run.
    fn expire_holds(&mut self) {
        let now = self.book.now;
        let mut released = BTreeSet::new();
        let mut expired: Vec<(&Uuid, &mut HoldState)> = self.book.holds.iter_mut().collect();
        expired.sort_unstable_by_key(|(id, _)| **id);
        for (id, hold) in expired {
            if !hold.expired_at(now) {
                continue;
            }
            // Only under its source account's lock (the batch holds it), so pending stays exact.
            let Some(account) = self.book.accounts.get_mut(&hold.source_account_id) else {
                continue;
            };
            account.pending -= hold.remaining();
            hold.status = HoldStatus::Expired;
            self.pending_touched.insert(hold.source_account_id.clone());
            self.changed_holds.insert(*id);
            released.insert(hold.source_account_id.clone());
            self.plan.events.push(PlannedEvent {
                event_type: EventType::HoldExpired,
                client_id: hold.client_id.clone(),
                subject: EventSubject::Hold {
                    id: *id,
                    state: hold.clone(),
                },
            });
        }
        for account in &released {
            self.evaluate_monitors(account);
        }
    }

    /// Evaluates the monitors of `account_id` against its balances now, recording each change of
    /// state and its event.
    fn evaluate_monitors(&mut self, account_id: &str) {
        let Some(account) = self.book.accounts.get(account_id) else {
            return;
        };
        let (posted, pending) = (account.balance, account.pending);
        let Some(monitors) = self.book.monitors.get_mut(account_id) else {
            return;
        };
        for (i, monitor) in monitors.iter_mut().enumerate() {
            let value = monitor.watched(posted, pending);
            if let Some(event_type) = monitor.evaluate(value, self.book.now) {
                self.changed_monitors.insert((account_id.to_string(), i));
                self.plan.events.push(PlannedEvent {
                    event_type,
                    client_id: monitor.client_id.clone(),
                    subject: EventSubject::Monitor(Box::new(monitor.clone())),
                });
            }
        }
    }

    /// The events of a message decided now: what it did, then what it changed in monitors.
    fn record_events(&mut self, m: &TransferMessage, decided: Option<&Decided>) {
        let subject_hold = |id: Uuid, book: &Book| EventSubject::Hold {
            id,
            state: book.holds[&id].clone(),
        };
        let (event_type, subject) = match (decided, &m.transfer.operation) {
            (None, _) => (
                EventType::TransferFailed,
                EventSubject::Transaction(m.transaction_id),
            ),
            (Some(_), Operation::Transfer) => (
                EventType::TransferCompleted,
                EventSubject::Transaction(m.transaction_id),
            ),
            (Some(_), Operation::Refund { .. }) => (
                EventType::RefundPosted,
                EventSubject::Transaction(m.transaction_id),
            ),
            (Some(_), Operation::Hold { .. }) => (
                EventType::HoldCreated,
                subject_hold(m.transaction_id, &self.book),
            ),
            (Some(_), Operation::Capture { hold_id, .. }) => {
                (EventType::HoldCaptured, subject_hold(*hold_id, &self.book))
            }
            (Some(_), Operation::Void { hold_id }) => {
                (EventType::HoldVoided, subject_hold(*hold_id, &self.book))
            }
        };
        self.plan.events.push(PlannedEvent {
            event_type,
            client_id: m.client_id.clone(),
            subject,
        });
        let Some(decided) = decided else {
            return;
        };
        let mut accounts: BTreeSet<&str> = BTreeSet::new();
        for p in &decided.postings {
            accounts.insert(&p.source_account_id);
            accounts.insert(&p.destination_account_id);
        }
        if decided.hold.is_some() {
            accounts.insert(m.transfer.source_account_id.as_str());
        }
        for account in accounts {
            self.evaluate_monitors(account);
        }
    }

    fn execute(&mut self, m: &'a TransferMessage) -> Outcome {
        let key = (m.client_id.clone(), m.idempotency_key.clone());
        if let Some(r) = self.recorded.get(&key) {
            return Outcome::AlreadyRecorded {
                transaction_id: r.transaction_id,
                status: r.status,
                failure_code: r.failure_code.clone(),
                request_matches: r.request_hash == m.request_hash,
            };
        }
        match decide(m, &mut self.book) {
            Decision::Post(decided) => {
                self.post(m, &decided);
                self.record_events(m, Some(&decided));
                let legs = legs_json(m, Some(&decided));
                let first = match decided.postings.first() {
                    Some(p) => (
                        p.source_account_id.clone(),
                        p.destination_account_id.clone(),
                    ),
                    None => first_leg(m),
                };
                self.record(
                    m,
                    TransferStatus::Completed,
                    None,
                    (first, decided.amount),
                    legs,
                );
                Outcome::Posted {
                    transaction_id: m.transaction_id,
                }
            }
            Decision::Reject(code) => {
                self.record_events(m, None);
                let legs = legs_json(m, None);
                let first = (first_leg(m), m.transfer.amount);
                self.record(m, TransferStatus::Failed, Some(code), first, legs);
                Outcome::Rejected {
                    transaction_id: m.transaction_id,
                    code,
                }
            }
        }
    }

    /// The entries of a posted transaction (two per leg, with the balances after it), its hold
    /// and refund rows.
    fn post(&mut self, m: &TransferMessage, d: &Decided) {
        for p in &d.postings {
            let sides = [
                (&p.source_account_id, -p.amount, p.source_balance_after),
                (
                    &p.destination_account_id,
                    p.amount,
                    p.destination_balance_after,
                ),
            ];
            for (account, amount, balance_after) in sides {
                self.plan.entries.push(EntryRow {
                    transaction_id: m.transaction_id,
                    leg: p.leg as i16,
                    account_id: account.clone(),
                    amount,
                    currency: p.currency.clone(),
                    balance_after,
                    effective_at: m.transfer.effective_at,
                });
                *self.touched.entry(account.clone()).or_default() += 1;
            }
        }
        let source = m.transfer.source_account_id.to_string();
        match &d.hold {
            Some(HoldChange::Placed { .. }) => {
                self.placed
                    .insert(m.transaction_id, m.idempotency_key.clone());
                self.pending_touched.insert(source);
            }
            Some(HoldChange::Captured { hold_id, .. } | HoldChange::Voided { hold_id, .. }) => {
                self.changed_holds.insert(*hold_id);
                self.pending_touched.insert(source);
            }
            None => {}
        }
        for (leg, of, of_leg, amount) in &d.refunds {
            self.plan.refunds.push(RefundRow {
                refund_id: m.transaction_id,
                leg: *leg as i16,
                original_id: *of,
                original_leg: *of_leg as i16,
                amount: *amount,
            });
        }
    }

    /// The transaction row, its settlement if it adjusts a discrepancy, and its key as recorded
    /// (a later copy in this batch replays it).
    fn record(
        &mut self,
        m: &'a TransferMessage,
        status: TransferStatus,
        failure_code: Option<FailureCode>,
        ((source_account_id, destination_account_id), amount): ((String, String), Decimal),
        legs: Option<Value>,
    ) {
        self.plan.transactions.push(TransactionRow {
            message: m,
            status,
            failure_code,
            source_account_id,
            destination_account_id,
            amount,
            legs,
        });
        if let Some(discrepancy_id) = m.transfer.adjusts() {
            self.plan.settlements.push(Settlement {
                discrepancy_id,
                message: m,
                failure_code,
            });
        }
        let recorded = Recorded {
            transaction_id: m.transaction_id,
            status,
            failure_code: failure_code.map(|c| c.as_str().to_string()),
            request_hash: m.request_hash.clone(),
        };
        let previous = self
            .recorded
            .insert((m.client_id.clone(), m.idempotency_key.clone()), recorded);
        assert!(previous.is_none(), "a key is decided once");
    }

    fn finish(mut self) -> BatchPlan<'a> {
        let accounts: BTreeSet<String> = self
            .touched
            .keys()
            .cloned()
            .chain(self.pending_touched.iter().cloned())
            .collect();
        self.plan.balances = accounts
            .into_iter()
            .map(|account_id| {
                let account = &self.book.accounts[&account_id];
                BalanceUpdate {
                    balance: account.balance,
                    pending: account.pending,
                    entries: self.touched.get(&account_id).copied().unwrap_or(0),
                    account_id,
                }
            })
            .collect();
        for (id, key) in &self.placed {
            let h = &self.book.holds[id];
            self.plan.new_holds.push(NewHold {
                id: *id,
                client_id: h.client_id.clone(),
                idempotency_key: key.clone(),
                source_account_id: h.source_account_id.clone(),
                destination_account_id: h.destination_account_id.clone(),
                currency: h.currency.clone(),
                amount: h.amount,
                captured: h.captured,
                status: h.status,
                expires_at: h.expires_at,
            });
        }
        self.plan.hold_updates = self
            .changed_holds
            .iter()
            .filter(|id| !self.placed.contains_key(id))
            .map(|id| {
                let h = &self.book.holds[id];
                HoldUpdate {
                    id: *id,
                    captured: h.captured,
                    status: h.status,
                }
            })
            .collect();
        self.plan.monitor_updates = self
            .changed_monitors
            .iter()
            .map(|(account, i)| self.book.monitors[account][*i].clone())
            .collect();
        self.plan.monitor_updates.sort_unstable_by_key(|m| m.id);
        self.plan
    }
}

/// The message's first leg's accounts.
fn first_leg(m: &TransferMessage) -> (String, String) {
    let t = &m.transfer;
    (
        t.source_account_id.to_string(),
        t.destination_account_id.to_string(),
    )
}

/// The `legs` column of a transaction with more than one leg: each leg with its index, at the
/// decided amount when it posted (a refund of "what remains" may skip a leg with nothing left).
fn legs_json(m: &TransferMessage, decided: Option<&Decided>) -> Option<Value> {
    if m.transfer.more_legs.is_empty() {
        return None;
    }
    let items = m
        .transfer
        .legs()
        .iter()
        .enumerate()
        .filter_map(|(i, leg)| {
            let amount = match decided {
                None => Some(leg.amount),
                Some(d) => d
                    .postings
                    .iter()
                    .find(|p| usize::from(p.leg) == i)
                    .map(|p| p.amount),
            }?;
            Some(json!({
                "leg": i,
                "source_account_id": leg.source_account_id,
                "destination_account_id": leg.destination_account_id,
                "amount": crate::money::format_amount(amount, leg.currency.code()),
                "currency": leg.currency.code(),
            }))
        })
        .collect();
    Some(Value::Array(items))
}

#[cfg(test)]
mod tests;
