//! Admitting proxies' xDS streams: the workload token must name the identity the proxy
//! registers, one live proxy per workload on this instance, the labels the token grants
//! (ADR 27); the workload is registered while its stream lives, and streams whose token
//! is revoked or expired are ended.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use weft_api::pb::v1 as pb;
use weft_api::resource::{Key, Kind};

use crate::controller::registry;
use crate::identity::{self, Tokens};
use crate::store::Store;
use crate::xds::{ConnectionInfo, Hooks, Viewer, XdsServer};

/// How often open xDS streams are checked against token revocations and expiry.
pub(crate) const TOKEN_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// Ends the streams whose workload token was revoked (on any instance: revocations are
/// in the store) or has expired: a revoked proxy loses its config stream within
/// [`TOKEN_CHECK_INTERVAL`], and its reconnects and certificate renewals are refused.
pub(crate) async fn enforce_tokens(
    store: &dyn Store,
    xds: &XdsServer,
    registrar: &Registrar,
    every: Duration,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        let streams = registrar.streams().tokens();
        if streams.is_empty() {
            continue;
        }
        let revoked: std::collections::HashSet<String> = match store.revoked_tokens().await {
            Ok(ids) => ids.into_iter().collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read token revocations; open streams are checked again later");
                continue;
            }
        };
        let now = std::time::SystemTime::now();
        for (conn, token) in streams {
            let status = if revoked.contains(&token.id) {
                tonic::Status::permission_denied(format!(
                    "workload token {} has been revoked; give the proxy a new token",
                    token.id
                ))
            } else if token.expires_at <= now {
                tonic::Status::unauthenticated(format!(
                    "workload token {} expired at {}; give the proxy a new token",
                    token.id,
                    humantime::format_rfc3339_seconds(token.expires_at)
                ))
            } else {
                continue;
            };
            if xds.close(conn, status.clone()) {
                tracing::warn!(conn, token = %token.id, reason = status.message(), "closed an xDS stream");
            }
        }
    }
}

/// The token an open stream was admitted with.
#[derive(Clone, Debug)]
struct StreamToken {
    id: String,
    expires_at: std::time::SystemTime,
    /// The labels it grants the workload.
    labels: std::collections::BTreeMap<String, String>,
    /// `<namespace>/<name>` of the workload the stream registered.
    node: String,
    /// The proxy process's `Registration.session`.
    session: String,
}

/// Registers workloads as their proxies connect and disconnect.
pub(crate) struct Registrar {
    store: Arc<dyn Store>,
    instance: String,
    quotas: registry::Quotas,
    tokens: Arc<Tokens>,
    /// Every admitted stream's token.
    streams: Mutex<LiveStreams>,
}

/// The admitted streams, by connection id and by workload, so that admitting one
/// costs the streams of its own workload, not all of them.
#[derive(Default)]
struct LiveStreams {
    by_conn: HashMap<u64, StreamToken>,
    by_node: HashMap<String, Vec<u64>>,
}

impl LiveStreams {
    fn insert(&mut self, conn: u64, token: StreamToken) {
        self.by_node
            .entry(token.node.clone())
            .or_default()
            .push(conn);
        self.by_conn.insert(conn, token);
    }

    fn remove(&mut self, conn: u64) {
        let Some(token) = self.by_conn.remove(&conn) else {
            return;
        };
        if let Some(conns) = self.by_node.get_mut(&token.node) {
            conns.retain(|c| *c != conn);
            if conns.is_empty() {
                self.by_node.remove(&token.node);
            }
        }
    }

    /// A live stream of `node` from another proxy process than `session` (any, when
    /// the session is unknown).
    fn other_proxy(&self, node: &str, session: &str) -> Option<u64> {
        self.by_node.get(node)?.iter().copied().find(|conn| {
            self.by_conn
                .get(conn)
                .is_some_and(|t| session.is_empty() || t.session != session)
        })
    }

    fn tokens(&self) -> Vec<(u64, StreamToken)> {
        self.by_conn
            .iter()
            .map(|(conn, t)| (*conn, t.clone()))
            .collect()
    }
}

impl Registrar {
    /// A registrar writing to `store` as `instance`, within `quotas`, checking tokens
    /// with `tokens`.
    pub(crate) fn new(
        store: Arc<dyn Store>,
        instance: String,
        quotas: registry::Quotas,
        tokens: Arc<Tokens>,
    ) -> Self {
        Registrar {
            store,
            instance,
            quotas,
            tokens,
            streams: Mutex::new(LiveStreams::default()),
        }
    }

