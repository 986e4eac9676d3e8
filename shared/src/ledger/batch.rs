//! The whole batch, TigerBeetle style: [`plan_batch`] walks the messages in order, [`decide`] rules
//! on each new one, and the result is everything the store writes plus one [`Outcome`] per message.
//! Pure: the store reads the locked rows and recorded keys in, and writes the plan out.

use std::collections::{BTreeMap, HashMap};

use rust_decimal::Decimal;
use uuid::Uuid;

use super::{Decision, FailureCode, LockedAccount, Posting, TransferStatus, decide};
use crate::transfers::TransferMessage;

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
}

/// One leg of a posted transfer: debit (amount < 0) on the source, credit on the destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryRow {
    pub transaction_id: Uuid,
    pub account_id: String,
    pub amount: Decimal,
    pub currency: String,
    pub balance_after: Decimal,
}

/// An account's balance after the batch, and how many entries the batch wrote to it (its version
/// moves by that many).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BalanceUpdate {
    pub account_id: String,
    pub balance: Decimal,
    pub entries: i64,
}

/// An adjusting transfer decided now: its discrepancy settles with it (no code: posted).
#[derive(Clone, Debug, PartialEq)]
pub struct Settlement<'a> {
    pub discrepancy_id: Uuid,
    pub message: &'a TransferMessage,
    pub failure_code: Option<FailureCode>,
}

/// What one batch writes, in message order, and what each message's sender is told.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BatchPlan<'a> {
    pub transactions: Vec<TransactionRow<'a>>,
    pub entries: Vec<EntryRow>,
    /// Only when a transfer posted; sorted by account id.
    pub balances: Vec<BalanceUpdate>,
    pub settlements: Vec<Settlement<'a>>,
    /// One per message, in order.
    pub outcomes: Vec<Outcome>,
}

/// Plans a batch against the accounts it locked and the keys already recorded, in message order:
/// a recorded key (earlier, or by a copy earlier in this batch) is replayed, compared by request
/// hash, and writes nothing; a new one is decided against the running balances.
pub fn plan_batch<'a>(
    messages: &'a [TransferMessage],
    accounts: HashMap<String, LockedAccount>,
    recorded: RecordedKeys,
) -> BatchPlan<'a> {
    let mut batch = Batch {
        accounts,
        recorded,
        touched: BTreeMap::new(),
        plan: BatchPlan::default(),
    };
    for m in messages {
        let outcome = batch.execute(m);
        batch.plan.outcomes.push(outcome);
    }
    let plan = batch.finish();
    assert_eq!(plan.outcomes.len(), messages.len(), "one outcome a message");
    assert_eq!(plan.entries.len(), 2 * plan.posted(), "two legs a posting");
    plan
}

impl BatchPlan<'_> {
    fn posted(&self) -> usize {
        self.transactions
            .iter()
            .filter(|t| t.status == TransferStatus::Completed)
            .count()
    }
}

/// The state a batch carries from one message to the next.
struct Batch<'a> {
    accounts: HashMap<String, LockedAccount>,
    recorded: RecordedKeys,
    /// Entries written per account so far.
    touched: BTreeMap<String, i64>,
    plan: BatchPlan<'a>,
}

impl<'a> Batch<'a> {
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
        let (outcome, status, failure_code) = match decide(m, &mut self.accounts) {
            Decision::Post(p) => {
                self.post(m, p);
                let posted = Outcome::Posted {
                    transaction_id: m.transaction_id,
                };
                (posted, TransferStatus::Completed, None)
            }
            Decision::Reject(code) => {
                let rejected = Outcome::Rejected {
                    transaction_id: m.transaction_id,
                    code,
                };
                (rejected, TransferStatus::Failed, Some(code))
            }
        };
        self.record(m, status, failure_code);
        outcome
    }

    /// The two legs of a posted transfer, with the balances after it.
    fn post(&mut self, m: &TransferMessage, p: Posting) {
        let t = &m.transfer;
        let legs = [
            (
                t.source_account_id.as_str(),
                -t.amount,
                p.source_balance_after,
            ),
            (
                t.destination_account_id.as_str(),
                t.amount,
                p.destination_balance_after,
            ),
        ];
        for (account, amount, balance_after) in legs {
            self.plan.entries.push(EntryRow {
                transaction_id: m.transaction_id,
                account_id: account.to_string(),
                amount,
                currency: t.currency.code().to_string(),
                balance_after,
            });
            *self.touched.entry(account.to_string()).or_default() += 1;
        }
    }

    /// The transaction row, its settlement if it adjusts a discrepancy, and its key as recorded
    /// (a later copy in this batch replays it).
    fn record(
        &mut self,
        m: &'a TransferMessage,
        status: TransferStatus,
        failure_code: Option<FailureCode>,
    ) {
        self.plan.transactions.push(TransactionRow {
            message: m,
            status,
            failure_code,
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
        self.plan.balances = self
            .touched
            .into_iter()
            .map(|(account_id, entries)| BalanceUpdate {
                balance: self.accounts[&account_id].balance,
                account_id,
                entries,
            })
            .collect();
        self.plan
    }
}

#[cfg(test)]
mod tests;
