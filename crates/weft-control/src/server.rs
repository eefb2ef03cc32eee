//! `weft control-plane`: the store, the control loop, the mesh CA, the gRPC server
//! (xDS and CSR signing), the workload registry and the HTTP API, wired together and
//! run until shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use weft_policy::Compiled;
use weft_tls::listener::Limits;

use crate::api::directory::Directory;
use crate::api::{self, ApiState};
pub use crate::ca::serving::SERVING_VALIDITY;
use crate::ca::serving::{follow_ca, renew_serving, write_ca_file};
use crate::ca::{self, MeshCa};
use crate::controller::{self, registry};
use crate::identity::{self, Tokens};
use crate::registrar::{enforce_tokens, Registrar, TOKEN_CHECK_INTERVAL};
use crate::store::{self, Store, StoreError, StoreSpec};
use crate::xds::publish::Publisher;
use crate::xds::server::{KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT};
use crate::xds::{Snapshot, XdsServer};

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
    /// The key `Secret` material is sealed with (32 bytes, mode 0600). `None`:
    /// [`crate::seal::KEY_FILE`] next to the SQLite database, created on first start; a
    /// PostgreSQL store then stores no Secrets (every instance needs the same key, so
    /// the operator gives it).
    pub secret_key_file: Option<PathBuf>,
}

/// File name of the trust bundle written next to the store.
pub const CA_FILE: &str = "ca.crt";

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
    /// The secret key could not be loaded or created.
    #[error(transparent)]
    SecretKey(#[from] crate::seal::Error),
    /// A server failed.
    #[error("{0}")]
    Serve(String),
}

/// Runs until `shutdown` is cancelled, then stops accepting, closes streams and returns.
pub async fn run(options: Options, shutdown: CancellationToken) -> Result<(), Error> {
    let metrics = Arc::new(crate::metrics::ControlMetrics::new());
    let store: Arc<dyn Store> = Arc::new(store::Timed::new(
        store::open(&options.store).await?,
        metrics.clone(),
    ));
    let secrets = secret_keyring(&options)?;
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
    let hooks = Arc::new(Registrar::new(
        store.clone(),
        options.instance.clone(),
        options.quotas,
        tokens.clone(),
    ));
    let xds = XdsServer::counted(snapshots, hooks.clone(), Some(metrics.clone()));

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
        let mut publisher = Publisher::new(snapshots_tx);
        let expiry_metrics = metrics.clone();
        tasks.spawn(async move {
            controller::run(
                store,
                debounce,
                move |c: &Compiled, rev: u64| {
                    expiry_metrics.set_certificate_expiry(&c.certificate_expiry);
                    publisher.publish(c, rev);
                },
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
    let stats = Arc::new(crate::stats::Stats::default());
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
            .add_service(crate::stats::service::service(
                stats.clone(),
                tokens.clone(),
                store.clone(),
            ))
            .add_service(identity::service_counted(
                ca.clone(),
                tokens.clone(),
                options.certificates,
                Some(store.clone()),
                Some(metrics.clone()),
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
            secrets: secrets.clone(),
            proxies: Arc::new(Directory { xds: xds.clone() }),
            tokens: Some(tokens.clone()),
            admin: Some(admin),
            metrics: Some(metrics.clone()),
            stats: Some(stats.clone()),
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

/// The key Secrets are sealed with: the configured file (which must exist), else
/// [`crate::seal::KEY_FILE`] next to a SQLite store (created on first start), else none.
fn secret_keyring(options: &Options) -> Result<Option<Arc<crate::seal::Keyring>>, Error> {
    use crate::seal::{Keyring, KEY_FILE};
    let keyring = match (&options.secret_key_file, &options.store) {
        (Some(file), _) => Some(Keyring::load(file)?),
        (None, StoreSpec::Sqlite { path }) => match path.parent() {
            Some(dir) => Some(Keyring::load_or_create(&dir.join(KEY_FILE))?),
            None => None,
        },
        (None, StoreSpec::Postgres { .. }) => {
            tracing::warn!(
                "no secret key: Secrets cannot be stored; give every instance the same key \
                 with `--secret-key-file PATH` (32 random bytes, mode 0600)"
            );
            None
        }
    };
    if let Some(keyring) = &keyring {
        tracing::info!(
            key_id = keyring.key_id(),
            "Secrets are sealed with this key"
        );
    }
    Ok(keyring.map(Arc::new))
}

/// Where the trust bundle goes: the configured file, else next to a SQLite store.
fn ca_file(options: &Options) -> Option<PathBuf> {
    options.ca_file.clone().or_else(|| match &options.store {
        StoreSpec::Sqlite { path } => path.parent().map(|dir| dir.join(CA_FILE)),
        StoreSpec::Postgres { .. } => None,
    })
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
