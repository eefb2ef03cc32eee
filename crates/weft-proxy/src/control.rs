//! Control-plane mode: the xDS client ([`crate::xds`]) feeding the [`Composer`].
//!
//! The proxy registers its workload from the bootstrap, subscribes to the services
//! its outbound listeners target (and their route tables, and the backends those
//! name), checks each resource on its own — decode, convert, validate, compile routes
//! with the data path's limits — so a bad one is NACKed alone, and swaps every
//! accepted set in as one snapshot. The accepted set is persisted by the client and
//! read back at boot ([`load_persisted`]).
//!
//! Readiness: `/ready` turns 200 once the proxy has a config — restored from disk, or
//! received after connecting (immediately on connect for a workload that calls
//! nothing).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use prost::Message;
use tokio_util::sync::CancellationToken;
use weft_api::pb::v1 as pb;
use weft_api::proxy::{self, Config, References};

use crate::admin::Admin;
use crate::outbound::route;
use crate::run::ControlPlane;
use crate::state::compose::{Composer, Dynamic};
use crate::telemetry::{Metrics, ReasonLabels};
use crate::xds::{Client, ClientOptions, ResourceSet, Sink, Subscriptions};

/// The per-workload state directory under the configured base.
pub fn state_dir(base: &Path, config: &Config) -> PathBuf {
    base.join(format!(
        "{}.{}",
        config.workload.name, config.workload.namespace
    ))
}

/// The resources persisted by the last run, if any (refused ones dropped).
pub fn load_persisted(base: &Path, bootstrap: &Config) -> Option<Dynamic> {
    let set = Client::load_persisted(&state_dir(base, bootstrap))?;
    let (dynamic, refused) = to_dynamic(&set, bootstrap);
    for (name, why) in refused {
        tracing::warn!(resource = %name, error = %why, "persisted resource no longer applies; dropped");
    }
    Some(dynamic)
}

/// What this proxy tells the control plane about its workload.
pub fn registration(config: &Config) -> pb::Registration {
    let w = &config.workload;
    let hbone = config.listeners.hbone.map_or_else(String::new, |h| {
        if h.ip().is_unspecified() {
            if h.port() == 15008 {
                String::new()
            } else {
                SocketAddr::new(w.address, h.port()).to_string()
            }
        } else {
            h.to_string()
        }
    });
    pb::Registration {
        name: w.name.clone(),
        namespace: w.namespace.clone(),
        service_account: w.service_account.clone(),
        trust_domain: w.trust_domain.clone(),
        address: w.address.to_string(),
        hbone,
        labels: w.labels.clone().into_iter().collect(),
        ports: w
            .ports
            .iter()
            .map(|p| pb::WorkloadPort {
                port: u32::from(p.port),
                protocol: protocol(p.protocol) as i32,
            })
            .collect(),
        zone: w.zone.clone().unwrap_or_default(),
        proxy_version: env!("CARGO_PKG_VERSION").to_owned(),
    }
}

fn protocol(p: proxy::Protocol) -> pb::Protocol {
    match p {
        proxy::Protocol::Auto => pb::Protocol::Auto,
        proxy::Protocol::Http => pb::Protocol::Http,
        proxy::Protocol::Http2 => pb::Protocol::Http2,
        proxy::Protocol::Grpc => pb::Protocol::Grpc,
        proxy::Protocol::Tcp => pb::Protocol::Tcp,
    }
}

/// Starts the xDS client; it runs until `shutdown`.
pub fn spawn(
    cp: ControlPlane,
    composer: Arc<Composer>,
    admin: Arc<Admin>,
    metrics: Arc<Metrics>,
    restored: bool,
    shutdown: CancellationToken,
) -> Result<(), crate::xds::Error> {
    let bootstrap = composer.bootstrap();
    let node_id = format!(
        "{}/{}",
        bootstrap.workload.namespace, bootstrap.workload.name
    );
    let mut options = ClientOptions::new(cp.endpoint, node_id, registration(&bootstrap));
    options.state_dir = Some(state_dir(&cp.state_dir, &bootstrap));
    let client = Client::new(options)?;
    let mut status = client.status();
    let sink = Arc::new(ProxySink {
        composer: composer.clone(),
        metrics,
    });
    if restored {
        admin.ready.store(true, Ordering::Release);
    }
    {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            // Ready once connected and every subscribed type has been answered.
            loop {
                let (connected, answered) = {
                    let s = status.borrow_and_update();
                    (s.connected, s.answered.clone())
                };
                let (targets, services) = composer.wanted();
                let synced = |wanted: bool, type_url: &str| {
                    !wanted || answered.iter().any(|a| a == type_url)
                };
                if connected
                    && synced(!services.is_empty(), pb::SERVICE_TYPE_URL)
                    && synced(!targets.is_empty(), pb::ROUTE_TABLE_TYPE_URL)
                {
                    admin.ready.store(true, Ordering::Release);
                    tracing::info!("configuration received from the control plane");
                    return;
                }
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    changed = status.changed() => if changed.is_err() { return },
                }
            }
        });
    }
    tokio::spawn(client.run(sink, shutdown));
    Ok(())
}

/// Checks and applies xDS resources for the data path.
struct ProxySink {
    composer: Arc<Composer>,
    metrics: Arc<Metrics>,
}

impl Sink for ProxySink {
    fn check(&self, type_url: &str, name: &str, body: &prost_types::Any) -> Result<(), String> {
        check(&self.composer.bootstrap(), type_url, name, body).map(|_| ())
    }

    fn apply(&self, resources: &ResourceSet) -> Subscriptions {
        let bootstrap = self.composer.bootstrap();
        let (dynamic, refused) = to_dynamic(resources, &bootstrap);
        for (name, why) in refused {
            tracing::error!(resource = %name, error = %why, "accepted resource failed to convert");
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
        let (targets, services) = self.composer.wanted();
        Subscriptions::new()
            .with(pb::SERVICE_TYPE_URL, services)
            .with(pb::ROUTE_TABLE_TYPE_URL, targets)
    }
}

/// A checked resource, converted to the proxy model.
enum Checked {
    Service(proxy::Service),
    Routes(String, Vec<proxy::RouteTable>),
}

/// Decodes, converts and validates one resource the way the data path will use it.
fn check(
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
                ..proxy::Listeners::default()
            },
            outbound: Vec::new(),
            services,
            routes,
            settings: proxy::Settings::default(),
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
            Ok(Checked::Service(service))
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
        other => Err(format!("unknown resource type {other}")),
    }
}

/// Converts an accepted set; returns the resources that did not convert, with why.
fn to_dynamic(set: &ResourceSet, bootstrap: &Config) -> (Dynamic, Vec<(String, String)>) {
    let mut dynamic = Dynamic::default();
    let mut refused = Vec::new();
    let mut versions = Vec::new();
    for (type_url, resource) in set.iter() {
        match check(bootstrap, type_url, &resource.name, &resource.body) {
            Ok(Checked::Service(s)) => {
                dynamic.services.insert(resource.name.clone(), s);
            }
            Ok(Checked::Routes(parent, tables)) => {
                dynamic.routes.insert(parent, tables);
            }
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
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for v in versions {
        for b in v.bytes().chain(std::iter::once(0)) {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    if versions.is_empty() {
        String::new()
    } else {
        format!("xds-{hash:016x}")
    }
}
