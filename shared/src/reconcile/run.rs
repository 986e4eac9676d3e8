//! One reconciliation run: load both sides of a window, match them, check the ledger's own
//! invariants, and store the run with its matches and discrepancies. The matching itself is the
//! pure `matching` module; SQL lives in `store::reconciliation`.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use chrono::{Days, NaiveDate, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use super::matching::{self, Discrepancy, DiscrepancyKind, MatchConfig, MatchOutcome};
use super::workflow::INTERNAL_KINDS;
use crate::config::ReconcileConfig;
use crate::money::{AmountOverflow, format_amount};
use crate::store::dead_letters::{self, DeadLetter};
use crate::store::invariants::{self, InvariantReport};
use crate::store::reconcile_requests as requests;
use crate::store::reconciliation::{self as store, Finding, RunRecord, SaveStats, Scope};
use crate::store::{PgPool, StoreError};

#[derive(Clone, Debug)]
pub struct AccountWindow {
    pub client_id: String,
    pub account_id: String,
    pub start: NaiveDate,
    pub end: NaiveDate,
    /// The day the grace period is measured from (today, for a live run).
    pub as_of: NaiveDate,
    pub trigger: &'static str,
}

/// A finished run: its id, its report (also stored) and how long each step took.
#[derive(Clone, Debug)]
pub struct RunResult {
    pub run_id: Uuid,
    pub report: Value,
    pub stats: SaveStats,
    pub findings_by_kind: HashMap<String, usize>,
    pub matched_lines: usize,
    pub timings_ms: Vec<(&'static str, f64)>,
}

fn days_before(d: NaiveDate, n: u32) -> NaiveDate {
    d.checked_sub_days(Days::new(n.into())).unwrap_or(d)
}

fn days_after(d: NaiveDate, n: u32) -> NaiveDate {
    d.checked_add_days(Days::new(n.into())).unwrap_or(d)
}

fn fingerprint(kind: &str, account: &str, line: Option<i64>, txs: &[Uuid]) -> String {
    let txs: Vec<String> = txs.iter().map(Uuid::to_string).collect();
    format!(
        "{kind}:{account}:{}:{}",
        line.map_or("-".into(), |l| l.to_string()),
        txs.join(",")
    )
}

/// The ledger's own problems as findings (for one account or ledger-wide).
pub async fn internal_findings(
    pool: &PgPool,
    report: &InvariantReport,
    account_owner: Option<(&str, &str)>,
) -> Result<Vec<Finding>, StoreError> {
    let owners = transaction_owners(
        pool,
        report
            .unbalanced_transactions
            .iter()
            .chain(&report.missing_ledger_entries)
            .copied()
            .collect(),
    )
    .await?;
    let mut out = Vec::new();
    for (kind, ids) in [
        ("UNBALANCED_TRANSACTION", &report.unbalanced_transactions),
        ("MISSING_LEDGER_ENTRY", &report.missing_ledger_entries),
    ] {
        for id in ids {
            let (client, account) = owners
                .get(id)
                .cloned()
                .unwrap_or_else(|| ("system".into(), None));
            out.push(Finding {
                client_id: client,
                account_id: account,
                kind: kind.into(),
                fingerprint: format!("{kind}:{id}"),
                booked_on: None,
                statement_line_id: None,
                transaction_ids: vec![*id],
                expected: None,
                actual: None,
                currency: None,
                detail: match kind {
                    "UNBALANCED_TRANSACTION" => "the transaction's entries do not sum to zero (or are not one debit and one credit)".into(),
                    _ => "the transaction's entries do not match its status (COMPLETED without entries, or FAILED with some)".into(),
                },
                data: json!({}),
            });
        }
    }
    let account_owners = match account_owner {
        Some((account, owner)) => HashMap::from([(account.to_string(), owner.to_string())]),
        None => {
            account_owners(
                pool,
                report.balance_drift.iter().map(|d| d.0.clone()).collect(),
            )
            .await?
        }
    };
    for (account, balance, entries, last_after) in &report.balance_drift {
        out.push(Finding {
            client_id: account_owners.get(account).cloned().unwrap_or_else(|| "system".into()),
            account_id: Some(account.clone()),
            kind: "BALANCE_DRIFT".into(),
            fingerprint: format!("BALANCE_DRIFT:{account}"),
            booked_on: None,
            statement_line_id: None,
            transaction_ids: vec![],
            expected: Some(*entries),
            actual: Some(*balance),
            currency: None,
            detail: format!("stored balance {balance}, sum of entries {entries}, last balance_after {last_after}"),
            data: json!({"balance": balance, "sumOfEntries": entries, "lastBalanceAfter": last_after}),
        });
    }
    Ok(out)
}

async fn transaction_owners(
    pool: &PgPool,
    ids: Vec<Uuid>,
) -> Result<HashMap<Uuid, (String, Option<String>)>, StoreError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let conn = pool.get().await?;
    let rows = conn
        .query(
            "SELECT id, client_id, source_account_id FROM transactions WHERE id = ANY($1)",
            &[&ids],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), (r.get(1), Some(r.get(2)))))
        .collect())
}

