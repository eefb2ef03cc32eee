//! Wiring for `weft proxy`: bind every listener, watch the config, drain on SIGTERM.
//!
//! Startup binds the admin, metrics, HBONE, capture and explicit outbound listeners
//! (any bind failure is fatal and names the listener), then reports ready. A config
//! change reconciles the explicit outbound listeners (new ones bound, removed ones stop
//! accepting while their connections finish). SIGTERM or SIGINT starts the drain:
//! listeners stop accepting, `/ready` turns 503, HTTP connections finish their in-flight
//! requests and close, and the process exits once all are done or the drain deadline
//! passes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::admin::{self, Admin, LogControl};
use crate::hbone;
use crate::inbound::Inbound;
use crate::outbound::Outbound;
use crate::state::{file, Snapshot, Store};
use crate::telemetry::Metrics;
use crate::transport::listen::{self, Drain};

/// How to run the proxy.
pub struct Options {
    /// The YAML config file.
    pub config: PathBuf,
    /// How often the file is checked for changes. Default 1 s.
    pub watch_interval: Duration,
    /// Run-time log filter control for `/logging`.
    pub log: Option<Box<dyn LogControl>>,
    /// Whether `POST /shutdown` on the admin API is allowed.
    pub admin_shutdown: bool,
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The config could not be loaded.
    #[error(transparent)]
    Config(#[from] Box<file::Error>),
    /// A listener could not bind.
    #[error("cannot bind {what} on {addr}: {source} (is another proxy running, or is the address not on this host?)")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// Its address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Loads the initial config (before the runtime starts, so worker count can come from it).
pub fn load(path: &std::path::Path) -> Result<Snapshot, Error> {
    file::load(path, None).map_err(|e| Error::Config(Box::new(e)))
}

fn bind(what: &'static str, addr: SocketAddr) -> Result<tokio::net::TcpListener, Error> {
    listen::bind(addr).map_err(|source| Error::Bind { what, addr, source })
}

/// Runs the proxy until it has drained after SIGTERM/SIGINT (or `POST /shutdown`).
pub async fn run(options: Options, initial: Snapshot) -> Result<(), Error> {
    let metrics = Metrics::new();
    let store = Store::new(initial);
    let drain = Drain::new();
    let snap = store.load();
    let settings = snap.settings().clone();
    let listeners = snap.config.listeners.clone();

    let admin = Arc::new(Admin {
        store: store.clone(),
        metrics: metrics.clone(),
        drain: drain.clone(),
        ready: std::sync::atomic::AtomicBool::new(false),
        log: options.log,
        shutdown_enabled: options.admin_shutdown,
    });
    let admin_listener = bind("listeners.admin", listeners.admin)?;
    tokio::spawn(admin::serve(
        admin.clone(),
        admin_listener,
        admin::Kind::Admin,
    ));
    if let Some(addr) = listeners.metrics {
        let l = bind("listeners.metrics", addr)?;
        tokio::spawn(admin::serve(admin.clone(), l, admin::Kind::Metrics));
    }

    let pool = hbone::Pool::new(hbone::PoolConfig {
        connect_timeout: settings.connect_timeout,
        max_streams_per_connection: settings.max_hbone_streams,
        ..hbone::PoolConfig::default()
    });
    let outbound = Outbound::new(store.clone(), metrics.clone(), pool, drain.clone());
    let inbound = Inbound::new(store.clone(), metrics.clone(), drain.clone());
    let max_connections = settings.max_connections as usize;

    if let Some(addr) = listeners.hbone {
        let l = bind("listeners.hbone", addr)?;
        let creds_store = store.clone();
        let authorize_inbound = inbound.clone();
        let handle_inbound = inbound.clone();
        let server = hbone::Server::new(
            hbone::ServerConfig {
                max_concurrent_streams: settings.max_concurrent_streams,
                max_connections,
                ..hbone::ServerConfig::default()
            },
            Arc::new(move || creds_store.load().creds.clone()),
            Arc::new(move |peer, target| authorize_inbound.authorize(peer, target)),
            Arc::new(move |accepted| {
                let inbound = handle_inbound.clone();
                Box::pin(inbound.handle(accepted))
            }),
            metrics.clone(),
        );
        let token = drain.token();
        let tracker = drain.clone();
        drain.spawn(async move {
            server.serve(l, token).await;
            drop(tracker);
        });
    }

    if let Some(addr) = listeners.outbound_capture {
        let l = bind("listeners.outboundCapture", addr)?;
        let outbound = outbound.clone();
        let m = metrics.clone();
        tokio::spawn(listen::serve(
            l,
            max_connections,
            drain.clone(),
            CancellationToken::new(),
            move || m.failure("connection_limit"),
            move |stream, _peer| outbound.clone().captured(stream),
        ));
    }

    let explicit = Arc::new(Explicit {
        running: Mutex::new(HashMap::new()),
        outbound: outbound.clone(),
        drain: drain.clone(),
        metrics: metrics.clone(),
        max_connections,
    });
    explicit.reconcile(&snap, true)?;

    {
        let explicit = explicit.clone();
        tokio::spawn(file::watch(
            options.config.clone(),
            store.clone(),
            metrics.clone(),
            options.watch_interval,
            move |snap| {
                if let Err(e) = explicit.reconcile(snap, false) {
                    tracing::error!(error = %e, "outbound listener could not be bound");
                }
            },
        ));
    }

    admin.ready.store(true, Ordering::Release);
    tracing::info!(
        version = %snap.version,
        identity = ?snap.creds.as_ref().map(|c| c.identity().to_string()),
        admin = %listeners.admin,
        hbone = ?listeners.hbone,
        "proxy ready"
    );
    drop(snap);

    wait_for_signal(&drain).await;
    let deadline = settings.drain_timeout;
    tracing::info!(?deadline, active = drain.active(), "draining");
    drain.start();
    if drain.wait(deadline).await {
        tracing::info!("drained; exiting");
    } else {
        tracing::warn!(
            active = drain.active(),
            "drain deadline passed; closing remaining connections"
        );
    }
    Ok(())
}

async fn wait_for_signal(drain: &Drain) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).ok();
    let mut int = signal(SignalKind::interrupt()).ok();
    tokio::select! {
        Some(()) = async { match term.as_mut() { Some(s) => s.recv().await, None => std::future::pending().await } } => {
            tracing::info!("SIGTERM received");
        }
        Some(()) = async { match int.as_mut() { Some(s) => s.recv().await, None => std::future::pending().await } } => {
            tracing::info!("SIGINT received");
        }
        () = drain.started() => {}
    }
}

