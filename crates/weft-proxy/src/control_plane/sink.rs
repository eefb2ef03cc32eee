//! What the proxy does with the resources the xDS client receives: each is decoded,
//! converted and validated on its own the way the data path will use it — routes
//! compiled with the data path's limits — so a bad one is NACKed alone ([`check`]);
//! every accepted set is turned into [`Dynamic`] resources, route tables wait for
//! their backends ("warming"), and the result goes to the [`Composer`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prost::Message;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use weft_api::pb::v1 as pb;
use weft_api::proxy::{self, Config, References};

use super::compose::{self, Composer, Dynamic};
use super::xds::{self, Resource, ResourceSet, Subscriptions};
use crate::route;
use crate::telemetry::{Metrics, ReasonLabels};

/// Checks and applies xDS resources for the data path (the xDS client's [`xds::Sink`]).
pub struct Sink {
    /// Tells the certificate keeper which CA signs now.
    signer: tokio::sync::watch::Sender<String>,
    composer: Arc<Composer>,
    metrics: Arc<Metrics>,
    /// Checked resources by (type URL, name), with the bytes they were checked from.
    converted: Mutex<Converted>,
    warming: Mutex<Warming>,
    rewarm: Notify,
}

impl xds::Sink for Sink {
    fn check(&self, type_url: &str, name: &str, body: &prost_types::Any) -> Result<(), String> {
        let checked = check(&self.composer.bootstrap(), type_url, name, body)?;
        self.lock_converted().insert(
            (type_url.to_owned(), name.to_owned()),
            (body.value.clone(), checked),
        );
        Ok(())
    }

    fn apply(&self, resources: &ResourceSet) -> Subscriptions {
        let bootstrap = self.composer.bootstrap();
        // Each resource was converted when it was checked; only what the cache does not
        // hold (the boot set) is converted again.
        let (received, refused) = {
            let mut converted = self.lock_converted();
            let result = to_dynamic(resources, |type_url, r| {
                let key = (type_url.to_owned(), r.name.clone());
                if let Some((bytes, checked)) = converted.get(&key) {
                    if *bytes == r.body.value {
                        return Ok(checked.clone());
                    }
                }
                let checked = check(&bootstrap, type_url, &r.name, &r.body)?;
                converted.insert(key, (r.body.value.clone(), checked.clone()));
                Ok(checked)
            });
            converted.retain(|(type_url, name), _| resources.get(type_url, name).is_some());
            result
        };
        for (name, why) in refused {
            tracing::error!(resource = %name, error = %why, "accepted resource failed to convert");
        }
        // Subscriptions follow what was received, including route tables still warming.
        let wanted = (
            compose::targets(&bootstrap),
            compose::wanted(&bootstrap, &received),
        );
        let dynamic = self.warm(received, &bootstrap, resources);
        if let Some(trust) = &dynamic.trust {
            self.signer.send_if_modified(|s| {
                let changed = *s != trust.signer;
                s.clone_from(&trust.signer);
                changed
            });
        }
        let reason = match self.composer.set_dynamic(dynamic) {
            Ok(()) => "applied",
            Err(e) => {
                tracing::error!(error = %e, "control-plane config rejected as a whole; keeping the current config");
                "rejected"
            }
        };
        self.metrics
            .reloads
            .get_or_create(&ReasonLabels { reason })
            .inc();
        let (targets, services) = wanted;
        Subscriptions::new()
            .with(pb::SERVICE_TYPE_URL, services)
            .with(pb::ROUTE_TABLE_TYPE_URL, targets)
            .with(
                pb::INBOUND_POLICY_TYPE_URL,
                [inbound_policy_name(&bootstrap)],
            )
            .with(pb::TRUST_BUNDLE_TYPE_URL, [pb::TRUST_BUNDLE_NAME])
    }
}

