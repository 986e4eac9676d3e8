//! Reconciliation runs: an account's window (answered at once, or queued for the reconciler when it
//! is too big), the queued ones, and the scheduled run over every account plus the ledger-wide
//! checks. This only sequences: loading and saving are `store`, matching, scoping to the window,
//! findings and the report are the pure `reconcile` modules.

use std::time::Instant;

use chrono::{Days, NaiveDate, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::config::ReconcileConfig;
use crate::ledger::InvariantReport;
use crate::money::AmountOverflow;
use crate::reconcile::discrepancies::{RunRecord, Scope};
use crate::reconcile::findings::{self, Finding};
use crate::reconcile::matching::{self, MatchConfig};
use crate::reconcile::report::{
    AccountFailure, AccountRunReport, AccountWindow, DiscrepancyChanges, InternalChecks,
    LedgerRunReport, MatchSettings, ReportedWindow, RunTrigger, scope_to_window,
};
use crate::store::reconcile_requests as requests;
use crate::store::reconciliation as store;
use crate::store::runs;
use crate::store::{PgPool, StoreError, dead_letters, invariants};

/// A finished run: its id, its report (also stored, without `discrepancyChanges`), what storing it
/// changed, and how long each step took.
#[derive(Clone, Debug)]
pub struct RunResult {
    pub run_id: Uuid,
    pub report: Value,
    pub stats: DiscrepancyChanges,
    pub findings_by_kind: std::collections::BTreeMap<&'static str, usize>,
    pub matched_lines: usize,
    pub timings_ms: Vec<(&'static str, f64)>,
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

fn days_before(d: NaiveDate, n: u32) -> NaiveDate {
    d.checked_sub_days(Days::new(n.into())).unwrap_or(d)
}

fn days_after(d: NaiveDate, n: u32) -> NaiveDate {
    d.checked_add_days(Days::new(n.into())).unwrap_or(d)
}

fn millis_since(clock: Instant) -> f64 {
    clock.elapsed().as_secs_f64() * 1000.0
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

/// The window the scheduled run reconciles on `today`: `window_days` up to yesterday, widened by
/// the grace period so that a missing posting is reported the day its grace ends.
pub fn scheduled_window(today: NaiveDate, settings: &ReconcileConfig) -> (NaiveDate, NaiveDate) {
    let end = days_before(today, 1);
    (
        days_before(today, settings.window_days + settings.grace_days),
        end,
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

/// Reconciles one account's window and stores the run.
pub async fn reconcile_account(
    pool: &PgPool,
    settings: &ReconcileConfig,
    w: &AccountWindow,
) -> Result<RunResult, RunError> {
    reconcile_account_as(pool, settings, w, Uuid::now_v7()).await
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
        let loaded = millis_since(clock);
        let clock = Instant::now();
        let outcome = matching::match_statement_lines(&lines, &items, &config);
        Ok::<_, StoreError>((lines, items, outcome, loaded, millis_since(clock)))
    };
    let checks = async {
        let clock = Instant::now();
        let checks = invariants::check_account(pool, &w.account_id).await?;
        Ok::<_, StoreError>((checks, millis_since(clock)))
    };
    let ((lines, items, outcome, load_ms, match_ms), (checks, checks_ms)) =
        tokio::try_join!(load_and_match, checks)?;
    timings.push(("load", load_ms));
    timings.push(("match", match_ms));
    timings.push(("checks (concurrent)", checks_ms));
    let clock = Instant::now();

    let scoped = scope_to_window(w, &lines, &items, outcome)?;
    let mut found = scoped.findings;
    found.extend(internal_findings(pool, &checks, Some((&w.account_id, &w.client_id))).await?);
    let mut report = AccountRunReport {
        run_id,
        account_id: w.account_id.clone(),
        trigger: w.trigger,
        window: ReportedWindow {
            start_date: w.start,
            end_date: w.end,
        },
        as_of: w.as_of,
        settings: MatchSettings {
            date_drift_days: settings.date_drift_days,
            grace_days: settings.grace_days,
        },
        started_at,
        finished_at: Utc::now(),
        counts: scoped.counts,
        matches_by_rule: scoped.matches_by_rule,
        discrepancies: scoped.totals,
        internal_checks: InternalChecks::account(&checks),
        discrepancy_changes: None,
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
        finished_at: report.finished_at,
    };
    let stored = to_json(&report);
    let scope = Scope::account_window(w);
    let stats = runs::save_run(pool, &record, &stored, &scoped.matches, &found, &scope).await?;
    timings.push(("store", millis_since(clock)));
    report.discrepancy_changes = Some(stats);
    Ok(RunResult {
        run_id,
        report: to_json(&report),
        stats,
        findings_by_kind: findings::count_by_kind(&found),
        matched_lines: report.counts.matched_lines,
        timings_ms: timings,
    })
}

fn to_json(report: &impl serde::Serialize) -> Value {
    serde_json::to_value(report).expect("a report is plain data")
}

/// The ledger's own problems as findings, for one account (its owner known) or ledger-wide (the
/// owners read from the store).
async fn internal_findings(
    pool: &PgPool,
    report: &InvariantReport,
    account_owner: Option<(&str, &str)>,
) -> Result<Vec<Finding>, StoreError> {
    let accounts = match account_owner {
        Some(_) => Vec::new(),
        None => report.accounts_named(),
    };
    let mut owners = store::owners(pool, report.transactions_named(), accounts).await?;
    if let Some((account, owner)) = account_owner {
        owners.accounts.insert(account.into(), owner.into());
    }
    Ok(findings::invariant_findings(report, &owners))
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
            trigger: RunTrigger::Api,
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
) -> Result<ScheduledRun, StoreError> {
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
            trigger: RunTrigger::Schedule,
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
) -> Result<RunResult, StoreError> {
    let started_at = Utc::now();
    let clock = Instant::now();
    let checks = invariants::check(pool).await?;
    let mut found = internal_findings(pool, &checks, None).await?;
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
    found.extend(findings::dead_letter_findings(&letters));
    let run_id = Uuid::now_v7();
    let scope = Scope::ledger(scan_error.is_none());
    let mut report = LedgerRunReport {
        run_id,
        account_id: None,
        trigger: RunTrigger::Schedule,
        as_of: today,
        started_at,
        finished_at: Utc::now(),
        internal_checks: InternalChecks::ledger(&checks, waiting),
        dead_letter_scan_error: scan_error,
        failed_accounts: failed_accounts.to_vec(),
        discrepancy_changes: None,
    };
    let record = RunRecord {
        id: run_id,
        client_id: findings::SYSTEM_OWNER.into(),
        account_id: None,
        trigger: RunTrigger::Schedule,
        window_start: today,
        window_end: today,
        as_of: today,
        started_at,
        finished_at: Utc::now(),
    };
    let stats = runs::save_run(pool, &record, &to_json(&report), &[], &found, &scope).await?;
    report.discrepancy_changes = Some(stats);
    Ok(RunResult {
        run_id,
        report: to_json(&report),
        stats,
        findings_by_kind: findings::count_by_kind(&found),
        matched_lines: 0,
        timings_ms: vec![("internal", millis_since(clock))],
    })
}