async fn account_owners(
    pool: &PgPool,
    ids: Vec<String>,
) -> Result<HashMap<String, String>, StoreError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let conn = pool.get().await?;
    let rows = conn
        .query(
            "SELECT id, client_id FROM accounts WHERE id = ANY($1)",
            &[&ids],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Why a run did not finish.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// PostgreSQL failed (retryable).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A total over the run's amounts does not fit in a decimal (only data stored before the
    /// amount bounds existed can cause it): the run is refused, never reported with a wrong total.
    #[error(transparent)]
    Overflow(#[from] AmountOverflow),
}

/// Count and money at stake (`Discrepancy::amount_at_stake`) per kind and currency, for reports:
/// the kinds present, by name, with net totals at their currency's scale. The rule is
/// `matching::tally_by_kind`, the one `summarize` uses.
fn kind_totals<'a>(
    discrepancies: impl Iterator<Item = &'a Discrepancy>,
) -> Result<Value, AmountOverflow> {
    let by_kind: BTreeMap<&'static str, Value> = matching::tally_by_kind(discrepancies)?
        .into_iter()
        .filter(|tally| tally.count > 0)
        .map(|tally| {
            let totals: serde_json::Map<String, Value> = tally
                .totals
                .into_iter()
                .map(|t| {
                    let formatted = format_amount(t.net, &t.currency);
                    (t.currency, json!(formatted))
                })
                .collect();
            (
                tally.kind.as_str(),
                json!({"count": tally.count, "totals": totals}),
            )
        })
        .collect();
    Ok(Value::Object(
        by_kind
            .into_iter()
            .map(|(kind, value)| (kind.to_string(), value))
            .collect(),
    ))
}

/// Reconciles one account's window and stores the run.
pub async fn reconcile_account(
    pool: &PgPool,
    settings: &ReconcileConfig,
    w: &AccountWindow,
) -> Result<RunResult, RunError> {
    reconcile_account_as(pool, settings, w, Uuid::now_v7()).await
}

/// The window `reconcile_account` loads: `drift` days beyond the window on each side.
pub fn load_range(
    w_start: NaiveDate,
    w_end: NaiveDate,
    settings: &ReconcileConfig,
) -> (NaiveDate, NaiveDate) {
    // Never past the last date anything may be booked on (`validation::MAX_YEAR`).
    let last = NaiveDate::from_ymd_opt(crate::validation::MAX_YEAR, 12, 31).expect("a date");
    (
        days_before(w_start, settings.date_drift_days),
        days_after(w_end, settings.date_drift_days).min(last),
    )
}

/// Whether a run over this window is small enough to answer within the HTTP API's time limit
/// (`RECONCILE_SYNC_MAX_ITEMS` statement lines plus ledger entries); a larger one is queued.
pub async fn fits_synchronously(
    pool: &PgPool,
    settings: &ReconcileConfig,
    account_id: &str,
    start: NaiveDate,
    end: NaiveDate,
) -> Result<bool, StoreError> {
    let (from, to) = load_range(start, end, settings);
    let size = requests::window_size(pool, account_id, from, to).await?;
    Ok(size <= settings.sync_max_items as i64)
}

