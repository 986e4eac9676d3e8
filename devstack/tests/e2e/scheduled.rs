//! The scheduled reconciler: accounts with statements, ledger-wide invariants, and the recorded dead
//! letters, with the redrive action.

use http::StatusCode;
use serde_json::json;
use shared::reconcile::discrepancies::DiscrepancyFilter;
use shared::reconcile::findings::FindingKind;
use shared::reconcile::workflow::DiscrepancyStatus;
use shared::store::discrepancies as store;
use shared::testkit::DEMO_CLIENT;

use crate::helpers::Stack;
use crate::reconciliation::{day, import_lines, open, post, transfer};

fn scheduled_event(offset_days: i64) -> serde_json::Value {
    json!({
        "version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa", "detail-type": "Scheduled Event",
        "source": "aws.scheduler", "account": "123456789012",
        "time": format!("{}T02:30:00Z", day(offset_days)), "region": "us-east-1",
        "resources": ["arn:aws:scheduler:us-east-1:123456789012:schedule/default/reconcile"], "detail": {}
    })
}

async fn kinds(s: &Stack, status: &str) -> Vec<String> {
    let filter = DiscrepancyFilter {
        status: Some(DiscrepancyStatus::parse(status).expect("a status")),
        ..Default::default()
    };
    let (rows, _) = store::list_discrepancies(&s.env.clients.db, DEMO_CLIENT, &filter, 100, None)
        .await
        .unwrap();
    let mut kinds: Vec<String> = rows.iter().map(|d| d.kind.to_string()).collect();
    kinds.sort();
    kinds
}

#[tokio::test]
async fn the_schedule_reconciles_accounts_checks_invariants_and_reports_dead_letters() {
    let s = Stack::start().await;
    open(&s, &["bank", "world", "customer"]).await;
    let env = &s.env;
    post(
        env,
        &[
            transfer("in-1", "world", "bank", "40.00", None),
            transfer("in-2", "world", "bank", "60.00", None),
        ],
    )
    .await;
    import_lines(
        env,
        "bank",
        &[("s1".into(), day(0), "40.00".into(), "USD", None)],
    )
    .await;

    // A valid transfer and two malformed messages reach the dead-letter queue: one still names its
    // client, the other is garbage (it goes to the operators, client "system"). The dead-letters
    // function records each and SQS deletes it.
    let dlq = env.clients.queue.for_url(&env.dlq_url);
    let stuck = transfer("stuck-1", "world", "customer", "9.99", None);
    let bodies = [
        (serde_json::to_string(&stuck).unwrap(), "world"),
        (
            r#"{"v":1,"clientId":"demo","surprise":true}"#.to_string(),
            "y",
        ),
        ("{not a transfer".to_string(), "x"),
    ];
    for (body, group) in bodies {
        dlq.send_message(&body, group, &uuid::Uuid::now_v7().simple().to_string())
            .await
            .unwrap();
    }
    assert_eq!(s.drain_dead_letters().await, 3);
    // A balance that drifted from its entries (planted as the schema owner, not the functions).
    let conn = env.admin_db.get().await.unwrap();
    conn.execute(
        "UPDATE account_balances SET balance = balance + 1 WHERE account_id = 'customer'",
        &[],
    )
    .await
    .unwrap();

    // Four days on, in-2 has been missing from the statement past its grace period.
    let summary = reconciler::handle(&env.clients, scheduled_event(4))
        .await
        .unwrap();
    assert_eq!(
        summary["window"],
        json!({"startDate": day(0), "endDate": day(3)})
    );
    assert_eq!(
        summary["runs"].as_array().unwrap().len(),
        2,
        "the bank account, then the internal checks"
    );
    assert_eq!(
        kinds(&s, "OPEN").await,
        [
            "BALANCE_DRIFT",
            "DEAD_LETTERED",
            "DEAD_LETTERED",
            "MISSING_IN_STATEMENT"
        ]
    );
    // The letters are in PostgreSQL, not in the queue any more.
    let stats = env.clients.queue.stats().await.unwrap();
    assert_eq!(stats.dead_letter_queue.unwrap().visible, 0);
    assert_eq!(
        s.count("SELECT count(*) FROM dead_letters WHERE status = 'RECORDED'")
            .await,
        3
    );
    assert_eq!(s.count("SELECT count(*) FROM discrepancies WHERE client_id = 'system' AND kind = 'DEAD_LETTERED'").await, 1);

    // Fix the drift (before anything posts on top of it: a posting carries the balance it finds
    // into balance_after).
    conn.execute(
        "UPDATE account_balances SET balance = balance - 1 WHERE account_id = 'customer'",
        &[],
    )
    .await
    .unwrap();

    // Redrive the good one; ignore the malformed one (it cannot be redriven).
    let (rows, _) = store::list_discrepancies(
        &env.clients.db,
        DEMO_CLIENT,
        &DiscrepancyFilter {
            kind: Some(FindingKind::DEAD_LETTERED),
            ..Default::default()
        },
        10,
        None,
    )
    .await
    .unwrap();
    let good = rows
        .iter()
        .find(|d| d.data["redrivable"] == true)
        .expect("the valid transfer is redrivable");
    assert_eq!(good.transaction_ids, [stuck.transaction_id]);
    let (status, body) = s
        .api
        .post(
            &format!("/api/v1/discrepancies/{}/resolve", good.id),
            &json!({"status": "RESOLVED", "action": "redrive", "note": "fixed the account"}),
        )
        .await
        .parts();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["resolution"]["action"], "redrive");
    assert_eq!(s.drain().await, 1);
    assert_eq!(s.status_of("stuck-1").await["status"], "COMPLETED");
    assert_eq!(s.balance("customer").await, "9.99");
    assert_eq!(
        s.count("SELECT count(*) FROM dead_letters WHERE status = 'REDRIVEN'")
            .await,
        1
    );

    // The next run clears the drift; the malformed dead letter is still reported.
    reconciler::handle(&env.clients, scheduled_event(4))
        .await
        .unwrap();
    assert_eq!(
        kinds(&s, "OPEN").await,
        ["DEAD_LETTERED", "MISSING_IN_STATEMENT"]
    );
    let resolved = kinds(&s, "RESOLVED").await;
    assert_eq!(resolved, ["BALANCE_DRIFT", "DEAD_LETTERED"]);
    s.env.assert_invariants().await;
}

