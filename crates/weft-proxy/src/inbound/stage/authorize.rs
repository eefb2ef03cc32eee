//! Stage 1, authorize: whether this caller may make this request at all.
//!
//! In order: a plaintext caller on a port whose mode turned strict while its
//! connection was open is refused; the path is normalised (a path apps would read in
//! different ways is refused with 400), and the normalised path is what the rest of
//! the stages and the app see; then the workload's authorization
//! ([`crate::authz`]) decides, over the verified caller, the port and the request.
//! A denial is HTTP 403 (gRPC `PERMISSION_DENIED`) naming nothing of the policy; the
//! proxy's log names the caller, the request, the rule and why, within a budget of
//! lines per second. Connections are decided earlier, when they arrive
//! ([`connection`]): identity and port rules refuse them before a byte reaches the
//! app.

use http::Request;
use weft_api::proxy::{ExtAuthz, MtlsMode};

use crate::authz::{self, By, Decision, Outcome, Tally, Traffic};
use crate::error::Error;
use crate::http::path;
use crate::state::Snapshot;
use crate::telemetry::{Metrics, Name};

use super::identity::Caller;

/// A `custom` rule's provider to ask before the request is served, and the rule's
/// source (the metric label).
pub type Ask<'s> = (Name, &'s ExtAuthz);

/// Whether `caller` may send `req` to the app's `port`; normalises its path first.
/// `Ok(Some(_))`: allowed if the external authorization server agrees.
pub fn authorize<'s, B>(
    snap: &'s Snapshot,
    caller: &Caller,
    port: u16,
    req: &mut Request<B>,
    metrics: &Metrics,
) -> Result<Option<Ask<'s>>, Error> {
    if caller.peer().is_none() && snap.config.port_mtls(port) != MtlsMode::Permissive {
        return Err(Error::PlaintextRefused);
    }
    normalize_path(req, snap.settings().path_normalization)?;
    // Neither rules nor the app may see a header only this proxy may set; the
    // identity stage sets them on what is left.
    super::identity::strip_forged(req.headers_mut(), caller);
    let policy = snap.authorization();
    if policy.is_open() {
        return Ok(None);
    }
    let path = req.uri().path();
    let stripped = path::without_params(path);
    let authority = crate::telemetry::authority_of(req);
    let mut host_buf = String::new();
    let view = authz::Request {
        method: req.method().as_str(),
        path,
        path_without_params: stripped.as_deref(),
        host: authz::normal_host(authority, &mut host_buf),
        headers: req.headers(),
        header_names: authz::HeaderNames::of(req.headers()),
    };
    let decision = caller.decide(policy, port, Traffic::Http(&view));
    let what = || format!("{} {}", view.method, view.path);
    record(metrics, &decision, caller.key(), port, what);
    match decision.outcome {
        Outcome::Deny => Err(Error::Denied),
        Outcome::Allow | Outcome::Defer => Ok(decision
            .ask
            .map(|(rule, provider)| (Name(rule.source.clone()), provider))),
    }
}

/// Replaces `req`'s path with its normalised form (the query is kept as sent).
pub fn normalize_path<B>(
    req: &mut Request<B>,
    mode: weft_api::proxy::PathNormalization,
) -> Result<(), Error> {
    path::normalize_uri(req.uri_mut(), mode)
        .map_err(|refusal| Error::BadRequest(format!("refused path: {refusal}")))
}

/// Decides a connection to workload port `port` from `caller` (its SPIFFE ID, `None`:
/// plaintext) before anything reaches the app: `Connect` when its protocol is not
/// known yet, `Tcp` for an opaque one. Whether it may go on (`Defer`: HTTP requests
/// will be decided one by one).
pub fn connection(
    snap: &Snapshot,
    caller: Option<&str>,
    port: u16,
    traffic: Traffic<'_>,
    metrics: &Metrics,
) -> bool {
    let policy = snap.authorization();
    if policy.is_open() {
        return true;
    }
    let decision = policy.decide(port, caller, traffic);
    let what = || match traffic {
        Traffic::Tcp => "a TCP connection".to_owned(),
        _ => "a connection".to_owned(),
    };
    record(metrics, &decision, caller, port, what);
    decision.outcome != Outcome::Deny
}

/// Counts a decision, and logs a denial or an audit within the log budget.
fn record(
    metrics: &Metrics,
    decision: &Decision<'_>,
    caller: Option<&str>,
    port: u16,
    what: impl Fn() -> String,
) {
    let count = |by: &By<'_>, tally: Tally| match by {
        By::Rule(r) => r
            .counters
            .get(tally as usize, || {
                metrics.authz_counter(&Name(r.source.clone()), r.action.as_str(), tally.as_str())
            })
            .inc(),
        By::Default(a) => metrics.default_authz[*a as usize]
            .get(tally as usize, || {
                metrics.authz_counter(&metrics.default_permission, a.as_str(), tally.as_str())
            })
            .inc(),
    };
    let caller = caller.unwrap_or("unauthenticated");
    if let Some(by) = &decision.by {
        let tally = match decision.outcome {
            Outcome::Allow => Tally::Allowed,
            Outcome::Deny => Tally::Denied,
            Outcome::Defer => return,
        };
        count(by, tally);
        if decision.outcome == Outcome::Deny {
            log(metrics, || {
                tracing::info!(
                    %caller, port, request = %what(), decided_by = %by,
                    "denied: {}", why(by)
                );
            });
        }
    }
    if let Some(by) = &decision.audit {
        count(by, Tally::Audited);
        log(metrics, || {
            tracing::info!(
                %caller, port, request = %what(), flagged_by = %by,
                "audit: served, but {} would refuse it", by
            );
        });
    }
}