/// Records a reconciliation to be run by the reconciler; the run will carry the returned id.
pub async fn queue_reconciliation(pool: &PgPool, w: &AccountWindow) -> Result<Uuid, StoreError> {
    let id = Uuid::now_v7();
    requests::enqueue(
        pool,
        &requests::ReconcileRequest {
            id,
            client_id: w.client_id.clone(),
            account_id: w.account_id.clone(),
            window_start: w.start,
            window_end: w.end,
            as_of: w.as_of,
            status: requests::RequestStatus::Queued,
            error: None,
            attempts: 0,
            requested_at: Utc::now(),
            finished_at: None,
        },
    )
    .await?;
    Ok(id)
}

/// A queued reconciliation the reconciler ran: its id (also the run's) and how it ended.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueuedOutcome {
    pub run_id: Uuid,
    pub account_id: String,
    pub error: Option<String>,
}

/// How long a claimed request may stay RUNNING before another reconciler takes it over (its own
/// died): longer than a Lambda function can live.
pub const STALE_REQUEST: std::time::Duration = std::time::Duration::from_secs(20 * 60);

/// Runs queued reconciliations, oldest first, until none is left or `budget` has passed. A request
/// that fails is recorded FAILED with its error and the next one runs.
pub async fn run_queued(
    pool: &PgPool,
    settings: &ReconcileConfig,
    budget: std::time::Duration,
) -> Result<Vec<QueuedOutcome>, StoreError> {
    let clock = Instant::now();
    let mut done = Vec::new();
    while clock.elapsed() < budget {
        let Some(request) = requests::claim_next(pool, STALE_REQUEST).await? else {
            break;
        };
        let window = AccountWindow {
            client_id: request.client_id.clone(),
            account_id: request.account_id.clone(),
            start: request.window_start,
            end: request.window_end,
            as_of: request.as_of,
            trigger: "api",
        };
        let error = match reconcile_account_as(pool, settings, &window, request.id).await {
            Ok(_) => None,
            Err(e) => {
                tracing::error!(run_id = %request.id, error = %e, "queued reconciliation failed");
                Some(e.to_string())
            }
        };
        requests::finish(pool, request.id, error.as_deref()).await?;
        done.push(QueuedOutcome {
            run_id: request.id,
            account_id: request.account_id,
            error,
        });
    }
    Ok(done)
}

