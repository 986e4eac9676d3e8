//! What a run found, ready to store: every kind of discrepancy (the statement's, from matching, and
//! the ledger's own), the finding with its fingerprint (what makes it "the same discrepancy" across
//! runs), and the rules that turn the ledger's invariant checks and the recorded dead letters into
//! findings. Pure: the service loads what they need and the store saves what they return.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use uuid::Uuid;

use super::matching::{Discrepancy, DiscrepancyKind};
use crate::dead_letters::DeadLetter;
use crate::ledger::InvariantReport;

/// The ledger's own problems: found by its invariant checks and the dead-letter record, not by
/// comparing it with a statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum InternalKind {
    UnbalancedTransaction,
    BalanceDrift,
    MissingLedgerEntry,
    DeadLettered,
}

impl InternalKind {
    pub const ALL: [Self; 4] = [
        Self::UnbalancedTransaction,
        Self::BalanceDrift,
        Self::MissingLedgerEntry,
        Self::DeadLettered,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnbalancedTransaction => "UNBALANCED_TRANSACTION",
            Self::BalanceDrift => "BALANCE_DRIFT",
            Self::MissingLedgerEntry => "MISSING_LEDGER_ENTRY",
            Self::DeadLettered => "DEAD_LETTERED",
        }
    }
}

/// Every kind of discrepancy a run can store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FindingKind {
    /// The statement and the ledger disagree (`matching`).
    Statement(DiscrepancyKind),
    /// The ledger disagrees with itself, or a transfer sits in the dead-letter queue.
    Internal(InternalKind),
}

impl FindingKind {
    pub const UNBALANCED_TRANSACTION: Self = Self::Internal(InternalKind::UnbalancedTransaction);
    pub const BALANCE_DRIFT: Self = Self::Internal(InternalKind::BalanceDrift);
    pub const MISSING_LEDGER_ENTRY: Self = Self::Internal(InternalKind::MissingLedgerEntry);
    pub const DEAD_LETTERED: Self = Self::Internal(InternalKind::DeadLettered);

    /// Every kind: the statement's, then the ledger's own.
    pub fn all() -> impl Iterator<Item = Self> {
        DiscrepancyKind::ALL
            .into_iter()
            .map(Self::Statement)
            .chain(InternalKind::ALL.into_iter().map(Self::Internal))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Statement(kind) => kind.as_str(),
            Self::Internal(kind) => kind.as_str(),
        }
    }

    /// The kind whose `as_str` is `text`.
    pub fn parse(text: &str) -> Option<Self> {
        Self::all().find(|kind| kind.as_str() == text)
    }
}

impl std::fmt::Display for FindingKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for FindingKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A discrepancy as a run found it, ready to store.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub client_id: String,
    pub account_id: Option<String>,
    pub kind: FindingKind,
    /// Identifies the discrepancy across runs, per client: a run that finds a fingerprint again
    /// sees the same discrepancy; one it no longer finds is cleared.
    pub fingerprint: String,
    pub booked_on: Option<NaiveDate>,
    pub statement_line_id: Option<i64>,
    pub transaction_ids: Vec<Uuid>,
    pub expected: Option<Decimal>,
    pub actual: Option<Decimal>,
    pub currency: Option<String>,
    pub detail: String,
    pub data: Value,
}

/// The owner of discrepancies nobody else owns (a malformed dead letter, an entry without its
/// transaction): the operators.
pub const SYSTEM_OWNER: &str = "system";

/// The fingerprint of a statement discrepancy: its kind, account, line and postings.
pub fn statement_fingerprint(
    kind: DiscrepancyKind,
    account: &str,
    line: Option<i64>,
    txs: &[Uuid],
) -> String {
    let txs: Vec<String> = txs.iter().map(Uuid::to_string).collect();
    format!(
        "{}:{account}:{}:{}",
        kind.as_str(),
        line.map_or("-".into(), |l| l.to_string()),
        txs.join(",")
    )
}

/// A statement discrepancy on `account_id` (owned by `client_id`), booked on `booked_on`.
pub fn statement_finding(
    d: Discrepancy,
    client_id: &str,
    account_id: &str,
    booked_on: Option<NaiveDate>,
) -> Finding {
    Finding {
        client_id: client_id.to_string(),
        account_id: Some(account_id.to_string()),
        kind: FindingKind::Statement(d.kind),
        fingerprint: statement_fingerprint(d.kind, account_id, d.line_id, &d.transaction_ids),
        booked_on,
        statement_line_id: d.line_id,
        transaction_ids: d.transaction_ids,
        expected: d.expected,
        actual: d.actual,
        currency: Some(d.currency),
        detail: d.detail,
        data: json!({}),
    }
}

