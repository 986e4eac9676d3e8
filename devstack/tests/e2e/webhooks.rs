//! Webhooks end to end (issue 12): a real HTTP receiver on a random port (axum, inside the test)
//! records every request and answers per a script; the dispatcher's own loop sends to it. Events
//! are written into the outbox directly (as posting does, in the writer's transaction).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::HeaderMap;
use http::StatusCode;
use serde_json::{Value, json};
use shared::config::WebhookConfig;
use shared::services::dispatch::Dispatcher;
use shared::testkit::{DEMO_CLIENT, OTHER_CLIENT};
use shared::webhooks::signature;

use crate::helpers::Stack;

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub at: Instant,
    pub event_id: String,
    pub event_type: String,
    pub signature: String,
    pub user_agent: String,
    pub content_type: String,
    pub body: Bytes,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// How the receiver answers the n-th request (0-based) on a path.
#[derive(Clone, Copy, Debug)]
pub enum Reply {
    Status(u16),
    /// Waits, then answers.
    After(Duration, u16),
}

type Script = Box<dyn Fn(&str, usize) -> Reply + Send + Sync>;

pub struct Receiver {
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    /// A receiver answering 200 to everything.
    pub async fn ok() -> Self {
        Self::start(|_, _| Reply::Status(200)).await
    }

