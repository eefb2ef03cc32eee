//! `weft control-plane`: the store, the control loop, the mesh CA, the gRPC server
//! (xDS and CSR signing), the workload registry and the HTTP API, wired together and
//! run until shutdown.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use weft_api::pb::v1 as pb;
use weft_api::resource::{Key, Kind};
use weft_policy::Compiled;
use weft_tls::listener::Limits;

use crate::api::{self, ApiState, ProxyDirectory};
use crate::ca::{self, MeshCa};
use crate::controller::{self, registry};
use crate::identity::{self, Tokens};
use crate::store::{self, Store, StoreError, StoreSpec};
use crate::xds::server::{KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT};
use crate::xds::{ConnectionInfo, Hooks, Snapshot, Viewer, Visibility, XdsResource, XdsServer};

/// How to run a control plane.
#[derive(Clone, Debug)]
pub struct Options {
    /// Where resources are stored.
    pub store: StoreSpec,
    /// HTTP API address. Default `127.0.0.1:5681`.
    pub api_listen: SocketAddr,
    /// xDS (gRPC) address. Default `127.0.0.1:5678`.
    pub xds_listen: SocketAddr,
    /// This instance's name, recorded in the status of the workloads it serves.
    pub instance: String,
    /// How long a workload whose proxy disconnected stays an endpoint. Default 30 s.
    pub grace_period: Duration,
    /// How long compilation waits after a change for more changes. Default 50 ms.
    pub debounce: Duration,
    /// Where to write the operator admin token when this instance creates it (the
    /// first start on a store). `None`: `admin-token` next to the SQLite database; a
    /// PostgreSQL store then needs a path.
    pub admin_token_file: Option<PathBuf>,
    /// Where to write the mesh trust bundle (PEM) that proxies and the CLI verify the
    /// control plane with, at every start. `None`: [`CA_FILE`] next to the SQLite
    /// database, or nowhere for PostgreSQL.
    pub ca_file: Option<PathBuf>,
    /// Host names and addresses for the serving certificate's DNS/IP SANs (for clients
    /// that verify by host name; Weft's verify the SPIFFE identity).
    pub tls_hosts: Vec<String>,
    /// Lifetimes of the workload certificates the CA signs. Default 24 h.
    pub certificates: identity::Options,
    /// Workloads per identity, and how long unhealthy ones are kept.
    pub quotas: registry::Quotas,
    /// Connection caps and timeouts of the xDS listener, before they are lowered to fit
    /// the open-file limit; [`xds_limits`] unless the operator says otherwise.
    pub xds_limits: Limits,
}

/// File name of the trust bundle written next to the store.
pub const CA_FILE: &str = "ca.crt";

/// Lifetime of the control plane's serving certificate; renewed at half-life.
pub const SERVING_VALIDITY: Duration = Duration::from_secs(24 * 60 * 60);

/// The HTTP API's default listener limits (ADR 0023): API clients are operators and
/// proxies' registration calls, so the caps are lower and the idle timeout shorter than
/// xDS's; both are lowered to fit the open-file limit at start.
pub fn api_limits() -> Limits {
    Limits {
        max_connections: 1024,
        max_connections_per_source: 64,
        idle_timeout: Duration::from_secs(60),
        ..Limits::default()
    }
}

/// The xDS and certificate-signing listener's default limits (ADR 0023): one long-lived
/// connection per proxy, kept alive by HTTP/2 pings every [`KEEPALIVE_INTERVAL`].
pub fn xds_limits() -> Limits {
    Limits {
        max_connections: 10_000,
        max_connections_per_source: 1000,
        ..Limits::default()
    }
}

