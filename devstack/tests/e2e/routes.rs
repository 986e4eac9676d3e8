//! One set of routes: the Router's (`functions/api/src/lib.rs`), the OpenAPI paths (`openapi.yaml`)
//! and the HTTP API's route keys (`template.yaml`) must be the same (method, path) pairs, path
//! parameters compared by position, not by name. axum cannot list its routes, so the Router's are
//! read from the `.route(...)` calls of its source, and every route of the three sets is sent to the
//! real Router to prove the source reading right: a route it serves must not answer
//! `route_not_found` or `method_not_allowed`.
//!
//! Also here, because it is the same kind of drift: the spec's currency enum must be exactly the
//! codes the server accepts.

use std::collections::{BTreeMap, BTreeSet};

use http::StatusCode;
use serde_json::{Value, json};

use crate::helpers::Stack;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

fn read(relative: &str) -> String {
    let path = format!("{}/../{relative}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// `GET /api/v1/accounts/{id}` -> `GET /api/v1/accounts/{}`: parameter names may differ.
fn normalize(method: &str, path: &str) -> String {
    let segments: Vec<String> = path
        .split('/')
        .map(|s| {
            if s.starts_with('{') && s.ends_with('}') {
                "{}".to_string()
            } else {
                s.to_string()
            }
        })
        .collect();
    format!("{} {}", method.to_ascii_uppercase(), segments.join("/"))
}

/// The first string literal in `text`, and what follows it.
fn string_literal(text: &str) -> Option<(&str, &str)> {
    let start = text.find('"')? + 1;
    let len = text[start..].find('"')?;
    Some((&text[start..start + len], &text[start + len + 1..]))
}

/// The argument list of a call whose `(` was just consumed: everything up to the matching `)`.
fn call_arguments(text: &str) -> &str {
    let mut depth = 1;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return &text[..i];
                }
            }
            _ => {}
        }
    }
    panic!(
        "unbalanced parentheses after {:?}",
        &text[..text.len().min(80)]
    );
}

/// The method routers named in a route's arguments: `get(handler)`, `post(handler).layer(...)`,
/// `get(a).post(b)`, but not `module::get` (a handler's name).
fn method_calls(args: &str) -> Vec<&'static str> {
    let mut found = Vec::new();
    for method in METHODS {
        let mut rest = args;
        while let Some(i) = rest.find(&format!("{method}(")) {
            let before = rest[..i].chars().last();
            if !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                found.push(method);
            }
            rest = &rest[i + method.len()..];
        }
    }
    found
}

/// The Router's routes, read from the source: `.route("/path", get(..))` calls under the one
/// `.nest("/prefix", ..)`.
fn router_routes() -> BTreeSet<String> {
    let source = read("functions/api/src/lib.rs");
    let body = &source[source
        .find("pub fn router(")
        .expect("pub fn router in lib.rs")..];
    let nests: Vec<&str> = body
        .match_indices(".nest(")
        .map(|(i, _)| string_literal(&body[i..]).unwrap().0)
        .collect();
    assert_eq!(nests.len(), 1, "expected one .nest(prefix, ..) in router()");
    let prefix = nests[0];
    let mut routes = BTreeSet::new();
    for (i, _) in body.match_indices(".route(") {
        let args = call_arguments(&body[i + ".route(".len()..]);
        let (path, rest) = string_literal(args).expect("a route's path literal");
        let methods = method_calls(rest);
        assert!(!methods.is_empty(), "no method router in .route({args})");
        for m in methods {
            routes.insert(normalize(m, &format!("{prefix}{path}")));
        }
    }
    assert!(
        routes.len() > 5,
        "read too few routes from lib.rs: {routes:?}"
    );
    routes
}

fn openapi_routes() -> BTreeSet<String> {
    let doc: Value = serde_norway::from_str(&read("openapi.yaml")).unwrap();
    let mut routes = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in METHODS {
            if item.get(m).is_some() {
                routes.insert(normalize(m, path));
            }
        }
    }
    routes
}

/// Every `AWS::ApiGatewayV2::Route`'s `RouteKey` (CloudFormation tags make it YAML, not JSON).
fn template_routes() -> BTreeSet<String> {
    let doc: serde_norway::Value = serde_norway::from_str(&read("template.yaml")).unwrap();
    let resources = doc["Resources"].as_mapping().expect("Resources");
    let mut routes = BTreeSet::new();
    for (name, resource) in resources {
        if resource["Type"].as_str() != Some("AWS::ApiGatewayV2::Route") {
            continue;
        }
        let key = resource["Properties"]["RouteKey"]
            .as_str()
            .unwrap_or_else(|| panic!("{name:?}: RouteKey is not a plain string"));
        if key == "$default" {
            continue;
        }
        let (method, path) = key.split_once(' ').expect("RouteKey is `METHOD /path`");
        routes.insert(normalize(method, path));
    }
    routes
}

