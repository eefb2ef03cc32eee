//! Stage 4, mirrors: copies of the request sent in the background to the rule's
//! mirror backends, each with its share of requests (`HTTPRoute` `mirrors`). The
//! original never waits for a copy; a copy's answer is read and dropped.
//!
//! Only a held request (see [`super::attempt::Attempts::hold`]) can be copied: a
//! streamed body is sent once, to the backend, and its mirrors are skipped.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::http::forward;
use crate::http::pool::Pool;
use crate::route::Rule;
use crate::telemetry::Metrics;
use crate::upstream::{EndpointState, Target};

use super::attempt::Resend;

/// Copies sent at once by this proxy at most; more are dropped (counted `skipped`).
pub const MAX_MIRRORS_IN_FLIGHT: usize = 256;
/// How long a copy may take when its rule has no timeout.
const MIRROR_TIMEOUT: Duration = Duration::from_secs(10);

static MIRRORS_IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// The mirrors this request is copied to, each drawn by its share (an upgrade is
/// never copied). None allocates nothing.
pub fn select(rule: &Rule<Target>, upgrade: bool) -> Vec<&Target> {
    if upgrade {
        return Vec::new();
    }
    rule.mirrors
        .iter()
        .filter(|(_, share)| fastrand::u32(..1_000_000) < *share)
        .map(|(t, _)| t)
        .collect()
}

/// Sends a copy of `held` to each of `mirrors` through the pool `pool` gives for an
/// endpoint, within `timeout` (the rule's). Without a held copy every mirror is
/// skipped.
pub fn send<F>(
    mirrors: &[&Target],
    held: Option<&Resend>,
    timeout: Option<Duration>,
    metrics: &Arc<Metrics>,
    pool: F,
) where
    F: Fn(&Target, &EndpointState) -> Arc<Pool>,
{
    for target in mirrors {
        match held {
            Some(copy) => spawn(target, copy, timeout, metrics, &pool),
            // The body is streamed (too large or of unknown size): not copied.
            None => Metrics::service_event(&metrics.mirrors, &target.service.label, "skipped"),
        }
    }
}

/// Copies beyond [`MAX_MIRRORS_IN_FLIGHT`] are dropped rather than queued.
fn spawn<F>(
    target: &Target,
    copy: &Resend,
    timeout: Option<Duration>,
    metrics: &Arc<Metrics>,
    pool: &F,
) where
    F: Fn(&Target, &EndpointState) -> Arc<Pool>,
{
    let label = target.service.label.clone();
    if MIRRORS_IN_FLIGHT.fetch_add(1, Ordering::AcqRel) >= MAX_MIRRORS_IN_FLIGHT {
        MIRRORS_IN_FLIGHT.fetch_sub(1, Ordering::AcqRel);
        Metrics::service_event(&metrics.mirrors, &label, "skipped");
        return;
    }
    let Some(endpoint) = target.service.pick() else {
        MIRRORS_IN_FLIGHT.fetch_sub(1, Ordering::AcqRel);
        Metrics::service_event(&metrics.mirrors, &label, "failed");
        return;
    };
    let pool = pool(target, endpoint);
    let req = copy.build();
    let metrics = metrics.clone();
    let limit = timeout.unwrap_or(MIRROR_TIMEOUT);
    tokio::spawn(async move {
        use http_body_util::BodyExt as _;
        let sent = async {
            let resp = forward::forward(pool, req).await.ok()?;
            // Read the answer through, so the connection can be reused.
            resp.into_body().collect().await.ok().map(|_| ())
        };
        let result = match tokio::time::timeout(limit, sent).await {
            Ok(Some(())) => "sent",
            _ => "failed",
        };
        MIRRORS_IN_FLIGHT.fetch_sub(1, Ordering::AcqRel);
        Metrics::service_event(&metrics.mirrors, &label, result);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Share (millionths) → whether a request is copied, over many draws.
    #[test]
    fn copies_by_share_and_never_an_upgrade() {
        let yaml = r"
workload: { name: client, address: 10.0.0.1 }
listeners: { hbone: null }
services:
  - name: echo
    ports: [{ port: 80, protocol: http }]
    endpoints: [{ address: 10.0.0.2 }]
  - name: shadow
    ports: [{ port: 80, protocol: http }]
    endpoints: [{ address: 10.0.0.3 }]
routes:
  - service: echo
    rules:
      - matches: [{ path: { prefix: /all } }]
        backends: [{ service: echo }]
        mirrors: [{ service: shadow }]
      - matches: [{ path: { prefix: / } }]
        backends: [{ service: echo }]
";
        let config = weft_api::proxy::Config::from_yaml(yaml).expect("valid config");
        let snap = crate::state::Snapshot::build(config, None, "v".into(), None).expect("snapshot");
        let table = snap.routes(&snap.target("echo.default", 80).expect("target"));
        let cases: Vec<(&str, bool, usize)> =
            vec![("/all", false, 1), ("/all", true, 0), ("/none", false, 0)];
        for (path, upgrade, copies) in cases {
            let req = http::Request::get(path).body(()).expect("request");
            let rule = table
                .find(&super::super::route::view(&req, None))
                .expect("rule");
            for _ in 0..100 {
                assert_eq!(
                    select(rule, upgrade).len(),
                    copies,
                    "{path} upgrade={upgrade}"
                );
            }
        }
    }
}
