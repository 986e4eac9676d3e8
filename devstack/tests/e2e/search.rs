//! Transaction search (`GET /transactions`) and export (`GET /transactions/export`) against the
//! real stack: every filter, combinations, pages while transactions keep arriving, another client's
//! transactions never visible, every bad input a 400 problem naming its parameter, CSV cells
//! neutralised, JSON lines, and the export cap.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use http::StatusCode;
use serde_json::{Value, json};
use shared::testkit::client::TestClient;

use crate::helpers::Stack;
use crate::reconciliation::{open, today};

const SEARCH: &str = "/api/v1/transactions";
const EXPORT: &str = "/api/v1/transactions/export";

impl Stack {
    async fn pay(&self, key: &str, src: &str, dst: &str, amount: &str, extra: Value) -> Value {
        let mut tx = json!({"source_account_id": src, "destination_account_id": dst,
            "amount": amount, "currency": "USD"});
        if let (Some(tx), Value::Object(extra)) = (tx.as_object_mut(), extra) {
            tx.extend(extra);
        }
        self.accepted(SEARCH, &json!({"transaction": tx, "idempotencyKey": key}))
            .await
    }
}

/// The idempotency keys of a search's page, in order (asserting a 200).
async fn keys(api: &TestClient, query: &str) -> Vec<String> {
    let res = api.get(&format!("{SEARCH}?{query}")).await;
    assert_eq!(res.status, StatusCode::OK, "{query}: {}", res.text);
    res.body["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["idempotencyKey"].as_str().unwrap().to_string())
        .collect()
}

fn set(keys: &[&str]) -> BTreeSet<String> {
    keys.iter().map(|k| k.to_string()).collect()
}

async fn key_set(api: &TestClient, query: &str) -> BTreeSet<String> {
    keys(api, query).await.into_iter().collect()
}

fn encode(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        .replace('+', "%2B")
}

/// A funded world of every kind of transaction: transfers with references and metadata, a
/// three-leg payment, a FAILED transfer, a hold and its void, a refund, a backdated transfer and an
/// adjusting transfer (a discrepancy resolved with `adjust`).
async fn ledger_of_every_kind(s: &Stack) {
    open(s, &["world", "bank", "suspense-demo"]).await;
    for id in ["alice", "bob", "carol", "fees"] {
        s.open(id, "0").await;
    }
    let none = json!({});
    s.pay(
        "fund",
        "world",
        "alice",
        "500.00",
        json!({"reference": "fund-1", "metadata": {"order": "o-1", "channel": "web"}}),
    )
    .await;
    s.pay(
        "old",
        "world",
        "carol",
        "1.00",
        json!({"effectiveAt": (Utc::now() - Duration::days(3)).to_rfc3339()}),
    )
    .await;
    s.drain().await;
    s.pay(
        "pay-1",
        "alice",
        "bob",
        "10.00",
        json!({"reference": "inv-100", "metadata": {"order": "o-2"}}),
    )
    .await;
    s.pay(
        "pay-2",
        "alice",
        "bob",
        "20.00",
        json!({"reference": "inv-101"}),
    )
    .await;
    s.pay(
        "pay-3",
        "bob",
        "alice",
        "5.00",
        json!({"reference": "INV_1%x"}),
    )
    .await;
    s.pay("fail-1", "carol", "alice", "1000.00", none.clone())
        .await;
    s.accepted(
        SEARCH,
        &json!({"transaction": {"currency": "USD", "reference": "card-1", "legs": [
            {"source_account_id": "alice", "destination_account_id": "bob", "amount": "3.00"},
            {"source_account_id": "alice", "destination_account_id": "fees", "amount": "1.00"}]},
            "idempotencyKey": "legs-1"}),
    )
    .await;
    let expires = (Utc::now() + Duration::hours(1)).to_rfc3339();
    let hold = s
        .accepted(
            "/api/v1/holds",
            &json!({"hold": {"source_account_id": "alice", "destination_account_id": "bob",
                "amount": "7.00", "expiresAt": expires}, "idempotencyKey": "hold-1"}),
        )
        .await;
    s.drain().await;
    let hold = hold["transactionId"].as_str().unwrap();
    s.accepted(
        &format!("/api/v1/holds/{hold}/void"),
        &json!({"idempotencyKey": "void-1"}),
    )
    .await;
    let pay1 = s.status_of("pay-1").await["transactionId"]
        .as_str()
        .unwrap()
        .to_string();
    s.accepted(
        &format!("/api/v1/transactions/{pay1}/refunds"),
        &json!({"idempotencyKey": "refund-1", "amount": "2.00"}),
    )
    .await;
    // A bank line the ledger does not know, resolved by an adjusting transfer.
    let t = today().to_string();
    let imported = s
        .api
        .post(
            "/api/v1/statements",
            &json!({"accountId": "bank", "lines": [{"id": "b1", "bookedDate": t,
                "amount": "12.00", "currency": "USD"}]}),
        )
        .await;
    assert_eq!(imported.status, StatusCode::CREATED, "{}", imported.text);
    let run = s
        .api
        .post(
            "/api/v1/accounts/bank/reconcile",
            &json!({"startDate": t, "endDate": t}),
        )
        .await;
    assert_eq!(run.status, StatusCode::CREATED, "{}", run.text);
    let list = s.api.get("/api/v1/discrepancies?status=OPEN").await.body;
    let id = list["discrepancies"][0]["id"].as_str().unwrap();
    let resolved = s
        .api
        .post(
            &format!("/api/v1/discrepancies/{id}/resolve"),
            &json!({"status": "RESOLVED", "action": "adjust"}),
        )
        .await;
    assert_eq!(resolved.status, StatusCode::OK, "{}", resolved.text);
    s.drain().await;
    assert_eq!(s.status_of("fail-1").await["status"], "FAILED");
    assert_eq!(s.status_of("refund-1").await["status"], "COMPLETED");
    assert_eq!(s.status_of("void-1").await["status"], "COMPLETED");
}

const CLIENT_KEYS: [&str; 10] = [
    "fund", "old", "pay-1", "pay-2", "pay-3", "fail-1", "legs-1", "hold-1", "void-1", "refund-1",
];

#[tokio::test]
async fn every_filter_alone_and_combined() {
    let s = Stack::start().await;
    ledger_of_every_kind(&s).await;
    let api = &s.api;

    // No filter: every transaction, newest first, each item as GET /transactions/{id} shows it.
    let all = api.get(SEARCH).await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text);
    let items = all.body["transactions"].as_array().unwrap();
    assert_eq!(items.len(), CLIENT_KEYS.len() + 1, "{}", all.text);
    assert_eq!(all.body["nextCursor"], Value::Null);
    let posted: Vec<(String, String)> = items
        .iter()
        .map(|t| {
            (
                t["transaction"]["postedAt"].as_str().unwrap().to_string(),
                t["transactionId"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut sorted = posted.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(
        posted.iter().map(|p| &p.0).collect::<Vec<_>>(),
        sorted.iter().map(|p| &p.0).collect::<Vec<_>>()
    );
    for item in items {
        let id = item["transactionId"].as_str().unwrap();
        let one = api.get(&format!("{SEARCH}/{id}")).await;
        assert_eq!(
            &one.body, item,
            "the search item is the transaction's own body"
        );
    }
    let by_key: HashMap<String, Value> = items
        .iter()
        .map(|t| (t["idempotencyKey"].as_str().unwrap().to_string(), t.clone()))
        .collect();
    let adjusting = by_key
        .keys()
        .find(|k| !CLIENT_KEYS.contains(&k.as_str()))
        .unwrap()
        .clone();

    // accountId: either side of the first leg, any leg of a multi-leg one, FAILED ones too.
    assert_eq!(key_set(api, "accountId=fees").await, set(&["legs-1"]));
    assert_eq!(
        key_set(api, "accountId=bob").await,
        set(&[
            "pay-1", "pay-2", "pay-3", "legs-1", "hold-1", "void-1", "refund-1"
        ])
    );
    assert_eq!(
        key_set(api, "accountId=carol").await,
        set(&["old", "fail-1"])
    );
    assert!(keys(api, "accountId=nobody").await.is_empty());
    assert_eq!(
        key_set(api, "status=FAILED").await,
        set(&["fail-1"]),
        "status"
    );
    assert_eq!(
        by_key["fail-1"]["failureCode"], "insufficient_funds",
        "failed items carry their code"
    );

    // reference exact and prefix; LIKE wildcards in a prefix are plain characters.
    assert_eq!(keys(api, "reference=inv-100").await, ["pay-1"]);
    assert!(keys(api, "reference=inv-10").await.is_empty());
    assert_eq!(
        key_set(api, "referencePrefix=inv-").await,
        set(&["pay-1", "pay-2"])
    );
    assert_eq!(keys(api, "referencePrefix=INV_").await, ["pay-3"]);
    assert!(keys(api, "referencePrefix=INV%25").await.is_empty());
    assert!(keys(api, "referencePrefix=inv_").await.is_empty());

    // amounts: the first leg's amount, both ends inclusive.
    let mut ten_to_twenty = set(&["pay-1", "pay-2"]);
    ten_to_twenty.insert(adjusting.clone()); // 12.00
    assert_eq!(
        key_set(api, "amountMin=10&amountMax=20.00").await,
        ten_to_twenty
    );
    assert_eq!(
        keys(api, "amountMax=1").await,
        ["old"],
        "legs-1's amount is its first leg's, 3.00"
    );
    assert_eq!(keys(api, "amountMin=1000").await, ["fail-1"]);

    // posted: from inclusive, to exclusive.
    let pay2_at: DateTime<Utc> = by_key["pay-2"]["transaction"]["postedAt"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let window = |from: DateTime<Utc>, to: DateTime<Utc>| {
        format!("postedFrom={}&postedTo={}", encode(from), encode(to))
    };
    let exact = keys(api, &window(pay2_at, pay2_at + Duration::microseconds(1))).await;
    assert!(exact.contains(&"pay-2".to_string()), "{exact:?}");
    assert!(
        !keys(api, &window(pay2_at - Duration::seconds(1), pay2_at))
            .await
            .contains(&"pay-2".into())
    );

    // effective: the value date, else when it posted.
    let two_days_ago = encode(Utc::now() - Duration::days(2));
    assert_eq!(
        keys(api, &format!("effectiveTo={two_days_ago}")).await,
        ["old"]
    );
    assert!(
        !keys(api, &format!("effectiveFrom={two_days_ago}"))
            .await
            .contains(&"old".into())
    );
    assert!(
        keys(api, &format!("postedTo={two_days_ago}"))
            .await
            .is_empty()
    );

    // metadata: every key must match (string values).
    assert_eq!(keys(api, "metadata%5Border%5D=o-1").await, ["fund"]);
    assert_eq!(
        keys(api, "metadata%5Border%5D=o-1&metadata%5Bchannel%5D=web").await,
        ["fund"]
    );
    assert!(
        keys(api, "metadata%5Border%5D=o-1&metadata%5Bchannel%5D=app")
            .await
            .is_empty()
    );
    assert!(keys(api, "metadata%5Bnothing%5D=o-1").await.is_empty());

    // kind: an adjustment is a transfer answering a discrepancy; `transfer` is every other one.
    assert_eq!(keys(api, "kind=hold").await, ["hold-1"]);
    assert_eq!(keys(api, "kind=void").await, ["void-1"]);
    assert_eq!(keys(api, "kind=refund").await, ["refund-1"]);
    assert!(keys(api, "kind=capture").await.is_empty());
    assert_eq!(keys(api, "kind=adjustment").await, vec![adjusting]);
    let transfers = key_set(api, "kind=transfer").await;
    assert_eq!(
        transfers,
        set(&["fund", "old", "pay-1", "pay-2", "pay-3", "fail-1", "legs-1"])
    );

    // Combined, ANDed.
    assert_eq!(
        key_set(
            api,
            "accountId=alice&status=COMPLETED&kind=transfer&amountMax=10"
        )
        .await,
        set(&["pay-1", "pay-3", "legs-1"])
    );
    assert_eq!(
        keys(api, "accountId=bob&referencePrefix=inv-&amountMin=15").await,
        ["pay-2"]
    );
    assert!(keys(api, "accountId=fees&status=FAILED").await.is_empty());
}

#[tokio::test]
async fn pages_have_no_gaps_or_duplicates_while_transactions_arrive() {
    let s = Stack::start().await;
    open(&s, &["world"]).await;
    s.open("alice", "0").await;
    for i in 0..7 {
        s.pay(&format!("p-{i}"), "world", "alice", "1.00", json!({}))
            .await;
    }
    s.drain().await;
    let before = key_set(&s.api, "limit=500").await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut arrivals = 0;
    loop {
        let query = match &cursor {
            Some(c) => format!("{SEARCH}?limit=2&accountId=alice&cursor={c}"),
            None => format!("{SEARCH}?limit=2&accountId=alice"),
        };
        let page = s.api.get(&query).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        for t in page.body["transactions"].as_array().unwrap() {
            seen.push(t["idempotencyKey"].as_str().unwrap().to_string());
        }
        // Newer transactions arrive between pages: they are above the cursor, never in a later page.
        s.pay(
            &format!("new-{arrivals}"),
            "world",
            "alice",
            "1.00",
            json!({}),
        )
        .await;
        s.drain().await;
        arrivals += 1;
        match page.body["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let unique: BTreeSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "no duplicates: {seen:?}");
    assert_eq!(unique, before, "exactly the transactions there were");
    assert_eq!(arrivals, 4);
    assert_eq!(keys(&s.api, "limit=500").await.len(), 7 + arrivals);
}

#[tokio::test]
async fn another_clients_transactions_are_never_visible() {
    let s = Stack::start().await;
    open(&s, &["world"]).await;
    s.open("alice", "0").await;
    s.pay(
        "mine",
        "world",
        "alice",
        "5.00",
        json!({"reference": "shared-ref"}),
    )
    .await;
    let other = s.api.as_other();
    for id in ["other-world", "other-bob"] {
        let res = other
            .post(
                "/api/v1/accounts",
                &json!({"id": id, "currency": "USD", "overdraftLimit": "unlimited"}),
            )
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    }
    let body = json!({"transaction": {"source_account_id": "other-world",
        "destination_account_id": "other-bob", "amount": "5.00", "currency": "USD",
        "reference": "shared-ref"}, "idempotencyKey": "mine"});
    assert_eq!(other.post(SEARCH, &body).await.status, StatusCode::ACCEPTED);
    // The other client names the demo client's account: recorded FAILED under the other client.
    let body = json!({"transaction": {"source_account_id": "alice",
        "destination_account_id": "other-bob", "amount": "1.00", "currency": "USD"},
        "idempotencyKey": "probe"});
    assert_eq!(other.post(SEARCH, &body).await.status, StatusCode::ACCEPTED);
    s.drain().await;

    assert_eq!(keys(&s.api, "").await, ["mine"]);
    assert_eq!(keys(&s.api, "accountId=alice").await, ["mine"]);
    assert_eq!(keys(&s.api, "reference=shared-ref").await, ["mine"]);
    assert!(keys(&s.api, "accountId=other-bob").await.is_empty());
    assert_eq!(key_set(&other, "").await, set(&["mine", "probe"]));
    assert_eq!(keys(&other, "accountId=alice").await, ["probe"]);
    let mine = s.api.get(SEARCH).await.body["transactions"][0]["transactionId"].clone();
    let theirs = other.get(SEARCH).await.body;
    assert!(!theirs.to_string().contains(mine.as_str().unwrap()));
    for format in ["csv", "jsonl"] {
        let export = other.get(&format!("{EXPORT}?format={format}")).await;
        assert_eq!(export.status, StatusCode::OK);
        assert!(!export.text.contains(mine.as_str().unwrap()));
    }
}

#[tokio::test]
async fn every_bad_input_is_a_problem_naming_its_parameter() {
    let s = Stack::start().await;
    for (route, query, code, field) in [
        (SEARCH, "amountMin=ten", "invalid_parameter", "amountMin"),
        (SEARCH, "amountMax=1.2.3", "invalid_parameter", "amountMax"),
        (
            SEARCH,
            "amountMin=5&amountMax=4.99",
            "invalid_range",
            "amountMax",
        ),
        (
            SEARCH,
            "postedFrom=2026-13-01T00:00:00Z",
            "invalid_parameter",
            "postedFrom",
        ),
        (
            SEARCH,
            "effectiveFrom=tomorrow",
            "invalid_parameter",
            "effectiveFrom",
        ),
        (
            SEARCH,
            "effectiveFrom=2026-02-01T00:00:00Z&effectiveTo=2026-01-01T00:00:00Z",
            "invalid_range",
            "effectiveTo",
        ),
        (SEARCH, "kind=transfers", "invalid_parameter", "kind"),
        (SEARCH, "status=completed", "invalid_parameter", "status"),
        (SEARCH, "accountId=", "invalid_parameter", "accountId"),
        (
            SEARCH,
            "referencePrefix=",
            "invalid_parameter",
            "referencePrefix",
        ),
        (
            SEARCH,
            "cursor=bm90LWEtY3Vyc29y",
            "invalid_cursor",
            "cursor",
        ),
        (SEARCH, "cursor=", "invalid_cursor", "cursor"),
        (SEARCH, "limit=501", "invalid_limit", "limit"),
        (SEARCH, "sort=asc", "unknown_parameter", "sort"),
        (
            SEARCH,
            "metadata%5B%5D=x",
            "invalid_parameter",
            "metadata[]",
        ),
        (SEARCH, "kind=hold&kind=void", "invalid_parameter", "kind"),
        (SEARCH, "reference=%00", "nul_character", "reference"),
        (EXPORT, "", "missing_parameter", "format"),
        (EXPORT, "format=xml", "invalid_parameter", "format"),
        (EXPORT, "format=csv&limit=10", "unknown_parameter", "limit"),
        (
            EXPORT,
            "format=csv&amountMin=x",
            "invalid_parameter",
            "amountMin",
        ),
    ] {
        let res = s.api.get(&format!("{route}?{query}")).await;
        let body = res.assert_problem(StatusCode::BAD_REQUEST, code);
        assert_eq!(body["field"], field, "{route}?{query}: {}", res.text);
    }
    let res = s.api.anonymous().get(SEARCH).await;
    res.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    let res = s.api.anonymous().get(&format!("{EXPORT}?format=csv")).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn exports_are_safe_csv_or_json_lines_and_capped() {
    let s = Stack::start().await;
    open(&s, &["world"]).await;
    s.open("alice", "0").await;
    s.pay(
        "evil",
        "world",
        "alice",
        "2.00",
        json!({"reference": "=HYPERLINK(\"http://evil.example\")", "description": "@SUM(A1:A9)",
               "metadata": {"note": "-2+3"}}),
    )
    .await;
    for i in 0..4 {
        s.pay(&format!("e-{i}"), "world", "alice", "1.00", json!({}))
            .await;
    }
    s.drain().await;

    let csv = s.api.get(&format!("{EXPORT}?format=csv")).await;
    assert_eq!(csv.status, StatusCode::OK, "{}", csv.text);
    assert_eq!(csv.content_type(), "text/csv; charset=utf-8");
    assert_eq!(
        csv.headers["content-disposition"],
        "attachment; filename=\"transactions.csv\""
    );
    assert!(csv.headers.get("x-next-cursor").is_none());
    let mut reader = csv::Reader::from_reader(csv.bytes.as_ref());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header[0], "id");
    assert!(header.contains(&"reference".to_string()));
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 5);
    let evil = rows.iter().find(|r| r.iter().any(|c| c == "evil")).unwrap();
    let cell = |name: &str| evil[header.iter().position(|h| h == name).unwrap()].to_string();
    assert_eq!(cell("reference"), "'=HYPERLINK(\"http://evil.example\")");
    assert_eq!(cell("description"), "'@SUM(A1:A9)");
    assert_eq!(cell("amount"), "2.00");
    assert_eq!(cell("status"), "COMPLETED");
    for row in &rows {
        for c in row.iter() {
            assert!(!c.starts_with(['=', '+', '@']), "{c}");
        }
    }

    let jsonl = s
        .api
        .get(&format!("{EXPORT}?format=jsonl&amountMax=1"))
        .await;
    assert_eq!(jsonl.status, StatusCode::OK);
    assert_eq!(jsonl.content_type(), "application/x-ndjson");
    let lines: Vec<Value> = jsonl
        .text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    let page = s.api.get(&format!("{SEARCH}?amountMax=1")).await.body;
    assert_eq!(
        &Value::Array(lines),
        &page["transactions"],
        "the same items as the search"
    );

    // Capped at EXPORT_MAX_ROWS = 2: follow X-Next-Cursor (and Link) to the end.
    let mut clients = s.env.clients.clone();
    let mut config = (*clients.config).clone();
    config.export_max_rows = 2;
    clients.config = Arc::new(config);
    let capped = s.api.on(api::router(clients));
    let mut seen = Vec::new();
    let mut next = format!("{EXPORT}?format=jsonl&accountId=alice");
    let mut exports = 0;
    loop {
        let res = capped.get(&next).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text);
        let lines: Vec<Value> = res
            .text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(lines.len() <= 2, "{}", res.text);
        seen.extend(
            lines
                .iter()
                .map(|l| l["idempotencyKey"].as_str().unwrap().to_string()),
        );
        exports += 1;
        let Some(cursor) = res.headers.get("x-next-cursor") else {
            assert!(res.headers.get("link").is_none());
            break;
        };
        let cursor = cursor.to_str().unwrap();
        let link = res.headers["link"].to_str().unwrap();
        assert!(
            link.ends_with(&format!("cursor={cursor}>; rel=\"next\"")),
            "{link}"
        );
        next = link
            .trim_start_matches('<')
            .split('>')
            .next()
            .unwrap()
            .to_string();
    }
    assert_eq!(exports, 3, "2 + 2 + 1");
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!((seen.len(), unique.len()), (5, 5), "{seen:?}");
}
