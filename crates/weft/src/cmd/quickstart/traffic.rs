//! What quickstart does as the demo's client: plain HTTP GETs to sidecar admin
//! endpoints (`/ready`, `/config_dump`) and to the frontend through the client
//! sidecar, and the tally of what the answers show.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How often readiness is polled.
const POLL: Duration = Duration::from_millis(50);

/// A plain HTTP/1.1 client (pooled, so the demo's requests share connections).
#[derive(Clone)]
pub(super) struct Http {
    client: Client<HttpConnector, Empty<Bytes>>,
}

/// What the requests to the frontend showed.
#[derive(Debug, Default)]
pub(super) struct Tally {
    /// Requests answered 200 with a catalog version.
    pub(super) ok: u32,
    /// Requests that failed, and the last failure.
    pub(super) failed: u32,
    pub(super) last_error: Option<String>,
    /// Answers per catalog version (`v1`, `v2`).
    pub(super) versions: BTreeMap<String, u32>,
    /// Callers the frontend saw (from its sidecar's `x-forwarded-client-cert`).
    pub(super) frontend_callers: BTreeMap<String, u32>,
    /// Callers the catalog saw.
    pub(super) catalog_callers: BTreeMap<String, u32>,
    /// One full `x-forwarded-client-cert` the catalog received.
    pub(super) catalog_xfcc: Option<String>,
}

// === impl Http ===

impl Http {
    pub(super) fn new() -> Http {
        Http {
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// `GET url`: the status and body.
    pub(super) async fn get(&self, url: &str) -> anyhow::Result<(StatusCode, Bytes)> {
        let request = Request::get(url)
            .body(Empty::new())
            .with_context(|| format!("building GET {url}"))?;
        let exchange = async {
            let response = self.client.request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((status, body))
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(anyhow::anyhow!("GET {url}: {}", chain(&*e))),
            Err(_) => Err(anyhow::anyhow!(
                "GET {url}: no answer within {}",
                humantime::format_duration(REQUEST_TIMEOUT)
            )),
        }
    }

    /// `GET http://{admin}/ready` answers 200.
    pub(super) async fn ready(&self, admin: SocketAddr) -> bool {
        matches!(
            self.get(&format!("http://{admin}/ready")).await,
            Ok((StatusCode::OK, _))
        )
    }

    /// The sidecar's `/config_dump`.
    pub(super) async fn config_dump(&self, admin: SocketAddr) -> anyhow::Result<Value> {
        let (status, body) = self.get(&format!("http://{admin}/config_dump")).await?;
        if status != StatusCode::OK {
            anyhow::bail!("GET http://{admin}/config_dump answered {status}");
        }
        serde_json::from_slice(&body).context("config_dump is not JSON")
    }

    /// Waits until the sidecar on `admin` has an endpoint for each of `services`, and a
    /// route for each of `routed`: the control plane's config has reached it.
    pub(super) async fn wait_for_config(
        &self,
        admin: SocketAddr,
        services: &[&str],
        routed: &[&str],
        deadline: Instant,
    ) -> anyhow::Result<()> {
        loop {
            let missing = match self.config_dump(admin).await {
                Ok(dump) => missing(&dump["config"], services, routed),
                Err(e) => vec![e.to_string()],
            };
            if missing.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                anyhow::bail!(
                    "the sidecar with admin {admin} still lacks {} (see http://{admin}/config_dump)",
                    missing.join(", ")
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Sends `count` requests to the frontend at `url` and tallies the answers.
    pub(super) async fn drive(&self, url: &str, count: u32) -> Tally {
        let mut tally = Tally::default();
        for _ in 0..count {
            match self.get(url).await {
                Ok((StatusCode::OK, body)) => tally.record(&body),
                Ok((status, body)) => tally.fail(format!(
                    "{status}: {}",
                    String::from_utf8_lossy(&body).trim()
                )),
                Err(e) => tally.fail(e.to_string()),
            }
        }
        tally
    }
}

/// What of `services` (with an endpoint) and `routed` (with a route) `config` lacks.
fn missing(config: &Value, services: &[&str], routed: &[&str]) -> Vec<String> {
    let empty = Vec::new();
    let listed = config["services"].as_array().unwrap_or(&empty);
    let routes = config["routes"].as_array().unwrap_or(&empty);
    let mut missing = Vec::new();
    for name in services {
        let has_endpoint = listed.iter().any(|s| {
            s["name"] == *name && s["endpoints"].as_array().is_some_and(|e| !e.is_empty())
        });
        if !has_endpoint {
            missing.push(format!("an endpoint of {name}"));
        }
    }
    for name in routed {
        // A route names its service `name.namespace`.
        let routes_name = |r: &&Value| {
            r["service"]
                .as_str()
                .is_some_and(|s| s.split('.').next() == Some(*name))
        };
        if !routes.iter().any(|r| routes_name(&r)) {
            missing.push(format!("the route of {name}"));
        }
    }
    missing
}

fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let part = inner.to_string();
        if !text.contains(&part) {
            text = format!("{text}: {part}");
        }
        source = inner.source();
    }
    text
}

// === impl Tally ===

impl Tally {
    fn record(&mut self, body: &[u8]) {
        let Ok(answer) = serde_json::from_slice::<Value>(body) else {
            self.fail("the frontend answered with invalid JSON".into());
            return;
        };
        let Some(version) = answer["catalog"]["version"].as_str() else {
            self.fail("the frontend's answer names no catalog version".into());
            return;
        };
        self.ok += 1;
        *self.versions.entry(version.to_owned()).or_default() += 1;
        let text = |v: &Value| v.as_str().unwrap_or("nobody (no identity)").to_owned();
        *self
            .frontend_callers
            .entry(text(&answer["frontend"]["caller"]))
            .or_default() += 1;
        *self
            .catalog_callers
            .entry(text(&answer["catalog"]["caller"]))
            .or_default() += 1;
        if self.catalog_xfcc.is_none() {
            self.catalog_xfcc = answer["catalog"]["xfcc"].as_str().map(str::to_owned);
        }
    }

    fn fail(&mut self, error: String) {
        self.failed += 1;
        self.last_error = Some(error);
    }

    /// How many answers came from catalog `version`.
    pub(super) fn version(&self, version: &str) -> u32 {
        self.versions.get(version).copied().unwrap_or(0)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn a_config_without_endpoints_or_routes_is_missing_them() {
        let config = serde_json::json!({
            "services": [
                { "name": "catalog-v1", "endpoints": [{ "address": "127.0.0.4" }] },
                { "name": "catalog-v2", "endpoints": [] }
            ],
            "routes": [{ "service": "frontend.default" }]
        });
        assert_eq!(
            missing(&config, &["catalog-v1", "catalog-v2"], &["catalog"]),
            ["an endpoint of catalog-v2", "the route of catalog"]
        );
    }

    #[test]
    fn tally_counts_versions_and_callers() {
        let mut tally = Tally::default();
        let answer = br#"{"frontend":{"caller":"spiffe://c/ns/default/sa/client"},
            "catalog":{"version":"v2","caller":"spiffe://c/ns/default/sa/frontend","xfcc":"By=x;URI=y"}}"#;
        tally.record(answer);
        tally.record(b"not json");
        assert_eq!((tally.ok, tally.failed), (1, 1));
        assert_eq!(tally.version("v2"), 1);
        assert_eq!(tally.version("v1"), 0);
        assert_eq!(
            tally.catalog_callers.keys().next().unwrap(),
            "spiffe://c/ns/default/sa/frontend"
        );
        assert_eq!(tally.catalog_xfcc.as_deref(), Some("By=x;URI=y"));
    }
}