    pub async fn start(script: impl Fn(&str, usize) -> Reply + Send + Sync + 'static) -> Self {
        let log: Arc<Mutex<Vec<Received>>> = Arc::default();
        let counts: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let script: Arc<Script> = Arc::new(Box::new(script));
        let (l, c, s) = (log.clone(), counts.clone(), script.clone());
        let app = axum::Router::new().fallback(
            move |uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
                let (log, counts, script) = (l.clone(), c.clone(), s.clone());
                async move {
                    let h = |name: &str| {
                        headers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_string()
                    };
                    let path = uri.path().to_string();
                    let n = {
                        let mut counts = counts.lock().unwrap();
                        let n = counts.entry(path.clone()).or_default();
                        *n += 1;
                        *n - 1
                    };
                    log.lock().unwrap().push(Received {
                        path: path.clone(),
                        at: Instant::now(),
                        event_id: h("ledger-event-id"),
                        event_type: h("ledger-event-type"),
                        signature: h("ledger-signature"),
                        user_agent: h("user-agent"),
                        content_type: h("content-type"),
                        body,
                    });
                    let status = match script(&path, n) {
                        Reply::Status(s) => s,
                        Reply::After(wait, s) => {
                            tokio::time::sleep(wait).await;
                            s
                        }
                    };
                    StatusCode::from_u16(status).unwrap()
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { addr, log, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn received(&self, path: &str) -> Vec<Received> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    pub fn event_ids(&self, path: &str) -> Vec<String> {
        self.received(path)
            .into_iter()
            .map(|r| r.event_id)
            .collect()
    }
}

/// Writes an event into the outbox as the app role would (its own transaction); returns its id.
pub async fn write_event(s: &Stack, client: &str, event_type: &str, subject: &str) -> String {
    let conn = s.env.clients.db.get().await.unwrap();
    conn.query_one(
        "INSERT INTO events (client_id, type, subject_id, data) VALUES ($1, $2, $3, $4) RETURNING id",
        &[&client, &event_type, &subject, &json!({"id": subject, "n": subject})],
    )
    .await
    .unwrap()
    .get(0)
}

/// Creates an endpoint through the API as `api`'s client; returns (id, secret).
pub async fn create_endpoint(
    api: &shared::testkit::client::TestClient,
    url: &str,
    types: &[&str],
) -> (String, String) {
    let r = api
        .post(
            "/api/v1/webhook-endpoints",
            &json!({"url": url, "eventTypes": types, "description": "test receiver"}),
        )
        .await;
    let body = r.assert_status(StatusCode::CREATED);
    (
        body["id"].as_str().unwrap().to_string(),
        body["secret"].as_str().unwrap().to_string(),
    )
}

pub fn dispatcher(s: &Stack, tweak: impl FnOnce(&mut WebhookConfig)) -> Dispatcher {
    let mut settings = s.env.clients.config.webhooks.clone();
    tweak(&mut settings);
    Dispatcher::new(s.env.clients.db.clone(), settings).unwrap()
}

/// Runs the dispatcher in short windows until `done` holds (panics after `max`).
pub async fn dispatch_until(d: &Dispatcher, max: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < max, "not delivered within {max:?}");
        d.run(Duration::from_millis(300)).await;
    }
}

/// Fans out until one event went out. The horizon is the whole server's oldest running transaction,
/// and other tests' transactions run on the same server: it may take a moment to pass our event.
async fn fan_out_one(d: &Dispatcher) {
    let started = Instant::now();
    while d.fan_out().await.unwrap().events == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the horizon never passed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn deliveries(s: &Stack, endpoint: &str) -> Vec<Value> {
    let body = s
        .api
        .get(&format!(
            "/api/v1/webhook-endpoints/{endpoint}/deliveries?limit=500"
        ))
        .await
        .body;
    body["deliveries"].as_array().cloned().unwrap_or_default()
}

fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

#[tokio::test]
async fn deliveries_are_signed_filtered_by_type_and_in_event_order() {
    let s = Stack::start().await;
    let rx = Receiver::ok().await;
    let (all, secret) = create_endpoint(&s.api, &rx.url("/all"), &["*"]).await;
    let (holds, holds_secret) = create_endpoint(&s.api, &rx.url("/holds"), &["hold.created"]).await;
    let mut written = Vec::new();
    for i in 0..12 {
        let t = if i % 3 == 0 {
            "hold.created"
        } else {
            "transfer.completed"
        };
        written.push((write_event(&s, DEMO_CLIENT, t, &format!("s{i}")).await, t));
    }
    // Another client's events never reach this client's endpoints.
    write_event(&s, OTHER_CLIENT, "hold.created", "theirs").await;
    let d = dispatcher(&s, |_| {});
    dispatch_until(&d, Duration::from_secs(20), || {
        rx.received("/all").len() == 12 && rx.received("/holds").len() == 4
    })
    .await;

    let ids: Vec<String> = written.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(
        rx.event_ids("/all"),
        ids,
        "per endpoint, deliveries follow event order"
    );
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(sorted, ids, "event ids sort in delivery order");
    let hold_ids: Vec<String> = written
        .iter()
        .filter(|(_, t)| *t == "hold.created")
        .map(|(id, _)| id.clone())
        .collect();
    assert_eq!(rx.event_ids("/holds"), hold_ids);

    for r in rx.received("/all") {
        signature::verify(&r.signature, &r.body, &[&secret], 300, now_unix()).unwrap();
        assert!(
            signature::verify(&r.signature, &r.body, &[&holds_secret], 300, now_unix()).is_err(),
            "another endpoint's secret does not verify"
        );
        let body = r.json();
        assert_eq!(body["id"], r.event_id);
        assert_eq!(body["type"], r.event_type);
        assert_eq!(body["clientId"], DEMO_CLIENT);
        assert!(body["data"]["object"]["id"].is_string());
        assert_eq!(r.user_agent, "ledger-webhooks/1");
        assert_eq!(r.content_type, "application/json");
        assert_eq!(r.signature.matches("v1=").count(), 1);
    }

    // The delivery log: newest first, each SUCCEEDED after one attempt, the attempt readable.
    let log = deliveries(&s, &all).await;
    assert_eq!(log.len(), 12);
    assert_eq!(log[0]["eventId"], ids[11]);
    assert!(
        log.iter()
            .all(|d| d["status"] == "SUCCEEDED" && d["attempts"] == 1)
    );
    assert!(
        log.iter()
            .all(|d| d["lastStatusCode"] == 200 && d["nextAttemptAt"].is_null())
    );
    let one = s
        .api
        .get(&format!(
            "/api/v1/webhook-deliveries/{}",
            log[0]["id"].as_str().unwrap()
        ))
        .await;
    let one = one.assert_status(StatusCode::OK);
    assert_eq!(one["attemptsLog"][0]["statusCode"], 200);
    assert_eq!(one["attemptsLog"][0]["attempt"], 1);
    // Pages of the log.
    let page = s
        .api
        .get(&format!(
            "/api/v1/webhook-endpoints/{all}/deliveries?limit=5"
        ))
        .await
        .body;
    assert_eq!(page["deliveries"].as_array().unwrap().len(), 5);
    let next = page["nextCursor"].as_str().unwrap();
    let page2 = s
        .api
        .get(&format!(
            "/api/v1/webhook-endpoints/{all}/deliveries?limit=5&cursor={next}"
        ))
        .await
        .body;
    assert_eq!(page2["deliveries"][0]["eventId"], ids[6]);
    let filtered = s
        .api
        .get(&format!(
            "/api/v1/webhook-endpoints/{holds}/deliveries?status=FAILED"
        ))
        .await
        .body;
    assert_eq!(filtered["deliveries"], json!([]));

    // The events: newest first, by type, one by id; the same envelope the receiver got.
    let events = s.api.get("/api/v1/events?limit=5").await.body;
    assert_eq!(events["events"][0]["id"], ids[11]);
    let cursor = events["nextCursor"].as_str().unwrap();
    let more = s
        .api
        .get(&format!("/api/v1/events?limit=5&cursor={cursor}"))
        .await
        .body;
    assert_eq!(more["events"][0]["id"], ids[6]);
    let typed = s.api.get("/api/v1/events?type=hold.created").await.body;
    assert_eq!(typed["events"].as_array().unwrap().len(), 4);
    let got = s.api.get(&format!("/api/v1/events/{}", ids[0])).await;
    assert_eq!(
        got.assert_status(StatusCode::OK),
        &rx.received("/all")[0].json()
    );
    s.api
        .get("/api/v1/events?type=transfer.posted")
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "invalid_parameter");
    s.api
        .get("/api/v1/events?cursor=bm9wZQ")
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "invalid_cursor");
}

#[tokio::test]
async fn both_secrets_sign_during_a_rotation_overlap() {
    let s = Stack::start().await;
    let rx = Receiver::ok().await;
    let (id, old) = create_endpoint(&s.api, &rx.url("/r"), &["*"]).await;
    let rotated = s
        .api
        .post(
            &format!("/api/v1/webhook-endpoints/{id}/rotate-secret"),
            &json!({"overlapSeconds": 3600}),
        )
        .await;
    let body = rotated.assert_status(StatusCode::OK).clone();
    let new = body["secret"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert!(body["previousSecretExpiresAt"].is_string());
    // Never shown again.
    let got = s
        .api
        .get(&format!("/api/v1/webhook-endpoints/{id}"))
        .await
        .body;
    assert!(got.get("secret").is_none() && !got.to_string().contains("whsec_"));
    let listed = s.api.get("/api/v1/webhook-endpoints").await.body;
    assert!(!listed.to_string().contains("whsec_"));

    write_event(&s, DEMO_CLIENT, "transfer.completed", "a").await;
    let d = dispatcher(&s, |_| {});
    dispatch_until(&d, Duration::from_secs(10), || rx.received("/r").len() == 1).await;
    let r = &rx.received("/r")[0];
    assert_eq!(r.signature.matches("v1=").count(), 2);
    signature::verify(&r.signature, &r.body, &[&new], 300, now_unix()).unwrap();
    signature::verify(&r.signature, &r.body, &[&old], 300, now_unix()).unwrap();

    // No overlap: the old secret stops signing at once.
    let third = s
        .api
        .post(
            &format!("/api/v1/webhook-endpoints/{id}/rotate-secret"),
            &json!({"overlapSeconds": 0}),
        )
        .await
        .body["secret"]
        .as_str()
        .unwrap()
        .to_string();
    write_event(&s, DEMO_CLIENT, "transfer.completed", "b").await;
    dispatch_until(&d, Duration::from_secs(10), || rx.received("/r").len() == 2).await;
    let r = &rx.received("/r")[1];
    assert_eq!(r.signature.matches("v1=").count(), 1);
    signature::verify(&r.signature, &r.body, &[&third], 300, now_unix()).unwrap();
    assert!(signature::verify(&r.signature, &r.body, &[&new], 300, now_unix()).is_err());
    for bad in [json!(604801), json!(-1), json!(1.5), json!(1e300)] {
        s.api
            .post(
                &format!("/api/v1/webhook-endpoints/{id}/rotate-secret"),
                &json!({"overlapSeconds": bad}),
            )
            .await
            .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_overlap");
    }
    // A whole number written as a float is that number; no body at all takes the default.
    let r = s
        .api
        .post(
            &format!("/api/v1/webhook-endpoints/{id}/rotate-secret"),
            &json!({"overlapSeconds": 60.0}),
        )
        .await;
    r.assert_status(StatusCode::OK);
    let r = s
        .api
        .request(
            http::Method::POST,
            &format!("/api/v1/webhook-endpoints/{id}/rotate-secret"),
        )
        .send()
        .await;
    assert!(r.assert_status(StatusCode::OK)["secret"].is_string());
}

#[tokio::test]
async fn failed_attempts_are_retried_on_5xx_and_timeouts_with_growing_delays() {
    let s = Stack::start().await;
    // 500, 500, then slower than the 1.5 s timeout, then 200.
    let rx = Receiver::start(|_, n| match n {
        0 | 1 => Reply::Status(500),
        2 => Reply::After(Duration::from_millis(2500), 200),
        _ => Reply::Status(200),
    })
    .await;
    let (endpoint, _) = create_endpoint(&s.api, &rx.url("/flaky"), &["*"]).await;
    let first = write_event(&s, DEMO_CLIENT, "transfer.completed", "x").await;
    let second = write_event(&s, DEMO_CLIENT, "transfer.completed", "y").await;
    let d = dispatcher(&s, |_| {});
    dispatch_until(&d, Duration::from_secs(40), || {
        rx.received("/flaky").len() >= 5
    })
    .await;

    // The second event waited behind the first: never sent before the first succeeded.
    assert_eq!(
        rx.event_ids("/flaky"),
        [first.as_str(), &first, &first, &first, &second]
    );
    let log = deliveries(&s, &endpoint).await;
    let head = log.iter().find(|d| d["eventId"] == first.as_str()).unwrap();
    assert_eq!(head["status"], "SUCCEEDED");
    assert_eq!(head["attempts"], 4);
    let detail = s
        .api
        .get(&format!(
            "/api/v1/webhook-deliveries/{}",
            head["id"].as_str().unwrap()
        ))
        .await
        .body;
    let attempts = detail["attemptsLog"].as_array().unwrap().clone();
    let codes: Vec<Value> = attempts.iter().map(|a| a["statusCode"].clone()).collect();
    assert_eq!(codes, [json!(500), json!(500), Value::Null, json!(200)]);
    assert!(
        attempts[2]["error"].as_str().unwrap().contains("timed out"),
        "{attempts:?}"
    );
    // Backoff (base 1 s, equal jitter): the gaps between attempts start at >= 0.5 s and grow.
    let at = |i: usize| {
        chrono::DateTime::parse_from_rfc3339(attempts[i]["at"].as_str().unwrap()).unwrap()
    };
    let gaps: Vec<f64> = (1..4)
        .map(|i| (at(i) - at(i - 1)).as_seconds_f64())
        .collect();
    assert!(gaps[0] >= 0.45, "{gaps:?}");
    assert!(gaps[1] >= gaps[0] - 0.05 && gaps[1] >= 0.95, "{gaps:?}");
    // The third attempt waited out the timeout (1.5 s) and then at least 2 s of backoff.
    assert!(gaps[2] >= 3.4, "{gaps:?}");
}

#[tokio::test]
async fn a_delivery_gives_up_after_its_retry_period_and_the_next_one_goes_on() {
    let s = Stack::start().await;
    let rx = Receiver::start(|_, n| Reply::Status(if n < 3 { 503 } else { 200 })).await;
    let (endpoint, _) = create_endpoint(&s.api, &rx.url("/down"), &["*"]).await;
    let doomed = write_event(&s, DEMO_CLIENT, "transfer.failed", "d").await;
    let d = dispatcher(&s, |c| c.retry_period = Duration::from_secs(2));
    fan_out_one(&d).await;
    let next = write_event(&s, DEMO_CLIENT, "transfer.completed", "n").await;
    // Give the second delivery a longer retry period: it must survive the first's failures.
    let patient = dispatcher(&s, |c| c.retry_period = Duration::from_secs(60));
    fan_out_one(&patient).await;
    let started = Instant::now();
    let log = loop {
        d.run(Duration::from_millis(300)).await;
        let log = deliveries(&s, &endpoint).await;
        if log.iter().all(|d| d["status"] != "PENDING") {
            break log;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{log:?}");
    };
    let failed = log
        .iter()
        .find(|d| d["eventId"] == doomed.as_str())
        .unwrap();
    assert_eq!(failed["status"], "FAILED", "{failed}");
    assert!(failed["completedAt"].is_string());
    assert_eq!(failed["lastStatusCode"], 503);
    let attempts = failed["attempts"].as_i64().unwrap();
    assert!(attempts >= 2, "{failed}");
    let detail = s
        .api
        .get(&format!(
            "/api/v1/webhook-deliveries/{}",
            failed["id"].as_str().unwrap()
        ))
        .await
        .body;
    assert_eq!(
        detail["attemptsLog"].as_array().unwrap().len() as i64,
        attempts
    );
    let ok = log.iter().find(|d| d["eventId"] == next.as_str()).unwrap();
    assert_eq!(ok["status"], "SUCCEEDED");
    let failed_only = s
        .api
        .get(&format!(
            "/api/v1/webhook-endpoints/{endpoint}/deliveries?status=FAILED"
        ))
        .await
        .body;
    assert_eq!(failed_only["deliveries"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_hanging_endpoint_does_not_delay_another_clients_endpoint() {
    let s = Stack::start().await;
    let rx = Receiver::start(|path, _| match path {
        "/hangs" => Reply::After(Duration::from_secs(20), 200),
        _ => Reply::Status(200),
    })
    .await;
    create_endpoint(&s.api, &rx.url("/hangs"), &["*"]).await;
    create_endpoint(&s.api.as_other(), &rx.url("/fast"), &["*"]).await;
    for i in 0..3 {
        write_event(&s, DEMO_CLIENT, "transfer.completed", &format!("d{i}")).await;
    }
    for i in 0..3 {
        write_event(&s, OTHER_CLIENT, "transfer.completed", &format!("o{i}")).await;
    }
    let d = dispatcher(&s, |c| c.timeout = Duration::from_secs(10));
    let started = Instant::now();
    let run = tokio::spawn(async move { d.run(Duration::from_secs(3)).await });
    while rx.received("/fast").len() < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the other client's deliveries waited"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // All three of the other client's events went out while the first hanging call was still open.
    assert_eq!(rx.received("/hangs").len(), 1);
    run.abort();
}

/// One client with as many slow endpoints as there are sending slots, each with a backlog, never
/// takes every slot: another client's events go out while all of them are still answering.
#[tokio::test]
async fn one_clients_slow_endpoints_never_take_every_sending_slot() {
    let s = Stack::start().await;
    let rx = Receiver::start(|path, _| {
        if path.starts_with("/slow") {
            Reply::After(Duration::from_secs(3), 200)
        } else {
            Reply::Status(200)
        }
    })
    .await;
    let slots = 4;
    for e in 0..slots {
        create_endpoint(&s.api, &rx.url(&format!("/slow{e}")), &["*"]).await;
    }
    // The slow client's backlog is older than the other client's event: oldest-first alone would
    // hand every slot that frees to it.
    for i in 0..3 {
        write_event(&s, DEMO_CLIENT, "transfer.completed", &format!("d{i}")).await;
    }
    create_endpoint(&s.api.as_other(), &rx.url("/fast"), &["*"]).await;
    write_event(&s, OTHER_CLIENT, "transfer.completed", "o0").await;
    let d = dispatcher(&s, |c| {
        c.concurrency = slots;
        c.timeout = Duration::from_secs(10);
    });
    let started = Instant::now();
    let run = tokio::spawn(async move { d.run(Duration::from_secs(5)).await });
    while rx.received("/fast").is_empty() {
        assert!(
            started.elapsed() < Duration::from_millis(2500),
            "the other client waited for the slow client's endpoints"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Half the slots (2 of 4) went to the slow client; none of its sends has finished yet.
    let slow: usize = (0..slots)
        .map(|e| rx.received(&format!("/slow{e}")).len())
        .sum();
    assert_eq!(slow, slots / 2);
    run.abort();
}

#[tokio::test]
async fn a_redelivered_event_keeps_its_id() {
    let s = Stack::start().await;
    let rx = Receiver::ok().await;
    let (a, secret) = create_endpoint(&s.api, &rx.url("/a"), &["transfer.completed"]).await;
    let (b, _) = create_endpoint(&s.api, &rx.url("/b"), &["hold.created"]).await;
    let id = write_event(&s, DEMO_CLIENT, "transfer.completed", "t1").await;
    let d = dispatcher(&s, |_| {});
    dispatch_until(&d, Duration::from_secs(10), || rx.received("/a").len() == 1).await;

    // To every enabled endpoint subscribed to its type (only a).
    let r = s
        .api
        .post(&format!("/api/v1/events/{id}/redeliver"), &json!({}))
        .await;
    let body = r.assert_status(StatusCode::ACCEPTED);
    assert_eq!(body["deliveries"].as_array().unwrap().len(), 1);
    assert_eq!(body["deliveries"][0]["redelivery"], true);
    assert_eq!(body["deliveries"][0]["endpointId"], a.as_str());
    // To a named endpoint, even one not subscribed to the type.
    let r = s
        .api
        .post(
            &format!("/api/v1/events/{id}/redeliver"),
            &json!({"endpointId": b}),
        )
        .await;
    r.assert_status(StatusCode::ACCEPTED);
    dispatch_until(&d, Duration::from_secs(10), || {
        rx.received("/a").len() == 2 && rx.received("/b").len() == 1
    })
    .await;
    let again = &rx.received("/a")[1];
    assert_eq!(again.event_id, id);
    assert_eq!(again.json()["id"], id.as_str());
    assert_eq!(
        again.json(),
        rx.received("/a")[0].json(),
        "the same envelope"
    );
    signature::verify(&again.signature, &again.body, &[&secret], 300, now_unix()).unwrap();
    assert_eq!(rx.received("/b")[0].event_id, id);

    // A disabled endpoint: 409; unknown or another client's: 404.
    s.api
        .post(
            &format!("/api/v1/webhook-endpoints/{b}/disable"),
            &json!({}),
        )
        .await
        .assert_status(StatusCode::OK);
    s.api
        .post(
            &format!("/api/v1/events/{id}/redeliver"),
            &json!({"endpointId": b}),
        )
        .await
        .assert_problem(StatusCode::CONFLICT, "webhook_endpoint_disabled");
    s.api
        .post(
            &format!("/api/v1/events/{id}/redeliver"),
            &json!({"endpointId": uuid::Uuid::now_v7()}),
        )
        .await
        .assert_problem(StatusCode::NOT_FOUND, "webhook_endpoint_not_found");
    s.api
        .post(
            "/api/v1/events/evt_00000000000000000000000000000001/redeliver",
            &json!({}),
        )
        .await
        .assert_problem(StatusCode::NOT_FOUND, "event_not_found");
    s.api
        .as_other()
        .post(&format!("/api/v1/events/{id}/redeliver"), &json!({}))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "event_not_found");
}

#[tokio::test]
async fn nothing_is_lost_when_the_dispatcher_dies_mid_delivery() {
    let s = Stack::start().await;
    // The first request is held (longer than it takes to kill the dispatcher); the rest answer.
    let rx = Receiver::start(|_, n| {
        if n == 0 {
            Reply::After(Duration::from_millis(1000), 200)
        } else {
            Reply::Status(200)
        }
    })
    .await;
    let (endpoint, _) = create_endpoint(&s.api, &rx.url("/k"), &["*"]).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(write_event(&s, DEMO_CLIENT, "transfer.completed", &format!("k{i}")).await);
    }
    let first = dispatcher(&s, |_| {});
    let running = tokio::spawn(async move { first.run(Duration::from_secs(30)).await });
    let started = Instant::now();
    while rx.received("/k").is_empty() {
        assert!(started.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    running.abort(); // killed while the receiver holds the request
    let _ = running.await;
    let log = deliveries(&s, &endpoint).await;
    let head = log
        .iter()
        .find(|d| d["eventId"] == ids[0].as_str())
        .unwrap();
    assert_eq!(head["status"], "PENDING");
    assert_eq!(head["attempts"], 0, "the attempt was never recorded");

    // A new dispatcher waits for the lease (3 s), then sends it again, then the rest, in order.
    let second = dispatcher(&s, |_| {});
    let killed_at = Instant::now();
    dispatch_until(&second, Duration::from_secs(20), || {
        rx.received("/k").len() >= 4
    })
    .await;
    let got = rx.event_ids("/k");
    assert_eq!(
        got,
        [ids[0].as_str(), &ids[0], &ids[1], &ids[2]],
        "at least once, never skipped"
    );
    let resent = &rx.received("/k")[1];
    assert!(
        resent.at.duration_since(killed_at) >= Duration::from_millis(1500),
        "the lease held the delivery back"
    );
    let log = deliveries(&s, &endpoint).await;
    assert!(
        log.iter()
            .all(|d| d["status"] == "SUCCEEDED" && d["attempts"] == 1)
    );
}

#[tokio::test]
async fn the_fan_out_under_concurrent_writers_loses_nothing_and_keeps_order() {
    let s = Stack::start().await;
    let rx = Receiver::ok().await;
    create_endpoint(&s.api, &rx.url("/all"), &["*"]).await;
    let d = dispatcher(&s, |c| c.concurrency = 4);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let dispatching = {
        let (d, stop) = (d.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                d.run(Duration::from_millis(200)).await;
            }
        })
    };
    // Writers whose transactions overlap and commit out of xid order.
    let mut writers = Vec::new();
    for w in 0..6 {
        let db = s.env.clients.db.clone();
        writers.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..15 {
                let mut conn = db.get().await.unwrap();
                let tx = conn.transaction().await.unwrap();
                for j in 0..2 {
                    let id: String = tx
                        .query_one(
                            "INSERT INTO events (client_id, type, subject_id, data)
                             VALUES ($1, 'transfer.completed', $2, '{}') RETURNING id",
                            &[&DEMO_CLIENT, &format!("w{w}-{i}-{j}")],
                        )
                        .await
                        .unwrap()
                        .get(0);
                    ids.push(id);
                    tx.execute("SELECT pg_sleep(random() * 0.03)", &[])
                        .await
                        .unwrap();
                }
                tx.commit().await.unwrap();
            }
            ids
        }));
    }
    let mut all = Vec::new();
    for w in writers {
        all.extend(w.await.unwrap());
    }
    all.sort();
    let started = Instant::now();
    while rx.received("/all").len() < all.len() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{} of {} delivered",
            rx.received("/all").len(),
            all.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    dispatching.await.unwrap();
    assert_eq!(
        rx.event_ids("/all"),
        all,
        "every event once, in event id order"
    );
}

#[tokio::test]
async fn private_addresses_are_refused_without_the_allowance() {
    let s = Stack::start().await;
    // The API as deployed: no allowance.
    let mut clients = s.env.clients.clone();
    let mut config = (*clients.config).clone();
    config.webhooks.allow_private_urls = false;
    clients.config = Arc::new(config);
    let strict = s.api.on(api::router(clients));
    for url in [
        "https://127.0.0.1/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://10.1.2.3/hook",
        "https://[::1]:8443/hook",
        "https://[::ffff:192.168.0.1]/hook",
        "https://localhost/hook",
        "http://hooks.example.com/hook",
        "https://user:pw@hooks.example.com/hook",
        "not a url",
    ] {
        strict
            .post(
                "/api/v1/webhook-endpoints",
                &json!({"url": url, "eventTypes": ["*"]}),
            )
            .await
            .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "endpoint_url_not_allowed");
    }
    strict
        .post(
            "/api/v1/webhook-endpoints",
            &json!({"url": "https://hooks.example.com/x", "eventTypes": ["transfer.posted"]}),
        )
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "unknown_event_type");
    strict
        .post(
            "/api/v1/webhook-endpoints",
            &json!({"url": "https://hooks.example.com/x", "eventTypes": []}),
        )
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_event_types");
    let ok = strict
        .post(
            "/api/v1/webhook-endpoints",
            &json!({"url": "https://hooks.example.com/x", "eventTypes": ["*", "hold.created"]}),
        )
        .await;
    let ok = ok.assert_status(StatusCode::CREATED);
    assert_eq!(ok["eventTypes"], json!(["*"]));
    // (No network here: keep the dispatcher below from trying it.)
    let public = ok["id"].as_str().unwrap();
    strict
        .post(
            &format!("/api/v1/webhook-endpoints/{public}/disable"),
            &json!({}),
        )
        .await
        .assert_status(StatusCode::OK);

    // At send time: endpoints created under the allowance, sent without it. Nothing connects.
    let rx = Receiver::ok().await;
    let port = rx.addr.port();
    for url in [
        format!("https://127.0.0.1:{port}/a"),
        format!("https://[::1]:{port}/b"),
        format!("https://localhost:{port}/c"),
        format!("http://127.0.0.1:{port}/d"),
        "https://169.254.169.254/e".to_string(),
        "https://10.0.0.1/f".to_string(),
    ] {
        create_endpoint(&s.api, &url, &["*"]).await;
    }
    write_event(&s, DEMO_CLIENT, "transfer.completed", "ssrf").await;
    let d = dispatcher(&s, |c| {
        c.allow_private_urls = false;
        c.backoff_base = Duration::from_secs(60);
    });
    d.run(Duration::from_secs(1)).await;
    assert!(rx.received("/a").is_empty() && rx.log.lock().unwrap().is_empty());
    let endpoints = s.api.get("/api/v1/webhook-endpoints").await.body;
    let mut checked = 0;
    for e in endpoints["endpoints"].as_array().unwrap() {
        let id = e["id"].as_str().unwrap();
        for d in deliveries(&s, id).await {
            assert_eq!(d["status"], "PENDING", "{d}");
            assert_eq!(d["attempts"], 1, "{d}");
            let error = d["lastError"].as_str().unwrap();
            assert!(
                error.contains("refused") || error.contains("must"),
                "{error}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 6);
}

#[tokio::test]
async fn the_resolver_drops_private_addresses() {
    use shared::webhooks::sender::{CheckedResolver, REFUSED_ADDRESS};
    use tower::Service;
    let name = "localhost".parse().unwrap();
    let err = CheckedResolver::new(false).call(name).await.unwrap_err();
    assert!(err.to_string().starts_with(REFUSED_ADDRESS), "{err}");
    let name = "localhost".parse().unwrap();
    let addrs: Vec<_> = CheckedResolver::new(true)
        .call(name)
        .await
        .unwrap()
        .collect();
    assert!(addrs.iter().all(|a| a.ip().is_loopback()) && !addrs.is_empty());
}

#[tokio::test]
async fn another_clients_endpoints_deliveries_and_events_are_invisible() {
    let s = Stack::start().await;
    let rx = Receiver::ok().await;
    let (id, _) = create_endpoint(&s.api, &rx.url("/mine"), &["*"]).await;
    let event = write_event(&s, DEMO_CLIENT, "transfer.completed", "mine").await;
    let d = dispatcher(&s, |_| {});
    dispatch_until(&d, Duration::from_secs(10), || {
        rx.received("/mine").len() == 1
    })
    .await;
    let delivery = deliveries(&s, &id).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let other = s.api.as_other();
    for path in [
        format!("/api/v1/webhook-endpoints/{id}"),
        format!("/api/v1/webhook-endpoints/{id}/deliveries"),
    ] {
        other
            .get(&path)
            .await
            .assert_problem(StatusCode::NOT_FOUND, "webhook_endpoint_not_found");
    }
    for action in ["disable", "enable", "rotate-secret"] {
        other
            .post(
                &format!("/api/v1/webhook-endpoints/{id}/{action}"),
                &json!({}),
            )
            .await
            .assert_problem(StatusCode::NOT_FOUND, "webhook_endpoint_not_found");
    }
    other
        .get(&format!("/api/v1/webhook-deliveries/{delivery}"))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "webhook_delivery_not_found");
    other
        .get(&format!("/api/v1/events/{event}"))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "event_not_found");
    assert_eq!(other.get("/api/v1/events").await.body["events"], json!([]));
    assert_eq!(
        other.get("/api/v1/webhook-endpoints").await.body["endpoints"],
        json!([])
    );
    // The owner still sees all of it; its endpoint is still enabled.
    let mine = s.api.get(&format!("/api/v1/webhook-endpoints/{id}")).await;
    assert_eq!(mine.assert_status(StatusCode::OK)["status"], "ENABLED");
    s.api
        .get("/api/v1/webhook-endpoints/not-a-uuid")
        .await
        .assert_problem(StatusCode::NOT_FOUND, "webhook_endpoint_not_found");
    s.api
        .get("/api/v1/webhook-deliveries/abc")
        .await
        .assert_problem(StatusCode::NOT_FOUND, "webhook_delivery_not_found");
}

#[tokio::test]
async fn a_client_has_a_bounded_number_of_endpoints_and_disabled_ones_receive_nothing() {
    let s = Stack::start().await;
    let rx = Receiver::ok().await;
    let max = s.env.clients.config.webhooks.max_endpoints;
    let mut ids = Vec::new();
    for i in 0..max {
        ids.push(
            create_endpoint(&s.api, &rx.url(&format!("/e{i}")), &["*"])
                .await
                .0,
        );
    }
    s.api
        .post(
            "/api/v1/webhook-endpoints",
            &json!({"url": rx.url("/one-too-many"), "eventTypes": ["*"]}),
        )
        .await
        .assert_problem(StatusCode::CONFLICT, "webhook_endpoint_limit");
    for id in &ids[1..] {
        let r = s
            .api
            .post(
                &format!("/api/v1/webhook-endpoints/{id}/disable"),
                &json!({}),
            )
            .await;
        assert_eq!(r.assert_status(StatusCode::OK)["status"], "DISABLED");
    }
    write_event(&s, DEMO_CLIENT, "refund.posted", "r").await;
    let d = dispatcher(&s, |_| {});
    dispatch_until(&d, Duration::from_secs(10), || {
        rx.received("/e0").len() == 1
    })
    .await;
    d.run(Duration::from_millis(500)).await;
    assert_eq!(
        rx.log.lock().unwrap().len(),
        1,
        "disabled endpoints get no delivery"
    );
    let enabled = s
        .api
        .post(
            &format!("/api/v1/webhook-endpoints/{}/enable", ids[1]),
            &json!({}),
        )
        .await;
    assert_eq!(enabled.assert_status(StatusCode::OK)["status"], "ENABLED");
}

#[tokio::test]
async fn a_posted_transfer_reaches_the_endpoint_as_the_api_shows_it() {
    let s = Stack::start().await;
    let rx = Receiver::ok().await;
    let (_, secret) = create_endpoint(&s.api, &rx.url("/t"), &["transfer.completed"]).await;
    s.open("world", "unlimited").await;
    s.open("alice", "0").await;
    let (status, accepted) = s.submit("wh-1", "world", "alice", "12.50").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    s.drain().await;
    let d = dispatcher(&s, |_| {});
    dispatch_until(&d, Duration::from_secs(10), || rx.received("/t").len() == 1).await;
    let r = &rx.received("/t")[0];
    signature::verify(&r.signature, &r.body, &[&secret], 300, now_unix()).unwrap();
    let body = r.json();
    assert_eq!(body["type"], "transfer.completed");
    let id = accepted["transactionId"].as_str().unwrap();
    let shown = s.api.get(&format!("/api/v1/transactions/{id}")).await.body;
    assert_eq!(body["data"]["object"]["transaction"]["id"], id, "{body}");
    assert_eq!(
        body["data"]["object"], shown,
        "the object as GET /transactions/{{id}} answers it"
    );
}

#[tokio::test]
async fn every_event_is_put_on_the_eventbridge_bus_and_refusals_are_retried() {
    use aws_sdk_sqs::types::QueueAttributeName;
    use shared::eventbus::EventBus;
    let s = Stack::start().await;
    let endpoint = shared::testkit::sqs_endpoint();
    let name = format!("ledger-test-{}", uuid::Uuid::now_v7().simple());
    let mut ids = Vec::new();
    for i in 0..12 {
        let client = if i % 2 == 0 {
            DEMO_CLIENT
        } else {
            OTHER_CLIENT
        };
        ids.push(write_event(&s, client, "refund.posted", &format!("r{i}")).await);
    }
    let cursor = || async {
        let conn = s.env.clients.db.get().await.unwrap();
        conn.query_one(
            "SELECT seq FROM event_cursors WHERE name = 'eventbridge'",
            &[],
        )
        .await
        .unwrap()
        .get::<_, i64>(0)
    };

    // A bus that does not exist: every put fails, the cursor stays, the failures are counted.
    let missing = EventBus::local(&endpoint, format!("{name}-missing")).await;
    let d = dispatcher(&s, |_| {}).with_event_bus(missing);
    let summary = d.run(Duration::from_millis(500)).await;
    assert!(summary.eventbridge_failures > 0, "{summary:?}");
    assert_eq!(summary.eventbridge_put, 0);
    assert_eq!(cursor().await, 0);

    // The real bus, with a rule sending everything from `ledger` to a queue we can read.
    let bus = EventBus::local(&endpoint, &name).await;
    bus.client()
        .create_event_bus()
        .name(&name)
        .send()
        .await
        .unwrap();
    let sqs = shared::queue::local_client(&endpoint).await;
    let queue = sqs
        .create_queue()
        .queue_name(format!("{name}-seen"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&queue)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    bus.client()
        .put_rule()
        .name("all")
        .event_bus_name(&name)
        .event_pattern(r#"{"source": ["ledger"]}"#)
        .send()
        .await
        .unwrap();
    bus.client()
        .put_targets()
        .rule("all")
        .event_bus_name(&name)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("seen")
                .arn(arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let d = dispatcher(&s, |_| {}).with_event_bus(bus);
    let mut seen: Vec<Value> = Vec::new();
    let started = Instant::now();
    while seen.len() < ids.len() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{} seen",
            seen.len()
        );
        d.run(Duration::from_millis(300)).await;
        let got = sqs
            .receive_message()
            .queue_url(&queue)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        for m in got.messages() {
            seen.push(serde_json::from_str(m.body().unwrap()).unwrap());
        }
    }
    let mut put_ids: Vec<String> = seen
        .iter()
        .map(|e| {
            assert_eq!(e["source"], "ledger");
            assert_eq!(e["detail-type"], "refund.posted");
            e["detail"]["id"].as_str().unwrap().to_string()
        })
        .collect();
    put_ids.sort();
    assert_eq!(put_ids, ids, "every event once");
    assert_eq!(seen[0]["detail"]["data"]["object"]["id"], "r0");
    assert!(cursor().await > 0);
}

#[tokio::test]
async fn a_killed_devstack_dispatch_process_loses_nothing() {
    let s = Stack::start().await;
    // The first request is held far longer than the process lives; the rest answer at once.
    let rx = Receiver::start(|_, n| {
        if n == 0 {
            Reply::After(Duration::from_secs(30), 200)
        } else {
            Reply::Status(200)
        }
    })
    .await;
    create_endpoint(&s.api, &rx.url("/p"), &["*"]).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(write_event(&s, DEMO_CLIENT, "hold.expired", &format!("p{i}")).await);
    }
    let run = uuid::Uuid::now_v7().simple().to_string();
    let admin = shared::testkit::admin_database_url();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_devstack"))
        .arg("dispatch")
        .env(
            "DATABASE_MIGRATION_URL",
            shared::testkit::with_database(&admin, &s.env.database_name),
        )
        .env("DATABASE_URL", &s.env.clients.config.database_url)
        .env("AWS_ENDPOINT_URL_SQS", shared::testkit::sqs_endpoint())
        .env("SQS_QUEUE_NAME", format!("dispatch-{run}"))
        .env("REDIS_KEY_PREFIX", format!("test:dispatch-{run}"))
        .env("WEBHOOK_ALLOW_PRIVATE_URLS", "true")
        .env("WEBHOOK_TIMEOUT_MS", "1000")
        .env("WEBHOOK_LEASE_SECONDS", "6")
        .env("DISPATCH_RUN_SECONDS", "30")
        .env("RUST_LOG", "warn")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("the devstack binary");
    let mut child = KillOnDrop(child);
    let started = Instant::now();
    while rx.received("/p").is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the devstack dispatcher sent nothing"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let claimed_at = Instant::now();
    child.0.kill().unwrap(); // SIGKILL while the receiver holds its request
    child.0.wait().unwrap();
    // A dispatcher of our own: nothing until the dead one's lease (6 s) runs out, then everything,
    // the held event first, in order.
    let d = dispatcher(&s, |_| {});
    dispatch_until(&d, Duration::from_secs(30), || rx.received("/p").len() >= 4).await;
    assert_eq!(
        rx.event_ids("/p"),
        [ids[0].as_str(), &ids[0], &ids[1], &ids[2]]
    );
    assert!(rx.received("/p")[1].at.duration_since(claimed_at) >= Duration::from_secs(4));
}

/// A child process that does not outlive its test, whatever happens.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
