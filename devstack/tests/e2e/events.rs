//! Every file in `events/` goes through the handler it is for, in the order a newcomer would use
//! them (the same files `cargo lambda invoke --data-file` and `sam local invoke -e` take).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use aws_lambda_events::event::sqs::SqsEvent;
use http::StatusCode;

use crate::helpers::Stack;

fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../events")
}

fn read(name: &str) -> String {
    std::fs::read_to_string(events_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

async fn invoke_api(s: &Stack, name: &str) -> (StatusCode, serde_json::Value) {
    let mut text = read(name);
    if name == "api/create-hold.json" {
        // The fixture's hold expires at a fixed instant; the test needs one in the future (and
        // within MAX_HOLD_DAYS), of the same length.
        let tomorrow =
            (chrono::Utc::now() + chrono::Duration::days(1)).format("%Y-%m-%dT%H:%M:%SZ");
        text = text.replace("2026-12-31T23:59:59Z", &tomorrow.to_string());
    }
    let req = lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    let (parts, body) = req.into_parts();
    let req = http::Request::from_parts(parts, axum::body::Body::from(body.to_vec()));
    s.api.send(req).await.parts()
}

async fn invoke_processor(s: &Stack, name: &str) -> Vec<String> {
    let event: SqsEvent =
        serde_json::from_str(&read(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    processor::handle_batch(&s.env.clients, event)
        .await
        .batch_item_failures
        .into_iter()
        .map(|f| f.item_identifier)
        .collect()
}

#[tokio::test]
async fn every_event_fixture_runs_through_its_handler() {
    let s = Stack::start().await;
    let mut used = BTreeSet::new();
    let mut api = async |name: &str, expected: StatusCode| {
        let file = format!("api/{name}.json");
        let (status, body) = invoke_api(&s, &file).await;
        assert_eq!(status, expected, "{file}: {body}");
        used.insert(file);
        body
    };

    api("health", StatusCode::OK).await;
    api("ready", StatusCode::OK).await;
    api("unauthorized", StatusCode::UNAUTHORIZED).await;
    api("create-account-funding", StatusCode::CREATED).await;
    api("create-account-alice", StatusCode::CREATED).await;
    api("create-account-bob", StatusCode::CREATED).await;
    assert_eq!(api("get-account", StatusCode::OK).await["id"], "alice");
    api("get-balance", StatusCode::OK).await;
    api("get-balance-as-of", StatusCode::OK).await;

    // The SQS fixture: world-usd -> bob 200.00, bob -> alice 25.50.
    assert!(
        invoke_processor(&s, "sqs/transfer-batch.json")
            .await
            .is_empty()
    );
    assert_eq!(s.balance("bob").await, "174.50");
    assert_eq!(s.balance("alice").await, "25.50");

    assert_eq!(
        api("submit-transaction", StatusCode::ACCEPTED).await["status"],
        "ACCEPTED"
    );
    api("submit-transaction-header-key", StatusCode::ACCEPTED).await;
    assert_eq!(s.drain().await, 2);
    assert_eq!(
        api("transaction-status", StatusCode::OK).await["status"],
        "COMPLETED"
    );
    assert_eq!(s.balance("alice").await, "95.25");
    let ledger = api("get-ledger", StatusCode::OK).await;
    assert_eq!(ledger["entries"].as_array().unwrap().len(), 3);
    api("queue-stats", StatusCode::OK).await;
    api("cache-stats", StatusCode::OK).await;

    // Reconciliation: import a statement for alice, reconcile her window, read the discrepancies.
    let imported = api("import-statement-csv", StatusCode::CREATED).await;
    assert_eq!(imported["imported"], 3);
    let report = api("reconcile-account", StatusCode::CREATED).await;
    assert!(report["runId"].is_string());
    api("list-discrepancies", StatusCode::OK).await;
    // The fixtures name runs and discrepancies by fixed ids, which this database does not have.
    api("get-reconciliation", StatusCode::NOT_FOUND).await;
    api("get-discrepancy", StatusCode::NOT_FOUND).await;
    api("resolve-discrepancy", StatusCode::NOT_FOUND).await;
    let bulk = api("resolve-discrepancies-bulk", StatusCode::OK).await;
    assert_eq!(bulk["failed"], 2);

    // Money movement: the top-up by id and a partial refund of it, a multi-leg payment, bulk
    // intake (each item on its own, then atomic), and a hold captured in part, then voided.
    assert_eq!(
        api("get-transaction", StatusCode::OK).await["transaction"]["kind"],
        "TRANSFER"
    );
    api("refund-transaction", StatusCode::ACCEPTED).await;
    api("submit-transaction-multi-leg", StatusCode::ACCEPTED).await;
    let bulk = api("submit-transactions-bulk", StatusCode::ACCEPTED).await;
    assert_eq!(bulk["accepted"], 3, "{bulk}");
    assert_eq!(
        api("submit-transactions-bulk-atomic", StatusCode::ACCEPTED).await["legs"],
        2
    );
    assert_eq!(s.drain().await, 6);
    assert_eq!(s.status_of("refund-0001").await["status"], "COMPLETED");
    assert_eq!(s.status_of("split-0001").await["status"], "COMPLETED");
    assert_eq!(s.status_of("split-topup-0001").await["status"], "COMPLETED");
    api("create-hold", StatusCode::ACCEPTED).await;
    s.drain().await;
    assert_eq!(api("get-hold", StatusCode::OK).await["status"], "ACTIVE");
    api("capture-hold", StatusCode::ACCEPTED).await;
    s.drain().await;
    api("void-hold", StatusCode::ACCEPTED).await;
    s.drain().await;
    let hold = s.status_of("hold-0001").await;
    let hold_id = hold["transactionId"].as_str().unwrap();
    let hold = s.api.get(&format!("/api/v1/holds/{hold_id}")).await.body;
    assert_eq!(
        (hold["status"].as_str(), hold["captured"].as_str()),
        (Some("VOIDED"), Some("20.00"))
    );
    let listed = api("list-account-holds", StatusCode::OK).await;
    assert_eq!(listed["holds"][0]["id"], hold_id);

    // Events out: an endpoint (its secret shown once), the events, and the fixtures that name an
    // endpoint, event or delivery by fixed ids this database does not have.
    let endpoint = api("create-webhook-endpoint", StatusCode::CREATED).await;
    assert!(endpoint["secret"].as_str().unwrap().starts_with("whsec_"));
    let listed = api("list-webhook-endpoints", StatusCode::OK).await;
    assert_eq!(listed["endpoints"][0]["id"], endpoint["id"]);
    for name in [
        "get-webhook-endpoint",
        "disable-webhook-endpoint",
        "enable-webhook-endpoint",
        "rotate-webhook-secret",
        "list-webhook-deliveries",
        "get-webhook-delivery",
        "get-event",
        "redeliver-event",
    ] {
        api(name, StatusCode::NOT_FOUND).await;
    }
    api("list-events", StatusCode::OK).await;
    // A balance monitor on alice, listed.
    let monitor = api("create-monitor", StatusCode::CREATED).await;
    assert_eq!(monitor["condition"], "BELOW");
    let monitors = api("list-monitors", StatusCode::OK).await;
    assert_eq!(monitors["monitors"][0]["id"], monitor["id"]);
    // The fixtures name a monitor this stack never created: not found, as for another client.
    assert_eq!(
        api("get-monitor", StatusCode::NOT_FOUND).await["code"],
        "monitor_not_found"
    );
    api("disable-monitor", StatusCode::NOT_FOUND).await;
    // Search and export: alice's completed transactions, newest first; the same as CSV.
    let found = api("search-transactions", StatusCode::OK).await;
    assert!(
        !found["transactions"].as_array().unwrap().is_empty(),
        "{found}"
    );
    api("export-transactions-csv", StatusCode::OK).await;
    let event: serde_json::Value =
        serde_json::from_str(&read("scheduler/reconcile-daily.json")).unwrap();
    let summary = reconciler::handle(&s.env.clients, event).await.unwrap();
    assert_eq!(summary["day"], "2026-11-25");
    let event: serde_json::Value =
        serde_json::from_str(&read("scheduler/reconcile-queued.json")).unwrap();
    let summary = reconciler::handle(&s.env.clients, event).await.unwrap();
    assert_eq!(summary["task"], "queued-reconciliations");
    // The dispatcher's schedule: one short run of its loop (whatever it sends to the fixture's
    // endpoint fails here, offline, and is retried later: an attempt, not an error).
    let mut settings = s.env.clients.config.webhooks.clone();
    settings.run_for = std::time::Duration::from_millis(200);
    let dispatcher =
        shared::services::dispatch::Dispatcher::new(s.env.clients.db.clone(), settings).unwrap();
    let event: serde_json::Value = serde_json::from_str(&read("scheduler/dispatch.json")).unwrap();
    let summary = dispatcher::handle(&dispatcher, event).await.unwrap();
    assert_eq!(summary["errors"], 0, "{summary}");

    // A batch with a malformed second message: it and the one after it are reported.
    let failures = invoke_processor(&s, "sqs/transfer-batch-with-malformed.json").await;
    assert_eq!(
        failures,
        [
            "7d2c3b4e-5f6a-4b7c-9d8e-0f1a2b3c4d5e",
            "8a0b4c3e-5d6f-4a1b-9c2d-3e4f5a6b7c8d"
        ]
    );
    // A batch from the dead-letter queue: two transfers of one message group and a malformed
    // message, all recorded; delivered again, nothing more is recorded.
    let event: SqsEvent = serde_json::from_str(&read("sqs/dead-letter-batch.json")).unwrap();
    for _ in 0..2 {
        let response = processor::dead_letters::handle(&s.env.clients, event.clone()).await;
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(s.count("SELECT count(*) FROM dead_letters").await, 3);
    }
    assert_eq!(
        s.count("SELECT count(*) FROM dead_letters WHERE client_id IS NULL")
            .await,
        1
    );
    let mut used: BTreeSet<String> = used.clone();
    used.insert("sqs/dead-letter-batch.json".into());
    used.insert("sqs/transfer-batch.json".into());
    used.insert("sqs/transfer-batch-with-malformed.json".into());
    used.insert("scheduler/reconcile-daily.json".into());
    used.insert("scheduler/reconcile-queued.json".into());
    used.insert("scheduler/dispatch.json".into());

    let mut on_disk = BTreeSet::new();
    // (events/cloudformation is exercised by the migrator's own tests.)
    for dir in ["api", "sqs", "scheduler"] {
        for entry in std::fs::read_dir(events_dir().join(dir)).unwrap() {
            on_disk.insert(format!(
                "{dir}/{}",
                entry.unwrap().file_name().to_string_lossy()
            ));
        }
    }
    assert_eq!(
        on_disk, used,
        "every fixture in events/ must be exercised here"
    );
    s.env.assert_invariants().await;
}