/// Who owns what an invariant check names: transactions (their client and source account) and
/// accounts (their client). What is not in here belongs to `SYSTEM_OWNER`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Owners {
    pub transactions: HashMap<Uuid, (String, String)>,
    pub accounts: HashMap<String, String>,
}

impl InvariantReport {
    /// The transactions whose owners `invariant_findings` needs.
    pub fn transactions_named(&self) -> Vec<Uuid> {
        self.unbalanced_transactions
            .iter()
            .chain(&self.missing_ledger_entries)
            .copied()
            .collect()
    }

    /// The accounts whose owners `invariant_findings` needs.
    pub fn accounts_named(&self) -> Vec<String> {
        self.balance_drift
            .iter()
            .map(|d| d.0.clone())
            .chain(self.pending_drift.iter().map(|d| d.0.clone()))
            .collect()
    }
}

/// The ledger's own problems as findings, each owned by its transaction's or account's client.
pub fn invariant_findings(report: &InvariantReport, owners: &Owners) -> Vec<Finding> {
    let mut out = Vec::new();
    for (kind, ids, detail) in [
        (
            InternalKind::UnbalancedTransaction,
            &report.unbalanced_transactions,
            "the transaction's entries do not sum to zero (or are not one debit and one credit)",
        ),
        (
            InternalKind::MissingLedgerEntry,
            &report.missing_ledger_entries,
            "the transaction's entries do not match its status (COMPLETED without entries, or FAILED with some)",
        ),
    ] {
        for id in ids {
            let (client, account) = match owners.transactions.get(id) {
                Some((client, account)) => (client.clone(), Some(account.clone())),
                None => (SYSTEM_OWNER.to_string(), None),
            };
            out.push(Finding {
                client_id: client,
                account_id: account,
                kind: FindingKind::Internal(kind),
                fingerprint: format!("{}:{id}", kind.as_str()),
                booked_on: None,
                statement_line_id: None,
                transaction_ids: vec![*id],
                expected: None,
                actual: None,
                currency: None,
                detail: detail.into(),
                data: json!({}),
            });
        }
    }
    let drift = |account: &String, fingerprint: String, expected, actual, detail, data| Finding {
        client_id: owners
            .accounts
            .get(account)
            .cloned()
            .unwrap_or_else(|| SYSTEM_OWNER.into()),
        account_id: Some(account.clone()),
        kind: FindingKind::BALANCE_DRIFT,
        fingerprint,
        booked_on: None,
        statement_line_id: None,
        transaction_ids: vec![],
        expected: Some(expected),
        actual: Some(actual),
        currency: None,
        detail,
        data,
    };
    for (account, balance, entries, last_after) in &report.balance_drift {
        out.push(drift(
            account,
            format!("BALANCE_DRIFT:{account}"),
            *entries,
            *balance,
            format!("stored balance {balance}, sum of entries {entries}, last balance_after {last_after}"),
            json!({"balance": balance, "sumOfEntries": entries, "lastBalanceAfter": last_after}),
        ));
    }
    for (account, pending, held) in &report.pending_drift {
        out.push(drift(
            account,
            format!("PENDING_DRIFT:{account}"),
            *held,
            *pending,
            format!("stored pending {pending}, active holds reserve {held}"),
            json!({"pending": pending, "activeHolds": held}),
        ));
    }
    out
}

/// The DEAD_LETTERED findings for the waiting letters. Two letters of one transfer (sent again
/// after FIFO's dedup window) are one discrepancy.
pub fn dead_letter_findings(letters: &[DeadLetter]) -> Vec<Finding> {
    let mut seen = HashSet::new();
    letters
        .iter()
        .map(dead_letter_finding)
        .filter(|f| seen.insert((f.client_id.clone(), f.fingerprint.clone())))
        .collect()
}

