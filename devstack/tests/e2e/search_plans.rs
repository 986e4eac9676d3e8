//! The search's plans on a table of realistic size: 200,000 transactions (two clients, 1,000
//! accounts, references, metadata, multi-leg, FAILED, holds, voids, refunds, backdated ones)
//! written by generate_series. Each filter must be served by its V10 index, never by a scan of
//! `transactions`, and a page deep in the history must start at its cursor. The plans are printed
//! (`cargo test -p devstack --test e2e search_plans -- --nocapture`).

use chrono::{DateTime, Utc};
use serde_json::json;
use shared::ledger::TransferStatus;
use shared::store::search::{Position, SearchFilter, SearchKind, explain_search};
use shared::testkit::TestEnv;
use uuid::Uuid;

const ROWS: &str = "
INSERT INTO transactions (id, client_id, idempotency_key, request_hash, source_account_id,
    destination_account_id, amount, currency, reference, metadata, status, failure_code,
    accepted_at, posted_at, kind, parent_id, effective_at, legs)
SELECT gen_random_uuid(),
       CASE WHEN i % 10 = 0 THEN 'other' ELSE 'demo' END,
       'k-' || i, 'h', 'acct-' || (i % 1000), 'acct-' || ((i + 1 + i / 1000) % 1000 + 1000),
       (i % 50000) / 100.0 + 1, 'USD',
       CASE WHEN i % 3 = 0 THEN 'inv-' || i END,
       CASE WHEN i % 5 = 0 THEN jsonb_build_object('order', 'o-' || i, 'channel', 'web')
            ELSE '{}'::jsonb END,
       CASE WHEN i % 20 = 0 THEN 'FAILED' ELSE 'COMPLETED' END,
       CASE WHEN i % 20 = 0 THEN 'insufficient_funds' END,
       now() - (200000 - i) * interval '1 second', now() - (200000 - i) * interval '1 second',
       CASE i % 50 WHEN 1 THEN 'HOLD' WHEN 2 THEN 'VOID' WHEN 3 THEN 'REFUND' ELSE 'TRANSFER' END,
       CASE WHEN i % 50 IN (2, 3) THEN gen_random_uuid() END,
       CASE WHEN i % 100 = 7 THEN now() - interval '30 days' END,
       CASE WHEN i % 25 = 4 THEN jsonb_build_array(
           jsonb_build_object('leg', 0, 'source_account_id', 'acct-' || (i % 1000),
                              'destination_account_id', 'acct-' || ((i + 1 + i / 1000) % 1000 + 1000),
                              'amount', '1.00', 'currency', 'USD'),
           jsonb_build_object('leg', 1, 'source_account_id', 'acct-' || (i % 1000),
                              'destination_account_id', 'fees-' || (i % 7),
                              'amount', '0.10', 'currency', 'USD')) END
FROM generate_series(1, 200000) i;
ANALYZE transactions;";

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

#[tokio::test]
async fn every_filter_uses_its_index_on_200k_transactions() {
    let env = TestEnv::new().await;
    let admin = env.admin_db.get().await.unwrap();
    admin.batch_execute(ROWS).await.unwrap();
    let deep: (DateTime<Utc>, Uuid) = {
        let r = admin
            .query_one(
                "SELECT posted_at, id FROM transactions WHERE client_id = 'demo'
                 ORDER BY posted_at DESC, id DESC OFFSET 150000 LIMIT 1",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    let window_end: DateTime<Utc> = admin
        .query_one("SELECT now() - interval '100000 seconds'", &[])
        .await
        .unwrap()
        .get(0);
    let f = SearchFilter::default;
    let cases: Vec<(&str, SearchFilter, Option<Position>, &[&str])> = vec![
        ("no filter", f(), None, &["transactions_search_idx"]),
        (
            "a page 150,000 rows deep",
            f(),
            Some(Position {
                posted_at: deep.0,
                id: deep.1,
            }),
            &["transactions_search_idx"],
        ),
        (
            "accountId",
            SearchFilter {
                account_id: Some("acct-5".into()),
                ..f()
            },
            None,
            &[
                "transactions_source_idx",
                "transactions_destination_idx",
                "transactions_legs_idx",
            ],
        ),
        (
            "accountId only in legs",
            SearchFilter {
                account_id: Some("fees-3".into()),
                ..f()
            },
            None,
            &["transactions_legs_idx"],
        ),
        (
            "reference",
            SearchFilter {
                reference: Some("inv-120003".into()),
                ..f()
            },
            None,
            &["transactions_reference_idx"],
        ),
        (
            "referencePrefix",
            SearchFilter {
                reference_prefix: Some("inv-1200".into()),
                ..f()
            },
            None,
            &["transactions_reference_idx"],
        ),
        (
            "metadata",
            SearchFilter {
                metadata: Some(json!({"order": "o-120005"})),
                ..f()
            },
            None,
            &["transactions_metadata_idx"],
        ),
        (
            "posted window",
            SearchFilter {
                posted_from: Some(at("2000-01-01T00:00:00Z")),
                posted_to: Some(window_end),
                ..f()
            },
            None,
            &["transactions_search_idx"],
        ),
        (
            "status, kind, amounts, effective (checked along the order)",
            SearchFilter {
                status: Some(TransferStatus::Completed),
                kind: Some(SearchKind::Hold),
                amount_min: Some(10.into()),
                effective_to: Some(window_end),
                ..f()
            },
            None,
            &["transactions_search_idx"],
        ),
        (
            "accountId and status FAILED",
            SearchFilter {
                account_id: Some("acct-5".into()),
                status: Some(TransferStatus::Failed),
                ..f()
            },
            None,
            &["transactions_source_idx", "transactions_destination_idx"],
        ),
    ];
    for (name, filter, after, indexes) in cases {
        let plan = explain_search(&env.clients.db, "demo", &filter, 50, after)
            .await
            .unwrap();
        println!("--- {name}\n{plan}\n");
        assert!(
            !plan.contains("Seq Scan on transactions"),
            "{name} scans the table:\n{plan}"
        );
        for index in indexes {
            assert!(plan.contains(index), "{name} does not use {index}:\n{plan}");
        }
    }
}
