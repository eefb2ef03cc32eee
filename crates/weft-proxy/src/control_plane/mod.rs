//! The control-plane client: how a proxy started with `--control-plane` gets its
//! config and its certificate, and keeps them while the control plane is away.
//!
//! - [`xds`]: one delta ADS stream to the control plane, reconnected with backoff; the
//!   accepted resources are persisted before they are acknowledged
//!   ([`xds::state_file`]), so a restarted proxy serves its last known good config
//!   even while the control plane is down ([`load_persisted`]).
//! - [`sink`]: checks each received resource on its own the way the data path will use
//!   it, so a bad one is NACKed alone, and hands every accepted set on.
//! - [`compose`]: lays the received services, route tables, inbound policy and trust
//!   bundle over the bootstrap file and swaps the result into the snapshot store.
//! - [`identity`]: the workload certificate, requested from the control plane with a
//!   locally generated key, persisted, and renewed at half-life.
//! - [`channel`] (TLS to the control plane, verified by its SPIFFE identity; failures
//!   explained) and [`token`] (the workload token) serve both streams.
//!
//! [`spawn`] starts it all for `weft proxy`: the proxy registers its workload from the
//! bootstrap, subscribes to the services its outbound listeners target (and their route
//! tables, and the backends those name), and swaps every accepted set in as one
//! snapshot. Readiness: `/ready` turns 200 once the proxy has a config — restored from
//! disk, or received after connecting (immediately on connect for a workload that calls
//! nothing).
//!
//! Not here: the snapshot itself ([`crate::state`]), and the proxy's listeners
//! ([`crate::run`] wires this client to them).

pub mod channel;
pub mod compose;
pub mod identity;
pub mod report;
pub mod sink;
pub mod token;
pub mod xds;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use weft_api::pb::v1 as pb;
use weft_api::proxy::Config;

use crate::admin::Admin;
use crate::telemetry::Metrics;
use compose::{Composer, Dynamic};
use sink::Sink;
use xds::{Client, ClientOptions};

/// Where and how to reach the control plane.
#[derive(Clone, Debug)]
pub struct ControlPlane {
    /// xDS endpoint, e.g. `https://10.0.0.1:5678` (the control plane serves TLS only).
    pub endpoint: String,
    /// Where the last accepted config is persisted (and read at boot).
    pub state_dir: PathBuf,
    /// File holding this workload's token, presented to the control plane.
    pub token_file: Option<PathBuf>,
    /// The mesh CA certificate(s) that vouch for the control plane (PEM).
    pub ca_file: Option<PathBuf>,
}

/// The per-workload state directory under the configured base.
pub fn state_dir(base: &Path, config: &Config) -> PathBuf {
    base.join(format!(
        "{}.{}",
        config.workload.name, config.workload.namespace
    ))
}

/// Where the certificate issued by the control plane is kept.
pub fn identity_dir(base: &Path, config: &Config) -> PathBuf {
    state_dir(base, config).join("identity")
}

/// Creates `dir` and its missing parents owner-only (0700): the state directory holds
/// the workload's key and config. Whichever writer comes first (config or certificate)
/// creates it the same way.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// The resources persisted by the last run, if any (refused ones dropped).
pub fn load_persisted(base: &Path, bootstrap: &Config) -> Option<Dynamic> {
    let set = Client::load_persisted(&state_dir(base, bootstrap))?;
    let (dynamic, refused) = sink::to_dynamic(&set, |type_url, r| {
        sink::check(bootstrap, type_url, &r.name, &r.body)
    });
    for (name, why) in refused {
        tracing::warn!(resource = %name, error = %why, "persisted resource no longer applies; dropped");
    }
    Some(dynamic)
}

/// What this proxy tells the control plane about its workload; call it once per process
/// (each call draws a new `session`).
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
                protocol: weft_api::pb_convert::protocol_to_pb(p.protocol) as i32,
            })
            .collect(),
        zone: w.zone.clone().unwrap_or_default(),
        proxy_version: env!("CARGO_PKG_VERSION").to_owned(),
        issued_certificate: config.certificates.is_none() && config.listeners.hbone.is_some(),
        session: format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..)),
    }
}