/// Why the control plane stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store could not be opened or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The mesh CA could not be loaded or created.
    #[error(transparent)]
    Ca(#[from] ca::Error),
    /// The workload token signing key could not be loaded or created.
    #[error(transparent)]
    Tokens(#[from] identity::tokens::Error),
    /// The bootstrap admin token could not be created or written.
    #[error(transparent)]
    Admin(#[from] api::auth::Error),
    /// This instance would create the admin token but has nowhere to write it.
    #[error(
        "the store has no admin token yet and there is nowhere to write a new one: \
         give an admin token file (`weft control-plane --admin-token-file PATH`)"
    )]
    NoAdminTokenFile,
    /// The serving certificate could not be set up.
    #[error("cannot set up the control plane's TLS certificate: {0}")]
    Tls(#[from] weft_tls::control::Error),
    /// The trust bundle file could not be written.
    #[error("cannot write the mesh CA certificate to {}: {source}", path.display())]
    CaFile {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A listener could not bind.
    #[error("cannot bind the {what} on {addr}: {source}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// Its address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A server failed.
    #[error("{0}")]
    Serve(String),
}

/// Runs until `shutdown` is cancelled, then stops accepting, closes streams and returns.
pub async fn run(options: Options, shutdown: CancellationToken) -> Result<(), Error> {
    let store = store::open(&options.store).await?;
    let ca = Arc::new(MeshCa::start(store.as_ref()).await?);
    let tokens = Arc::new(Tokens::load(store.clone(), ca.trust_domain()).await?);
    let admin = Arc::new(admin_auth(&store, &options).await?);
    let leaf = ca.issue_serving(
        &options.tls_hosts,
        SERVING_VALIDITY,
        std::time::SystemTime::now(),
    )?;
    let serving = Arc::new(weft_tls::control::ServingCert::new(
        &leaf.chain,
        &leaf.key_der,
    )?);
    if let Some(path) = ca_file(&options) {
        write_ca_file(&path, &ca.trust_bundle().to_pem()).map_err(|source| Error::CaFile {
            path: path.clone(),
            source,
        })?;
        tracing::info!(file = %path.display(), "wrote the mesh CA certificate clients verify the control plane with");
    }
    let bind = |what, addr| async move {
        tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { what, addr, source })
    };
    let api_listener = bind("HTTP API", options.api_listen).await?;
    let xds_listener = bind("xDS server", options.xds_listen).await?;
    // A quarter of the connection budget for the API, the rest for proxies' xDS.
    let budget = weft_tls::listener::current_fd_limit().connection_budget();
    let api_limits = api_limits().within(budget / 4);
    let xds_limits = options.xds_limits.clone().within(budget - budget / 4);
    tracing::info!(
        api_max_connections = api_limits.max_connections,
        api_max_per_source = api_limits.max_connections_per_source,
        xds_max_connections = xds_limits.max_connections,
        xds_max_per_source = xds_limits.max_connections_per_source,
        "listener connection caps (below the open-file limit)"
    );

    let (snapshots_tx, snapshots) = watch::channel(Arc::new(Snapshot::new(0)));
    let hooks = Arc::new(Registrar {
        store: store.clone(),
        instance: options.instance.clone(),
        quotas: options.quotas,
        tokens: tokens.clone(),
        streams: Mutex::new(HashMap::new()),
    });
    let xds = XdsServer::new(snapshots, hooks.clone());

    let mut tasks = tokio::task::JoinSet::new();
    {
        let store = store.clone();
        let ca = ca.clone();
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            ca::rotation::run(
                store.as_ref(),
                &ca,
                ca::rotation::INTERVAL,
                ca::rotation::MIN_DWELL,
                shutdown,
            )
            .await;
            Ok(())
        });
    }
    {
        // Follows the CA: a new signer gets a new serving certificate (clients verify it
        // with the roots of a rotation's bundle), a new bundle a new ca.crt.
        let ca = ca.clone();
        let serving = serving.clone();
        let hosts = options.tls_hosts.clone();
        let file = ca_file(&options);
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            follow_ca(&ca, &serving, &hosts, file.as_deref(), shutdown).await;
            Ok(())
        });
    }
    {
        let store = store.clone();
        let xds = xds.clone();
        let hooks = hooks.clone();
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            enforce_tokens(store.as_ref(), &xds, &hooks, TOKEN_CHECK_INTERVAL, shutdown).await;
            Ok(())
        });
    }
    {
        let ca = ca.clone();
        let serving = serving.clone();
        let hosts = options.tls_hosts.clone();
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            renew_serving(&ca, &serving, &hosts, SERVING_VALIDITY / 2, shutdown).await;
            Ok(())
        });
    }
    {
        let store = store.clone();
        let shutdown = shutdown.clone();
        let debounce = options.debounce;
        let mut publisher = Publisher {
            tx: snapshots_tx,
            previous: Snapshot::new(0),
        };
        tasks.spawn(async move {
            controller::run(
                store,
                debounce,
                move |c: &Compiled, rev: u64| publisher.publish(c, rev),
                shutdown,
            )
            .await
            .map_err(Error::Store)
        });
    }
    {
        let store = store.clone();
        let shutdown = shutdown.clone();
        let grace = options.grace_period;
        let retention = options.quotas.retention;
        let interval = (grace / 4).clamp(Duration::from_millis(250), Duration::from_secs(10));
        tasks.spawn(async move {
            registry::reap(store, grace, retention, interval, shutdown).await;
            Ok(())
        });
    }
    {
        // One gRPC server for xDS and CSR signing, configured as `XdsServer::serve`
        // does: xDS streams never end on their own, so they are ended (UNAVAILABLE)
        // through `streams` when shutdown starts, and in any case once serving stops.
        let streams = shutdown.child_token();
        let incoming = crate::tls::incoming(
            xds_listener,
            weft_tls::control::server_config(serving.clone(), weft_tls::control::ALPN_GRPC)?,
            "xDS server",
            &xds_limits,
            streams.clone(),
        );
        let server = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
            .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
            .add_service(xds.service(streams.clone()))
            .add_service(identity::service_recording(
                ca.clone(),
                tokens.clone(),
                options.certificates,
                Some(store.clone()),
            ));
        let signal = streams.clone().cancelled_owned();
        tasks.spawn(async move {
            let served = server.serve_with_incoming_shutdown(incoming, signal).await;
            streams.cancel();
            served.map_err(|e| Error::Serve(format!("gRPC server (xDS, identity): {e}")))
        });
    }
    {
        let state = ApiState {
            store: store.clone(),
            proxies: Arc::new(Directory { xds: xds.clone() }),
            tokens: Some(tokens.clone()),
            admin: Some(admin),
        };
        let shutdown = shutdown.clone();
        let incoming = crate::tls::incoming(
            api_listener,
            weft_tls::control::server_config(serving.clone(), weft_tls::control::ALPN_API)?,
            "HTTP API",
            &api_limits,
            shutdown.clone(),
        );
        let header_read_timeout = api_limits.header_read_timeout;
        tasks.spawn(async move {
            serve_api(incoming, api::router(state), header_read_timeout, shutdown).await;
            Ok(())
        });
    }
    tracing::info!(
        store = %options.store,
        api = %options.api_listen,
        xds = %options.xds_listen,
        instance = %options.instance,
        "control plane ready"
    );

    // The first task to fail stops the rest; a clean shutdown waits for all.
    let mut result = Ok(());
    while let Some(done) = tasks.join_next().await {
        let outcome = done.map_err(|e| Error::Serve(format!("task panicked: {e}")))?;
        if let Err(e) = outcome {
            tracing::error!(error = %e, "control plane component failed; shutting down");
            shutdown.cancel();
            if result.is_ok() {
                result = Err(e);
            }
        }
    }
    result
}

