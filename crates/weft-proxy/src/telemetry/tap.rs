//! Live tap: the requests an operator asked to see (`weft tap`), sent to the control
//! plane as they finish, with header values redacted unless the tap allows them, at
//! most a tap's rate.
//!
//! With no tap active a request pays one atomic load. A request a tap may want (its
//! method and path match) carries a [`Tapped`] box to the end of its answer, where the
//! rest of the filters apply and the event is queued without waiting; a full queue
//! drops it.

use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwapOption;
use tokio::sync::mpsc;
use weft_api::pb::v1 as pb;

use super::labels::Peer;
use super::{Direction, LogBudget};

/// Events queued for the control plane, at most.
pub const QUEUE_EVENTS: usize = 1024;

/// A header value shown when the tap does not allow the header.
pub const REDACTED: &str = "[redacted]";

/// The taps in force on this proxy.
#[derive(Debug, Default)]
pub struct Taps {
    active: ArcSwapOption<Active>,
}

#[derive(Debug)]
struct Active {
    taps: Vec<Tap>,
    events: mpsc::Sender<pb::TapEvent>,
}

#[derive(Debug)]
struct Tap {
    start: pb::TapStart,
    budget: LogBudget,
}

/// A request some tap may want, from its start to the end of its answer.
#[derive(Debug)]
pub struct Tapped {
    taps: Arc<Active>,
    /// Indexes into `taps.taps` of the taps whose request filters matched.
    matched: Vec<usize>,
    time: SystemTime,
    method: http::Method,
    authority: String,
    path: String,
    request_headers: Vec<(String, String)>,
    response_headers: Vec<(String, String)>,
}

impl Taps {
    /// Replaces the taps in force; their events go to `events`.
    pub fn set(&self, taps: Vec<pb::TapStart>, events: mpsc::Sender<pb::TapEvent>) {
        if taps.is_empty() {
            self.active.store(None);
            return;
        }
        let taps = taps
            .into_iter()
            .map(|start| {
                let rate = match start.max_per_second {
                    0 => 10,
                    n => n.min(1000),
                };
                Tap {
                    start,
                    budget: LogBudget::new(rate),
                }
            })
            .collect();
        self.active.store(Some(Arc::new(Active { taps, events })));
    }

    /// Stops every tap.
    pub fn clear(&self) {
        self.active.store(None);
    }

    /// Whether any tap is in force.
    pub fn is_active(&self) -> bool {
        self.active.load().is_some()
    }

    /// The request's tap record, if a tap in force may want it.
    pub fn begin<B>(&self, req: &http::Request<B>) -> Option<Box<Tapped>> {
        let guard = self.active.load();
        let active = guard.as_ref()?;
        let path = req.uri().path();
        let matched: Vec<usize> = active
            .taps
            .iter()
            .enumerate()
            .filter(|(_, t)| {
                path.starts_with(t.start.path_prefix.as_str())
                    && (t.start.method.is_empty() || t.start.method == req.method().as_str())
            })
            .map(|(i, _)| i)
            .collect();
        if matched.is_empty() {
            return None;
        }
        let allowed = |name: &str| {
            matched.iter().any(|&i| {
                active.taps[i]
                    .start
                    .headers
                    .iter()
                    .any(|h| h.eq_ignore_ascii_case(name))
            })
        };
        let authority = super::authority_of(req).to_owned();
        let request_headers = redacted(req.headers(), &allowed);
        Some(Box::new(Tapped {
            taps: active.clone(),
            matched,
            time: SystemTime::now(),
            method: req.method().clone(),
            authority,
            path: path.to_owned(),
            request_headers,
            response_headers: Vec::new(),
        }))
    }
}

/// `headers` as (name, value) pairs, values shown only where `allowed`.
fn redacted(headers: &http::HeaderMap, allowed: &dyn Fn(&str) -> bool) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            let shown = if allowed(name.as_str()) {
                String::from_utf8_lossy(value.as_bytes()).into_owned()
            } else {
                REDACTED.to_owned()
            };
            (name.as_str().to_owned(), shown)
        })
        .collect()
}

impl Tapped {
    /// Keeps the answer's headers, redacted as the request's were.
    pub fn answered(&mut self, headers: &http::HeaderMap) {
        let taps = &self.taps;
        let matched = &self.matched;
        let allowed = |name: &str| {
            matched.iter().any(|&i| {
                taps.taps[i]
                    .start
                    .headers
                    .iter()
                    .any(|h| h.eq_ignore_ascii_case(name))
            })
        };
        self.response_headers = redacted(headers, &allowed);
    }