/// `reconcile_account`, storing the run under `run_id`.
pub async fn reconcile_account_as(
    pool: &PgPool,
    settings: &ReconcileConfig,
    w: &AccountWindow,
    run_id: Uuid,
) -> Result<RunResult, RunError> {
    let started_at = Utc::now();
    let mut timings = Vec::new();
    let since = |clock: Instant| clock.elapsed().as_secs_f64() * 1000.0;

    // Both sides are read `drift` days beyond the window, so that a pair straddling the window's
    // edge still matches; only what is booked inside the window is reported. The ledger's own
    // checks run in the database meanwhile.
    let (from, to) = load_range(w.start, w.end, settings);
    let config = MatchConfig {
        date_drift_days: settings.date_drift_days,
        grace_days: settings.grace_days,
        window_end: w.as_of,
    };
    let load_and_match = async {
        let clock = Instant::now();
        let (lines, items) = tokio::try_join!(
            store::load_statement_lines(pool, &w.account_id, from, to),
            store::load_ledger_items(pool, &w.account_id, from, to)
        )?;
        let loaded = since(clock);
        let clock = Instant::now();
        let outcome = matching::match_statement_lines(&lines, &items, &config);
        Ok::<_, StoreError>((lines, items, outcome, loaded, since(clock)))
    };
    let checks = async {
        let clock = Instant::now();
        let checks = invariants::check_account(pool, &w.account_id).await?;
        Ok::<_, StoreError>((checks, since(clock)))
    };
    let ((lines, items, outcome, load_ms, match_ms), (checks, checks_ms)) =
        tokio::try_join!(load_and_match, checks)?;
    timings.push(("load", load_ms));
    timings.push(("match", match_ms));
    timings.push(("checks (concurrent)", checks_ms));
    let clock = Instant::now();

    let inside = |d: NaiveDate| d >= w.start && d <= w.end;
    let line_date: HashMap<i64, NaiveDate> = lines.iter().map(|l| (l.id, l.booked)).collect();
    let item_date: HashMap<Uuid, NaiveDate> =
        items.iter().map(|i| (i.transaction_id, i.booked)).collect();
    let MatchOutcome {
        matches,
        discrepancies,
        pending_ledger,
    } = outcome;
    let matches: Vec<_> = matches
        .into_iter()
        .filter(|m| {
            line_date.get(&m.line_id).is_some_and(|d| inside(*d))
                || m.transaction_ids
                    .iter()
                    .any(|t| item_date.get(t).is_some_and(|d| inside(*d)))
        })
        .collect();
    let day_of = |d: &Discrepancy| match (d.line_id, d.transaction_ids.first()) {
        (Some(line), _) => line_date.get(&line).copied(),
        (None, Some(tx)) => item_date.get(tx).copied(),
        (None, None) => None,
    };
    let discrepancies: Vec<Discrepancy> = discrepancies
        .into_iter()
        .filter(|d| day_of(d).is_some_and(inside))
        .collect();
    let totals = kind_totals(discrepancies.iter())?;
    let mut findings: Vec<Finding> = discrepancies
        .into_iter()
        .map(|d| {
            let kind = d.kind.as_str();
            Finding {
                client_id: w.client_id.clone(),
                account_id: Some(w.account_id.clone()),
                kind: kind.into(),
                fingerprint: fingerprint(kind, &w.account_id, d.line_id, &d.transaction_ids),
                booked_on: day_of(&d),
                statement_line_id: d.line_id,
                transaction_ids: d.transaction_ids,
                expected: d.expected,
                actual: d.actual,
                currency: Some(d.currency),
                detail: d.detail,
                data: json!({}),
            }
        })
        .collect();
    findings.extend(internal_findings(pool, &checks, Some((&w.account_id, &w.client_id))).await?);

    let lines_in = lines.iter().filter(|l| inside(l.booked)).count();
    let items_in = items.iter().filter(|i| inside(i.booked)).count();
    let matched_lines = matches
        .iter()
        .filter(|m| line_date.get(&m.line_id).is_some_and(|d| inside(*d)))
        .count();
    let matched_items: usize = matches
        .iter()
        .flat_map(|m| &m.transaction_ids)
        .filter(|t| item_date.get(t).is_some_and(|d| inside(*d)))
        .count();
    let mut by_rule: std::collections::BTreeMap<&str, usize> = Default::default();
    for m in &matches {
        *by_rule.entry(m.rule.as_str()).or_default() += 1;
    }
    let finished_at = Utc::now();
    let mut report = json!({
        "runId": run_id,
        "accountId": w.account_id,
        "trigger": w.trigger,
        "window": {"startDate": w.start, "endDate": w.end},
        "asOf": w.as_of,
        "settings": {"dateDriftDays": settings.date_drift_days, "graceDays": settings.grace_days},
        "startedAt": started_at,
        "finishedAt": finished_at,
        "counts": {
            "statementLines": lines_in,
            "ledgerItems": items_in,
            "matchedLines": matched_lines,
            "matchedLedgerItems": matched_items,
            "unmatchedLines": lines_in - matched_lines,
            "unmatchedLedgerItems": items_in - matched_items,
            "pendingLedgerItems": pending_ledger.iter().filter(|t| item_date.get(t).is_some_and(|d| inside(*d))).count(),
        },
        "matchesByRule": by_rule,
        "discrepancies": totals,
        "internalChecks": {
            "unbalancedTransactions": checks.unbalanced_transactions.len(),
            "balanceDrift": checks.balance_drift.len(),
            "missingLedgerEntries": checks.missing_ledger_entries.len(),
        },
    });
    let mut kinds: Vec<String> = DiscrepancyKind::ALL
        .iter()
        .map(|k| k.as_str().to_string())
        .collect();
    kinds.push("BALANCE_DRIFT".into());
    let scope = Scope::AccountWindow {
        client_id: w.client_id.clone(),
        account_id: w.account_id.clone(),
        from: w.start,
        to: w.end,
        kinds,
    };
    let record = RunRecord {
        id: run_id,
        client_id: w.client_id.clone(),
        account_id: Some(w.account_id.clone()),
        trigger: w.trigger,
        window_start: w.start,
        window_end: w.end,
        as_of: w.as_of,
        started_at,
        finished_at,
    };
    let stats = store::save_run(pool, &record, &report, &matches, &findings, &scope).await?;
    timings.push(("store", since(clock)));
    report["discrepancyChanges"] = json!({
        "new": stats.new, "seenAgain": stats.seen_again, "reopened": stats.reopened, "cleared": stats.cleared
    });
    Ok(RunResult {
        run_id,
        findings_by_kind: store::count_by_kind(&findings),
        report,
        stats,
        matched_lines,
        timings_ms: timings,
    })
}