/// Serves the HTTP API on `incoming` until `shutdown`, then lets each connection finish
/// its requests. HTTP/1 request heads must arrive within `header_read_timeout` (also
/// between keep-alive requests), so a slowloris client holds its slot no longer.
async fn serve_api(
    mut incoming: crate::tls::Incoming,
    router: axum::Router,
    header_read_timeout: Duration,
    shutdown: CancellationToken,
) {
    use futures::StreamExt as _;
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(100)
        .max_header_list_size(64 * 1024);
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        let conn = tokio::select! {
            () = shutdown.cancelled() => break,
            conn = incoming.next() => match conn {
                Some(Ok(conn)) => conn,
                Some(Err(_)) | None => break,
            },
        };
        let builder = builder.clone();
        let router = router.clone();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let mut router = router.clone();
                async move { tower::Service::call(&mut router, request).await }
            });
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(conn), service);
            tokio::pin!(conn);
            let result = tokio::select! {
                result = conn.as_mut() => result,
                () = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(error) = result {
                tracing::debug!(%error, "HTTP API connection ended with an error");
            }
        });
    }
    connections.close();
    connections.wait().await;
}

/// Where the trust bundle goes: the configured file, else next to a SQLite store.
fn ca_file(options: &Options) -> Option<PathBuf> {
    options.ca_file.clone().or_else(|| match &options.store {
        StoreSpec::Sqlite { path } => path.parent().map(|dir| dir.join(CA_FILE)),
        StoreSpec::Postgres { .. } => None,
    })
}