impl Sink {
    /// A sink feeding `composer`; `signer` tells the certificate keeper which CA signs
    /// now.
    pub fn new(
        signer: tokio::sync::watch::Sender<String>,
        composer: Arc<Composer>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            signer,
            composer,
            metrics,
            converted: Mutex::new(HashMap::new()),
            warming: Mutex::new(Warming::default()),
            rewarm: Notify::new(),
        }
    }

    /// Starts the task that re-applies the last set once route tables have waited
    /// [`WARM_TIMEOUT`] for their backends; it runs until `shutdown`.
    pub fn spawn_rewarm(self: &Arc<Self>, shutdown: CancellationToken) {
        let sink = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = sink.rewarm.notified() => {}
                }
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(WARM_TIMEOUT) => sink.rewarm(),
                }
            }
        });
    }

    fn lock_converted(&self) -> std::sync::MutexGuard<'_, Converted> {
        self.converted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Route tables whose backend services have not arrived yet wait (keeping the
    /// version in force, or none) until the backends arrive or [`WARM_TIMEOUT`]
    /// passes, so a new route never sends requests into a backend the proxy cannot
    /// reach yet (Envoy calls this warming).
    fn warm(&self, mut received: Dynamic, bootstrap: &Config, set: &ResourceSet) -> Dynamic {
        let current = self.composer.dynamic();
        let now = Instant::now();
        let mut warming = self
            .warming
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        warming
            .since
            .retain(|parent, _| received.routes.contains_key(parent));
        let mut waiting = false;
        let parents: Vec<String> = received.routes.keys().cloned().collect();
        for parent in parents {
            let missing = missing_backends(&received, bootstrap, &parent);
            if missing.is_empty() {
                warming.since.remove(&parent);
                continue;
            }
            let since = *warming.since.entry(parent.clone()).or_insert(now);
            if now.duration_since(since) >= WARM_TIMEOUT {
                tracing::warn!(route_table = %parent, ?missing, "backend services still missing; applying the route table without them");
                continue;
            }
            tracing::debug!(route_table = %parent, ?missing, "route table waits for its backend services");
            waiting = true;
            match current.routes.get(&parent) {
                Some(previous) => received.routes.insert(parent, previous.clone()),
                None => received.routes.remove(&parent),
            };
        }
        if waiting {
            warming.latest = Some(set.clone());
            self.rewarm.notify_one();
        } else {
            // Nothing waits any more: a pending re-apply would bring back a stale set.
            warming.latest = None;
        }
        received
    }

    /// Re-applies the last set once warming has had its time.
    fn rewarm(&self) {
        let latest = self
            .warming
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .latest
            .take();
        if let Some(set) = latest {
            xds::Sink::apply(self, &set);
        }
    }
}

/// How long a route table waits for its backend services before applying anyway.
const WARM_TIMEOUT: Duration = Duration::from_secs(1);

/// Route tables waiting for backends.
#[derive(Default)]
struct Warming {
    /// When each waiting table was first seen incomplete.
    since: HashMap<String, Instant>,
    /// The set to re-apply when the wait is over.
    latest: Option<ResourceSet>,
}

/// Backend services `parent`'s route tables name that neither the control plane nor
/// the bootstrap has provided.
fn missing_backends(dynamic: &Dynamic, bootstrap: &Config, parent: &str) -> Vec<String> {
    let ns = &bootstrap.workload.namespace;
    let mut missing: Vec<String> = dynamic
        .routes
        .get(parent)
        .into_iter()
        .flatten()
        .flat_map(|t| &t.rules)
        .flat_map(|r| &r.backends)
        .map(|b| compose::service_key(&b.service, ns))
        .filter(|key| {
            !dynamic.services.contains_key(key)
                && !bootstrap.services.iter().any(|s| &s.key() == key)
        })
        .collect();
    missing.sort();
    missing.dedup();
    missing
}

/// Checked resources by (type URL, name), with the bytes each was checked from.
type Converted = HashMap<(String, String), (Vec<u8>, Checked)>;

/// A checked resource, converted to the proxy model.
#[derive(Clone)]
pub(super) enum Checked {
    Service(Box<proxy::Service>),
    Routes(String, Vec<proxy::RouteTable>),
    Inbound(Box<proxy::InboundPolicy>),
    Trust(compose::Trust),
}

/// The name of this workload's `InboundPolicy`: `<name>.<namespace>`.
fn inbound_policy_name(config: &Config) -> String {
    format!("{}.{}", config.workload.name, config.workload.namespace)
}

