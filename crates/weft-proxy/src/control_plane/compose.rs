//! The snapshot a control-plane proxy runs on: the bootstrap file (identity,
//! certificates, listeners, limits) combined with the services, route tables, inbound
//! policy and trust bundle received over xDS, compiled and swapped into the
//! [`Store`].
//!
//! Either side can change on its own: a certificate rotated on disk rebuilds the
//! snapshot with the current xDS resources, and an xDS update rebuilds it with the
//! current bootstrap. Each rebuild reuses endpoint state from the snapshot in force.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use weft_api::proxy::{Config, InboundPolicy, References, RouteTable, Service};
use weft_tls::Credentials;

use crate::state::file::Loaded;
use crate::state::{Snapshot, Store};

/// Called after every swap (e.g. to reconcile explicit outbound listeners).
pub type OnChange = Box<dyn Fn(&Snapshot) + Send + Sync>;

/// Resources received from the control plane, by resource name (`name.namespace`).
#[derive(Clone, Debug, Default)]
pub struct Dynamic {
    /// Services with their endpoints.
    pub services: BTreeMap<String, Service>,
    /// Route tables by parent service.
    pub routes: BTreeMap<String, Vec<RouteTable>>,
    /// The mesh's inbound policy for this workload; it replaces the bootstrap's modes.
    pub inbound: Option<InboundPolicy>,
    /// The mesh's trust bundle; it replaces the roots of a certificate issued by the
    /// control plane (not those of bootstrap certificate files).
    pub trust: Option<Trust>,
    /// A version naming this set (for `/config_dump`).
    pub version: String,
}

/// The control plane's `TrustBundle`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trust {
    /// PEM root certificates.
    pub roots_pem: String,
    /// Id of the CA that signs now.
    pub signer: String,
}

impl Dynamic {
    /// Whether nothing was received (or restored).
    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
            && self.routes.is_empty()
            && self.inbound.is_none()
            && self.trust.is_none()
    }
}

/// Builds snapshots from bootstrap + dynamic resources and swaps them into the store.
pub struct Composer {
    store: Arc<Store>,
    inner: Mutex<Inner>,
    on_change: OnChange,
    /// Where the snapshots' telemetry is counted.
    metrics: Arc<crate::telemetry::Metrics>,
}

struct Inner {
    boot: Loaded,
    dynamic: Dynamic,
    /// Credentials issued by the control plane, used when the bootstrap names none.
    issued: Option<Arc<Credentials>>,
}

impl Composer {
    /// Builds the first snapshot (before the store exists).
    pub fn initial(
        boot: &Loaded,
        dynamic: &Dynamic,
        issued: Option<&Arc<Credentials>>,
    ) -> Result<Snapshot, String> {
        build(boot, dynamic, issued, None)
    }

    /// A composer over `store`, whose current snapshot was built from `boot`,
    /// `dynamic` and `issued`.
    pub fn new(
        store: Arc<Store>,
        boot: Loaded,
        dynamic: Dynamic,
        issued: Option<Arc<Credentials>>,
        on_change: OnChange,
        metrics: Arc<crate::telemetry::Metrics>,
    ) -> Self {
        Self {
            store,
            inner: Mutex::new(Inner {
                boot,
                dynamic,
                issued,
            }),
            on_change,
            metrics,
        }
    }

    /// [`build`], with the telemetry of the result made real.
    fn next(
        &self,
        boot: &Loaded,
        dynamic: &Dynamic,
        issued: Option<&Arc<Credentials>>,
    ) -> Result<Snapshot, String> {
        let previous = self.store.load();
        build(boot, dynamic, issued, Some(&previous))?
            .with_telemetry(&self.metrics, Some(&previous))
            .map_err(|e| e.to_string())
    }

    /// A new bootstrap file was read.
    pub fn set_bootstrap(&self, boot: Loaded) -> Result<(), String> {
        let mut inner = self.lock();
        let next = self.next(&boot, &inner.dynamic, inner.issued.as_ref())?;
        inner.boot = boot;
        self.swap(next);
        Ok(())
    }

    /// New resources arrived from the control plane.
    pub fn set_dynamic(&self, dynamic: Dynamic) -> Result<(), String> {
        let mut inner = self.lock();
        let next = self.next(&inner.boot, &dynamic, inner.issued.as_ref())?;
        inner.dynamic = dynamic;
        self.swap(next);
        Ok(())
    }

    /// A certificate issued by the control plane (first one, or a renewal): new
    /// handshakes use it; established connections keep theirs.
    pub fn set_issued(&self, creds: Arc<Credentials>) -> Result<(), String> {
        let mut inner = self.lock();
        let next = self.next(&inner.boot, &inner.dynamic, Some(&creds))?;
        inner.issued = Some(creds);
        self.swap(next);
        Ok(())
    }

    /// The credentials of the snapshot in force.
    pub fn store_credentials(&self) -> Option<Arc<Credentials>> {
        self.store.load().creds.clone()
    }

    /// Whether the snapshot in force has credentials (from the bootstrap or issued).
    pub fn has_credentials(&self) -> bool {
        self.store.load().creds.is_some()
    }

    /// What this proxy needs from the control plane: (the targets of its outbound
    /// listeners, whose route tables it wants; every service it may send to, i.e. those
    /// targets and the backends of their routes).
    pub fn wanted(&self) -> (BTreeSet<String>, BTreeSet<String>) {
        let inner = self.lock();
        (
            targets(&inner.boot.config),
            wanted(&inner.boot.config, &inner.dynamic),
        )
    }

    /// The control-plane resources in force.
    pub fn dynamic(&self) -> Dynamic {
        self.lock().dynamic.clone()
    }