/// Writes the (public) trust bundle atomically, world-readable.
fn write_ca_file(path: &std::path::Path, pem: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let tmp = path.with_extension("crt.tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&tmp)?;
    file.write_all(pem.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Re-issues the serving certificate when the signing CA changes, and rewrites the
/// trust bundle file when the bundle does.
async fn follow_ca(
    ca: &MeshCa,
    serving: &weft_tls::control::ServingCert,
    hosts: &[String],
    file: Option<&std::path::Path>,
    shutdown: CancellationToken,
) {
    let mut signer = ca.signer_id();
    let mut bundle = ca.trust_bundle();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(ca::rotation::INTERVAL) => {}
        }
        let now_bundle = ca.trust_bundle();
        if now_bundle != bundle {
            if let Some(path) = file {
                match write_ca_file(path, &now_bundle.to_pem()) {
                    Ok(()) => {
                        tracing::info!(file = %path.display(), roots = now_bundle.len(), "rewrote the mesh CA certificate file");
                    }
                    Err(e) => {
                        tracing::error!(file = %path.display(), error = %e, "cannot rewrite the mesh CA certificate file");
                    }
                }
            }
            bundle = now_bundle;
        }
        let now_signer = ca.signer_id();
        if now_signer != signer {
            match ca.issue_serving(hosts, SERVING_VALIDITY, std::time::SystemTime::now()) {
                Ok(leaf) => match serving.set(&leaf.chain, &leaf.key_der) {
                    Ok(()) => {
                        tracing::info!("the control plane serves a certificate from the new CA");
                        signer = now_signer;
                    }
                    Err(e) => tracing::error!(error = %e, "cannot use the new serving certificate"),
                },
                Err(e) => {
                    tracing::error!(error = %e, "cannot issue a serving certificate from the new CA");
                }
            }
        }
    }
}

/// Re-issues the serving certificate every `every` (new handshakes get the new one).
async fn renew_serving(
    ca: &MeshCa,
    serving: &weft_tls::control::ServingCert,
    hosts: &[String],
    every: Duration,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        let renewed = ca
            .issue_serving(hosts, SERVING_VALIDITY, std::time::SystemTime::now())
            .map_err(|e| e.to_string())
            .and_then(|leaf| {
                serving
                    .set(&leaf.chain, &leaf.key_der)
                    .map_err(|e| e.to_string())
            });
        match renewed {
            Ok(()) => tracing::info!("renewed the control plane's serving certificate"),
            Err(e) => {
                tracing::error!(error = %e, "could not renew the control plane's serving certificate; retrying later");
            }
        }
    }
}

