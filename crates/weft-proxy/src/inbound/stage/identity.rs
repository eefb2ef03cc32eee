//! Stage 4, identity headers: what the inbound side asserts to the app about the
//! caller. Every identity header the request came with is removed (a client can never
//! supply its own), then `x-forwarded-client-cert` and the configured
//! `inbound.identityHeader` are set for a verified caller, and the caller is attached
//! to the request's extensions ([`PeerIdentity`]).

use http::{HeaderName, HeaderValue, Request};
use weft_tls::SpiffeId;

use crate::http::headers;
use crate::state::Snapshot;
use crate::telemetry::labels::Peer;
use crate::telemetry::Security;

/// The caller's verified identity, attached to each inbound request's extensions for
/// policy layers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerIdentity(pub SpiffeId);

/// What the inbound side asserts to the app about one connection's caller: computed
/// once per connection, applied to every request on it.
#[derive(Debug)]
pub struct Caller {
    /// The verified caller, for policy layers (`None`: plaintext).
    peer: Option<PeerIdentity>,
    security: Security,
    /// `x-forwarded-client-cert: By=<own ID>;URI=<caller>`.
    xfcc: Option<HeaderValue>,
    /// The configured identity header (`inbound.identityHeader`): its name, and the
    /// caller's SPIFFE ID when there is a verified caller.
    identity_header: Option<(HeaderName, Option<HeaderValue>)>,
    /// The caller's SPIFFE ID as text, the key of per-identity rate limits.
    key: Option<Box<str>>,
    /// The peer labels of its requests.
    labels: Peer,
    /// The authorization rules that can apply to this caller, worked out on its first
    /// request and again when the policy changes.
    authz_scope: arc_swap::ArcSwapOption<crate::authz::Scope>,
}

impl Caller {
    /// The caller `peer` (`None`: plaintext) as `snap`'s workload sees it.
    pub fn new(snap: &Snapshot, peer: Option<SpiffeId>) -> Self {
        let xfcc = peer.as_ref().and_then(|peer| {
            HeaderValue::from_str(&format!(
                "By={};URI={peer}",
                snap.creds
                    .as_ref()
                    .map(|c| c.identity().to_string())
                    .unwrap_or_default()
            ))
            .ok()
        });
        let identity_header = snap
            .config
            .inbound
            .identity_header
            .as_deref()
            .and_then(|name| HeaderName::from_bytes(name.as_bytes()).ok())
            .map(|name| {
                let value = peer
                    .as_ref()
                    .and_then(|p| HeaderValue::from_str(&p.to_string()).ok());
                (name, value)
            });
        let key = peer.as_ref().map(|p| p.to_string().into_boxed_str());
        Self {
            labels: snap.own.inbound(key.as_deref()),
            key,
            security: if peer.is_some() {
                Security::MutualTls
            } else {
                Security::None
            },
            peer: peer.map(PeerIdentity),
            xfcc,
            identity_header,
            authz_scope: arc_swap::ArcSwapOption::empty(),
        }
    }

    /// `policy`'s decision for a request of this caller to `port`, over the rules
    /// that can apply to it (worked out once per policy and port, not per request).
    pub fn decide<'p>(
        &self,
        policy: &'p crate::authz::Policy,
        port: u16,
        traffic: crate::authz::Traffic<'_>,
    ) -> crate::authz::Decision<'p> {
        let cached = self.authz_scope.load();
        if let Some(scope) = cached.as_deref() {
            if policy.is_scope_of(scope, port) {
                return policy.decide_scoped(scope, self.key(), traffic);
            }
        }
        drop(cached);
        let scope = std::sync::Arc::new(policy.scope(port, self.key()));
        let decision = policy.decide_scoped(&scope, self.key(), traffic);
        self.authz_scope.store(Some(scope));
        decision
    }

    /// The verified caller (`None`: plaintext).
    pub fn peer(&self) -> Option<&PeerIdentity> {
        self.peer.as_ref()
    }

    /// The connection's security, as metrics label it.
    pub fn security(&self) -> Security {
        self.security
    }

    /// The peer labels of its requests.
    pub fn labels(&self) -> &Peer {
        &self.labels
    }

    /// The key of per-identity rate limits: the caller's SPIFFE ID.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }
}

/// Removes every identity header a client could have sent: `x-forwarded-client-cert`
/// and the configured `inbound.identityHeader`, with their look-alikes.
pub fn strip_forged(headers: &mut http::HeaderMap, caller: &Caller) {
    headers::strip_identity(headers);
    if let Some((name, _)) = &caller.identity_header {
        headers::remove_with_lookalikes(headers, name);
    }
}

/// Sets the identity headers this proxy vouches for, and attaches the verified
/// caller to `req`'s extensions. Those a client sent are gone already: the authorize
/// stage strips them ([`strip_forged`]) before anything reads the request.
pub fn assert<B>(req: &mut Request<B>, caller: &Caller) {
    let headers = req.headers_mut();
    if let Some((name, Some(value))) = &caller.identity_header {
        headers.insert(name.clone(), value.clone());
    }
    if let Some(v) = &caller.xfcc {
        headers.insert(headers::XFCC, v.clone());
    }
    if let Some(peer) = &caller.peer {
        req.extensions_mut().insert(peer.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbound::stage::test_config::snapshot;

    /// A SPIFFE ID, if any.
    type Peer<'a> = Option<&'a str>;

    /// Caller and configured header → what the app receives.
    #[test]
    fn the_app_sees_only_identities_this_proxy_vouches_for() {
        let client = "spiffe://cluster.local/ns/default/sa/client";
        let with_header = ", identityHeader: x-peer";
        #[rustfmt::skip]
        let cases: Vec<(&str, Peer, Peer, Peer)> = vec![
            // config, caller, x-peer, xfcc URI
            // without the setting, `x-peer` is an ordinary header
            ("", Some(client), Some("spiffe://forged"), Some(client)),
            ("", None, Some("spiffe://forged"), None),
            (with_header, Some(client), Some(client), Some(client)),
            (with_header, None, None, None),
        ];
        for (config, peer, x_peer, xfcc) in cases {
            let snap = snapshot(config);
            let caller = Caller::new(&snap, peer.map(|p| p.parse().expect("spiffe id")));
            let mut req = Request::get("/")
                .header("x-forwarded-client-cert", "By=x;URI=spiffe://forged")
                .header("x-peer", "spiffe://forged")
                .body(())
                .expect("request");
            strip_forged(req.headers_mut(), &caller);
            assert(&mut req, &caller);
            let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
            assert_eq!(header("x-peer"), x_peer, "{config} {peer:?}: x-peer");
            let uri = header("x-forwarded-client-cert").and_then(|v| v.split("URI=").nth(1));
            assert_eq!(uri, xfcc, "{config} {peer:?}: xfcc");
            assert_eq!(
                req.extensions()
                    .get::<PeerIdentity>()
                    .map(|p| p.0.to_string()),
                peer.map(str::to_string),
                "{config} {peer:?}: extension"
            );
        }
    }
}