/// The explicit outbound listeners currently bound, by address.
struct Explicit {
    running: Mutex<HashMap<SocketAddr, CancellationToken>>,
    outbound: Arc<Outbound>,
    drain: Drain,
    metrics: Arc<Metrics>,
    max_connections: usize,
}

impl Explicit {
    /// Binds listeners new in `snap` and stops those it no longer has. At startup a
    /// bind failure is fatal; on reload it is logged and the rest still apply.
    fn reconcile(&self, snap: &Snapshot, startup: bool) -> Result<(), Error> {
        let mut running = self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let wanted: Vec<SocketAddr> = snap.config.outbound.iter().map(|o| o.listen).collect();
        running.retain(|addr, token| {
            let keep = wanted.contains(addr);
            if !keep {
                tracing::info!(%addr, "outbound listener removed; existing connections continue");
                token.cancel();
            }
            keep
        });
        let mut first_error = None;
        for addr in wanted {
            if running.contains_key(&addr) {
                continue;
            }
            let listener = match bind("outbound[].listen", addr) {
                Ok(l) => l,
                Err(e) if startup => return Err(e),
                Err(e) => {
                    tracing::error!(error = %e, "outbound listener not started");
                    first_error.get_or_insert(e);
                    continue;
                }
            };
            let token = CancellationToken::new();
            running.insert(addr, token.clone());
            let outbound = self.outbound.clone();
            let m = self.metrics.clone();
            tokio::spawn(listen::serve(
                listener,
                self.max_connections,
                self.drain.clone(),
                token,
                move || m.failure("connection_limit"),
                move |stream, _peer| outbound.clone().explicit(stream, addr),
            ));
            tracing::debug!(%addr, "outbound listener started");
        }
        first_error.map_or(Ok(()), Err)
    }
}