/// What is in one set and not in another, for every pair, as readable lines.
fn differences(sets: &BTreeMap<&str, BTreeSet<String>>) -> Vec<String> {
    let mut out = Vec::new();
    for (a, sa) in sets {
        for (b, sb) in sets {
            for route in sa.difference(sb) {
                out.push(format!("{route}: in {a}, missing from {b}"));
            }
        }
    }
    out
}

/// Sends `route` to the Router with a parameter value in every `{}`; whether the Router has it.
/// Any other answer (a 403 for an operator route, a 404 for the made-up id, a 422 for the empty
/// body) means the route exists.
async fn router_serves(stack: &Stack, route: &str) -> Result<(), String> {
    let (method, path) = route.split_once(' ').unwrap();
    let uri = path.replace("{}", "route-probe");
    let res = stack.api.call(method, &uri, Some(&json!({}))).await;
    let status = res.status;
    let code = res.body["code"].as_str().unwrap_or("");
    if status == StatusCode::METHOD_NOT_ALLOWED || code == "method_not_allowed" {
        return Err(format!(
            "{route}: the Router answers 405 method_not_allowed"
        ));
    }
    if status == StatusCode::NOT_FOUND && code == "route_not_found" {
        return Err(format!("{route}: the Router answers 404 route_not_found"));
    }
    Ok(())
}

#[test]
fn the_route_readers_see_differences() {
    let a = BTreeSet::from(["GET /x".to_string(), "POST /y".to_string()]);
    let b = BTreeSet::from(["GET /x".to_string()]);
    let diff = differences(&BTreeMap::from([("one", a), ("two", b)]));
    assert_eq!(diff, ["POST /y: in one, missing from two"]);
    assert_eq!(
        normalize("get", "/api/v1/reconciliations/{runId}"),
        normalize("GET", "/api/v1/reconciliations/{id}")
    );
    assert_eq!(
        method_calls("post(reconciliation::import_statement).layer(x)"),
        ["post"]
    );
    assert_eq!(method_calls("get(accounts::get)"), ["get"]);
    assert_eq!(method_calls("get(a).post(b)"), ["get", "post"]);
}

#[tokio::test]
async fn router_openapi_and_template_have_the_same_routes() {
    let sets = BTreeMap::from([
        ("the Router (functions/api/src/lib.rs)", router_routes()),
        ("openapi.yaml", openapi_routes()),
        ("template.yaml", template_routes()),
    ]);
    let mut problems = differences(&sets);

    let stack = Stack::start().await;
    let all: BTreeSet<&String> = sets.values().flatten().collect();
    for route in all {
        if let Err(e) = router_serves(&stack, route).await {
            problems.push(e);
        }
    }
    // The probe itself must notice a route the Router does not have.
    assert!(
        router_serves(&stack, "GET /api/v1/no-such-route")
            .await
            .is_err()
    );
    assert!(
        router_serves(&stack, "PATCH /api/v1/accounts")
            .await
            .is_err()
    );

    assert!(
        problems.is_empty(),
        "the routes differ:\n  {}",
        problems.join("\n  ")
    );
}

/// `components.schemas.Currency.enum` in openapi.yaml is exactly what `Currency::parse` accepts
/// (ISO 4217 codes with minor units, not superseded), sorted.
#[test]
fn the_spec_lists_exactly_the_currencies_the_server_accepts() {
    let doc: Value = serde_norway::from_str(&read("openapi.yaml")).unwrap();
    let listed: Vec<String> = doc["components"]["schemas"]["Currency"]["enum"]
        .as_array()
        .expect("Currency has an enum")
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let mut sorted = listed.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(listed, sorted, "keep the Currency enum sorted and unique");
    let mut accepted = Vec::new();
    for a in b'A'..=b'Z' {
        for b in b'A'..=b'Z' {
            for c in b'A'..=b'Z' {
                let code = String::from_utf8(vec![a, b, c]).unwrap();
                if shared::money::Currency::parse(&code).is_ok() {
                    accepted.push(code);
                }
            }
        }
    }
    assert_eq!(
        listed, accepted,
        "openapi.yaml's Currency enum differs from what the server accepts"
    );
}