/// Decodes, converts and validates one resource the way the data path will use it.
pub(super) fn check(
    bootstrap: &Config,
    type_url: &str,
    name: &str,
    body: &prost_types::Any,
) -> Result<Checked, String> {
    let alone = |services: Vec<proxy::Service>, routes: Vec<proxy::RouteTable>| {
        let config = Config {
            workload: bootstrap.workload.clone(),
            certificates: None,
            // Only the resource is under test, not this proxy's own setup.
            listeners: proxy::Listeners {
                metrics: None,
                hbone: None,
                outbound_capture: None,
                inbound_capture: None,
                ..proxy::Listeners::default()
            },
            outbound: Vec::new(),
            services,
            routes,
            inbound: proxy::Inbound::default(),
            settings: proxy::Settings::default(),
            dns: proxy::Dns::default(),
            telemetry: proxy::Telemetry::default(),
        };
        config
            .validate_with(References::Deferred)
            .map_err(|e| e.to_string())
    };
    match type_url {
        pb::SERVICE_TYPE_URL => {
            let msg = pb::Service::decode(body.value.as_slice())
                .map_err(|e| format!("not a weft.proxy.v1.Service: {e}"))?;
            let service = proxy::Service::try_from(&msg).map_err(|e| e.to_string())?;
            if service.key() != name {
                return Err(format!(
                    "resource {name:?} carries service {:?}",
                    service.key()
                ));
            }
            for (i, e) in service.endpoints.iter().enumerate() {
                if let Some(id) = &e.identity {
                    id.parse::<weft_tls::SpiffeId>()
                        .map_err(|err| format!("endpoints[{i}].identity: {err}"))?;
                }
            }
            alone(vec![service.clone()], Vec::new())?;
            Ok(Checked::Service(Box::new(service)))
        }
        pb::ROUTE_TABLE_TYPE_URL => {
            let msg = pb::RouteTable::decode(body.value.as_slice())
                .map_err(|e| format!("not a weft.proxy.v1.RouteTable: {e}"))?;
            let tables =
                weft_api::pb_convert::route_tables_from_pb(&msg).map_err(|e| e.to_string())?;
            alone(Vec::new(), tables.clone())?;
            for (t, table) in tables.iter().enumerate() {
                for (r, rule) in table.rules.iter().enumerate() {
                    route::Rule::<()>::compile(rule, |_| None)
                        .map_err(|e| format!("routes[{t}].rules[{r}]: {e}"))?;
                }
            }
            Ok(Checked::Routes(msg.service, tables))
        }
        pb::INBOUND_POLICY_TYPE_URL => {
            let own = inbound_policy_name(bootstrap);
            if name != own {
                return Err(format!(
                    "this proxy fronts {own}; it takes no inbound policy for {name:?}"
                ));
            }
            let msg = pb::InboundPolicy::decode(body.value.as_slice())
                .map_err(|e| format!("not a weft.proxy.v1.InboundPolicy: {e}"))?;
            let policy = proxy::InboundPolicy::try_from(&msg).map_err(|e| e.to_string())?;
            Ok(Checked::Inbound(Box::new(policy)))
        }
        pb::TRUST_BUNDLE_TYPE_URL => {
            if name != pb::TRUST_BUNDLE_NAME {
                return Err(format!(
                    "the trust bundle is named {:?}, not {name:?}",
                    pb::TRUST_BUNDLE_NAME
                ));
            }
            let msg = pb::TrustBundle::decode(body.value.as_slice())
                .map_err(|e| format!("not a weft.proxy.v1.TrustBundle: {e}"))?;
            let bundle = weft_tls::TrustBundle::from_pem(&msg.roots_pem)
                .map_err(|e| format!("roots_pem: {e}"))?;
            if bundle.is_empty() {
                return Err("roots_pem: holds no certificate".into());
            }
            Ok(Checked::Trust(compose::Trust {
                roots_pem: msg.roots_pem,
                signer: msg.signer,
            }))
        }
        other => Err(format!("unknown resource type {other}")),
    }
}

/// Converts an accepted set; returns the resources that did not convert, with why.
pub(super) fn to_dynamic(
    set: &ResourceSet,
    mut convert: impl FnMut(&str, &Resource) -> Result<Checked, String>,
) -> (Dynamic, Vec<(String, String)>) {
    let mut dynamic = Dynamic::default();
    let mut refused = Vec::new();
    let mut versions = Vec::new();
    for (type_url, resource) in set.iter() {
        match convert(type_url, resource) {
            Ok(Checked::Service(s)) => {
                dynamic.services.insert(resource.name.clone(), *s);
            }
            Ok(Checked::Routes(parent, tables)) => {
                dynamic.routes.insert(parent, tables);
            }
            Ok(Checked::Inbound(policy)) => dynamic.inbound = Some(*policy),
            Ok(Checked::Trust(trust)) => dynamic.trust = Some(trust),
            Err(why) => {
                refused.push((resource.name.clone(), why));
                continue;
            }
        }
        versions.push(resource.version.as_str());
    }
    dynamic.version = version_of(&versions);
    (dynamic, refused)
}

/// A short digest of the versions held, for `/config_dump`.
fn version_of(versions: &[&str]) -> String {
    if versions.is_empty() {
        return String::new();
    }
    let mut digest = weft_api::digest::Fnv1a::default();
    for v in versions {
        digest.write(v.as_bytes());
        digest.write(&[0]);
    }
    format!("xds-{}", digest.hex())
}