#[tokio::test]
async fn one_account_that_fails_is_recorded_and_the_run_goes_on() {
    let s = Stack::start().await;
    // "broken" sorts before "healthy": the failure comes first, and the run must still get past it.
    open(&s, &["broken", "healthy", "world"]).await;
    let env = &s.env;
    post(env, &[transfer("h-1", "world", "healthy", "40.00", None)]).await;
    for account in ["broken", "healthy"] {
        import_lines(
            env,
            account,
            &[(format!("{account}-1"), day(0), "40.00".into(), "USD", None)],
        )
        .await;
    }
    // Lines stored before statement amounts were bounded: their total does not fit in a decimal.
    let conn = env.clients.db.get().await.unwrap();
    conn.execute(
        "INSERT INTO statement_lines (statement_id, account_id, external_id, booked_on, amount, currency)
         SELECT st.id, 'broken', 'legacy-' || g, $1, 79228162514264337593543950335, 'USD'
         FROM statements st, generate_series(1, 2) g WHERE st.account_id = 'broken'",
        &[&day(0)],
    )
    .await
    .unwrap();

    let summary = reconciler::handle(&env.clients, scheduled_event(1))
        .await
        .expect("the scheduled run finishes");
    let failed = summary["failedAccounts"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{summary:#}");
    assert_eq!(failed[0]["accountId"], "broken");
    assert!(
        failed[0]["error"]
            .as_str()
            .unwrap()
            .contains("amount overflow"),
        "{summary:#}"
    );
    let runs = summary["runs"].as_array().unwrap();
    assert_eq!(
        runs.len(),
        2,
        "healthy, then the ledger-wide run: {summary:#}"
    );
    assert_eq!(runs[0]["accountId"], "healthy");
    // The ledger-wide run's stored report names the failure too.
    let report: serde_json::Value = conn
        .query_one(
            "SELECT report FROM reconciliation_runs WHERE account_id IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(report["failedAccounts"][0]["accountId"], "broken");

    // Through the API, the same window is refused with a stable code rather than a 5xx.
    let (status, body) = s
        .api
        .post(
            "/api/v1/accounts/broken/reconcile",
            &json!({"startDate": day(0), "endDate": day(0)}),
        )
        .await
        .parts();
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "amount_overflow");
}

#[tokio::test]
async fn a_window_too_large_to_answer_at_once_is_queued_and_completed_by_the_reconciler() {
    let mut s = Stack::start().await;
    // Anything above one line or entry is "too large" here.
    let mut clients = s.env.clients.clone();
    let mut config = (*clients.config).clone();
    config.reconcile.sync_max_items = 1;
    clients.config = std::sync::Arc::new(config);
    s.api = s.api.on(api::router(clients));
    open(&s, &["bank", "world"]).await;
    post(&s.env, &[transfer("q-1", "world", "bank", "40.00", None)]).await;
    import_lines(
        &s.env,
        "bank",
        &[("q-line".into(), day(0), "40.00".into(), "USD", None)],
    )
    .await;

    let (status, queued) = s
        .api
        .post(
            "/api/v1/accounts/bank/reconcile",
            &json!({"startDate": day(0), "endDate": day(0)}),
        )
        .await
        .parts();
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    assert_eq!(queued["status"], "QUEUED");
    let poll = queued["pollUrl"].as_str().unwrap().to_string();
    let (status, waiting) = s.api.get(&poll).await.parts();
    assert_eq!(
        (status, &waiting["status"]),
        (StatusCode::OK, &json!("QUEUED"))
    );
    // Another client does not see it.
    let other = s.api.as_other().get(&poll).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);

    let summary = reconciler::handle(&s.env.clients, json!({"task": reconciler::QUEUED_TASK}))
        .await
        .unwrap();
    assert_eq!(summary["runs"].as_array().unwrap().len(), 1, "{summary:#}");
    assert_eq!(summary["runs"][0]["error"], serde_json::Value::Null);
    let (status, done) = s.api.get(&poll).await.parts();
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["run"]["runId"], queued["runId"]);
    assert_eq!(done["run"]["counts"]["matchedLines"], 1, "{done:#}");
    // Nothing is left to run.
    let again = reconciler::handle(&s.env.clients, json!({"task": reconciler::QUEUED_TASK}))
        .await
        .unwrap();
    assert!(again["runs"].as_array().unwrap().is_empty());
}