    /// The exchange ended (on the `direction` side, between `peer`, answered with
    /// `status` and `grpc`): an event for each tap whose filters all hold and whose
    /// rate allows one more.
    pub fn finish(&self, direction: Direction, peer: &Peer, status: u16, grpc: Option<u8>) {
        let peer = &*peer.counted;
        let elapsed = self.time.elapsed().unwrap_or_default();
        for &i in &self.matched {
            let tap = &self.taps.taps[i];
            let s = &tap.start;
            let status_ok = (s.status_min == 0 && s.status_max == 0)
                || (s.status_min..=s.status_max).contains(&u32::from(status));
            let caller_ok = s.caller.is_empty() || s.caller == *peer.source_identity.0;
            let service_ok = s.service.is_empty() || s.service == *peer.destination_service.0;
            if !(status_ok && caller_ok && service_ok && tap.budget.take()) {
                continue;
            }
            let event = pb::TapEvent {
                tap_id: s.id,
                time_unix_ms: self
                    .time
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
                inbound: direction == Direction::Inbound,
                method: self.method.as_str().to_owned(),
                authority: self.authority.clone(),
                path: self.path.clone(),
                status: u32::from(status),
                grpc_status: grpc.map(u32::from),
                duration_ms: elapsed.as_secs_f64() * 1000.0,
                source_identity: peer.source_identity.0.to_string(),
                destination_identity: peer.destination_identity.0.to_string(),
                destination_workload: peer.destination_workload.0.to_string(),
                destination_service: peer.destination_service.0.to_string(),
                request_headers: self.request_headers.iter().cloned().collect(),
                response_headers: self.response_headers.iter().cloned().collect(),
            };
            // A full queue drops the event: a tap never slows a request down.
            let _ = self.taps.events.try_send(event);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::telemetry::labels::Own;

    fn peer(caller: &str) -> Peer {
        Own::new("web", "shop", Some("spiffe://cluster.local/ns/shop/sa/web")).inbound(Some(caller))
    }

    /// Filters on method, path, status and caller; values redacted except the allowed
    /// headers; and no more than the tap's rate.
    #[tokio::test]
    async fn a_tap_sends_only_matching_requests_redacted_and_within_its_rate() {
        let taps = Taps::default();
        let (tx, mut rx) = mpsc::channel(16);
        let caller = "spiffe://cluster.local/ns/shop/sa/api";
        taps.set(
            vec![pb::TapStart {
                id: 7,
                path_prefix: "/orders".into(),
                method: "GET".into(),
                status_min: 500,
                status_max: 599,
                caller: caller.into(),
                max_per_second: 2,
                headers: vec!["user-agent".into()],
                service: String::new(),
            }],
            tx,
        );
        let req = |method: &str, path: &str| {
            http::Request::builder()
                .method(method)
                .uri(path)
                .header("host", "web")
                .header("user-agent", "curl/8")
                .header("authorization", "Bearer secret")
                .body(())
                .unwrap()
        };
        assert!(taps.begin(&req("POST", "/orders/1")).is_none(), "method");
        assert!(taps.begin(&req("GET", "/cart")).is_none(), "path");
        let send = |status, who: &str| {
            let mut tapped = taps.begin(&req("GET", "/orders/9")).expect("matches");
            tapped.answered(&http::HeaderMap::new());
            tapped.finish(Direction::Inbound, &peer(who), status, None);
        };
        send(200, caller); // status filtered out
        send(503, "spiffe://cluster.local/ns/shop/sa/other"); // caller filtered out
        for _ in 0..5 {
            send(503, caller);
        }
        let mut events = Vec::new();
        while let Ok(e) = rx.try_recv() {
            events.push(e);
        }
        assert_eq!(events.len(), 2, "two per second: {events:#?}");
        let e = &events[0];
        assert_eq!((e.tap_id, e.status, e.path.as_str()), (7, 503, "/orders/9"));
        assert_eq!(e.request_headers["user-agent"], "curl/8");
        assert_eq!(e.request_headers["authorization"], REDACTED);
        taps.clear();
        assert!(taps.begin(&req("GET", "/orders/9")).is_none(), "stopped");
    }
}