    fn streams(&self) -> std::sync::MutexGuard<'_, LiveStreams> {
        self.streams
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The stream's workload token must be valid and name the identity the proxy
    /// registers: a proxy can only get config, and register a workload, for the
    /// identity it was given.
    async fn authorize(
        &self,
        info: &ConnectionInfo,
        reg: &pb::Registration,
    ) -> Result<StreamToken, tonic::Status> {
        let token = identity::parse_bearer(info.authorization.as_ref().map(|a| a.0.as_str()))?;
        let claims = self
            .tokens
            .authenticate(token, std::time::SystemTime::now())
            .await
            .map_err(|r| identity::refusal_status(&r))?;
        let trust_domain_ok =
            reg.trust_domain.is_empty() || reg.trust_domain == claims.trust_domain;
        if claims.namespace != reg.namespace
            || claims.service_account != reg.service_account
            || !trust_domain_ok
        {
            return Err(tonic::Status::permission_denied(format!(
                "the workload token is for spiffe://{}/ns/{}/sa/{}, but the proxy registers {}/{} as spiffe://{}/ns/{}/sa/{}",
                claims.trust_domain,
                claims.namespace,
                claims.service_account,
                reg.namespace,
                reg.name,
                if reg.trust_domain.is_empty() { &claims.trust_domain } else { &reg.trust_domain },
                reg.namespace,
                reg.service_account,
            )));
        }
        Ok(StreamToken {
            id: claims.id,
            expires_at: claims.expires_at,
            labels: claims.labels,
            node: format!("{}/{}", reg.namespace, reg.name),
            session: reg.session.clone(),
        })
    }
}

#[async_trait::async_trait]
impl Hooks for Registrar {
    async fn connected(&self, info: &ConnectionInfo) -> Result<Viewer, tonic::Status> {
        let Some(reg) = &info.registration else {
            return Err(tonic::Status::invalid_argument(format!(
                "no workload registration: send a weft.proxy.v1.Registration in the {} metadata",
                pb::REGISTRATION_METADATA_KEY
            )));
        };
        let node = format!("{}/{}", reg.namespace, reg.name);
        let token = match self.authorize(info, reg).await {
            Ok(token) => token,
            Err(status) => {
                tracing::warn!(workload = %node, peer = ?info.peer, reason = status.message(), "proxy refused");
                return Err(status);
            }
        };
        if info.node_id != node {
            return Err(tonic::Status::invalid_argument(format!(
                "Node.id {:?} does not match the registration {node:?}",
                info.node_id
            )));
        }
        // One live stream per workload on this instance: another proxy process naming
        // it is refused, the same one (same session) reconnecting is not. Reserved
        // before the store is written, so two racing streams cannot both pass.
        {
            let mut streams = self.streams();
            if let Some(conn) = streams.other_proxy(&node, &token.session) {
                let message = format!(
                    "workload {node} is already served by a live proxy (stream {conn} on control-plane \
                     instance {}); two proxies cannot register one workload: give this proxy \
                     another workload name, or stop the other one",
                    self.instance
                );
                tracing::warn!(workload = %node, peer = ?info.peer, reason = %message, "proxy refused");
                return Err(tonic::Status::already_exists(message));
            }
            streams.insert(info.conn_id, token.clone());
        }
        let grant = registry::Grant {
            token: &token.id,
            labels: &token.labels,
        };
        let registered = registry::connected_within(
            self.store.as_ref(),
            &self.instance,
            info.conn_id,
            reg,
            &self.quotas,
            Some(grant),
        )
        .await;
        if registered.is_err() {
            self.streams().remove(info.conn_id);
        }
        match registered {
            Ok(()) => {
                tracing::info!(workload = %node, conn = info.conn_id, peer = ?info.peer, "proxy connected");
                // The namespace is the token's (`authorize` refused any other), the
                // name the registration just accepted for the token's identity.
                Ok(Viewer::Workload {
                    namespace: reg.namespace.clone(),
                    name: reg.name.clone(),
                })
            }
            Err(registry::RegisterError::Invalid(e)) => {
                Err(tonic::Status::invalid_argument(format!("{node}: {e}")))
            }
            Err(
                e @ (registry::RegisterError::Quota { .. }
                | registry::RegisterError::TokenQuota { .. }),
            ) => {
                tracing::warn!(workload = %node, peer = ?info.peer, reason = %e, "proxy refused");
                Err(tonic::Status::resource_exhausted(e.to_string()))
            }
            Err(
                e
                @ (registry::RegisterError::Taken { .. } | registry::RegisterError::Labels { .. }),
            ) => {
                tracing::warn!(workload = %node, peer = ?info.peer, reason = %e, "proxy refused");
                Err(tonic::Status::permission_denied(e.to_string()))
            }
            Err(registry::RegisterError::Store(e)) => {
                tracing::error!(workload = %node, error = %e, "could not record a registration");
                Err(tonic::Status::unavailable(format!(
                    "store unavailable: {e}"
                )))
            }
        }
    }