    /// The bootstrap config in force.
    pub fn bootstrap(&self) -> Config {
        self.lock().boot.config.clone()
    }

    fn swap(&self, next: Snapshot) {
        self.store.swap(next);
        (self.on_change)(&self.store.load());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Normalises a service reference (`name` or `name.namespace`) to `name.namespace`.
pub fn service_key(reference: &str, default_namespace: &str) -> String {
    if reference.contains('.') {
        reference.to_owned()
    } else {
        format!("{reference}.{default_namespace}")
    }
}

/// The services `config`'s outbound listeners target; every service (the xDS
/// wildcard) in transparent mode (`listeners.dns` set), where the app may dial any.
pub fn targets(config: &Config) -> BTreeSet<String> {
    if config.listeners.dns.is_some() {
        return BTreeSet::from([super::xds::WILDCARD.to_owned()]);
    }
    let ns = &config.workload.namespace;
    config
        .outbound
        .iter()
        .map(|o| service_key(&o.service, ns))
        .collect()
}

/// The service names `config` (a bootstrap) needs, given the routes received so far.
pub fn wanted(config: &Config, dynamic: &Dynamic) -> BTreeSet<String> {
    let ns = &config.workload.namespace;
    let mut wanted = targets(config);
    if config.listeners.dns.is_some() {
        return wanted;
    }
    let mut backends = Vec::new();
    for table in config.routes.iter().chain(
        wanted
            .iter()
            .filter_map(|s| dynamic.routes.get(s))
            .flatten(),
    ) {
        for rule in &table.rules {
            backends.extend(rule.backends.iter().map(|b| service_key(&b.service, ns)));
        }
    }
    wanted.extend(backends);
    wanted
}

/// Merges bootstrap and dynamic resources (the control plane's version of a service
/// replaces one of the same name in the file) and compiles a snapshot.
fn build(
    boot: &Loaded,
    dynamic: &Dynamic,
    issued: Option<&Arc<Credentials>>,
    previous: Option<&Snapshot>,
) -> Result<Snapshot, String> {
    let mut config = boot.config.clone();
    config
        .services
        .retain(|s| !dynamic.services.contains_key(&s.key()));
    config.services.extend(dynamic.services.values().cloned());
    let ns = config.workload.namespace.clone();
    config
        .routes
        .retain(|r| !dynamic.routes.contains_key(&service_key(&r.service, &ns)));
    config
        .routes
        .extend(dynamic.routes.values().flatten().cloned());
    if let Some(policy) = &dynamic.inbound {
        policy.apply_to(&mut config);
    }
    config
        .validate_with(References::Deferred)
        .map_err(|e| e.to_string())?;
    let version = if dynamic.version.is_empty() {
        boot.version.clone()
    } else {
        format!("{}+{}", boot.version, dynamic.version)
    };
    // The bootstrap's own certificate files win; otherwise the control plane's, with the
    // mesh's current trust bundle.
    let creds = match (&boot.creds, issued, &dynamic.trust) {
        (Some(own), _, _) => Some(own.clone()),
        (None, Some(issued), Some(trust)) => Some(Arc::new(
            issued
                .with_trust_bundle(trust.roots_pem.as_bytes())
                .map_err(|e| format!("the mesh trust bundle: {e}"))?,
        )),
        (None, issued, _) => issued.cloned(),
    };
    Snapshot::build(config, creds, version, previous).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::names::Lookup;

    /// A transparent-mode bootstrap (mesh DNS on) in namespace team-b.
    fn boot() -> Loaded {
        let config = Config::from_yaml(
            "workload: { name: client, namespace: team-b, address: 10.0.0.1 }\n\
             listeners: { hbone: null, dns: \"127.0.0.1:15053\" }\n",
        )
        .expect("bootstrap");
        Loaded {
            config,
            creds: None,
            version: "boot".to_owned(),
        }
    }

    /// What the control plane sends: `private` of team-a and `own` of team-b.
    fn received(with_private: bool) -> Dynamic {
        let config = Config::from_yaml(
            "workload: { name: x, namespace: team-b, address: 10.0.0.1 }\n\
             listeners: { hbone: null }\n\
             services:\n\
             \x20 - { name: own, namespace: team-b, vip: 240.240.0.2, hostnames: [own.team-b.svc.cluster.local], ports: [{ port: 80 }] }\n\
             \x20 - { name: private, namespace: team-a, vip: 240.240.0.1, hostnames: [private.team-a.svc.cluster.local], ports: [{ port: 80 }] }\n",
        )
        .expect("services");
        Dynamic {
            services: config
                .services
                .into_iter()
                .filter(|s| with_private || s.name != "private")
                .map(|s| (s.key(), s))
                .collect(),
            version: "1".to_owned(),
            ..Dynamic::default()
        }
    }

    #[test]
    fn a_service_the_control_plane_removes_stops_resolving_and_is_unknown() {
        let before = build(&boot(), &received(true), None, None).expect("snapshot");
        let after = build(&boot(), &received(false), None, Some(&before)).expect("snapshot");
        for name in [
            "private.team-a.svc.cluster.local",
            "private.team-a.svc",
            "private.team-a",
        ] {
            assert!(
                matches!(before.dns().lookup(name), Lookup::Service(_)),
                "{name} resolves while exported"
            );
        }
        assert_eq!(
            after.dns().lookup("private.team-a.svc.cluster.local"),
            Lookup::Unknown,
            "NXDOMAIN, not forwarded, once it is no longer exported"
        );
        assert!(
            !after.config.services.iter().any(|s| s.name == "private"),
            "calls to it take the unknown-service path"
        );
        assert!(matches!(
            after.dns().lookup("own.team-b.svc.cluster.local"),
            Lookup::Service(_)
        ));
    }
}