/// The window the scheduled run reconciles on `today`: `window_days` up to yesterday, widened by
/// the grace period so that a missing posting is reported the day its grace ends.
pub fn scheduled_window(today: NaiveDate, settings: &ReconcileConfig) -> (NaiveDate, NaiveDate) {
    let end = days_before(today, 1);
    (
        days_before(today, settings.window_days + settings.grace_days),
        end,
    )
}

/// An account the scheduled run could not reconcile, and why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountFailure {
    pub client_id: String,
    pub account_id: String,
    pub error: String,
}

/// What the scheduled run did: one run per account that finished, the accounts that failed (each
/// with its error), and the ledger-wide run last.
#[derive(Debug)]
pub struct ScheduledRun {
    pub runs: Vec<RunResult>,
    pub failures: Vec<AccountFailure>,
}

/// The scheduled run: every account with imported statements, then the ledger-wide internal
/// checks and the recorded dead letters. One account that fails is recorded with its error (in the
/// result and in the ledger-wide run's report) and the run goes on to the next account, so one
/// client's data can never stop everyone's reconciliation.
pub async fn reconcile_all(
    pool: &PgPool,
    settings: &ReconcileConfig,
    today: NaiveDate,
) -> Result<ScheduledRun, anyhow::Error> {
    let (start, end) = scheduled_window(today, settings);
    let mut runs = Vec::new();
    let mut failures = Vec::new();
    for (account_id, client_id) in store::accounts_with_statements(pool).await? {
        let window = AccountWindow {
            client_id,
            account_id,
            start,
            end,
            as_of: today,
            trigger: "schedule",
        };
        match reconcile_account(pool, settings, &window).await {
            Ok(run) => runs.push(run),
            Err(e) => {
                tracing::error!(account_id = %window.account_id, error = %e, "account not reconciled; going on with the next");
                failures.push(AccountFailure {
                    client_id: window.client_id,
                    account_id: window.account_id,
                    error: e.to_string(),
                });
            }
        }
    }
    runs.push(reconcile_internal(pool, today, &failures).await?);
    Ok(ScheduledRun { runs, failures })
}

/// At most this many waiting dead letters become findings in one run; beyond it the run reports the
/// first ones and clears no DEAD_LETTERED discrepancy (it did not look at every letter).
pub const MAX_DEAD_LETTER_FINDINGS: i64 = 10_000;