    async fn acked(
        &self,
        conn_id: u64,
        node_id: &str,
        _type_url: &str,
        _name: &str,
        version: &str,
    ) {
        let Some(key) = workload_key(node_id) else {
            return;
        };
        let owner = Some((self.instance.as_str(), conn_id));
        let value = serde_json::Value::String(version.to_owned());
        if let Err(e) = registry::record(
            self.store.as_ref(),
            &key,
            owner,
            registry::TRUST_BUNDLE_FIELD,
            value,
        )
        .await
        {
            tracing::warn!(workload = %node_id, error = %e, "could not record the trust bundle a proxy holds");
        }
    }

    async fn disconnected(&self, conn_id: u64, node_id: &str) {
        self.streams().remove(conn_id);
        let Some(key) = workload_key(node_id) else {
            return;
        };
        tracing::debug!(workload = %node_id, conn = conn_id, "recording the disconnection");
        if let Err(e) =
            registry::disconnected(self.store.as_ref(), &self.instance, conn_id, &key).await
        {
            tracing::warn!(workload = %node_id, error = %e, "could not record a disconnection");
        }
    }
}

/// The Workload a proxy's node id (`<namespace>/<name>`) names.
fn workload_key(node_id: &str) -> Option<Key> {
    let (namespace, name) = node_id.split_once('/')?;
    Some(Key {
        kind: Kind::Workload,
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::StoreSpec;

    /// A registrar on a fresh SQLite store, and a token for `default/web` granting
    /// `app: web`.
    async fn registrar() -> (tempfile::TempDir, Registrar, String) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::open(&StoreSpec::data_dir(dir.path()))
            .await
            .unwrap();
        let tokens = Arc::new(Tokens::load(store.clone(), "cluster.local").await.unwrap());
        let labels = std::collections::BTreeMap::from([("app".to_owned(), "web".to_owned())]);
        let token = tokens
            .issue(
                "default",
                "web",
                &labels,
                Duration::from_secs(3600),
                std::time::SystemTime::now(),
            )
            .unwrap()
            .token;
        let registrar =
            Registrar::new(store, "cp-test".into(), registry::Quotas::default(), tokens);
        (dir, registrar, token)
    }

    fn stream(conn_id: u64, token: &str, session: &str, labels: &[(&str, &str)]) -> ConnectionInfo {
        let registration = pb::Registration {
            name: "web-1".into(),
            namespace: "default".into(),
            service_account: "web".into(),
            address: "10.0.0.1".into(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            session: session.into(),
            ..pb::Registration::default()
        };
        ConnectionInfo {
            conn_id,
            node_id: "default/web-1".into(),
            registration: Some(registration),
            peer: None,
            connected_at: std::time::SystemTime::now(),
            authorization: Some(crate::xds::Authorization(format!(
                "{}{token}",
                pb::BEARER_PREFIX
            ))),
        }
    }

    #[tokio::test]
    async fn a_second_proxy_cannot_register_a_workload_whose_proxy_is_live_but_the_same_one_can_reconnect(
    ) {
        let (_dir, registrar, token) = registrar().await;
        registrar
            .connected(&stream(1, &token, "proxy-a", &[]))
            .await
            .unwrap();

        let refused = registrar
            .connected(&stream(2, &token, "proxy-b", &[]))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::AlreadyExists);
        assert!(
            refused
                .message()
                .contains("already served by a live proxy (stream 1"),
            "{}",
            refused.message()
        );

        // The first proxy reconnecting (before its old stream is known gone) is fine.
        registrar
            .connected(&stream(3, &token, "proxy-a", &[]))
            .await
            .unwrap();
        // Once every stream of proxy-a has ended, another proxy may take the name.
        registrar.disconnected(1, "default/web-1").await;
        registrar.disconnected(3, "default/web-1").await;
        registrar
            .connected(&stream(4, &token, "proxy-b", &[]))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_refused_registration_leaves_no_live_stream_behind() {
        let (_dir, registrar, token) = registrar().await;
        let refused = registrar
            .connected(&stream(1, &token, "proxy-a", &[("app", "db")]))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::PermissionDenied);
        assert!(
            refused.message().contains("does not grant"),
            "{}",
            refused.message()
        );
        // Not counted as live: the same workload registers as soon as it is fixed.
        registrar
            .connected(&stream(2, &token, "proxy-b", &[("app", "web")]))
            .await
            .unwrap();
        let key = Key {
            kind: weft_api::resource::Kind::Workload,
            namespace: "default".into(),
            name: "web-1".into(),
        };
        let stored = registrar.store.get(&key).await.unwrap().unwrap();
        assert_eq!(
            stored.metadata.labels.get("app").map(String::as_str),
            Some("web")
        );
    }
}
