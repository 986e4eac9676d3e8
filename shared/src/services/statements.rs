//! Importing a statement: parse it, refuse it whole if a line is bad (unless the caller asked for
//! best effort), store the good lines, and say what happened to each line.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::reconcile::statements::{
    self, LineError, ParseOptions, ParsedLine, StatementError, StatementFormat,
};
use crate::store::statements as store;
use crate::store::{PgPool, StoreError};

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LineResult {
    pub line: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// `imported`, `duplicate` (already imported), `rejected`, or `valid` (in a statement that was
    /// refused because of other lines).
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportReport {
    pub statement_id: Option<i64>,
    pub account_id: String,
    pub format: &'static str,
    pub imported: usize,
    pub duplicates: usize,
    pub rejected: usize,
    pub lines: Vec<LineResult>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file as a whole is unusable.
    #[error(transparent)]
    Statement(#[from] StatementError),
    /// Some lines are bad and best effort was not asked for: nothing was imported.
    #[error("{rejected} line(s) of the statement are invalid; nothing was imported")]
    Rejected {
        rejected: usize,
        lines: Vec<LineResult>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What happened to one parsed line: rejected with its error, or `status_of` the good line.
fn line_result(
    line: &Result<ParsedLine, LineError>,
    status_of: impl Fn(&ParsedLine) -> &'static str,
) -> LineResult {
    match line {
        Ok(l) => LineResult {
            line: l.line_no,
            external_id: Some(l.external_id.clone()),
            status: status_of(l),
            code: None,
            reason: None,
        },
        Err(e) => LineResult {
            line: e.line_no,
            external_id: None,
            status: "rejected",
            code: Some(e.code),
            reason: Some(e.reason.clone()),
        },
    }
}

pub fn content_sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[allow(clippy::too_many_arguments)]
pub async fn import_statement(
    pool: &PgPool,
    client_id: &str,
    account_id: &str,
    bytes: &[u8],
    format: StatementFormat,
    options: &ParseOptions,
    best_effort: bool,
) -> Result<ImportReport, ImportError> {
    let parsed = statements::parse_statement(bytes, format, options)?;
    let rejected = parsed.iter().filter(|l| l.is_err()).count();
    if rejected > 0 && !best_effort {
        let lines = parsed.iter().map(|l| line_result(l, |_| "valid")).collect();
        return Err(ImportError::Rejected { rejected, lines });
    }
    let good: Vec<_> = parsed
        .iter()
        .filter_map(|l| l.as_ref().ok())
        .cloned()
        .collect();
    let source_account = match format {
        StatementFormat::Camt053 => statements::camt053_account(bytes),
        _ => None,
    };
    let stored = store::import_statement(
        pool,
        client_id,
        account_id,
        format,
        &content_sha256(bytes),
        source_account.as_deref(),
        &good,
        rejected,
    )
    .await?;
    let imported: std::collections::HashSet<&str> =
        stored.imported.iter().map(String::as_str).collect();
    let lines: Vec<LineResult> = parsed
        .iter()
        .map(|l| {
            line_result(l, |ok| {
                if imported.contains(ok.external_id.as_str()) {
                    "imported"
                } else {
                    "duplicate"
                }
            })
        })
        .collect();
    Ok(ImportReport {
        statement_id: Some(stored.statement_id),
        account_id: account_id.to_string(),
        format: format.as_str(),
        imported: stored.imported.len(),
        duplicates: good.len() - stored.imported.len(),
        rejected,
        lines,
    })
}
