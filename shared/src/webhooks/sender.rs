//! The HTTP client that sends webhook deliveries: one POST per call, a timeout over the whole call,
//! no redirects followed (a 3xx is a failed attempt), and the SSRF rule of [`super::address`]
//! applied to the addresses actually connected to. Hostnames are resolved by our own resolver, which
//! drops every address the rule refuses, so a name that resolves (or rebinds) to a private address
//! never gets a connection; an IP-literal host skips any resolver, so it is checked here first.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Uri, header};
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioExecutor;

use super::address::{is_public, literal_ip, validate_url};

/// The message an attempt records when the rule refused every address of the endpoint's host.
pub const REFUSED_ADDRESS: &str = "refused address";

/// Resolves with the system resolver and keeps only the addresses the SSRF rule allows.
#[derive(Clone, Copy, Debug)]
pub struct CheckedResolver {
    allow_private: bool,
}

impl CheckedResolver {
    pub fn new(allow_private: bool) -> Self {
        Self { allow_private }
    }
}

impl tower::Service<Name> for CheckedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = resolved
                .iter()
                .copied()
                .filter(|a| allow_private || is_public(a.ip()))
                .collect();
            if allowed.is_empty() {
                // The addresses go to our log only: the delivery log a client reads says just
                // "refused address", or it would map private DNS names to private addresses.
                let ips: Vec<String> = resolved.iter().map(|a| a.ip().to_string()).collect();
                tracing::warn!(host = name.as_str(), addresses = %ips.join(", "), "webhook host resolves only to refused addresses");
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!(
                        "{REFUSED_ADDRESS}: {} resolves to no public address",
                        name.as_str()
                    ),
                ));
            }
            Ok(allowed.into_iter())
        })
    }
}

/// What one attempt got: the status code, or why there is none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub status: Option<u16>,
    pub error: Option<String>,
    pub duration: Duration,
}

impl Outcome {
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// One request to send.
pub struct Outgoing<'a> {
    pub url: &'a str,
    pub event_id: &'a str,
    pub event_type: &'a str,
    pub signature: &'a str,
    pub body: Bytes,
}

#[derive(Clone)]
pub struct Sender {
    client: Client<HttpsConnector<HttpConnector<CheckedResolver>>, Full<Bytes>>,
    allow_private: bool,
    timeout: Duration,
}

impl Sender {
    /// Builds the client (no connection yet). `timeout` bounds each call from connect to the
    /// response's head.
    pub fn new(timeout: Duration, allow_private: bool) -> anyhow::Result<Self> {
        crate::store::tls::install_default_provider();
        let mut http = HttpConnector::new_with_resolver(CheckedResolver::new(allow_private));
        http.enforce_http(false);
        http.set_connect_timeout(Some(timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(2)
            .build(https);
        Ok(Self {
            client,
            allow_private,
            timeout,
        })
    }

    /// Sends one delivery; never fails: every problem is an [`Outcome`] with an error.
    pub async fn send(&self, out: Outgoing<'_>) -> Outcome {
        let started = Instant::now();
        let result = self.attempt(out).await;
        let duration = started.elapsed();
        match result {
            Ok(status) => Outcome {
                status: Some(status),
                error: None,
                duration,
            },
            Err(error) => Outcome {
                status: None,
                error: Some(truncate(error, 500)),
                duration,
            },
        }
    }

    async fn attempt(&self, out: Outgoing<'_>) -> Result<u16, String> {
        let uri: Uri =
            validate_url(out.url, self.allow_private).map_err(|e| format!("refused URL: {e}"))?;
        if let Some(ip) = uri.host().and_then(literal_ip)
            && !self.allow_private
            && !is_public(ip)
        {
            return Err(format!("{REFUSED_ADDRESS}: {ip}"));
        }
        let request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::USER_AGENT, super::USER_AGENT)
            .header(super::SIGNATURE_HEADER, out.signature)
            .header(super::EVENT_ID_HEADER, out.event_id)
            .header(super::EVENT_TYPE_HEADER, out.event_type)
            .body(Full::new(out.body))
            .map_err(|e| format!("building the request: {e}"))?;
        match tokio::time::timeout(self.timeout, self.client.request(request)).await {
            Err(_) => Err(format!("timed out after {} ms", self.timeout.as_millis())),
            Ok(Err(e)) => Err(error_chain(&e)),
            // The body is not read: the status is the answer. Dropping it closes the connection.
            Ok(Ok(response)) => Ok(response.status().as_u16()),
        }
    }
}

/// An error and its sources, `outer: inner: ...` (hyper's own message alone says little).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}
