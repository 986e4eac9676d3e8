//! Imported statements and their lines (a line an account already has, by external id, is skipped).

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::{PgPool, StoreError};
use crate::reconcile::statements::{ParsedLine, StatementFormat};

#[derive(Debug, Clone, PartialEq)]
pub struct ImportedStatement {
    pub statement_id: i64,
    /// External ids of the lines stored now (the others were already imported).
    pub imported: Vec<String>,
}

/// Stores a statement and its lines; lines whose external id the account already has are skipped.
#[allow(clippy::too_many_arguments)]
pub async fn import_statement(
    pool: &PgPool,
    client_id: &str,
    account_id: &str,
    format: StatementFormat,
    content_sha256: &str,
    source_account: Option<&str>,
    lines: &[ParsedLine],
    rejected: usize,
) -> Result<ImportedStatement, StoreError> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    let statement_id: i64 = tx
        .query_one(
            "INSERT INTO statements (client_id, account_id, format, content_sha256, source_account,
                 lines_imported, lines_duplicate, lines_rejected)
             VALUES ($1, $2, $3, $4, $5, 0, 0, $6) RETURNING id",
            &[
                &client_id,
                &account_id,
                &format.as_str(),
                &content_sha256,
                &source_account,
                &(rejected as i32),
            ],
        )
        .await?
        .get(0);
    let ids: Vec<&str> = lines.iter().map(|l| l.external_id.as_str()).collect();
    let booked: Vec<NaiveDate> = lines.iter().map(|l| l.booked).collect();
    let amounts: Vec<Decimal> = lines.iter().map(|l| l.amount).collect();
    let currencies: Vec<&str> = lines.iter().map(|l| l.currency.code()).collect();
    let references: Vec<Option<&str>> = lines.iter().map(|l| l.reference.as_deref()).collect();
    let descriptions: Vec<Option<&str>> = lines.iter().map(|l| l.description.as_deref()).collect();
    let rows = tx
        .query(
            "INSERT INTO statement_lines (statement_id, account_id, external_id, booked_on, amount,
                 currency, reference, description)
             SELECT $1, $2, u.* FROM unnest($3::text[], $4::date[], $5::numeric[], $6::text[],
                                             $7::text[], $8::text[]) AS u
             ON CONFLICT (account_id, external_id) DO NOTHING
             RETURNING external_id",
            &[
                &statement_id,
                &account_id,
                &ids,
                &booked,
                &amounts,
                &currencies,
                &references,
                &descriptions,
            ],
        )
        .await?;
    let imported: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    tx.execute(
        "UPDATE statements SET lines_imported = $2, lines_duplicate = $3 WHERE id = $1",
        &[
            &statement_id,
            &(imported.len() as i32),
            &((lines.len() - imported.len()) as i32),
        ],
    )
    .await?;
    tx.commit().await?;
    Ok(ImportedStatement {
        statement_id,
        imported,
    })
}
