use std::collections::HashSet;

use futures::future::join_all;
use rand::Rng;
use shared::testkit::{DEMO_CLIENT, TestEnv, TestOptions};

use crate::helpers::*;

/// Many batches at once between a few accounts in random directions: locks are taken in one sorted
/// statement, so no deadlock aborts a batch; whatever a batch reports as failed is retried (as SQS
/// would) until every transfer has an outcome, and the ledger still balances.
#[tokio::test]
async fn concurrent_batches_between_few_accounts_lose_nothing() {
    let env = TestEnv::with_options(TestOptions {
        pool_size: 8,
        ..Default::default()
    })
    .await;
    let accounts = ["a0", "a1", "a2", "a3", "a4"];
    for a in accounts {
        open(&env, DEMO_CLIENT, a, "USD", Some(100)).await;
    }
    open(&env, DEMO_CLIENT, "world", "USD", None).await;
    run(
        &env,
        &accounts.map(|a| message(&format!("fund-{a}"), "world", a, "500.00", "USD")),
    )
    .await;

    let mut rng = rand::rng();
    let batches: Vec<Vec<_>> = (0..40)
        .map(|b| {
            (0..10)
                .map(|i| {
                    let s = rng.random_range(0..accounts.len());
                    let d = (s + rng.random_range(1..accounts.len())) % accounts.len();
                    let cents: u32 = rng.random_range(1..20_000);
                    let amount = format!("{}.{:02}", cents / 100, cents % 100);
                    message(
                        &format!("b{b}-{i}"),
                        accounts[s],
                        accounts[d],
                        &amount,
                        "USD",
                    )
                })
                .collect()
        })
        .collect();

    let mut retries = 0;
    let mut pending: Vec<Vec<_>> = batches.clone();
    while !pending.is_empty() {
        let results = join_all(pending.iter().map(|batch| run(&env, batch))).await;
        let mut next = Vec::new();
        for (batch, response) in pending.iter().zip(results) {
            let failed: HashSet<String> = failures(&response).into_iter().collect();
            let retry: Vec<_> = batch
                .iter()
                .enumerate()
                .filter(|(i, _)| failed.contains(&format!("m{i}")))
                .map(|(_, m)| m.clone())
                .collect();
            if !retry.is_empty() {
                next.push(retry);
            }
        }
        retries += next.len();
        assert!(retries < 200, "batches keep failing");
        pending = next;
    }
    let total = batches.iter().map(Vec::len).sum::<usize>() as i64 + accounts.len() as i64;
    assert_eq!(
        count(&env, "SELECT count(*) FROM transactions").await,
        total
    );
    let completed = count(
        &env,
        "SELECT count(*) FROM transactions WHERE status = 'COMPLETED'",
    )
    .await;
    assert_eq!(
        count(&env, "SELECT count(*) FROM ledger_entries").await,
        completed * 2
    );
    assert!(
        completed > total / 2,
        "most transfers should post: {completed}/{total}"
    );
    env.assert_invariants().await;
}

/// Batches touching overlapping sets of accounts, all at once: every account's events come out of
/// the outbox (ordered by writing transaction id, then sequence) in the order its entries posted.
/// A batch waiting for one account must not have its transaction id assigned already (by a row
/// lock on another account), or its events for a third account would sort before those of a batch
/// that posted there earlier (see `store::account_locks`).
#[tokio::test]
async fn an_accounts_events_follow_its_posting_order() {
    let env = TestEnv::with_options(TestOptions {
        pool_size: 8,
        ..Default::default()
    })
    .await;
    let accounts = ["a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7"];
    for a in accounts {
        open(&env, DEMO_CLIENT, a, "USD", None).await;
    }
    let mut rng = rand::rng();
    let batches: Vec<Vec<_>> = (0..80)
        .map(|b| {
            (0..rng.random_range(1..3))
                .map(|i| {
                    let s = rng.random_range(0..accounts.len());
                    let d = (s + rng.random_range(1..accounts.len())) % accounts.len();
                    message(
                        &format!("o{b}-{i}"),
                        accounts[s],
                        accounts[d],
                        "1.00",
                        "USD",
                    )
                })
                .collect()
        })
        .collect();
    let mut pending = batches;
    for _ in 0..50 {
        if pending.is_empty() {
            break;
        }
        let results = join_all(pending.iter().map(|batch| run(&env, batch))).await;
        pending = pending
            .into_iter()
            .zip(results)
            .filter(|(_, r)| !failures(r).is_empty())
            .map(|(b, _)| b)
            .collect();
    }
    assert!(pending.is_empty(), "batches keep failing");
    let conn = env.clients.db.get().await.unwrap();
    for a in accounts {
        // The transactions touching the account, in posting order and in event order.
        let posted: Vec<String> = conn
            .query(
                "SELECT transaction_id::text FROM ledger_entries WHERE account_id = $1 ORDER BY id",
                &[&a],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let announced: Vec<String> = conn
            .query(
                "SELECT subject_id FROM events
                 WHERE type = 'transfer.completed'
                   AND (data -> 'transaction' ->> 'source_account_id' = $1
                        OR data -> 'transaction' ->> 'destination_account_id' = $1)
                 ORDER BY xid, seq",
                &[&a],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(announced, posted, "account {a}");
    }
}