/// The DEAD_LETTERED finding for a waiting letter. Its fingerprint is the letter's deduplication
/// id (one per transfer send; a redrive sends with a new one), else its message id.
fn dead_letter_finding(letter: &DeadLetter) -> Finding {
    let parsed = letter.transfer();
    let id = letter
        .deduplication_id
        .clone()
        .unwrap_or_else(|| letter.message_id.clone());
    // A malformed message still names its client if it is JSON with a clientId; otherwise it
    // belongs to the operators.
    let client_id = match &parsed {
        Some(m) => m.client_id.clone(),
        None => serde_json::from_str::<Value>(&letter.body)
            .ok()
            .filter(|_| !letter.body_escaped)
            .and_then(|v| {
                v.get("clientId")
                    .and_then(Value::as_str)
                    .filter(|c| !c.is_empty() && !c.contains('\0'))
                    .map(str::to_string)
            })
            .unwrap_or_else(|| SYSTEM_OWNER.into()),
    };
    let mut data = json!({
        "messageId": letter.message_id,
        "receiveCount": letter.receive_count,
        "idempotencyKey": parsed.as_ref().map(|m| m.idempotency_key.clone()),
        "redrivable": parsed.is_some(),
        "body": letter.body,
        "receivedAt": letter.received_at,
    });
    if letter.body_escaped {
        data["bodyEscaped"] = json!(true);
    }
    Finding {
        client_id,
        account_id: parsed
            .as_ref()
            .map(|m| m.transfer.source_account_id.to_string()),
        kind: FindingKind::DEAD_LETTERED,
        fingerprint: format!("DEAD_LETTERED:{id}"),
        booked_on: None,
        statement_line_id: None,
        transaction_ids: parsed
            .as_ref()
            .map(|m| vec![m.transaction_id])
            .unwrap_or_default(),
        expected: parsed.as_ref().map(|m| m.transfer.amount),
        actual: None,
        currency: parsed
            .as_ref()
            .map(|m| m.transfer.currency.code().to_string()),
        detail: match &parsed {
            Some(m) => format!(
                "transfer {} ({}) reached the dead-letter queue",
                m.idempotency_key, m.transaction_id
            ),
            None => "a malformed message reached the dead-letter queue".into(),
        },
        data,
    }
}

/// How many findings of each kind, for metrics.
pub fn count_by_kind(findings: &[Finding]) -> BTreeMap<&'static str, usize> {
    let mut out = BTreeMap::new();
    for f in findings {
        *out.entry(f.kind.as_str()).or_default() += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_from_its_name() {
        let all: Vec<FindingKind> = FindingKind::all().collect();
        assert_eq!(all.len(), 9);
        for kind in all {
            assert_eq!(FindingKind::parse(kind.as_str()), Some(kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        assert_eq!(
            FindingKind::parse("DEAD_LETTERED"),
            Some(FindingKind::DEAD_LETTERED)
        );
        assert_eq!(FindingKind::parse("missing"), None);
    }

    #[test]
    fn invariant_findings_belong_to_their_owner_or_to_the_operators() {
        let (owned, orphan) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let report = InvariantReport {
            unbalanced_transactions: vec![owned],
            missing_ledger_entries: vec![orphan],
            balance_drift: vec![("acc".into(), Decimal::ONE, Decimal::TWO, Decimal::ONE)],
            ..InvariantReport::default()
        };
        assert_eq!(report.transactions_named(), [owned, orphan]);
        assert_eq!(report.accounts_named(), ["acc"]);
        let owners = Owners {
            transactions: HashMap::from([(owned, ("demo".into(), "src".into()))]),
            accounts: HashMap::from([("acc".into(), "demo".into())]),
        };
        let found = invariant_findings(&report, &owners);
        let summary: Vec<(&str, &str, Option<&str>, &str)> = found
            .iter()
            .map(|f| {
                (
                    f.kind.as_str(),
                    f.client_id.as_str(),
                    f.account_id.as_deref(),
                    f.fingerprint.as_str(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "UNBALANCED_TRANSACTION",
                    "demo",
                    Some("src"),
                    "UNBALANCED_TRANSACTION:00000000-0000-0000-0000-000000000001"
                ),
                (
                    "MISSING_LEDGER_ENTRY",
                    "system",
                    None,
                    "MISSING_LEDGER_ENTRY:00000000-0000-0000-0000-000000000002"
                ),
                ("BALANCE_DRIFT", "demo", Some("acc"), "BALANCE_DRIFT:acc"),
            ]
        );
        assert_eq!(
            count_by_kind(&found),
            BTreeMap::from([
                ("BALANCE_DRIFT", 1),
                ("MISSING_LEDGER_ENTRY", 1),
                ("UNBALANCED_TRANSACTION", 1)
            ])
        );
    }

    #[test]
    fn statement_fingerprints_name_kind_account_line_and_postings() {
        let t = Uuid::from_u128(3);
        assert_eq!(
            statement_fingerprint(DiscrepancyKind::AmountMismatch, "acc", Some(7), &[t, t]),
            format!("AMOUNT_MISMATCH:acc:7:{t},{t}")
        );
        assert_eq!(
            statement_fingerprint(DiscrepancyKind::MissingInStatement, "acc", None, &[]),
            "MISSING_IN_STATEMENT:acc:-:"
        );
    }
}
