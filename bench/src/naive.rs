//! The baseline a straightforward implementation would be: one database transaction per message,
//! one statement per row. Same posting rules (shared::ledger::decide), same locking order.

use std::collections::HashMap;

use shared::accounts::OverdraftLimit;
use shared::ledger::{self, Decision, LockedAccount};
use shared::store;
use shared::transfers::TransferMessage;

/// One pooled connection; statements are prepared once per connection and reused, as any decent
/// driver setup would.
pub async fn connect(url: &str) -> anyhow::Result<deadpool_postgres::Object> {
    let pool = store::pool(url, 1)?;
    Ok(pool.get().await?)
}

pub async fn post(
    client: &mut deadpool_postgres::Object,
    m: &TransferMessage,
) -> anyhow::Result<()> {
    let t = &m.transfer;
    let mut ids = vec![
        t.source_account_id.as_str(),
        t.destination_account_id.as_str(),
    ];
    ids.sort_unstable();
    let tx = client.transaction().await?;
    let find = tx
        .prepare_cached("SELECT id FROM transactions WHERE client_id = $1 AND idempotency_key = $2")
        .await?;
    let lock = tx
        .prepare_cached(
            "SELECT a.client_id, a.currency::text, a.overdraft_limit, b.balance
             FROM account_balances b JOIN accounts a ON a.id = b.account_id
             WHERE b.account_id = $1 FOR UPDATE OF b",
        )
        .await?;
    let insert_tx = tx
        .prepare_cached(
            "INSERT INTO transactions (id, client_id, idempotency_key, request_hash, source_account_id,
                 destination_account_id, amount, currency, reference, description, metadata, status,
                 failure_code, accepted_at, posted_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, now())",
        )
        .await?;
    let insert_entry = tx
        .prepare_cached(
            "INSERT INTO ledger_entries (transaction_id, account_id, amount, currency, balance_after,
                 effective_at, posted_at)
             SELECT $1, $2, $3, $4, $5, t.at, t.at FROM (SELECT clock_timestamp() AS at) t",
        )
        .await?;
    let update_balance = tx
        .prepare_cached(
            "UPDATE account_balances SET balance = $2, version = version + 1, updated_at = now()
             WHERE account_id = $1",
        )
        .await?;
    let existing = tx
        .query_opt(&find, &[&m.client_id, &m.idempotency_key])
        .await?;
    if existing.is_some() {
        tx.commit().await?;
        return Ok(());
    }
    let mut accounts = HashMap::new();
    for id in ids {
        if let Some(r) = tx.query_opt(&lock, &[&id]).await? {
            accounts.insert(
                id.to_string(),
                LockedAccount {
                    owner_client_id: r.get(0),
                    currency: r.get(1),
                    overdraft_limit: OverdraftLimit::from_column(r.get(2)),
                    balance: r.get(3),
                    pending: rust_decimal::Decimal::ZERO,
                },
            );
        }
    }
    let mut book = ledger::Book::of_accounts(accounts, chrono::Utc::now());
    let decision = ledger::decide(m, &mut book);
    let (status, failure) = match decision {
        Decision::Post(_) => ("COMPLETED", None),
        Decision::Reject(code) => ("FAILED", Some(code.as_str())),
    };
    tx.execute(
        &insert_tx,
        &[
            &m.transaction_id,
            &m.client_id,
            &m.idempotency_key,
            &m.request_hash,
            &t.source_account_id.as_str(),
            &t.destination_account_id.as_str(),
            &t.amount,
            &t.currency.code(),
            &t.reference,
            &t.description,
            &t.metadata,
            &status,
            &failure,
            &m.accepted_at,
        ],
    )
    .await?;
    if let Decision::Post(decided) = decision {
        let p = &decided.postings[0];
        for (account, amount, after) in [
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
        ] {
            tx.execute(
                &insert_entry,
                &[
                    &m.transaction_id,
                    &account,
                    &amount,
                    &t.currency.code(),
                    &after,
                ],
            )
            .await?;
            tx.execute(&update_balance, &[&account, &after]).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}