fn why(by: &By<'_>) -> String {
    match by {
        By::Rule(_) => format!("{by} matches"),
        By::Default(_) => "no allow rule matches and the default action is deny".to_owned(),
    }
}

fn log(metrics: &Metrics, line: impl FnOnce()) {
    if metrics.authz_log_budget.take() {
        line();
    } else {
        metrics.authz_logs_suppressed.inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbound::stage::test_config::snapshot;
    use http::uri::PathAndQuery;

    const CLIENT: &str = "spiffe://cluster.local/ns/default/sa/client";

    fn callers(snap: &Snapshot) -> (Caller, Caller) {
        let peer: weft_tls::SpiffeId = CLIENT.parse().expect("spiffe id");
        (Caller::new(snap, Some(peer)), Caller::new(snap, None))
    }

    fn req(path: &str) -> Request<()> {
        Request::get(path)
            .header("host", "server.default")
            .body(())
            .expect("request")
    }

    /// Caller (verified or plaintext) and port → allowed or refused.
    #[test]
    fn plaintext_is_refused_on_strict_ports_only() {
        let snap = snapshot("");
        let metrics = Metrics::new();
        let (verified, plaintext) = callers(&snap);
        let cases: Vec<(&Caller, u16, bool)> = vec![
            (&verified, 8080, true),
            (&verified, 9090, true),
            (&plaintext, 8080, false),
            (&plaintext, 9090, true),
        ];
        for (caller, port, allowed) in cases {
            let got = authorize(&snap, caller, port, &mut req("/"), &metrics);
            assert_eq!(got.is_ok(), allowed, "{:?} port {port}", caller.peer());
            if let Err(e) = got {
                assert_eq!(e.status().as_u16(), 403);
            }
        }
    }

    #[test]
    fn the_request_goes_on_with_its_normalised_path_and_query() {
        let snap = snapshot("");
        let metrics = Metrics::new();
        let (verified, _) = callers(&snap);
        let mut r = req("/public/./x/../%61dmin?q=%2F..");
        authorize(&snap, &verified, 8080, &mut r, &metrics).expect("allowed");
        assert_eq!(
            r.uri().path_and_query().map(PathAndQuery::as_str),
            Some("/public/admin?q=%2F..")
        );
        let mut bad = req("/public/..;/admin");
        let err = authorize(&snap, &verified, 8080, &mut bad, &metrics).expect_err("refused");
        assert_eq!(err.status().as_u16(), 400);
    }

    #[test]
    fn denials_are_counted_by_permission_and_forged_identity_headers_never_match() {
        let snap = snapshot(
            r#", identityHeader: x-weft-peer-identity, authorization: { defaultAction: deny, rules: [
                { source: TrafficPermission/default/ops, from: [{ identity: "spiffe://cluster.local/ns/default/sa/client" }],
                  to: [{ headers: [{ name: x-weft-peer-identity, value: { exact: admin } }] }] },
                { source: TrafficPermission/default/reads, to: [{ methods: [GET], paths: [{ type: PathPrefix, value: /public }] }] } ] }"#,
        );
        let metrics = Metrics::new();
        let (verified, plaintext) = callers(&snap);
        let mut forged = req("/private");
        forged.headers_mut().insert(
            "x-weft-peer-identity",
            http::HeaderValue::from_static("admin"),
        );
        let err = authorize(&snap, &verified, 8080, &mut forged, &metrics).expect_err("denied");
        assert_eq!(err.status().as_u16(), 403);
        authorize(&snap, &plaintext, 9090, &mut req("/public/a"), &metrics).expect("allowed");
        let text = metrics.encode();
        assert!(
            text.contains(r#"weft_proxy_authorization_decisions_total{permission="default",action="deny",result="denied"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"permission="TrafficPermission/default/reads",action="allow",result="allowed"} 1"#
            ),
            "{text}"
        );
    }

    #[test]
    fn connections_are_refused_only_when_no_request_could_be_allowed() {
        let snap = snapshot(
            r#", authorization: { defaultAction: deny, rules: [
                { source: p, from: [{ identity: "spiffe://cluster.local/ns/default/*" }], to: [{ ports: [8080], methods: [GET] }] } ] }"#,
        );
        let metrics = Metrics::new();
        let other = "spiffe://cluster.local/ns/other/sa/x";
        assert!(connection(
            &snap,
            Some(CLIENT),
            8080,
            Traffic::Connect,
            &metrics
        ));
        assert!(!connection(
            &snap,
            Some(CLIENT),
            8080,
            Traffic::Tcp,
            &metrics
        ));
        assert!(!connection(
            &snap,
            Some(other),
            8080,
            Traffic::Connect,
            &metrics
        ));
        assert!(!connection(
            &snap,
            Some(CLIENT),
            9090,
            Traffic::Connect,
            &metrics
        ));
    }
}