/// The store's operator token checker. On the store's first start (no operator token
/// at all), creates the admin token `bootstrap` and writes it to the admin token file
/// (logging where, never the token itself).
async fn admin_auth(store: &Arc<dyn Store>, options: &Options) -> Result<api::OperatorAuth, Error> {
    let file = options
        .admin_token_file
        .clone()
        .or_else(|| match &options.store {
            StoreSpec::Sqlite { path } => path
                .parent()
                .map(|dir| dir.join(api::auth::ADMIN_TOKEN_FILE)),
            StoreSpec::Postgres { .. } => None,
        });
    if file.is_none() && store.operator_tokens().await?.is_empty() {
        return Err(Error::NoAdminTokenFile);
    }
    let created = api::auth::create_bootstrap(store.as_ref()).await?;
    match (&created, &file) {
        (Some(token), Some(file)) => {
            api::auth::write_token_file(file, token)?;
            tracing::info!(
                file = %file.display(),
                "created the admin token; `weft token admin` prints it"
            );
        }
        (Some(_), None) => return Err(Error::NoAdminTokenFile),
        (None, Some(file)) if !file.exists() => tracing::warn!(
            file = %file.display(),
            "the store has an admin token but this host has no copy of it; \
             run `weft token admin` where the control plane first started, or \
             `weft control-plane admin-token reset` to make a new one"
        ),
        (None, _) => {}
    }
    Ok(api::OperatorAuth::new(store.clone()))
}

/// Turns each compilation into an xDS snapshot, reusing unchanged resources.
struct Publisher {
    tx: watch::Sender<Arc<Snapshot>>,
    previous: Snapshot,
}

impl Publisher {
    /// Publishes the compilation, unless every resource is the same as in the snapshot
    /// in force: most store writes (a workload registering that no service selects, a
    /// status update) change nothing a proxy sees, and waking every stream to find that
    /// out costs O(proxies).
    fn publish(&mut self, compiled: &Compiled, revision: u64) {
        let mut next = Snapshot::new(revision);
        let audience = Audience::new(compiled);
        let mut changed = self.previous.len()
            != compiled.services.len()
                + compiled.route_tables.len()
                + compiled.inbound_policies.len()
                + usize::from(compiled.trust_bundle.is_some());
        let encoded = compiled
            .services
            .iter()
            .map(|(name, r)| (pb::SERVICE_TYPE_URL, name.as_str(), r.encode_to_vec()))
            .chain(
                compiled
                    .route_tables
                    .iter()
                    .map(|(name, r)| (pb::ROUTE_TABLE_TYPE_URL, name.as_str(), r.encode_to_vec())),
            )
            .chain(compiled.inbound_policies.iter().map(|(name, r)| {
                (
                    pb::INBOUND_POLICY_TYPE_URL,
                    name.as_str(),
                    r.encode_to_vec(),
                )
            }))
            .chain(compiled.trust_bundle.iter().map(|r| {
                (
                    pb::TRUST_BUNDLE_TYPE_URL,
                    pb::TRUST_BUNDLE_NAME,
                    r.encode_to_vec(),
                )
            }));
        for (type_url, name, value) in encoded {
            let visible = audience.of(type_url, name);
            let (resource, reused) = self.resource(type_url, name, value, visible);
            changed |= !reused;
            next.insert(resource);
        }
        if changed {
            self.previous = next.clone();
            self.tx.send_replace(Arc::new(next));
        }
    }

    /// The resource, or the previous snapshot's `Arc` of it when the bytes and the
    /// audience are equal (then `true`).
    fn resource(
        &self,
        type_url: &str,
        name: &str,
        value: Vec<u8>,
        visible: Visibility,
    ) -> (Arc<XdsResource>, bool) {
        let version = crate::xds::content_version(&value);
        if let Some(old) = self.previous.get(type_url, name) {
            if old.version == version && old.visible == visible {
                return (old.clone(), true);
            }
        }
        let fresh = Arc::new(
            XdsResource::new(
                name,
                version,
                prost_types::Any {
                    type_url: type_url.to_owned(),
                    value,
                },
            )
            .with_visibility(visible),
        );
        (fresh, false)
    }
}