/// Ledger-wide invariants and the transfers that reached the dead-letter queue. Dead letters come
/// from their durable record (`dead_letters`, written by the `dead-letters` function as each one
/// arrives), never from reading the FIFO queue: each RECORDED letter whose transfer is not in the
/// ledger is a DEAD_LETTERED finding, so a DEAD_LETTERED discrepancy is cleared only once its
/// letter was redriven or its transfer posted.
pub async fn reconcile_internal(
    pool: &PgPool,
    today: NaiveDate,
    failed_accounts: &[AccountFailure],
) -> Result<RunResult, anyhow::Error> {
    let started_at = Utc::now();
    let clock = Instant::now();
    let checks = invariants::check(pool).await?;
    let mut findings = internal_findings(pool, &checks, None).await?;
    // Unless every waiting letter was read, DEAD_LETTERED findings are reported but none is cleared.
    let (letters, waiting, scan_error) = match dead_letters::waiting(pool, MAX_DEAD_LETTER_FINDINGS)
        .await
    {
        Ok((letters, total)) if total > letters.len() as i64 => {
            tracing::warn!(total, "more dead letters than one run reports");
            let error = format!(
                "{total} dead letters are waiting; this run reports the oldest {} and clears none",
                letters.len()
            );
            (letters, total, Some(error))
        }
        Ok((letters, total)) => (letters, total, None),
        Err(e) => {
            tracing::error!(error = %e, "dead letters not read; the other checks go on");
            (
                Vec::new(),
                0,
                Some(format!("reading the recorded dead letters: {e}")),
            )
        }
    };
    let mut fingerprints = std::collections::HashSet::new();
    for letter in &letters {
        let finding = dead_letter_finding(letter);
        // Two letters of one transfer (sent again after FIFO's dedup window) are one discrepancy.
        if fingerprints.insert((finding.client_id.clone(), finding.fingerprint.clone())) {
            findings.push(finding);
        }
    }
    let run_id = Uuid::now_v7();
    let mut report = json!({
        "runId": run_id,
        "accountId": null,
        "trigger": "schedule",
        "asOf": today,
        "startedAt": started_at,
        "finishedAt": Utc::now(),
        "internalChecks": {
            "unbalancedTransactions": checks.unbalanced_transactions.len(),
            "balanceDrift": checks.balance_drift.len(),
            "missingLedgerEntries": checks.missing_ledger_entries.len(),
            "currencyImbalance": checks.currency_imbalance.len(),
            "overdrawnAccounts": checks.overdrawn_accounts.len(),
            "deadLettered": waiting,
        },
        "deadLetterScanError": scan_error,
        "failedAccounts": failed_accounts,
    });
    let record = RunRecord {
        id: run_id,
        client_id: "system".into(),
        account_id: None,
        trigger: "schedule",
        window_start: today,
        window_end: today,
        as_of: today,
        started_at,
        finished_at: Utc::now(),
    };
    let scope = Scope::Kinds(
        INTERNAL_KINDS
            .iter()
            .filter(|k| scan_error.is_none() || **k != "DEAD_LETTERED")
            .map(|k| k.to_string())
            .collect(),
    );
    let stats = store::save_run(pool, &record, &report, &[], &findings, &scope).await?;
    report["discrepancyChanges"] = json!({
        "new": stats.new, "seenAgain": stats.seen_again, "reopened": stats.reopened, "cleared": stats.cleared
    });
    Ok(RunResult {
        run_id,
        findings_by_kind: store::count_by_kind(&findings),
        report,
        stats,
        matched_lines: 0,
        timings_ms: vec![("internal", clock.elapsed().as_secs_f64() * 1000.0)],
    })
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
    // belongs to the operators ("system").
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
            .unwrap_or_else(|| "system".into()),
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
        kind: "DEAD_LETTERED".into(),
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

#[cfg(test)]
mod tests {
    use rust_decimal::Decimal;

    use super::*;

    fn missing(amount: Decimal) -> Discrepancy {
        Discrepancy {
            kind: DiscrepancyKind::MissingInLedger,
            line_id: Some(1),
            transaction_ids: vec![],
            expected: None,
            actual: Some(amount),
            currency: "USD".into(),
            detail: String::new(),
        }
    }

    #[test]
    fn report_totals_add_exactly_or_refuse_to_overflow() {
        let ok = kind_totals([missing(Decimal::new(150, 2)), missing(Decimal::new(-50, 2))].iter())
            .unwrap();
        assert_eq!(ok["MISSING_IN_LEDGER"]["totals"]["USD"], "1.00");
        assert_eq!(ok["MISSING_IN_LEDGER"]["count"], 2);
        // Two lines stored before amounts were bounded: the sum does not fit, and says so.
        let err = kind_totals([missing(Decimal::MAX), missing(Decimal::MAX)].iter()).unwrap_err();
        assert!(err.to_string().contains("overflow"), "{err}");
        let mismatch = Discrepancy {
            kind: DiscrepancyKind::AmountMismatch,
            expected: Some(Decimal::MIN),
            actual: Some(Decimal::MAX),
            ..missing(Decimal::ONE)
        };
        assert!(kind_totals([mismatch].iter()).is_err());
    }

    #[test]
    fn a_gross_sum_that_cannot_fit_refuses_summarize_but_not_the_report() {
        let both = [missing(Decimal::MAX), missing(-Decimal::MAX)];
        let report = kind_totals(both.iter()).unwrap();
        assert_eq!(report["MISSING_IN_LEDGER"]["totals"]["USD"], "0.00");
        let outcome = MatchOutcome {
            discrepancies: both.to_vec(),
            ..MatchOutcome::default()
        };
        let err = matching::summarize(&outcome).unwrap_err();
        assert!(err.to_string().contains("gross total"), "{err}");
    }
}