/// Starts the xDS client; it runs until `shutdown`.
pub fn spawn(
    cp: &ControlPlane,
    composer: Arc<Composer>,
    admin: Arc<Admin>,
    metrics: Arc<Metrics>,
    restored: bool,
    shutdown: CancellationToken,
) -> Result<(), xds::Error> {
    let bootstrap = composer.bootstrap();
    let node_id = format!(
        "{}/{}",
        bootstrap.workload.namespace, bootstrap.workload.name
    );
    let mut options = ClientOptions::new(cp.endpoint.clone(), node_id, registration(&bootstrap));
    options.state_dir = Some(state_dir(&cp.state_dir, &bootstrap));
    options.token_file.clone_from(&cp.token_file);
    let trust = channel::Trust {
        ca_file: cp.ca_file.clone(),
        issued_bundle: Some(identity::bundle_file(&identity_dir(
            &cp.state_dir,
            &bootstrap,
        ))),
    };
    options.trust = trust.clone();
    let client = Client::new(options)?;
    // What cannot get better by retrying stops the proxy, with the reason: a scheme
    // other than https:// (or http:// for test fakes), or no CA to verify the control
    // plane with (a missing or empty --control-plane-ca and no bundle issued before).
    channel::check_static(&cp.endpoint, &trust).map_err(xds::Error::Connect)?;
    // Without certificate files in the bootstrap, keep one issued by the control plane:
    // a proxy without an HBONE listener needs one too, as the client side of mTLS
    // (without it, every call to a strict endpoint failed "no certificates configured").
    let needs_certificate = bootstrap.certificates.is_none();
    // The CA that signs now, from the trust bundle: a certificate from another renews.
    let (signer_tx, signer_rx) = tokio::sync::watch::channel(
        composer
            .dynamic()
            .trust
            .map(|t| t.signer)
            .unwrap_or_default(),
    );
    if needs_certificate {
        match weft_tls::SpiffeId::new(
            &bootstrap.workload.trust_domain,
            &bootstrap.workload.namespace,
            &bootstrap.workload.service_account,
        ) {
            Ok(identity) => {
                let options = identity::Options {
                    endpoint: cp.endpoint.clone(),
                    trust: trust.clone(),
                    token_file: cp.token_file.clone(),
                    identity,
                    dir: identity_dir(&cp.state_dir, &bootstrap),
                    ttl: None,
                    workload: bootstrap.workload.name.clone(),
                };
                let current = composer.store_credentials();
                let c = composer.clone();
                tokio::spawn(identity::maintain(
                    options,
                    current,
                    signer_rx,
                    move |creds| {
                        if let Err(e) = c.set_issued(creds) {
                            tracing::error!(error = %e, "could not install the new certificate");
                        }
                    },
                    shutdown.clone(),
                ));
            }
            Err(e) => return Err(xds::Error::Identity(e)),
        }
    }
    tokio::spawn(report::run(
        report::Options {
            endpoint: cp.endpoint.clone(),
            trust: trust.clone(),
            token_file: cp.token_file.clone(),
            workload: bootstrap.workload.name.clone(),
        },
        metrics.clone(),
        shutdown.clone(),
    ));
    let mut status = client.status();
    let sink = Arc::new(Sink::new(signer_tx, composer.clone(), metrics));
    sink.spawn_rewarm(shutdown.clone());
    if restored && (!needs_certificate || composer.has_credentials()) {
        admin.ready.set();
        tracing::info!("proxy ready, on the last known good config from disk");
    }
    {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            // Ready once connected, every subscribed type has been answered, and (when
            // the control plane issues it) the certificate is in.
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
                    && (!needs_certificate || composer.has_credentials())
                {
                    tracing::info!("configuration received from the control plane");
                    // `/ready` turns 200 here (unless the config from disk already did).
                    if admin.ready.set() {
                        tracing::info!("proxy ready");
                    }
                    return;
                }
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    changed = status.changed() => if changed.is_err() { return },
                    // The certificate arrives on its own path.
                    () = tokio::time::sleep(Duration::from_millis(50)), if needs_certificate => {}
                }
            }
        });
    }
    tokio::spawn(client.run(sink, shutdown));
    Ok(())
}