/// Who may see each compiled resource (ADR 0026): a `Service` and its `RouteTable`
/// the namespaces of the service's effective `exportTo`, an `InboundPolicy` only its
/// own workload, the trust bundle everyone.
struct Audience {
    /// One shared list per distinct export, by service resource name.
    exports: HashMap<String, Visibility>,
}

impl Audience {
    fn new(compiled: &Compiled) -> Self {
        let mut shared: HashMap<&[String], Visibility> = HashMap::new();
        let exports = compiled
            .exports
            .iter()
            .map(|(name, export)| {
                let visible = match export {
                    weft_policy::Export::Mesh => Visibility::All,
                    weft_policy::Export::Namespaces(namespaces) => shared
                        .entry(namespaces.as_slice())
                        .or_insert_with(|| Visibility::Namespaces(Arc::from(namespaces.as_slice())))
                        .clone(),
                };
                (name.clone(), visible)
            })
            .collect();
        Self { exports }
    }

    fn of(&self, type_url: &str, name: &str) -> Visibility {
        // Names are `<name>.<namespace>`; neither part may contain a dot.
        let split = name.split_once('.');
        match type_url {
            pb::TRUST_BUNDLE_TYPE_URL => Visibility::All,
            pb::SERVICE_TYPE_URL | pb::ROUTE_TABLE_TYPE_URL => {
                self.exports.get(name).cloned().unwrap_or_else(|| {
                    // A route table without a compiled parent: its namespace only.
                    Visibility::Namespaces(Arc::from(
                        split.map(|(_, ns)| vec![ns.to_owned()]).unwrap_or_default(),
                    ))
                })
            }
            pb::INBOUND_POLICY_TYPE_URL => match split {
                Some((name, namespace)) => Visibility::Workload {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                },
                None => Visibility::Namespaces(Arc::from(Vec::new())),
            },
            // A type this list does not know yet is seen by no workload until it is
            // given an audience here.
            _ => Visibility::Namespaces(Arc::from(Vec::new())),
        }
    }
}

/// How often open xDS streams are checked against token revocations and expiry.
pub const TOKEN_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// Ends the streams whose workload token was revoked (on any instance: revocations are
/// in the store) or has expired: a revoked proxy loses its config stream within
/// [`TOKEN_CHECK_INTERVAL`], and its reconnects and certificate renewals are refused.
async fn enforce_tokens(
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
        let streams: Vec<(u64, StreamToken)> = registrar
            .streams()
            .iter()
            .map(|(id, t)| (*id, t.clone()))
            .collect();
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
struct Registrar {
    store: Arc<dyn Store>,
    instance: String,
    quotas: registry::Quotas,
    tokens: Arc<Tokens>,
    /// The token of every admitted stream, by connection id.
    streams: Mutex<HashMap<u64, StreamToken>>,
}

impl Registrar {
    /// The stream's workload token must be valid and name the identity the proxy
    /// registers: a proxy can only get config, and register a workload, for the
    /// identity it was given.
    fn streams(&self) -> std::sync::MutexGuard<'_, HashMap<u64, StreamToken>> {
        self.streams
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

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
            let live = streams.iter().find(|(_, t)| {
                t.node == node && (token.session.is_empty() || t.session != token.session)
            });
            if let Some((conn, _)) = live {
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
            self.streams().remove(&info.conn_id);
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
        self.streams().remove(&conn_id);
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

/// The API's view of connected proxies, with the config last sent decoded.
struct Directory {
    xds: XdsServer,
}

impl ProxyDirectory for Directory {
    fn list(&self) -> Vec<serde_json::Value> {
        self.xds
            .proxies()
            .into_iter()
            .filter_map(|p| serde_json::to_value(p).ok())
            .collect()
    }

    fn get(&self, namespace: &str, name: &str) -> Option<serde_json::Value> {
        let node = format!("{namespace}/{name}");
        let status = self.xds.proxy(&node)?;
        let mut doc = serde_json::to_value(status).ok()?;
        let sent: Vec<serde_json::Value> = self
            .xds
            .resources_sent(&node)
            .unwrap_or_default()
            .iter()
            .map(|r| {
                serde_json::json!({
                    "typeUrl": r.type_url(),
                    "name": r.name,
                    "version": r.version,
                    "resource": decode(&r.body),
                })
            })
            .collect();
        if let Some(obj) = doc.as_object_mut() {
            obj.insert("configSent".into(), serde_json::Value::Array(sent));
        }
        Some(doc)
    }
}

/// A proxy resource as JSON, in the proxy model's shape.
fn decode(any: &prost_types::Any) -> serde_json::Value {
    let undecodable = |e: &dyn std::fmt::Display| serde_json::json!({ "error": e.to_string() });
    match any.type_url.as_str() {
        pb::SERVICE_TYPE_URL => match pb::Service::decode(any.value.as_slice()) {
            Ok(s) => match weft_api::proxy::Service::try_from(&s) {
                Ok(s) => serde_json::to_value(s).unwrap_or_default(),
                Err(e) => undecodable(&e),
            },
            Err(e) => undecodable(&e),
        },
        pb::ROUTE_TABLE_TYPE_URL => match pb::RouteTable::decode(any.value.as_slice()) {
            Ok(t) => match weft_api::pb_convert::route_tables_from_pb(&t) {
                Ok(t) => serde_json::to_value(t).unwrap_or_default(),
                Err(e) => undecodable(&e),
            },
            Err(e) => undecodable(&e),
        },
        pb::INBOUND_POLICY_TYPE_URL => match pb::InboundPolicy::decode(any.value.as_slice()) {
            Ok(p) => match weft_api::proxy::InboundPolicy::try_from(&p) {
                Ok(p) => serde_json::to_value(p).unwrap_or_default(),
                Err(e) => undecodable(&e),
            },
            Err(e) => undecodable(&e),
        },
        pb::TRUST_BUNDLE_TYPE_URL => match pb::TrustBundle::decode(any.value.as_slice()) {
            Ok(b) => serde_json::json!({ "rootsPem": b.roots_pem, "signer": b.signer }),
            Err(e) => undecodable(&e),
        },
        other => serde_json::json!({ "unknownType": other }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
        let registrar = Registrar {
            store,
            instance: "cp-test".into(),
            quotas: registry::Quotas::default(),
            tokens,
            streams: Mutex::new(HashMap::new()),
        };
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

    #[test]
    fn equal_bytes_give_equal_versions_and_different_bytes_differ() {
        use crate::xds::content_version;
        assert_eq!(content_version(b"abc"), content_version(b"abc"));
        assert_ne!(content_version(b"abc"), content_version(b"abd"));
        assert_eq!(content_version(b"").len(), 16);
    }

    #[test]
    fn an_unchanged_resource_keeps_its_arc_across_publishes() {
        let (tx, rx) = watch::channel(Arc::new(Snapshot::new(0)));
        let mut publisher = Publisher {
            tx,
            previous: Snapshot::new(0),
        };
        let mut compiled = Compiled::default();
        compiled.services.insert(
            "a.default".into(),
            pb::Service {
                name: "a".into(),
                namespace: "default".into(),
                ..pb::Service::default()
            },
        );
        publisher.publish(&compiled, 1);
        let first = rx.borrow().get(pb::SERVICE_TYPE_URL, "a.default").cloned();
        compiled.services.insert(
            "b.default".into(),
            pb::Service {
                name: "b".into(),
                namespace: "default".into(),
                ..pb::Service::default()
            },
        );
        publisher.publish(&compiled, 2);
        let snap = rx.borrow().clone();
        let second = snap.get(pb::SERVICE_TYPE_URL, "a.default").cloned();
        assert!(Arc::ptr_eq(&first.expect("a"), &second.expect("a")));
        assert_eq!(snap.revision(), 2);
        assert!(snap.get(pb::SERVICE_TYPE_URL, "b.default").is_some());
    }

    #[test]
    fn an_identical_compilation_does_not_wake_the_streams() {
        let (tx, mut rx) = watch::channel(Arc::new(Snapshot::new(0)));
        let mut publisher = Publisher {
            tx,
            previous: Snapshot::new(0),
        };
        let mut compiled = Compiled::default();
        compiled
            .services
            .insert("a.default".into(), pb::Service::default());
        publisher.publish(&compiled, 1);
        assert!(rx.has_changed().unwrap());
        rx.borrow_and_update();
        publisher.publish(&compiled, 2);
        assert!(!rx.has_changed().unwrap(), "same resources: no push");
        compiled.services.clear();
        publisher.publish(&compiled, 3);
        assert!(rx.has_changed().unwrap(), "a removed service is a change");
        assert!(rx.borrow().is_empty());
    }

    #[test]
    fn each_resource_gets_its_audience_and_an_export_change_alone_is_published() {
        let (tx, mut rx) = watch::channel(Arc::new(Snapshot::new(0)));
        let mut publisher = Publisher {
            tx,
            previous: Snapshot::new(0),
        };
        let mut compiled = Compiled::default();
        for name in ["open.team-a", "closed.team-a"] {
            compiled
                .services
                .insert(name.into(), pb::Service::default());
            compiled
                .route_tables
                .insert(name.into(), pb::RouteTable::default());
        }
        compiled
            .exports
            .insert("open.team-a".into(), weft_policy::Export::Mesh);
        let own = weft_policy::Export::Namespaces(vec!["team-a".into()]);
        compiled.exports.insert("closed.team-a".into(), own.clone());
        compiled
            .inbound_policies
            .insert("web.team-a".into(), pb::InboundPolicy::default());
        compiled.trust_bundle = Some(pb::TrustBundle::default());
        publisher.publish(&compiled, 1);

        let snap = rx.borrow_and_update().clone();
        let visible = |type_url: &str, name: &str| {
            snap.get(type_url, name).map(|r| r.visible.clone()).unwrap()
        };
        let team_a = Visibility::Namespaces(Arc::from(["team-a".to_owned()]));
        assert_eq!(
            visible(pb::SERVICE_TYPE_URL, "open.team-a"),
            Visibility::All
        );
        assert_eq!(
            visible(pb::ROUTE_TABLE_TYPE_URL, "open.team-a"),
            Visibility::All
        );
        assert_eq!(visible(pb::SERVICE_TYPE_URL, "closed.team-a"), team_a);
        assert_eq!(visible(pb::ROUTE_TABLE_TYPE_URL, "closed.team-a"), team_a);
        assert_eq!(
            visible(pb::INBOUND_POLICY_TYPE_URL, "web.team-a"),
            Visibility::Workload {
                namespace: "team-a".into(),
                name: "web".into()
            }
        );
        assert_eq!(
            visible(pb::TRUST_BUNDLE_TYPE_URL, pb::TRUST_BUNDLE_NAME),
            Visibility::All
        );

        // Same bytes, new audience: a new snapshot, with the version unchanged.
        let before = snap
            .get(pb::SERVICE_TYPE_URL, "closed.team-a")
            .cloned()
            .unwrap();
        compiled.exports.insert(
            "closed.team-a".into(),
            weft_policy::Export::Namespaces(vec!["team-a".into(), "team-b".into()]),
        );
        publisher.publish(&compiled, 2);
        assert!(rx.has_changed().unwrap(), "an export change is a change");
        let after = rx
            .borrow_and_update()
            .get(pb::SERVICE_TYPE_URL, "closed.team-a")
            .cloned()
            .unwrap();
        assert_eq!(after.version, before.version);
        assert_ne!(after.visible, before.visible);
    }
}
